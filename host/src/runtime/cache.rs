//! The compile cache: compiled components on disk, keyed by the component's SHA-256 and the
//! engine's compatibility hash, written atomically, verified before use.
//!
//! An entry is `MAGIC`, the SHA-256 of the artifact, then the artifact wasmtime produced. The
//! artifact is native code: it is deserialized only after its hash matches, so a truncated,
//! corrupted or swapped entry is recompiled, never trusted. Only this host ever writes the
//! directory; bytes from a plugin author never reach deserialization.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"wasmig\x01\x00";

/// A directory of compiled components for one engine configuration.
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_key: String,
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
        })
    }

    fn path(&self, component_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{component_sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of a component, if there is a valid one.
    pub(crate) fn get(&self, engine: &Engine, component_sha256: &str) -> Option<Component> {
        let path = self.path(component_sha256);
        let entry = std::fs::read(&path).ok()?;
        let valid = entry.len() > MAGIC.len() + 32
            && entry.starts_with(MAGIC)
            && Sha256::digest(&entry[MAGIC.len() + 32..])[..]
                == entry[MAGIC.len()..MAGIC.len() + 32];
        if !valid {
            tracing::warn!(path = %path.display(), "corrupt compile-cache entry; recompiling");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // SAFETY: `Component::deserialize` requires bytes produced by `serialize` of a
        // compatible engine and not modified since. They are: this host wrote the entry with
        // `Component::serialize` under a key that includes the engine's compatibility hash,
        // into a directory only the host writes, and the SHA-256 just checked proves the
        // artifact is the one written. Plugin-supplied bytes are only ever compiled.
        match unsafe { Component::deserialize(engine, &entry[MAGIC.len() + 32..]) } {
            Ok(component) => Some(component),
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
        let written = (|| -> Result<(), String> {
            let artifact = component.serialize().map_err(|e| format!("{e:#}"))?;
            let mut file = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| e.to_string())?;
            file.write_all(MAGIC)
                .and_then(|()| file.write_all(&Sha256::digest(&artifact)))
                .and_then(|()| file.write_all(&artifact))
                .map_err(|e| e.to_string())?;
            file.persist(self.path(component_sha256))
                .map_err(|e| e.to_string())?;
            Ok(())
        })();
        if let Err(e) = &written {
            tracing::warn!(dir = %self.dir.display(), "cannot write the compile cache: {e}");
        }
        written.map_err(|e| format!("{}: {e}", self.dir.display()))
    }
}
