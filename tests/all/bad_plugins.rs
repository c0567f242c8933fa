//! Every kind of unusable plugin file is refused before anything runs, with an error that
//! names the file and the cause; the database is left as it was.

use crate::support::{Env, artifacts};

/// Adds a good plugin plus the bad file, runs `up`, and checks that it fails naming the bad
/// file and `cause`, and that nothing ran — not even the good plugin.
fn refused(bad_file: &str, setup: impl FnOnce(&Env), cause: &str) -> String {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    setup(&env);
    let err = env.fails(&["up"]);
    assert!(
        err.contains(bad_file),
        "error does not name {bad_file}: {err}"
    );
    assert!(err.contains(cause), "error does not say {cause:?}: {err}");
    assert!(
        !env.tables().iter().any(|t| t.starts_with("accounts__")),
        "the good plugin ran although the set was refused"
    );
    assert!(env.ledger().is_empty());
    err
}

#[test]
fn a_file_that_is_not_webassembly() {
    refused(
        "readme.wasm",
        |env| {
            env.add_bytes(b"this is not wasm", "readme.wasm");
        },
        "not a WebAssembly file",
    );
}

#[test]
fn a_core_module_instead_of_a_component() {
    refused(
        "core.wasm",
        |env| {
            env.add_bytes(b"\0asm\x01\0\0\0", "core.wasm");
        },
        "a core WebAssembly module, not a component",
    );
}

#[test]
fn a_truncated_component() {
    refused(
        "broken.wasm",
        |env| {
            let bytes = std::fs::read(artifacts::NOTES).unwrap();
            env.add_bytes(&bytes[..bytes.len() / 2], "broken.wasm");
        },
        "not a valid WebAssembly component",
    );
}

#[test]
fn a_component_of_the_wrong_world() {
    let err = refused(
        "not-a-plugin.wasm",
        |env| {
            env.add(artifacts::NOT_A_PLUGIN, "not-a-plugin.wasm");
        },
        "does not export wasmig:plugin/plugin@0.1.0",
    );
    assert!(
        err.contains("wasi:cli/run"),
        "the error should say what it exports: {err}"
    );
}

#[test]
fn an_invalid_manifest_lists_every_problem() {
    let err = refused(
        "invalid.wasm",
        |env| {
            env.add(artifacts::INVALID_MANIFEST, "invalid.wasm");
        },
        "invalid manifest",
    );
    assert!(
        err.contains("invalid plugin name \"Invalid_Name\""),
        "{err}"
    );
    assert!(
        err.contains("\"one point oh\" is not a semver version"),
        "{err}"
    );
    assert!(
        err.contains("\"about two\" is not a semver requirement"),
        "{err}"
    );
}

#[test]
fn two_files_with_one_plugin_name() {
    refused(
        "accounts-copy.wasm",
        |env| {
            env.add(artifacts::ACCOUNTS_V1, "accounts-copy.wasm");
        },
        "two files declare plugin accounts",
    );
}

#[test]
fn several_bad_files_are_all_reported_at_once() {
    let env = Env::new();
    env.add_bytes(b"junk", "one.wasm");
    env.add_bytes(b"\0asm\x01\0\0\0", "two.wasm");
    let err = env.fails(&["up"]);
    assert!(err.contains("2 plugin files cannot be used"), "{err}");
    assert!(
        err.contains("one.wasm") && err.contains("two.wasm"),
        "{err}"
    );
}

#[test]
fn status_shows_bad_files_next_to_good_ones() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add_bytes(b"junk", "junk.wasm");
    let out = env.run(&["status", "--json"]);
    assert!(
        !out.status.success(),
        "status exits non-zero when a file is unusable"
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "accounts");
    assert!(rows[1]["problem"].as_str().unwrap().contains("junk.wasm"));
}

#[test]
fn a_missing_plugins_directory_is_a_clear_error() {
    let env = Env::new();
    std::fs::remove_dir(&env.plugins).unwrap();
    let err = env.fails(&["up"]);
    assert!(
        err.contains("plugins directory") && err.contains("plugins"),
        "{err}"
    );
}
