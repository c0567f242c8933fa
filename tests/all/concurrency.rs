//! Exactly once under concurrency, a clear error past the lock timeout, and no half-applied
//! step after `kill -9`.

use crate::hostile::armed;
use crate::on_both;
use crate::support::{Env, artifacts};
use std::process::Stdio;
use std::time::{Duration, Instant};

on_both! {
    fn concurrent_runners_apply_every_step_exactly_once(env) {
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.add(artifacts::NOTES, "notes.wasm");
        let runners: Vec<_> = (0..6)
            .map(|_| env.spawn(&["up"]))
            .collect();
        for runner in runners {
            let out = runner.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ledger = env.ledger();
        assert_eq!(ledger.len(), 5, "{ledger:?}");
        let mut steps: Vec<String> = ledger.iter().map(|r| format!("{} {}", r.0, r.1)).collect();
        steps.dedup();
        assert_eq!(steps.len(), 5, "a step was applied twice: {ledger:?}");
        assert!(ledger.iter().all(|r| r.3 == "succeeded"));
    }
}

#[test]
fn a_held_lock_past_the_timeout_is_a_clear_error() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.ok(&["status"]);
    let holder = env.conn();
    holder
        .execute_batch(
            "CREATE TABLE app_data (x); BEGIN IMMEDIATE; INSERT INTO app_data VALUES (1);",
        )
        .unwrap();
    let started = Instant::now();
    let err = env.fails(&["up", "--lock-timeout", "1s"]);
    assert!(err.contains("another runner holds the database"), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    holder.execute_batch("COMMIT").unwrap();
    env.ok(&["up", "--lock-timeout", "1s"]);
    assert_eq!(env.ledger().len(), 2);
}

#[test]
fn a_runner_waits_for_the_lock_and_then_proceeds() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    let holder = env.conn();
    holder
        .execute_batch(
            "CREATE TABLE app_data (x); BEGIN IMMEDIATE; INSERT INTO app_data VALUES (1);",
        )
        .unwrap();
    let runner = env
        .command()
        .args(["up", "--lock-timeout", "30s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    holder.execute_batch("COMMIT").unwrap();
    let out = runner.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.ledger().len(), 2);
}

#[test]
fn kill_9_in_the_middle_of_a_step_leaves_nothing_half_applied() {
    let env = armed("slow");
    let mut runner = env
        .command()
        .arg("up")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The rollback journal has content while a transaction has written something (wasmig
    // empties it at each commit rather than deleting it).
    let journal = env.db.with_extension("db-journal");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&journal).map_or(true, |m| m.len() == 0) {
        assert!(Instant::now() < deadline, "the step never started writing");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    runner.kill().unwrap(); // SIGKILL
    runner.wait().unwrap();

    // The next connection rolls the hot journal back: no table, no rows, no ledger row.
    assert!(!env.tables().contains(&"evil__slow".to_string()));
    let ledger = env.ledger();
    assert!(!ledger.iter().any(|r| r.1 == "0.2.0"), "{ledger:?}");

    // The next run carries on and applies the step once.
    env.ok(&["up"]);
    let ledger = env.ledger();
    assert_eq!(
        ledger
            .iter()
            .filter(|r| r.0 == "evil" && r.1 == "0.2.0")
            .count(),
        1
    );
    let rows: i64 = env
        .conn()
        .query_row("SELECT count(*) FROM evil__slow", [], |r| r.get(0))
        .unwrap();
    assert!(rows > 0);
}
