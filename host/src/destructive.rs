//! The destructive-change gate: whether an up step destroys data, from the statements it ran
//! and its tables before and after it.
//!
//! A step destroys data when it drops a table (one that is not renamed: no table of the same
//! columns takes its place), when a table loses a column (dropped, or rebuilt with fewer
//! columns; a column renamed by `RENAME COLUMN` is not lost), or when it deletes or rewrites
//! every row of a table (`DELETE` or `UPDATE` without `WHERE`, `TRUNCATE`). Such a step runs
//! only if the plugin marks it (a `-- wasmig:destructive` comment in its SQL) and the operator
//! allows it (`--allow-destructive`, or `allow_destructive` for the plugin in the policy).
//! This is a safety net against mistakes, not part of the sandbox: what a plugin may reach is
//! bounded elsewhere, whatever this gate says.

use std::collections::BTreeMap;

/// The comment that marks a step as intentionally destructive.
pub const MARKER: &str = "wasmig:destructive";

/// A plugin's tables and their columns, in order, by table name (SQLite: lowercase;
/// PostgreSQL: as the catalog has them).
pub(crate) type Tables = BTreeMap<String, Vec<String>>;

/// What a statement is, as far as the gate cares: its words outside strings, comments and
/// quotes, uppercase (identifiers lowercase, unquoted).
fn words(statement: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = statement.chars().peekable();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                flush(&mut word, &mut out);
                // A string literal: skipped ('' inside it is an escaped quote).
                while let Some(c) = chars.next() {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push("'…'".to_string());
            }
            '"' | '`' | '[' => {
                // A quoted identifier: its text, as one word.
                let close = match c {
                    '[' => ']',
                    other => other,
                };
                flush(&mut word, &mut out);
                let mut ident = String::new();
                while let Some(c) = chars.next() {
                    if c == close {
                        // `""` and ``` `` ``` inside are an escaped quote (not `]]`).
                        if close != ']' && chars.peek() == Some(&close) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    ident.push(c);
                }
                out.push(ident.to_ascii_lowercase());
            }
            '-' if chars.peek() == Some(&'-') => {
                flush(&mut word, &mut out);
                // PostgreSQL ends a line comment at `\r` too; SQLite does not, and a word
                // seen in what SQLite takes for a comment only makes the gate stricter.
                for c in chars.by_ref() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                flush(&mut word, &mut out);
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '$' => word.push(c),
            _ => {
                flush(&mut word, &mut out);
                if !c.is_whitespace() && c != ';' {
                    out.push(c.to_string());
                }
            }
        }
    }
    flush(&mut word, &mut out);
    out.into_iter()
        .map(|w| {
            if w.chars().all(|c| c.is_ascii_alphabetic()) {
                w.to_ascii_uppercase()
            } else {
                w.to_ascii_lowercase()
            }
        })
        .collect()
}

/// The unqualified, lowercase name of `name` (`main.t`, `schema.t` → `t`).
fn bare(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase()
}

/// What the gate reads of the statements a step ran, gathered as each runs: the audit trail
/// keeps only the first MiB of them, and a destructive statement may come after it.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// What the statements destroy by themselves, each once (at most [`MAX_SEEN`]).
    destroyed: Vec<String>,
    /// How many more they destroy.
    more: usize,
    /// The columns the statements rename, as (table, old, new) (at most [`MAX_SEEN`]: a
    /// rename not kept makes its column count as dropped, so the gate refuses more, never
    /// less).
    pub(crate) renames: Vec<(String, String, String)>,
    /// Whether a statement carries the marker.
    pub(crate) marked: bool,
    /// The bytes of names and descriptions kept in `destroyed` and `renames`.
    bytes: usize,
}

/// The most entries [`Seen`] keeps of each kind.
const MAX_SEEN: usize = 1000;

/// The most bytes [`Seen`] keeps of its entries in all: a name may be as long as a statement,
/// and what the host keeps for a step must not grow with what the plugin's names make it.
const MAX_SEEN_BYTES: usize = 1 << 20;

