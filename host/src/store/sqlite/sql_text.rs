//! SQL text read the way SQLite's tokenizer reads it, for the few checks that need a
//! statement's words: the object a DDL statement names, the options of a virtual table, and
//! the names a failed statement used. Security never rests on these alone: they shape what the
//! plugin is told and refuse early; the authorizer and the schema check decide.

/// One token of SQL text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    /// A keyword or bare identifier, as written.
    Word(String),
    /// An identifier in `"…"`, `[…]` or `` `…` ``, unquoted.
    Quoted(String),
    /// A string literal `'…'`, unquoted.
    Text(String),
    /// A number, as written.
    Number(String),
    /// A blob literal, a parameter or an operator: anything else but punctuation.
    Other,
    /// `(`, `)`, `,`, `.`, `;` or `=`.
    Punct(char),
}

impl Token {
    /// The word, ignoring case, when this is a bare word.
    pub(crate) fn is_word(&self, word: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(word))
    }

    /// The name this token gives, when it can name an object (a word, a quoted identifier,
    /// or a string literal, which SQLite accepts where it expects a name).
    pub(crate) fn name(&self) -> Option<&str> {
        match self {
            Token::Word(w) | Token::Quoted(w) | Token::Text(w) => Some(w),
            _ => None,
        }
    }
}

/// Splits SQL text into tokens; comments and white space are dropped.
pub(crate) fn tokens(sql: &str) -> Vec<Token> {
    Tokens::new(sql).collect()
}

/// The tokens of SQL text, one at a time: reading a plugin's script takes memory for a token,
/// not for the script's every comma.
pub(crate) struct Tokens<'a> {
    sql: &'a str,
    /// Where the next token starts (or white space or a comment before it).
    at: usize,
}

impl<'a> Tokens<'a> {
    pub(crate) fn new(sql: &'a str) -> Self {
        // SQLite's input ends at its first NUL, inside a comment or a string too.
        let sql = sql.split('\0').next().unwrap_or_default();
        Tokens { sql, at: 0 }
    }

    /// Where in the text the token last read ends (0 before the first).
    pub(crate) fn offset(&self) -> usize {
        self.at
    }
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let (sql, b) = (self.sql, self.sql.as_bytes());
        let mut i = self.at;
        // Reads a quoted run from `i` (at the opening quote) up to `close`; a doubled closing
        // quote stands for one, except in brackets. Unterminated: to the end.
        let quoted = |i: &mut usize, close: u8, doubles: bool| -> String {
            let mut s = Vec::new();
            *i += 1;
            while *i < b.len() {
                if b[*i] == close {
                    if doubles && b.get(*i + 1) == Some(&close) {
                        s.push(close);
                        *i += 2;
                        continue;
                    }
                    *i += 1;
                    break;
                }
                s.push(b[*i]);
                *i += 1;
            }
            String::from_utf8_lossy(&s).into_owned()
        };
        let token = loop {
            let Some(&c) = b.get(i) else {
                self.at = i;
                return None;
            };
            match c {
                // White space as SQLite's tokenizer reads it: a run starts at one of these
                // and goes on over `\v` too (which cannot start one); a UTF-8 byte-order
                // mark starting a token is white space.
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                    i += 1;
                    while i < b.len() && matches!(b[i], b'\t'..=b'\r' | b' ') {
                        i += 1;
                    }
                }
                0xef if b.get(i + 1) == Some(&0xbb) && b.get(i + 2) == Some(&0xbf) => i += 3,
                b'-' if b.get(i + 1) == Some(&b'-') => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                // `/*` as the text's last two bytes is `/` and `*` to SQLite.
                b'/' if b.get(i + 1) == Some(&b'*') && i + 2 < b.len() => {
                    i += 2;
                    while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                        i += 1;
                    }
                    i = (i + 2).min(b.len());
                }
                b'\'' => break Token::Text(quoted(&mut i, b'\'', true)),
                b'"' => break Token::Quoted(quoted(&mut i, b'"', true)),
                b'`' => break Token::Quoted(quoted(&mut i, b'`', true)),
                b'[' => break Token::Quoted(quoted(&mut i, b']', false)),
                b'(' | b')' | b',' | b'.' | b';' | b'=' => {
                    // `.` starts a number when a digit follows (`.5`).
                    if c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                        let start = i;
                        i = skip_number(b, i);
                        break Token::Number(sql[start..i].to_string());
                    }
                    i += 1;
                    break Token::Punct(c as char);
                }
                b'x' | b'X' if b.get(i + 1) == Some(&b'\'') => {
                    i += 1;
                    quoted(&mut i, b'\'', false);
                    break Token::Other;
                }
                b'0'..=b'9' => {
                    let start = i;
                    i = skip_number(b, i);
                    break Token::Number(sql[start..i].to_string());
                }
                b'$' | b'@' | b':' | b'#' => {
                    // A parameter, as SQLite's tokenizer reads it: identifier characters and
                    // `::`, then at most one `(…)`, up to the first `)` or white space (TCL's
                    // array syntax: `$a(')` is one token, and its `'` no quote).
                    i += 1;
                    let mut named = false;
                    while i < b.len() {
                        if is_word_byte(b[i]) || b[i].is_ascii_digit() {
                            named = true;
                            i += 1;
                        } else if b[i] == b'(' && named {
                            while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b')' {
                                i += 1;
                            }
                            i = (i + 1).min(b.len());
                            break;
                        } else if b[i] == b':' && b.get(i + 1) == Some(&b':') {
                            i += 2;
                        } else {
                            break;
                        }
                    }
                    break Token::Other;
                }
                _ if is_word_byte(c) => {
                    let start = i;
                    while i < b.len() && (is_word_byte(b[i]) || b[i].is_ascii_digit()) {
                        i += 1;
                    }
                    break Token::Word(sql[start..i].to_string());
                }
                _ => {
                    // An operator or a numbered parameter (`?1`): one token.
                    i += 1;
                    if c == b'?' {
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                    break Token::Other;
                }
            }
        };
        self.at = i;
        Some(token)
    }
}

