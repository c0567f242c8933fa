//! The executor: runs a plan step by step. Each step is one transaction holding the plugin's
//! effects and its ledger row; a failure rolls the step back and is recorded on its own.

use crate::planner::PlannedStep;
use crate::runtime::{Loaded, Runtime};
use crate::store::{Backend, Direction, LedgerEntry, Outcome, Scope};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// What happened to one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The plugin.
    pub plugin: String,
    /// The step's version.
    pub version: String,
    /// The step's description.
    pub description: String,
    /// Up or down.
    pub direction: Direction,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it took, in microseconds.
    pub duration_us: i64,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Steps that ran, in order (the last one may have failed).
    pub steps: Vec<StepReport>,
    /// Steps that were planned but did not run because an earlier step failed.
    pub not_run: Vec<PlannedStep>,
    /// Steps skipped because another runner applied them meanwhile.
    pub already_applied: Vec<PlannedStep>,
}

impl RunReport {
    /// The failed step, if any.
    pub fn failure(&self) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.outcome == Outcome::Failed)
    }
}

/// A plugin ready to run: its compiled form, its file's bytes (stored with the first step it
/// applies, for rollback), and the read grants the policy gives it.
pub(crate) struct Runnable {
    pub loaded: Loaded,
    pub bytes: std::sync::Arc<Vec<u8>>,
    pub granted_reads: Vec<String>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs `up` for every step of the plan, in order; stops at the first failure.
pub(crate) async fn run_up(
    runtime: &Runtime,
    mut backend: Box<dyn Backend>,
    steps: &[PlannedStep],
    plugins: &BTreeMap<String, Runnable>,
) -> (Box<dyn Backend>, crate::Result<RunReport>) {
    let mut report = RunReport::default();
    for (i, step) in steps.iter().enumerate() {
        let runnable = &plugins[&step.plugin];
        let (b, result) = run_one(runtime, backend, step, runnable).await;
        backend = b;
        match result {
            Err(e) => {
                report.not_run = steps[i + 1..].to_vec();
                return (backend, Err(e));
            }
            Ok(None) => report.already_applied.push(step.clone()),
            Ok(Some(step_report)) => {
                let failed = step_report.outcome == Outcome::Failed;
                report.steps.push(step_report);
                if failed {
                    report.not_run = steps[i + 1..].to_vec();
                    break;
                }
            }
        }
    }
    (backend, Ok(report))
}

/// One step in its own transaction. `Ok(None)`: another runner applied it first.
async fn run_one(
    runtime: &Runtime,
    mut backend: Box<dyn Backend>,
    step: &PlannedStep,
    runnable: &Runnable,
) -> (Box<dyn Backend>, crate::Result<Option<StepReport>>) {
    let started_at_ms = now_ms();
    let clock = Instant::now();
    if let Err(e) = backend.begin() {
        return (backend, Err(e));
    }
    // Re-check inside the write transaction: exactly once, even with concurrent runners.
    let already = backend.load_state().map(|s| {
        s.applied
            .get(&step.plugin)
            .is_some_and(|a| a.contains_key(&step.version))
    });
    match already {
        Ok(true) => {
            let r = backend.rollback();
            return (backend, r.map(|()| None));
        }
        Ok(false) => {}
        Err(e) => {
            let _ = backend.rollback();
            return (backend, Err(e));
        }
    }
    if let Err(e) = backend.store_component(&step.component_sha256, &runnable.bytes) {
        let _ = backend.rollback();
        return (backend, Err(e));
    }

    let before = match backend.schema() {
        Ok(schema) => schema,
        Err(e) => {
            let _ = backend.rollback();
            return (backend, Err(e));
        }
    };

    let scope = Scope::new(&step.plugin, &runnable.granted_reads);
    let version = step.version.to_string();
    let (mut backend, call, mut outcome) = runtime
        .run_step(&runnable.loaded, scope.clone(), backend, true, &version)
        .await;
    if outcome.is_ok() {
        outcome = match backend.verify_step(&scope, &before) {
            Ok(verdict) => verdict.map_err(|reason| format!("access denied: {reason}")),
            Err(e) => {
                let _ = backend.rollback();
                return (backend, Err(e));
            }
        };
    }

    let mut entry = LedgerEntry {
        id: 0,
        plugin: step.plugin.clone(),
        plugin_version: step.plugin_version.to_string(),
        version,
        description: step.description.clone(),
        direction: Direction::Up,
        outcome: Outcome::Succeeded,
        error: None,
        started_at_ms,
        duration_us: 0,
        checksum: step.checksum.clone(),
        component_sha256: step.component_sha256.clone(),
        wasmig_version: env!("CARGO_PKG_VERSION").to_string(),
        statements: call.statements,
    };
    let committed = match outcome {
        Ok(()) => {
            entry.duration_us = clock.elapsed().as_micros() as i64;
            match backend.record(&entry).and_then(|()| backend.commit()) {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = backend.rollback();
                    return (backend, Err(e));
                }
            }
        }
        Err(cause) => Err(cause),
    };
    if let Err(cause) = committed {
        // Nothing of the step may remain; then the failure is recorded on its own.
        if let Err(e) = backend.rollback() {
            return (backend, Err(e));
        }
        entry.outcome = Outcome::Failed;
        entry.error = Some(cause);
        entry.duration_us = clock.elapsed().as_micros() as i64;
        let recorded = backend
            .begin()
            .and_then(|()| backend.record(&entry))
            .and_then(|()| backend.commit());
        if let Err(e) = recorded {
            let _ = backend.rollback();
            return (backend, Err(e));
        }
        tracing::error!(
            plugin = %entry.plugin,
            version = %entry.version,
            "step failed and was rolled back: {}",
            entry.error.as_deref().unwrap_or_default()
        );
    } else {
        tracing::info!(plugin = %entry.plugin, version = %entry.version, "applied");
    }
    let report = StepReport {
        plugin: entry.plugin,
        version: entry.version,
        description: entry.description,
        direction: entry.direction,
        outcome: entry.outcome,
        error: entry.error,
        duration_us: entry.duration_us,
    };
    (backend, Ok(Some(report)))
}
