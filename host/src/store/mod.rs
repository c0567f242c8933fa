//! The storage seam. The executor talks to a [`Backend`]: transactions, the plugin's confined
//! SQL, the schema guard around a step, and the host's own tables (ledger, applied state,
//! stored components). SQLite is the embedded default; another database implements the same
//! trait, each confining a plugin by its own means.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use crate::ledger::State;
pub use crate::ledger::{Direction, LedgerEntry, Outcome};
pub(crate) use sqlite::OverrunHandler;
use std::any::Any;
use std::time::Duration;

/// Who runs a step and what it may reach besides its own namespace: the plugins whose
/// tables the policy lets it read. How a backend confines the plugin to this is its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PluginAccess {
    /// The plugin.
    pub plugin: String,
    /// The plugins whose tables it may read.
    pub reads: Vec<String>,
}

impl PluginAccess {
    pub(crate) fn new(plugin: &str, reads: &[String]) -> Self {
        PluginAccess {
            plugin: plugin.to_string(),
            reads: reads.to_vec(),
        }
    }
}

/// Bounds on the SQL of one step, where wasm limits do not reach.
#[derive(Debug, Clone)]
pub(crate) struct SqlLimits {
    /// When the step's time is up: a statement still running is interrupted.
    pub deadline: std::time::Instant,
    /// The most bytes one query may return.
    pub max_result_bytes: usize,
    /// How much the step may add to the database's storage, in bytes.
    pub max_growth_bytes: u64,
    /// How much the temporary files may hold while the step runs, in bytes.
    pub max_temp_bytes: u64,
    /// How many bytes of definitions the plugin's objects may take after the step (SQLite).
    pub max_schema_bytes: u64,
    /// The limits under which the plugin's objects must load on the application's
    /// connections (SQLite).
    pub application_limits: Option<crate::policy::ApplicationLimits>,
}

/// The schema before a step, as the backend that marked it records it; only that backend
/// reads it back.
pub(crate) struct SchemaMark(Box<dyn Any + Send>);

impl SchemaMark {
    pub(crate) fn new<T: Any + Send>(mark: T) -> Self {
        SchemaMark(Box::new(mark))
    }

    /// The backend's own mark; `None` if another kind of backend made it.
    pub(crate) fn into_inner<T: Any>(self) -> Option<T> {
        self.0.downcast().ok().map(|b| *b)
    }

    /// The backend's own mark, borrowed.
    pub(crate) fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

/// What the schema check found.
#[derive(Debug, Clone)]
pub(crate) struct StepCheck {
    /// `Err`: the reason to roll the step back.
    pub verdict: Result<(), String>,
    /// The plugin's objects created, altered or dropped (`created table notes__note`).
    pub changes: Vec<String>,
}

/// One SQL value crossing the seam.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// One SQL parameter, borrowed from where it lives (usually the plugin's linear memory, read
/// in place: no copy per value on the way to the statement).
pub(crate) use wasmig_format::packed::ValueRef;

/// Rows returned by a plugin's query.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// Why a plugin's statement failed; mirrors the WIT `error` variant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlError {
    AccessDenied(String),
    Constraint(String),
    Syntax(String),
    Limit(String),
    Other(String),
}

/// What [`Backend::execute_script`] tells of a script's statements as it runs them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ScriptStep<'a> {
    /// This statement runs (it was checked and is sent or stepped).
    Ran(&'a str),
    /// The statement last told of failed (the script stops there); `whole` when it changed
    /// nothing.
    Failed { whole: bool },
}

