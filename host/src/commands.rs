//! The [`Host`]'s commands: what the command line and an embedding server call.

use crate::executor::{self, Group, Mode};
use crate::loader;
use crate::planner::{self, DownRequest, UpRequest};
use crate::runtime::{Limits, Purpose};
use crate::store::LedgerEntry;
use crate::*;
use std::path::Path;

impl Host {
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
        let report = self
            .up_with(options, &mut |event| {
                if let RunEvent::Ended(step) = event {
                    steps.push(step)
                }
            })
            .await?;
        Ok(RunReport { steps, ..report })
    }

    /// [`Host::up`], handing the run's events to `on_step` instead of collecting the steps'
    /// reports: how many steps it plans, each step as it starts, and each step's report as
    /// soon as the step has committed (or rolled back). The returned report's `steps` stays
    /// empty, so a run over thousands of plugins holds no per-step state, and a caller can
    /// show progress. When a step fails, `on_step` gets its report before the error returns.
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
        let allow_destructive = options.allow_destructive;
        self.execute(
            backend,
            groups,
            sources,
            mode,
            note,
            allow_destructive,
            on_step,
        )
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
            .down_with(options, &mut |event| {
                if let RunEvent::Ended(step) = event {
                    steps.push(step)
                }
            })
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
        self.execute(backend, groups, sources, mode, None, false, on_step)
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
        // As every command reads a plugin file: a regular file within the size cap.
        let catalog::PluginFile { bytes, sha256, .. } = catalog::read(file.to_path_buf())?;
        let invalid = |reason: String| Error::InvalidPlugin {
            file: file.to_path_buf(),
            reason,
        };
        let runtime = &self.inner.runtime;
        let declaration =
            loader::read_checked_declaration(runtime, &bytes, &sha256).map_err(invalid)?;
        let started = std::time::Instant::now();
        let loaded = loader::load(runtime, file, &bytes, &sha256, Purpose::Run).map_err(invalid)?;
        let load_us = started.elapsed().as_micros() as u64;
        let started = std::time::Instant::now();
        runtime.instantiate(&loaded).await.map_err(invalid)?;
        let instantiate_us = started.elapsed().as_micros() as u64;
        let label = file.display().to_string();
        let declared = declaration.is_some();
        let validated = |raw: std::result::Result<manifest::RawManifest, String>| {
            raw.and_then(|raw| raw.validate().map_err(|p| loader::join_problems(&p)))
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
                "there is no compile cache to fill (caching is off): compiled code would be thrown away"
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
                    let declared = loader::read_declaration(&file.bytes)?;
                    if declared.is_some_and(|d| !d.has_code()) {
                        // Checked as a run checks it, then left alone.
                        loader::read_checked_declaration(
                            &host.inner.runtime,
                            &file.bytes,
                            &file.sha256,
                        )?;
                        return Ok(None);
                    }
                    loader::load(
                        &host.inner.runtime,
                        &file.path,
                        &file.bytes,
                        &file.sha256,
                        Purpose::Optimize,
                    )
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
                    namespace: match self.is_postgres() {
                        // Its schema, named after it.
                        true => format!("{}.*", manifest::namespace(&m.name).trim_end_matches('_')),
                        false => format!("{}*", manifest::namespace(&m.name)),
                    },
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

    /// The ledger rows `query` picks, oldest first: the newest page of a long history, each
    /// plugin's last attempt, rows without their statements.
    pub async fn ledger(&self, query: &LedgerQuery) -> Result<Vec<LedgerEntry>> {
        self.open_read()?.ledger(query)
    }

    /// The steps applied now, by plugin and version.
    pub async fn applied(&self) -> Result<State> {
        self.open_read()?.load_state()
    }

    /// The id of the newest ledger row (0 for none): it changes whenever a step ends, so a
    /// page that shows the state can ask this cheaply and read the rest only when it moved.
    pub async fn ledger_head(&self) -> Result<i64> {
        self.open_read()?.ledger_head()
    }

    /// Each plugin file's manifest (files that cannot be loaded are left out: `status`
    /// names them).
    pub async fn manifests(&self) -> Result<Vec<(std::path::PathBuf, Manifest)>> {
        let (_, loaded) = self.open_read_and_load().await?;
        Ok(loaded
            .candidates
            .into_iter()
            .map(|c| (c.file, c.manifest))
            .collect())
    }

    /// The objects `plugin` owns now, one line per object, column, index and constraint,
    /// as the database describes them (what `wasmig test` compares).
    pub async fn objects(&self, plugin: &str) -> Result<Vec<String>> {
        self.open_read()?.describe_schema(plugin)
    }
}
