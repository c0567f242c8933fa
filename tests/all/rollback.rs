//! `down` and `uninstall`: down steps newest first, each in its own transaction, recorded;
//! refused before anything runs when they cannot work; run from the stored component.

use crate::on_both;
use crate::support::{Env, artifacts};

fn migrated(env: Env) -> Env {
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOTES, "notes.wasm");
    env.ok(&["up"]);
    env
}

fn applied(env: &Env, plugin: &str) -> Vec<String> {
    env.rows(&format!(
        "SELECT version FROM {} WHERE plugin = '{plugin}' ORDER BY version",
        env.host_table("applied")
    ))
}

fn ledger_tail(env: &Env, n: usize) -> Vec<String> {
    let ledger = env.ledger();
    ledger[ledger.len() - n..]
        .iter()
        .map(|(p, v, d, o, _)| format!("{p} {v} {d} {o}"))
        .collect()
}

on_both! {
    fn down_to_a_version_runs_down_steps_newest_first(env) {
        let env = migrated(env);
        let out = env.ok(&["down", "notes", "--to", "0.1.0"]);
        assert!(out.contains("Rolled back 2 step(s)"), "{out}");
        assert_eq!(
            ledger_tail(&env, 2),
            ["notes 0.3.0 down succeeded", "notes 0.2.0 down succeeded"]
        );
        let tables = env.tables();
        assert!(tables.contains(&"notes__note".to_string()));
        assert!(!tables.contains(&"notes__tag".to_string()));
        assert!(!tables.contains(&"notes__stats".to_string()));
        assert_eq!(applied(&env, "notes"), ["0.1.0"]);

        // And forward again.
        env.ok(&["up"]);
        assert_eq!(applied(&env, "notes"), ["0.1.0", "0.2.0", "0.3.0"]);
        assert!(env.tables().contains(&"notes__stats".to_string()));
    }
}

on_both! {
    fn down_by_steps(env) {
        let env = migrated(env);
        env.ok(&["down", "notes", "--steps", "1"]);
        assert_eq!(applied(&env, "notes"), ["0.1.0", "0.2.0"]);
        assert_eq!(ledger_tail(&env, 1), ["notes 0.3.0 down succeeded"]);
    }
}

on_both! {
    fn a_step_without_down_refuses_before_anything_runs(env) {
        env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
        env.add(artifacts::FAILING, "failing.wasm");
        env.fails(&["up"]);
        let before = env.dump();
        let err = env.fails(&["uninstall", "failing"]);
        assert!(
            err.contains("plugin failing migration 0.1.0 has no down step"),
            "{err}"
        );
        assert_eq!(env.dump(), before);
    }
}

on_both! {
    fn breaking_a_dependent_is_refused_naming_both(env) {
        let env = migrated(env);
        let before = env.dump();
        let err = env.fails(&["down", "accounts", "--to", "0.1.0"]);
        assert!(
            err.contains(
                "plugin notes requires accounts ^0.2, and rolling accounts back would leave it at 0.1.0"
            ),
            "{err}"
        );
        assert!(err.contains("--cascade"), "{err}");
        assert_eq!(env.dump(), before, "nothing ran");
    }
}

on_both! {
    fn cascade_rolls_dependents_back_first(env) {
        let env = migrated(env);
        env.ok(&["down", "accounts", "--to", "0.1.0", "--cascade"]);
        assert_eq!(
            ledger_tail(&env, 4),
            [
                "notes 0.3.0 down succeeded",
                "notes 0.2.0 down succeeded",
                "notes 0.1.0 down succeeded",
                "accounts 0.2.0 down succeeded",
            ]
        );
        assert!(applied(&env, "notes").is_empty());
        assert_eq!(applied(&env, "accounts"), ["0.1.0"]);
        let tables = env.tables();
        assert!(
            !tables.iter().any(|t| t.starts_with("notes__")),
            "{tables:?}"
        );
        assert!(!tables.contains(&"accounts__role".to_string()));
    }
}

on_both! {
    fn uninstall_removes_everything_of_one_plugin(env) {
        let env = migrated(env);
        env.ok(&["uninstall", "notes"]);
        assert!(applied(&env, "notes").is_empty());
        let tables = env.tables();
        assert!(
            !tables.iter().any(|t| t.starts_with("notes__")),
            "{tables:?}"
        );
        assert!(tables.contains(&"accounts__role".to_string()));
        let status = env.json(&["status"]);
        let notes = status
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "notes")
            .unwrap();
        assert_eq!(notes["pending"], 3);
    }
}

