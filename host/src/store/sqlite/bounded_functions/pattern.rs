//! `like` and `glob`: SQLite's pattern matcher (`patternCompare`), with the clock.

use super::*;

pub(super) struct CompareInfo {
    match_all: u32,
    match_one: u32,
    match_set: u32,
    no_case: bool,
}

pub(super) const GLOB: CompareInfo = CompareInfo {
    match_all: '*' as u32,
    match_one: '?' as u32,
    match_set: '[' as u32,
    no_case: false,
};
pub(super) const LIKE: CompareInfo = CompareInfo {
    match_all: '%' as u32,
    match_one: '_' as u32,
    match_set: 0,
    no_case: true,
};

#[derive(PartialEq)]
pub(super) enum Matched {
    Match,
    NoMatch,
    NoWildcardMatch,
    Interrupted,
}

pub(super) fn to_lower(c: u32) -> u32 {
    if c < 0x80 {
        (c as u8).to_ascii_lowercase() as u32
    } else {
        c
    }
}

pub(super) fn to_upper(c: u32) -> u32 {
    if c < 0x80 {
        (c as u8).to_ascii_uppercase() as u32
    } else {
        c
    }
}

/// SQLite's `patternCompare`.
pub(super) fn pattern_compare(
    mut pattern: Cursor<'_>,
    mut string: Cursor<'_>,
    info: &CompareInfo,
    match_other: u32,
    budget: &mut Budget<'_>,
) -> Matched {
    let (match_one, match_all, no_case) = (info.match_one, info.match_all, info.no_case);
    let mut escaped: Option<usize> = None;
    loop {
        if budget.spent(1) {
            return Matched::Interrupted;
        }
        let mut c = pattern.read();
        if c == 0 {
            break;
        }
        if c == match_all {
            loop {
                c = pattern.read();
                if !(c == match_all || (c == match_one && match_one != 0)) {
                    break;
                }
                if c == match_one && string.read() == 0 {
                    return Matched::NoWildcardMatch;
                }
            }
            if c == 0 {
                return Matched::Match;
            } else if c == match_other {
                if info.match_set == 0 {
                    c = pattern.read();
                    if c == 0 {
                        return Matched::NoWildcardMatch;
                    }
                } else {
                    // "[...]" right after "*": back to the '['.
                    let set = Cursor {
                        s: pattern.s,
                        i: pattern.i - 1,
                    };
                    while string.peek() != 0 {
                        let m = pattern_compare(set, string, info, match_other, budget);
                        if m != Matched::NoMatch {
                            return m;
                        }
                        string.skip();
                    }
                    return Matched::NoWildcardMatch;
                }
            }
            if c < 0x80 {
                let stop = if no_case {
                    [to_upper(c) as u8, to_lower(c) as u8]
                } else {
                    [c as u8, c as u8]
                };
                loop {
                    // strcspn: to the next byte in `stop`, or the end.
                    let rest = &string.s[string.i.min(string.s.len())..];
                    match rest
                        .iter()
                        .position(|&b| b == stop[0] || b == stop[1] || b == 0)
                    {
                        Some(at) if rest[at] != 0 => string.i += at + 1,
                        _ => break,
                    }
                    let m = pattern_compare(pattern, string, info, match_other, budget);
                    if m != Matched::NoMatch {
                        return m;
                    }
                }
            } else {
                loop {
                    if budget.spent(1) {
                        return Matched::Interrupted;
                    }
                    let c2 = string.read();
                    if c2 == 0 {
                        break;
                    }
                    if c2 != c {
                        continue;
                    }
                    let m = pattern_compare(pattern, string, info, match_other, budget);
                    if m != Matched::NoMatch {
                        return m;
                    }
                }
            }
            return Matched::NoWildcardMatch;
        }
        if c == match_other {
            if info.match_set == 0 {
                c = pattern.read();
                if c == 0 {
                    return Matched::NoMatch;
                }
                escaped = Some(pattern.i);
            } else {
                let mut prior_c = 0u32;
                let mut seen = false;
                let mut invert = false;
                c = string.read();
                if c == 0 {
                    return Matched::NoMatch;
                }
                let mut c2 = pattern.read();
                if c2 == '^' as u32 {
                    invert = true;
                    c2 = pattern.read();
                }
                if c2 == ']' as u32 {
                    if c == ']' as u32 {
                        seen = true;
                    }
                    c2 = pattern.read();
                }
                while c2 != 0 && c2 != ']' as u32 {
                    if c2 == '-' as u32
                        && pattern.peek() != b']'
                        && pattern.peek() != 0
                        && prior_c > 0
                    {
                        c2 = pattern.read();
                        if c >= prior_c && c <= c2 {
                            seen = true;
                        }
                        prior_c = 0;
                    } else {
                        if c == c2 {
                            seen = true;
                        }
                        prior_c = c2;
                    }
                    c2 = pattern.read();
                }
                if c2 == 0 || seen == invert {
                    return Matched::NoMatch;
                }
                continue;
            }
        }
        let c2 = string.read();
        if c == c2 {
            continue;
        }
        if no_case && to_lower(c) == to_lower(c2) && c < 0x80 && c2 < 0x80 {
            continue;
        }
        if c == match_one && Some(pattern.i) != escaped && c2 != 0 {
            continue;
        }
        return Matched::NoMatch;
    }
    if string.peek() == 0 {
        Matched::Match
    } else {
        Matched::NoMatch
    }
}

