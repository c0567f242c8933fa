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

// The stages of a run, in the order the data flows (see docs/architecture.md).
mod catalog;
pub mod destructive;
mod ledger;
mod loader;
pub use wasmig_format::manifest;
mod executor;
pub mod planner;
mod store;

mod builder;
mod commands;
mod error;
mod host;
pub mod policy;
mod reports;
mod runtime;
pub mod sqlite_memory;

/// The compile child: a program that embeds wasmig and calls
/// [`HostBuilder::compile_in_child`] with its own path runs [`compile_child::main`] when
/// its first argument is [`compile_child::ARG`], before anything else:
///
/// ```no_run
/// if std::env::args_os().nth(1).is_some_and(|a| a == wasmig::compile_child::ARG) {
///     std::process::exit(wasmig::compile_child::main());
/// }
/// ```
pub mod compile_child {
    pub use crate::runtime::child::{ARG, main};
}
mod testing;

use host::Inner;
use loader::{Loaded, combine, on_cores};
use wasmig_format::declaration;

pub use builder::{HostBuilder, default_cache_dir};
pub use error::{Error, Result};
pub use executor::{RunEvent, RunReport, STEP_LOG, StepReport, StepSink};
pub use host::Host;
pub use ledger::{AppliedStep, Direction, LedgerEntry, LedgerQuery, Outcome, State};
pub use manifest::Manifest;
pub use planner::{Finding, FindingKind, Plan, PlannedStep};
pub use policy::Policy;
pub use reports::{Compiled, DownOptions, Inspection, PluginAccess, PluginStatus, UpOptions};
pub use runtime::{Compiler, Limits};
pub use store::sqlite::Overrun;
pub use testing::{Check, DATA_MARKER, PluginTest, StepTest, TestEvent, TestOptions, TestReport};

/// Compiles the README's Rust snippets as doc tests, so the embedding example cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
