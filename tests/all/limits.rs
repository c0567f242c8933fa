//! Bounds on every call: deadline, memory, stack, query size, database growth, log output.
//! Each runaway plugin is stopped, its step rolled back and recorded with a cause a person
//! understands, and the host carries on.

use crate::hostile::{armed, armed_on, attack_fails, attack_fails_on};
use crate::on_both;
use crate::support::artifacts::{self, HOSTILE};

on_both! {
    fn an_infinite_loop_hits_the_deadline(env) {
        let err = attack_fails_on(
            env,
            HOSTILE,
            "infinite-loop",
            &["--deadline", "1s"],
            "exceeded its 1s deadline",
        );
        assert!(
            err.contains("plugin evil 0.2.0 exceeded its 1s deadline"),
            "{err}"
        );
    }
}

#[test]
fn an_infinite_sql_statement_hits_the_deadline() {
    // SQLite's progress handler interrupts the statement at the deadline; the plugin passes
    // the error on, unless the epoch deadline catches it first on its way back into wasm.
    let err = attack_fails("infinite-sql", &["--deadline", "1s"], "deadline");
    assert!(
        err.contains("still running at the step's deadline")
            || err.contains("exceeded its 1s deadline"),
        "{err}"
    );
}

on_both! {
    fn the_deadline_comes_from_the_policy_file_too(env) {
        let env = armed_on(env, HOSTILE, "infinite-loop");
        env.policy("[limits]\ndeadline = \"1500ms\"\n");
        let err = env.fails(&["up"]);
        assert!(err.contains("exceeded its 1s 500ms deadline"), "{err}");
    }
}

on_both! {
    fn a_memory_bomb_hits_the_memory_cap(env) {
        let err = attack_fails_on(
            env,
            HOSTILE,
            "memory-bomb",
            &[],
            "exceeded its memory limit of 256 MiB",
        );
        assert!(!err.contains("wasm backtrace"), "{err}");
    }
}

on_both! {
    fn deep_recursion_overflows_the_stack_safely(env) {
        attack_fails_on(env, HOSTILE, "deep-recursion", &[], "overflowed its stack");
    }
}

#[test]
fn a_huge_query_result_is_refused() {
    attack_fails(
        "huge-result",
        &[],
        "larger than the 64 MiB a query may return",
    );
}

on_both! {
    fn a_result_of_many_small_rows_is_counted_as_the_host_holds_it(env) {
        // 8 million one-integer rows are 64 MB of integers, and several times that on the
        // host: the cap counts what the host holds, so the query is refused.
        attack_fails_on(
            env,
            HOSTILE,
            "many-small-rows",
            &[],
            "larger than the 64 MiB a query may return",
        );
    }
}

on_both! {
    fn a_parameter_list_longer_than_a_statement_binds_is_refused_before_it_is_lifted(env) {
        attack_fails_on(
            env,
            HOSTILE,
            "many-params",
            &[],
            "a statement takes at most 32766 parameters, got 100000",
        );
    }
}

#[test]
fn sqlite_cannot_hold_a_row_of_many_large_values() {
    // Twelve 16 MB values in one row: SQLite computes them all before the host reads one.
    attack_fails(
        "wide-row",
        &[],
        "needed more than the 64 MiB of SQLite's memory a step may use",
    );
}

on_both! {
    fn the_audit_trail_of_a_step_is_bounded(env) {
        let env = armed_on(env, HOSTILE, "audit-flood");
        env.ok(&["up"]);
        let statements = env
            .rows(&format!(
                "SELECT statements FROM {} WHERE plugin = 'evil' AND version = '0.2.0'",
                env.host_table("ledger")
            ))
            .concat();
        assert!(
            statements.len() < (1 << 20) + (64 << 10),
            "{}",
            statements.len()
        );
        assert!(
            statements.contains(
                "more statements not recorded from here on: the audit trail keeps 1 MiB per step"
            ),
            "{}",
            &statements[statements.len() - 200..]
        );
    }
}

