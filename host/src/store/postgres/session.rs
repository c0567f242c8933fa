//! One PostgreSQL session, driven from the host's synchronous backend calls. The client's
//! futures run on a runtime of the backend's own; a call hands its future there and waits
//! for the answer by the host's clock, so a statement past its deadline is cancelled on the
//! server whatever the plugin set its own `statement_timeout` to.

use super::values::Cell;
use crate::store::Value;
use futures_util::TryStreamExt;
use std::error::Error as _;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{CancelToken, Client, Config, NoTls};

/// How long a cancelled statement may take to end before its session is terminated.
pub(super) const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// How often the host looks, while a plugin's session runs a statement, for server processes
/// working for it: each parallel worker has a `temp_file_limit` of its own, so a statement
/// with workers is stopped within about two intervals of their start (one look at a time,
/// its answer read at the next interval). A parallel plan that the session's own process runs
/// alone has none to see: docs/postgres.md, *Known limits*.
const WATCH_EVERY: Duration = Duration::from_millis(25);

/// Why a call did not return the server's answer.
#[derive(Debug)]
pub(super) enum CallError {
    /// The server or the connection reported an error.
    Db(tokio_postgres::Error),
    /// The plugin's own statement failed (not the host's statements around it): whatever
    /// code raised in it is the plugin's doing, wasmig's own functions called by it
    /// included.
    Statement(tokio_postgres::Error),
    /// The deadline passed: the statement was cancelled and ended.
    Cancelled,
    /// The statement did not end within the grace period after its cancel (or its answer
    /// was lost): the caller must terminate the session.
    Stuck(Stuck),
    /// The rows passed the most bytes a query may return.
    TooLarge(usize),
    /// A column of a type the plugin's values cannot carry.
    Unsupported(String),
    /// The statement ran in parallel server processes: it was cancelled and ended.
    Parallel,
}

/// Why the host gave up on a statement's answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Stuck {
    /// The statement was cancelled at its deadline.
    Deadline,
    /// The statement was cancelled for running in parallel server processes.
    Parallel,
    /// The answer was lost: the connection or the host's runtime ended.
    Lost,
    /// The session holds a lock outside the plugin's reach (`wasmig.foreign_lock`'s
    /// description): the caller must terminate the session, whose transaction keeps it.
    ForeignLock(String),
}

/// What a look at a statement's session saw (see [`Session::start_look`]).
#[derive(Debug, Clone, PartialEq)]
enum Look {
    Workers,
    NoWorkers,
    /// The session holds a lock outside the plugin's reach.
    ForeignLock(String),
    /// The host's role does not see the session as it is: it would see no worker either.
    Blind,
    /// The look failed (the host's session closed).
    Failed,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Db(e) | CallError::Statement(e) => write!(f, "{}", describe(e)),
            CallError::Cancelled => write!(f, "the statement was still running at the deadline"),
            CallError::Stuck(Stuck::Deadline) => write!(
                f,
                "the statement was still running {} s after it was cancelled at its deadline",
                CANCEL_GRACE.as_secs()
            ),
            CallError::Stuck(Stuck::Parallel) => write!(
                f,
                "the statement ran in parallel server processes and was still running {} s \
                 after it was cancelled",
                CANCEL_GRACE.as_secs()
            ),
            CallError::Stuck(Stuck::Lost) => write!(
                f,
                "the statement's answer was lost (its connection or the host's runtime ended)"
            ),
            CallError::Stuck(Stuck::ForeignLock(what)) => write!(
                f,
                "the step holds a lock outside its namespace, which PostgreSQL took before it \
                 checked privileges (nextval's, pg_get_object_address's) and keeps to the end \
                 of the transaction, where it would block the work of the object's owner: \
                 {what}"
            ),
            CallError::TooLarge(max) => write!(
                f,
                "the query's result is larger than the {} MiB a query may return; read it in \
                 pages (LIMIT/OFFSET or keyset)",
                max >> 20
            ),
            CallError::Unsupported(what) => write!(f, "{what}"),
            CallError::Parallel => write!(
                f,
                "the statement ran in parallel server processes (the plugin's session turned \
                 parallel query on), whose temporary files the step's quota (`max_temp`) does \
                 not bound; it was cancelled (leave `max_parallel_workers_per_gather` at the \
                 role's 0)"
            ),
        }
    }
}

/// A server error with its detail and hint, or the client's error. A plugin can raise an
/// error of any size (`RAISE EXCEPTION`), so each part is cut to a few KiB.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    const PART: usize = 4 * 1024;
    let part = |s: &str| crate::error::bounded_text(s, PART);
    match e.as_db_error() {
        Some(db) => {
            let mut s = part(db.message());
            if let Some(detail) = db.detail() {
                s.push_str(": ");
                s.push_str(&part(detail));
            }
            if let Some(hint) = db.hint() {
                s.push_str(" (");
                s.push_str(&part(hint));
                s.push(')');
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                s.push_str(": ");
                s.push_str(&cause.to_string());
                source = cause.source();
            }
            s
        }
    }
}

