//! A plugin's manifest as plain, validated data: what the plugin says about itself.

use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

/// The most characters a plugin name may have.
pub const MAX_NAME_LEN: usize = 48;

/// The most steps a plugin may declare: a bound on what every command that lists the
/// plugins directory does for one plugin file.
pub const MAX_MIGRATIONS: usize = 10_000;

/// The most plugins a plugin may depend on, and the most whose tables it may ask to read.
pub const MAX_DEPENDENCIES: usize = 256;

/// A validated plugin manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The plugin's name.
    pub name: String,
    /// The plugin's version.
    pub version: Version,
    /// One line for people.
    pub description: String,
    /// Plugins that must be migrated first.
    pub depends_on: Vec<Dependency>,
    /// Plugins whose tables this one asks to read.
    pub reads: Vec<String>,
    /// Migration steps, sorted by version.
    pub migrations: Vec<MigrationInfo>,
}

/// A dependency on another plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    /// The other plugin.
    pub name: String,
    /// Which of its versions will do.
    pub requirement: VersionReq,
}

/// What a plugin says about one migration step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationInfo {
    /// The step's version.
    pub version: Version,
    /// One line for people.
    pub description: String,
    /// Whether the step has a `down`.
    pub reversible: bool,
    /// The step's checksum, as the plugin computes it.
    pub checksum: String,
}

/// The manifest as the plugin returned it, before validation.
#[derive(Debug, Clone)]
pub struct RawManifest {
    /// The plugin's name, unchecked.
    pub name: String,
    /// Its version, unparsed.
    pub version: String,
    /// What it does.
    pub description: String,
    /// Plugins it depends on: name and semver requirement, unparsed.
    pub depends_on: Vec<(String, String)>,
    /// Plugins whose tables it asks to read.
    pub reads: Vec<String>,
    /// Its steps.
    pub migrations: Vec<RawMigration>,
}

/// One step as the plugin declared it, before validation.
#[derive(Debug, Clone)]
pub struct RawMigration {
    /// The step's version, unparsed.
    pub version: String,
    /// What it does.
    pub description: String,
    /// Whether it has a down step.
    pub reversible: bool,
    /// Its checksum.
    pub checksum: String,
}

/// Why a plugin name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    TooLong(String),
    /// The name breaks the rule (lowercase words joined by single hyphens).
    Invalid(String),
}

const NAME_RULE: &str = "a plugin name is lowercase letters and digits in words joined by \
                         single hyphens, starting with a letter (e.g. `notes`, `knowledge-base`)";

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Empty => write!(f, "the plugin name is empty; {NAME_RULE}"),
            NameError::TooLong(name) => write!(
                f,
                "plugin name {name:?} is longer than {MAX_NAME_LEN} characters"
            ),
            NameError::Invalid(name) => write!(f, "invalid plugin name {name:?}: {NAME_RULE}"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a plugin name: lowercase ASCII letters and digits, in words joined by single
/// hyphens, starting with a letter, at most [`MAX_NAME_LEN`] characters.
///
/// The rule keeps table namespaces prefix-free: plugin `a-b` owns `a_b__*`, and no other
/// name can produce a prefix of that (names contain no `_`, and no `--`).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.to_string()));
    }
    let starts_with_letter = name.as_bytes()[0].is_ascii_lowercase();
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let hyphens_ok = !name.ends_with('-') && !name.contains("--");
    if starts_with_letter && chars_ok && hyphens_ok {
        Ok(())
    } else {
        Err(NameError::Invalid(name.to_string()))
    }
}