#[test]
fn filling_the_disk_hits_the_growth_quota() {
    let env = armed("disk-filler");
    env.policy("[limits]\nmax_growth = \"8MiB\"\n");
    let size_before = std::fs::metadata(&env.db).unwrap().len();
    let err = env.fails(&["up"]);
    assert!(
        err.contains("grew the database past its quota of 8 MiB"),
        "{err}"
    );
    assert!(!env.tables().contains(&"evil__fill".to_string()));
    // Rolled back: the file may keep free pages, but not the gigabytes the attack asked for.
    assert!(std::fs::metadata(&env.db).unwrap().len() < size_before + (16 << 20));
}

on_both! {
    fn a_log_flood_is_bounded(env) {
        let env = armed_on(env, HOSTILE, "log-flood");
        let out = env.run(&["up"]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("flood done"),
            "{}",
            &stderr[stderr.len().saturating_sub(2000)..]
        );
        // A million log messages and 200,000 lines of stdout/stderr, kept to a few budgets.
        assert!(
            stderr.len() < 1 << 20,
            "wasmig printed {} bytes",
            stderr.len()
        );
        let ledger = env.ledger();
        let error = ledger.last().unwrap().4.as_deref().unwrap();
        assert!(
            error.len() < 8 << 10,
            "the ledger row holds {} bytes",
            error.len()
        );
    }
}

#[test]
fn both_compilers_enforce_the_bounds() {
    // `auto` runs a plugin first seen with Winch and a precompiled one with Cranelift: the
    // bounds must not depend on which compiler produced the code.
    let compilers: &[&str] = if cfg!(target_arch = "x86_64") {
        &["cranelift", "winch"]
    } else {
        &["cranelift"]
    };
    for &c in compilers {
        attack_fails(
            "infinite-loop",
            &["--compiler", c, "--deadline", "1s"],
            "exceeded its 1s deadline",
        );
        attack_fails(
            "memory-bomb",
            &["--compiler", c],
            "exceeded its memory limit of 256 MiB",
        );
        attack_fails("deep-recursion", &["--compiler", c], "overflowed its stack");
    }
}

on_both! {
    fn a_scripts_rows_are_read_to_the_end_and_dropped_not_held_against_the_result_cap(env) {
        // `max_result` bounds what a `query` returns to the plugin; a script's statements run
        // to their end and their rows are dropped as they come, on both databases.
        env.policy("[limits]\nmax_result = \"1MiB\"\n");
        env.add(crate::support::artifacts::VICTIM, "victim.wasm");
        env.ok(&["up", "victim@0.1.0"]);
        env.exec(
            "INSERT INTO victim__script (version, up) VALUES ('0.2.0', \
             'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) \
              SELECT x, ''a row of the script that the step reads and drops'' FROM c; \
              CREATE TABLE victim__after (x integer)')",
        );
        env.ok(&["up", "victim@0.2.0"]);
        assert_eq!(env.rows("SELECT count(*) FROM victim__after"), ["0"]);
    }
}

