//! The wasmtime glue: engine, loader (import checks, compile, `InstancePre`), the host side of
//! the `sql` and `log` imports, and bounded calls into a plugin. Nothing of wasmtime leaves
//! this module.

use crate::declaration::Declaration;
use crate::manifest::{RawManifest, RawMigration};
use crate::store::{Backend, Scope, SqlLimits};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod cache;
mod output;
mod pipeline;
mod sql;

use cache::CompileCache;
use output::BoundedOutput;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "migration-plugin",
        imports: { default: trappable },
        exports: { default: async },
    });
}

use bindings::MigrationPluginPre;
use bindings::wasmig::plugin::{log, types};

/// The interface a plugin must export, as the component model names it.
const PLUGIN_EXPORT: &str = "wasmig:plugin/plugin@0.1.0";

/// Interfaces a plugin may import: ours, and the WASI interfaces that wasm32-wasip2 std links
/// (granted nothing: no preopened directories, no environment, no network).
const IMPORT_ALLOW_LIST: &[&str] = &[
    "wasmig:plugin/types@0.1.0",
    "wasmig:plugin/sql@0.1.0",
    "wasmig:plugin/log@0.1.0",
    "wasi:io/error@",
    "wasi:io/poll@",
    "wasi:io/streams@",
    "wasi:cli/environment@",
    "wasi:cli/exit@",
    "wasi:cli/stdin@",
    "wasi:cli/stdout@",
    "wasi:cli/stderr@",
    "wasi:cli/terminal-input@",
    "wasi:cli/terminal-output@",
    "wasi:cli/terminal-stdin@",
    "wasi:cli/terminal-stdout@",
    "wasi:cli/terminal-stderr@",
    "wasi:clocks/monotonic-clock@",
    "wasi:clocks/wall-clock@",
    "wasi:random/random@",
    "wasi:random/insecure@",
    "wasi:random/insecure-seed@",
    "wasi:filesystem/types@",
    "wasi:filesystem/preopens@",
];

/// Bounds on every call into a plugin.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Limits {
    /// Wall-clock time one call may take (the whole `up` or `down` of one step).
    pub deadline: Duration,
    /// Linear memory one plugin instance may grow to, in bytes.
    pub max_memory: usize,
    /// WebAssembly stack, in bytes.
    pub max_stack: usize,
    /// Bytes of log messages (and stdout/stderr) kept per call; the rest is dropped.
    pub max_log_bytes: usize,
    /// Bytes one `query` may return.
    pub max_result_bytes: usize,
    /// Bytes one step may grow the database file by.
    pub max_growth_bytes: u64,
    /// Bytes one step may add to the temporary files (TEMP tables, sorts and materialized
    /// subqueries that spill from memory).
    pub max_temp_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(30),
            max_memory: 256 << 20,
            max_stack: 1 << 20,
            max_log_bytes: 64 << 10,
            max_result_bytes: 64 << 20,
            max_growth_bytes: 1 << 30,
            max_temp_bytes: 256 << 20,
        }
    }
}

/// How often the engine's epoch advances; the deadline's resolution.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Which compiler turns plugins into native code.
///
/// Migration code runs once per deploy, so the time to compile a plugin the host has never
/// seen usually outweighs the speed of the code. `Auto` compiles a plugin it has not seen
/// with Winch, wasmtime's baseline compiler (a few times faster to compile), and uses
/// Cranelift's optimized code whenever the compile cache has it: `wasmig compile` (or
/// [`crate::Host::compile`]) puts it there, typically at deploy time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    /// Winch for plugins seen for the first time, Cranelift once precompiled (Cranelift
    /// only where Winch is unavailable: it supports x86-64 only).
    #[default]
    Auto,
    /// Cranelift, wasmtime's optimizing compiler, always.
    Cranelift,
    /// Winch, wasmtime's baseline compiler, always (x86-64 only).
    Winch,
}

impl Compiler {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Compiler::Auto => "auto",
            Compiler::Cranelift => "cranelift",
            Compiler::Winch => "winch",
        }
    }
}

/// Why a plugin is being compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// To run it now: any cached code will do, else the quickest compile.
    Run,
    /// To precompile it: optimized code, from the cache or compiled now.
    Optimize,
}

