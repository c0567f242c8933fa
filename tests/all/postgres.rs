//! The PostgreSQL backend end to end: the real binary against a real server
//! (`WASMIG_TEST_POSTGRES`, a role with CREATEROLE, CREATEDB and SET on `temp_file_limit`;
//! `.ci/postgres` sets one up). Each test gets a database of its own, dropped with its
//! plugin roles at the end. Without the variable the tests fail: they are never skipped.

use crate::support::{Env, artifacts};
use postgres::{Client, NoTls};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A fresh PostgreSQL database (see [`crate::support::PgDb`]) and a plugins directory, with
/// the database's URL and name at hand.
pub struct Pg {
    pub env: Env,
    pub url: String,
    name: String,
}

impl Pg {
    pub fn new() -> Self {
        Self::from(Env::postgres())
    }

    /// For a test that restarts the server: no other test runs meanwhile.
    pub fn alone() -> Self {
        Self::from(Env::postgres_alone())
    }

    fn from(env: Env) -> Self {
        let pg = env.pg.as_ref().expect("a PostgreSQL environment");
        Pg {
            url: pg.url.clone(),
            name: pg.name.clone(),
            env,
        }
    }

    /// A connection as the operator's role (the application).
    pub fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).unwrap()
    }

    /// The first column of each row of `sql`, as text.
    pub fn column(&self, sql: &str) -> Vec<String> {
        self.client()
            .query(&format!("SELECT ({sql})::text FROM (SELECT 1) AS one"), &[])
            .map(|rows| {
                rows.iter()
                    .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows of a query, each as text columns joined by `|`.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        self.env.rows(sql)
    }

    /// The ledger: plugin, version, direction, outcome, error.
    pub fn ledger(&self) -> Vec<String> {
        self.rows(
            "SELECT plugin, version, direction, outcome, coalesce(error, '') \
             FROM wasmig.ledger ORDER BY id",
        )
    }

    /// Sets what a scripted plugin's step runs up (and down).
    pub fn script(&self, plugin: &str, version: &str, up: &str, down: Option<&str>) {
        self.env.script(plugin, version, up, down);
    }

    /// Everything of the plugins' schemas and their rows, to compare before and after.
    pub fn dump(&self) -> String {
        self.env.dump()
    }
}

/// `accounts` and `notes` applied.
fn migrated() -> Pg {
    let pg = Pg::new();
    pg.env.add(artifacts::ACCOUNTS, "accounts.wasm");
    pg.env.add(artifacts::NOTES, "notes.wasm");
    pg.env.ok(&["up"]);
    pg
}

#[test]
fn up_status_down_history_and_uninstall() {
    let pg = migrated();
    // Each plugin's tables are in its own schema, which its own role owns.
    assert_eq!(
        pg.rows("SELECT title FROM notes.notes__note"),
        ["Welcome to Notes"]
    );
    assert_eq!(
        pg.rows(
            "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace \
             WHERE nspname IN ('accounts', 'notes') ORDER BY 1"
        ),
        [
            format!("accounts|wasmig/{}/accounts", pg.name),
            format!("notes|wasmig/{}/notes", pg.name)
        ]
    );
    let status = pg.env.json(&["status"]);
    let applied: Vec<String> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} {}", p["name"], p["applied_version"]))
        .collect();
    assert_eq!(
        applied,
        [r#""accounts" "0.2.0""#, r#""notes" "0.3.0""#],
        "{status}"
    );
    assert_eq!(pg.ledger().len(), 5);
    let policy = pg.env.json(&["policy"]);
    assert_eq!(policy["plugins"][1]["namespace"], "notes.*", "{policy}");
    let policy = pg.env.ok(&["policy"]);
    assert!(
        policy.contains("database growth 1024 MiB (its schema's size, checked at the step's end)"),
        "{policy}"
    );

    // The backfill's code step read the notes and wrote derived rows.
    assert_eq!(
        pg.rows("SELECT slug, words FROM notes.notes__stats"),
        ["welcome-to-notes|14"]
    );

    pg.env.ok(&["down", "notes", "--to", "0.1.0"]);
    assert_eq!(pg.column("to_regclass('notes.notes__stats')"), [""]);
    assert_eq!(
        pg.column("to_regclass('notes.notes__note')"),
        ["notes.notes__note"]
    );
    let history = pg.env.json(&["history", "notes"]);
    assert_eq!(history.as_array().unwrap().len(), 5, "{history}");

    // Uninstall runs the stored component's down steps, with the file gone.
    pg.env.remove("notes.wasm");
    pg.env.ok(&["uninstall", "notes"]);
    assert_eq!(pg.column("to_regclass('notes.notes__note')"), [""]);
    pg.env.add(artifacts::NOTES, "notes.wasm");
    pg.env.ok(&["up"]);
    assert_eq!(pg.rows("SELECT count(*) FROM notes.notes__note"), ["1"]);
}

#[test]
fn a_dry_run_changes_no_plugin_data_and_reports_the_steps() {
    let pg = Pg::new();
    pg.env.add(artifacts::ACCOUNTS, "accounts.wasm");
    pg.env.add(artifacts::NOTES, "notes.wasm");
    let report = pg.env.json(&["up", "--dry-run"]);
    assert_eq!(report["dry_run"], true, "{report}");
    assert_eq!(report["steps"].as_array().unwrap().len(), 5, "{report}");
    assert_eq!(pg.column("to_regclass('notes.notes__note')"), [""]);
    assert_eq!(pg.ledger().len(), 0);
    pg.env.ok(&["up"]);
    assert_eq!(pg.ledger().len(), 5);
}

#[test]
fn a_held_lock_past_the_timeout_is_a_clear_error() {
    let pg = Pg::new();
    pg.env.add(artifacts::ACCOUNTS, "accounts.wasm");
    pg.env.ok(&["status"]);
    let mut holder = pg.client();
    holder
        .batch_execute("SELECT pg_advisory_lock(131260432083303)")
        .unwrap();
    let started = Instant::now();
    let err = pg.env.fails(&["up", "--lock-timeout", "1s"]);
    assert!(err.contains("another runner holds the database"), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    holder
        .batch_execute("SELECT pg_advisory_unlock(131260432083303)")
        .unwrap();
    pg.env.ok(&["up", "--lock-timeout", "1s"]);
    assert_eq!(pg.ledger().len(), 2);
}

/// `attacker` and `victim`, the scripted plugins, at their first step, and a row of the
/// victim's that must survive.
fn scripted() -> Pg {
    scripted_in(Pg::new())
}

fn scripted_in(pg: Pg) -> Pg {
    pg.env.add(artifacts::ATTACKER, "attacker.wasm");
    pg.env.add(artifacts::VICTIM, "victim.wasm");
    pg.env.ok(&["up", "attacker@0.1.0"]);
    pg.env.ok(&["up", "victim@0.1.0"]);
    pg.script(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__secret (x text); INSERT INTO victim__secret VALUES ('kept')",
        None,
    );
    pg.env.ok(&["up", "victim@0.2.0"]);
    pg
}

impl Pg {
    /// Runs `up` as the attacker's step 0.2.0; it must fail with `expected` in the error,
    /// change nothing, and leave the failure in the ledger.
    fn refused(&self, up: &str, expected: &str) -> String {
        self.script("attacker", "0.2.0", up, None);
        let before = self.dump();
        let out = self.env.run(&["up", "attacker@0.2.0"]);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "should be refused: {up}");
        assert!(
            err.contains(expected),
            "expected {expected:?} for {up}:\n{err}"
        );
        assert!(err.contains("plugin attacker migration 0.2.0"), "{err}");
        assert_eq!(self.dump(), before, "{up} changed the database");
        let last = self.ledger().pop().unwrap();
        assert!(last.starts_with("attacker|0.2.0|up|failed|"), "{last}");
        assert_eq!(self.rows("SELECT x FROM victim.victim__secret"), ["kept"]);
        err
    }
}

/// The attacker's step 0.2.0: `attacker__t` of 20,000 rows, analyzed.
fn with_rows(pg: &Pg) {
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x int, pad text);
         INSERT INTO attacker__t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
         ANALYZE attacker__t",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
}