#[test]
fn views_whose_compilation_needs_more_than_the_steps_sqlite_memory_are_refused() {
    // Each chain of views expands to about 65,000 copies of its innermost one when a
    // statement reads it: millions of small parse-tree blocks, which SQLite makes when the
    // step's check compiles the top view. They count against the step's 64 MiB as large
    // blocks do.
    let env = crate::scripted::scripted();
    let mut script = Vec::new();
    let refs = |view: &str, n: usize| {
        (0..n)
            .map(|j| format!("attacker__{view} a{j}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for i in 0..3 {
        script.push(format!(
            "CREATE VIEW attacker__l{i} AS SELECT 1 AS x LIMIT 1"
        ));
        for (view, under, n) in [("m", "l", 60), ("n", "m", 60), ("o", "n", 18)] {
            script.push(format!(
                "CREATE VIEW attacker__{view}{i} AS SELECT a0.x FROM {} LIMIT 1",
                refs(&format!("{under}{i}"), n)
            ));
        }
    }
    script.push(format!(
        "CREATE VIEW attacker__a_top AS SELECT {}",
        (0..3)
            .map(|i| format!("(SELECT x FROM attacker__o{i}) AS c{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    env.refused(
        "attacker",
        "0.2.0",
        &script.join(";\n"),
        "64 MiB of SQLite's memory a step may use",
    );
}

#[test]
fn tables_made_from_selects_do_not_pile_up_in_the_host_step_after_step() {
    // Each statement is first compiled in a schema of the plugin's reach alone, kept in step
    // with the database. A table made from a select is not made there (its rows would be),
    // after an empty statement too, and that schema lives for one step. Five steps of 40 MB
    // each: the host holds one at a time.
    let env = crate::scripted::scripted();
    for (n, version) in ["0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0"]
        .iter()
        .enumerate()
    {
        env.script(
            "attacker",
            version,
            &format!(
                ";CREATE TABLE attacker__big{n} AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 40000) SELECT randomblob(1000) AS b FROM c"
            ),
            None,
        );
    }
    let (status, peak_kib) = env.peak_memory(&["up", "attacker@0.6.0"]);
    assert!(status.success());
    assert_eq!(
        env.value::<i64>("SELECT count(*) FROM attacker__big4"),
        40_000
    );
    assert!(
        peak_kib < 150 * 1024,
        "the host peaked at {} MiB",
        peak_kib / 1024
    );
}

#[test]
fn the_samples_the_applications_analyze_keeps_of_a_plugins_index_are_not_loaded_by_the_host() {
    // The application's ANALYZE keeps up to 24 whole keys of each index in `sqlite_stat4`,
    // and a connection that uses them loads them all with the schema: keys of 4 MB that a
    // plugin's index expression makes are 96 MB in every such connection.
    let env = crate::scripted::scripted();
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__s (id INTEGER PRIMARY KEY);
         CREATE INDEX attacker__si ON attacker__s (zeroblob(4000000) || id);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 25)
         INSERT INTO attacker__s SELECT i FROM n",
    );
    env.conn().execute_batch("ANALYZE").unwrap();
    assert!(env.value::<i64>("SELECT sum(length(sample)) FROM sqlite_stat4") > 90_000_000);
    let (status, peak_kib) = env.peak_memory(&["status"]);
    assert!(status.success());
    assert!(
        peak_kib < 64 * 1024,
        "the host peaked at {} MiB",
        peak_kib / 1024
    );
    // Nor does the copy of the database that the web page's plan runs on.
    let served = crate::serve::Served::start(&env, &[]);
    assert!(!served.json("/api/plan").to_string().is_empty());
    let peak_kib = served.peak_kib();
    assert!(
        peak_kib < 64 * 1024,
        "the server peaked at {} MiB",
        peak_kib / 1024
    );
}

/// A script of 100 indexes that each name one column 16 times, then that column renamed to a
/// name of 60,000 bytes: SQLite rewrites every index's definition, ≈ 94 MB of them, within
/// its own memory bound (each definition is under its statement length limit), and
/// `then` after it if not empty.
fn definitions_made_large(then: &str) -> String {
    let mut script = vec!["CREATE TABLE attacker__t (a)".to_string()];
    script.extend((0..100).map(|k| {
        format!(
            "CREATE INDEX attacker__i{k} ON attacker__t ({})",
            vec!["a"; 16].join(", ")
        )
    }));
    script.push(format!(
        "ALTER TABLE attacker__t RENAME COLUMN a TO \"{}\"",
        "b".repeat(60_000)
    ));
    if !then.is_empty() {
        script.push(then.to_string());
    }
    script.join(";\n")
}

/// The host reads a plugin's definitions (after a step, and during one to compile its next
/// statement against them) only up to three times its quota: definitions a step made large, within
/// SQLite's memory bound, are not copied whole into the host's memory first.
#[test]
fn definitions_a_step_makes_large_are_refused_before_the_host_holds_them() {
    for (then, expected) in [
        // Read after the step.
        (
            "",
            "the step left plugin attacker's objects (main and TEMP) with more than",
        ),
        // Read during the step: the next statement is compiled against the plugin's objects.
        (
            "CREATE TABLE attacker__next (x)",
            "names and definitions when its next statement was compiled, past the 3072 KiB \
             of them the host reads for a step",
        ),
    ] {
        let env = crate::scripted::scripted();
        env.script("attacker", "0.2.0", &definitions_made_large(then), None);
        let (status, peak_kib) = env.peak_memory(&["up", "attacker@0.2.0"]);
        assert!(!status.success());
        // The step's own statements stay within SQLite's 64 MiB; the definitions they left
        // (≈ 94 MB, several copies of them once read) never reach the host.
        assert!(
            peak_kib < 160 * 1024,
            "{then}: the host peaked at {} MiB",
            peak_kib / 1024
        );
        let (plugin, version, _, outcome, error) = env.ledger().pop().unwrap();
        assert_eq!(
            (plugin.as_str(), version.as_str(), outcome.as_str()),
            ("attacker", "0.2.0", "failed")
        );
        let error = error.unwrap_or_default();
        assert!(error.contains(expected), "{then}: {error}");
        assert!(
            error.contains(
                "past the 3072 KiB of them the host reads for a step (max_schema in [limits] \
                 is 1024 KiB)"
            ),
            "{then}: {error}"
        );
        assert_eq!(
            env.value::<i64>("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'attacker__%'"),
            1,
            "{then}: only the script table is left"
        );
        assert_eq!(env.value::<String>("PRAGMA integrity_check"), "ok");
    }
}

#[test]
fn a_plugins_error_of_any_size_is_kept_short() {
    // An error's size is the plugin's to choose (here a name of a megabyte, repeated in
    // SQLite's message): the ledger, the terminal and the report keep its first 16 KiB.
    let env = crate::scripted::scripted();
    let name = format!("attacker__{}", "x".repeat(1_000_000));
    env.script(
        "attacker",
        "0.2.0",
        &format!("-- query\nSELECT * FROM {name}"),
        None,
    );
    let out = env.run(&["up", "attacker@0.2.0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.len() < 100_000,
        "{} bytes on stderr",
        out.stderr.len()
    );
    let error: String = env
        .value("SELECT error FROM _wasmig_ledger WHERE plugin = 'attacker' AND version = '0.2.0'");
    assert!(
        error.len() < 17 * 1024,
        "{} bytes in the ledger",
        error.len()
    );
    assert!(error.contains("more bytes left out"), "{error:.200}");
}

/// Every connection to a SQLite database parses the whole schema and keeps it, at many times
/// its text's size: a plugin's definitions (a check of a long list, say) are bounded in all,
/// whatever each step adds (`max_schema`).
#[test]
fn a_plugins_definitions_are_bounded_in_all() {
    let env = crate::scripted::scripted();
    env.policy("[limits]\nmax_schema = \"256KiB\"\n");
    let table = |n| long_check_table(n, 20_000);
    env.applies("attacker", "0.2.0", &table(1));
    env.applies("attacker", "0.3.0", &table(2));
    env.refused(
        "attacker",
        "0.4.0",
        &table(3),
        "past its quota of 256 KiB (max_schema in [limits])",
    );
    assert!(
        env.ok(&["policy"])
            .contains("Definitions per plugin: 256 KiB.")
    );
    // With room enough, the same step applies.
    env.policy("[limits]\nmax_schema = \"1MiB\"\n");
    env.applies("attacker", "0.4.0", &table(3));
}

/// A table of plugin `attacker` with a check of a list of `values` numbers (20,000 take
/// ≈ 109 KB, 5,000 ≈ 24 KB).
fn long_check_table(n: u32, values: u32) -> String {
    let values: Vec<String> = (0..values).map(|i| i.to_string()).collect();
    format!(
        "CREATE TABLE attacker__t{n} (x CHECK (x IN ({})))",
        values.join(", ")
    )
}

/// The host reads a plugin's objects during a step up to three times its quota, or three
/// times what the plugin had before the step: a plugin past a quota lowered since can still
/// shrink, one statement after another.
#[test]
fn a_plugin_past_a_quota_lowered_since_can_still_shrink() {
    let env = crate::scripted::scripted();
    for n in 1..=4 {
        env.applies(
            "attacker",
            &format!("0.{}.0", n + 1),
            &long_check_table(n, 5_000),
        );
    }
    // ≈ 96 KB of definitions, three times the new quota.
    env.policy("[limits]\nmax_schema = \"32KiB\"\n[plugins.attacker]\nallow_destructive = true\n");
    env.applies(
        "attacker",
        "0.6.0",
        // A table made from a select is not made in the shadow schema: the next statement
        // is compiled against the plugin's objects read again from the database.
        "-- wasmig:destructive\n\
         CREATE TABLE attacker__c AS SELECT 1 AS x; \
         DROP TABLE attacker__t2; DROP TABLE attacker__t3; DROP TABLE attacker__t4",
    );
    assert_eq!(
        env.value::<i64>("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'attacker__t_'"),
        1
    );
}

/// SQLite's documented table rebuild of a plugin's largest table, with a TEMP backup of it
/// made from a select, holds three copies of its definition at once: it applies, its quota
/// a little over the table's size.
#[test]
fn a_table_near_the_quota_can_be_rebuilt_with_a_backup() {
    let env = crate::scripted::scripted();
    env.policy("[limits]\nmax_schema = \"8KiB\"\n[plugins.attacker]\nallow_destructive = true\n");
    let columns: Vec<String> = (0..240)
        .map(|i| format!("column_number_{i:04} TEXT"))
        .collect();
    let columns = columns.join(", ");
    env.applies(
        "attacker",
        "0.2.0",
        &format!(
            "CREATE TABLE attacker__x ({columns}); \
             INSERT INTO attacker__x (column_number_0000) VALUES ('kept')"
        ),
    );
    // The backup by a select makes the next statement compile against the plugin's objects
    // read from the database: the old table, the new one and the backup.
    env.applies(
        "attacker",
        "0.3.0",
        &format!(
            "-- wasmig:destructive\n\
             CREATE TABLE attacker__x_new ({columns}, extra TEXT); \
             CREATE TEMP TABLE attacker__bak AS SELECT * FROM attacker__x; \
             INSERT INTO attacker__x_new SELECT *, NULL FROM attacker__bak; \
             DROP TABLE attacker__x; \
             ALTER TABLE attacker__x_new RENAME TO attacker__x; \
             DROP TABLE attacker__bak"
        ),
    );
    assert_eq!(
        env.value::<String>("SELECT column_number_0000 FROM attacker__x"),
        "kept"
    );
}

#[test]
fn a_plugins_table_has_at_most_64_indexes() {
    // Parsing a table's definition compares each UNIQUE constraint with the indexes before
    // it: thousands in a hundred kilobytes cost every connection to the database a second.
    let env = crate::scripted::scripted();
    let table = |name: &str, unique: u32, indexes: u32| {
        let columns: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let constraints: Vec<String> = (0..unique)
            .map(|i| format!("UNIQUE (c{}, c{})", i % 20, (i / 20) % 20))
            .collect();
        let mut sql = format!(
            "CREATE TABLE attacker__{name} (id INTEGER PRIMARY KEY, {}{}{});",
            columns.join(", "),
            if unique > 0 { ", " } else { "" },
            constraints.join(", ")
        );
        for i in 0..indexes {
            sql.push_str(&format!(
                "CREATE INDEX attacker__{name}_{i} ON attacker__{name} (c{}, c{});",
                i % 20,
                (i + 1) % 20
            ));
        }
        sql
    };
    env.applies("attacker", "0.2.0", &table("a", 32, 32));
    let err = env.refused(
        "attacker",
        "0.3.0",
        &table("b", 60, 5),
        "table attacker__b with 65 indexes",
    );
    assert!(err.contains("past 64"), "{err}");
}

#[test]
fn a_plugins_columns_times_the_names_its_definitions_look_up_are_bounded() {
    // Parsing a table's definition looks each name of its checks up among its columns, one
    // after another, comparing a one-byte hash anyone can make collide: a wide table with a
    // check of a few hundred kilobytes costs every connection to the database seconds.
    let env = crate::scripted::scripted();
    let table = |name: &str, references: usize| {
        let columns: Vec<String> = (0..1500).map(|i| format!("c{i} int")).collect();
        let names: Vec<String> = (0..references).map(|i| format!("c{}", i % 1500)).collect();
        format!(
            "CREATE TABLE attacker__{name} ({}, CHECK (c0 IN ({})))",
            columns.join(", "),
            names.join(", ")
        )
    };
    env.applies("attacker", "0.2.0", &table("a", 2_000));
    let err = env.refused(
        "attacker",
        "0.3.0",
        &table("b", 20_000),
        "column look-ups in their definitions",
    );
    assert!(err.contains("past 24000000"), "{err}");
    assert!(!env.tables().contains(&"attacker__b".to_string()));
    // A string literal in an index's key list names a column, looked up the same way.
    let columns: Vec<String> = (0..1500).map(|i| format!("c{i} int")).collect();
    let mut script = format!("CREATE TABLE attacker__c ({});", columns.join(", "));
    for i in 0..6 {
        let keys: Vec<String> = (0..2000).map(|k| format!("'c{}'", k % 1500)).collect();
        script += &format!(
            "CREATE INDEX attacker__c{i} ON attacker__c ({});",
            keys.join(", ")
        );
    }
    let err = env.refused(
        "attacker",
        "0.3.0",
        &script,
        "column look-ups in their definitions",
    );
    assert!(err.contains("past 24000000"), "{err}");
    // Names that share their hash and a long prefix cost each comparison their length.
    let long = |i: usize| format!("{}{:04}", "p".repeat(200), i);
    let err = env.refused(
        "attacker",
        "0.3.0",
        &format!(
            "CREATE TABLE attacker__long ({})",
            (0..1000).map(long).collect::<Vec<_>>().join(", ")
        ),
        "column look-ups in their definitions",
    );
    assert!(err.contains("past 24000000"), "{err}");
}

#[test]
fn a_plugins_definitions_cost_anyones_alter_table_a_bounded_time() {
    // Every ALTER TABLE that renames a table or renames or drops a column, anyone's, parses
    // every view and trigger (and every table's expressions) again in SQLite's rename mode,
    // at a cost that grows with the square of some definitions' size: a view that runs in
    // milliseconds made the victim's rename miss its deadline on every try.
    let env = crate::scripted::scripted();
    env.applies(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__items (id INTEGER PRIMARY KEY, name TEXT)",
    );
    let list = |item: &str, n: usize| vec![item; n].join(", ");
    env.applies(
        "attacker",
        "0.2.0",
        &format!(
            "CREATE TABLE attacker__t (a); CREATE VIEW attacker__small AS SELECT x.a IN ({}) AS r FROM attacker__t AS x",
            list("x.a", 300)
        ),
    );
    for sql in [
        // Qualified names.
        format!(
            "CREATE VIEW attacker__big AS SELECT x.a IN ({}) AS r FROM attacker__t AS x",
            list("x.a", 8_000)
        ),
        // An alias, named again and again.
        format!(
            "CREATE VIEW attacker__alias AS SELECT a AS z FROM attacker__t WHERE 0 IN ({})",
            list("z", 20_000)
        ),
        // A trigger's `new.a`.
        format!(
            "CREATE TRIGGER attacker__tr AFTER INSERT ON attacker__t BEGIN SELECT new.a IN ({}); END",
            list("new.a", 6_000)
        ),
        // A wide table's default, which SQLite sets aside node by node, each a walk of the
        // names and literals it has read.
        format!(
            "CREATE TABLE attacker__wide ({}, d DEFAULT (0 IN ({})))",
            (0..1990)
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(", "),
            list("0.5", 18_000)
        ),
    ] {
        let err = env.refused(
            "attacker",
            "0.3.0",
            &sql,
            "ALTER TABLE that renames a column took",
        );
        assert!(err.contains("past 50 ms"), "{err}");
    }
    // A definition too large to measure within the step is refused by its size: a view of
    // many names, or a table (which is not otherwise measured) whose default holds many
    // literals, each kept for the walks of the rest: a default of tens of thousands of
    // blobs would cost every rename in the database seconds.
    for sql in [
        format!(
            "CREATE VIEW attacker__huge AS SELECT a AS z FROM attacker__t WHERE 0 IN ({})",
            list("z", 60_000)
        ),
        format!(
            "CREATE TABLE attacker__u (a DEFAULT (x'' IN ({})))",
            list("x''", 78_000)
        ),
        // Numbers with separators, which SQLite keeps as it keeps reals.
        format!(
            "CREATE TABLE attacker__u (a DEFAULT (1_0 IN ({})))",
            list("1_0", 78_000)
        ),
    ] {
        let err = env.refused("attacker", "0.3.0", &sql, "tokens times names and literals");
        assert!(err.contains("past 1000000000"), "{err}");
    }
    // The victim's renames and the application's stay quick: nothing of the refused steps
    // is left to parse.
    env.script(
        "victim",
        "0.3.0",
        "-- wasmig:destructive\nALTER TABLE victim__items RENAME TO victim__entries; ALTER TABLE victim__entries RENAME COLUMN name TO title",
        None,
    );
    env.ok(&["up", "--allow-destructive", "victim@0.3.0"]);
    env.conn()
        .execute_batch("CREATE TABLE app (a, b); ALTER TABLE app DROP COLUMN b; ALTER TABLE app RENAME TO app2")
        .unwrap();
}

#[test]
fn the_rename_cost_a_plugin_answers_for_is_its_own_definitions_not_those_it_may_read() {
    // A reader's shadow schema holds what it may read: the read plugin's definitions are
    // that plugin's to answer for, measured against it, and must not refuse the reader's
    // steps.
    let env = crate::scripted::scripted();
    env.add(artifacts::READER, "reader.wasm");
    env.policy("[plugins.reader]\nreads = [\"victim\"]\n");
    env.ok(&["up", "reader@0.1.0"]);
    env.applies("victim", "0.2.0", "CREATE TABLE victim__t (a)");
    // Made by the application, with its rights: far past the bound.
    let refs = vec!["x.a"; 8_000].join(", ");
    env.conn()
        .execute_batch(&format!(
            "CREATE VIEW victim__big AS SELECT x.a IN ({refs}) AS r FROM victim__t AS x"
        ))
        .unwrap();
    env.applies(
        "reader",
        "0.2.0",
        "CREATE TABLE reader__t (a); CREATE VIEW reader__v AS SELECT a FROM reader__t",
    );
    // The victim's own next change answers for it.
    let err = env.refused(
        "victim",
        "0.3.0",
        "CREATE TABLE victim__u (b)",
        "ALTER TABLE that renames a column took",
    );
    assert!(
        err.contains("over plugin victim's definitions alone, past 50 ms"),
        "{err}"
    );
}

#[test]
fn a_plugin_has_at_most_100_autoincrement_tables() {
    // Their counters are rows of sqlite_sequence, which has no index: each insert into an
    // AUTOINCREMENT table of the application's reads the rows before its own.
    let env = crate::scripted::scripted();
    let tables = |from: u32, to: u32| {
        (from..to)
            .map(|i| format!("CREATE TABLE attacker__a{i} (id INTEGER PRIMARY KEY AUTOINCREMENT);"))
            .collect::<String>()
    };
    env.applies("attacker", "0.2.0", &tables(0, 100));
    let err = env.refused(
        "attacker",
        "0.3.0",
        &tables(100, 101),
        "101 AUTOINCREMENT tables",
    );
    assert!(err.contains("past 100"), "{err}");
}

#[test]
fn a_plugin_has_at_most_2000_objects_foreign_keys_included() {
    // Objects whose names share a bucket of SQLite's schema hash cost every connection that
    // parses the schema a comparison of names per pair.
    // Tables, which the step's check of what a rename costs does not time (views it does, on
    // the clock of a machine that may be busy).
    let env = crate::scripted::scripted();
    let tables = |from: u32, to: u32| {
        (from..to)
            .map(|i| format!("CREATE TABLE attacker__t{i} (x);"))
            .collect::<String>()
    };
    // The scripted plugin's own table and its primary key's index are two objects.
    env.applies("attacker", "0.2.0", &tables(0, 1998));
    let err = env.refused("attacker", "0.3.0", &tables(1998, 1999), "past 2000");
    assert!(
        err.contains("with 2001 tables, indexes, views and triggers and 0 foreign keys"),
        "{err}"
    );
    // Foreign keys count too: SQLite files each by the name of the table it references.
    let keys: Vec<String> = (0..3)
        .map(|i| format!("k{i} REFERENCES attacker__script"))
        .collect();
    let err = env.refused(
        "attacker",
        "0.3.0",
        &format!("CREATE TABLE attacker__k ({})", keys.join(", ")),
        "past 2000 in all",
    );
    assert!(
        err.contains("2001 tables, indexes, views and triggers and 3 foreign keys"),
        "{err}"
    );
}
