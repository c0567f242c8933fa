//! The compile cache: compiled once, reused, never trusted when corrupt; plugins whose steps
//! are all applied are not even compiled.

use crate::support::{Env, artifacts};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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
    env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    let cache_arg = cache.to_str().unwrap();
    env.ok(&["--cache-dir", cache_arg, "plan"]);
    let files = entries(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    let accounts_sha = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(
            std::fs::read(artifacts::ACCOUNTS_V1).unwrap(),
        ))
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

/// An environment with accounts.wasm (at 0.1.0, built without a declaration: compiled)
/// compiled into its cache by a `plan`: the environment, the cache directory and the entry.
fn accounts_cached() -> (Env, PathBuf, PathBuf) {
    let env = Env::new();
    let cache = env.dir.path().join("cache");
    env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    env.ok(&["--cache-dir", cache.to_str().unwrap(), "plan"]);
    let entry = entries(&cache).pop().unwrap();
    (env, cache, entry)
}

/// Sets a file's modification time to `days` ago.
fn make_old(path: &Path, days: u64) {
    let then = SystemTime::now() - Duration::from_secs(days * 24 * 60 * 60);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(then)
        .unwrap();
}

/// How long ago a file was modified.
fn age(path: &Path) -> Duration {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default()
}

#[test]
fn entries_unused_for_30_days_go_when_a_run_writes_one() {
    let (env, cache, used) = accounts_cached();
    let cache_arg = cache.to_str().unwrap();

    // An entry last used 40 days ago is marked used when a run loads it.
    make_old(&used, 40);
    env.ok(&["--cache-dir", cache_arg, "plan"]);
    assert!(
        age(&used) < Duration::from_secs(3600),
        "a loaded entry is marked used: {:?} old",
        age(&used)
    );

    // What other versions left: an entry and a temporary file unused for 31 days, an entry
    // used 29 days ago, and a file that is not the cache's.
    let stale = cache.join(format!("{}-0123456789abcdef.cwasm", "0".repeat(64)));
    let stale_tmp = cache.join(".tmpAbC123");
    let recent = cache.join(format!("{}-0123456789abcdef.cwasm", "1".repeat(64)));
    let foreign = cache.join("README");
    for (path, days) in [
        (&stale, 31),
        (&stale_tmp, 31),
        (&recent, 29),
        (&foreign, 400),
    ] {
        std::fs::write(path, b"x").unwrap();
        make_old(path, days);
    }
    // A run that writes no entry leaves the directory alone.
    env.ok(&["--cache-dir", cache_arg, "plan"]);
    assert!(stale.exists() && stale_tmp.exists());

    // A run that writes one (a plugin not compiled before) deletes what is unused.
    env.add(artifacts::BENCH_TEMPLATE10, "template.wasm");
    env.ok(&["--cache-dir", cache_arg, "plan"]);
    assert!(!stale.exists(), "an entry unused for 31 days is deleted");
    assert!(
        !stale_tmp.exists(),
        "a temporary file left 31 days ago is deleted"
    );
    assert!(recent.exists(), "an entry used 29 days ago stays");
    assert!(foreign.exists(), "a file that is not the cache's stays");
    assert!(used.exists(), "the entry in use stays");
    assert_eq!(entries(&cache).len(), 3, "{:?}", entries(&cache));
}

