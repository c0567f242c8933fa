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

/// A statement the kind check let through: its kind, and the text the server gets.
pub(super) struct Checked<'a> {
    /// The statement's first word, upper-cased (`(` for a parenthesized query).
    pub kind: String,
    /// The statement from the words the check read on: what came before them (comments,
    /// spaces) is not sent, so that the server's first words are the ones checked whatever
    /// either side takes for a comment.
    pub text: std::borrow::Cow<'a, str>,
}

/// The statement's kind and the text to send; `Err`: why the statement may not run as a
/// plugin's.
pub(super) fn check_kind(sql: &str) -> Result<Checked<'_>, String> {
    let mut words = Words::new(sql);
    let Some(first) = words.next() else {
        return Err("the statement is empty".into());
    };
    let (first_at, first_end) = (words.word_at, words.at);
    let checked = |words: &Words<'_>, kind: String| {
        let rest = &sql[words.at..];
        let text = if words.word_at == first_at {
            std::borrow::Cow::Borrowed(&sql[first_at..])
        } else {
            // Two words checked: the second follows the first after one space.
            let second = &sql[words.word_at..words.at];
            std::borrow::Cow::Owned(format!("{} {second}{rest}", &sql[first_at..first_end]))
        };
        Checked { kind, text }
    };
    if first == "(" {
        return Ok(checked(&words, first));
    }
    // `SET CONSTRAINTS` is of the step's transaction alone, whose deferred checks the host
    // makes immediate at the end of the plugin's turn.
    if first == "SET" {
        let mut after = words.clone();
        // Not `SET constraints.x = …` or `SET constraints TO …`: a setting of that name.
        if after.next().as_deref() == Some("CONSTRAINTS")
            && !matches!(
                after.clone().next().as_deref(),
                Some("." | "=" | "TO") | None
            )
        {
            return Ok(checked(&after, first));
        }
    }
    if !ALLOWED.contains(&first.as_str()) {
        // A setting for the step alone is `set_config(name, value, true)`, which lasts as
        // long as the step's transaction.
        let hint = if first == "SET" {
            "; a setting for the step's transaction alone is \
             `SELECT set_config('lock_timeout', '5s', true)`"
        } else {
            ""
        };
        return Err(format!(
            "a plugin's statement may not be {first} (allowed: {}); wasmig runs each step in \
             one transaction it commits or rolls back itself{hint}",
            ALLOWED.join(", ")
        ));
    }
    if first == "ALTER" {
        let mut after = words.clone();
        if let Some(second) = after.next() {
            if ALTER_REFUSED.contains(&second.as_str()) {
                return Err(format!("a plugin's statement may not be ALTER {second}"));
            }
            return Ok(checked(&after, first));
        }
    }
    Ok(checked(&words, first))
}

/// Whether a statement of this kind reports the rows it inserted, updated or deleted (the
/// others report rows returned, or none).
pub(super) fn changes_rows(kind: &str) -> bool {
    matches!(kind, "INSERT" | "UPDATE" | "DELETE" | "MERGE")
}

/// The words of a statement, upper-cased, skipping comments and whitespace as PostgreSQL's
/// lexer does; an identifier or keyword is a word, and any other character is a word of its
/// own.
#[derive(Clone)]
struct Words<'a> {
    sql: &'a str,
    /// Where the text not read yet begins.
    at: usize,
    /// Where the last word read begins.
    word_at: usize,
}

impl<'a> Words<'a> {
    fn new(sql: &'a str) -> Self {
        Words {
            sql,
            at: 0,
            word_at: 0,
        }
    }
}

impl Iterator for Words<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let bytes = self.sql.as_bytes();
        let mut i = self.at;
        loop {
            match bytes.get(i)? {
                c if is_space(*c) => i += 1,
                b'-' if bytes.get(i + 1) == Some(&b'-') => i = line_comment_end(self.sql, i),
                b'/' if bytes.get(i + 1) == Some(&b'*') => i += block_comment_len(&self.sql[i..]),
                _ => break,
            }
        }
        let end = if ident_start(bytes[i]) {
            i + bytes[i..].iter().take_while(|c| ident_cont(**c)).count()
        } else {
            i + self.sql[i..].chars().next()?.len_utf8()
        };
        self.word_at = i;
        self.at = end;
        Some(self.sql[i..end].to_ascii_uppercase())
    }
}

