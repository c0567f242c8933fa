//! Metadata outside the namespace: no read of any kind reaches another plugin's or the
//! application's objects (zero-column reads such as `count(*)` included), and the plugin
//! cannot tell an object outside its namespace from one that does not exist: the error it
//! sees is the same, word for word, with only the name changed.

use crate::scripted::scripted;
use crate::support::Env;

fn victim_with_rows() -> Env {
    let env = scripted();
    env.applies(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__data (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO victim__data (v) VALUES ('a'), ('b'), ('c');
         CREATE INDEX victim__by_v ON victim__data (v); CREATE VIEW victim__view AS SELECT v FROM victim__data",
    );
    // The application's own tables, one named like a pragma table function.
    env.conn()
        .execute_batch("CREATE TABLE pragma_settings (k, v); INSERT INTO pragma_settings VALUES ('key', 'secret'); CREATE TABLE users (email); INSERT INTO users VALUES ('x@y')")
        .unwrap();
    env
}

#[test]
fn reads_without_columns_are_denied() {
    let env = victim_with_rows();
    for sql in [
        "CREATE TABLE attacker__n AS SELECT count(*) AS n FROM victim__data",
        "CREATE TABLE attacker__n AS SELECT 1 AS n FROM victim__data",
        "CREATE TABLE attacker__n AS SELECT count(*) AS n FROM VICTIM__DATA",
        "CREATE TABLE attacker__n AS SELECT count(*) AS n FROM main.victim__data",
        "CREATE TABLE attacker__n AS SELECT count(*) AS n FROM victim__view",
        "CREATE TABLE attacker__n AS SELECT count(*) AS n FROM users",
        "CREATE TABLE attacker__n AS SELECT count(*) AS n FROM _wasmig_ledger",
        "CREATE TABLE attacker__n AS SELECT count(*) AS n FROM sqlite_schema",
        "CREATE TABLE attacker__n AS SELECT count(*) AS n FROM dbstat",
        "CREATE TABLE attacker__n AS SELECT count(*) AS n FROM sqlite_dbpage",
        "CREATE TABLE attacker__n AS SELECT count(*) AS n FROM pragma_table_list",
        "CREATE TABLE attacker__n AS SELECT EXISTS (SELECT 1 FROM victim__data) AS n",
        "CREATE TABLE attacker__n AS SELECT (SELECT count(*) FROM victim__data, attacker__script) AS n",
        "CREATE TABLE attacker__n AS WITH c AS (SELECT 1) SELECT count(*) AS n FROM c, victim__data",
        // A CTE named like the table, read without columns, is refused as the table would be,
        // and so is one named like a table of another namespace that does not exist: which
        // names exist is not the plugin's to learn.
        "CREATE TABLE attacker__n AS WITH victim__data AS (SELECT 1) SELECT count(*) AS n FROM victim__data",
        "CREATE TABLE attacker__n AS WITH victim__nope AS (SELECT 1) SELECT count(*) AS n FROM victim__nope",
        "CREATE TABLE attacker__n AS WITH _wasmig_nope AS (SELECT 1) SELECT count(*) AS n FROM _wasmig_nope",
    ] {
        env.refused(
            "attacker",
            "0.2.0",
            sql,
            "is outside plugin attacker's namespace",
        );
    }
    // A CTE of another name read without columns is the plugin's own business.
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__n AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT count(*) AS n FROM c",
    );
}

#[test]
fn tables_named_like_pragma_functions_are_not_readable() {
    let env = victim_with_rows();
    for sql in [
        "CREATE TABLE attacker__x AS SELECT * FROM pragma_settings",
        "CREATE TABLE attacker__x AS SELECT * FROM pragma_table_info('victim__data')",
        "CREATE TABLE attacker__x AS SELECT * FROM pragma_index_list('victim__data')",
        "CREATE TABLE attacker__x AS SELECT name FROM pragma_table_list",
    ] {
        env.refused(
            "attacker",
            "0.2.0",
            sql,
            "is outside plugin attacker's namespace",
        );
    }
}

