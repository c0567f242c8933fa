//! mimalloc for the whole process: Rust's allocations and SQLite's.
//!
//! A run allocates and frees on several threads at once (the run's thread, the loader, the
//! instance made for the next step) and SQLite allocates for every statement it prepares and
//! every page it reads. glibc's allocator spends that time in arena locks and consolidation;
//! mimalloc's thread-local free lists do not. SQLite does not allocate through Rust, so it is
//! given mimalloc separately, before it starts, with the library's bound on its memory during
//! a step (`wasmig::sqlite_memory::hooks`) inside the same methods.

use rusqlite::ffi;
use std::os::raw::{c_int, c_void};
use wasmig::sqlite_memory::hooks;

fn usable(p: *mut c_void) -> usize {
    if p.is_null() {
        0
    } else {
        // SAFETY: `p` came from mimalloc (x_malloc or x_realloc).
        unsafe { libmimalloc_sys::mi_usable_size(p) }
    }
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    if hooks::refused() {
        return std::ptr::null_mut();
    }
    // SAFETY: mi_malloc takes any size; SQLite never asks for a negative one.
    let p = unsafe { libmimalloc_sys::mi_malloc(n.max(0) as usize) };
    if !p.is_null() && !hooks::allocated(usable(p)) {
        // SAFETY: just allocated, not handed out.
        unsafe { libmimalloc_sys::mi_free(p) };
        return std::ptr::null_mut();
    }
    p
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    hooks::freed(usable(p));
    // SAFETY: SQLite frees only what x_malloc or x_realloc returned (or null).
    unsafe { libmimalloc_sys::mi_free(p) }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    // Refused: SQLite keeps the block it has.
    let before = usable(p);
    if hooks::refused() || !hooks::may_resize(before, n.max(0) as usize) {
        return std::ptr::null_mut();
    }
    // SAFETY: as for x_malloc and x_free.
    let q = unsafe { libmimalloc_sys::mi_realloc(p, n.max(0) as usize) };
    if !q.is_null() {
        hooks::resized(before, usable(q));
    }
    q
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    // SAFETY: `p` came from x_malloc or x_realloc. The usable size is at least what was asked
    // for, and SQLite may use all of it (as it does with glibc's malloc_usable_size).
    let size = unsafe { libmimalloc_sys::mi_usable_size(p) };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    // SAFETY: mi_good_size only computes.
    let size = unsafe { libmimalloc_sys::mi_good_size(n.max(0) as usize) };
    c_int::try_from(size).unwrap_or(n)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// Makes SQLite allocate with mimalloc, under the library's bound on its memory during a
/// step. Process-wide and only possible before SQLite is initialized (before the first
/// database is opened): returns SQLite's error code otherwise, and SQLite keeps its
/// allocator.
pub fn route_sqlite() -> Result<(), c_int> {
    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(x_malloc),
        xFree: Some(x_free),
        xRealloc: Some(x_realloc),
        xSize: Some(x_size),
        xRoundup: Some(x_roundup),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLITE_CONFIG_MALLOC takes a pointer to an sqlite3_mem_methods, which SQLite
    // copies before returning; every method is a valid function for the whole process.
    let rc = unsafe {
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_MALLOC,
            &methods as *const ffi::sqlite3_mem_methods,
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rc)
    }
}
