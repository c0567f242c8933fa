//! [`HostBuilder`]: how a [`Host`] is configured.

use crate::runtime::{Compiler, Limits, Runtime};
use crate::store::sqlite::{Overrun, OverrunHandler};
use crate::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Configures a [`Host`].
#[derive(Clone)]
pub struct HostBuilder {
    pub(crate) plugins_dir: PathBuf,
    pub(crate) database: PathBuf,
    /// The PostgreSQL connection URL, when the database is PostgreSQL's (`database` then
    /// holds it without its password, for messages).
    pub(crate) postgres: Option<String>,
    pub(crate) limits: Limits,
    pub(crate) lock_timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) policy: Policy,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) compiler: Compiler,
    pub(crate) on_overrun: Option<OverrunHandler>,
    /// Reads only: opening the database records no abandoned steps (a page that shows
    /// the state leaves that to runners).
    pub(crate) observer: bool,
    pub(crate) operator: Option<String>,
    pub(crate) compile_child: Option<crate::runtime::ChildCompiler>,
}

impl std::fmt::Debug for OverrunSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

pub(crate) struct OverrunSet<'a>(&'a Option<OverrunHandler>);

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
            postgres: None,
            limits: Limits::default(),
            lock_timeout: Duration::from_secs(60),
            retries: 3,
            policy: Policy::default(),
            cache_dir: default_cache_dir(),
            compiler: Compiler::default(),
            on_overrun: None,
            observer: false,
            operator: None,
            compile_child: None,
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
            .field("retries", &self.retries)
            .field("policy", &self.policy)
            .field("cache_dir", &self.cache_dir)
            .field("compiler", &self.compiler)
            .field("compile_child", &self.compile_child)
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

    /// The SQLite database file (default `wasmig.db`); created if missing. A
    /// `postgres://` or `postgresql://` URL instead is the same as [`HostBuilder::postgres`].
    pub fn database(mut self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        if let Some(url) = path.to_str().filter(|p| crate::store::postgres::is_url(p)) {
            return self.postgres(url.to_string());
        }
        self.database = path;
        self.postgres = None;
        self
    }

    /// A PostgreSQL database, by connection URL (`postgres://user:password@host/db`). The
    /// role in the URL creates each plugin's role and schema and owns wasmig's schema: it
    /// needs `CREATEROLE`, `CREATE` on the database and `SET` on the parameter
    /// `temp_file_limit` (or to be a superuser); see `docs/postgres.md`.
    pub fn postgres(mut self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.database = PathBuf::from(crate::store::postgres::redacted(&url));
        self.postgres = Some(url);
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

    /// How many times a step the database failed transiently (a deadlock, a serialization
    /// failure, a connection lost before the commit, the server restarting) is tried again,
    /// with exponential backoff and jitter (default 3). Each attempt is recorded in the
    /// ledger; a failure the plugin caused is not tried again.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
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

    /// Compiles plugins the compile cache does not hold in a child process, `program`, which
    /// must run [`crate::compile_child::main`] when its first argument is
    /// [`crate::compile_child::ARG`] (see [`crate::compile_child`]; the `wasmig` binary
    /// does). The child limits its address space to [`Limits::max_compile_memory`] and is
    /// killed at [`Limits::compile_deadline`]: whatever a plugin's code makes the compiler
    /// do, it does it there. Without a child, plugins compile in this process, bounded only
    /// by the loader's counts of their code. On Linux, `/proc/self/exe` names the running
    /// program even after a deploy replaced its file.
    pub fn compile_in_child(mut self, program: impl Into<PathBuf>) -> Self {
        self.compile_child = Some(crate::runtime::ChildCompiler {
            program: program.into(),
            running: Default::default(),
        });
        self
    }

    /// Who the ledger says ran this host's steps ([`crate::LedgerEntry::applied_by`]): a
    /// server embedding wasmig names itself (`billing-api@prod-3`, a deploy job's id). By
    /// default, the operating system's user and machine of the process.
    pub fn operator(mut self, name: impl Into<String>) -> Self {
        self.operator = Some(name.into());
        self
    }

    /// What to do when a step is still inside SQLite a second after its deadline, which
    /// SQLite's interrupt cannot always bring about: a statement whose row makes many calls
    /// in a straight line runs on until its end, and one call of a function whose cost grows
    /// faster than its input runs until it returns. The handler runs on another thread while the step's is blocked. Without one, the
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
            self.compile_child.clone(),
        )?;
        Ok(Host {
            inner: Arc::new(Inner {
                runtime: Arc::new(runtime),
                config: self,
            }),
        })
    }
}
