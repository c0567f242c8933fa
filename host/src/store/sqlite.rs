//! The SQLite backend: one connection holds the step's transaction, the plugin's scoped
//! statements and the host's ledger writes.

mod authorizer;
mod bounded_functions;
mod host_tables;
mod left_behind;
mod load_limits;
mod schema_check;
mod schema_digest;
mod schema_pages;
mod scope;
mod session;
mod shadow;
pub(crate) use shadow::without_stat4;
mod sql_text;
mod temp_quota;
mod transaction;
mod watchdog;

use schema_digest::*;
use session::*;

use watchdog::Watchdog;
pub use watchdog::{Overrun, OverrunHandler};

use super::{
    Backend, BackendOptions, Direction, LedgerEntry, Outcome, PluginAccess, Rows, SqlError,
    SqlLimits, StepCheck, Value,
};
use crate::ledger::{AppliedStep, State};
use crate::{Error, Result};
use authorizer::{SCAN_FUNCTION, SharedAuthState, authorizer, is_autoindex_of};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, ToSql, params};
use schema_check::{SchemaMark, SchemaObject};
use schema_pages::{PageKeys, READ_PAGE, Stored, read_page};
pub(crate) use scope::Scope;
use sql_text::Token;
use sql_text::first_keyword;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most a plugin's step may leave SQLite holding once it ends (its statements cached
/// for the next step of its own, whose cache key differs, so they only age out): past it the
/// statement cache is emptied, so that a plugin's steps cannot each leave tens of MiB.
const RETAINED_AFTER_STEP: i64 = 8 << 20;

/// Views of the running step, `(schema, name)`, that named a table of the plugin's not made
/// yet, with the schema versions they were compiled at: compiled again once the schema
/// changes (see `SqliteBackend::check_new_views`).
type PendingViews = (Vec<(String, String)>, Option<[i64; 2]>);

/// What a step's mark read of its plugin's objects, for the shadow schema: the plugin's
/// prefix, the schema versions, the objects.
type ShadowSource = (String, [i64; 2], Vec<SchemaObject>);

