//! `wasmig test`: a plugin's steps applied one by one, each rolled back, and applied again,
//! with the schema compared after each, on a scratch database.
//!
//! After every up step the host describes the plugin's schema (objects and columns, as the
//! database reports them: [`crate::store::Backend::describe_schema`]). Rolling back step by
//! step, the schema after each down step must equal the one before its up step; applying
//! every step again, one by one, must give the schema of the first pass after each. For a
//! step whose SQL carries [`DATA_MARKER`] (`-- wasmig:check-data`), the plugin's rows are
//! compared the same way ([`crate::store::Backend::describe_data`]): its down step must
//! restore the rows from before its up step, and applying it again must give the same rows.
//! A plugin's crate can run the same check from its own tests with [`Host::test`].

use crate::{DownOptions, Error, Host, Result, UpOptions};
use serde::Serialize;
use std::collections::BTreeMap;

/// The comment that asks `wasmig test` to compare a step's rows as well as its schema
/// (for steps that move or rewrite data: a backfill, a table rebuilt).
pub const DATA_MARKER: &str = "wasmig:check-data";

/// How [`Host::test`] judges a plugin.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// A step without a down step fails the test (by default it is reported, and the
    /// rollback stops there).
    pub require_reversible: bool,
}

/// What [`Host::test`] found, plugin by plugin.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// Every plugin passed.
    pub passed: bool,
    /// One entry per plugin tested.
    pub plugins: Vec<PluginTest>,
}

/// One plugin's test.
#[derive(Debug, Clone, Serialize)]
pub struct PluginTest {
    /// The plugin.
    pub plugin: String,
    /// Each step, oldest first.
    pub steps: Vec<StepTest>,
    /// What stopped the test, if something did (a step that failed, a database error).
    pub error: Option<String>,
    /// This plugin passed.
    pub passed: bool,
}

/// One step's test.
#[derive(Debug, Clone, Serialize)]
pub struct StepTest {
    /// The step's version.
    pub version: String,
    /// The step's description.
    pub description: String,
    /// Its up step applied.
    pub up: Check,
    /// Its down step restored the schema (and, when it checks data, the rows) from before
    /// the up step.
    pub down: Check,
    /// Applied a second time, after every step was rolled back, it gave the schema (and
    /// rows) of the first pass.
    pub again: Check,
    /// Its SQL carries [`DATA_MARKER`]: the plugin's rows are compared too.
    pub checks_data: bool,
    /// The schema objects the up step created, changed or dropped.
    pub changes: Vec<String>,
}

/// The result of one half of a step's test.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Check {
    /// It did what it should.
    Passed,
    /// It failed to run, with this error.
    Failed {
        /// The step's error.
        error: String,
    },
    /// It ran, and the schema (or the rows) differ from what they should be: each line what
    /// is missing (`-`) or left over (`+`).
    Differs {
        /// The differences.
        differences: Vec<String>,
    },
    /// The step has no down step.
    Irreversible,
    /// Not run, because of an earlier failure or an irreversible step above it.
    NotRun,
}

impl Check {
    fn failed(&self, options: &TestOptions) -> bool {
        match self {
            Check::Failed { .. } | Check::Differs { .. } => true,
            Check::Irreversible => options.require_reversible,
            Check::Passed | Check::NotRun => false,
        }
    }
}

/// `expected` against `actual`: lines missing (`-`) and left over (`+`); a line that
/// occurs more often on one side (two equal rows) counts as often as it differs.
fn differences(expected: &[String], actual: &[String]) -> Vec<String> {
    let mut count: BTreeMap<&String, i64> = BTreeMap::new();
    for line in expected {
        *count.entry(line).or_default() += 1;
    }
    for line in actual {
        *count.entry(line).or_default() -= 1;
    }
    let mut out: Vec<String> = Vec::new();
    for (line, n) in &count {
        if *n > 0 {
            out.extend((0..*n).map(|_| format!("- {line}")));
        }
    }
    for (line, n) in &count {
        if *n < 0 {
            out.extend((0..-*n).map(|_| format!("+ {line}")));
        }
    }
    out
}

