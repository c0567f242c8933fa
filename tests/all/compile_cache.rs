//! The compile cache: compiled once, reused, never trusted when corrupt; plugins whose steps
//! are all applied are not even compiled.

use crate::support::{Env, artifacts};
use std::path::Path;

fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_compiled_plugin_is_cached_and_reused() {
    let env = Env::new();
    let cache = env.dir.path().join("cache");
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    let cache_arg = cache.to_str().unwrap();
    env.ok(&["--cache-dir", cache_arg, "plan"]);
    let files = entries(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    let accounts_sha = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(std::fs::read(artifacts::ACCOUNTS).unwrap()))
    };
    assert!(
        name.starts_with(&accounts_sha),
        "keyed by the component's SHA-256: {name}"
    );
    let modified = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
    env.ok(&["--cache-dir", cache_arg, "up"]);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().modified().unwrap(),
        modified,
        "a warm run reads the entry, it does not rewrite it"
    );
}

#[test]
fn a_corrupt_entry_is_recompiled_not_trusted() {
    let env = Env::new();
    let cache = env.dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.ok(&["--cache-dir", cache_arg, "plan"]);
    let entry = entries(&cache).pop().unwrap();
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();

    let out = env.run(&["--cache-dir", cache_arg, "up"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("corrupt compile-cache entry"),
        "the corruption is reported"
    );
    assert_eq!(env.ledger().len(), 2);
    assert_ne!(
        std::fs::read(&entry).unwrap(),
        bytes,
        "the entry was rewritten"
    );

    std::fs::write(&entry, b"truncated").unwrap();
    env.ok(&["--cache-dir", cache_arg, "uninstall", "accounts"]);
    assert!(!env.tables().contains(&"accounts__user".to_string()));
}

#[test]
fn no_cache_compiles_without_writing() {
    let env = Env::new();
    let cache = env.dir.path().join("cache");
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    let out = env
        .command()
        .env("WASMIG_CACHE_DIR", &cache)
        .args(["--no-cache", "up"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(entries(&cache).is_empty());
    assert_eq!(env.ledger().len(), 2);
}

#[test]
fn applied_plugins_are_not_compiled_for_status_or_a_no_op_up() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOTES, "notes.wasm");
    env.ok(&["up"]);
    // A fresh, empty cache: anything compiled now would land in it.
    let cache = env.dir.path().join("fresh-cache");
    let cache_arg = cache.to_str().unwrap();
    env.ok(&["--cache-dir", cache_arg, "status"]);
    let out = env.ok(&["--cache-dir", cache_arg, "up"]);
    assert!(out.contains("Nothing to do"), "{out}");
    assert!(
        entries(&cache).is_empty(),
        "manifests came from the database"
    );
}

#[test]
fn inspect_shows_the_manifest_and_whether_the_cache_served_it() {
    let env = Env::new();
    let file = env.add(artifacts::NOTES, "notes.wasm");
    let cache = env.dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let file_arg = file.to_str().unwrap();
    let first = env.json(&["--cache-dir", cache_arg, "inspect", file_arg]);
    assert_eq!(first["manifest"]["name"], "notes");
    assert_eq!(first["manifest"]["migrations"].as_array().unwrap().len(), 3);
    assert_eq!(first["from_cache"], false);
    let imports = first["imports"].as_array().unwrap();
    assert!(
        imports.iter().any(|i| i == "wasmig:plugin/sql@0.1.0"),
        "{imports:?}"
    );
    let second = env.json(&["--cache-dir", cache_arg, "inspect", file_arg]);
    assert_eq!(second["from_cache"], true);
    let text = env.ok(&["--cache-dir", cache_arg, "inspect", file_arg]);
    assert!(
        text.contains("from the compile cache") && text.contains("0.3.0"),
        "{text}"
    );
    assert!(!env.db.exists(), "inspect touches no database");
}
