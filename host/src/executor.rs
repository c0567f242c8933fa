//! The executor: runs a plan step by step. Each step is one transaction holding the plugin's
//! effects and its ledger row; a failure rolls the step back and is recorded on its own. A
//! dry run executes the same steps in one transaction that is always rolled back.

use crate::Manifest;
use crate::declaration::Declaration;
use crate::planner::{PendingPlugin, PlannedStep};
use crate::runtime::{CallReport, Instantiated, Loaded, Runtime};
use crate::store::{Backend, Direction, LedgerEntry, Outcome, PluginAccess};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What happened to one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The plugin.
    pub plugin: String,
    /// The step's version.
    pub version: String,
    /// The step's description.
    pub description: String,
    /// Up or down.
    pub direction: Direction,
    /// How it ended (in a dry run: how it would end).
    pub outcome: Outcome,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it took, in microseconds.
    pub duration_us: i64,
    /// Rows the step inserted, updated or deleted; 0 when it failed (it was rolled back).
    pub rows_changed: u64,
    /// Schema objects the step created, changed or dropped, e.g. `created table notes__note`.
    pub schema_changes: Vec<String>,
    /// What the step destroys (`drops table shop__order`, `drops column shop__item.tags`,
    /// `deletes every row of shop__tag`): an up step that destroys data runs only if the
    /// plugin marks it and the operator allows it ([`crate::destructive`]).
    pub destructive: Vec<String>,
    /// The statements the plugin executed, in order, for a dry run. A real run records them
    /// in the ledger ([`crate::Host::history`]) and leaves this empty, so a run's memory does
    /// not grow with every statement of every step.
    pub statements: Vec<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Whether this was a dry run: everything was rolled back.
    pub dry_run: bool,
    /// Steps that ran, in order (the last one may have failed). Empty when the run handed
    /// each step's report to a callback instead ([`crate::Host::up_with`],
    /// [`crate::Host::down_with`]).
    pub steps: Vec<StepReport>,
    /// How many steps ran, the failed one included.
    pub ran: usize,
    /// The step that failed (in a dry run: would fail), if one did; the run stopped there.
    pub failed: Option<StepReport>,
    /// Steps that were planned but did not run because an earlier step failed.
    pub not_run: Vec<PlannedStep>,
    /// Steps skipped because another runner applied (or undid) them meanwhile.
    pub already_done: Vec<PlannedStep>,
}

impl RunReport {
    /// The failed step, if any.
    pub fn failure(&self) -> Option<&StepReport> {
        self.failed.as_ref()
    }
}

/// What a run tells its observer as it goes ([`StepSink`]).
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// Before the first step: how many steps the run plans.
    Planned {
        /// The steps planned.
        steps: usize,
    },
    /// A step is about to run.
    Started {
        /// The plugin.
        plugin: String,
        /// The step's version.
        version: String,
        /// The step's description.
        description: String,
        /// Up or down.
        direction: Direction,
    },
    /// A step has committed or rolled back: its report.
    Ended(StepReport),
}

/// Receives a run's events: its plan's size, each step as it starts, and each step's report
/// as soon as the step has committed or rolled back.
pub type StepSink<'a> = &'a mut (dyn FnMut(RunEvent) + Send);

/// The log target of the line each step's end writes (`wasmig::step`): a front end that
/// shows the steps itself (the binary) can leave it out.
pub const STEP_LOG: &str = "wasmig::step";

/// What runs a step: a component's bytes (stored with the first step it applies, for
/// rollback), its manifest, and the read grants the policy gives its plugin. Compiled when
/// its first step runs.
pub(crate) struct Source {
    /// The file, or a description of where the bytes came from, for errors.
    pub label: PathBuf,
    /// The component's bytes; `None`: read the file `label` just before its first step runs
    /// (so a run over a thousand plugins holds two plugins' bytes at a time).
    pub bytes: Option<Arc<Vec<u8>>>,
    pub manifest: Manifest,
    pub granted_reads: Vec<String>,
    /// The policy allows the plugin's destructive steps, when it marks them.
    pub allow_destructive: bool,
}

/// Apply for real, or roll everything back at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Apply,
    DryRun,
}