#[test]
fn table_functions_do_not_read_a_table_of_their_name() {
    let env = scripted();
    env.conn()
        .execute_batch(
            "CREATE TABLE json_each (secret); INSERT INTO json_each VALUES ('app secret')",
        )
        .unwrap();
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__x AS SELECT secret FROM json_each",
        "",
    );
    // The function form now names the table, which is no function.
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__x AS SELECT value FROM json_each('[1]')",
        "",
    );
    // Nor does a view left behind read it later.
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE VIEW attacker__v AS SELECT * FROM json_each",
        "json_each without arguments",
    );
    // Nor a view of that name, which the plugin would read with the application's rights.
    let env = scripted();
    env.conn()
        .execute_batch("CREATE TABLE app_secret (s); INSERT INTO app_secret VALUES ('app secret'); CREATE VIEW json_tree AS SELECT s AS key, s AS value FROM app_secret")
        .unwrap();
    for sql in [
        "CREATE TABLE attacker__x AS SELECT * FROM json_tree",
        "CREATE TABLE attacker__x AS SELECT value FROM main.json_tree",
        "CREATE TABLE attacker__x AS SELECT value FROM \"JSON_TREE\" AS j",
    ] {
        env.refused(
            "attacker",
            "0.2.0",
            sql,
            "without arguments would read a table or view",
        );
    }
    // EXPLAIN would name the application's indexes on the plugin's own tables, and pages,
    // after empty statements too.
    for sql in [
        "EXPLAIN QUERY PLAN SELECT 1",
        "SELECT 1; explain SELECT 1",
        ";EXPLAIN SELECT 1",
        "SELECT 1; ;EXPLAIN SELECT 1",
        "-- query\n;EXPLAIN QUERY PLAN SELECT 1",
        "-- query\n; /* */ ; explain SELECT 1",
    ] {
        env.refused("attacker", "0.2.0", sql, "EXPLAIN is not available");
    }
    // Nor a table function without arguments behind a quoted schema, or named by a string.
    for sql in [
        "CREATE VIEW attacker__v AS SELECT * FROM \"main\".json_tree",
        "CREATE VIEW attacker__v AS SELECT * FROM [main].\"json_tree\"",
        "CREATE VIEW attacker__v AS SELECT * FROM 'json_tree' AS j",
        // A byte-order mark starting a token is white space to SQLite.
        "CREATE VIEW attacker__v AS SELECT * FROM \u{feff}json_tree",
        "CREATE TABLE attacker__t (x); CREATE TRIGGER attacker__tr AFTER INSERT ON attacker__t BEGIN SELECT * FROM \u{feff}json_each; END",
    ] {
        env.refused(
            "attacker",
            "0.2.0",
            sql,
            "without arguments would read a table or view",
        );
    }
    // Without such a table, json_each works.
    let env = scripted();
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__x AS SELECT value FROM json_each('[1, 2]')",
    );
    assert_eq!(env.value::<i64>("SELECT count(*) FROM attacker__x"), 2);
}

/// The step's error for `sql` with `{}` replaced by `name`, with the name blanked out.
fn error_shape(env: &Env, sql: &str, name: &str) -> String {
    let sql = sql.replace("{}", name);
    let err = env.refused("attacker", "0.2.0", &sql, "");
    let message = err
        .lines()
        .find(|l| l.contains("plugin attacker migration 0.2.0"))
        .unwrap()
        .to_string();
    message.replace(name, "NAME").replace(&sql, "SQL")
}