/// One compiler's engine, the linker for it, its part of the compile cache, and the thread
/// that advances the engine's epoch.
struct Tier {
    compiler: Compiler,
    engine: Engine,
    linker: Linker<StepState>,
    cache: Option<CompileCache>,
    /// Why the cache directory was given but cannot be used.
    cache_error: Option<String>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Tier {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Tier {
    fn new(compiler: Compiler, limits: &Limits, cache_dir: Option<&Path>) -> crate::Result<Self> {
        let engine_error = |e: wasmtime::Error| crate::Error::Engine(format!("{e:#}"));
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.max_stack)
            // No component-model-async bookkeeping on every call: plugins are synchronous.
            .concurrency_support(false)
            .strategy(match compiler {
                Compiler::Winch => wasmtime::Strategy::Winch,
                _ => wasmtime::Strategy::Cranelift,
            });
        if compiler == Compiler::Winch {
            // Winch compiles plugins seen for the first time, usually many at once, and the
            // host already compiles one per core (`on_cores`); wasmtime's own threads inside
            // each compile oversubscribed the cores. 100 plugins into a fresh database, 5
            // interleaved runs: medians 3.70 → 3.32 s; one plugin alone compiles more slowly
            // (`notes`: ≈ 36 → 46 ms). Cranelift, for one large plugin at deploy time, keeps
            // its threads.
            config.parallel_compilation(false);
        }
        let engine = Engine::new(&config).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        types::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)
            .and_then(|()| log::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s))
            .and_then(|()| sql::add_to_linker(&mut linker))
            .map_err(engine_error)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (stop, ticking) = (ticker_stop.clone(), engine.weak());
        std::thread::Builder::new()
            .name("wasmig-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticking.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| crate::Error::Engine(format!("cannot start the epoch thread: {e}")))?;

        // One directory for both compilers: an entry's name includes the engine's
        // compatibility hash, which differs between them.
        let (cache, cache_error) = match cache_dir {
            Some(dir) => match CompileCache::new(dir, &engine) {
                Ok(cache) => (Some(cache), None),
                Err(e) => (None, Some(format!("{}: {e}", dir.display()))),
            },
            None => (None, None),
        };
        Ok(Tier {
            compiler,
            engine,
            linker,
            cache,
            cache_error,
            ticker_stop,
        })
    }

    /// Checks a compiled component's imports and exports and links it.
    fn link(
        &self,
        component: Component,
        from_cache: bool,
        cache_error: Option<String>,
        file: &Path,
    ) -> Result<Loaded, String> {
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        check_interface(imports.iter().map(String::as_str), || {
            ty.exports(&self.engine)
                .map(|(n, _)| n.to_string())
                .collect()
        })?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("cannot be linked: {e:#}"))?;
        let pre = MigrationPluginPre::new(pre).map_err(|e| {
            format!(
                "does not match the migration-plugin world of {PLUGIN_EXPORT}: {e:#} (was it \
                 built against another version of wasmig's WIT?)"
            )
        })?;
        tracing::debug!(file = %file.display(), from_cache, compiler = ?self.compiler, "loaded plugin");
        Ok(Loaded {
            pre,
            from_cache,
            cache_error,
            compiler: self.compiler,
            imports,
        })
    }

    fn cached(&self, sha256: &str) -> Option<Component> {
        self.cache
            .as_ref()
            .and_then(|c| c.get(&self.engine, sha256))
    }

    /// Compiles and caches a component; a cache that cannot be written is only reported.
    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<(Component, Option<String>), String> {
        let component = Component::from_binary(&self.engine, bytes)
            .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))?;
        let cache_error = match &self.cache {
            Some(cache) => cache.put(sha256, &component).err(),
            None => self.cache_error.clone(),
        };
        Ok((component, cache_error))
    }
}

/// The compilers in use (one or two tiers) and the bounds on every call.
pub(crate) struct Runtime {
    /// Cranelift; `None` with [`Compiler::Winch`].
    optimizing: Option<Tier>,
    /// Winch; `None` with [`Compiler::Cranelift`], and off x86-64.
    baseline: Option<Tier>,
    limits: Limits,
}

