//! Example plugin: notes owned by accounts. Two SQL migrations, then a code migration that
//! reads every note and writes derived rows (a slug and a word count) — a backfill.

use wasmig_guest::{Migration, Plugin, Result, Tx, log, params};

/// 0.3.0 up: derive a stats row for every existing note.
fn backfill_stats(tx: &Tx) -> Result<()> {
    tx.execute_script(
        "CREATE TABLE notes__stats (
             note_id INTEGER PRIMARY KEY REFERENCES notes__note(id) ON DELETE CASCADE,
             slug    TEXT NOT NULL,
             words   INTEGER NOT NULL
         )",
    )?;
    let notes = tx.query("SELECT id, title, body FROM notes__note ORDER BY id", &[])?;
    let mut rows = Vec::with_capacity(notes.len());
    for note in &notes {
        let id: i64 = note.get("id")?;
        let title: String = note.get("title")?;
        let body: String = note.get("body")?;
        let words = title.split_whitespace().count() + body.split_whitespace().count();
        rows.push(params![id, slug(&title), words as i64].to_vec());
    }
    let written = tx.execute_many(
        "INSERT INTO notes__stats (note_id, slug, words) VALUES (?1, ?2, ?3)",
        &rows,
    )?;
    log::info(&format!("backfilled stats for {written} notes"));
    Ok(())
}

/// 0.3.0 down.
fn drop_stats(tx: &Tx) -> Result<()> {
    tx.execute("DROP TABLE notes__stats", &[]).map(drop)
}

/// `"Hello, World!"` → `"hello-world"`.
fn slug(title: &str) -> String {
    let lower = title.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.join("-")
}

fn plugin() -> Plugin {
    Plugin::new("notes", "0.3.0")
        .description("Notes attached to accounts")
        .depends_on("accounts", "^0.2")
        .migration(
            Migration::sql(
                "0.1.0",
                "create notes",
                include_str!("../migrations/0.1.0-create-notes.up.sql"),
            )
            .down_sql(include_str!("../migrations/0.1.0-create-notes.down.sql")),
        )
        .migration(
            Migration::sql(
                "0.2.0",
                "tags",
                include_str!("../migrations/0.2.0-tags.up.sql"),
            )
            .down_sql(include_str!("../migrations/0.2.0-tags.down.sql")),
        )
        .migration(
            Migration::code(
                "0.3.0",
                "backfill slugs and word counts",
                "stats-v1",
                backfill_stats,
            )
            .down_code("stats-v1", drop_stats),
        )
}

wasmig_guest::export_plugin!(plugin);