#[test]
fn an_object_outside_the_namespace_is_indistinguishable_from_a_missing_one() {
    let env = victim_with_rows();
    for sql in [
        "SELECT * FROM {}",
        "SELECT nope FROM {}",
        "SELECT count(*) FROM {}",
        "DELETE FROM {}",
        "INSERT INTO {} VALUES (1)",
        "UPDATE {} SET v = 1",
        "DROP TABLE {}",
        "DROP TABLE IF EXISTS {}",
        "ALTER TABLE {} RENAME TO attacker__stolen",
        "ALTER TABLE {} ADD COLUMN z",
        "CREATE INDEX attacker__i ON {} (v)",
        "CREATE TABLE attacker__t (x); CREATE TRIGGER attacker__trg AFTER INSERT ON {} BEGIN SELECT 1; END",
        "PRAGMA table_info({})",
        "CREATE TABLE attacker__t AS SELECT * FROM {}",
        "ALTER TABLE {} RENAME TO sqlite_x",
        "ALTER TABLE {} DROP COLUMN id",
        "ALTER TABLE {} RENAME COLUMN id TO id2",
        "CREATE TABLE attacker__t (x); CREATE TRIGGER attacker__tr INSTEAD OF INSERT ON {} BEGIN SELECT 1; END",
        "SELECT 1 FROM {}(1)",
        "SELECT 1; CREATE INDEX attacker__i ON {} (id)",
        "SELECT 1; DROP VIEW IF EXISTS {}",
        "SELECT 1; DROP TABLE {}",
        "REINDEX {}",
        "ANALYZE {}",
        // fts5 looks its content table up when a statement first reads the fts5 table.
        "CREATE VIRTUAL TABLE attacker__f USING fts5(body, content='{}'); SELECT * FROM attacker__f",
        "-- each\nCREATE VIRTUAL TABLE attacker__f USING fts5(body, content='{}')\n-- next\n-- query\nSELECT * FROM attacker__f",
        "CREATE VIRTUAL TABLE attacker__f USING fts5(body, content='{}');
         INSERT INTO attacker__f(attacker__f) VALUES ('rebuild')",
    ] {
        for (existing, missing) in [
            ("victim__data", "victim__nothing"),
            ("victim__view", "victim__nothing"),
            ("users", "nosuchtable"),
            ("_wasmig_ledger", "_wasmig_nothing"),
        ] {
            let seen = error_shape(&env, sql, existing);
            let unseen = error_shape(&env, sql, missing);
            assert_eq!(
                seen, unseen,
                "{sql}: {existing} and {missing} can be told apart"
            );
        }
    }
    for sql in [
        "DROP INDEX {}",
        "DROP INDEX IF EXISTS {}",
        "CREATE TABLE attacker__t (x); CREATE INDEX {} ON attacker__t (x)",
        "CREATE TABLE attacker__t (x); CREATE INDEX IF NOT EXISTS {} ON attacker__t (x)",
        "DROP VIEW IF EXISTS {}",
        "DROP TRIGGER IF EXISTS {}",
    ] {
        let seen = error_shape(&env, sql, "victim__by_v");
        let unseen = error_shape(&env, sql, "victim__by_nothing");
        assert_eq!(seen, unseen, "{sql}: an existing index can be told apart");
        let seen = error_shape(&env, sql, "victim__view");
        let unseen = error_shape(&env, sql, "victim__by_nothing");
        assert_eq!(seen, unseen, "{sql}: an existing index can be told apart");
    }
}

