//! `wasmig test`: a plugin's steps applied one by one, each rolled back, and applied again,
//! with the schema compared after each, on a scratch database.
//!
//! After every up step the host describes the plugin's schema (objects and columns, as the
//! database reports them: [`crate::store::Backend::describe_schema`]). Rolling back step by
//! step, the schema after each down step must equal the one before its up step; applying
//! everything again must give the schema of the first pass. A plugin's crate can run the
//! same check from its own tests with [`Host::test`].

use crate::{DownOptions, Error, Host, Result, UpOptions};
use serde::Serialize;
use std::collections::BTreeSet;

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
    /// How the schema after applying every step again differs from the first pass's (empty:
    /// no difference).
    pub reapplied: Vec<String>,
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
    /// Its down step restored the schema from before the up step.
    pub down: Check,
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
    /// It ran, and the schema differs from what it should be: each line what is missing
    /// (`-`) or left over (`+`).
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

/// `expected` against `actual`: lines missing (`-`) and left over (`+`).
fn differences(expected: &[String], actual: &[String]) -> Vec<String> {
    let (e, a): (BTreeSet<&String>, BTreeSet<&String>) =
        (expected.iter().collect(), actual.iter().collect());
    let mut out: Vec<String> = e.difference(&a).map(|l| format!("- {l}")).collect();
    out.extend(a.difference(&e).map(|l| format!("+ {l}")));
    out
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
        let mut tested = Vec::new();
        for plugin in plugins {
            tested.push(self.test_one(plugin, options).await?);
        }
        Ok(TestReport {
            passed: tested.iter().all(|p| p.passed),
            plugins: tested,
        })
    }

    async fn test_one(&self, plugin: &str, options: &TestOptions) -> Result<PluginTest> {
        let status = self.status().await?;
        let file = status
            .iter()
            .find(|s| s.name.as_deref() == Some(plugin))
            .and_then(|s| s.file.clone())
            .ok_or_else(|| Error::UnknownPlugin(plugin.to_string()))?;
        let manifest = self.inspect(&file).await?.manifest;
        let describe = || self.open_read()?.describe_schema(plugin);
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
                    changes: Vec::new(),
                })
                .collect(),
            reapplied: Vec::new(),
            error: None,
            passed: false,
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
        // Up, one step at a time.
        let mut schemas = vec![describe()?];
        for (i, step) in manifest.migrations.iter().enumerate() {
            let up = self
                .up(UpOptions {
                    plugin: Some(plugin.to_string()),
                    to_version: Some(step.version.clone()),
                    // The author tests the plugin: a step it marks destructive runs; one
                    // it does not mark fails, as it would for an operator.
                    allow_destructive: true,
                    ..Default::default()
                })
                .await;
            if let Some(e) = failure(&up) {
                test.steps[i].up = Check::Failed { error: e };
                return Ok(finish(test, options));
            }
            if let Ok(report) = &up {
                test.steps[i].changes = report
                    .steps
                    .iter()
                    .flat_map(|s| s.schema_changes.iter().cloned())
                    .collect();
            }
            test.steps[i].up = Check::Passed;
            schemas.push(describe()?);
        }
        // Down, one step at a time, newest first.
        for (i, step) in manifest.migrations.iter().enumerate().rev() {
            if !step.reversible {
                test.steps[i].down = Check::Irreversible;
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
                test.steps[i].down = Check::Failed { error: e };
                return Ok(finish(test, options));
            }
            let found = differences(&schemas[i], &describe()?);
            test.steps[i].down = if found.is_empty() {
                Check::Passed
            } else {
                Check::Differs { differences: found }
            };
        }
        // Everything again: the same schema as the first pass.
        let again = self
            .up(UpOptions {
                plugin: Some(plugin.to_string()),
                allow_destructive: true,
                ..Default::default()
            })
            .await;
        match failure(&again) {
            Some(e) => test.error = Some(format!("applying every step again failed: {e}")),
            None => {
                test.reapplied = differences(
                    schemas.last().expect("the schema before the first step"),
                    &describe()?,
                )
            }
        }
        Ok(finish(test, options))
    }
}

fn finish(mut test: PluginTest, options: &TestOptions) -> PluginTest {
    test.passed = test.error.is_none()
        && test.reapplied.is_empty()
        && !test
            .steps
            .iter()
            .any(|s| s.up.failed(options) || s.down.failed(options));
    test
}