/// What a [`Host::test_with`] run reports while it goes: one event per check, after it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TestEvent {
    /// A plugin's test starts: it will make `checks` checks (up, down and again for each
    /// step).
    Plugin {
        /// The plugin.
        plugin: String,
        /// How many checks its test makes at most.
        checks: usize,
    },
    /// One check ended.
    Checked {
        /// The plugin.
        plugin: String,
        /// The step's version.
        version: String,
        /// `up`, `down` or `again`.
        phase: &'static str,
        /// Its result.
        check: Check,
    },
}

/// How many bytes of rows [`Host::test`] holds at once, as
/// [`crate::store::held_bytes`] counts them, over the snapshots it keeps (a test's scratch
/// data is small; a plugin's rows must not take the host's memory with them).
const MAX_HELD_ROWS_BYTES: usize = 256 << 20;

/// A snapshot of the plugin after one step: its schema and its rows.
struct Snapshot {
    schema: Vec<String>,
    data: Rows,
}

/// A snapshot's rows.
enum Rows {
    /// Described, one line each.
    Held(Vec<String>),
    /// Let go: no step compares them.
    Dropped,
    /// Not described, and why: what a check that compares them reports.
    Failed(String),
}

impl Rows {
    /// What the rows cost against [`MAX_HELD_ROWS_BYTES`].
    fn bytes(&self) -> usize {
        match self {
            Rows::Held(lines) => lines.iter().map(|l| crate::store::held_bytes(l)).sum(),
            Rows::Dropped | Rows::Failed(_) => 0,
        }
    }
}

/// A run's failure as one line.
fn failure(result: &Result<crate::RunReport>) -> Option<String> {
    match result {
        Err(e) => Some(e.to_string()),
        Ok(report) => report.failed.as_ref().map(|f| {
            format!(
                "step {} failed: {}",
                f.version,
                f.error.as_deref().unwrap_or("(no error text)")
            )
        }),
    }
}

impl Host {
    /// Tests the plugins named `plugins` (each in the plugins directory, with what it
    /// depends on) on this host's database, which should be a scratch one: applies each
    /// plugin's steps one by one, describing its schema after each; rolls them back one by
    /// one, checking that each down step restores the schema from before its up step;
    /// applies everything again and compares with the first pass.
    ///
    /// ```no_run
    /// # async fn f() -> wasmig::Result<()> {
    /// // In a plugin crate's own test, on a fresh SQLite file:
    /// let dir = tempfile::tempdir().unwrap();
    /// let host = wasmig::Host::builder()
    ///     .plugins_dir("target/wasm32-unknown-unknown/release")
    ///     .database(dir.path().join("test.db"))
    ///     .build()?;
    /// let report = host.test(&["shop".to_string()], &wasmig::TestOptions::default()).await?;
    /// assert!(report.passed, "{report:#?}");
    /// # Ok(()) }
    /// ```
    pub async fn test(&self, plugins: &[String], options: &TestOptions) -> Result<TestReport> {
        self.test_with(plugins, options, |_| {}).await
    }

    /// [`Host::test`], reporting each check to `progress` as it ends.
    pub async fn test_with(
        &self,
        plugins: &[String],
        options: &TestOptions,
        mut progress: impl FnMut(TestEvent) + Send,
    ) -> Result<TestReport> {
        let mut tested = Vec::new();
        for plugin in plugins {
            tested.push(self.test_one(plugin, options, &mut progress).await?);
        }
        Ok(TestReport {
            passed: tested.iter().all(|p| p.passed),
            plugins: tested,
        })
    }