#[test]
fn what_sqlite_resolves_but_never_reads_tells_nothing_of_what_exists() {
    // SQLite resolves every name of a statement before it asks the authorizer, and does not
    // ask about all of them: a CTE hides a table of its name, a subquery it never generates
    // code for is resolved all the same. Each statement is compiled first where nothing
    // outside the plugin's reach exists, so the answer is the same for a name that exists and
    // one that does not.
    let env = victim_with_rows();
    for sql in [
        "SELECT 1 WHERE 1 OR EXISTS (SELECT 1 FROM {})",
        "SELECT 1 WHERE 1 OR (SELECT count(*) FROM {})",
        "SELECT CASE WHEN 1 THEN 1 ELSE (SELECT 1 FROM {}) END",
        "SELECT 1 FROM {}, (WITH {} AS (SELECT 1) SELECT 1)",
        // A failed statement that mentions the name in a string or as an alias.
        "SELECT '{}' FROM attacker__nothing",
        "SELECT 1 AS {} FROM attacker__nothing",
        "SELECT 1 FROM attacker__script AS {} WHERE nosuchcolumn",
        // A second statement given to query or execute, which SQLite compiles to say there is
        // one; and a rename to a name that is taken.
        "-- query\nSELECT 1; SELECT 1 FROM {}",
        "-- query\nSELECT 1; SELECT nope FROM {} WHERE 0",
        "CREATE TABLE attacker__t (x); ALTER TABLE attacker__t RENAME TO {}",
        // A parameter in TCL's array syntax, whose quote SQLite does not read as one, before
        // statements the checks by name must still see.
        "SELECT $a(') ; DROP TABLE IF EXISTS {} ; SELECT '1'",
        "SELECT @a(') ; CREATE INDEX IF NOT EXISTS {} ON attacker__script (up) ; SELECT '1'",
        "SELECT :a(') ; CREATE TABLE attacker__r (x); ALTER TABLE attacker__r RENAME TO {} ; SELECT '1'",
        // White space as SQLite reads it: a byte-order mark starting a token, and `\v` in a
        // run of white space.
        "\u{feff}DROP TABLE IF EXISTS {}",
        "-- query\n\u{feff}DROP TABLE IF EXISTS {}",
        "SELECT 1;\n\u{feff}CREATE INDEX IF NOT EXISTS {} ON attacker__script (up)",
        "CREATE TABLE attacker__r (x);\u{feff}ALTER TABLE attacker__r RENAME TO {}",
        " \u{b}DROP TABLE IF EXISTS {}",
        "DROP TABLE IF EXISTS \u{b}{}",
        // A statement run again after the schema changed: SQLite would compile it again on its
        // own, now firing a trigger that reads the name.
        "-- each\nCREATE TABLE attacker__t (x)\n-- next\nCREATE TABLE attacker__l (n)\n-- next\nINSERT INTO attacker__t VALUES (1)\n-- next\nCREATE TEMP TRIGGER attacker__tt AFTER INSERT ON attacker__t BEGIN INSERT INTO attacker__l SELECT count(*) FROM {}; END\n-- next\nINSERT INTO attacker__t VALUES (1)",
        "-- each\nCREATE TABLE attacker__t (x)\n-- next\nCREATE TABLE attacker__l (n)\n-- next\n-- query\nSELECT count(*) FROM attacker__t\n-- next\nCREATE TEMP VIEW attacker__t AS SELECT 1 AS x FROM {}\n-- next\n-- query\nSELECT count(*) FROM attacker__t",
        // The same, the schema changed by a statement that failed once and then, run again
        // as its loop's repeat would be, succeeded: the first DROP deletes the child row
        // through its key's cascade, and the child's trigger fails it keeping the deletion.
        "-- each\nCREATE TABLE attacker__b (x INTEGER PRIMARY KEY)\n-- next\nCREATE TABLE attacker__l (n)\n-- next\nCREATE TRIGGER attacker__tr AFTER INSERT ON attacker__b BEGIN INSERT INTO attacker__l SELECT nope FROM {}; END\n-- next\nCREATE TEMP TABLE attacker__b (x INTEGER PRIMARY KEY)\n-- next\nCREATE TEMP TABLE attacker__ch (p INTEGER REFERENCES attacker__b (x) ON DELETE CASCADE)\n-- next\nCREATE TEMP TRIGGER attacker__r AFTER DELETE ON attacker__ch BEGIN SELECT RAISE(FAIL, 'first time'); END\n-- next\nINSERT INTO attacker__b VALUES (1)\n-- next\nINSERT INTO attacker__ch VALUES (1)\n-- next\n-- caught\nDROP TABLE temp.attacker__b\n-- next\nDROP TABLE temp.attacker__b\n-- next\nINSERT INTO attacker__b VALUES (1)",
        "-- each\nCREATE TABLE attacker__b (x INTEGER PRIMARY KEY)\n-- next\nCREATE TABLE attacker__l (n)\n-- next\nCREATE TRIGGER attacker__tr AFTER INSERT ON attacker__b BEGIN INSERT INTO attacker__l SELECT email FROM {}; END\n-- next\nCREATE TEMP TABLE attacker__b (x INTEGER PRIMARY KEY)\n-- next\nCREATE TEMP TABLE attacker__ch (p INTEGER REFERENCES attacker__b (x) ON DELETE CASCADE)\n-- next\nCREATE TEMP TRIGGER attacker__r AFTER DELETE ON attacker__ch BEGIN SELECT RAISE(FAIL, 'first time'); END\n-- next\nINSERT INTO attacker__b VALUES (1)\n-- next\nINSERT INTO attacker__ch VALUES (1)\n-- next\n-- caught\nDROP TABLE temp.attacker__b\n-- next\nDROP TABLE temp.attacker__b\n-- next\nINSERT INTO attacker__b VALUES (1)",
    ] {
        let seen = error_shape(&env, sql, "users");
        let unseen = error_shape(&env, sql, "nosuchtable");
        assert_eq!(
            seen, unseen,
            "{sql}: users and nosuchtable can be told apart"
        );
    }
    // SQLite reads a script no further than a NUL byte: what follows would never run.
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__n (x);\0CREATE TABLE attacker__m (y)",
        "NUL byte",
    );
    // Many statements to one query: refused as one, without compiling each.
    let many = format!("-- query\n{}", "SELECT 1;".repeat(20_000));
    env.refused("attacker", "0.2.0", &many, "take one statement");
    // After an empty statement or a byte-order mark, EXPLAIN is still EXPLAIN.
    env.refused(
        "attacker",
        "0.2.0",
        "SELECT 1;\u{feff}EXPLAIN SELECT 1",
        "EXPLAIN is not available",
    );
    // PRAGMA index_list would name the application's indexes on the plugin's own table.
    env.refused(
        "attacker",
        "0.2.0",
        "-- query\nPRAGMA index_list(attacker__script)",
        "PRAGMA index_list is not available",
    );
    // A CTE named like the application's table is the CTE, whether or not the table exists.
    for (n, name) in ["users", "nosuchtable"].into_iter().enumerate() {
        env.applies(
            "attacker",
            &format!("0.{}.0", n + 2),
            &format!(
                "CREATE TABLE attacker__n{n} AS WITH {name} AS (SELECT 1 AS one UNION ALL SELECT 2) SELECT count(*) AS n FROM {name}"
            ),
        );
        assert_eq!(
            env.value::<i64>(&format!("SELECT n FROM attacker__n{n}")),
            2
        );
    }
}