/// The longest a plugin's statement text may be, in bytes (SQLite: the text handed to
/// SQLite at once, a script's rest included).
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
    /// The plugin's reach alone, where its statements are compiled first (see [`shadow`]).
    shadow: std::cell::RefCell<Option<shadow::Shadow>>,
    /// Keys of the statements compiled in the shadow in this step.
    shadow_checked: std::cell::RefCell<foldhash::HashSet<u64>>,
    /// What the step's mark read of the plugin's objects (its prefix, the schema versions,
    /// the objects), to make the shadow from.
    shadow_source: std::cell::RefCell<Option<ShadowSource>>,
    path: PathBuf,
    options: BackendOptions,
    in_transaction: bool,
    auth: SharedAuthState,
    /// The running plugin's scope and bounds; `None` while the host itself works.
    plugin: Option<(Scope, SqlLimits)>,
    /// What `enter_plugin` changed, to restore.
    host_settings: Option<HostSettings>,
    /// The connection's count of changed rows when the plugin's turn began.
    changes_at_enter: u64,
    /// Interrupts the running plugin statement at the step's deadline.
    watchdog: Watchdog,
    /// The deadline of the last step the connection ran, which its schema check keeps to.
    step_deadline: Option<Instant>,
    /// The bound on SQLite's memory of the step that ran last (its result cap), which the
    /// checks of what it left behind run under too.
    step_memory: Option<u64>,
    /// The bytes of definitions the running step's plugin may keep (`max_schema`).
    step_schema_quota: Option<u64>,
    /// The limits the application's connections set, under which the running step's
    /// plugin's objects must load (`[sqlite] application_limits`).
    application_limits: Option<crate::policy::ApplicationLimits>,
    /// The temporary storage quota of the step that ran last (`max_temp`), for the drop of
    /// its TEMP objects after it.
    step_temp_quota: Option<u64>,
    /// What SQLite held when the plugin's turn began (see [`RETAINED_AFTER_STEP`]).
    memory_at_enter: i64,
    /// Views of the running step that named a table of the plugin's not made yet.
    pending_views: std::cell::RefCell<PendingViews>,
    /// Why the step cannot go on: a view or fts5 table refused when it was created could not
    /// be dropped, so no later statement of the step may run (it could read that object).
    stuck: std::cell::RefCell<Option<String>>,
    /// The host's tables are known to exist (plugins cannot drop them).
    host_tables: bool,
    /// What the last schema scan found (see [`SchemaScan`]).
    scan_out: Arc<Mutex<Option<ScanOut>>>,
    /// The cap of the scan running (see `ScanOut::cap`; `u64::MAX`: none), for the scan
    /// aggregate.
    scan_room: Arc<std::sync::atomic::AtomicU64>,
    /// The bytes of the plugin's own objects at the last mark (see `SqliteBackend::scan_cap`).
    marked_bytes: u64,
    /// The schema as the last step left it, for the plugin it was scanned for.
    last_mark: Option<(String, SchemaMark)>,
    /// The running step's schema as the destructive gate read it after the step, at these
    /// schema versions: the step's checks read the same.
    after_step: Option<([i64; 2], SchemaMark)>,
    /// The connection switched a `DELETE` rollback journal to `TRUNCATE`, to switch back when
    /// it closes.
    truncating: bool,
    /// Counts the generations of plugin statements' cache keys on this connection: one for
    /// each step, and one for each change of the schema within a step.
    step_serial: std::cell::Cell<u64>,
    /// The cache key of a plugin statement is the current generation's prefix, then the
    /// statement; built in place, without formatting, once per call.
    key: std::cell::RefCell<String>,
    key_prefix_len: std::cell::Cell<usize>,
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
            shadow: Default::default(),
            shadow_checked: Default::default(),
            shadow_source: Default::default(),
            path: path.to_path_buf(),
            options,
            in_transaction: false,
            auth: Default::default(),
            plugin: None,
            host_settings: None,
            changes_at_enter: 0,
            watchdog,
            step_deadline: None,
            step_memory: None,
            step_schema_quota: None,
            application_limits: None,
            step_temp_quota: None,
            memory_at_enter: 0,
            pending_views: Default::default(),
            stuck: Default::default(),
            host_tables: false,
            scan_out: Default::default(),
            scan_room: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
            marked_bytes: 0,
            last_mark: None,
            after_step: None,
            truncating: false,
            step_serial: Default::default(),
            key: std::cell::RefCell::new(String::new()),
            key_prefix_len: Default::default(),
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
        let c = &self.conn;
        let e = |e| db_error(&self.path, "cannot configure the connection", e);
        shadow::configure(c, &self.deadline).map_err(e)?;
        c.busy_timeout(self.options.lock_timeout).map_err(e)?;
        c.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        use rusqlite::functions::FunctionFlags;
        c.create_aggregate_function(
            SCAN_FUNCTION,
            6,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY,
            SchemaScan {
                keys: self.row_keys.clone(),
                out: self.scan_out.clone(),
                cap: self.scan_room.clone(),
            },
        )
        .map_err(e)?;
        // Installed once: scoping it per step (SharedAuth::set_scope) expires nothing, so the
        // host's cached statements survive from step to step.
        let auth = self.auth.clone();
        self.conn
            .authorizer(Some(authorizer(auth)))
            .map_err(|e| db_error(&self.path, "cannot configure the connection", e))?;
        Ok(())
    }

    fn error(&self, what: &str, e: rusqlite::Error) -> Error {
        db_error(&self.path, what, e)
    }
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

// Each method is implemented, by concern, in a submodule (`host_tables`, `transaction`,
// `schema_check`, `session`), as an inherent method of the same name.
impl Backend for SqliteBackend {
    fn prepare_host_tables(&mut self) -> Result<()> {
        SqliteBackend::prepare_host_tables(self)
    }

    fn has_host_tables(&mut self) -> Result<bool> {
        SqliteBackend::has_host_tables(self)
    }

