//! The thread that holds a step to its deadline from outside the statement, and the backstop
//! for a statement that does not stop.
//!
//! SQLite consults `sqlite3_interrupt` and the progress handler only where its program
//! jumps; a row that makes many calls in a straight line, each linear in a large value and
//! allocating nothing, runs on past both. Such a statement still ends (its length and the
//! size of a value bound it), but far past the deadline, and so does one call whose cost grows
//! faster than its input that no bound has caught. So when the step is still inside SQLite a
//! second after its deadline, the watchdog hands an [`Overrun`] to the
//! embedder's handler: the `wasmig` binary records the step's failure for the next run and
//! ends the process, and SQLite's journal rolls the step's transaction back when the database
//! is next opened.

use crate::store::{LedgerEntry, Outcome};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the host calls when a step is still inside SQLite a grace period after its deadline
/// (see [`crate::HostBuilder::on_overrun`]). It runs on the watchdog's thread while the step's
/// thread is blocked in SQLite.
pub type OverrunHandler = Arc<dyn Fn(&Overrun) + Send + Sync>;

/// How long after its deadline a step may stay inside SQLite: an interrupted statement
/// normally returns within milliseconds, and a loaded machine may take longer to schedule
/// it. Past it, whatever one call of SQLite's is doing (the calls nobody has found yet that
/// cost the square of their input included), the step is given up.
const GRACE: Duration = Duration::from_secs(1);

/// A step that is still inside SQLite a grace period after its deadline.
#[derive(Debug, Clone)]
pub struct Overrun {
    /// How long past its deadline the step is.
    pub past_deadline: Duration,
    /// The failure the ledger should hold for the step (none in a dry run).
    pub entry: Option<LedgerEntry>,
    record_to: Option<PathBuf>,
}

impl std::fmt::Display for Overrun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.entry {
            Some(e) => write!(
                f,
                "plugin {} migration {} ({})",
                e.plugin,
                e.version,
                e.direction.as_str()
            )?,
            None => write!(f, "a plugin's step")?,
        }
        write!(
            f,
            " is still inside SQLite {:.1} s past its deadline (a statement SQLite does not \
             interrupt between its calls)",
            self.past_deadline.as_secs_f64()
        )
    }
}

impl Overrun {
    /// Writes the step's failure beside the database, where the next host that opens it
    /// records it in the ledger (the step's own transaction cannot commit it: it holds the
    /// write lock and does not return). Does nothing in a dry run.
    pub fn record_for_next_run(&self) -> std::io::Result<()> {
        let (Some(entry), Some(path)) = (&self.entry, &self.record_to) else {
            return Ok(());
        };
        use std::io::Write;
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(&line)?;
        file.sync_all()
    }
}

/// Where a database's abandoned steps wait to be recorded: beside it, named after it.
pub(crate) fn abandoned_path(database: &std::path::Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-wasmig-abandoned");
    PathBuf::from(name)
}

/// The failure recorded for a step the host abandoned `past` its deadline, in `statement`.
fn abandoned(
    mut entry: LedgerEntry,
    started: Instant,
    past: Duration,
    statement: &str,
) -> LedgerEntry {
    if !statement.is_empty() {
        entry.statements = vec![format!(
            "{statement} -- running when the step was abandoned"
        )];
    }
    entry.outcome = Outcome::Failed;
    entry.error = Some(format!(
        "interrupted: the step was still inside SQLite {:.1} s past its deadline, so the \
         host stopped; SQLite rolled the step back",
        past.as_secs_f64()
    ));
    entry.duration_us = started.elapsed().as_micros() as i64;
    entry
}

pub(super) struct Watchdog {
    shared: Arc<(Mutex<WatchState>, Condvar)>,
}

#[derive(Default)]
struct WatchState {
    /// When to interrupt the running statement.
    deadline: Option<Instant>,
    /// When to give up on it: the deadline plus the grace period.
    overrun_at: Option<Instant>,
    /// The step the host is running, for the ledger, and when it started.
    step: Option<(LedgerEntry, Instant)>,
    /// The plugin's statement (or script) the step is in, at most [`STATEMENT_KEPT`] bytes
    /// of it: the ledger's trail if the step is abandoned, since the step's own trail is in
    /// the call SQLite does not let go of.
    statement: String,
    closed: bool,
}

