//! The planner: manifests + recorded state → an ordered list of steps, or every reason why
//! not. Pure: no database, no WebAssembly. Everything it refuses, it refuses before anything
//! runs.

mod findings;
mod problem;

use findings::check_applied;
pub use findings::{Finding, FindingKind, validate};
pub use problem::Problem;

use crate::ledger::Direction;
pub use crate::ledger::{AppliedStep, State};
use crate::manifest::Manifest;
use crate::policy::Policy;
use semver::Version;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A plugin found in the plugins directory, with its validated manifest.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The file it was loaded from.
    pub file: PathBuf,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// What the plugin declares.
    pub manifest: Manifest,
}

/// What `up` should do.
#[derive(Debug, Clone, Default)]
pub struct UpRequest {
    /// Only this plugin (and what it depends on), optionally only up to this step version.
    pub target: Option<(String, Option<Version>)>,
    /// Apply even though an applied step's checksum changed.
    pub allow_drift: bool,
    /// Apply even though a plugin file is older than what is applied.
    pub allow_downgrade: bool,
}

/// What `down` should undo.
#[derive(Debug, Clone, Default)]
pub struct DownRequest {
    /// The plugin.
    pub plugin: String,
    /// Undo every applied step above this version (`None` with `steps` `None`: all of them).
    pub to: Option<Version>,
    /// Undo only the newest this many applied steps.
    pub steps: Option<usize>,
    /// Roll back first, entirely, the applied plugins that would lose a dependency.
    pub cascade: bool,
}

/// One step to run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedStep {
    /// The plugin.
    pub plugin: String,
    /// The plugin's version.
    pub plugin_version: Version,
    /// The plugin's file; `None` when the step runs from the component stored in the database.
    pub file: Option<PathBuf>,
    /// SHA-256 of the component that runs the step.
    pub component_sha256: String,
    /// The step's version.
    pub version: Version,
    /// The step's description.
    pub description: String,
    /// The step's checksum.
    pub checksum: String,
    /// Up or down.
    pub direction: Direction,
}

impl PlannedStep {
    /// Step `index` of `manifest` (of the file `file`, SHA-256 `sha256`), up.
    pub(crate) fn up(file: &Path, sha256: &str, manifest: &Manifest, index: usize) -> Self {
        let step = &manifest.migrations[index];
        PlannedStep {
            plugin: manifest.name.clone(),
            plugin_version: manifest.version.clone(),
            file: Some(file.to_path_buf()),
            component_sha256: sha256.to_string(),
            version: step.version.clone(),
            description: step.description.clone(),
            checksum: step.checksum.clone(),
            direction: Direction::Up,
        }
    }
}

/// A plan for `up` by plugin; see [`plan_up_pending`].
#[derive(Debug, Clone, Default)]
pub(crate) struct PendingPlan {
    /// Plugins in the order they are migrated.
    pub order: Vec<String>,
    /// The plugins with pending steps, in that order.
    pub plugins: Vec<PendingPlugin>,
    /// Problems the operator chose to apply over (drift, downgrade), for the ledger.
    pub overrides: Vec<String>,
}

/// One plugin's pending steps.
#[derive(Debug, Clone)]
pub(crate) struct PendingPlugin {
    /// SHA-256 of the plugin's file: the key of its candidate.
    pub sha256: String,
    /// Positions of the pending steps in the plugin's manifest, in the order they run.
    pub migrations: Vec<usize>,
}

/// An ordered plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Plugins in the order they are migrated.
    pub order: Vec<String>,
    /// The steps, in the order they run.
    pub steps: Vec<PlannedStep>,
    /// Problems the operator chose to apply over (drift, downgrade), for the ledger.
    pub overrides: Vec<String>,
}

/// Plans `up`: orders the plugins so that dependencies come first (then by name), checks
/// every dependency and the recorded state, and lists the pending steps in order.
pub fn plan_up(
    candidates: &[Candidate],
    state: &State,
    policy: &Policy,
    request: &UpRequest,
) -> Result<Plan, Vec<Problem>> {
    let pending = plan_up_pending(candidates, state, policy, request)?;
    let by_sha: BTreeMap<&str, &Candidate> =
        candidates.iter().map(|c| (c.sha256.as_str(), c)).collect();
    let steps = pending
        .plugins
        .iter()
        .flat_map(|p| {
            let c = by_sha[p.sha256.as_str()];
            p.migrations
                .iter()
                .map(|&i| PlannedStep::up(&c.file, &c.sha256, &c.manifest, i))
        })
        .collect();
    Ok(Plan {
        order: pending.order,
        steps,
        overrides: pending.overrides,
    })
}

