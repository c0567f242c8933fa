//! `json_patch` and `jsonb_patch`: SQLite merges an object by searching the target's keys for
//! each of the patch's, the keys earlier patch keys added included, so one call's cost grows
//! with the patch's size times the target's and the patch's together (two 200 KB objects
//! take seconds, two 16 MiB ones hours; an empty target and a patch of 70,000 keys, 12 s), in
//! one opcode. During a step, values for which that product passes [`MAX_PATCH_PRODUCT`]
//! are refused; smaller ones are merged by SQLite's own function, on a private connection
//! of the thread's, so the answer is SQLite's.

use super::{Deadline, INTERRUPTED, error};
use rusqlite::ffi;
use std::cell::RefCell;
use std::ffi::c_int;

/// The largest product, in bytes, of the patch's size and the target's and the patch's
/// together that one call may merge during a step: a fifth of a second at SQLite's worst
/// (keys of two bytes in JSONB, none shared, about 5 ns a comparison), well within the
/// second a step may run past its deadline.
pub(super) const MAX_PATCH_PRODUCT: u64 = 1 << 28;

/// A private connection that runs SQLite's own functions, and its two statements.
struct Patcher {
    db: *mut ffi::sqlite3,
    /// `json_patch(?1, ?2)` and `jsonb_patch(?1, ?2)`.
    statements: [*mut ffi::sqlite3_stmt; 2],
}

impl Patcher {
    fn open() -> Option<Patcher> {
        let mut db = std::ptr::null_mut();
        // SAFETY: opens a private in-memory database; the handle is closed in `drop`, also
        // when opening failed.
        let mut patcher = Patcher {
            db: std::ptr::null_mut(),
            statements: [std::ptr::null_mut(); 2],
        };
        unsafe {
            let rc = ffi::sqlite3_open_v2(
                c":memory:".as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE | ffi::SQLITE_OPEN_NOMUTEX,
                std::ptr::null(),
            );
            patcher.db = db;
            if rc != ffi::SQLITE_OK {
                return None;
            }
            for (i, sql) in [c"SELECT json_patch(?1, ?2)", c"SELECT jsonb_patch(?1, ?2)"]
                .into_iter()
                .enumerate()
            {
                let rc = ffi::sqlite3_prepare_v2(
                    db,
                    sql.as_ptr(),
                    -1,
                    &mut patcher.statements[i],
                    std::ptr::null_mut(),
                );
                if rc != ffi::SQLITE_OK {
                    return None;
                }
            }
        }
        Some(patcher)
    }
}

impl Drop for Patcher {
    fn drop(&mut self) {
        // SAFETY: the statements and the handle are this patcher's, finalized and closed once
        // (null ones are no-ops).
        unsafe {
            for stmt in self.statements {
                ffi::sqlite3_finalize(stmt);
            }
            ffi::sqlite3_close(self.db);
        }
    }
}

thread_local! {
    static PATCHER: RefCell<Option<Patcher>> = const { RefCell::new(None) };
}

/// The bytes a value takes as an argument (text and blobs: their length).
unsafe fn size(v: *mut ffi::sqlite3_value) -> u64 {
    // SAFETY: a live argument of the running call.
    unsafe {
        match ffi::sqlite3_value_type(v) {
            ffi::SQLITE_TEXT | ffi::SQLITE_BLOB => ffi::sqlite3_value_bytes(v).max(0) as u64,
            _ => 8,
        }
    }
}

/// `json_patch(target, patch)` (`binary`: `jsonb_patch`).
///
/// # Safety
/// `ctx` and `args` (two values) are those of a running call of a function.
pub(super) unsafe fn patch(
    ctx: *mut ffi::sqlite3_context,
    args: &[*mut ffi::sqlite3_value],
    binary: bool,
    deadline: &Deadline,
) {
    // SAFETY: the caller's promise; the patcher's statement is this thread's alone, and is
    // reset (its result copied first) before the patcher is lent again.
    unsafe {
        if deadline.is_set() {
            if deadline.passed() {
                return error(ctx, INTERRUPTED);
            }
            let (target, patch) = (size(args[0]), size(args[1]));
            if target.saturating_add(patch).saturating_mul(patch) > MAX_PATCH_PRODUCT {
                return error(
                    ctx,
                    &format!(
                        "json_patch() of a {target}-byte value with a {patch}-byte patch is \
                         not available to plugins: one call's cost grows with the patch's \
                         size times both sizes together, which may be at most \
                         {MAX_PATCH_PRODUCT}; patch smaller objects"
                    ),
                );
            }
        }
        PATCHER.with(|cell| {
            let mut patcher = cell.borrow_mut();
            if patcher.is_none() {
                *patcher = Patcher::open();
            }
            let Some(p) = patcher.as_ref() else {
                return error(ctx, "json_patch(): cannot open SQLite's own function");
            };
            let stmt = p.statements[usize::from(binary)];
            ffi::sqlite3_bind_value(stmt, 1, args[0]);
            ffi::sqlite3_bind_value(stmt, 2, args[1]);
            match ffi::sqlite3_step(stmt) {
                ffi::SQLITE_ROW => {
                    let value = ffi::sqlite3_column_value(stmt, 0);
                    ffi::sqlite3_result_value(ctx, value);
                    // JSON text, as SQLite's own marks it for the functions it is given to.
                    if !binary && ffi::sqlite3_value_type(value) == ffi::SQLITE_TEXT {
                        ffi::sqlite3_result_subtype(ctx, c_int::from(b'J') as u32);
                    }
                }
                _ => {
                    let message = std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(p.db))
                        .to_string_lossy()
                        .into_owned();
                    error(ctx, &message);
                }
            }
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        })
    }
}