/// The characters PostgreSQL's lexer skips between tokens (`\v` from PostgreSQL 16).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// A byte that may begin an identifier or keyword: PostgreSQL takes every byte of a
/// multi-byte character for a letter.
fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// A byte that may continue an identifier or keyword.
fn ident_cont(c: u8) -> bool {
    ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// Where the `--` comment at `i` ends: after the first newline, `\n` or `\r`, as
/// PostgreSQL ends it.
fn line_comment_end(s: &str, i: usize) -> usize {
    s[i..].find(['\n', '\r']).map_or(s.len(), |n| i + n + 1)
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

/// Splits a script into its statements as `psql` does: at the semicolons outside quotes,
/// dollar quotes, comments and parentheses, and outside the `BEGIN … END` body of a
/// `CREATE [OR REPLACE] FUNCTION` or `PROCEDURE` (`BEGIN ATOMIC`); empty statements are left
/// out. One at a time: a script may hold millions.
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

/// What `psql` tracks of a statement to tell a semicolon that ends it: the parentheses open,
/// and the `BEGIN … END` blocks open in a function's or procedure's body.
#[derive(Default)]
struct Nesting {
    parens: usize,
    begins: usize,
    /// The statement's identifiers so far, and the initials of its first four when they are
    /// `CREATE`, `OR`, `REPLACE`, `FUNCTION` or `PROCEDURE` (0 for another word).
    identifiers: usize,
    initials: [u8; 4],
}

impl Nesting {
    fn identifier(&mut self, word: &str) {
        let lower = word.to_ascii_lowercase();
        if self.identifiers < 4
            && matches!(
                lower.as_str(),
                "create" | "function" | "procedure" | "or" | "replace"
            )
        {
            self.initials[self.identifiers] = lower.as_bytes()[0];
        }
        self.identifiers += 1;
        let routine = matches!(
            self.initials,
            [b'c', b'f' | b'p', ..] | [b'c', b'o', b'r', b'f' | b'p']
        );
        if routine && self.parens == 0 {
            match lower.as_str() {
                "begin" => self.begins += 1,
                // CASE ends with END too; only counted inside a BEGIN.
                "case" if self.begins > 0 => self.begins += 1,
                "end" => self.begins = self.begins.saturating_sub(1),
                _ => {}
            }
        }
    }
}

impl<'s> Iterator for Split<'s> {
    type Item = &'s str;

    fn next(&mut self) -> Option<&'s str> {
        let script = self.script;
        let bytes = script.as_bytes();
        let mut nesting = Nesting::default();
        while !self.done {
            let i = self.i;
            let end = if i >= bytes.len() {
                self.done = true;
                Some(bytes.len())
            } else {
                match token(script, i) {
                    Token::Skipped(end) => {
                        self.i = end;
                        None
                    }
                    Token::Identifier(end) => {
                        nesting.identifier(&script[i..end]);
                        self.i = end;
                        None
                    }
                    Token::Other => {
                        self.i = i + 1;
                        match bytes[i] {
                            b'(' => {
                                nesting.parens += 1;
                                None
                            }
                            b')' => {
                                nesting.parens = nesting.parens.saturating_sub(1);
                                None
                            }
                            b';' if nesting.parens == 0 && nesting.begins == 0 => {
                                nesting = Nesting::default();
                                Some(i)
                            }
                            _ => None,
                        }
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

/// A token of a statement as the splitter reads it.
enum Token {
    /// A comment, a string, a quoted identifier or a dollar-quoted string, which ends at
    /// this offset: nothing in it splits or counts.
    Skipped(usize),
    /// An identifier or keyword, which ends at this offset.
    Identifier(usize),
    /// One byte of anything else.
    Other,
}

/// The token at offset `i` of `s`, read as PostgreSQL's lexer reads it.
fn token(s: &str, i: usize) -> Token {
    let bytes = s.as_bytes();
    let quoted = |open: usize, quote: u8, escapes: bool| {
        let mut j = open + 1;
        while j < bytes.len() {
            match bytes[j] {
                b'\\' if escapes => j += 2,
                c if c == quote && bytes.get(j + 1) == Some(&quote) => j += 2,
                c if c == quote => return j + 1,
                _ => j += 1,
            }
        }
        bytes.len()
    };
    match bytes[i] {
        b'-' if bytes.get(i + 1) == Some(&b'-') => Token::Skipped(line_comment_end(s, i)),
        b'/' if bytes.get(i + 1) == Some(&b'*') => Token::Skipped(i + block_comment_len(&s[i..])),
        b'\'' => Token::Skipped(quoted(i, b'\'', false)),
        b'"' => Token::Skipped(quoted(i, b'"', false)),
        b'$' => match dollar_tag(&s[i..]) {
            Some(tag) => {
                let body = i + tag.len();
                Token::Skipped(
                    s[body..]
                        .find(tag)
                        .map_or(bytes.len(), |n| body + n + tag.len()),
                )
            }
            None => Token::Other,
        },
        c if ident_start(c) => {
            let end = i + bytes[i..].iter().take_while(|c| ident_cont(**c)).count();
            // `E'…'` takes backslash escapes: an identifier `e` right before a quote.
            if end == i + 1 && matches!(c, b'e' | b'E') && bytes.get(end) == Some(&b'\'') {
                Token::Skipped(quoted(end, b'\'', true))
            } else {
                Token::Identifier(end)
            }
        }
        _ => Token::Other,
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
        i = match token(sql, i) {
            Token::Skipped(end) | Token::Identifier(end) => end.min(bytes.len()),
            Token::Other => {
                if bytes[i] == b'?' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    out.push_str(&sql[copied..i]);
                    // After an identifier's byte or a `$`, `$1` would join it (`a$1`, a dollar
                    // quote's `$a$1`): a space keeps the parameter a token of its own.
                    if i > 0 && ident_cont(bytes[i - 1]) {
                        out.push(' ');
                    }
                    out.push('$');
                    copied = i + 1;
                }
                i + 1
            }
        };
    }
    out.push_str(&sql[copied..]);
    std::borrow::Cow::Owned(out)
}

/// The dollar-quote opening tag (`$$`, `$body$`) at the start of `s`, if one is there: a
/// tag begins with a letter, `_` or a multi-byte character, as PostgreSQL's does.
fn dollar_tag(s: &str) -> Option<&str> {
    let inner = &s.as_bytes()[1..];
    let end = inner.iter().position(|c| *c == b'$')?;
    let tag = &inner[..end];
    let valid = tag
        .iter()
        .enumerate()
        .all(|(i, c)| ident_start(*c) || (i > 0 && c.is_ascii_digit()));
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
            // PostgreSQL ends a line comment at a carriage return.
            "-- x\rCOMMIT /*\nSELECT 1 */",
            "-- x\rCOPY t TO STDOUT --\nSELECT 1",
            "alter -- x\rrole current_user --\ntable t add column y int",
            "set constraints.x = 'y'",
            "set constraints to 'y'",
            "set constraints = 'y'",
        ] {
            assert!(check_kind(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn the_server_gets_the_words_checked_first() {
        let text = |sql| check_kind(sql).unwrap().text.into_owned();
        assert_eq!(text("select 1"), "select 1");
        assert_eq!(text("-- c\n  /* d /* e */ */ select 1"), "select 1");
        assert_eq!(
            text("set /* x */ constraints all deferred"),
            "set constraints all deferred"
        );
        assert_eq!(
            text("alter --x\n table t add y int -- z"),
            "alter table t add y int -- z"
        );
        assert_eq!(text("\x0b\x0c(select 1)"), "(select 1)");
        // What either side takes for a comment before the first word is never sent.
        assert_eq!(text("-- x\n\rSELECT 1 */"), "SELECT 1 */");
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
        assert_eq!(
            numbered_parameters("select 1 -- c\r, ?1"),
            "select 1 -- c\r, $1"
        );
        assert_eq!(numbered_parameters("select $?1, ?2"), "select $ $1, $2");
        assert_eq!(numbered_parameters("select a?1"), "select a $1");
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

    #[test]
    fn splitting_as_psql_does() {
        fn parts(script: &str) -> Vec<&str> {
            split(script).collect()
        }
        // A line comment ends at a carriage return.
        assert_eq!(
            parts("-- c\rcreate table a (x int);\rcreate table b (y int)"),
            ["-- c\rcreate table a (x int)", "create table b (y int)"]
        );
        // Not at a semicolon inside parentheses, or inside a function's BEGIN ATOMIC body.
        let rule = "create rule r as on insert to a do also (insert into b values (1); \
                    insert into b values (2))";
        assert_eq!(parts(&format!("{rule}; select 1")), [rule, "select 1"]);
        let atomic = "create or replace function f() returns int language sql begin atomic \
                      select case when true then 1 end; select 2; end";
        assert_eq!(parts(&format!("{atomic};\nselect 3")), [atomic, "select 3"]);
        // `begin` is no block in other statements.
        assert_eq!(
            parts("create table begin_ (begin int); select 1"),
            ["create table begin_ (begin int)", "select 1"]
        );
        // `$` inside an identifier opens no dollar quote; `e'` only alone is an E string.
        assert_eq!(
            parts("select a$b$c from t; select 'x\\'; select e'\\';'"),
            ["select a$b$c from t", "select 'x\\'", "select e'\\';'"]
        );
        assert_eq!(
            parts("select $é$ ; $é$; select 1"),
            ["select $é$ ; $é$", "select 1"]
        );
    }
}
