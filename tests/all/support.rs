//! A temporary plugins directory and database, and ways to drive and inspect them.

use rusqlite::Connection;
use std::path::PathBuf;
use std::process::{Command, Output};

pub use wasmig_test_artifacts as artifacts;

/// A plugins directory and a database: a SQLite file in a fresh temporary directory, or a
/// fresh PostgreSQL database ([`Env::postgres`]), whose URL `db` then holds.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub plugins: PathBuf,
    pub db: PathBuf,
    pub pg: Option<PgDb>,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        let db = dir.path().join("app.db");
        Env {
            dir,
            plugins,
            db,
            pg: None,
        }
    }

    /// A fresh PostgreSQL database instead of the SQLite file.
    pub fn postgres() -> Self {
        Self::on_postgres(PgDb::create(false))
    }

    /// [`Env::postgres`] for a test that restarts the server: no other test runs meanwhile.
    pub fn postgres_alone() -> Self {
        Self::on_postgres(PgDb::create(true))
    }

    fn on_postgres(pg: PgDb) -> Self {
        let mut env = Env::new();
        env.db = PathBuf::from(&pg.url);
        env.pg = Some(pg);
        env
    }

    /// One of wasmig's own tables (`applied`, `ledger`, …), as this database names it.
    pub fn host_table(&self, name: &str) -> String {
        match self.pg {
            Some(_) => format!("wasmig.{name}"),
            None => format!("_wasmig_{name}"),
        }
    }

    /// Runs the application's statements (the plugins' tables unqualified, on PostgreSQL
    /// through a search path of every plugin's schema).
    pub fn exec(&self, sql: &str) {
        match &self.pg {
            Some(pg) => pg
                .client()
                .batch_execute(sql)
                .unwrap_or_else(|e| panic!("{sql}: {e:?}")),
            None => self.conn().execute_batch(sql).unwrap(),
        }
    }

    /// Rows of a query, each as its text columns joined by `|` (NULL as `NULL`), on
    /// either database.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        match &self.pg {
            Some(pg) => pg.rows(sql),
            None => {
                let conn = self.conn();
                let mut stmt = conn.prepare(sql).unwrap();
                let n = stmt.column_count();
                stmt.query_map([], |r| {
                    Ok((0..n)
                        .map(|i| match r.get_ref(i).unwrap() {
                            rusqlite::types::ValueRef::Null => "NULL".to_string(),
                            rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                            rusqlite::types::ValueRef::Real(f) => f.to_string(),
                            rusqlite::types::ValueRef::Text(t) => {
                                String::from_utf8_lossy(t).into_owned()
                            }
                            rusqlite::types::ValueRef::Blob(b) => hex::encode(b),
                        })
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
            }
        }
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

    /// Starts the real binary with `--plugins` and `--db` pointing here, its stdout and
    /// stderr piped, and returns at once (`wait_with_output` collects them).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs the real binary with `args`, its output dropped, and samples its peak resident
    /// memory (`VmHWM`, KiB) until it ends.
    pub fn peak_memory(&self, args: &[&str]) -> (std::process::ExitStatus, u64) {
        let mut child = self
            .command()
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let status_file = format!("/proc/{}/status", child.id());
        let mut peak_kib: u64 = 0;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if let Ok(s) = std::fs::read_to_string(&status_file)
                && let Some(kib) = s
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            {
                peak_kib = kib;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        (status, peak_kib)
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
    /// The JSON lines a real `up`, `down` or `uninstall` prints with `--json`, one object
    /// each; `run`'s output, whatever its exit status.
    pub fn json_lines(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.run(&args);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

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
        if let Some(pg) = &self.pg {
            return pg.rows(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT LIKE 'pg\\_%' \
                 AND n.nspname NOT IN ('information_schema', 'wasmig') ORDER BY 1",
            );
        }
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
        if let Some(pg) = &self.pg {
            let exists = pg.rows("SELECT to_regclass('wasmig.ledger') IS NOT NULL");
            if exists != ["t"] {
                return Vec::new();
            }
            let mut client = pg.client();
            return client
                .query(
                    "SELECT plugin, version, direction, outcome, error FROM wasmig.ledger \
                     ORDER BY id",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                .collect();
        }
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
        if let Some(pg) = &self.pg {
            return pg.dump();
        }
        if !self.db.exists() {
            return String::new();
        }
        dump(&self.conn(), &[])
    }

    /// The dump without the ledger, which every attempt appends to (on PostgreSQL with
    /// wasmig's other tables, as on SQLite; the step tokens come and go with every step).
    pub fn dump_except_ledger(&self) -> String {
        if let Some(pg) = &self.pg {
            let mut out = pg.dump();
            for table in pg.rows(
                "SELECT quote_ident(c.relname) FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'wasmig' AND c.relkind = 'r'
                    AND c.relname NOT IN ('ledger', 'step_token')
                  ORDER BY 1",
            ) {
                out.push('\n');
                out.push_str(
                    &pg.rows(&format!(
                        "SELECT '{table}', t::text FROM wasmig.{table} t ORDER BY 2"
                    ))
                    .join("\n"),
                );
            }
            return out;
        }
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

/// A PostgreSQL database of the test's own on `WASMIG_TEST_POSTGRES` (a role with
/// CREATEROLE, CREATEDB and SET on `temp_file_limit`; `.ci/postgres` sets one up), dropped
/// with its plugin roles at the end. Without the variable a test fails: never skipped.
pub struct PgDb {
    pub url: String,
    pub name: String,
    base: String,
    /// Held for the test's length: shared by the tests, exclusive for one that restarts the
    /// server.
    _server: ServerUse,
}

/// The tests share the server; one that restarts it runs alone.
static SERVER: std::sync::RwLock<()> = std::sync::RwLock::new(());

enum ServerUse {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

impl PgDb {
    fn create(alone: bool) -> Self {
        let server_use = if alone {
            ServerUse::Alone(SERVER.write().unwrap_or_else(|e| e.into_inner()))
        } else {
            ServerUse::Shared(SERVER.read().unwrap_or_else(|e| e.into_inner()))
        };
        let base = std::env::var("WASMIG_TEST_POSTGRES").expect(
            "the PostgreSQL tests need WASMIG_TEST_POSTGRES=postgres://user:password@host/db, \
             a role with CREATEROLE, CREATEDB and SET on temp_file_limit (`.ci/postgres` sets \
             up this machine's server and prints the URL)",
        );
        let mut bytes = [0u8; 6];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").unwrap(),
            &mut bytes,
        )
        .unwrap();
        let name = format!("wasmig_t_{}", hex::encode(bytes));
        let mut server = postgres::Client::connect(&base, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot reach WASMIG_TEST_POSTGRES ({base}): {e}"));
        server
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let (prefix, _) = base.rsplit_once('/').expect("a URL with a database");
        PgDb {
            url: format!("{prefix}/{name}"),
            name,
            base,
            _server: server_use,
        }
    }

    /// A connection as the operator's role, with every plugin's schema on its search path:
    /// the application, which names the plugins' tables unqualified.
    pub fn client(&self) -> postgres::Client {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        let schemas: Vec<String> = client
            .query(
                "SELECT quote_ident(nspname) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' \
                 AND nspname NOT IN ('information_schema', 'wasmig') ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        client
            .batch_execute(&format!("SET search_path = {}", schemas.join(", ")))
            .unwrap();
        client
    }

    /// Rows of a query, each as its text columns joined by `|` (NULL as `NULL`).
    pub fn rows(&self, sql: &str) -> Vec<String> {
        let rows = self
            .client()
            .simple_query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        rows.iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_string())
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect()
    }

    /// The plugins' objects and rows, to compare before and after.
    pub fn dump(&self) -> String {
        let mut out = self.rows(
            "SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'wasmig')
                AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
              ORDER BY 1",
        );
        for table in self.rows(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND n.nspname NOT IN
                    ('pg_catalog', 'information_schema', 'pg_toast', 'wasmig')
              ORDER BY 1",
        ) {
            out.extend(self.rows(&format!(
                "SELECT '{}', t::text FROM {table} t ORDER BY 2",
                table.replace('\'', "''")
            )));
        }
        out.join("\n")
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let Ok(mut server) = postgres::Client::connect(&self.base, postgres::NoTls) else {
            return;
        };
        let _ = server.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
        let roles = server
            .query(
                "SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1 OR rolname LIKE $2",
                &[
                    &format!("wasmig/{}/%", self.name),
                    &format!("wasmig:{}/%", self.name),
                ],
            )
            .unwrap_or_default();
        for role in roles {
            let role: String = role.get(0);
            let _ = server.batch_execute(&format!("DROP ROLE \"{role}\""));
        }
    }
}

/// A test that runs on SQLite and on PostgreSQL: `on_both!(fn name(env) { … })` makes the
/// module `name` with the tests `sqlite` and `postgres`, each giving the body a fresh [`Env`].
#[macro_export]
macro_rules! on_both {
    ($(#[$meta:meta])* fn $name:ident($env:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($env: $crate::support::Env) $body

            #[test]
            fn sqlite() {
                body($crate::support::Env::new())
            }

            #[test]
            fn postgres() {
                body($crate::support::Env::postgres())
            }
        }
    };
}