#[test]
fn analyze_leaves_out_what_a_plugin_could_make_costly() {
    // For each index expression it analyzes, ANALYZE (autovacuum's too) holds every sample
    // row's value until it is done, between steps and with no deadline; an index holds a
    // hash or a compressed form, so the values can be as large as the expression makes
    // them, many times the table's own size.
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__h (x text);
         CREATE INDEX attacker__h_hash ON attacker__h USING hash ((repeat(x, 1000)));
         CREATE INDEX attacker__h_lower ON attacker__h (lower(x), x);
         CREATE INDEX attacker__h_plain ON attacker__h (x);
         INSERT INTO attacker__h SELECT md5(g::text) || repeat('y', 68)
           FROM generate_series(1, 3000) g;
         CREATE TYPE attacker__tr AS RANGE (subtype = text);
         CREATE DOMAIN attacker__ints AS int[];
         CREATE TABLE attacker__r (id int, r attacker__tr, n numrange, a attacker__ints,
                                   v tsvector);
         INSERT INTO attacker__r VALUES
           (1, attacker__tr('a', 'b'), numrange(0, 1e309), ARRAY[1, 2], 'a b'),
           (2, attacker__tr('c', 'd'), numrange(0, 1), ARRAY[3], 'c');
         CREATE TABLE attacker__w (a int2, b int2, c int2);
         ALTER TABLE attacker__w ALTER COLUMN a SET STATISTICS 10000;
         ALTER TABLE attacker__w ALTER COLUMN b SET STATISTICS 50;
         CREATE STATISTICS attacker__ws (dependencies, ndistinct, mcv) ON a, b, c
           FROM attacker__w;
         INSERT INTO attacker__w SELECT g % 101, g % 103, g % 107
           FROM generate_series(1, 1000) g;
         CREATE TYPE attacker__ct AS (a int);
         CREATE TABLE attacker__c (c attacker__ct, d int);
         INSERT INTO attacker__c SELECT ROW(g)::attacker__ct, g FROM generate_series(1, 100) g;
         CREATE STATISTICS attacker__cs (mcv) ON c, d FROM attacker__c;
         ALTER TYPE attacker__ct ADD ATTRIBUTE j json;
         CREATE COLLATION attacker__nd (provider = icu, locale = 'und', deterministic = false);
         CREATE TYPE attacker__cx AS (x xid, t text COLLATE attacker__nd);
         CREATE TABLE attacker__k (c attacker__cx, t text COLLATE attacker__nd, p text)
           WITH (autovacuum_analyze_threshold = 0, autovacuum_analyze_scale_factor = 0,
                 toast.autovacuum_enabled = false, vacuum_truncate = false,
                 log_autovacuum_min_duration = 0, toast.vacuum_index_cleanup = off,
                 fillfactor = 50);
         CREATE INDEX attacker__kb ON attacker__k USING brin (p)
           WITH (autosummarize = on, pages_per_range = 1)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    // A column of a type that is not one of pg_catalog's base types, or of a collation that
    // is not deterministic, has none: ANALYZE compares each sampled value of a type without
    // an ordering with up to 200 others, each comparison through ICU over the whole value.
    // The storage parameters that say when autovacuum analyzes the table are the server's.
    assert_eq!(
        pg.rows(
            "SELECT a.attname || '=' || a.attstattarget FROM pg_attribute a \
              WHERE a.attrelid = 'attacker.attacker__k'::regclass AND a.attnum > 0 ORDER BY 1",
        ),
        ["c=0", "p=-1", "t=0"]
    );
    assert_eq!(
        pg.rows(
            "SELECT coalesce(c.reloptions::text, '-') || ' ' || coalesce(t.reloptions::text, '-') \
               FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid \
              WHERE c.oid = 'attacker.attacker__k'::regclass",
        ),
        ["{fillfactor=50} -"]
    );
    assert_eq!(
        pg.rows("SELECT reloptions::text FROM pg_class WHERE relname = 'attacker__kb'"),
        ["{pages_per_range=1}"]
    );
    // A BRIN index's expressions are computed when VACUUM summarizes a range, for every
    // row of it: a plugin's BRIN indexes are on columns.
    pg.script(
        "attacker",
        "0.3.0",
        "CREATE INDEX attacker__hb ON attacker__h USING brin ((md5(x)))",
        None,
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(err.contains("is a BRIN index on expressions"), "{err}");
    // Many columns are set in one statement a table.
    pg.script(
        "attacker",
        "0.3.0",
        &format!(
            "CREATE DOMAIN attacker__d AS int; CREATE TABLE attacker__many ({})",
            (0..1000)
                .map(|i| format!("c{i} attacker__d"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some("DROP TABLE attacker__many; DROP DOMAIN attacker__d"),
    );
    pg.env.ok(&["up", "attacker@0.3.0"]);
    assert_eq!(
        pg.rows(
            "SELECT count(*) FROM pg_attribute \
              WHERE attrelid = 'attacker.attacker__many'::regclass AND attnum > 0 \
                AND attstattarget = 0",
        ),
        ["1000"]
    );
    pg.env.ok(&["down", "attacker", "--steps", "1"]);
    let targets = |pg: &Pg| {
        pg.rows(
            "SELECT c.relname || '.' || a.attnum || '=' || coalesce(a.attstattarget::text, '-') \
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
              WHERE c.relname LIKE 'attacker__h_%' AND a.attnum > 0 ORDER BY 1",
        )
    };
    // The expression columns have no statistics target; the plain ones keep theirs.
    assert_eq!(
        targets(&pg),
        [
            "attacker__h_hash.1=0",
            "attacker__h_lower.1=0",
            "attacker__h_lower.2=-1",
            "attacker__h_plain.1=-1"
        ]
    );
    // A step that sets one again has it set back at its end.
    pg.script(
        "attacker",
        "0.3.0",
        "ALTER INDEX attacker__h_hash ALTER COLUMN 1 SET STATISTICS 10000",
        None,
    );
    pg.env.ok(&["up", "attacker@0.3.0"]);
    assert_eq!(targets(&pg)[0], "attacker__h_hash.1=0");
    // Statistics objects are not built (their dependencies and ndistinct sort the whole
    // sample once for each subset of their columns, and one on a composite that has since
    // lost its ordering makes every ANALYZE of the table fail), and a column's target is at
    // most the server's default.
    let statistics = |pg: &Pg| {
        pg.rows(
            "SELECT stxname || '=' || stxstattarget FROM pg_statistic_ext \
              WHERE stxnamespace = 'attacker'::regnamespace ORDER BY 1",
        )
    };
    assert_eq!(statistics(&pg), ["attacker__cs=0", "attacker__ws=0"]);
    assert_eq!(
        pg.rows(
            "SELECT a.attname || '=' || a.attstattarget FROM pg_attribute a \
              WHERE a.attrelid = 'attacker.attacker__w'::regclass AND a.attnum > 0 ORDER BY 1",
        ),
        ["a=-1", "b=50", "c=-1"]
    );
    // So does a later step of the same run, after one that wrote no column (the host looks
    // again only after a step whose transaction wrote a column or a statistics object).
    pg.script(
        "attacker",
        "0.4.0",
        "INSERT INTO attacker__h VALUES ('z')",
        None,
    );
    pg.script(
        "attacker",
        "0.5.0",
        "ALTER INDEX attacker__h_lower ALTER COLUMN 1 SET STATISTICS 500;
         ALTER TABLE attacker__r ALTER COLUMN r SET STATISTICS 100",
        None,
    );
    pg.env.ok(&["up", "attacker@0.5.0"]);
    assert_eq!(targets(&pg)[1], "attacker__h_lower.1=0");
    // A statistics object's target lives in pg_statistic_ext, not pg_attribute.
    pg.script(
        "victim",
        "0.3.0",
        "CREATE TABLE victim__w (a int, b int);
         CREATE STATISTICS victim__ws ON a, b FROM victim__w",
        None,
    );
    pg.env.ok(&["up", "victim@0.3.0"]);
    pg.script(
        "victim",
        "0.4.0",
        "INSERT INTO victim__w VALUES (1, 2)",
        None,
    );
    pg.script(
        "victim",
        "0.5.0",
        "ALTER STATISTICS victim__ws SET STATISTICS 10000",
        None,
    );
    pg.env.ok(&["up", "victim@0.5.0"]);
    assert_eq!(
        pg.rows("SELECT stxstattarget FROM pg_statistic_ext WHERE stxname = 'victim__ws'"),
        ["0"]
    );
    // A storage parameter lives in pg_class (the down steps of a run of their own).
    pg.script("victim", "0.5.0", "SELECT 1", Some("SELECT 1"));
    pg.script(
        "victim",
        "0.4.0",
        "SELECT 1",
        Some("ALTER TABLE victim__w SET (autovacuum_enabled = false)"),
    );
    pg.env.ok(&["down", "victim", "--steps", "2"]);
    assert_eq!(
        pg.rows("SELECT coalesce(reloptions::text, '-') FROM pg_class WHERE relname = 'victim__w'"),
        ["-"]
    );
    // Columns whose type has a statistics function of its own: arrays (a domain over one
    // too), ranges, tsvector. Range statistics keep every sample value whole, and a
    // `numrange` wider than a double made every ANALYZE of the table fail.
    assert_eq!(
        pg.rows(
            "SELECT a.attname || '=' || a.attstattarget FROM pg_attribute a \
              WHERE a.attrelid = 'attacker.attacker__r'::regclass AND a.attnum > 0 ORDER BY 1",
        ),
        ["a=0", "id=-1", "n=0", "r=0", "v=0"]
    );
    // ANALYZE (as the database's owner) reads the tables and leaves those out.
    pg.client()
        .batch_execute(
            "ANALYZE attacker.attacker__h, attacker.attacker__r, attacker.attacker__w, \
             attacker.attacker__c",
        )
        .unwrap();
    let analyzed = pg.rows(
        "SELECT tablename || '.' || attname FROM pg_stats WHERE schemaname = 'attacker' \
           AND (tablename LIKE 'attacker__h%' OR tablename = 'attacker__r') ORDER BY 1",
    );
    assert_eq!(analyzed, ["attacker__h.x", "attacker__r.id"]);
}

#[test]
fn a_step_runs_in_one_server_process_within_its_temporary_file_quota() {
    // PostgreSQL bounds each server process's temporary files by `temp_file_limit`; parallel
    // workers have one each, and the files a parallel hash join shares stop counting once
    // closed. The plugin's role runs without parallel query, so its step's statements run in
    // its one process, within the quota (a plugin that turns it on:
    // `a_statement_that_runs_in_parallel_server_processes_fails_its_step`).
    let pg = scripted();
    pg.env.policy("[limits]\nmax_temp = \"16MiB\"\n");
    with_rows(&pg);
    let settings = pg.column(&format!(
        "SELECT string_agg(c, ' ' ORDER BY c) FROM pg_db_role_setting s \
         JOIN pg_roles r ON r.oid = s.setrole, unnest(s.setconfig) AS c \
         WHERE r.rolname = 'wasmig/{}/attacker'",
        pg.name
    ));
    for setting in [
        "temp_file_limit=16384",
        "max_parallel_workers_per_gather=0",
        "max_parallel_maintenance_workers=0",
    ] {
        assert!(settings[0].contains(setting), "{settings:?}");
    }
    // Each step begins with the role's settings, whatever the plugin's session set in the
    // step before it in the same run: its query divides by zero otherwise.
    pg.script(
        "attacker",
        "0.3.0",
        "SELECT set_config('max_parallel_workers_per_gather', '8', false),
                set_config('max_parallel_maintenance_workers', '8', false)",
        None,
    );
    pg.script(
        "attacker",
        "0.4.0",
        "-- query
SELECT 1 / (current_setting('max_parallel_workers_per_gather') = '0'
            AND current_setting('max_parallel_maintenance_workers') = '0')::int",
        None,
    );
    pg.env.ok(&["up", "attacker@0.4.0"]);
    // A sort of the plugin's that spills past the quota, in the step's one process, fails
    // the step.
    pg.script(
        "attacker",
        "0.5.0",
        "SELECT set_config('work_mem', '64kB', false);
         SELECT count(*), sum(length(m)) FROM (SELECT t.x, g, md5(t.pad || g) AS m
           FROM attacker__t t, generate_series(1, 100) g ORDER BY m OFFSET 0) s",
        None,
    );
    let out = pg.env.run(&["up", "attacker@0.5.0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("plugin attacker migration 0.5.0")
            && err.contains("temporary file size exceeds temp_file_limit (16384kB)"),
        "{err}"
    );
    assert_eq!(pg.rows("SELECT x FROM victim.victim__secret"), ["kept"]);
}

#[test]
fn a_statement_that_runs_in_parallel_server_processes_fails_its_step() {
    // Parallel query is off for a plugin's role, but its session may turn it on again
    // (`set_config`, a `DO` block, a function's `SET` clause), and each of its workers has a
    // `temp_file_limit` of its own. The host watches the step's statements for server
    // processes working for them: such a statement is cancelled and its step fails, whatever
    // the plugin does with the cancel. (A parallel plan that the session's own process runs
    // alone is not seen: a known limit.)
    let pg = scripted();
    // The server must have workers to start: without, the scans below run in one process
    // and this test would stop at their deadline, not test the watch.
    assert_ne!(
        pg.column(
            "least(current_setting('max_worker_processes')::int, \
                   current_setting('max_parallel_workers')::int)"
        ),
        ["0"],
        "the test server starts no parallel workers"
    );
    with_rows(&pg);
    let on = "set_config('max_parallel_workers_per_gather', '4', false), \
              set_config('parallel_setup_cost', '0', false), \
              set_config('parallel_tuple_cost', '0', false), \
              set_config('min_parallel_table_scan_size', '0', false)";
    // Each row sleeps a millisecond: in one process the scan takes 20 s, in five about 4 s.
    let scan = "count(*) FROM attacker__t WHERE pg_sleep(0.001) IS NOT NULL";
    for (how, up, expected) in [
        (
            "a statement",
            format!("SELECT {on}; SELECT {scan}"),
            "the statement ran in parallel server processes",
        ),
        (
            "a DO block",
            format!("DO $$ BEGIN PERFORM {on}; PERFORM {scan}; END $$"),
            "the statement ran in parallel server processes",
        ),
        (
            "a DO block that catches the cancel",
            format!(
                "DO $$ BEGIN PERFORM {on}; PERFORM {scan}; \
                 EXCEPTION WHEN query_canceled THEN NULL; END $$; SELECT 1"
            ),
            "the statement ran in parallel server processes",
        ),
        (
            "a DO block that catches every cancel",
            format!(
                "DO $$ BEGIN PERFORM {on}; LOOP BEGIN PERFORM {scan}; \
                 EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$"
            ),
            // Ended by its cancel, or (the next scan caught up in its workers' ends)
            // terminated a second later.
            "the statement ran in parallel server processes",
        ),
        (
            "a plugin that drops the error and goes on",
            format!(
                "-- each\nSELECT {on}\n-- next\n-- caught\n-- query\nSELECT {scan}\n\
                 -- next\nCREATE TABLE attacker__after (x int)"
            ),
            "refused: an earlier statement of this step ran in parallel server processes",
        ),
        (
            "a plugin that drops every error",
            format!(
                "-- each\nSELECT {on}\n-- next\n-- caught\n-- query\nSELECT {scan}\n\
                 -- next\n-- caught\nCREATE TABLE attacker__after (x int)"
            ),
            "the statement ran in parallel server processes",
        ),
    ] {
        pg.script("attacker", "0.3.0", &up, None);
        let out = pg.env.run(&["up", "attacker@0.3.0"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{how}: {err}");
        assert!(
            err.contains("plugin attacker migration 0.3.0") && err.contains(expected),
            "{how}: {err}"
        );
        let last = pg.ledger().pop().unwrap();
        assert!(
            last.starts_with("attacker|0.3.0|up|failed|") && last.contains("parallel"),
            "{how}: {last}"
        );
        assert_eq!(pg.rows("SELECT x FROM victim.victim__secret"), ["kept"]);
        assert_eq!(
            pg.column("to_regclass('attacker.attacker__after') IS NULL"),
            ["true"]
        );
    }
    // The same scan in the role's one process is the plugin's to run, looked at a few times
    // meanwhile; in a dry run too, where the host's session is in a transaction of its own.
    pg.script(
        "attacker",
        "0.3.0",
        "SELECT count(*) FROM attacker__t WHERE x <= 100 AND pg_sleep(0.001) IS NOT NULL",
        None,
    );
    pg.env.ok(&["plan", "attacker@0.3.0"]);
    pg.env.ok(&["up", "attacker@0.3.0"]);
}

#[test]
fn a_lock_taken_before_privileges_are_checked_is_not_held() {
    // `nextval` locks the relation it is given before it checks that it is a sequence the
    // role may use, and keeps the lock to the transaction's end whatever the check says;
    // `pg_get_object_address` locks what it names and checks nothing. Held by a step, such a
    // lock blocked the application's `CREATE INDEX` and `ALTER TABLE` (and every read queued
    // behind them) until the step's deadline. The session that holds one is looked at while
    // its statement runs and while the plugin's code runs between statements, and ended.
    let pg = scripted();
    pg.client()
        .batch_execute(
            "CREATE SCHEMA app;
             CREATE TABLE app.t (id int PRIMARY KEY); INSERT INTO app.t VALUES (1)",
        )
        .unwrap();
    // By its oid: naming it would need USAGE on the schema.
    let grab = "DO $$ BEGIN PERFORM nextval((SELECT c.oid FROM pg_class c
                  WHERE c.relnamespace = 'app'::regnamespace AND c.relname = 't')::regclass);
                EXCEPTION WHEN others THEN NULL; END $$";
    // A lock the step's last statement took, or one a later statement follows, refuses the
    // step: another plugin's schema, its table, the application's function, a role.
    pg.client()
        .batch_execute("CREATE FUNCTION public.app_f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        .unwrap();
    for (up, lock) in [
        (
            "SELECT pg_get_object_address('schema', '{victim}', '{}')".to_string(),
            "AccessShareLock on schema victim",
        ),
        (
            format!("-- each\n{grab}\n-- next\nCREATE TABLE attacker__after (x int)"),
            "RowExclusiveLock on table app.t",
        ),
        (
            "DO $$ BEGIN PERFORM nextval((SELECT c.oid FROM pg_class c
               WHERE c.relname = 'victim__secret')::regclass);
             EXCEPTION WHEN others THEN NULL; END $$"
                .to_string(),
            "victim.victim__secret",
        ),
        (
            "SELECT pg_get_object_address('function', '{public,app_f}', '{}')".to_string(),
            "function public.app_f()",
        ),
        (
            format!(
                "SELECT pg_get_object_address('role', '{{wasmig/{}/victim}}', '{{}}')",
                pg.name
            ),
            "on role wasmig/",
        ),
        // An advisory key, which may be the application's.
        (
            "SELECT pg_advisory_xact_lock(42)".to_string(),
            "ExclusiveLock on advisory key 42",
        ),
        (
            "SELECT pg_advisory_xact_lock_shared(7, 11)".to_string(),
            "ShareLock on advisory key 7, 11",
        ),
    ] {
        let err = pg.refused(&up, "the step holds a lock outside its namespace");
        assert!(err.contains(lock), "{up}: {err}");
    }
    for (how, up) in [
        (
            "while its statement runs",
            format!("{grab}; SELECT pg_sleep(8)"),
        ),
        (
            "while the plugin's code runs",
            format!("-- each\n{grab}\n-- next\n-- spin 8000\n-- next\nSELECT 1"),
        ),
        (
            "while the plugin's code runs to the step's end",
            format!("-- each\n{grab}\n-- next\n-- spin 8000"),
        ),
    ] {
        pg.script("attacker", "0.2.0", &up, None);
        let mut app = pg.client();
        let step = pg.env.spawn(&["up", "attacker@0.2.0", "--deadline", "30s"]);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // The application's index and column are made at once, not after the step.
        let started = std::time::Instant::now();
        app.batch_execute(
            "SET lock_timeout = '5s'; CREATE INDEX ON app.t (id); ALTER TABLE app.t ADD COLUMN n int",
        )
        .unwrap_or_else(|e| panic!("{how}: {e}"));
        let waited = started.elapsed();
        let out = step.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{how}: {err}");
        assert!(
            err.contains("the step holds a lock outside its namespace")
                && err.contains("RowExclusiveLock on table app.t"),
            "{how}: {err}"
        );
        assert!(
            waited < std::time::Duration::from_secs(5),
            "{how}: the application waited {waited:?}"
        );
        app.batch_execute("ALTER TABLE app.t DROP COLUMN n")
            .unwrap();
    }
    // What the plugin's own work locks of the application's objects that depend on its
    // tables is its own: the application's foreign key into its table, checked as the plugin
    // deletes its rows and remade as it changes the key's column.
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__note (id int PRIMARY KEY); INSERT INTO attacker__note VALUES (1), (2)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    pg.client()
        .batch_execute(
            "CREATE TABLE app.refs (note int REFERENCES attacker.attacker__note (id));
             INSERT INTO app.refs VALUES (1)",
        )
        .unwrap();
    pg.script(
        "attacker",
        "0.3.0",
        "DELETE FROM attacker__note WHERE id = 2; ALTER TABLE attacker__note ALTER COLUMN id TYPE bigint",
        None,
    );
    pg.env.ok(&["up", "attacker@0.3.0"]);
    assert_eq!(pg.rows("SELECT note FROM app.refs"), ["1"]);
    // What wasmig itself writes in a step's session is no lock of the plugin's: a plugin
    // whose first step is code has its component stored (in wasmig's TOAST table) in the
    // step's transaction, before its statements.
    let fresh = Pg::new();
    fresh.env.add(artifacts::BENCH_TEMPLATE10, "template.wasm");
    fresh.env.ok(&["up"]);
}

#[test]
fn a_step_may_lock_its_own_tables_and_set_its_constraints() {
    // What migrations write around a rebuild: the table locked for the step, a deferrable
    // key's checks deferred, then made immediate. Privileges govern the lock (another
    // plugin's table is not the plugin's to lock), and both end with the step's transaction.
    let pg = scripted();
    pg.refused(
        "LOCK TABLE victim.victim__secret IN ACCESS SHARE MODE",
        "permission denied",
    );
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x int PRIMARY KEY);
         LOCK TABLE attacker__t IN ACCESS EXCLUSIVE MODE;
         SET CONSTRAINTS ALL DEFERRED;
         INSERT INTO attacker__t VALUES (1);
         SET CONSTRAINTS ALL IMMEDIATE",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    assert_eq!(pg.rows("SELECT x FROM attacker.attacker__t"), ["1"]);
}

#[test]
fn a_plugin_cannot_become_another_role_or_end_the_transaction() {
    let pg = scripted();
    for (attack, expected) in [
        ("SET ROLE postgres", "may not be SET"),
        ("RESET ROLE", "may not be RESET"),
        ("SET SESSION AUTHORIZATION postgres", "may not be SET"),
        ("COMMIT", "may not be COMMIT"),
        ("ROLLBACK", "may not be ROLLBACK"),
        ("SAVEPOINT x", "may not be SAVEPOINT"),
        ("PREPARE TRANSACTION 'x'", "may not be PREPARE"),
        (
            "SELECT set_config('role', 'wasmig_test', false)",
            "permission denied",
        ),
        (
            "DO $$ BEGIN EXECUTE 'SET ROLE wasmig_test'; END $$",
            "permission denied",
        ),
        (
            "DO $$ BEGIN EXECUTE 'SET SESSION AUTHORIZATION wasmig_test'; END $$",
            "permission denied",
        ),
        (
            "DO $$ BEGIN COMMIT; END $$",
            "invalid transaction termination",
        ),
        (
            "ALTER ROLE CURRENT_USER SET search_path = victim",
            "may not be ALTER ROLE",
        ),
        (
            "SELECT wasmig.record_step('x', '1', '9.9.9', 'd', 'up', 0, 0, 'c', 's', 'w', '[]', NULL, 'someone')",
            "not the host's record",
        ),
        ("SELECT wasmig.step_begin()", "step has begun"),
        ("SELECT * FROM wasmig.ledger", "permission denied"),
        // PostgreSQL ends a line comment at a carriage return: the server would read a
        // COMMIT where a comment up to the newline leaves `SELECT`, and commit what the
        // step made before its checks.
        (
            "CREATE TABLE attacker__open (x int);\n-- x\rCOMMIT /*\nSELECT 1 */",
            "may not be COMMIT",
        ),
        (
            "CREATE TABLE attacker__open (x int);\n-- x\rCOPY attacker__open TO STDOUT --\nSELECT 1",
            "may not be COPY",
        ),
    ] {
        pg.refused(attack, expected);
    }
}

/// The destructive-change gate reads every statement a step ran, not only the mebibyte the
/// audit trail keeps: 20,000 seed inserts, then a column dropped.
#[test]
fn the_gate_reads_every_statement_not_only_those_the_audit_trail_keeps() {
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__item (id int PRIMARY KEY, name text, note text)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    let seed: String = (0..20_000)
        .map(|i| format!("INSERT INTO attacker__item VALUES ({i}, 'seeded row {i}', 'x');\n"))
        .collect();
    pg.script(
        "attacker",
        "0.3.0",
        &format!("{seed}ALTER TABLE attacker__item DROP COLUMN note"),
        None,
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(
        err.contains("destructive step refused: it drops column attacker__item.note"),
        "{err}"
    );
    // Nor only the statements' words: a function of the plugin's, called by a SELECT, drops
    // a column and a table, as migrations that call helper functions do.
    pg.script(
        "attacker",
        "0.3.0",
        "CREATE TABLE attacker__other (x int);
         CREATE FUNCTION attacker__cleanup() RETURNS void LANGUAGE plpgsql AS $$
         BEGIN ALTER TABLE attacker__item DROP COLUMN note; DROP TABLE attacker__other; END $$;
         SELECT attacker__cleanup()",
        None,
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(
        err.contains("destructive step refused: it drops column attacker__item.note"),
        "{err}"
    );
    // A table renamed away and another made under its name: only `pg_type` tells.
    pg.script(
        "attacker",
        "0.3.0",
        "ALTER TABLE attacker__item RENAME TO attacker__old;
         CREATE TABLE attacker__item (id int)",
        None,
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(err.contains("it drops column attacker__item.name"), "{err}");
    // A quoted name keeps its case in the catalog: its rename is still a rename.
    pg.script(
        "attacker",
        "0.3.0",
        "CREATE TABLE \"attacker__Users\" (\"Name\" text);
         ALTER TABLE \"attacker__Users\" RENAME COLUMN \"Name\" TO \"FullName\"",
        None,
    );
    pg.env.ok(&["up", "attacker@0.3.0"]);
    pg.script(
        "attacker",
        "0.4.0",
        "ALTER TABLE \"attacker__Users\" RENAME COLUMN \"FullName\" TO \"DisplayName\"",
        None,
    );
    pg.env.ok(&["up", "attacker@0.4.0"]);
}

/// One statement of a plugin's is at most 16 MiB: the host holds a statement several times
/// over while it sends it. A parenthesis left open makes the rest of a script one statement,
/// refused the same way.
#[test]
fn a_statement_past_16_mib_is_refused_before_it_is_sent() {
    let pg = scripted();
    let long = "x".repeat(17 << 20);
    for script in [
        format!("CREATE TABLE attacker__t (x text); SELECT '{long}'"),
        format!("CREATE TABLE attacker__t (x text); SELECT (1; SELECT '{long}'"),
    ] {
        let err = pg.refused(&script, "statement too long");
        assert!(
            err.contains("past the 16384 KiB a statement may take"),
            "{err}"
        );
    }
    pg.script(
        "attacker",
        "0.2.0",
        &format!(
            "CREATE TABLE attacker__t (x text); SELECT '{}'",
            "x".repeat(4 << 20)
        ),
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
}

/// A script is split into statements as `psql` splits it: a line comment ends at a carriage
/// return, and a semicolon inside parentheses or inside a function's `BEGIN ATOMIC` body
/// ends no statement.
#[test]
fn a_script_is_split_as_psql_splits_it() {
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "-- a script with carriage returns alone\rCREATE TABLE attacker__a (x int);\r\
         CREATE TABLE attacker__log (x int);\r\
         CREATE FUNCTION attacker__f() RETURNS int LANGUAGE sql\n\
         BEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN true THEN 2 END;\nEND;\n\
         CREATE RULE attacker__r AS ON INSERT TO attacker__a DO ALSO (\
           INSERT INTO attacker__log VALUES (NEW.x); INSERT INTO attacker__log VALUES (NEW.x + 1));\n\
         INSERT INTO attacker__a VALUES (1)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    assert_eq!(pg.rows("SELECT attacker.attacker__f()"), ["2"]);
    assert_eq!(
        pg.rows("SELECT x FROM attacker.attacker__log ORDER BY x"),
        ["1", "2"]
    );
}

#[test]
fn a_plugin_reaches_no_other_schema_nor_the_server() {
    let pg = scripted();
    for (attack, expected) in [
        ("SELECT * FROM victim.victim__secret", "permission denied"),
        ("DELETE FROM victim.victim__secret", "permission denied"),
        (
            "CREATE TABLE public.attacker__x (x int)",
            "permission denied",
        ),
        ("CREATE SCHEMA attacker_more", "permission denied"),
        ("CREATE EXTENSION dblink", "permission denied"),
        ("COPY attacker__script TO PROGRAM 'id'", "may not be COPY"),
        (
            "DO $$ BEGIN EXECUTE 'COPY attacker.attacker__script TO PROGRAM ''id'''; END $$",
            "pg_execute_server_program",
        ),
        ("SELECT pg_read_file('/etc/passwd')", "permission denied"),
        ("SELECT lo_import('/etc/passwd')", "permission denied"),
        ("SELECT lo_create(0)", "large object"),
        ("LISTEN anything", "may not be LISTEN"),
        ("NOTIFY anything", "may not be NOTIFY"),
        (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
            "to terminate",
        ),
        (
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()",
            "cancel",
        ),
        // Search-path tricks: a function or table named like a built-in or like another
        // plugin's object, for an application whose search path lists plugins' schemas.
        (
            "CREATE FUNCTION lower(text) RETURNS text LANGUAGE sql AS 'SELECT $1'",
            "which is not named attacker__*",
        ),
        (
            "CREATE FUNCTION victim__hash(text) RETURNS text LANGUAGE sql AS 'SELECT $1'",
            "which is not named attacker__*",
        ),
        (
            "CREATE TABLE victim__secret (x text)",
            "which is not named attacker__*",
        ),
        (
            "CREATE TYPE ledger AS (x int)",
            "which is not named attacker__*",
        ),
    ] {
        pg.refused(attack, expected);
    }
}

/// The guard finds the schema's objects through the server's dependency records; every
/// kind a plugin can make in its schema, top-level or hanging on another (an index, a
/// partition's index, an identity column's sequence, an array or range's types, a domain's
/// constraint), is found and checked.
#[test]
fn the_guard_finds_every_kind_of_object_a_plugin_makes_in_its_schema() {
    let pg = scripted();
    let misnamed = "which is not named attacker__*";
    for (attack, expected) in [
        ("CREATE VIEW plain_v AS SELECT 1 AS x", misnamed),
        (
            "CREATE MATERIALIZED VIEW plain_mv AS SELECT 1 AS x",
            misnamed,
        ),
        ("CREATE TABLE plain_cta AS SELECT 1 AS x", misnamed),
        ("CREATE SEQUENCE plain_seq", misnamed),
        ("CREATE TYPE plain_c AS (x int)", misnamed),
        ("CREATE TYPE plain_e AS ENUM ('a')", misnamed),
        ("CREATE DOMAIN plain_d AS int", misnamed),
        ("CREATE TYPE plain_r AS RANGE (subtype = int)", misnamed),
        (
            "CREATE TYPE attacker__r AS RANGE (subtype = int, multirange_type_name = plain_mr)",
            misnamed,
        ),
        (
            "CREATE TYPE attacker__r AS RANGE (subtype = int, \
             multirange_type_name = pg_temp.plain_mr)",
            // The multirange's constructors go to the range's schema, named after it.
            misnamed,
        ),
        (
            // A multirange named into another plugin's schema.
            "CREATE TYPE pg_temp.attacker__r AS RANGE (subtype = int, \
             multirange_type_name = victim.attacker__mr)",
            "permission denied for schema victim",
        ),
        (
            "CREATE PROCEDURE plain_p() LANGUAGE sql AS 'SELECT 1'",
            misnamed,
        ),
        (
            "CREATE AGGREGATE plain_agg(int) (sfunc = int4pl, stype = int)",
            misnamed,
        ),
        (
            "CREATE TABLE attacker__t (x int); CREATE INDEX plain_i ON attacker__t (x)",
            misnamed,
        ),
        (
            "CREATE TABLE attacker__t (x int PRIMARY KEY);
             ALTER INDEX attacker__t_pkey RENAME TO plain_pkey",
            misnamed,
        ),
        (
            "CREATE TABLE attacker__t (x int GENERATED ALWAYS AS IDENTITY);
             ALTER SEQUENCE attacker__t_x_seq RENAME TO plain_idseq",
            misnamed,
        ),
        (
            "CREATE TABLE attacker__t (x int); ALTER TABLE attacker__t RENAME TO plain_t",
            misnamed,
        ),
        (
            "CREATE TABLE attacker__p (x int) PARTITION BY RANGE (x);
             CREATE TABLE plain_part PARTITION OF attacker__p FOR VALUES FROM (0) TO (10)",
            misnamed,
        ),
        (
            "CREATE TABLE attacker__p (x int) PARTITION BY RANGE (x);
             CREATE TABLE attacker__p1 PARTITION OF attacker__p FOR VALUES FROM (0) TO (10);
             CREATE INDEX attacker__pi ON attacker__p (x);
             ALTER INDEX attacker__p1_x_idx RENAME TO plain_child_idx",
            misnamed,
        ),
        (
            "CREATE DOMAIN attacker__d AS int CHECK (VALUE <> pg_backend_pid())",
            "would run later with the rights of whoever uses it",
        ),
        (
            "CREATE TABLE attacker__p (x int) PARTITION BY RANGE (x);
             CREATE TABLE attacker__p1 PARTITION OF attacker__p FOR VALUES FROM (0) TO (10);
             ALTER TABLE attacker__p1 ADD CHECK (x <> pg_backend_pid())",
            "would run later with the rights of whoever uses it",
        ),
    ] {
        pg.refused(attack, expected);
    }

    // Named in its namespace, a range type is the plugin's own; the server owns its
    // constructors, which the guard leaves as they are.
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TYPE attacker__r AS RANGE (subtype = int);
         CREATE TABLE attacker__t (x attacker__r)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);

    // Whatever else is in the schema and not the plugin's role's (made there by a member
    // of the role, a superuser) is refused, not left as it is: a function the guard does
    // not make run as the plugin could run with its caller's rights.
    pg.client()
        .batch_execute(
            "CREATE FUNCTION attacker.attacker__planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        )
        .unwrap();
    pg.script("attacker", "0.3.0", "SELECT 1", None);
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(
        err.contains("function attacker.attacker__planted() in schema attacker is owned by"),
        "{err}"
    );
}

#[test]
fn a_check_that_a_clock_or_a_random_value_decides_is_refused() {
    // A check that passed when the row was written and fails when it is checked again: a
    // dump's restore of the whole database (the application's tables included) would fail
    // on the plugin's row.
    let pg = scripted();
    for attack in [
        "CREATE TABLE attacker__c (ts timestamptz NOT NULL CHECK (ts > now()))",
        "CREATE TABLE attacker__c (ts timestamptz CHECK (ts > CURRENT_TIMESTAMP))",
        "CREATE TABLE attacker__c (d date CHECK (d >= CURRENT_DATE))",
        "CREATE TABLE attacker__c (x int CHECK (random() < 0.5))",
        "CREATE TABLE attacker__c (x int); ALTER TABLE attacker__c ADD CHECK (x < extract(epoch FROM clock_timestamp()))",
        "CREATE DOMAIN attacker__later AS timestamptz CHECK (VALUE > statement_timestamp())",
        "CREATE DOMAIN attacker__later AS float8 CHECK (VALUE < random());
         CREATE TABLE attacker__c (x attacker__later)",
    ] {
        let err = pg.refused(attack, "a check calls immutable functions only");
        assert!(
            err.contains("attacker__c") || err.contains("attacker__later"),
            "{err}"
        );
    }
    // Clocks and random values stay allowed where nothing checks them again: defaults.
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__c (ts timestamptz NOT NULL DEFAULT now() CHECK (ts > '2000-01-01'),
                                   r float8 DEFAULT random(), n text CHECK (length(n) < 10));
         INSERT INTO attacker__c (n) VALUES ('x')",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    assert_eq!(pg.rows("SELECT n FROM attacker.attacker__c"), ["x"]);
}

#[test]
fn nothing_a_plugin_leaves_behind_runs_with_someone_elses_rights() {
    let pg = scripted();
    for (attack, expected) in [
        (
            "CREATE TABLE attacker__t (x text);
             CREATE VIEW attacker__v WITH (security_invoker = true) AS SELECT * FROM attacker__t",
            "security_invoker",
        ),
        (
            "CREATE VIEW attacker__v AS SELECT set_config('role', 'x', false) AS y",
            "would run later with the rights of whoever uses it",
        ),
        (
            "CREATE TABLE attacker__t (x text DEFAULT current_setting('app.secret'))",
            "would run later with the rights of whoever uses it",
        ),
        // SQL value functions on PostgreSQL 15, function calls from 16: either is refused.
        (
            "CREATE TABLE attacker__t (x int, who text DEFAULT session_user)",
            "of whoever uses it",
        ),
        (
            "CREATE TABLE attacker__t (x int, s text DEFAULT current_schema)",
            "of whoever uses it",
        ),
        (
            "CREATE TABLE attacker__t (x text CHECK (pg_terminate_backend(1) OR true))",
            "would run later with the rights of whoever uses it",
        ),
        (
            "CREATE TABLE attacker__t (x text);
             CREATE TRIGGER attacker__tr BEFORE INSERT ON attacker__t FOR EACH ROW
                 EXECUTE FUNCTION suppress_redundant_updates_trigger()",
            "not the plugin's own function",
        ),
        (
            "CREATE VIEW attacker__v AS SELECT * FROM victim.victim__secret",
            "permission denied",
        ),
        (
            "CREATE TABLE attacker__t (x text);
             DO $$ BEGIN EXECUTE 'GRANT SELECT ON attacker.attacker__t TO PUBLIC'; END $$",
            "the step granted SELECT",
        ),
        (
            "DO $$ BEGIN EXECUTE 'ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC'; END $$",
            "default acl",
        ),
    ] {
        pg.refused(attack, expected);
    }

    // A trigger function the plugin leaves behind runs as the plugin's code role, whoever
    // fires it, and no one else may call its functions, whatever it granted.
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x text);
         CREATE FUNCTION attacker__f() RETURNS trigger LANGUAGE plpgsql AS $f$
           BEGIN NEW.x := current_user; RETURN NEW; END $f$;
         CREATE TRIGGER attacker__tr BEFORE INSERT ON attacker__t FOR EACH ROW
           EXECUTE FUNCTION attacker__f();
         DO $$ BEGIN EXECUTE 'GRANT EXECUTE ON FUNCTION attacker.attacker__f() TO PUBLIC'; END $$",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    pg.client()
        .batch_execute("INSERT INTO attacker.attacker__t VALUES ('app')")
        .unwrap();
    assert_eq!(
        pg.rows("SELECT x FROM attacker.attacker__t"),
        [format!("wasmig:{}/attacker", pg.name)]
    );
    assert_eq!(
        pg.rows(
            "SELECT prosecdef, bool_or(a.grantee = 0) FROM pg_proc p, aclexplode(p.proacl) a \
             WHERE proname = 'attacker__f' GROUP BY 1"
        ),
        ["t|f"]
    );
}

#[test]
fn a_statement_past_the_deadline_is_cancelled_and_the_next_runner_gets_the_lock() {
    let pg = scripted();
    pg.script("attacker", "0.2.0", "SELECT pg_sleep(60)", None);
    let started = Instant::now();
    let err = pg.env.fails(&["up", "attacker@0.2.0", "--deadline", "2s"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(err.contains("deadline"), "{err}");
    // A session advisory lock on the host's key is released with the step.
    pg.script(
        "attacker",
        "0.2.0",
        "SELECT pg_advisory_lock(131260432083303)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0", "--lock-timeout", "5s"]);
    pg.script("victim", "0.3.0", "CREATE TABLE victim__more (x int)", None);
    pg.env.ok(&["up", "victim@0.3.0", "--lock-timeout", "5s"]);
}

#[test]
fn a_steps_begin_ends_at_the_lock_timeout_and_its_deadline() {
    // The host's checks before a step's call take whatever time the database makes them
    // take (other plugins' and other sessions' code, the application's own triggers): here
    // a trigger of the application's on the table where a step's begin writes its token
    // sleeps a minute. The begin of a step and of a dry run ends at the lock timeout and
    // the deadline after it, the step does not run, and nothing is held afterwards.
    let pg = scripted();
    pg.script("victim", "0.3.0", "CREATE TABLE victim__more (x int)", None);
    pg.client()
        .batch_execute(
            "CREATE FUNCTION public.slow_token() RETURNS trigger LANGUAGE plpgsql AS $f$
             BEGIN PERFORM pg_sleep(60); RETURN NEW; END $f$;
             CREATE TRIGGER slow_token BEFORE INSERT ON wasmig.step_token
             FOR EACH ROW EXECUTE FUNCTION public.slow_token()",
        )
        .unwrap();
    for dry_run in [false, true] {
        let mut args = vec![
            "up",
            "victim@0.3.0",
            "--deadline",
            "2s",
            "--lock-timeout",
            "1s",
        ];
        if dry_run {
            args.insert(1, "--dry-run");
        }
        let started = Instant::now();
        let err = pg.env.fails(&args);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{dry_run}: {:?}",
            started.elapsed()
        );
        assert!(
            err.contains("the host's checks before plugin victim's step were still running 3s"),
            "{dry_run}: {err}"
        );
    }
    assert_eq!(
        pg.column("to_regclass('victim.victim__more') IS NULL"),
        ["true"]
    );
    assert!(!pg.ledger().iter().any(|l| l.starts_with("victim|0.3.0|")));
    // Nothing of the cancelled begins is left holding a lock.
    pg.client()
        .batch_execute("DROP TRIGGER slow_token ON wasmig.step_token")
        .unwrap();
    pg.env.ok(&["up", "victim@0.3.0", "--lock-timeout", "1s"]);
    assert_eq!(
        pg.column("to_regclass('victim.victim__more')::text"),
        ["victim.victim__more"]
    );
}

#[test]
fn a_commit_that_outlives_its_cancel_is_reported_as_the_database_has_it() {
    // Notifications queue at the commit, where the server writes them under a lock and does
    // not stop for a cancel or for the end of its process: a step that sent enough of them
    // commits for longer than the second past its deadline that the commit gets. The host
    // ends the session, and then says what the database holds: the step, committed.
    // Alone: the time the server takes to write them grows with their number, which other
    // tests' load would lower.
    let pg = scripted_in(Pg::alone());
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x int);
         DO $d$ DECLARE i int := 0; BEGIN
           WHILE clock_timestamp() < statement_timestamp() + interval '3500 ms' LOOP
             i := i + 1;
             PERFORM pg_notify('attacker', i::text || repeat('x', 7000));
           END LOOP;
         END $d$",
        None,
    );
    let out = pg.env.run(&["up", "attacker@0.2.0", "--deadline", "4s"]);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        pg.column("to_regclass('attacker.attacker__t')"),
        ["attacker.attacker__t"]
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("past its deadline"), "{said}");
    let rows: Vec<String> = pg
        .ledger()
        .into_iter()
        .filter(|l| l.starts_with("attacker|0.2.0|"))
        .collect();
    assert_eq!(rows, ["attacker|0.2.0|up|succeeded|"]);
}

#[test]
fn the_checks_after_a_step_end_at_its_deadline_too() {
    // What the guard reads grows with what the plugin's schema holds, which its steps
    // choose: 150,000 domains take it seconds, past a step's two-second deadline. Its sorts
    // of them spill to temporary files: room enough for them, to reach the deadline.
    let pg = scripted();
    pg.env.policy("[limits]\nmax_temp = \"4GiB\"\n");
    pg.script(
        "attacker",
        "0.2.0",
        "DO $$ BEGIN FOR i IN 1..150000 LOOP
           EXECUTE format('CREATE DOMAIN attacker__d%s AS int', i);
         END LOOP; END $$",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0", "--deadline", "2m"]);
    pg.script("attacker", "0.3.0", "SELECT 1", None);
    let out = pg.env.run(&["up", "attacker@0.3.0", "--deadline", "2s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("were still running at its deadline"), "{err}");
    let last = pg.ledger().pop().unwrap();
    assert!(last.starts_with("attacker|0.3.0|up|failed|"), "{last}");
}

#[test]
fn the_checks_after_a_step_stay_within_its_temporary_storage_quota() {
    // The guard's sorts over what the plugin's schema holds spill to temporary files as the
    // plugin's role: a schema too large for the step's quota fails the step, recorded as
    // the plugin's, as one too large to check in time does.
    let pg = scripted();
    pg.env.policy("[limits]\nmax_temp = \"1MiB\"\n");
    // Sorts spill past `work_mem`, whatever the server's default.
    pg.client()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET work_mem = '64kB'",
            pg.name
        ))
        .unwrap();
    pg.script(
        "attacker",
        "0.2.0",
        "DO $$ BEGIN FOR i IN 1..20000 LOOP
           EXECUTE format('CREATE DOMAIN attacker__d%s AS int', i);
         END LOOP; END $$",
        None,
    );
    let out = pg.env.run(&["up", "attacker@0.2.0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("plugin attacker migration 0.2.0")
            && err.contains("limit reached: the checks of what the step left in its schema"),
        "{err}"
    );
    let last = pg.ledger().pop().unwrap();
    assert!(last.starts_with("attacker|0.2.0|up|failed|"), "{last}");
    assert_eq!(
        pg.rows("SELECT count(*) FROM pg_type WHERE typname LIKE 'attacker__d%'"),
        ["0"]
    );
}

#[test]
fn no_code_of_a_plugins_runs_as_its_role_through_what_the_server_runs_as_a_tables_owner() {
    // The server runs a foreign key's action as the referencing table's owner, the plugin's
    // role, whoever changed the referenced row, with the triggers, rules, checks, defaults
    // and domains it reaches, and a materialized view's query as its owner whenever anyone
    // refreshes it: code of the plugin's that made itself SECURITY INVOKER (and granted
    // itself to the plugin's role) between steps would run there as the role that owns the
    // schema. None of them may reach the plugin's functions.
    let pg = scripted();
    let tables = |key: &str, child: &str| {
        format!(
            "CREATE FUNCTION attacker__ok(x int) RETURNS boolean LANGUAGE sql AS 'SELECT true';
             CREATE FUNCTION attacker__f() RETURNS trigger LANGUAGE plpgsql AS $f$
               BEGIN RETURN OLD; END $f$;
             CREATE TABLE attacker__p (id int PRIMARY KEY);
             CREATE TABLE attacker__log (id int);
             CREATE TABLE attacker__c (id int REFERENCES attacker__p {key}, n int);
             {child}"
        )
    };
    for (key, child, expected) in [
        (
            "ON DELETE CASCADE",
            "CREATE TRIGGER attacker__tr BEFORE DELETE ON attacker__c
               FOR EACH ROW EXECUTE FUNCTION attacker__f()",
            "fires before the change (with no check of EXECUTE), reaches attacker.attacker__f()",
        ),
        (
            "ON DELETE SET NULL",
            "CREATE TRIGGER attacker__tr BEFORE UPDATE ON attacker__c
               FOR EACH STATEMENT EXECUTE FUNCTION attacker__f()",
            "which fires before the change",
        ),
        (
            "ON DELETE CASCADE",
            "CREATE RULE attacker__r AS ON DELETE TO attacker__c
               DO ALSO INSERT INTO attacker__log VALUES (old.id)",
            "rewrites what the action does",
        ),
        (
            "ON DELETE SET NULL",
            "ALTER TABLE attacker__c ADD CHECK (attacker__ok(n))",
            "reaches attacker.attacker__ok(integer)",
        ),
        (
            "ON UPDATE CASCADE",
            "ALTER TABLE attacker__c ADD COLUMN g boolean GENERATED ALWAYS AS (attacker__ok(n)) STORED",
            "reaches attacker.attacker__ok(integer)",
        ),
        (
            "ON DELETE SET DEFAULT",
            "ALTER TABLE attacker__c ALTER COLUMN n SET DEFAULT CASE WHEN attacker__ok(1) THEN 1 END",
            "reaches attacker.attacker__ok(integer)",
        ),
        (
            "ON DELETE SET NULL",
            "CREATE DOMAIN attacker__d AS int CHECK (attacker__ok(VALUE));
             ALTER TABLE attacker__c ALTER COLUMN id TYPE attacker__d",
            "table attacker.attacker__c reaches attacker.attacker__ok(integer)",
        ),
        (
            "ON DELETE SET NULL",
            "CREATE DOMAIN attacker__d AS int CHECK (attacker__ok(VALUE));
             ALTER TABLE attacker__c ADD CHECK ((n::attacker__d) IS NOT NULL)",
            "reaches attacker.attacker__ok(integer)",
        ),
        (
            "ON DELETE SET NULL",
            "CREATE FUNCTION attacker__eq(int, int) RETURNS boolean LANGUAGE sql AS 'SELECT $1 = $2';
             CREATE OPERATOR === (FUNCTION = attacker__eq, LEFTARG = int, RIGHTARG = int);
             ALTER TABLE attacker__c ADD CHECK (n === n)",
            "reaches attacker.attacker__eq(integer,integer)",
        ),
        (
            "ON DELETE CASCADE",
            "CREATE TRIGGER attacker__tr AFTER DELETE ON attacker__c FOR EACH ROW
               WHEN (attacker__ok(old.n)) EXECUTE FUNCTION attacker__f()",
            "the WHEN of trigger attacker__tr on table attacker.attacker__c reaches",
        ),
    ] {
        pg.refused(&tables(key, child), expected);
    }
    // A table's own expressions are evaluated as its owner in what the server plans and runs
    // as the owner: a key's check plans the referenced table's queries (folding a call with
    // constant arguments in a partition's check), an action routes rows by the partition
    // key. Whatever its keys, a plugin's table's expressions call no function of its.
    for table in [
        "CREATE TABLE attacker__t (x int CHECK (attacker__ok(0)))",
        "CREATE TABLE attacker__t (x int) PARTITION BY LIST ((attacker__ok(x)))",
        "CREATE TABLE attacker__t (x int DEFAULT 1 CHECK (x > 0), y boolean DEFAULT attacker__ok(1))",
    ] {
        let err = pg.refused(
            &format!(
                "CREATE FUNCTION attacker__ok(x int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
                   AS 'BEGIN RETURN true; END';
                 {table}"
            ),
            "reaches attacker.attacker__ok(integer)",
        );
        assert!(
            err.contains("a plugin's tables' expressions call no function of the plugin's"),
            "{table}: {err}"
        );
    }
    // Through a view, the query of a materialized view reaches the plugin's function.
    let err = pg.refused(
        "CREATE FUNCTION attacker__n() RETURNS int LANGUAGE sql AS 'SELECT 1';
         CREATE VIEW attacker__v AS SELECT attacker__n() AS n;
         CREATE MATERIALIZED VIEW attacker__mv AS SELECT n FROM attacker__v WITH NO DATA",
        "materialized view attacker.attacker__mv reaches attacker.attacker__n()",
    );
    assert!(err.contains("whenever anyone refreshes it"), "{err}");
    // A foreign key's action that updates a partitioned table's row can move it to another
    // partition: a delete there and an insert here, whose triggers fire before the change.
    let err = pg.refused(
        "CREATE FUNCTION attacker__f() RETURNS trigger LANGUAGE plpgsql AS $f$
           BEGIN RETURN NEW; END $f$;
         CREATE TABLE attacker__p (id int PRIMARY KEY);
         CREATE TABLE attacker__c (pid int REFERENCES attacker__p ON DELETE SET NULL)
           PARTITION BY LIST (pid);
         CREATE TABLE attacker__c_live PARTITION OF attacker__c DEFAULT;
         CREATE TABLE attacker__c_orphan PARTITION OF attacker__c FOR VALUES IN (NULL);
         CREATE TRIGGER attacker__tr BEFORE INSERT ON attacker__c_orphan
           FOR EACH ROW EXECUTE FUNCTION attacker__f()",
        "trigger attacker__tr on table attacker.attacker__c_orphan, which fires before the change",
    );
    assert!(err.contains("reaches attacker.attacker__f()"), "{err}");
    // A refresh applies the policies of a table that forces them on its owner.
    pg.refused(
        "CREATE TABLE attacker__r (x int);
         ALTER TABLE attacker__r ENABLE ROW LEVEL SECURITY;
         ALTER TABLE attacker__r FORCE ROW LEVEL SECURITY",
        "table attacker.attacker__r forces row security on its owner",
    );
    // A trigger that fires after the change, or before a change the action does not make
    // (rows stamped when they are updated, under a key whose action deletes), runs nothing
    // as the table's owner; a materialized view over built-in code refreshes anywhere.
    pg.script(
        "attacker",
        "0.2.0",
        &tables(
            "ON DELETE CASCADE",
            "CREATE TRIGGER attacker__stamp BEFORE UPDATE ON attacker__c
               FOR EACH ROW EXECUTE FUNCTION attacker__f();
             CREATE TRIGGER attacker__after AFTER DELETE ON attacker__c
               FOR EACH ROW EXECUTE FUNCTION attacker__f();
             CREATE MATERIALIZED VIEW attacker__mv AS SELECT count(*) AS n FROM attacker__c",
        ),
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    pg.env
        .exec("REFRESH MATERIALIZED VIEW attacker.attacker__mv");
    // Such a plugin's keys and triggers stop no other plugin's steps.
    pg.script(
        "victim",
        "0.3.0",
        "CREATE TABLE victim__other (x int)",
        None,
    );
    pg.env.ok(&["up", "victim@0.3.0"]);
    // Built-in code in a table's expressions and domains is fine.
    pg.script(
        "attacker",
        "0.3.0",
        "CREATE DOMAIN attacker__d AS int CHECK (VALUE > 0);
         CREATE TABLE attacker__p2 (id int PRIMARY KEY);
         CREATE TABLE attacker__c2 (id int REFERENCES attacker__p2 ON DELETE SET NULL,
                                    d attacker__d)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.3.0"]);
}

#[test]
fn a_plugin_has_at_most_1000_functions() {
    // They change hands at each of its steps (its role's during the step, its code role's
    // between steps), a lock each from the server's shared lock table.
    let pg = scripted();
    let make = |n: u32| {
        format!(
            "DO $$ BEGIN FOR i IN 1..{n} LOOP
               EXECUTE format('CREATE FUNCTION attacker__f%s() RETURNS int LANGUAGE sql AS ''SELECT 1''', i);
             END LOOP; END $$"
        )
    };
    pg.refused(
        &make(1001),
        "the plugin has 1001 functions; a plugin has at most 1000",
    );
    pg.script("attacker", "0.2.0", &make(1000), None);
    pg.env.ok(&["up", "attacker@0.2.0"]);
    pg.script("attacker", "0.3.0", "DROP FUNCTION attacker__f1000()", None);
    pg.env.ok(&["up", "attacker@0.3.0"]);
    assert_eq!(
        pg.rows(
            "SELECT proowner::regrole::text || ' ' || count(*) FROM pg_proc \
             WHERE pronamespace = 'attacker'::regnamespace GROUP BY proowner"
        ),
        [format!("\"wasmig:{}/attacker\" 999", pg.name)]
    );
}

#[test]
fn a_server_error_of_any_size_reaches_neither_the_plugin_nor_the_ledger_whole() {
    // The plugin chooses the size of the errors it has the server raise.
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "DO $$ BEGIN RAISE EXCEPTION '%', repeat('m', 10000000)
           USING DETAIL = repeat('d', 10000000), HINT = repeat('h', 10000000); END $$",
        None,
    );
    let out = pg.env.run(&["up", "attacker@0.2.0"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.len() < 100_000,
        "{} bytes on stderr",
        out.stderr.len()
    );
    let error = pg
        .rows("SELECT error FROM wasmig.ledger WHERE plugin = 'attacker' AND version = '0.2.0'")
        .pop()
        .unwrap();
    assert!(
        error.len() < 17 * 1024,
        "{} bytes in the ledger",
        error.len()
    );
    assert!(error.contains("more bytes left out"), "{error:.200}");
}

#[test]
fn kill_9_mid_step_leaves_nothing_and_the_next_run_applies_the_step_once() {
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__slow AS SELECT 1 AS x FROM pg_sleep(30)",
        None,
    );
    let mut runner = pg
        .env
        .command()
        .args(["up", "attacker@0.2.0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    plugin_session_pid(&pg, "pg_sleep(30)");
    runner.kill().unwrap();
    runner.wait().unwrap();
    // The server rolls the step's transaction back when its session goes.
    let until = Instant::now() + Duration::from_secs(30);
    while !pg
        .rows("SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()")
        .is_empty()
    {
        assert!(Instant::now() < until, "the killed runner's session stayed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pg.column("to_regclass('attacker.attacker__slow')"), [""]);
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__slow (x int)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    let applied = pg
        .ledger()
        .into_iter()
        .filter(|l| l.starts_with("attacker|0.2.0|up|succeeded"))
        .count();
    assert_eq!(applied, 1);
}

#[test]
fn a_read_grant_is_select_on_the_granted_schema_and_nothing_more() {
    let pg = scripted();
    pg.env.add(artifacts::READER, "reader.wasm");
    // Asked for and not granted: refused before anything runs.
    let err = pg.env.fails(&["up", "reader@0.1.0"]);
    assert!(err.contains("victim"), "{err}");
    pg.env.policy("[plugins.reader]\nreads = [\"victim\"]\n");
    pg.env.ok(&["up", "reader@0.1.0"]);
    pg.script(
        "reader",
        "0.2.0",
        "CREATE TABLE reader__copy AS SELECT x FROM victim.victim__secret",
        None,
    );
    pg.env.ok(&["up", "reader@0.2.0"]);
    assert_eq!(pg.rows("SELECT x FROM reader.reader__copy"), ["kept"]);
    for (attack, expected) in [
        ("DELETE FROM victim.victim__secret", "permission denied"),
        (
            "INSERT INTO victim.victim__secret VALUES ('x')",
            "permission denied",
        ),
        (
            "CREATE VIEW reader__v AS SELECT x FROM victim.victim__secret",
            "outside the plugin's schema",
        ),
    ] {
        pg.script("reader", "0.3.0", attack, None);
        let err = pg.env.fails(&["up", "reader@0.3.0"]);
        assert!(err.contains(expected), "{attack}: {err}");
    }
    // The attacker may not share its tables with the reader on its own.
    pg.refused(
        &format!(
            "CREATE TABLE attacker__t (x text);
             DO $$ BEGIN EXECUTE 'GRANT SELECT ON attacker.attacker__t TO \"wasmig/{}/reader\"'; END $$",
            pg.name
        ),
        "the step granted SELECT",
    );
}

#[test]
fn connection_failures_are_clear_errors_that_keep_the_password() {
    let pg = Pg::new();
    pg.env.add(artifacts::ACCOUNTS, "accounts.wasm");
    let wrong = pg.url.replacen(
        "wasmig_test:wasmig_test@",
        "wasmig_test:not-the-password@",
        1,
    );
    for (url, expected) in [
        (wrong.as_str(), "password authentication failed"),
        (
            "postgres://someone:hunter2@127.0.0.1:1/app",
            "cannot connect",
        ),
    ] {
        let out = crate::support::wasmig()
            .arg("--plugins")
            .arg(&pg.env.plugins)
            .args(["--db", url, "up"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(expected), "{err}");
        assert!(
            !err.contains("hunter2") && !err.contains("not-the-password"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(pg.column("to_regclass('wasmig.ledger')"), [""]);
}

/// The backend process of plugin `plugin`'s session while it runs `marker`.
fn plugin_session_pid(pg: &Pg, marker: &str) -> String {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let pids = pg.rows(&format!(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()"
        ));
        if let Some(pid) = pids.into_iter().next() {
            return pid;
        }
        assert!(Instant::now() < until, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_step_whose_session_the_server_ends_is_tried_again_and_applied_once() {
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t AS SELECT 1 AS x FROM pg_sleep(2)",
        None,
    );
    let runner = pg.env.spawn(&["up", "attacker@0.2.0"]);
    let pid = plugin_session_pid(&pg, "pg_sleep(2)");
    pg.rows(&format!("SELECT pg_terminate_backend({pid})"));
    let out = runner.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let attempts: Vec<String> = pg
        .ledger()
        .into_iter()
        .filter(|l| l.starts_with("attacker|0.2.0|up|"))
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[0].contains("failed") && attempts[0].contains("attempt 1 of 4, tried again"),
        "{attempts:?}"
    );
    assert!(
        attempts[1].starts_with("attacker|0.2.0|up|succeeded"),
        "{attempts:?}"
    );
    assert_eq!(pg.rows("SELECT x FROM attacker.attacker__t"), ["1"]);
}

#[test]
fn a_failure_the_plugin_caused_is_not_tried_again() {
    let pg = scripted();
    pg.script("attacker", "0.2.0", "SELECT 1/0", None);
    pg.env.fails(&["up", "attacker@0.2.0"]);
    let attempts = pg
        .ledger()
        .into_iter()
        .filter(|l| l.starts_with("attacker|0.2.0|up|"))
        .count();
    assert_eq!(attempts, 1);
}

#[test]
fn a_run_goes_on_after_the_server_restarts_in_the_middle_of_a_step() {
    let pg = scripted_in(Pg::alone());
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t AS SELECT 1 AS x FROM pg_sleep(2)",
        None,
    );
    pg.script(
        "victim",
        "0.3.0",
        "CREATE TABLE victim__after (x int)",
        None,
    );
    let runner = pg.env.spawn(&["up"]);
    plugin_session_pid(&pg, "pg_sleep(2)");
    let version = std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .max()
        .unwrap();
    let restarted = std::process::Command::new("pg_ctlcluster")
        .args([&version, "main", "restart", "--", "-m", "fast"])
        .status()
        .unwrap();
    assert!(restarted.success());
    let out = runner.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pg.rows("SELECT x FROM attacker.attacker__t"), ["1"]);
    assert_eq!(
        pg.column("to_regclass('victim.victim__after')"),
        ["victim.victim__after"]
    );
    let succeeded = pg
        .ledger()
        .into_iter()
        .filter(|l| l.starts_with("attacker|0.2.0|up|succeeded"))
        .count();
    assert_eq!(succeeded, 1);
}

#[test]
fn code_deferred_to_the_commit_runs_in_the_plugins_turn_and_is_checked() {
    let pg = scripted();
    // A deferred trigger runs before the guard, so the guard sees what it did.
    pg.refused(
        "CREATE TABLE attacker__trig (x int);
         CREATE FUNCTION attacker__later() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN PERFORM pg_catalog.lo_create(0); RETURN NULL; END $f$;
         CREATE CONSTRAINT TRIGGER attacker__late AFTER INSERT ON attacker__trig
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION attacker__later();
         INSERT INTO attacker__trig VALUES (1)",
        "large object",
    );
    pg.refused(
        "CREATE TABLE attacker__trig (x int);
         CREATE FUNCTION attacker__later() RETURNS trigger LANGUAGE plpgsql AS $f$
         DECLARE tok text; BEGIN tok := wasmig.step_begin(); RETURN NULL; END $f$;
         CREATE CONSTRAINT TRIGGER attacker__late AFTER INSERT ON attacker__trig
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION attacker__later();
         INSERT INTO attacker__trig VALUES (1)",
        "step has begun",
    );
    // A deferred trigger past the deadline is stopped at it.
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__trig (x int);
         CREATE FUNCTION attacker__later() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN PERFORM pg_sleep(30); RETURN NULL; END $f$;
         CREATE CONSTRAINT TRIGGER attacker__late AFTER INSERT ON attacker__trig
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION attacker__later();
         INSERT INTO attacker__trig VALUES (1)",
        None,
    );
    let started = Instant::now();
    let err = pg.env.fails(&["up", "attacker@0.2.0", "--deadline", "2s"]);
    assert!(err.contains("deadline"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn a_plugin_cannot_change_its_roles_settings_password_or_column_grants() {
    let pg = scripted();
    for (attack, expected) in [
        (
            format!(
                "DO $$ BEGIN EXECUTE 'ALTER ROLE CURRENT_USER IN DATABASE {} SET \
                 standard_conforming_strings = off'; END $$",
                pg.name
            ),
            "changed its role's settings",
        ),
        (
            "DO $$ BEGIN EXECUTE 'ALTER ROLE CURRENT_USER SET work_mem = ''1GB'''; END $$"
                .to_string(),
            "changed its role's settings",
        ),
        (
            "CREATE TABLE attacker__t (x text);
             DO $$ BEGIN EXECUTE 'GRANT SELECT (x) ON attacker.attacker__t TO PUBLIC'; END $$"
                .to_string(),
            "on column x",
        ),
    ] {
        pg.refused(&attack, expected);
    }
    // A password the plugin sets does not outlive its step: the host's is the one committed.
    pg.script(
        "attacker",
        "0.2.0",
        "DO $$ BEGIN EXECUTE 'ALTER ROLE CURRENT_USER PASSWORD ''chosen'''; END $$",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    let mut config: postgres::Config = pg.url.parse().unwrap();
    config
        .user(&format!("wasmig/{}/attacker", pg.name))
        .password("chosen");
    assert!(
        config.connect(NoTls).is_err(),
        "the plugin's own password still logs in"
    );
}

#[test]
fn a_password_a_plugins_code_sets_between_steps_logs_no_one_in_for_long() {
    // Fired by the application, the plugin's trigger function runs as the plugin's code
    // role, which sets no password of the plugin's role, and its own logs no one in. The
    // plugin's role's password is valid for the minute after wasmig's last login as the
    // role, whoever sets it, and the role cannot make it valid for longer.
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x text);
         CREATE FUNCTION attacker__pw() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           EXECUTE 'ALTER ROLE CURRENT_USER PASSWORD ''chosen''';
           RETURN NEW;
         END $f$;
         CREATE TRIGGER attacker__trg BEFORE INSERT ON attacker__t
           FOR EACH ROW EXECUTE FUNCTION attacker__pw()",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    let role = format!("wasmig/{}/attacker", pg.name);
    let window = format!(
        "SELECT (rolvaliduntil BETWEEN now() AND now() + interval '1 minute')::text \
         FROM pg_roles WHERE rolname = '{role}'"
    );
    assert_eq!(pg.rows(&window), ["true"]);
    pg.env
        .exec("INSERT INTO attacker.attacker__t VALUES ('go')");
    let mut config: postgres::Config = pg.url.parse().unwrap();
    for user in [role.clone(), format!("wasmig:{}/attacker", pg.name)] {
        config.user(&user).password("chosen");
        assert!(
            config.connect(NoTls).is_err(),
            "the trigger's password logs {user} in"
        );
    }
    // Set by the role itself (as a step's own SQL may; the guard puts it back), the password
    // logs in within the minute.
    pg.env.exec(&format!(
        "SET ROLE \"{role}\"; ALTER ROLE CURRENT_USER PASSWORD 'chosen'; RESET ROLE"
    ));
    config.user(&role).password("chosen");
    assert!(config.connect(NoTls).is_ok(), "the role's own password");
    // The minute over (the test moves the role's validity back to now).
    pg.env
        .exec(&format!("ALTER ROLE \"{role}\" VALID UNTIL '2000-01-01'"));
    let refused = config.connect(NoTls).err().map(|e| e.to_string());
    assert!(refused.is_some(), "the password outlived its minute");
    pg.script(
        "attacker",
        "0.3.0",
        "DO $$ BEGIN EXECUTE 'ALTER ROLE CURRENT_USER VALID UNTIL ''infinity'''; END $$",
        None,
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(err.contains("permission denied"), "{err}");
    // wasmig logs in again, and its steps run.
    pg.script(
        "attacker",
        "0.3.0",
        "INSERT INTO attacker__t VALUES ('step')",
        None,
    );
    pg.env.ok(&["up", "attacker@0.3.0"]);
    assert_eq!(pg.rows(&window), ["true"]);
}

#[test]
fn a_plugins_code_between_its_steps_changes_nothing_of_the_catalog_but_its_own_functions() {
    // Fired by the application between the plugin's steps (or while another plugin's step
    // runs), the plugin's trigger function runs as the plugin's code role, which owns the
    // plugin's functions and nothing else: it makes no function, cast, operator or view that
    // another plugin's session would meet, changes no type or table, grants nothing of them
    // and sets no password of the plugin's role. It reads and writes the plugin's tables.
    let pg = scripted();
    let db = pg.name.clone();
    pg.script(
        "attacker",
        "0.2.0",
        &format!(
            r#"CREATE TYPE attacker__e AS ENUM ('a');
         CREATE TABLE attacker__t (x text);
         CREATE TABLE attacker__log (what text, outcome text);
         CREATE SEQUENCE attacker__seq;
         CREATE FUNCTION attacker__j(attacker__e) RETURNS json LANGUAGE sql
           AS 'SELECT to_json(1)';
         CREATE FUNCTION attacker__try() RETURNS trigger LANGUAGE plpgsql AS $f$
         DECLARE s text;
         BEGIN
           INSERT INTO attacker.attacker__log VALUES ('runs as', current_user::text);
           PERFORM nextval('attacker.attacker__seq');
           FOREACH s IN ARRAY ARRAY[
             'CREATE FUNCTION attacker.attacker__new() RETURNS int LANGUAGE sql AS ''SELECT 1''',
             'CREATE CAST (attacker.attacker__e AS json) WITH FUNCTION attacker.attacker__j(attacker.attacker__e)',
             'CREATE VIEW attacker.attacker__v AS SELECT 1 AS one',
             'ALTER TYPE attacker.attacker__e ADD VALUE ''b''',
             'ALTER TABLE attacker.attacker__t ADD COLUMN y int',
             'CREATE TRIGGER attacker__t2 BEFORE INSERT ON attacker.attacker__t FOR EACH ROW EXECUTE FUNCTION attacker.attacker__try()',
             'ALTER ROLE "wasmig/{db}/attacker" PASSWORD ''chosen''',
             'DROP TABLE attacker.attacker__log'
           ] LOOP
             BEGIN
               EXECUTE s;
               INSERT INTO attacker.attacker__log VALUES (s, 'done');
             EXCEPTION WHEN OTHERS THEN
               INSERT INTO attacker.attacker__log VALUES (s, SQLSTATE);
             END;
           END LOOP;
           -- A grant the role may not make grants nothing (the server warns).
           EXECUTE 'GRANT SELECT ON attacker.attacker__t TO PUBLIC';
           RETURN NEW;
         END $f$;
         CREATE TRIGGER attacker__trg BEFORE INSERT ON attacker__t
           FOR EACH ROW EXECUTE FUNCTION attacker__try()"#
        ),
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    pg.env
        .exec("INSERT INTO attacker.attacker__t VALUES ('go')");
    let log = pg.rows("SELECT what || ' -> ' || outcome FROM attacker.attacker__log");
    assert_eq!(
        log[0],
        format!("runs as -> wasmig:{db}/attacker"),
        "{log:#?}"
    );
    assert_eq!(log.len(), 9, "{log:#?}");
    assert!(log[1..].iter().all(|l| l.ends_with("-> 42501")), "{log:#?}");
    assert_eq!(pg.rows("SELECT count(*) FROM attacker.attacker__t"), ["1"]);
    assert_eq!(
        pg.rows(
            "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a \
             WHERE c.oid = 'attacker.attacker__t'::regclass AND a.grantee = 0"
        ),
        ["0"]
    );
    assert_eq!(
        pg.rows("SELECT count(*) FROM pg_cast WHERE castsource = 'attacker.attacker__e'::regtype"),
        ["0"]
    );
    // The plugin's own steps change its functions as before, and own them meanwhile.
    pg.script(
        "attacker",
        "0.3.0",
        "CREATE OR REPLACE FUNCTION attacker__j(attacker__e) RETURNS json LANGUAGE sql
           AS 'SELECT to_json(2)';
         DROP TRIGGER attacker__trg ON attacker__t;
         DROP FUNCTION attacker__try()",
        None,
    );
    pg.env.ok(&["up", "attacker@0.3.0"]);
    assert_eq!(
        pg.rows(
            "SELECT proowner::regrole::text FROM pg_proc \
             WHERE pronamespace = 'attacker'::regnamespace ORDER BY proname"
        ),
        [format!("\"wasmig:{db}/attacker\"")]
    );
    // Made to own anything else, the code role stops the plugin's steps until it is gone.
    pg.env.exec(&format!(
        "GRANT CREATE ON SCHEMA public TO \"wasmig:{db}/attacker\";
         SET ROLE \"wasmig:{db}/attacker\";
         CREATE TABLE public.attacker_made (x int);
         RESET ROLE"
    ));
    pg.script("attacker", "0.4.0", "SELECT 1", None);
    let err = pg.env.fails(&["up", "attacker@0.4.0"]);
    assert!(err.contains("attacker_made"), "{err}");
    pg.env.exec("DROP TABLE public.attacker_made");
    pg.env.ok(&["up", "attacker@0.4.0"]);
}

#[test]
fn another_sessions_temporary_code_stops_steps_only_while_it_can_reach_them() {
    // Fired by the application, the victim's code makes temporary functions in the
    // application's session, one of them running as its caller, and other objects there
    // (a collation, a text search configuration). wasmig's role cannot take them back there
    // (it may not even name them), but no other session can reach them either, so other
    // plugins' steps go on. Once the session gives a permanent object a use of them, or
    // holds a type of the plugin's (which its own statements find by its bare name), the
    // steps are refused, saying why.
    let pg = scripted();
    pg.script(
        "victim",
        "0.3.0",
        r#"CREATE TABLE victim__t (x int);
         CREATE FUNCTION victim__jam() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           EXECUTE 'CREATE FUNCTION pg_temp.victim__temp() RETURNS int LANGUAGE sql AS ''SELECT 1''';
           EXECUTE 'CREATE FUNCTION pg_temp.victim__temp2(int) RETURNS int LANGUAGE sql AS ''SELECT $1''';
           EXECUTE 'CREATE COLLATION pg_temp.victim__c FROM "C"';
           EXECUTE 'CREATE TEXT SEARCH CONFIGURATION pg_temp.victim__ts (COPY = simple)';
           RETURN NEW;
         END $f$;
         CREATE TRIGGER victim__trg AFTER INSERT ON victim__t
           FOR EACH ROW EXECUTE FUNCTION victim__jam();
         CREATE TABLE victim__u (x int);
         CREATE FUNCTION victim__typed() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           EXECUTE 'CREATE TYPE pg_temp.victim__tt AS (x int)';
           EXECUTE 'CREATE FUNCTION pg_temp.victim__tj(pg_temp.victim__tt) RETURNS json LANGUAGE sql AS ''SELECT to_json(current_user)''';
           EXECUTE 'CREATE CAST (pg_temp.victim__tt AS json) WITH FUNCTION pg_temp.victim__tj(pg_temp.victim__tt)';
           RETURN NEW;
         END $f$;
         CREATE TRIGGER victim__trg2 AFTER INSERT ON victim__u
           FOR EACH ROW EXECUTE FUNCTION victim__typed()"#,
        None,
    );
    pg.env.ok(&["up", "victim@0.3.0"]);
    let mut app = pg.client();
    app.batch_execute("INSERT INTO victim.victim__t VALUES (1)")
        .unwrap();
    assert_eq!(
        pg.rows(
            "SELECT count(*) FROM pg_proc WHERE proname IN ('victim__temp', 'victim__temp2') \
             AND NOT prosecdef AND pg_is_other_temp_schema(pronamespace)"
        ),
        ["2"]
    );
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x int)",
        None,
    );
    let dry = pg.env.run(&["up", "--dry-run", "attacker@0.2.0"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    assert_eq!(pg.rows("SELECT count(*) FROM attacker.attacker__t"), ["0"]);

    // A permanent table's default that calls the temporary function: the function could run
    // in a step that writes the table.
    app.batch_execute("CREATE TABLE public.app_counter (v int DEFAULT pg_temp.victim__temp())")
        .unwrap();
    pg.script(
        "attacker",
        "0.3.0",
        "CREATE TABLE attacker__u (x int)",
        None,
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    for part in [
        "cannot begin plugin attacker's step",
        "not applied: attacker 0.3.0",
        "plugin victim's code made the function",
        "in another session's temporary schema",
        "app_counter depends on objects there",
        "until that session ends",
        "revoke TEMPORARY on the database from PUBLIC",
    ] {
        assert!(err.contains(part), "{part:?} in:\n{err}");
    }
    app.batch_execute("DROP TABLE public.app_counter").unwrap();
    pg.env.ok(&["up", "attacker@0.3.0"]);

    // Made while a step runs, such a use fails that step when it ends.
    pg.script("attacker", "0.4.0", "SELECT pg_sleep(4)", None);
    let step = pg.env.spawn(&["up", "attacker@0.4.0"]);
    std::thread::sleep(Duration::from_millis(1500));
    app.batch_execute("CREATE TABLE public.app_late (v int DEFAULT pg_temp.victim__temp2(1))")
        .unwrap();
    let out = step.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("plugin attacker migration 0.4.0"), "{err}");
    assert!(
        err.contains("plugin victim's functions changed while"),
        "{err}"
    );
    app.batch_execute("DROP TABLE public.app_late").unwrap();
    pg.env.ok(&["up", "attacker@0.4.0"]);

    // A type of the plugin's there, with a cast to json: the session's own DDL finds it by
    // its bare name (a column `r victim__tt` of an application's table), and the cast then
    // runs the victim's function in whoever's session reads the column as json.
    app.batch_execute("INSERT INTO victim.victim__u VALUES (1)")
        .unwrap();
    pg.script(
        "attacker",
        "0.5.0",
        "CREATE TABLE attacker__v (x int)",
        None,
    );
    let err = pg.env.fails(&["up", "attacker@0.5.0"]);
    for part in [
        "not applied: attacker 0.5.0",
        "victim__tt to json",
        "made in another session's temporary schema",
        "until that session ends",
    ] {
        assert!(err.contains(part), "{part:?} in:\n{err}");
    }
    // The session ends, and its temporary objects with it.
    drop(app);
    let until = Instant::now() + Duration::from_secs(30);
    while pg.rows("SELECT count(*) FROM pg_proc WHERE proname = 'victim__tj'") != ["0"] {
        assert!(Instant::now() < until, "the session's objects stayed");
        std::thread::sleep(Duration::from_millis(100));
    }
    pg.env.ok(&["up", "attacker@0.5.0"]);
}

#[test]
fn a_step_that_grows_its_schema_past_the_quota_is_rolled_back() {
    let pg = scripted();
    pg.env.policy("[limits]\nmax_growth = \"1MiB\"\n");
    // About 4 MB of rows, in the plugin's own table: refused when the step ends.
    let err = pg.refused(
        "CREATE TABLE attacker__fill (b text);
         INSERT INTO attacker__fill
              SELECT repeat(md5(g::text), 30) FROM generate_series(1, 4000) g",
        "grew the database past its quota of 1 MiB",
    );
    assert!(err.contains("max_growth"), "{err}");
    assert!(!pg.env.tables().contains(&"attacker__fill".to_string()));
    // Within the quota, the same step applies.
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__fill (b text);
         INSERT INTO attacker__fill
              SELECT repeat(md5(g::text), 30) FROM generate_series(1, 100) g",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
}

#[test]
fn the_destructive_gate_holds_on_postgres() {
    let pg = scripted();
    pg.env
        .exec("INSERT INTO victim.victim__secret VALUES ('more')");
    for (up, destroys) in [
        ("DROP TABLE victim__secret", "drops table victim__secret"),
        (
            "ALTER TABLE victim__secret ADD COLUMN y int; ALTER TABLE victim__secret DROP COLUMN x",
            "drops column victim__secret.x",
        ),
        (
            "DELETE FROM victim__secret",
            "deletes every row of victim__secret",
        ),
        (
            "TRUNCATE victim__secret",
            "deletes every row of victim__secret",
        ),
        // Procedural code may run any DDL.
        (
            "DO $$ BEGIN EXECUTE 'DROP TABLE victim__secret'; END $$",
            "drops table victim__secret",
        ),
    ] {
        pg.script("victim", "0.3.0", up, None);
        let err = pg.env.fails(&["up", "victim@0.3.0"]);
        assert!(
            err.contains(&format!("destructive step refused: it {destroys}")),
            "{up}: {err}"
        );
    }
    // A renamed column and table keep their data.
    pg.script(
        "victim",
        "0.3.0",
        "ALTER TABLE victim__secret RENAME COLUMN x TO y; ALTER TABLE victim__secret RENAME TO victim__kept",
        None,
    );
    pg.env.ok(&["up", "victim@0.3.0"]);
    assert_eq!(
        pg.rows("SELECT y FROM victim.victim__kept ORDER BY y"),
        ["kept", "more"]
    );
    // Marked and allowed, a drop runs.
    pg.script(
        "victim",
        "0.4.0",
        "-- wasmig:destructive\nDROP TABLE victim__kept",
        None,
    );
    let err = pg.env.fails(&["up", "victim@0.4.0"]);
    assert!(err.contains("the operator does not allow it"), "{err}");
    pg.env.ok(&["up", "victim@0.4.0", "--allow-destructive"]);
    assert!(!pg.env.tables().contains(&"victim__kept".to_string()));
}

#[test]
fn a_dry_run_judges_a_step_against_what_its_earlier_steps_made() {
    let pg = scripted();
    // Uncommitted in the dry run: the table exists only in the plugin's own transaction.
    pg.script(
        "victim",
        "0.3.0",
        "CREATE TABLE victim__scratch (x int)",
        None,
    );
    pg.script("victim", "0.4.0", "DROP TABLE victim__scratch", None);
    let before = pg.dump();
    let plan = pg.env.run(&["plan", "victim@0.4.0"]);
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(
        out.contains("destructive: it drops table victim__scratch"),
        "{out}"
    );
    assert!(out.contains("would fail"), "{out}");
    assert_eq!(pg.dump(), before, "a dry run changes nothing");
}

#[test]
fn nothing_of_a_plugin_runs_at_the_commit_and_its_role_grants_no_role() {
    let pg = scripted();
    // A trigger PostgreSQL could defer to the commit, after the guard: refused even if it
    // never fires in the step.
    pg.refused(
        "CREATE TABLE attacker__t (x int);
         CREATE FUNCTION attacker__f() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN RETURN NULL; END $f$;
         CREATE CONSTRAINT TRIGGER attacker__late AFTER INSERT ON attacker__t
           DEFERRABLE INITIALLY IMMEDIATE FOR EACH ROW EXECUTE FUNCTION attacker__f()",
        "is deferrable",
    );
    // One that defers itself again while the host fires the deferred checks, so that its
    // second run would come at the commit.
    pg.refused(
        "CREATE TABLE attacker__t (x int);
         CREATE FUNCTION attacker__f() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           IF NEW.x < 2 THEN
             SET CONSTRAINTS ALL DEFERRED;
             INSERT INTO attacker.attacker__t VALUES (NEW.x + 1);
           ELSE
             GRANT SELECT ON attacker.attacker__t TO PUBLIC;
           END IF;
           RETURN NULL;
         END $f$;
         CREATE CONSTRAINT TRIGGER attacker__late AFTER INSERT ON attacker__t
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION attacker__f();
         INSERT INTO attacker__t VALUES (1)",
        "is deferrable",
    );
    assert!(
        pg.rows("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'attacker__t'") == ["0"]
    );
    // The same on a temporary table, which goes with the session but whose deferred event
    // would fire at the commit first.
    pg.refused(
        "CREATE FUNCTION attacker__f() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           IF NEW.x < 2 THEN
             SET CONSTRAINTS ALL DEFERRED;
             INSERT INTO pg_temp.attacker__t VALUES (NEW.x + 1);
           ELSE
             GRANT SELECT ON attacker.attacker__script TO PUBLIC;
           END IF;
           RETURN NULL;
         END $f$;
         CREATE TEMP TABLE attacker__t (x int);
         CREATE CONSTRAINT TRIGGER attacker__late AFTER INSERT ON pg_temp.attacker__t
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION attacker__f();
         INSERT INTO pg_temp.attacker__t VALUES (1)",
        "is deferrable",
    );
    assert_eq!(
        pg.rows(
            "SELECT count(*) FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a \
             WHERE c.relname = 'attacker__script' AND a.grantee = 0"
        ),
        ["0"]
    );
    // A deferrable constraint of PostgreSQL's own whose check calls the plugin's function (an
    // exclusion constraint over an expression, rechecked where rows conflicted): run by the
    // host's firing of the deferred checks, the function defers the constraints again and
    // queues one more check, which would run at the commit, after the guard (the setting the
    // step made is gone by then: the host resets the session's settings before the guard).
    let err = pg.refused(
        "SELECT pg_catalog.set_config('attacker.phase', 'step', false);
         CREATE FUNCTION attacker__again(x int) RETURNS void LANGUAGE plpgsql AS $f$
         DECLARE phase text := coalesce(pg_catalog.current_setting('attacker.phase', true), '');
         BEGIN
           IF phase = '' THEN
             CREATE TABLE attacker.attacker__late (x int);
             DELETE FROM attacker.attacker__t WHERE attacker__t.x = 2 AND tag = 'a';
           ELSIF phase = 'fire' AND x = 1 THEN
             SET CONSTRAINTS ALL DEFERRED;
             INSERT INTO attacker.attacker__t VALUES (2, 'b');
           END IF;
         END $f$;
         CREATE FUNCTION attacker__k(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
         BEGIN
           IF coalesce(pg_catalog.current_setting('attacker.phase', true), '') <> 'step' THEN
             PERFORM attacker.attacker__again(x);
           END IF;
           RETURN x;
         END $f$;
         CREATE TABLE attacker__t (x int, tag text,
           EXCLUDE USING btree (attacker__k(x) WITH =) DEFERRABLE INITIALLY DEFERRED);
         INSERT INTO attacker__t VALUES (1, 'a');
         INSERT INTO attacker__t VALUES (1, 'b');
         DELETE FROM attacker__t WHERE tag = 'a';
         INSERT INTO attacker__t VALUES (2, 'a');
         SELECT pg_catalog.set_config('attacker.phase', 'fire', false)",
        "",
    );
    // Refused for the index expression that calls the plugin's function, which ANALYZE
    // would run between steps, and for the check it would queue for the commit.
    assert!(
        err.contains("which ANALYZE") || err.contains("deferred constraints again"),
        "{err}"
    );
    assert_eq!(
        pg.rows("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'attacker__late'"),
        ["0"]
    );
    // Its own role granted to another plugin's (up to PostgreSQL 15 a role may grant itself).
    let err = pg.refused(
        "DO $$ BEGIN EXECUTE pg_catalog.format('GRANT %I TO %I', current_user,
             'wasmig/' || current_database() || '/victim'); END $$",
        "attacker",
    );
    // Refused by the server where it keeps no such right, or by the guard where it does.
    assert!(
        err.contains("the step granted role") || err.contains("must have admin option"),
        "{err}"
    );
    assert!(pg.rows(
        "SELECT 1 FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles r ON r.oid = m.member \
         WHERE r.rolname LIKE 'wasmig/%/victim'"
    )
    .is_empty());
    // The victim still migrates.
    pg.script("victim", "0.3.0", "CREATE TABLE victim__more (x int)", None);
    pg.env.ok(&["up", "victim@0.3.0"]);
    // The same through foreign keys: a check the host fires runs the plugin's cast (the
    // check's query converts the key's enum to the referenced int4 with it), which defers
    // the constraints again, queues a check on another table and makes that key not
    // deferrable. The queued event stays deferred, on a table with no deferrable trigger
    // left, and its check would run the cast once more at the commit.
    pg.refused(
        "CREATE TYPE attacker__e AS ENUM ('one', 'two');
         CREATE TABLE attacker__mode (m text);
         INSERT INTO attacker__mode VALUES ('');
         CREATE FUNCTION attacker__e2i(v attacker__e) RETURNS int LANGUAGE plpgsql AS $f$
         DECLARE mode text;
         BEGIN
           SELECT m INTO mode FROM attacker.attacker__mode;
           IF v::text = 'one' AND mode = 'arm' THEN
             UPDATE attacker.attacker__mode SET m = 'fire';
             SET CONSTRAINTS ALL DEFERRED;
             DELETE FROM attacker.attacker__b2 WHERE id = 1;
             ALTER TABLE attacker.attacker__a2 ALTER CONSTRAINT attacker__fk2 NOT DEFERRABLE;
           ELSIF v::text = 'two' AND mode = 'fire' THEN
             UPDATE attacker.attacker__mode SET m = 'done';
             CREATE TABLE attacker.attacker__late (x int);
           END IF;
           RETURN CASE v::text WHEN 'one' THEN 1 ELSE 2 END;
         END $f$;
         CREATE CAST (attacker__e AS int4) WITH FUNCTION attacker__e2i(attacker__e) AS IMPLICIT;
         CREATE TABLE attacker__b1 (id int PRIMARY KEY);
         CREATE TABLE attacker__b2 (id int PRIMARY KEY);
         INSERT INTO attacker__b1 VALUES (1), (2);
         INSERT INTO attacker__b2 VALUES (1), (2);
         CREATE TABLE attacker__a1 (x attacker__e CONSTRAINT attacker__fk1
           REFERENCES attacker__b1 (id) DEFERRABLE INITIALLY DEFERRED);
         CREATE TABLE attacker__a2 (x attacker__e);
         INSERT INTO attacker__a2 VALUES ('two');
         ALTER TABLE attacker__a2 ADD CONSTRAINT attacker__fk2 FOREIGN KEY (x)
           REFERENCES attacker__b2 (id) DEFERRABLE INITIALLY DEFERRED;
         DROP CAST (attacker__e AS int4);
         CREATE CAST (attacker__e AS int4) WITH FUNCTION attacker__e2i(attacker__e);
         UPDATE attacker__mode SET m = 'arm' WHERE m IS NOT NULL;
         INSERT INTO attacker__a1 VALUES ('one')",
        "deferred constraints again",
    );
    assert_eq!(
        pg.rows("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'attacker__late'"),
        ["0"]
    );
    // The same with a referenced row moved to another partition: the key's check is queued
    // on the partitioned table, whose own rows never change, and its query at the commit is
    // planned with a partition's check, which calls the plugin's function. Planned as the
    // referenced table's owner, that check is what the guard refuses first.
    pg.refused(
        "CREATE TYPE attacker__e AS ENUM ('one', 'two');
         CREATE TABLE attacker__mode (m text);
         INSERT INTO attacker__mode VALUES ('');
         CREATE TABLE attacker__pk (id int PRIMARY KEY) PARTITION BY RANGE (id);
         CREATE TABLE attacker__pk1 PARTITION OF attacker__pk FOR VALUES FROM (0) TO (10);
         CREATE TABLE attacker__pk2 PARTITION OF attacker__pk FOR VALUES FROM (10) TO (20);
         INSERT INTO attacker__pk VALUES (1);
         CREATE TABLE attacker__r (x int CONSTRAINT attacker__rfk REFERENCES attacker__pk (id)
           DEFERRABLE INITIALLY DEFERRED);
         INSERT INTO attacker__r VALUES (1);
         CREATE FUNCTION attacker__late() RETURNS void LANGUAGE plpgsql AS $f$
         BEGIN
           UPDATE attacker.attacker__mode SET m = 'done' WHERE m IS NOT NULL;
           CREATE TABLE attacker.attacker__late (x int);
         END $f$;
         CREATE FUNCTION attacker__f(n int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $f$
         BEGIN
           IF (SELECT m FROM attacker.attacker__mode) = 'fire' THEN
             PERFORM attacker.attacker__late();
           END IF;
           RETURN true;
         END $f$;
         ALTER TABLE attacker__pk1 ADD CONSTRAINT attacker__chk CHECK (attacker.attacker__f(0));
         CREATE FUNCTION attacker__e2i(v attacker__e) RETURNS int LANGUAGE plpgsql AS $f$
         BEGIN
           IF v::text = 'one' AND (SELECT m FROM attacker.attacker__mode) = 'arm' THEN
             SET CONSTRAINTS ALL DEFERRED;
             UPDATE attacker.attacker__pk SET id = 11 WHERE id = 1;
             INSERT INTO attacker.attacker__pk VALUES (1);
             UPDATE attacker.attacker__mode SET m = 'fire' WHERE m IS NOT NULL;
           END IF;
           RETURN CASE v::text WHEN 'one' THEN 1 ELSE 2 END;
         END $f$;
         CREATE CAST (attacker__e AS int4) WITH FUNCTION attacker__e2i(attacker__e) AS IMPLICIT;
         CREATE TABLE attacker__b1 (id int PRIMARY KEY);
         INSERT INTO attacker__b1 VALUES (1), (2);
         CREATE TABLE attacker__a1 (x attacker__e CONSTRAINT attacker__fk1
           REFERENCES attacker__b1 (id) DEFERRABLE INITIALLY DEFERRED);
         DROP CAST (attacker__e AS int4);
         CREATE CAST (attacker__e AS int4) WITH FUNCTION attacker__e2i(attacker__e);
         UPDATE attacker__mode SET m = 'arm' WHERE m IS NOT NULL;
         INSERT INTO attacker__a1 VALUES ('one')",
        "constraint attacker__chk on table attacker.attacker__pk1 reaches attacker.attacker__f(integer)",
    );
    assert_eq!(
        pg.rows("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'attacker__late'"),
        ["0"]
    );
    // A cursor declared WITH HOLD (through EXECUTE, past the check of the statement's kind)
    // runs its whole query at the commit: the host closes it first, so it never runs.
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE FUNCTION attacker__late() RETURNS int LANGUAGE plpgsql AS $f$
         BEGIN CREATE TABLE attacker.attacker__late (x int); RETURN 1; END $f$;
         DO $d$ BEGIN
           EXECUTE 'DECLARE attacker__c CURSOR WITH HOLD FOR SELECT attacker.attacker__late()';
         END $d$",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    assert_eq!(
        pg.rows("SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'attacker__late'"),
        ["0"]
    );
}

#[test]
fn a_plugin_table_locked_by_the_application_is_waited_for_only_until_the_lock_timeout() {
    let pg = scripted();
    pg.script("victim", "0.3.0", "CREATE TABLE victim__more (x int)", None);
    // The application holds the victim's table; the step's checks must not wait forever.
    let mut app = pg.client();
    app.batch_execute("BEGIN; LOCK TABLE victim.victim__secret IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let mut child = pg
        .env
        .command()
        .args([
            "up",
            "victim@0.3.0",
            "--lock-timeout",
            "1s",
            "--retries",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the step waited for the application's lock past its lock timeout");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("lock"), "{err}");
    app.batch_execute("ROLLBACK").unwrap();
    pg.env.ok(&["up", "victim@0.3.0"]);
}

#[test]
fn a_version_1_ledger_is_read_as_it_is_and_brought_up_to_date_by_the_next_run() {
    let pg = Pg::new();
    pg.env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    pg.env.ok(&["up"]);
    // Version 1's ledger: no applied_by, no record_step that takes it.
    pg.env.exec(
        "ALTER TABLE wasmig.ledger DROP COLUMN applied_by;
         DROP FUNCTION wasmig.record_step(text, text, text, text, text, bigint, bigint, text,
             text, text, text, text, text);
         UPDATE wasmig.meta SET value = '1' WHERE key = 'schema_version'",
    );
    let history = pg.env.json(&["history"]);
    assert_eq!(history[0]["applied_by"], "", "{history:#}");
    assert_eq!(
        pg.rows("SELECT value FROM wasmig.meta WHERE key = 'schema_version'"),
        ["1"],
        "a read changes nothing"
    );
    pg.env.add(artifacts::ACCOUNTS, "accounts.wasm");
    let out = pg
        .env
        .command()
        .arg("up")
        .env("USER", "deployer")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pg.rows("SELECT value FROM wasmig.meta WHERE key = 'schema_version'"),
        ["2"]
    );
    let history = pg.env.json(&["history"]);
    let last = history.as_array().unwrap().last().unwrap();
    assert_eq!(last["version"], "0.2.0");
    assert!(
        last["applied_by"]
            .as_str()
            .unwrap()
            .starts_with("deployer@"),
        "{history:#}"
    );
}

#[test]
fn a_guard_another_wasmig_made_is_replaced_before_the_next_step_runs() {
    let pg = Pg::new();
    pg.env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    pg.env.ok(&["up"]);
    let digest = pg.rows("SELECT value FROM wasmig.meta WHERE key = 'functions_sha256'");
    assert_eq!(digest.len(), 1);
    // Another wasmig's guard (here one that checks nothing), made by a wasmig that records
    // nothing of it in wasmig.meta.
    pg.env.exec(
        "CREATE OR REPLACE FUNCTION wasmig.guard_verify(text, text[], text[], text[], text)
             RETURNS SETOF text LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$",
    );
    let stub = "SELECT count(*) FROM pg_proc WHERE proname = 'guard_verify' \
                AND prosrc LIKE '%BEGIN RETURN; END%'";
    pg.env.json(&["status"]);
    assert_eq!(pg.rows(stub), ["1"], "a read changes nothing");
    pg.env.add(artifacts::ACCOUNTS, "accounts.wasm");
    pg.env.ok(&["up"]);
    assert_eq!(
        pg.rows("SELECT value FROM wasmig.meta WHERE key = 'functions_sha256'"),
        digest
    );
    assert_eq!(pg.rows(stub), ["0"]);
    let source = pg.rows(
        "SELECT prosrc FROM pg_proc WHERE oid = 'wasmig.guard_verify(text, text[], text[], \
         text[], text)'::regprocedure",
    );
    assert!(
        source[0].contains("pg_stat_get_xact_tuples_inserted"),
        "{source:?}"
    );
    // A newer wasmig's functions stay: two versions running at once do not replace each
    // other's at every run.
    pg.env.exec(
        "UPDATE wasmig.meta SET value = 'newer' WHERE key = 'functions_sha256';
         UPDATE wasmig.meta SET value = '99.0.0' WHERE key = 'functions_wasmig_version'",
    );
    pg.env.add(artifacts::NOTES, "notes.wasm");
    pg.env.ok(&["up"]);
    assert_eq!(pg.rows("SELECT count(*) FROM notes.notes__note"), ["1"]);
    assert_eq!(
        pg.rows("SELECT value FROM wasmig.meta WHERE key = 'functions_sha256'"),
        ["newer"]
    );
}

#[test]
fn a_plugin_that_cannot_be_set_up_fails_at_its_own_turn_after_the_plugins_before_it_ran() {
    // The run gets `notes`'s session ready while `accounts`'s steps run; setting it up
    // fails (its schema is taken), which must neither stop `accounts` nor hide the cause.
    let pg = Pg::new();
    pg.env.exec("CREATE SCHEMA notes");
    pg.env.add(artifacts::ACCOUNTS, "accounts.wasm");
    pg.env.ok(&["up", "accounts@0.1.0"]);
    pg.env.add(artifacts::NOTES, "notes.wasm");
    let err = pg.env.fails(&["up"]);
    assert!(
        err.contains("notes") && err.contains("exists and is not the plugin's"),
        "{err}"
    );
    let ledger = pg.ledger();
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    assert!(
        ledger
            .iter()
            .all(|l| l.starts_with("accounts|") && l.contains("|up|succeeded|")),
        "{ledger:?}"
    );
    assert_eq!(pg.column("to_regclass('notes.notes__note')"), [""]);
    // With the schema free, the next run applies `notes`.
    pg.env.exec("DROP SCHEMA notes");
    pg.env.ok(&["up"]);
    assert_eq!(pg.rows("SELECT count(*) FROM notes.notes__note"), ["1"]);
}

#[test]
fn a_function_that_makes_itself_run_as_its_caller_is_made_the_plugins_again_by_the_next_step() {
    // Applied, the trigger's function runs as its owner, the attacker's code role, which
    // may change the function: fired by the application, it makes itself SECURITY INVOKER,
    // which would run it with the rights of whoever fires it next. The attacker's next
    // step, whatever it writes, makes it run as its owner again.
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x text);
         CREATE FUNCTION attacker__flip() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           EXECUTE 'ALTER FUNCTION attacker.attacker__flip() SECURITY INVOKER';
           RETURN NEW;
         END $f$;
         CREATE TRIGGER attacker__trg BEFORE INSERT ON attacker__t
           FOR EACH ROW EXECUTE FUNCTION attacker__flip()",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    let definer = "SELECT prosecdef::text FROM pg_proc WHERE proname = 'attacker__flip'";
    assert_eq!(pg.rows(definer), ["true"]);
    pg.env
        .exec("INSERT INTO attacker.attacker__t VALUES ('fired')");
    assert_eq!(pg.rows(definer), ["false"], "the function changed itself");
    // A step that writes no function.
    pg.script(
        "attacker",
        "0.3.0",
        "INSERT INTO attacker__t VALUES ('step')",
        None,
    );
    pg.env.ok(&["up", "attacker@0.3.0"]);
    assert_eq!(pg.rows(definer), ["true"]);
}

/// `reader`, granted reads of `victim`, with a secret of its own; and a victim whose view
/// calls its function `victim__f`, which copies the reader's secret into the victim's
/// table when it runs with the reader's rights (and takes a value of the victim's sequence,
/// which no rollback gives back). Fired by the application, the victim's trigger makes
/// `victim__f` run as its caller and grants it, the view, the table and the sequence to the
/// reader.
fn a_victim_that_lends_its_code_to_its_reader() -> Pg {
    let pg = scripted();
    pg.env.add(artifacts::READER, "reader.wasm");
    pg.env.policy("[plugins.reader]\nreads = [\"victim\"]\n");
    pg.env.ok(&["up", "reader@0.1.0"]);
    pg.script(
        "reader",
        "0.2.0",
        "CREATE TABLE reader__secret (x text); INSERT INTO reader__secret VALUES ('hush')",
        None,
    );
    pg.env.ok(&["up", "reader@0.2.0"]);
    pg.script(
        "victim",
        "0.3.0",
        "CREATE TABLE victim__loot (x text);
         CREATE SEQUENCE victim__seq;
         CREATE FUNCTION victim__f() RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN
           IF current_user::text LIKE 'wasmig/%/reader' THEN
             PERFORM nextval('victim.victim__seq');
             INSERT INTO victim.victim__loot SELECT x FROM reader.reader__secret;
           END IF;
           RETURN current_user::text;
         END $f$;
         CREATE VIEW victim__v AS SELECT victim__f() AS who;
         CREATE TABLE victim__t (x text);
         CREATE FUNCTION victim__prime() RETURNS trigger LANGUAGE plpgsql AS $f$
         DECLARE r text := 'wasmig/' || current_database() || '/reader';
         BEGIN
           EXECUTE 'ALTER FUNCTION victim.victim__f() SECURITY INVOKER';
           EXECUTE format('GRANT EXECUTE ON FUNCTION victim.victim__f() TO %I', r);
           EXECUTE format('GRANT INSERT ON victim.victim__loot TO %I', r);
           EXECUTE format('GRANT USAGE ON SEQUENCE victim.victim__seq TO %I', r);
           EXECUTE format('GRANT SELECT ON victim.victim__v TO %I', r);
           RETURN NEW;
         END $f$;
         CREATE TRIGGER victim__trg BEFORE INSERT ON victim__t
           FOR EACH ROW EXECUTE FUNCTION victim__prime()",
        None,
    );
    pg.env.ok(&["up", "victim@0.3.0"]);
    pg
}

#[test]
fn another_plugins_code_never_runs_with_a_plugins_rights_whatever_it_changed_between_steps() {
    let pg = a_victim_that_lends_its_code_to_its_reader();
    pg.env.exec("INSERT INTO victim.victim__t VALUES ('go')");
    assert_eq!(
        pg.rows("SELECT prosecdef::text FROM pg_proc WHERE proname = 'victim__f'"),
        ["false"],
        "the victim's function changed itself"
    );
    // The reader's step reads the victim's view: the victim's function may not run with the
    // reader's rights (the reader may not read the view, nor call the function), in a dry
    // run either.
    pg.script(
        "reader",
        "0.3.0",
        "CREATE TABLE reader__copy AS SELECT who FROM victim.victim__v",
        None,
    );
    let out = pg.env.run(&["up", "--dry-run", "reader@0.3.0"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("permission denied for view victim__v"),
        "{said}"
    );
    let err = pg.env.fails(&["up", "reader@0.3.0"]);
    assert!(
        err.contains("permission denied for view victim__v"),
        "{err}"
    );
    assert_eq!(pg.rows("SELECT count(*) FROM victim.victim__loot"), ["0"]);
    assert_eq!(
        pg.rows("SELECT is_called::text FROM victim.victim__seq"),
        ["false"]
    );
    assert_eq!(pg.column("to_regclass('reader.reader__copy')"), [""]);
    // A step that does not call it runs, and takes the victim's changes back.
    pg.script("reader", "0.3.0", "CREATE TABLE reader__own (x int)", None);
    pg.env.ok(&["up", "reader@0.3.0"]);
    assert_eq!(
        pg.rows(
            "SELECT prosecdef::text || ' ' || has_function_privilege(
               'wasmig/' || current_database() || '/reader',
               'victim.victim__f()', 'EXECUTE')::text
             FROM pg_proc WHERE proname = 'victim__f'"
        ),
        ["true false"]
    );
}

#[test]
fn another_plugins_row_security_policies_and_views_never_run_in_a_step() {
    // Between its steps, the victim's code (here the operator, as the victim's role, in its
    // place) puts a policy that runs any SQL on its table, and a view that does, and grants
    // the reader the view and its sequence: read by the reader's step, either would run
    // that SQL with the reader's rights.
    let pg = a_victim_that_lends_its_code_to_its_reader();
    pg.script(
        "victim",
        "0.4.0",
        "CREATE TABLE victim__pub (x int); INSERT INTO victim__pub VALUES (1)",
        None,
    );
    pg.env.ok(&["up", "victim@0.4.0"]);
    let steal =
        "query_to_xml('SELECT setval(''victim.victim__seq'', 42)', true, true, '') IS NOT NULL";
    pg.env.exec(&format!(
        "SET ROLE \"wasmig/{db}/victim\";
         CREATE POLICY victim__p ON victim.victim__pub USING ({steal});
         ALTER TABLE victim.victim__pub ENABLE ROW LEVEL SECURITY;
         CREATE VIEW victim.victim__w AS SELECT 1 AS one WHERE {steal};
         GRANT SELECT ON victim.victim__w TO \"wasmig/{db}/reader\";
         GRANT USAGE, UPDATE ON SEQUENCE victim.victim__seq TO \"wasmig/{db}/reader\";
         RESET ROLE",
        db = pg.name
    ));
    pg.script(
        "reader",
        "0.3.0",
        "CREATE TABLE reader__copy AS SELECT x FROM victim.victim__pub",
        None,
    );
    let err = pg.env.fails(&["up", "reader@0.3.0"]);
    assert!(err.contains("row-level security"), "{err}");
    pg.script(
        "reader",
        "0.3.0",
        "CREATE TABLE reader__copy AS SELECT one FROM victim.victim__w",
        None,
    );
    let err = pg.env.fails(&["up", "reader@0.3.0"]);
    assert!(
        err.contains("permission denied for view victim__w"),
        "{err}"
    );
    assert_eq!(
        pg.rows("SELECT is_called::text FROM victim.victim__seq"),
        ["false"]
    );
    // The victim's base tables stay readable.
    pg.script(
        "reader",
        "0.3.0",
        "CREATE TABLE reader__copy AS SELECT x FROM victim.victim__secret",
        None,
    );
    pg.env.ok(&["up", "reader@0.3.0"]);
}

#[test]
fn a_plugins_session_keeps_row_security_off_and_its_temporary_schema_last() {
    // What another plugin's code could do in this session, running without a check of
    // EXECUTE: turn row security on (its policies would run with this plugin's rights), or
    // search the temporary schema first (its temporary view would stand in for a table).
    let pg = scripted();
    pg.refused(
        "-- each
SELECT set_config('row_security', 'on', false)
-- next
SELECT 1",
        "row security is on in the plugin's session",
    );
    pg.refused(
        "-- each
CREATE TEMP TABLE attacker__t (x int)
-- next
SELECT set_config('search_path', 'pg_temp, pg_catalog, attacker', false)
-- next
SELECT 1",
        "resolves names in its temporary schema before others",
    );
    // By default, the plugin's own table comes before a temporary one of the same name.
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__same (x text); INSERT INTO attacker__same VALUES ('schema');
         CREATE TEMP TABLE attacker__same (x text); INSERT INTO attacker__same VALUES ('found');
         CREATE TABLE attacker__seen AS SELECT x FROM attacker__same",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    assert_eq!(
        pg.rows("SELECT x FROM attacker.attacker__seen ORDER BY x"),
        ["found", "schema"]
    );
}

#[test]
fn another_plugins_code_the_server_calls_without_execute_stops_other_steps_until_gone() {
    // Made between the victim's steps (here by the operator as the victim's role, in the
    // place of its trigger): a cast of its type to json, which `to_json` applies in the
    // reader's session with no check of EXECUTE. The reader's steps do not run meanwhile.
    let pg = a_victim_that_lends_its_code_to_its_reader();
    pg.env.exec(&format!(
        "SET ROLE \"wasmig/{db}/victim\";
         CREATE TYPE victim.victim__e AS ENUM ('a');
         CREATE FUNCTION victim.victim__j(victim.victim__e) RETURNS json LANGUAGE sql
           AS 'SELECT to_json(current_user::text)';
         CREATE CAST (victim.victim__e AS json) WITH FUNCTION victim.victim__j(victim.victim__e);
         RESET ROLE",
        db = pg.name
    ));
    pg.script("reader", "0.3.0", "CREATE TABLE reader__own (x int)", None);
    let err = pg.env.fails(&["up", "reader@0.3.0"]);
    assert!(
        err.contains("plugin victim's cast from victim.victim__e to json runs its code"),
        "{err}"
    );
    pg.env.exec("DROP CAST (victim.victim__e AS json)");
    // An operator over the victim's own function with a built-in estimator, which calls the
    // function itself while the reader's query is planned.
    pg.env.exec(&format!(
        "SET ROLE \"wasmig/{db}/victim\";
         CREATE FUNCTION victim.victim__cmp(victim.victim__e, victim.victim__e) RETURNS bool
           LANGUAGE sql AS 'SELECT $1 = $2';
         CREATE OPERATOR victim.=== (LEFTARG = victim.victim__e, RIGHTARG = victim.victim__e,
           FUNCTION = victim.victim__cmp, RESTRICT = eqsel);
         RESET ROLE",
        db = pg.name
    ));
    let err = pg.env.fails(&["up", "reader@0.3.0"]);
    assert!(
        err.contains("plugin victim's operator victim.===(victim.victim__e,victim.victim__e)'s estimator eqsel"),
        "{err}"
    );
    pg.env
        .exec("DROP OPERATOR victim.=== (victim.victim__e, victim.victim__e)");
    pg.env.ok(&["up", "reader@0.3.0"]);
}

#[test]
fn another_plugins_code_changed_while_a_step_runs_rolls_the_step_back() {
    let pg = a_victim_that_lends_its_code_to_its_reader();
    // The victim's function is its own and granted to no one as the reader's step begins;
    // the application fires the victim's trigger while the step sleeps, which makes a
    // function of the victim's run as its caller and grants it to the reader; the step then
    // calls it, and it writes the reader's table with the reader's rights.
    pg.script(
        "victim",
        "0.4.0",
        "CREATE FUNCTION victim__g() RETURNS text LANGUAGE plpgsql AS $f$
         BEGIN
           IF current_user::text LIKE 'wasmig/%/reader' THEN
             INSERT INTO reader.reader__secret VALUES ('forged by the victim');
           END IF;
           RETURN current_user::text;
         END $f$;
         CREATE TABLE victim__t2 (x text);
         CREATE FUNCTION victim__prime2() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN
           EXECUTE 'ALTER FUNCTION victim.victim__g() SECURITY INVOKER';
           EXECUTE format('GRANT EXECUTE ON FUNCTION victim.victim__g() TO %I',
                          'wasmig/' || current_database() || '/reader');
           RETURN NEW;
         END $f$;
         CREATE TRIGGER victim__trg2 BEFORE INSERT ON victim__t2
           FOR EACH ROW EXECUTE FUNCTION victim__prime2()",
        None,
    );
    pg.env.ok(&["up", "victim@0.4.0"]);
    pg.script(
        "reader",
        "0.3.0",
        // Reading the victim's table, the statement takes a lock, and with it sees what
        // the catalogs hold now.
        "SELECT pg_sleep(3);
         CREATE TABLE reader__copy AS SELECT victim.victim__g() AS who FROM victim.victim__t2",
        None,
    );
    let runner = pg.env.spawn(&["up", "reader@0.3.0"]);
    plugin_session_pid(&pg, "SELECT pg_sleep(3)");
    pg.env.exec("INSERT INTO victim.victim__t2 VALUES ('go')");
    let out = runner.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("plugin victim's functions changed while the step ran"),
        "{err}"
    );
    assert_eq!(pg.rows("SELECT x FROM reader.reader__secret"), ["hush"]);
    assert_eq!(pg.column("to_regclass('reader.reader__copy')"), [""]);
    let last = pg.ledger().pop().unwrap();
    assert!(last.starts_with("reader|0.3.0|up|failed|"), "{last}");
}

#[test]
fn a_function_made_while_a_steps_begin_takes_back_anothers_is_in_the_steps_record() {
    let pg = a_victim_that_lends_its_code_to_its_reader();
    // The application fires the victim's trigger: its function runs as its caller and the
    // reader may call it, which the reader's next begin takes back.
    pg.env.exec("INSERT INTO victim.victim__t VALUES ('go')");
    pg.script("reader", "0.3.0", "CREATE TABLE reader__w (x int)", None);
    let code = format!("wasmig:{}/victim", pg.name);
    // Another session changes the same function and keeps its transaction open: the
    // begin's take-back waits for it.
    let mut holder = pg.client();
    holder
        .batch_execute(&format!(
            "BEGIN; SET ROLE \"{code}\"; ALTER FUNCTION victim.victim__f() SECURITY INVOKER"
        ))
        .unwrap();
    let runner = pg.env.spawn(&["up", "reader@0.3.0"]);
    let until = Instant::now() + Duration::from_secs(30);
    while pg
        .rows(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND query LIKE '%step_begin%' AND wait_event_type = 'Lock'",
        )
        .is_empty()
    {
        assert!(Instant::now() < until, "the reader's begin never waited");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Meanwhile the victim's code makes a function in its session's temporary schema,
    // which can reach no step: it stops none, and the reader's record holds it.
    let mut maker = pg.client();
    maker
        .batch_execute(&format!(
            "SET ROLE \"{code}\";
             CREATE FUNCTION pg_temp.victim__w1() RETURNS int LANGUAGE sql AS 'SELECT 1';
             RESET ROLE"
        ))
        .unwrap();
    holder.batch_execute("ROLLBACK").unwrap();
    let out = runner.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        pg.rows("SELECT prosecdef::text FROM pg_proc WHERE proname = 'victim__f'"),
        ["true"],
        "the reader's begin took the victim's function back"
    );
    assert_eq!(
        pg.column("to_regclass('reader.reader__w')::text"),
        ["reader.reader__w"]
    );
    drop(maker);
}

#[test]
fn a_plugin_reads_the_tables_the_plugin_it_reads_made_earlier_in_the_same_run() {
    // `watcher` reads `victim` and runs after it (by name).
    let pg = scripted();
    pg.env.add(artifacts::WATCHER, "watcher.wasm");
    pg.env.policy("[plugins.watcher]\nreads = [\"victim\"]\n");
    pg.env.ok(&["up", "watcher@0.1.0"]);
    pg.script(
        "victim",
        "0.3.0",
        "CREATE TABLE victim__fresh (x text); INSERT INTO victim__fresh VALUES ('new')",
        None,
    );
    pg.script(
        "watcher",
        "0.2.0",
        "CREATE TABLE watcher__copy AS SELECT x FROM victim.victim__fresh",
        None,
    );
    // One run: the victim's step makes the table, then the watcher's step reads it.
    let ran: Vec<String> = pg
        .env
        .json_lines(&["up"])
        .iter()
        .filter(|l| l["event"] == "step")
        .map(|s| {
            format!(
                "{} {}",
                s["plugin"].as_str().unwrap(),
                s["version"].as_str().unwrap()
            )
        })
        .collect();
    let victim = ran.iter().position(|s| s == "victim 0.3.0").unwrap();
    let watcher = ran.iter().position(|s| s == "watcher 0.2.0").unwrap();
    assert!(victim < watcher, "{ran:?}");
    assert_eq!(pg.rows("SELECT x FROM watcher.watcher__copy"), ["new"]);
}

#[test]
fn a_ledger_row_the_server_refuses_leaves_nothing_of_the_step() {
    // The ledger row goes to the server with the step's COMMIT: when the row fails, the
    // COMMIT must roll back, not commit the step's tables without their row.
    let pg = Pg::new();
    pg.env.add(artifacts::ACCOUNTS, "accounts.wasm");
    pg.env.ok(&["up", "accounts@0.1.0"]);
    pg.client()
        .batch_execute(
            "CREATE FUNCTION public.refuse_accounts_0_2() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.plugin = 'accounts' AND NEW.version = '0.2.0' AND NEW.outcome = 'succeeded'
               THEN RAISE EXCEPTION 'the operator refuses this row';
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON wasmig.ledger
                FOR EACH ROW EXECUTE FUNCTION public.refuse_accounts_0_2();",
        )
        .unwrap();
    let before = pg.dump();
    let err = pg.env.fails(&["up"]);
    assert!(
        err.contains("accounts 0.2.0")
            && err.contains("cannot write the ledger")
            && err.contains("the operator refuses this row"),
        "{err}"
    );
    assert_eq!(pg.dump(), before, "nothing of the step stays");
    assert_eq!(
        pg.column("SELECT max(version) FROM wasmig.applied WHERE plugin = 'accounts'"),
        ["0.1.0"]
    );
    // The failure is recorded, in a transaction of its own.
    let ledger = pg.ledger();
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    assert!(
        ledger[1].starts_with("accounts|0.2.0|up|failed|")
            && ledger[1].contains("the operator refuses this row"),
        "{ledger:?}"
    );
    // Once the operator lets it be written, the step applies.
    pg.client()
        .batch_execute("DROP TRIGGER refuse ON wasmig.ledger")
        .unwrap();
    pg.env.ok(&["up"]);
    assert!(
        pg.ledger().last().unwrap().starts_with("accounts|"),
        "{:?}",
        pg.ledger()
    );
}

#[test]
fn a_script_statement_that_returns_rows_of_the_plugins_own_type_does_not_hide_a_later_error() {
    // A script's statements go to the server together; a row of a type the client has not
    // seen (the plugin's enum) must not make the client ask the server about it behind the
    // failed statement, which would blame the wrong statement with the wrong error.
    let pg = scripted();
    pg.script(
        "victim",
        "0.3.0",
        "CREATE TYPE victim__mood AS ENUM ('happy', 'sad');
         CREATE TABLE victim__feeling (id integer PRIMARY KEY, mood victim__mood)",
        None,
    );
    pg.env.ok(&["up", "victim@0.3.0"]);
    pg.script(
        "victim",
        "0.4.0",
        "INSERT INTO victim__feeling VALUES (1, 'happy') RETURNING mood;
         INSERT INTO victim__feeling VALUES (1, 'sad');
         CREATE TABLE victim__never (x integer)",
        None,
    );
    let before = pg.dump();
    let err = pg.env.fails(&["up", "victim@0.4.0"]);
    assert!(
        err.contains("plugin victim migration 0.4.0")
            && err.contains("duplicate key value violates unique constraint"),
        "{err}"
    );
    assert_eq!(pg.dump(), before);
    let statements = &pg.rows(
        "SELECT statements FROM wasmig.ledger WHERE version = '0.4.0' AND outcome = 'failed'",
    )[0];
    assert!(statements.contains("(1, 'sad')"), "{statements}");
    assert!(!statements.contains("victim__never"), "{statements}");
}

#[test]
fn a_plugin_reads_values_of_its_own_types_in_every_step_of_a_run() {
    // The client looks a type it has not seen up with a statement it prepares once per
    // session; what ends a step's session state must not take that statement away.
    let pg = scripted();
    pg.script(
        "victim",
        "0.3.0",
        "CREATE TYPE victim__first AS ENUM ('one');
         CREATE TABLE victim__a (v victim__first); INSERT INTO victim__a VALUES ('one')",
        None,
    );
    pg.script("victim", "0.4.0", "-- query\nSELECT v FROM victim__a", None);
    pg.script(
        "victim",
        "0.5.0",
        "CREATE TYPE victim__second AS ENUM ('two');
         CREATE TABLE victim__b (v victim__second); INSERT INTO victim__b VALUES ('two')",
        None,
    );
    pg.script("victim", "0.6.0", "-- query\nSELECT v FROM victim__b", None);
    // One run, one session of the plugin's: each query looks a new type up.
    pg.env.ok(&["up"]);
    assert_eq!(
        pg.column("SELECT max(version) FROM wasmig.applied WHERE plugin = 'victim'"),
        ["0.6.0"]
    );
}

/// Undoes the attacker's steps (0.2.0 has no down step: what it made stays), so that `wasmig
/// test` takes the database for a scratch one, and runs `wasmig test` on the attacker's
/// file; its output, stdout then stderr.
fn test_attacker_over_what_it_left(pg: &Pg) -> String {
    pg.env.ok(&["uninstall", "attacker"]);
    let plugin = pg.env.plugins.join("attacker.wasm");
    let out = pg.env.run(&["test", plugin.to_str().unwrap()]);
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn wasmig_test_reads_a_plugins_rows_without_running_its_row_security_policies() {
    // A policy's function runs in the session that reads the table. Were the host's read of
    // the plugin's rows (`wasmig test` compares them) to run it, the function, running as
    // the plugin in the host's session, could make itself run as its caller and then run
    // with the host's rights at the next table.
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__seen (who text);
         CREATE TABLE attacker__a (x int); INSERT INTO attacker__a VALUES (1);
         CREATE TABLE attacker__b (x int); INSERT INTO attacker__b VALUES (1);
         CREATE FUNCTION attacker__f() RETURNS boolean LANGUAGE plpgsql AS $f$
         BEGIN
           INSERT INTO attacker.attacker__seen VALUES (current_user::text || ' in ' || session_user::text);
           IF session_user::text NOT LIKE 'wasmig/%' THEN
             EXECUTE 'ALTER FUNCTION attacker.attacker__f() SECURITY INVOKER';
           END IF;
           RETURN true;
         END $f$;
         ALTER TABLE attacker__a ENABLE ROW LEVEL SECURITY;
         CREATE POLICY attacker__p ON attacker__a USING (attacker.attacker__f());
         ALTER TABLE attacker__b ENABLE ROW LEVEL SECURITY;
         CREATE POLICY attacker__p ON attacker__b USING (attacker.attacker__f())",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    // A plugin's table does not force row security on its owner (the guard refuses it: see
    // `no_code_of_a_plugins_runs_as_its_role_through_what_the_server_runs_as_a_tables_owner`),
    // so its policies never apply to the host's role, which is a member of the plugin's.
    test_attacker_over_what_it_left(&pg);
    assert_eq!(
        pg.rows("SELECT count(*) FROM attacker.attacker__seen"),
        ["0"],
        "a policy ran while the host read the plugin's rows"
    );
    assert_eq!(
        pg.rows("SELECT prosecdef::text FROM pg_proc WHERE proname = 'attacker__f'"),
        ["true"]
    );
}

#[test]
fn a_statement_the_plugin_prepares_cannot_answer_the_clients_type_look_ups() {
    // The client looks a column's type up with a statement it prepared on the session once;
    // a plugin's SQL can replace it (DEALLOCATE, then PREPARE under its name) with one that
    // describes a type as an array of itself, and the client would recurse until its stack
    // overflowed, ending wasmig's process.
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TYPE attacker__e1 AS ENUM ('a'); CREATE TYPE attacker__e2 AS ENUM ('a');
         CREATE TYPE attacker__e3 AS ENUM ('a');
         CREATE FUNCTION attacker__hijack() RETURNS int LANGUAGE plpgsql AS $f$
         DECLARE n text;
         BEGIN
           FOR n IN SELECT name FROM pg_prepared_statements
                     WHERE statement LIKE 'SELECT t.typname, t.typtype%' LOOP
             EXECUTE format('DEALLOCATE %I', n);
             EXECUTE format('PREPARE %I(oid) AS SELECT %L::name, %L::\"char\", $1, NULL::oid, 0::oid, %L::name, 0::oid',
                            n, 'x', 'b', 'attacker');
           END LOOP;
           IF NOT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE name = 'attacker__mine') THEN
             EXECUTE 'PREPARE attacker__mine AS SELECT 1';
           END IF;
           RETURN 1;
         END $f$",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    // In one run: the client looks a type up (and keeps its statement); then a statement
    // replaces that statement as it runs, and returns a column of a type not seen yet.
    pg.script(
        "attacker",
        "0.3.0",
        "-- query\nSELECT 'a'::attacker__e1 AS x",
        None,
    );
    pg.script(
        "attacker",
        "0.4.0",
        "-- query\nSELECT attacker__hijack() AS h, 'a'::attacker__e2 AS x",
        None,
    );
    pg.env.ok(&["up", "attacker@0.4.0"]);
    // A statement of the plugin's that runs after one that prepared a statement is refused
    // before the client looks anything up: here the step's own script is read through a
    // view that prepares one.
    pg.script(
        "attacker",
        "0.5.0",
        "CREATE TABLE attacker__s2 (version text, up text, down text);
         INSERT INTO attacker__s2 VALUES ('0.6.0', '-- query\nSELECT ''a''::attacker__e3 AS x', NULL);
         DROP TABLE attacker__script;
         CREATE VIEW attacker__script AS
           SELECT version, up, down FROM attacker__s2 WHERE attacker__hijack() = 1",
        None,
    );
    let out = pg.env.run(&["up", "attacker@0.6.0"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a clear failure, not a crash:\n{err}"
    );
    assert!(err.contains("prepared statement attacker__mine"), "{err}");
    assert!(err.contains("plugin attacker migration 0.6.0"), "{err}");
    // The host carries on: another plugin's step runs in the same database.
    pg.script(
        "victim",
        "0.3.0",
        "INSERT INTO victim__secret VALUES ('after')",
        None,
    );
    pg.env.ok(&["up", "victim@0.3.0"]);
}

/// The client's type look-ups name operators unqualified (`t.oid = $1`): a search path that
/// puts the plugin's schema before pg_catalog gave them the plugin's `=`, which described an
/// enum as an array of itself, and the client recursed until the process ended. A plugin's
/// session searches pg_catalog first, or its next statement is refused unparsed.
#[test]
fn the_clients_type_look_ups_use_the_systems_operators() {
    let pg = scripted();
    let err = pg.refused(
        "-- each
CREATE TYPE attacker__e AS ENUM ('a')
-- next
DO $d$ DECLARE e oid := 'attacker__e'::regtype::oid; ae oid := '_attacker__e'::regtype::oid;
BEGIN
  EXECUTE format($f$CREATE FUNCTION attacker__eq(a oid, b oid) RETURNS bool LANGUAGE sql
    IMMUTABLE AS 'SELECT CASE WHEN b OPERATOR(pg_catalog.=) %s::oid
      THEN a OPERATOR(pg_catalog.=) %s::oid ELSE a OPERATOR(pg_catalog.=) b END'$f$, e, ae);
END $d$
-- next
CREATE OPERATOR attacker.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = attacker__eq)
-- next
SELECT pg_catalog.set_config('search_path', 'attacker, pg_catalog', false)
-- next
-- query
SELECT NULL::attacker__e",
        "searches pg_catalog first",
    );
    assert!(err.contains("plugin attacker migration 0.2.0"), "{err}");
    // The host carries on: another plugin's step runs in the same database.
    pg.script("victim", "0.3.0", "CREATE TABLE victim__more (x int)", None);
    pg.env.ok(&["up", "victim@0.3.0"]);
}

#[test]
fn a_plugins_objects_do_not_pin_another_schemas_types_nor_take_a_built_in_operators_place() {
    let pg = scripted();
    pg.client()
        .batch_execute(
            "CREATE TABLE public.app_users (id int, name varchar(20), password varchar(20));
             CREATE SEQUENCE public.app_seq;",
        )
        .unwrap();
    for (attack, expected) in [
        // A column of another table's row type: that table could no longer change a column.
        (
            "CREATE TABLE attacker__pin (u public.app_users)",
            "which is outside the plugin's schema",
        ),
        (
            "CREATE TABLE attacker__pin (m wasmig.meta[])",
            "which is outside the plugin's schema",
        ),
        // An operator on built-in types, which an application whose search path lists the
        // schema would call for its own `varchar = varchar`.
        (
            "CREATE FUNCTION attacker__eq(varchar, varchar) RETURNS boolean LANGUAGE sql
               IMMUTABLE AS 'SELECT $1::text OPERATOR(pg_catalog.=) $2::text';
             CREATE OPERATOR = (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = attacker__eq)",
            "an operand of which is not of the plugin's own types",
        ),
        // One operand the plugin's, the other the application's: with an implicit cast from
        // varchar to the plugin's type, it took `varchar = varchar` over.
        (
            "CREATE TYPE attacker__e AS ENUM ('a');
             CREATE FUNCTION attacker__f(varchar, attacker__e) RETURNS boolean LANGUAGE sql
               IMMUTABLE AS 'SELECT true';
             CREATE OPERATOR = (LEFTARG = varchar, RIGHTARG = attacker__e, FUNCTION = attacker__f)",
            "an operand of which is not of the plugin's own types",
        ),
        // Domains over built-in types: `roles @> '{42}'` on the application's int4[] took
        // the plugin's operator (an untyped literal goes to the text side).
        (
            "CREATE DOMAIN attacker__ia AS int4[]; CREATE DOMAIN attacker__t AS text;
             CREATE FUNCTION attacker__f(attacker__ia, attacker__t) RETURNS boolean
               LANGUAGE sql IMMUTABLE AS 'SELECT true';
             CREATE OPERATOR @> (LEFTARG = attacker__ia, RIGHTARG = attacker__t,
               FUNCTION = attacker__f)",
            "an operand of which is not of the plugin's own types",
        ),
        (
            "CREATE TYPE attacker__e AS ENUM ('a');
             CREATE FUNCTION attacker__conv(varchar) RETURNS attacker__e LANGUAGE sql
               IMMUTABLE AS 'SELECT ''a''::attacker.attacker__e';
             CREATE CAST (varchar AS attacker__e) WITH FUNCTION attacker__conv(varchar) AS IMPLICIT",
            "applies without being asked for",
        ),
        // Named like the system's (or another plugin's): found in its place through a
        // search path.
        (
            "CREATE COLLATION \"C\" (locale = 'C')",
            "which is not named attacker__*",
        ),
        (
            "CREATE TEXT SEARCH CONFIGURATION english (COPY = pg_catalog.simple)",
            "which is not named attacker__*",
        ),
        // One domain deeper, and an array of a domain over a built-in type: the values are
        // still the built-in type's.
        (
            "CREATE DOMAIN attacker__ia0 AS int4[]; CREATE DOMAIN attacker__ia AS attacker__ia0;
             CREATE DOMAIN attacker__tx0 AS text; CREATE DOMAIN attacker__tx AS attacker__tx0;
             CREATE FUNCTION attacker__k(attacker__ia, attacker__tx) RETURNS boolean
               LANGUAGE sql IMMUTABLE AS 'SELECT true';
             CREATE OPERATOR <@ (LEFTARG = attacker__ia, RIGHTARG = attacker__tx,
               FUNCTION = attacker__k)",
            "an operand of which is not of the plugin's own types",
        ),
        (
            "CREATE DOMAIN attacker__i AS int4;
             CREATE FUNCTION attacker__g(attacker__i[], attacker__i[]) RETURNS boolean
               LANGUAGE sql IMMUTABLE AS 'SELECT true';
             CREATE OPERATOR && (LEFTARG = attacker__i[], RIGHTARG = attacker__i[],
               FUNCTION = attacker__g)",
            "an operand of which is not of the plugin's own types",
        ),
        (
            "CREATE VIEW attacker__v AS
               SELECT nextval((('{public.app_seq}'::bpchar)::regclass[])[1]) AS n",
            "that is not a constant",
        ),
        // The planner's estimator calls the operator's function itself, with no check of
        // EXECUTE, in the session of whoever plans a query with it (a reader of the plugin's
        // view over it, say).
        (
            "CREATE TYPE attacker__e AS ENUM ('a', 'b');
             CREATE FUNCTION attacker__same(attacker__e, attacker__e) RETURNS boolean
               LANGUAGE sql IMMUTABLE AS 'SELECT $1::text = $2::text';
             CREATE OPERATOR === (LEFTARG = attacker__e, RIGHTARG = attacker__e,
               FUNCTION = attacker__same, RESTRICT = pg_catalog.eqsel)",
            "names an estimator",
        ),
        // ANALYZE, autovacuum's too, runs an index's and a statistics object's expressions as
        // the plugin, between its steps, with nobody running anything of the plugin's.
        (
            "CREATE FUNCTION attacker__k(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';
             CREATE TABLE attacker__u (id int);
             CREATE INDEX attacker__ui ON attacker__u (attacker__k(id))",
            "which ANALYZE",
        ),
        (
            "CREATE FUNCTION attacker__k(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';
             CREATE TABLE attacker__u (id int, b int);
             CREATE INDEX attacker__up ON attacker__u (id) WHERE attacker__k(b) > 0",
            "which ANALYZE",
        ),
        (
            "CREATE FUNCTION attacker__k(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';
             CREATE TABLE attacker__u (id int, b int);
             CREATE STATISTICS attacker__st ON (attacker__k(id)), b FROM attacker__u",
            "which ANALYZE",
        ),
        // A statistics object's expressions, built-in ones too, are computed by ANALYZE
        // alone, for its whole sample at once, with no deadline: an expression over a value
        // made large took the server to the OOM killer, and `xpath()` ran on uncancelled.
        (
            "CREATE TABLE attacker__big (t text);
             INSERT INTO attacker__big SELECT 'x' || g FROM generate_series(1, 100) g;
             CREATE STATISTICS attacker__st ON (length(md5(repeat(t, 200000)))), (t)
               FROM attacker__big",
            "is on expressions, which only ANALYZE",
        ),
        // A conversion to a domain runs its check, which names no function in the tree:
        // directly, in a predicate, a statistics object, through a domain over the domain,
        // a composite's attribute or an array's element.
        (
            "CREATE FUNCTION attacker__ok(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
             CREATE DOMAIN attacker__d AS int CHECK (attacker__ok(VALUE));
             CREATE TABLE attacker__u (id int);
             CREATE INDEX attacker__ux ON attacker__u (((id::attacker__d)::int))",
            "whose check calls attacker.attacker__ok(integer)",
        ),
        (
            "CREATE FUNCTION attacker__ok(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
             CREATE DOMAIN attacker__d AS int CHECK (attacker__ok(VALUE));
             CREATE TABLE attacker__u (id int, b int);
             CREATE INDEX attacker__up ON attacker__u (id) WHERE (b::attacker__d) IS NOT NULL",
            "whose check calls attacker.attacker__ok(integer)",
        ),
        (
            "CREATE FUNCTION attacker__ok(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
             CREATE DOMAIN attacker__d AS int CHECK (attacker__ok(VALUE));
             CREATE TABLE attacker__u (id int, b int);
             CREATE STATISTICS attacker__st ON ((b::attacker__d)::int), id FROM attacker__u",
            "is on expressions, which only ANALYZE",
        ),
        (
            "CREATE FUNCTION attacker__ok(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
             CREATE DOMAIN attacker__inner AS int CHECK (attacker__ok(VALUE));
             CREATE DOMAIN attacker__outer AS attacker__inner;
             CREATE TABLE attacker__u (id int);
             CREATE INDEX attacker__ux ON attacker__u (((id::attacker__outer)::int))",
            "whose check calls attacker.attacker__ok(integer)",
        ),
        (
            "CREATE FUNCTION attacker__ok(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
             CREATE DOMAIN attacker__d AS int CHECK (attacker__ok(VALUE));
             CREATE TYPE attacker__c AS (a attacker__d);
             CREATE TABLE attacker__u (id int);
             CREATE INDEX attacker__uc ON attacker__u ((ROW(id)::attacker__c))",
            "whose check calls attacker.attacker__ok(integer)",
        ),
        (
            "CREATE FUNCTION attacker__ok(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
             CREATE DOMAIN attacker__d AS int CHECK (attacker__ok(VALUE));
             CREATE TABLE attacker__u (id int);
             CREATE INDEX attacker__ua ON attacker__u (((ARRAY[id]::attacker__d[])::int[]))",
            "whose check calls attacker.attacker__ok(integer)",
        ),
        // A domain named in another's check, and a check that runs SQL text.
        (
            "CREATE FUNCTION attacker__ok(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
             CREATE DOMAIN attacker__d2 AS int CHECK (attacker__ok(VALUE));
             CREATE DOMAIN attacker__d1 AS int CHECK ((VALUE::attacker__d2) IS NOT NULL);
             CREATE TABLE attacker__u (id int);
             CREATE INDEX attacker__ux ON attacker__u (((id::attacker__d1)::int))",
            "whose check calls attacker.attacker__ok(integer)",
        ),
        (
            "CREATE FUNCTION attacker__ok(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
             CREATE DOMAIN attacker__d AS int
               CHECK (query_to_xml('SELECT attacker.attacker__ok(1)', true, true, '') IS NOT NULL);
             CREATE TABLE attacker__u (id int);
             CREATE INDEX attacker__ux ON attacker__u (((id::attacker__d)::int))",
            "calls query_to_xml(",
        ),
        // The JSON functions call a type's cast to json themselves, with no check of EXECUTE,
        // in the session of whoever converts a value of it (`row_to_json` of a row); `||`
        // and `quote_literal` its cast to text.
        (
            "CREATE TYPE attacker__e AS ENUM ('a');
             CREATE FUNCTION attacker__j(attacker__e) RETURNS json LANGUAGE sql IMMUTABLE
               AS 'SELECT to_json($1::text)';
             CREATE CAST (attacker__e AS json) WITH FUNCTION attacker__j(attacker__e)",
            "converts to no string type, json nor jsonb",
        ),
        (
            "CREATE TYPE attacker__e AS ENUM ('a');
             CREATE FUNCTION attacker__s(attacker__e) RETURNS text LANGUAGE sql IMMUTABLE
               AS 'SELECT ''x''';
             CREATE CAST (attacker__e AS text) WITH FUNCTION attacker__s(attacker__e)",
            "converts to no string type, json nor jsonb",
        ),
        // The planner calls a range type's SUBTYPE_DIFF itself, with no check of EXECUTE,
        // in the session of whoever plans a query over the type's values.
        (
            "CREATE FUNCTION attacker__diff(a int4, b int4) RETURNS float8 LANGUAGE sql
               IMMUTABLE AS 'SELECT ($1 - $2)::float8';
             CREATE TYPE attacker__r AS RANGE (SUBTYPE = int4, SUBTYPE_DIFF = attacker__diff)",
            "which the server calls itself",
        ),
        // Text made an object's name when the default runs: another schema's sequence.
        (
            "CREATE TABLE attacker__t (id bigint DEFAULT nextval('public.app_seq'::bpchar::regclass))",
            "that is not a constant",
        ),
    ] {
        pg.refused(attack, expected);
    }
    // Chains of domains longer than any cap a walk of them could have: the values are still
    // the built-in type's, for an operator and for an object identifier alike.
    let chain = |base: &str| {
        let mut chain = format!("CREATE DOMAIN attacker__d0 AS {base};");
        for i in 1..=40 {
            chain += &format!(" CREATE DOMAIN attacker__d{i} AS attacker__d{};", i - 1);
        }
        chain
    };
    pg.refused(
        &(chain("text")
            + " CREATE FUNCTION attacker__dq(attacker__d40, attacker__d40) RETURNS boolean
                  LANGUAGE sql IMMUTABLE AS 'SELECT true';
                CREATE OPERATOR = (LEFTARG = attacker__d40, RIGHTARG = attacker__d40,
                  FUNCTION = attacker__dq)"),
        "an operand of which is not of the plugin's own types",
    );
    pg.refused(
        &(chain("regclass")
            + " CREATE TABLE attacker__r (r attacker__d40);
                CREATE VIEW attacker__v AS SELECT r FROM attacker__r"),
        "that is not a constant",
    );
    // An operator on the plugin's own type is the plugin's.
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TYPE attacker__money AS (cents bigint);
         CREATE FUNCTION attacker__same(attacker__money, attacker__money) RETURNS boolean
           LANGUAGE sql IMMUTABLE AS 'SELECT ($1).cents = ($2).cents';
         CREATE OPERATOR === (LEFTARG = attacker__money, RIGHTARG = attacker__money,
           FUNCTION = attacker__same)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    pg.client()
        .batch_execute("ALTER TABLE public.app_users ALTER COLUMN name TYPE text")
        .unwrap();
}

/// An object identifier that is not a constant of the expression (a column, a function's
/// result, text converted) names whatever the value holds when the expression runs: given to
/// `nextval` in a view, a policy or a trigger's `WHEN`, it would advance another schema's
/// sequence with the rights of whoever reads or writes. And every object of the schema,
/// whatever its kind, depends on nothing of another schema: a text search configuration's
/// mapping or a cast's function would keep the application from dropping its own object.
#[test]
fn a_plugins_expressions_reach_no_object_by_identifier_and_nothing_of_its_pins_another_schema() {
    let pg = scripted();
    pg.client()
        .batch_execute(
            "CREATE SEQUENCE public.app_seq;
             CREATE TEXT SEARCH DICTIONARY public.app_dict (TEMPLATE = simple);
             CREATE FUNCTION public.app_fn(int) RETURNS int LANGUAGE sql AS 'SELECT $1';",
        )
        .unwrap();
    // The sequence's identifier, read from the catalogs and kept in the plugin's own table.
    let stored = "CREATE TABLE attacker__r (r regclass, x int);
         INSERT INTO attacker__r
           SELECT c.oid, 1 FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relname = 'app_seq';";
    let not_a_constant = "takes a value of type regclass";
    for (attack, expected) in [
        // A column of type regclass, read by the view.
        (
            format!(
                "{stored} CREATE VIEW attacker__v AS SELECT pg_catalog.nextval(r) AS n
                   FROM attacker__r, pg_catalog.generate_series(1, 1000) g"
            ),
            "rule _RETURN on view attacker.attacker__v takes a value of type regclass (vartype)",
        ),
        // The same through a subquery, an array's element, a domain, a composite's field.
        (
            format!(
                "{stored} CREATE VIEW attacker__v AS
                   SELECT pg_catalog.nextval((SELECT r FROM attacker__r LIMIT 1)) AS n"
            ),
            not_a_constant,
        ),
        (
            "CREATE TABLE attacker__r (r regclass[]);
             CREATE VIEW attacker__v AS SELECT pg_catalog.nextval(r[1]) AS n FROM attacker__r"
                .to_string(),
            not_a_constant,
        ),
        (
            "CREATE DOMAIN attacker__rd AS regclass; CREATE TABLE attacker__r (r attacker__rd);
             CREATE VIEW attacker__v AS SELECT pg_catalog.nextval(r) AS n FROM attacker__r"
                .to_string(),
            not_a_constant,
        ),
        (
            "CREATE TYPE attacker__c AS (r regclass); CREATE TABLE attacker__r (c attacker__c);
             CREATE VIEW attacker__v AS SELECT pg_catalog.nextval((c).r) AS n FROM attacker__r"
                .to_string(),
            not_a_constant,
        ),
        // A function of the plugin's that returns one.
        (
            "CREATE FUNCTION attacker__which() RETURNS regclass LANGUAGE sql
               AS 'SELECT 0::oid::regclass';
             CREATE VIEW attacker__v AS SELECT pg_catalog.nextval(attacker__which()) AS n"
                .to_string(),
            "takes a value of type regclass (funcresulttype)",
        ),
        // In a policy, and in a trigger's WHEN, which run with the rights of whoever writes.
        (
            format!(
                "{stored} ALTER TABLE attacker__r ENABLE ROW LEVEL SECURITY;
                 CREATE POLICY attacker__p ON attacker__r USING (pg_catalog.nextval(r) > 0)"
            ),
            "policy attacker__p on table attacker.attacker__r takes a value of type regclass",
        ),
        (
            format!(
                "{stored} CREATE FUNCTION attacker__f() RETURNS trigger LANGUAGE plpgsql AS $f$
                   BEGIN RETURN NEW; END $f$;
                 CREATE TRIGGER attacker__tr BEFORE UPDATE ON attacker__r FOR EACH ROW
                   WHEN (pg_catalog.nextval(OLD.r) > 0) EXECUTE FUNCTION attacker__f()"
            ),
            "trigger attacker__tr on table attacker.attacker__r takes a value of type regclass",
        ),
        // A function's argument default, which the query that calls the function evaluates
        // with its caller's rights; the view that calls it holds no trace of it.
        (
            "CREATE FUNCTION attacker__hello(stolen text DEFAULT
               pg_catalog.query_to_xml('SELECT 1', true, false, '')::text)
               RETURNS text LANGUAGE sql AS 'SELECT $1';
             CREATE VIEW attacker__v AS SELECT attacker__hello() AS h"
                .to_string(),
            "function attacker.attacker__hello(text) calls query_to_xml(text,boolean,boolean,text)",
        ),
        (
            "CREATE FUNCTION attacker__next(r regclass DEFAULT
               pg_catalog.to_regclass('public.app_seq'))
               RETURNS bigint LANGUAGE sql AS 'SELECT pg_catalog.nextval($1)'"
                .to_string(),
            "function attacker.attacker__next(regclass)",
        ),
        // The system's views show what the rights of whoever reads them let them see: a
        // view or rule of the plugin's over one would hand that to the plugin.
        (
            "CREATE VIEW attacker__v AS SELECT attname FROM pg_catalog.pg_stats".to_string(),
            "depends on column attname of view pg_stats",
        ),
        (
            "CREATE TABLE attacker__t (x int); CREATE TABLE attacker__loot (q text);
             CREATE RULE attacker__r AS ON INSERT TO attacker__t DO ALSO
               INSERT INTO attacker__loot SELECT query FROM pg_catalog.pg_stat_activity"
                .to_string(),
            "of view pg_stat_activity, which is outside the plugin's schema",
        ),
        // A constant that names no object yet: the object that gets the identifier later
        // would be reached, with no dependency recorded.
        (
            "CREATE VIEW attacker__v AS SELECT pg_catalog.nextval('4294967000'::regclass) AS n"
                .to_string(),
            "names the object identifier 4294967000 (regclass), which no object has",
        ),
        // A text search configuration mapping to another schema's dictionary, a cast with
        // another schema's function: the application could no longer drop either.
        (
            "CREATE TEXT SEARCH CONFIGURATION attacker__ts (PARSER = pg_catalog.\"default\");
             ALTER TEXT SEARCH CONFIGURATION attacker__ts
               ADD MAPPING FOR asciiword WITH public.app_dict"
                .to_string(),
            "text search configuration attacker.attacker__ts depends on text search \
             dictionary public.app_dict, which is outside the plugin's schema",
        ),
        (
            "CREATE DOMAIN attacker__d AS int;
             CREATE CAST (attacker__d AS int) WITH FUNCTION public.app_fn(int)"
                .to_string(),
            "cast from attacker.attacker__d to integer depends on function public.app_fn(integer), \
             which is outside the plugin's schema",
        ),
    ] {
        pg.refused(&attack, expected);
    }
    assert_eq!(
        pg.rows("SELECT last_value, is_called FROM public.app_seq"),
        ["1|f"]
    );

    // What an honest schema does with identifiers, mappings and casts still applies:
    // sequences of its own (serial, identity, a default naming one), a constant naming its
    // own table, the system's text search configurations, its own dictionary, casts of its
    // own domain with its own function or through text, a domain with a check, a column of
    // type regclass that no expression reads.
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__a (id serial PRIMARY KEY,
             b bigint GENERATED ALWAYS AS IDENTITY, name text NOT NULL, body text,
             tsv tsvector GENERATED ALWAYS AS (pg_catalog.to_tsvector('english', body)) STORED);
         CREATE TABLE attacker__b (id int PRIMARY KEY, a int REFERENCES attacker__a (id),
             n int DEFAULT 0 CHECK (n >= 0));
         CREATE SEQUENCE attacker__seq;
         CREATE TABLE attacker__c (id bigint DEFAULT nextval('attacker__seq'),
             t timestamptz DEFAULT now(), r regclass);
         CREATE INDEX attacker__a_name ON attacker__a (pg_catalog.lower(name));
         CREATE INDEX attacker__a_body ON attacker__a
             USING gin (pg_catalog.to_tsvector('pg_catalog.simple'::regconfig, body));
         CREATE VIEW attacker__v AS SELECT a.id, a.name, b.n, 'attacker__a'::regclass AS r
             FROM attacker__a a JOIN attacker__b b ON b.a = a.id;
         CREATE FUNCTION attacker__tf() RETURNS trigger LANGUAGE plpgsql AS $f$
           BEGIN NEW.name := lower(NEW.name); RETURN NEW; END $f$;
         CREATE TRIGGER attacker__tr BEFORE INSERT ON attacker__a FOR EACH ROW
           EXECUTE FUNCTION attacker__tf();
         CREATE TEXT SEARCH DICTIONARY attacker__dict (TEMPLATE = pg_catalog.simple);
         CREATE TEXT SEARCH CONFIGURATION attacker__ts (PARSER = pg_catalog.\"default\");
         ALTER TEXT SEARCH CONFIGURATION attacker__ts
             ADD MAPPING FOR asciiword WITH pg_catalog.simple;
         ALTER TEXT SEARCH CONFIGURATION attacker__ts ADD MAPPING FOR word WITH attacker__dict;
         CREATE TEXT SEARCH CONFIGURATION attacker__en (COPY = pg_catalog.english);
         CREATE DOMAIN attacker__d AS int CHECK (VALUE > 0);
         CREATE FUNCTION attacker__int(attacker__d) RETURNS int LANGUAGE sql IMMUTABLE
             AS 'SELECT $1::int';
         CREATE CAST (attacker__d AS int) WITH FUNCTION attacker__int(attacker__d);
         CREATE DOMAIN attacker__d2 AS int;
         CREATE CAST (attacker__d2 AS bigint) WITH INOUT;
         INSERT INTO attacker__a (name, body) VALUES ('Ann', 'a lighthouse');
         INSERT INTO attacker__b VALUES (1, 1, 2);
         INSERT INTO attacker__c (r) VALUES ('attacker__a')",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    assert_eq!(
        pg.rows("SELECT name, n, r = 'attacker.attacker__a'::regclass FROM attacker.attacker__v"),
        ["ann|2|t"]
    );
    // Nothing of the application's is pinned by the plugin.
    pg.client()
        .batch_execute(
            "DROP TEXT SEARCH DICTIONARY public.app_dict; DROP FUNCTION public.app_fn(int);
             DROP SEQUENCE public.app_seq;",
        )
        .unwrap();
}

/// An application builds on a plugin's objects: a view over its table, a foreign key into it,
/// a column of its type. A plugin owns its objects, and `CASCADE` drops what depends on them
/// whoever owns it: the plugin's step may not take the application's objects with its own.
#[test]
fn an_application_object_that_would_run_in_a_plugins_step_stops_its_steps() {
    // The application's foreign key into a plugin's table, ON DELETE CASCADE: the plugin's
    // delete of its own rows would delete the application's, as the application table's
    // owner, in the plugin's session, and fire that table's triggers there, with the
    // search path the plugin sets.
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__user (id int PRIMARY KEY); INSERT INTO attacker__user VALUES (1)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    pg.env.exec(
        "CREATE TABLE public.app_settings (
           user_id int REFERENCES attacker.attacker__user (id) ON DELETE CASCADE, v text);
         INSERT INTO public.app_settings VALUES (1, 'kept')",
    );
    pg.script(
        "attacker",
        "0.3.0",
        "DELETE FROM attacker__user WHERE id = 1",
        None,
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(
        err.contains("plugin attacker's steps do not run while the foreign key")
            && err.contains("ON DELETE CASCADE"),
        "{err}"
    );
    let err = pg.env.fails(&["up", "--dry-run", "attacker@0.3.0"]);
    assert!(err.contains("ON DELETE CASCADE"), "{err}");
    assert_eq!(pg.rows("SELECT v FROM public.app_settings"), ["kept"]);
    // NO ACTION: the plugin's delete is refused by the key, as the server checks it.
    pg.env.exec(
        "ALTER TABLE public.app_settings DROP CONSTRAINT app_settings_user_id_fkey;
         ALTER TABLE public.app_settings ADD FOREIGN KEY (user_id)
           REFERENCES attacker.attacker__user (id)",
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(err.contains("violates foreign key constraint"), "{err}");
    assert_eq!(pg.rows("SELECT v FROM public.app_settings"), ["kept"]);
    // A trigger of the application's on the plugin's table.
    pg.env.exec(
        "DROP TABLE public.app_settings;
         CREATE FUNCTION public.app_audit() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN RETURN OLD; END $f$;
         CREATE TRIGGER app_audit BEFORE DELETE ON attacker.attacker__user
           FOR EACH ROW EXECUTE FUNCTION public.app_audit()",
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(
        err.contains("the trigger app_audit on the plugin's table attacker.attacker__user runs public.app_audit()"),
        "{err}"
    );
    pg.env
        .exec("DROP TRIGGER app_audit ON attacker.attacker__user");
    // A table of the application's that inherits from the plugin's: the plugin's delete
    // through its own table would delete the application's row, and cascade from it.
    pg.env.exec(
        "CREATE TABLE public.app_child (note text) INHERITS (attacker.attacker__user);
         ALTER TABLE public.app_child ADD PRIMARY KEY (id);
         INSERT INTO public.app_child VALUES (1, 'kept');
         CREATE TABLE public.app_ref (id int REFERENCES public.app_child (id) ON DELETE CASCADE)",
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(
        err.contains(
            "the table public.app_child inherits from the plugin's table attacker.attacker__user"
        ),
        "{err}"
    );
    assert_eq!(pg.rows("SELECT note FROM public.app_child"), ["kept"]);
    pg.env.exec("DROP TABLE public.app_ref, public.app_child");
    pg.env.ok(&["up", "attacker@0.3.0"]);
}

#[test]
fn an_application_function_that_runs_as_its_owner_over_the_plugins_temporary_tables_stops_its_steps()
 {
    // Callable by every role (PUBLIC), run as its owner, and naming a table unqualified:
    // the server would find a plugin's temporary table of that name first, whose trigger
    // would then run with the owner's rights.
    let pg = scripted();
    pg.env.exec(
        "CREATE TABLE public.app_audit (what text);
         CREATE FUNCTION public.app_note(what text) RETURNS void LANGUAGE plpgsql
           SECURITY DEFINER SET search_path = public AS $f$
         BEGIN INSERT INTO app_audit VALUES (what); END $f$",
    );
    pg.script(
        "attacker",
        "0.3.0",
        "CREATE TABLE attacker__t (x int)",
        None,
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(
        err.contains("the function public.app_note(text) runs as its owner"),
        "{err}"
    );
    // With the temporary schema searched last, it finds the application's table.
    pg.env
        .exec("ALTER FUNCTION public.app_note(text) SET search_path = public, pg_temp");
    pg.env.ok(&["up", "attacker@0.3.0"]);
}

#[test]
fn a_plugins_cascade_drops_nothing_of_the_application() {
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__note (id bigint PRIMARY KEY, d date, body text);
         CREATE VIEW attacker__stats AS SELECT d, count(*) AS n FROM attacker__note GROUP BY d;
         CREATE TYPE attacker__kind AS ENUM ('a', 'b');
         CREATE TYPE attacker__pair AS (a int, b text);
         CREATE TYPE attacker__inner AS (a int, b text);
         CREATE TYPE attacker__outer AS (i attacker__inner, n int);
         CREATE DOMAIN attacker__d1 AS attacker__inner;
         CREATE DOMAIN attacker__d2 AS attacker__d1;
         CREATE TYPE attacker__state AS ENUM ('approved', 'denied');
         CREATE TYPE attacker__cz AS (a int, b text);
         CREATE DOMAIN attacker__z20 AS attacker__cz;
         DO $$ BEGIN FOR i IN REVERSE 19..0 LOOP
           EXECUTE pg_catalog.format('CREATE DOMAIN attacker__z%s AS attacker__z%s', i, i + 1);
         END LOOP; END $$;
         CREATE FUNCTION attacker__norm(text) RETURNS text LANGUAGE sql IMMUTABLE
           AS 'SELECT pg_catalog.lower($1)';
         CREATE TABLE attacker__parted (k int, v text) PARTITION BY LIST (k);
         CREATE DOMAIN attacker__dom AS int;
         CREATE CAST (attacker__dom AS text) WITH INOUT;
         CREATE TEXT SEARCH DICTIONARY attacker__dict (TEMPLATE = pg_catalog.simple);
         CREATE TEXT SEARCH CONFIGURATION attacker__cfg (COPY = pg_catalog.simple);
         ALTER TEXT SEARCH CONFIGURATION attacker__cfg
           ALTER MAPPING FOR asciiword WITH attacker__dict;
         INSERT INTO attacker__note VALUES (1, '2026-01-01', 'x')",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    let mut client = pg.client();
    client
        .batch_execute(
            "CREATE SCHEMA app;
             CREATE VIEW app.daily AS SELECT d, n FROM attacker.attacker__stats;
             CREATE TABLE app.tagged (id int, kind attacker.attacker__kind, note text);
             INSERT INTO app.tagged VALUES (1, 'a', 'kept');
             CREATE TABLE app.orders (id int,
               note_id bigint REFERENCES attacker.attacker__note (id));
             INSERT INTO app.orders VALUES (1, 1);
             CREATE TABLE app.pairs (id int, p attacker.attacker__pair,
               ps attacker.attacker__pair[]);
             INSERT INTO app.pairs
               VALUES (1, (5, 'comp data'), ARRAY[(6, 'in array')::attacker.attacker__pair]);
             CREATE TABLE app.nested (o attacker.attacker__outer, d attacker.attacker__d2[],
               s attacker.attacker__state);
             CREATE TABLE app.deep (c attacker.attacker__z0);
             INSERT INTO app.deep VALUES ((5, 'deep data'));
             CREATE TABLE app.ix (v text);
             CREATE UNIQUE INDEX ix_norm ON app.ix (attacker.attacker__norm(v));
             CREATE TABLE app.docs (body text);
             CREATE INDEX docs_fts ON app.docs
               USING gin (pg_catalog.to_tsvector('attacker.attacker__cfg'::regconfig, body));
             INSERT INTO app.nested VALUES (((5, 'nested'), 1), ARRAY[(7, 'deep')::attacker.attacker__inner]::attacker.attacker__d2[], 'denied')",
        )
        .unwrap();
    for (attack, dropped) in [
        (
            "DROP VIEW attacker__stats CASCADE",
            "rule _RETURN on view app.daily",
        ),
        (
            "DROP TYPE attacker__kind CASCADE",
            "column kind of table app.tagged",
        ),
        (
            "ALTER TABLE attacker__note DROP CONSTRAINT attacker__note_pkey CASCADE",
            "constraint orders_note_id_fkey on table app.orders",
        ),
        (
            "DO $$ BEGIN EXECUTE 'DROP TABLE attacker__note CASCADE'; END $$",
            "which is outside the plugin's schema and depends on its objects",
        ),
        // A change of a composite type changes the values of another table's column.
        (
            "ALTER TYPE attacker__pair DROP ATTRIBUTE b CASCADE",
            "column p of table app.pairs",
        ),
        (
            "ALTER TYPE attacker__pair ADD ATTRIBUTE c int CASCADE",
            "column p of table app.pairs",
        ),
        // The same attribute dropped and added again loses its values; a type reached
        // through another composite, a domain over a domain, an array of it; an enum's
        // values renamed into each other.
        (
            "ALTER TYPE attacker__pair DROP ATTRIBUTE b CASCADE;
             ALTER TYPE attacker__pair ADD ATTRIBUTE b text CASCADE",
            "column p of table app.pairs",
        ),
        (
            "ALTER TYPE attacker__inner DROP ATTRIBUTE b CASCADE",
            "of table app.nested",
        ),
        // However long the chain of domains.
        (
            "ALTER TYPE attacker__cz DROP ATTRIBUTE b CASCADE",
            "column c of table app.deep",
        ),
        // An application's index over a plugin's function holds what the function did.
        (
            "CREATE OR REPLACE FUNCTION attacker__norm(text) RETURNS text LANGUAGE sql IMMUTABLE
               AS 'SELECT ''x''::text'",
            "which is outside the plugin's schema and depends on its objects",
        ),
        (
            "ALTER FUNCTION attacker__norm(text) STRICT",
            "which is outside the plugin's schema and depends on its objects",
        ),
        // An application's index over a plugin's text search configuration holds what the
        // configuration and its dictionaries made of the text.
        (
            "ALTER TEXT SEARCH CONFIGURATION attacker__cfg
               ALTER MAPPING FOR asciiword WITH pg_catalog.english_stem",
            "docs_fts",
        ),
        (
            "ALTER TEXT SEARCH DICTIONARY attacker__dict (STOPWORDS = english)",
            "docs_fts",
        ),
        (
            "ALTER TYPE attacker__state RENAME VALUE 'approved' TO 'x';
             ALTER TYPE attacker__state RENAME VALUE 'denied' TO 'approved';
             ALTER TYPE attacker__state RENAME VALUE 'x' TO 'denied'",
            "column s of table app.nested",
        ),
    ] {
        pg.script("attacker", "0.3.0", attack, None);
        let err = pg.env.fails(&["up", "attacker@0.3.0"]);
        assert!(
            err.contains(&format!("the step dropped or changed {dropped}"))
                || err.contains(dropped),
            "{attack}: {err}"
        );
    }
    assert_eq!(
        pg.rows(
            "SELECT t.kind::text || '|' || t.note || '|' || (SELECT count(*) FROM app.daily)
                   || '|' || (SELECT count(*) FROM pg_catalog.pg_constraint
                               WHERE conname = 'orders_note_id_fkey')
                   || '|' || (SELECT (p).b || (ps[1]).b FROM app.pairs)
                   || '|' || (SELECT ((o).i).b || (d[1]).b || s::text FROM app.nested)
                   FROM app.tagged t"
        ),
        ["a|kept|1|1|comp datain array|nesteddeepdenied"]
    );
    // An application's partition of a plugin's table goes with it.
    client
        .batch_execute(
            "CREATE TABLE app.p1 PARTITION OF attacker.attacker__parted FOR VALUES IN (1);
             INSERT INTO app.p1 VALUES (1, 'partitioned row')",
        )
        .unwrap();
    pg.script(
        "attacker",
        "0.3.0",
        "DO $$ BEGIN EXECUTE 'DROP TABLE attacker__parted'; END $$",
        None,
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(err.contains("app.p1"), "{err}");
    assert_eq!(pg.rows("SELECT v FROM app.p1"), ["partitioned row"]);
    client.batch_execute("DROP TABLE app.p1").unwrap();
    // A step of the plugin's applies while the application's objects stand (the triggers of
    // the application's foreign key, on the plugin's table, are the application's), and so
    // does what the server remakes itself (the application's foreign key, when the column it
    // references changes type) and a drop of the plugin's own cast.
    pg.script(
        "attacker",
        "0.3.0",
        "INSERT INTO attacker__note VALUES (2, '2026-01-02', 'y');
         ALTER TABLE attacker__note ALTER COLUMN id TYPE int;
         DROP CAST (attacker__dom AS text)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.3.0"]);
    // Once the application has dropped its objects, the plugin's drops apply.
    client.batch_execute("DROP SCHEMA app CASCADE").unwrap();
    pg.script(
        "attacker",
        "0.4.0",
        "-- wasmig:destructive
         DROP VIEW attacker__stats; DROP TYPE attacker__kind; DROP TYPE attacker__pair;
         DROP TYPE attacker__outer; DROP DOMAIN attacker__d2; DROP DOMAIN attacker__d1;
         DROP TYPE attacker__inner; DROP TYPE attacker__state; DROP TABLE attacker__note;
         DROP FUNCTION attacker__norm(text); DROP TYPE attacker__cz CASCADE;
         DROP TEXT SEARCH CONFIGURATION attacker__cfg; DROP TEXT SEARCH DICTIONARY attacker__dict",
        None,
    );
    pg.env.ok(&["up", "attacker@0.4.0", "--allow-destructive"]);
}

/// What honest views write: values formatted and built into JSON (functions PostgreSQL
/// calls stable because they follow the session's settings); an operator on the plugin's
/// own type.
#[test]
fn honest_views_format_values_and_build_json() {
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__note (id int PRIMARY KEY, title text, at timestamptz DEFAULT now());
         INSERT INTO attacker__note (id, title) VALUES (1, 'a'), (2, 'b');
         CREATE VIEW attacker__card AS
           SELECT id, pg_catalog.jsonb_build_object('id', id, 'title', title) AS j,
                  pg_catalog.concat(title, '#', id) AS label,
                  pg_catalog.format('%s (%s)', title, id) AS shown,
                  pg_catalog.to_jsonb(n) AS row, pg_catalog.row_to_json(n) AS json_row
             FROM attacker__note n;
         CREATE VIEW attacker__all AS
           SELECT pg_catalog.jsonb_agg(title ORDER BY id) AS titles,
                  pg_catalog.json_object_agg(id, title) AS by_id
             FROM attacker__note;
         CREATE TYPE attacker__money AS (cents bigint);
         CREATE FUNCTION attacker__same(attacker__money, attacker__money) RETURNS boolean
           LANGUAGE sql IMMUTABLE AS 'SELECT ($1).cents = ($2).cents';
         CREATE OPERATOR === (LEFTARG = attacker__money, RIGHTARG = attacker__money,
           FUNCTION = attacker__same)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    assert_eq!(
        pg.rows("SELECT label || '|' || shown || '|' || (j ->> 'title') FROM attacker.attacker__card ORDER BY id"),
        ["a#1|a (1)|a", "b#2|b (2)|b"]
    );
    assert_eq!(
        pg.rows("SELECT titles::text FROM attacker.attacker__all"),
        ["[\"a\", \"b\"]"]
    );
}

/// What ORMs write on PostgreSQL: foreign keys and unique constraints `DEFERRABLE INITIALLY
/// DEFERRED` (Django's default), checked at the end of the step, on a table clustered on an
/// index, which stays so (the guard's question whether checks are still pending changes
/// nothing).
#[test]
fn deferrable_foreign_keys_and_unique_constraints_apply() {
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__author (id int PRIMARY KEY, email text,
           CONSTRAINT attacker__author_email UNIQUE (email) DEFERRABLE INITIALLY DEFERRED);
         CREATE TABLE attacker__book (id int PRIMARY KEY, author int
           REFERENCES attacker__author DEFERRABLE INITIALLY DEFERRED);
         ALTER TABLE attacker__book CLUSTER ON attacker__book_pkey;
         INSERT INTO attacker__book VALUES (1, 10);
         INSERT INTO attacker__author VALUES (10, 'a@example.org'), (11, 'b@example.org');
         UPDATE attacker__author SET email = 'c' WHERE id = 10;
         UPDATE attacker__author SET email = 'a@example.org' WHERE id = 11",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    // A row that breaks the deferred key fails the step at its end, within it.
    pg.script(
        "attacker",
        "0.3.0",
        "INSERT INTO attacker__book VALUES (2, 99)",
        None,
    );
    let err = pg.env.fails(&["up", "attacker@0.3.0"]);
    assert!(err.contains("foreign key"), "{err}");
    assert_eq!(
        pg.rows(
            "SELECT i.indisclustered FROM pg_catalog.pg_index i \
             WHERE i.indexrelid = 'attacker.attacker__book_pkey'::regclass"
        ),
        ["t"]
    );
    assert_eq!(
        pg.rows("SELECT count(*) FROM attacker.attacker__book"),
        ["1"]
    );
}

/// The step's end drops the session's temporary objects, which takes a lock each (and one
/// for each column default or index on them) from the server's shared lock table: tens of
/// thousands of temporary functions, or of defaults (which take no lock to create), could
/// not be dropped and stayed behind, owned by the plugin's role.
#[test]
fn a_step_leaves_few_temporary_objects_to_drop() {
    let pg = scripted();
    pg.refused(
        "DO $$ BEGIN FOR i IN 1..1100 LOOP
           EXECUTE pg_catalog.format(
             'CREATE FUNCTION pg_temp.attacker__f%s() RETURNS int LANGUAGE sql AS ''SELECT 1''', i);
         END LOOP; END $$",
        "the step left more than 1000 objects in its session's temporary schema",
    );
    // Columns' defaults hang on their table, and take a lock each to drop.
    let columns: Vec<String> = (0..1100).map(|i| format!("c{i} int DEFAULT {i}")).collect();
    pg.refused(
        &format!("CREATE TEMP TABLE attacker__wide ({})", columns.join(", ")),
        "the step left more than 1000 objects in its session's temporary schema",
    );
    pg.script(
        "attacker",
        "0.2.0",
        "CREATE TEMP TABLE attacker__a (x int); CREATE TEMP TABLE attacker__b (x int PRIMARY KEY);
         CREATE TABLE attacker__kept AS SELECT 1 AS x",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    assert_eq!(
        pg.rows("SELECT count(*) FROM pg_catalog.pg_proc WHERE proname LIKE 'attacker\\_\\_f%'"),
        ["0"]
    );
}

/// A policy names the roles it applies to, and the server keeps a role that an object names
/// from being dropped: a plugin's policy `TO app_role` would keep the application from
/// dropping its own role. Its own role and `PUBLIC` are the plugin's to name.
#[test]
fn a_plugins_objects_name_no_other_role() {
    let pg = scripted();
    let app_role = format!("{}_app", pg.name);
    let mut client = pg.client();
    client
        .batch_execute(&format!("CREATE ROLE \"{app_role}\" NOLOGIN"))
        .unwrap();
    let table =
        "CREATE TABLE attacker__p (x int); ALTER TABLE attacker__p ENABLE ROW LEVEL SECURITY;";
    for attack in [
        format!(
            "{table} CREATE POLICY attacker__pol ON attacker__p TO \"{app_role}\" USING (true)"
        ),
        format!(
            "{table} CREATE POLICY attacker__pol ON attacker__p TO CURRENT_USER USING (true);
             ALTER POLICY attacker__pol ON attacker__p TO CURRENT_USER, \"{app_role}\""
        ),
    ] {
        pg.refused(
            &attack,
            &format!(
                "policy attacker__pol on table attacker.attacker__p names role {app_role}; \
                 a plugin's objects name no role but its own and PUBLIC"
            ),
        );
    }
    // A grant on a type names its grantee as well.
    for (kind, object) in [("TYPE", "attacker__k"), ("DOMAIN", "attacker__dm")] {
        pg.refused(
            &format!(
                "CREATE TYPE attacker__k AS ENUM ('a'); CREATE DOMAIN attacker__dm AS int;
                 DO $$ BEGIN EXECUTE 'GRANT USAGE ON {kind} {object} TO \"{app_role}\"'; END $$"
            ),
            &format!("the step granted USAGE on type attacker.{object} to {app_role}"),
        );
    }
    pg.script(
        "attacker",
        "0.2.0",
        &format!(
            "{table} CREATE POLICY attacker__mine ON attacker__p TO CURRENT_USER USING (x > 0);
             CREATE POLICY attacker__all ON attacker__p USING (x > 1)"
        ),
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
    // A grant the database's owner makes to the application is the owner's: the plugin's
    // later steps apply. One the plugin makes is refused, with the grant option too.
    client
        .batch_execute(&format!(
            "GRANT SELECT, INSERT ON attacker.attacker__p TO \"{app_role}\""
        ))
        .unwrap();
    pg.script(
        "attacker",
        "0.3.0",
        "INSERT INTO attacker__p VALUES (1)",
        None,
    );
    pg.env.ok(&["up", "attacker@0.3.0"]);
    for grant in [
        format!("GRANT UPDATE ON attacker__p TO \"{app_role}\""),
        format!("GRANT SELECT ON attacker__p TO \"{app_role}\" WITH GRANT OPTION"),
    ] {
        pg.script(
            "attacker",
            "0.4.0",
            &format!(
                "DO $$ BEGIN EXECUTE '{}'; END $$",
                grant.replace('\'', "''")
            ),
            None,
        );
        let err = pg.env.fails(&["up", "attacker@0.4.0"]);
        assert!(err.contains("the step granted"), "{grant}: {err}");
    }
    client
        .batch_execute(&format!(
            "REVOKE ALL ON attacker.attacker__p FROM \"{app_role}\"; DROP ROLE \"{app_role}\""
        ))
        .unwrap();
}

#[test]
fn an_error_code_the_plugin_raises_is_not_taken_for_the_servers() {
    let pg = scripted();
    pg.script(
        "attacker",
        "0.2.0",
        "DO $$BEGIN RAISE EXCEPTION 'not a deadlock' USING ERRCODE = '40P01'; END$$",
        None,
    );
    pg.env.fails(&["up", "attacker@0.2.0"]);
    let attempts = pg
        .ledger()
        .into_iter()
        .filter(|l| l.starts_with("attacker|0.2.0|up|"))
        .count();
    assert_eq!(attempts, 1, "{:?}", pg.ledger());
}

/// The client looks an unknown type up by recursing down what it is made of: a chain of
/// 20,000 domains made within one step overflowed its thread's stack, and the process ended,
/// on every run. The look-up now has the stack for it, and the guard refuses a chain more
/// than 64 deep at the step's end, so none outlives its step.
#[test]
fn a_deep_chain_of_types_is_refused_not_a_crash() {
    let pg = scripted();
    // The client looks the parameter's type up before it finds that none was given.
    let err = pg.refused(
        "-- each
DO $$ BEGIN
  EXECUTE 'CREATE DOMAIN attacker__e0 AS int';
  FOR i IN 1..20000 LOOP
    EXECUTE format('CREATE DOMAIN attacker__e%s AS attacker__e%s', i, i - 1);
  END LOOP;
END $$
-- next
-- query
SELECT $1::attacker__e20000 AS x",
        "expected 1 parameters but got 0",
    );
    // Not a failure of the database's: not tried again.
    assert!(!err.contains("attempt"), "{err}");
    // A chain that outlived its step would cost every later look-up as much.
    pg.refused(
        "DO $$ BEGIN
           EXECUTE 'CREATE DOMAIN attacker__e0 AS int';
           FOR i IN 1..100 LOOP
             EXECUTE format('CREATE DOMAIN attacker__e%s AS attacker__e%s', i, i - 1);
           END LOOP;
         END $$",
        "made of a chain of more than 64 types",
    );
    // A chain of 64 (the array type of 62 domains over int) is the plugin's.
    pg.script(
        "attacker",
        "0.2.0",
        "DO $$ BEGIN
           EXECUTE 'CREATE DOMAIN attacker__e0 AS int';
           FOR i IN 1..61 LOOP
             EXECUTE format('CREATE DOMAIN attacker__e%s AS attacker__e%s', i, i - 1);
           END LOOP;
         END $$",
        None,
    );
    pg.env.ok(&["up", "attacker@0.2.0"]);
}

#[test]
fn a_script_of_many_statements_holds_the_host_to_a_window_of_them() {
    // Each statement of a script costs the client a request and its futures until its
    // answer is read: sent all at once, 200,000 statements of 7 bytes held ≈ 260 MB.
    // The host sends a window of them at a time, and hands the audit trail each statement
    // as it runs.
    let pg = scripted();
    let script = "SELECT;".repeat(200_000);
    pg.script("attacker", "0.2.0", &script, None);
    let (status, peak_kib) = pg.env.peak_memory(&["up", "attacker@0.2.0"]);
    assert!(status.success());
    assert!(
        peak_kib < 100 * 1024,
        "the host peaked at {} MiB",
        peak_kib / 1024
    );
    // Each statement ran, in order, in the step's transaction: one that fails after
    // thousands of others still fails the step, and nothing of it stays.
    let script = format!(
        "CREATE TABLE attacker__kept (x int); {} INSERT INTO attacker__nowhere VALUES (1)",
        "INSERT INTO attacker__kept VALUES (1);".repeat(5_000)
    );
    pg.script("attacker", "0.3.0", &script, None);
    let out = pg.env.run(&["up", "attacker@0.3.0"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("attacker__nowhere"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pg.column("to_regclass('attacker.attacker__kept') IS NULL"),
        ["true"]
    );
}
