//! The main path through the binary: `up`, `status`, `history` on real plugins, on SQLite
//! and on PostgreSQL (each `on_both!` test runs on both).

use crate::on_both;
use crate::support::{Env, artifacts};

fn notes_stats(env: &Env) -> Vec<String> {
    env.rows("SELECT note_id, slug, words FROM notes__stats ORDER BY note_id")
}

on_both! {
    fn up_applies_dependencies_first_whatever_the_file_names(env) {
        // File names sort the opposite way from the dependency order.
        env.add(artifacts::NOTES, "a-notes.wasm");
        env.add(artifacts::ACCOUNTS, "z-accounts.wasm");

        let out = env.ok(&["up"]);
        assert!(out.contains("Applied 5 step(s)"), "{out}");

        let tables = env.tables();
        for t in [
            "accounts__user",
            "accounts__role",
            "notes__note",
            "notes__tag",
            "notes__stats",
        ] {
            assert!(
                tables.contains(&t.to_string()),
                "{t} missing from {tables:?}"
            );
        }
        let ledger: Vec<_> = env
            .ledger()
            .into_iter()
            .map(|(p, v, d, o, e)| format!("{p} {v} {d} {o} {e:?}"))
            .collect();
        assert_eq!(
            ledger,
            [
                "accounts 0.1.0 up succeeded None",
                "accounts 0.2.0 up succeeded None",
                "notes 0.1.0 up succeeded None",
                "notes 0.2.0 up succeeded None",
                "notes 0.3.0 up succeeded None",
            ]
        );
        // Migration 0.2.0 of accounts really ran: the column it adds exists.
        env.exec("INSERT INTO accounts__user (id, email, display_name) VALUES (1, 'a@x', 'A')");
    }
}

on_both! {
    fn the_code_migration_backfills_derived_rows(env) {
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.add(artifacts::NOTES, "notes.wasm");
        // Stop before the backfill, add notes the way the application would, then finish.
        env.ok(&["up", "notes@0.2.0"]);
        assert!(!env.tables().contains(&"notes__stats".to_string()));
        env.exec(
            "INSERT INTO notes__note (id, owner_id, title, body) VALUES
                 (10, 1, 'Hello, World!', 'one two three'),
                 (11, 1, '  Rust  &  WebAssembly ', ''),
                 (12, 2, 'Ünïcode Title', 'a b')",
        );
        env.ok(&["up"]);
        assert_eq!(
            notes_stats(&env),
            [
                "1|welcome-to-notes|14",
                "10|hello-world|5",
                "11|rust-webassembly|3",
                "12|ünïcode-title|4",
            ]
        );
    }
}

on_both! {
    fn a_second_up_changes_nothing(env) {
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.add(artifacts::NOTES, "notes.wasm");
        env.ok(&["up"]);
        let before = env.dump();
        let out = env.ok(&["up"]);
        assert!(out.contains("Nothing to do"), "{out}");
        assert_eq!(env.dump(), before);
        assert_eq!(env.ledger().len(), 5);
    }
}

on_both! {
    fn a_plugin_added_later_is_migrated_on_the_next_up(env) {
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.ok(&["up"]);
        assert_eq!(env.ledger().len(), 2);
        assert!(!env.tables().contains(&"notes__note".to_string()));

        env.add(artifacts::NOTES, "notes.wasm");
        let out = env.ok(&["up"]);
        assert!(out.contains("Applied 3 step(s)"), "{out}");
        assert!(env.tables().contains(&"notes__note".to_string()));
        assert!(env.ledger()[2..].iter().all(|row| row.0 == "notes"));
    }
}

on_both! {
    fn a_new_plugin_version_applies_only_its_new_steps(env) {
        env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
        env.ok(&["up"]);
        assert_eq!(env.ledger().len(), 1);
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.ok(&["up"]);
        let ledger = env.ledger();
        assert_eq!(ledger.len(), 2);
        assert_eq!(
            (ledger[1].0.as_str(), ledger[1].1.as_str()),
            ("accounts", "0.2.0")
        );
    }
}

on_both! {
    fn status_reports_versions_and_pending_steps(env) {
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.add(artifacts::NOTES, "notes.wasm");
        env.ok(&["up", "accounts@0.1.0"]);

        let status = env.json(&["status"]);
        let rows = status.as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["name"], "accounts");
        assert_eq!(rows[0]["plugin_version"], "0.2.0");
        assert_eq!(rows[0]["applied_version"], "0.1.0");
        assert_eq!(rows[0]["pending"], 1);
        assert!(rows[0]["file"].as_str().unwrap().ends_with("accounts.wasm"));
        assert_eq!(rows[1]["name"], "notes");
        assert_eq!(rows[1]["applied_version"], serde_json::Value::Null);
        assert_eq!(rows[1]["pending"], 3);

        let table = env.ok(&["status"]);
        assert!(
            table.contains("accounts") && table.contains("notes"),
            "{table}"
        );
    }
}

