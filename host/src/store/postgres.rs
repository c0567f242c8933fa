//! The PostgreSQL backend. Each plugin gets a schema and a login role of its own, which owns
//! that schema and nothing else; the plugin's SQL runs in a session that logged in as that
//! role, so PostgreSQL's own privileges confine it, and the role can never become another
//! (it is a member of no role). The host's tables live in the schema `wasmig`, which the
//! role wasmig connects as (the *host role*) owns.
//!
//! A step's transaction is the plugin's session's: it takes the host's advisory lock, runs
//! the plugin's statements, passes the schema guard ([`guard`]) and writes its ledger row
//! through a function only the host can use for that transaction ([`host_sql`]), then
//! commits. The host role's session reads the state, stores components, creates roles and
//! schemas, and records failures.

mod guard;
mod host_sql;
mod host_tables;
mod provision;
mod session;
mod statements;
mod values;

use super::{
    Backend, BackendOptions, Direction, LedgerEntry, Outcome, PluginAccess, Rows, ScriptStep,
    SqlError, SqlLimits, StepCheck, Value, ValueRef,
};
use crate::ledger::{AppliedStep, State};
use crate::{Error, Result};
use session::{CallError, Param, Session};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_postgres::Config;
use tokio_postgres::error::SqlState;

/// The most the host holds (as it holds it, see `session::collect`) of one read of what a
/// plugin's schema holds: its objects, their columns, the guard's findings. The plugin's
/// DDL chooses their number and their names' and types' lengths; past this the step is
/// refused.
pub(super) const CATALOG_READ_MAX: usize = 64 << 20;

/// The most statements of a script sent before their answers are read, and the most bytes of
/// them: what the host holds for a script in flight.
const SCRIPT_WINDOW: usize = 1024;
const SCRIPT_WINDOW_BYTES: usize = 1 << 20;

/// Refuses a statement of the plugin's longer than [`super::MAX_STATEMENT_BYTES`], as SQLite
/// refuses one past its own length limit: the host holds a statement several times over
/// while it sends it.
/// The plugin's error for a session ended for holding a lock outside its reach.
fn foreign_lock_ended(lock: &str) -> SqlError {
    SqlError::AccessDenied(foreign_lock_message(lock))
}

fn foreign_lock_message(lock: &str) -> String {
    format!(
        "{}; its session was terminated",
        CallError::Stuck(session::Stuck::ForeignLock(lock.to_string()))
    )
}

fn too_long(statement: &str) -> std::result::Result<(), SqlError> {
    if statement.len() > super::MAX_STATEMENT_BYTES {
        return Err(SqlError::Limit(format!(
            "statement too long: {} KiB, past the {} KiB a statement may take",
            statement.len().div_ceil(1024),
            super::MAX_STATEMENT_BYTES >> 10
        )));
    }
    Ok(())
}

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Host statements' most result bytes (stored components are read one at a time).
const HOST_MAX_RESULT: usize = 1 << 30;

/// Whether `s` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// `url` without its password, for messages.
pub(crate) fn redacted(url: &str) -> String {
    match url.parse::<Config>() {
        Ok(config) => {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .collect();
            format!(
                "postgres://{}@{}/{}",
                config.get_user().unwrap_or(""),
                hosts.join(","),
                config.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "postgres://…".to_string(),
    }
}

/// A plugin's role, code role and schema names on this database.
#[derive(Debug, Clone)]
struct Names {
    role: String,
    /// The role the plugin's functions run as between its steps, which owns them and nothing
    /// else and can create nothing (see `wasmig.code_back` in [`host_sql`]).
    code: String,
    schema: String,
}

/// `wasmig/<database>/<plugin>` (roles are shared by a server's databases), its code role
/// `wasmig:<database>/<plugin>` (as long, so whatever names one fits names the other), and
/// the plugin's namespace without its trailing `__` (`knowledge-base` → `knowledge_base`).
fn names_of(database: &str, plugin: &str) -> std::result::Result<Names, String> {
    let role = format!("wasmig/{database}/{plugin}");
    if role.len() > 63 {
        return Err(format!(
            "the role name {role:?} is longer than PostgreSQL's 63 bytes: the database's name \
             and the plugin's together must be at most 55 bytes"
        ));
    }
    let ns = crate::manifest::namespace(plugin);
    Ok(Names {
        code: format!("wasmig:{database}/{plugin}"),
        role,
        schema: ns.trim_end_matches('_').to_string(),
    })
}

/// `"name"`, with inner quotes doubled.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with inner quotes doubled (host statements that take no parameters).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// One plugin's session, logged in as its role.
struct PluginSession {
    names: Names,
    session: Session,
    /// A transaction is open on it.
    in_transaction: bool,
    /// [`host_turn`] with the host's lock timeout.
    host_turn: String,
    /// The schema as the running step's check left it, kept if the step commits.
    checked: Option<Mark>,
    /// The schema as the last committed step of this session left it: the next step's mark,
    /// without reading it again (between two steps of a run only the application writes to
    /// the schema, which makes its growth look larger, never smaller).
    committed: Option<Mark>,
    /// A step of this session committed after `wasmig.no_statistics` looked at every column
    /// and statistics object of the schema: later steps' calls look only if their
    /// transaction wrote one.
    statistics_set: bool,
    /// The open transaction's `wasmig.no_statistics` looked at every one.
    statistics_looked: bool,
}

/// Where the open transaction is.
#[derive(Debug, Clone, PartialEq)]
enum Open {
    None,
    /// On the host role's session.
    Host,
    /// A step's, on a plugin's session, with the token for its ledger row.
    Step {
        plugin: String,
        token: String,
    },
}

/// The objects of schema `$1`, one line each, as the server describes them: relations,
/// columns with their types, defaults and nullability (a composite type's attributes too),
/// indexes, constraints, views, triggers, functions, types, operators, collations, extended
/// statistics, text search configurations and dictionaries, and conversions: every kind of
/// object a role without superuser may make in a schema.
const DESCRIBE_SCHEMA: &str = "
WITH s AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1),
rel AS (SELECT c.oid, c.relname, c.relkind FROM pg_catalog.pg_class c
         WHERE c.relnamespace = (SELECT oid FROM s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c'))
SELECT CASE relkind WHEN 'r' THEN 'table ' WHEN 'p' THEN 'table ' WHEN 'v' THEN 'view '
                    WHEN 'm' THEN 'materialized view ' WHEN 'S' THEN 'sequence '
                    WHEN 'c' THEN 'type ' ELSE 'foreign table ' END || relname
       || CASE WHEN relkind IN ('v', 'm') THEN ': ' || pg_catalog.pg_get_viewdef(oid) ELSE '' END
  FROM rel
UNION ALL
SELECT 'column ' || r.relname || '.' || a.attname || ' '
       || pg_catalog.format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid), '')
  FROM rel r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped AND r.relkind IN ('r', 'p', 'f', 'c')
UNION ALL
SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid)
  FROM rel r JOIN pg_catalog.pg_index i ON i.indrelid = r.oid
UNION ALL
SELECT 'constraint ' || k.conname || ' on ' || r.relname || ': ' || pg_catalog.pg_get_constraintdef(k.oid)
  FROM rel r JOIN pg_catalog.pg_constraint k ON k.conrelid = r.oid
UNION ALL
SELECT 'trigger ' || pg_catalog.pg_get_triggerdef(t.oid)
  FROM rel r JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.oid WHERE NOT t.tgisinternal
UNION ALL
SELECT 'function ' || p.oid::pg_catalog.regprocedure::text
  FROM pg_catalog.pg_proc p WHERE p.pronamespace = (SELECT oid FROM s)