#[test]
fn an_application_trigger_on_a_plugins_table_is_not_named_to_the_plugin() {
    // The application may put its own triggers on a plugin's table. SQLite compiles them
    // into the plugin's writes, where they reach outside the plugin's namespace: the write is
    // refused without telling the plugin what the trigger reads.
    let env = scripted();
    env.applies("attacker", "0.2.0", "CREATE TABLE attacker__t (x)");
    env.conn()
        .execute_batch(
            "CREATE TABLE app_audit (x);
             CREATE TRIGGER app_copy AFTER INSERT ON attacker__t BEGIN INSERT INTO app_audit VALUES (new.x); END",
        )
        .unwrap();
    let err = env.refused(
        "attacker",
        "0.3.0",
        "INSERT INTO attacker__t VALUES (1)",
        "the statement reaches an object outside plugin attacker's namespace",
    );
    assert!(!err.contains("app_"), "{err}");
}

#[test]
fn reindex_and_analyze_name_only_the_plugins_own_objects() {
    // Without a name, or with a collation's, they walk every index of the database, and the
    // denial would name the first one outside the namespace.
    let env = victim_with_rows();
    for sql in [
        "REINDEX",
        "REINDEX nocase",
        "REINDEX rtrim",
        "ANALYZE",
        "ANALYZE main",
    ] {
        let err = env.refused("attacker", "0.2.0", sql, "");
        assert!(!err.contains("victim__"), "{sql}: {err}");
    }
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x); CREATE INDEX attacker__i ON attacker__t (x); REINDEX attacker__i; REINDEX attacker__t",
    );
    // ANALYZE of its own table writes SQLite's statistics of the whole database.
    env.refused("attacker", "0.3.0", "ANALYZE attacker__t", "");
}