/// A parameter owned for the trip to the runtime's thread.
#[derive(Debug, Clone)]
pub(super) enum Param {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Param {
    /// The type the parameter is declared with. Text is left for the server to infer from
    /// where it is used, and sent as text, so `$1` fills a `uuid`, `jsonb` or `timestamptz`
    /// column as a literal would; integers and reals are 64-bit, which every narrower numeric
    /// column takes by an assignment cast.
    pub(super) fn declared(&self) -> Type {
        match self {
            Param::Null | Param::Text(_) => Type::UNKNOWN,
            Param::Integer(_) => Type::INT8,
            Param::Real(_) => Type::FLOAT8,
            Param::Blob(_) => Type::BYTEA,
        }
    }
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use tokio_postgres::types::IsNull;
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Integer(i) => i.to_sql(ty, out),
            Param::Real(r) => r.to_sql(ty, out),
            Param::Text(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            Param::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> tokio_postgres::types::Format {
        match self {
            Param::Text(_) => tokio_postgres::types::Format::Text,
            _ => tokio_postgres::types::Format::Binary,
        }
    }

    tokio_postgres::types::to_sql_checked!();
}

/// What a statement returned.
pub(super) struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Rows inserted, updated or deleted (`None` for a statement that reports none).
    pub changed: Option<u64>,
}

/// One session: its client, the way to cancel its statement, and its server process.
pub(super) struct Session {
    client: Arc<Client>,
    /// The host's statements prepared on this session, by their text.
    prepared:
        Arc<std::sync::Mutex<std::collections::HashMap<&'static str, tokio_postgres::Statement>>>,
    cancel: CancelToken,
    /// The server process serving it, for `pg_terminate_backend` from another session.
    pub pid: i32,
    rt: tokio::runtime::Handle,
    /// The savepoint of the last guarded statement, which succeeded, is still open: it is
    /// released with the next statement's, or by [`Session::release_savepoint`], saving a
    /// round trip per statement.
    savepoint: Arc<std::sync::atomic::AtomicBool>,
    /// A session of the host's own, from which a plugin's session is watched for parallel
    /// server processes while it runs a statement with a deadline (see [`WATCH_EVERY`]).
    watcher: Option<Arc<Client>>,
    /// Whether [`Session::blind_once`] has said so.
    blind: std::sync::atomic::AtomicBool,
    /// The session's settings go back to its role's (`RESET ALL`) with the next guarded
    /// statement, in its round trip (see [`Session::reset_with_next`]).
    reset: Arc<std::sync::atomic::AtomicBool>,
    /// Between its calls, for [`Session::watch_idle`].
    idle: Arc<Idle>,
}

/// What [`Session::watch_idle`] watches: whether a call is waiting for the server, since
/// when none has been, and what the look found.
#[derive(Default)]
struct Idle {
    /// A plugin's turn is on: its statements' looks ask for its locks too.
    watching: std::sync::atomic::AtomicBool,
    busy: std::sync::atomic::AtomicBool,
    /// Milliseconds from `epoch` at which the last call ended.
    since_ms: std::sync::atomic::AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
    foreign_lock: std::sync::Mutex<Option<String>>,
}

impl Idle {
    fn now_ms(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_millis() as u64
    }
}

/// Stops [`Session::watch_idle`]'s looks when dropped.
pub(super) struct IdleWatch(Arc<std::sync::atomic::AtomicBool>, Arc<Idle>);

impl Drop for IdleWatch {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        self.1
            .watching
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Session {
    /// Connects with `config` on the runtime `rt`; the connection's task runs there until the
    /// session is dropped.
    pub(super) fn connect(
        rt: &tokio::runtime::Handle,
        config: &Config,
        timeout: Duration,
    ) -> Result<Session, CallError> {
        let config = config.clone();
        let (tx, rx) = mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(open(&config).await);
        });
        match rx.recv_timeout(timeout) {
            Ok(Ok((client, pid))) => Ok(Session::new(client, pid, rt)),
            Ok(Err(e)) => Err(CallError::Db(e)),
            Err(_) => Err(CallError::Stuck(Stuck::Lost)),
        }
    }

    /// Starts connecting with `config` on `rt` and returns at once; the session comes through
    /// the receiver once connected and once `warmup` (statements of the host's own that
    /// open a transaction, whose answer, an error included, nothing depends on) has run,
    /// followed by a `ROLLBACK` that leaves the session idle whatever `warmup` did.
    pub(super) fn connect_ahead(
        rt: &tokio::runtime::Handle,
        config: &Config,
        warmup: String,
    ) -> mpsc::Receiver<Result<Session, CallError>> {
        let config = config.clone();
        let handle = rt.clone();
        let (tx, rx) = mpsc::sync_channel(1);
        rt.spawn(async move {
            let session = match open(&config).await {
                Ok((client, pid)) => {
                    let (_, _) = futures_util::future::join(
                        client.batch_execute(&warmup),
                        client.batch_execute("ROLLBACK"),
                    )
                    .await;
                    Ok(Session::new(client, pid, &handle))
                }
                Err(e) => Err(CallError::Db(e)),
            };
            let _ = tx.send(session);
        });
        rx
    }

