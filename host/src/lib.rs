//! wasmig runs plugins' database migrations as sandboxed WebAssembly components.
//!
//! Each plugin ships its migrations as a component built against the WIT package
//! `wasmig:plugin@0.1.0` (see the `wit/` folder and the `wasmig-guest` SDK). The [`Host`] loads
//! every `.wasm` in a plugins directory, orders the plugins by their dependencies, and applies
//! each pending migration in its own transaction, recording every attempt in a ledger kept in
//! the database itself.
//!
//! ```no_run
//! # async fn start() -> Result<(), wasmig::Error> {
//! let host = wasmig::Host::builder()
//!     .plugins_dir("plugins")
//!     .database("app.db")
//!     .build()?;
//! let report = host.up(wasmig::UpOptions::default()).await?;
//! println!("applied {} migration steps", report.ran);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod catalog;
use wasmig_format::declaration;
mod error;
mod executor;
pub use wasmig_format::manifest;
pub mod planner;
pub mod policy;
mod runtime;
pub mod sqlite_memory;
mod store;

pub use error::{Error, Result};
pub use executor::{RunReport, STEP_LOG, StepReport, StepSink};
pub use manifest::Manifest;
pub use planner::{Finding, FindingKind, Plan, PlannedStep};
pub use policy::Policy;
pub use runtime::{Compiler, Limits};
pub use store::sqlite::Overrun;
pub use store::{Direction, LedgerEntry, Outcome};

use executor::{Group, Mode, Source};
use planner::{Candidate, DownRequest, UpRequest};
use runtime::{Purpose, Runtime};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use store::sqlite::OverrunHandler;
use store::{Backend, BackendOptions, sqlite::SqliteBackend};

/// Configures a [`Host`].
#[derive(Clone)]
pub struct HostBuilder {
    plugins_dir: PathBuf,
    database: PathBuf,
    limits: Limits,
    lock_timeout: Duration,
    policy: Policy,
    cache_dir: Option<PathBuf>,
    compiler: Compiler,
    on_overrun: Option<OverrunHandler>,
}

impl std::fmt::Debug for OverrunSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

struct OverrunSet<'a>(&'a Option<OverrunHandler>);

/// The compile cache's default place: `$WASMIG_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmig`,
/// else `~/.cache/wasmig`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("WASMIG_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("wasmig")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("wasmig")))
}

impl Default for HostBuilder {
    fn default() -> Self {
        HostBuilder {
            plugins_dir: PathBuf::from("plugins"),
            database: PathBuf::from("wasmig.db"),
            limits: Limits::default(),
            lock_timeout: Duration::from_secs(60),
            policy: Policy::default(),
            cache_dir: default_cache_dir(),
            compiler: Compiler::default(),
            on_overrun: None,
        }
    }
}

impl std::fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostBuilder")
            .field("plugins_dir", &self.plugins_dir)
            .field("database", &self.database)
            .field("limits", &self.limits)
            .field("lock_timeout", &self.lock_timeout)
            .field("policy", &self.policy)
            .field("cache_dir", &self.cache_dir)
            .field("compiler", &self.compiler)
            .field("on_overrun", &OverrunSet(&self.on_overrun))
            .finish()
    }
}

