//! `plan` and `--dry-run`: the steps run for real inside a transaction that is rolled back;
//! the report says what they did; nothing is left, not even a ledger row.

use crate::support::{Env, artifacts};

#[test]
fn plan_on_a_new_database_creates_nothing() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOTES, "notes.wasm");
    let report = env.json(&["plan"]);
    assert_eq!(report["dry_run"], true);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 5);
    assert!(steps.iter().all(|s| s["outcome"] == "succeeded"));
    assert_eq!(
        steps[0]["schema_changes"],
        serde_json::json!([
            "created index sqlite_autoindex_accounts__user_1",
            "created table accounts__user"
        ])
    );
    assert_eq!(steps[2]["plugin"], "notes");
    assert_eq!(steps[2]["rows_changed"], 1, "the welcome note");
    assert!(
        steps[2]["statements"][0]
            .as_str()
            .unwrap()
            .contains("CREATE TABLE notes__note")
    );
    assert!(
        !env.db.exists(),
        "a dry run on a new database leaves no file"
    );
}

#[test]
fn plan_on_an_existing_database_leaves_it_byte_for_byte() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOTES, "notes.wasm");
    env.ok(&["up", "notes@0.2.0"]);
    env.conn()
        .execute_batch("INSERT INTO notes__note (owner_id, title) VALUES (1, 'a b c')")
        .unwrap();
    let before = std::fs::read(&env.db).unwrap();
    let dump = env.dump();

    let out = env.ok(&["plan"]);
    assert!(out.contains("would succeed"), "{out}");
    assert!(out.contains("created table notes__stats"), "{out}");
    assert!(out.contains("every step was rolled back"), "{out}");
    let report = env.json(&["up", "--dry-run"]);
    assert_eq!(report["steps"][0]["version"], "0.3.0");
    assert_eq!(
        report["steps"][0]["rows_changed"], 2,
        "one stats row per note"
    );

    assert_eq!(env.dump(), dump);
    assert_eq!(std::fs::read(&env.db).unwrap(), before);
}

#[test]
fn a_failing_step_in_a_dry_run_is_reported_and_leaves_nothing() {
    let env = Env::new();
    env.add(artifacts::FAILING, "failing.wasm");
    env.ok(&["up", "failing@0.1.0"]);
    let dump = env.dump();
    let out = env.run(&["plan", "--json"]);
    assert!(
        !out.status.success(),
        "a dry run that would fail exits non-zero"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let step = &report["steps"][0];
    assert_eq!(step["outcome"], "failed");
    assert!(
        step["error"]
            .as_str()
            .unwrap()
            .contains("deliberate failure")
    );
    assert_eq!(env.dump(), dump, "not even a failure row");
}

#[test]
fn down_dry_run_reports_and_changes_nothing() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.ok(&["up"]);
    let dump = env.dump();
    let report = env.json(&["down", "accounts", "--steps", "2", "--dry-run"]);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["version"], "0.2.0");
    assert!(
        steps[1]["schema_changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "dropped table accounts__user")
    );
    assert_eq!(env.dump(), dump);
}
