//! What the [`Host`] commands take and give back, besides the run reports of the executor.

use crate::runtime::Compiler;
use crate::*;
use serde::Serialize;
use std::path::PathBuf;

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
    /// Run destructive steps the plugins mark as intended, of every plugin (the decision is
    /// recorded in the ledger); see [`crate::destructive`].
    pub allow_destructive: bool,
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
    /// The objects it owns (read and write): `notes__*` on SQLite, its schema's `notes.*` on
    /// PostgreSQL.
    pub namespace: String,
    /// Plugins whose tables it asks to read.
    pub reads_requested: Vec<String>,
    /// Of those, the ones the policy grants (read only).
    pub reads_granted: Vec<String>,
    /// The ones the policy does not grant: the plugin is refused until they are granted.
    pub reads_missing: Vec<String>,
}
