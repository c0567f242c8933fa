//! SQLite's built-in functions whose cost grows with the product of their inputs' sizes
//! (`like`, `glob`, `instr`, `replace`, `trim`, `ltrim`, `rtrim`, `unhex`; `json_patch` and
//! `jsonb_patch`, see `json`), registered again on
//! wasmig's connection with the same results and a clock. One call is one opcode to SQLite:
//! neither the progress handler nor `sqlite3_interrupt` can stop it, and on 16 MiB values one
//! call runs for minutes. These check the running step's deadline as they go and fail the
//! statement when it has passed. Each is a line-by-line port of SQLite's own (3.54,
//! `func.c`), so that plugins, and the application's connection afterwards, see the same
//! answers; `tests` compares them with SQLite's on many inputs.

use rusqlite::ffi;
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

/// The instant deadlines count from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// When the running plugin step must stop, shared with the functions; unset while the host
/// itself works.
#[derive(Debug, Clone, Default)]
pub(crate) struct Deadline(Arc<AtomicU64>);

impl Deadline {
    pub(crate) fn set(&self, at: Option<Instant>) {
        let nanos = at.map_or(0, |at| {
            (at.saturating_duration_since(*EPOCH).as_nanos() as u64).max(1)
        });
        self.0.store(nanos, Ordering::Relaxed);
    }

    /// Whether a plugin's step is running (the host's own statements have no deadline).
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    pub(crate) fn passed(&self) -> bool {
        let at = self.0.load(Ordering::Relaxed);
        at != 0 && EPOCH.elapsed().as_nanos() as u64 >= at
    }
}

/// Counts the work of one call (about one unit per byte compared) and looks at the clock
/// after every Mi units: a few dozen microseconds apart.
struct Budget<'a> {
    deadline: &'a Deadline,
    work: u64,
    next_check: u64,
}

impl Budget<'_> {
    /// `n` units more; `true`: the deadline has passed, stop.
    #[inline]
    fn spent(&mut self, n: usize) -> bool {
        self.work += n as u64;
        if self.work < self.next_check {
            return false;
        }
        self.next_check = self.work + (1 << 20);
        self.deadline.passed()
    }
}

const INTERRUPTED: &str = "interrupted: the statement was still running at the step's deadline";

/// What each registered function knows.
struct Function {
    deadline: Deadline,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Like,
    Glob,
    Instr,
    Replace,
    /// 1: left, 2: right, 3: both (SQLite's flags).
    Trim(u8),
    /// `true`: `jsonb_patch`.
    JsonPatch(bool),
    Unhex,
}

/// The functions registered in place of SQLite's: name, number of arguments, what they do.
const FUNCTIONS: &[(&str, c_int, Kind)] = &[
    ("like", 2, Kind::Like),
    ("like", 3, Kind::Like),
    ("glob", 2, Kind::Glob),
    ("instr", 2, Kind::Instr),
    ("replace", 3, Kind::Replace),
    ("trim", 1, Kind::Trim(3)),
    ("trim", 2, Kind::Trim(3)),
    ("ltrim", 1, Kind::Trim(1)),
    ("ltrim", 2, Kind::Trim(1)),
    ("rtrim", 1, Kind::Trim(2)),
    ("rtrim", 2, Kind::Trim(2)),
    ("unhex", 2, Kind::Unhex),
    ("json_patch", 2, Kind::JsonPatch(false)),
    ("jsonb_patch", 2, Kind::JsonPatch(true)),
];

/// Whether wasmig replaces SQLite's function `name` with one of its own: where SQLite calls
/// its built-in one anyway, a plugin's call of it escapes the bounds (see the authorizer).
pub(crate) fn replaced(name: &str) -> bool {
    FUNCTIONS
        .iter()
        .any(|(f, _, _)| f.eq_ignore_ascii_case(name))
}

