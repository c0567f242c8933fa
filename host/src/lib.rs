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
//! println!("applied {} migration steps", report.steps.len());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod catalog;
mod error;
mod executor;
pub mod manifest;
pub mod planner;
pub mod policy;
mod runtime;
mod store;

pub use error::{Error, Result};
pub use executor::{RunReport, StepReport};
pub use manifest::Manifest;
pub use planner::{Finding, FindingKind, Plan, PlannedStep};
pub use policy::Policy;
pub use runtime::Limits;
pub use store::{Direction, LedgerEntry, Outcome};

use executor::{Mode, Runnable};
use planner::{Candidate, DownRequest, UpRequest};
use runtime::Runtime;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use store::{Backend, BackendOptions, sqlite::SqliteBackend};

/// Configures a [`Host`].
#[derive(Debug, Clone)]
pub struct HostBuilder {
    plugins_dir: PathBuf,
    database: PathBuf,
    limits: Limits,
    lock_timeout: Duration,
    policy: Policy,
}

impl Default for HostBuilder {
    fn default() -> Self {
        HostBuilder {
            plugins_dir: PathBuf::from("plugins"),
            database: PathBuf::from("wasmig.db"),
            limits: Limits::default(),
            lock_timeout: Duration::from_secs(60),
            policy: Policy::default(),
        }
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

    /// Sets up the WebAssembly engine. Touches neither the directory nor the database yet.
    pub fn build(self) -> Result<Host> {
        let runtime = Runtime::new(self.limits.clone())?;
        Ok(Host {
            inner: Arc::new(Inner {
                runtime,
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
    runtime: Runtime,
    config: HostBuilder,
}

/// The plugins of a directory, loaded.
struct Loaded {
    candidates: Vec<Candidate>,
    runnables: BTreeMap<String, Runnable>,
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

    fn open(&self, mode: Mode) -> Result<Box<dyn Backend>> {
        let options = BackendOptions {
            lock_timeout: self.inner.config.lock_timeout,
        };
        let path = &self.inner.config.database;
        let scratch = mode == Mode::DryRun && !path.exists();
        let mut backend = SqliteBackend::open(path, options, scratch)?;
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
        let options = BackendOptions {
            lock_timeout: self.inner.config.lock_timeout,
        };
        let path = &self.inner.config.database;
        Ok(Box::new(SqliteBackend::open(
            path,
            options,
            !path.exists(),
        )?))
    }

    /// Compiles stored components (in parallel) for the steps that run from them.
    async fn load_stored(
        &self,
        backend: &mut dyn Backend,
        manifests: &BTreeMap<String, Manifest>,
        shas: impl IntoIterator<Item = String>,
    ) -> Result<BTreeMap<String, Runnable>> {
        let mut tasks = Vec::new();
        for sha in shas {
            let bytes = backend.load_component(&sha)?.ok_or_else(|| {
                Error::Plan(format!("the component {sha} is not stored in the database"))
            })?;
            let host = self.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                let label = PathBuf::from(format!("stored component {sha}"));
                let loaded = host.inner.runtime.load(&label, &bytes);
                (sha, bytes, loaded)
            }));
        }
        let mut runnables = BTreeMap::new();
        for task in tasks {
            let (sha, bytes, loaded) = task
                .await
                .map_err(|e| Error::Engine(format!("compile task failed: {e}")))?;
            let loaded = loaded.map_err(|reason| Error::InvalidPlugin {
                file: PathBuf::from(format!("stored component {sha}")),
                reason,
            })?;
            let manifest = manifests[&sha].clone();
            let granted_reads = self.granted_reads(&manifest);
            runnables.insert(
                sha,
                Runnable {
                    loaded,
                    bytes: Arc::new(bytes),
                    manifest,
                    granted_reads,
                },
            );
        }
        Ok(runnables)
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

    /// Compiles every plugin file (in parallel) and reads its manifest.
    async fn load(&self) -> Result<Loaded> {
        let files = catalog::scan(&self.inner.config.plugins_dir)?;
        let mut problems = Vec::new();
        let mut tasks = Vec::new();
        for file in files {
            match file {
                Err(e) => problems.push(e),
                Ok(file) => {
                    let host = self.clone();
                    tasks.push(tokio::task::spawn_blocking(move || {
                        let loaded = host.inner.runtime.load(&file.path, &file.bytes);
                        (file, loaded)
                    }));
                }
            }
        }
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut runnables: BTreeMap<String, Runnable> = BTreeMap::new();
        for task in tasks {
            let (file, loaded) = task
                .await
                .map_err(|e| Error::Engine(format!("compile task failed: {e}")))?;
            let invalid = |reason: String| Error::InvalidPlugin {
                file: file.path.clone(),
                reason,
            };
            let loaded = match loaded {
                Ok(l) => l,
                Err(reason) => {
                    problems.push(invalid(reason));
                    continue;
                }
            };
            let label = file.path.display().to_string();
            let manifest = match self.inner.runtime.manifest(&loaded, &label).await {
                Ok(raw) => raw.validate().map_err(|p| p.join("; ")),
                Err(e) => Err(e),
            };
            let manifest = match manifest {
                Ok(m) => m,
                Err(reason) => {
                    problems.push(invalid(format!("invalid manifest: {reason}")));
                    continue;
                }
            };
            if let Some(other) = candidates.iter().find(|c| c.manifest.name == manifest.name) {
                problems.push(Error::DuplicatePlugin {
                    name: manifest.name.clone(),
                    first: other.file.clone(),
                    second: file.path.clone(),
                });
                continue;
            }
            let granted_reads = self.granted_reads(&manifest);
            runnables.insert(
                file.sha256.clone(),
                Runnable {
                    loaded,
                    bytes: Arc::new(file.bytes),
                    manifest: manifest.clone(),
                    granted_reads,
                },
            );
            candidates.push(Candidate {
                file: file.path,
                sha256: file.sha256,
                manifest,
            });
        }
        Ok(Loaded {
            candidates,
            runnables,
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
        let mode = if options.dry_run {
            Mode::DryRun
        } else {
            Mode::Apply
        };
        let mut backend = self.open(mode)?;
        let loaded = self.load().await?;
        if let Some(e) = combine(loaded.problems) {
            return Err(e);
        }
        let state = backend.load_state()?;
        let request = UpRequest {
            target: options.plugin.map(|p| (p, options.to_version)),
            allow_drift: options.allow_drift,
            allow_downgrade: options.allow_downgrade,
        };
        let plan = planner::plan_up(
            &loaded.candidates,
            &state,
            &self.inner.config.policy,
            &request,
        )
        .map_err(Error::PlanProblems)?;
        let note = (!plan.overrides.is_empty()).then(|| plan.overrides.join("; "));
        self.execute(backend, &plan, &loaded.runnables, mode, note)
            .await
    }

    /// Rolls a plugin back: its applied steps above `to` (or the newest `steps` of them, or
    /// all), newest first, each in its own transaction, each run by the component that applied
    /// it — stored in the database, so this works when the plugin's file is gone or replaced.
    /// Refuses before anything runs when a step has no `down`, or when an applied plugin
    /// depends on what would be rolled back (unless `cascade`).
    pub async fn down(&self, options: DownOptions) -> Result<RunReport> {
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
        let shas: std::collections::BTreeSet<String> = plan
            .steps
            .iter()
            .map(|s| s.component_sha256.clone())
            .collect();
        let runnables = self.load_stored(&mut *backend, &manifests, shas).await?;
        self.execute(backend, &plan, &runnables, mode, None).await
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
        plan: &Plan,
        runnables: &BTreeMap<String, Runnable>,
        mode: Mode,
        note: Option<String>,
    ) -> Result<RunReport> {
        let (_backend, report) = executor::run(
            &self.inner.runtime,
            backend,
            &plan.steps,
            runnables,
            mode,
            note,
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
                cause.push_str(&format!("; not run: {}", not_run.join(", ")));
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
        let mut backend = self.open_read()?;
        let loaded = self.load().await?;
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
        let mut backend = self.open_read()?;
        let loaded = self.load().await?;
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

    /// What each plugin in the directory may touch, and the limits on every call.
    pub async fn access(&self) -> Result<(Vec<PluginAccess>, Limits)> {
        let loaded = self.load().await?;
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
