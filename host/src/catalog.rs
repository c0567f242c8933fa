//! The catalog: finds plugin files, reads and hashes them. One bad file is reported, not fatal
//! to the others.

use crate::Error;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The largest plugin file wasmig reads.
pub const MAX_PLUGIN_FILE_BYTES: u64 = 64 << 20;

/// One plugin file's bytes and their SHA-256.
pub(crate) struct PluginFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// Lists every `*.wasm` entry directly in `dir` but directories, sorted by file name. A
/// missing directory is an error. Entries that are not regular files (a named pipe, a
/// device, a link to nothing) are listed too: reading them reports what they are, where
/// skipping them would make a plugin disappear from the plan without a word.
pub(crate) fn scan(dir: &Path) -> crate::Result<Vec<PathBuf>> {
    let io = |source| Error::Io {
        what: "plugins directory",
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        // The entry itself, not what a link names: a link to nothing is listed.
        let directory = entry.file_type().is_ok_and(|t| t.is_dir());
        if path.extension().is_some_and(|e| e == "wasm") && !directory {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Reads a plugin file and hashes it: a regular file of at most [`MAX_PLUGIN_FILE_BYTES`]
/// (read no further than that, should it grow meanwhile).
pub(crate) fn read(path: PathBuf) -> Result<PluginFile, Error> {
    use std::io::Read;
    let io = |source| Error::Io {
        what: "plugin file",
        path: path.clone(),
        source,
    };
    // Opened without waiting (a named pipe would wait for a writer), then checked on the
    // handle itself: a regular file, within the cap, read no further than the cap.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(io)?
    };
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(Error::InvalidPlugin {
            file: path.clone(),
            reason: "is not a regular file".to_string(),
        });
    }
    let too_large = |reason: String| Error::InvalidPlugin {
        file: path.clone(),
        reason,
    };
    if metadata.len() > MAX_PLUGIN_FILE_BYTES {
        return Err(too_large(format!(
            "is {} bytes, more than the {MAX_PLUGIN_FILE_BYTES} bytes wasmig accepts",
            metadata.len()
        )));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(MAX_PLUGIN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_PLUGIN_FILE_BYTES {
        return Err(too_large(format!(
            "grew past the {MAX_PLUGIN_FILE_BYTES} bytes wasmig accepts while it was read"
        )));
    }
    let sha256 = sha256_hex(&bytes);
    Ok(PluginFile {
        path,
        bytes,
        sha256,
    })
}

/// Reads a plugin file again, when its step runs, and checks it is still the file that was
/// planned with.
pub(crate) fn reread(path: &Path, sha256: &str) -> Result<Vec<u8>, Error> {
    let file = read(path.to_path_buf())?;
    if file.sha256 != sha256 {
        return Err(Error::InvalidPlugin {
            file: path.to_path_buf(),
            reason: "changed while wasmig was running; run again".to_string(),
        });
    }
    Ok(file.bytes)
}

/// Hex SHA-256 of some bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