/// Bytes SQLite accepts in a bare identifier (besides digits after the first): letters,
/// `_`, `$` after the first, and every byte of a multi-byte UTF-8 character.
fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80
}

/// Where a number that starts at `i` (a digit, or `.` before one) ends, as SQLite's tokenizer
/// reads it (`sqlite3GetToken`): a hex integer ends with its hex digits (`0xe--` is `0xe`,
/// then a comment); otherwise digits (with `_` between two), a fraction, an exponent whose
/// sign a digit follows, and then any identifier characters, which make it one (illegal)
/// token.
fn skip_number(b: &[u8], mut i: usize) -> usize {
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let digits = |mut i: usize| {
        while digit(i) || (b.get(i) == Some(&b'_') && digit(i + 1)) {
            i += 1;
        }
        i
    };
    if b[i] == b'0'
        && matches!(b.get(i + 1), Some(b'x' | b'X'))
        && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        i += 3;
        while b.get(i).is_some_and(u8::is_ascii_hexdigit) {
            i += 1;
        }
        return i;
    }
    i = digits(i);
    if b.get(i) == Some(&b'.') {
        i = digits(i + 1);
    }
    if matches!(b.get(i), Some(b'e' | b'E'))
        && (digit(i + 1) || (matches!(b.get(i + 1), Some(b'+' | b'-')) && digit(i + 2)))
    {
        i = digits(i + 2);
    }
    while b
        .get(i)
        .is_some_and(|&c| is_word_byte(c) || c.is_ascii_digit())
    {
        i += 1;
    }
    i
}

/// The statements of a script, as token runs: split at each `;` outside a trigger's
/// `BEGIN … END` body. What [`find_in_statements`] does a statement at a time, kept whole
/// for the tests.
#[cfg(test)]
pub(crate) fn statements(t: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let (mut start, mut in_body) = (0, false);
    for (i, token) in t.iter().enumerate() {
        let statement = &t[start..i];
        if !in_body
            && token.is_word("begin")
            && (1..=2)
                .any(|n| statement.len() > n && creates_trigger(&statement[..n], &statement[n]))
        {
            in_body = true;
        } else if in_body
            && token.is_word("end")
            && matches!(t.get(i + 1), None | Some(Token::Punct(';')))
        {
            in_body = false;
        } else if !in_body && *token == Token::Punct(';') {
            if !statement.is_empty() {
                out.push(statement);
            }
            start = i + 1;
        }
    }
    if start < t.len() {
        out.push(&t[start..]);
    }
    out
}

/// The most tokens of one statement [`find_in_statements`] keeps: more than the longest
/// prefix [`named_objects`] reads (a trigger's `UPDATE OF` lists at most SQLite's 2,000
/// columns before its `ON`), so that a statement of a million commas costs no more memory
/// than this.
const KEPT_TOKENS: usize = 8192;