/// A compiled plugin, ready to instantiate.
#[derive(Clone)]
pub(crate) struct Loaded {
    pre: MigrationPluginPre<StepState>,
    /// Whether the compiled code came from the compile cache.
    pub from_cache: bool,
    /// Why freshly compiled code could not be written to the cache (the run goes on).
    pub cache_error: Option<String>,
    /// The compiler that produced the code.
    pub compiler: Compiler,
    /// The component's imports.
    pub imports: Vec<String>,
}

/// A plugin instantiated for one step, before the step's transaction: see
/// [`Runtime::instantiate_for_step`].
pub(crate) struct Instantiated {
    store: Store<StepState>,
    instance: wasmtime::Result<bindings::MigrationPlugin>,
}

/// How a step's store names the plugin in errors: the plugin and the step's version.
pub(crate) fn step_label(plugin: &str, version: &str) -> String {
    format!("{plugin} {version}")
}

/// What a call into a plugin produced besides its result.
#[derive(Debug, Default)]
pub(crate) struct CallReport {
    /// Statements the plugin ran, in order; a statement repeated back to back (a loop of
    /// inserts) is kept once with its count.
    pub statements: Vec<String>,
    repeats: u64,
    /// Bytes of statement text kept so far.
    bytes: usize,
    /// Statements not kept, once [`MAX_AUDIT_BYTES`] were.
    omitted: u64,
}

/// The most statement text one step's audit trail keeps: a plugin that runs ever new
/// statements would otherwise grow the host's memory and the ledger row without bound.
const MAX_AUDIT_BYTES: usize = 1 << 20;

impl CallReport {
    fn ran(&mut self, statement: &str) {
        if self.statements.last().is_some_and(|last| last == statement) {
            self.repeats += 1;
        } else if self.bytes + statement.len() > MAX_AUDIT_BYTES {
            self.omitted += 1;
        } else {
            self.close_repeats();
            self.bytes += statement.len();
            self.statements.push(statement.to_string());
        }
    }

    fn close_repeats(&mut self) {
        if self.repeats > 0 {
            if let Some(last) = self.statements.last_mut() {
                last.push_str(&format!(" -- ×{}", self.repeats + 1));
            }
            self.repeats = 0;
        }
    }

    /// The audit trail, with the last run of repeats counted.
    pub(crate) fn finish(mut self) -> Self {
        self.close_repeats();
        if self.omitted > 0 {
            self.statements.push(format!(
                "-- {} more statements not recorded: the audit trail keeps {} MiB per step",
                self.omitted,
                MAX_AUDIT_BYTES >> 20
            ));
        }
        self
    }
}

impl Runtime {
    pub(crate) fn new(
        limits: Limits,
        cache_dir: Option<&Path>,
        compiler: Compiler,
    ) -> crate::Result<Self> {
        let winch_here = cfg!(target_arch = "x86_64");
        if compiler == Compiler::Winch && !winch_here {
            return Err(crate::Error::Engine(
                "the Winch compiler supports x86-64 only; use Cranelift".into(),
            ));
        }
        let optimizing = match compiler {
            Compiler::Winch => None,
            _ => Some(Tier::new(Compiler::Cranelift, &limits, cache_dir)?),
        };
        let baseline = match compiler {
            Compiler::Cranelift => None,
            _ if !winch_here => None,
            _ => Some(Tier::new(Compiler::Winch, &limits, cache_dir)?),
        };
        // Both compilers share the directory: one warning is enough.
        if let Some(e) = [&optimizing, &baseline]
            .into_iter()
            .flatten()
            .find_map(|t| t.cache_error.as_ref())
        {
            tracing::warn!("compile cache disabled: {e}");
        }
        Ok(Runtime {
            optimizing,
            baseline,
            limits,
        })
    }

