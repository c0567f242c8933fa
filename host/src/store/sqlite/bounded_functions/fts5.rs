//! fts5's auxiliary functions (`bm25`, `highlight`, `snippet`) walk a row's matches once per
//! phrase of the query, or each against every other, in one call. The authorizer refuses
//! them by name, but fts5 also calls its ranking function (`bm25` unless a table says
//! otherwise) for a table's `rank` column, whatever the table's name or how it was made. So
//! on wasmig's connection fts5 knows functions of those names that only fail: a `rank` or
//! a call reaches one of them, not fts5's own. The application's connection has fts5's.

use super::error;
use rusqlite::ffi;
use std::ffi::{c_int, c_void};

const REFUSED: &str = "fts5's ranking and auxiliary functions (bm25, highlight, snippet, and a \
     table's rank column) are not available to plugins: one call walks a row's matches once \
     per phrase of the query";

unsafe extern "C" fn refuse(
    _api: *const ffi::Fts5ExtensionApi,
    _fts: *mut ffi::Fts5Context,
    ctx: *mut ffi::sqlite3_context,
    _n: c_int,
    _values: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: the context of the running call.
    unsafe { error(ctx, REFUSED) }
}

/// Registers the failing functions with `db`'s fts5, in place of its own.
///
/// # Safety
/// `db` must be an open connection, used by one thread at a time, with no authorizer
/// scope that refuses the `fts5()` function (the host's own statements).
pub(super) unsafe fn register(db: *mut ffi::sqlite3) -> Result<(), c_int> {
    // SAFETY: the documented way to get a connection's fts5_api: `SELECT fts5(?1)` with a
    // pointer bound as "fts5_api_ptr", which fts5 fills.
    unsafe {
        let mut stmt = std::ptr::null_mut();
        let rc = ffi::sqlite3_prepare_v2(
            db,
            c"SELECT fts5(?1)".as_ptr(),
            -1,
            &mut stmt,
            std::ptr::null_mut(),
        );
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
        let mut api: *mut ffi::fts5_api = std::ptr::null_mut();
        ffi::sqlite3_bind_pointer(
            stmt,
            1,
            (&mut api as *mut *mut ffi::fts5_api).cast::<c_void>(),
            c"fts5_api_ptr".as_ptr(),
            None,
        );
        ffi::sqlite3_step(stmt);
        let rc = ffi::sqlite3_finalize(stmt);
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
        if api.is_null() {
            return Err(ffi::SQLITE_ERROR);
        }
        let create = (*api).xCreateFunction.ok_or(ffi::SQLITE_ERROR)?;
        for name in [c"bm25", c"highlight", c"snippet"] {
            let rc = create(api, name.as_ptr(), std::ptr::null_mut(), Some(refuse), None);
            if rc != ffi::SQLITE_OK {
                return Err(rc);
            }
        }
        Ok(())
    }
}