    async fn test_one(
        &self,
        plugin: &str,
        options: &TestOptions,
        progress: &mut (dyn FnMut(TestEvent) + Send),
    ) -> Result<PluginTest> {
        let status = self.status().await?;
        let found = status.iter().find(|s| s.name.as_deref() == Some(plugin));
        let file = found
            .and_then(|s| s.file.clone())
            .ok_or_else(|| Error::UnknownPlugin(plugin.to_string()))?;
        let applied = found.map_or(0, |s| s.applied);
        let manifest = self.inspect(&file).await?.manifest;
        // `held` is what the rows kept cost: a snapshot's rows are described within what
        // is left of MAX_HELD_ROWS_BYTES, and fail the checks that compare them past it.
        let snapshot = |data: bool, held: usize| -> Result<Snapshot> {
            let mut backend = self.open_read()?;
            let schema = backend.describe_schema(plugin)?;
            let data = if !data {
                Rows::Dropped
            } else {
                match backend.describe_data(plugin, MAX_HELD_ROWS_BYTES.saturating_sub(held)) {
                    Ok(Some(lines)) => Rows::Held(lines),
                    Ok(None) => Rows::Failed(format!(
                        "its rows, with those wasmig test keeps of its other steps, take more \
                         than {} MiB as it describes them, or more than {} MiB of values to \
                         read: too many to compare",
                        MAX_HELD_ROWS_BYTES >> 20,
                        crate::store::MAX_DESCRIBED_READ >> 20
                    )),
                    Err(e) => Rows::Failed(e.to_string()),
                }
            };
            Ok(Snapshot { schema, data })
        };
        let mut test = PluginTest {
            plugin: plugin.to_string(),
            steps: manifest
                .migrations
                .iter()
                .map(|m| StepTest {
                    version: m.version.to_string(),
                    description: m.description.clone(),
                    up: Check::NotRun,
                    down: Check::NotRun,
                    again: Check::NotRun,
                    checks_data: false,
                    changes: Vec::new(),
                })
                .collect(),
            error: None,
            passed: false,
        };
        // The first pass compares with the database before any step: one where the plugin
        // already has steps would be compared with itself half-way.
        if applied > 0 {
            test.error = Some(format!(
                "{applied} of its steps are already applied on this database: wasmig test \
                 needs one where the plugin has none (a scratch database)"
            ));
            return Ok(finish(test, options));
        }
        progress(TestEvent::Plugin {
            plugin: plugin.to_string(),
            checks: 3 * test.steps.len(),
        });
        let mut report = |test: &mut PluginTest, i: usize, phase: &'static str, check: Check| {
            progress(TestEvent::Checked {
                plugin: plugin.to_string(),
                version: test.steps[i].version.clone(),
                phase,
                check: check.clone(),
            });
            let step = &mut test.steps[i];
            *match phase {
                "up" => &mut step.up,
                "down" => &mut step.down,
                _ => &mut step.again,
            } = check;
        };
        // What it depends on, applied first and left applied.
        for dependency in &manifest.depends_on {
            let up = self
                .up(UpOptions {
                    plugin: Some(dependency.name.clone()),
                    ..Default::default()
                })
                .await;
            if let Some(e) = failure(&up) {
                test.error = Some(format!("its dependency {} failed: {e}", dependency.name));
                return Ok(test);
            }
        }
        let up_to = |version: &semver::Version| UpOptions {
            plugin: Some(plugin.to_string()),
            to_version: Some(version.clone()),
            // The author tests the plugin: a step it marks destructive runs; one it does
            // not mark fails, as it would for an operator.
            allow_destructive: true,
            ..Default::default()
        };
        // Up, one step at a time. The rows are described before and after every step: which
        // steps check data is known once they ran (the marker may sit in a code step's SQL).
        // The rows before step i are compared by step i's down and step i - 1's again: once
        // step i ran, they are let go if neither checks data.
        let steps = manifest.migrations.len();
        let compares_rows = |test: &PluginTest, i: usize| {
            (i < steps && test.steps[i].checks_data) || (i > 0 && test.steps[i - 1].checks_data)
        };
        let mut snapshots = vec![snapshot(true, 0)?];
        let mut held = snapshots[0].data.bytes();
        for (i, step) in manifest.migrations.iter().enumerate() {
            let up = self.up(up_to(&step.version)).await;
            if let Some(e) = failure(&up) {
                report(&mut test, i, "up", Check::Failed { error: e });
                return Ok(finish(test, options));
            }
            if let Ok(ran) = &up {
                test.steps[i].changes = ran
                    .steps
                    .iter()
                    .flat_map(|s| s.schema_changes.iter().cloned())
                    .collect();
            }
            // The step's own ledger row, the plugin's newest: not its whole history.
            test.steps[i].checks_data = self
                .ledger(&crate::LedgerQuery {
                    plugin: Some(plugin.to_string()),
                    newest: Some(1),
                    ..Default::default()
                })
                .await?
                .iter()
                .find(|e| e.version == test.steps[i].version)
                .is_some_and(|e| e.statements.iter().any(|s| s.contains(DATA_MARKER)));
            report(&mut test, i, "up", Check::Passed);
            if !compares_rows(&test, i) {
                held -= snapshots[i].data.bytes();
                snapshots[i].data = Rows::Dropped;
            }
            let after = snapshot(true, held)?;
            held += after.data.bytes();
            snapshots.push(after);
        }
        if !compares_rows(&test, steps) {
            held -= snapshots[steps].data.bytes();
            snapshots[steps].data = Rows::Dropped;
        }
        // A step's check: the schema in `expected` against the database's now, and the rows
        // too for a step that asks.
        let check = |expected: &Snapshot, data: bool| -> Result<Check> {
            let now = snapshot(data, held)?;
            let mut found = differences(&expected.schema, &now.schema);
            if data {
                match (&expected.data, &now.data) {
                    (Rows::Held(expected), Rows::Held(now)) => {
                        found.extend(differences(expected, now))
                    }
                    (Rows::Failed(e), _) | (_, Rows::Failed(e)) => {
                        return Ok(Check::Failed { error: e.clone() });
                    }
                    (Rows::Dropped, _) | (_, Rows::Dropped) => {
                        unreachable!("the rows of a step that checks data are kept")
                    }
                }
            }
            Ok(judged(found))
        };
        // Down, one step at a time, newest first.
        let mut lowest = 0;
        for (i, step) in manifest.migrations.iter().enumerate().rev() {
            if !step.reversible {
                report(&mut test, i, "down", Check::Irreversible);
                lowest = i + 1;
                break;
            }
            let down = self
                .down(DownOptions {
                    plugin: plugin.to_string(),
                    steps: Some(1),
                    ..Default::default()
                })
                .await;
            if let Some(e) = failure(&down) {
                report(&mut test, i, "down", Check::Failed { error: e });
                return Ok(finish(test, options));
            }
            let checked = check(&snapshots[i], test.steps[i].checks_data)?;
            report(&mut test, i, "down", checked);
        }
        // Every rolled-back step again, one by one: what the first pass gave.
        for (i, step) in manifest.migrations.iter().enumerate().skip(lowest) {
            let again = self.up(up_to(&step.version)).await;
            if let Some(e) = failure(&again) {
                report(&mut test, i, "again", Check::Failed { error: e });
                return Ok(finish(test, options));
            }
            let checked = check(&snapshots[i + 1], test.steps[i].checks_data)?;
            report(&mut test, i, "again", checked);
        }
        Ok(finish(test, options))
    }
}

/// A comparison's result as a check.
fn judged(differences: Vec<String>) -> Check {
    if differences.is_empty() {
        Check::Passed
    } else {
        Check::Differs { differences }
    }
}

fn finish(mut test: PluginTest, options: &TestOptions) -> PluginTest {
    test.passed = test.error.is_none()
        && !test
            .steps
            .iter()
            .any(|s| s.up.failed(options) || s.down.failed(options) || s.again.failed(options));
    test
}