#[test]
fn a_corrupt_entry_is_recompiled_not_trusted() {
    let (env, cache, entry) = accounts_cached();
    let cache_arg = cache.to_str().unwrap();
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
    assert_eq!(env.ledger().len(), 1);
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
fn an_entry_of_the_older_format_is_replaced_without_a_warning() {
    // Format 1 kept a SHA-256 after its magic; such entries are recompiled quietly, not
    // reported as corrupt.
    let (env, cache, entry) = accounts_cached();
    let mut old = b"wasmig\x01\x00".to_vec();
    old.extend_from_slice(&[7; 32]);
    old.extend_from_slice(b"an artifact of format 1");
    std::fs::write(&entry, &old).unwrap();

    let out = env.run(&["--cache-dir", cache.to_str().unwrap(), "up"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("corrupt"), "{stderr}");
    assert!(
        std::fs::read(&entry)
            .unwrap()
            .starts_with(b"wasmig\x02\x00"),
        "the entry was rewritten in the current format"
    );
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

#[test]
fn auto_runs_a_new_plugin_with_winch_and_precompiled_code_once_compile_ran() {
    if !cfg!(target_arch = "x86_64") {
        return; // Winch is x86-64 only: auto is Cranelift alone elsewhere.
    }
    let env = Env::new();
    let file = env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    let cache = env.dir.path().join("cache");
    let (cache_arg, file_arg) = (cache.to_str().unwrap(), file.to_str().unwrap());
    let first = env.json(&["--cache-dir", cache_arg, "inspect", file_arg]);
    assert_eq!(
        (&first["compiler"], &first["from_cache"]),
        (&"winch".into(), &false.into())
    );
    let again = env.json(&["--cache-dir", cache_arg, "inspect", file_arg]);
    assert_eq!(
        (&again["compiler"], &again["from_cache"]),
        (&"winch".into(), &true.into()),
        "the baseline code is cached too"
    );

    let compiled = env.json(&["--cache-dir", cache_arg, "compile"]);
    let row = &compiled.as_array().unwrap()[0];
    assert_eq!(
        (&row["compiler"], &row["from_cache"], &row["error"]),
        (&"cranelift".into(), &false.into(), &serde_json::Value::Null),
        "compile ignores the baseline code: {compiled}"
    );
    assert_eq!(entries(&cache).len(), 2, "one entry per compiler");
    let recompiled = env.json(&["--cache-dir", cache_arg, "compile"]);
    assert_eq!(recompiled[0]["from_cache"], true, "{recompiled}");

    let after = env.json(&["--cache-dir", cache_arg, "inspect", file_arg]);
    assert_eq!(
        (&after["compiler"], &after["from_cache"]),
        (&"cranelift".into(), &true.into()),
        "the optimized code wins once it is cached"
    );
    env.ok(&["--cache-dir", cache_arg, "up"]);
    assert_eq!(env.ledger().len(), 1);
}

#[test]
fn a_fixed_compiler_is_used_for_everything() {
    let env = Env::new();
    let file = env.add(artifacts::ACCOUNTS, "accounts.wasm");
    let cache = env.dir.path().join("cache");
    let (cache_arg, file_arg) = (cache.to_str().unwrap(), file.to_str().unwrap());
    let args = |compiler: &'static str| {
        vec![
            "--cache-dir",
            cache_arg,
            "--compiler",
            compiler,
            "inspect",
            file_arg,
        ]
    };
    let cranelift = env.json(&args("cranelift"));
    assert_eq!(
        (&cranelift["compiler"], &cranelift["from_cache"]),
        (&"cranelift".into(), &false.into())
    );
    if cfg!(target_arch = "x86_64") {
        // Cranelift's code is cached, but a run told to use Winch compiles with Winch.
        let winch = env.json(&args("winch"));
        assert_eq!(
            (&winch["compiler"], &winch["from_cache"]),
            (&"winch".into(), &false.into())
        );
    }
}

#[test]
fn compile_names_a_file_it_cannot_compile_and_fails() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS_V1, "old-accounts.wasm");
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOT_A_PLUGIN, "not-a-plugin.wasm");
    env.add_bytes(b"\0asm garbage", "corrupt.wasm");
    let cache = env.dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let out = env.run(&["--cache-dir", cache_arg, "compile"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "old-accounts.wasm",
        "compiled and cached",
        "SQL steps declared as data: never compiled",
        "not-a-plugin.wasm",
        "does not export wasmig:plugin/plugin@0.1.0",
        "corrupt.wasm",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    assert!(!env.db.exists(), "compile touches no database");
    let declared = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(std::fs::read(artifacts::ACCOUNTS).unwrap()))
    };
    assert!(
        !entries(&cache).iter().any(|e| e
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&declared)),
        "the declared plugin was not compiled"
    );

    let err = env.fails(&["--no-cache", "compile"]);
    assert!(err.contains("no compile cache to fill"), "{err}");
}

#[test]
fn compile_fails_when_the_cache_cannot_be_written() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    // A file where the cache directory should be: nothing compiled can be kept.
    let not_a_dir = env.dir.path().join("cache");
    std::fs::write(&not_a_dir, b"").unwrap();
    let out = env.run(&["--cache-dir", not_a_dir.to_str().unwrap(), "compile"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("compiled, but not cached"), "{text}");
    // A run with the same unusable cache still works: it compiles and warns.
    env.ok(&["--cache-dir", not_a_dir.to_str().unwrap(), "up"]);
    assert_eq!(env.ledger().len(), 1);
}

#[test]
fn compile_with_winch_only_reuses_its_own_entries() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    let env = Env::new();
    env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    let cache = env.dir.path().join("cache");
    let args = [
        "--cache-dir",
        cache.to_str().unwrap(),
        "--compiler",
        "winch",
        "compile",
    ];
    let first = env.json(&args);
    assert_eq!(
        (&first[0]["compiler"], &first[0]["from_cache"]),
        (&"winch".into(), &false.into())
    );
    let second = env.json(&args);
    assert_eq!(second[0]["from_cache"], true, "{second}");
}