/// SQLite's `likeFunc` (GLOB too): `like(pattern, string [, escape])`.
pub(super) unsafe fn like(
    ctx: *mut ffi::sqlite3_context,
    args: &[*mut ffi::sqlite3_value],
    info: &CompareInfo,
    budget: &mut Budget<'_>,
) {
    // SAFETY: the values and the context are SQLite's, valid for the call.
    unsafe {
        // SQLite builds differ on a blob: one built with SQLITE_LIKE_DOESNT_MATCH_BLOBS (as
        // many are) answers 0, another matches its bytes as text. A CHECK constraint or an
        // index of a plugin's that stored one answer would be judged by the other on the
        // application's connection (its `integrity_check`, its `VACUUM`), so a plugin's step
        // gets neither.
        if budget.deadline.is_set()
            && args[..2]
                .iter()
                .any(|v| ffi::sqlite3_value_type(*v) == ffi::SQLITE_BLOB)
        {
            return error(
                ctx,
                "LIKE and GLOB of a blob are not available to plugins: SQLite builds differ in \
                 what they answer (SQLITE_LIKE_DOESNT_MATCH_BLOBS)",
            );
        }
        let n_pat = ffi::sqlite3_value_bytes(args[0]);
        let db = ffi::sqlite3_context_db_handle(ctx);
        if n_pat > ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, -1) {
            return error(ctx, "LIKE or GLOB pattern too complex");
        }
        let mut custom;
        let mut info = info;
        let escape = if args.len() == 3 {
            let Some(esc) = c_text(args[2]) else { return };
            let mut chars = Cursor { s: esc, i: 0 };
            let mut n = 0;
            while chars.peek() != 0 {
                chars.skip();
                n += 1;
            }
            if n != 1 {
                return error(ctx, "ESCAPE expression must be a single character");
            }
            let escape = Cursor { s: esc, i: 0 }.read();
            if escape == info.match_all || escape == info.match_one {
                custom = CompareInfo { ..*info };
                if escape == custom.match_all {
                    custom.match_all = 0;
                }
                if escape == custom.match_one {
                    custom.match_one = 0;
                }
                info = &custom;
            }
            escape
        } else {
            info.match_set
        };
        let (Some(pattern), Some(string)) = (c_text(args[0]), c_text(args[1])) else {
            return;
        };
        let pattern = Cursor { s: pattern, i: 0 };
        let string = Cursor { s: string, i: 0 };
        match pattern_compare(pattern, string, info, escape, budget) {
            Matched::Interrupted => error(ctx, INTERRUPTED),
            m => ffi::sqlite3_result_int(ctx, (m == Matched::Match) as c_int),
        }
    }
}
