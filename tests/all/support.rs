//! A temporary plugins directory and database, and ways to drive and inspect them.

use rusqlite::Connection;
use std::path::PathBuf;
use std::process::{Command, Output};

pub use wasmig_test_artifacts as artifacts;

/// A plugins directory and a database file in a fresh temporary directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub plugins: PathBuf,
    pub db: PathBuf,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        let db = dir.path().join("app.db");
        Env { dir, plugins, db }
    }

    /// Copies a compiled plugin into the plugins directory under `file_name`.
    pub fn add(&self, artifact: &str, file_name: &str) -> PathBuf {
        let to = self.plugins.join(file_name);
        std::fs::copy(artifact, &to).unwrap();
        to
    }

    /// Writes arbitrary bytes as a plugin file.
    pub fn add_bytes(&self, bytes: &[u8], file_name: &str) -> PathBuf {
        let to = self.plugins.join(file_name);
        std::fs::write(&to, bytes).unwrap();
        to
    }

    pub fn remove(&self, file_name: &str) {
        std::fs::remove_file(self.plugins.join(file_name)).unwrap();
    }

    /// The real binary, run in this directory with `--plugins` and `--db` pointing here.
    pub fn command(&self) -> Command {
        let mut cmd = wasmig();
        cmd.current_dir(self.dir.path())
            .arg("--plugins")
            .arg(&self.plugins)
            .arg("--db")
            .arg(&self.db);
        cmd
    }

    /// Runs the real binary with `--plugins` and `--db` pointing here.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs the binary, asserts it succeeded, returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "wasmig {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the binary, asserts it failed, returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "wasmig {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// Runs the binary with `--json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    pub fn conn(&self) -> Connection {
        Connection::open(&self.db).unwrap()
    }

    /// The first column of every row `sql` returns.
    pub fn column<T: rusqlite::types::FromSql>(&self, sql: &str) -> Vec<T> {
        self.conn()
            .prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// The one value `sql` returns.
    pub fn value<T: rusqlite::types::FromSql>(&self, sql: &str) -> T {
        self.conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// The database's table names, sorted (none if the file does not exist yet).
    pub fn tables(&self) -> Vec<String> {
        if !self.db.exists() {
            return vec![];
        }
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// (plugin, version, direction, outcome, error) of every ledger row, in order.
    pub fn ledger(&self) -> Vec<(String, String, String, String, Option<String>)> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT plugin, version, direction, outcome, error FROM _wasmig_ledger ORDER BY id",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// Every schema object and every row of every table, as text: two dumps are equal when
    /// nothing in the database changed.
    pub fn dump(&self) -> String {
        if !self.db.exists() {
            return String::new();
        }
        dump(&self.conn(), &[])
    }

    /// The dump without the ledger, which every attempt appends to.
    pub fn dump_except_ledger(&self) -> String {
        dump(&self.conn(), &["_wasmig_ledger"])
    }

    /// Writes the policy file `wasmig.toml` in the directory the binary runs in.
    pub fn policy(&self, toml: &str) {
        std::fs::write(self.dir.path().join("wasmig.toml"), toml).unwrap();
    }

    pub fn host(&self) -> wasmig::Host {
        wasmig::Host::builder()
            .plugins_dir(&self.plugins)
            .database(&self.db)
            .cache_dir(Some(cache_dir()))
            .build()
            .unwrap()
    }
}

/// The real binary, with the tests' compile cache and no inherited log settings.
pub fn wasmig() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmig"));
    cmd.env_remove("RUST_LOG")
        .env_remove("WASMIG_PLUGINS")
        .env_remove("WASMIG_DB")
        .env_remove("WASMIG_CONFIG")
        .env("WASMIG_CACHE_DIR", cache_dir());
    cmd
}

/// The compile cache the tests share: inside the target directory, not the user's cache.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

pub fn dump(conn: &Connection, skip: &[&str]) -> String {
    let mut out = String::new();
    let mut objects = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
        .unwrap();
    let objects: Vec<(String, String, String, Option<String>)> = objects
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (kind, name, _table, sql) in &objects {
        if skip.contains(&name.as_str()) {
            continue;
        }
        out.push_str(&format!(
            "{kind} {name}: {}\n",
            sql.as_deref().unwrap_or("")
        ));
        if kind == "table" {
            let mut rows = conn
                .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY 1"))
                .unwrap();
            let n = rows.column_count();
            let rows: Vec<String> = rows
                .query_map([], |r| {
                    let mut cells = Vec::new();
                    for i in 0..n {
                        cells.push(format!("{:?}", r.get_ref(i)?));
                    }
                    Ok(cells.join(" | "))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for row in rows {
                out.push_str(&format!("  {row}\n"));
            }
        }
    }
    out
}