on_both! {
    fn uninstall_names_what_the_plugins_down_steps_left(env) {
        // Down steps that undo nothing: the ledger says no step is applied, the objects stay
        // (they are the plugin's data; wasmig drops nothing a down step did not), and the
        // operator is told which, before a reinstall runs into them.
        env.add(artifacts::ATTACKER, "attacker.wasm");
        env.ok(&["up", "attacker@0.1.0"]);
        env.script(
            "attacker",
            "0.2.0",
            "CREATE TABLE attacker__kept (x int PRIMARY KEY, y text); \
             CREATE INDEX attacker__kept_y ON attacker__kept (y); \
             CREATE VIEW attacker__seen AS SELECT x FROM attacker__kept",
            None,
        );
        env.ok(&["up", "attacker@0.2.0"]);
        let out = env.run(&["uninstall", "attacker"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(applied(&env, "attacker").is_empty());
        assert!(
            err.contains("warning: plugin attacker has no step applied, but its down steps left")
                && err.contains("index attacker__kept_y")
                && err.contains("table attacker__kept")
                && err.contains("view attacker__seen")
                && !err.contains("attacker__script"),
            "{err}"
        );
        // Nothing left, nothing said.
        env.exec("DROP VIEW attacker__seen; DROP TABLE attacker__kept");
        env.ok(&["up", "attacker@0.1.0"]);
        let out = env.run(&["uninstall", "attacker"]);
        assert!(out.status.success());
        assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
        // With --cascade, each plugin rolled back whole is looked at: here a dependent, in
        // whose namespace the application made a table of its own.
        let env = migrated(env);
        match &env.pg {
            // On PostgreSQL a plugin's schema holds only what its role owns.
            Some(pg) => env.exec(&format!(
                "SET ROLE \"wasmig/{}/notes\"; CREATE TABLE notes.notes__extra (x int); \
                 RESET ROLE",
                pg.name
            )),
            None => env.exec("CREATE TABLE notes__extra (x int)"),
        }
        let out = env.run(&["uninstall", "accounts", "--cascade"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains("warning: plugin notes has no step applied")
                && err.contains("table notes__extra")
                && !err.contains("plugin accounts has"),
            "{err}"
        );
    }
}

#[test]
fn uninstall_names_every_kind_of_object_a_plugins_role_may_make_on_postgresql() {
    // Not only relations and functions: a schema holds types of every kind, operators,
    // collations, extended statistics, text search objects and conversions.
    let env = Env::postgres();
    env.add(artifacts::ATTACKER, "attacker.wasm");
    env.ok(&["up", "attacker@0.1.0"]);
    env.script(
        "attacker",
        "0.2.0",
        "CREATE TYPE attacker__pair AS (a int, b text); \
         CREATE TYPE attacker__mood AS ENUM ('ok', 'sad'); \
         CREATE COLLATION attacker__coll (locale = 'C'); \
         CREATE TABLE attacker__t (a int, b int); \
         CREATE STATISTICS attacker__st ON a, b FROM attacker__t; \
         CREATE TEXT SEARCH CONFIGURATION attacker__cfg (COPY = pg_catalog.simple); \
         CREATE TEXT SEARCH DICTIONARY attacker__dict (TEMPLATE = pg_catalog.simple); \
         CREATE FUNCTION attacker__same(attacker__pair, attacker__pair) RETURNS boolean \
           LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2'; \
         CREATE OPERATOR === (LEFTARG = attacker__pair, RIGHTARG = attacker__pair, \
           FUNCTION = attacker__same); \
         CREATE CONVERSION attacker__conv FOR 'LATIN1' TO 'UTF8' FROM pg_catalog.iso8859_1_to_utf8",
        None,
    );
    env.ok(&["up", "attacker@0.2.0"]);
    let lines = env.json_lines(&["uninstall", "attacker"]);
    let left = lines
        .iter()
        .find(|l| l["event"] == "left_behind")
        .unwrap_or_else(|| panic!("{lines:?}"));
    let objects: Vec<&str> = left["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    for expected in [
        "type attacker__pair",
        "type attacker__mood",
        "collation attacker__coll",
        "table attacker__t",
        "statistics attacker__st",
        "text search configuration attacker__cfg",
        "text search dictionary attacker__dict",
        "function attacker.attacker__same",
        "operator attacker.===",
        "conversion attacker__conv",
    ] {
        assert!(objects.contains(&expected), "{expected}: {objects:?}");
    }
}

on_both! {
    fn rollback_works_after_the_file_is_removed(env) {
        let env = migrated(env);
        env.remove("notes.wasm");
        env.ok(&["uninstall", "notes"]);
        assert!(!env.tables().iter().any(|t| t.starts_with("notes__")));
    }
}

on_both! {
    fn rollback_uses_the_component_that_applied_each_step(env) {
        // accounts 0.1.0 is applied by the old file, 0.2.0 by the new one; then the file is
        // replaced by the old version again, which knows nothing of 0.2.0's down step.
        env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
        env.ok(&["up"]);
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.ok(&["up"]);
        env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
        env.ok(&["uninstall", "accounts"]);
        assert!(applied(&env, "accounts").is_empty());
        assert!(!env.tables().iter().any(|t| t.starts_with("accounts__")));
        let history = env.json(&["history", "accounts"]);
        let rows = history.as_array().unwrap();
        let sha = |i: usize| rows[i]["component_sha256"].as_str().unwrap().to_string();
        // up 0.1.0 (v1), up 0.2.0 (v2), down 0.2.0 (v2), down 0.1.0 (v1)
        assert_eq!(rows.len(), 4);
        assert_ne!(sha(0), sha(1));
        assert_eq!(sha(2), sha(1));
        assert_eq!(sha(3), sha(0));
    }
}

on_both! {
    fn down_of_an_unknown_plugin_is_a_clear_error(env) {
        let env = migrated(env);
        let err = env.fails(&["down", "nobody", "--steps", "1"]);
        assert!(
            err.contains("plugin nobody has no applied migrations"),
            "{err}"
        );
    }
}
