//! What `validate` reports: everything wrong between the plugin files and the recorded
//! state (drift, downgrades, gaps, missing files), and the per-plugin check `up` shares.

use super::*;

/// Something `validate` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The plugin concerned.
    pub plugin: String,
    /// What kind of problem.
    pub kind: FindingKind,
    /// A sentence for people.
    pub message: String,
}

/// The kinds of problem `validate` finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// An applied step's checksum differs from the file's.
    Drift,
    /// The plugin file is older than what is applied.
    Downgrade,
    /// Steps are applied but the plugin's file is gone.
    MissingFile,
    /// A step of the file is pending below an applied one.
    Gap,
    /// The plugin file cannot be used at all.
    InvalidFile,
}

/// Drift and downgrade of one plugin file against what is applied.
pub(super) fn check_applied(
    c: &Candidate,
    applied: Option<&BTreeMap<Version, AppliedStep>>,
) -> Vec<Finding> {
    let m = &c.manifest;
    let mut findings = Vec::new();
    let Some(applied) = applied else {
        return findings;
    };
    let finding = |kind, message| Finding {
        plugin: m.name.clone(),
        kind,
        message,
    };
    let installed = applied.values().map(|a| &a.plugin_version).max();
    let unknown: Vec<String> = applied
        .keys()
        .filter(|v| !m.migrations.iter().any(|s| s.version == **v))
        .map(|v| v.to_string())
        .collect();
    if let Some(installed) = installed.filter(|i| **i > m.version) {
        findings.push(finding(
            FindingKind::Downgrade,
            format!(
                "plugin {} file {} is version {}, older than the applied version {installed}",
                m.name,
                c.file.display(),
                m.version
            ),
        ));
    } else if !unknown.is_empty() {
        findings.push(finding(
            FindingKind::Downgrade,
            format!(
                "plugin {} file {} does not know the applied migration(s) {}",
                m.name,
                c.file.display(),
                unknown.join(", ")
            ),
        ));
    }
    for step in &m.migrations {
        if let Some(a) = applied.get(&step.version)
            && a.checksum != step.checksum
        {
            findings.push(finding(
                FindingKind::Drift,
                format!(
                    "plugin {} migration {} changed since it was applied: checksum {} was \
                         applied, the file ({}) has {}",
                    m.name,
                    step.version,
                    a.checksum,
                    c.file.display(),
                    step.checksum
                ),
            ));
        }
    }
    findings
}

/// Everything wrong between the plugin files and the recorded state.
pub fn validate(candidates: &[Candidate], state: &State) -> Vec<Finding> {
    let mut findings = Vec::new();
    for c in candidates {
        let applied = state.applied.get(&c.manifest.name);
        findings.extend(check_applied(c, applied));
        let Some(high) = applied.and_then(|a| a.keys().next_back()) else {
            continue;
        };
        for step in &c.manifest.migrations {
            if step.version < *high && !applied.is_some_and(|a| a.contains_key(&step.version)) {
                findings.push(Finding {
                    plugin: c.manifest.name.clone(),
                    kind: FindingKind::Gap,
                    message: format!(
                        "plugin {} migration {} is pending below the applied migration {high}; \
                         it would never run",
                        c.manifest.name, step.version
                    ),
                });
            }
        }
    }
    for (name, applied) in &state.applied {
        if !applied.is_empty() && !candidates.iter().any(|c| c.manifest.name == *name) {
            findings.push(Finding {
                plugin: name.clone(),
                kind: FindingKind::MissingFile,
                message: format!(
                    "plugin {name} has {} applied migration(s) but no file in the plugins \
                     directory (rollback still works from the stored component)",
                    applied.len()
                ),
            });
        }
    }
    findings
}
