//! The call into a plugin and its bounds: a fresh store and instance per call, memory and
//! table limits, the epoch deadline and the host's timer around the call, and what the call
//! reports (its statements, its output, why it failed).

use super::*;

/// The most linear memory a plugin has while it answers `manifest()` (at most its step
/// limit): a plugin's answer is small.
const MANIFEST_MEMORY: usize = 64 << 20;

/// The most linear memory (and instance state) an instance made ahead of its step may take
/// while the step before it runs: a plugin built from Rust starts with one or two MiB.
const AHEAD_MEMORY: usize = 16 << 20;

/// The longest a plugin may take to answer `manifest()` (at most its step deadline): the
/// answer is a list, and a plugin that has not yet been applied is asked again by every
/// command that lists it.
const MANIFEST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) fn describe_plugin_error(e: &types::Error, state: &StepState) -> String {
    format!("{}{}", describe_error(e), plugin_said(state))
}

pub(super) fn describe_error(e: &types::Error) -> String {
    match e {
        types::Error::AccessDenied(m) => format!("access denied: {m}"),
        types::Error::Constraint(m) => format!("constraint failed: {m}"),
        types::Error::Syntax(m) => format!("SQL error: {m}"),
        types::Error::Limit(m) => format!("limit reached: {m}"),
        types::Error::Other(m) => m.clone(),
    }
}

/// What the plugin said before it failed, to append to the failure: the end of its stderr
/// (where a wasm32-wasip2 build's panic message goes) or, without any, its last error-level
/// log message (where the SDK sends it in a build without WASI).
pub(super) fn plugin_said(state: &StepState) -> String {
    let stderr = stderr_tail(state);
    if !stderr.is_empty() {
        format!("; its stderr: {stderr}")
    } else if !state.last_error_log.is_empty() {
        format!("; it logged: {}", state.last_error_log)
    } else {
        String::new()
    }
}

/// A plugin's stdout and stderr go to the log, tagged with the plugin.
pub(super) fn forward_output(state: &StepState) {
    let plugin = state.plugin.as_str();
    let out = captured(&state.stdout);
    if !out.is_empty() {
        tracing::info!(plugin, stream = "stdout", "{out}");
    }
    let err = captured(&state.stderr);
    if !err.is_empty() {
        tracing::warn!(plugin, stream = "stderr", "{err}");
    }
}

pub(super) fn captured(pipe: &BoundedOutput) -> String {
    pipe.text()
}

/// The fuel of `manifest()`'s copy out of the plugin's memory into the host's
/// ([`Store::set_hostcall_fuel`]): about the bytes copied, each string and list counted at
/// its length and a few bytes more, whatever the plugin's memory holds (a list of a million
/// strings that all point at one byte costs the host tens of bytes each). An answer of
/// 10,000 steps takes a few megabytes. A step's calls keep wasmtime's default, which the
/// `sql` imports' handles to their arguments (read in place, not copied) are charged against
/// too.
const MANIFEST_FUEL: usize = 16 << 20;

/// How much of a plugin's stderr goes into an error (a panic message is at its end).
pub(super) const STDERR_IN_ERRORS: usize = 2048;