#[test]
fn a_pragma_does_not_report_the_columns_of_a_view() {
    // SQLite works a view's columns out with the authorizer switched off: a view of the
    // plugin's over another namespace's table, made, read by PRAGMA and dropped in one step,
    // would report that table's columns and their declared types.
    let env = victim_with_rows();
    for sql in [
        "CREATE VIEW attacker__v AS SELECT * FROM victim__data; PRAGMA table_info(attacker__v); DROP VIEW attacker__v",
        "CREATE VIEW attacker__v AS SELECT * FROM victim__data; PRAGMA main.table_xinfo('ATTACKER__V'); DROP VIEW attacker__v",
    ] {
        // Refused as the view is made, before the PRAGMA reads it.
        env.refused(
            "attacker",
            "0.2.0",
            sql,
            "view \"attacker__v\" does not compile",
        );
    }
    // A view of an earlier step is one too.
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (a, b); CREATE VIEW attacker__w AS SELECT a FROM attacker__t",
    );
    env.refused(
        "attacker",
        "0.3.0",
        "PRAGMA table_info(attacker__w)",
        "PRAGMA table_info of a view",
    );
    // Named as SQLite looks it up, trailing spaces kept.
    env.refused(
        "attacker",
        "0.3.0",
        "CREATE VIEW \"attacker__w2 \" AS SELECT a FROM attacker__t;
         PRAGMA table_info('attacker__w2 ')",
        "PRAGMA table_info of a view",
    );
    // A table's are the plugin's to read.
    env.applies("attacker", "0.3.0", "PRAGMA table_info(attacker__t)");
}

#[test]
fn a_view_over_another_namespace_is_refused_before_anything_writes_to_it() {
    // Writing to a view (an INSTEAD OF trigger takes the rows) makes SQLite work its columns
    // out with the authorizer switched off: a view over another namespace's table, left in
    // place until the step's end, told whether a column name or a column count was right.
    let env = victim_with_rows();
    for table in ["victim__data", "victim__nothere", "users"] {
        let err = env.refused(
            "attacker",
            "0.2.0",
            &format!(
                "CREATE VIEW attacker__v AS SELECT * FROM {table};
                 CREATE TRIGGER attacker__tr INSTEAD OF INSERT ON attacker__v BEGIN SELECT 1; END;
                 INSERT INTO attacker__v (v) SELECT 1 WHERE 0"
            ),
            "view \"attacker__v\" does not compile as plugin attacker's own object",
        );
        assert!(
            err.contains(&format!(
                "table \"{table}\" is outside plugin attacker's namespace or does not exist"
            )),
            "{err}"
        );
    }
    // Nor does what SQLite says of a table it found (a column it lacks) tell that it exists.
    let found = env.refused(
        "attacker",
        "0.2.0",
        "CREATE VIEW attacker__v AS SELECT nosuch FROM victim__data; SELECT 1",
        "view \"attacker__v\" does not compile",
    );
    let missing = env.refused(
        "attacker",
        "0.2.0",
        "CREATE VIEW attacker__v AS SELECT nosuch FROM victim__gone; SELECT 1",
        "view \"attacker__v\" does not compile",
    );
    assert_eq!(found.replace("victim__data", "victim__gone"), missing);
    // The same when the step's last statement makes the view, checked as the step ends.
    let found = env.refused(
        "attacker",
        "0.2.0",
        "-- query\nCREATE VIEW attacker__v AS SELECT nosuch FROM users",
        "",
    );
    let missing = env.refused(
        "attacker",
        "0.2.0",
        "-- query\nCREATE VIEW attacker__v AS SELECT nosuch FROM nobody",
        "",
    );
    assert_eq!(found.replace("users", "nobody"), missing);
    // A view that names a table of the plugin's not made yet, and another namespace's, is
    // compiled again once that table is made, before anything writes to the view.
    let script = |other: &str| {
        format!(
            "CREATE VIEW attacker__v AS SELECT * FROM attacker__later, {other};
             CREATE TABLE attacker__later (z);
             CREATE TRIGGER attacker__tr INSTEAD OF INSERT ON attacker__v BEGIN SELECT 1; END;
             INSERT INTO attacker__v (v) VALUES (1)"
        )
    };
    let found = env.refused(
        "attacker",
        "0.2.0",
        &script("victim__data"),
        "view \"attacker__v\" does not compile",
    );
    let missing = env.refused(
        "attacker",
        "0.2.0",
        &script("victim__gone"),
        "view \"attacker__v\" does not compile",
    );
    assert_eq!(found.replace("victim__data", "victim__gone"), missing);
    // A view over the plugin's own table, and one made before its table, are the plugin's.
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE VIEW attacker__early AS SELECT x FROM attacker__t;
         CREATE TABLE attacker__t (x, tags);
         CREATE VIEW attacker__v AS SELECT json_each.value FROM attacker__t, json_each(attacker__t.tags)",
    );
}

