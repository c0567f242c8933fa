//! A migration step's checksum, as the host records it and compares it for drift. The guest
//! SDK computes it for a plugin's manifest and the host for a declared plugin's SQL, both with
//! this function, so the two forms of one plugin cannot disagree.

use sha2::{Digest, Sha256};

/// What one direction of a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// A SQL script.
    Sql(&'a str),
    /// Code, identified by the revision its author declares (code cannot be fingerprinted).
    Code(&'a str),
}

/// `sha256:` and the hex SHA-256 of length-prefixed parts: `sql` and the script (or `code`
/// and the revision), then, for a down step, `down-sql\n` and its script (or `down-code\n`
/// and its revision). Length prefixes make moving text between parts change the hash.
pub fn step(up: Body<'_>, down: Option<Body<'_>>) -> String {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[&str]| {
        let len: usize = bytes.iter().map(|b| b.len()).sum();
        hasher.update((len as u64).to_le_bytes());
        for b in bytes {
            hasher.update(b.as_bytes());
        }
    };
    match up {
        Body::Sql(sql) => {
            part(&["sql"]);
            part(&[sql]);
        }
        Body::Code(revision) => {
            part(&["code"]);
            part(&[revision]);
        }
    }
    match down {
        None => {}
        Some(Body::Sql(sql)) => part(&["down-sql\n", sql]),
        Some(Body::Code(revision)) => part(&["down-code\n", revision]),
    }
    let digest = hasher.finalize();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_counts() {
        let a = step(Body::Sql("CREATE TABLE x__t (a)"), None);
        assert!(a.starts_with("sha256:") && a.len() == 71, "{a}");
        assert_ne!(a, step(Body::Code("CREATE TABLE x__t (a)"), None));
        assert_ne!(
            a,
            step(Body::Sql("CREATE TABLE x__t (a)"), Some(Body::Sql("")))
        );
        assert_ne!(
            step(Body::Sql("a"), Some(Body::Sql("b"))),
            step(Body::Sql("a"), Some(Body::Code("b")))
        );
        // Text moved between the parts changes the hash.
        assert_ne!(
            step(Body::Sql("ab"), None),
            step(Body::Sql("a"), Some(Body::Sql("b")))
        );
    }
}