/// The component that runs the current plugin's steps, loaded, and maybe already
/// instantiated for this step.
struct Component<'a> {
    source: &'a Source,
    bytes: &'a [u8],
    code: &'a Code,
    ready: Option<Instantiated>,
    /// An earlier step of this run stored the component in the database and succeeded.
    stored: bool,
    /// The operator allows this run's destructive steps, of every plugin.
    allow_destructive: bool,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What runs a component's steps: the SQL it declares as data, and its compiled code when a
/// step runs code (a plugin whose steps are all declared SQL is never compiled).
#[derive(Clone)]
struct Code {
    declared: Option<Arc<Declaration>>,
    loaded: Option<Loaded>,
}

impl Code {
    /// The SQL `step` runs, when the plugin declares it as data.
    fn declared_sql(&self, step: &PlannedStep) -> Option<&str> {
        let declared = self.declared.as_deref()?;
        declared.sql(&step.version, step.direction == Direction::Up)
    }
}

/// A component's bytes and code, loaded.
type LoadedSource = (Arc<Vec<u8>>, Code);

/// Reads (if needed) and loads one source's component: CPU-bound, run on a blocking thread.
fn load_source(
    runtime: &Runtime,
    label: &std::path::Path,
    bytes: Option<Arc<Vec<u8>>>,
    sha: &str,
) -> crate::Result<LoadedSource> {
    let bytes = match bytes {
        Some(bytes) => bytes,
        None => Arc::new(crate::catalog::reread(label, sha)?),
    };
    let invalid = |reason| crate::Error::InvalidPlugin {
        file: label.to_path_buf(),
        reason,
    };
    // Checked when its manifest was first read (a manifest is stored only then, and a
    // component only with a step applied from it): the steps need only the declaration.
    let declared = crate::loader::read_declaration(&bytes).map_err(invalid)?;
    let loaded = match &declared {
        Some(declared) if !declared.has_code() => None,
        _ => Some(
            crate::loader::load(runtime, label, &bytes, sha, crate::runtime::Purpose::Run)
                .map_err(invalid)?,
        ),
    };
    let code = Code {
        declared: declared.map(Arc::new),
        loaded,
    };
    Ok((bytes, code))
}

/// Starts loading the component of `sha` on a blocking thread.
fn start_loading(
    runtime: &Arc<Runtime>,
    sources: &BTreeMap<String, Source>,
    sha: &str,
) -> (String, tokio::task::JoinHandle<crate::Result<LoadedSource>>) {
    let source = &sources[sha];
    let (runtime, label, bytes) = (runtime.clone(), source.label.clone(), source.bytes.clone());
    let key = sha.to_string();
    let task = tokio::task::spawn_blocking(move || load_source(&runtime, &label, bytes, &key));
    (sha.to_string(), task)
}

