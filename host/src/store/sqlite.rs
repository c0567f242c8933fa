//! The SQLite backend: one connection holds the step's transaction, the plugin's scoped
//! statements and the host's ledger writes.

mod bounded_functions;
mod left_behind;
mod temp_quota;
mod watchdog;

use watchdog::Watchdog;
pub use watchdog::{Overrun, OverrunHandler};

use super::authorizer::{SharedAuthState, authorizer, first_keyword, is_autoindex_of};
use super::schema_pages::{self, PageKeys, READ_PAGE, Stored, read_page};
use super::sql_text::{self, Token};
use super::{
    Backend, BackendOptions, Direction, LedgerEntry, Outcome, Rows, SchemaMark, SchemaObject,
    Scope, SqlError, SqlLimits, StepCheck, Value,
};
use crate::planner::{AppliedStep, State};
use crate::{Error, Result};
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, ToSql, params};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The host's tables. Their names start with `_`, which no plugin namespace does.
const HOST_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _wasmig_ledger (
    id               INTEGER PRIMARY KEY,
    plugin           TEXT NOT NULL,
    plugin_version   TEXT NOT NULL,
    version          TEXT NOT NULL,
    description      TEXT NOT NULL,
    direction        TEXT NOT NULL CHECK (direction IN ('up', 'down')),
    outcome          TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
    error            TEXT,
    started_at_ms    INTEGER NOT NULL,
    duration_us      INTEGER NOT NULL,
    checksum         TEXT NOT NULL,
    component_sha256 TEXT NOT NULL,
    wasmig_version   TEXT NOT NULL,
    statements       TEXT NOT NULL,
    note             TEXT
);
CREATE INDEX IF NOT EXISTS _wasmig_ledger_by_plugin ON _wasmig_ledger (plugin, id);
CREATE TABLE IF NOT EXISTS _wasmig_applied (
    plugin           TEXT NOT NULL,
    version          TEXT NOT NULL,
    checksum         TEXT NOT NULL,
    component_sha256 TEXT NOT NULL,
    plugin_version   TEXT NOT NULL,
    applied_at_ms    INTEGER NOT NULL,
    ledger_id        INTEGER NOT NULL REFERENCES _wasmig_ledger (id),
    PRIMARY KEY (plugin, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _wasmig_component (
    sha256 TEXT PRIMARY KEY,
    bytes  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS _wasmig_manifest (
    sha256   TEXT PRIMARY KEY,
    manifest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _wasmig_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO _wasmig_meta (key, value) VALUES ('schema_version', '2');
";

/// The version of the host's tables this wasmig writes (`_wasmig_meta.schema_version`).
const HOST_SCHEMA_VERSION: i64 = 2;

/// From version 1: components and manifests were `WITHOUT ROWID` tables, which keep each
/// blob in the primary key's b-tree, so every lookup by SHA-256 read whole components from
/// disk. As rowid tables, the key's index holds only the SHA-256.
const HOST_SCHEMA_1_TO_2: &str = "
CREATE TABLE _wasmig_component_v2 (
    sha256 TEXT PRIMARY KEY,
    bytes  BLOB NOT NULL
);
INSERT INTO _wasmig_component_v2 (sha256, bytes) SELECT sha256, bytes FROM _wasmig_component;
DROP TABLE _wasmig_component;
ALTER TABLE _wasmig_component_v2 RENAME TO _wasmig_component;
CREATE TABLE _wasmig_manifest_v2 (
    sha256   TEXT PRIMARY KEY,
    manifest TEXT NOT NULL
);
INSERT INTO _wasmig_manifest_v2 (sha256, manifest) SELECT sha256, manifest FROM _wasmig_manifest;
DROP TABLE _wasmig_manifest;
ALTER TABLE _wasmig_manifest_v2 RENAME TO _wasmig_manifest;
UPDATE _wasmig_meta SET value = '2' WHERE key = 'schema_version';
";

/// The longest a plugin's statement text may be, in bytes.
const PLUGIN_MAX_SQL_LENGTH: i32 = 1 << 20;
/// Prepared statements kept per connection: the host's dozen, and room for a plugin's.
const STATEMENT_CACHE_CAPACITY: usize = 64;
/// The largest string or blob a plugin's statement may make, in bytes.
const PLUGIN_MAX_VALUE_LENGTH: i32 = 16 << 20;
/// The most arguments of one function call in a plugin's statement (SQLite's limit before
/// 3.48): one `json_extract` walks a large value once per path, in one call.
const PLUGIN_MAX_FUNCTION_ARGS: i32 = 127;
/// What the allocator keeps beside each allocation, counted in a query's result.
const ALLOCATION_OVERHEAD: usize = 16;
/// The longest LIKE or GLOB pattern of a plugin's statement, in bytes: matching recurses once
/// per wildcard, on the host's stack.
const PLUGIN_MAX_LIKE_PATTERN_LENGTH: i32 = 1000;

/// The connection's settings while the host works, which `enter_plugin` changes.
struct HostSettings {
    sql_len: i32,
    value_len: i32,
    like_len: i32,
    function_args: i32,
    max_pages: i64,
}

/// The plugin's last `execute` statement, kept prepared while the plugin runs it again and
/// again (a loop of inserts): a call with the same text binds and runs it without a trip
/// through the statement cache. It was prepared (and authorized) in the running step, under
/// the step's cache key; it goes back to the cache when the plugin runs another statement,
/// and is dropped when the step's call ends, so no other step or host code ever runs it.
struct HeldStatement {
    text: String,
    /// Borrows [`SqliteBackend::conn`]: see [`SqliteBackend::hold`].
    stmt: rusqlite::CachedStatement<'static>,
}

// SAFETY: the statement borrows the connection of the backend that holds it, and moves between
// threads only inside that backend, together with the connection (which is `Send`).
unsafe impl Send for HeldStatement {}

pub(crate) struct SqliteBackend {
    /// Dropped before `conn` (declared first, and taken in `Drop`).
    held: Option<HeldStatement>,
    /// Boxed: [`HeldStatement`] borrows it, so its address must not change when the backend
    /// moves.
    conn: Box<Connection>,
    path: PathBuf,
    options: BackendOptions,
    in_transaction: bool,
    auth: SharedAuthState,
    /// The running plugin's scope and bounds; `None` while the host itself works.
    plugin: Option<(Scope, SqlLimits)>,
    /// What `enter_plugin` changed, to restore.
    host_settings: Option<HostSettings>,
    /// Interrupts the running plugin statement at the step's deadline.
    watchdog: Watchdog,
    /// The deadline of the last step the connection ran, which its schema check keeps to.
    step_deadline: Option<Instant>,
    /// The host's tables are known to exist (plugins cannot drop them).
    host_tables: bool,
    /// What the last schema scan found (see [`SchemaScan`]).
    scan_out: Arc<Mutex<Option<ScanOut>>>,
    /// The schema as the last step left it, for the plugin it was scanned for.
    last_mark: Option<(String, SchemaMark)>,
    /// The connection switched a `DELETE` rollback journal to `TRUNCATE`, to switch back when
    /// it closes.
    truncating: bool,
    /// Counts plugin steps on this connection.
    step_serial: u64,
    /// The cache key of a plugin statement is this step's prefix, then the statement; built
    /// in place, without formatting, once per call.
    key: std::cell::RefCell<String>,
    key_prefix_len: usize,
    /// The last plugin statement that passed the keyword check.
    last_allowed: String,
    /// `PRAGMA page_size` and the host's `PRAGMA max_page_count`, read at the first step:
    /// neither changes while the connection is open (plugins cannot set them).
    page_limits: Option<(i64, i64)>,
    /// The leaves of main's `sqlite_schema` as the last scan found them (see
    /// [`SqliteBackend::scan_main_by_pages`]).
    page_memo: Option<PageMemo>,
    /// Whether this SQLite has the `sqlite_dbpage` virtual table; `None`: not asked yet.
    dbpage: Option<bool>,
    page_keys: PageKeys,
    /// Keys of the schema scan's row digest, shared by the SQL aggregate and the rows read
    /// from pages.
    row_keys: foldhash::quality::RandomState,
    page_buffers: std::cell::RefCell<schema_pages::Buffers>,
    /// The running step's deadline, for the functions that check it (see
    /// [`bounded_functions`]).
    deadline: bounded_functions::Deadline,
    /// The VFS the connection opens its files through, which bounds its temporary files.
    /// Last: dropped after the connection.
    temp_vfs: temp_quota::TempVfs,
}

/// What the last scan of main's schema table found on each of its leaf pages, keyed by the
/// digest of the leaf's bytes (`schema_pages::Leaf::bytes`): a leaf with the same bytes and
/// overflow pages holds the same rows, whatever its page number and whatever happened in
/// between (a rollback included).
type PageMemo = foldhash::HashMap<u64, LeafPart>;

/// One leaf's share of a schema scan.
#[derive(Debug, Clone, Default)]
struct LeafPart {
    /// The leaf's shape, for the next walk (see `schema_pages::KnownLeaf`).
    overflow: u64,
    chains: Vec<(u32, u32)>,
    rowids: Option<(i64, i64)>,
    /// Digest and number of every row on the leaf.
    all: (u64, u64),
    /// The lowest and highest `tbl_name` there (lowercase), and whether `sqlite_sequence` is
    /// there (every plugin's).
    tables: Option<(Vec<u8>, Vec<u8>)>,
    sequence: bool,
    /// The namespace the split below is for, and the split: the digest of the rows that are
    /// not its own, and its own rows.
    own: String,
    foreign: (u64, u64),
    owned: Vec<SchemaObject>,
}

impl LeafPart {
    fn from_scan(own: &str, out: ScanOut) -> LeafPart {
        LeafPart {
            overflow: 0,
            chains: Vec::new(),
            rowids: None,
            all: (out.all_sum, out.count + out.owned.len() as u64),
            tables: out.tables,
            sequence: out.sequence,
            own: own.to_string(),
            foreign: (out.sum, out.count),
            owned: out.owned,
        }
    }

    /// Whether namespace `own` (lowercase) may own a row here: only a row whose `tbl_name`
    /// starts with it can be, and all such names sort between `own` itself and the first name
    /// past its prefix.
    fn holds_rows_of(&self, own: &str) -> bool {
        let own = own.as_bytes();
        self.sequence
            || self.tables.as_ref().is_some_and(|(lo, hi)| {
                hi.as_slice() >= own && &lo[..lo.len().min(own.len())] <= own
            })
    }

    /// The split for another namespace, when the leaf holds none of its rows: every row is
    /// foreign to it.
    fn respan(&mut self, own: &str) -> bool {
        if self.own == own {
            return true;
        }
        if self.holds_rows_of(own) {
            return false;
        }
        self.own = own.to_string();
        self.foreign = self.all;
        // Not `clear`: the memo keeps every leaf, and a cleared vector keeps its buffer.
        self.owned = Vec::new();
        true
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        self.held = None;
        if self.truncating {
            if self.in_transaction {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            // Back to the database's own mode; this also removes the empty journal file. If
            // it cannot (another process holds a lock), an empty journal is harmless.
            let _ = self
                .conn
                .query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()));
        }
    }
}

fn text(row: &rusqlite::Row<'_>, i: usize) -> String {
    row.get(i).unwrap_or_default()
}

/// Objects created, altered or dropped between two sorted lists.
fn diff<'a>(
    before: &'a [SchemaObject],
    after: &'a [SchemaObject],
) -> Vec<(&'static str, &'a SchemaObject)> {
    let key = |o: &SchemaObject| (o.schema.clone(), o.kind.clone(), o.name.to_lowercase());
    let old: std::collections::BTreeMap<_, _> = before.iter().map(|o| (key(o), o)).collect();
    let new: std::collections::BTreeMap<_, _> = after.iter().map(|o| (key(o), o)).collect();
    let mut changes = Vec::new();
    for (k, o) in &new {
        match old.get(k) {
            None => changes.push(("created", *o)),
            Some(prev) if prev != o => changes.push(("altered", *o)),
            Some(_) => {}
        }
    }
    for (k, o) in &old {
        if !new.contains_key(k) {
            changes.push(("dropped", *o));
        }
    }
    changes
}

fn owned_by(scope: &Scope, o: &SchemaObject) -> bool {
    if o.name.eq_ignore_ascii_case("sqlite_sequence") {
        return true;
    }
    let name_ok = scope.owns(&o.name) || (o.kind == "index" && is_autoindex_of(&o.name, &o.table));
    name_ok && scope.owns(&o.table)
}

/// The SQL aggregate that scans a schema table for [`SchemaMark`]s. Registered on the host's
/// connection only for direct use (`SQLITE_DIRECTONLY`: no trigger or view can call it) and
/// denied to plugins by the authorizer.
pub(crate) const SCAN_FUNCTION: &str = "wasmig_schema_scan";

/// What one scan of a schema table found.
#[derive(Debug, Default)]
struct ScanOut {
    /// The scope's namespace prefix and the schema's name: the same for every row, so read
    /// from the first row only.
    own: Vec<u8>,
    schema: String,
    /// The scope's own objects, in full.
    owned: Vec<SchemaObject>,
    /// Order-independent digest (wrapping sum of keyed row hashes) of every other object.
    sum: u64,
    count: u64,
    /// The same digest over every row, the scope's own included.
    all_sum: u64,
    /// The lowest and highest `tbl_name`, lowercase, and whether `sqlite_sequence` is there:
    /// which other namespaces can own rows here (see [`LeafPart::holds_rows_of`]).
    tables: Option<(Vec<u8>, Vec<u8>)>,
    sequence: bool,
}

/// `wasmig_schema_scan(own, schema, type, name, tbl_name, sql)` over the rows of one schema
/// table: keeps the rows owned by the namespace `own` and digests the others. The result goes
/// to a slot the backend reads right after the statement; the SQL value is 0.
struct SchemaScan {
    /// Keys of the digest: random per process, so no plugin can aim for a collision.
    keys: foldhash::quality::RandomState,
    out: Arc<Mutex<Option<ScanOut>>>,
}

impl rusqlite::functions::Aggregate<ScanOut, i64> for SchemaScan {
    fn init(&self, ctx: &mut rusqlite::functions::Context<'_>) -> rusqlite::Result<ScanOut> {
        let raw = |i| match ctx.get_raw(i) {
            ValueRef::Text(t) => t,
            _ => &[][..],
        };
        Ok(ScanOut {
            own: raw(0).to_vec(),
            schema: String::from_utf8_lossy(raw(1)).into_owned(),
            ..ScanOut::default()
        })
    }

    fn step(
        &self,
        ctx: &mut rusqlite::functions::Context<'_>,
        acc: &mut ScanOut,
    ) -> rusqlite::Result<()> {
        let raw = |i| match ctx.get_raw(i) {
            ValueRef::Text(t) => t,
            _ => &[][..],
        };
        let sql = match ctx.get_raw(5) {
            ValueRef::Text(t) => Some(t),
            _ => None,
        };
        acc.fold(&self.keys, raw(2), raw(3), raw(4), sql);
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut rusqlite::functions::Context<'_>,
        acc: Option<ScanOut>,
    ) -> rusqlite::Result<i64> {
        *self.out.lock().unwrap_or_else(|p| p.into_inner()) = acc;
        Ok(0)
    }
}

impl ScanOut {
    /// Takes one row of a schema table (`type`, `name`, `tbl_name`, `sql`; a value that is not
    /// text counts as empty, and `sql` as NULL): the scope's own rows in full, the others into
    /// the digest.
    fn fold(
        &mut self,
        keys: &foldhash::quality::RandomState,
        kind: &[u8],
        name: &[u8],
        table: &[u8],
        sql: Option<&[u8]>,
    ) {
        let row_hash = keys.hash_one((kind, name, table, sql.unwrap_or_default()));
        self.all_sum = self.all_sum.wrapping_add(row_hash);
        self.sequence |= name == b"sqlite_sequence";
        match &mut self.tables {
            None => self.tables = Some((table.to_ascii_lowercase(), table.to_ascii_lowercase())),
            Some((lo, hi)) => {
                if cmp_lowercase(table, lo).is_lt() {
                    *lo = table.to_ascii_lowercase();
                }
                if cmp_lowercase(table, hi).is_gt() {
                    *hi = table.to_ascii_lowercase();
                }
            }
        }
        let own = self.own.as_slice();
        let owns = |s: &[u8]| s.len() > own.len() && s[..own.len()].eq_ignore_ascii_case(own);
        let is_owned = name == b"sqlite_sequence"
            || (owns(table)
                && (owns(name) || (kind == b"index" && name.starts_with(b"sqlite_autoindex_"))));
        if is_owned {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            self.owned.push(SchemaObject {
                schema: self.schema.clone(),
                kind: text(kind),
                name: text(name),
                table: text(table),
                sql: sql.map(text),
            });
        } else {
            // The schema's name is not hashed: each schema's digest is kept apart.
            self.sum = self.sum.wrapping_add(row_hash);
            self.count += 1;
        }
    }
}

/// Compares `a`, lowercased, with `b` (already lowercase), without allocating.
fn cmp_lowercase(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.iter().map(u8::to_ascii_lowercase).cmp(b.iter().copied())
}

/// Statements a plugin may never run, by first keyword, with the reason.
const DENIED_STATEMENTS: &[(&str, &str)] = &[(
    "VACUUM",
    "VACUUM is not available to plugins (VACUUM INTO would write a file)",
)];

impl SqliteBackend {
    /// Opens (creating if needed) the database file. With `scratch`, opens an empty in-memory
    /// database that stands in for a file that does not exist yet (a dry run creates nothing).
    pub(crate) fn open(path: &Path, options: BackendOptions, scratch: bool) -> Result<Self> {
        let temp_vfs = temp_quota::TempVfs::register().map_err(|message| Error::Database {
            path: path.to_path_buf(),
            message,
        })?;
        let conn = Connection::open_with_flags_and_vfs(
            if scratch { Path::new(":memory:") } else { path },
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            temp_vfs.name(),
        )
        .map_err(|e| db_error(path, "cannot open", e))?;
        let watchdog = Watchdog::new(
            conn.get_interrupt_handle(),
            options.on_overrun.clone(),
            (!scratch).then(|| watchdog::abandoned_path(path)),
        );
        let mut backend = SqliteBackend {
            held: None,
            conn: Box::new(conn),
            path: path.to_path_buf(),
            options,
            in_transaction: false,
            auth: Default::default(),
            plugin: None,
            host_settings: None,
            watchdog,
            step_deadline: None,
            host_tables: false,
            scan_out: Default::default(),
            last_mark: None,
            truncating: false,
            step_serial: 0,
            key: std::cell::RefCell::new(String::new()),
            key_prefix_len: 0,
            last_allowed: String::new(),
            page_limits: None,
            page_memo: None,
            dbpage: None,
            page_keys: PageKeys::default(),
            row_keys: Default::default(),
            page_buffers: Default::default(),
            deadline: Default::default(),
            temp_vfs,
        };
        backend.harden()?;
        backend.truncate_journal()?;
        Ok(backend)
    }

    /// Settings that hold for host and plugin statements alike.
    fn harden(&mut self) -> Result<()> {
        use rusqlite::config::DbConfig;
        use rusqlite::limits::Limit;
        let c = &self.conn;
        let e = |e| db_error(&self.path, "cannot configure the connection", e);
        // No lookaside: every allocation of the connection goes to the allocator, which fails
        // them once a step's deadline has passed (`sqlite_memory::stop`) and counts them.
        // SAFETY: the connection is open and has allocated nothing from lookaside yet;
        // SQLITE_DBCONFIG_LOOKASIDE takes a buffer pointer, a slot size and a slot count.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_config(
                c.handle(),
                rusqlite::ffi::SQLITE_DBCONFIG_LOOKASIDE,
                std::ptr::null_mut::<std::ffi::c_void>(),
                0 as std::ffi::c_int,
                0 as std::ffi::c_int,
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            return Err(e(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rc),
                None,
            )));
        }
        c.busy_timeout(self.options.lock_timeout).map_err(e)?;
        // Defensive mode: no writable_schema tricks, no direct shadow-table writes.
        c.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(e)?;
        // Schema-embedded SQL (views, triggers) may not call functions with side effects.
        c.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
            .map_err(e)?;
        // A double-quoted string literal is an error, as SQLite recommends: in a plugin's
        // object, SQLite would rewrite it into a single-quoted one whenever any plugin renames
        // or drops a column (`sqlite_rename_quotefix`), a change outside that plugin's
        // namespace that the schema check refuses, so the other plugin could never migrate.
        c.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)
            .map_err(e)?;
        c.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)
            .map_err(e)?;
        c.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(e)?;
        c.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        use rusqlite::functions::FunctionFlags;
        c.create_aggregate_function(
            SCAN_FUNCTION,
            6,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY,
            SchemaScan {
                keys: self.row_keys.clone(),
                out: self.scan_out.clone(),
            },
        )
        .map_err(e)?;
        // SAFETY: the connection is open and, like every statement on it, used by the thread
        // that holds the backend.
        unsafe { bounded_functions::register(self.conn.handle(), &self.deadline) }.map_err(
            |rc| {
                db_error(
                    &self.path,
                    "cannot configure the connection",
                    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rc), None),
                )
            },
        )?;
        // Installed once: scoping it per step (SharedAuth::set_scope) expires nothing, so the
        // host's cached statements survive from step to step.
        let auth = self.auth.clone();
        self.conn
            .authorizer(Some(authorizer(auth)))
            .map_err(|e| db_error(&self.path, "cannot configure the connection", e))?;
        Ok(())
    }

    /// With a rollback journal in `DELETE` mode (SQLite's default), every transaction
    /// creates, syncs the directory for, and deletes the journal file; a run commits once per
    /// step. `TRUNCATE` keeps the file and empties it instead: the same durability, fewer
    /// filesystem operations. Only this connection's mode changes (rollback journal modes are
    /// not stored in the file), and a WAL database is left alone.
    fn truncate_journal(&mut self) -> Result<()> {
        let e = |e| db_error(&self.path, "cannot read the journal mode", e);
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(e)?;
        if mode.eq_ignore_ascii_case("delete") {
            let now: String = self
                .conn
                .query_row("PRAGMA journal_mode = TRUNCATE", [], |r| r.get(0))
                .map_err(e)?;
            self.truncating = now.eq_ignore_ascii_case("truncate");
        }
        Ok(())
    }

    /// The version of the host's tables (0: none yet); a database written by a newer wasmig
    /// is refused rather than misread.
    pub(crate) fn host_schema_version(&mut self) -> Result<i64> {
        if !self.has_host_tables()? {
            return Ok(0);
        }
        let version: String = self
            .conn
            .query_row(
                "SELECT value FROM _wasmig_meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.error("cannot read the version of wasmig's tables", e))?;
        match version.parse::<i64>() {
            Ok(v) if (1..=HOST_SCHEMA_VERSION).contains(&v) => Ok(v),
            _ => Err(Error::Database {
                path: self.path.clone(),
                message: format!(
                    "wasmig's tables are at version {version}, which this wasmig {} does not \
                     know (it writes version {HOST_SCHEMA_VERSION}): the database was written \
                     by a newer wasmig; run that one",
                    env!("CARGO_PKG_VERSION")
                ),
            }),
        }
    }

    /// The statement cache key of a plugin's statement: the statement behind a comment that
    /// names this step. The host's statements never start with it, and a statement cached in
    /// an earlier step (another plugin's, authorized for its scope) is never found again; it
    /// ages out of the cache.
    fn plugin_key(&self, statement: &str) -> std::cell::Ref<'_, String> {
        {
            let mut key = self.key.borrow_mut();
            key.truncate(self.key_prefix_len);
            key.push_str(statement);
        }
        self.key.borrow()
    }

    /// A plugin statement from the statement cache (or freshly prepared), to keep in
    /// [`SqliteBackend::held`].
    fn hold(&self, statement: &str) -> rusqlite::Result<HeldStatement> {
        let stmt = self.prepare_plugin(statement)?;
        // SAFETY: the statement borrows `*self.conn`, which is boxed (it stays put when the
        // backend moves) and is never replaced. The result goes only into `self.held`, which
        // is private and dropped before the connection (in `leave_plugin`, `enter_plugin` and
        // `Drop`), and every use reborrows it from `self` for less than `self`'s lifetime.
        let stmt = unsafe {
            std::mem::transmute::<rusqlite::CachedStatement<'_>, rusqlite::CachedStatement<'static>>(
                stmt,
            )
        };
        Ok(HeldStatement {
            text: statement.to_string(),
            stmt,
        })
    }

    /// A plugin statement from the statement cache, or prepared (and authorized) for the
    /// running step; one that reads a stored object outside the plugin's reach is discarded,
    /// never cached.
    fn prepare_plugin(&self, statement: &str) -> rusqlite::Result<rusqlite::CachedStatement<'_>> {
        let stmt = self.conn.prepare_cached(&self.plugin_key(statement))?;
        match self
            .plugin
            .as_ref()
            .map(|(scope, _)| self.check_reads(scope))
        {
            Some(Err(e)) => {
                stmt.discard();
                Err(e)
            }
            _ => Ok(stmt),
        }
    }

    /// The second half of the authorizer's check of the statement just prepared under
    /// `scope` (which the authorizer still applies): a name it read without reading a column
    /// must not be a stored table, view or table function, which the host looks up with its
    /// own rights. A CTE's name is none of these.
    fn check_reads(&self, scope: &Scope) -> rusqlite::Result<()> {
        let names = std::mem::take(&mut self.auth.lock().unresolved);
        if names.is_empty() {
            return Ok(());
        }
        let stored = names.into_iter().find(|name| self.stored(scope, name));
        match stored {
            None => Ok(()),
            Some(name) => {
                self.auth.lock().denial = Some(scope.outside("table", &name));
                Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_AUTH),
                    None,
                ))
            }
        }
    }

    fn error(&self, what: &str, e: rusqlite::Error) -> Error {
        db_error(&self.path, what, e)
    }

    /// Maps a SQLite error for the plugin, with the authorizer's reason when it denied. Any
    /// other error of a statement in `sql` that names something outside the plugin's reach
    /// (`no such table`, `views may not be indexed`, `cannot drop PRIMARY KEY column`, …)
    /// becomes the denial of that name: what the plugin learns is the same whether the object
    /// exists or not, and whatever kind of object it is.
    fn plugin_error(&self, e: rusqlite::Error, sql: &str) -> SqlError {
        if let Some(reason) = self.take_denial() {
            // The authorizer names what SQLite asked about, which may be behind what the plugin
            // named (the table under a view, an fts5 table's shadow table): the denial names
            // the plugin's own word instead.
            if let Some((scope, _)) = &self.plugin
                && reason.contains(" is outside plugin ")
                && let Some(name) = self.foreign_name(scope, sql)
            {
                return SqlError::AccessDenied(scope.outside("table", &name));
            }
            return SqlError::AccessDenied(reason);
        }
        let error = self.sqlite_error(e);
        if let (Some((scope, _)), SqlError::Syntax(message) | SqlError::Other(message)) =
            (&self.plugin, &error)
        {
            let uniform = uniform_message(scope, message);
            if uniform != *message {
                return SqlError::AccessDenied(uniform);
            }
            if let Some(name) = self.foreign_name(scope, sql) {
                return SqlError::AccessDenied(scope.outside("table", &name));
            }
        }
        error
    }

    /// A SQLite error as the plugin's typed error.
    fn sqlite_error(&self, e: rusqlite::Error) -> SqlError {
        let message = e.to_string();
        match e.sqlite_error_code() {
            Some(ErrorCode::AuthorizationForStatementDenied) => SqlError::AccessDenied(message),
            Some(ErrorCode::ConstraintViolation) => SqlError::Constraint(message),
            Some(ErrorCode::TooBig) => SqlError::Limit(message),
            Some(ErrorCode::OperationInterrupted) => SqlError::Limit(
                "the statement was still running at the step's deadline".to_string(),
            ),
            Some(ErrorCode::OutOfMemory)
                if self
                    .plugin
                    .as_ref()
                    .is_some_and(|(_, l)| Instant::now() >= l.deadline) =>
            {
                SqlError::Limit("the statement was still running at the step's deadline".into())
            }
            Some(ErrorCode::OutOfMemory) => SqlError::Limit(format!(
                "the statement needed more than the {} MiB of SQLite's memory a step may use",
                self.max_result_bytes() >> 20
            )),
            Some(ErrorCode::DiskFull) if self.temp_vfs.quota.exceeded() => {
                SqlError::Limit(format!(
                    "the step's temporary storage (TEMP tables, sorts and materialized \
                     subqueries that spill from memory) passed its quota of {} MiB",
                    self.plugin
                        .as_ref()
                        .map_or(0, |(_, l)| l.max_temp_bytes >> 20)
                ))
            }
            Some(ErrorCode::DiskFull) => SqlError::Limit(format!(
                "the step grew the database past its quota of {} MiB",
                self.plugin
                    .as_ref()
                    .map_or(0, |(_, l)| l.max_growth_bytes >> 20)
            )),
            Some(ErrorCode::Unknown) => SqlError::Syntax(message),
            _ => match e {
                rusqlite::Error::MultipleStatement => SqlError::Syntax(
                    "execute and query take one statement; use execute-script for several"
                        .to_string(),
                ),
                rusqlite::Error::ExecuteReturnedResults => SqlError::Syntax(
                    "the statement returns rows; use query instead of execute".to_string(),
                ),
                rusqlite::Error::InvalidParameterCount(given, expected) => SqlError::Syntax(
                    format!("the statement takes {expected} parameters, {given} given"),
                ),
                _ => SqlError::Other(message),
            },
        }
    }

    /// A name `sql` uses that is outside the scope's reach and could name an object: shaped
    /// like another namespace's (or the host's, or SQLite's), or naming a stored table.
    fn foreign_name(&self, scope: &Scope, sql: &str) -> Option<String> {
        sql_text::tokens(sql).into_iter().find_map(|t| {
            let name = match t {
                // A string literal too: `rtreecheck('x')`, `pragma_table_info('x')`.
                Token::Word(w) | Token::Quoted(w) | Token::Text(w) => w,
                _ => return None,
            };
            if scope.may_read(&name) {
                return None;
            }
            let lower = name.to_ascii_lowercase();
            let shaped = lower.starts_with("_wasmig_")
                || lower.starts_with("sqlite_")
                || lower.find("__").is_some_and(|i| {
                    i > 0
                        && lower[..i]
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                });
            (shaped || self.stored(scope, &name)).then_some(name)
        })
    }

    /// Whether `name` is a stored table or view, or a table function, as the host sees it;
    /// `scope` is the authorizer's scope to restore.
    fn stored(&self, scope: &Scope, name: &str) -> bool {
        self.auth.set_scope(None);
        let found = self
            .conn
            .prepare(&format!("SELECT 1 FROM \"{}\"", name.replace('"', "\"\"")))
            .is_ok();
        self.auth.set_scope(Some(scope.clone()));
        found
    }

    /// Whether a stored table is named like one of the table functions plugins may read
    /// (`json_each`, `json_tree`): a read of that name would read the table. Two hash
    /// lookups; a view of that name needs none (reading a view is authorized on the tables it
    /// reads).
    fn table_functions_shadowed(&self) -> bool {
        ["json_each", "json_tree"]
            .into_iter()
            .any(|t| self.conn.table_exists(None, t).unwrap_or(true))
    }

    /// Runs `check` (the schema check's compiling of what a step leaves behind, which the
    /// plugin's objects can make as slow as they like) on the step's clock: the progress
    /// handler, which SQLite also calls while it generates code, and the watchdog. Past the
    /// deadline the check fails, and so does the step.
    fn on_step_clock(
        &mut self,
        check: impl FnOnce(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(deadline) = self.step_deadline else {
            return check(self);
        };
        let set = self
            .conn
            .progress_handler(1, Some(move || Instant::now() >= deadline));
        self.watchdog.arm(deadline);
        let result = set
            .map_err(|e| format!("cannot bound the schema check: {e}"))
            .and_then(|()| check(self));
        self.watchdog.disarm();
        let _ = self.conn.progress_handler(0, None::<fn() -> bool>);
        match result {
            Err(_) if Instant::now() >= deadline => Err(
                "the step was still being checked at its deadline: its triggers and views take \
                 too long to compile"
                    .to_string(),
            ),
            other => other,
        }
    }

    /// Refuses a statement of `sql` (one statement or a script) that names an object outside
    /// the namespace where SQLite looks it up before it asks the authorizer (see
    /// [`sql_text::named_objects`]): checked on the names as written, before SQLite sees them,
    /// so the answer is the same whether the object exists or not.
    fn ddl_denial(&self, sql: &str) -> Option<SqlError> {
        let (scope, _) = self.plugin.as_ref()?;
        let tokens = sql_text::tokens(sql);
        sql_text::statements(&tokens)
            .into_iter()
            .flat_map(sql_text::named_objects)
            .find(|(_, name)| !scope.owns(name))
            .map(|(kind, name)| {
                SqlError::AccessDenied(if name.is_empty() {
                    format!(
                        "REINDEX and ANALYZE take a table or index of plugin {}'s own",
                        scope.plugin
                    )
                } else {
                    scope.outside(kind, &name)
                })
            })
    }

    /// Checks that a plugin step is running and the statement is not denied outright, and
    /// forgets what the authorizer saw of the previous statement.
    fn plugin_guard(&mut self, statement: &str) -> Result<(), SqlError> {
        if self.plugin.is_none() || !self.in_transaction {
            return Err(SqlError::AccessDenied(
                "SQL is only available while a migration step runs".to_string(),
            ));
        }
        // A loop runs one statement many times: checked once.
        if statement != self.last_allowed {
            let keyword = first_keyword(statement);
            if let Some((_, why)) = DENIED_STATEMENTS
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(keyword))
            {
                return Err(SqlError::AccessDenied(why.to_string()));
            }
            if let Some(denied) = self.ddl_denial(statement) {
                return Err(denied);
            }
            self.last_allowed.clear();
            self.last_allowed.push_str(statement);
        }
        self.reset_auth();
        Ok(())
    }

    /// Why the authorizer refused the last statement, if it did.
    fn take_denial(&self) -> Option<String> {
        self.auth.lock().denial.take()
    }

    fn reset_auth(&self) {
        self.auth.reset();
    }

    fn max_result_bytes(&self) -> usize {
        self.plugin.as_ref().map_or(0, |(_, l)| l.max_result_bytes)
    }

    fn release_mark(&mut self) -> Result<()> {
        self.conn
            .execute_batch("RELEASE wasmig_step")
            .map_err(|e| self.error("cannot release the step's mark", e))
    }

    fn schema_versions(&self) -> Result<[i64; 2]> {
        let read = |sql| {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
                .map_err(|e| self.error("cannot read the schema version", e))
        };
        Ok([
            read("PRAGMA main.schema_version")?,
            read("PRAGMA temp.schema_version")?,
        ])
    }

    /// Every schema object of main and temp, sorted (for naming what changed).
    fn schema_objects(&self) -> Result<Vec<SchemaObject>> {
        let mut objects = Vec::new();
        self.each_schema_row(|schema, row| {
            objects.push(SchemaObject {
                schema: schema.to_string(),
                kind: text(row, 0),
                name: text(row, 1),
                table: text(row, 2),
                sql: row.get(3)?,
            });
            Ok(())
        })?;
        objects.sort();
        Ok(objects)
    }

    /// One pass over the schema: the plugin's own objects in full, everything else as an
    /// order-independent keyed digest (rows are hashed in place, not copied out). A schema
    /// whose `schema_version` is still the one in `reuse` is taken from there, not read again
    /// (a step's DDL rarely touches temp); main is read page by page where SQLite allows it
    /// (see [`Self::scan_main_by_pages`]).
    fn scan_schema(
        &mut self,
        scope: &Scope,
        versions: [i64; 2],
        reuse: Option<&SchemaMark>,
    ) -> Result<SchemaMark> {
        let mut owned = Vec::new();
        let mut foreign = [(0u64, 0u64); 2];
        for (i, schema) in ["main", "temp"].into_iter().enumerate() {
            if let Some(mark) = reuse
                && mark.versions[i] == versions[i]
            {
                foreign[i] = mark.foreign[i];
                owned.extend(mark.owned.iter().filter(|o| o.schema == schema).cloned());
                continue;
            }
            if i == 0
                && let Some(part) = self.scan_main_by_pages(scope)?
            {
                if cfg!(debug_assertions) {
                    // Every debug build (the whole test suite) checks the page walk against
                    // reading every row.
                    let mut full = self.scan_rows(scope, schema, None)?;
                    let mut pages = part.owned.clone();
                    full.owned.sort();
                    pages.sort();
                    assert_eq!(
                        (part.foreign, pages),
                        ((full.sum, full.count), full.owned),
                        "the page-by-page schema scan disagrees with reading every row"
                    );
                }
                foreign[i] = part.foreign;
                owned.extend(part.owned);
                continue;
            }
            let out = self.scan_rows(scope, schema, None)?;
            foreign[i] = (out.sum, out.count);
            owned.extend(out.owned);
        }
        owned.sort();
        Ok(SchemaMark {
            versions,
            foreign,
            owned,
        })
    }

    /// Runs the scan aggregate over one schema table, or over the rows of one rowid range of
    /// it.
    fn scan_rows(
        &self,
        scope: &Scope,
        schema: &str,
        rowids: Option<(i64, i64)>,
    ) -> Result<ScanOut> {
        // One pass inside SQLite: rows are filtered and hashed by the aggregate, without
        // crossing back into Rust once per row.
        self.scan_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let scan = format!(
            "SELECT {SCAN_FUNCTION}(?1, '{schema}', type, name, tbl_name, sql) \
             FROM {schema}.sqlite_schema"
        );
        match rowids {
            None => self
                .conn
                .prepare_cached(&scan)
                .and_then(|mut stmt| stmt.query_row([&scope.own], |_| Ok(()))),
            Some((lo, hi)) => self
                .conn
                .prepare_cached(&format!("{scan} WHERE rowid BETWEEN ?2 AND ?3"))
                .and_then(|mut stmt| stmt.query_row(params![&scope.own, lo, hi], |_| Ok(()))),
        }
        .map_err(|e| self.error("cannot read the schema", e))?;
        Ok(self
            .scan_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default())
    }

    /// Reads the rows of one leaf page of main's schema table from the page itself (and its
    /// overflow pages), as the scan aggregate would see them. `None`: read them through SQLite
    /// (the database's text is not UTF-8, or a record does not decode).
    fn scan_leaf(&self, scope: &Scope, page: u32) -> Result<Option<ScanOut>> {
        let e = |e| db_error(&self.path, "cannot read the schema's pages", e);
        let mut stmt = self.conn.prepare_cached(READ_PAGE).map_err(e)?;
        let mut read = |pgno: u32, buf: &mut Vec<u8>| read_page(&mut stmt, pgno, buf);
        let Some(records) =
            schema_pages::leaf_records(&mut read, page, &mut self.page_buffers.borrow_mut())
                .map_err(e)?
        else {
            return Ok(None);
        };
        let mut out = ScanOut {
            own: scope.own.as_bytes().to_vec(),
            schema: "main".to_string(),
            ..ScanOut::default()
        };
        fn text<'a>(v: Stored<'a>) -> &'a [u8] {
            match v {
                Stored::Text(t) => t,
                _ => &[],
            }
        }
        for record in &records {
            // type, name, tbl_name, rootpage, sql
            let Some([kind, name, table, _, sql]) = schema_pages::columns::<5>(record) else {
                return Ok(None);
            };
            let sql = match sql {
                Stored::Text(t) => Some(t),
                _ => None,
            };
            out.fold(&self.row_keys, text(kind), text(name), text(table), sql);
        }
        Ok(Some(out))
    }

    /// Scans main's schema table by its leaf pages: a leaf whose content an earlier scan saw
    /// is taken from the memo (for another plugin too, when the leaf holds none of this
    /// plugin's rows), and only the rows of the other leaves are read, from the page (through
    /// SQL, by rowid range, when the page does not decode). A step's DDL changes one leaf or a
    /// few of dozens. `None` (read every row instead) when this SQLite
    /// lacks `sqlite_dbpage`, or when the pages do not read as a table b-tree whose leaves hold
    /// the rows SQLite reads from them.
    fn scan_main_by_pages(&mut self, scope: &Scope) -> Result<Option<LeafPart>> {
        if self.dbpage.is_none() {
            let available = self.conn.prepare_cached(READ_PAGE).is_ok();
            if !available {
                tracing::debug!(
                    "no sqlite_dbpage in this SQLite: the schema check reads every row"
                );
            }
            self.dbpage = Some(available);
        }
        if self.dbpage == Some(false) {
            return Ok(None);
        }
        let mut memo = self.page_memo.take().unwrap_or_default();
        let e = |e| db_error(&self.path, "cannot read the schema's pages", e);
        let mut stmt = self.conn.prepare_cached(READ_PAGE).map_err(e)?;
        let mut read = |pgno: u32, buf: &mut Vec<u8>| read_page(&mut stmt, pgno, buf);
        let known = |bytes: u64| {
            memo.get(&bytes).map(|part| schema_pages::KnownLeaf {
                chains: &part.chains,
                rowids: part.rowids,
            })
        };
        let leaves = schema_pages::schema_leaves(
            &mut read,
            &self.page_keys,
            &known,
            &mut self.page_buffers.borrow_mut(),
        );
        drop(stmt);
        let Some(leaves) = leaves.map_err(e)? else {
            tracing::debug!("sqlite_schema's pages do not read as a b-tree: reading every row");
            return Ok(None);
        };
        // Namespaces are lowercase (manifest::validate_name); the memo compares bytes.
        let own = scope.own.to_ascii_lowercase();
        let mut total = LeafPart::default();
        let mut next = PageMemo::with_capacity_and_hasher(leaves.len(), Default::default());
        for leaf in leaves {
            let known = memo
                .remove(&leaf.bytes)
                .filter(|part| part.overflow == leaf.overflow)
                .and_then(|mut part| part.respan(&own).then_some(part));
            let part = match (known, leaf.rowids) {
                (Some(part), _) => part,
                (None, None) => LeafPart {
                    own: own.clone(),
                    ..LeafPart::default()
                },
                (None, Some(range)) => {
                    let out = match self.scan_leaf(scope, leaf.page)? {
                        Some(out) => out,
                        None => self.scan_rows(scope, "main", Some(range))?,
                    };
                    let part = LeafPart {
                        overflow: leaf.overflow,
                        chains: leaf.chains,
                        rowids: leaf.rowids,
                        ..LeafPart::from_scan(&own, out)
                    };
                    if part.all.1 != leaf.cells {
                        tracing::debug!(
                            page = leaf.page,
                            "a leaf's rows do not match its cells: reading every row"
                        );
                        return Ok(None);
                    }
                    part
                }
            };
            total.foreign.0 = total.foreign.0.wrapping_add(part.foreign.0);
            total.foreign.1 += part.foreign.1;
            total.owned.extend(part.owned.iter().cloned());
            next.insert(leaf.bytes, part);
        }
        self.page_memo = Some(next);
        Ok(Some(total))
    }

    fn each_schema_row(
        &self,
        mut f: impl FnMut(&str, &rusqlite::Row<'_>) -> rusqlite::Result<()>,
    ) -> Result<()> {
        for schema in ["main", "temp"] {
            let mut stmt = self
                .conn
                .prepare_cached(&format!(
                    "SELECT type, name, tbl_name, sql FROM {schema}.sqlite_schema"
                ))
                .map_err(|e| self.error("cannot read the schema", e))?;
            let mut rows = stmt
                .query([])
                .map_err(|e| self.error("cannot read the schema", e))?;
            while let Some(row) = rows
                .next()
                .map_err(|e| db_error(&self.path, "cannot read the schema", e))?
            {
                f(schema, row).map_err(|e| db_error(&self.path, "cannot read the schema", e))?;
            }
        }
        Ok(())
    }
}