    /// Compiles a plugin file and checks that it is a migration plugin: a component of the
    /// right world whose imports are all on the allow-list.
    ///
    /// To run, cached code from either compiler is used (the optimizing one's first), else
    /// the quickest compiler compiles it; to optimize, only the optimizing compiler's code
    /// counts (Winch's alone when it is the only compiler). Fresh code is cached.
    pub(crate) fn load(
        &self,
        file: &Path,
        bytes: &[u8],
        sha256: &str,
        purpose: Purpose,
    ) -> Result<Loaded, String> {
        check_header(bytes)?;
        let (optimizing, baseline) = (self.optimizing.as_ref(), self.baseline.as_ref());
        let compiler = match purpose {
            Purpose::Run => baseline.or(optimizing),
            Purpose::Optimize => optimizing.or(baseline),
        }
        .expect("a runtime has at least one compiler");
        let usable = match purpose {
            Purpose::Run => [optimizing, baseline],
            Purpose::Optimize => [Some(compiler), None],
        };
        let cached = usable
            .into_iter()
            .flatten()
            .find_map(|tier| tier.cached(sha256).map(|c| (tier, c)));
        let from_cache = cached.is_some();
        let (tier, component, cache_error) = match cached {
            Some((tier, component)) => (tier, component, None),
            None => {
                let (component, cache_error) = compiler.compile(bytes, sha256)?;
                (compiler, component, cache_error)
            }
        };
        tier.link(component, from_cache, cache_error, file)
    }

    fn store(
        &self,
        loaded: &Loaded,
        plugin: &str,
        backend: Option<Box<dyn Backend>>,
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
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.max_memory)
                .table_elements(100_000)
                .instances(64)
                .tables(64)
                .memories(16)
                .trap_on_grow_failure(true)
                .build(),
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
    fn deadline_ticks(&self) -> u64 {
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
        let mut store = self.store(loaded, label, None);
        let result = self
            .bounded(async {
                let instance = loaded.pre.instantiate_async(&mut store).await?;
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
            Err(e) => Err(format!(
                "manifest() failed: {}",
                self.describe_trap(&e, store.data())
            )),
        }
    }

    /// Instantiates a plugin in a fresh store for one call, with no SQL granted (a start
    /// function gets `access-denied`). The executor does this for a plugin's next step while
    /// the current one runs.
    pub(crate) async fn instantiate_for_step(&self, loaded: &Loaded, label: &str) -> Instantiated {
        let mut store = self.store(loaded, label, None);
        let instance = self.bounded(loaded.pre.instantiate_async(&mut store)).await;
        Instantiated { store, instance }
    }

    /// Runs one step's `up` or `down` with SQL scoped to the plugin, in `ready` (instantiated
    /// for this step by [`Runtime::instantiate_for_step`]) or a fresh instance. The backend is
    /// lent to the plugin's store for the call and always handed back.
    pub(crate) async fn run_step(
        &self,
        loaded: &Loaded,
        ready: Option<Instantiated>,
        scope: Scope,
        mut backend: Box<dyn Backend>,
        up: bool,
        version: &str,
    ) -> (Box<dyn Backend>, CallReport, Result<(), String>) {
        let label = step_label(&scope.plugin, version);
        let limits = self.sql_limits();
        let ready = match ready {
            Some(ready) if ready.store.data().plugin == label => ready,
            _ => self.instantiate_for_step(loaded, &label).await,
        };
        let Instantiated {
            mut store,
            instance,
        } = ready;
        if let Err(e) = backend.enter_plugin(scope, limits) {
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
            Ok(Err(e)) => Err(describe_plugin_error(&e, store.data())),
            Err(trap) => Err(self.describe_trap(&trap, store.data())),
        };
        forward_output(store.data());
        let state = store.data_mut();
        let mut backend = state
            .backend
            .take()
            .expect("the backend is lent for the call");
        let report = std::mem::take(&mut state.report).finish();
        // Tearing the instance down (unmapping its memory and stacks) costs as much as
        // setting it up; a blocking thread does it while the run goes on.
        drop_elsewhere(store);
        if let Err(e) = backend.leave_plugin() {
            return (backend, report, Err(e.to_string()));
        }
        (backend, report, outcome)
    }

    /// Runs one step's SQL from the plugin's declaration: what the `execute-script` import
    /// does for a plugin's code, scoped and bounded the same way, without an instance.
    pub(crate) fn run_sql(
        &self,
        scope: Scope,
        mut backend: Box<dyn Backend>,
        script: &str,
    ) -> (Box<dyn Backend>, CallReport, Result<(), String>) {
        let mut report = CallReport::default();
        if let Err(e) = backend.enter_plugin(scope, self.sql_limits()) {
            return (backend, report, Err(e.to_string()));
        }
        let mut statements = Vec::new();
        let outcome = backend
            .execute_script(script, &mut statements)
            .map_err(|e| describe_error(&sql::to_wit_error(e)));
        for statement in &statements {
            report.ran(statement);
        }
        let report = report.finish();
        if let Err(e) = backend.leave_plugin() {
            return (backend, report, Err(e.to_string()));
        }
        (backend, report, outcome)
    }

    /// Bounds a call into a plugin by the host's clock. The engine's epoch interrupts a guest
    /// that executes wasm; a guest blocked in a host call that waits (a WASI sleep or poll)
    /// executes none, and is stopped here instead: at the deadline the call's future is
    /// dropped, which unwinds the guest, and the call ends as an interrupted one.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = wasmtime::Result<T>>,
    ) -> wasmtime::Result<T> {
        match tokio::time::timeout(self.limits.deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(wasmtime::Trap::Interrupt.into()),
        }
    }

