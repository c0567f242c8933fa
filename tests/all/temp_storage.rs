//! Temporary storage: TEMP tables, sorts that outgrow memory and materialized subqueries go
//! to temporary files, which the database's growth quota does not bound. A quota on the
//! connection's temporary files (`[limits] max_temp`, 256 MiB by default) stops them; the
//! step rolls back with a `limit` error, and the host carries on.

use crate::hostile::armed;

fn hits_the_temp_quota(attack: &str) {
    let env = armed(attack);
    env.policy("[limits]\nmax_temp = \"16MiB\"\n");
    let err = env.fails(&["up"]);
    assert!(
        err.contains("limit reached: the step's temporary storage")
            && err.contains("quota of 16 MiB"),
        "{attack}: {err}"
    );
    assert!(err.contains("plugin evil migration 0.2.0"), "{err}");
    // With room enough, the same statement runs.
    env.policy("[limits]\nmax_temp = \"1GiB\"\n");
    env.ok(&["up"]);
}

#[test]
fn a_temp_table_hits_the_quota() {
    hits_the_temp_quota("temp-filler");
}

#[test]
fn a_sort_that_spills_hits_the_quota() {
    hits_the_temp_quota("sort-spill");
}

#[test]
fn a_materialized_subquery_that_spills_hits_the_quota() {
    hits_the_temp_quota("materialize-spill");
}

#[test]
fn the_policy_shows_the_quota() {
    let env = armed("temp-filler");
    env.policy("[limits]\nmax_temp = \"32MiB\"\n");
    assert!(env.ok(&["policy"]).contains("temporary storage 32 MiB"));
}

#[test]
fn a_statement_journal_counts_against_the_quota() {
    // Within the step's transaction a statement that may fail halfway keeps the pages it
    // changes in a journal of its own, a temporary file: rewriting a large table of the
    // plugin's own writes as much there, whatever the database's growth.
    let env = crate::scripted::scripted();
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__big (x);
         INSERT INTO attacker__big
           WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
           SELECT randomblob(4000) FROM n",
    );
    let rewrite = "UPDATE attacker__big SET x = randomblob(4000) WHERE rowid > 0;
                   UPDATE attacker__big SET x = randomblob(4000) WHERE rowid > 0";
    env.policy("[limits]\nmax_temp = \"16MiB\"\n");
    env.refused(
        "attacker",
        "0.3.0",
        rewrite,
        "limit reached: the step's temporary storage",
    );
    env.policy("[limits]\nmax_temp = \"1GiB\"\n");
    env.applies("attacker", "0.3.0", rewrite);
}

#[test]
fn the_quota_bounds_what_the_temporary_files_hold_not_what_a_step_adds() {
    // Steps of one run share the connection's TEMP database: a step that finds the pages an
    // earlier step left (its TEMP table dropped, the file as large as before) may not fill
    // them and add its own quota on top.
    let env = crate::scripted::scripted();
    let fill = |mib: u32| {
        format!(
            "CREATE TEMP TABLE attacker__spill (x);
             INSERT INTO attacker__spill
               WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
               SELECT randomblob(4000) FROM n",
            mib * 256
        )
    };
    env.policy("[limits]\nmax_temp = \"16MiB\"\n");
    env.script("attacker", "0.2.0", &fill(10), None);
    env.script("attacker", "0.3.0", &fill(14), None);
    env.script("attacker", "0.4.0", &fill(20), None);
    let err = env.step("attacker", "0.4.0").unwrap_err();
    assert!(
        err.contains("plugin attacker migration 0.4.0")
            && err.contains("limit reached: the step's temporary storage"),
        "{err}"
    );
    // The steps within the quota applied, one after the other in one run.
    assert_eq!(
        env.value::<String>(
            "SELECT group_concat(version) FROM (SELECT version FROM _wasmig_applied \
             WHERE plugin = 'attacker' ORDER BY version)"
        ),
        "0.1.0,0.2.0,0.3.0"
    );
}