/// Registers the functions on `db`, in place of SQLite's.
///
/// # Safety
/// `db` must be an open connection, used by one thread at a time (the functions run on it).
pub(crate) unsafe fn register(db: *mut ffi::sqlite3, deadline: &Deadline) -> Result<(), c_int> {
    for (name, args, kind) in FUNCTIONS {
        let data = Box::into_raw(Box::new(Function {
            deadline: deadline.clone(),
            kind: *kind,
        }));
        let name = std::ffi::CString::new(*name).expect("no NUL in a function's name");
        // SAFETY: `data` is a live box, freed by `destroy` when SQLite drops the function (also
        // when registration fails: SQLite calls xDestroy then too).
        let rc = unsafe {
            ffi::sqlite3_create_function_v2(
                db,
                name.as_ptr(),
                *args,
                ffi::SQLITE_UTF8
                    | ffi::SQLITE_DETERMINISTIC
                    | ffi::SQLITE_INNOCUOUS
                    | if matches!(kind, Kind::JsonPatch(false)) {
                        ffi::SQLITE_RESULT_SUBTYPE
                    } else {
                        0
                    },
                data.cast(),
                Some(call),
                None,
                None,
                Some(destroy),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
    }
    // SAFETY: as above; registration runs before any plugin's scope is set.
    unsafe { fts5::register(db) }
}

unsafe extern "C" fn destroy(data: *mut c_void) {
    // SAFETY: made by `Box::into_raw` in `register`, dropped once, by SQLite.
    drop(unsafe { Box::from_raw(data.cast::<Function>()) });
}

/// The bytes of a text value (`sqlite3_value_text`) up to and without its terminating NUL;
/// `None` for NULL.
unsafe fn c_text<'a>(v: *mut ffi::sqlite3_value) -> Option<&'a [u8]> {
    // SAFETY: SQLite's text of a value is NUL-terminated and lives while the value does.
    unsafe {
        let p = ffi::sqlite3_value_text(v);
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p.cast::<c_char>()).to_bytes())
    }
}

/// A text or blob value's bytes, `n` of them from `p` (embedded NULs included).
unsafe fn bytes<'a>(p: *const u8, n: c_int) -> &'a [u8] {
    if p.is_null() || n <= 0 {
        &[]
    } else {
        // SAFETY: SQLite's value buffer holds `n` bytes.
        unsafe { std::slice::from_raw_parts(p, n as usize) }
    }
}

unsafe extern "C" fn call(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: SQLite passes `argc` values and the user data given to `register`.
    unsafe {
        let f = &*ffi::sqlite3_user_data(ctx).cast::<Function>();
        let args = std::slice::from_raw_parts(argv, argc as usize);
        let mut budget = Budget {
            deadline: &f.deadline,
            work: 0,
            next_check: 1 << 20,
        };
        match f.kind {
            Kind::Like => like(ctx, args, &LIKE, &mut budget),
            Kind::Glob => like(ctx, args, &GLOB, &mut budget),
            Kind::Instr => instr(ctx, args, &mut budget),
            Kind::Replace => replace(ctx, args, &mut budget),
            Kind::Trim(flags) => trim(ctx, args, flags, &mut budget),
            Kind::Unhex => unhex(ctx, args, &mut budget),
            Kind::JsonPatch(binary) => json::patch(ctx, args, binary, &f.deadline),
        }
    }
}

unsafe fn error(ctx: *mut ffi::sqlite3_context, message: &str) {
    // SAFETY: SQLite copies the message.
    unsafe {
        ffi::sqlite3_result_error(ctx, message.as_ptr().cast(), message.len() as c_int);
    }
}

unsafe fn result_blob(ctx: *mut ffi::sqlite3_context, blob: &[u8]) {
    // SAFETY: SQLITE_TRANSIENT: SQLite copies the bytes.
    unsafe {
        ffi::sqlite3_result_blob64(
            ctx,
            blob.as_ptr().cast(),
            blob.len() as u64,
            ffi::SQLITE_TRANSIENT(),
        );
    }
}

unsafe fn result_text(ctx: *mut ffi::sqlite3_context, text: &[u8]) {
    // SAFETY: SQLITE_TRANSIENT: SQLite copies the bytes.
    unsafe {
        ffi::sqlite3_result_text64(
            ctx,
            text.as_ptr().cast(),
            text.len() as u64,
            ffi::SQLITE_TRANSIENT(),
            ffi::SQLITE_UTF8 as u8,
        );
    }
}

/// SQLite's `sqlite3Utf8Trans1`.
const UTF8_TRANS1: [u8; 64] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x00, 0x01, 0x02, 0x03, 0x00, 0x01, 0x00, 0x00,
];

/// A NUL-terminated string as SQLite walks it: past the end reads 0.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(0)
    }

    /// `sqlite3Utf8Read`.
    fn read(&mut self) -> u32 {
        let mut c = self.peek() as u32;
        if self.i < self.s.len() {
            self.i += 1;
        }
        if c >= 0xc0 {
            c = UTF8_TRANS1[(c - 0xc0) as usize] as u32;
            while self.peek() & 0xc0 == 0x80 {
                c = (c << 6) + (0x3f & self.peek() as u32);
                self.i += 1;
            }
            if c < 0x80 || (c & 0xFFFF_F800) == 0xD800 {
                c = 0xFFFD;
            }
        }
        c
    }

    /// `SQLITE_SKIP_UTF8`.
    fn skip(&mut self) {
        let c = self.peek();
        self.i += 1;
        if c >= 0xc0 {
            while self.peek() & 0xc0 == 0x80 {
                self.i += 1;
            }
        }
    }
}