on_both! {
    fn history_lists_every_attempt_with_its_outcome(env) {
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.add(artifacts::FAILING, "failing.wasm");
        env.fails(&["up"]);

        let history = env.json(&["history"]);
        let rows = history.as_array().unwrap();
        let summary: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r["plugin"], r["version"], r["direction"], r["outcome"]
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                r#""accounts" "0.1.0" "up" "succeeded""#,
                r#""accounts" "0.2.0" "up" "succeeded""#,
                r#""failing" "0.1.0" "up" "succeeded""#,
                r#""failing" "0.2.0" "up" "failed""#,
            ]
        );
        for r in rows {
            assert!(r["started_at_ms"].as_i64().unwrap() > 1_700_000_000_000);
            assert!(r["duration_us"].as_i64().unwrap() > 0);
            assert!(r["checksum"].as_str().unwrap().starts_with("sha256:"));
            assert_eq!(r["component_sha256"].as_str().unwrap().len(), 64);
        }
        // The audit trail: the statements the step ran.
        let statements = rows[0]["statements"].as_array().unwrap();
        assert!(
            statements[0]
                .as_str()
                .unwrap()
                .contains("CREATE TABLE accounts__user")
        );

        let only_failing = env.json(&["history", "failing"]);
        assert_eq!(only_failing.as_array().unwrap().len(), 2);
        let table = env.ok(&["history"]);
        assert!(table.contains("deliberate failure"), "{table}");
    }
}