impl HostBuilder {
    /// The directory whose `*.wasm` files are the plugins (default `plugins`).
    pub fn plugins_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugins_dir = dir.into();
        self
    }

    /// The SQLite database file (default `wasmig.db`); created if missing.
    pub fn database(mut self, path: impl Into<PathBuf>) -> Self {
        self.database = path.into();
        self
    }

    /// Bounds on every call into a plugin.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The operator's policy: read grants, and limits that replace the current ones (call
    /// [`HostBuilder::limits`] afterwards to override them again).
    pub fn policy(mut self, policy: Policy) -> Result<Self> {
        self.limits = policy.apply(self.limits, Path::new("policy"))?;
        self.policy = policy;
        Ok(self)
    }

    /// Reads the policy from a `wasmig.toml` file; see [`HostBuilder::policy`].
    pub fn policy_file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let policy = Policy::load(path)?;
        self.limits = policy.apply(self.limits, path)?;
        self.policy = policy;
        Ok(self)
    }

    /// The limits as configured so far.
    pub fn current_limits(&self) -> &Limits {
        &self.limits
    }

    /// How long to wait for another process that holds the database (default 60 s).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Where compiled components are cached ([`default_cache_dir`] unless set); `None`
    /// compiles every plugin on every run.
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Which compiler turns plugins into native code (default [`Compiler::Auto`]).
    pub fn compiler(mut self, compiler: Compiler) -> Self {
        self.compiler = compiler;
        self
    }

    /// What to do when a step is still inside SQLite a grace period (as long as the deadline,
    /// at least a second) after its deadline, which SQLite's interrupt cannot always bring
    /// about: a statement whose row makes many calls in a straight line runs on until its
    /// end. The handler runs on another thread while the step's is blocked. Without one, the
    /// host logs an error and waits for the statement.
    ///
    /// A process that can end itself should: call [`Overrun::record_for_next_run`], then
    /// exit. SQLite's journal rolls the step back when the database is next opened, and the
    /// next host records the failure in the ledger; the `wasmig` binary does this.
    pub fn on_overrun(mut self, handler: impl Fn(&Overrun) + Send + Sync + 'static) -> Self {
        self.on_overrun = Some(Arc::new(handler));
        self
    }

    /// Sets up the WebAssembly engine. Touches neither the directory nor the database yet.
    pub fn build(self) -> Result<Host> {
        let runtime = Runtime::new(
            self.limits.clone(),
            self.cache_dir.as_deref(),
            self.compiler,
        )?;
        Ok(Host {
            inner: Arc::new(Inner {
                runtime: Arc::new(runtime),
                config: self,
            }),
        })
    }
}

/// What `up` should migrate.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Only this plugin and what it depends on; `None` for every plugin.
    pub plugin: Option<String>,
    /// With `plugin`: apply its steps only up to this version.
    pub to_version: Option<semver::Version>,
    /// Execute the steps in a transaction that is rolled back, and report what they did.
    pub dry_run: bool,
    /// Apply even though an applied step's checksum changed (recorded in the ledger).
    pub allow_drift: bool,
    /// Apply even though a plugin file is older than what is applied (recorded in the ledger).
    pub allow_downgrade: bool,
}

/// What `down` should undo.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// The plugin.
    pub plugin: String,
    /// Undo every applied step above this version; with `steps` also `None`, undo all.
    pub to: Option<semver::Version>,
    /// Undo only the newest this many applied steps.
    pub steps: Option<usize>,
    /// Roll back first, entirely, the applied plugins that would lose a dependency.
    pub cascade: bool,
    /// Execute the steps in a transaction that is rolled back, and report what they did.
    pub dry_run: bool,
}

/// One plugin as `status` sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    /// The plugin's name; `None` for a file that could not be loaded.
    pub name: Option<String>,
    /// The file it was loaded from; `None` for a plugin known only from the database.
    pub file: Option<PathBuf>,
    /// The plugin file's version.
    pub plugin_version: Option<String>,
    /// The highest applied step.
    pub applied_version: Option<String>,
    /// How many steps are applied.
    pub applied: usize,
    /// How many of the file's steps are not applied.
    pub pending: usize,
    /// What is wrong, if anything.
    pub problem: Option<String>,
}

/// What `inspect` found out about one plugin file.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The file.
    pub file: PathBuf,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// What the plugin declares.
    pub manifest: Manifest,
    /// Whether the plugin carries its declaration as data (`StaticPlugin` in the guest SDK):
    /// `up` reads its manifest and runs its SQL steps without compiling it.
    pub declared: bool,
    /// For a declared plugin, where its code's `manifest()` answers otherwise than its
    /// declaration (wasmig goes by the declaration; the SDK builds both from one `const`, so
    /// a difference means the plugin was built some other way). Empty when they agree.
    pub code_disagrees: Vec<String>,
    /// The interfaces the component imports.
    pub imports: Vec<String>,
    /// Whether the compiled code came from the compile cache.
    pub from_cache: bool,
    /// The compiler that produced the code.
    pub compiler: Compiler,
    /// Time to compile (or read from the cache) and link, in microseconds.
    pub load_us: u64,
    /// Time to instantiate it in a fresh store, in microseconds.
    pub instantiate_us: u64,
}