    fn new(client: Client, pid: i32, rt: &tokio::runtime::Handle) -> Session {
        Session {
            prepared: Default::default(),
            cancel: client.cancel_token(),
            client: Arc::new(client),
            pid,
            rt: rt.clone(),
            savepoint: Default::default(),
            reset: Default::default(),
            watcher: None,
            blind: Default::default(),
            idle: Default::default(),
        }
    }

    /// Looks, from `host`'s session, every [`WATCH_EVERY`] while no call of this session's
    /// has waited for the server for that long (the plugin's code runs), for a lock the
    /// session holds outside its role's reach (`wasmig.foreign_lock`); one found ends the
    /// session (the server rolls its transaction back, and the lock goes with it), and
    /// [`Session::foreign_lock`] says what it was. A statement that takes such a lock and
    /// returns leaves it held no longer than about two intervals while the plugin's code
    /// runs on (a running statement is looked at by [`Session::wait`]'s own looks).
    /// Stops when the returned value is dropped.
    pub(super) fn watch_idle(&self, host: &Session) -> IdleWatch {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (idle, stopped, client, pid) = (
            self.idle.clone(),
            stop.clone(),
            host.client.clone(),
            self.pid,
        );
        idle.since_ms.store(idle.now_ms(), Ordering::Relaxed);
        idle.watching.store(true, Ordering::Relaxed);
        let look = format!(
            "SELECT wasmig.foreign_lock({pid}, \
                    (SELECT a.usesysid FROM pg_catalog.pg_stat_activity a WHERE a.pid = {pid}))"
        );
        let end = format!("SELECT pg_catalog.pg_terminate_backend({pid}, 5000)");
        self.rt.spawn(async move {
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let idle_ms = idle
                    .now_ms()
                    .saturating_sub(idle.since_ms.load(Ordering::Relaxed));
                if idle.busy.load(Ordering::Relaxed) || idle_ms < WATCH_EVERY.as_millis() as u64 {
                    continue;
                }
                let found = match client.simple_query(&look).await {
                    Ok(messages) => messages.iter().find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => {
                            row.get(0).map(str::to_string)
                        }
                        _ => None,
                    }),
                    Err(e) => {
                        tracing::debug!("cannot look for the plugin session's locks: {e}");
                        None
                    }
                };
                // A look that went out before the step ended answers for a session that has
                // moved on: only a step still running is stopped.
                if let Some(lock) = found
                    && !stopped.load(Ordering::Relaxed)
                {
                    *idle.foreign_lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
                    if let Err(e) = client.simple_query(&end).await {
                        tracing::warn!("cannot end the plugin's session: {e}");
                    }
                    return;
                }
            }
        });
        IdleWatch(stop, self.idle.clone())
    }

    /// The lock outside the role's reach that [`Session::watch_idle`] found (and for which
    /// it ended the session), if it did.
    pub(super) fn foreign_lock(&self) -> Option<String> {
        self.idle
            .foreign_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Watches this session's statements from `host`'s session: one that runs in parallel
    /// server processes is cancelled and fails with [`CallError::Parallel`].
    pub(super) fn watch_from(&mut self, host: &Session) {
        self.watcher = Some(host.client.clone());
    }

    /// Starts a look, from the host's session, for server processes working for this
    /// session's statement (parallel workers, whose `leader_pid` is its process); its answer
    /// comes through the receiver. The host's role sees a plugin role's sessions as they are
    /// (`leader_pid`, `state`) because it has that role's privileges; the look also asks
    /// whether it sees this session's own `state`, without which it could see no worker.
    fn start_look(&self, host: &Arc<Client>) -> mpsc::Receiver<Look> {
        let host = host.clone();
        // In a plugin's turn it also asks for a lock the session holds outside its role's
        // reach: a step's statement that took one runs no longer than this interval with
        // it. (The host's own checks after the step report such a lock themselves.)
        let locks = if self
            .idle
            .watching
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            format!(
                "wasmig.foreign_lock({pid}, \
                 min(usesysid::pg_catalog.int8) FILTER (WHERE pid = {pid})::pg_catalog.oid)",
                pid = self.pid
            )
        } else {
            "NULL".to_string()
        };
        // The server keeps one picture of `pg_stat_activity` per transaction; the host's
        // session may be in one.
        let sql = format!(
            "SELECT pg_catalog.pg_stat_clear_snapshot(); \
             SELECT count(*) FILTER (WHERE leader_pid = {pid}), \
                    count(*) FILTER (WHERE pid = {pid} AND state IS NOT NULL), \
                    {locks} \
               FROM pg_catalog.pg_stat_activity",
            pid = self.pid
        );
        let (tx, rx) = mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let look = match host.simple_query(&sql).await {
                Ok(messages) => messages
                    .iter()
                    .find_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) if row.len() == 3 => {
                            match (row.get(0), row.get(1), row.get(2)) {
                                (_, _, Some(lock)) => Some(Look::ForeignLock(lock.to_string())),
                                (Some("0"), Some("0"), _) => Some(Look::Blind),
                                (Some("0"), _, _) => Some(Look::NoWorkers),
                                _ => Some(Look::Workers),
                            }
                        }
                        _ => None,
                    })
                    .unwrap_or(Look::Blind),
                Err(e) => {
                    tracing::debug!("cannot look for a statement's parallel workers: {e}");
                    Look::Failed
                }
            };
            let _ = tx.send(look);
        });
        rx
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Runs one statement with typed parameters and collects its rows as values, at most
    /// `max_bytes` of them, stopping at `deadline` (cancelled on the server).
    pub(super) fn run(
        &self,
        sql: &str,
        params: Vec<Param>,
        deadline: Option<Instant>,
        max_bytes: usize,
    ) -> Result<Answer, CallError> {
        self.run_guarded(sql, params, deadline, max_bytes, Guard::None)
    }

    /// [`Session::run`] inside a savepoint, so that a failure leaves the transaction usable.
    /// The savepoint is sent with the statement, in one round trip; a failed statement's is
    /// rolled back at once, a successful one's released later (see [`Session::savepoint`]).
    pub(super) fn run_guarded(
        &self,
        sql: &str,
        params: Vec<Param>,
        deadline: Option<Instant>,
        max_bytes: usize,
        guard: Guard,
    ) -> Result<Answer, CallError> {
        use std::sync::atomic::Ordering;
        let client = self.client.clone();
        let sql = sql.to_string();
        let savepoint = self.savepoint.clone();
        let reset = self.reset.clone();
        let answer = self.wait(deadline, true, async move {
            let typed = typed(params);
            if guard == Guard::None {
                return collect(&client, &sql, typed, max_bytes).await;
            }
            // A failed statement leaves the step's transaction usable, as on SQLite: the
            // plugin may handle the error and go on. Both requests go out before either
            // answer comes back (the client pipelines them); the server runs them in order.
            // The statement check goes first: a statement the plugin's SQL prepared under
            // one of the client's names must not answer the type look-ups of this one, nor
            // may the plugin's operators (a schema searched before pg_catalog).
            macro_rules! check {
                () => {
                    "SELECT wasmig.statement_check(pg_catalog.current_schemas(true))"
                };
            }
            let open = match (
                reset.swap(false, Ordering::Relaxed),
                savepoint.swap(false, Ordering::Relaxed),
            ) {
                (false, false) => concat!(check!(), "; SAVEPOINT wasmig_statement"),
                (false, true) => concat!(
                    check!(),
                    "; RELEASE SAVEPOINT wasmig_statement; SAVEPOINT wasmig_statement"
                ),
                (true, false) => concat!("RESET ALL; ", check!(), "; SAVEPOINT wasmig_statement"),
                (true, true) => concat!(
                    "RESET ALL; ",
                    check!(),
                    "; RELEASE SAVEPOINT wasmig_statement; SAVEPOINT wasmig_statement"
                ),
            };
            let run = async {
                if guard == Guard::PrepareOnly {
                    let types: Vec<Type> = typed.iter().map(|(_, t)| t.clone()).collect();
                    client.prepare_typed(&sql, &types).await?;
                    return Ok(Ok(Answer {
                        columns: Vec::new(),
                        changed: Some(0),
                        rows: Vec::new(),
                    }));
                }
                collect_described(&client, &sql, typed, max_bytes).await
            };
            let (opened, answer) =
                futures_util::future::join(client.batch_execute(open), run).await;
            opened?;
            if matches!(answer, Ok(Ok(_))) {
                savepoint.store(true, Ordering::Relaxed);
            } else {
                client
                    .batch_execute(
                        "ROLLBACK TO SAVEPOINT wasmig_statement; \
                         RELEASE SAVEPOINT wasmig_statement",
                    )
                    .await?;
            }
            Ok(answer.unwrap_or_else(|e| Err(CallError::Statement(e))))
        });
        answer.and_then(|a| a)
    }

    /// Runs a script's statements (without parameters) one after the other, each in its own
    /// savepoint as [`Session::run_guarded`] runs one, all sent in one round trip. Their rows
    /// are dropped as they come, unread (no type of theirs is looked up behind the others).
    /// The server runs them in order; after one fails, the rest fail unrun, since the
    /// transaction is aborted until the failed statement's savepoint is rolled back, as it
    /// then is. A statement the client cannot send (text with a NUL) is the last one sent.
    /// Returns how many ran (the failed or stopped one included), the answers of those that
    /// succeeded, and the failure.
    pub(super) fn run_script_guarded(
        &self,
        statements: Vec<String>,
        deadline: Option<Instant>,
    ) -> (usize, Vec<Answer>, Option<CallError>) {
        use futures_util::future::{MaybeDone, maybe_done};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let total = statements.len();
        if total == 0 {
            return (0, Vec::new(), None);
        }
        let client = self.client.clone();
        let savepoint = self.savepoint.clone();
        let reset = self.reset.clone();
        // How many statements have ended, for a script stopped at its deadline.
        let ended = Arc::new(AtomicUsize::new(0));
        let counted = ended.clone();
        let done = self.wait(deadline, true, async move {
            let mut first = match reset.swap(false, Ordering::Relaxed) {
                true => "RESET ALL; ".to_string(),
                false => String::new(),
            };
            if savepoint.swap(false, Ordering::Relaxed) {
                first.push_str("RELEASE SAVEPOINT wasmig_statement; ");
            }
            first.push_str("SAVEPOINT wasmig_statement");
            let next = "RELEASE SAVEPOINT wasmig_statement; SAVEPOINT wasmig_statement";
            // A request goes out when its future is first polled, or fails then without
            // going out: each is polled once, in order, before any answer is read, and
            // nothing is sent after one that could not be.
            let client = &client;
            let mut sent = Vec::new();
            for (i, sql) in statements.iter().enumerate() {
                let open = if i == 0 { first.as_str() } else { next };
                let mut open = Box::pin(maybe_done(client.batch_execute(open)));
                let mut run = Box::pin(maybe_done(client.execute_typed(sql, &[])));
                poll_once(open.as_mut()).await;
                let unsent = matches!(&*open, MaybeDone::Done(Err(_)));
                if !unsent {
                    poll_once(run.as_mut()).await;
                }
                let unsent = unsent || matches!(&*run, MaybeDone::Done(Err(_)));
                sent.push((open, run));
                if unsent {
                    break;
                }
            }
            let mut answers = Vec::new();
            let mut pending = sent.into_iter();
            while let Some((mut open, mut run)) = pending.next() {
                open.as_mut().await;
                if let Some(Err(e)) = open.as_mut().take_output() {
                    // The host's savepoint command failed: the transaction is left as it is,
                    // as when one statement's does.
                    return Ok((answers, Some(CallError::Db(e))));
                }
                run.as_mut().await;
                match run.as_mut().take_output().expect("run to its end") {
                    Ok(changed) => {
                        answers.push(Answer {
                            columns: Vec::new(),
                            changed: Some(changed),
                            rows: Vec::new(),
                        });
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        // The answers still to come are not read.
                        drop(pending);
                        let undone = client
                            .batch_execute(
                                "ROLLBACK TO SAVEPOINT wasmig_statement; \
                                 RELEASE SAVEPOINT wasmig_statement",
                            )
                            .await;
                        let failed =
                            undone.map_or_else(CallError::Db, |()| CallError::Statement(e));
                        return Ok((answers, Some(failed)));
                    }
                }
            }
            if !answers.is_empty() {
                savepoint.store(true, Ordering::Relaxed);
            }
            Ok((answers, None))
        });
        match done {
            Ok((answers, failed)) => (
                answers.len() + usize::from(failed.is_some()),
                answers,
                failed,
            ),
            // Stopped at the deadline: the statements that ended, and the one running.
            Err(e) => (
                (ended.load(Ordering::Relaxed) + 1).min(total),
                Vec::new(),
                Some(e),
            ),
        }
    }

    /// The statement that releases the last guarded statement's savepoint if it is still
    /// open ("" if not): sent before anything that must see the step's statements as part of
    /// its transaction (deferred constraints, the guard).
    pub(super) fn release_savepoint(&self) -> &'static str {
        if self
            .savepoint
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            "RELEASE SAVEPOINT wasmig_statement; "
        } else {
            ""
        }
    }

    /// A new transaction begins: no savepoint of an earlier one is open.
    pub(super) fn forget_savepoint(&self) {
        self.savepoint
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.reset
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Puts the session's settings back to its role's (`RESET ALL`) before the next guarded
    /// statement, in the same round trip: a plugin's turn starts with its own settings, and
    /// a turn without statements needs none.
    pub(super) fn reset_with_next(&self) {
        self.reset.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The turn ended: a reset still waiting for a statement is not needed (the host's
    /// statements that follow set what they need).
    pub(super) fn forget_reset(&self) {
        self.reset
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Connects with `config`, runs the connection on the current runtime until the client is
/// dropped, and asks for the server process's id (unprepared: one round trip).
async fn open(config: &Config) -> Result<(Client, i32), tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("PostgreSQL connection ended: {e}");
        }
    });
    let messages = client
        .simple_query("SELECT pg_catalog.pg_backend_pid()")
        .await?;
    let pid = messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => {
            row.get(0).and_then(|v| v.parse::<i32>().ok())
        }
        _ => None,
    });
    Ok((client, pid.unwrap_or(0)))
}

