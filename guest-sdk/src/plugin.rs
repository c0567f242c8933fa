//! A plugin and its migrations, as the builder declares them.

use crate::*;

/// Code that runs as a migration step.
pub type StepFn = fn(&Tx) -> Result<()>;

#[derive(Clone)]
pub(crate) enum Step {
    Sql(String),
    /// The code, and the revision its author declares for the checksum.
    Code(StepFn, String),
}

impl Step {
    pub(crate) fn run(&self, tx: &Tx) -> Result<()> {
        match self {
            Step::Sql(script) => tx.execute_script(script),
            Step::Code(f, _) => f(tx),
        }
    }
}

/// One migration step: a version, what it does going up, and optionally how to undo it.
#[derive(Clone)]
pub struct Migration {
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) up: Step,
    pub(crate) down: Option<Step>,
}

impl Migration {
    /// A step that runs a SQL script (`;`-separated statements).
    ///
    /// Its checksum is computed from the script (and the `down` script, if any), so editing
    /// the SQL of an applied step is reported as drift.
    pub fn sql(version: &str, description: &str, up: &str) -> Self {
        Migration {
            version: version.to_string(),
            description: description.to_string(),
            up: Step::Sql(up.to_string()),
            down: None,
        }
    }

    /// A step that runs Rust code.
    ///
    /// Code cannot be fingerprinted reliably, so the step declares a `revision`: change it
    /// whenever the code's effect changes, and wasmig reports the applied step as drifted.
    pub fn code(version: &str, description: &str, revision: &str, up: StepFn) -> Self {
        Migration {
            version: version.to_string(),
            description: description.to_string(),
            up: Step::Code(up, revision.to_string()),
            down: None,
        }
    }

    /// Makes the step reversible with a SQL script.
    pub fn down_sql(mut self, down: &str) -> Self {
        self.down = Some(Step::Sql(down.to_string()));
        self
    }

    /// Makes the step reversible with code; `revision` plays the same role as in
    /// [`Migration::code`].
    pub fn down_code(mut self, revision: &str, down: StepFn) -> Self {
        self.down = Some(Step::Code(down, revision.to_string()));
        self
    }

    /// The step's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether the step can be undone.
    pub fn is_reversible(&self) -> bool {
        self.down.is_some()
    }

    /// The step's checksum: `sha256:` and the hex SHA-256 of what the step runs.
    ///
    /// ```
    /// use wasmig_guest::Migration;
    /// let a = Migration::sql("0.1.0", "t", "CREATE TABLE x__t (id INTEGER)");
    /// let b = Migration::sql("0.1.0", "t", "CREATE TABLE x__t (id INTEGER, y TEXT)");
    /// assert_ne!(a.checksum(), b.checksum());
    /// assert!(a.checksum().starts_with("sha256:"));
    /// ```
    pub fn checksum(&self) -> String {
        use wasmig_format::checksum::{Body, step};
        fn body(s: &Step) -> Body<'_> {
            match s {
                Step::Sql(sql) => Body::Sql(sql),
                Step::Code(_, revision) => Body::Code(revision),
            }
        }
        step(body(&self.up), self.down.as_ref().map(body))
    }
}

/// A plugin: its identity, what it depends on, and its migrations.
#[derive(Clone)]
pub struct Plugin {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) depends_on: Vec<(String, String)>,
    pub(crate) reads: Vec<String>,
    pub(crate) migrations: Vec<Migration>,
}

impl Plugin {
    /// A plugin with a name (lowercase words joined by hyphens) and a semver version.
    pub fn new(name: &str, version: &str) -> Self {
        Plugin {
            name: name.to_string(),
            version: version.to_string(),
            description: String::new(),
            depends_on: Vec::new(),
            reads: Vec::new(),
            migrations: Vec::new(),
        }
    }

    /// One line that says what the plugin is.
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_string();
        self
    }

    /// Requires `plugin` at a version matching the semver `requirement` (e.g. `^0.2`) to be
    /// migrated before this one.
    pub fn depends_on(mut self, plugin: &str, requirement: &str) -> Self {
        self.depends_on
            .push((plugin.to_string(), requirement.to_string()));
        self
    }

    /// Asks to read `plugin`'s tables. The operator must grant it in the host's policy.
    pub fn reads(mut self, plugin: &str) -> Self {
        self.reads.push(plugin.to_string());
        self
    }

    /// Adds a migration step.
    pub fn migration(mut self, migration: Migration) -> Self {
        self.migrations.push(migration);
        self
    }

    /// The plugin's migrations, in the order they were declared.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    pub(crate) fn find(&self, version: &str) -> Result<&Migration> {
        self.migrations
            .iter()
            .find(|m| m.version == version)
            .ok_or_else(|| Error::other(format!("plugin {} has no migration {version}", self.name)))
    }
}