/// `last_insert_rowid()` and `changes()` start from nothing in each step: otherwise they would
/// tell the host's last write, the id of the ledger's latest row.
#[test]
fn a_step_starts_with_no_rowid_and_no_changes_of_the_hosts() {
    let env = victim_with_rows();
    // Two steps in one run: the first one's ledger row is the host's last write.
    env.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__seen (rowid_then, changes_then)",
        None,
    );
    env.applies(
        "attacker",
        "0.3.0",
        "INSERT INTO attacker__seen SELECT last_insert_rowid(), changes()",
    );
    assert_eq!(
        env.value::<String>("SELECT rowid_then || ',' || changes_then FROM attacker__seen"),
        "0,0"
    );
}

/// `PRAGMA table_list`, even of the plugin's own table, makes SQLite work out the columns of
/// every view of the database, in time that tells how many the application has: refused.
#[test]
fn table_list_is_not_available_even_of_the_plugins_own_table() {
    let env = victim_with_rows();
    for sql in [
        "CREATE TABLE attacker__t (x); PRAGMA table_list(attacker__t)",
        "CREATE TABLE attacker__t (x); CREATE TABLE attacker__n AS SELECT * FROM pragma_table_list('attacker__t')",
    ] {
        env.refused("attacker", "0.2.0", sql, "");
    }
}