    /// The bounds on one step's SQL, its deadline starting now.
    fn sql_limits(&self) -> SqlLimits {
        SqlLimits {
            deadline: std::time::Instant::now() + self.limits.deadline,
            max_result_bytes: self.limits.max_result_bytes,
            max_growth_bytes: self.limits.max_growth_bytes,
            max_temp_bytes: self.limits.max_temp_bytes,
        }
    }

    fn describe_trap(&self, e: &wasmtime::Error, state: &StepState) -> String {
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
                // The root cause, without the wasm backtrace wasmtime wraps around it.
                let cause = e.root_cause().to_string();
                if cause.contains("growing memory") {
                    format!(
                        "exceeded its memory limit of {} MiB ({cause})",
                        self.limits.max_memory >> 20
                    )
                } else {
                    cause
                }
            }
        };
        format!("plugin {} {what}{}", state.plugin, plugin_said(state))
    }
}

fn describe_plugin_error(e: &types::Error, state: &StepState) -> String {
    format!("{}{}", describe_error(e), plugin_said(state))
}

fn describe_error(e: &types::Error) -> String {
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
fn plugin_said(state: &StepState) -> String {
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
fn forward_output(state: &StepState) {
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

fn captured(pipe: &BoundedOutput) -> String {
    pipe.text()
}

/// How much of a plugin's stderr goes into an error (a panic message is at its end).
const STDERR_IN_ERRORS: usize = 2048;

/// The end of a plugin's stderr, for an error message.
fn stderr_tail(state: &StepState) -> String {
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

/// Tells apart "not WebAssembly", "a core module" and "a component" before compiling, so the
/// error says what the file is.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err("not a WebAssembly file (no \\0asm header)".to_string());
    }
    match &bytes[4..8] {
        // Core module, version 1.
        [1, 0, 0, 0] => Err(
            "a core WebAssembly module, not a component: build the plugin for wasm32-wasip2, or \
             for wasm32-unknown-unknown with the linker wasm-component-ld (or wrap it with \
             `wasm-tools component new`)"
                .to_string(),
        ),
        // Component layer.
        [_, _, 1, 0] => Ok(()),
        _ => Err("unknown WebAssembly binary version".to_string()),
    }
}

/// Reads a plugin's declaration (its manifest and SQL as data, see [`crate::declaration`]),
/// without compiling anything; `None` for a plugin without one.
///
/// With `check`, a plugin with a declaration is checked here as compiling would check it: the
/// whole component is validated, its imports must be on the allow-list and it must export
/// the plugin interface. Its manifest is read that way the first time wasmig sees it; running
/// its steps later (the same bytes, by SHA-256) needs only the declaration. Without a
/// declaration, the sections are only skimmed (the compile validates).
pub(crate) fn read_declaration(bytes: &[u8], check: bool) -> Result<Option<Declaration>, String> {
    use wasmparser::{Parser, Payload, ValidPayload, Validator, WasmFeatures};

    check_header(bytes)?;
    let invalid =
        |e: wasmparser::BinaryReaderError| format!("not a valid WebAssembly component: {e}");
    let mut section = None;
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::CustomSection(reader) = payload.map_err(invalid)?
            && reader.name() == crate::declaration::SECTION
        {
            if section.is_some() {
                return Err(format!(
                    "has two {} sections: which one declares the plugin?",
                    crate::declaration::SECTION
                ));
            }
            section = Some(reader.data());
        }
    }
    let Some(section) = section else {
        return Ok(None);
    };
    if !check {
        return Declaration::decode(section).map(Some);
    }

    // Everything wasmparser knows: what the code may use is the compiler's business when a
    // code step runs; here only the component's shape matters.
    let mut validator = Validator::new_with_features(WasmFeatures::all());
    let mut bodies = Vec::new();
    let (mut depth, mut imports, mut exports) = (0usize, Vec::new(), Vec::new());
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(invalid)?;
        if let ValidPayload::Func(func, body) = validator.payload(&payload).map_err(invalid)? {
            bodies.push((func, body));
        }
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    imports.push(import.map_err(invalid)?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    exports.push(export.map_err(invalid)?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    let mut allocations = wasmparser::FuncValidatorAllocations::default();
    for (func, body) in bodies {
        let mut v = func.into_validator(allocations);
        v.validate(&body).map_err(invalid)?;
        allocations = v.into_allocations();
    }
    check_interface(imports.iter().map(String::as_str), || exports)?;
    Declaration::decode(section).map(Some)
}

/// Refuses a component whose imports are not all on the allow-list, or that does not export
/// the plugin interface (`exports` lists its exports, for the error).
fn check_interface<'a>(
    imports: impl Iterator<Item = &'a str>,
    exports: impl FnOnce() -> Vec<String>,
) -> Result<(), String> {
    let refused: Vec<&str> = imports
        .filter(|name| {
            !IMPORT_ALLOW_LIST
                .iter()
                .any(|allowed| name.starts_with(allowed))
        })
        .collect();
    if !refused.is_empty() {
        return Err(format!(
            "imports {} which wasmig does not grant to plugins (a plugin may import only \
             wasmig:plugin/sql and wasmig:plugin/log, plus the WASI interfaces Rust's std \
             links)",
            refused.join(", ")
        ));
    }
    let exports = exports();
    if !exports.iter().any(|e| e == PLUGIN_EXPORT) {
        return Err(format!(
            "does not export {PLUGIN_EXPORT}: it is not a wasmig migration plugin (it exports \
             {}); build it with the wasmig-guest SDK",
            if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            }
        ));
    }
    Ok(())
}

/// Everything a plugin's store holds for one call.
pub(crate) struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    plugin: String,
    /// The step's transaction, lent for the call; `None` while the manifest is read.
    backend: Option<Box<dyn Backend>>,
    report: CallReport,
    /// Scratch space for lifting parameters, kept between calls.
    params: Vec<sql::Param>,
    /// Scratch space for decoding packed parameters, kept between calls (always empty).
    values: Vec<crate::store::ValueRef<'static>>,
    /// The worker of `send-batch-packed`, once the step sent a batch; while a batch runs it
    /// holds the backend.
    pipeline: Option<pipeline::Pipeline>,
    log_left: usize,
    stdout: BoundedOutput,
    stderr: BoundedOutput,
    /// The plugin's last error-level log message (within the log budget): where the SDK
    /// sends a panic's message when the plugin was built without WASI.
    last_error_log: String,
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StepState {}

impl log::Host for StepState {
    fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        if self.log_left == 0 {
            return Ok(());
        }
        let mut message = message;
        if message.len() > self.log_left {
            let mut cut = self.log_left;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" … [log budget used up; further messages dropped]");
        }
        self.log_left = self.log_left.saturating_sub(message.len());
        let plugin = self.plugin.as_str();
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
        if level == log::Level::Error {
            self.last_error_log = message;
        }
        Ok(())
    }
}

/// Drops `value` on a blocking thread when a Tokio runtime is at hand, here otherwise.
pub(crate) fn drop_elsewhere<T: Send + 'static>(value: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn_blocking(move || drop(value))),
        _ => drop(value),
    }
}
