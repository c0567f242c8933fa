//! A quota on the temporary files of wasmig's connection. SQLite writes TEMP tables, sorts
//! that outgrow memory and materialized subqueries to unlinked temporary files, which
//! `max_page_count` does not bound and `du` does not see: one statement can write gigabytes.
//! wasmig's connection opens its files through a VFS of its own that is the default VFS
//! except for its `xOpen`: a temporary file (TEMP database, its journal, a statement's
//! journal, a sorter's or an ephemeral table's file) gets methods that count its size, and a
//! write that would take the connection's temporary files past the quota fails with
//! `SQLITE_FULL`. The main database, its journal and WAL keep the default VFS's own methods,
//! untouched.
//!
//! A statement's journal holds the pages the statement changes that were in the database
//! before it, which a rewrite of a plugin's own large table makes as large as that table,
//! whatever the database's growth.

use rusqlite::ffi;
use std::ffi::{CString, c_int, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// What the connection's temporary files hold, and how much more the running step may add.
#[derive(Debug, Default)]
pub(crate) struct TempQuota {
    /// Bytes in the temporary files open now.
    used: AtomicI64,
    /// `used` may not pass this; `i64::MAX` while the host itself works.
    ceiling: AtomicI64,
    /// A write was refused since the last `limit`.
    exceeded: AtomicBool,
}

impl TempQuota {
    /// Lets the temporary files hold at most `bytes` while the running step runs, whatever
    /// they held when it began (the pages a TEMP table of an earlier step left in the TEMP
    /// database are the step's to fill, not room on top of its quota); `None`: no bound (the
    /// host's own statements).
    pub(crate) fn limit(&self, bytes: Option<u64>) {
        let ceiling = bytes.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
        self.ceiling.store(ceiling, Ordering::Relaxed);
        self.exceeded.store(false, Ordering::Relaxed);
    }

    /// Whether a write was refused since the last [`TempQuota::limit`].
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Relaxed)
    }

    fn grow(&self, bytes: i64) -> bool {
        let used = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if used > self.ceiling.load(Ordering::Relaxed) {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            self.exceeded.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn shrink(&self, bytes: i64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The VFS one connection opens its files through (see the module's doc), registered under a
/// name of its own while the connection is open.
pub(crate) struct TempVfs {
    vfs: Box<QuotaVfs>,
    pub(crate) quota: Arc<TempQuota>,
}

/// SQLite hands the VFS back as a `sqlite3_vfs` pointer: the struct starts with it.
#[repr(C)]
struct QuotaVfs {
    base: ffi::sqlite3_vfs,
    real: *mut ffi::sqlite3_vfs,
    quota: Arc<TempQuota>,
    name: CString,
}

// SAFETY: the raw pointers are SQLite's default VFS (static, thread-safe) and this struct's
// own name; the quota is shared through atomics.
unsafe impl Send for TempVfs {}

/// A temporary file as SQLite sees it: this header, then the default VFS's file. (Every other
/// file is the default VFS's file itself, at the same address.)
#[repr(C)]
struct Counted {
    base: ffi::sqlite3_file,
    real_methods: *const ffi::sqlite3_io_methods,
    quota: *const TempQuota,
    size: i64,
}

/// Where the default VFS's file starts in a [`Counted`] one.
const REAL_AT: usize = std::mem::size_of::<Counted>().next_multiple_of(16);

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

impl TempVfs {
    /// Registers a VFS for one connection (not as the default).
    pub(crate) fn register() -> Result<TempVfs, String> {
        // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS, which SQLite never frees.
        let real = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
        if real.is_null() {
            return Err("SQLite has no default VFS".into());
        }
        let name = CString::new(format!(
            "wasmig-temp-quota-{}",
            NEXT_NAME.fetch_add(1, Ordering::Relaxed)
        ))
        .expect("no NUL in the name");
        let quota = Arc::new(TempQuota {
            ceiling: AtomicI64::new(i64::MAX),
            ..TempQuota::default()
        });
        // SAFETY: `real` is valid; the copy keeps every method and the app data of the
        // default VFS, which its methods expect.
        let mut base = unsafe { *real };
        base.szOsFile += REAL_AT as c_int;
        base.pNext = std::ptr::null_mut();
        base.xOpen = Some(open);
        let mut vfs = Box::new(QuotaVfs {
            base,
            real,
            quota: quota.clone(),
            name,
        });
        vfs.base.zName = vfs.name.as_ptr();
        // SAFETY: the box outlives the registration (`Drop` unregisters first).
        let rc = unsafe { ffi::sqlite3_vfs_register(&mut vfs.base, 0) };
        if rc != ffi::SQLITE_OK {
            return Err(format!("cannot register wasmig's VFS (SQLite error {rc})"));
        }
        Ok(TempVfs { vfs, quota })
    }

    /// The name to open the connection with.
    pub(crate) fn name(&self) -> &str {
        self.vfs.name.to_str().expect("ASCII")
    }
}

impl Drop for TempVfs {
    fn drop(&mut self) {
        // SAFETY: registered in `register`; the connection that used it is closed (the
        // backend drops its connection first).
        unsafe { ffi::sqlite3_vfs_unregister(&mut self.vfs.base) };
    }
}

const TEMPORARY: c_int = ffi::SQLITE_OPEN_TEMP_DB
    | ffi::SQLITE_OPEN_TEMP_JOURNAL
    | ffi::SQLITE_OPEN_TRANSIENT_DB
    | ffi::SQLITE_OPEN_SUBJOURNAL;

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: `vfs` is a `QuotaVfs` (this function is only its xOpen), and `file` has room
    // for the default VFS's file and `REAL_AT` bytes more (`szOsFile`).
    unsafe {
        let q = &*vfs.cast::<QuotaVfs>();
        let real_open = (*q.real).xOpen.expect("a VFS opens files");
        if flags & TEMPORARY == 0 {
            return real_open(q.real, name, file, flags, out_flags);
        }
        let inner = real_file(file);
        let rc = real_open(q.real, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK || (*inner).pMethods.is_null() {
            (*file).pMethods = std::ptr::null();
            return rc;
        }
        file.cast::<Counted>().write(Counted {
            base: ffi::sqlite3_file { pMethods: &COUNTED },
            real_methods: (*inner).pMethods,
            quota: Arc::as_ptr(&q.quota),
            size: 0,
        });
        rc
    }
}

/// The default VFS's file inside a temporary one.
fn real_file(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    file.cast::<u8>().wrapping_add(REAL_AT).cast()
}

/// The header of a temporary file opened by [`open`].
///
/// # Safety
/// `file` must have been opened by [`open`] as a temporary file, and not closed.
unsafe fn counted<'a>(file: *mut ffi::sqlite3_file) -> &'a mut Counted {
    // SAFETY: per the contract.
    unsafe { &mut *file.cast::<Counted>() }
}

/// The default VFS's methods of a temporary file.
unsafe fn real<'a>(file: *mut ffi::sqlite3_file) -> &'a ffi::sqlite3_io_methods {
    // SAFETY: see `counted`.
    unsafe { &*counted(file).real_methods }
}

/// The methods of a temporary file: the default VFS's, with writes, truncations and the
/// close counted.
static COUNTED: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

unsafe extern "C" fn write(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    n: c_int,
    at: i64,
) -> c_int {
    // SAFETY: `f` is a temporary file opened by `open` (it has these methods).
    unsafe {
        let t = counted(f);
        let end = at.saturating_add(n as i64);
        if end > t.size {
            if !(*t.quota).grow(end - t.size) {
                return ffi::SQLITE_FULL;
            }
            t.size = end;
        }
        (real(f).xWrite.expect("files are written"))(real_file(f), buf, n, at)
    }
}

unsafe extern "C" fn truncate(f: *mut ffi::sqlite3_file, size: i64) -> c_int {
    // SAFETY: as in `write`.
    unsafe {
        let rc = (real(f).xTruncate.expect("files are truncated"))(real_file(f), size);
        let t = counted(f);
        if rc == ffi::SQLITE_OK && size < t.size {
            (*t.quota).shrink(t.size - size);
            t.size = size;
        }
        rc
    }
}

unsafe extern "C" fn close(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: as in `write`.
    unsafe {
        let t = counted(f);
        (*t.quota).shrink(t.size);
        t.size = 0;
        (real(f).xClose.expect("files are closed"))(real_file(f))
    }
}

/// Methods passed on unchanged.
macro_rules! forward {
    ($($name:ident => $method:ident ($($arg:ident: $ty:ty),*) -> $ret:ty, or $missing:expr;)*) => {$(
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: as in `write`.
            unsafe {
                match real(f).$method {
                    Some(m) => m(real_file(f) $(, $arg)*),
                    None => $missing,
                }
            }
        }
    )*};
}

forward! {
    read => xRead(buf: *mut c_void, n: c_int, at: i64) -> c_int, or ffi::SQLITE_IOERR;
    sync => xSync(flags: c_int) -> c_int, or ffi::SQLITE_OK;
    file_size => xFileSize(size: *mut i64) -> c_int, or ffi::SQLITE_IOERR;
    lock => xLock(level: c_int) -> c_int, or ffi::SQLITE_OK;
    unlock => xUnlock(level: c_int) -> c_int, or ffi::SQLITE_OK;
    check_reserved_lock => xCheckReservedLock(out: *mut c_int) -> c_int, or ffi::SQLITE_OK;
    file_control => xFileControl(op: c_int, arg: *mut c_void) -> c_int, or ffi::SQLITE_NOTFOUND;
    sector_size => xSectorSize() -> c_int, or 4096;
    device_characteristics => xDeviceCharacteristics() -> c_int, or 0;
    shm_map => xShmMap(page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int, or ffi::SQLITE_IOERR;
    shm_lock => xShmLock(offset: c_int, n: c_int, flags: c_int) -> c_int, or ffi::SQLITE_IOERR;
    shm_unmap => xShmUnmap(delete: c_int) -> c_int, or ffi::SQLITE_OK;
    unfetch => xUnfetch(at: i64, p: *mut c_void) -> c_int, or ffi::SQLITE_OK;
}

unsafe extern "C" fn shm_barrier(f: *mut ffi::sqlite3_file) {
    // SAFETY: as in `write`.
    unsafe {
        if let Some(m) = real(f).xShmBarrier {
            m(real_file(f))
        }
    }
}

unsafe extern "C" fn fetch(
    f: *mut ffi::sqlite3_file,
    at: i64,
    n: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: as in `write`; without the method, no memory map (SQLite reads instead).
    unsafe {
        match real(f).xFetch {
            Some(m) => m(real_file(f), at, n, out),
            None => {
                *out = std::ptr::null_mut();
                ffi::SQLITE_OK
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};

    fn open(vfs: &TempVfs, path: &std::path::Path) -> Connection {
        Connection::open_with_flags_and_vfs(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            vfs.name(),
        )
        .unwrap()
    }

    #[test]
    fn temporary_files_are_counted_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = TempVfs::register().unwrap();
        let conn = open(&vfs, &dir.path().join("db"));
        // A small cache: sorts and TEMP tables reach their files soon.
        conn.execute_batch(
            "PRAGMA cache_size = -512; CREATE TABLE t (x); INSERT INTO t VALUES (1)",
        )
        .unwrap();
        vfs.quota.limit(Some(4 << 20));
        let fill =
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)";
        let temp_table = conn.execute_batch(&format!(
            "CREATE TEMP TABLE big AS {fill} SELECT randomblob(1000) AS b FROM c"
        ));
        assert!(temp_table.is_err(), "a TEMP table past the quota");
        assert!(vfs.quota.exceeded());
        vfs.quota.limit(Some(4 << 20));
        let sort: rusqlite::Result<i64> = conn.query_row(
            &format!(
                "{fill} SELECT count(*) FROM (SELECT randomblob(1000) AS b FROM c ORDER BY b)"
            ),
            [],
            |r| r.get(0),
        );
        assert!(sort.is_err(), "a sort spilled past the quota");
        assert!(vfs.quota.exceeded());
        // Within the quota, and without one, the same work succeeds; the main database is not
        // counted.
        vfs.quota.limit(Some(64 << 20));
        conn.execute_batch(&format!(
            "CREATE TABLE main_big AS {fill} SELECT randomblob(1000) AS b FROM c"
        ))
        .unwrap();
        let n: i64 = conn
            .query_row(
                &format!(
                    "{fill} SELECT count(*) FROM (SELECT randomblob(1000) AS b FROM c ORDER BY b)"
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 20000);
        assert!(!vfs.quota.exceeded());
        vfs.quota.limit(None);
        conn.execute_batch(&format!(
            "CREATE TEMP TABLE big AS {fill} SELECT randomblob(1000) AS b FROM c"
        ))
        .unwrap();
        // Dropped and closed, the files give their bytes back.
        conn.execute_batch("DROP TABLE big").unwrap();
        drop(conn);
        assert_eq!(vfs.quota.used.load(Ordering::Relaxed), 0);
    }
}
