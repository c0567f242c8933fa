//! The wasmtime glue. Nothing of wasmtime leaves this module.
//!
//! - `engine`: the engine and its compile tiers, and the compile cache (`cache`);
//! - `call`: the call into a plugin and its bounds;
//! - each capability a plugin imports, in the same shape: `sql` (with `pipeline`, batches on
//!   a worker thread), `logging`, `wasi` (nothing granted; `output` captures stdout and
//!   stderr).

use crate::manifest::{RawManifest, RawMigration};
use crate::store::{Backend, PluginAccess, SqlLimits};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod batch;
pub(crate) mod bounds;
mod cache;
mod call;
pub(crate) mod child;
mod engine;
mod logging;
mod output;
mod pipeline;
mod sql;
mod wasi;

pub use engine::Compiler;
pub(crate) use engine::Purpose;
use engine::*;

use cache::CompileCache;
pub(crate) use child::ChildCompiler;
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

/// The interface a plugin must export, as the component model names it.
pub(crate) const PLUGIN_EXPORT: &str = "wasmig:plugin/plugin@0.1.0";

/// What a compiled component's imports and exports must be before it is linked: the
/// loader's check (`loader::checks`), given its imports and a way to list its exports.
pub(crate) type InterfaceCheck = fn(&[String], &dyn Fn() -> Vec<String>) -> Result<(), String>;
use bindings::wasmig::plugin::{log, types};

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
    /// Bytes the temporary files (TEMP tables, sorts and materialized subqueries that spill
    /// from memory) may hold while a step runs.
    pub max_temp_bytes: u64,
    /// Bytes of definitions (the `CREATE` statements SQLite keeps) a plugin's objects may
    /// take in all, after any step of its: every connection to a SQLite database parses the
    /// whole schema, and holds it in memory. SQLite only.
    pub max_schema_bytes: u64,
    /// Address space a compile may use, in bytes, when plugins are compiled in a child
    /// process ([`crate::HostBuilder::compile_in_child`]).
    pub max_compile_memory: u64,
    /// Wall-clock time one plugin's compile may take, in a child process.
    pub compile_deadline: Duration,
    /// The limits the application's connections to a SQLite database set below SQLite's
    /// defaults, under which every plugin's objects must still load. SQLite only.
    pub application_limits: Option<crate::policy::ApplicationLimits>,
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
            max_schema_bytes: 1 << 20,
            max_compile_memory: 2 << 30,
            compile_deadline: Duration::from_secs(60),
            application_limits: None,
        }
    }
}

/// The compilers in use (one or two tiers) and the bounds on every call.
pub(crate) struct Runtime {
    /// Cranelift; `None` with [`Compiler::Winch`].
    optimizing: Option<Tier>,
    /// Winch; `None` with [`Compiler::Cranelift`], and off x86-64.
    baseline: Option<Tier>,
    limits: Limits,
    /// The SHA-256 of every component validated so far: a server asked for the status of a
    /// plugin not yet applied validates it once, not at every request.
    validated: std::sync::Mutex<std::collections::HashSet<String>>,
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
    /// What its instances hold in the host beyond memories and tables, at most
    /// ([`bounds::instance_state`]): counted against its memory limit.
    instance_state: usize,
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
    /// inserts) is kept once with its count, and one that failed is marked so.
    pub statements: Vec<String>,
    repeats: u64,
    /// Bytes of statement text kept so far, as the ledger stores it (JSON).
    bytes: usize,
    /// Statements not kept, from the first that would have passed [`MAX_AUDIT_BYTES`] on:
    /// the trail is always the beginning of what ran, with no gap in it.
    omitted: u64,
    /// What is read of every statement, kept or not; boxed, since the report moves in and
    /// out of the store at every call of the plugin's.
    read: Option<Box<Read>>,
    /// Rows the plugin's statements inserted, updated or deleted.
    pub rows_changed: u64,
    /// Statements run so far, kept or not.
    runs: u64,
    /// Digests of the last errors the host answered the plugin's calls with
    /// ([`CallReport::answered`]): an error the plugin returns that is none of them is its
    /// own, and the ledger says so.
    answered: std::collections::VecDeque<u64>,
}

