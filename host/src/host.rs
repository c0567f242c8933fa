//! [`Host`]: the configured host, how it opens the database, and where each step's component
//! comes from.

use crate::executor::{self, Group, Mode, Source};
use crate::planner::Candidate;
use crate::runtime::Runtime;
use crate::store::postgres::PgBackend;
use crate::store::sqlite::SqliteBackend;
use crate::store::{Backend, BackendOptions};
use crate::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The migration host: loads plugins, plans, applies, reports.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Shared with the executor's loader thread, which loads the next plugin ahead.
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) config: HostBuilder,
}

/// Records the steps a host abandoned past their deadline; a database that cannot take them
/// now (another runner holds it) takes them at its next opening.
pub(crate) fn record_abandoned(backend: &mut dyn Backend) {
    if let Err(e) = backend.record_abandoned() {
        tracing::warn!("cannot record the steps a host abandoned yet: {e}");
    }
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

    /// The database file, or a PostgreSQL database's URL without its password.
    pub fn database(&self) -> &Path {
        &self.inner.config.database
    }

    /// Whether the database is PostgreSQL's.
    pub fn is_postgres(&self) -> bool {
        self.inner.config.postgres.is_some()
    }

    /// Who this host's runs are recorded as having been run by
    /// ([`LedgerEntry::applied_by`]): what [`HostBuilder::operator`] set, or the operating
    /// system's user and machine of this process, `user@machine`.
    pub fn operator(&self) -> String {
        if let Some(name) = &self.inner.config.operator {
            return name.clone();
        }
        let user = ["USER", "LOGNAME", "USERNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "unknown".to_string());
        let machine = gethostname::gethostname().to_string_lossy().into_owned();
        format!("{user}@{machine}")
    }

    /// This host as an observer: its reads write nothing to the database (steps another
    /// host abandoned are left for the next runner to record). Commands that run steps
    /// behave as they do on any host.
    pub fn observer(&self) -> Host {
        let mut config = self.inner.config.clone();
        config.observer = true;
        Host {
            inner: Arc::new(Inner {
                runtime: self.inner.runtime.clone(),
                config,
            }),
        }
    }

    /// A host like this one over a copy of its SQLite database, written to `path` (which must
    /// not exist) with `VACUUM INTO`: a consistent copy made inside one read transaction,
    /// so a dry run on the copy never takes, nor waits for, the database's write lock.
    /// `None` on PostgreSQL, whose databases are not copied this way.
    pub fn snapshot(&self, path: &Path) -> Result<Option<Host>> {
        if self.is_postgres() {
            return Ok(None);
        }
        let source = &self.inner.config.database;
        let fail = |e: rusqlite::Error| Error::Database {
            path: source.clone(),
            message: format!("cannot copy the database to {}: {e}", path.display()),
        };
        if source.exists() {
            let conn = rusqlite::Connection::open_with_flags(
                source,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(fail)?;
            crate::store::sqlite::without_stat4(&conn);
            conn.busy_timeout(self.inner.config.lock_timeout)
                .map_err(fail)?;
            conn.execute("VACUUM INTO ?1", [path.to_string_lossy()])
                .map_err(fail)?;
        }
        let mut config = self.inner.config.clone();
        config.database = path.to_path_buf();
        Ok(Some(Host {
            inner: Arc::new(Inner {
                runtime: self.inner.runtime.clone(),
                config,
            }),
        }))
    }

    pub(crate) fn backend_options(&self) -> BackendOptions {
        BackendOptions {
            lock_timeout: self.inner.config.lock_timeout,
            max_temp_bytes: self.inner.config.limits.max_temp_bytes,
            deadline: self.inner.config.limits.deadline,
            on_overrun: self.inner.config.on_overrun.clone(),
        }
    }

    pub(crate) fn open(&self, mode: Mode) -> Result<Box<dyn Backend>> {
        let options = self.backend_options();
        if let Some(url) = &self.inner.config.postgres {
            let mut backend = PgBackend::open(url, options)?;
            backend.prepare_host_tables()?;
            if mode == Mode::DryRun {
                backend.begin(None)?;
            }
            return Ok(Box::new(backend));
        }
        let path = &self.inner.config.database;
        let scratch = mode == Mode::DryRun && !path.exists();
        let mut backend = SqliteBackend::open(path, options, scratch)?;
        if !scratch && backend.has_host_tables()? {
            record_abandoned(&mut backend);
        }
        if mode == Mode::DryRun {
            // One transaction for the whole dry run, host tables included, rolled back.
            backend.begin(None)?;
        }
        backend.prepare_host_tables()?;
        Ok(Box::new(backend))
    }

    /// Opens the database for reading: an untouched database reads as empty and is left as
    /// it is.
    pub(crate) fn open_read(&self) -> Result<Box<dyn Backend>> {
        let options = self.backend_options();
        if let Some(url) = &self.inner.config.postgres {
            let mut backend = PgBackend::open(url, options)?;
            backend.has_host_tables()?;
            return Ok(Box::new(backend));
        }
        let path = &self.inner.config.database;
        let mut backend = SqliteBackend::open(path, options, !path.exists())?;
        // Tables written by a newer wasmig are refused, not misread.
        backend.host_schema_version()?;
        if !self.inner.config.observer && path.exists() && backend.has_host_tables()? {
            record_abandoned(&mut backend);
        }
        Ok(Box::new(backend))
    }

    /// The stored components that run the given steps (for `down`).
    pub(crate) fn stored_sources(
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
                    allow_destructive: self.allows_destructive(&manifest.name),
                    manifest,
                },
            );
        }
        Ok(sources)
    }

    /// The plugin files of the given SHA-256s (for `up`).
    pub(crate) fn file_sources<'a>(
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
                    allow_destructive: self.allows_destructive(&c.manifest.name),
                    manifest: c.manifest,
                },
            );
        }
        sources
    }

    /// The reads a plugin asked for that the policy grants.
    pub(crate) fn granted_reads(&self, manifest: &Manifest) -> Vec<String> {
        let granted = self.inner.config.policy.granted_reads(&manifest.name);
        manifest
            .reads
            .iter()
            .filter(|r| granted.contains(r))
            .cloned()
            .collect()
    }

    /// Whether the policy allows the plugin's destructive steps (when it marks them).
    pub(crate) fn allows_destructive(&self, plugin: &str) -> bool {
        self.inner
            .config
            .policy
            .plugins
            .get(plugin)
            .is_some_and(|p| p.allow_destructive)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn execute(
        &self,
        backend: Box<dyn Backend>,
        groups: Vec<Group>,
        sources: BTreeMap<String, Source>,
        mode: Mode,
        note: Option<String>,
        allow_destructive: bool,
        on_step: StepSink<'_>,
    ) -> Result<RunReport> {
        let (_backend, report) = executor::run(
            &self.inner.runtime,
            backend,
            groups,
            sources,
            executor::How {
                mode,
                note,
                operator: self.operator(),
                retry: executor::Retry {
                    attempts: self.inner.config.retries + 1,
                    first_pause: std::time::Duration::from_millis(200),
                },
                allow_destructive,
            },
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
}