/// Parameters with the types the server is told they have.
fn typed(params: Vec<Param>) -> Vec<(Param, Type)> {
    params
        .into_iter()
        .map(|p| {
            let ty = p.declared();
            (p, ty)
        })
        .collect()
}

/// How [`Session::run_guarded`] runs a statement.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Guard {
    /// As it is (the host's statements).
    None,
    /// Inside a savepoint (a plugin's).
    Savepoint,
    /// Only prepared, inside a savepoint: the server parses it and resolves its names.
    PrepareOnly,
}

/// Runs one statement and collects its rows as values, at most `max_bytes` of them.
async fn collect(
    client: &Client,
    sql: &str,
    typed: Vec<(Param, Type)>,
    max_bytes: usize,
) -> Result<Result<Answer, CallError>, tokio_postgres::Error> {
    let stream = client.query_typed_raw(sql, typed).await?;
    gather(stream, max_bytes).await
}

/// [`collect`] for a plugin's statement: described first, so that the client looks the
/// types of its columns up before the statement runs, not after. The plugin's code runs when
/// the statement does, and could replace the statement the client looks types up with
/// (see `wasmig.statement_check`, run before each of the plugin's statements).
async fn collect_described(
    client: &Client,
    sql: &str,
    typed: Vec<(Param, Type)>,
    max_bytes: usize,
) -> Result<Result<Answer, CallError>, tokio_postgres::Error> {
    let types: Vec<Type> = typed.iter().map(|(_, t)| t.clone()).collect();
    let statement = client.prepare_typed(sql, &types).await?;
    let stream = client
        .query_raw(&statement, typed.iter().map(|(p, _)| p as &dyn ToSql))
        .await?;
    gather(stream, max_bytes).await
}