/// A plugin file's manifest, validated: from its declaration, or else from its code (compiled
/// or from the compile cache), asked in a sandbox with no SQL granted.
fn read_manifest(
    runtime: &Runtime,
    handle: &tokio::runtime::Handle,
    path: &Path,
    bytes: &[u8],
    sha: &str,
) -> std::result::Result<Manifest, String> {
    let raw = match runtime::read_declaration(bytes, true)? {
        Some(declaration) => declaration.manifest,
        None => {
            let loaded = runtime.load(path, bytes, sha, Purpose::Run)?;
            let label = path.display().to_string();
            handle
                .block_on(runtime.manifest(&loaded, &label))
                .map_err(|e| format!("invalid manifest: {e}"))?
        }
    };
    raw.validate()
        .map_err(|p| format!("invalid manifest: {}", p.join("; ")))
}

/// What [`Host::compile`] did with one plugin file.
#[derive(Debug, Clone, Serialize)]
pub struct Compiled {
    /// The file.
    pub file: PathBuf,
    /// SHA-256 of the file, hex; empty if it could not be read.
    pub sha256: String,
    /// The compiler whose code is now cached; `None` on error.
    pub compiler: Option<Compiler>,
    /// Whether that code was in the cache already.
    pub from_cache: bool,
    /// Time to compile (or read from the cache) and link, in microseconds.
    pub compile_us: u64,
    /// Why the file could not be compiled.
    pub error: Option<String>,
    /// The plugin declares every step as SQL data: it is never compiled, so nothing was.
    pub declared_sql_only: bool,
}

/// What one plugin may touch, as the policy and its manifest decide.
#[derive(Debug, Clone, Serialize)]
pub struct PluginAccess {
    /// The plugin.
    pub plugin: String,
    /// The prefix of every object it owns (read and write).
    pub namespace: String,
    /// Plugins whose tables it asks to read.
    pub reads_requested: Vec<String>,
    /// Of those, the ones the policy grants (read only).
    pub reads_granted: Vec<String>,
    /// The ones the policy does not grant: the plugin is refused until they are granted.
    pub reads_missing: Vec<String>,
}

/// The migration host: loads plugins, plans, applies, reports.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    /// Shared with the executor's loader thread, which loads the next plugin ahead.
    runtime: Arc<Runtime>,
    config: HostBuilder,
}

/// The plugins of a directory: their manifests; nothing compiled, no bytes kept.
/// The plugin files found and hashed, and the files that could not be read.
#[derive(Default)]
struct Hashed {
    found: Vec<(PathBuf, String)>,
    problems: Vec<Error>,
}

struct Loaded {
    candidates: Vec<Candidate>,
    problems: Vec<Error>,
}

impl Host {
    /// Starts configuring a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// The plugins directory.
    pub fn plugins_dir(&self) -> &Path {
        &self.inner.config.plugins_dir
    }

    /// The database file.
    pub fn database(&self) -> &Path {
        &self.inner.config.database
    }

    fn backend_options(&self) -> BackendOptions {
        BackendOptions {
            lock_timeout: self.inner.config.lock_timeout,
            on_overrun: self.inner.config.on_overrun.clone(),
        }
    }

    fn open(&self, mode: Mode) -> Result<Box<dyn Backend>> {
        let options = self.backend_options();
        let path = &self.inner.config.database;
        let scratch = mode == Mode::DryRun && !path.exists();
        let mut backend = SqliteBackend::open(path, options, scratch)?;
        if !scratch && backend.has_host_tables()? {
            record_abandoned(&mut backend);
        }
        if mode == Mode::DryRun {
            // One transaction for the whole dry run, host tables included, rolled back.
            backend.begin()?;
        }
        backend.prepare_host_tables()?;
        Ok(Box::new(backend))
    }

    /// Opens the database for reading: an untouched database reads as empty and is left as
    /// it is.
    fn open_read(&self) -> Result<Box<dyn Backend>> {
        let options = self.backend_options();
        let path = &self.inner.config.database;
        let mut backend = SqliteBackend::open(path, options, !path.exists())?;
        // Tables written by a newer wasmig are refused, not misread.
        backend.host_schema_version()?;
        if path.exists() && backend.has_host_tables()? {
            record_abandoned(&mut backend);
        }
        Ok(Box::new(backend))
    }

