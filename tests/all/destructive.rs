//! The destructive-change gate: an up step that drops a table or a column, or deletes or
//! rewrites every row of a table, runs only when its plugin marks it and the operator allows
//! it; the decision is in the ledger; `plan` shows what a step destroys; down steps need no
//! flag.

use crate::scripted::scripted;

const MARK: &str = "-- wasmig:destructive\n";

/// The victim's table with rows, at step 0.2.0.
fn with_rows() -> crate::support::Env {
    let env = scripted();
    env.applies(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__item (id INTEGER PRIMARY KEY, name TEXT, note TEXT);
         INSERT INTO victim__item VALUES (1, 'a', 'x'), (2, 'b', 'y')",
    );
    env
}

#[test]
fn a_destructive_step_needs_the_plugins_mark_and_the_operators_allowance() {
    let env = with_rows();
    let drop = "DROP TABLE victim__item";
    // Neither: both are named.
    let err = env.refused(
        "victim",
        "0.3.0",
        drop,
        "destructive step refused: it drops table victim__item",
    );
    assert!(err.contains("the plugin does not mark it"), "{err}");
    assert!(err.contains("the operator does not allow it"), "{err}");
    // The operator's flag alone is not enough.
    env.script("victim", "0.3.0", drop, None);
    let out = env.run(&["up", "victim@0.3.0", "--allow-destructive"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the plugin does not mark it") && !err.contains("operator"),
        "{err}"
    );
    // The mark alone is not enough either.
    let marked = format!("{MARK}{drop}");
    let err = env.refused("victim", "0.3.0", &marked, "the operator does not allow it");
    assert!(!err.contains("does not mark"), "{err}");
    assert_eq!(env.rows("SELECT count(*) FROM victim__item"), ["2"]);
    // Both: it runs, and the ledger says why.
    env.script("victim", "0.3.0", &marked, None);
    env.ok(&["up", "victim@0.3.0", "--allow-destructive"]);
    assert!(!env.tables().contains(&"victim__item".to_string()));
    let note = env.rows(
        "SELECT note FROM _wasmig_ledger WHERE plugin = 'victim' AND version = '0.3.0' \
         AND outcome = 'succeeded'",
    );
    assert_eq!(
        note,
        ["destructive (drops table victim__item): marked by the plugin, allowed by the operator"]
    );
}

#[test]
fn the_policy_file_allows_one_plugins_destructive_steps() {
    let env = with_rows();
    env.policy("[plugins.victim]\nallow_destructive = true\n");
    env.applies(
        "victim",
        "0.3.0",
        &format!("{MARK}ALTER TABLE victim__item DROP COLUMN note"),
    );
    // Another plugin is not allowed by it.
    env.applies("attacker", "0.2.0", "CREATE TABLE attacker__t (x)");
    env.refused(
        "attacker",
        "0.3.0",
        &format!("{MARK}DROP TABLE attacker__t"),
        "the operator does not allow it",
    );
}

#[test]
fn the_gate_reads_every_statement_not_only_those_the_audit_trail_keeps() {
    // 20,000 distinct inserts, one call each, fill the audit trail's mebibyte; the
    // statement that drops a column comes after them, and so does the rename that keeps one.
    let env = with_rows();
    let seed: String = (100..20_100)
        .map(|i| format!("INSERT INTO victim__item VALUES ({i}, 'seeded row {i}', 'x')\n-- next\n"))
        .collect();
    let err = env.refused(
        "victim",
        "0.3.0",
        &format!("-- each\n{seed}ALTER TABLE victim__item DROP COLUMN note"),
        "it drops column victim__item.note",
    );
    assert!(err.contains("destructive step refused"), "{err}");
    env.applies(
        "victim",
        "0.3.0",
        &format!("-- each\n{seed}ALTER TABLE victim__item RENAME COLUMN note TO remark"),
    );
    let trail: String = env.value(
        "SELECT statements FROM _wasmig_ledger WHERE plugin = 'victim' AND version = '0.3.0' \
         AND outcome = 'succeeded'",
    );
    assert!(
        trail.contains("more statements not recorded from here on"),
        "{}",
        &trail[trail.len() - 300..]
    );
}

#[test]
fn what_destroys_data_is_found_and_what_keeps_it_is_not() {
    let env = with_rows();
    for (up, destroys) in [
        (
            "ALTER TABLE victim__item DROP COLUMN note",
            "drops column victim__item.note",
        ),
        // SQLite's documented rebuild, with a column fewer.
        (
            "CREATE TABLE victim__new (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO victim__new SELECT id, name FROM victim__item;
             DROP TABLE victim__item; ALTER TABLE victim__new RENAME TO victim__item",
            "drops column victim__item.note",
        ),
        (
            "DELETE FROM victim__item",
            "deletes every row of victim__item",
        ),
        (
            "UPDATE victim__item SET note = NULL",
            "rewrites every row of victim__item",
        ),
        ("DROP TABLE victim__item", "drops table victim__item"),
    ] {
        env.refused("victim", "0.3.0", up, &format!("it {destroys}"));
    }
    // Renames, a rebuild that keeps every column, and changes of some rows keep the data.
    env.applies(
        "victim",
        "0.3.0",
        "ALTER TABLE victim__item RENAME COLUMN note TO remark;
         ALTER TABLE victim__item RENAME TO victim__thing;
         CREATE TABLE victim__new (id INTEGER PRIMARY KEY, name TEXT NOT NULL, remark TEXT);
         INSERT INTO victim__new SELECT id, name, remark FROM victim__thing;
         DROP TABLE victim__thing; ALTER TABLE victim__new RENAME TO victim__thing;
         DELETE FROM victim__thing WHERE id = 2; UPDATE victim__thing SET remark = 'z' WHERE id = 1",
    );
    assert_eq!(
        env.rows("SELECT id, name, remark FROM victim__thing"),
        ["1|a|z"]
    );
}

#[test]
fn plan_shows_what_a_step_destroys_and_down_needs_no_flag() {
    let env = with_rows();
    env.script(
        "victim",
        "0.3.0",
        &format!("{MARK}DROP TABLE victim__item"),
        Some("CREATE TABLE victim__item (id INTEGER PRIMARY KEY, name TEXT, note TEXT)"),
    );
    let plan = env.run(&["plan", "victim@0.3.0"]);
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        out.contains("destructive: it drops table victim__item"),
        "{out}"
    );
    assert!(out.contains("would fail"), "{out}");
    let plan = env.run(&["plan", "victim@0.3.0", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(
        plan["steps"][0]["destructive"],
        serde_json::json!(["drops table victim__item"]),
        "{plan}"
    );
    // Allowed, applied, and rolled back: its down step makes the table again.
    env.ok(&["up", "victim@0.3.0", "--allow-destructive"]);
    env.ok(&["down", "victim", "--steps", "1"]);
    assert!(env.tables().contains(&"victim__item".to_string()));
    // A down step that drops a table needs no flag: `down` is destructive by definition.
    env.script(
        "victim",
        "0.3.0",
        "CREATE TABLE victim__extra (x)",
        Some("DROP TABLE victim__extra"),
    );
    env.ok(&["up", "victim@0.3.0"]);
    env.ok(&["down", "victim", "--steps", "1"]);
    assert!(!env.tables().contains(&"victim__extra".to_string()));
}

#[test]
fn what_a_refused_statement_names_is_not_written_down_as_destroyed() {
    // A statement the host refuses destroys nothing, whatever its text names: the gate counts
    // what a statement destroys only once it did not fail, and the audit trail marks it.
    let env = with_rows();
    env.script(
        "attacker",
        "0.2.0",
        &format!(
            "-- each\n-- caught\nDELETE FROM victim__item {MARK}-- next\n-- caught\n\
             DROP TABLE victim__item\n-- next\nCREATE TABLE attacker__t (x UNIQUE)\n-- next\n\
             -- caught\nINSERT INTO attacker__t VALUES (1)\n-- next\n-- caught\n\
             INSERT INTO attacker__t VALUES (1)\n-- next\n-- caught\n\
             INSERT INTO attacker__t VALUES (1)\n-- next\n-- caught\n\
             INSERT INTO attacker__nowhere VALUES (1)"
        ),
        None,
    );
    let out = env.run(&["up", "attacker@0.2.0", "--allow-destructive"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let note: Option<String> = env
        .value("SELECT note FROM _wasmig_ledger WHERE plugin = 'attacker' AND version = '0.2.0'");
    assert!(
        !note.as_deref().unwrap_or_default().contains("victim__item"),
        "{note:?}"
    );
    let trail: String = env.value(
        "SELECT statements FROM _wasmig_ledger WHERE plugin = 'attacker' AND version = '0.2.0'",
    );
    let trail: Vec<String> = serde_json::from_str(&trail).unwrap();
    assert_eq!(
        trail,
        [
            "SELECT up FROM attacker__script WHERE version = ?1",
            "DELETE FROM victim__item -- wasmig:destructive -- failed",
            "DROP TABLE victim__item -- failed",
            "CREATE TABLE attacker__t (x UNIQUE)",
            "INSERT INTO attacker__t VALUES (1)",
            "INSERT INTO attacker__t VALUES (1) -- failed",
            "INSERT INTO attacker__t VALUES (1) -- failed",
            "INSERT INTO attacker__nowhere VALUES (1) -- failed",
        ],
        "{trail:?}"
    );
    assert_eq!(env.rows("SELECT id FROM victim__item"), ["1", "2"]);
}

#[test]
fn a_statement_that_fails_after_changing_rows_still_counts() {
    // SQLite keeps the rows a statement changed before its error under `OR FAIL` and a
    // trigger's `RAISE(FAIL)`, and a `RETURNING` statement has made all its changes before
    // the host finds its rows past the result cap: the plugin can drop the error and go on,
    // so such a statement counts for the gate, and its trail entry says what happened.
    let env = scripted();
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__d (x);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000)
         INSERT INTO attacker__d SELECT i FROM c;
         CREATE TABLE attacker__e (x CHECK (x <> -1999));
         INSERT INTO attacker__e SELECT x FROM attacker__d WHERE x < 2000;
         CREATE TABLE attacker__f (x);
         INSERT INTO attacker__f SELECT x FROM attacker__d;
         CREATE TRIGGER attacker__stop BEFORE DELETE ON attacker__f WHEN old.x = 2000
         BEGIN SELECT RAISE(FAIL, 'stop'); END",
    );
    for (statement, destroyed) in [
        (
            // 2,000 rows of 60,000 bytes: past the 64 MiB a query may return.
            "-- query\nDELETE FROM attacker__d RETURNING printf('%.60000c', 'x')",
            "deletes every row of attacker__d",
        ),
        (
            "DELETE FROM attacker__f",
            "deletes every row of attacker__f",
        ),
        (
            "UPDATE OR FAIL attacker__e SET x = -x",
            "rewrites every row of attacker__e",
        ),
    ] {
        let err = env.refused(
            "attacker",
            "0.3.0",
            &format!("-- each\n-- caught\n{statement}\n-- next\n-- query\nSELECT 1"),
            destroyed,
        );
        assert!(err.contains("destructive step refused"), "{err}");
        let trail: String = env.value(
            "SELECT statements FROM _wasmig_ledger WHERE plugin = 'attacker' \
             AND version = '0.3.0' ORDER BY id DESC LIMIT 1",
        );
        assert!(trail.contains("-- failed after changing rows"), "{trail}");
    }
}