/// Runs every step of the plan in order, with the component each step names; stops at the
/// first failure. `note` goes into the ledger row of every step (an operator's decision).
/// Each step's report goes to `on_step` when the step ends; the run keeps none of them (a
/// copy of a failed one), so its memory does not grow with the number of steps.
///
/// While one plugin's steps run, the next plugin's component is read and loaded on another
/// thread, so the steps wait for neither; at most two components are loaded at a time. The
/// groups and the sources are consumed: a plugin's steps are made from its manifest when its
/// turn comes, and both go once they have run, so what a run holds for its plugins does not
/// grow with their steps and shrinks as it goes.
pub(crate) async fn run(
    runtime: &Arc<Runtime>,
    mut backend: Box<dyn Backend>,
    groups: Vec<Group>,
    mut sources: BTreeMap<String, Source>,
    how: How,
    on_step: StepSink<'_>,
) -> (Box<dyn Backend>, crate::Result<RunReport>) {
    let How {
        mode,
        note,
        operator,
        retry,
        allow_destructive,
    } = how;
    let mut report = RunReport {
        dry_run: mode == Mode::DryRun,
        ..RunReport::default()
    };
    // A dry run's transaction was opened with the database (host tables included).
    // One compiled component at a time runs: the steps of one component are consecutive, a
    // group, whose `PlannedStep`s exist only while it runs.
    on_step(RunEvent::Planned {
        steps: groups.iter().map(Group::len).sum(),
    });
    let mut rest = groups;
    rest.reverse();
    // How many groups each component runs (one, for the plans the planner makes).
    let mut groups_left: BTreeMap<String, usize> = BTreeMap::new();
    for group in &rest {
        *groups_left.entry(group.sha().to_string()).or_default() += 1;
    }
    // The component an earlier step of this run stored (and that step's transaction, or the
    // dry run's, holds it): the next steps need not look it up again.
    let mut stored: Option<String> = None;
    let mut plugins: Vec<PluginAccess> = Vec::new();
    for group in rest.iter().rev() {
        if let Some(source) = sources.get(group.sha())
            && plugins
                .last()
                .is_none_or(|p| p.plugin != source.manifest.name)
        {
            plugins.push(PluginAccess::new(
                &source.manifest.name,
                &source.granted_reads,
            ));
        }
    }
    backend.run_begins(&plugins);
    let mut next = rest
        .last()
        .map(|g| start_loading(runtime, &sources, g.sha()));
    while let Some(group) = rest.pop() {
        let group = group.into_steps(&sources);
        let sha = group[0].component_sha256.clone();
        let loaded = match next.take() {
            Some((key, task)) if key == sha => task.await.unwrap_or_else(|e| {
                Err(crate::Error::Engine(format!("the loader task failed: {e}")))
            }),
            _ => {
                let source = &sources[&sha];
                load_source(runtime, &source.label, source.bytes.clone(), &sha)
            }
        };
        // The plugin after this one, loaded while this one's steps run; the backend may get
        // ready for it too.
        next = rest
            .last()
            .map(|g| start_loading(runtime, &sources, g.sha()));
        if let Some(upcoming) = rest.last().and_then(|g| sources.get(g.sha())) {
            backend.upcoming(&PluginAccess::new(
                &upcoming.manifest.name,
                &upcoming.granted_reads,
            ));
        }
        let (bytes, code) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                report.not_run = not_run(&group, 0, rest, &sources);
                let _ = backend.rollback();
                return (backend, Err(stopped(e, &report.not_run)));
            }
        };
        let source = &sources[&sha];
        let mut instantiating: Option<tokio::task::JoinHandle<Instantiated>> = None;
        let mut stopped_at = None;
        for (i, step) in group.iter().enumerate() {
            let ready = match instantiating.take() {
                Some(task) => task.await.ok(),
                None => None,
            };
            // The plugin's next step gets its instance made while this one runs and commits
            // (unless it runs declared SQL).
            instantiating = group
                .get(i + 1)
                .filter(|next| code.declared_sql(next).is_none())
                .zip(code.loaded.as_ref())
                .map(|(next, loaded)| {
                    let (runtime, loaded) = (runtime.clone(), loaded.clone());
                    let label = crate::runtime::step_label(&next.plugin, &next.version.to_string());
                    tokio::spawn(async move { runtime.instantiate_ahead(&loaded, &label).await })
                });
            on_step(RunEvent::Started {
                plugin: step.plugin.clone(),
                version: step.version.to_string(),
                description: step.description.clone(),
                direction: step.direction,
            });
            let mut ready = ready;
            let mut attempt = 1;
            let result = loop {
                let component = Component {
                    source,
                    bytes: &bytes,
                    code: &code,
                    ready: ready.take(),
                    stored: stored.as_deref() == Some(sha.as_str()),
                    allow_destructive,
                };
                let tries = Attempt {
                    number: attempt,
                    of: retry.attempts,
                };
                let (b, result) = run_one(
                    runtime,
                    backend,
                    step,
                    component,
                    mode,
                    Stamp {
                        note: note.as_deref(),
                        operator: &operator,
                    },
                    tries,
                )
                .await;
                backend = b;
                // A failure the database caused (a deadlock, a serialization failure, a lost
                // connection) is tried again, after a pause that doubles each time, with
                // jitter so that runners that collided do not collide again; a failure the
                // plugin caused is not.
                let transient = backend.take_transient();
                let failed = match &result {
                    Ok(Some(report)) => report.outcome == Outcome::Failed,
                    Ok(None) => false,
                    Err(_) => true,
                };
                match transient {
                    Some(reason) if failed && mode == Mode::Apply && attempt < retry.attempts => {
                        if let Err(e) = &result {
                            let stamp = Stamp {
                                note: note.as_deref(),
                                operator: &operator,
                            };
                            record_lost_attempt(&mut *backend, step, e, tries, stamp);
                        }
                        let pause = retry.pause(attempt);
                        tracing::warn!(
                            plugin = %step.plugin,
                            version = %step.version,
                            "a transient failure of the database ({reason}); attempt {} of {} \
                             in {} ms",
                            attempt + 1,
                            retry.attempts,
                            pause.as_millis()
                        );
                        tokio::time::sleep(pause).await;
                        attempt += 1;
                    }
                    _ => break result,
                }
            };
            match result {
                Err(e) => {
                    report.not_run = not_run(&group, i, rest, &sources);
                    let _ = backend.rollback();
                    return (backend, Err(stopped(e, &report.not_run)));
                }
                Ok(None) => report.already_done.push(step.clone()),
                Ok(Some(step_report)) => {
                    let failed = step_report.outcome == Outcome::Failed;
                    if !failed && step.direction == Direction::Up {
                        stored = Some(sha.clone());
                    }
                    report.ran += 1;
                    if failed {
                        report.failed = Some(step_report.clone());
                    }
                    on_step(RunEvent::Ended(step_report));
                    if failed {
                        stopped_at = Some(i + 1);
                        break;
                    }
                }
            }
        }
        if let Some(at) = stopped_at {
            report.not_run = not_run(&group, at, rest, &sources);
            break;
        }
        // The plugin is done: its code and bytes go (unmapped on another thread), and so do
        // its planned steps and manifest.
        crate::runtime::drop_elsewhere((bytes, code));
        if let Some(left) = groups_left.get_mut(&sha) {
            *left -= 1;
            if *left == 0 {
                sources.remove(&sha);
            }
        }
    }
    if mode == Mode::DryRun
        && let Err(e) = backend.rollback()
    {
        return (backend, Err(e));
    }
    (backend, Ok(report))
}

