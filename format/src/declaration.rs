//! A plugin's declaration: its manifest and its SQL, carried as data in the component (the
//! custom section [`SECTION`], which the guest SDK's `export_static_plugin!` writes).
//!
//! The host reads it without compiling the plugin. The manifest then comes from the data, the
//! checksums are computed here from the SQL the host will run (as the SDK computes them, so a
//! plugin's checksums do not change when it moves to a declaration), and SQL steps run from
//! the data. Only code steps need the plugin's code.
//!
//! The encoding, version 1: a format byte, then strings as a 4-byte little-endian length and
//! UTF-8, counts as 4-byte little-endian numbers: name, version, description; the count of
//! dependencies, then each one's name and requirement; the count of reads, then each name;
//! the count of migrations, then each one's version, description, up step and down step. A
//! step is a kind byte (0: none, only for down; 1: SQL; 2: code) and then its SQL text or its
//! code's revision.

use crate::manifest::{
    MAX_DEPENDENCIES, MAX_MIGRATIONS, ManifestProblem, RawManifest, RawMigration,
};
use semver::Version;
use std::collections::BTreeMap;

pub use crate::section::{FORMAT, SECTION};

/// A plugin's declaration, decoded.
#[derive(Debug)]
pub struct Declaration {
    /// The manifest, checksums computed from the declared steps.
    pub manifest: RawManifest,
    /// Each step's up and down, by version.
    steps: BTreeMap<Version, (Body, Option<Body>)>,
}

/// What one direction of a step runs.
#[derive(Debug)]
enum Body {
    Sql(String),
    /// Code, with the revision it declares (for the checksum).
    Code(String),
}

/// Why a declaration section cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The section is in an encoding this reader does not know.
    Format {
        /// The section's first byte.
        found: u8,
    },
    /// The bytes do not follow the encoding.
    Malformed {
        /// What was being read, or what is wrong.
        what: String,
        /// Where, in bytes from the section's start.
        at: usize,
    },
    /// More steps, dependencies or read requests than a plugin may declare (see
    /// [`crate::manifest::MAX_MIGRATIONS`]), found before any of them is read.
    TooMany(crate::manifest::ManifestProblem),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Format { found } => write!(
                f,
                "its declaration is in format {found}; this wasmig reads format {FORMAT} (is \
                 the plugin built with a newer wasmig-guest?)"
            ),
            DecodeError::Malformed { what, at } => {
                write!(f, "its declaration is malformed: {what} at byte {at}")
            }
            DecodeError::TooMany(problem) => write!(f, "{problem}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Declaration {
    /// Decodes a declaration section's contents.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { data, at: 0 };
        let format = r.byte()?;
        if format != FORMAT {
            return Err(DecodeError::Format { found: format });
        }
        let name = r.text()?;
        let version = r.text()?;
        let description = r.text()?;
        let mut depends_on = Vec::new();
        for _ in 0..r.bounded_count(8, "dependencies", MAX_DEPENDENCIES)? {
            depends_on.push((r.text()?, r.text()?));
        }
        let mut reads = Vec::new();
        for _ in 0..r.bounded_count(4, "read requests", MAX_DEPENDENCIES)? {
            reads.push(r.text()?);
        }
        let mut migrations = Vec::new();
        let mut steps = BTreeMap::new();
        for _ in 0..r.bounded_count(10, "migrations", MAX_MIGRATIONS)? {
            let version = r.text()?;
            let description = r.text()?;
            let up = r.body(false)?.expect("an up step is never none");
            let down = r.body(true)?;
            migrations.push(RawMigration {
                checksum: checksum(&up, down.as_ref()),
                reversible: down.is_some(),
                version: version.clone(),
                description,
            });
            // A version that is not semver fails the manifest's validation.
            if let Ok(v) = Version::parse(&version) {
                steps.insert(v, (up, down));
            }
        }
        if r.at != data.len() {
            return Err(r.malformed(&format!("{} bytes after the end", data.len() - r.at)));
        }
        Ok(Declaration {
            manifest: RawManifest {
                name,
                version,
                description,
                depends_on,
                reads,
                migrations,
            },
            steps,
        })
    }

    /// The SQL that step `version` runs going up (or down), when the step declares SQL for
    /// that direction; `None` when its code runs it (or it has no down).
    pub fn sql(&self, version: &Version, up: bool) -> Option<&str> {
        let (up_body, down_body) = self.steps.get(version)?;
        match if up {
            Some(up_body)
        } else {
            down_body.as_ref()
        } {
            Some(Body::Sql(sql)) => Some(sql),
            _ => None,
        }
    }

    /// Whether any step runs code: then the plugin must be compiled to run it.
    pub fn has_code(&self) -> bool {
        self.steps
            .values()
            .any(|(up, down)| matches!(up, Body::Code(_)) || matches!(down, Some(Body::Code(_))))
    }
}