/// The first `Some` that `f` returns for a statement of the script `sql`, given the
/// statement's first [`KEPT_TOKENS`] tokens. Statements end at each `;` outside a trigger's
/// `BEGIN … END` body. Reads the script a token at a time and holds one statement's kept
/// tokens.
pub(crate) fn find_in_statements<R>(
    sql: &str,
    mut f: impl FnMut(&[Token]) -> Option<R>,
) -> Option<R> {
    let mut current: Vec<Token> = Vec::new();
    let (mut in_body, mut last_was_end, mut trigger) = (false, false, false);
    for token in Tokens::new(sql) {
        let is_end = token.is_word("end");
        if token == Token::Punct(';') && (!in_body || last_was_end) {
            in_body = false;
            if !current.is_empty()
                && let Some(found) = f(&current)
            {
                return Some(found);
            }
            current.clear();
            (last_was_end, trigger) = (false, false);
            continue;
        }
        if !in_body && token.is_word("begin") && trigger {
            in_body = true;
        }
        trigger |= creates_trigger(&current, &token);
        last_was_end = is_end;
        if current.len() < KEPT_TOKENS {
            current.push(token);
        }
    }
    if current.is_empty() {
        None
    } else {
        f(&current)
    }
}

/// Whether `token`, following `before` (a statement's first tokens), makes the statement
/// read as `CREATE [TEMP | TEMPORARY] TRIGGER`: only then does a `BEGIN` open a body (a
/// column may be named `trigger` or `begin`).
fn creates_trigger(before: &[Token], token: &Token) -> bool {
    token.is_word("trigger")
        && match before {
            [create] => create.is_word("create"),
            [create, temp] => {
                create.is_word("create") && (temp.is_word("temp") || temp.is_word("temporary"))
            }
            _ => false,
        }
}

/// Reads `[schema .] name` at `i`.
fn object_name(t: &[Token], i: usize) -> Option<String> {
    if t.get(i + 1) == Some(&Token::Punct('.')) {
        return Some(t.get(i + 2)?.name()?.to_string());
    }
    Some(t.get(i)?.name()?.to_string())
}

/// The objects a statement names in the places where SQLite looks an object up before it asks
/// the authorizer, with their kind: what `CREATE` declares and `DROP` drops (`DROP TABLE IF
/// EXISTS x` on a missing `x` asks the authorizer nothing, `CREATE INDEX IF NOT EXISTS` on an
/// existing name neither), the table of `ALTER TABLE`, of `CREATE INDEX … ON` and of `CREATE
/// TRIGGER … ON` (whose errors tell a view from a table), and what `REINDEX` and `ANALYZE`
/// name (`""` when they name nothing: every index of the database). Checking these against
/// the namespace before SQLite sees the statement gives the same answer whether the object
/// exists or not.
pub(crate) fn named_objects(t: &[Token]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    // `EXPLAIN` and `EXPLAIN QUERY PLAN` compile the statement after them as it is.
    let t = match t {
        [explain, query, plan, rest @ ..]
            if explain.is_word("explain") && query.is_word("query") && plan.is_word("plan") =>
        {
            rest
        }
        [explain, rest @ ..] if explain.is_word("explain") => rest,
        _ => t,
    };
    let Some(first) = t.first() else {
        return out;
    };
    if first.is_word("alter") && t.get(1).is_some_and(|w| w.is_word("table")) {
        out.extend(object_name(t, 2).map(|n| ("table", n)));
        // `RENAME TO x`: a taken name fails there, before the schema check sees the new one.
        if let Some(at) = t
            .windows(2)
            .position(|w| w[0].is_word("rename") && w[1].is_word("to"))
        {
            out.extend(object_name(t, at + 2).map(|n| ("table", n)));
        }
    } else if first.is_word("reindex") || first.is_word("analyze") {
        out.push(("table or index", object_name(t, 1).unwrap_or_default()));
    } else if first.is_word("create") || first.is_word("drop") {
        let create = first.is_word("create");
        let mut i = 1;
        while create
            && t.get(i).is_some_and(|w| {
                ["temp", "temporary", "unique", "virtual"]
                    .iter()
                    .any(|k| w.is_word(k))
            })
        {
            i += 1;
        }
        let virtual_table = t[..i].iter().any(|w| w.is_word("virtual"));
        let Some(kind) = ["table", "view", "index", "trigger"]
            .into_iter()
            .find(|k| t.get(i).is_some_and(|w| w.is_word(k)))
        else {
            return out;
        };
        i += 1;
        if t.get(i).is_some_and(|w| w.is_word("if")) {
            i += if create { 3 } else { 2 };
        }
        let kind = if virtual_table { "virtual table" } else { kind };
        out.extend(object_name(t, i).map(|n| (kind, n)));
        if create && (kind == "index" || kind == "trigger") {
            // The table it is made on: the first `ON` after the name (a trigger's `UPDATE
            // OF a, b ON t`, an index's `ON t (cols)`).
            if let Some(on) = t[i..].iter().position(|w| w.is_word("on")) {
                out.extend(object_name(t, i + on + 1).map(|n| ("table", n)));
            }
        }
    }
    out
}