/// [`plan_up`]'s plan as a run takes it: per plugin, the positions of its pending steps in
/// its manifest, a few bytes per plugin instead of a [`PlannedStep`] per step. Refuses what
/// [`plan_up`] refuses.
pub(crate) fn plan_up_pending(
    candidates: &[Candidate],
    state: &State,
    policy: &Policy,
    request: &UpRequest,
) -> Result<PendingPlan, Vec<Problem>> {
    let by_name: BTreeMap<&str, &Candidate> = candidates
        .iter()
        .map(|c| (c.manifest.name.as_str(), c))
        .collect();
    let mut problems = Vec::new();

    // Which plugins take part: all, or the target and everything it depends on.
    let scope: BTreeSet<&str> = match &request.target {
        None => by_name.keys().copied().collect(),
        Some((name, _)) => {
            if !by_name.contains_key(name.as_str()) {
                return Err(vec![Problem::UnknownPlugin {
                    plugin: name.clone(),
                }]);
            }
            let mut scope = BTreeSet::new();
            let mut todo = vec![name.as_str()];
            while let Some(n) = todo.pop() {
                if scope.insert(n)
                    && let Some(c) = by_name.get(n)
                {
                    todo.extend(c.manifest.depends_on.iter().map(|d| d.name.as_str()));
                }
            }
            scope
        }
    };

    for name in &scope {
        let Some(c) = by_name.get(name) else { continue };
        let ungranted = ungranted_reads(&c.manifest, policy);
        if !ungranted.is_empty() {
            problems.push(Problem::RefusedGrant {
                plugin: name.to_string(),
                file: c.file.clone(),
                reads: ungranted.iter().map(|r| r.to_string()).collect(),
            });
        }
        for dep in &c.manifest.depends_on {
            match by_name.get(dep.name.as_str()) {
                None => problems.push(Problem::MissingDependency {
                    plugin: c.manifest.name.clone(),
                    file: c.file.clone(),
                    dependency: dep.name.clone(),
                    requirement: dep.requirement.to_string(),
                }),
                Some(d) if !dep.requirement.matches(&d.manifest.version) => {
                    problems.push(Problem::UnsatisfiedRequirement {
                        plugin: c.manifest.name.clone(),
                        file: c.file.clone(),
                        dependency: dep.name.clone(),
                        requirement: dep.requirement.to_string(),
                        found: d.manifest.version.to_string(),
                        found_file: d.file.clone(),
                    })
                }
                Some(_) => {}
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let order = topological_order(&scope, &by_name)?;

    let mut plugins = Vec::new();
    let mut overrides = Vec::new();
    for name in &order {
        let c = by_name[name.as_str()];
        let m = &c.manifest;
        let applied = state.applied.get(name);
        for f in check_applied(c, applied) {
            let (allowed, what) = match f.kind {
                FindingKind::Drift => (request.allow_drift, "drift"),
                _ => (request.allow_downgrade, "a downgrade"),
            };
            if allowed {
                overrides.push(format!(
                    "applied over {what}, as the operator allowed: {}",
                    f.message
                ));
            } else if f.kind == FindingKind::Drift {
                problems.push(Problem::Drift {
                    plugin: name.clone(),
                    detail: f.message,
                });
            } else {
                problems.push(Problem::Downgrade {
                    plugin: name.clone(),
                    detail: f.message,
                });
            }
        }
        let limit = match &request.target {
            Some((target, Some(v))) if target == name => Some(v),
            _ => None,
        };
        let highest_applied = applied.and_then(|a| a.keys().next_back());
        let mut pending = Vec::new();
        for (index, step) in m.migrations.iter().enumerate() {
            if applied.is_some_and(|a| a.contains_key(&step.version)) {
                continue;
            }
            if limit.is_some_and(|l| step.version > *l) {
                break;
            }
            if let Some(high) = highest_applied.filter(|h| step.version < **h) {
                problems.push(Problem::Gap {
                    plugin: name.clone(),
                    version: step.version.to_string(),
                    applied: high.to_string(),
                });
                continue;
            }
            pending.push(index);
        }
        if !pending.is_empty() {
            plugins.push(PendingPlugin {
                sha256: c.sha256.clone(),
                migrations: pending,
            });
        }
    }
    if problems.is_empty() {
        Ok(PendingPlan {
            order,
            plugins,
            overrides,
        })
    } else {
        Err(problems)
    }
}

/// Plans `down`: the plugin's applied steps to undo, newest first, each run by the component
/// that applied it (stored in the database). Refuses, before anything runs, a step without
/// `down`, and a rollback that breaks an applied dependent (unless `cascade` rolls the
/// dependents back first, entirely).
pub fn plan_down(
    state: &State,
    manifests: &BTreeMap<String, Manifest>,
    request: &DownRequest,
) -> Result<Plan, Vec<Problem>> {
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    let mut visiting = BTreeSet::new();
    plan_down_into(
        state,
        manifests,
        request,
        &mut visiting,
        &mut plan,
        &mut problems,
    );
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}

/// The manifest of the component that applied a plugin's newest step: what that plugin,
/// as installed, declares.
fn installed_manifest<'m>(
    state: &State,
    manifests: &'m BTreeMap<String, Manifest>,
    plugin: &str,
) -> Option<&'m Manifest> {
    let newest = state.applied.get(plugin)?.values().next_back()?;
    manifests.get(&newest.component_sha256)
}

fn plan_down_into(
    state: &State,
    manifests: &BTreeMap<String, Manifest>,
    request: &DownRequest,
    visiting: &mut BTreeSet<String>,
    plan: &mut Plan,
    problems: &mut Vec<Problem>,
) {
    let name = &request.plugin;
    if !visiting.insert(name.clone()) || plan.order.contains(name) {
        return;
    }
    let Some(applied) = state.applied.get(name).filter(|a| !a.is_empty()) else {
        problems.push(Problem::NothingToRollBack {
            plugin: name.clone(),
            to: None,
        });
        return;
    };
    let mut undo: Vec<&AppliedStep> = applied.values().rev().collect();
    if let Some(to) = &request.to {
        undo.retain(|a| a.version > *to);
    }
    if let Some(n) = request.steps {
        undo.truncate(n);
    }
    if undo.is_empty() {
        problems.push(Problem::NothingToRollBack {
            plugin: name.clone(),
            to: request.to.as_ref().map(|v| v.to_string()),
        });
        return;
    }
    // After the rollback, the plugin's version for dependency checks is its newest
    // remaining applied step.
    let remaining: Option<&Version> = applied
        .keys()
        .rev()
        .find(|v| !undo.iter().any(|u| u.version == **v));

    for (other, other_applied) in &state.applied {
        if other == name || other_applied.is_empty() {
            continue;
        }
        let Some(m) = installed_manifest(state, manifests, other) else {
            continue;
        };
        for dep in m.depends_on.iter().filter(|d| d.name == *name) {
            if remaining.is_some_and(|v| dep.requirement.matches(v)) {
                continue;
            }
            let after = remaining.map_or("nothing".to_string(), |v| v.to_string());
            if request.cascade {
                let cascade = DownRequest {
                    plugin: other.clone(),
                    to: None,
                    steps: None,
                    cascade: true,
                };
                plan_down_into(state, manifests, &cascade, visiting, plan, problems);
            } else {
                problems.push(Problem::DependentWouldBreak {
                    plugin: name.clone(),
                    dependent: other.clone(),
                    requirement: dep.requirement.to_string(),
                    after,
                });
            }
        }
    }

    for a in undo {
        let Some(m) = manifests.get(&a.component_sha256) else {
            problems.push(Problem::ComponentNotStored {
                plugin: name.clone(),
                version: a.version.to_string(),
                component_sha256: a.component_sha256.clone(),
            });
            continue;
        };
        match m.migrations.iter().find(|s| s.version == a.version) {
            Some(step) if step.reversible => plan.steps.push(PlannedStep {
                plugin: name.clone(),
                plugin_version: m.version.clone(),
                file: None,
                component_sha256: a.component_sha256.clone(),
                version: a.version.clone(),
                description: step.description.clone(),
                checksum: a.checksum.clone(),
                direction: Direction::Down,
            }),
            Some(_) => problems.push(Problem::Irreversible {
                plugin: name.clone(),
                version: a.version.to_string(),
            }),
            None => problems.push(Problem::StepNotDeclared {
                plugin: name.clone(),
                version: a.version.to_string(),
            }),
        }
    }
    plan.order.push(name.clone());
}

/// The reads a plugin asks for that the policy does not grant.
pub fn ungranted_reads<'m>(manifest: &'m Manifest, policy: &Policy) -> Vec<&'m str> {
    let granted = policy.granted_reads(&manifest.name);
    manifest
        .reads
        .iter()
        .filter(|r| !granted.contains(r))
        .map(String::as_str)
        .collect()
}