/// How much of a statement [`Seen`] reads: its kind, its table, a rename are at its start.
/// A `DELETE` or `UPDATE` whose `WHERE` comes later counts as one without (the gate refuses
/// more, never less), and the reading costs the host little whatever the statement.
const READ_BYTES: usize = 64 << 10;

/// What one statement destroys and renames by its text, read before it runs: it counts in
/// [`Seen`] once the statement has not failed ([`Seen::add`]). A statement that failed (the
/// host or the database refused it) destroyed nothing, and its text may name what the plugin
/// cannot reach.
#[derive(Debug, Default)]
pub(crate) struct Found {
    destroyed: Vec<String>,
    rename: Option<(String, String, String)>,
}

impl Seen {
    /// Reads one statement the plugin is about to run. Its marker counts at once (the marker
    /// says what the plugin intends, whether or not the statement ran); what it destroys or
    /// renames is returned, for [`Seen::add`] once it has run.
    pub(crate) fn read(&mut self, statement: &str) -> Found {
        // A longer one is refused before it runs, on either database (SQLite's limit is
        // lower).
        if statement.len() > crate::store::MAX_STATEMENT_BYTES {
            return Found::default();
        }
        let mut end = statement.len().min(READ_BYTES);
        while !statement.is_char_boundary(end) {
            end -= 1;
        }
        let w = words(&statement[..end]);
        let mut found = Found::default();
        destroys(&w, &mut found.destroyed);
        found.rename = renamed_column(&w);
        self.marked |= statement.contains(MARKER);
        found
    }

    /// Counts what a statement that ran destroys and renames.
    pub(crate) fn add(&mut self, found: Found) {
        for found in found.destroyed {
            if !self.destroyed.contains(&found) {
                if self.destroyed.len() < MAX_SEEN && self.bytes + found.len() <= MAX_SEEN_BYTES {
                    self.bytes += found.len();
                    self.destroyed.push(found);
                } else {
                    self.more += 1;
                }
            }
        }
        if let Some(rename) = found.rename {
            let size = rename.0.len() + rename.1.len() + rename.2.len();
            if self.renames.len() < MAX_SEEN && self.bytes + size <= MAX_SEEN_BYTES {
                self.bytes += size;
                self.renames.push(rename);
            }
        }
    }

    /// What the statements destroy by themselves.
    pub(crate) fn destroyed(&self) -> Vec<String> {
        let mut out = self.destroyed.clone();
        if self.more > 0 {
            out.push(format!("{} more", self.more));
        }
        out
    }
}

/// Whether the step's SQL carries the marker.
pub(crate) fn marked<'a>(mut texts: impl Iterator<Item = &'a str>) -> bool {
    texts.any(|t| t.contains(MARKER))
}

/// What the statements destroy by themselves: every row of a table deleted or rewritten.
#[cfg(test)]
pub(crate) fn in_statements(statements: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for statement in statements {
        destroys(&words(statement), &mut found);
    }
    found
}