UNION ALL
SELECT 'type ' || t.typname FROM pg_catalog.pg_type t
 WHERE t.typnamespace = (SELECT oid FROM s) AND t.typrelid = 0 AND t.typelem = 0
UNION ALL
SELECT 'operator ' || o.oid::pg_catalog.regoperator::text FROM pg_catalog.pg_operator o
 WHERE o.oprnamespace = (SELECT oid FROM s)
UNION ALL
SELECT 'collation ' || c.collname FROM pg_catalog.pg_collation c
 WHERE c.collnamespace = (SELECT oid FROM s)
UNION ALL
SELECT 'statistics ' || x.stxname FROM pg_catalog.pg_statistic_ext x
 WHERE x.stxnamespace = (SELECT oid FROM s)
UNION ALL
SELECT 'text search configuration ' || f.cfgname FROM pg_catalog.pg_ts_config f
 WHERE f.cfgnamespace = (SELECT oid FROM s)
UNION ALL
SELECT 'text search dictionary ' || d.dictname FROM pg_catalog.pg_ts_dict d
 WHERE d.dictnamespace = (SELECT oid FROM s)
UNION ALL
SELECT 'conversion ' || v.conname FROM pg_catalog.pg_conversion v
 WHERE v.connamespace = (SELECT oid FROM s)";

/// Whether the session's transaction counters (this transaction's, and any earlier ones' not
/// yet reported) show rows of `pg_attribute` or `pg_type` updated or deleted (0: no), or the
/// server keeps no counters to tell (1). A column dropped, renamed or retyped, or a table
/// dropped, changes `pg_attribute`; a table renamed (another one made under its name)
/// changes its row type's name in `pg_type`. Making tables and indexes only inserts.
const COLUMNS_TOUCHED: &str = "
SELECT CASE WHEN pg_catalog.current_setting('track_counts') <> 'on' THEN 1::bigint
            ELSE pg_catalog.pg_stat_get_xact_tuples_updated('pg_catalog.pg_attribute'::pg_catalog.regclass)
                 + pg_catalog.pg_stat_get_xact_tuples_deleted('pg_catalog.pg_attribute'::pg_catalog.regclass)
                 + pg_catalog.pg_stat_get_xact_tuples_updated('pg_catalog.pg_type'::pg_catalog.regclass)
                 + pg_catalog.pg_stat_get_xact_tuples_deleted('pg_catalog.pg_type'::pg_catalog.regclass)
       END";

/// The tables of schema `$1` and their columns, as lines `table "NAME"` and `column "TABLE"
/// "COLUMN"` (each name a JSON string, read by [`super::tables_of`]), from the catalogs' rows
/// alone (no relation is opened, so no lock is waited for).
const TABLE_COLUMNS: &str = "
SELECT 'table ' || pg_catalog.to_json(c.relname::text)::text FROM pg_catalog.pg_class c
 WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
   AND c.relkind IN ('r', 'p', 'f')
UNION ALL
SELECT 'column ' || pg_catalog.to_json(c.relname::text)::text || ' '
       || pg_catalog.to_json(a.attname::text)::text
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
 WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
   AND c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped";

/// What makes a plugin's session the host's again, inside a step's transaction: the
/// session's settings back to the role's (`role` too, which `RESET ALL` leaves), names
/// resolved in the system catalogs first, and the host's lock timeout (which `RESET ALL`
/// undid), whatever the plugin set.
fn host_turn(lock_ms: u128) -> String {
    format!(
        "RESET ALL; RESET ROLE; SET search_path = pg_catalog, pg_temp; \
         SET LOCAL lock_timeout = {lock_ms}"
    )
}

/// How a plugin's step commits: read-only first. Nothing of the plugin's may run after the
/// guard, and the guard refuses what would run at the commit (a cursor left open, trigger
/// events still pending); should code of the plugin's run there all the same, it can write
/// nothing, grant nothing and make nothing (the server refuses each in a read-only
/// transaction, and a transaction cannot go back to read-write once it has run a query), and
/// the commit fails. The step's deferred checks ran before the guard, so none needs to write.
const COMMIT_STEP: &str = "SET TRANSACTION READ ONLY; COMMIT";

/// The stack of the client's thread (see where the runtime is built).
const CLIENT_STACK: usize = 1 << 30;

/// Why a step's commit failed when it was cancelled at its deadline.
fn commit_cancelled(plugin: &str) -> String {
    format!(
        "plugin {plugin}'s step was still committing a second past its deadline, and was cancelled"
    )
}

/// What ends a plugin's session state between steps: DISCARD ALL but its DISCARD PLANS (the
/// guard's plans stay cached for the plugin's next step), and with only the statements
/// prepared by SQL deallocated (the plugin's own, through `EXECUTE` in a function): those
/// the client prepared through the protocol, to look types up, stay for the next step.
const END_STEP: &str = "CLOSE ALL; UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all(); \
                        DISCARD TEMP; DISCARD SEQUENCES; \
                        DO $wasmig$ DECLARE n pg_catalog.text; BEGIN \
                          FOR n IN SELECT name FROM pg_catalog.pg_prepared_statements \
                                    WHERE from_sql LOOP \
                            EXECUTE pg_catalog.format('DEALLOCATE %I', n); \
                          END LOOP; \
                        END $wasmig$; \
                        RESET ALL; RESET ROLE";

/// The plugin whose statements run now.
struct Turn {
    plugin: String,
    limits: SqlLimits,
    changed: u64,
    /// A statement of the step ran in parallel server processes: the step fails, whatever
    /// the plugin does with the statement's error, and runs no more statements.
    parallel: bool,
    /// Looks for a lock outside the plugin's reach while its code runs between statements;
    /// stops when the turn ends.
    _idle_watch: Option<session::IdleWatch>,
}

/// The schema as one plugin saw it before a step.
#[derive(Clone)]
struct Mark {
    plugin: String,
    objects: BTreeSet<String>,
    /// The objects of other schemas that depend on the plugin's (an application's view over
    /// its table, a foreign key into it, a column of its type), by `classid objid objsubid`,
    /// with their descriptions: none may be gone after a step (`DROP … CASCADE` reaches
    /// them).
    dependents: std::collections::BTreeMap<String, String>,
    /// The grants on its objects to anyone but their owner, as the guard words them: those
    /// that stood before a step are not the step's.
    grants: BTreeSet<String>,
    /// The bytes the schema's tables, indexes and sequences take.
    bytes: i64,
    /// In a dry run, the plugin's tables as its own transaction saw them ([`TABLE_COLUMNS`]
    /// lines), for the destructive-change gate: earlier steps of the dry run are not
    /// committed, so the host's session would not see what they made.
    tables: Option<Vec<String>>,
}