/// How much of the statement a step is in [`WatchState`] keeps.
const STATEMENT_KEPT: usize = 4096;

impl Watchdog {
    pub(super) fn new(
        interrupt: rusqlite::InterruptHandle,
        on_overrun: Option<OverrunHandler>,
        record_to: Option<PathBuf>,
    ) -> Self {
        let shared = Arc::new((Mutex::new(WatchState::default()), Condvar::new()));
        let watched = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("wasmig-watchdog".into())
            .spawn(move || {
                let (state, wake) = &*watched;
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                while !st.closed {
                    let now = Instant::now();
                    if let Some(at) = st.deadline.filter(|at| now >= *at) {
                        // Under the lock: `disarm` cannot return while this runs, so no
                        // statement of the host's is interrupted.
                        interrupt.interrupt();
                        crate::sqlite_memory::stop(true);
                        st.deadline = None;
                        st.overrun_at = Some(at + GRACE);
                        continue;
                    }
                    if let Some(at) = st.overrun_at.filter(|at| now >= *at) {
                        st.overrun_at = None;
                        let past_deadline = now.saturating_duration_since(at) + GRACE;
                        let overrun = Overrun {
                            past_deadline,
                            entry: st.step.clone().map(|(entry, started)| {
                                abandoned(entry, started, past_deadline, &st.statement)
                            }),
                            record_to: record_to.clone(),
                        };
                        // Outside the lock: the handler may take its time (or end the
                        // process), and the step may still return meanwhile.
                        drop(st);
                        match &on_overrun {
                            Some(handler) => handler(&overrun),
                            None => tracing::error!("{overrun}"),
                        }
                        st = state.lock().unwrap_or_else(|p| p.into_inner());
                        continue;
                    }
                    let next = [st.deadline, st.overrun_at].into_iter().flatten().min();
                    st = match next {
                        None => wake.wait(st).unwrap_or_else(|p| p.into_inner()),
                        Some(at) => {
                            wake.wait_timeout(st, at.saturating_duration_since(now))
                                .unwrap_or_else(|p| p.into_inner())
                                .0
                        }
                    };
                }
            });
        if let Err(e) = spawned {
            // The progress handler and the functions' clock still bound the step.
            tracing::warn!("cannot start the SQL watchdog thread: {e}");
        }
        Watchdog { shared }
    }

    fn set(&self, change: impl FnOnce(&mut WatchState)) {
        let (state, wake) = &*self.shared;
        change(&mut state.lock().unwrap_or_else(|p| p.into_inner()));
        wake.notify_one();
    }

    pub(super) fn arm(&self, deadline: Instant) {
        self.set(|st| {
            st.deadline = Some(deadline);
            st.overrun_at = None;
        });
    }

    pub(super) fn disarm(&self) {
        self.set(|st| {
            st.deadline = None;
            st.overrun_at = None;
        });
        crate::sqlite_memory::stop(false);
    }

    /// The step the host runs from now on, recorded if it has to be abandoned.
    pub(super) fn running(&self, step: Option<LedgerEntry>) {
        let started = Instant::now();
        self.set(|st| {
            st.step = step.map(|s| (s, started));
            st.statement.clear();
        });
    }

    /// The plugin's statement (or script) the step runs from now on, named in the ledger if
    /// the step has to be abandoned. Nothing the watchdog waits for changes: not woken.
    pub(super) fn statement(&self, statement: &str) {
        let (state, _) = &*self.shared;
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.statement.clear();
        if statement.len() <= STATEMENT_KEPT {
            st.statement.push_str(statement);
        } else {
            st.statement
                .push_str(&crate::error::bounded_text(statement, STATEMENT_KEPT));
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.set(|st| st.closed = true);
    }
}
