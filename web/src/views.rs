//! What the pages and the API show, gathered from the host's commands.

use crate::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};
use wasmig::{
    Direction, Host, LedgerEntry, LedgerQuery, Outcome, PluginAccess, PluginStatus, RunReport,
};

/// A ledger time as RFC 3339, UTC, to the second.
fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.clamp(0, LAST_TIME_MS) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The latest time a ledger row can hold and still be shown as a date (the year 9999).
const LAST_TIME_MS: i64 = 253_402_300_799_000;

/// How many of a plugin's attempts its page shows, newest first.
pub(crate) const HISTORY_ROWS: usize = 200;

/// How many attempts the history page shows, and `/api/history` answers by default.
pub(crate) const HISTORY_PAGE: usize = 500;

/// How much of a step's SQL a page shows: each statement up to 16 KiB, 64 KiB in all (the
/// JSON API has the rest).
const STATEMENT_BYTES: usize = 16 << 10;
const STATEMENTS_BYTES: usize = 64 << 10;

/// A duration in microseconds as people read it.
fn duration(us: i64) -> String {
    match us {
        us if us < 1_000 => format!("{us} µs"),
        us if us < 1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        us => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// The overview: one row per plugin, totals on top.
#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    pub totals: Totals,
    pub plugins: Vec<Row>,
    /// The ledger's newest row when this was read.
    pub head: i64,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Totals {
    pub plugins: usize,
    pub applied: usize,
    pub pending: usize,
    pub problems: usize,
    pub failing: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct Row {
    #[serde(flatten)]
    pub status: PluginStatus,
    pub file_name: Option<String>,
    pub last: Option<Entry>,
    /// Everything wrong with the plugin: its status's problem, what `validate` finds
    /// (drift, a downgrade, a gap), reads it asks for that the policy does not grant.
    pub problems: Vec<String>,
}

/// Each plugin's problems beyond its status's: `validate`'s findings and refused reads.
async fn problems_by_plugin(host: &Host) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for finding in host.validate().await? {
        // Missing and unusable files are the status's own problems already.
        if matches!(
            finding.kind,
            wasmig::FindingKind::MissingFile | wasmig::FindingKind::InvalidFile
        ) {
            continue;
        }
        problems
            .entry(finding.plugin.clone())
            .or_default()
            .push(finding.message);
    }
    // `access` refuses to answer while a file is unusable; the status says which.
    if let Ok((rows, _)) = host.access().await {
        for access in rows {
            if !access.reads_missing.is_empty() {
                problems
                    .entry(access.plugin.clone())
                    .or_default()
                    .push(format!(
                        "asks to read {} (not granted in the policy)",
                        access.reads_missing.join(", ")
                    ));
            }
        }
    }
    Ok(problems)
}

fn problems_of(status: &PluginStatus, more: &mut BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut problems: Vec<String> = status.problem.iter().cloned().collect();
    if let Some(name) = &status.name {
        problems.extend(more.remove(name).unwrap_or_default());
    }
    problems
}

/// A ledger row as the pages show it.
#[derive(Debug, Serialize)]
pub(crate) struct Entry {
    #[serde(flatten)]
    pub entry: LedgerEntry,
    pub at: String,
    pub took: String,
    pub succeeded: bool,
    pub up: bool,
    /// The statements as a page shows them: each cut at [`STATEMENT_BYTES`], all at
    /// [`STATEMENTS_BYTES`].
    pub shown: Vec<String>,
    /// Some of the SQL is not shown.
    pub cut: bool,
}

/// `text` cut to at most `bytes`, at a character's boundary.
fn cut_to(text: &str, bytes: usize) -> &str {
    let mut end = bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn entry(entry: LedgerEntry) -> Entry {
    let (mut shown, mut cut, mut left) = (Vec::new(), false, STATEMENTS_BYTES);
    for statement in &entry.statements {
        let part = cut_to(statement, STATEMENT_BYTES.min(left));
        cut |= part.len() < statement.len();
        if part.is_empty() {
            break;
        }
        left -= part.len();
        shown.push(part.to_string());
    }
    Entry {
        at: time(entry.started_at_ms),
        took: duration(entry.duration_us),
        succeeded: entry.outcome == Outcome::Succeeded,
        up: entry.direction == Direction::Up,
        shown,
        cut,
        entry,
    }
}

/// The newest `limit` ledger rows, newest first.
pub(crate) fn entries(rows: Vec<LedgerEntry>, limit: usize) -> Vec<Entry> {
    rows.into_iter().rev().take(limit).map(entry).collect()
}

pub(crate) async fn overview(host: &Host) -> Result<Overview, Error> {
    let head = host.ledger_head().await?;
    let status = host.status().await?;
    let mut more = problems_by_plugin(host).await?;
    let lasts = host
        .ledger(&LedgerQuery {
            last_per_plugin: true,
            without_statements: true,
            ..Default::default()
        })
        .await?;
    let mut last: BTreeMap<String, LedgerEntry> =
        lasts.into_iter().map(|e| (e.plugin.clone(), e)).collect();
    let mut totals = Totals::default();
    let plugins: Vec<Row> = status
        .into_iter()
        .map(|s| {
            let last = s.name.as_ref().and_then(|n| last.remove(n)).map(entry);
            let problems = problems_of(&s, &mut more);
            totals.plugins += 1;
            totals.applied += s.applied;
            totals.pending += s.pending;
            totals.problems += usize::from(!problems.is_empty());
            totals.failing += usize::from(last.as_ref().is_some_and(|l| !l.succeeded));
            Row {
                file_name: s
                    .file
                    .as_ref()
                    .and_then(|f| f.file_name())
                    .map(|f| f.to_string_lossy().into_owned()),
                status: s,
                last,
                problems,
            }
        })
        .collect();
    Ok(Overview {
        totals,
        plugins,
        head,
    })
}

/// One plugin's page.
#[derive(Debug, Serialize)]
pub(crate) struct PluginPage {
    pub name: String,
    pub status: Option<PluginStatus>,
    /// As on the overview.
    pub problems: Vec<String>,
    pub description: Option<String>,
    pub steps: Vec<Step>,
    /// Newest first.
    pub history: Vec<Entry>,
    pub objects: Vec<String>,
    pub access: Option<PluginAccess>,
    /// Name and version requirement.
    pub depends_on: Vec<(String, String)>,
    pub dependents: Vec<String>,
}

/// One step of a plugin, from its file and the ledger.
#[derive(Debug, Serialize)]
pub(crate) struct Step {
    pub version: String,
    pub description: String,
    /// `applied`, `pending`, `failed` (its last attempt failed) or `rolled back`.
    pub state: &'static str,
    pub checksum: String,
    pub reversible: Option<bool>,
    /// The ledger row that applied it (or its last attempt).
    pub last: Option<Entry>,
}

pub(crate) async fn plugin(host: &Host, name: &str) -> Result<PluginPage, Error> {
    let status = host
        .status()
        .await?
        .into_iter()
        .find(|s| s.name.as_deref() == Some(name));
    // Every attempt, without its SQL, for the steps' states; the newest with their SQL for
    // the timeline.
    let attempts = host
        .ledger(&LedgerQuery {
            plugin: Some(name.to_string()),
            without_statements: true,
            ..Default::default()
        })
        .await?;
    if status.is_none() && attempts.is_empty() {
        return Err(Error::NoPlugin(name.to_string()));
    }
    let history = host
        .ledger(&LedgerQuery {
            plugin: Some(name.to_string()),
            newest: Some(HISTORY_ROWS),
            ..Default::default()
        })
        .await?;
    let manifests = host.manifests().await.unwrap_or_default();
    let manifest = manifests.iter().map(|(_, m)| m).find(|m| m.name == name);
    let dependents = manifests
        .iter()
        .filter(|(_, m)| m.depends_on.iter().any(|d| d.name == name))
        .map(|(_, m)| m.name.clone())
        .collect();
    // The newest ledger row of each version.
    let mut newest: BTreeMap<String, &LedgerEntry> = BTreeMap::new();
    for e in &attempts {
        newest.insert(e.version.clone(), e);
    }
    let state = |e: Option<&&LedgerEntry>| match e {
        None => "pending",
        Some(e) if e.outcome == Outcome::Failed => "failed",
        Some(e) if e.direction == Direction::Down => "rolled back",
        Some(_) => "applied",
    };
    let mut steps: Vec<Step> = match manifest {
        Some(m) => m
            .migrations
            .iter()
            .map(|s| {
                let last = newest.remove(&s.version.to_string());
                Step {
                    version: s.version.to_string(),
                    description: s.description.clone(),
                    state: state(last.as_ref()),
                    checksum: s.checksum.clone(),
                    reversible: Some(s.reversible),
                    last: last.cloned().map(entry),
                }
            })
            .collect(),
        None => Vec::new(),
    };
    // Steps the ledger knows and the file does not (the file is gone, or changed).
    for (version, e) in newest {
        steps.push(Step {
            version,
            description: e.description.clone(),
            state: state(Some(&e)),
            checksum: e.checksum.clone(),
            reversible: None,
            last: Some(entry(e.clone())),
        });
    }
    steps.sort_by(|a, b| {
        let v = |s: &str| semver::Version::parse(s).ok();
        v(&a.version).cmp(&v(&b.version))
    });
    let access = host
        .access()
        .await
        .ok()
        .and_then(|(rows, _)| rows.into_iter().find(|a| a.plugin == name));
    let applied = status.as_ref().is_some_and(|s| s.applied > 0);
    let mut more = problems_by_plugin(host).await?;
    Ok(PluginPage {
        name: name.to_string(),
        problems: status
            .as_ref()
            .map(|s| problems_of(s, &mut more))
            .unwrap_or_default(),
        description: manifest.map(|m| m.description.clone()),
        depends_on: manifest
            .map(|m| {
                m.depends_on
                    .iter()
                    .map(|d| (d.name.clone(), d.requirement.to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        dependents,
        objects: if applied {
            host.objects(name).await?
        } else {
            Vec::new()
        },
        status,
        steps,
        history: entries(history, HISTORY_ROWS),
        access,
    })
}

/// A run's report as the pages show it.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub error: Option<String>,
    pub report: Option<RunReport>,
    pub steps: Vec<ReportStep>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReportStep {
    #[serde(flatten)]
    pub step: wasmig::StepReport,
    pub took: String,
    pub failed: bool,
}

pub(crate) fn report(report: RunReport) -> Report {
    Report {
        error: None,
        steps: report
            .steps
            .iter()
            .map(|s| ReportStep {
                took: duration(s.duration_us),
                failed: s.outcome == Outcome::Failed,
                step: s.clone(),
            })
            .collect(),
        report: Some(report),
    }
}

pub(crate) fn report_error(error: String) -> Report {
    Report {
        error: Some(error),
        report: None,
        steps: Vec::new(),
    }
}

/// The plan page: the steps `up` would run, per plugin, and the plugins' problems.
#[derive(Debug, Serialize)]
pub(crate) struct Plan {
    pub plugins: Vec<PlanPlugin>,
    pub pending: usize,
    /// Problems that keep `up` from running, one line each.
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PlanPlugin {
    pub name: String,
    pub applied_version: Option<String>,
    pub file_version: String,
    /// Version and description of each pending step, oldest first.
    pub steps: Vec<(String, String)>,
}

pub(crate) async fn plan(host: &Host) -> Result<Plan, Error> {
    let state = host.applied().await?;
    let mut plugins = Vec::new();
    for (_, m) in host.manifests().await? {
        let applied = state.applied.get(&m.name);
        let steps: Vec<(String, String)> = m
            .migrations
            .iter()
            .filter(|s| !applied.is_some_and(|a| a.contains_key(&s.version)))
            .map(|s| (s.version.to_string(), s.description.clone()))
            .collect();
        if !steps.is_empty() {
            plugins.push(PlanPlugin {
                applied_version: state.current(&m.name).map(|v| v.to_string()),
                file_version: m.version.to_string(),
                name: m.name.clone(),
                steps,
            });
        }
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    let mut problems: Vec<String> = Vec::new();
    for s in host.status().await? {
        if let Some(p) = &s.problem {
            let who = s
                .name
                .clone()
                .or_else(|| s.file.map(|f| f.display().to_string()))
                .unwrap_or_default();
            problems.push(format!("{who}: {p}"));
        }
    }
    for (plugin, found) in problems_by_plugin(host).await? {
        problems.extend(found.into_iter().map(|p| format!("{plugin}: {p}")));
    }
    Ok(Plan {
        pending: plugins.iter().map(|p| p.steps.len()).sum(),
        plugins,
        problems,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn any_time_a_ledger_row_holds_is_shown() {
        assert_eq!(super::time(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::time(-5), "1970-01-01T00:00:00Z");
        assert_eq!(super::time(i64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn a_statement_is_cut_at_a_character() {
        assert_eq!(super::cut_to("héllo", 2), "h");
        assert_eq!(super::cut_to("héllo", 3), "hé");
        assert_eq!(super::cut_to("abc", 10), "abc");
    }
}