/// A step's checksum, computed as the guest SDK computes it for the plugin's manifest.
fn checksum(up: &Body, down: Option<&Body>) -> String {
    fn body(b: &Body) -> crate::checksum::Body<'_> {
        match b {
            Body::Sql(sql) => crate::checksum::Body::Sql(sql),
            Body::Code(revision) => crate::checksum::Body::Code(revision),
        }
    }
    crate::checksum::step(body(up), down.map(body))
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn malformed(&self, what: &str) -> DecodeError {
        DecodeError::Malformed {
            what: what.to_string(),
            at: self.at,
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], DecodeError> {
        if self.data.len() - self.at < n {
            return Err(self.malformed(&format!("{what} runs past the end")));
        }
        let bytes = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1, "a byte")?[0])
    }

    fn u32(&mut self) -> Result<usize, DecodeError> {
        let b = self.take(4, "a length")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// A count of items that take at least `min_size` bytes each: one that cannot fit in
    /// what is left is refused before anything is allocated for it.
    fn count(&mut self, min_size: usize) -> Result<usize, DecodeError> {
        let n = self.u32()?;
        if n.saturating_mul(min_size) > self.data.len() - self.at {
            self.at -= 4;
            return Err(self.malformed(&format!("a count of {n} items")));
        }
        Ok(n)
    }

    /// A [`Self::count`] of at most `max` items (`what`): a declaration of more is refused
    /// before any of them is read.
    fn bounded_count(
        &mut self,
        min_size: usize,
        what: &'static str,
        max: usize,
    ) -> Result<usize, DecodeError> {
        let count = self.count(min_size)?;
        if count > max {
            return Err(DecodeError::TooMany(ManifestProblem::TooMany {
                what,
                count,
                max,
            }));
        }
        Ok(count)
    }

    fn text(&mut self) -> Result<String, DecodeError> {
        let len = self.u32()?;
        let start = self.at;
        let bytes = self.take(len, "a text")?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => {
                self.at = start;
                Err(self.malformed("a text that is not UTF-8"))
            }
        }
    }

    fn body(&mut self, may_be_none: bool) -> Result<Option<Body>, DecodeError> {
        match self.byte()? {
            0 if may_be_none => Ok(None),
            1 => Ok(Some(Body::Sql(self.text()?))),
            2 => Ok(Some(Body::Code(self.text()?))),
            kind => {
                self.at -= 1;
                Err(self.malformed(&format!("a step of unknown kind {kind}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u32).to_le_bytes());
        out.extend(s.as_bytes());
    }

    fn encoded(up: &[u8], down: &[u8]) -> Vec<u8> {
        let mut out = vec![1];
        for s in ["ab", "1.0.0", "desc"] {
            text(&mut out, s);
        }
        out.extend(1u32.to_le_bytes());
        text(&mut out, "c");
        text(&mut out, "^1");
        out.extend(0u32.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        text(&mut out, "1.0.0");
        text(&mut out, "first");
        out.extend(up);
        out.extend(down);
        out
    }

    fn sql(s: &str) -> Vec<u8> {
        let mut out = vec![1];
        text(&mut out, s);
        out
    }

    #[test]
    fn decodes_the_manifest_and_the_steps() {
        let d = Declaration::decode(&encoded(&sql("CREATE TABLE ab__t (x)"), &[0])).unwrap();
        assert_eq!(d.manifest.name, "ab");
        assert_eq!(d.manifest.depends_on, vec![("c".into(), "^1".into())]);
        let m = &d.manifest.migrations[0];
        assert!(!m.reversible);
        let v = Version::new(1, 0, 0);
        assert_eq!(d.sql(&v, true), Some("CREATE TABLE ab__t (x)"));
        assert_eq!(d.sql(&v, false), None);
        assert!(!d.has_code());
        // The SDK's checksum of `Migration::sql("1.0.0", "first", "CREATE TABLE ab__t (x)")`.
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in ["sql", "CREATE TABLE ab__t (x)"] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        assert_eq!(m.checksum, format!("sha256:{}", hex::encode(h.finalize())));
    }

    #[test]
    fn code_steps_are_not_sql() {
        let mut code = vec![2];
        text(&mut code, "rev-1");
        let d = Declaration::decode(&encoded(&code, &sql("DROP TABLE ab__t"))).unwrap();
        let v = Version::new(1, 0, 0);
        assert_eq!(d.sql(&v, true), None);
        assert_eq!(d.sql(&v, false), Some("DROP TABLE ab__t"));
        assert!(d.has_code());
        assert!(d.manifest.migrations[0].reversible);
    }

    #[test]
    fn malformed_declarations_say_where() {
        let good = encoded(&sql("x"), &[0]);
        for (bytes, expected) in [
            (vec![2u8], "format 2"),
            (good[..good.len() - 1].to_vec(), "runs past the end"),
            ([&good[..], &[0][..]].concat(), "1 bytes after the end"),
            (encoded(&[7], &[0]), "unknown kind 7"),
            (encoded(&sql("x"), &[9]), "unknown kind 9"),
            (encoded(&[0], &[0]), "unknown kind 0"),
            (encoded(&[1, 1, 0, 0, 0, 0xff], &[0]), "not UTF-8"),
        ] {
            let e = Declaration::decode(&bytes).unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
        }
        let mut huge = vec![1];
        for s in ["ab", "1.0.0", "desc"] {
            text(&mut huge, s);
        }
        huge.extend(u32::MAX.to_le_bytes());
        let e = Declaration::decode(&huge).unwrap_err();
        assert_eq!(
            e,
            DecodeError::Malformed {
                what: "a count of 4294967295 items".into(),
                at: 24
            }
        );
    }
}
