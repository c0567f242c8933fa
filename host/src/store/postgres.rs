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
mod session;
mod statements;
mod values;

use super::{
    Backend, BackendOptions, Direction, LedgerEntry, Outcome, PluginAccess, Rows, SqlError,
    SqlLimits, StepCheck, Value, ValueRef,
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

/// A plugin's role and schema names on this database.
#[derive(Debug, Clone)]
struct Names {
    role: String,
    schema: String,
}

/// `wasmig/<database>/<plugin>` (roles are shared by a server's databases) and the plugin's
/// namespace without its trailing `__` (`knowledge-base` → `knowledge_base`).
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

/// The plugin whose statements run now.
struct Turn {
    plugin: String,
    limits: SqlLimits,
    changed: u64,
}

/// The schema as one plugin saw it before a step.
struct Mark {
    plugin: String,
    objects: BTreeSet<String>,
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
    /// The secret the plugin roles' passwords are derived from (`wasmig.meta`).
    secret: Option<String>,
    /// Why the current step failed for a reason of the database's that may pass (see
    /// [`is_transient`]).
    transient: Option<String>,
    /// SCRAM verifiers of the plugin roles' passwords, by role: each costs thousands of
    /// hash iterations to make.
    verifiers: BTreeMap<String, String>,
}

/// Whether the server gave up waiting for a lock (`lock_timeout`).
fn is_lock_timeout(e: &CallError) -> bool {
    matches!(e, CallError::Db(db) if db.code() == Some(&SqlState::LOCK_NOT_AVAILABLE))
}

/// Whether an error is one that trying again may not meet: a deadlock, a serialization
/// failure, the server shutting down or starting up, a lost or refused connection.
fn is_transient(e: &CallError) -> bool {
    match e {
        CallError::Db(e) => match e.code() {
            Some(code) => {
                code == &SqlState::T_R_SERIALIZATION_FAILURE
                    || code == &SqlState::T_R_DEADLOCK_DETECTED
                    || code == &SqlState::ADMIN_SHUTDOWN
                    || code == &SqlState::CRASH_SHUTDOWN
                    || code == &SqlState::CANNOT_CONNECT_NOW
                    || code.code().starts_with("08")
            }
            // No server error: the connection failed or closed.
            None => true,
        },
        CallError::Cancelled | CallError::Stuck | CallError::TooLarge(_) => false,
        CallError::Unsupported(_) => false,
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
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
        let database = config
            .get_dbname()
            .or(config.get_user())
            .ok_or_else(|| fail("the URL names no database".into()))?
            .to_string();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wasmig-postgres")
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
            secret: None,
            transient: None,
            verifiers: BTreeMap::new(),
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

    /// Creates the host's schema, tables and functions if missing, committed at once (also
    /// in a dry run: plugin roles need them to log in and to record steps).
    fn ensure_host_schema(&mut self) -> Result<()> {
        if self.host_tables {
            return Ok(());
        }
        let sql = format!(
            "BEGIN; SET LOCAL lock_timeout = {}; SELECT pg_catalog.pg_advisory_xact_lock({}); \
             {} {} COMMIT;",
            self.lock_timeout_ms(),
            host_sql::LOCK_KEY,
            host_sql::HOST_SCHEMA,
            guard::functions()
        );
        let label = self.label.clone();
        let waited = self.options.lock_timeout;
        let session = self.setup_session()?;
        let created = session.batch(&sql, None);
        if created.is_err() {
            let _ = session.batch("ROLLBACK", None);
        }
        if let Err(e) = &created
            && is_lock_timeout(e)
        {
            return Err(Error::Locked {
                path: label,
                waited,
            });
        }
        created.map_err(|e| Error::Database {
            path: label,
            message: format!(
                "cannot create wasmig's schema and tables: {e} (the role wasmig connects as \
                 needs CREATE on the database)"
            ),
        })?;
        self.host_tables = true;
        Ok(())
    }

    /// The password of a plugin's role: derived from the database's secret, so every runner
    /// logs in with the same one and none has to tell another.
    fn password(&mut self, role: &str) -> Result<String> {
        if self.secret.is_none() {
            // Made with wasmig's tables, under the host's lock: every runner reads the same.
            self.ensure_host_schema()?;
            let label = self.label.clone();
            let session = self.setup_session()?;
            let rows = session
                .run(
                    "SELECT value FROM wasmig.meta WHERE key = 'role_secret'",
                    vec![],
                    None,
                    HOST_MAX_RESULT,
                )
                .map_err(|e| Error::Database {
                    path: label.clone(),
                    message: format!("cannot read the plugin roles' secret: {e}"),
                })?
                .rows;
            let secret = rows
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next())
                .and_then(|v| match v {
                    Value::Text(t) if !t.is_empty() => Some(t),
                    _ => None,
                })
                .ok_or_else(|| Error::Database {
                    path: label,
                    message: "wasmig.meta holds no secret for the plugin roles".into(),
                })?;
            self.secret = Some(secret);
        }
        let secret = self.secret.as_deref().unwrap_or_default();
        Ok(hex::encode(Sha256::digest(format!("{secret}:{role}"))))
    }

    /// A SCRAM verifier of the role's password, for `ALTER ROLE … PASSWORD`: the password
    /// itself never reaches the server's logs.
    fn verifier(&mut self, role: &str) -> Result<String> {
        if let Some(v) = self.verifiers.get(role) {
            return Ok(v.clone());
        }
        let password = self.password(role)?;
        let v = postgres_protocol::password::scram_sha_256(password.as_bytes());
        self.verifiers.insert(role.to_string(), v.clone());
        Ok(v)
    }

    /// Creates (or brings up to date) the plugin's role and schema, and grants its reads.
    fn provision(&mut self, access: &PluginAccess) -> Result<Names> {
        self.ensure_host_schema()?;
        let names = names_of(&self.database, &access.plugin)
            .map_err(|e| self.error(&format!("plugin {}", access.plugin), e))?;
        let verifier = self.verifier(&names.role)?;
        let (role, schema) = (ident(&names.role), ident(&names.schema));
        let mut sql = format!(
            "BEGIN;
             SET LOCAL lock_timeout = {lock_ms};
             SELECT pg_catalog.pg_advisory_xact_lock({lock});
             DO $wasmig$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {role_lit}) THEN
                 CREATE ROLE {role} LOGIN NOINHERIT;
               END IF;
               IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace
                           WHERE nspname = {schema_lit}
                             AND nspowner <> (SELECT oid FROM pg_catalog.pg_roles
                                               WHERE rolname = {role_lit})) THEN
                 RAISE EXCEPTION 'the schema % exists and is not the plugin''s: wasmig gives \
                   each plugin a schema of its own, named after it', {schema_lit};
               END IF;
             END $wasmig$;
             ALTER ROLE {role} WITH LOGIN NOCREATEDB NOCREATEROLE NOINHERIT
                 CONNECTION LIMIT -1 PASSWORD {verifier};
             DO $wasmig$ BEGIN
               IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                           WHERE rolname = {role_lit}
                             AND (rolsuper OR rolreplication OR rolbypassrls)) THEN
                 RAISE EXCEPTION 'the role % has rights beyond its schema (superuser, \
                   replication or bypassrls): wasmig does not run a plugin as it', {role_lit};
               END IF;
               IF EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                           JOIN pg_catalog.pg_roles r ON r.oid = m.member
                          WHERE r.rolname = {role_lit}) THEN
                 RAISE EXCEPTION 'the role % is a member of another role: wasmig runs a plugin \
                   only as a role that can become no other', {role_lit};
               END IF;
             END $wasmig$;
             GRANT {role} TO CURRENT_USER;
             CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {role};
             REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;
             ALTER ROLE {role} RESET ALL;
             ALTER ROLE {role} IN DATABASE {database} RESET ALL;
             ALTER ROLE {role} SET search_path = {schema};
             ALTER ROLE {role} SET temp_file_limit = {temp_kb};
             ALTER ROLE {role} SET client_connection_check_interval = 1000;
             GRANT USAGE ON SCHEMA wasmig TO {role};
             GRANT EXECUTE ON FUNCTION {functions}, {guard} TO {role};
             INSERT INTO wasmig.plugin_role (role, plugin) VALUES ({role_lit}, {plugin_lit})
                 ON CONFLICT DO NOTHING;",
            lock = host_sql::LOCK_KEY,
            lock_ms = self.lock_timeout_ms(),
            role_lit = literal(&names.role),
            schema_lit = literal(&names.schema),
            plugin_lit = literal(&access.plugin),
            database = ident(&self.database),
            verifier = literal(&verifier),
            temp_kb = (self.options.max_temp_bytes / 1024).clamp(1, i32::MAX as u64),
            functions = host_sql::PLUGIN_FUNCTIONS,
            guard = guard::SIGNATURES,
        );
        // The reads the policy grants now, and no others: what an earlier policy granted and
        // this one does not is revoked.
        let reads: Vec<String> = access.reads.iter().map(|r| literal(r)).collect();
        sql.push_str(&format!(
            "DELETE FROM wasmig.plugin_read WHERE reader = {plugin_lit};
             DO $wasmig$ DECLARE r record; BEGIN
               FOR r IN SELECT n.nspname FROM wasmig.plugin_role p
                          JOIN pg_catalog.pg_namespace n
                            ON n.nspowner = (SELECT oid FROM pg_catalog.pg_roles
                                              WHERE rolname = p.role)
                         WHERE p.plugin <> {plugin_lit} AND p.plugin <> ALL (ARRAY[{reads}]::text[])
                           AND EXISTS (SELECT 1 FROM pg_catalog.aclexplode(n.nspacl) a
                                        WHERE a.grantee = (SELECT oid FROM pg_catalog.pg_roles
                                                            WHERE rolname = {role_lit}))
               LOOP
                 EXECUTE pg_catalog.format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I',
                                           r.nspname, {role_lit});
                 EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA %I FROM %I', r.nspname, {role_lit});
               END LOOP;
             END $wasmig$;",
            plugin_lit = literal(&access.plugin),
            role_lit = literal(&names.role),
            reads = reads.join(", "),
        ));
        for reader in &access.reads {
            let other = names_of(&self.database, reader)
                .map_err(|e| self.error(&format!("plugin {reader}"), e))?;
            sql.push_str(&format!(
                "INSERT INTO wasmig.plugin_read (reader, plugin) VALUES ({}, {});",
                literal(&access.plugin),
                literal(reader)
            ));
            sql.push_str(&format!(
                "DO $wasmig$ BEGIN
                   IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {lit}) THEN
                     EXECUTE 'GRANT USAGE ON SCHEMA ' || {q} || ' TO ' || {me};
                     EXECUTE 'GRANT SELECT ON ALL TABLES IN SCHEMA ' || {q} || ' TO ' || {me};
                   END IF;
                 END $wasmig$;",
                lit = literal(&other.schema),
                q = literal(&ident(&other.schema)),
                me = literal(&role),
            ));
        }
        sql.push_str("COMMIT;");
        let label = self.label.clone();
        let session = self.setup_session()?;
        let done = session.batch(&sql, None);
        if let Err(e) = done {
            let _ = session.batch("ROLLBACK", None);
            if is_lock_timeout(&e) {
                return Err(Error::Locked {
                    path: label,
                    waited: self.options.lock_timeout,
                });
            }
            let hint = match &e {
                CallError::Db(db) if db.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                    " (the role wasmig connects as needs CREATEROLE, CREATE on the database and \
                     `GRANT SET ON PARAMETER temp_file_limit` to it, or to be a superuser)"
                }
                _ => "",
            };
            return Err(Error::Database {
                path: label,
                message: format!(
                    "cannot set up plugin {}'s role and schema: {e}{hint}",
                    access.plugin
                ),
            });
        }
        Ok(names)
    }

    /// The plugin's session, logging in as its role (and creating the role) if needed.
    fn plugin_session(&mut self, access: &PluginAccess) -> Result<&mut PluginSession> {
        let alive = self
            .plugins
            .get(&access.plugin)
            .is_some_and(|p| !p.session.is_closed());
        if !alive {
            // One plugin's session at a time outside a dry run: a run over a hundred plugins
            // holds one server connection for them, not a hundred.
            self.plugins.retain(|_, p| p.in_transaction);
            self.plugins.remove(&access.plugin);
            let names = self.provision(access)?;
            let password = self.password(&names.role)?;
            let mut config = self.config.clone();
            // Settings in the startup packet outrank the role's and the database's, and are
            // what `RESET ALL` returns to: whatever the plugin makes of its role's settings,
            // its sessions and the host's statements on them start from these.
            config
                .user(&names.role)
                .password(password)
                .application_name(format!("wasmig plugin {}", access.plugin))
                .options(format!(
                    "-c search_path={} -c standard_conforming_strings=on \
                     -c client_connection_check_interval=1000 -c row_security=on \
                     -c default_transaction_read_only=off \
                     -c default_transaction_isolation=read\\ committed",
                    names.schema
                ));
            let connected = Session::connect(self.handle(), &config, CONNECT_TIMEOUT);
            if let Err(e) = &connected
                && is_transient(e)
            {
                // The server was unreachable or went away: worth another attempt.
                self.transient.get_or_insert_with(|| e.to_string());
            }
            let session = connected.map_err(|e| {
                self.error(
                    &format!(
                        "cannot log in as plugin {}'s role {:?} (wasmig runs a plugin's SQL \
                             in a session of its own role, which must be able to log in with a \
                             password from here: see pg_hba.conf)",
                        access.plugin, names.role
                    ),
                    e,
                )
            })?;
            self.plugins.insert(
                access.plugin.clone(),
                PluginSession {
                    names,
                    session,
                    in_transaction: false,
                },
            );
        }
        Ok(self.plugins.get_mut(&access.plugin).expect("just made"))
    }

    /// The plugin's session with a transaction open on it (a dry run opens one per plugin).
    fn step_session(&mut self, access: &PluginAccess) -> Result<&mut PluginSession> {
        let label = self.label.clone();
        let plugin = self.plugin_session(access)?;
        if !plugin.in_transaction {
            plugin
                .session
                .batch("BEGIN", None)
                .map_err(|e| Error::Database {
                    path: label,
                    message: format!("cannot begin plugin {}'s transaction: {e}", access.plugin),
                })?;
            plugin.in_transaction = true;
        }
        Ok(plugin)
    }

    /// Host statements on a plugin's session: the session's settings back to the role's,
    /// and names resolved in the system catalogs first, whatever the plugin set.
    fn host_turn(plugin: &PluginSession) -> std::result::Result<(), CallError> {
        plugin
            .session
            .batch("RESET ALL; SET search_path = pg_catalog, pg_temp", None)
    }

    /// Ends a plugin's session state between steps: its temporary objects, session locks,
    /// listeners and settings go.
    fn end_step(&mut self, plugin: &str) {
        if let Some(p) = self.plugins.get_mut(plugin) {
            p.in_transaction = false;
            // DISCARD ALL but its DISCARD PLANS: the guard's plans stay cached for the
            // plugin's next step.
            let reset = "CLOSE ALL; UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all(); \
                         DISCARD TEMP; DISCARD SEQUENCES; DEALLOCATE ALL; RESET ALL";
            if p.session.batch(reset, None).is_err() {
                self.plugins.remove(plugin);
            }
        }
    }

    /// Stops a plugin's session whose statement outlived its cancel: the server ends the
    /// process and rolls its transaction back.
    fn terminate(&mut self, plugin: &str) {
        if let Some(p) = self.plugins.remove(plugin) {
            let terminated = self.host.run(
                "SELECT pg_catalog.pg_terminate_backend($1::int, 5000)",
                vec![Param::Integer(p.session.pid as i64)],
                Some(Instant::now() + Duration::from_secs(10)),
                1024,
            );
            if let Err(e) = terminated {
                tracing::warn!(plugin, "cannot terminate the plugin's session: {e}");
            }
        }
    }

    fn sql_error(&mut self, e: CallError) -> SqlError {
        self.note_transient(&e);
        match e {
            CallError::Db(e) => {
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
            CallError::Stuck => {
                if let Some(turn) = &self.turn {
                    let plugin = turn.plugin.clone();
                    self.terminate(&plugin);
                }
                SqlError::Limit(
                    "the statement was still running past the step's deadline; its session \
                     was terminated"
                        .to_string(),
                )
            }
            CallError::TooLarge(_) => SqlError::Limit(e.to_string()),
            CallError::Unsupported(what) => SqlError::Other(what),
        }
    }

    /// Runs one of the plugin's statements in its turn.
    fn plugin_run(
        &mut self,
        statement: &str,
        params: &[ValueRef<'_>],
    ) -> std::result::Result<session::Answer, SqlError> {
        let kind = statements::check_kind(statement).map_err(SqlError::AccessDenied)?;
        let Some(turn) = &self.turn else {
            return Err(SqlError::AccessDenied(
                "no plugin step is running".to_string(),
            ));
        };
        let (deadline, max_bytes) = (turn.limits.deadline, turn.limits.max_result_bytes);
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
        let plugin = turn.plugin.clone();
        let Some(session) = self.plugins.get(&plugin) else {
            return Err(SqlError::Other(
                "the plugin's session has ended".to_string(),
            ));
        };
        let statement = statements::numbered_parameters(statement);
        match session
            .session
            .run_guarded(&statement, params, Some(deadline), max_bytes, true)
        {
            Ok(mut answer) => {
                if !statements::changes_rows(&kind) {
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
        self.host_tables = rows.first().is_some_and(|r| r[0] == Value::Integer(1));
        if self.host_tables {
            let version = self.host_run(
                "cannot read the version of wasmig's tables",
                "SELECT value FROM wasmig.meta WHERE key = 'schema_version'",
                vec![],
            )?;
            let version = version
                .first()
                .map(|r| Self::text(&r[0]))
                .unwrap_or_default();
            if version.parse::<i64>() != Ok(host_sql::HOST_SCHEMA_VERSION) {
                return Err(self.error(
                    "wasmig's tables",
                    format!(
                        "they are at version {version}, which this wasmig {} does not know \
                         (it writes version {}): the database was written by a newer wasmig",
                        env!("CARGO_PKG_VERSION"),
                        host_sql::HOST_SCHEMA_VERSION
                    ),
                ));
            }
        }
        Ok(self.host_tables)
    }

    fn begin(&mut self, step: Option<&PluginAccess>) -> Result<()> {
        self.revive()?;
        if step.is_some() {
            self.transient = None;
        }
        match step {
            None => {
                self.host_batch("cannot begin a transaction", "BEGIN")?;
                self.open = Open::Host;
            }
            Some(access) => {
                let lock_ms = self.lock_timeout_ms();
                let label = self.label.clone();
                let plugin = self.step_session(access)?;
                let token = plugin
                    .session
                    .batch(&format!("SET LOCAL lock_timeout = {lock_ms}"), None)
                    .and_then(|()| {
                        plugin
                            .session
                            .run_host("SELECT wasmig.step_begin()", vec![])
                    });
                let token = match token {
                    Ok(answer) => answer
                        .rows
                        .first()
                        .map(|r| Self::text(&r[0]))
                        .unwrap_or_default(),
                    Err(e) => {
                        if is_transient(&e) {
                            self.transient = Some(e.to_string());
                        }
                        let plugin = self.plugins.get_mut(&access.plugin).expect("just used");
                        let locked = matches!(&e, CallError::Db(db)
                            if db.code() == Some(&SqlState::LOCK_NOT_AVAILABLE));
                        let _ = plugin.session.batch("ROLLBACK", None);
                        plugin.in_transaction = false;
                        if locked {
                            return Err(Error::Locked {
                                path: label,
                                waited: self.options.lock_timeout,
                            });
                        }
                        return Err(Error::Database {
                            path: label,
                            message: format!("cannot begin plugin {}'s step: {e}", access.plugin),
                        });
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
                let committed = match self.plugins.get(&plugin) {
                    Some(p) => p.session.batch("COMMIT", None),
                    None => Err(CallError::Stuck),
                };
                if let Err(e) = &committed {
                    // Lost before the server answered: the next attempt's re-check tells
                    // whether the commit happened.
                    self.note_transient(e);
                }
                self.end_step(&plugin);
                committed
                    .map_err(|e| self.error(&format!("cannot commit plugin {plugin}'s step"), e))
            }
        }
    }

    fn rollback(&mut self) -> Result<()> {
        self.turn = None;
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
        if !self.has_host_tables()? {
            return Ok(State::default());
        }
        let rows = self.host_run(
            "cannot read the applied state",
            "SELECT plugin, version, checksum, component_sha256, plugin_version, applied_at_ms
               FROM wasmig.applied",
            vec![],
        )?;
        let mut state = State::default();
        for r in rows {
            let plugin = Self::text(&r[0]);
            let parse = |v: &str| {
                semver::Version::parse(v).map_err(|e| {
                    self.error(
                        "corrupt applied state",
                        format!("plugin {plugin}: {v:?}: {e}"),
                    )
                })
            };
            let version = parse(&Self::text(&r[1]))?;
            let step = AppliedStep {
                version: version.clone(),
                checksum: Self::text(&r[2]),
                component_sha256: Self::text(&r[3]),
                plugin_version: parse(&Self::text(&r[4]))?,
                applied_at_ms: Self::int(&r[5]),
            };
            state
                .applied
                .entry(plugin)
                .or_default()
                .insert(version, step);
        }
        Ok(state)
    }

    fn is_applied(&mut self, plugin: &str, version: &semver::Version) -> Result<bool> {
        self.revive()?;
        // The step's transaction holds the lock: the host's session, which commits nothing
        // meanwhile, sees every step other runners committed before it was taken.
        let rows = self.host_run(
            "cannot read the applied state",
            "SELECT EXISTS (SELECT 1 FROM wasmig.applied WHERE plugin = $1 AND version = $2)",
            vec![
                Param::Text(plugin.to_string()),
                Param::Text(version.to_string()),
            ],
        )?;
        Ok(rows.first().is_some_and(|r| r[0] == Value::Integer(1)))
    }

    fn record(&mut self, e: &LedgerEntry) -> Result<()> {
        let statements = serde_json::to_string(&e.statements).expect("strings serialize");
        if let Open::Step { plugin, token } = &self.open
            && e.outcome == Outcome::Succeeded
        {
            if plugin != &e.plugin {
                return Err(self.error(
                    "cannot write the ledger",
                    format!("a step of {} in plugin {plugin}'s transaction", e.plugin),
                ));
            }
            let params = vec![
                Param::Text(token.clone()),
                Param::Text(e.plugin_version.clone()),
                Param::Text(e.version.clone()),
                Param::Text(e.description.clone()),
                Param::Text(e.direction.as_str().to_string()),
                Param::Integer(e.started_at_ms),
                Param::Integer(e.duration_us),
                Param::Text(e.checksum.clone()),
                Param::Text(e.component_sha256.clone()),
                Param::Text(e.wasmig_version.clone()),
                Param::Text(statements),
                e.note.clone().map_or(Param::Null, Param::Text),
            ];
            let session = self.plugins.get(plugin).ok_or_else(|| {
                self.error("cannot write the ledger", "the plugin's session has ended")
            })?;
            return Self::host_turn(session)
                .and_then(|()| {
                    session.session.run_host(
                        "SELECT wasmig.record_step($1, $2, $3, $4, $5, $6::bigint, $7::bigint, \
                         $8, $9, $10, $11, $12::text)",
                        params,
                    )
                })
                .map(|_| ())
                .map_err(|err| {
                    if is_transient(&err) {
                        self.transient.get_or_insert_with(|| err.to_string());
                    }
                    self.error("cannot write the ledger", err)
                });
        }
        // The host's own transaction: a failure, or a dry run's step.
        let rows = self.host_run(
            "cannot write the ledger",
            "INSERT INTO wasmig.ledger (plugin, plugin_version, version, description,
                 direction, outcome, error, started_at_ms, duration_us, checksum,
                 component_sha256, wasmig_version, statements, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7::text, $8::bigint, $9::bigint, $10, $11, $12,
                     $13, $14::text)
             RETURNING id",
            vec![
                Param::Text(e.plugin.clone()),
                Param::Text(e.plugin_version.clone()),
                Param::Text(e.version.clone()),
                Param::Text(e.description.clone()),
                Param::Text(e.direction.as_str().to_string()),
                Param::Text(e.outcome.as_str().to_string()),
                e.error.clone().map_or(Param::Null, Param::Text),
                Param::Integer(e.started_at_ms),
                Param::Integer(e.duration_us),
                Param::Text(e.checksum.clone()),
                Param::Text(e.component_sha256.clone()),
                Param::Text(e.wasmig_version.clone()),
                Param::Text(statements),
                e.note.clone().map_or(Param::Null, Param::Text),
            ],
        )?;
        if e.outcome == Outcome::Succeeded {
            let id = rows.first().map(|r| Self::int(&r[0])).unwrap_or(0);
            let changed = match e.direction {
                Direction::Up => self.host.run(
                    "INSERT INTO wasmig.applied (plugin, version, checksum, component_sha256,
                         plugin_version, applied_at_ms, ledger_id)
                     VALUES ($1, $2, $3, $4, $5, $6::bigint, $7::bigint)",
                    vec![
                        Param::Text(e.plugin.clone()),
                        Param::Text(e.version.clone()),
                        Param::Text(e.checksum.clone()),
                        Param::Text(e.component_sha256.clone()),
                        Param::Text(e.plugin_version.clone()),
                        Param::Integer(e.started_at_ms),
                        Param::Integer(id),
                    ],
                    None,
                    HOST_MAX_RESULT,
                ),
                Direction::Down => self.host.run(
                    "DELETE FROM wasmig.applied WHERE plugin = $1 AND version = $2",
                    vec![
                        Param::Text(e.plugin.clone()),
                        Param::Text(e.version.clone()),
                    ],
                    None,
                    HOST_MAX_RESULT,
                ),
            }
            .map_err(|err| self.error("cannot update the applied state", err))?;
            if changed.changed != Some(1) {
                return Err(self.error(
                    "cannot update the applied state",
                    format!(
                        "plugin {} step {} is not what the ledger expects",
                        e.plugin, e.version
                    ),
                ));
            }
        }
        Ok(())
    }

    fn history(&mut self, plugin: Option<&str>) -> Result<Vec<LedgerEntry>> {
        if !self.has_host_tables()? {
            return Ok(Vec::new());
        }
        let rows = self.host_run(
            "cannot read the ledger",
            "SELECT id, plugin, plugin_version, version, description, direction, outcome,
                    error, started_at_ms, duration_us, checksum, component_sha256,
                    wasmig_version, statements, note
               FROM wasmig.ledger WHERE $1::text IS NULL OR plugin = $1::text ORDER BY id",
            vec![plugin.map_or(Param::Null, |p| Param::Text(p.to_string()))],
        )?;
        Ok(rows
            .into_iter()
            .map(|r| LedgerEntry {
                id: Self::int(&r[0]),
                plugin: Self::text(&r[1]),
                plugin_version: Self::text(&r[2]),
                version: Self::text(&r[3]),
                description: Self::text(&r[4]),
                direction: if Self::text(&r[5]) == "down" {
                    Direction::Down
                } else {
                    Direction::Up
                },
                outcome: if Self::text(&r[6]) == "succeeded" {
                    Outcome::Succeeded
                } else {
                    Outcome::Failed
                },
                error: match &r[7] {
                    Value::Null => None,
                    v => Some(Self::text(v)),
                },
                started_at_ms: Self::int(&r[8]),
                duration_us: Self::int(&r[9]),
                checksum: Self::text(&r[10]),
                component_sha256: Self::text(&r[11]),
                wasmig_version: Self::text(&r[12]),
                statements: serde_json::from_str(&Self::text(&r[13])).unwrap_or_default(),
                note: match &r[14] {
                    Value::Null => None,
                    v => Some(Self::text(v)),
                },
            })
            .collect())
    }

    fn store_component(
        &mut self,
        sha256: &str,
        bytes: &[u8],
        manifest: &crate::Manifest,
    ) -> Result<()> {
        let json = serde_json::to_string(manifest).expect("manifests serialize");
        // Content-addressed: storing it before the step commits leaves, at worst, a component
        // no step was applied from.
        self.host_run(
            "cannot store the plugin's component",
            "WITH c AS (INSERT INTO wasmig.component (sha256, bytes) VALUES ($1, $2)
                        ON CONFLICT DO NOTHING)
             INSERT INTO wasmig.manifest (sha256, manifest) VALUES ($1, $3)
             ON CONFLICT (sha256) DO UPDATE SET manifest = EXCLUDED.manifest",
            vec![
                Param::Text(sha256.to_string()),
                Param::Blob(bytes.to_vec()),
                Param::Text(json),
            ],
        )?;
        Ok(())
    }

    fn load_component(&mut self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let rows = self.host_run(
            "cannot read a stored component",
            "SELECT bytes FROM wasmig.component WHERE sha256 = $1",
            vec![Param::Text(sha256.to_string())],
        )?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .and_then(|v| match v {
                Value::Blob(b) => Some(b),
                _ => None,
            }))
    }

    fn stored_manifests(
        &mut self,
        sha256s: Option<&[String]>,
    ) -> Result<BTreeMap<String, crate::Manifest>> {
        if !self.has_host_tables()? {
            return Ok(BTreeMap::new());
        }
        let rows = self.host_run(
            "cannot read stored manifests",
            "SELECT sha256, manifest FROM wasmig.manifest",
            vec![],
        )?;
        let wanted: Option<BTreeSet<&String>> = sha256s.map(|s| s.iter().collect());
        let mut out = BTreeMap::new();
        for r in rows {
            let sha = Self::text(&r[0]);
            if wanted.as_ref().is_some_and(|w| !w.contains(&sha)) {
                continue;
            }
            let manifest = serde_json::from_str(&Self::text(&r[1])).map_err(|e| {
                self.error(
                    "stored manifest is corrupt",
                    format!("component {sha}: {e}"),
                )
            })?;
            out.insert(sha, manifest);
        }
        Ok(out)
    }

    fn mark_schema(&mut self, access: &PluginAccess) -> Result<super::SchemaMark> {
        let label = self.label.clone();
        let plugin = self.step_session(access)?;
        let rows = Self::host_turn(plugin)
            .and_then(|()| {
                plugin.session.run_host(
                    guard::CALL_OWNED,
                    vec![Param::Text(plugin.names.schema.clone())],
                )
            })
            .map_err(|e| Error::Database {
                path: label,
                message: format!("cannot read plugin {}'s schema: {e}", access.plugin),
            })?;
        Ok(super::SchemaMark::new(Mark {
            plugin: access.plugin.clone(),
            objects: rows.rows.iter().map(|r| Self::text(&r[0])).collect(),
        }))
    }

    fn verify_step(
        &mut self,
        access: &PluginAccess,
        before: super::SchemaMark,
    ) -> Result<StepCheck> {
        let before: Mark = before
            .into_inner()
            .filter(|m: &Mark| m.plugin == access.plugin)
            .ok_or_else(|| self.error("schema check", "the mark is not this plugin's"))?;
        let label = self.label.clone();
        // The roles of the plugins the policy lets read this one may hold SELECT on its
        // tables and USAGE on its schema (the host grants them at their provisioning).
        let readers = self.host_run(
            "cannot read the plugins' reads",
            "SELECT p.role::text FROM wasmig.plugin_read r
               JOIN wasmig.plugin_role p ON p.plugin = r.reader
              WHERE r.plugin = $1",
            vec![Param::Text(access.plugin.clone())],
        )?;
        let readers: Vec<String> = readers.iter().map(|r| Self::text(&r[0])).collect();
        // The role's settings as the host committed them (the host's session does not see
        // what the step changed).
        let role = names_of(&self.database, &access.plugin)
            .map_err(|e| self.error(&format!("plugin {}", access.plugin), e))?
            .role;
        let settings = self.host_run(
            "cannot read the plugin role's settings",
            "SELECT coalesce((SELECT setconfig::text FROM pg_catalog.pg_db_role_setting
                               WHERE setdatabase = 0
                                 AND setrole = (SELECT oid FROM pg_catalog.pg_roles
                                                 WHERE rolname = $1)), '{}')",
            vec![Param::Text(role.clone())],
        )?;
        let settings = settings
            .first()
            .map(|r| Self::text(&r[0]))
            .unwrap_or_else(|| "{}".into());
        // What the role's password is when the step commits: the host's, whatever the
        // plugin's statements set it to.
        let verifier = self.verifier(&role)?;
        let plugin = self.step_session(access)?;
        let schema = plugin.names.schema.clone();
        let array = |items: &[String]| {
            format!(
                "{{{}}}",
                items
                    .iter()
                    .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let allowed: Vec<String> = guard::ALLOWED_FUNCTIONS
            .iter()
            .map(|s| s.to_string())
            .collect();
        // One round trip: the session back to the host's settings, then the plugin's
        // functions made to run as the plugin (the schema's name is a plugin name's, letters,
        // digits and underscores).
        let checked = plugin
            .session
            .batch(
                &format!(
                    "RESET ALL; SET search_path = pg_catalog, pg_temp; {}",
                    guard::CALL_NEUTRALISE.replace("$1", &literal(&schema))
                ),
                None,
            )
            .and_then(|()| {
                plugin.session.run_host(
                    guard::CALL_FINDINGS,
                    vec![
                        Param::Text(schema.clone()),
                        Param::Text(array(&readers)),
                        Param::Text(array(&allowed)),
                        Param::Text(settings),
                    ],
                )
            })
            .and_then(|findings| {
                // Only after a step that wrote to the roles' catalog (the transaction's own
                // counters say so), or when the server keeps no counters.
                plugin
                    .session
                    .batch(
                        &format!(
                            "DO $wasmig$ BEGIN
                               IF pg_catalog.current_setting('track_counts') <> 'on'
                                  OR EXISTS (SELECT 1 FROM pg_catalog.pg_stat_xact_sys_tables
                                              WHERE relname = 'pg_authid'
                                                AND n_tup_ins + n_tup_upd + n_tup_del > 0) THEN
                                 ALTER ROLE CURRENT_USER PASSWORD {};
                               END IF;
                             END $wasmig$",
                            literal(&verifier)
                        ),
                        None,
                    )
                    .map(|()| findings)
            })
            .and_then(|findings| {
                plugin
                    .session
                    .run_host(guard::CALL_OWNED, vec![Param::Text(schema.clone())])
                    .map(|after| (findings, after))
            });
        let (findings, after) = checked.map_err(|e| Error::Database {
            path: label,
            message: format!("cannot check plugin {}'s schema: {e}", access.plugin),
        })?;
        let after: BTreeSet<String> = after.rows.iter().map(|r| Self::text(&r[0])).collect();
        let mut changes: Vec<String> = after
            .difference(&before.objects)
            .map(|o| format!("created {o}"))
            .collect();
        changes.extend(
            before
                .objects
                .difference(&after)
                .map(|o| format!("dropped {o}")),
        );
        let verdict = match findings.rows.first() {
            Some(row) => Err(Self::text(&row[0])),
            None => Ok(()),
        };
        Ok(StepCheck { verdict, changes })
    }

    fn enter_plugin(&mut self, access: &PluginAccess, limits: SqlLimits) -> Result<()> {
        let label = self.label.clone();
        let plugin = self.step_session(access)?;
        plugin
            .session
            .batch("RESET ALL", None)
            .map_err(|e| Error::Database {
                path: label,
                message: format!("cannot hand the session to plugin {}: {e}", access.plugin),
            })?;
        self.turn = Some(Turn {
            plugin: access.plugin.clone(),
            limits,
            changed: 0,
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
        if Instant::now() >= deadline {
            self.turn = None;
            return Err(self.error(
                &format!("plugin {plugin_name}"),
                "the step was still running at its deadline",
            ));
        }
        let fired = match self.plugins.get(&plugin_name) {
            Some(plugin) => plugin
                .session
                .run(
                    "SET CONSTRAINTS ALL IMMEDIATE",
                    vec![],
                    Some(deadline),
                    1024,
                )
                .map(|_| ()),
            None => Ok(()),
        };
        if let Err(e) = fired {
            let (SqlError::AccessDenied(e)
            | SqlError::Constraint(e)
            | SqlError::Syntax(e)
            | SqlError::Limit(e)
            | SqlError::Other(e)) = self.sql_error(e);
            self.turn = None;
            return Err(self.error(
                &format!("plugin {plugin_name}'s deferred triggers and checks failed"),
                e,
            ));
        }
        let turn = self.turn.take().expect("checked above");
        if let Some(plugin) = self.plugins.get(&turn.plugin) {
            Self::host_turn(plugin)
                .and_then(|()| {
                    plugin
                        .session
                        .batch("SELECT pg_catalog.pg_advisory_unlock_all()", None)
                })
                .map_err(|e| {
                    self.error(
                        &format!("cannot take the session back from plugin {}", turn.plugin),
                        e,
                    )
                })?;
        }
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
        let mut changed = 0;
        for row in rows {
            changed += self.execute(statement, row)?;
        }
        Ok(changed)
    }

    fn execute_script(
        &mut self,
        script: &str,
        ran: &mut Vec<String>,
    ) -> std::result::Result<(), SqlError> {
        for statement in statements::split(script) {
            ran.push(statement.to_string());
            self.plugin_run(statement, &[])?;
        }
        Ok(())
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