pub(crate) struct PgBackend {
    /// Runs the sessions' connections; shut down without waiting when the backend goes.
    rt: Option<tokio::runtime::Runtime>,
    label: PathBuf,
    config: Config,
    database: String,
    options: BackendOptions,
    /// The host role's session.
    host: Session,
    /// Another host-role session, for creating roles and schemas while `host` is inside a
    /// dry run's transaction.
    setup: Option<Session>,
    plugins: BTreeMap<String, PluginSession>,
    open: Open,
    turn: Option<Turn>,
    host_tables: bool,
    /// The host's functions (the guard's among them) are this wasmig's: an older wasmig's
    /// are replaced when a run next writes.
    host_functions_current: bool,
    /// The version of wasmig's tables found (older ones are brought up to date when a run
    /// next writes).
    host_version: i64,
    /// The secret the plugin roles' passwords are derived from (`wasmig.meta`).
    secret: Option<String>,
    /// Why the current step failed for a reason of the database's that may pass (see
    /// [`is_transient`]).
    transient: Option<String>,
    /// SCRAM verifiers of the plugin roles' passwords, by role: each costs thousands of
    /// hash iterations to make.
    verifiers: BTreeMap<String, String>,
    /// The growth the running step's schema may have, in bytes (from its limits).
    growth_quota: u64,
    /// When the host's work before a step's call (its begin, re-check and mark) is
    /// cancelled: the lock timeout and the step's deadline after the begin (see
    /// [`PgBackend::begin_bound`]).
    begin_deadline: Option<Instant>,
    /// The running step's deadline, which bounds the checks of what it left behind too.
    checks_deadline: Option<Instant>,
    /// The checked step's deadline, which bounds its commit (a second later) too.
    commit_deadline: Option<Instant>,
    /// The running step's ledger row (`record_step`'s parameters), written in the round
    /// trip of the step's commit, just before it.
    ledger_row: Option<Vec<Param>>,
    /// What the guard compares the running step's catalogs with, by plugin: read with the
    /// step's re-check.
    step_inputs: Option<(String, guard::GuardInputs)>,
    /// Sessions of plugins whose steps come next, logging in ahead, by plugin (see
    /// [`PgBackend::prepare_session`]).
    #[allow(clippy::type_complexity)]
    prefetched: BTreeMap<
        String,
        (
            Names,
            std::sync::mpsc::Receiver<std::result::Result<Session, CallError>>,
        ),
    >,
    /// Plugins whose roles and schemas this run set up ahead, all at once (see
    /// [`PgBackend::provision_ahead`]); taken at the plugin's turn.
    provisioned: BTreeMap<String, Names>,
}

/// Whether the server gave up waiting for a lock (`lock_timeout`).
fn is_lock_timeout(e: &CallError) -> bool {
    matches!(e, CallError::Db(db) if db.code() == Some(&SqlState::LOCK_NOT_AVAILABLE))
}

/// Whether `e` is an error that PL/pgSQL code raised (`RAISE`, `ASSERT`) on the plugin's
/// behalf: any such code in the plugin's own statement (wasmig's functions included, which
/// the plugin's role may call: their verdict is then of the plugin's making), and elsewhere
/// code other than wasmig's own (a plugin's trigger that a host statement fires), as the
/// innermost line of its context says. wasmig's functions are in the schema `wasmig`, where
/// no plugin can make one, and their context names them with it.
fn raised_by_code(e: &CallError) -> bool {
    let (CallError::Db(error) | CallError::Statement(error)) = e else {
        return false;
    };
    let Some(db) = error.as_db_error() else {
        return false;
    };
    matches!(db.routine(), Some("exec_stmt_raise" | "exec_stmt_assert"))
        && (matches!(e, CallError::Statement(_))
            || !db
                .where_()
                .and_then(|w| w.lines().next())
                .is_some_and(|innermost| innermost.starts_with("PL/pgSQL function wasmig.")))
}

