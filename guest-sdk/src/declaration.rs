//! Plugins declared at compile time: the same plugin as a [`Plugin`] builds, written as a
//! `const`, so that the SDK can also put the declaration into the component as data.
//!
//! The host reads that data (a custom section, [`SECTION`]) without compiling the plugin:
//! a plugin whose migrations are all SQL is never compiled or run at all; the host runs the
//! SQL itself, with the same permissions and limits as SQL from code. Code steps still run
//! the plugin's code.

use crate::{Migration, Plugin, StepFn};

use wasmig_format::section::FORMAT;
pub use wasmig_format::section::SECTION;

/// A plugin declared in a `const`; export it with [`crate::export_static_plugin!`].
///
/// ```
/// use wasmig_guest::{StaticMigration, StaticPlugin};
///
/// const PLUGIN: StaticPlugin = StaticPlugin::new("notes", "0.2.0")
///     .description("Notes attached to accounts")
///     .depends_on(&[("accounts", "^0.2")])
///     .migrations(&[
///         StaticMigration::sql("0.1.0", "create notes", "CREATE TABLE notes__note (id INTEGER PRIMARY KEY)")
///             .down_sql("DROP TABLE notes__note"),
///         StaticMigration::sql("0.2.0", "titles", "ALTER TABLE notes__note ADD COLUMN title TEXT"),
///     ]);
///
/// // In the plugin crate: wasmig_guest::export_static_plugin!(PLUGIN);
/// // The same plugin, built at run time, has the same checksums:
/// let built = PLUGIN.plugin();
/// assert_eq!(built.migrations().len(), 2);
/// assert_eq!(
///     built.migrations()[1].checksum(),
///     wasmig_guest::Migration::sql("0.2.0", "titles", "ALTER TABLE notes__note ADD COLUMN title TEXT").checksum(),
/// );
/// ```
#[derive(Clone, Copy)]
pub struct StaticPlugin {
    name: &'static str,
    version: &'static str,
    description: &'static str,
    depends_on: &'static [(&'static str, &'static str)],
    reads: &'static [&'static str],
    migrations: &'static [StaticMigration],
}

/// One migration of a [`StaticPlugin`]; see [`Migration`] for what each kind means.
#[derive(Clone, Copy)]
pub struct StaticMigration {
    version: &'static str,
    description: &'static str,
    up: StaticStep,
    down: Option<StaticStep>,
}