/// Kahn's algorithm; among plugins that are ready at the same time, the smallest name first,
/// so the order never depends on file names or directory listing order.
fn topological_order(
    scope: &BTreeSet<&str>,
    by_name: &BTreeMap<&str, &Candidate>,
) -> Result<Vec<String>, Vec<Problem>> {
    let mut waiting_on: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for name in scope {
        let deps = &by_name[name].manifest.depends_on;
        waiting_on.insert(name, deps.len());
        for d in deps {
            dependents.entry(d.name.as_str()).or_default().push(name);
        }
    }
    let mut ready: BTreeSet<&str> = waiting_on
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(name, _)| *name)
        .collect();
    let mut order = Vec::new();
    while let Some(name) = ready.pop_first() {
        order.push(name.to_string());
        for dependent in dependents.get(name).into_iter().flatten() {
            let n = waiting_on
                .get_mut(dependent)
                .expect("dependent is in scope");
            *n -= 1;
            if *n == 0 {
                ready.insert(dependent);
            }
        }
    }
    if order.len() < scope.len() {
        let stuck: Vec<&str> = waiting_on
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(name, _)| *name)
            .collect();
        return Err(vec![Problem::Cycle {
            plugins: stuck.iter().map(|s| s.to_string()).collect(),
        }]);
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Dependency, MigrationInfo};
    use semver::VersionReq;

    fn plugin(name: &str, version: &str, deps: &[(&str, &str)], steps: &[&str]) -> Candidate {
        Candidate {
            // File names sort the other way from plugin names, on purpose.
            file: PathBuf::from(format!("plugins/{}-{name}.wasm", 100 - name.len())),
            sha256: format!("sha-{name}"),
            manifest: Manifest {
                name: name.into(),
                version: Version::parse(version).unwrap(),
                description: String::new(),
                depends_on: deps
                    .iter()
                    .map(|(n, r)| Dependency {
                        name: n.to_string(),
                        requirement: VersionReq::parse(r).unwrap(),
                    })
                    .collect(),
                reads: vec![],
                migrations: steps
                    .iter()
                    .map(|v| MigrationInfo {
                        version: Version::parse(v).unwrap(),
                        description: format!("step {v}"),
                        reversible: true,
                        checksum: format!("sum-{name}-{v}"),
                    })
                    .collect(),
            },
        }
    }

    fn applied(state: &mut State, name: &str, v: &str) {
        let version = Version::parse(v).unwrap();
        state.applied.entry(name.into()).or_default().insert(
            version.clone(),
            AppliedStep {
                version,
                checksum: format!("sum-{name}-{v}"),
                component_sha256: format!("sha-{name}"),
                plugin_version: Version::new(0, 1, 0),
                applied_at_ms: 0,
            },
        );
    }

    /// Plans `up` of everything with no recorded state and the default policy.
    fn plan_fresh(c: &[Candidate]) -> Result<Plan, Vec<Problem>> {
        plan_up(
            c,
            &State::default(),
            &Policy::default(),
            &UpRequest::default(),
        )
    }

    fn steps(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| format!("{}@{}", s.plugin, s.version))
            .collect()
    }

    #[test]
    fn dependencies_first_then_name() {
        let c = vec![
            plugin("zeta", "1.0.0", &[], &["1.0.0"]),
            plugin(
                "notes",
                "0.2.0",
                &[("accounts", "^0.2")],
                &["0.1.0", "0.2.0"],
            ),
            plugin("accounts", "0.2.0", &[], &["0.1.0", "0.2.0"]),
            plugin("alpha", "1.0.0", &[("zeta", "1")], &["1.0.0"]),
        ];
        let plan = plan_fresh(&c).unwrap();
        assert_eq!(plan.order, ["accounts", "notes", "zeta", "alpha"]);
        assert_eq!(
            steps(&plan),
            [
                "accounts@0.1.0",
                "accounts@0.2.0",
                "notes@0.1.0",
                "notes@0.2.0",
                "zeta@1.0.0",
                "alpha@1.0.0"
            ]
        );
    }

    #[test]
    fn applied_steps_are_skipped() {
        let c = vec![plugin("accounts", "0.2.0", &[], &["0.1.0", "0.2.0"])];
        let mut state = State::default();
        applied(&mut state, "accounts", "0.1.0");
        let plan = plan_up(&c, &state, &Policy::default(), &UpRequest::default()).unwrap();
        assert_eq!(steps(&plan), ["accounts@0.2.0"]);
        applied(&mut state, "accounts", "0.2.0");
        assert!(
            plan_up(&c, &state, &Policy::default(), &UpRequest::default())
                .unwrap()
                .steps
                .is_empty()
        );
    }

    #[test]
    fn missing_and_unsatisfied_dependencies_name_both_plugins() {
        let c = vec![plugin(
            "notes",
            "0.2.0",
            &[("accounts", "^0.2")],
            &["0.1.0"],
        )];
        let e = plan_fresh(&c).unwrap_err();
        assert!(
            matches!(&e[..], [Problem::MissingDependency { plugin, dependency, requirement, .. }]
                if plugin == "notes" && dependency == "accounts" && requirement == "^0.2"),
            "{e:?}"
        );
        assert!(e[0].to_string().contains("accounts ^0.2"), "{e:?}");

        let c = vec![
            plugin("notes", "0.2.0", &[("accounts", "^0.2")], &["0.1.0"]),
            plugin("accounts", "0.1.9", &[], &["0.1.0"]),
        ];
        let e = plan_fresh(&c).unwrap_err();
        assert!(
            matches!(&e[..], [Problem::UnsatisfiedRequirement { found, .. }] if found == "0.1.9"),
            "{e:?}"
        );
        assert!(
            e[0].to_string().contains("accounts is version 0.1.9"),
            "{e:?}"
        );
    }

    #[test]
    fn cycles_are_refused() {
        let c = vec![
            plugin("a", "1.0.0", &[("b", "1")], &["1.0.0"]),
            plugin("b", "1.0.0", &[("a", "1")], &["1.0.0"]),
            plugin("c", "1.0.0", &[], &["1.0.0"]),
        ];
        let e = plan_fresh(&c).unwrap_err();
        assert_eq!(
            e,
            [Problem::Cycle {
                plugins: vec!["a".into(), "b".into()]
            }]
        );
        assert!(
            e[0].to_string()
                .contains("a, b depend on each other in a cycle")
        );
    }

    #[test]
    fn reads_need_a_grant() {
        let mut notes = plugin("notes", "0.1.0", &[], &["0.1.0"]);
        notes.manifest.reads = vec!["accounts".into()];
        let c = vec![notes];
        let e = plan_fresh(&c).unwrap_err();
        assert!(
            matches!(&e[..], [Problem::RefusedGrant { plugin, reads, .. }]
                if plugin == "notes" && reads == &["accounts"]),
            "{e:?}"
        );
        let policy: Policy = toml::from_str("[plugins.notes]\nreads = [\"accounts\"]").unwrap();
        assert!(plan_up(&c, &State::default(), &policy, &UpRequest::default()).is_ok());
    }

    #[test]
    fn a_step_below_an_applied_one_is_a_gap() {
        let c = vec![plugin(
            "accounts",
            "0.3.0",
            &[],
            &["0.1.0", "0.1.5", "0.2.0"],
        )];
        let mut state = State::default();
        applied(&mut state, "accounts", "0.1.0");
        applied(&mut state, "accounts", "0.2.0");
        let e = plan_up(&c, &state, &Policy::default(), &UpRequest::default()).unwrap_err();
        assert_eq!(
            e,
            [Problem::Gap {
                plugin: "accounts".into(),
                version: "0.1.5".into(),
                applied: "0.2.0".into()
            }]
        );
    }

    #[test]
    fn a_target_limits_the_plugin_and_pulls_in_its_dependencies() {
        let c = vec![
            plugin(
                "notes",
                "0.3.0",
                &[("accounts", "^0.2")],
                &["0.1.0", "0.2.0", "0.3.0"],
            ),
            plugin("accounts", "0.2.0", &[], &["0.1.0", "0.2.0"]),
            plugin("other", "1.0.0", &[], &["1.0.0"]),
        ];
        let req = UpRequest {
            target: Some(("notes".into(), Some(Version::new(0, 2, 0)))),
            ..UpRequest::default()
        };
        let plan = plan_up(&c, &State::default(), &Policy::default(), &req).unwrap();
        assert_eq!(
            steps(&plan),
            [
                "accounts@0.1.0",
                "accounts@0.2.0",
                "notes@0.1.0",
                "notes@0.2.0"
            ]
        );
    }
}