/// The storage a migration run needs. Every method runs on the one connection or session
/// that holds the step's transaction, so plugin SQL and ledger rows commit together.
///
/// One step's lifecycle, as the executor drives it:
///
/// 1. [`begin`](Backend::begin) for the plugin: the write transaction, holding the run lock
///    (other runners
///    wait), then [`is_applied`](Backend::is_applied): the re-check that makes a step run
///    exactly once whatever other runners did meanwhile;
/// 2. [`store_component`](Backend::store_component) (an `up` step), then
///    [`mark_schema`](Backend::mark_schema);
/// 3. [`enter_plugin`](Backend::enter_plugin): from here on every statement is the plugin's,
///    confined to what its [`PluginAccess`] allows and bounded by its [`SqlLimits`] (the
///    deadline is the backend's to enforce, not the guest's);
///    [`execute`](Backend::execute), [`query`](Backend::query) and the batches;
///    [`leave_plugin`](Backend::leave_plugin);
/// 4. [`verify_step`](Backend::verify_step): the schema guard's second wall;
/// 5. success: [`record`](Backend::record) then [`commit`](Backend::commit); failure:
///    [`rollback`](Backend::rollback), then the failure is recorded in a transaction of its
///    own (`begin`, `record`, `commit`).
pub(crate) trait Backend: Send {
    /// Creates the host's tables if they are missing (inside the open transaction, if any).
    fn prepare_host_tables(&mut self) -> crate::Result<()>;
    /// Whether the host's tables exist; reads of an untouched database see an empty state.
    fn has_host_tables(&mut self) -> crate::Result<bool>;
    /// Opens a write transaction, waiting (up to the lock timeout) for other writers: one
    /// step's, where `step` (the plugin) runs its SQL; the host's own (`None`), where only
    /// the host writes (a failure's ledger row, a dry run's host tables).
    fn begin(&mut self, step: Option<&PluginAccess>) -> crate::Result<()>;
    /// Commits the open transaction.
    fn commit(&mut self) -> crate::Result<()>;
    /// Rolls back the open transaction, if any.
    fn rollback(&mut self) -> crate::Result<()>;

    /// Reads the applied state (inside or outside a transaction).
    fn load_state(&mut self) -> crate::Result<State>;
    /// Whether one step is applied (a cheap re-check inside a step's transaction).
    fn is_applied(&mut self, plugin: &str, version: &semver::Version) -> crate::Result<bool>;
    /// Appends a ledger entry and updates the applied state to match it.
    fn record(&mut self, entry: &LedgerEntry) -> crate::Result<()>;
    /// Reads the ledger, oldest first, optionally for one plugin.
    fn history(&mut self, plugin: Option<&str>) -> crate::Result<Vec<LedgerEntry>> {
        self.ledger(&crate::LedgerQuery {
            plugin: plugin.map(str::to_string),
            ..Default::default()
        })
    }
    /// Reads the rows of the ledger `query` picks, oldest first.
    fn ledger(&mut self, query: &crate::LedgerQuery) -> crate::Result<Vec<LedgerEntry>>;
    /// The newest ledger row's id (0 when there is none).
    fn ledger_head(&mut self) -> crate::Result<i64>;
    /// The plugin's tables and their columns before the running step (as `before` marked
    /// them, or as the database's committed state shows them) and now, inside the step's
    /// transaction: for the destructive-change gate. After `leave_plugin`, before
    /// `verify_step`.
    fn tables_around(
        &mut self,
        access: &PluginAccess,
        before: &SchemaMark,
    ) -> crate::Result<(crate::destructive::Tables, crate::destructive::Tables)>;
    /// The plugin's objects as the database describes them, one line per object, column,
    /// index and constraint, sorted: two descriptions are equal when the plugin's schema is
    /// (`wasmig test` compares them). Outside any transaction of a step.
    fn describe_schema(&mut self, plugin: &str) -> crate::Result<Vec<String>>;
    /// The rows of the plugin's tables, one line per row (`row TABLE (VALUE, …)`), sorted:
    /// `wasmig test` compares them for steps that ask it to. A long value or row is
    /// described by its start, its length and its SHA-256 ([`described_row`]). Refuses past
    /// [`MAX_DESCRIBED_ROWS`] rows (a test's scratch data is small); `None` past `max_bytes`
    /// of lines as [`held_bytes`] counts them, or past [`MAX_DESCRIBED_READ`] bytes of values
    /// read. Outside any transaction of a step.
    fn describe_data(
        &mut self,
        plugin: &str,
        max_bytes: usize,
    ) -> crate::Result<Option<Vec<String>>>;
    /// Stores a component's bytes and manifest under its SHA-256, if not stored yet.
    fn store_component(
        &mut self,
        sha256: &str,
        bytes: &[u8],
        manifest: &crate::Manifest,
    ) -> crate::Result<()>;
    /// A stored component's bytes.
    fn load_component(&mut self, sha256: &str) -> crate::Result<Option<Vec<u8>>>;
    /// Stored manifests by component SHA-256, for the given hashes (all when `None`).
    fn stored_manifests(
        &mut self,
        sha256s: Option<&[String]>,
    ) -> crate::Result<std::collections::BTreeMap<String, crate::Manifest>>;