/// What one statement, by its words, destroys by itself, added to `found`.
fn destroys(w: &[String], found: &mut Vec<String>) {
    {
        // After a WITH clause, the statement proper.
        let start = if w.first().map(String::as_str) == Some("WITH") {
            let mut depth = 0i32;
            let mut at = None;
            for (i, word) in w.iter().enumerate() {
                match word.as_str() {
                    "(" => depth += 1,
                    ")" => depth -= 1,
                    "DELETE" | "UPDATE" | "INSERT" | "SELECT" | "REPLACE"
                        if depth == 0 && i > 0 =>
                    {
                        at = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            match at {
                Some(i) => i,
                None => return,
            }
        } else {
            0
        };
        let w = &w[start..];
        // The statement's own WHERE, not one of a subquery's (`RETURNING (SELECT 1 WHERE 1)`).
        let mut depth = 0i32;
        let has_where = w.iter().any(|x| {
            match x.as_str() {
                "(" => depth += 1,
                ")" => depth -= 1,
                _ => {}
            }
            depth == 0 && x == "WHERE"
        });
        match w.first().map(String::as_str) {
            Some("DELETE") if !has_where => {
                if let Some(table) = w.iter().skip_while(|x| *x != "FROM").nth(1) {
                    found.push(format!("deletes every row of {}", bare(table)));
                }
            }
            Some("UPDATE") if !has_where => {
                let table = w.iter().skip(1).find(|x| {
                    !matches!(
                        x.as_str(),
                        "OR" | "ROLLBACK" | "ABORT" | "REPLACE" | "FAIL" | "IGNORE" | "ONLY"
                    )
                });
                if let Some(table) = table {
                    found.push(format!("rewrites every row of {}", bare(table)));
                }
            }
            Some("TRUNCATE") => {
                for table in w.iter().skip(1).filter(|x| {
                    !matches!(
                        x.as_str(),
                        "TABLE"
                            | "ONLY"
                            | ","
                            | "RESTART"
                            | "CONTINUE"
                            | "IDENTITY"
                            | "CASCADE"
                            | "RESTRICT"
                            | ";"
                    )
                }) {
                    found.push(format!("deletes every row of {}", bare(table)));
                }
            }
            _ => {}
        }
    }
}

/// The column one statement, by its words, renames (`RENAME COLUMN a TO b`, PostgreSQL's
/// `RENAME a TO b`), as (table, old, new).
fn renamed_column(w: &[String]) -> Option<(String, String, String)> {
    if w.len() < 6 || w[0] != "ALTER" || w[1] != "TABLE" {
        return None;
    }
    let table = bare(
        w.iter()
            .skip(2)
            .find(|x| !matches!(x.as_str(), "IF" | "EXISTS" | "ONLY"))
            .unwrap_or(&String::new()),
    );
    let at = w.iter().position(|x| x == "RENAME")?;
    let rest: Vec<&String> = w[at + 1..].iter().filter(|x| *x != "COLUMN").collect();
    (rest.len() == 3 && rest[1] == "TO" && rest[0] != "TO")
        .then(|| (table, bare(rest[0]), bare(rest[2])))
}

/// What the step destroyed, by its tables before and after it: tables gone (not renamed)
/// and columns gone (not renamed).
pub(crate) fn in_tables(
    before: &Tables,
    after: &Tables,
    renames: &[(String, String, String)],
) -> Vec<String> {
    use std::collections::{BTreeSet, HashSet};
    // The column sets of the tables the step made, once: a dropped table whose columns
    // match one of them was renamed.
    let made: HashSet<BTreeSet<&str>> = after
        .iter()
        .filter(|(name, _)| !before.contains_key(*name))
        .map(|(_, cols)| cols.iter().map(String::as_str).collect())
        .collect();
    // The renames as the gate read them, lowercase (the statements' words are), by table and
    // old name: a table's names are matched without case.
    let renamed_to: std::collections::HashMap<(&str, &str), &str> = renames
        .iter()
        .map(|(t, old, new)| ((t.as_str(), old.as_str()), new.as_str()))
        .collect();
    let mut found = Vec::new();
    for (table, columns) in before {
        let lower_table = table.to_ascii_lowercase();
        // Its columns as the step's `RENAME COLUMN`s left them.
        let renamed: Vec<String> = columns
            .iter()
            .map(|c| {
                renamed_to
                    .get(&(lower_table.as_str(), c.to_ascii_lowercase().as_str()))
                    .map_or(c.clone(), |new| new.to_string())
            })
            .collect();
        match after.get(table) {
            None => {
                if !made.contains(
                    &renamed
                        .iter()
                        .map(String::as_str)
                        .collect::<BTreeSet<&str>>(),
                ) {
                    found.push(format!("drops table {table}"));
                }
            }
            Some(now) => {
                let now: HashSet<String> = now.iter().map(|c| c.to_ascii_lowercase()).collect();
                for (column, renamed) in columns.iter().zip(&renamed) {
                    if !now.contains(&column.to_ascii_lowercase())
                        && !now.contains(&renamed.to_ascii_lowercase())
                    {
                        found.push(format!("drops column {table}.{column}"));
                    }
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|x| x.to_string()).collect()
    }

    fn tables(list: &[(&str, &[&str])]) -> Tables {
        list.iter()
            .map(|(t, c)| (t.to_string(), c.iter().map(|x| x.to_string()).collect()))
            .collect()
    }

    #[test]
    fn a_quoted_name_ends_where_sqlite_ends_it() {
        // `""` inside a quoted name is a quote: no rename is read out of a name.
        let mut seen = Seen::default();
        let found = seen.read("ALTER TABLE p__t ADD COLUMN \"x\"\"RENAME\"\"b\"\"TO\"\"c\"");
        seen.add(found);
        assert!(seen.renames.is_empty(), "{:?}", seen.renames);
        assert_eq!(
            words("SELECT \"a\"\"b\", `c``d`, [e]"),
            ["SELECT", "a\"b", ",", "c`d", ",", "E"]
        );
    }

    #[test]
    fn what_is_kept_of_a_steps_statements_does_not_grow_with_its_names() {
        let mut seen = Seen::default();
        for k in 0..100 {
            let name = format!("p__{k}{}", "x".repeat(60_000));
            let found = seen.read(&format!("DELETE FROM \"{name}\""));
            seen.add(found);
            let found = seen.read(&format!("ALTER TABLE p__t RENAME COLUMN \"{name}\" TO b"));
            seen.add(found);
        }
        assert!(seen.bytes <= MAX_SEEN_BYTES);
        let destroyed = seen.destroyed();
        assert!(destroyed.len() < 20, "{}", destroyed.len());
        assert!(destroyed.last().unwrap().ends_with(" more"));
        assert!(seen.renames.len() < 20);
    }

    #[test]
    fn bulk_deletes_and_rewrites_are_found_and_filtered_ones_are_not() {
        assert_eq!(
            in_statements(&s(&[
                "DELETE FROM shop__item",
                "delete from \"shop__order\" -- WHERE in a comment",
                "UPDATE shop__item SET name = 'WHERE'",
                "UPDATE OR REPLACE shop__tag SET x = 1",
                "TRUNCATE TABLE shop__a, shop__b",
                "WITH gone AS (SELECT 1) DELETE FROM shop__c",
                "DELETE FROM shop__d RETURNING (SELECT 1 WHERE 1)",
                "UPDATE shop__e SET n = (SELECT max(n) FROM shop__f WHERE shop__f.id = 1)",
            ])),
            [
                "deletes every row of shop__item",
                "deletes every row of shop__order",
                "rewrites every row of shop__item",
                "rewrites every row of shop__tag",
                "deletes every row of shop__a",
                "deletes every row of shop__b",
                "deletes every row of shop__c",
                "deletes every row of shop__d",
                "rewrites every row of shop__e",
            ]
        );
        assert!(
            in_statements(&s(&[
                "DELETE FROM shop__item WHERE id = 1",
                "UPDATE shop__item SET n = n + 1 WHERE id IN (SELECT id FROM shop__tag)",
                "INSERT INTO shop__item SELECT * FROM shop__old",
            ]))
            .is_empty()
        );
    }

    #[test]
    fn dropped_tables_and_columns_are_found_and_renames_are_not() {
        let before = tables(&[
            ("t", &["id", "a", "b"]),
            ("u", &["id"]),
            ("v", &["id", "x"]),
        ]);
        let after = tables(&[("t", &["id", "b2"]), ("w", &["id"]), ("v", &["id", "y"])]);
        let mut seen = Seen::default();
        for statement in [
            "ALTER TABLE t DROP COLUMN a",
            "ALTER TABLE t RENAME COLUMN b TO b2;",
            "ALTER TABLE u RENAME TO w",
        ] {
            let found = seen.read(statement);
            seen.add(found);
        }
        assert_eq!(
            in_tables(&before, &after, &seen.renames),
            ["drops column t.a", "drops column v.x"]
        );
    }
}