mod fts5;
mod json;
mod pattern;
mod text;

use pattern::*;
use text::*;

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;
    use rusqlite::types::Value;

    /// Inputs that reach every branch: wildcards, escapes, sets and ranges, case, multi-byte
    /// and invalid UTF-8, embedded NULs, blobs, numbers, NULL.
    fn values() -> Vec<Value> {
        let mut v: Vec<Value> = [
            "",
            "a",
            "A",
            "abc",
            "aBc",
            "%",
            "_",
            "a%",
            "%c",
            "a_c",
            "%b%",
            "_%_",
            "\\%",
            "a\\_c",
            "*",
            "?",
            "a*",
            "*c",
            "a?c",
            "[abc]",
            "[^a]*",
            "[a-c]*",
            "[]]",
            "[^]]",
            "*[b]*",
            "[a-]",
            "é",
            "ÉTÉ",
            "été%",
            "%é",
            "日本語",
            "日_語",
            "x\u{0}y",
            "  pad  ",
            "xxaxx",
            "aaaa",
            "aa",
            "abab",
            "ab",
            "ba",
            "-",
            "]",
            "^",
            "[",
            "\\",
            "%%",
            "__",
            // Hex digits between other characters, for `unhex`.
            "12-34",
            "0a 0B ",
            "-12",
            "12é34",
            "1",
            "ab-",
        ]
        .iter()
        .map(|s| Value::Text(s.to_string()))
        .collect();
        v.extend([
            Value::Blob(b"abc".to_vec()),
            Value::Blob(vec![0xc3, 0xa9, 0x80, 0xff, b'a']),
            Value::Blob(vec![]),
            Value::Blob(vec![b'a', 0, b'b']),
            Value::Integer(12),
            Value::Integer(-1),
            Value::Real(1.5),
            Value::Null,
        ]);
        v
    }

    /// SQLite's answer and ours, as text (errors included).
    fn both(
        ours: &Connection,
        theirs: &Connection,
        sql: &str,
        args: &[&Value],
    ) -> (String, String) {
        let run = |c: &Connection| -> String {
            c.query_row(sql, rusqlite::params_from_iter(args), |r| {
                r.get::<_, Value>(0)
            })
            .map(|v| format!("{v:?}"))
            .unwrap_or_else(|e| format!("error: {e}"))
        };
        (run(ours), run(theirs))
    }

    #[test]
    fn the_functions_answer_as_sqlites_own() {
        let theirs = Connection::open_in_memory().unwrap();
        let ours = Connection::open_in_memory().unwrap();
        let deadline = Deadline::default();
        deadline.set(Some(Instant::now() + std::time::Duration::from_secs(3600)));
        unsafe { register(ours.handle(), &deadline).unwrap() };
        // The host's own statements run without a step's deadline.
        let host = Connection::open_in_memory().unwrap();
        unsafe { register(host.handle(), &Deadline::default()).unwrap() };
        let values = values();
        let mut compared = 0;
        // In a step, LIKE and GLOB of a blob are refused: SQLite builds differ on them.
        let refused = |sql: &str, args: &[&Value]| {
            let pattern = ["like", "LIKE", "glob"].iter().any(|f| sql.contains(f));
            pattern && args[..2].iter().any(|v| matches!(v, Value::Blob(_)))
        };
        let check = |sql: &str, args: &[&Value]| {
            let (o, t) = both(&ours, &theirs, sql, args);
            if refused(sql, args) {
                assert!(
                    o.starts_with("error: LIKE and GLOB of a blob are not available"),
                    "{sql} with {args:?}: {o}"
                );
                assert_eq!(both(&host, &theirs, sql, args).0, t, "{sql} with {args:?}");
            } else {
                assert_eq!(o, t, "{sql} with {args:?}");
            }
        };
        for a in &values {
            for b in &values {
                for sql in [
                    "SELECT like(?1, ?2)",
                    "SELECT glob(?1, ?2)",
                    "SELECT ?2 LIKE ?1",
                    "SELECT instr(?1, ?2)",
                    "SELECT trim(?1, ?2)",
                    "SELECT ltrim(?1, ?2)",
                    "SELECT rtrim(?1, ?2)",
                    "SELECT trim(?1)",
                    "SELECT ltrim(?1) || rtrim(?2)",
                    "SELECT unhex(?1, ?2)",
                    "SELECT unhex(?2, ?1)",
                ] {
                    check(sql, &[a, b]);
                    compared += 1;
                }
                for c in [
                    &values[0],
                    &values[1],
                    &values[5],
                    &values[12],
                    &values[26],
                    &values[54],
                ] {
                    for sql in ["SELECT replace(?1, ?2, ?3)", "SELECT like(?1, ?2, ?3)"] {
                        check(sql, &[a, b, c]);
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 50_000, "{compared}");
    }

    #[test]
    fn json_patch_answers_as_sqlites_own_and_refuses_a_costly_call_in_a_step() {
        let theirs = Connection::open_in_memory().unwrap();
        let ours = Connection::open_in_memory().unwrap();
        let deadline = Deadline::default();
        deadline.set(Some(Instant::now() + std::time::Duration::from_secs(3600)));
        unsafe { register(ours.handle(), &deadline).unwrap() };
        let json = [
            "{}",
            "[]",
            "null",
            "1",
            "\"s\"",
            "{\"a\":1,\"b\":{\"c\":2,\"d\":[1,2]}}",
            "{\"a\":null,\"b\":{\"c\":null,\"e\":\"x\"},\"f\":{}}",
            "{\"b\":{\"c\":{\"deep\":true}},\"é\":\"日本\"}",
            "{ \"a\" : 5 , \"a\" : 6 }",
            "{\"a\":1,}",
            "{a:1}",
            "not json",
        ];
        let mut values: Vec<Value> = json.iter().map(|s| Value::Text(s.to_string())).collect();
        for s in &json[..8] {
            let blob: Vec<u8> = theirs
                .query_row("SELECT jsonb(?1)", [s], |r| r.get(0))
                .unwrap();
            values.push(Value::Blob(blob));
        }
        values.extend([Value::Null, Value::Integer(3), Value::Blob(vec![0xff, 0])]);
        for a in &values {
            for b in &values {
                for sql in [
                    "SELECT json_patch(?1, ?2)",
                    "SELECT jsonb_patch(?1, ?2)",
                    // The result is JSON to the function it is given to, not a string.
                    "SELECT json_array(json_patch(?1, ?2))",
                    "SELECT json_patch(?1, ?2) -> '$.b'",
                ] {
                    let (o, t) = both(&ours, &theirs, sql, &[a, b]);
                    assert_eq!(o, t, "{sql} with {a:?}, {b:?}");
                }
            }
        }
        // Two objects whose sizes multiply past the bound: refused in a step, merged for the
        // host.
        let big = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9000)
            SELECT json_patch((SELECT json_group_object('a' || i, 1) FROM n),
                              (SELECT json_group_object('b' || i, 1) FROM n))";
        let err = ours
            .query_row(big, [], |r| r.get::<_, String>(0))
            .unwrap_err();
        assert!(
            err.to_string().contains("is not available to plugins"),
            "{err}"
        );
        deadline.set(None);
        let merged: String = ours.query_row(big, [], |r| r.get(0)).unwrap();
        assert_eq!(merged.matches(':').count(), 18_000);
    }

    #[test]
    fn a_long_call_stops_at_the_deadline() {
        let ours = Connection::open_in_memory().unwrap();
        let deadline = Deadline::default();
        unsafe { register(ours.handle(), &deadline).unwrap() };
        deadline.set(Some(Instant::now() + std::time::Duration::from_millis(200)));
        let started = Instant::now();
        for sql in [
            "SELECT instr(zeroblob(4000000) || 'x', zeroblob(2000000) || 'y')",
            "SELECT replace(hex(zeroblob(2000000)), hex(zeroblob(1000000)) || 'x', '')",
            "SELECT ltrim(hex(zeroblob(2000000)), printf('%.*c', 100000, 'x') || '0')",
            // Each character that is not a hex digit is looked for in the whole second text.
            "SELECT unhex(printf('%.*c', 2000000, '-'), printf('%.*c', 1000000, 'x') || '-')",
            // Each position of the string compares the pattern's run of 'a's before it fails.
            "SELECT replace(hex(zeroblob(2000000)), '0', 'a') LIKE '%' || replace(hex(zeroblob(5000)), '0', 'a') || 'b'",
            "SELECT replace(hex(zeroblob(2000000)), '0', 'a') GLOB '*' || replace(hex(zeroblob(5000)), '0', 'a') || 'b'",
        ] {
            let err = ours
                .query_row(sql, [], |r| r.get::<_, Value>(0))
                .unwrap_err();
            assert!(err.to_string().contains("deadline"), "{sql}: {err}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        // Without a deadline (the host's own statements) they run to the end.
        deadline.set(None);
        let n: i64 = ours
            .query_row(
                "SELECT instr(zeroblob(20000) || 'x', zeroblob(100) || 'x')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 19901);
    }
}
