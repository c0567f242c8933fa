//! Read grants: requested in the manifest, granted in wasmig.toml, never a write.

use crate::support::{Env, artifacts};

fn setup() -> Env {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::REPORTING, "reporting.wasm");
    env
}

#[test]
fn an_ungranted_read_refuses_the_plugin_and_shows_the_line_to_add() {
    let env = setup();
    let err = env.fails(&["up"]);
    assert!(err.contains("plugin reporting"), "{err}");
    assert!(err.contains("asks to read the tables of accounts"), "{err}");
    assert!(
        err.contains("[plugins.reporting]\n    reads = [\"accounts\"]"),
        "{err}"
    );
    assert!(env.ledger().is_empty(), "nothing runs before the grant");
}

#[test]
fn a_granted_read_reads_but_never_writes() {
    let env = setup();
    env.policy("[plugins.reporting]\nreads = [\"accounts\"]\n");
    env.ok(&["up", "accounts"]);
    env.conn()
        .execute_batch("INSERT INTO accounts__user (email) VALUES ('A@x'), ('B@x')")
        .unwrap();
    let err = env.fails(&["up"]);
    assert!(err.contains("plugin reporting migration 0.2.0"), "{err}");
    assert!(
        err.contains("table \"accounts__user\" is outside plugin reporting's namespace"),
        "{err}"
    );
    let users: i64 = env
        .conn()
        .query_row("SELECT users FROM reporting__summary", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 2, "the granted read worked");
    let emails: Vec<String> = env.column("SELECT email FROM accounts__user ORDER BY id");
    assert_eq!(emails, ["A@x", "B@x"], "the write was refused");
}

#[test]
fn the_policy_command_shows_what_each_plugin_may_touch() {
    let env = setup();
    let out = env.json(&["policy"]);
    let plugins = out["plugins"].as_array().unwrap();
    let reporting = plugins.iter().find(|p| p["plugin"] == "reporting").unwrap();
    assert_eq!(reporting["namespace"], "reporting__*");
    assert_eq!(reporting["reads_missing"], serde_json::json!(["accounts"]));
    assert_eq!(out["limits"]["deadline"]["secs"], 30);

    env.policy("[plugins.reporting]\nreads = [\"accounts\"]\n[limits]\ndeadline = \"5s\"\n");
    let out = env.json(&["policy"]);
    let reporting = out["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin"] == "reporting")
        .unwrap()
        .clone();
    assert_eq!(reporting["reads_granted"], serde_json::json!(["accounts"]));
    assert_eq!(reporting["reads_missing"], serde_json::json!([]));
    assert_eq!(out["limits"]["deadline"]["secs"], 5);
    let table = env.ok(&["policy"]);
    assert!(
        table.contains("accounts__*") && table.contains("deadline 5s"),
        "{table}"
    );
}

#[test]
fn an_invalid_policy_file_is_a_clear_error() {
    let env = setup();
    env.policy("[plugins.reporting]\nwrites = [\"accounts\"]\n");
    let err = env.fails(&["status"]);
    assert!(
        err.contains("wasmig.toml") && err.contains("writes"),
        "{err}"
    );
}