/// The steps one component runs, consecutive in a run.
pub(crate) enum Group {
    /// Planned step by step (`down`).
    Steps(Vec<PlannedStep>),
    /// A plugin of an `up` plan: its pending steps' positions in its source's manifest.
    Pending(PendingPlugin),
}

impl Group {
    fn len(&self) -> usize {
        match self {
            Group::Steps(steps) => steps.len(),
            Group::Pending(p) => p.migrations.len(),
        }
    }

    fn sha(&self) -> &str {
        match self {
            Group::Steps(steps) => &steps[0].component_sha256,
            Group::Pending(p) => &p.sha256,
        }
    }

    fn into_steps(self, sources: &BTreeMap<String, Source>) -> Vec<PlannedStep> {
        match self {
            Group::Steps(steps) => steps,
            Group::Pending(p) => {
                let source = &sources[&p.sha256];
                p.migrations
                    .iter()
                    .map(|&i| PlannedStep::up(&source.label, &p.sha256, &source.manifest, i))
                    .collect()
            }
        }
    }
}

/// A plan's steps as consecutive runs of one component each.
pub(crate) fn groups_of(steps: Vec<PlannedStep>) -> Vec<Group> {
    let mut groups: Vec<Vec<PlannedStep>> = Vec::new();
    for step in steps {
        match groups.last_mut() {
            Some(g) if g[0].component_sha256 == step.component_sha256 => g.push(step),
            _ => groups.push(vec![step]),
        }
    }
    groups.into_iter().map(Group::Steps).collect()
}

/// The steps from `group[from..]` on, then those of the groups left (reversed in `rest`),
/// after a failure.
fn not_run(
    group: &[PlannedStep],
    from: usize,
    rest: Vec<Group>,
    sources: &BTreeMap<String, Source>,
) -> Vec<PlannedStep> {
    let mut steps = group[from..].to_vec();
    for g in rest.into_iter().rev() {
        steps.extend(g.into_steps(sources));
    }
    steps
}

