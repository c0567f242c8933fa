//! wasmig's own tables across versions: a database written by an older wasmig is upgraded in
//! place with nothing lost; one written by a newer wasmig is refused, untouched.

use crate::support::{Env, artifacts};

/// Turns the tables of a fresh database back into version 1's layout, where components and
/// manifests were `WITHOUT ROWID` tables.
fn downgrade_to_version_1(env: &Env) {
    env.conn()
        .execute_batch(
            "BEGIN;
             CREATE TABLE c1 (sha256 TEXT PRIMARY KEY, bytes BLOB NOT NULL) WITHOUT ROWID;
             INSERT INTO c1 SELECT sha256, bytes FROM _wasmig_component;
             DROP TABLE _wasmig_component;
             ALTER TABLE c1 RENAME TO _wasmig_component;
             CREATE TABLE m1 (sha256 TEXT PRIMARY KEY, manifest TEXT NOT NULL) WITHOUT ROWID;
             INSERT INTO m1 SELECT sha256, manifest FROM _wasmig_manifest;
             DROP TABLE _wasmig_manifest;
             ALTER TABLE m1 RENAME TO _wasmig_manifest;
             ALTER TABLE _wasmig_ledger DROP COLUMN applied_by;
             UPDATE _wasmig_meta SET value = '1' WHERE key = 'schema_version';
             COMMIT;",
        )
        .unwrap();
}

fn table_sql(env: &Env, name: &str) -> String {
    env.conn()
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
}

fn host_schema_version(env: &Env) -> String {
    env.conn()
        .query_row(
            "SELECT value FROM _wasmig_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// (sha256, length of bytes) of every stored component, and (sha256, manifest) of every
/// stored manifest.
type Stored = (Vec<(String, i64)>, Vec<(String, String)>);

/// What the host tables hold.
fn stored(env: &Env) -> Stored {
    let conn = env.conn();
    let components = conn
        .prepare("SELECT sha256, length(bytes) FROM _wasmig_component ORDER BY sha256")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let manifests = conn
        .prepare("SELECT sha256, manifest FROM _wasmig_manifest ORDER BY sha256")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (components, manifests)
}

#[test]
fn a_fresh_database_gets_the_current_layout() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.ok(&["up"]);
    assert_eq!(host_schema_version(&env), "3");
    assert!(!table_sql(&env, "_wasmig_component").contains("WITHOUT ROWID"));
    assert!(!table_sql(&env, "_wasmig_manifest").contains("WITHOUT ROWID"));
}

#[test]
fn a_version_2_database_is_upgraded_and_its_ledger_says_who_ran_the_new_steps() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    env.ok(&["up"]);
    env.conn()
        .execute_batch(
            "ALTER TABLE _wasmig_ledger DROP COLUMN applied_by;
             UPDATE _wasmig_meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
    // Read as it is: the old rows say nobody.
    let history = env.json(&["history"]);
    assert_eq!(history[0]["applied_by"], "", "{history:#}");
    assert_eq!(host_schema_version(&env), "2");
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    let out = env
        .command()
        .args(["up"])
        .env("USER", "deployer")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(host_schema_version(&env), "3");
    let history = env.json(&["history"]);
    let by: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["applied_by"].as_str().unwrap())
        .collect();
    assert_eq!(by[0], "", "{history:#}");
    assert!(by[1].starts_with("deployer@"), "{history:#}");
}

#[test]
fn a_version_1_database_is_upgraded_with_nothing_lost() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOTES, "notes.wasm");
    env.ok(&["up"]);
    downgrade_to_version_1(&env);
    assert!(table_sql(&env, "_wasmig_component").contains("WITHOUT ROWID"));
    let before = stored(&env);
    let ledger = env.ledger();

    // A read does not upgrade; the next run that writes does, before anything else.
    env.ok(&["status"]);
    assert_eq!(host_schema_version(&env), "1");
    env.ok(&["up"]);
    assert_eq!(host_schema_version(&env), "3");
    assert!(!table_sql(&env, "_wasmig_component").contains("WITHOUT ROWID"));
    assert!(!table_sql(&env, "_wasmig_manifest").contains("WITHOUT ROWID"));
    assert_eq!(stored(&env), before);
    assert_eq!(
        env.ledger(),
        ledger,
        "a no-op up after the upgrade records nothing"
    );

    // The stored components still run: rolling back works without the plugin files.
    env.remove("notes.wasm");
    env.remove("accounts.wasm");
    env.ok(&["uninstall", "notes"]);
    env.ok(&["uninstall", "accounts"]);
    assert!(
        !env.tables()
            .iter()
            .any(|t| t.starts_with("notes__") || t.starts_with("accounts__"))
    );
}

#[test]
fn a_database_from_a_newer_wasmig_is_refused_untouched() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.ok(&["up"]);
    env.conn()
        .execute(
            "UPDATE _wasmig_meta SET value = '9' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    env.add(artifacts::NOTES, "notes.wasm");
    let dump = env.dump();
    for command in ["up", "status", "validate", "history"] {
        let err = env.fails(&[command]);
        assert!(
            err.contains("wasmig's tables are at version 9") && err.contains("newer wasmig"),
            "{command}: {err}"
        );
    }
    assert_eq!(env.dump(), dump);
}

#[test]
fn a_run_leaves_the_journal_mode_as_it_found_it_and_no_journal_file() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.ok(&["up"]);
    let journal = env.db.with_extension("db-journal");
    assert!(!journal.exists(), "a rollback journal was left behind");
    let mode = |env: &Env| -> String {
        env.conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(mode(&env), "delete");

    // A WAL database stays in WAL mode.
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.conn()
        .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    env.ok(&["up"]);
    assert_eq!(mode(&env), "wal");
    assert_eq!(env.ledger().len(), 2);
}

#[test]
fn sqlite_is_built_without_the_schema_hash_cap() {
    // .cargo/config.toml sets LIBSQLITE3_FLAGS: without it SQLite's schema hash tables stay at
    // 64 buckets and opening a database of 1,000 plugins' tables is quadratic.
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    let mut stmt = conn.prepare("PRAGMA compile_options").unwrap();
    let options: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        options.iter().any(|o| o == "MALLOC_SOFT_LIMIT=0"),
        "{options:?}"
    );
}
