//! What the ledger records, shared by the planner (which reads the recorded state) and the
//! store (which writes and reads it): a leaf, depending on neither.

use semver::Version;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A migration step recorded as applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedStep {
    /// The step's version.
    pub version: Version,
    /// The checksum the plugin declared when the step was applied.
    pub checksum: String,
    /// SHA-256 of the component that applied it.
    pub component_sha256: String,
    /// The version of the plugin that applied it.
    pub plugin_version: Version,
    /// When, in milliseconds since the Unix epoch.
    pub applied_at_ms: i64,
}

/// What the database records: applied steps per plugin.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Applied steps by plugin name, then by version.
    pub applied: BTreeMap<String, BTreeMap<Version, AppliedStep>>,
}

impl State {
    /// The highest applied version of a plugin's steps.
    pub fn current(&self, plugin: &str) -> Option<&Version> {
        self.applied.get(plugin).and_then(|s| s.keys().next_back())
    }

    /// The plugin version that applied the newest step: what is "installed".
    pub fn installed_version(&self, plugin: &str) -> Option<&Version> {
        self.applied
            .get(plugin)
            .and_then(|s| s.values().map(|a| &a.plugin_version).max())
    }
}

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Applying a step.
    Up,
    /// Undoing a step.
    Down,
}

impl Direction {
    /// `"up"` or `"down"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The step committed.
    Succeeded,
    /// The step was rolled back.
    Failed,
}

impl Outcome {
    /// `"succeeded"` or `"failed"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        }
    }
}

/// One row of the append-only ledger: one attempt at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Position in the ledger (assigned by the database; 0 before it is written).
    pub id: i64,
    /// The plugin.
    pub plugin: String,
    /// The plugin's version at the time.
    pub plugin_version: String,
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
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// How long it took, in microseconds.
    pub duration_us: i64,
    /// The step's checksum.
    pub checksum: String,
    /// SHA-256 of the component that ran it.
    pub component_sha256: String,
    /// The version of wasmig that ran it.
    pub wasmig_version: String,
    /// The statements the plugin executed, in order (the audit trail).
    pub statements: Vec<String>,
    /// A decision the operator made for this run, such as applying over drift.
    pub note: Option<String>,
    /// Who ran it: the operating system's user and machine of the wasmig that ran it
    /// (`deploy@web-1`), or the name a server embedding wasmig gave
    /// ([`crate::HostBuilder::operator`]). Empty on rows of a wasmig that did not record it.
    #[serde(default)]
    pub applied_by: String,
}

/// Which ledger rows to read ([`crate::Host::ledger`]); the default is every row.
#[derive(Debug, Clone, Default)]
pub struct LedgerQuery {
    /// Only this plugin's rows.
    pub plugin: Option<String>,
    /// Only rows older than this id (the next page back).
    pub before: Option<i64>,
    /// Only the newest this many (of those that match).
    pub newest: Option<usize>,
    /// Only each plugin's newest row.
    pub last_per_plugin: bool,
    /// Leave the statements out (they can be large).
    pub without_statements: bool,
}

impl LedgerQuery {
    /// The SQL condition and ordering of the query, on a ledger table named `table`, with
    /// its parameters as `$1` (plugin) and `$2` (before), typed for PostgreSQL when `pg`;
    /// the rows come newest first.
    pub(crate) fn clause(&self, table: &str, pg: bool) -> String {
        let (text, bigint) = if pg { ("::text", "::bigint") } else { ("", "") };
        let mut sql = format!(
            " WHERE ($1{text} IS NULL OR plugin = $1{text}) AND ($2{bigint} IS NULL OR id < $2{bigint})"
        );
        if self.last_per_plugin {
            sql.push_str(&format!(
                " AND id IN (SELECT max(id) FROM {table} GROUP BY plugin)"
            ));
        }
        sql.push_str(" ORDER BY id DESC");
        if let Some(n) = self.newest {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        sql
    }
}
