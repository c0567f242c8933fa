//! Why the planner refuses a run, as data. Each problem's `Display` is a complete sentence
//! naming the plugins and files; what to do about it through a particular front end (a
//! command-line flag, a line of the policy file) is the front end's to add.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// One reason a plan cannot run. Nothing ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Problem {
    /// The plugin asked for is not in the plugins directory.
    UnknownPlugin {
        /// The name asked for.
        plugin: String,
    },
    /// The plugin asks to read other plugins' tables and the policy does not grant it.
    RefusedGrant {
        /// The plugin.
        plugin: String,
        /// Its file.
        file: PathBuf,
        /// The plugins whose tables it asks to read, not granted.
        reads: Vec<String>,
    },
    /// A dependency is not in the plugins directory.
    MissingDependency {
        /// The plugin that depends.
        plugin: String,
        /// Its file.
        file: PathBuf,
        /// The plugin it depends on.
        dependency: String,
        /// The version requirement.
        requirement: String,
    },
    /// A dependency's version does not satisfy the requirement.
    UnsatisfiedRequirement {
        /// The plugin that depends.
        plugin: String,
        /// Its file.
        file: PathBuf,
        /// The plugin it depends on.
        dependency: String,
        /// The version requirement.
        requirement: String,
        /// The dependency's version.
        found: String,
        /// The dependency's file.
        found_file: PathBuf,
    },
    /// Plugins depend on each other in a cycle.
    Cycle {
        /// The plugins in or behind the cycle.
        plugins: Vec<String>,
    },
    /// An applied step's checksum differs from the plugin file's.
    Drift {
        /// The plugin.
        plugin: String,
        /// What changed.
        detail: String,
    },
    /// The plugin file is older than what is applied, or does not know an applied step.
    Downgrade {
        /// The plugin.
        plugin: String,
        /// What is older or missing.
        detail: String,
    },
    /// A pending step sorts below an applied one, so it would never run in order.
    Gap {
        /// The plugin.
        plugin: String,
        /// The pending step.
        version: String,
        /// The highest applied step.
        applied: String,
    },
    /// Nothing to roll back (with `to`: nothing applied above it).
    NothingToRollBack {
        /// The plugin.
        plugin: String,
        /// The version asked to roll back to, if any.
        to: Option<String>,
    },
    /// Rolling the plugin back would leave an applied dependent without what it requires.
    DependentWouldBreak {
        /// The plugin rolled back.
        plugin: String,
        /// The applied plugin that depends on it.
        dependent: String,
        /// What the dependent requires.
        requirement: String,
        /// The plugin's version after the rollback (`nothing` when none would remain).
        after: String,
    },
    /// The component that applied a step is not stored in the database.
    ComponentNotStored {
        /// The plugin.
        plugin: String,
        /// The step.
        version: String,
        /// The component's SHA-256.
        component_sha256: String,
    },
    /// The step has no down step.
    Irreversible {
        /// The plugin.
        plugin: String,
        /// The step.
        version: String,
    },
    /// The component that applied a step does not declare it.
    StepNotDeclared {
        /// The plugin.
        plugin: String,
        /// The step.
        version: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::UnknownPlugin { plugin } => {
                write!(f, "no plugin named {plugin} in the plugins directory")
            }
            Problem::RefusedGrant {
                plugin,
                file,
                reads,
            } => write!(
                f,
                "plugin {plugin} ({}) asks to read the tables of {}, which the policy does not \
                 grant",
                file.display(),
                reads.join(", ")
            ),
            Problem::MissingDependency {
                plugin,
                file,
                dependency,
                requirement,
            } => write!(
                f,
                "plugin {plugin} ({}) requires plugin {dependency} {requirement}, but there is \
                 no plugin {dependency} in the plugins directory; add it, or remove {plugin}",
                file.display()
            ),
            Problem::UnsatisfiedRequirement {
                plugin,
                file,
                dependency,
                requirement,
                found,
                found_file,
            } => write!(
                f,
                "plugin {plugin} ({}) requires plugin {dependency} {requirement}, but \
                 {dependency} is version {found} ({})",
                file.display(),
                found_file.display()
            ),
            Problem::Cycle { plugins } => write!(
                f,
                "plugins {} depend on each other in a cycle; remove one of the dependencies",
                plugins.join(", ")
            ),
            Problem::Drift { detail, .. } | Problem::Downgrade { detail, .. } => {
                write!(f, "{detail}; refusing to run over it")
            }
            Problem::Gap {
                plugin,
                version,
                applied,
            } => write!(
                f,
                "plugin {plugin} migration {version} is pending but the later migration \
                 {applied} is already applied; steps apply in version order, so give the new \
                 step a version above {applied}"
            ),
            Problem::NothingToRollBack { plugin, to: None } => {
                write!(f, "plugin {plugin} has no applied migrations to roll back")
            }
            Problem::NothingToRollBack {
                plugin,
                to: Some(to),
            } => write!(
                f,
                "plugin {plugin} has nothing to roll back: no applied migration above {to}"
            ),
            Problem::DependentWouldBreak {
                plugin,
                dependent,
                requirement,
                after,
            } => write!(
                f,
                "plugin {dependent} requires {plugin} {requirement}, and rolling {plugin} back \
                 would leave it at {after}; roll {dependent} back first, or together with \
                 {plugin}"
            ),
            Problem::ComponentNotStored {
                plugin,
                version,
                component_sha256,
            } => write!(
                f,
                "plugin {plugin} migration {version}: the component that applied it \
                 ({component_sha256}) is not stored in the database"
            ),
            Problem::Irreversible { plugin, version } => write!(
                f,
                "plugin {plugin} migration {version} has no down step, so it cannot be rolled \
                 back; nothing was rolled back"
            ),
            Problem::StepNotDeclared { plugin, version } => write!(
                f,
                "plugin {plugin} migration {version}: the component that applied it does not \
                 declare it"
            ),
        }
    }
}