/// One thing wrong with what a plugin declares about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestProblem {
    /// The plugin's name.
    Name(NameError),
    /// The plugin's version is not semver.
    Version {
        /// The version given.
        version: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A dependency's name.
    DependencyName(NameError),
    /// The plugin depends on itself.
    DependsOnItself(String),
    /// A dependency is declared twice.
    DependencyTwice(String),
    /// A dependency's requirement is not a semver requirement.
    Requirement {
        /// The dependency.
        dependency: String,
        /// The requirement given.
        requirement: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A read request's plugin name.
    ReadName(NameError),
    /// The plugin asks to read its own tables.
    ReadsItself(String),
    /// A migration's version is not semver.
    MigrationVersion {
        /// The version given.
        version: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A migration version is declared twice.
    MigrationTwice(String),
    /// A migration has an empty checksum.
    EmptyChecksum(String),
    /// More migrations, dependencies or read requests than a plugin may declare.
    TooMany {
        /// What: `migrations`, `dependencies` or `read requests`.
        what: &'static str,
        /// How many the plugin declares.
        count: usize,
        /// How many it may.
        max: usize,
    },
}

impl std::fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestProblem::Name(e) => write!(f, "{e}"),
            ManifestProblem::Version { version, reason } => {
                write!(
                    f,
                    "plugin version {version:?} is not a semver version: {reason}"
                )
            }
            ManifestProblem::DependencyName(e) => write!(f, "dependency: {e}"),
            ManifestProblem::DependsOnItself(name) => write!(f, "plugin {name} depends on itself"),
            ManifestProblem::DependencyTwice(name) => {
                write!(f, "dependency {name} is declared twice")
            }
            ManifestProblem::Requirement {
                dependency,
                requirement,
                reason,
            } => write!(
                f,
                "dependency {dependency}: {requirement:?} is not a semver requirement: {reason}"
            ),
            ManifestProblem::ReadName(e) => write!(f, "read request: {e}"),
            ManifestProblem::ReadsItself(name) => {
                write!(
                    f,
                    "plugin {name} asks to read its own tables; it always may"
                )
            }
            ManifestProblem::MigrationVersion { version, reason } => {
                write!(
                    f,
                    "migration version {version:?} is not a semver version: {reason}"
                )
            }
            ManifestProblem::MigrationTwice(v) => write!(f, "migration {v} is declared twice"),
            ManifestProblem::EmptyChecksum(v) => write!(f, "migration {v} has an empty checksum"),
            ManifestProblem::TooMany { what, count, max } => {
                write!(
                    f,
                    "it declares {count} {what}, more than the {max} a plugin may"
                )
            }
        }
    }
}

/// The prefix every object of a plugin must start with: `notes` → `notes__`,
/// `knowledge-base` → `knowledge_base__`.
pub fn namespace(name: &str) -> String {
    format!("{}__", name.replace('-', "_"))
}

impl Manifest {
    /// Where the manifest `other` (a plugin's code's) differs from this one (its
    /// declaration's), field by field and step by step, for people (`"step 0.1.0: checksum
    /// \"sha256:…\" declared, \"sha256:…\" from the code"`); empty when they agree.
    pub fn differences(&self, other: &Manifest) -> Vec<String> {
        let mut out = Vec::new();
        let mut field = |what: &str, here: String, there: String| {
            if here != there {
                out.push(format!(
                    "{what}: {here:?} declared, {there:?} from the code"
                ));
            }
        };
        field("name", self.name.clone(), other.name.clone());
        field(
            "version",
            self.version.to_string(),
            other.version.to_string(),
        );
        field(
            "description",
            self.description.clone(),
            other.description.clone(),
        );
        let deps = |m: &Manifest| {
            let d: Vec<String> = m
                .depends_on
                .iter()
                .map(|d| format!("{} {}", d.name, d.requirement))
                .collect();
            d.join(", ")
        };
        field("depends on", deps(self), deps(other));
        field("reads", self.reads.join(", "), other.reads.join(", "));
        let steps = |m: &Manifest| -> Vec<String> {
            m.migrations.iter().map(|s| s.version.to_string()).collect()
        };
        if steps(self) != steps(other) {
            field("steps", steps(self).join(", "), steps(other).join(", "));
            return out;
        }
        for (a, b) in self.migrations.iter().zip(&other.migrations) {
            let step = format!("step {}", a.version);
            field(
                &format!("{step}: description"),
                a.description.clone(),
                b.description.clone(),
            );
            field(
                &format!("{step}: reversible"),
                a.reversible.to_string(),
                b.reversible.to_string(),
            );
            field(
                &format!("{step}: checksum"),
                a.checksum.clone(),
                b.checksum.clone(),
            );
        }
        out
    }
}

