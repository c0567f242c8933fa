//! The compile cache: compiled components on disk, keyed by the component's SHA-256 and the
//! engine's compatibility hash, written atomically, verified before use.
//!
//! An entry is `MAGIC`, the CRC-32 of the artifact, then the artifact wasmtime produced. The
//! artifact is native code: it is deserialized only after its checksum matches, so a
//! truncated or corrupted entry is recompiled, never trusted. The checksum guards against
//! accidents (a disk's bit flips, a file cut short), not against someone who can write the
//! directory: they could write a matching checksum of any kind, which is why only this host
//! may write it. A CRC-32 costs a small fraction of a SHA-256 on every warm load, where a
//! SHA-256 would be a sizeable part of loading a cached plugin. Bytes from a plugin author
//! never reach deserialization.
//!
//! An entry's modification time is when it was last used (refreshed at most once a day). The
//! first time a process writes an entry, it deletes the entries and left-over temporary files
//! unused for [`UNUSED_FOR`]: those of plugin versions long replaced and of other wasmig or
//! wasmtime versions, which no run would read again. A deleted entry that is needed after all
//! costs one compilation.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Format 2: a CRC-32 after the magic. Format 1 had a SHA-256 there; its entries are
/// replaced as they are met.
const MAGIC: &[u8; 8] = b"wasmig\x02\x00";

/// What every format's magic starts with.
const MAGIC_PREFIX: &[u8; 6] = b"wasmig";

/// The bytes before the artifact: the magic and the checksum.
const HEADER: usize = MAGIC.len() + 4;

/// Entries (and temporary files) unused for this long are deleted.
const UNUSED_FOR: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// A used entry's modification time is refreshed when it is older than this: one write a
/// day at most, not one per load.
const REFRESH_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// A directory of compiled components for one engine configuration.
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_key: String,
    /// Whether this process has pruned the directory already.
    pruned: AtomicBool,
}

impl CompileCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        // DefaultHasher::new() has fixed keys: the same engine gives the same key every run.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", h.finish()),
            pruned: AtomicBool::new(false),
        })
    }

    fn path(&self, component_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{component_sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of a component, if there is a valid one.
    pub(crate) fn get(&self, engine: &Engine, component_sha256: &str) -> Option<Component> {
        let path = self.path(component_sha256);
        let mut file = std::fs::File::open(&path).ok()?;
        let metadata = file.metadata().ok()?;
        let mut entry = Vec::with_capacity(metadata.len() as usize);
        std::io::Read::read_to_end(&mut file, &mut entry).ok()?;
        if entry.starts_with(MAGIC_PREFIX) && !entry.starts_with(MAGIC) {
            tracing::debug!(path = %path.display(), "compile-cache entry of another format; recompiling");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        let valid = entry.len() > HEADER
            && entry.starts_with(MAGIC)
            && crc32fast::hash(&entry[HEADER..]).to_le_bytes()[..] == entry[MAGIC.len()..HEADER];
        if !valid {
            tracing::warn!(path = %path.display(), "corrupt compile-cache entry; recompiling");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // SAFETY: `Component::deserialize` requires bytes produced by `serialize` of a
        // compatible engine and not modified since. They are: this host wrote the entry with
        // `Component::serialize` under a key that includes the engine's compatibility hash,
        // into a directory only the host writes, and the checksum just checked shows the
        // artifact was not damaged since. Plugin-supplied bytes are only ever compiled.
        match unsafe { Component::deserialize(engine, &entry[HEADER..]) } {
            Ok(component) => {
                mark_used(&file, &metadata);
                Some(component)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "unusable compile-cache entry ({e}); recompiling");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled component; atomic (write to a temporary file, then rename). A failure
    /// is logged and returned; for a run it only costs a recompilation next time.
    pub(crate) fn put(&self, component_sha256: &str, component: &Component) -> Result<(), String> {
        match component.serialize() {
            Ok(artifact) => self.put_artifact(component_sha256, &artifact),
            Err(e) => Err(format!("{}: {e:#}", self.dir.display())),
        }
    }

    /// Stores a compiled component's artifact, as [`CompileCache::put`].
    pub(crate) fn put_artifact(
        &self,
        component_sha256: &str,
        artifact: &[u8],
    ) -> Result<(), String> {
        let written = (|| -> Result<(), String> {
            let mut file = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| e.to_string())?;
            file.write_all(MAGIC)
                .and_then(|()| file.write_all(&crc32fast::hash(artifact).to_le_bytes()))
                .and_then(|()| file.write_all(artifact))
                .map_err(|e| e.to_string())?;
            file.persist(self.path(component_sha256))
                .map_err(|e| e.to_string())?;
            Ok(())
        })();
        if let Err(e) = &written {
            tracing::warn!(dir = %self.dir.display(), "cannot write the compile cache: {e}");
        } else if !self.pruned.swap(true, Ordering::Relaxed) {
            self.prune();
        }
        written.map_err(|e| format!("{}: {e}", self.dir.display()))
    }

    /// Deletes the entries and temporary files unused for [`UNUSED_FOR`]. Best effort: what
    /// cannot be read or deleted stays.
    fn prune(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut deleted = 0;
        for item in dir.flatten() {
            let name = item.file_name();
            let name = name.to_string_lossy();
            // Entries, and what `NamedTempFile` leaves behind when a process dies mid-write.
            if !(name.ends_with(".cwasm") || name.starts_with(".tmp")) {
                continue;
            }
            let unused = item
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok());
            if unused.is_some_and(|d| d > UNUSED_FOR) && std::fs::remove_file(item.path()).is_ok() {
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::debug!(dir = %self.dir.display(), deleted, "pruned unused compile-cache entries");
        }
    }
}

/// Records that an entry was used: its modification time becomes now, when it is more than
/// [`REFRESH_AFTER`] old. Best effort.
fn mark_used(file: &std::fs::File, metadata: &std::fs::Metadata) {
    let now = SystemTime::now();
    let stale = metadata
        .modified()
        .ok()
        .and_then(|modified| now.duration_since(modified).ok())
        .is_some_and(|age| age > REFRESH_AFTER);
    if stale {
        let _ = file.set_modified(now);
    }
}
