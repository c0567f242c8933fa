//! The text of a plugin's statements on PostgreSQL: which kind a statement is, and a script
//! split into its statements.
//!
//! Each statement goes to the server on its own through the extended protocol, which refuses
//! more than one command per message: a split in the wrong place is a syntax error, never two
//! statements where one was checked. What a statement may do is PostgreSQL's to decide by
//! the plugin role's privileges; the kind check keeps only what privileges do not govern
//! (transaction control, session state) out of a plugin's hands.

/// The statements a plugin's SQL may start with. Transaction control (`BEGIN`, `COMMIT`,
/// `SAVEPOINT`, `PREPARE TRANSACTION`), session state (`SET`, `RESET`, `DISCARD`, `LISTEN`,
/// `NOTIFY`), `COPY` and utility commands are not among them. `LOCK` is: the table's
/// privileges govern it, and the lock ends with the step's transaction.
const ALLOWED: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "TABLE", "MERGE", "CREATE", "ALTER",
    "DROP", "COMMENT", "TRUNCATE", "DO", "CALL", "REFRESH", "ANALYZE", "LOCK",
];

/// What follows `ALTER` that a plugin may not change: roles and their settings, default
/// privileges, the server, the database, schemas, tablespaces and large objects.
const ALTER_REFUSED: &[&str] = &[
    "ROLE",
    "USER",
    "GROUP",
    "DEFAULT",
    "SYSTEM",
    "DATABASE",
    "SCHEMA",
    "TABLESPACE",
    "LARGE",
    "EVENT",
    "EXTENSION",
    "PUBLICATION",
    "SUBSCRIPTION",
    "SERVER",
    "FOREIGN",
];

/// The statement's first word, upper-cased (`(` for a parenthesized query); `Err`: why the
/// statement may not run as a plugin's.
pub(super) fn check_kind(sql: &str) -> Result<String, String> {
    let mut words = Words::new(sql);
    let Some(first) = words.next() else {
        return Err("the statement is empty".into());
    };
    if first == "(" {
        return Ok(first);
    }
    // `SET CONSTRAINTS` is of the step's transaction alone, whose deferred checks the host
    // makes immediate at the end of the plugin's turn.
    if first == "SET" && words.clone().next().as_deref() == Some("CONSTRAINTS") {
        return Ok(first);
    }
    if !ALLOWED.contains(&first.as_str()) {
        return Err(format!(
            "a plugin's statement may not be {first} (allowed: {}); wasmig runs each step in \
             one transaction it commits or rolls back itself",
            ALLOWED.join(", ")
        ));
    }
    if first == "ALTER"
        && let Some(second) = words.next()
        && ALTER_REFUSED.contains(&second.as_str())
    {
        return Err(format!("a plugin's statement may not be ALTER {second}"));
    }
    Ok(first)
}

/// Whether a statement of this kind reports the rows it inserted, updated or deleted (the
/// others report rows returned, or none).
pub(super) fn changes_rows(kind: &str) -> bool {
    matches!(kind, "INSERT" | "UPDATE" | "DELETE" | "MERGE")
}

/// The words of a statement, upper-cased, skipping comments and whitespace; a punctuation
/// character is a word of its own.
#[derive(Clone)]
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    fn new(sql: &'a str) -> Self {
        Words { rest: sql }
    }
}

impl Iterator for Words<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        loop {
            let s = self.rest.trim_start();
            if let Some(after) = s.strip_prefix("--") {
                self.rest = after.split_once('\n').map_or("", |(_, r)| r);
                continue;
            }
            if s.starts_with("/*") {
                self.rest = &s[block_comment_len(s)..];
                continue;
            }
            let first = s.chars().next()?;
            if first.is_alphabetic() || first == '_' {
                let end = s
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                    .unwrap_or(s.len());
                self.rest = &s[end..];
                return Some(s[..end].to_ascii_uppercase());
            }
            self.rest = &s[first.len_utf8()..];
            return Some(first.to_string());
        }
    }
}

/// The length of the (nested) block comment at the start of `s`, or all of `s` if unclosed.
fn block_comment_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    s.len()
}

/// Splits a script into its statements at the semicolons outside quotes, dollar quotes and
/// comments; empty statements are left out. One at a time: a script may hold millions.
pub(super) fn split(script: &str) -> Split<'_> {
    Split {
        script,
        start: 0,
        i: 0,
        done: false,
    }
}

/// The statements of a script, as [`split`] finds them.
pub(super) struct Split<'s> {
    script: &'s str,
    /// Where the statement being read begins, and how far it is read.
    start: usize,
    i: usize,
    done: bool,
}

impl<'s> Iterator for Split<'s> {
    type Item = &'s str;