impl RawManifest {
    /// Validates everything a plugin declares about itself; returns every problem at once.
    pub fn validate(self) -> Result<Manifest, Vec<ManifestProblem>> {
        use ManifestProblem as P;
        let mut problems = Vec::new();
        if let Err(e) = validate_name(&self.name) {
            problems.push(P::Name(e));
        }
        let version = Version::parse(&self.version)
            .map_err(|e| {
                problems.push(P::Version {
                    version: self.version.clone(),
                    reason: e.to_string(),
                })
            })
            .ok();

        // Each list is checked only within its bound: a plugin file may hold millions of
        // entries, and every command that lists the plugins directory validates it.
        for (what, count, max) in [
            ("migrations", self.migrations.len(), MAX_MIGRATIONS),
            ("dependencies", self.depends_on.len(), MAX_DEPENDENCIES),
            ("read requests", self.reads.len(), MAX_DEPENDENCIES),
        ] {
            if count > max {
                problems.push(P::TooMany { what, count, max });
            }
        }
        if problems.iter().any(|p| matches!(p, P::TooMany { .. })) {
            return Err(problems);
        }

        let mut depends_on = Vec::new();
        let mut dependency_names = std::collections::BTreeSet::new();
        for (name, req) in &self.depends_on {
            if let Err(e) = validate_name(name) {
                problems.push(P::DependencyName(e));
            }
            if *name == self.name {
                problems.push(P::DependsOnItself(name.clone()));
            }
            if !dependency_names.insert(name.as_str()) {
                problems.push(P::DependencyTwice(name.clone()));
            }
            match VersionReq::parse(req) {
                Ok(requirement) => depends_on.push(Dependency {
                    name: name.clone(),
                    requirement,
                }),
                Err(e) => problems.push(P::Requirement {
                    dependency: name.clone(),
                    requirement: req.clone(),
                    reason: e.to_string(),
                }),
            }
        }

        for read in &self.reads {
            if let Err(e) = validate_name(read) {
                problems.push(P::ReadName(e));
            }
            if *read == self.name {
                problems.push(P::ReadsItself(read.clone()));
            }
        }

        let mut migrations: Vec<MigrationInfo> = Vec::new();
        let mut versions = std::collections::BTreeSet::new();
        for m in self.migrations {
            match Version::parse(&m.version) {
                Ok(v) => {
                    if !versions.insert(v.clone()) {
                        problems.push(P::MigrationTwice(v.to_string()));
                    }
                    if m.checksum.is_empty() {
                        problems.push(P::EmptyChecksum(v.to_string()));
                    }
                    migrations.push(MigrationInfo {
                        version: v,
                        description: m.description,
                        reversible: m.reversible,
                        checksum: m.checksum,
                    });
                }
                Err(e) => problems.push(P::MigrationVersion {
                    version: m.version.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        migrations.sort_by(|a, b| a.version.cmp(&b.version));

        match version {
            Some(version) if problems.is_empty() => Ok(Manifest {
                name: self.name,
                version,
                description: self.description,
                depends_on,
                reads: self.reads,
                migrations,
            }),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_declares_at_most_so_many_steps_and_dependencies() {
        let raw = |migrations: usize, dependencies: usize| RawManifest {
            name: "big".into(),
            version: "1.0.0".into(),
            description: String::new(),
            depends_on: (0..dependencies)
                .map(|i| (format!("p{i}"), "*".to_string()))
                .collect(),
            reads: Vec::new(),
            migrations: (0..migrations)
                .map(|i| RawMigration {
                    version: format!("0.0.{i}"),
                    description: String::new(),
                    reversible: false,
                    checksum: "x".into(),
                })
                .collect(),
        };
        assert!(raw(MAX_MIGRATIONS, MAX_DEPENDENCIES).validate().is_ok());
        let problems = raw(MAX_MIGRATIONS + 1, MAX_DEPENDENCIES + 1)
            .validate()
            .unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "it declares 10001 migrations, more than the 10000 a plugin may",
                "it declares 257 dependencies, more than the 256 a plugin may"
            ]
        );
    }

    #[test]
    fn names_follow_the_rule() {
        for ok in ["notes", "a", "knowledge-base", "plugin-sql2", "x1-y2-z3"] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "Notes", "1notes", "-notes", "notes-", "no--tes", "no_tes", "no tes", "nötes",
            "_wasmig",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn namespaces_are_prefix_free() {
        let names = [
            "a", "a-b", "ab", "a-b-c", "a-bc", "ab-c", "notes", "note", "notes-x",
        ];
        for x in names {
            for y in names {
                if x != y {
                    let (nx, ny) = (namespace(x), namespace(y));
                    assert!(!ny.starts_with(&nx), "{nx} is a prefix of {ny}");
                }
            }
        }
    }

    fn raw() -> RawManifest {
        RawManifest {
            name: "notes".into(),
            version: "0.2.0".into(),
            description: String::new(),
            depends_on: vec![("accounts".into(), "^0.2".into())],
            reads: vec![],
            migrations: vec![
                RawMigration {
                    version: "0.2.0".into(),
                    description: "b".into(),
                    reversible: true,
                    checksum: "sha256:b".into(),
                },
                RawMigration {
                    version: "0.1.0".into(),
                    description: "a".into(),
                    reversible: true,
                    checksum: "sha256:a".into(),
                },
            ],
        }
    }

    #[test]
    fn validation_sorts_migrations() {
        let m = raw().validate().unwrap();
        assert_eq!(m.migrations[0].version, Version::new(0, 1, 0));
        assert_eq!(
            m.depends_on[0].requirement,
            VersionReq::parse("^0.2").unwrap()
        );
    }

    #[test]
    fn validation_reports_every_problem() {
        let mut r = raw();
        r.name = "Bad_Name".into();
        r.version = "one".into();
        r.depends_on.push(("accounts".into(), "not a req".into()));
        r.migrations[0].version = "0.1.0".into();
        let problems = r.validate().unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:#?}");
    }
}
