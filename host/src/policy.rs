//! The operator's policy file (`wasmig.toml`): what each plugin may read beyond its own
//! namespace, and the bounds on every call. One file a security reviewer reads.
//!
//! ```toml
//! [limits]
//! deadline = "30s"          # per migration step
//! max_memory = "256MiB"     # per plugin instance
//!
//! [plugins.notes]
//! reads = ["accounts"]      # notes may SELECT from accounts__* (never write)
//! ```

use crate::Limits;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The parsed policy file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Bounds on plugin calls; unset keys keep their defaults.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// What wasmig must know of the application's own SQLite connections.
    #[serde(default)]
    pub sqlite: SqliteConfig,
    /// Per-plugin grants, by plugin name.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginPolicy>,
}

/// The `[sqlite]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The run-time limits (`sqlite3_limit`) the application's connections set below
    /// SQLite's defaults: `"recommended"` ([`ApplicationLimits::recommended`]), or a table
    /// of [`ApplicationLimits`]' keys.
    pub application_limits: Option<toml::Value>,
}

/// Run-time limits (`sqlite3_limit`) that the application's connections to a SQLite
/// database set below SQLite's defaults, those SQLite applies when a connection reads the
/// database's schema. A connection that meets a definition past one of them reads no table
/// at all ("malformed database schema"), so a plugin's step whose objects would be past one
/// is refused. Unset: SQLite's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationLimits {
    /// `SQLITE_LIMIT_LENGTH`: bytes of a string or blob (a literal in a definition).
    pub length: Option<i32>,
    /// `SQLITE_LIMIT_SQL_LENGTH`: bytes of one definition.
    pub sql_length: Option<i32>,
    /// `SQLITE_LIMIT_COLUMN`: columns of a table or an index.
    pub column: Option<i32>,
    /// `SQLITE_LIMIT_EXPR_DEPTH`: depth of an expression.
    pub expr_depth: Option<i32>,
    /// `SQLITE_LIMIT_COMPOUND_SELECT`: terms of a compound `SELECT`.
    pub compound_select: Option<i32>,
    /// `SQLITE_LIMIT_FUNCTION_ARG`: arguments of a function call.
    pub function_arg: Option<i32>,
    /// `SQLITE_LIMIT_PARSER_DEPTH`: depth of the parser's stack.
    pub parser_depth: Option<i32>,
    /// `SQLITE_LIMIT_TRIGGER_STEPS`: statements of a trigger.
    pub trigger_steps: Option<i32>,
    /// `SQLITE_LIMIT_SCHEMA`: objects in the whole database (every plugin's and the
    /// application's, SQLite's own tables included).
    pub schema: Option<i32>,
}

impl ApplicationLimits {
    /// The limits SQLite recommends for connections that may meet untrusted input
    /// ("Defense Against The Dark Arts"), those diesel's
    /// `set_recommended_security_limits` sets, as far as they apply to a schema.
    pub fn recommended() -> Self {
        ApplicationLimits {
            length: Some(1_000_000),
            sql_length: Some(100_000),
            column: Some(100),
            expr_depth: Some(10),
            compound_select: Some(3),
            function_arg: Some(8),
            ..Default::default()
        }
    }

    /// Each limit set, by its key in the policy.
    pub fn set(&self) -> impl Iterator<Item = (&'static str, i32)> {
        [
            ("length", self.length),
            ("sql_length", self.sql_length),
            ("column", self.column),
            ("expr_depth", self.expr_depth),
            ("compound_select", self.compound_select),
            ("function_arg", self.function_arg),
            ("parser_depth", self.parser_depth),
            ("trigger_steps", self.trigger_steps),
            ("schema", self.schema),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
    }
}

/// The `[limits]` table. Durations are like `30s` or `2m`; sizes like `256MiB`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Wall-clock time one migration step may take.
    pub deadline: Option<String>,
    /// Linear memory one plugin instance may use.
    pub max_memory: Option<String>,
    /// Bytes one query may return to a plugin.
    pub max_result: Option<String>,
    /// Bytes one step may grow the database by.
    pub max_growth: Option<String>,
    /// Bytes the connection's temporary files (TEMP tables, sorts, materialized subqueries)
    /// may hold while a step runs.
    pub max_temp: Option<String>,
    /// Bytes of definitions a plugin's objects may take in all (SQLite).
    pub max_schema: Option<String>,
    /// Bytes of log output kept per call.
    pub max_log: Option<String>,
    /// Address space one plugin's compile may use, in the compile child.
    pub max_compile_memory: Option<String>,
    /// Wall-clock time one plugin's compile may take, in the compile child.
    pub compile_deadline: Option<String>,
}