    /// The stored components that run the given steps (for `down`).
    fn stored_sources(
        &self,
        backend: &mut dyn Backend,
        manifests: &BTreeMap<String, Manifest>,
        plan: &Plan,
    ) -> Result<BTreeMap<String, Source>> {
        let mut sources = BTreeMap::new();
        for step in &plan.steps {
            let sha = &step.component_sha256;
            if sources.contains_key(sha) {
                continue;
            }
            let bytes = backend.load_component(sha)?.ok_or_else(|| {
                Error::Plan(format!("the component {sha} is not stored in the database"))
            })?;
            let manifest = manifests[sha].clone();
            sources.insert(
                sha.clone(),
                Source {
                    label: PathBuf::from(format!("stored component {sha}")),
                    bytes: Some(Arc::new(bytes)),
                    granted_reads: self.granted_reads(&manifest),
                    manifest,
                },
            );
        }
        Ok(sources)
    }

    /// The plugin files of the given SHA-256s (for `up`).
    fn file_sources<'a>(
        &self,
        loaded: Loaded,
        shas: impl Iterator<Item = &'a String>,
    ) -> BTreeMap<String, Source> {
        // Moved, not cloned: a run over a thousand plugins would hold every manifest twice.
        let mut by_sha: BTreeMap<String, Candidate> = loaded
            .candidates
            .into_iter()
            .map(|c| (c.sha256.clone(), c))
            .collect();
        let mut sources = BTreeMap::new();
        for sha in shas {
            let Some(c) = by_sha.remove(sha) else {
                continue; // Already a source.
            };
            sources.insert(
                c.sha256,
                Source {
                    label: c.file,
                    bytes: None,
                    granted_reads: self.granted_reads(&c.manifest),
                    manifest: c.manifest,
                },
            );
        }
        sources
    }

    /// The reads a plugin asked for that the policy grants.
    fn granted_reads(&self, manifest: &Manifest) -> Vec<String> {
        let granted = self.inner.config.policy.granted_reads(&manifest.name);
        manifest
            .reads
            .iter()
            .filter(|r| granted.contains(r))
            .cloned()
            .collect()
    }

    /// Opens the database for reading and loads the plugins (see [`Host::load_hashed`]).
    async fn open_read_and_load(&self) -> Result<(Box<dyn Backend>, Loaded)> {
        let hashing = self.start_hashing();
        // Meanwhile SQLite reads the database's schema (opening it parses all of it): on a
        // database with thousands of tables, the longest part of a no-op run.
        let opened = self.open_read();
        let hashed = Self::hashed(hashing).await;
        let mut backend = opened?;
        let loaded = self.load_hashed(&mut *backend, hashed?).await?;
        Ok((backend, loaded))
    }

    /// Lists and hashes every plugin file (keeping no bytes: most plugins need nothing more)
    /// on a blocking thread, so the caller can open the database meanwhile.
    fn start_hashing(&self) -> tokio::task::JoinHandle<Result<Hashed>> {
        let dir = self.inner.config.plugins_dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut hashed = Hashed::default();
            for path in catalog::scan(&dir)? {
                match catalog::read(path) {
                    Err(e) => hashed.problems.push(e),
                    Ok(file) => hashed.found.push((file.path, file.sha256)),
                }
            }
            Ok(hashed)
        })
    }

    async fn hashed(hashing: tokio::task::JoinHandle<Result<Hashed>>) -> Result<Hashed> {
        hashing
            .await
            .map_err(|e| Error::Engine(format!("hashing task failed: {e}")))?
    }

    /// Reads every hashed plugin file's manifest. A manifest already stored for the file's
    /// SHA-256 is used as it is: a plugin whose steps are all applied is hashed, never
    /// compiled or run. The others (a few at a time in parallel) have their declaration read,
    /// or, without one, are compiled (through the compile cache) and asked for their
    /// manifest; the compiled form is then dropped, so memory does not grow with the number
    /// of plugins.
    async fn load_hashed(&self, backend: &mut dyn Backend, hashed: Hashed) -> Result<Loaded> {
        let Hashed {
            found,
            mut problems,
        } = hashed;
        let shas: Vec<String> = found.iter().map(|(_, sha)| sha.clone()).collect();
        let mut cached = backend.stored_manifests(Some(&shas))?;

        let misses: Vec<(PathBuf, String)> = found
            .iter()
            .filter(|(_, sha)| !cached.contains_key(sha))
            .cloned()
            .collect();
        let (host, handle) = (self.clone(), tokio::runtime::Handle::current());
        let mut fresh: BTreeMap<String, std::result::Result<Manifest, String>> =
            on_cores(misses, move |(path, sha)| {
                let runtime = &host.inner.runtime;
                let manifest = catalog::reread(&path, &sha)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| read_manifest(runtime, &handle, &path, &bytes, &sha));
                (sha, manifest)
            })
            .await?
            .into_iter()
            .collect();

        let mut candidates: Vec<Candidate> = Vec::new();
        for (path, sha256) in found {
            let manifest = match cached.remove(&sha256) {
                Some(m) => Ok(m),
                None => fresh.remove(&sha256).expect("every miss was loaded"),
            };
            let manifest = match manifest {
                Ok(m) => m,
                Err(reason) => {
                    problems.push(Error::InvalidPlugin { file: path, reason });
                    continue;
                }
            };
            if let Some(other) = candidates.iter().find(|c| c.manifest.name == manifest.name) {
                problems.push(Error::DuplicatePlugin {
                    name: manifest.name.clone(),
                    first: other.file.clone(),
                    second: path,
                });
                continue;
            }
            candidates.push(Candidate {
                file: path,
                sha256,
                manifest,
            });
        }
        Ok(Loaded {
            candidates,
            problems,
        })
    }

    /// Applies every pending migration step (or those of one plugin and its dependencies),
    /// dependencies first, each step in its own transaction.
    ///
    /// Refuses to start, with every reason, when a plugin file is invalid or the plan has
    /// problems (a missing dependency, drift, a downgrade, a gap). When a step fails it is
    /// rolled back, its failure is recorded, the run stops, and the error says what did not
    /// run. With `dry_run`, every step runs in one transaction that is rolled back, and a
    /// failing step is reported in the returned report instead of as an error.
    pub async fn up(&self, options: UpOptions) -> Result<RunReport> {
        let mut steps = Vec::new();
        let report = self.up_with(options, &mut |step| steps.push(step)).await?;
        Ok(RunReport { steps, ..report })
    }

    /// [`Host::up`], handing each step's report to `on_step` as soon as the step has
    /// committed (or rolled back) instead of collecting them: the returned report's `steps`
    /// stays empty, so a run over thousands of plugins holds no per-step state, and a caller
    /// can show progress. When a step fails, `on_step` gets its report before the error
    /// returns.
    pub async fn up_with(&self, options: UpOptions, on_step: StepSink<'_>) -> Result<RunReport> {
        let mode = if options.dry_run {
            Mode::DryRun
        } else {
            Mode::Apply
        };
        let hashing = self.start_hashing();
        let opened = self.open(mode);
        let hashed = Self::hashed(hashing).await;
        let mut backend = opened?;
        let mut loaded = self.load_hashed(&mut *backend, hashed?).await?;
        if let Some(e) = combine(std::mem::take(&mut loaded.problems)) {
            return Err(e);
        }
        let state = backend.load_state()?;
        let request = UpRequest {
            target: options.plugin.map(|p| (p, options.to_version)),
            allow_drift: options.allow_drift,
            allow_downgrade: options.allow_downgrade,
        };
        let plan = planner::plan_up_pending(
            &loaded.candidates,
            &state,
            &self.inner.config.policy,
            &request,
        )
        .map_err(Error::PlanProblems)?;
        let note = (!plan.overrides.is_empty()).then(|| plan.overrides.join("; "));
        let sources = self.file_sources(loaded, plan.plugins.iter().map(|p| &p.sha256));
        let groups = plan.plugins.into_iter().map(Group::Pending).collect();
        self.execute(backend, groups, sources, mode, note, on_step)
            .await
    }

    /// Rolls a plugin back: its applied steps above `to` (or the newest `steps` of them, or
    /// all), newest first, each in its own transaction, each run by the component that applied
    /// it — stored in the database, so this works when the plugin's file is gone or replaced.
    /// Refuses before anything runs when a step has no `down`, or when an applied plugin
    /// depends on what would be rolled back (unless `cascade`).
    pub async fn down(&self, options: DownOptions) -> Result<RunReport> {
        let mut steps = Vec::new();
        let report = self
            .down_with(options, &mut |step| steps.push(step))
            .await?;
        Ok(RunReport { steps, ..report })
    }

    /// [`Host::down`], handing each step's report to `on_step` as soon as the step ends;
    /// see [`Host::up_with`].
    pub async fn down_with(
        &self,
        options: DownOptions,
        on_step: StepSink<'_>,
    ) -> Result<RunReport> {
        let mode = if options.dry_run {
            Mode::DryRun
        } else {
            Mode::Apply
        };
        let mut backend = self.open(mode)?;
        let state = backend.load_state()?;
        let manifests = backend.stored_manifests(None)?;
        let request = DownRequest {
            plugin: options.plugin,
            to: options.to,
            steps: options.steps,
            cascade: options.cascade,
        };
        let plan = planner::plan_down(&state, &manifests, &request).map_err(Error::PlanProblems)?;
        let sources = self.stored_sources(&mut *backend, &manifests, &plan)?;
        let groups = executor::groups_of(plan.steps);
        self.execute(backend, groups, sources, mode, None, on_step)
            .await
    }

    /// Rolls back every applied step of a plugin; see [`Host::down`].
    pub async fn uninstall(&self, plugin: &str, cascade: bool, dry_run: bool) -> Result<RunReport> {
        self.down(DownOptions {
            plugin: plugin.to_string(),
            cascade,
            dry_run,
            ..DownOptions::default()
        })
        .await
    }

    async fn execute(
        &self,
        backend: Box<dyn Backend>,
        groups: Vec<Group>,
        sources: BTreeMap<String, Source>,
        mode: Mode,
        note: Option<String>,
        on_step: StepSink<'_>,
    ) -> Result<RunReport> {
        let (_backend, report) = executor::run(
            &self.inner.runtime,
            backend,
            groups,
            sources,
            mode,
            note,
            on_step,
        )
        .await;
        let report = report?;
        if mode == Mode::DryRun {
            return Ok(report);
        }
        if let Some(failed) = report.failure() {
            let not_run: Vec<String> = report
                .not_run
                .iter()
                .map(|s| format!("{} {}", s.plugin, s.version))
                .collect();
            let mut cause = failed.error.clone().unwrap_or_default();
            if !not_run.is_empty() {
                cause.push_str(&format!("; not run: {}", error::first_steps(&not_run)));
            }
            return Err(Error::StepFailed {
                plugin: failed.plugin.clone(),
                version: failed.version.clone(),
                direction: failed.direction.as_str().to_string(),
                cause,
            });
        }
        Ok(report)
    }

    /// Everything wrong between the plugin files and the database: drift, downgrades,
    /// missing files, gaps and unusable files. Empty when all is well.
    pub async fn validate(&self) -> Result<Vec<Finding>> {
        let (mut backend, loaded) = self.open_read_and_load().await?;
        let state = backend.load_state()?;
        let mut findings: Vec<Finding> = loaded
            .problems
            .iter()
            .map(|e| Finding {
                plugin: String::new(),
                kind: FindingKind::InvalidFile,
                message: e.to_string(),
            })
            .collect();
        findings.extend(planner::validate(&loaded.candidates, &state));
        Ok(findings)
    }

    /// One row per plugin file, plus plugins recorded in the database whose file is gone.
    pub async fn status(&self) -> Result<Vec<PluginStatus>> {
        let (mut backend, loaded) = self.open_read_and_load().await?;
        let state = backend.load_state()?;
        let mut rows = Vec::new();
        for c in &loaded.candidates {
            let applied = state.applied.get(&c.manifest.name);
            let pending = c
                .manifest
                .migrations
                .iter()
                .filter(|m| !applied.is_some_and(|a| a.contains_key(&m.version)))
                .count();
            rows.push(PluginStatus {
                name: Some(c.manifest.name.clone()),
                file: Some(c.file.clone()),
                plugin_version: Some(c.manifest.version.to_string()),
                applied_version: state.current(&c.manifest.name).map(|v| v.to_string()),
                applied: applied.map_or(0, |a| a.len()),
                pending,
                problem: None,
            });
        }
        for (name, applied) in &state.applied {
            if !loaded.candidates.iter().any(|c| c.manifest.name == *name) {
                rows.push(PluginStatus {
                    name: Some(name.clone()),
                    file: None,
                    plugin_version: state.installed_version(name).map(|v| v.to_string()),
                    applied_version: state.current(name).map(|v| v.to_string()),
                    applied: applied.len(),
                    pending: 0,
                    problem: Some("applied, but no file in the plugins directory".into()),
                });
            }
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        for e in loaded.problems {
            let file = match &e {
                Error::InvalidPlugin { file, .. } | Error::Io { path: file, .. } => {
                    Some(file.clone())
                }
                Error::DuplicatePlugin { second, .. } => Some(second.clone()),
                _ => None,
            };
            rows.push(PluginStatus {
                name: None,
                file,
                plugin_version: None,
                applied_version: None,
                applied: 0,
                pending: 0,
                problem: Some(e.to_string()),
            });
        }
        Ok(rows)
    }

    /// Loads one plugin file (compile cache included), instantiates it and reads its manifest
    /// (from its declaration, if it has one, as `up` does), and says how long each part took.
    /// Runs no migration.
    pub async fn inspect(&self, file: &Path) -> Result<Inspection> {
        let bytes = std::fs::read(file).map_err(|source| Error::Io {
            what: "plugin file",
            path: file.to_path_buf(),
            source,
        })?;
        let sha256 = catalog::sha256_hex(&bytes);
        let invalid = |reason: String| Error::InvalidPlugin {
            file: file.to_path_buf(),
            reason,
        };
        let runtime = &self.inner.runtime;
        let declaration = runtime::read_declaration(&bytes, true).map_err(invalid)?;
        let started = std::time::Instant::now();
        let loaded = runtime
            .load(file, &bytes, &sha256, Purpose::Run)
            .map_err(invalid)?;
        let load_us = started.elapsed().as_micros() as u64;
        let started = std::time::Instant::now();
        runtime.instantiate(&loaded).await.map_err(invalid)?;
        let instantiate_us = started.elapsed().as_micros() as u64;
        let label = file.display().to_string();
        let declared = declaration.is_some();
        let validated = |raw: std::result::Result<manifest::RawManifest, String>| {
            raw.and_then(|raw| raw.validate().map_err(|p| p.join("; ")))
                .map_err(|e| format!("invalid manifest: {e}"))
        };
        let from_code = validated(runtime.manifest(&loaded, &label).await);
        let (manifest, code_disagrees) = match declaration {
            Some(declaration) => {
                let manifest = validated(Ok(declaration.manifest)).map_err(invalid)?;
                let disagrees = match &from_code {
                    Ok(code) => manifest.differences(code),
                    Err(e) => vec![format!("its code's manifest() fails: {e}")],
                };
                (manifest, disagrees)
            }
            None => (from_code.map_err(invalid)?, Vec::new()),
        };
        Ok(Inspection {
            declared,
            code_disagrees,
            file: file.to_path_buf(),
            sha256,
            size: bytes.len() as u64,
            manifest,
            imports: loaded.imports.clone(),
            from_cache: loaded.from_cache,
            compiler: loaded.compiler,
            load_us,
            instantiate_us,
        })
    }

    /// Compiles every plugin file in the directory with the optimizing compiler (Cranelift)
    /// into the compile cache, a few at a time in parallel; files already there are only
    /// checked. Later runs then use optimized code instead of compiling plugins they have not
    /// seen with the baseline compiler: run it at deploy time. Runs no plugin code and
    /// touches no database. A file that cannot be compiled is reported in its row; a plugin
    /// that declares only SQL steps as data is checked, not compiled (no run compiles it).
    pub async fn compile(&self) -> Result<Vec<Compiled>> {
        if self.inner.config.cache_dir.is_none() {
            return Err(Error::Engine(
                "there is no compile cache to fill (--no-cache): compiled code would be thrown away"
                    .into(),
            ));
        }
        let paths = catalog::scan(&self.inner.config.plugins_dir)?;
        let host = self.clone();
        on_cores(paths, move |path| {
            let started = std::time::Instant::now();
            let mut row = Compiled {
                file: path.clone(),
                sha256: String::new(),
                compiler: None,
                from_cache: false,
                compile_us: 0,
                error: None,
                declared_sql_only: false,
            };
            let loaded = catalog::read(path)
                .map_err(|e| e.to_string())
                .and_then(|file| {
                    row.sha256 = file.sha256.clone();
                    // A plugin that will be compiled is validated by the compile.
                    let declared = runtime::read_declaration(&file.bytes, false)?;
                    if declared.is_some_and(|d| !d.has_code()) {
                        // Checked as a run checks it, then left alone.
                        runtime::read_declaration(&file.bytes, true)?;
                        return Ok(None);
                    }
                    host.inner
                        .runtime
                        .load(&file.path, &file.bytes, &file.sha256, Purpose::Optimize)
                        .map(Some)
                });
            row.compile_us = started.elapsed().as_micros() as u64;
            match loaded {
                Ok(None) => row.declared_sql_only = true,
                Ok(Some(loaded)) => {
                    row.compiler = Some(loaded.compiler);
                    row.from_cache = loaded.from_cache;
                    row.error = loaded
                        .cache_error
                        .map(|e| format!("compiled, but not cached: {e}"));
                }
                Err(e) => row.error = Some(e),
            }
            row
        })
        .await
    }

    /// What each plugin in the directory may touch, and the limits on every call.
    pub async fn access(&self) -> Result<(Vec<PluginAccess>, Limits)> {
        let (_, loaded) = self.open_read_and_load().await?;
        if let Some(e) = combine(loaded.problems) {
            return Err(e);
        }
        let policy = &self.inner.config.policy;
        let rows = loaded
            .candidates
            .iter()
            .map(|c| {
                let m = &c.manifest;
                let missing: Vec<String> = planner::ungranted_reads(m, policy)
                    .into_iter()
                    .map(String::from)
                    .collect();
                PluginAccess {
                    plugin: m.name.clone(),
                    namespace: format!("{}*", manifest::namespace(&m.name)),
                    reads_requested: m.reads.clone(),
                    reads_granted: m
                        .reads
                        .iter()
                        .filter(|r| !missing.contains(r))
                        .cloned()
                        .collect(),
                    reads_missing: missing,
                }
            })
            .collect();
        Ok((rows, self.inner.config.limits.clone()))
    }

    /// The ledger, oldest first; every attempt of every step, or of one plugin.
    pub async fn history(&self, plugin: Option<&str>) -> Result<Vec<LedgerEntry>> {
        self.open_read()?.history(plugin)
    }
}

fn combine(mut problems: Vec<Error>) -> Option<Error> {
    match problems.len() {
        0 => None,
        1 => problems.pop(),
        _ => Some(Error::InvalidPlugins(problems)),
    }
}

/// Compiles the README's Rust snippets as doc tests, so the embedding example cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Runs `work` on each item on blocking threads, as many at a time as there are cores (each
/// compile is itself parallel inside; more at once would only add memory), and returns the
/// results in the items' order.
async fn on_cores<I, T>(
    items: Vec<I>,
    work: impl Fn(I) -> T + Clone + Send + 'static,
) -> Result<Vec<T>>
where
    I: Send + 'static,
    T: Send + 'static,
{
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(items.len());
    for item in items {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let work = work.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(item)
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(
            task.await
                .map_err(|e| Error::Engine(format!("compile task failed: {e}")))?,
        );
    }
    Ok(results)
}

/// Records the steps a host abandoned past their deadline; a database that cannot take them
/// now (another runner holds it) takes them at its next opening.
fn record_abandoned(backend: &mut dyn Backend) {
    if let Err(e) = backend.record_abandoned() {
        tracing::warn!("cannot record the steps a host abandoned yet: {e}");
    }
}