/// The first word of `sql` as SQLite reads it, past white space, comments and empty
/// statements (SQLite compiles the first statement after them); empty when it starts with
/// anything else.
pub(crate) fn first_keyword(sql: &str) -> String {
    match Tokens::new(sql).find(|t| *t != Token::Punct(';')) {
        Some(Token::Word(word)) => word,
        _ => String::new(),
    }
}

/// Whether `statement` is `CREATE [TEMP] TABLE [IF NOT EXISTS] [schema.]name AS SELECT …`,
/// which fills the table it makes.
pub(crate) fn creates_table_as_select(statement: &str) -> bool {
    // Empty statements first: SQLite compiles the first statement after them.
    let mut t = Tokens::new(statement).skip_while(|t| *t == Token::Punct(';'));
    if !t.next().is_some_and(|w| w.is_word("create")) {
        return false;
    }
    let mut next = t.next();
    if next
        .as_ref()
        .is_some_and(|w| w.is_word("temp") || w.is_word("temporary"))
    {
        next = t.next();
    }
    if !next.is_some_and(|w| w.is_word("table")) {
        return false;
    }
    // The name, maybe `IF NOT EXISTS` before it and a schema's before its dot; then `AS`,
    // where any other table has its `(` of columns.
    t.take(8)
        .find(|w| {
            !matches!(
                w,
                Token::Word(_) | Token::Quoted(_) | Token::Text(_) | Token::Punct('.')
            ) || w.is_word("as")
        })
        .is_some_and(|w| w.is_word("as"))
}

/// A table function plugins may read (`json_each`, `json_tree`) that `sql` names without
/// arguments: a trigger or view reading it so reads a table of that name once one exists.
pub(crate) fn bare_table_function(sql: &str) -> Option<String> {
    let mut tokens = Tokens::new(sql).peekable();
    // The two tokens before this one: a name after `x.` is a column of `x`, but for a
    // schema's (`main.json_each`).
    let (mut before, mut last) = (None::<Token>, None::<Token>);
    while let Some(token) = tokens.next() {
        // A string literal too where a table may be named (`FROM 'json_each'`, `, 'json_tree'`,
        // a parenthesised list `FROM ('json_each')`, `x IN 'json_each'`, `INSERT INTO`,
        // `UPDATE`): SQLite takes it as a name there. After `(` it may be a function's
        // argument instead, which counts all the same.
        let name = match &token {
            Token::Text(_)
                if !last.as_ref().is_some_and(|l| {
                    ["from", "join", "in", "into", "update"]
                        .iter()
                        .any(|w| l.is_word(w))
                        || matches!(l, Token::Punct(',' | '.' | '('))
                }) =>
            {
                None
            }
            _ => token.name().map(str::to_string),
        };
        if let Some(name) = name
            && ["json_each", "json_tree"]
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&name))
        {
            let next = tokens.peek();
            let called = next == Some(&Token::Punct('('));
            // `json_each.value`: the table function's column, named by the function.
            let qualifier = next == Some(&Token::Punct('.'));
            let column = last == Some(Token::Punct('.'))
                && !before.as_ref().and_then(Token::name).is_some_and(|b| {
                    b.eq_ignore_ascii_case("main") || b.eq_ignore_ascii_case("temp")
                });
            // `USING json_each`: a virtual table's module, which the module allow-list judges.
            let module = last.as_ref().is_some_and(|l| l.is_word("using"));
            if !called && !qualifier && !column && !module {
                return Some(name);
            }
        }
        before = last.replace(token);
    }
    None
}

