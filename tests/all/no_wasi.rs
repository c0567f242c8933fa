//! Plugins built for wasm32-unknown-unknown and linked into a component by wasm-component-ld
//! (`example-plugins/.cargo/config.toml`): they import no WASI interface at all. They migrate,
//! fail and are confined exactly like wasm32-wasip2 builds of the same code.

use crate::hostile::attack_fails_with;
use crate::support::{Env, artifacts, dump};

/// The imports `wasmig inspect` lists for a plugin file.
fn imports(env: &Env, file: &str) -> Vec<String> {
    let path = env.plugins.join(file);
    let info = env.json(&["inspect", path.to_str().unwrap()]);
    info["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

/// The plugins' tables and rows, without wasmig's own (which hold the components' bytes).
fn plugin_data(env: &Env) -> String {
    let conn = env.conn();
    let mut host_tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE name LIKE '\\_wasmig\\_%' ESCAPE '\\'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    host_tables.sort();
    assert!(host_tables.len() >= 3, "{host_tables:?}");
    let skip: Vec<&str> = host_tables.iter().map(String::as_str).collect();
    dump(&conn, &skip)
}

#[test]
fn a_plugin_built_without_wasi_imports_only_wasmigs_interfaces_and_migrates_the_same() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS_NO_WASI, "accounts.wasm");
    env.add(artifacts::NOTES_NO_WASI, "notes.wasm");
    env.add(artifacts::BENCH_TEMPLATE10, "wasip2.wasm");
    for file in ["accounts.wasm", "notes.wasm"] {
        let imports = imports(&env, file);
        assert!(
            !imports.is_empty() && imports.iter().all(|i| i.starts_with("wasmig:plugin/")),
            "{file}: {imports:?}"
        );
    }
    // The same check on a wasm32-wasip2 build finds WASI imports.
    assert!(
        imports(&env, "wasip2.wasm")
            .iter()
            .any(|i| i.starts_with("wasi:")),
    );
    env.remove("wasip2.wasm");

    let out = env.ok(&["up"]);
    assert!(out.contains("Applied 5 step(s)"), "{out}");

    let native = Env::new();
    native.add(artifacts::ACCOUNTS, "accounts.wasm");
    native.add(artifacts::NOTES, "notes.wasm");
    native.ok(&["up"]);
    assert_eq!(plugin_data(&env), plugin_data(&native));
}

#[test]
fn switching_a_plugins_build_target_is_not_drift() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOTES, "notes.wasm");
    env.ok(&["up"]);
    // Same code, other target: another component (another SHA-256), the same checksums.
    env.add(artifacts::ACCOUNTS_NO_WASI, "accounts.wasm");
    env.add(artifacts::NOTES_NO_WASI, "notes.wasm");
    let out = env.ok(&["validate"]);
    assert!(out.contains("Valid"), "{out}");
    let out = env.ok(&["up"]);
    assert!(out.contains("Nothing to do"), "{out}");
    // Rolling back runs the stored component that applied each step.
    let out = env.ok(&["down", "notes", "--steps", "1"]);
    assert!(out.contains("Rolled back 1 step(s)"), "{out}");
    let out = env.ok(&["up"]);
    assert!(out.contains("Applied 1 step(s)"), "{out}");
}

#[test]
fn a_panic_without_wasi_reaches_the_failure_record_through_the_log() {
    // No stderr without WASI: the SDK's panic hook sends the message through the log import.
    let err = attack_fails_with(
        artifacts::HOSTILE_NO_WASI,
        "panic",
        &[],
        "evil panics on purpose",
    );
    assert!(err.contains("unreachable code reached"), "{err}");
    assert!(err.contains("it logged: panicked at"), "{err}");
}

macro_rules! attacks_without_wasi {
    ($($test:ident: $attack:literal => $expected:expr;)*) => {$(
        #[test]
        fn $test() {
            attack_fails_with(artifacts::HOSTILE_NO_WASI, $attack, &[], $expected);
        }
    )*};
}

attacks_without_wasi! {
    read_another_plugins_table: "read-other" => "table \"accounts__user\" is outside plugin evil's namespace or does not exist";
    drop_another_plugins_table: "drop-other" => "table \"accounts__user\" is outside";
    delete_the_ledger: "write-ledger" => "table \"_wasmig_ledger\" is outside";
    attach_a_database_file: "attach" => "ATTACH is not available to plugins";
    commit_the_hosts_transaction: "commit" => "transaction control is the host's";
    executing_a_statement_the_host_cached: "reuse-host-execute" => "table \"_wasmig_applied\" is outside";
}
