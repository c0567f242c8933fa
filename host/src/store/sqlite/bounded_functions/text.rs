//! `instr`, `replace` and `trim` (with `ltrim` and `rtrim`), with the clock.

use super::*;

/// SQLite's `instrFunc`.
pub(super) unsafe fn instr(
    ctx: *mut ffi::sqlite3_context,
    args: &[*mut ffi::sqlite3_value],
    budget: &mut Budget<'_>,
) {
    // SAFETY: the values and the context are SQLite's; duplicates are freed before returning.
    unsafe {
        let type_h = ffi::sqlite3_value_type(args[0]);
        let type_n = ffi::sqlite3_value_type(args[1]);
        if type_h == ffi::SQLITE_NULL || type_n == ffi::SQLITE_NULL {
            return;
        }
        let mut n_h = ffi::sqlite3_value_bytes(args[0]);
        let mut n_n = ffi::sqlite3_value_bytes(args[1]);
        let mut result = 1;
        let mut dups = [std::ptr::null_mut(); 2];
        if n_n > 0 {
            let (h, n, is_text);
            if type_h == ffi::SQLITE_BLOB && type_n == ffi::SQLITE_BLOB {
                h = ffi::sqlite3_value_blob(args[0]).cast::<u8>();
                n = ffi::sqlite3_value_blob(args[1]).cast::<u8>();
                is_text = false;
            } else if type_h != ffi::SQLITE_BLOB && type_n != ffi::SQLITE_BLOB {
                h = ffi::sqlite3_value_text(args[0]);
                n = ffi::sqlite3_value_text(args[1]);
                is_text = true;
            } else {
                dups = [
                    ffi::sqlite3_value_dup(args[0]),
                    ffi::sqlite3_value_dup(args[1]),
                ];
                h = ffi::sqlite3_value_text(dups[0]);
                n_h = ffi::sqlite3_value_bytes(dups[0]);
                n = ffi::sqlite3_value_text(dups[1]);
                n_n = ffi::sqlite3_value_bytes(dups[1]);
                is_text = true;
            }
            if n.is_null() || (n_h > 0 && h.is_null()) {
                ffi::sqlite3_result_error_nomem(ctx);
                dups.into_iter().for_each(|d| ffi::sqlite3_value_free(d));
                return;
            }
            // The haystack with its terminating NUL, which the loop may read as a stop.
            let hay = bytes(h, n_h + is_text as c_int);
            let needle = bytes(n, n_n);
            let (mut at, mut left) = (0usize, n_h as usize);
            while needle.len() <= left && hay[at..at + needle.len()] != *needle {
                if budget.spent(needle.len()) {
                    error(ctx, INTERRUPTED);
                    dups.into_iter().for_each(|d| ffi::sqlite3_value_free(d));
                    return;
                }
                result += 1;
                loop {
                    left -= 1;
                    at += 1;
                    if !(is_text && hay.get(at).is_some_and(|b| b & 0xc0 == 0x80)) {
                        break;
                    }
                }
            }
            if needle.len() > left {
                result = 0;
            }
        }
        ffi::sqlite3_result_int(ctx, result);
        dups.into_iter().for_each(|d| ffi::sqlite3_value_free(d));
    }
}

/// SQLite's `replaceFunc`.
pub(super) unsafe fn replace(
    ctx: *mut ffi::sqlite3_context,
    args: &[*mut ffi::sqlite3_value],
    budget: &mut Budget<'_>,
) {
    // SAFETY: the values and the context are SQLite's, valid for the call.
    unsafe {
        let s = ffi::sqlite3_value_text(args[0]);
        if s.is_null() {
            return;
        }
        let s = bytes(s, ffi::sqlite3_value_bytes(args[0]));
        let p = ffi::sqlite3_value_text(args[1]);
        if p.is_null() {
            return;
        }
        if *p == 0 {
            return result_text(ctx, s);
        }
        let p = bytes(p, ffi::sqlite3_value_bytes(args[1]));
        let r = ffi::sqlite3_value_text(args[2]);
        if r.is_null() {
            return;
        }
        let r = bytes(r, ffi::sqlite3_value_bytes(args[2]));
        let limit = ffi::sqlite3_limit(
            ffi::sqlite3_context_db_handle(ctx),
            ffi::SQLITE_LIMIT_LENGTH,
            -1,
        ) as i64;
        let mut out = Vec::with_capacity(s.len() + 1);
        let mut n_out = s.len() as i64 + 1;
        let mut i = 0usize;
        while i + p.len() <= s.len() {
            if budget.spent(p.len()) {
                return error(ctx, INTERRUPTED);
            }
            if s[i] != p[0] || s[i..i + p.len()] != *p {
                out.push(s[i]);
                i += 1;
            } else {
                if r.len() > p.len() {
                    n_out += (r.len() - p.len()) as i64;
                    if n_out - 1 > limit {
                        return ffi::sqlite3_result_error_toobig(ctx);
                    }
                }
                out.extend_from_slice(r);
                i += p.len();
            }
        }
        out.extend_from_slice(&s[i..]);
        result_text(ctx, &out);
    }
}