/// Whether an error is one that trying again may not meet: a deadlock, a serialization
/// failure, the server shutting down or starting up, a lost or refused connection.
///
/// The server's own errors only: a code that PL/pgSQL's `RAISE` chose is the plugin's
/// (`RAISE … USING ERRCODE = '40P01'`), and a connection error the server reports is one of a
/// connection it made for a statement (`dblink`), not wasmig's.
fn is_transient(e: &CallError) -> bool {
    match e {
        CallError::Db(e) | CallError::Statement(e) => match e.as_db_error() {
            Some(db) if db.routine() == Some("exec_stmt_raise") => false,
            Some(db) => {
                let code = db.code();
                code == &SqlState::T_R_SERIALIZATION_FAILURE
                    || code == &SqlState::T_R_DEADLOCK_DETECTED
                    || code == &SqlState::ADMIN_SHUTDOWN
                    || code == &SqlState::CRASH_SHUTDOWN
                    || code == &SqlState::CANNOT_CONNECT_NOW
            }
            // No server error: the connection failed or closed, or the client refused the
            // request itself (a statement's parameters not matching what it takes), which
            // another attempt would not change.
            None => {
                e.is_closed()
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
        },
        CallError::Cancelled | CallError::Stuck(_) | CallError::TooLarge(_) => false,
        CallError::Unsupported(_) | CallError::Parallel => false,
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        self.prefetched.clear();
        self.plugins.clear();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl PgBackend {
    /// Connects to the database at `url` as the host role.
    pub(crate) fn open(url: &str, options: BackendOptions) -> Result<Self> {
        let label = PathBuf::from(redacted(url));
        let fail = |message: String| Error::Database {
            path: label.clone(),
            message,
        };
        let mut config: Config = url
            .parse()
            .map_err(|e| fail(format!("not a PostgreSQL connection URL: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name("wasmig");
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        // The host's statements resolve names in the system catalogs only: not in a schema
        // named like the host's role (`"$user"`), which a plugin's could be, nor in `public`.
        let settings = format!(
            "{} -c search_path=pg_catalog,pg_temp",
            config.get_options().unwrap_or_default()
        );
        config.options(settings.trim_start());
        let database = config
            .get_dbname()
            .or(config.get_user())
            .ok_or_else(|| fail("the URL names no database".into()))?
            .to_string();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wasmig-postgres")
            // The client looks an unknown type up by recursing down what it is made of (a
            // domain's base, an array's element, a composite's fields), a frame or two per
            // level, on this thread: a plugin's chain of thousands of domains, made within
            // one step's deadline, must not overflow its stack. The guard refuses a chain
            // more than 64 deep at the step's end, so none outlives its step.
            // Only the pages a look-up touches are used.
            .thread_stack_size(CLIENT_STACK)
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the PostgreSQL client's runtime: {e}")))?;
        let host = match Session::connect(rt.handle(), &config, CONNECT_TIMEOUT) {
            Ok(host) => host,
            Err(e) => {
                // Dropping a runtime waits for its thread, which an async caller may not do.
                rt.shutdown_background();
                return Err(fail(format!("cannot connect: {e}")));
            }
        };
        Ok(PgBackend {
            rt: Some(rt),
            label,
            config,
            database,
            options,
            host,
            setup: None,
            plugins: BTreeMap::new(),
            open: Open::None,
            turn: None,
            host_tables: false,
            host_functions_current: false,
            host_version: 0,
            secret: None,
            transient: None,
            verifiers: BTreeMap::new(),
            growth_quota: u64::MAX,
            begin_deadline: None,
            checks_deadline: None,
            commit_deadline: None,
            ledger_row: None,
            step_inputs: None,
            prefetched: BTreeMap::new(),
            provisioned: BTreeMap::new(),
        })
    }

    /// Reconnects the host role's session if the server closed it (a restart), trying for
    /// up to [`CONNECT_TIMEOUT`] while the server starts up.
    fn revive(&mut self) -> Result<()> {
        if !self.host.is_closed() {
            return Ok(());
        }
        self.setup = None;
        self.host_tables = false;
        let until = Instant::now() + CONNECT_TIMEOUT;
        let mut pause = Duration::from_millis(100);
        loop {
            match Session::connect(self.handle(), &self.config, CONNECT_TIMEOUT) {
                Ok(session) => {
                    self.host = session;
                    for plugin in self.plugins.values_mut() {
                        plugin.session.watch_from(&self.host);
                    }
                    return Ok(());
                }
                Err(e) if Instant::now() + pause < until && is_transient(&e) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    self.transient = Some(format!("cannot reconnect: {e}"));
                    return Err(self.error("cannot reconnect", e));
                }
            }
        }
    }

    /// The lock timeout in milliseconds, for `SET LOCAL lock_timeout` (0 would wait forever).
    fn lock_timeout_ms(&self) -> u128 {
        self.options.lock_timeout.as_millis().max(1)
    }

    /// Notes a failure of the current step that may pass if tried again; never one past the
    /// step's deadline, which is the plugin's.
    fn note_transient(&mut self, e: &CallError) {
        let past_deadline = self
            .turn
            .as_ref()
            .is_some_and(|t| Instant::now() >= t.limits.deadline);
        if is_transient(e) && !past_deadline && self.transient.is_none() {
            self.transient = Some(e.to_string());
        }
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Database {
            path: self.label.clone(),
            message: format!("{what}: {e}"),
        }
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.as_ref().expect("running until dropped").handle()
    }

    /// A host statement on the host role's session.
    fn host_run(
        &self,
        what: &str,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Vec<Vec<Value>>> {
        self.host
            .run_prepared(sql, params)
            .map(|a| a.rows)
            .map_err(|e| self.error(what, e))
    }

    fn host_batch(&self, what: &str, sql: &str) -> Result<()> {
        self.host.batch(sql, None).map_err(|e| self.error(what, e))
    }

    /// The session for creating roles and schemas: the host's own, unless it is inside a
    /// transaction (a dry run's), whose rollback would take them back.
    fn setup_session(&mut self) -> Result<&Session> {
        if self.open == Open::None {
            return Ok(&self.host);
        }
        if self.setup.is_none() {
            let session = Session::connect(self.handle(), &self.config, CONNECT_TIMEOUT)
                .map_err(|e| self.error("cannot connect", e))?;
            self.setup = Some(session);
        }
        Ok(self.setup.as_ref().expect("just set"))
    }

    /// One host statement on a plugin's session, after [`host_turn`] in the same round trip;
    /// cancelled at `deadline`.
    fn host_turn_run(
        plugin: &PluginSession,
        sql: &str,
        params: Vec<Param>,
        deadline: Option<Instant>,
    ) -> std::result::Result<session::Answer, CallError> {
        plugin
            .session
            .run_after(&plugin.host_turn, sql, params, deadline, CATALOG_READ_MAX)
    }

    /// How long the host's work before a step's call may take: the lock timeout (its waits
    /// for other writers) and the step's deadline (its checks, whose time grows with the
    /// code other plugins and sessions hold, which the stepping plugin does not choose).
    /// Past it the work is cancelled and the step fails before it ran; nothing is held for
    /// longer than a step may hold it.
    pub(super) fn begin_bound(&self) -> Duration {
        self.options.lock_timeout + self.options.deadline
    }

    /// Why the host's work before a step's call failed, naming the plugin: a cancel at
    /// [`Self::begin_bound`] says what ran out. A statement that outlived its cancel
    /// ends its session (the server rolls back).
    fn before_step_failed(&mut self, plugin: &str, what: &str, e: CallError) -> Error {
        let message = match &e {
            CallError::Cancelled | CallError::Stuck(session::Stuck::Deadline) => format!(
                "{what}: the host's checks before plugin {plugin}'s step were still running {} \
                 after its begin (the lock timeout and the step's deadline); the step did not run",
                humantime::format_duration(self.begin_bound())
            ),
            _ => format!("{what}: {e}"),
        };
        if matches!(e, CallError::Stuck(_)) {
            self.terminate(plugin);
        }
        Error::Database {
            path: self.label.clone(),
            message,
        }
    }

    /// Ends a plugin's session state between steps: its temporary objects, session locks,
    /// listeners and settings go.
    fn end_step(&mut self, plugin: &str) {
        if let Some(p) = self.plugins.get_mut(plugin) {
            p.in_transaction = false;
            if p.session.batch(END_STEP, None).is_err() {
                self.plugins.remove(plugin);
            }
        }
    }

    /// Stops a plugin's session whose statement outlived its cancel: the server ends the
    /// process and rolls its transaction back. Whether the process ended within five
    /// seconds.
    pub(super) fn terminate(&mut self, plugin: &str) -> bool {
        let Some(p) = self.plugins.remove(plugin) else {
            return true;
        };
        let terminated = self.host.run(
            "SELECT pg_catalog.pg_terminate_backend($1::int, 5000)::int",
            vec![Param::Integer(p.session.pid as i64)],
            Some(Instant::now() + Duration::from_secs(10)),
            1024,
        );
        match terminated {
            Ok(answer) => answer.rows.first().is_some_and(|r| Self::int(&r[0]) == 1),
            Err(e) => {
                tracing::warn!(plugin, "cannot terminate the plugin's session: {e}");
                false
            }
        }
    }

    /// Whether the server process `pid` ends within a minute (a commit that outlived its
    /// cancel and the end of its process; the next step would wait for its lock anyway).
    fn ended(&mut self, pid: i32) -> bool {
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            let there = self.host.run(
                "SELECT count(*)::int FROM pg_catalog.pg_stat_activity WHERE pid = $1::int",
                vec![Param::Integer(pid as i64)],
                Some(Instant::now() + Duration::from_secs(10)),
                1024,
            );
            match there {
                Ok(answer) if answer.rows.first().is_some_and(|r| Self::int(&r[0]) == 0) => {
                    return true;
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(100)),
                Err(_) => return false,
            }
        }
        false
    }

    /// [`Self::step_landed`] of the step that `landmark` (its version and start) finds.
    fn landed(&mut self, plugin: &str, landmark: &Option<(Param, Param)>) -> Result<bool> {
        match landmark {
            Some((version, started)) => self.step_landed(plugin, version.clone(), started.clone()),
            None => Ok(false),
        }
    }

    /// Whether the ledger holds the successful step of `plugin` at `version` that began at
    /// `started` (ms): its commit landed.
    fn step_landed(&mut self, plugin: &str, version: Param, started: Param) -> Result<bool> {
        let answer = self
            .host
            .run(
                "SELECT count(*)::int FROM wasmig.ledger WHERE plugin = $1 AND version = $2 \
                 AND started_at_ms = $3 AND outcome = 'succeeded'",
                vec![Param::Text(plugin.to_string()), version, started],
                Some(Instant::now() + Duration::from_secs(10)),
                1024,
            )
            .map_err(|e| self.error("cannot read the ledger", e))?;
        Ok(answer.rows.first().is_some_and(|r| Self::int(&r[0]) > 0))
    }

    fn sql_error(&mut self, e: CallError) -> SqlError {
        // The session was ended for a lock it held while the call was on its way.
        if let Some(lock) = self
            .turn
            .as_ref()
            .and_then(|turn| self.plugins.get(&turn.plugin))
            .and_then(|plugin| plugin.session.foreign_lock())
        {
            return foreign_lock_ended(&lock);
        }
        self.note_transient(&e);
        if raised_by_code(&e) {
            // Its text (and its SQLSTATE) is the code's to choose: it must not pass for one of
            // the host's or the server's verdicts.
            return SqlError::Other(format!("RAISE in PL/pgSQL code: {e}"));
        }
        match e {
            CallError::Db(e) | CallError::Statement(e) => {
                let message = session::describe(&e);
                match e.code() {
                    Some(code) => {
                        let class = &code.code()[..2];
                        match class {
                            "42" if code == &SqlState::INSUFFICIENT_PRIVILEGE => {
                                SqlError::AccessDenied(message)
                            }
                            "42" => SqlError::Syntax(message),
                            "23" => SqlError::Constraint(message),
                            "53" | "54" => SqlError::Limit(message),
                            "57" if code == &SqlState::QUERY_CANCELED => SqlError::Limit(
                                "the statement was still running at the step's deadline"
                                    .to_string(),
                            ),
                            _ => SqlError::Other(message),
                        }
                    }
                    None => SqlError::Other(message),
                }
            }
            CallError::Cancelled => SqlError::Limit(
                "the statement was still running at the step's deadline".to_string(),
            ),
            CallError::Stuck(session::Stuck::ForeignLock(_)) => {
                if let Some(turn) = &mut self.turn {
                    let plugin = turn.plugin.clone();
                    self.terminate(&plugin);
                }
                SqlError::AccessDenied(format!("{e}; its session was terminated"))
            }
            CallError::Stuck(ref why) => {
                if let Some(turn) = &mut self.turn {
                    turn.parallel |= *why == session::Stuck::Parallel;
                    let plugin = turn.plugin.clone();
                    self.terminate(&plugin);
                }
                SqlError::Limit(format!("{e}; its session was terminated"))
            }
            CallError::TooLarge(_) => SqlError::Limit(e.to_string()),
            CallError::Unsupported(what) => SqlError::Other(what),
            CallError::Parallel => {
                if let Some(turn) = &mut self.turn {
                    turn.parallel = true;
                }
                SqlError::Limit(e.to_string())
            }
        }
    }

    /// Runs one of the plugin's statements in its turn.
    fn plugin_run(
        &mut self,
        statement: &str,
        params: &[ValueRef<'_>],
    ) -> std::result::Result<session::Answer, SqlError> {
        self.plugin_statement(statement, params, false)
    }

    /// The running plugin's turn and session, for its statements: none once a statement of
    /// the step ran in parallel server processes.
    fn plugin_turn(&self) -> std::result::Result<(&Turn, &PluginSession), SqlError> {
        let Some(turn) = &self.turn else {
            return Err(SqlError::AccessDenied(
                "no plugin step is running".to_string(),
            ));
        };
        if turn.parallel {
            return Err(SqlError::Limit(
                "refused: an earlier statement of this step ran in parallel server processes, \
                 and the step fails"
                    .to_string(),
            ));
        }
        let Some(session) = self.plugins.get(&turn.plugin) else {
            return Err(SqlError::Other(
                "the plugin's session has ended".to_string(),
            ));
        };
        if let Some(lock) = session.session.foreign_lock() {
            return Err(foreign_lock_ended(&lock));
        }
        Ok((turn, session))
    }

    /// Runs a plugin's statement, or with `prepare_only` only prepares it (the server
    /// resolves its names with the plugin's rights, as for a statement run for no rows).
    fn plugin_statement(
        &mut self,
        statement: &str,
        params: &[ValueRef<'_>],
        prepare_only: bool,
    ) -> std::result::Result<session::Answer, SqlError> {
        too_long(statement)?;
        let checked = statements::check_kind(statement).map_err(SqlError::AccessDenied)?;
        let params = params
            .iter()
            .map(|v| match *v {
                ValueRef::Null => Param::Null,
                ValueRef::Integer(i) => Param::Integer(i),
                ValueRef::Real(r) => Param::Real(r),
                ValueRef::Text(t) => Param::Text(t.to_string()),
                ValueRef::Blob(b) => Param::Blob(b.to_vec()),
            })
            .collect();
        let (turn, session) = self.plugin_turn()?;
        let (deadline, max_bytes) = (turn.limits.deadline, turn.limits.max_result_bytes);
        let statement = statements::numbered_parameters(&checked.text);
        match session.session.run_guarded(
            &statement,
            params,
            Some(deadline),
            max_bytes,
            if prepare_only {
                session::Guard::PrepareOnly
            } else {
                session::Guard::Savepoint
            },
        ) {
            Ok(mut answer) => {
                if !statements::changes_rows(&checked.kind) {
                    answer.changed = None;
                }
                if let Some(turn) = &mut self.turn {
                    turn.changed += answer.changed.unwrap_or(0);
                }
                Ok(answer)
            }
            Err(e) => Err(self.sql_error(e)),
        }
    }

    fn text(v: &Value) -> String {
        match v {
            Value::Text(t) => t.clone(),
            Value::Integer(i) => i.to_string(),
            Value::Real(r) => r.to_string(),
            _ => String::new(),
        }
    }

    fn int(v: &Value) -> i64 {
        match v {
            Value::Integer(i) => *i,
            _ => 0,
        }
    }

    /// The rows of the plugin's `tables`, for [`Backend::describe_data`].
    fn describe_rows(
        &self,
        plugin: &str,
        schema: &str,
        tables: &[Vec<Value>],
        max_bytes: usize,
    ) -> Result<Option<Vec<String>>> {
        let mut lines = Vec::new();
        let mut held = 0;
        for table in tables.iter().map(|r| Self::text(&r[0])) {
            // A row as PostgreSQL writes a row value, `(1,alice,)`, by its type's output
            // function called by name: `t::text` would take a cast the plugin made from its
            // table's row type, and run its function in this session. A long row is
            // described on the server as `described_row` does, so that the host never holds
            // it whole.
            let sql = format!(
                "SELECT CASE WHEN octet_length(r) <= {full} THEN r
                        ELSE left(r, {start}) || '… (' || octet_length(r) || ' bytes, sha256 '
                             || left(encode(sha256(convert_to(r, 'UTF8')), 'hex'), 32) || ')'
                        END
                   FROM (SELECT textin(record_out(t)) AS r FROM {}.{} t LIMIT {} OFFSET 0) AS rows",
                ident(schema),
                ident(&table),
                super::MAX_DESCRIBED_ROWS + 1 - lines.len(),
                full = super::ROW_IN_FULL,
                start = super::ROW_START,
            );
            let rows = self.host.text_rows(&sql).map_err(|e| {
                self.error(
                    &format!(
                        "cannot describe plugin {plugin}'s rows (wasmig reads them without \
                             their row security policies, which it does not run with its own \
                             rights)"
                    ),
                    e,
                )
            })?;
            for row in rows {
                let line = format!("row {table} {row}");
                held += super::held_bytes(&line);
                if held > max_bytes {
                    return Ok(None);
                }
                lines.push(line);
            }
            if lines.len() > super::MAX_DESCRIBED_ROWS {
                return Err(Error::Database {
                    path: self.label.clone(),
                    message: format!(
                        "plugin {plugin} has more than {} rows: too many to compare",
                        super::MAX_DESCRIBED_ROWS
                    ),
                });
            }
        }
        lines.sort();
        Ok(Some(lines))
    }
}

impl Backend for PgBackend {
    fn prepare_host_tables(&mut self) -> Result<()> {
        self.ensure_host_schema()
    }

    fn has_host_tables(&mut self) -> Result<bool> {
        if self.host_tables {
            return Ok(true);
        }
        let rows = self.host_run(
            "cannot read the schema",
            "SELECT pg_catalog.to_regclass('wasmig.applied') IS NOT NULL
                AND pg_catalog.to_regprocedure('wasmig.step_begin()') IS NOT NULL",
            vec![],
        )?;
        let exists = rows.first().is_some_and(|r| r[0] == Value::Integer(1));
        if exists {
            let meta = self.host_run(
                "cannot read the version of wasmig's tables",
                host_sql::read_meta(),
                vec![],
            )?;
            let text = |i: usize| meta.first().map(|r| Self::text(&r[i])).unwrap_or_default();
            let version = text(0);
            let known = host_sql::OLDEST_HOST_SCHEMA_VERSION..=host_sql::HOST_SCHEMA_VERSION;
            let Some(parsed) = version.parse::<i64>().ok().filter(|v| known.contains(v)) else {
                return Err(self.error(
                    "wasmig's tables",
                    format!(
                        "they are at version {version}, which this wasmig {} does not know \
                         (it writes version {}): the database was written by a newer wasmig",
                        env!("CARGO_PKG_VERSION"),
                        host_sql::HOST_SCHEMA_VERSION
                    ),
                ));
            };
            // The functions are as the wasmig that recorded them made them (the server's
            // digest of them, taken when they were made, still matches), and that wasmig is
            // this one or a newer one: runners of two versions at once do not replace each
            // other's at every run. (A change to the functions' signatures changes
            // HOST_SCHEMA_VERSION, which an older wasmig refuses.)
            let ours = semver::Version::parse(env!("CARGO_PKG_VERSION")).ok();
            let intact = !text(3).is_empty() && text(3) == text(4);
            self.host_functions_current = intact
                && (text(1) == host_sql::functions_sha256()
                    || semver::Version::parse(&text(2)).ok() > ours);
            self.host_version = parsed;
        }
        self.host_tables = exists;
        Ok(self.host_tables)
    }

    fn begin(&mut self, step: Option<&PluginAccess>) -> Result<()> {
        self.revive()?;
        self.ledger_row = None;
        self.step_inputs = None;
        if step.is_some() {
            self.transient = None;
        }
        match step {
            None => {
                self.host_batch("cannot begin a transaction", "BEGIN")?;
                self.open = Open::Host;
            }
            Some(access) => {
                let label = self.label.clone();
                let lock_ms = self.lock_timeout_ms();
                let deadline = Instant::now() + self.begin_bound();
                self.begin_deadline = Some(deadline);
                let plugin = self.plugin_session(access)?;
                // The step's transaction begins with the host's lock timeout, and its token
                // comes in the same round trip.
                let token = if plugin.in_transaction {
                    plugin.session.run(
                        "SELECT wasmig.step_begin()",
                        vec![],
                        Some(deadline),
                        usize::MAX,
                    )
                } else {
                    plugin.session.forget_savepoint();
                    plugin.in_transaction = true;
                    plugin.statistics_looked = false;
                    plugin.session.run_after(
                        &format!("BEGIN; SET LOCAL lock_timeout = {lock_ms}"),
                        "SELECT wasmig.step_begin()",
                        vec![],
                        Some(deadline),
                        usize::MAX,
                    )
                };
                let token = match token {
                    Ok(answer) => answer
                        .rows
                        .first()
                        .map(|r| Self::text(&r[0]))
                        .unwrap_or_default(),
                    Err(e) => {
                        self.begin_deadline = None;
                        if is_transient(&e) {
                            self.transient = Some(e.to_string());
                        }
                        let plugin = self.plugins.get_mut(&access.plugin).expect("just used");
                        let locked = matches!(&e, CallError::Db(db)
                            if db.code() == Some(&SqlState::LOCK_NOT_AVAILABLE));
                        if !matches!(e, CallError::Stuck(_)) {
                            let _ = plugin.session.batch("ROLLBACK", None);
                            plugin.in_transaction = false;
                        }
                        if locked {
                            return Err(Error::Locked {
                                path: label,
                                waited: self.options.lock_timeout,
                            });
                        }
                        let what = format!("cannot begin plugin {}'s step", access.plugin);
                        return Err(self.before_step_failed(&access.plugin, &what, e));
                    }
                };
                self.open = Open::Step {
                    plugin: access.plugin.clone(),
                    token,
                };
            }
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => Ok(()),
            Open::Host => self.host_batch("cannot commit", "COMMIT"),
            Open::Step { plugin, .. } => {
                // The ledger row, the commit and the end of the step's session state in one
                // round trip. A ledger row the server refuses leaves the transaction aborted,
                // which `COMMIT` then rolls back; one that never reached the server is
                // followed by nothing, and the session is ended (the server rolls back).
                let row = self.ledger_row.take();
                // What finds the ledger row, should the commit's outcome be unknown.
                let landmark = row
                    .as_ref()
                    .map(|params| (params[2].clone(), params[5].clone()));
                self.step_inputs = None;
                // Nothing of the plugin's should run at the commit (the guard refused what it
                // knew would); should some run all the same, it can write nothing (the
                // transaction is read-only) and takes no longer than a second past the step's
                // deadline, when the commit is cancelled, and its session ended a second
                // later if it does not stop.
                let deadline = self
                    .commit_deadline
                    .take()
                    .map(|d| d + session::CANCEL_GRACE);
                let committed = match self.plugins.get_mut(&plugin) {
                    Some(p) => {
                        let (recorded, [committed, ended]) = match row {
                            Some(params) => {
                                let (recorded, rest) = p.session.run_then(
                                    &p.host_turn,
                                    host_tables::RECORD_STEP,
                                    params,
                                    [COMMIT_STEP, END_STEP],
                                    deadline,
                                );
                                (recorded.map(|_| ()), rest)
                            }
                            None => {
                                let (committed, ended) =
                                    p.session.batch_pair(COMMIT_STEP, END_STEP, deadline);
                                (Ok(()), [committed, ended])
                            }
                        };
                        if let Err(err) = recorded {
                            p.in_transaction = false;
                            p.checked = None;
                            if matches!(err, CallError::Stuck(_)) {
                                // Still running after the cancel: the server ends the session,
                                // and with it the transaction and its locks. A commit the
                                // server had begun ends all the same (it holds off the end
                                // of the process until it is done, writing notifications
                                // included): once the session is gone, the ledger tells. It
                                // tells before, too, once the commit's record is written:
                                // what the server does after it (applying the session's
                                // LISTENs, which no one can interrupt) may take hours, and
                                // the step has committed all the same.
                                let pid = p.session.pid;
                                let terminated = self.terminate(&plugin);
                                if !terminated && self.landed(&plugin, &landmark)? {
                                    tracing::warn!(
                                        plugin,
                                        pid,
                                        "the step committed, more than a second past its \
                                         deadline; its server process is still at work after \
                                         the commit"
                                    );
                                    return Ok(());
                                }
                                let gone = terminated || self.ended(pid);
                                if gone && self.landed(&plugin, &landmark)? {
                                    tracing::warn!(
                                        plugin,
                                        "the step committed, more than a second past its deadline"
                                    );
                                    return Ok(());
                                }
                                if !gone {
                                    // Whether it commits is not known yet: the next attempt's
                                    // re-check tells.
                                    self.transient = Some(err.to_string());
                                }
                            } else if ended.is_err() {
                                self.plugins.remove(&plugin);
                            }
                            self.note_transient(&err);
                            // Without the server's answer (the connection went with the
                            // flight in it), the next attempt's re-check tells whether the
                            // step committed.
                            let what = match &err {
                                CallError::Db(e) if e.code() == Some(&SqlState::QUERY_CANCELED) => {
                                    commit_cancelled(&plugin)
                                }
                                CallError::Db(e) if e.code().is_some() => {
                                    "cannot write the ledger".to_string()
                                }
                                _ => format!("cannot commit plugin {plugin}'s step"),
                            };
                            return Err(self.error(&what, err));
                        }
                        p.statistics_set |= committed.is_ok() && p.statistics_looked;
                        p.statistics_looked = false;
                        p.committed = committed.is_ok().then(|| p.checked.take()).flatten();
                        p.in_transaction = false;
                        if let Err(e) = &ended {
                            // The next step logs in again.
                            tracing::debug!("plugin {plugin}'s session ends after its step: {e}");
                            self.plugins.remove(&plugin);
                        }
                        if let Err(CallError::Db(e)) = &committed
                            && e.code() == Some(&SqlState::QUERY_CANCELED)
                        {
                            let what = commit_cancelled(&plugin);
                            return Err(self.error(&what, committed.unwrap_err()));
                        }
                        committed
                    }
                    None => Err(CallError::Stuck(session::Stuck::Lost)),
                };
                if let Err(e) = &committed {
                    // Lost before the server answered: the next attempt's re-check tells
                    // whether the commit happened.
                    self.note_transient(e);
                }
                committed
                    .map_err(|e| self.error(&format!("cannot commit plugin {plugin}'s step"), e))
            }
        }
    }

    fn rollback(&mut self) -> Result<()> {
        self.turn = None;
        self.begin_deadline = None;
        self.ledger_row = None;
        self.step_inputs = None;
        for p in self.plugins.values_mut() {
            p.checked = None;
        }
        if self.open == Open::Host {
            let _ = self.host.batch("ROLLBACK", None);
        }
        self.open = Open::None;
        let open: Vec<String> = self
            .plugins
            .iter()
            .filter(|(_, p)| p.in_transaction)
            .map(|(name, _)| name.clone())
            .collect();
        for plugin in open {
            let rolled_back = self
                .plugins
                .get(&plugin)
                .map(|p| p.session.batch("ROLLBACK", None));
            if matches!(rolled_back, Some(Err(_))) {
                // A session that cannot roll back is ended: the server rolls back.
                self.terminate(&plugin);
            } else {
                self.end_step(&plugin);
            }
        }
        Ok(())
    }

    fn load_state(&mut self) -> Result<State> {
        PgBackend::load_state(self)
    }

    fn is_applied(&mut self, plugin: &str, version: &semver::Version) -> Result<bool> {
        PgBackend::is_applied(self, plugin, version)
    }

    fn record(&mut self, e: &LedgerEntry) -> Result<()> {
        PgBackend::record(self, e)
    }

    fn tables_around(
        &mut self,
        access: &PluginAccess,
        before: &super::SchemaMark,
    ) -> Result<(crate::destructive::Tables, crate::destructive::Tables)> {
        // Before: what the mark of a dry run's step recorded, or else what the host's
        // session sees, the committed state (a real step's transaction is the only one the
        // plugin's session has had since); now: what the step's own transaction sees. Read
        // from the catalogs' rows only: a function that opens a relation
        // (`pg_get_indexdef` and the like) would wait for the step's locks.
        let schema = names_of(&self.database, &access.plugin)
            .map_err(|e| self.error(&format!("plugin {}", access.plugin), e))?
            .schema;
        // Part of the step's checks: they end at its deadline, and hold at most
        // CATALOG_READ_MAX of what the plugin's DDL made.
        let deadline = self.checks_deadline;
        let label = self.label.clone();
        let failed = |e: CallError| Error::Database {
            path: label.clone(),
            message: match e {
                CallError::TooLarge(max) => format!(
                    "plugin {}'s tables have more columns than the host reads to compare them \
                     ({} MiB of their descriptions)",
                    access.plugin,
                    max >> 20
                ),
                e => format!("cannot describe plugin {}'s schema: {e}", access.plugin),
            },
        };
        // Only a step that updated or deleted a row of `pg_attribute` or `pg_type` (a column
        // dropped, renamed or retyped, a table dropped or renamed) can have destroyed one:
        // the session's
        // transaction counters say so (earlier transactions' unreported counts only add
        // comparisons), which the plugin can neither reset nor turn off (the comparison runs
        // when the server keeps none).
        let plugin = self.step_session(access)?;
        let touched =
            Self::host_turn_run(plugin, COLUMNS_TOUCHED, Vec::new(), deadline).map_err(failed)?;
        if matches!(touched.rows.first().map(|r| &r[0]), Some(Value::Integer(0))) {
            tracing::trace!("the step changed no table's columns");
            return Ok(Default::default());
        }
        let was = match before.get::<Mark>().and_then(|m| m.tables.clone()) {
            Some(tables) => tables,
            None => self
                .host
                .run(
                    TABLE_COLUMNS,
                    vec![Param::Text(schema.clone())],
                    deadline,
                    CATALOG_READ_MAX,
                )
                .map_err(failed)?
                .rows
                .iter()
                .map(|r| Self::text(&r[0]))
                .collect(),
        };
        let plugin = self.step_session(access)?;
        let now = Self::host_turn_run(plugin, TABLE_COLUMNS, vec![Param::Text(schema)], deadline)
            .map_err(failed)?;
        let now: Vec<String> = now.rows.iter().map(|r| Self::text(&r[0])).collect();
        Ok((super::tables_of(&was), super::tables_of(&now)))
    }

    fn describe_schema(&mut self, plugin: &str) -> Result<Vec<String>> {
        let schema = names_of(&self.database, plugin)
            .map_err(|e| self.error(&format!("plugin {plugin}"), e))?
            .schema;
        let rows = self.host_run(
            "cannot describe the plugin's schema",
            DESCRIBE_SCHEMA,
            vec![Param::Text(schema)],
        )?;
        let mut lines: Vec<String> = rows.iter().map(|r| Self::text(&r[0])).collect();
        lines.sort();
        Ok(lines)
    }

    fn describe_data(&mut self, plugin: &str, max_bytes: usize) -> Result<Option<Vec<String>>> {
        let schema = names_of(&self.database, plugin)
            .map_err(|e| self.error(&format!("plugin {plugin}"), e))?
            .schema;
        let tables = self.host_run(
            "cannot describe the plugin's rows",
            "SELECT c.relname::text FROM pg_catalog.pg_class c
              WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
                AND c.relkind IN ('r', 'p') ORDER BY 1",
            vec![Param::Text(schema.clone())],
        )?;
        // Reading a table runs no code of the plugin's but its row security policies, which
        // would run in this session with the host's rights (a policy's function may make
        // itself run as its caller). Without row security the server refuses the read of a
        // table whose policies apply instead of running them.
        self.host
            .run_host("SET row_security = off", Vec::new())
            .map_err(|e| self.error("cannot describe the plugin's rows", e))?;
        let described = self.describe_rows(plugin, &schema, &tables, max_bytes);
        let reset = self.host.run_host("RESET row_security", Vec::new());
        let lines = described?;
        reset.map_err(|e| self.error("cannot describe the plugin's rows", e))?;
        Ok(lines)
    }

    fn ledger(&mut self, query: &crate::LedgerQuery) -> Result<Vec<LedgerEntry>> {
        PgBackend::ledger(self, query)
    }

    fn ledger_head(&mut self) -> Result<i64> {
        if !self.has_host_tables()? {
            return Ok(0);
        }
        let rows = self.host_run(
            "cannot read the ledger",
            "SELECT coalesce(max(id), 0)::bigint FROM wasmig.ledger",
            Vec::new(),
        )?;
        Ok(rows.first().map_or(0, |r| Self::int(&r[0])))
    }

    fn store_component(
        &mut self,
        sha256: &str,
        bytes: &[u8],
        manifest: &crate::Manifest,
    ) -> Result<()> {
        PgBackend::store_component(self, sha256, bytes, manifest)
    }

    fn load_component(&mut self, sha256: &str) -> Result<Option<Vec<u8>>> {
        PgBackend::load_component(self, sha256)
    }

    fn stored_manifests(
        &mut self,
        sha256s: Option<&[String]>,
    ) -> Result<BTreeMap<String, crate::Manifest>> {
        PgBackend::stored_manifests(self, sha256s)
    }

    fn mark_schema(&mut self, access: &PluginAccess) -> Result<super::SchemaMark> {
        PgBackend::mark_schema(self, access)
    }

    fn verify_step(
        &mut self,
        access: &PluginAccess,
        before: super::SchemaMark,
    ) -> Result<StepCheck> {
        PgBackend::verify_step(self, access, before)
    }

    fn run_begins(&mut self, plugins: &[PluginAccess]) {
        self.provision_ahead(plugins);
    }

    fn upcoming(&mut self, next: &PluginAccess) {
        self.prepare_session(next);
    }

    fn enter_plugin(&mut self, access: &PluginAccess, limits: SqlLimits) -> Result<()> {
        self.begin_deadline = None;
        self.step_session(access)?.session.reset_with_next();
        let idle_watch = self
            .plugins
            .get(&access.plugin)
            .map(|plugin| plugin.session.watch_idle(&self.host));
        self.growth_quota = limits.max_growth_bytes;
        self.turn = Some(Turn {
            plugin: access.plugin.clone(),
            limits,
            changed: 0,
            parallel: false,
            _idle_watch: idle_watch,
        });
        Ok(())
    }

    fn leave_plugin(&mut self) -> Result<u64> {
        let Some(turn) = self.turn.as_ref() else {
            return Ok(0);
        };
        // Deferred triggers and constraint checks run now, as the plugin's last statement and
        // within its deadline, not at the commit, after the guard.
        let deadline = turn.limits.deadline;
        let plugin_name = turn.plugin.clone();
        self.checks_deadline = Some(deadline);
        if Instant::now() >= deadline {
            self.turn = None;
            return Err(self.error(
                &format!("plugin {plugin_name}"),
                "the step was still running at its deadline",
            ));
        }
        if turn.parallel {
            self.turn = None;
            return Err(self.error(
                &format!("plugin {plugin_name}: limit reached"),
                CallError::Parallel,
            ));
        }
        if let Some(lock) = self
            .plugins
            .get(&plugin_name)
            .and_then(|plugin| plugin.session.foreign_lock())
        {
            self.turn = None;
            self.plugins.remove(&plugin_name);
            return Err(self.error(
                &format!("plugin {plugin_name}"),
                format!("access denied: {}", foreign_lock_message(&lock)),
            ));
        }
        // Then, in the same round trip, the session closes every cursor (a cursor declared
        // WITH HOLD runs its whole query at the commit, after the guard), goes back to the
        // host's settings, sets the statistics targets that ANALYZE must leave out and gives
        // up the plugin's advisory locks (a failure stops the batch at its statement).
        let fired = match self.plugins.get(&plugin_name) {
            Some(plugin) => {
                plugin.session.forget_reset();
                plugin.session.batch(
                    &format!(
                        "{}SET CONSTRAINTS ALL IMMEDIATE; CLOSE ALL; {}; \
                         SELECT wasmig.no_statistics({}, {}); \
                         SELECT pg_catalog.pg_advisory_unlock_all()",
                        plugin.session.release_savepoint(),
                        plugin.host_turn,
                        literal(&plugin.names.schema),
                        !plugin.statistics_set
                    ),
                    Some(deadline),
                )
            }
            // Gone (ended past its deadline): nothing to check, and nothing to commit.
            None => Err(CallError::Stuck(session::Stuck::Lost)),
        };
        if let Err(e) = fired {
            let (SqlError::AccessDenied(e)
            | SqlError::Constraint(e)
            | SqlError::Syntax(e)
            | SqlError::Limit(e)
            | SqlError::Other(e)) = self.sql_error(e);
            self.turn = None;
            return Err(self.error(
                &format!(
                    "plugin {plugin_name}'s deferred triggers and checks, or the host's reset \
                     of its statistics targets and storage parameters (wasmig.no_statistics), \
                     failed"
                ),
                e,
            ));
        }
        if let Some(plugin) = self.plugins.get_mut(&plugin_name) {
            plugin.statistics_looked = !plugin.statistics_set;
        }
        let turn = self.turn.take().expect("checked above");
        Ok(turn.changed)
    }

    fn execute(
        &mut self,
        statement: &str,
        params: &[ValueRef<'_>],
    ) -> std::result::Result<u64, SqlError> {
        self.plugin_run(statement, params)
            .map(|a| a.changed.unwrap_or(0))
    }

    fn query(
        &mut self,
        statement: &str,
        params: &[ValueRef<'_>],
    ) -> std::result::Result<Rows, SqlError> {
        self.plugin_run(statement, params).map(|a| Rows {
            columns: a.columns,
            rows: a.rows,
        })
    }

    fn execute_many(
        &mut self,
        statement: &str,
        rows: &[&[ValueRef<'_>]],
    ) -> std::result::Result<u64, SqlError> {
        if rows.is_empty() {
            // No rows: the statement is still checked, as on SQLite.
            return self.plugin_statement(statement, &[], true).map(|_| 0);
        }
        let mut changed = 0;
        for row in rows {
            changed += self.execute(statement, row)?;
        }
        Ok(changed)
    }

    fn execute_script(
        &mut self,
        script: &str,
        ran: &mut dyn FnMut(ScriptStep<'_>),
    ) -> std::result::Result<(), SqlError> {
        // Checked, then sent a window at a time, each in one round trip, up to the first that
        // is refused; what runs is what running them one by one would run. A window bounds
        // what the host holds for statements sent and not yet answered: a script may hold
        // millions of statements.
        let mut rest = statements::split(script);
        loop {
            let mut sent = Vec::new();
            let mut refused = None;
            let mut bytes = 0;
            for statement in rest.by_ref() {
                if let Err(e) = too_long(statement) {
                    refused = Some((statement, e));
                    break;
                }
                match statements::check_kind(statement).map_err(SqlError::AccessDenied) {
                    Ok(checked) => {
                        bytes += statement.len();
                        sent.push((statement, checked));
                        if sent.len() >= SCRIPT_WINDOW || bytes >= SCRIPT_WINDOW_BYTES {
                            break;
                        }
                    }
                    Err(e) => {
                        refused = Some((statement, e));
                        break;
                    }
                }
            }
            let refusal = |ran: &mut dyn FnMut(ScriptStep<'_>)| match refused {
                Some((statement, e)) => {
                    ran(ScriptStep::Ran(statement));
                    ran(ScriptStep::Failed { whole: true });
                    Err(e)
                }
                None => Ok(()),
            };
            if sent.is_empty() {
                return refusal(ran);
            }
            let (turn, session) = self.plugin_turn()?;
            let deadline = turn.limits.deadline;
            let texts = sent
                .iter()
                .map(|(_, checked)| statements::numbered_parameters(&checked.text).into_owned())
                .collect();
            let (count, answers, failed) =
                session.session.run_script_guarded(texts, Some(deadline));
            for (statement, _) in sent.iter().take(count) {
                ran(ScriptStep::Ran(statement));
            }
            let changed: u64 = answers
                .iter()
                .zip(&sent)
                .filter(|(_, (_, checked))| statements::changes_rows(&checked.kind))
                .map(|(a, _)| a.changed.unwrap_or(0))
                .sum();
            if let Some(turn) = &mut self.turn {
                turn.changed += changed;
            }
            if let Some(e) = failed {
                // The last statement run is the one that failed, undone by its savepoint.
                if count > 0 {
                    ran(ScriptStep::Failed { whole: true });
                }
                return Err(self.sql_error(e));
            }
            refusal(ran)?;
        }
    }

    fn transient_reason(&self) -> Option<&str> {
        self.transient.as_deref()
    }

    fn take_transient(&mut self) -> Option<String> {
        self.transient.take()
    }

    fn running(&mut self, _step: Option<&LedgerEntry>) {}

    fn record_abandoned(&mut self) -> Result<()> {
        Ok(())
    }
}