/// Polls `f` once: the future of a request sends it then, in the order polled, or fails
/// without sending it.
async fn poll_once<F: Future>(mut f: std::pin::Pin<&mut F>) {
    std::future::poll_fn(|cx| {
        let _ = f.as_mut().poll(cx);
        std::task::Poll::Ready(())
    })
    .await
}

/// Collects a statement's rows as values, at most `max_bytes` of them.
async fn gather(
    stream: tokio_postgres::RowStream,
    max_bytes: usize,
) -> Result<Result<Answer, CallError>, tokio_postgres::Error> {
    {
        {
            let mut stream = std::pin::pin!(stream);
            let mut columns = Vec::new();
            let mut rows = Vec::new();
            let mut bytes = 0usize;
            while let Some(row) = stream.try_next().await? {
                if columns.is_empty() {
                    columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                }
                let mut values = Vec::with_capacity(row.len());
                for i in 0..row.len() {
                    let cell = match row.try_get::<_, Cell>(i) {
                        Ok(cell) => cell,
                        Err(e) => {
                            let column = &row.columns()[i];
                            return Ok(Err(CallError::Unsupported(format!(
                                "column {:?} is of type {}, which a plugin's values cannot \
                                 carry ({}): cast it in the query, e.g. `{}::text`",
                                column.name(),
                                column.type_(),
                                e.source().map(|s| s.to_string()).unwrap_or_default(),
                                column.name()
                            ))));
                        }
                    };
                    bytes += std::mem::size_of::<Value>()
                        + match &cell.0 {
                            Value::Text(t) => t.len(),
                            Value::Blob(b) => b.len(),
                            _ => 0,
                        };
                    values.push(cell.0);
                }
                bytes += std::mem::size_of::<Vec<Value>>();
                if bytes > max_bytes {
                    return Ok(Err(CallError::TooLarge(max_bytes)));
                }
                rows.push(values);
            }
            Ok(Ok(Answer {
                columns,
                changed: stream.rows_affected(),
                rows,
            }))
        }
    }
}