    /// Marks the schema before a step, as seen from one plugin. Cheap on a database with
    /// thousands of objects.
    fn mark_schema(&mut self, access: &PluginAccess) -> crate::Result<SchemaMark>;
    /// The second wall, after a step and before its commit: every object the step created,
    /// changed or dropped must be the plugin's, and what it leaves behind (triggers, views,
    /// functions) may reach only what the plugin itself may reach when it runs later with
    /// someone else's rights. Nothing of the step's temporary objects carries over to the
    /// next step.
    fn verify_step(
        &mut self,
        access: &PluginAccess,
        before: SchemaMark,
    ) -> crate::Result<StepCheck>;

    /// The plugins whose steps a run is about to run, in order, told before its first
    /// step: a backend may get ready for them. Nothing may fail here; what cannot be done
    /// now is done when the plugin's first step begins.
    fn run_begins(&mut self, _plugins: &[PluginAccess]) {}

    /// The plugin whose steps run after the current plugin's, told before the current one's
    /// first step: a backend may get ready for it meanwhile. Nothing may fail here; what
    /// cannot be done now is done when the plugin's first step begins.
    fn upcoming(&mut self, _next: &PluginAccess) {}

    /// Confines every following statement to one plugin and its bounds.
    fn enter_plugin(&mut self, access: &PluginAccess, limits: SqlLimits) -> crate::Result<()>;
    /// Ends the plugin's turn; host statements run unrestricted again. Returns the rows the
    /// plugin's statements inserted, updated or deleted since `enter_plugin`.
    fn leave_plugin(&mut self) -> crate::Result<u64>;
    /// Runs one plugin statement; returns rows changed.
    fn execute(&mut self, statement: &str, params: &[ValueRef<'_>]) -> Result<u64, SqlError>;
    /// Runs one plugin statement that returns rows.
    fn query(&mut self, statement: &str, params: &[ValueRef<'_>]) -> Result<Rows, SqlError>;
    /// Runs one plugin statement once per parameter list; returns rows changed. A long batch
    /// arrives in several calls of bounded size.
    fn execute_many(&mut self, statement: &str, rows: &[&[ValueRef<'_>]]) -> Result<u64, SqlError>;
    /// Rows changed on the connection so far, by every statement, a failed one's rows that
    /// stand included: a plugin's call that failed changed nothing if this did not move.
    /// (A backend whose failed statements always change nothing answers 0.)
    fn total_changes(&self) -> u64 {
        0
    }
    /// Runs a plugin script of statements, telling `ran` of each statement run as it goes
    /// (a script may hold millions: the audit trail keeps what it may), and of the one that
    /// failed, if one did.
    fn execute_script(
        &mut self,
        script: &str,
        ran: &mut dyn FnMut(ScriptStep<'_>),
    ) -> Result<(), SqlError>;

    /// Why the current step's failure was the database's and may pass if tried again (a
    /// deadlock, a serialization failure, a lost connection), if it was.
    fn transient_reason(&self) -> Option<&str> {
        None
    }
    /// [`transient_reason`](Backend::transient_reason), forgotten: the next step starts
    /// clean.
    fn take_transient(&mut self) -> Option<String> {
        None
    }

    /// The step the host runs from now on (`None` between steps and in a dry run): the
    /// failure to record if the host has to abandon it inside the database.
    fn running(&mut self, step: Option<&LedgerEntry>);
    /// Records the failures of steps a host abandoned (see [`crate::Overrun`]) that wait for the
    /// database, then forgets them.
    fn record_abandoned(&mut self) -> crate::Result<()>;
}

/// How the backend behaves; set by the host's builder.
#[derive(Clone)]
pub(crate) struct BackendOptions {
    /// How long to wait for another writer before giving up.
    pub lock_timeout: Duration,
    /// How much a step may add to the temporary files, in bytes (PostgreSQL: the plugin
    /// role's `temp_file_limit`).
    pub max_temp_bytes: u64,
    /// A step's deadline (`[limits] deadline`): with the lock timeout, it bounds the host's
    /// work on the database before the step's call too (PostgreSQL).
    pub deadline: Duration,
    /// What to do with a step still inside the database long past its deadline.
    pub on_overrun: Option<OverrunHandler>,
}

/// The longest one statement of a plugin's may be on PostgreSQL, in bytes: the host holds a
/// statement several times over while it sends it. SQLite's is shorter (its own length
/// limit, on the text handed to it at once).
pub(crate) const MAX_STATEMENT_BYTES: usize = 16 << 20;

/// How many rows [`Backend::describe_data`] describes at most.
pub(crate) const MAX_DESCRIBED_ROWS: usize = 100_000;

/// The most bytes of values [`Backend::describe_data`] reads for one description (SQLite),
/// held or not: past them, as past its `max_bytes`, the rows are too many to compare.
pub(crate) const MAX_DESCRIBED_READ: usize = 256 << 20;

/// A row [`Backend::describe_data`] describes longer than this (in bytes) is described by
/// its start, its length and its SHA-256: two rows still compare equal only when they are,
/// and a value of a gigabyte is not held as text.
pub(crate) const ROW_IN_FULL: usize = 512;

/// How much of a long row's line [`described_row`] keeps, in characters.
pub(crate) const ROW_START: usize = 128;

/// `line` as [`Backend::describe_data`] holds it: itself up to [`ROW_IN_FULL`] bytes, else
/// its first [`ROW_START`] characters, its length and (half of) its SHA-256.
pub(crate) fn described_row(line: String) -> String {
    if line.len() <= ROW_IN_FULL {
        return line;
    }
    abbreviated(&line, line.as_bytes(), "")
}

/// `text`'s first [`ROW_START`] characters and `quote`, then `bytes`' length and (half of)
/// their SHA-256: how a long value or row is described.
pub(crate) fn abbreviated(text: &str, bytes: &[u8], quote: &str) -> String {
    use sha2::{Digest, Sha256};
    let start: String = text.chars().take(ROW_START).collect();
    let digest = Sha256::digest(bytes);
    format!(
        "{start}…{quote} ({} bytes, sha256 {})",
        bytes.len(),
        hex::encode(&digest[..16])
    )
}

/// What a description's line costs the host as [`Backend::describe_data`] counts it
/// against its `max_bytes`: its text and its place in the list.
pub(crate) fn held_bytes(line: &str) -> usize {
    line.len() + std::mem::size_of::<String>()
}

/// The tables and columns of PostgreSQL's description of a plugin's tables: lines `table
/// "NAME"` and `column "TABLE" "COLUMN"`, each name a JSON string (a name may hold spaces or
/// quotes, and differ from another only in case).
pub(crate) fn tables_of(description: &[String]) -> crate::destructive::Tables {
    let names = |text: &str| -> Vec<String> {
        serde_json::Deserializer::from_str(text)
            .into_iter::<String>()
            .map_while(|name| name.ok())
            .collect()
    };
    let mut tables = crate::destructive::Tables::new();
    for line in description {
        if let Some(rest) = line.strip_prefix("table ") {
            if let [table] = &names(rest)[..] {
                tables.entry(table.clone()).or_default();
            }
        } else if let Some(rest) = line.strip_prefix("column ")
            && let [table, column] = &names(rest)[..]
        {
            tables
                .entry(table.clone())
                .or_default()
                .push(column.clone());
        }
    }
    tables
}