/// Whether a table's `CREATE TABLE` text (as SQLite stores it: with its column list) declares
/// it `WITHOUT ROWID`, among the options after its columns.
pub(crate) fn without_rowid(sql: &str) -> bool {
    let t = tokens(sql);
    let Some(open) = t.iter().position(|w| matches!(w, Token::Punct('('))) else {
        return false;
    };
    let mut depth = 0usize;
    let mut close = None;
    for (i, token) in t.iter().enumerate().skip(open) {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return false;
    };
    t[close + 1..]
        .windows(2)
        .any(|w| w[0].is_word("without") && w[1].is_word("rowid"))
}

/// Whether a `CREATE TABLE` text holds an expression or a reference anywhere (a `DEFAULT`,
/// `CHECK`, generated column `AS`, `REFERENCES`), read as words outside quotes.
pub(crate) fn has_expressions(sql: &str) -> bool {
    Tokens::new(sql).any(|t| {
        ["default", "check", "as", "generated", "references"]
            .iter()
            .any(|w| t.is_word(w))
    })
}

/// Whether the text is a `CREATE VIRTUAL TABLE` statement.
pub(crate) fn is_virtual_table(sql: &str) -> bool {
    let mut t = Tokens::new(sql);
    t.next().is_some_and(|w| w.is_word("create")) && t.next().is_some_and(|w| w.is_word("virtual"))
}

/// A virtual table's module and its arguments, from its `CREATE VIRTUAL TABLE` text; each
/// argument is its tokens. `None`: the text does not read as one.
pub(crate) fn virtual_table(sql: &str) -> Option<(String, Vec<Vec<Token>>)> {
    let t = tokens(sql);
    let using = t.iter().position(|w| w.is_word("using"))?;
    let module = t.get(using + 1)?.name()?.to_string();
    let mut args = Vec::new();
    match t.get(using + 2) {
        None => return Some((module, args)),
        Some(Token::Punct('(')) => {}
        Some(_) => return None,
    }
    let mut depth = 0usize;
    let mut current = Vec::new();
    for token in &t[using + 3..] {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') if depth == 0 => {
                args.push(std::mem::take(&mut current));
                return Some((module, args));
            }
            Token::Punct(')') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                args.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(token.clone());
    }
    None
}

