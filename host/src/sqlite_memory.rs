//! A bound on SQLite's own memory during a plugin's step, and a stop once its deadline has
//! passed, whatever allocator SQLite uses.
//!
//! One statement can make SQLite hold a great deal at once, out of the host's sight (a row of
//! many 16 MiB values), and SQLite consults its interrupt only where its program jumps. So
//! while a step runs, SQLite's allocations are counted against a budget, and past the deadline
//! every one fails (`SQLITE_NOMEM`), which stops the next call that makes a value.
//!
//! SQLite's allocator is the process's, so the library installs the bound only when the
//! process asks, at its start, before any thread uses SQLite:
//!
//! ```no_run
//! // First thing in `main`:
//! wasmig::sqlite_memory::install().expect("SQLite is not initialized yet");
//! ```
//!
//! It wraps whichever allocator SQLite has at that moment. A process that writes SQLite's
//! allocator methods itself calls [`hooks`] from them instead (the `wasmig` binary does, for
//! mimalloc). Without either, the other bounds on a step hold; this one does not.

use rusqlite::ffi;
use std::os::raw::{c_int, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// Bytes SQLite holds now (but up to [`SMALL_BATCH`] per thread in small blocks).
static HELD: AtomicI64 = AtomicI64::new(0);
/// SQLite's allocations fail past this: set while a plugin's step runs.
static CEILING: AtomicI64 = AtomicI64::new(i64::MAX);
/// Set once the running step's deadline has passed: every SQLite allocation fails until the
/// host takes the connection back.
static STOPPED: AtomicBool = AtomicBool::new(false);
/// The allocator SQLite had before [`install`], which does the allocating.
static INNER: OnceLock<Inner> = OnceLock::new();

struct Inner(ffi::sqlite3_mem_methods);
// SAFETY: SQLite's allocator methods are called from any thread (SQLite's serialized and
// multi-thread modes require it); `pAppData` is only passed back to them.
unsafe impl Sync for Inner {}
unsafe impl Send for Inner {}

/// Blocks of at least this many bytes are counted in the shared counter at once:
/// what can add up to a great deal in few blocks (values, pages, sorter buffers). Smaller ones
/// are counted per thread and moved to it [`SMALL_BATCH`] bytes at a time, which costs no
/// shared counter per allocation; a statement whose compilation makes millions of parse-tree
/// nodes (a view over views over views) adds up in them all the same.
const COUNTED: i64 = 1024;

/// The most bytes of small blocks a thread counts before moving them to [`HELD`], either way.
const SMALL_BATCH: i64 = 64 * 1024;

thread_local! {
    /// Bytes of small blocks this thread allocated (less those it freed) not yet in [`HELD`].
    static SMALL: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// Makes SQLite's allocations go through the bound, over the allocator SQLite has now, from
/// now on and for the whole process. Possible only before SQLite is initialized (before the
/// first database is opened) and while no other thread uses SQLite: returns SQLite's error
/// code otherwise, and changes nothing.
pub fn install() -> Result<(), c_int> {
    let mut inner = ffi::sqlite3_mem_methods {
        xMalloc: None,
        xFree: None,
        xRealloc: None,
        xSize: None,
        xRoundup: None,
        xInit: None,
        xShutdown: None,
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLITE_CONFIG_GETMALLOC fills the sqlite3_mem_methods it is given.
    let rc = unsafe {
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_GETMALLOC,
            &mut inner as *mut ffi::sqlite3_mem_methods,
        )
    };
    if rc != ffi::SQLITE_OK {
        return Err(rc);
    }
    if INNER.set(Inner(inner)).is_err() {
        return Ok(());
    }
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
    // SAFETY: SQLITE_CONFIG_MALLOC copies the methods before returning; each is valid for
    // the whole process and delegates to the methods SQLite had.
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

/// The bound's bookkeeping, for a process that writes SQLite's allocator methods itself (the
/// `wasmig` binary gives SQLite mimalloc this way): its methods call these with each block's
/// size as the allocator holds it (not just what SQLite asked for), and the bound holds
/// without a second layer of calls around every allocation. Such a process installs its methods with `SQLITE_CONFIG_MALLOC` itself and
/// does not call [`install`].
pub mod hooks {
    use super::{CEILING, COUNTED, HELD, SMALL, SMALL_BATCH, STOPPED};
    use std::sync::atomic::Ordering;

    /// Adds `size` bytes (negative: freed) to what SQLite holds. `false`: an allocation of
    /// `size` would pass the step's budget, and is not counted.
    #[inline]
    fn add(size: i64) -> bool {
        if size.abs() < COUNTED {
            let local = SMALL.with(|s| {
                let v = s.get() + size;
                if v.abs() < SMALL_BATCH {
                    s.set(v);
                    return None;
                }
                s.set(0);
                Some(v)
            });
            let Some(batch) = local else { return true };
            let now = HELD.fetch_add(batch, Ordering::Relaxed) + batch;
            if size > 0 && now > CEILING.load(Ordering::Relaxed) {
                HELD.fetch_sub(size, Ordering::Relaxed);
                return false;
            }
            return true;
        }
        let now = HELD.fetch_add(size, Ordering::Relaxed) + size;
        if size > 0 && now > CEILING.load(Ordering::Relaxed) {
            HELD.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Whether every allocation must fail now (the step's deadline has passed).
    #[inline]
    pub fn refused() -> bool {
        STOPPED.load(Ordering::Relaxed)
    }

    /// A block of `size` bytes is about to be allocated, or just was. `false`: it would pass
    /// the step's budget, and is not counted; fail the allocation (freeing the block if it
    /// was made).
    #[inline]
    pub fn allocated(size: usize) -> bool {
        add(size as i64)
    }

    /// A block of `size` bytes (as counted when it was allocated) is being freed, or was
    /// never made after all.
    #[inline]
    pub fn freed(size: usize) {
        add(-(size as i64));
    }

    /// Before a block of `before` bytes is resized to one of about `after` bytes. `false`:
    /// the growth would pass the budget; fail the resize (SQLite keeps its block).
    #[inline]
    pub fn may_resize(before: usize, after: usize) -> bool {
        let grown = after as i64 - before as i64;
        grown < COUNTED || HELD.load(Ordering::Relaxed) + grown <= CEILING.load(Ordering::Relaxed)
    }

    /// A block of `before` bytes was resized to one of `after` bytes.
    #[inline]
    pub fn resized(before: usize, after: usize) {
        add(-(before as i64));
        // Counted whatever the budget: the block exists (`may_resize` let it grow).
        if !add(after as i64) {
            HELD.fetch_add(after as i64, Ordering::Relaxed);
        }
    }
}

/// The bytes SQLite holds now, as the bound counts them (0 when the bound is not
/// installed).
pub(crate) fn held() -> i64 {
    HELD.load(Ordering::Relaxed)
}

/// Makes every SQLite allocation fail from now on, or no longer.
pub(crate) fn stop(stop: bool) {
    STOPPED.store(stop, Ordering::Relaxed);
}

/// Bounds what SQLite may allocate from now on to `extra` bytes more than it holds now
/// (`None`: no bound).
pub(crate) fn bound(extra: Option<u64>) {
    let ceiling = extra.map_or(i64::MAX, |extra| {
        HELD.load(Ordering::Relaxed)
            .saturating_add(extra.min(i64::MAX as u64) as i64)
    });
    CEILING.store(ceiling, Ordering::Relaxed);
}

fn inner() -> &'static ffi::sqlite3_mem_methods {
    &INNER.get().expect("installed before SQLite calls it").0
}

/// The usable size of the inner allocator's block at `p` (0 for null).
fn usable(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: `p` came from the inner allocator, whose xSize takes its blocks.
    let size = unsafe { inner().xSize.expect("SQLite's allocator has xSize")(p) };
    size.max(0) as usize
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    if hooks::refused() {
        return std::ptr::null_mut();
    }
    let methods = inner();
    // SAFETY: the inner allocator's xMalloc, as SQLite would call it.
    let p = unsafe { methods.xMalloc.expect("SQLite's allocator has xMalloc")(n) };
    if !p.is_null() && !hooks::allocated(usable(p)) {
        // SAFETY: just allocated, not handed out.
        unsafe { methods.xFree.expect("SQLite's allocator has xFree")(p) };
        return std::ptr::null_mut();
    }
    p
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    hooks::freed(usable(p));
    // SAFETY: SQLite frees only what x_malloc or x_realloc returned (or null).
    unsafe { inner().xFree.expect("SQLite's allocator has xFree")(p) }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    // Refused: SQLite keeps the block it has.
    let before = usable(p);
    if hooks::refused() || !hooks::may_resize(before, n.max(0) as usize) {
        return std::ptr::null_mut();
    }
    // SAFETY: the inner allocator's xRealloc, on one of its blocks.
    let q = unsafe { inner().xRealloc.expect("SQLite's allocator has xRealloc")(p, n) };
    if !q.is_null() {
        hooks::resized(before, usable(q));
    }
    q
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    // SAFETY: as for x_free.
    unsafe { inner().xSize.expect("SQLite's allocator has xSize")(p) }
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    // SAFETY: the inner allocator's xRoundup only computes.
    unsafe { inner().xRoundup.expect("SQLite's allocator has xRoundup")(n) }
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    let methods = inner();
    match methods.xInit {
        // SAFETY: the inner allocator's xInit, with its own data, as SQLite would call it.
        Some(init) => unsafe { init(methods.pAppData) },
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {
    let methods = inner();
    if let Some(shutdown) = methods.xShutdown {
        // SAFETY: as for x_init.
        unsafe { shutdown(methods.pAppData) }
    }
}

#[cfg(test)]
mod tests {
    /// Once SQLite is initialized its allocator cannot change: the call says so and SQLite
    /// goes on with the one it has. (Installing before initialization is what every run of the
    /// binary does; the end-to-end tests run the binary.)
    #[test]
    fn installing_after_sqlite_started_is_refused_and_harmless() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        assert_eq!(super::install(), Err(rusqlite::ffi::SQLITE_MISUSE));
        assert!(super::INNER.get().is_none());
        let n: i64 = conn.query_row("SELECT 40 + 2", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 42);
    }
}