/// One `[plugins.NAME]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginPolicy {
    /// Plugins whose tables this plugin may read, when it asks to.
    #[serde(default)]
    pub reads: Vec<String>,
    /// The plugin's steps that destroy data (drop a table or a column, delete or rewrite
    /// every row of a table) may run, when the plugin marks them as intended.
    #[serde(default)]
    pub allow_destructive: bool,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> crate::Result<Policy> {
        let text = std::fs::read_to_string(path).map_err(|source| crate::Error::Io {
            what: "policy file",
            path: path.to_path_buf(),
            source,
        })?;
        let policy: Policy = toml::from_str(&text).map_err(|e| crate::Error::Policy {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        policy.apply(Limits::default(), path)?;
        for (name, p) in &policy.plugins {
            for read in &p.reads {
                crate::manifest::validate_name(read).map_err(|e| crate::Error::Policy {
                    path: path.to_path_buf(),
                    message: format!("[plugins.{name}] reads: {e}"),
                })?;
            }
        }
        Ok(policy)
    }

    /// The plugins `plugin` may read, by this policy.
    pub fn granted_reads(&self, plugin: &str) -> &[String] {
        self.plugins.get(plugin).map_or(&[], |p| &p.reads)
    }

    /// `limits` with this policy's `[limits]` applied.
    pub fn apply(&self, mut limits: Limits, path: &Path) -> crate::Result<Limits> {
        let bad = |key: &str, e: ValueError| crate::Error::Policy {
            path: path.to_path_buf(),
            message: format!("[limits] {key}: {e}"),
        };
        let l = &self.limits;
        if let Some(d) = &l.deadline {
            limits.deadline = parse_duration(d).map_err(|e| bad("deadline", e))?;
        }
        if let Some(s) = &l.max_memory {
            limits.max_memory = parse_size(s).map_err(|e| bad("max_memory", e))? as usize;
        }
        if let Some(s) = &l.max_result {
            limits.max_result_bytes = parse_size(s).map_err(|e| bad("max_result", e))? as usize;
        }
        if let Some(s) = &l.max_growth {
            limits.max_growth_bytes = parse_size(s).map_err(|e| bad("max_growth", e))?;
        }
        if let Some(s) = &l.max_temp {
            limits.max_temp_bytes = parse_size(s).map_err(|e| bad("max_temp", e))?;
        }
        if let Some(s) = &l.max_schema {
            limits.max_schema_bytes = parse_size(s).map_err(|e| bad("max_schema", e))?;
        }
        if let Some(s) = &l.max_log {
            limits.max_log_bytes = parse_size(s).map_err(|e| bad("max_log", e))? as usize;
        }
        if let Some(s) = &l.max_compile_memory {
            limits.max_compile_memory = parse_size(s).map_err(|e| bad("max_compile_memory", e))?;
        }
        if let Some(d) = &l.compile_deadline {
            limits.compile_deadline = parse_duration(d).map_err(|e| bad("compile_deadline", e))?;
        }
        if let Some(value) = &self.sqlite.application_limits {
            let bad = |message: String| crate::Error::Policy {
                path: path.to_path_buf(),
                message: format!("[sqlite] application_limits: {message}"),
            };
            let set = match value {
                toml::Value::String(preset) if preset == "recommended" => {
                    ApplicationLimits::recommended()
                }
                toml::Value::String(other) => {
                    return Err(bad(format!(
                        "unknown preset {other:?} (\"recommended\", or a table of limits)"
                    )));
                }
                other => other
                    .clone()
                    .try_into::<ApplicationLimits>()
                    .map_err(|e| bad(e.to_string()))?,
            };
            if let Some((key, value)) = set.set().find(|&(_, value)| value < 1) {
                return Err(bad(format!("{key} = {value} is out of range (at least 1)")));
            }
            limits.application_limits = Some(set);
        }
        Ok(limits)
    }
}

/// A duration or size in the policy (or on the command line) that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not a duration like `30s` or `2m`.
    #[error("{text:?} is not a duration like 30s or 2m: {reason}")]
    NotADuration {
        /// The text given.
        text: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A duration of zero.
    #[error("a duration of zero would stop every plugin at once")]
    ZeroDuration,
    /// Not a size like `256MiB`.
    #[error("{text:?} is not a size like 256MiB")]
    NotASize {
        /// The text given.
        text: String,
    },
    /// A size unit other than B, KiB, MiB, GiB (or k, KB, m, MB, g, GB).
    #[error("unknown size unit {unit:?} in {text:?}")]
    UnknownUnit {
        /// The unit given.
        unit: String,
        /// The text given.
        text: String,
    },
    /// Zero, or too large for 64 bits.
    #[error("{text:?} is out of range")]
    OutOfRange {
        /// The text given.
        text: String,
    },
}

/// Parses `30s`, `1500ms`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| ValueError::NotADuration {
        text: text.to_string(),
        reason: e.to_string(),
    })?;
    if d.is_zero() {
        return Err(ValueError::ZeroDuration);
    }
    Ok(d)
}

/// Parses `1024`, `64KiB`, `256MiB`, `1GiB` (also KB/MB/GB, as powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, ValueError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| ValueError::NotASize {
        text: text.to_string(),
    })?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => {
            return Err(ValueError::UnknownUnit {
                unit: other.to_string(),
                text: text.to_string(),
            });
        }
    };
    n.checked_shl(shift)
        .filter(|v| v >> shift == n && *v > 0)
        .ok_or_else(|| ValueError::OutOfRange {
            text: text.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Policy>("[plugins.notes]\nwrites = [\"accounts\"]").is_err());
        let p: Policy = toml::from_str("[plugins.notes]\nreads = [\"accounts\"]").unwrap();
        assert_eq!(p.granted_reads("notes"), ["accounts"]);
        assert!(p.granted_reads("other").is_empty());
    }
}
