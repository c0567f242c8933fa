//! mimalloc for a whole process: Rust's allocations and SQLite's.
//!
//! A run allocates and frees on several threads at once (the run's thread, the loader, the
//! instance made for the next step) and SQLite allocates for every statement it prepares and
//! every page it reads. glibc's allocator spends that time in arena locks and consolidation;
//! mimalloc's thread-local free lists do not. A binary opts in twice, because SQLite does not
//! allocate through Rust:
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: wasmig::allocator::MiMalloc = wasmig::allocator::MiMalloc;
//!
//! fn main() {
//!     wasmig::allocator::route_sqlite().expect("before any database is opened");
//!     // ...
//! }
//! ```
//!
//! Both choices are the process's, so the library makes neither for an embedder.

use rusqlite::ffi;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

pub use mimalloc::MiMalloc;

/// Bytes SQLite holds now, once routed (its allocations' usable sizes).
static SQLITE_BYTES: AtomicI64 = AtomicI64::new(0);
/// SQLite's allocations fail past this (`SQLITE_NOMEM`): set while a plugin's step runs.
static SQLITE_CEILING: AtomicI64 = AtomicI64::new(i64::MAX);
/// Whether SQLite allocates here, so that its memory is counted.
static ROUTED: AtomicBool = AtomicBool::new(false);
/// Set when the running step's deadline has passed: every SQLite allocation fails until the
/// host takes the connection back.
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Makes every SQLite allocation fail (`SQLITE_NOMEM`) from now on, or no longer. SQLite checks
/// the progress handler and `sqlite3_interrupt` only where its program jumps; a row that calls
/// many functions in a row on large values runs none for as long as it likes, but each call
/// allocates its result: this stops it at the next one.
pub(crate) fn stop_sqlite(stop: bool) {
    STOPPED.store(stop, Ordering::Relaxed);
}

/// Bounds what SQLite may allocate from now on to `extra` bytes more than it holds now (`None`:
/// no bound), when SQLite allocates here ([`route_sqlite`]); returns whether it does. One
/// statement can make SQLite hold a great deal at once, out of the host's sight (a row of many
/// 16 MiB values); the bound makes such a statement fail with SQLITE_NOMEM instead.
pub(crate) fn bound_sqlite(extra: Option<u64>) -> bool {
    let ceiling = extra.map_or(i64::MAX, |extra| {
        SQLITE_BYTES
            .load(Ordering::Relaxed)
            .saturating_add(extra.min(i64::MAX as u64) as i64)
    });
    SQLITE_CEILING.store(ceiling, Ordering::Relaxed);
    ROUTED.load(Ordering::Relaxed)
}

fn usable(p: *mut c_void) -> i64 {
    if p.is_null() {
        0
    } else {
        // SAFETY: `p` came from mimalloc (x_malloc or x_realloc).
        unsafe { libmimalloc_sys::mi_usable_size(p) as i64 }
    }
}

/// Blocks of at least this many usable bytes are counted in [`SQLITE_BYTES`]: what can add up
/// to a great deal (values, pages, sorter buffers) comes in such blocks, and the many small
/// ones SQLite makes for every statement cost no shared counter.
const COUNTED: i64 = 1024;

/// The part of a block of `usable` bytes that is counted.
fn counted(usable: i64) -> i64 {
    if usable >= COUNTED { usable } else { 0 }
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    if STOPPED.load(Ordering::Relaxed) {
        return std::ptr::null_mut();
    }
    // SAFETY: mi_malloc takes any size; SQLite never asks for a negative one.
    let p = unsafe { libmimalloc_sys::mi_malloc(n.max(0) as usize) };
    let size = counted(usable(p));
    if size > 0 {
        let now = SQLITE_BYTES.fetch_add(size, Ordering::Relaxed) + size;
        if now > SQLITE_CEILING.load(Ordering::Relaxed) {
            SQLITE_BYTES.fetch_sub(size, Ordering::Relaxed);
            // SAFETY: just allocated, not handed out.
            unsafe { libmimalloc_sys::mi_free(p) };
            return std::ptr::null_mut();
        }
    }
    p
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    let size = counted(usable(p));
    if size > 0 {
        SQLITE_BYTES.fetch_sub(size, Ordering::Relaxed);
    }
    // SAFETY: SQLite frees only what x_malloc or x_realloc returned (or null).
    unsafe { libmimalloc_sys::mi_free(p) }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    if STOPPED.load(Ordering::Relaxed) {
        // SQLite keeps the block it has.
        return std::ptr::null_mut();
    }
    let before = counted(usable(p));
    let grown = counted(n.max(0) as i64) - before;
    if grown > 0
        && SQLITE_BYTES.load(Ordering::Relaxed) + grown > SQLITE_CEILING.load(Ordering::Relaxed)
    {
        return std::ptr::null_mut();
    }
    // SAFETY: as for x_malloc and x_free.
    let q = unsafe { libmimalloc_sys::mi_realloc(p, n.max(0) as usize) };
    if !q.is_null() {
        SQLITE_BYTES.fetch_add(counted(usable(q)) - before, Ordering::Relaxed);
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

/// Makes SQLite allocate with mimalloc. Process-wide and only possible before SQLite is
/// initialized (before the first database is opened): returns SQLite's error code otherwise,
/// and SQLite keeps its allocator.
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
        ROUTED.store(true, Ordering::Relaxed);
        Ok(())
    } else {
        Err(rc)
    }
}

#[cfg(test)]
mod tests {
    /// Once SQLite is initialized its allocator cannot change: the call says so and SQLite
    /// goes on with the one it has. (Routing before initialization is what every run of the
    /// binary does; the end-to-end tests run the binary.)
    #[test]
    fn routing_sqlite_after_it_started_is_refused_and_harmless() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        assert_eq!(super::route_sqlite(), Err(rusqlite::ffi::SQLITE_MISUSE));
        let n: i64 = conn.query_row("SELECT 40 + 2", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 42);
    }
}
