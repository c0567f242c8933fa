//! The command line's arguments: what `wasmig --help` shows.

use super::*;

/// Run plugins' database migrations as sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "wasmig", version)]
pub(crate) struct Cli {
    /// Directory whose *.wasm files are the plugins.
    #[arg(long, global = true, env = "WASMIG_PLUGINS", default_value = "plugins")]
    pub(crate) plugins: PathBuf,

    /// SQLite database file (created if missing), or a PostgreSQL database's URL
    /// (postgres://user:password@host/db).
    #[arg(long, global = true, env = "WASMIG_DB", default_value = "wasmig.db")]
    pub(crate) db: PathBuf,

    /// Policy file: read grants and limits [default: ./wasmig.toml if it exists].
    #[arg(long, global = true, env = "WASMIG_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Wall-clock time one migration step may take, e.g. 30s or 2m (overrides the policy).
    #[arg(long, global = true, env = "WASMIG_DEADLINE")]
    pub(crate) deadline: Option<String>,

    /// How long to wait for another runner holding the database, e.g. 60s.
    #[arg(
        long,
        global = true,
        env = "WASMIG_LOCK_TIMEOUT",
        default_value = "60s"
    )]
    pub(crate) lock_timeout: String,

    /// How many times to try again a step the database failed transiently (a deadlock, a
    /// serialization failure, a lost connection, a server restart).
    #[arg(long, global = true, env = "WASMIG_RETRIES", default_value_t = 3)]
    pub(crate) retries: u32,

    /// Where compiled plugins are cached [default: $XDG_CACHE_HOME/wasmig or ~/.cache/wasmig].
    #[arg(long, global = true, env = "WASMIG_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,

    /// Compile every plugin on every run; do not read or write the compile cache.
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,

    /// Which compiler turns plugins into native code: auto (Winch for a plugin not in the
    /// compile cache, Cranelift's code once `wasmig compile` cached it), cranelift, winch.
    #[arg(long, global = true, env = "WASMIG_COMPILER", value_enum, default_value_t = CompilerArg::Auto)]
    pub(crate) compiler: CompilerArg,

    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,

    /// `--db` was given on the command line (not by WASMIG_DB or the default): `wasmig test`
    /// uses a database only when it is named there.
    #[arg(skip)]
    pub(crate) db_given: bool,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Apply pending migrations: of every plugin, or of PLUGIN[@VERSION] and its dependencies.
    Up {
        /// Only this plugin (and what it depends on), optionally up to a step version.
        target: Option<String>,
        /// Run the steps in a transaction that is rolled back; report what they would do.
        #[arg(long)]
        dry_run: bool,
        /// Apply even though an applied migration changed since (recorded in the history).
        #[arg(long)]
        allow_drift: bool,
        /// Apply even though a plugin file is older than what is applied (recorded).
        #[arg(long)]
        allow_downgrade: bool,
        /// Run steps that destroy data (drop a table or column, delete or rewrite every row)
        /// when their plugin marks them as intended (recorded).
        #[arg(long)]
        allow_destructive: bool,
    },
    /// What `up` would do: runs it in a transaction that is rolled back.
    Plan {
        /// Only this plugin (and what it depends on), optionally up to a step version.
        target: Option<String>,
    },
    /// Roll a plugin back with its down steps, newest first.
    Down {
        /// The plugin.
        plugin: String,
        /// Roll back every applied step above this version.
        #[arg(long, conflicts_with = "steps", required_unless_present = "steps")]
        to: Option<semver::Version>,
        /// Roll back the newest N applied steps.
        #[arg(long)]
        steps: Option<usize>,
        /// First roll back, entirely, the applied plugins that depend on what goes.
        #[arg(long)]
        cascade: bool,
        /// Run the steps in a transaction that is rolled back; report what they would do.
        #[arg(long)]
        dry_run: bool,
    },
    /// Roll back every applied step of a plugin.
    Uninstall {
        /// The plugin.
        plugin: String,
        /// First roll back, entirely, the applied plugins that depend on it.
        #[arg(long)]
        cascade: bool,
        /// Run the steps in a transaction that is rolled back; report what they would do.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show every plugin: its file, version, applied version and pending steps.
    Status,
    /// Report drift, downgrades, missing files and gaps; exits non-zero if there are any.
    Validate,
    /// Show what each plugin may touch (its namespace and read grants) and the limits.
    Policy,
    /// Load one plugin file (compile cache included) and show its manifest, imports and
    /// load and instantiation times. Runs no migration.
    Inspect {
        /// The .wasm file.
        file: PathBuf,
    },
    /// Compile every plugin file with the optimizing compiler into the compile cache
    /// (deploy-time precompilation). Runs no plugin code; touches no database.
    Compile,
    /// Show every recorded attempt, oldest first.
    History {
        /// Only this plugin.
        plugin: Option<String>,
    },
    /// Test plugins on a scratch database: apply each step, roll each back comparing the
    /// schema with the one before it, apply everything again and compare with the first pass.
    Test {
        /// A plugin file (its dependencies are taken from the same directory), or a directory
        /// whose plugins are all tested [default: the plugins directory].
        target: Option<PathBuf>,
        /// A plugin the tested ones depend on, from elsewhere (repeatable).
        #[arg(long = "with")]
        with: Vec<PathBuf>,
        /// A step without a down step fails the test (by default it is reported).
        #[arg(long)]
        require_reversible: bool,
    },
    /// Serve a web page with the state of every plugin's migrations, and its JSON API
    /// (/api/status, /api/plugins/NAME, /api/history, /api/plan).
    Serve {
        /// Address to listen on. Any address other than a loopback one needs a token.
        #[arg(long, default_value = "127.0.0.1:7777")]
        listen: String,
        /// The token every request must carry in the x-wasmig-token header [default: none
        /// on a loopback address without --allow-apply; otherwise one is generated and
        /// printed]. Other users of the machine can read a command line: prefer
        /// WASMIG_TOKEN or --token-file.
        #[arg(long, env = "WASMIG_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// A file whose content (trimmed) is the token.
        #[arg(long, conflicts_with = "token")]
        token_file: Option<PathBuf>,
        /// Let the page apply pending steps (with the token).
        #[arg(long)]
        allow_apply: bool,
    },
    /// Create a plugin crate: its Cargo.toml, build setup, a first step and a README.
    New {
        /// The plugin's name (lowercase letters, digits and hyphens).
        name: String,
        /// Where to create it [default: ./NAME].
        #[arg(long)]
        path: Option<PathBuf>,
        /// Build against the wasmig-guest SDK in this directory instead of the published one.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Add the next step to the plugin crate here (or in --path): its up and down files in
    /// migrations/, from a template, and the crate's version raised to the step's.
    Add {
        /// What the step does, e.g. "add tags"; the files are named after it.
        description: String,
        /// create-table, add-column, add-index, rename (a column with --column, else the
        /// table), backfill (a code step).
        #[arg(long, default_value = "create-table")]
        template: String,
        /// The plugin crate [default: the current directory].
        #[arg(long)]
        path: Option<PathBuf>,
        /// The step's version [default: the newest step's, minor version raised].
        #[arg(long)]
        version: Option<semver::Version>,
        /// The table (with or without the plugin's namespace).
        #[arg(long)]
        table: Option<String>,
        /// The column.
        #[arg(long)]
        column: Option<String>,
        /// The new name (rename).
        #[arg(long)]
        to: Option<String>,
        /// The new column's type (add-column) [default: TEXT].
        #[arg(long = "type")]
        column_type: Option<String>,
        /// The column that identifies a row (backfill) [default: id].
        #[arg(long)]
        key: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum CompilerArg {
    Auto,
    Cranelift,
    Winch,
}

pub(crate) fn parse_target(target: Option<&str>) -> Result<UpOptions> {
    let Some(target) = target else {
        return Ok(UpOptions::default());
    };
    let (plugin, version) = match target.split_once('@') {
        Some((p, v)) => {
            let v = semver::Version::parse(v)
                .with_context(|| format!("{target}: {v:?} is not a semver version"))?;
            (p, Some(v))
        }
        None => (target, None),
    };
    if plugin.is_empty() {
        bail!("{target}: the plugin name is missing");
    }
    Ok(UpOptions {
        plugin: Some(plugin.to_string()),
        to_version: version,
        ..UpOptions::default()
    })
}
