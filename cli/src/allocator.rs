//! mimalloc for the whole process: Rust's allocations and SQLite's.
//!
//! A run allocates and frees on several threads at once (the run's thread, the loader, the
//! instance made for the next step) and SQLite allocates for every statement it prepares and
//! every page it reads. glibc's allocator spends that time in arena locks and consolidation;
//! mimalloc's thread-local free lists do not. SQLite does not allocate through Rust, so it is
//! given mimalloc separately, before it starts, with the library's bound on its memory during
//! a step (`wasmig::sqlite_memory::hooks`) inside the same methods.
//!
//! Each of SQLite's blocks starts with a header of two sizes: what SQLite asked for, and what
//! the bound counted for it (the size of mimalloc's block, header included). Freeing and
//! sizing a block read the header, which SQLite has just used, instead of asking mimalloc
//! for the block's size, which looks its page up in a page map (loads that wait on memory;
//! `mi_free` does that lookup once more).

use rusqlite::ffi;
use std::os::raw::{c_int, c_void};
use wasmig::sqlite_memory::hooks;

/// The header's size. SQLite needs its blocks aligned to 8 bytes; mimalloc's are aligned to
/// at least that, and so is the block after the header.
const HEADER: usize = 8;

/// Blocks up to this size (header included) come from mimalloc's size classes, whose size
/// `mi_good_size` computes without a lookup. Larger ones are rounded more coarsely than it
/// says (to 64 KiB and more), so their real size is asked of mimalloc: they are few.
const CLASSED: usize = 64 * 1024;

/// What the bound counts for a block of `requested` bytes about to be allocated, when it
/// can be known before: its size class, the header included.
fn classed(requested: usize) -> Option<usize> {
    let whole = requested + HEADER;
    // SAFETY: mi_good_size only computes.
    (whole <= CLASSED).then(|| unsafe { libmimalloc_sys::mi_good_size(whole) })
}

/// The size of mimalloc's block `base`.
///
/// # Safety
/// `base` is a live block from mimalloc.
unsafe fn block_size(base: *mut c_void) -> usize {
    // SAFETY: as the caller promises.
    unsafe { libmimalloc_sys::mi_usable_size(base) }
}

/// Writes the header at `base` and returns the block SQLite sees.
///
/// # Safety
/// `base` is a live mimalloc block of at least `HEADER + requested` bytes.
unsafe fn finish(base: *mut c_void, requested: usize, counted: usize) -> *mut c_void {
    #[cfg(debug_assertions)]
    {
        // SAFETY: as the caller promises.
        let real = unsafe { block_size(base) };
        assert!(
            counted >= real,
            "a block of {real} bytes counted as {counted}"
        );
    }
    let header = base.cast::<u32>();
    // SAFETY: the block is at least HEADER bytes and aligned to 8. Both sizes fit in a u32:
    // SQLite asks for less than 2 GiB, and mimalloc's block for that is less than 4 GiB.
    unsafe {
        header.write(requested as u32);
        header.add(1).write(counted as u32);
        base.cast::<u8>().add(HEADER).cast()
    }
}

/// The mimalloc block of the block SQLite holds, and the header's two sizes.
///
/// # Safety
/// `p` came from x_malloc or x_realloc and is live.
unsafe fn header(p: *mut c_void) -> (*mut c_void, usize, usize) {
    // SAFETY: x_malloc and x_realloc return the block HEADER bytes past a header they wrote.
    unsafe {
        let base = p.cast::<u8>().sub(HEADER).cast::<c_void>();
        let sizes = base.cast::<u32>();
        (base, sizes.read() as usize, sizes.add(1).read() as usize)
    }
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    if hooks::refused() {
        return std::ptr::null_mut();
    }
    let requested = n.max(0) as usize;
    // A block whose size is known before is counted before it is made (refused: never made).
    let known = classed(requested);
    if let Some(size) = known
        && !hooks::allocated(size)
    {
        return std::ptr::null_mut();
    }
    // SAFETY: mi_malloc takes any size.
    let base = unsafe { libmimalloc_sys::mi_malloc(requested + HEADER) };
    let size = match known {
        Some(size) => {
            if base.is_null() {
                hooks::freed(size);
                return std::ptr::null_mut();
            }
            size
        }
        None => {
            if base.is_null() {
                return std::ptr::null_mut();
            }
            // SAFETY: just allocated.
            let size = unsafe { block_size(base) };
            if !hooks::allocated(size) {
                // SAFETY: just allocated, not handed out.
                unsafe { libmimalloc_sys::mi_free(base) };
                return std::ptr::null_mut();
            }
            size
        }
    };
    // SAFETY: just allocated, of HEADER + requested bytes.
    unsafe { finish(base, requested, size) }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: SQLite frees only what x_malloc or x_realloc returned.
    let (base, _, size) = unsafe { header(p) };
    hooks::freed(size);
    // SAFETY: `base` came from mimalloc.
    unsafe { libmimalloc_sys::mi_free(base) }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    // SQLite calls xRealloc only with a block it holds, never null.
    // SAFETY: as for x_free.
    let (base, _, before) = unsafe { header(p) };
    let requested = n.max(0) as usize;
    // Refused: SQLite keeps the block it has. A large block's size is known only once made:
    // what it needs, header included, stands for it until then.
    let wanted = classed(requested).unwrap_or(requested + HEADER);
    if hooks::refused() || !hooks::may_resize(before, wanted) {
        return std::ptr::null_mut();
    }
    // SAFETY: `base` came from mimalloc; the header moves with the block.
    let q = unsafe { libmimalloc_sys::mi_realloc(base, requested + HEADER) };
    if q.is_null() {
        return std::ptr::null_mut();
    }
    let after = if q == base {
        // Resized in place: mimalloc keeps a block that holds the new size (and is not
        // more than twice as large), so the block is the one counted.
        before
    } else {
        // SAFETY: just reallocated.
        classed(requested).unwrap_or_else(|| unsafe { block_size(q) })
    };
    hooks::resized(before, after);
    // SAFETY: just reallocated, of HEADER + requested bytes.
    unsafe { finish(q, requested, after) }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    if p.is_null() {
        return 0;
    }
    // SAFETY: `p` came from x_malloc or x_realloc. SQLite may use all of what this reports,
    // which is what it asked for.
    let (_, requested, _) = unsafe { header(p) };
    requested as c_int
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    // Asking for the rest of the size class costs no more memory.
    let n = n.max(0);
    match classed(n as usize) {
        Some(size) => c_int::try_from(size - HEADER).unwrap_or(n).max(n),
        None => n,
    }
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