#[test]
fn a_trigger_that_the_plugins_own_drop_fires_gets_none_of_the_drops_bookkeeping() {
    // SQLite's foreign keys are on in wasmig's connection, so `DROP TABLE` of a parent
    // deletes its rows first, and an `ON DELETE CASCADE` fires the child table's triggers
    // inside the DROP, where SQLite itself reads `sqlite_schema` and writes
    // `sqlite_sequence`. The trigger is dropped in the same step, before any check of what
    // the step leaves.
    let env = victim_with_rows();
    env.conn()
        .execute_batch(
            "CREATE TABLE app_log (id INTEGER PRIMARY KEY AUTOINCREMENT, v); INSERT INTO app_log (v) VALUES ('first')",
        )
        .unwrap();
    let plant = |body: &str| {
        format!(
            "-- each
CREATE TABLE attacker__ai (id INTEGER PRIMARY KEY AUTOINCREMENT)
-- next
INSERT INTO attacker__ai DEFAULT VALUES
-- next
CREATE TABLE attacker__p (id INTEGER PRIMARY KEY)
-- next
CREATE TABLE attacker__c (pid INTEGER REFERENCES attacker__p (id) ON DELETE CASCADE)
-- next
CREATE TABLE attacker__leak (type, name, sql)
-- next
CREATE TRIGGER attacker__tr AFTER DELETE ON attacker__c BEGIN {body}; END
-- next
INSERT INTO attacker__p VALUES (1)
-- next
INSERT INTO attacker__c VALUES (1)
-- next
DROP TABLE attacker__p
-- next
DROP TRIGGER attacker__tr
-- next
DROP TABLE attacker__c"
        )
    };
    const OUTSIDE: &str = "reaches an object outside plugin attacker's namespace";
    for (body, expected) in [
        (
            "INSERT INTO attacker__leak SELECT type, name, sql FROM main.sqlite_schema",
            "lists every plugin's schema",
        ),
        (
            "INSERT INTO attacker__leak SELECT 'seq', name, seq FROM sqlite_sequence",
            "lists every plugin's schema",
        ),
        // A subquery's read of no column comes to the authorizer without the trigger's name.
        (
            "INSERT INTO attacker__leak SELECT 'objects', n, NULL FROM (SELECT count(*) AS n FROM main.sqlite_schema)",
            "lists every plugin's schema",
        ),
        (
            "INSERT INTO attacker__leak SELECT 'counters', n, NULL FROM (SELECT count(*) AS n FROM sqlite_sequence)",
            "lists every plugin's schema",
        ),
        (
            "UPDATE sqlite_sequence SET seq = 9223372036854775807 WHERE name NOT LIKE 'attacker%'",
            OUTSIDE,
        ),
        ("DELETE FROM sqlite_sequence", OUTSIDE),
        ("INSERT INTO sqlite_sequence VALUES ('app_log', 0)", OUTSIDE),
    ] {
        let err = env.refused("attacker", "0.2.0", &plant(body), expected);
        assert!(!err.contains("app_log"), "{body}: {err}");
    }
    // The application's counter and rows are as they were: its next row takes the next id.
    let conn = env.conn();
    conn.execute("INSERT INTO app_log (v) VALUES ('second')", [])
        .unwrap();
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM app_log ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, [1, 2]);
    // The same cascade with a trigger that keeps the plugin's own audit trail is the
    // plugin's business, and so is dropping an AUTOINCREMENT table (SQLite removes its
    // counter).
    env.applies(
        "attacker",
        "0.2.0",
        &plant("INSERT INTO attacker__leak VALUES ('deleted', old.pid, NULL)").replace(
            "DROP TABLE attacker__c",
            "DROP TABLE attacker__c\n-- next\nDROP TABLE attacker__ai",
        ),
    );
    let kept: i64 = env
        .conn()
        .query_row(
            "SELECT count(*) FROM attacker__leak WHERE type = 'deleted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 1);
}

#[test]
fn a_temp_trigger_fires_in_the_shadow_schema_where_it_fires_in_the_database() {
    // A TEMP trigger made on `attacker__t` is on the main table of that name; a TEMP table
    // of the same name made after it would take the trigger, in the shadow schema made
    // again (TEMP first), and statements on the main table would compile there without it:
    // its `count(*)` of an application's table, a read of no column, would pass as one of
    // a CTE, and the count land in the plugin's table.
    let env = victim_with_rows();
    env.refused(
        "attacker",
        "0.2.0",
        "-- each
CREATE TABLE attacker__t (a)
-- next
CREATE TABLE attacker__log (x)
-- next
CREATE TEMP TRIGGER attacker__tr AFTER INSERT ON attacker__t BEGIN INSERT INTO attacker__log SELECT count(*) FROM users; END
-- next
CREATE TEMP TABLE attacker__t (a)
-- next
CREATE TABLE attacker__z AS SELECT 1 AS q
-- next
INSERT INTO main.attacker__t VALUES (1)
-- next
DROP TRIGGER temp.attacker__tr
-- next
DROP TABLE temp.attacker__t",
        "the name of both a table and a TEMP table",
    );
    assert!(!env.tables().contains(&"attacker__log".to_string()));
}