    fn begin(&mut self, _step: Option<&PluginAccess>) -> Result<()> {
        SqliteBackend::begin(self)
    }

    fn commit(&mut self) -> Result<()> {
        SqliteBackend::commit(self)
    }

    fn rollback(&mut self) -> Result<()> {
        SqliteBackend::rollback(self)
    }

    fn load_state(&mut self) -> Result<State> {
        SqliteBackend::load_state(self)
    }

    fn is_applied(&mut self, plugin: &str, version: &semver::Version) -> Result<bool> {
        SqliteBackend::is_applied(self, plugin, version)
    }

    fn record(&mut self, e: &LedgerEntry) -> Result<()> {
        SqliteBackend::record(self, e)
    }

    fn describe_schema(&mut self, plugin: &str) -> Result<Vec<String>> {
        SqliteBackend::describe_schema(self, plugin)
    }

    fn describe_data(&mut self, plugin: &str, max_bytes: usize) -> Result<Option<Vec<String>>> {
        SqliteBackend::describe_data(self, plugin, max_bytes)
    }

    fn ledger_head(&mut self) -> Result<i64> {
        if !self.has_host_tables()? {
            return Ok(0);
        }
        self.conn
            .query_row("SELECT coalesce(max(id), 0) FROM _wasmig_ledger", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.error("cannot read the ledger", e))
    }

    fn ledger(&mut self, query: &crate::LedgerQuery) -> Result<Vec<LedgerEntry>> {
        SqliteBackend::ledger(self, query)
    }

    fn store_component(
        &mut self,
        sha256: &str,
        bytes: &[u8],
        manifest: &crate::Manifest,
    ) -> Result<()> {
        SqliteBackend::store_component(self, sha256, bytes, manifest)
    }

    fn load_component(&mut self, sha256: &str) -> Result<Option<Vec<u8>>> {
        SqliteBackend::load_component(self, sha256)
    }

    fn stored_manifests(
        &mut self,
        sha256s: Option<&[String]>,
    ) -> Result<std::collections::BTreeMap<String, crate::Manifest>> {
        SqliteBackend::stored_manifests(self, sha256s)
    }

    fn mark_schema(&mut self, access: &PluginAccess) -> Result<super::SchemaMark> {
        SqliteBackend::mark_schema(self, &Scope::of(access)).map(super::SchemaMark::new)
    }