    fn next(&mut self) -> Option<&'s str> {
        let script = self.script;
        let bytes = script.as_bytes();
        while !self.done {
            let i = self.i;
            let end = if i >= bytes.len() {
                self.done = true;
                Some(bytes.len())
            } else {
                match bytes[i] {
                    b';' => {
                        self.i = i + 1;
                        Some(i)
                    }
                    b'-' if bytes.get(i + 1) == Some(&b'-') => {
                        self.i = script[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
                        None
                    }
                    b'/' if bytes.get(i + 1) == Some(&b'*') => {
                        self.i = i + block_comment_len(&script[i..]);
                        None
                    }
                    b'\'' => {
                        // E'…' strings take backslash escapes.
                        let escapes = i > 0 && matches!(bytes[i - 1], b'e' | b'E');
                        let mut j = i + 1;
                        while j < bytes.len() {
                            match bytes[j] {
                                b'\\' if escapes => j += 2,
                                b'\'' if bytes.get(j + 1) == Some(&b'\'') => j += 2,
                                b'\'' => {
                                    j += 1;
                                    break;
                                }
                                _ => j += 1,
                            }
                        }
                        self.i = j;
                        None
                    }
                    b'"' => {
                        let mut j = i + 1;
                        while j < bytes.len() {
                            if bytes[j] == b'"' {
                                if bytes.get(j + 1) == Some(&b'"') {
                                    j += 2;
                                    continue;
                                }
                                j += 1;
                                break;
                            }
                            j += 1;
                        }
                        self.i = j;
                        None
                    }
                    b'$' => {
                        self.i = match dollar_tag(&script[i..]) {
                            Some(tag) => {
                                let body = i + tag.len();
                                script[body..]
                                    .find(tag)
                                    .map_or(bytes.len(), |n| body + n + tag.len())
                            }
                            None => i + 1,
                        };
                        None
                    }
                    _ => {
                        self.i = i + 1;
                        None
                    }
                }
            };
            if let Some(end) = end {
                // An escape or a quote may run past the end: the statement ends there.
                let statement = script[self.start.min(bytes.len())..end.min(bytes.len())].trim();
                self.start = self.i;
                if !only_comments(statement) {
                    return Some(statement);
                }
            }
        }
        None
    }
}

/// The statement with SQLite's numbered parameters (`?1`, `?2`) written as PostgreSQL's
/// (`$1`, `$2`), outside quotes and comments, so a plugin's statements with parameters run
/// on both. A `?` without a number is left alone: on PostgreSQL it is the `jsonb` operator.
pub(super) fn numbered_parameters(sql: &str) -> std::borrow::Cow<'_, str> {
    if !sql.contains('?') {
        return std::borrow::Cow::Borrowed(sql);
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0usize;
    let mut copied = 0usize;
    while i < bytes.len() {
        let skip_to = match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                Some(sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1))
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => Some(i + block_comment_len(&sql[i..])),
            b'\'' | b'"' => {
                let quote = bytes[i];
                let escapes = quote == b'\'' && i > 0 && matches!(bytes[i - 1], b'e' | b'E');
                let mut j = i + 1;
                while j < bytes.len() {
                    match bytes[j] {
                        b'\\' if escapes => j += 2,
                        c if c == quote && bytes.get(j + 1) == Some(&quote) => j += 2,
                        c if c == quote => {
                            j += 1;
                            break;
                        }
                        _ => j += 1,
                    }
                }
                Some(j.min(bytes.len()))
            }
            b'$' => dollar_tag(&sql[i..]).map(|tag| {
                let body = i + tag.len();
                sql[body..]
                    .find(tag)
                    .map_or(bytes.len(), |n| body + n + tag.len())
            }),
            b'?' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push_str(&sql[copied..i]);
                out.push('$');
                copied = i + 1;
                None
            }
            _ => None,
        };
        i = skip_to.unwrap_or(i + 1);
    }
    out.push_str(&sql[copied..]);
    std::borrow::Cow::Owned(out)
}

/// The dollar-quote opening tag (`$$`, `$body$`) at the start of `s`, if one is there.
fn dollar_tag(s: &str) -> Option<&str> {
    let inner = &s[1..];
    let end = inner.find('$')?;
    let tag = &inner[..end];
    let valid = tag
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_alphabetic() || (i > 0 && c.is_ascii_digit()));
    valid.then(|| &s[..end + 2])
}

fn only_comments(s: &str) -> bool {
    Words::new(s).next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert!(check_kind("  -- x\n/* a /* b */ */ create table t (x int)").is_ok());
        assert!(check_kind("(select 1)").is_ok());
        assert!(check_kind("LOCK TABLE t IN ACCESS EXCLUSIVE MODE").is_ok());
        assert!(check_kind("set /* x */ constraints all deferred").is_ok());
        for refused in [
            "set local statement_timeout = 0",
            "set session authorization postgres",
            "COMMIT",
            "begin",
            "end",
            "rollback",
            "savepoint a",
            "prepare transaction 'x'",
            "set role postgres",
            "reset role",
            "discard all",
            "listen x",
            "notify x",
            "copy t from program 'id'",
            "alter role current_user set search_path = x",
            "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC",
            "/* */ grant select on t to public",
            "",
            "-- only a comment",
        ] {
            assert!(check_kind(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn parameters() {
        assert_eq!(
            numbered_parameters("insert into t values (?1, '?2', ?2) -- ?3\n, \"?4\" ? 'k'"),
            "insert into t values ($1, '?2', $2) -- ?3\n, \"?4\" ? 'k'"
        );
        assert_eq!(
            numbered_parameters("select $$ ?1 $$, ?10"),
            "select $$ ?1 $$, $10"
        );
    }

    #[test]
    fn splitting() {
        let script = "create table a (x text default ';');\n\
                      -- a comment; with a semicolon\n\
                      create function f() returns int language sql as $$ select 1; $$;\n\
                      create function g() returns int language plpgsql as $b$ begin return 1; end $b$;\n\
                      insert into a values (E'\\';'), ('it''s; fine'); /* c; */ ;\n\
                      select \"a;b\" from a";
        let parts: Vec<&str> = split(script).collect();
        assert_eq!(parts.len(), 5, "{parts:#?}");
        assert!(parts[1].ends_with("$$ select 1; $$"));
        assert!(parts[3].starts_with("insert into a"));
        assert_eq!(parts[4], "select \"a;b\" from a");
    }
}
