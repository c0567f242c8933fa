//! The library's error type: every error names the plugin (and its file), the migration where
//! there is one, and the cause.

use std::path::PathBuf;

/// An error from wasmig. Its `Display` is a complete sentence for a person; match on the
/// variant to react in code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plugins directory or the database could not be opened or read.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being accessed ("plugins directory", "plugin file", ...).
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A plugin file cannot be used: not WebAssembly, not a component, the wrong world, an
    /// import outside the allow-list, an invalid manifest.
    #[error("plugin file {file}: {reason}")]
    InvalidPlugin {
        /// The file.
        file: PathBuf,
        /// What is wrong, and how to fix it when there is a fix.
        reason: String,
    },

    /// Several plugin files are unusable; each is listed.
    #[error("{} plugin files cannot be used:\n{}", .0.len(), list(.0))]
    InvalidPlugins(Vec<Error>),

    /// Two files declare the same plugin name.
    #[error("two files declare plugin {name}: {first} and {second}; remove one of them")]
    DuplicatePlugin {
        /// The plugin name.
        name: String,
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },

    /// The plugins cannot be ordered or applied as they are: a missing or unsatisfied
    /// dependency, a cycle, drift, a gap. Nothing ran.
    #[error("cannot plan the migration: {0}")]
    Plan(String),

    /// The plan has problems; each is listed, as data. Nothing ran.
    #[error("cannot plan the migration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    PlanProblems(Vec<crate::planner::Problem>),

    /// A migration step failed and was rolled back; the failure is recorded in the history.
    #[error(
        "plugin {plugin} migration {version} ({direction}) failed and was rolled back: {cause}"
    )]
    StepFailed {
        /// The plugin.
        plugin: String,
        /// The migration's version.
        version: String,
        /// `up` or `down`.
        direction: String,
        /// Why.
        cause: String,
    },

    /// The run stopped before a step could run: its plugin's file could not be used at its
    /// turn (changed on disk since the run read it, say), or the database failed outside a
    /// step. The steps before it are applied and recorded; those listed are not.
    #[error("{cause}; not applied: {}", first_steps(.not_applied))]
    RunStopped {
        /// Why the run stopped.
        cause: Box<Error>,
        /// The steps left unapplied, as "plugin version", in plan order.
        not_applied: Vec<String>,
    },

    /// The plugin name asked for does not exist.
    #[error("no plugin named {0} (neither in the plugins directory nor in the database)")]
    UnknownPlugin(String),

    /// The database refused or failed an operation of the host itself.
    #[error("database {path}: {message}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What failed.
        message: String,
    },

    /// Another process held the database's write lock for longer than the lock timeout.
    #[error(
        "database {path}: another runner holds the database (waited {}); try again, or raise \
         the lock timeout",
        humantime::format_duration(std::time::Duration::from_millis(waited.as_millis() as u64))
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// How long wasmig waited.
        waited: std::time::Duration,
    },

    /// The WebAssembly engine could not be set up.
    #[error("WebAssembly engine: {0}")]
    Engine(String),

    /// The policy file is invalid.
    #[error("policy file {path}: {message}")]
    Policy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The first ten steps of a list, and how many more there are.
pub(crate) fn first_steps(steps: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = steps[..steps.len().min(SHOWN)].join(", ");
    if steps.len() > SHOWN {
        text.push_str(&format!(" and {} more", steps.len() - SHOWN));
    }
    text
}

/// `text` cut to at most `max` bytes (at a character boundary), saying how much was left
/// out: what a plugin puts in an error (its own, or one it makes the database raise) reaches
/// the ledger, the terminal and the plugin again, and its size is the plugin's to choose.
pub(crate) fn bounded_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} more bytes left out)",
        &text[..end],
        text.len() - end
    )
}

/// The most of a step's error the ledger keeps.
pub(crate) const MAX_ERROR_BYTES: usize = 16 * 1024;

fn list(errors: &[Error]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The result type of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