#[derive(Clone, Copy)]
enum StaticStep {
    Sql(&'static str),
    Code { revision: &'static str, run: StepFn },
}

impl StaticPlugin {
    /// A plugin with a name and a semver version; see [`Plugin::new`].
    pub const fn new(name: &'static str, version: &'static str) -> Self {
        StaticPlugin {
            name,
            version,
            description: "",
            depends_on: &[],
            reads: &[],
            migrations: &[],
        }
    }

    /// One line that says what the plugin is.
    pub const fn description(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    /// The plugins that must be migrated first: `(name, semver requirement)` pairs; see
    /// [`Plugin::depends_on`].
    pub const fn depends_on(mut self, plugins: &'static [(&'static str, &'static str)]) -> Self {
        self.depends_on = plugins;
        self
    }

    /// The plugins whose tables this one asks to read; see [`Plugin::reads`].
    pub const fn reads(mut self, plugins: &'static [&'static str]) -> Self {
        self.reads = plugins;
        self
    }

    /// The migration steps.
    pub const fn migrations(mut self, migrations: &'static [StaticMigration]) -> Self {
        self.migrations = migrations;
        self
    }

    /// The same plugin, built at run time (what the plugin's exports answer with).
    pub fn plugin(&self) -> Plugin {
        let mut p = Plugin::new(self.name, self.version).description(self.description);
        for (name, requirement) in self.depends_on {
            p = p.depends_on(name, requirement);
        }
        for name in self.reads {
            p = p.reads(name);
        }
        for m in self.migrations {
            let mut built = match m.up {
                StaticStep::Sql(sql) => Migration::sql(m.version, m.description, sql),
                StaticStep::Code { revision, run } => {
                    Migration::code(m.version, m.description, revision, run)
                }
            };
            built = match m.down {
                None => built,
                Some(StaticStep::Sql(sql)) => built.down_sql(sql),
                Some(StaticStep::Code { revision, run }) => built.down_code(revision, run),
            };
            p = p.migration(built);
        }
        p
    }
}

impl StaticMigration {
    /// A step that runs a SQL script; see [`Migration::sql`].
    pub const fn sql(version: &'static str, description: &'static str, up: &'static str) -> Self {
        StaticMigration {
            version,
            description,
            up: StaticStep::Sql(up),
            down: None,
        }
    }

    /// A step that runs Rust code; see [`Migration::code`]. A plugin with a code step is
    /// compiled by the host when it runs; its SQL steps still run as data.
    pub const fn code(
        version: &'static str,
        description: &'static str,
        revision: &'static str,
        up: StepFn,
    ) -> Self {
        StaticMigration {
            version,
            description,
            up: StaticStep::Code { revision, run: up },
            down: None,
        }
    }

    /// Makes the step reversible with a SQL script.
    pub const fn down_sql(mut self, down: &'static str) -> Self {
        self.down = Some(StaticStep::Sql(down));
        self
    }

    /// Makes the step reversible with code; `revision` as in [`StaticMigration::code`].
    pub const fn down_code(mut self, revision: &'static str, down: StepFn) -> Self {
        self.down = Some(StaticStep::Code {
            revision,
            run: down,
        });
        self
    }
}

// The encoding (the host's `declaration` module reads it): a format byte, then strings as a
// 4-byte little-endian length and UTF-8, counts as 4-byte little-endian numbers:
//   name, version, description,
//   count, then (name, requirement) per dependency,
//   count, then name per read,
//   count, then per migration: version, description, up, down, where a step is a kind byte
//   (0 none — only for down —, 1 SQL, 2 code) and its SQL text or code revision.

/// Writes the encoding into `out` (when it is `Some`) and returns its length: one function
/// for both, so that the length and the bytes cannot disagree.
const fn write(p: &StaticPlugin, mut out: Option<&mut [u8]>) -> usize {
    let mut at = 0;
    at = byte(&mut out, at, FORMAT);
    at = text(&mut out, at, p.name);
    at = text(&mut out, at, p.version);
    at = text(&mut out, at, p.description);
    at = count(&mut out, at, p.depends_on.len());
    let mut i = 0;
    while i < p.depends_on.len() {
        at = text(&mut out, at, p.depends_on[i].0);
        at = text(&mut out, at, p.depends_on[i].1);
        i += 1;
    }
    at = count(&mut out, at, p.reads.len());
    let mut i = 0;
    while i < p.reads.len() {
        at = text(&mut out, at, p.reads[i]);
        i += 1;
    }
    at = count(&mut out, at, p.migrations.len());
    let mut i = 0;
    while i < p.migrations.len() {
        let m = &p.migrations[i];
        at = text(&mut out, at, m.version);
        at = text(&mut out, at, m.description);
        at = step(&mut out, at, Some(m.up));
        at = step(&mut out, at, m.down);
        i += 1;
    }
    at
}

const fn step(out: &mut Option<&mut [u8]>, at: usize, s: Option<StaticStep>) -> usize {
    match s {
        None => byte(out, at, 0),
        Some(StaticStep::Sql(sql)) => {
            let at = byte(out, at, 1);
            text(out, at, sql)
        }
        Some(StaticStep::Code { revision, .. }) => {
            let at = byte(out, at, 2);
            text(out, at, revision)
        }
    }
}

const fn byte(out: &mut Option<&mut [u8]>, at: usize, b: u8) -> usize {
    if let Some(out) = out {
        out[at] = b;
    }
    at + 1
}

const fn count(out: &mut Option<&mut [u8]>, at: usize, n: usize) -> usize {
    assert!(
        n <= u32::MAX as usize,
        "a declaration's text or list is too long"
    );
    let bytes = (n as u32).to_le_bytes();
    let mut at = at;
    let mut i = 0;
    while i < 4 {
        at = byte(out, at, bytes[i]);
        i += 1;
    }
    at
}

const fn text(out: &mut Option<&mut [u8]>, at: usize, s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut at = count(out, at, bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        at = byte(out, at, bytes[i]);
        i += 1;
    }
    at
}

/// The length of `p`'s encoding.
#[doc(hidden)]
pub const fn encoded_len(p: &StaticPlugin) -> usize {
    write(p, None)
}

/// `p`'s encoding; `N` is [`encoded_len`].
#[doc(hidden)]
pub const fn encode<const N: usize>(p: &StaticPlugin) -> [u8; N] {
    let mut out = [0u8; N];
    let written = write(p, Some(&mut out));
    assert!(
        written == N,
        "the declaration's length changed while it was written"
    );
    out
}

/// Exports a plugin declared as a [`StaticPlugin`] `const`: like [`crate::export_plugin!`],
/// and the declaration also goes into the component as data (the custom section
/// [`SECTION`]), which the host reads without compiling the plugin.
///
/// ```no_run
/// use wasmig_guest::{StaticMigration, StaticPlugin};
/// const PLUGIN: StaticPlugin = StaticPlugin::new("shop", "0.1.0").migrations(&[
///     StaticMigration::sql("0.1.0", "items", "CREATE TABLE shop__item (id INTEGER PRIMARY KEY)"),
/// ]);
/// wasmig_guest::export_static_plugin!(PLUGIN);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_static_plugin {
    ($plugin:path) => {
        // Only in a WebAssembly build: elsewhere `link_section` would be an object file's
        // section, and the data is of no use.
        #[cfg(target_family = "wasm")]
        // An attribute takes no constant: this is `wasmig_format::section::SECTION`.
        #[unsafe(link_section = "wasmig:plugin/declaration@0.1.0")]
        #[used]
        static __WASMIG_DECLARATION: [u8; $crate::__private::encoded_len(&$plugin)] =
            $crate::__private::encode(&$plugin);

        fn __wasmig_static_plugin() -> $crate::Plugin {
            $plugin.plugin()
        }

        $crate::export_plugin!(__wasmig_static_plugin);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: StaticPlugin = StaticPlugin::new("ab", "1.0.0")
        .reads(&["c"])
        .migrations(&[StaticMigration::sql("1.0.0", "d", "e").down_sql("f")]);
    const LEN: usize = encoded_len(&P);
    static BYTES: [u8; LEN] = encode(&P);

    #[test]
    fn the_encoding_is_as_documented() {
        fn text(out: &mut Vec<u8>, s: &str) {
            out.extend((s.len() as u32).to_le_bytes());
            out.extend(s.as_bytes());
        }
        let mut expected = vec![1u8];
        for s in ["ab", "1.0.0", ""] {
            text(&mut expected, s);
        }
        expected.extend(0u32.to_le_bytes()); // no dependencies
        expected.extend(1u32.to_le_bytes()); // one read
        text(&mut expected, "c");
        expected.extend(1u32.to_le_bytes()); // one migration
        text(&mut expected, "1.0.0");
        text(&mut expected, "d");
        expected.push(1);
        text(&mut expected, "e");
        expected.push(1);
        text(&mut expected, "f");
        assert_eq!(BYTES.to_vec(), expected);
    }

    /// What the SDK writes, the host reads back: the same manifest, and the checksums the
    /// SDK computes for the plugin built at run time.
    #[test]
    fn the_host_decodes_what_the_sdk_writes() {
        fn noop(_: &crate::Tx) -> crate::Result<()> {
            Ok(())
        }
        const Q: StaticPlugin = StaticPlugin::new("notes", "0.3.0")
            .description("Notes")
            .depends_on(&[("accounts", "^0.2")])
            .reads(&["accounts"])
            .migrations(&[
                StaticMigration::sql("0.1.0", "create", "CREATE TABLE notes__n (id INTEGER)")
                    .down_sql("DROP TABLE notes__n"),
                StaticMigration::code("0.2.0", "backfill", "rev-1", noop).down_code("rev-2", noop),
                StaticMigration::sql("0.3.0", "index", "CREATE INDEX notes__i ON notes__n (id)"),
            ]);
        const N: usize = encoded_len(&Q);
        let bytes: [u8; N] = encode(&Q);
        let decoded = wasmig_format::declaration::Declaration::decode(&bytes).unwrap();
        let m = &decoded.manifest;
        assert_eq!((m.name.as_str(), m.version.as_str()), ("notes", "0.3.0"));
        assert_eq!(m.depends_on, [("accounts".to_string(), "^0.2".to_string())]);
        assert_eq!(m.reads, ["accounts"]);
        let built = Q.plugin();
        assert_eq!(m.migrations.len(), built.migrations().len());
        for (read, made) in m.migrations.iter().zip(built.migrations()) {
            assert_eq!(read.version, made.version());
            assert_eq!(read.checksum, made.checksum(), "{}", read.version);
        }
        assert!(decoded.has_code());
    }
}