/// The error that stopped a run, with the steps it left unapplied (when there are any).
fn stopped(cause: crate::Error, not_run: &[PlannedStep]) -> crate::Error {
    if not_run.is_empty() {
        return cause;
    }
    crate::Error::RunStopped {
        cause: Box::new(cause),
        not_applied: not_run
            .iter()
            .map(|s| format!("{} {}", s.plugin, s.version))
            .collect(),
    }
}

/// How a run applies its steps.
pub(crate) struct How {
    pub mode: Mode,
    /// Goes into the ledger row of every step (an operator's decision).
    pub note: Option<String>,
    /// Who runs the steps, for their ledger rows ([`crate::LedgerEntry::applied_by`]).
    pub operator: String,
    pub retry: Retry,
    /// The operator allows destructive steps the plugins mark as such, of every plugin.
    pub allow_destructive: bool,
}

/// How many times a step is tried when the database fails it, and how long to wait between.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    /// Attempts in all (1: no retry).
    pub attempts: u32,
    /// The pause before the second attempt; each next one doubles it.
    pub first_pause: std::time::Duration,
}

impl Retry {
    /// The pause after attempt `n`: `first_pause × 2^(n-1)`, between half and all of it
    /// (jitter), capped at 30 s.
    fn pause(&self, n: u32) -> std::time::Duration {
        let full = self
            .first_pause
            .saturating_mul(1 << (n - 1).min(16))
            .min(std::time::Duration::from_secs(30));
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        full / 2 + full.mul_f64(f64::from(nanos % 1000) / 2000.0)
    }
}

/// Which attempt at a step this is.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    number: u32,
    of: u32,
}

/// What every ledger row of a run carries besides the step's own facts.
#[derive(Clone, Copy)]
struct Stamp<'a> {
    /// An operator's decision (allowed drift, a downgrade).
    note: Option<&'a str>,
    /// Who runs the steps.
    operator: &'a str,
}

/// The ledger row of a step that succeeded, as far as it is known before it runs.
fn ledger_entry(step: &PlannedStep, started_at_ms: i64, stamp: Stamp<'_>) -> LedgerEntry {
    LedgerEntry {
        id: 0,
        plugin: step.plugin.clone(),
        plugin_version: step.plugin_version.to_string(),
        version: step.version.to_string(),
        description: step.description.clone(),
        direction: step.direction,
        outcome: Outcome::Succeeded,
        error: None,
        started_at_ms,
        duration_us: 0,
        checksum: step.checksum.clone(),
        component_sha256: step.component_sha256.clone(),
        wasmig_version: env!("CARGO_PKG_VERSION").to_string(),
        statements: Vec::new(),
        note: stamp.note.map(str::to_string),
        applied_by: stamp.operator.to_string(),
    }
}

/// Records an attempt whose failure left no ledger row (the connection was lost), once the
/// database can take it again; a failure to record is logged, and the next attempt goes on.
fn record_lost_attempt(
    backend: &mut dyn Backend,
    step: &PlannedStep,
    error: &crate::Error,
    attempt: Attempt,
    stamp: Stamp<'_>,
) {
    let mut entry = ledger_entry(step, now_ms(), stamp);
    entry.outcome = Outcome::Failed;
    entry.error = Some(format!(
        "{error} (a transient failure of the database: attempt {} of {}, tried again)",
        attempt.number, attempt.of
    ));
    let _ = backend.rollback();
    let recorded = backend
        .begin(None)
        .and_then(|()| backend.record(&entry))
        .and_then(|()| backend.commit());
    if let Err(e) = recorded {
        let _ = backend.rollback();
        tracing::warn!(plugin = %step.plugin, version = %step.version, "cannot record a failed attempt: {e}");
    }
}