impl Session {
    /// Runs one of the host's statements on a plugin's session, unprepared: the plugin
    /// shares the session, and the step's end deallocates what was prepared on it.
    pub(super) fn run_host(&self, sql: &str, params: Vec<Param>) -> Result<Answer, CallError> {
        self.run(sql, params, None, usize::MAX)
    }

    /// Runs one of the host's statements, prepared once per session: the server parses and
    /// plans it once, not at every step.
    pub(super) fn run_prepared(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Answer, CallError> {
        let client = self.client.clone();
        let prepared = self.prepared.clone();
        let answer = self.wait(None, false, async move {
            let types: Vec<Type> = params.iter().map(Param::declared).collect();
            let cached = prepared.lock().expect("not poisoned").get(sql).cloned();
            let statement = match cached {
                Some(statement) => statement,
                None => {
                    let statement = client.prepare_typed(sql, &types).await?;
                    prepared
                        .lock()
                        .expect("not poisoned")
                        .insert(sql, statement.clone());
                    statement
                }
            };
            let stream = client
                .query_raw(&statement, params.iter().map(|p| p as &dyn ToSql))
                .await?;
            gather(stream, usize::MAX).await
        });
        answer.and_then(|a| a)
    }

    /// Runs `first` (statements of the host's own, without parameters), then `sql`, in one
    /// round trip: `sql` runs only if `first` succeeded. At `deadline` the session's
    /// statement is cancelled (see [`Session::wait`]).
    pub(super) fn run_after(
        &self,
        first: &str,
        sql: &str,
        params: Vec<Param>,
        deadline: Option<Instant>,
        max_bytes: usize,
    ) -> Result<Answer, CallError> {
        let client = self.client.clone();
        let (first, sql) = (first.to_string(), sql.to_string());
        let answer = self.wait(deadline, true, async move {
            let typed = typed(params);
            let (done, answer) = futures_util::future::join(
                client.batch_execute(&first),
                collect(&client, &sql, typed, max_bytes),
            )
            .await;
            done?;
            answer
        });
        answer.and_then(|a| a)
    }

    /// Runs `first` (statements of the host's own, without parameters), then `sql`, then
    /// each batch of `after`, in one round trip, and tells how `sql` and each batch went.
    /// The batches of `after` are sent only once `first` and `sql` went out: a request that
    /// fails before it reaches the server (its parameters cannot be encoded, the connection
    /// is gone) is followed by nothing, and its batches are reported as not run. Once sent,
    /// every batch of `after` runs whatever came before it. At `deadline` the session's
    /// statement is cancelled (see [`Session::wait`]).
    pub(super) fn run_then(
        &self,
        first: &str,
        sql: &str,
        params: Vec<Param>,
        after: [&str; 2],
        deadline: Option<Instant>,
    ) -> (Result<Answer, CallError>, [Result<(), CallError>; 2]) {
        use futures_util::future::{MaybeDone, join, maybe_done};
        let client = self.client.clone();
        let (first, sql) = (first.to_string(), sql.to_string());
        let after = after.map(str::to_string);
        let done = self.wait(deadline, false, async move {
            let typed = typed(params);
            let mut opened = std::pin::pin!(maybe_done(client.batch_execute(&first)));
            let mut answer = std::pin::pin!(maybe_done(collect(&client, &sql, typed, usize::MAX)));
            poll_once(opened.as_mut()).await;
            poll_once(answer.as_mut()).await;
            let sent = !matches!(&*opened, MaybeDone::Done(Err(_)))
                && !matches!(&*answer, MaybeDone::Done(Err(_)));
            let rest = if sent {
                let (a, b) = join(
                    join(opened.as_mut(), answer.as_mut()),
                    join(
                        client.batch_execute(&after[0]),
                        client.batch_execute(&after[1]),
                    ),
                )
                .await
                .1;
                [a.map_err(CallError::Db), b.map_err(CallError::Db)]
            } else {
                join(opened.as_mut(), answer.as_mut()).await;
                [
                    Err(CallError::Stuck(Stuck::Lost)),
                    Err(CallError::Stuck(Stuck::Lost)),
                ]
            };
            let done = opened.as_mut().take_output().expect("polled to the end");
            let answer = answer.as_mut().take_output().expect("polled to the end");
            let answer = match (done, answer) {
                (Err(e), _) | (Ok(()), Err(e)) => Err(CallError::Db(e)),
                (Ok(()), Ok(answer)) => answer,
            };
            Ok::<_, tokio_postgres::Error>((answer, rest))
        });
        match done {
            Ok(done) => done,
            Err(e) => (
                Err(e),
                [
                    Err(CallError::Stuck(Stuck::Lost)),
                    Err(CallError::Stuck(Stuck::Lost)),
                ],
            ),
        }
    }

    /// Runs two batches of the host's own statements in one round trip, and tells how each
    /// went: the second runs even if the first failed. At `deadline` the session's statement
    /// is cancelled (see [`Session::wait`]).
    pub(super) fn batch_pair(
        &self,
        first: &str,
        second: &str,
        deadline: Option<Instant>,
    ) -> (Result<(), CallError>, Result<(), CallError>) {
        let client = self.client.clone();
        let (first, second) = (first.to_string(), second.to_string());
        let done = self.wait(deadline, false, async move {
            let (a, b) = futures_util::future::join(
                client.batch_execute(&first),
                client.batch_execute(&second),
            )
            .await;
            Ok::<_, tokio_postgres::Error>((a, b))
        });
        match done {
            Ok((a, b)) => (a.map_err(CallError::Db), b.map_err(CallError::Db)),
            Err(e) => (Err(e), Err(CallError::Stuck(Stuck::Lost))),
        }
    }

    /// Runs statements of the host's own, without parameters, in one round trip.
    /// The first column of each row of `sql`, as the server writes it in text: by the output
    /// functions of the values' types (the simple protocol), never by a cast.
    pub(super) fn text_rows(&self, sql: &str) -> Result<Vec<String>, CallError> {
        let client = self.client.clone();
        let sql = sql.to_string();
        self.wait(None, false, async move {
            let messages = client.simple_query(&sql).await?;
            Ok(messages
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        Some(row.get(0).unwrap_or_default().to_string())
                    }
                    _ => None,
                })
                .collect())
        })
    }

    pub(super) fn batch(&self, sql: &str, deadline: Option<Instant>) -> Result<(), CallError> {
        let client = self.client.clone();
        let sql = sql.to_string();
        self.wait(
            deadline,
            true,
            async move { client.batch_execute(&sql).await },
        )
    }

    /// Waits for `work` on the runtime's thread; at `deadline` cancels the session's
    /// statement and waits [`CANCEL_GRACE`] more for it to end. With `watch` and a watcher
    /// ([`Session::watch_from`]), a look for the statement's parallel workers goes out every
    /// [`WATCH_EVERY`] meanwhile, one at a time, never holding the answer back: a statement
    /// that has any is cancelled the same way and fails with [`CallError::Parallel`].
    fn wait<T: Send + 'static>(
        &self,
        deadline: Option<Instant>,
        watch: bool,
        work: impl Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    ) -> Result<T, CallError> {
        use std::sync::atomic::Ordering;
        self.idle.busy.store(true, Ordering::Relaxed);
        let answer = self.wait_busy(deadline, watch, work);
        self.idle
            .since_ms
            .store(self.idle.now_ms(), Ordering::Relaxed);
        self.idle.busy.store(false, Ordering::Relaxed);
        answer
    }

    /// [`Session::wait`], while the session counts as busy for [`Session::watch_idle`].
    fn wait_busy<T: Send + 'static>(
        &self,
        deadline: Option<Instant>,
        watch: bool,
        work: impl Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    ) -> Result<T, CallError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let _ = tx.send(work.await);
        });
        let watcher = self.watcher.as_ref().filter(|_| watch);
        let answer = match deadline {
            None => rx.recv().map_err(|_| Stuck::Lost),
            Some(deadline) => {
                let mut look: Option<mpsc::Receiver<Look>> = None;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let wait = match watcher {
                        Some(_) => left.min(WATCH_EVERY),
                        None => left,
                    };
                    match rx.recv_timeout(wait) {
                        Ok(answer) => break Ok(answer),
                        Err(mpsc::RecvTimeoutError::Disconnected) => break Err(Stuck::Lost),
                        Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                            break Err(Stuck::Deadline);
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                    }
                    let Some(host) = watcher else { continue };
                    match look.as_ref().map(mpsc::Receiver::try_recv) {
                        Some(Ok(Look::Workers)) => break Err(Stuck::Parallel),
                        Some(Ok(Look::ForeignLock(what))) => break Err(Stuck::ForeignLock(what)),
                        Some(Ok(Look::Blind)) => self.blind_once(),
                        // Still on its way: the next interval looks again.
                        Some(Err(mpsc::TryRecvError::Empty)) => continue,
                        Some(Ok(Look::NoWorkers | Look::Failed))
                        | Some(Err(mpsc::TryRecvError::Disconnected))
                        | None => {}
                    }
                    look = Some(self.start_look(host));
                }
            }
        };
        match answer {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(CallError::Db(e)),
            // The runtime went away with the answer: only at shutdown.
            Err(Stuck::Lost) => Err(CallError::Stuck(Stuck::Lost)),
            // No cancel: the lock stays until the transaction ends, which the caller ends
            // with the session.
            Err(why @ Stuck::ForeignLock(_)) => Err(CallError::Stuck(why)),
            Err(why) => {
                let cancel = self.cancel.clone();
                let (sent, cancelled) = mpsc::sync_channel(1);
                self.rt.spawn(async move {
                    if let Err(e) = cancel.cancel_query(NoTls).await {
                        tracing::warn!("cannot cancel the session's statement: {e}");
                    }
                    let _ = sent.send(());
                });
                let until = Instant::now() + CANCEL_GRACE;
                let answer = match rx.recv_timeout(CANCEL_GRACE) {
                    // An answer that came before the cancel: the statement's work is done.
                    Ok(Ok(value)) if why == Stuck::Deadline => Ok(value),
                    Ok(_) if why == Stuck::Parallel => Err(CallError::Parallel),
                    Ok(_) => Err(CallError::Cancelled),
                    Err(_) => return Err(CallError::Stuck(why)),
                };
                // The server has the cancel before the session's next statement: one that
                // arrived after the statement had ended would stop the next one instead
                // (the server ignores a cancel only while the session is idle).
                let _ = cancelled.recv_timeout(until.saturating_duration_since(Instant::now()));
                answer
            }
        }
    }

    /// Says once per session that its statements' parallel workers cannot be seen.
    fn blind_once(&self) {
        if !self.blind.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "the host's role does not see plugin sessions' activity (it needs the \
                 privileges of each plugin's role, which it is granted; a role with NOINHERIT \
                 does not have them): a statement's parallel workers go unseen"
            );
        }
    }
}