    fn tables_around(
        &mut self,
        access: &PluginAccess,
        before: &super::SchemaMark,
    ) -> Result<(crate::destructive::Tables, crate::destructive::Tables)> {
        let before: &SchemaMark = before.get().ok_or_else(|| {
            Error::Engine("a schema mark from another backend reached SQLite's".into())
        })?;
        let mut was = crate::destructive::Tables::new();
        let mut now = crate::destructive::Tables::new();
        let versions = self.schema_versions()?;
        if versions == before.versions {
            return Ok((was, now));
        }
        let scope = Scope::of(access);
        // A schema the host will not read whole, or not in time, refuses the step in
        // `verify_step`, which reads it again: nothing to compare here.
        let Ok(after) = self.scan_after_step(&scope, versions, before)? else {
            return Ok((was, now));
        };
        self.after_step = Some((versions, after.clone()));
        // Only the tables whose statement the step changed (or that it made or dropped):
        // a table whose `CREATE` text is the same has the same columns. So the work follows
        // the step's own DDL, not the plugin's whole schema.
        let tables =
            |objects: &[SchemaObject]| -> std::collections::BTreeMap<String, (String, String)> {
                objects
                    .iter()
                    .filter(|o| {
                        o.kind == "table"
                            && o.schema == "main"
                            && !o.name.to_ascii_lowercase().starts_with("sqlite_")
                    })
                    .filter_map(|o| {
                        let sql = o.sql.clone()?;
                        let virtual_table = sql_text::Tokens::new(&sql)
                            .nth(1)
                            .is_some_and(|t| t.is_word("virtual"));
                        (!virtual_table)
                            .then(|| (o.name.to_ascii_lowercase(), (o.name.clone(), sql)))
                    })
                    .collect()
            };
        let (old, new) = (tables(&before.owned), tables(&after.owned));
        // Every table of before still there as it was: nothing to compare (a step that only
        // makes things).
        if old
            .iter()
            .all(|(key, (_, sql))| new.get(key).is_some_and(|(_, s)| s == sql))
        {
            return Ok((was, now));
        }
        // Before: each changed table's columns as SQLite reads its `CREATE` statement, in a
        // scratch in-memory database (the table itself may be gone now), one at a time.
        let scratch = rusqlite::Connection::open_in_memory()
            .map_err(|e| self.error("cannot compare the plugin's tables", e))?;
        for (key, (name, sql)) in &old {
            if new.get(key).is_some_and(|(_, s)| s == sql) {
                continue;
            }
            let columns: rusqlite::Result<Vec<String>> =
                scratch.execute_batch(sql).and_then(|()| {
                    let columns = scratch
                        .prepare("SELECT lower(name) FROM pragma_table_xinfo(?1) ORDER BY cid")?
                        .query_map([name], |r| r.get(0))?
                        .collect();
                    scratch
                        .execute_batch(&format!("DROP TABLE \"{}\"", name.replace('"', "\"\"")))?;
                    columns
                });
            // A table SQLite cannot make alone (it cannot happen for a table SQLite made):
            // compared by name only.
            was.insert(key.clone(), columns.unwrap_or_default());
        }
        // Now: the changed tables' columns as the database has them.
        for (key, (name, sql)) in &new {
            if old.get(key).is_some_and(|(_, s)| s == sql) {
                continue;
            }
            let columns = self
                .conn
                .prepare_cached(
                    "SELECT lower(name) FROM pragma_table_xinfo(?1, 'main') ORDER BY cid",
                )
                .and_then(|mut s| s.query_map([name], |r| r.get(0))?.collect())
                .map_err(|e| self.error("cannot compare the plugin's tables", e))?;
            now.insert(key.clone(), columns);
        }
        Ok((was, now))
    }

    fn verify_step(
        &mut self,
        access: &PluginAccess,
        before: super::SchemaMark,
    ) -> Result<StepCheck> {
        let before: SchemaMark = before.into_inner().ok_or_else(|| {
            Error::Engine("a schema mark from another backend reached SQLite's".into())
        })?;
        SqliteBackend::verify_step(self, &Scope::of(access), &before)
    }

    fn enter_plugin(&mut self, access: &PluginAccess, limits: SqlLimits) -> Result<()> {
        SqliteBackend::enter_plugin(self, Scope::of(access), limits)
    }

    fn running(&mut self, step: Option<&LedgerEntry>) {
        SqliteBackend::running(self, step)
    }

    fn record_abandoned(&mut self) -> Result<()> {
        SqliteBackend::record_abandoned(self)
    }

    fn leave_plugin(&mut self) -> Result<u64> {
        SqliteBackend::leave_plugin(self)
    }

    fn execute(
        &mut self,
        statement: &str,
        params: &[super::ValueRef<'_>],
    ) -> Result<u64, SqlError> {
        SqliteBackend::execute(self, statement, params)
    }

    fn query(&mut self, statement: &str, params: &[super::ValueRef<'_>]) -> Result<Rows, SqlError> {
        SqliteBackend::query(self, statement, params)
    }

    fn execute_many(
        &mut self,
        statement: &str,
        rows: &[&[super::ValueRef<'_>]],
    ) -> Result<u64, SqlError> {
        SqliteBackend::execute_many(self, statement, rows)
    }

    fn execute_script(
        &mut self,
        script: &str,
        ran: &mut dyn FnMut(super::ScriptStep<'_>),
    ) -> Result<(), SqlError> {
        SqliteBackend::execute_script(self, script, ran)
    }

    fn total_changes(&self) -> u64 {
        self.conn.total_changes()
    }
}