/// One step. In `Apply` mode, in its own transaction; `Ok(None)`: another runner did it
/// first.
async fn run_one(
    runtime: &Runtime,
    mut backend: Box<dyn Backend>,
    step: &PlannedStep,
    component: Component<'_>,
    mode: Mode,
    stamp: Stamp<'_>,
    attempt: Attempt,
) -> (Box<dyn Backend>, crate::Result<Option<StepReport>>) {
    let started_at_ms = now_ms();
    let clock = Instant::now();
    let access = PluginAccess::new(&step.plugin, &component.source.granted_reads);
    if mode == Mode::Apply {
        if let Err(e) = backend.begin(Some(&access)) {
            return (backend, Err(e));
        }
        // Re-check inside the write transaction: exactly once, even with concurrent runners.
        let pending = backend
            .is_applied(&step.plugin, &step.version)
            .map(|applied| applied == (step.direction == Direction::Down));
        match pending {
            Ok(true) => {}
            Ok(false) => {
                let r = backend.rollback();
                return (backend, r.map(|()| None));
            }
            Err(e) => {
                let _ = backend.rollback();
                return (backend, Err(e));
            }
        }
    }
    let prepared = (|| {
        if step.direction == Direction::Up && !component.stored {
            backend.store_component(
                &step.component_sha256,
                component.bytes,
                &component.source.manifest,
            )?;
        }
        backend.mark_schema(&access)
    })();
    let before = match prepared {
        Ok(before) => before,
        Err(e) => {
            let _ = backend.rollback();
            return (backend, Err(e));
        }
    };
    let version = step.version.to_string();
    let mut entry = ledger_entry(step, started_at_ms, stamp);
    if mode == Mode::Apply {
        backend.running(Some(&entry));
    }
    let code = component.code;
    let (mut backend, call, mut outcome) = match (code.declared_sql(step), &code.loaded) {
        (Some(sql), _) => runtime.run_sql(&access, backend, sql),
        (None, Some(loaded)) => {
            runtime
                .run_step(
                    loaded,
                    component.ready,
                    &access,
                    backend,
                    step.direction == Direction::Up,
                    &version,
                )
                .await
        }
        // A manifest stored for this component by a wasmig that asked its code lists a
        // step its declaration does not have.
        (None, None) => (
            backend,
            CallReport::default(),
            Err(format!("the plugin's declaration has no step {version}")),
        ),
    };
    let rows_changed = call.rows_changed;
    // The destructive-change gate, for up steps (a down step destroys by definition).
    let mut destroyed = Vec::new();
    if outcome.is_ok() && step.direction == Direction::Up {
        let gate = call.gate();
        destroyed = gate
            .map(crate::destructive::Seen::destroyed)
            .unwrap_or_default();
        // Whatever its statements say: a function, a trigger or a procedure may drop a
        // table or column. The backend compares the tables only when the database says the
        // step changed a table or its columns.
        let renames = gate.map_or(&[][..], |g| &g.renames[..]);
        match backend.tables_around(&access, &before) {
            Ok((was, now)) => destroyed.extend(crate::destructive::in_tables(&was, &now, renames)),
            // The step's tables are the plugin's to make: one the gate cannot compare (too
            // many columns to read, or not read by the step's deadline) fails the step, and
            // is recorded as its failure.
            Err(e) => {
                outcome = Err(format!(
                    "the destructive-change gate cannot compare the step's tables: {e}"
                ));
            }
        }
    }
    let mut schema_changes = Vec::new();
    if outcome.is_ok() {
        outcome = match backend.verify_step(&access, before) {
            Ok(check) => {
                schema_changes = check.changes;
                check
                    .verdict
                    .map_err(|reason| format!("access denied: {reason}"))
            }
            Err(e) => {
                let _ = backend.rollback();
                return (backend, Err(e));
            }
        };
    }

    // Then the gate's decision, once the sandbox's own check passed.
    if outcome.is_ok() && !destroyed.is_empty() {
        let marked = call.gate().is_some_and(|g| g.marked)
            || crate::destructive::marked(code.declared_sql(step).into_iter());
        let allowed = component.allow_destructive || component.source.allow_destructive;
        let what = destroyed.join(", ");
        if marked && allowed {
            let decision =
                format!("destructive ({what}): marked by the plugin, allowed by the operator");
            entry.note = Some(match entry.note.take() {
                Some(n) => format!("{n}; {decision}"),
                None => decision,
            });
        } else {
            let mut missing = Vec::new();
            if !marked {
                missing.push(format!(
                    "the plugin does not mark it as intended (a `-- {}` comment in its SQL)",
                    crate::destructive::MARKER
                ));
            }
            if !allowed {
                missing.push(format!(
                    "the operator does not allow it (`--allow-destructive`, or \
                     `allow_destructive = true` in [plugins.{}] of wasmig.toml)",
                    step.plugin
                ));
            }
            outcome = Err(format!(
                "destructive step refused: it {what}; {}",
                missing.join(", and ")
            ));
        }
    }
    entry.statements = call.statements;
    if let Err(cause) = &outcome {
        entry.outcome = Outcome::Failed;
        entry.error = Some(match backend.transient_reason() {
            Some(_) if mode == Mode::Apply => format!(
                "{cause} (a transient failure of the database: attempt {} of {}{})",
                attempt.number,
                attempt.of,
                if attempt.number < attempt.of {
                    ", tried again"
                } else {
                    ""
                }
            ),
            _ => cause.clone(),
        });
        entry.error = entry
            .error
            .take()
            .map(|e| crate::error::bounded_text(&e, crate::error::MAX_ERROR_BYTES));
    }
    entry.duration_us = clock.elapsed().as_micros() as i64;

    if mode == Mode::Apply {
        let recorded = commit_or_record_failure(&mut *backend, &entry);
        backend.running(None);
        if let Err(e) = recorded {
            return (backend, Err(e));
        }
    }
    match &entry.error {
        Some(e) => tracing::error!(
            target: STEP_LOG,
            plugin = %entry.plugin,
            version = %entry.version,
            direction = entry.direction.as_str(),
            dry_run = mode == Mode::DryRun,
            "step failed{}: {e}",
            if mode == Mode::Apply { " and was rolled back" } else { "" }
        ),
        None => tracing::info!(
            target: STEP_LOG,
            plugin = %entry.plugin,
            version = %entry.version,
            direction = entry.direction.as_str(),
            dry_run = mode == Mode::DryRun,
            "{}",
            match (mode, entry.direction) {
                (Mode::DryRun, _) => "would succeed",
                (Mode::Apply, Direction::Up) => "applied",
                (Mode::Apply, Direction::Down) => "rolled back",
            }
        ),
    }
    let report = StepReport {
        plugin: entry.plugin,
        version: entry.version,
        description: entry.description,
        direction: entry.direction,
        outcome: entry.outcome,
        error: entry.error,
        duration_us: entry.duration_us,
        // A failed step's changes were rolled back: it changed nothing, as its schema changes
        // say.
        rows_changed: if outcome.is_ok() { rows_changed } else { 0 },
        schema_changes: if outcome.is_ok() {
            schema_changes
        } else {
            Vec::new()
        },
        destructive: destroyed,
        statements: match mode {
            Mode::DryRun => entry.statements,
            Mode::Apply => Vec::new(),
        },
    };
    (backend, Ok(Some(report)))
}