#[test]
fn up_prints_each_step_as_it_ends_and_json_lines_end_with_the_error_when_a_step_fails() {
    let env = Env::new();
    env.add(artifacts::FAILING, "failing.wasm");
    let out = env.run(&["up"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("OUTCOME"), "{stdout}");
    assert!(
        lines[1].starts_with("succeeded")
            && lines[1].contains("failing")
            && lines[1].contains("0.1.0"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("failed") && lines[2].contains("0.2.0"),
        "{stdout}"
    );
    assert!(lines[3].contains("error: deliberate failure"), "{stdout}");
    assert!(!stdout.contains("Applied"), "{stdout}");
    // stderr has the error once, not also each step's log line; -v shows those.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.matches("deliberate failure").count(), 1, "{stderr}");
    assert!(!stderr.contains("applied"), "{stderr}");
    let verbose = env.run(&["up", "-v"]);
    let stderr = String::from_utf8(verbose.stderr).unwrap();
    assert!(
        stderr.contains("step failed and was rolled back"),
        "{stderr}"
    );

    let env = Env::new();
    env.add(artifacts::FAILING, "failing.wasm");
    let out = env.run(&["up", "--json"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("error: plugin failing migration 0.2.0"),
        "{stderr}"
    );
    // One JSON object per line: the plan's size, each step as it starts and ends, the error.
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["planned", "started", "step", "started", "step", "error"],
        "{lines:?}"
    );
    assert_eq!(lines[0]["steps"], 2);
    assert_eq!(lines[1]["plugin"], "failing");
    assert_eq!(lines[2]["outcome"], "succeeded");
    assert_eq!(lines[4]["outcome"], "failed");
    // It wrote rows before it failed, and they were rolled back with it.
    assert_eq!(lines[4]["rows_changed"], 0, "{lines:?}");
    assert_eq!(
        lines[4]["error"],
        "the plugin's own error: deliberate failure after writing rows"
    );
    assert_eq!(lines[5]["ran"], 2);
    assert!(
        lines[5]["error"]
            .as_str()
            .unwrap()
            .contains("plugin failing migration 0.2.0"),
        "{lines:?}"
    );

    // Nothing ran: the error alone, and no JSON.
    let out = env.run(&["up", "--json", "ghost"]);
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

on_both! {
    fn a_failing_migration_leaves_nothing_but_its_failure_row(env) {
        env.add(artifacts::FAILING, "failing.wasm");
        let err = env.fails(&["up"]);
        assert!(
            err.contains("plugin failing migration 0.2.0") && err.contains("deliberate failure"),
            "{err}"
        );

        let tables = env.tables();
        assert!(tables.contains(&"failing__ok".to_string()));
        assert!(
            !tables.contains(&"failing__partial".to_string()),
            "{tables:?}"
        );
        assert_eq!(
            env.rows("SELECT count(*) FROM failing__ok"),
            ["0"],
            "the failed step's insert into failing__ok must be rolled back"
        );
        let ledger = env.ledger();
        assert_eq!(ledger.len(), 2);
        assert_eq!(ledger[1].3, "failed");
        assert!(
            ledger[1]
                .4
                .as_deref()
                .unwrap()
                .contains("deliberate failure")
        );
        let status = env.json(&["status"]);
        assert_eq!(status[0]["applied"], 1, "{status}");

        // Running again retries the failed step (and fails the same way): no silent skip.
        env.fails(&["up"]);
        assert_eq!(env.ledger().len(), 3);
    }
}

on_both! {
    fn a_failure_stops_the_run_and_says_what_did_not_run(env) {
        env.add(artifacts::FAILING, "failing.wasm");
        env.add(artifacts::NOTES, "notes.wasm");
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        // Order: accounts, failing, notes (dependencies first, then by name).
        let err = env.fails(&["up"]);
        assert!(
            err.contains("not run: notes 0.1.0, notes 0.2.0, notes 0.3.0"),
            "{err}"
        );
        assert!(!env.tables().contains(&"notes__note".to_string()));
    }
}

on_both! {
    fn a_missing_dependency_names_both_plugins_and_nothing_runs(env) {
        env.add(artifacts::NOTES, "notes.wasm");
        let err = env.fails(&["up"]);
        assert!(
            err.contains("plugin notes") && err.contains("requires plugin accounts ^0.2"),
            "{err}"
        );
        assert!(err.contains("no plugin accounts"), "{err}");
        assert!(!env.tables().iter().any(|t| t.starts_with("notes__")));
        assert!(env.ledger().is_empty());
    }
}

on_both! {
    fn an_unsatisfied_dependency_names_both_versions_and_nothing_runs(env) {
        env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
        env.add(artifacts::NOTES, "notes.wasm");
        let err = env.fails(&["up"]);
        assert!(
            err.contains("requires plugin accounts ^0.2, but accounts is version 0.1.0"),
            "{err}"
        );
        assert!(env.ledger().is_empty());
    }
}

on_both! {
    fn paths_come_from_flags_after_the_subcommand_or_the_environment(env) {
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        let out = crate::support::wasmig()
            .env("WASMIG_PLUGINS", &env.plugins)
            .env("WASMIG_DB", &env.db)
            .arg("up")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(env.ledger().len(), 2);

        let out = crate::support::wasmig()
            .args(["status", "--json", "--plugins"])
            .arg(&env.plugins)
            .arg("--db")
            .arg(&env.db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status[0]["applied_version"], "0.2.0");
    }
}

#[test]
fn on_a_terminal_a_run_shows_a_progress_bar_and_the_same_lines() {
    // `script` (util-linux) gives the binary a terminal.
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    let command = format!(
        "{} --plugins {} --db {} up",
        env!("CARGO_BIN_EXE_wasmig"),
        env.plugins.display(),
        env.db.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("RUST_LOG")
        .output()
        .expect("script (util-linux) runs a command on a terminal");
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(out.status.success(), "{screen}");
    // Steps done of the total, the step running, and the lines of a run without a terminal.
    assert!(
        screen.contains("0/2 steps  accounts 0.1.0 up: create users"),
        "{screen}"
    );
    assert!(screen.contains("1/2 steps  accounts 0.2.0 up"), "{screen}");
    assert!(screen.contains("Applied 2 step(s)."), "{screen}");
}

#[test]
fn on_a_terminal_wasmig_test_shows_its_checks_as_a_progress_bar() {
    let env = Env::new();
    let command = format!(
        "{} test {}",
        env!("CARGO_BIN_EXE_wasmig"),
        artifacts::ACCOUNTS
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(env.dir.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("script (util-linux) runs a command on a terminal");
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(out.status.success(), "{screen}");
    // Two steps, three checks each (up, down, again).
    assert!(screen.contains("/6 checks"), "{screen}");
    assert!(screen.contains("accounts 0.2.0 down"), "{screen}");
    assert!(screen.contains("accounts: passed"), "{screen}");
}

#[test]
fn output_nobody_reads_is_dropped_and_the_command_goes_on() {
    // `wasmig history | head`: once the reader has gone, writing to stdout fails.
    let env = Env::new();
    env.add(artifacts::NOTES, "notes.wasm");
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    for args in [&["up"][..], &["history", "--json"], &["policy"]] {
        let mut child = env.spawn(args);
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let ledger = env.ledger();
    assert!(!ledger.is_empty());
    assert!(ledger.iter().all(|row| row.3 == "succeeded"), "{ledger:?}");
}
