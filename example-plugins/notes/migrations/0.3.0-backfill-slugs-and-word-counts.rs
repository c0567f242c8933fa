//! Derives a stats row (a slug and a word count) for every existing note: a backfill, in Rust.

use wasmig_guest::{Result, Tx, log, params};

/// Stands for this code in the step's checksum: change it when what the code does changes.
pub const REVISION: &str = "stats-v1";

pub fn up(tx: &Tx) -> Result<()> {
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

pub fn down(tx: &Tx) -> Result<()> {
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