/// The option an argument of a virtual table sets (`content = 'notes__doc'`): its key in
/// lowercase and its value unquoted. `None`: not `key = value` with one token each side.
pub(crate) fn option(arg: &[Token]) -> Option<(String, String)> {
    match arg {
        [key, Token::Punct('='), value] => {
            let value = match value {
                Token::Number(n) => n,
                other => other.name()?,
            };
            Some((key.name()?.to_ascii_lowercase(), value.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_skip_comments_and_unquote() {
        let t =
            tokens("SELECT \"a\"\"b\", [c d], `e`, 'f''g' -- x\n /* y */ FROM t.u WHERE x = ?1");
        assert_eq!(
            t,
            [
                Token::Word("SELECT".into()),
                Token::Quoted("a\"b".into()),
                Token::Punct(','),
                Token::Quoted("c d".into()),
                Token::Punct(','),
                Token::Quoted("e".into()),
                Token::Punct(','),
                Token::Text("f'g".into()),
                Token::Word("FROM".into()),
                Token::Word("t".into()),
                Token::Punct('.'),
                Token::Word("u".into()),
                Token::Word("WHERE".into()),
                Token::Word("x".into()),
                Token::Punct('='),
                Token::Other,
            ]
        );
        assert_eq!(
            tokens("x'00ff' 1.5e+3 .5"),
            [
                Token::Other,
                Token::Number("1.5e+3".into()),
                Token::Number(".5".into())
            ]
        );
    }

    #[test]
    fn numbers_end_where_sqlites_tokenizer_ends_them() {
        let numbers = |sql: &str| -> Vec<Token> {
            tokens(sql)
                .into_iter()
                .filter(|t| !matches!(t, Token::Punct(',')))
                .collect()
        };
        // A hex integer ends with its hex digits: what follows `0xe` is a comment, not an
        // exponent's sign and a string.
        assert_eq!(
            numbers("0xe--'\n, 'x'"),
            [Token::Number("0xe".into()), Token::Text("x".into())]
        );
        assert_eq!(
            numbers("1e-3, 1e-, 1_000.5_0e+1_0, 0x, 7abc"),
            [
                Token::Number("1e-3".into()),
                Token::Number("1e".into()),
                Token::Other,
                Token::Number("1_000.5_0e+1_0".into()),
                Token::Number("0x".into()),
                Token::Number("7abc".into()),
            ]
        );
        // The input ends at its first NUL, as SQLite's does; `/*` at the very end is no
        // comment.
        assert_eq!(numbers("1\0 /* 2"), [Token::Number("1".into())]);
        assert_eq!(
            tokens("a /*"),
            [Token::Word("a".into()), Token::Other, Token::Other]
        );
    }

    #[test]
    fn first_keyword_skips_what_sqlite_skips() {
        assert_eq!(first_keyword("  vacuum into 'x'"), "vacuum");
        assert_eq!(first_keyword("-- hi\n /* there */ Vacuum"), "Vacuum");
        assert_eq!(first_keyword("/* unterminated"), "");
        assert_eq!(first_keyword("SELECT 1"), "SELECT");
        assert_eq!(first_keyword(";; \u{feff}DROP TABLE t"), "DROP");
        assert_eq!(first_keyword(" \u{b}EXPLAIN SELECT 1"), "EXPLAIN");
        assert!(creates_table_as_select(";CREATE TABLE t AS SELECT 1"));
        assert!(creates_table_as_select(
            "\u{feff}CREATE TABLE t AS SELECT 1"
        ));
    }

    #[test]
    fn parameters_are_read_as_sqlite_reads_them() {
        // `$a(')` is one token in SQLite: its quote opens no string.
        let t = tokens("SELECT $a(') ; DROP TABLE IF EXISTS users ; SELECT '1'");
        assert!(t.iter().any(|w| w.is_word("users")), "{t:?}");
        let t = tokens("SELECT @a::b(x) , :c , #d , ?12 , users");
        assert!(t.iter().any(|w| w.is_word("users")), "{t:?}");
        assert_eq!(
            bare_table_function("SELECT * FROM \"main\".json_each").as_deref(),
            Some("json_each")
        );
        assert_eq!(
            bare_table_function("SELECT * FROM [main].\"json_each\"").as_deref(),
            Some("json_each")
        );
        assert_eq!(
            bare_table_function("SELECT * FROM 'json_tree' AS j").as_deref(),
            Some("json_tree")
        );
        assert_eq!(
            bare_table_function("SELECT j.value FROM json_each('[1]') AS j"),
            None
        );
        // Wherever else SQLite takes a string for a table's name.
        for sql in [
            "SELECT key, value FROM ('json_each')",
            "SELECT 1 WHERE 'k' IN 'json_each'",
            "INSERT INTO 'json_each' VALUES (1)",
            "UPDATE 'json_each' SET key = 1",
        ] {
            assert_eq!(
                bare_table_function(sql).as_deref(),
                Some("json_each"),
                "{sql}"
            );
        }
    }

    #[test]
    fn a_table_made_from_a_select_is_told_from_one_with_columns() {
        for sql in [
            "CREATE TABLE a__t AS SELECT 1",
            "create temp table if not exists main.\"a__t\" as select 1",
            "CREATE TEMPORARY TABLE a__t AS WITH c AS (SELECT 1) SELECT * FROM c",
        ] {
            assert!(creates_table_as_select(sql), "{sql}");
        }
        for sql in [
            "CREATE TABLE a__t (x AS (1))",
            "CREATE TABLE a__t (x)",
            "CREATE VIEW a__v AS SELECT 1",
            "CREATE INDEX a__i ON a__t (x)",
            "INSERT INTO a__t SELECT 1",
        ] {
            assert!(!creates_table_as_select(sql), "{sql}");
        }
    }

    /// Whatever SQLite compiles as a statement, however its white space is written, is read
    /// so here: its first keyword, and the table it makes or drops. SQLite itself says which
    /// (its authorizer is told), for every one- and two-character ASCII filler and the
    /// Unicode spaces.
    #[test]
    fn what_sqlite_reads_as_white_space_is_white_space_here() {
        use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
        use std::sync::{Arc, Mutex};
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t(x)").unwrap();
        let told: Arc<Mutex<Vec<String>>> = Default::default();
        let seen = told.clone();
        c.authorizer(Some(move |ctx: AuthContext<'_>| {
            match ctx.action {
                AuthAction::CreateTable { table_name } | AuthAction::DropTable { table_name } => {
                    seen.lock().unwrap().push(table_name.to_string())
                }
                _ => {}
            }
            Authorization::Allow
        }))
        .unwrap();
        let mut fillers: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
        for a in 0u8..0x80 {
            for b in 0u8..0x80 {
                fillers.push(format!("{}{}", char::from(a), char::from(b)));
            }
        }
        for unicode in [
            "\u{feff}",
            "\u{feff}\u{feff}",
            " \u{feff}",
            "\u{a0}",
            "\u{2028}",
            "\u{3000}",
        ] {
            fillers.push(unicode.into());
        }
        let mut compiled = 0;
        for filler in &fillers {
            for (sql, keyword) in [
                (format!("{filler}CREATE TABLE u(x)"), "CREATE"),
                (format!("DROP TABLE IF EXISTS{filler}t"), "DROP"),
                (format!("{filler}DROP TABLE IF EXISTS t"), "DROP"),
            ] {
                told.lock().unwrap().clear();
                if c.prepare(&sql).is_err() {
                    continue;
                }
                let Some(table) = told.lock().unwrap().first().cloned() else {
                    continue;
                };
                compiled += 1;
                assert!(first_keyword(&sql).eq_ignore_ascii_case(keyword), "{sql:?}");
                // As the checks by name read a script: a statement at a time.
                let named = find_in_statements(&sql, |t| {
                    let named = named_objects(t);
                    (!named.is_empty()).then_some(named)
                });
                assert!(
                    named.iter().flatten().any(|(_, n)| *n == table),
                    "{sql:?}: SQLite names {table}, read here {named:?}"
                );
            }
        }
        assert!(compiled > 100, "{compiled}");
    }

    #[test]
    fn named_objects_are_found_as_written() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "DROP TABLE IF EXISTS main.\"Accounts__User\"",
                &[("table", "Accounts__User")],
            ),
            ("drop index x__i", &[("index", "x__i")]),
            (
                "EXPLAIN DROP TABLE IF EXISTS victim__t",
                &[("table", "victim__t")],
            ),
            (
                "explain query plan drop table if exists users",
                &[("table", "users")],
            ),
            (
                "CREATE UNIQUE INDEX IF NOT EXISTS [accounts__i] ON evil__t (x)",
                &[("index", "accounts__i"), ("table", "evil__t")],
            ),
            (
                "CREATE TEMP TRIGGER evil__t AFTER UPDATE OF a ON x BEGIN SELECT 1; END",
                &[("trigger", "evil__t"), ("table", "x")],
            ),
            (
                "CREATE VIRTUAL TABLE IF NOT EXISTS n__s USING fts5(a)",
                &[("virtual table", "n__s")],
            ),
            ("/* c */ create view temp.v as select 1", &[("view", "v")]),
            (
                "ALTER TABLE main.v__t RENAME TO x",
                &[("table", "v__t"), ("table", "x")],
            ),
            (
                "ALTER TABLE v__t RENAME COLUMN a TO b",
                &[("table", "v__t")],
            ),
            ("REINDEX nocase", &[("table or index", "nocase")]),
            ("ANALYZE", &[("table or index", "")]),
            ("SELECT 1", &[]),
            ("DELETE FROM x", &[]),
        ];
        for (sql, expected) in cases {
            let t = tokens(sql);
            let found = named_objects(&t);
            let found: Vec<(&str, &str)> = found.iter().map(|(k, n)| (*k, n.as_str())).collect();
            assert_eq!(found, *expected, "{sql}");
        }
    }

    #[test]
    fn scripts_split_between_statements_not_inside_trigger_bodies() {
        let t = tokens(
            "CREATE TABLE a (x); CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT ';'; END; DROP VIEW v;;",
        );
        let parts: Vec<usize> = statements(&t).iter().map(|s| s.len()).collect();
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert!(named_objects(statements(&t)[2]) == [("view", "v".to_string())]);
    }

    #[test]
    fn statements_found_one_at_a_time_are_the_scripts_statements() {
        let scripts = [
            "CREATE TABLE a (x); CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b \
             VALUES (1); DELETE FROM c; END; CREATE VIEW v AS SELECT 1",
            ";; SELECT 1 ;",
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END",
            "CREATE TEMP TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END; DROP TABLE x",
            // Columns named `trigger` and `begin` open no body.
            "CREATE TABLE a (trigger INT, begin INT); DROP TABLE IF EXISTS other__t",
            "",
        ];
        for script in scripts {
            let t = tokens(script);
            let whole: Vec<Vec<Token>> = statements(&t).iter().map(|s| s.to_vec()).collect();
            let mut streamed = Vec::new();
            find_in_statements(script, |s| {
                streamed.push(s.to_vec());
                None::<()>
            });
            assert_eq!(streamed, whole, "{script}");
        }
        let mut count = 0;
        find_in_statements(
            "CREATE TABLE a (trigger INT, begin INT); DROP TABLE IF EXISTS other__t",
            |_| {
                count += 1;
                None::<()>
            },
        );
        assert_eq!(count, 2);
        // A statement of a million commas is kept to its first tokens.
        let long = format!("SELECT 1{}; DROP TABLE x", ",".repeat(1_000_000));
        let mut lens = Vec::new();
        find_in_statements(&long, |s| {
            lens.push(s.len());
            None::<()>
        });
        assert_eq!(lens, [KEPT_TOKENS, 3]);
    }

    #[test]
    fn table_functions_are_found_where_they_are_read_without_arguments() {
        let bare =
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b SELECT key FROM json_tree; END";
        assert_eq!(bare_table_function(bare).as_deref(), Some("json_tree"));
        assert_eq!(
            bare_table_function("CREATE VIEW v AS SELECT * FROM \"JSON_EACH\" j").as_deref(),
            Some("JSON_EACH")
        );
        let called = "CREATE VIEW v AS SELECT j.value FROM a, json_each(a.tags) j";
        assert_eq!(bare_table_function(called), None);
        assert_eq!(bare_table_function("SELECT 'json_each'"), None);
        // Its columns named after it, and another table's column of that name.
        let qualified = "CREATE VIEW v AS SELECT json_each.value FROM a, json_each(a.tags)";
        assert_eq!(bare_table_function(qualified), None);
        assert_eq!(bare_table_function("SELECT x.json_each FROM x"), None);
        assert_eq!(
            bare_table_function("CREATE VIEW v AS SELECT * FROM main.json_each").as_deref(),
            Some("json_each")
        );
    }

    #[test]
    fn without_rowid_is_read_from_the_options_after_the_columns() {
        assert!(without_rowid(
            "CREATE TABLE t (a PRIMARY KEY, b) WITHOUT ROWID"
        ));
        assert!(without_rowid(
            "CREATE TABLE t (a PRIMARY KEY, b) STRICT, WITHOUT ROWID"
        ));
        assert!(without_rowid(
            "create table \"t(\" (a text primary key check (a <> ')')) without rowid"
        ));
        assert!(!without_rowid("CREATE TABLE t (\"without\" rowid, b)"));
        assert!(!without_rowid(
            "CREATE TABLE t (a, b CHECK (b <> 'WITHOUT ROWID'))"
        ));
        assert!(!without_rowid("CREATE TABLE t (a, b) STRICT"));
        assert!(is_virtual_table("CREATE VIRTUAL TABLE t USING fts5(a)"));
        assert!(!has_expressions(
            "CREATE TABLE 'x_content'(id INTEGER PRIMARY KEY, c0, c1)"
        ));
        assert!(!has_expressions(
            "CREATE TABLE 'x_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID"
        ));
        assert!(has_expressions(
            "CREATE TABLE x_content (id, c DEFAULT (changes()))"
        ));
        assert!(has_expressions("CREATE TABLE x_content (id, c AS (1))"));
        assert!(!has_expressions("CREATE TABLE x_content (\"default\", c)"));
        assert!(!is_virtual_table("CREATE TABLE t (\"virtual\" USING)"));
    }

    #[test]
    fn virtual_table_arguments_split_at_the_top_level() {
        let (module, args) = virtual_table(
            "CREATE VIRTUAL TABLE n__s USING fts5(title, body, content = 'n__doc', tokenize = \"porter unicode61\", prefix='2 3', columnsize=0)",
        )
        .unwrap();
        assert_eq!(module, "fts5");
        let options: Vec<_> = args.iter().filter_map(|a| option(a)).collect();
        assert_eq!(
            options,
            [
                ("content".to_string(), "n__doc".to_string()),
                ("tokenize".to_string(), "porter unicode61".to_string()),
                ("prefix".to_string(), "2 3".to_string()),
                ("columnsize".to_string(), "0".to_string()),
            ]
        );
        assert_eq!(args.len(), 6);
        let (module, args) =
            virtual_table("CREATE VIRTUAL TABLE n__r USING rtree(id, minx, maxx)").unwrap();
        assert_eq!((module.as_str(), args.len()), ("rtree", 3));
        assert!(virtual_table("CREATE VIRTUAL TABLE n__r USING rtree(id, (").is_none());
    }
}