/// The end of a plugin's stderr, for an error message.
pub(super) fn stderr_tail(state: &StepState) -> String {
    let text = captured(&state.stderr);
    if text.len() <= STDERR_IN_ERRORS {
        return text;
    }
    let mut start = text.len() - STDERR_IN_ERRORS;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// Instantiates the plugin in `store`, once what its instances would hold in the host beyond
/// their memories fits in its memory limit.
async fn instantiate(
    loaded: &Loaded,
    store: &mut Store<StepState>,
) -> wasmtime::Result<bindings::MigrationPlugin> {
    if let Err(e) = store.data_mut().limits.check_instance_state() {
        wasmtime::bail!("{e}");
    }
    loaded.pre.instantiate_async(store).await
}

impl Runtime {
    pub(super) fn store(
        &self,
        loaded: &Loaded,
        plugin: &str,
        backend: Option<Box<dyn Backend>>,
        memory: usize,
    ) -> Store<StepState> {
        let out = BoundedOutput::new(self.limits.max_log_bytes);
        let err = BoundedOutput::new(self.limits.max_log_bytes);
        // Nothing is granted: no preopens, no environment, no arguments, no network.
        let wasi = WasiCtx::builder()
            .stdout(out.clone())
            .stderr(err.clone())
            .build();
        let state = StepState {
            wasi,
            table: ResourceTable::new(),
            limits: super::bounds::StoreBounds::new(memory, loaded.instance_state),
            memory_limit: memory,
            plugin: plugin.to_string(),
            backend,
            report: CallReport::default(),
            params: Vec::new(),
            values: Vec::new(),
            pipeline: None,
            log_left: self.limits.max_log_bytes,
            stdout: out,
            stderr: err,
            last_error_log: String::new(),
        };
        let mut store = Store::new(loaded.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks());
        store.epoch_deadline_trap();
        store
    }

    /// The deadline of one call, in epoch ticks.
    pub(super) fn deadline_ticks(&self) -> u64 {
        (self.limits.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }

    /// Instantiates the plugin in a fresh store and drops it: what every call pays first.
    pub(crate) async fn instantiate(&self, loaded: &Loaded) -> Result<(), String> {
        self.instantiate_for_step(loaded, "inspect")
            .await
            .instance
            .map(drop)
            .map_err(|e| format!("{e:#}"))
    }

    /// Calls the plugin's `manifest()` with no SQL granted.
    pub(crate) async fn manifest(
        &self,
        loaded: &Loaded,
        label: &str,
    ) -> Result<RawManifest, String> {
        // The answer is copied out of the plugin's memory into the host's, list and texts,
        // before its counts can be checked: the store's hostcall fuel bounds that copy.
        let memory = self.limits.max_memory.min(MANIFEST_MEMORY);
        let deadline = self.limits.deadline.min(MANIFEST_DEADLINE);
        let mut store = self.store(loaded, label, None, memory);
        store.set_hostcall_fuel(MANIFEST_FUEL);
        store.set_epoch_deadline((deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64);
        let result = self
            .bounded_for(deadline, async {
                let instance = instantiate(loaded, &mut store).await?;
                instance
                    .wasmig_plugin_plugin()
                    .call_manifest(&mut store)
                    .await
            })
            .await;
        forward_output(store.data());
        match result {
            Ok(m) => Ok(RawManifest {
                name: m.name,
                version: m.version,
                description: m.description,
                depends_on: m
                    .depends_on
                    .into_iter()
                    .map(|d| (d.name, d.requirement))
                    .collect(),
                reads: m.reads,
                migrations: m
                    .migrations
                    .into_iter()
                    .map(|m| RawMigration {
                        version: m.version,
                        description: m.description,
                        reversible: m.reversible,
                        checksum: m.checksum,
                    })
                    .collect(),
            }),
            Err(e) if matches!(e.downcast_ref(), Some(wasmtime::Trap::Interrupt)) => Err(format!(
                "manifest() did not answer within {}",
                humantime::format_duration(deadline)
            )),
            Err(e) => Err(format!(
                "manifest() failed: {}",
                self.describe_trap(&e, store.data())
            )),
        }
    }

    /// Instantiates the plugin for its next step while the current one runs, within
    /// [`AHEAD_MEMORY`]: the current step's store may hold the whole memory limit, and the two
    /// exist at once. [`Runtime::run_step`] makes the instance again, within the whole limit,
    /// if this one did not fit.
    pub(crate) async fn instantiate_ahead(&self, loaded: &Loaded, label: &str) -> Instantiated {
        let memory = self.limits.max_memory.min(AHEAD_MEMORY);
        let mut store = self.store(loaded, label, None, memory);
        let instance = self.bounded(instantiate(loaded, &mut store)).await;
        Instantiated { store, instance }
    }

    /// Instantiates a plugin in a fresh store for one call, with no SQL granted (a start
    /// function gets `access-denied`).
    pub(crate) async fn instantiate_for_step(&self, loaded: &Loaded, label: &str) -> Instantiated {
        let mut store = self.store(loaded, label, None, self.limits.max_memory);
        let instance = self.bounded(instantiate(loaded, &mut store)).await;
        Instantiated { store, instance }
    }

    /// Runs one step's `up` or `down` with SQL scoped to the plugin, in `ready` (instantiated
    /// for this step by [`Runtime::instantiate_for_step`]) or a fresh instance. The backend is
    /// lent to the plugin's store for the call and always handed back.
    pub(crate) async fn run_step(
        &self,
        loaded: &Loaded,
        ready: Option<Instantiated>,
        access: &PluginAccess,
        mut backend: Box<dyn Backend>,
        up: bool,
        version: &str,
    ) -> (Box<dyn Backend>, CallReport, Result<(), String>) {
        let label = step_label(&access.plugin, version);
        let limits = self.sql_limits();
        let ready = match ready {
            // Made ahead within a smaller limit: the step gets the whole one. One that failed
            // for another reason (a trap in its start function) is the step's failure.
            Some(mut ready)
                if ready.store.data().plugin == label && !ready.store.data().limits.refused() =>
            {
                let state = ready.store.data_mut();
                state.limits.set_memory_limit(self.limits.max_memory);
                state.memory_limit = self.limits.max_memory;
                ready
            }
            // Not made ahead, or it did not fit in that limit: made now, within the whole one,
            // once the store made ahead is gone.
            ready => {
                if let Some(Err(e)) = ready.as_ref().map(|r| &r.instance) {
                    tracing::debug!(plugin = %label, "the instance made ahead did not fit ({e}); made again");
                }
                drop(ready);
                self.instantiate_for_step(loaded, &label).await
            }
        };
        let Instantiated {
            mut store,
            instance,
        } = ready;
        if let Err(e) = backend.enter_plugin(access, limits) {
            return (backend, CallReport::default(), Err(e.to_string()));
        }
        store.data_mut().backend = Some(backend);
        // The call gets the whole deadline, however long the instance waited for it.
        store.set_epoch_deadline(self.deadline_ticks());
        let result = self
            .bounded(async {
                let instance = instance?;
                let guest = instance.wasmig_plugin_plugin();
                if up {
                    guest.call_up(&mut store, version).await
                } else {
                    guest.call_down(&mut store, version).await
                }
            })
            .await;
        // A batch still running finishes first; one that failed without the plugin hearing
        // of it fails the step (the plugin returned without collecting it).
        let unreported = sql::settle_batches(store.data_mut());
        let outcome = match result {
            Ok(Ok(())) => match unreported {
                None => Ok(()),
                Some(e) => Err(format!(
                    "a batch the step sent failed: {}",
                    describe_error(&sql::to_wit_error(e))
                )),
            },
            // An error no call of the plugin's was answered with is the plugin's own: its text
            // is the plugin's to choose, and must not pass for one of the host's verdicts.
            Ok(Err(e)) if !store.data().report.was_answered(&e) => Err(format!(
                "the plugin's own error: {}",
                describe_plugin_error(&e, store.data())
            )),
            Ok(Err(e)) => Err(describe_plugin_error(&e, store.data())),
            Err(trap) => Err(self.describe_trap(&trap, store.data())),
        };
        forward_output(store.data());
        let state = store.data_mut();
        let mut backend = state
            .backend
            .take()
            .expect("the backend is lent for the call");
        let mut report = std::mem::take(&mut state.report).finish();
        // Tearing the instance down (unmapping its memory and stacks) costs as much as
        // setting it up; a blocking thread does it while the run goes on.
        drop_elsewhere(store);
        let outcome = left(backend.leave_plugin(), &mut report, outcome);
        (backend, report, outcome)
    }

    /// Runs one step's SQL from the plugin's declaration: what the `execute-script` import
    /// does for a plugin's code, scoped and bounded the same way, without an instance.
    pub(crate) fn run_sql(
        &self,
        access: &PluginAccess,
        mut backend: Box<dyn Backend>,
        script: &str,
    ) -> (Box<dyn Backend>, CallReport, Result<(), String>) {
        let mut report = CallReport::default();
        if let Err(e) = backend.enter_plugin(access, self.sql_limits()) {
            return (backend, report, Err(e.to_string()));
        }
        let outcome = backend
            .execute_script(script, &mut |step| report.script_step(step))
            .map_err(|e| describe_error(&sql::to_wit_error(e)));
        let mut report = report.finish();
        let outcome = left(backend.leave_plugin(), &mut report, outcome);
        (backend, report, outcome)
    }

    /// Bounds a call into a plugin by the host's clock. The engine's epoch interrupts a guest
    /// that executes wasm; a guest blocked in a host call that waits (a WASI sleep or poll)
    /// executes none, and is stopped here instead: at the deadline the call's future is
    /// dropped, which unwinds the guest, and the call ends as an interrupted one.
    pub(super) async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        self.bounded_for(self.limits.deadline, call).await
    }

    /// [`Runtime::bounded`] with a deadline of its own.
    async fn bounded_for<T>(
        &self,
        deadline: std::time::Duration,
        call: impl std::future::Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(wasmtime::Trap::Interrupt.into()),
        }
    }

    /// The bounds on one step's SQL, its deadline starting now.
    pub(super) fn sql_limits(&self) -> SqlLimits {
        SqlLimits {
            deadline: std::time::Instant::now() + self.limits.deadline,
            max_result_bytes: self.limits.max_result_bytes,
            max_growth_bytes: self.limits.max_growth_bytes,
            max_temp_bytes: self.limits.max_temp_bytes,
            max_schema_bytes: self.limits.max_schema_bytes,
            application_limits: self.limits.application_limits,
        }
    }

    pub(super) fn describe_trap(&self, e: &wasmtime::Error, state: &StepState) -> String {
        let what = match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => format!(
                "exceeded its {} deadline",
                humantime::format_duration(self.limits.deadline)
            ),
            Some(wasmtime::Trap::StackOverflow) => "overflowed its stack".to_string(),
            Some(wasmtime::Trap::UnreachableCodeReached) => {
                "trapped (unreachable code reached; Rust panics end this way)".to_string()
            }
            Some(trap) => format!("trapped: {trap}"),
            None => {
                // The root cause, without the context wasmtime wraps around it.
                let cause = e.root_cause().to_string();
                if cause.contains("growing memory") {
                    format!(
                        "exceeded its memory limit of {} MiB ({cause})",
                        state.memory_limit >> 20
                    )
                } else if cause.contains("fuel allocated for hostcalls") {
                    // The store's hostcall fuel ran out copying the answer or the arguments.
                    format!("sent more than wasmig copies out of a plugin in one call ({cause})")
                } else {
                    cause
                }
            }
        };
        format!("plugin {} {what}{}", state.plugin, plugin_said(state))
    }
}

/// A step's outcome once the backend has taken the session back: a step that already failed
/// keeps its own error (the cause a person needs: a trap, the deadline, the plugin's error),
/// and the step is rolled back either way; a step that succeeded fails with what leaving
/// found (deferred checks that failed, the deadline passed meanwhile).
fn left(
    leave: crate::error::Result<u64>,
    report: &mut CallReport,
    outcome: Result<(), String>,
) -> Result<(), String> {
    match (leave, outcome) {
        (Ok(changed), outcome) => {
            report.rows_changed = changed;
            outcome
        }
        (Err(e), Ok(())) => Err(e.to_string()),
        (Err(e), Err(first)) => {
            tracing::debug!("after the step failed, taking the session back failed too: {e}");
            Err(first)
        }
    }
}