/// What [`CallReport`] reads of every statement the plugin runs.
#[derive(Debug, Default)]
struct Read {
    /// The last statement read: one run again is read once. Emptied when it failed, so that
    /// the next run of it is read, and kept in the trail, anew.
    last: String,
    /// What the destructive-change gate needs of the statements.
    gate: crate::destructive::Seen,
    /// What the last statement destroys and renames, counted in `gate` once it has not
    /// failed.
    pending: Option<crate::destructive::Found>,
}

/// How many of the host's last error answers [`CallReport`] remembers.
const ANSWERS_KEPT: usize = 64;

/// The digest [`CallReport`] keeps of an error answer.
fn answer_digest(e: &types::Error) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call::describe_error(e).hash(&mut h);
    h.finish()
}

/// The most statement text one step's audit trail keeps, counted as the ledger stores it: a
/// plugin that runs ever new statements would otherwise grow the host's memory and the
/// ledger row without bound.
const MAX_AUDIT_BYTES: usize = 1 << 20;

/// The bytes `s` takes as a JSON string's contents: the ledger keeps the audit trail as a
/// JSON list, where a control character takes six (`\u0001`) and a quote or backslash two.
fn json_len(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

impl CallReport {
    fn ran(&mut self, statement: &str) {
        self.runs += 1;
        let read = self.read.get_or_insert_with(Default::default);
        if let Some(found) = read.pending.take() {
            read.gate.add(found);
        }
        let again = read.last == statement;
        if !again {
            read.pending = Some(read.gate.read(statement));
            read.last.clear();
            // One past the statement limit is refused before it runs: not copied.
            if statement.len() <= crate::store::MAX_STATEMENT_BYTES {
                read.last.push_str(statement);
            }
        }
        if self.omitted > 0 {
            self.omitted += 1;
        } else if again && !self.statements.is_empty() {
            self.repeats += 1;
        } else if self.bytes + json_len(statement) > MAX_AUDIT_BYTES {
            self.omitted += 1;
        } else {
            self.close_repeats();
            self.bytes += json_len(statement);
            self.statements.push(statement.to_string());
        }
    }

    /// The host answered a call of the plugin's with `e`.
    pub(super) fn answered(&mut self, e: &types::Error) {
        if self.answered.len() == ANSWERS_KEPT {
            self.answered.pop_front();
        }
        self.answered.push_back(answer_digest(e));
    }

    /// The last statement that ran failed: its trail entry says so. With `whole`, it changed
    /// nothing (the database undid it), and what its text destroys does not count; without,
    /// rows it changed before the error stand (SQLite's `OR FAIL`, a trigger's
    /// `RAISE(FAIL)`, a `RETURNING` whose rows passed the result cap), and it counts.
    pub(super) fn failed(&mut self, whole: bool) {
        let Some(read) = self.read.as_mut() else {
            return;
        };
        match read.pending.take() {
            Some(found) if !whole => read.gate.add(found),
            _ => {}
        }
        let statement = std::mem::take(&mut read.last);
        let mark = if whole {
            " -- failed"
        } else {
            " -- failed after changing rows"
        };
        if self.omitted > 0 || statement.is_empty() {
            return;
        }
        if self.repeats > 0 {
            // The failed run is the last of the repeats: an entry of its own.
            self.repeats -= 1;
            self.close_repeats();
            if self.bytes + json_len(&statement) + mark.len() > MAX_AUDIT_BYTES {
                self.omitted += 1;
                return;
            }
            self.bytes += json_len(&statement) + mark.len();
            self.statements.push(statement + mark);
        } else if let Some(last) = self.statements.last_mut() {
            self.bytes += mark.len();
            last.push_str(mark);
        }
    }

    /// What a backend tells of a script's statements ([`Backend::execute_script`]).
    pub(super) fn script_step(&mut self, step: crate::store::ScriptStep<'_>) {
        match step {
            crate::store::ScriptStep::Ran(statement) => self.ran(statement),
            crate::store::ScriptStep::Failed { whole } => self.failed(whole),
        }
    }

    /// Whether the host answered one of the plugin's calls with `e`, among its last
    /// [`ANSWERS_KEPT`] error answers.
    pub(crate) fn was_answered(&self, e: &types::Error) -> bool {
        self.answered.contains(&answer_digest(e))
    }

    fn close_repeats(&mut self) {
        if self.repeats > 0 {
            if let Some(last) = self.statements.last_mut() {
                last.push_str(&format!(" -- ×{}", self.repeats + 1));
            }
            self.repeats = 0;
        }
    }

    /// What the destructive-change gate read of the statements, if any ran.
    pub(crate) fn gate(&self) -> Option<&crate::destructive::Seen> {
        self.read.as_ref().map(|r| &r.gate)
    }

    /// The audit trail, with the last run of repeats counted.
    pub(crate) fn finish(mut self) -> Self {
        if let Some(read) = self.read.as_mut()
            && let Some(found) = read.pending.take()
        {
            read.gate.add(found);
        }
        self.close_repeats();
        if self.omitted > 0 {
            self.statements.push(format!(
                "-- {} more statements not recorded from here on: the audit trail keeps {} MiB \
                 per step",
                self.omitted,
                MAX_AUDIT_BYTES >> 20
            ));
        }
        self
    }
}

/// Everything a plugin's store holds for one call.
pub(crate) struct StepState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: bounds::StoreBounds,
    /// The linear memory the store allows, all its memories together, for errors.
    memory_limit: usize,
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

/// Drops `value` on a blocking thread when a Tokio runtime is at hand, here otherwise.
pub(crate) fn drop_elsewhere<T: Send + 'static>(value: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn_blocking(move || drop(value))),
        _ => drop(value),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_audit_trail_counts_what_the_ledgers_json_takes() {
        let every: String = (0u32..0x80)
            .chain([0xe9, 0x2028, 0x1f600])
            .filter_map(char::from_u32)
            .collect();
        for s in [every.as_str(), "", "SELECT '\u{1}\u{1}'", "a\"b\\c\nd"] {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(super::json_len(s), json.len() - 2, "{json}");
        }
    }

    #[test]
    fn the_audit_trail_keeps_a_mebibyte_of_json() {
        let mut report = super::CallReport::default();
        let control = format!("SELECT '{}'", "\u{1}".repeat(200_000));
        for i in 0..20 {
            report.ran(&format!("{control}{i}"));
        }
        let report = report.finish();
        let json = serde_json::to_string(&report.statements).unwrap();
        assert!(
            json.len() <= super::MAX_AUDIT_BYTES + 4096,
            "{}",
            json.len()
        );
        assert!(report.statements.last().unwrap().contains("not recorded"));
    }

    #[test]
    fn the_audit_trail_is_the_beginning_of_what_ran_with_no_gap() {
        let mut report = super::CallReport::default();
        report.ran("SELECT 1");
        report.ran(&format!(
            "-- {}\nINSERT INTO t VALUES (1)",
            "x".repeat(2 << 20)
        ));
        report.ran("SELECT 2");
        report.ran("DROP TABLE t");
        let report = report.finish();
        assert_eq!(report.statements.len(), 2, "{:?}", report.statements);
        assert_eq!(report.statements[0], "SELECT 1");
        assert!(report.statements[1].starts_with("-- 3 more statements not recorded from here on"));
        // The gate still read the last one.
        let gate = report.gate().unwrap();
        assert_eq!(gate.destroyed(), Vec::<String>::new());
        let mut report = super::CallReport::default();
        report.ran(&format!("-- {}\nSELECT 1", "x".repeat(2 << 20)));
        report.ran("DELETE FROM t");
        assert_eq!(
            report.finish().gate().unwrap().destroyed(),
            ["deletes every row of t"]
        );
    }
}
