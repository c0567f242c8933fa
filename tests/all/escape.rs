//! A plugin reaches no files, network, environment or arguments.

use crate::hostile::armed;
use crate::support::{Env, artifacts};

fn loot(env: &Env) -> Vec<(String, String)> {
    let conn = env.conn();
    let mut stmt = conn
        .prepare("SELECT what, result FROM evil__loot ORDER BY what")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn no_file_system() {
    let env = armed("escape-fs");
    env.ok(&["up"]);
    for (what, result) in loot(&env) {
        assert!(result.starts_with("error"), "{what} gave {result}");
    }
}

#[test]
fn no_environment_and_no_arguments() {
    let env = armed("escape-env");
    let out = env
        .command()
        .env("SECRET_TOKEN", "hunter2")
        .arg("up")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        loot(&env),
        [
            ("args".to_string(), String::new()),
            ("env".to_string(), String::new())
        ]
    );
}

#[test]
fn a_plugin_that_imports_sockets_is_refused_at_load() {
    let env = Env::new();
    env.add(artifacts::HOSTILE_NET, "netcat.wasm");
    let err = env.fails(&["up"]);
    assert!(err.contains("netcat.wasm"), "{err}");
    assert!(err.contains("wasi:sockets/"), "{err}");
    assert!(
        err.contains("which wasmig does not grant to plugins"),
        "{err}"
    );
    assert!(env.ledger().is_empty());
}
