//! The loader: from hashed plugin files to validated manifests. A manifest comes from the
//! database (a stored component), from the plugin's declaration section, or from compiling
//! the plugin (through the compile cache) and asking it, a plugin per core at a time.
//! Before any of a file is compiled or read as a declaration, `checks` makes sure it is a
//! component that imports and exports what a plugin may.

mod checks;

pub(crate) use checks::{
    check_code_size, check_resource_types, component_weight, count_imports, read_declaration,
    validate,
};

use crate::planner::Candidate;
use crate::runtime::{self, Purpose, Runtime};
use crate::store::Backend;
use crate::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The plugin files found and hashed, and the files that could not be read.
#[derive(Default)]
pub(crate) struct Hashed {
    pub(crate) found: Vec<(PathBuf, String)>,
    pub(crate) problems: Vec<Error>,
}

pub(crate) struct Loaded {
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) problems: Vec<Error>,
}

/// A plugin file's manifest, validated: from its declaration, or else from its code (compiled
/// or from the compile cache), asked in a sandbox with no SQL granted.
pub(crate) fn read_manifest(
    runtime: &Runtime,
    handle: &tokio::runtime::Handle,
    path: &Path,
    bytes: &[u8],
    sha: &str,
) -> std::result::Result<Manifest, String> {
    let raw = match read_checked_declaration(runtime, bytes, sha)? {
        Some(declaration) => declaration.manifest,
        None => {
            let loaded = load(runtime, path, bytes, sha, Purpose::Run)?;
            let label = path.display().to_string();
            handle
                .block_on(runtime.manifest(&loaded, &label))
                .map_err(|e| format!("invalid manifest: {e}"))?
        }
    };
    raw.validate()
        .map_err(|p| format!("invalid manifest: {}", join_problems(&p)))
}

/// A plugin file's declaration, as [`read_declaration`], its component validated when it
/// has one, by the runtime (in the compile child when there is one). `sha` is the SHA-256
/// of `bytes`.
pub(crate) fn read_checked_declaration(
    runtime: &Runtime,
    bytes: &[u8],
    sha: &str,
) -> std::result::Result<Option<declaration::Declaration>, String> {
    let declaration = read_declaration(bytes)?;
    if declaration.is_some() {
        runtime.validate(bytes, sha)?;
    }
    Ok(declaration)
}

/// A manifest's problems in one line.
pub(crate) fn join_problems(problems: &[manifest::ManifestProblem]) -> String {
    let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

pub(crate) fn combine(mut problems: Vec<Error>) -> Option<Error> {
    match problems.len() {
        0 => None,
        1 => problems.pop(),
        _ => Some(Error::InvalidPlugins(problems)),
    }
}

/// Runs `work` on each item on blocking threads, as many at a time as there are cores (each
/// compile is itself parallel inside; more at once would only add memory), and returns the
/// results in the items' order.
pub(crate) async fn on_cores<I, T>(
    items: Vec<I>,
    work: impl Fn(I) -> T + Clone + Send + 'static,
) -> Result<Vec<T>>
where
    I: Send + 'static,
    T: Send + 'static,
{
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(items.len());
    for item in items {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let work = work.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(item)
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(
            task.await
                .map_err(|e| Error::Engine(format!("compile task failed: {e}")))?,
        );
    }
    Ok(results)
}

impl Host {
    /// Opens the database for reading and loads the plugins (see [`Host::load_hashed`]).
    pub(crate) async fn open_read_and_load(&self) -> Result<(Box<dyn Backend>, Loaded)> {
        let hashing = self.start_hashing();
        // Meanwhile SQLite reads the database's schema (opening it parses all of it): on a
        // database with thousands of tables, the longest part of a no-op run.
        let opened = self.open_read();
        let hashed = Self::hashed(hashing).await;
        let mut backend = opened?;
        let loaded = self.load_hashed(&mut *backend, hashed?).await?;
        Ok((backend, loaded))
    }

    /// Lists and hashes every plugin file (keeping no bytes: most plugins need nothing more)
    /// on a blocking thread, so the caller can open the database meanwhile.
    pub(crate) fn start_hashing(&self) -> tokio::task::JoinHandle<Result<Hashed>> {
        let dir = self.inner.config.plugins_dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut hashed = Hashed::default();
            for path in catalog::scan(&dir)? {
                match catalog::read(path) {
                    Err(e) => hashed.problems.push(e),
                    Ok(file) => hashed.found.push((file.path, file.sha256)),
                }
            }
            Ok(hashed)
        })
    }

    pub(crate) async fn hashed(hashing: tokio::task::JoinHandle<Result<Hashed>>) -> Result<Hashed> {
        hashing
            .await
            .map_err(|e| Error::Engine(format!("hashing task failed: {e}")))?
    }

    /// Reads every hashed plugin file's manifest. A manifest already stored for the file's
    /// SHA-256 is used as it is: a plugin whose steps are all applied is hashed, never
    /// compiled or run. The others (a few at a time in parallel) have their declaration read,
    /// or, without one, are compiled (through the compile cache) and asked for their
    /// manifest; the compiled form is then dropped, so memory does not grow with the number
    /// of plugins.
    pub(crate) async fn load_hashed(
        &self,
        backend: &mut dyn Backend,
        hashed: Hashed,
    ) -> Result<Loaded> {
        let Hashed {
            found,
            mut problems,
        } = hashed;
        let shas: Vec<String> = found.iter().map(|(_, sha)| sha.clone()).collect();
        let cached = backend.stored_manifests(Some(&shas))?;

        // Two files of the same bytes are read once, and both found to declare the same
        // plugin below.
        let mut seen = std::collections::HashSet::new();
        let misses: Vec<(PathBuf, String)> = found
            .iter()
            .filter(|(_, sha)| !cached.contains_key(sha) && seen.insert(sha.clone()))
            .cloned()
            .collect();
        let (host, handle) = (self.clone(), tokio::runtime::Handle::current());
        let fresh: BTreeMap<String, std::result::Result<Manifest, String>> =
            on_cores(misses, move |(path, sha)| {
                let runtime = &host.inner.runtime;
                let manifest = catalog::reread(&path, &sha)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| read_manifest(runtime, &handle, &path, &bytes, &sha));
                (sha, manifest)
            })
            .await?
            .into_iter()
            .collect();

        let mut candidates: Vec<Candidate> = Vec::new();
        for (path, sha256) in found {
            let manifest = match cached.get(&sha256) {
                Some(m) => Ok(m.clone()),
                None => fresh.get(&sha256).cloned().expect("every miss was loaded"),
            };
            let manifest = match manifest {
                Ok(m) => m,
                Err(reason) => {
                    problems.push(Error::InvalidPlugin { file: path, reason });
                    continue;
                }
            };
            if let Some(other) = candidates.iter().find(|c| c.manifest.name == manifest.name) {
                problems.push(Error::DuplicatePlugin {
                    name: manifest.name.clone(),
                    first: other.file.clone(),
                    second: path,
                });
                continue;
            }
            candidates.push(Candidate {
                file: path,
                sha256,
                manifest,
            });
        }
        Ok(Loaded {
            candidates,
            problems,
        })
    }
}

/// Compiles (or takes from the cache) and links a plugin file, after checking that it is a
/// component, and, before linking, that it imports and exports what a plugin may.
pub(crate) fn load(
    runtime: &Runtime,
    file: &Path,
    bytes: &[u8],
    sha256: &str,
    purpose: Purpose,
) -> Result<runtime::Loaded, String> {
    checks::check_header(bytes)?;
    runtime.load(file, bytes, sha256, purpose, checks::check_component)
}