/// Success: the ledger row commits with the step's effects. Failure: nothing of the step
/// remains, then the failure is recorded in its own transaction. A commit the database
/// refused (it answered: nothing of the step committed) is recorded as the step's failure
/// too; one whose answer was lost is not (the next attempt's re-check tells what happened).
fn commit_or_record_failure(backend: &mut dyn Backend, entry: &LedgerEntry) -> crate::Result<()> {
    if entry.outcome == Outcome::Succeeded {
        let committed = backend.record(entry).and_then(|()| backend.commit());
        if let Err(e) = &committed {
            let _ = backend.rollback();
            if backend.transient_reason().is_none() {
                let mut failed = entry.clone();
                failed.outcome = Outcome::Failed;
                failed.error = Some(crate::error::bounded_text(
                    &e.to_string(),
                    crate::error::MAX_ERROR_BYTES,
                ));
                if let Err(not) = record(backend, &failed) {
                    tracing::warn!(plugin = %entry.plugin, version = %entry.version,
                        "cannot record a step whose commit failed: {not}");
                }
            }
        }
        return committed;
    }
    backend.rollback()?;
    record(backend, entry)
}

/// Writes `entry` in a transaction of its own.
fn record(backend: &mut dyn Backend, entry: &LedgerEntry) -> crate::Result<()> {
    let recorded = backend
        .begin(None)
        .and_then(|()| backend.record(entry))
        .and_then(|()| backend.commit());
    if recorded.is_err() {
        let _ = backend.rollback();
    }
    recorded
}