/// SQLite's `trimFunc`.
pub(super) unsafe fn trim(
    ctx: *mut ffi::sqlite3_context,
    args: &[*mut ffi::sqlite3_value],
    flags: u8,
    budget: &mut Budget<'_>,
) {
    // SAFETY: the values and the context are SQLite's, valid for the call.
    unsafe {
        if ffi::sqlite3_value_type(args[0]) == ffi::SQLITE_NULL {
            return;
        }
        let z = ffi::sqlite3_value_text(args[0]);
        if z.is_null() {
            return;
        }
        let mut input = bytes(z, ffi::sqlite3_value_bytes(args[0]));
        let chars: Vec<&[u8]> = if args.len() == 1 {
            vec![b" "]
        } else {
            let Some(set) = c_text(args[1]) else { return };
            let mut cursor = Cursor { s: set, i: 0 };
            let mut chars = Vec::new();
            while cursor.peek() != 0 {
                let start = cursor.i;
                cursor.skip();
                chars.push(&set[start..cursor.i.min(set.len())]);
            }
            chars
        };
        if !chars.is_empty() {
            if flags & 1 != 0 {
                'left: while !input.is_empty() {
                    for c in &chars {
                        if budget.spent(c.len()) {
                            return error(ctx, INTERRUPTED);
                        }
                        if input.starts_with(c) {
                            input = &input[c.len()..];
                            continue 'left;
                        }
                    }
                    break;
                }
            }
            if flags & 2 != 0 {
                'right: while !input.is_empty() {
                    for c in &chars {
                        if budget.spent(c.len()) {
                            return error(ctx, INTERRUPTED);
                        }
                        if input.ends_with(c) {
                            input = &input[..input.len() - c.len()];
                            continue 'right;
                        }
                    }
                    break;
                }
            }
        }
        result_text(ctx, input);
    }
}

/// SQLite's `unhexFunc` with two arguments: each character of the text that is not a hex
/// digit is looked for among the second argument's, which costs the product of their
/// lengths.
pub(super) unsafe fn unhex(
    ctx: *mut ffi::sqlite3_context,
    args: &[*mut ffi::sqlite3_value],
    budget: &mut Budget<'_>,
) {
    // SAFETY: the values and the context are SQLite's, valid for the call.
    unsafe {
        let z_hex = ffi::sqlite3_value_text(args[0]);
        let n_hex = ffi::sqlite3_value_bytes(args[0]);
        let z_pass = ffi::sqlite3_value_text(args[1]);
        let n_pass = ffi::sqlite3_value_bytes(args[1]);
        if z_hex.is_null() || z_pass.is_null() {
            return;
        }
        let pass = bytes(z_pass, n_pass);
        let mut hex = Cursor {
            s: std::ffi::CStr::from_ptr(z_hex.cast()).to_bytes(),
            i: 0,
        };
        let mut blob = Vec::with_capacity((n_hex.max(0) as usize) / 2 + 1);
        let contains = |ch: u32, budget: &mut Budget<'_>| -> Option<bool> {
            if budget.spent(pass.len()) {
                return None;
            }
            let mut z = Cursor { s: pass, i: 0 };
            while z.i < pass.len() {
                if z.read() == ch {
                    return Some(true);
                }
            }
            Some(false)
        };
        loop {
            let mut c = hex.peek();
            if c == 0 {
                break;
            }
            while !c.is_ascii_hexdigit() {
                let ch = hex.read();
                match contains(ch, budget) {
                    None => return error(ctx, INTERRUPTED),
                    Some(false) => return,
                    Some(true) => {}
                }
                c = hex.peek();
                if c == 0 {
                    return result_blob(ctx, &blob);
                }
            }
            hex.i += 1;
            let d = hex.peek();
            hex.i += 1;
            if !d.is_ascii_hexdigit() {
                return;
            }
            blob.push((hex_value(c) << 4) | hex_value(d));
        }
        result_blob(ctx, &blob);
    }
}

/// SQLite's `sqlite3HexToInt` of an ASCII hex digit.
fn hex_value(h: u8) -> u8 {
    match h {
        b'0'..=b'9' => h - b'0',
        b'a'..=b'f' => h - b'a' + 10,
        _ => h - b'A' + 10,
    }
}