/// `no such table: X` for a table outside the scope's reach becomes the scope's denial of
/// `X`, word for word what the authorizer says of an existing one; so does `index X already
/// exists` (and the like) for a name outside the namespace.
pub(super) fn uniform_message(scope: &Scope, message: &str) -> String {
    if let Some((kind, name)) = message
        .strip_suffix(" already exists")
        .and_then(|m| m.split_once(' '))
        && ["table", "index", "trigger", "view"].contains(&kind)
        && !scope.owns(name)
    {
        return scope.outside(kind, name);
    }
    if let Some(name) = message.strip_prefix("no such table: ") {
        let name = ["main.", "temp."]
            .iter()
            .find_map(|s| name.strip_prefix(s))
            .unwrap_or(name);
        if !scope.may_read(name) {
            return scope.outside("table", name);
        }
    }
    message.to_string()
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked)
    )
}

/// A per-process, per-call seed, so that runners started together do not retry in step.
fn jitter_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    (nanos ^ ((std::process::id() as u64) << 32)) | 1
}

fn db_error(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    let message = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => format!(
            "{what}: the database is locked by another process (another wasmig run or the \
             application); try again, or raise the lock timeout"
        ),
        _ => format!("{what}: {e}"),
    };
    Error::Database {
        path: path.to_path_buf(),
        message,
    }
}