#[test]
fn a_steps_temp_tables_are_dropped_without_running_their_foreign_keys() {
    // The host drops a step's TEMP tables after it. With foreign keys enforced, dropping a
    // referenced table deletes its rows first: a scan of the child table per row, and the
    // keys' actions (here `SET NULL`, which computes a stored generated column of 200 MB).
    // That would be the plugin's work after its step, outside its bounds.
    let env = crate::scripted::scripted();
    env.script(
        "attacker",
        "0.2.0",
        "CREATE TEMP TABLE attacker__a (id INTEGER PRIMARY KEY);
         CREATE TEMP TABLE attacker__z (
           pid REFERENCES attacker__a (id) ON DELETE SET NULL,
           g AS (CASE WHEN pid IS NULL THEN printf('%.*c', 200000000, 'x') END) STORED);
         INSERT INTO attacker__a VALUES (1);
         INSERT INTO attacker__z (pid) VALUES (1)",
        None,
    );
    let (status, peak_kib) = env.peak_memory(&["up", "attacker@0.2.0"]);
    assert!(
        peak_kib < 160 * 1024,
        "the host peaked at {} MiB",
        peak_kib / 1024
    );
    assert!(status.success());
    // A child row still referencing its parent does not stop the drop either.
    env.applies(
        "attacker",
        "0.3.0",
        "CREATE TEMP TABLE attacker__p (id INTEGER PRIMARY KEY);
         CREATE TEMP TABLE attacker__c (pid REFERENCES attacker__p (id));
         INSERT INTO attacker__p VALUES (1);
         INSERT INTO attacker__c VALUES (1)",
    );
    assert_eq!(
        env.value::<i64>("SELECT count(*) FROM temp.sqlite_schema"),
        0,
        "nothing TEMP survives a step"
    );
    // The connection enforces foreign keys again afterwards.
    env.applies(
        "attacker",
        "0.4.0",
        "CREATE TABLE attacker__parent (id INTEGER PRIMARY KEY);
         CREATE TABLE attacker__child (pid REFERENCES attacker__parent (id))",
    );
    env.script(
        "attacker",
        "0.5.0",
        "INSERT INTO attacker__child VALUES (7)",
        None,
    );
    let err = env.step("attacker", "0.5.0").unwrap_err();
    assert!(err.contains("FOREIGN KEY constraint failed"), "{err}");
}

#[test]
fn a_temp_table_with_autoincrement_is_a_steps_to_use() {
    // SQLite makes `temp.sqlite_sequence` for a TEMP table with AUTOINCREMENT, and it cannot
    // be dropped: the host empties it, and neither this step nor the next plugin's fails.
    let env = crate::scripted::scripted();
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (id INTEGER PRIMARY KEY, v);
         CREATE TEMP TABLE attacker__stage (n INTEGER PRIMARY KEY AUTOINCREMENT, v);
         INSERT INTO attacker__stage (v) VALUES ('a'), ('b');
         INSERT INTO attacker__t SELECT n, v FROM attacker__stage",
    );
    assert_eq!(env.value::<i64>("SELECT count(*) FROM attacker__t"), 2);
    env.applies(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__t (id INTEGER PRIMARY KEY AUTOINCREMENT)",
    );
}

#[test]
fn a_step_whose_transaction_sqlite_rolled_back_runs_no_more_sql() {
    // A statement that fails on a quota (SQLITE_FULL, here the growth quota) with no
    // statement journal of its own, a one-row insert, makes SQLite roll the whole transaction
    // back and leave the connection in autocommit mode. A plugin that handles the error and
    // goes on must not have its next statements committed one by one, outside the step.
    let env = crate::scripted::scripted();
    env.policy("[limits]\nmax_growth = \"64KiB\"\n");
    let step = "-- each\n\
         CREATE TABLE attacker__t (x)\n-- next\n\
         -- caught\nINSERT INTO attacker__t VALUES (randomblob(1000000))\n-- next\n\
         CREATE TABLE attacker__after (x)";
    env.script("attacker", "0.2.0", step, None);
    let made = |env: &crate::support::Env| {
        env.tables()
            .into_iter()
            .filter(|t| t == "attacker__t" || t == "attacker__after")
            .collect::<Vec<_>>()
    };
    // A dry run writes nothing either.
    let out = env.run(&["plan", "attacker@0.2.0"]);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(made(&env), Vec::<String>::new());
    let err = env.refused(
        "attacker",
        "0.2.0",
        step,
        "SQLite rolled the step's transaction back after an error",
    );
    assert!(!err.contains("no such savepoint"), "{err}");
    assert_eq!(made(&env), Vec::<String>::new());
}