struct Param<'a>(&'a super::ValueRef<'a>);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use super::ValueRef as P;
        Ok(ToSqlOutput::Borrowed(match *self.0 {
            P::Null => ValueRef::Null,
            P::Integer(i) => ValueRef::Integer(i),
            P::Real(r) => ValueRef::Real(r),
            P::Text(t) => ValueRef::Text(t.as_bytes()),
            P::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn bind(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: &[super::ValueRef<'_>],
) -> rusqlite::Result<()> {
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            expected,
        ));
    }
    for (i, p) in params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, Param(p))?;
    }
    Ok(())
}

fn read_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl Backend for SqliteBackend {
    fn prepare_host_tables(&mut self) -> Result<()> {
        if self.host_schema_version()? == HOST_SCHEMA_VERSION {
            return Ok(());
        }
        // Inside an open transaction (a dry run), the tables go away with it.
        let own = !self.in_transaction;
        if own {
            self.begin()?;
        }
        // Another runner may have created or upgraded them while this one waited.
        let created = match self.host_schema_version() {
            Ok(0) => self.conn.execute_batch(HOST_SCHEMA),
            Ok(1) => {
                tracing::info!(database = %self.path.display(), "upgrading wasmig's tables to version 2");
                self.conn.execute_batch(HOST_SCHEMA_1_TO_2)
            }
            Ok(_) => Ok(()),
            Err(e) => {
                if own {
                    let _ = self.rollback();
                }
                return Err(e);
            }
        };
        match created {
            Ok(()) if own => self.commit(),
            Ok(()) => Ok(()),
            Err(e) => {
                if own {
                    self.rollback()?;
                }
                Err(self.error("cannot create wasmig's tables", e))
            }
        }
    }

    fn has_host_tables(&mut self) -> Result<bool> {
        if self.host_tables {
            return Ok(true);
        }
        self.host_tables = self
            .conn
            .query_row(
                "SELECT count(*) = 3 FROM sqlite_schema WHERE type = 'table'
                 AND name IN ('_wasmig_ledger', '_wasmig_applied', '_wasmig_meta')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| db_error(&self.path, "cannot read the schema", e))?;
        Ok(self.host_tables)
    }

    fn begin(&mut self) -> Result<()> {
        // Another runner may hold the write lock: retry with exponential backoff and jitter,
        // up to the lock timeout, then say who is in the way.
        let started = Instant::now();
        let mut backoff = Duration::from_millis(5);
        let mut jitter = jitter_seed();
        self.conn
            .busy_timeout(Duration::ZERO)
            .map_err(|e| self.error("cannot configure the connection", e))?;
        let result = loop {
            match self.conn.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => break Ok(()),
                Err(e) if is_busy(&e) && started.elapsed() < self.options.lock_timeout => {
                    jitter ^= jitter << 13;
                    jitter ^= jitter >> 7;
                    jitter ^= jitter << 17;
                    let wait = backoff.mul_f64(0.5 + (jitter % 1000) as f64 / 1000.0);
                    let left = self.options.lock_timeout.saturating_sub(started.elapsed());
                    std::thread::sleep(wait.min(left));
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) if is_busy(&e) => {
                    break Err(Error::Locked {
                        path: self.path.clone(),
                        waited: started.elapsed(),
                    });
                }
                Err(e) => break Err(self.error("cannot start a transaction", e)),
            }
        };
        self.conn
            .busy_timeout(self.options.lock_timeout)
            .map_err(|e| self.error("cannot configure the connection", e))?;
        result?;
        self.in_transaction = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| self.error("cannot commit", e))?;
        self.in_transaction = false;
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        // Tables created in the rolled-back transaction (a dry run's) are gone again, and so
        // may be the schema the last mark describes.
        self.host_tables = false;
        self.last_mark = None;
        if self.conn.is_autocommit() {
            self.in_transaction = false;
            return Ok(());
        }
        self.conn
            .execute_batch("ROLLBACK")
            .map_err(|e| self.error("cannot roll back", e))?;
        self.in_transaction = false;
        Ok(())
    }

    fn load_state(&mut self) -> Result<State> {
        if !self.has_host_tables()? {
            return Ok(State::default());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT plugin, version, checksum, component_sha256, plugin_version, applied_at_ms
                 FROM _wasmig_applied",
            )
            .map_err(|e| self.error("cannot read the applied state", e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_error(&self.path, "cannot read the applied state", e))?;
        let mut state = State::default();
        for (plugin, version, checksum, component_sha256, plugin_version, applied_at_ms) in rows {
            let parse = |v: &str| {
                semver::Version::parse(v).map_err(|e| Error::Database {
                    path: self.path.clone(),
                    message: format!("corrupt applied state for plugin {plugin}: {v:?}: {e}"),
                })
            };
            let version = parse(&version)?;
            let step = AppliedStep {
                version: version.clone(),
                checksum,
                component_sha256,
                plugin_version: parse(&plugin_version)?,
                applied_at_ms,
            };
            state
                .applied
                .entry(plugin.clone())
                .or_default()
                .insert(version, step);
        }
        Ok(state)
    }

    fn is_applied(&mut self, plugin: &str, version: &semver::Version) -> Result<bool> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM _wasmig_applied WHERE plugin = ?1 AND version = ?2)",
            )
            .and_then(|mut s| s.query_row(params![plugin, version.to_string()], |r| r.get(0)))
            .map_err(|e| db_error(&self.path, "cannot read the applied state", e))
    }

    fn record(&mut self, e: &LedgerEntry) -> Result<()> {
        let statements = serde_json::to_string(&e.statements).expect("strings serialize");
        self.conn
            .prepare_cached(
                "INSERT INTO _wasmig_ledger (plugin, plugin_version, version, description,
                     direction, outcome, error, started_at_ms, duration_us, checksum,
                     component_sha256, wasmig_version, statements, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    e.plugin,
                    e.plugin_version,
                    e.version,
                    e.description,
                    e.direction.as_str(),
                    e.outcome.as_str(),
                    e.error,
                    e.started_at_ms,
                    e.duration_us,
                    e.checksum,
                    e.component_sha256,
                    e.wasmig_version,
                    statements,
                    e.note
                ])
            })
            .map_err(|err| self.error("cannot write the ledger", err))?;
        let ledger_id = self.conn.last_insert_rowid();
        if e.outcome == Outcome::Succeeded {
            let changed = match e.direction {
                Direction::Up => self
                    .conn
                    .prepare_cached(
                        "INSERT INTO _wasmig_applied (plugin, version, checksum, component_sha256,
                         plugin_version, applied_at_ms, ledger_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            e.plugin,
                            e.version,
                            e.checksum,
                            e.component_sha256,
                            e.plugin_version,
                            e.started_at_ms,
                            ledger_id
                        ])
                    }),
                Direction::Down => self
                    .conn
                    .prepare_cached(
                        "DELETE FROM _wasmig_applied WHERE plugin = ?1 AND version = ?2",
                    )
                    .and_then(|mut s| s.execute(params![e.plugin, e.version])),
            }
            .map_err(|err| self.error("cannot update the applied state", err))?;
            if changed != 1 {
                return Err(Error::Database {
                    path: self.path.clone(),
                    message: format!(
                        "applied state of plugin {} step {} is not what the ledger expects",
                        e.plugin, e.version
                    ),
                });
            }
        }
        Ok(())
    }

    fn history(&mut self, plugin: Option<&str>) -> Result<Vec<LedgerEntry>> {
        if !self.has_host_tables()? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, plugin, plugin_version, version, description, direction, outcome,
                        error, started_at_ms, duration_us, checksum, component_sha256,
                        wasmig_version, statements, note
                 FROM _wasmig_ledger WHERE ?1 IS NULL OR plugin = ?1 ORDER BY id",
            )
            .map_err(|e| self.error("cannot read the ledger", e))?;
        let rows = stmt
            .query_map([plugin], |r| {
                let direction: String = r.get(5)?;
                let outcome: String = r.get(6)?;
                let statements: String = r.get(13)?;
                Ok(LedgerEntry {
                    id: r.get(0)?,
                    plugin: r.get(1)?,
                    plugin_version: r.get(2)?,
                    version: r.get(3)?,
                    description: r.get(4)?,
                    direction: if direction == "down" {
                        Direction::Down
                    } else {
                        Direction::Up
                    },
                    outcome: if outcome == "succeeded" {
                        Outcome::Succeeded
                    } else {
                        Outcome::Failed
                    },
                    error: r.get(7)?,
                    started_at_ms: r.get(8)?,
                    duration_us: r.get(9)?,
                    checksum: r.get(10)?,
                    component_sha256: r.get(11)?,
                    wasmig_version: r.get(12)?,
                    statements: serde_json::from_str(&statements).unwrap_or_default(),
                    note: r.get(14)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_error(&self.path, "cannot read the ledger", e))?;
        Ok(rows)
    }

    fn store_component(
        &mut self,
        sha256: &str,
        bytes: &[u8],
        manifest: &crate::Manifest,
    ) -> Result<()> {
        let e = |e| db_error(&self.path, "cannot store the plugin's component", e);
        let stored: bool = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM _wasmig_component WHERE sha256 = ?1)")
            .and_then(|mut s| s.query_row([sha256], |r| r.get(0)))
            .map_err(e)?;
        if !stored {
            let json = serde_json::to_string(manifest).expect("manifests serialize");
            self.conn
                .execute(
                    "INSERT INTO _wasmig_component (sha256, bytes) VALUES (?1, ?2)",
                    params![sha256, bytes],
                )
                .map_err(e)?;
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO _wasmig_manifest (sha256, manifest) VALUES (?1, ?2)",
                    params![sha256, json],
                )
                .map_err(e)?;
        }
        Ok(())
    }

    fn load_component(&mut self, sha256: &str) -> Result<Option<Vec<u8>>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT bytes FROM _wasmig_component WHERE sha256 = ?1",
                [sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error("cannot read a stored component", e))
    }

    fn stored_manifests(
        &mut self,
        sha256s: Option<&[String]>,
    ) -> Result<std::collections::BTreeMap<String, crate::Manifest>> {
        if !self.has_host_tables()? {
            return Ok(Default::default());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sha256, manifest FROM _wasmig_manifest")
            .map_err(|e| self.error("cannot read stored manifests", e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_error(&self.path, "cannot read stored manifests", e))?;
        let wanted: Option<std::collections::BTreeSet<&String>> =
            sha256s.map(|s| s.iter().collect());
        let mut out = std::collections::BTreeMap::new();
        for (sha, json) in rows {
            if wanted.as_ref().is_some_and(|w| !w.contains(&sha)) {
                continue;
            }
            let manifest = serde_json::from_str(&json).map_err(|e| Error::Database {
                path: self.path.clone(),
                message: format!("stored manifest of component {sha} is corrupt: {e}"),
            })?;
            out.insert(sha, manifest);
        }
        Ok(out)
    }

    fn total_changes(&self) -> u64 {
        self.conn.total_changes()
    }

    fn mark_schema(&mut self, scope: &Scope) -> Result<SchemaMark> {
        let versions = self.schema_versions()?;
        // The previous step's check already scanned this very schema for this plugin.
        let mark = match self.last_mark.take() {
            Some((own, mark)) if own == scope.own && mark.versions == versions => mark,
            _ => self.scan_schema(scope, versions, None)?,
        };
        // Lets a failed check look at the schema as it was, to name what changed.
        self.conn
            .execute_batch("SAVEPOINT wasmig_step")
            .map_err(|e| self.error("cannot mark the step", e))?;
        Ok(mark)
    }

    fn verify_step(&mut self, scope: &Scope, before: &SchemaMark) -> Result<StepCheck> {
        let unchanged = StepCheck {
            verdict: Ok(()),
            changes: Vec::new(),
        };
        let versions = self.schema_versions()?;
        if versions == before.versions {
            self.release_mark()?;
            self.last_mark = Some((scope.own.clone(), before.clone()));
            return Ok(unchanged);
        }
        let scanned = self.scan_schema(scope, versions, Some(before))?;
        if scanned.foreign != before.foreign {
            // Something outside the plugin changed: find what, by comparing everything with
            // the schema at the mark. The step is rolled back either way.
            let after = self.schema_objects()?;
            self.conn
                .execute_batch("ROLLBACK TO wasmig_step")
                .map_err(|e| self.error("cannot look back at the schema", e))?;
            let was = self.schema_objects()?;
            let reason = diff(&was, &after)
                .into_iter()
                .find(|(_, o)| !owned_by(scope, o))
                .map(|(what, o)| {
                    format!(
                        "the step {what} {} {:?} (on {:?}), which is outside plugin {}'s \
                         namespace (its objects are named {}*)",
                        o.kind, o.name, o.table, scope.plugin, scope.own
                    )
                })
                .unwrap_or_else(|| {
                    format!(
                        "the step changed the schema outside plugin {}'s namespace",
                        scope.plugin
                    )
                });
            return Ok(StepCheck {
                verdict: Err(reason),
                changes: Vec::new(),
            });
        }
        let changed = diff(&before.owned, &scanned.owned);
        let changes = changed
            .iter()
            .map(|(what, o)| {
                let temp = if o.schema == "temp" { "temp " } else { "" };
                format!("{what} {temp}{} {}", o.kind, o.name)
            })
            .collect();
        if !changed.is_empty()
            && let Err(reason) = self
                .on_step_clock(|backend| backend.check_left_behind(scope, &scanned.owned, &changed))
        {
            return Ok(StepCheck {
                verdict: Err(reason),
                changes,
            });
        }
        // Nothing TEMP survives the step: drop triggers and views first, then tables.
        let mut temp: Vec<&SchemaObject> = scanned
            .owned
            .iter()
            .filter(|o| o.schema == "temp" && o.kind != "index")
            .collect();
        let dropped_temp = !temp.is_empty();
        temp.sort_by_key(|o| if o.kind == "table" { 1 } else { 0 });
        for o in temp {
            let sql = format!(
                "DROP {} IF EXISTS temp.\"{}\"",
                o.kind.to_uppercase(),
                o.name.replace('"', "\"\"")
            );
            self.conn
                .execute_batch(&sql)
                .map_err(|e| self.error("cannot drop the step's TEMP objects", e))?;
        }
        self.release_mark()?;
        if !dropped_temp {
            self.last_mark = Some((scope.own.clone(), scanned));
        }
        Ok(StepCheck {
            verdict: Ok(()),
            changes,
        })
    }

    fn enter_plugin(&mut self, mut scope: Scope, limits: SqlLimits) -> Result<()> {
        use rusqlite::limits::Limit;
        self.held = None;
        scope.table_functions_shadowed = self.table_functions_shadowed();
        // A statement prepared under another scope must never be reused under this one: the
        // plugin's statements are cached under keys of this step only (see `plugin_key`).
        self.step_serial += 1;
        let prefix = format!("/* wasmig step {} */ ", self.step_serial);
        self.key_prefix_len = prefix.len();
        *self.key.get_mut() = prefix;
        let e = |e| db_error(&self.path, "cannot scope the connection to the plugin", e);
        let pages: i64 = self
            .conn
            .prepare_cached("PRAGMA page_count")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(e)?;
        let (page_size, max_pages) = match self.page_limits {
            Some(limits) => limits,
            None => {
                let read = |sql| {
                    self.conn
                        .query_row(sql, [], |r| r.get::<_, i64>(0))
                        .map_err(e)
                };
                let limits = (read("PRAGMA page_size")?, read("PRAGMA max_page_count")?);
                self.page_limits = Some(limits);
                limits
            }
        };
        let quota = pages + (limits.max_growth_bytes as i64 / page_size.max(512)).max(1);
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {quota}"), [], |_| Ok(()))
            .map_err(e)?;
        let sql_len = self
            .conn
            .set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, PLUGIN_MAX_SQL_LENGTH)
            .map_err(e)?;
        let value_len = self
            .conn
            .set_limit(Limit::SQLITE_LIMIT_LENGTH, PLUGIN_MAX_VALUE_LENGTH)
            .map_err(e)?;
        let like_len = self
            .conn
            .set_limit(
                Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
                PLUGIN_MAX_LIKE_PATTERN_LENGTH,
            )
            .map_err(e)?;
        let function_args = self
            .conn
            .set_limit(Limit::SQLITE_LIMIT_FUNCTION_ARG, PLUGIN_MAX_FUNCTION_ARGS)
            .map_err(e)?;
        self.host_settings = Some(HostSettings {
            sql_len,
            value_len,
            like_len,
            function_args,
            max_pages,
        });
        // Three clocks bound a statement: the progress handler between opcodes, the watchdog's
        // interrupt from another thread, and the functions whose one call can run long.
        let deadline = limits.deadline;
        self.conn
            .progress_handler(10_000, Some(move || Instant::now() >= deadline))
            .map_err(e)?;
        self.deadline.set(Some(deadline));
        self.watchdog.arm(deadline);
        self.temp_vfs.quota.limit(Some(limits.max_temp_bytes));
        // SQLite's own memory, when the process installed the bound (the binary does).
        crate::sqlite_memory::bound(Some(limits.max_result_bytes as u64));
        self.auth.set_scope(Some(scope.clone()));
        self.step_deadline = Some(limits.deadline);
        self.plugin = Some((scope, limits));
        Ok(())
    }

    fn running(&mut self, step: Option<&LedgerEntry>) {
        self.watchdog.running(step.cloned());
    }

    fn record_abandoned(&mut self) -> Result<()> {
        let path = watchdog::abandoned_path(&self.path);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(Error::Io {
                    what: "abandoned steps' record",
                    path,
                    source,
                });
            }
        };
        let entries: Vec<LedgerEntry> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Database {
                path: path.clone(),
                message: format!("cannot read the abandoned steps to record: {e}"),
            })?;
        self.begin()?;
        for entry in &entries {
            if let Err(e) = self.record(entry) {
                let _ = self.rollback();
                return Err(e);
            }
        }
        self.commit()?;
        tracing::warn!(
            database = %self.path.display(),
            "recorded {} step(s) that a host abandoned past their deadline",
            entries.len()
        );
        std::fs::remove_file(&path).map_err(|source| Error::Io {
            what: "abandoned steps' record",
            path,
            source,
        })
    }

    fn leave_plugin(&mut self) -> Result<()> {
        use rusqlite::limits::Limit;
        self.held = None;
        self.plugin = None;
        self.watchdog.disarm();
        self.deadline.set(None);
        self.temp_vfs.quota.limit(None);
        crate::sqlite_memory::bound(None);
        self.auth.set_scope(None);
        let e = |e| db_error(&self.path, "cannot restore the connection", e);
        self.conn
            .progress_handler(0, None::<fn() -> bool>)
            .map_err(e)?;
        if let Some(host) = self.host_settings.take() {
            self.conn
                .set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, host.sql_len)
                .map_err(e)?;
            self.conn
                .set_limit(Limit::SQLITE_LIMIT_LENGTH, host.value_len)
                .map_err(e)?;
            self.conn
                .set_limit(Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, host.like_len)
                .map_err(e)?;
            self.conn
                .set_limit(Limit::SQLITE_LIMIT_FUNCTION_ARG, host.function_args)
                .map_err(e)?;
            self.conn
                .query_row(
                    &format!("PRAGMA max_page_count = {}", host.max_pages),
                    [],
                    |_| Ok(()),
                )
                .map_err(e)?;
        }
        Ok(())
    }

    fn execute(
        &mut self,
        statement: &str,
        params: &[super::ValueRef<'_>],
    ) -> Result<u64, SqlError> {
        self.plugin_guard(statement)?;
        let result = (|| {
            let held = match self.held.take() {
                Some(held) if held.text == statement => held,
                other => {
                    drop(other); // back to the statement cache
                    self.hold(statement)?
                }
            };
            let stmt = &mut self.held.insert(held).stmt;
            if stmt.column_count() > 0 {
                return Err(rusqlite::Error::ExecuteReturnedResults);
            }
            bind(stmt, params)?;
            self.auth.reset();
            stmt.raw_execute()
        })();
        result
            .map(|n| n as u64)
            .map_err(|e| self.plugin_error(e, statement))
    }

    fn query(&mut self, statement: &str, params: &[super::ValueRef<'_>]) -> Result<Rows, SqlError> {
        self.plugin_guard(statement)?;
        let max_bytes = self.max_result_bytes();
        let result = (|| {
            let mut stmt = self.prepare_plugin(statement)?;
            bind(&mut stmt, params)?;
            let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
            let n = columns.len();
            let mut rows = Vec::new();
            // What the host holds, counted as it is held: each row is a vector (its handle in
            // the result, its own allocation) of `n` values, and each text or blob its own
            // allocation. One-integer rows cost about nine times their eight bytes.
            let row_bytes = std::mem::size_of::<Vec<Value>>()
                + ALLOCATION_OVERHEAD
                + n * std::mem::size_of::<Value>();
            let mut bytes = 0usize;
            self.reset_auth();
            let mut cursor = stmt.raw_query();
            while let Some(row) = cursor.next()? {
                let mut values = Vec::with_capacity(n);
                bytes += row_bytes;
                for i in 0..n {
                    let v = read_value(row.get_ref(i)?);
                    bytes += match &v {
                        Value::Text(t) => t.len() + ALLOCATION_OVERHEAD,
                        Value::Blob(b) => b.len() + ALLOCATION_OVERHEAD,
                        _ => 0,
                    };
                    values.push(v);
                }
                if bytes > max_bytes {
                    return Ok(Err(SqlError::Limit(format!(
                        "the query's result is larger than the {} MiB a query may return; \
                         read it in pages (LIMIT/OFFSET or keyset)",
                        max_bytes >> 20
                    ))));
                }
                rows.push(values);
            }
            Ok(Ok(Rows { columns, rows }))
        })();
        result.map_err(|e| self.plugin_error(e, statement))?
    }

    fn execute_many(
        &mut self,
        statement: &str,
        rows: &[&[super::ValueRef<'_>]],
    ) -> Result<u64, SqlError> {
        self.plugin_guard(statement)?;
        let result = (|| {
            let mut stmt = self.prepare_plugin(statement)?;
            if stmt.column_count() > 0 {
                return Err(rusqlite::Error::ExecuteReturnedResults);
            }
            let mut changed = 0u64;
            for row in rows {
                bind(&mut stmt, row)?;
                self.reset_auth();
                changed += stmt.raw_execute()? as u64;
            }
            Ok(changed)
        })();
        result.map_err(|e| self.plugin_error(e, statement))
    }

    fn execute_script(&mut self, script: &str, ran: &mut Vec<String>) -> Result<(), SqlError> {
        self.plugin_guard(script)?;
        let result = (|| {
            let mut batch = rusqlite::Batch::new(&self.conn, script);
            loop {
                self.reset_auth();
                let Some(mut stmt) = batch.next()? else { break };
                if let Some((scope, _)) = &self.plugin {
                    self.check_reads(scope)?;
                }
                let sql = stmt.expanded_sql().unwrap_or_default();
                let keyword = first_keyword(&sql);
                if let Some((_, why)) = DENIED_STATEMENTS
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(keyword))
                {
                    return Ok(Err(SqlError::AccessDenied(why.to_string())));
                }
                ran.push(sql);
                // A script may contain statements that return rows; run them to completion.
                self.reset_auth();
                let mut rows = stmt.raw_query();
                while rows.next()?.is_some() {}
            }
            Ok(Ok(()))
        })();
        result.map_err(|e| self.plugin_error(e, script))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut objects: Vec<SchemaObject>) -> Vec<SchemaObject> {
        objects.sort();
        objects
    }

    /// This build's schema check reads pages (it does not fall back to reading every row), and
    /// what it finds, with leaves taken from the memo across namespaces, is what reading every
    /// row finds.
    #[test]
    fn the_page_walk_agrees_with_reading_every_row_across_namespaces() {
        let options = BackendOptions {
            lock_timeout: Duration::from_secs(1),
            on_overrun: None,
        };
        let mut db = SqliteBackend::open(Path::new("unused.db"), options, true).unwrap();
        // Namespaces interleaved on the same leaves, an AUTOINCREMENT table (sqlite_sequence
        // belongs to everyone), enough rows for interior pages.
        let mut script = String::from("BEGIN;");
        for i in 0..400 {
            let ns = ["aa", "bb", "cc"][i % 3];
            script.push_str(&format!(
                "CREATE TABLE {ns}__t{i} (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT UNIQUE);
                 CREATE INDEX {ns}__i{i} ON {ns}__t{i} (v);"
            ));
        }
        // A table whose SQL runs over three overflow pages.
        let columns: String = (0..1500).map(|i| format!("c{i}, ")).collect();
        script.push_str(&format!("CREATE TABLE bb__wide ({columns} z); COMMIT;"));
        db.conn.execute_batch(&script).unwrap();
        let changes = [
            "",
            // The same length: SQLite rewrites the row in place, and only an overflow page
            // changes.
            "ALTER TABLE bb__wide RENAME COLUMN c1499 TO x1499",
            "ALTER TABLE bb__t1 ADD COLUMN w",
            "CREATE TABLE cc__new (x)",
            "",
            "DROP TABLE aa__t0",
            "CREATE TABLE dd__first (x)",
            "DROP INDEX bb__i301",
        ];
        for (step, sql) in changes.iter().enumerate() {
            db.conn.execute_batch(sql).unwrap();
            for ns in ["aa", "bb", "cc", "dd", "zz", "aa"] {
                let scope = Scope::new(ns, &[]);
                let pages = db
                    .scan_main_by_pages(&scope)
                    .unwrap()
                    .expect("the schema check reads pages in this build");
                let full = db.scan_rows(&scope, "main", None).unwrap();
                assert_eq!(pages.foreign, (full.sum, full.count), "step {step}, {ns}");
                assert_eq!(sorted(pages.owned), sorted(full.owned), "step {step}, {ns}");
            }
        }
        assert!(db.page_memo.as_ref().is_some_and(|m| m.len() > 10));
    }
}
