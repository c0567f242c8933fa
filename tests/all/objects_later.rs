//! Objects that come alive later: a trigger or view runs with the rights of whoever uses it
//! (the application, with full access), and SQLite resolves the names in it only then. Every
//! trigger and view a plugin leaves must compile with the plugin's own scope, without its
//! read grants, under wasmig's settings and SQLite's defaults, when the step ends; anything
//! else rolls the step back. Each attack is planted, then another plugin creates what it
//! names, then the application writes with full rights; the other plugin's rows must survive.

use crate::scripted::scripted;
use crate::support::{Env, artifacts};

/// The victim's data, created after the attack was planted.
const VICTIM_DATA: &str = "CREATE TABLE victim__data (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO victim__data (v) VALUES ('precious')";

/// The application writes to the attacker's table, then the victim's rows are checked.
fn application_writes_and_victim_survives(env: &Env) {
    let conn = env.conn();
    let _ = conn.execute_batch(
        "INSERT INTO attacker__t (x) VALUES (1); UPDATE attacker__t SET x = 2; DELETE FROM attacker__t",
    );
    let _ = conn.execute_batch("SELECT * FROM attacker__v");
    let rows: Vec<String> = env.column("SELECT v FROM victim__data");
    assert_eq!(rows, ["precious"], "the victim's rows were changed");
}

fn planted_then_victim_creates(plant: &str, expected: &str) {
    let env = scripted();
    env.refused("attacker", "0.2.0", plant, expected);
    env.applies("victim", "0.2.0", VICTIM_DATA);
    application_writes_and_victim_survives(&env);
}

const UNRESOLVED: &str = "does not compile as plugin attacker's own object";

#[test]
fn a_trigger_naming_a_table_that_does_not_exist_yet_is_refused() {
    planted_then_victim_creates(
        "CREATE TABLE attacker__t (x); CREATE TRIGGER attacker__trg AFTER INSERT ON attacker__t BEGIN DELETE FROM victim__data; END",
        UNRESOLVED,
    );
}

#[test]
fn a_trigger_whose_when_clause_names_a_future_table_is_refused() {
    planted_then_victim_creates(
        "CREATE TABLE attacker__t (x); CREATE TRIGGER attacker__trg AFTER UPDATE ON attacker__t WHEN (SELECT count(*) FROM victim__data) >= 0 BEGIN SELECT 1; END",
        UNRESOLVED,
    );
}

#[test]
fn a_trigger_that_rewrites_future_rows_is_refused() {
    planted_then_victim_creates(
        "CREATE TABLE attacker__t (x); CREATE TRIGGER attacker__trg BEFORE DELETE ON attacker__t BEGIN UPDATE victim__data SET v = 'stolen'; END",
        UNRESOLVED,
    );
}

#[test]
fn a_trigger_reading_a_table_function_without_arguments_is_refused() {
    // `FROM json_tree` reads the table function today, and a table named `json_tree` once
    // the application creates one, with the application's rights.
    let env = scripted();
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x); CREATE TABLE attacker__loot (k, v);
         CREATE TRIGGER attacker__trg AFTER INSERT ON attacker__t
         BEGIN INSERT INTO attacker__loot SELECT key, value FROM json_tree; END",
        "json_tree without arguments",
    );
    // Named by a string in a parenthesised table list, which SQLite flattens.
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x); CREATE TABLE attacker__loot (k, v);
         CREATE TRIGGER attacker__trg AFTER INSERT ON attacker__t
         BEGIN INSERT INTO attacker__loot SELECT key, value FROM ('json_each'); END",
        "json_each without arguments",
    );
    // With its arguments it is the function, whatever tables exist later.
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x); CREATE TABLE attacker__loot (k, v);
         CREATE TRIGGER attacker__trg AFTER INSERT ON attacker__t
         BEGIN INSERT INTO attacker__loot SELECT key, value FROM json_tree(NEW.x); END",
    );
    env.exec(
        "CREATE TABLE json_tree (key, value); INSERT INTO json_tree VALUES ('smtp', 'hunter2')",
    );
    let _ = env
        .conn()
        .execute_batch("INSERT INTO attacker__t VALUES ('{\"a\": 1}')");
    let loot: Vec<String> = env.column("SELECT coalesce(v, '') FROM attacker__loot");
    assert!(!loot.iter().any(|v| v == "hunter2"), "{loot:?}");
}

#[test]
fn a_view_over_a_future_table_is_refused() {
    planted_then_victim_creates(
        "CREATE TABLE attacker__t (x); CREATE VIEW attacker__v AS SELECT * FROM victim__data",
        UNRESOLVED,
    );
}

#[test]
fn a_trigger_planted_by_a_down_step_is_refused() {
    let env = scripted();
    env.applies("attacker", "0.2.0", "CREATE TABLE attacker__t (x)");
    env.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x)",
        Some("CREATE TRIGGER attacker__trg AFTER INSERT ON attacker__t BEGIN DELETE FROM victim__data; END; DELETE FROM attacker__t"),
    );
    // Without the down script's table: the step ends with the trigger still there.
    let err = env.fails(&["down", "attacker", "--steps", "1"]);
    assert!(err.contains(UNRESOLVED), "{err}");
    assert!(err.contains("plugin attacker migration 0.2.0"), "{err}");
    env.applies("victim", "0.2.0", VICTIM_DATA);
    application_writes_and_victim_survives(&env);
}

#[test]
fn a_trigger_that_compiles_only_with_the_applications_settings_is_refused() {
    // wasmig's connection refuses virtual tables that are not innocuous inside triggers
    // (trusted_schema off); the application's default connection allows them, and would
    // copy raw pages of the database into the attacker's table on its next insert.
    planted_then_victim_creates(
        "CREATE TABLE attacker__t (x); CREATE TABLE attacker__loot (d BLOB);
         CREATE TRIGGER attacker__trg AFTER INSERT ON attacker__t BEGIN INSERT INTO attacker__loot SELECT data FROM sqlite_dbpage; END",
        "attacker__trg",
    );
}

#[test]
fn a_read_grant_does_not_stretch_into_views_or_triggers() {
    let env = scripted();
    env.add(artifacts::READER, "reader.wasm");
    env.policy("[plugins.reader]\nreads = [\"victim\"]\n");
    env.applies("victim", "0.2.0", VICTIM_DATA);
    env.ok(&["up", "reader@0.1.0"]);
    // The reader's steps may read what it was granted (after a table made from a select,
    // which has the schema its statements compile in made again, granted tables included)
    // ...
    env.applies(
        "reader",
        "0.2.0",
        "CREATE TABLE reader__copy AS SELECT v FROM victim__data;
         INSERT INTO reader__copy SELECT v FROM victim__data",
    );
    assert_eq!(env.value::<i64>("SELECT count(*) FROM reader__copy"), 2);
    // ... but an object that reads it would keep reading later with the application's
    // rights, and would block the victim's own renames.
    env.refused(
        "reader",
        "0.3.0",
        "CREATE VIEW reader__v AS SELECT v FROM victim__data",
        "does not compile as plugin reader's own object",
    );
    env.refused(
        "reader",
        "0.3.0",
        "CREATE TABLE reader__t (x); CREATE TRIGGER reader__trg AFTER INSERT ON reader__t BEGIN INSERT INTO reader__copy SELECT v FROM victim__data; END",
        "does not compile as plugin reader's own object",
    );
    env.applies("victim", "0.3.0", "ALTER TABLE victim__data RENAME TO victim__data2; ALTER TABLE victim__data2 RENAME TO victim__data");
    let rows: Vec<String> = env.column("SELECT v FROM victim__data");
    assert_eq!(rows, ["precious"]);
}

#[test]
fn a_step_that_drops_what_its_own_view_reads_is_refused() {
    let env = scripted();
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__a (x); CREATE VIEW attacker__v AS SELECT x FROM attacker__a",
    );
    // The view would name a table that no longer exists; a later step could bring it back.
    env.refused("attacker", "0.3.0", "DROP TABLE attacker__a", UNRESOLVED);
    // Dropping both is fine (and destructive: marked, and allowed).
    env.policy("[plugins.attacker]\nallow_destructive = true\n");
    env.applies(
        "attacker",
        "0.3.0",
        "-- wasmig:destructive\nDROP VIEW attacker__v; DROP TABLE attacker__a",
    );
}

#[test]
fn a_double_quoted_string_cannot_block_another_plugins_column_changes() {
    // SQLite rewrites double-quoted string literals in every object when any column is
    // renamed or dropped: a change in the attacker's namespace during the victim's step.
    let env = scripted();
    for plant in [
        "CREATE TABLE attacker__x (a CHECK (\"zzz\" <> ''))",
        "CREATE TABLE attacker__x (a); CREATE VIEW attacker__v AS SELECT \"zzz\" AS s FROM attacker__x",
        "CREATE TABLE attacker__x (a); CREATE TRIGGER attacker__t AFTER INSERT ON attacker__x BEGIN SELECT \"zzz\"; END",
    ] {
        let err = env.refused("attacker", "0.2.0", plant, "zzz");
        assert!(err.contains("no such column"), "{err}");
    }
    env.applies(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__t (id INTEGER PRIMARY KEY, secret TEXT, junk TEXT);
         ALTER TABLE victim__t RENAME COLUMN secret TO secret2;
         ALTER TABLE victim__t DROP COLUMN junk",
    );
}

#[test]
fn a_column_default_may_call_only_allowed_functions() {
    // SQLite compiles a DEFAULT when a row is inserted, with the inserter's rights; the
    // application's connection may have extension loading on.
    let env = scripted();
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x, y DEFAULT (load_extension('/tmp/evil.so')))",
        "function load_extension() is not available to plugins",
    );
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x, y DEFAULT (upper('a') || random()))",
    );
}

#[test]
fn rtreecheck_tells_nothing_about_other_plugins_tables() {
    // rtreecheck takes a table's name as text and reads it with SQLite's own statements, so
    // its error would say whether another plugin's table exists.
    let env = scripted();
    env.applies("victim", "0.2.0", VICTIM_DATA);
    let refused = "function rtreecheck() is not available to plugins";
    let a = env.refused(
        "attacker",
        "0.2.0",
        "SELECT rtreecheck('victim__data')",
        refused,
    );
    let b = env.refused(
        "attacker",
        "0.2.0",
        "SELECT rtreecheck('victim__none')",
        refused,
    );
    assert_eq!(a.replace("data", "none"), b);
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE VIEW attacker__v AS SELECT rtreecheck('victim__data') AS r",
        "view \"attacker__v\"",
    );
}

#[test]
fn objects_left_behind_do_not_read_the_state_of_the_applications_connection() {
    // A default, trigger or view runs on the connection of whoever writes or reads the
    // table: `changes()` and `last_insert_rowid()` there would record the application's last
    // statement into the plugin's rows.
    let env = scripted();
    for sql in [
        "CREATE TABLE attacker__t (a, lir DEFAULT (last_insert_rowid()))",
        "CREATE TABLE attacker__t (a, ch DEFAULT (changes()))",
        "CREATE TABLE attacker__t (a); CREATE TABLE attacker__log (x);
         CREATE TRIGGER attacker__tr BEFORE INSERT ON attacker__t BEGIN INSERT INTO attacker__log VALUES (changes()); END",
        "CREATE TABLE attacker__t (a); CREATE TABLE attacker__log (x);
         CREATE TRIGGER attacker__tr AFTER INSERT ON attacker__t WHEN last_insert_rowid() > 0 BEGIN INSERT INTO attacker__log VALUES (1); END",
        "CREATE VIEW attacker__v AS SELECT sqlite_version() AS v",
    ] {
        env.refused(
            "attacker",
            "0.2.0",
            sql,
            "would read the state of the connection that uses the object",
        );
    }
    // The plugin's own statements may read its own connection's state, and a trigger its
    // row's.
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (a); CREATE TABLE attacker__log (x, n);
         CREATE TRIGGER attacker__tr AFTER INSERT ON attacker__t BEGIN INSERT INTO attacker__log VALUES (new.rowid, new.a); END;
         INSERT INTO attacker__t VALUES ('x');
         INSERT INTO attacker__log SELECT last_insert_rowid(), changes()",
    );
    env.conn()
        .execute_batch("INSERT INTO attacker__t VALUES ('app')")
        .unwrap();
    assert_eq!(env.value::<i64>("SELECT count(*) FROM attacker__log"), 3);
}

#[test]
fn a_trigger_on_the_rowid_or_on_no_column_is_checked_all_the_same() {
    // `UPDATE OF rowid` (or `oid`, `_rowid_`) fires only when the rowid is set under that
    // name, and `UPDATE OF` a name that is no column never fires until a column gets it:
    // neither may leave a body the host never compiled.
    let env = scripted();
    env.applies("victim", "0.2.0", VICTIM_DATA);
    for column in ["rowid", "OID", "_rowid_"] {
        env.refused(
            "attacker",
            "0.2.0",
            &format!(
                "CREATE TABLE attacker__t (x); CREATE TRIGGER attacker__trg AFTER UPDATE OF {column} \
                 ON attacker__t BEGIN UPDATE victim__data SET v = 'stolen'; END"
            ),
            UNRESOLVED,
        );
    }
    // A body naming nothing that exists would break every rename in the database.
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x); CREATE TRIGGER attacker__trg AFTER UPDATE OF _rowid_ \
         ON attacker__t BEGIN INSERT INTO attacker__nothing VALUES (1); END",
        UNRESOLVED,
    );
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x); CREATE TRIGGER attacker__trg AFTER UPDATE OF nosuch \
         ON attacker__t BEGIN UPDATE victim__data SET v = 'stolen'; END",
        "trigger \"attacker__trg\" is not compiled by any statement that writes its table",
    );
    // Nor may another trigger answer for it: one of TEMP under its name, or a CTE.
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x); CREATE TRIGGER attacker__trg AFTER UPDATE OF nosuch \
         ON attacker__t BEGIN UPDATE victim__data SET v = 'stolen'; END;
         CREATE TEMP TRIGGER attacker__trg AFTER UPDATE ON main.attacker__t BEGIN SELECT 1; END",
        "two triggers are named \"attacker__trg\"",
    );
    env.refused(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x); CREATE TRIGGER attacker__trg AFTER UPDATE OF nosuch \
         ON attacker__t BEGIN UPDATE victim__data SET v = 'stolen'; END;
         CREATE TRIGGER attacker__other AFTER UPDATE ON attacker__t
           BEGIN SELECT * FROM (WITH attacker__trg AS (SELECT 1) SELECT * FROM attacker__trg); END",
        "trigger \"attacker__trg\" is not compiled by any statement that writes its table",
    );
    let conn = env.conn();
    conn.execute_batch("CREATE TABLE app (x); ALTER TABLE app RENAME TO app2")
        .unwrap();
    assert_eq!(
        env.column::<String>("SELECT v FROM victim__data"),
        ["precious"]
    );

    // Honest triggers on the rowid and on a table without one apply.
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x); CREATE TABLE attacker__log (r);
         CREATE TRIGGER attacker__trg AFTER UPDATE OF rowid ON attacker__t
           BEGIN INSERT INTO attacker__log VALUES (new.rowid); END;
         CREATE TABLE attacker__w (k PRIMARY KEY, v) WITHOUT ROWID;
         CREATE TRIGGER attacker__trw AFTER UPDATE OF v ON attacker__w
           BEGIN INSERT INTO attacker__log VALUES (new.k); END",
    );
    conn.execute_batch(
        "INSERT INTO attacker__t VALUES (1); UPDATE attacker__t SET rowid = 7;
         INSERT INTO attacker__w VALUES ('k', 1); UPDATE attacker__w SET v = 2",
    )
    .unwrap();
    assert_eq!(
        env.column::<String>("SELECT CAST(r AS TEXT) FROM attacker__log ORDER BY 1"),
        ["7", "k"]
    );
}

#[test]
fn a_tables_constraints_and_an_indexs_expressions_answer_alike_on_any_connection_each_time() {
    // SQLite resolves a CHECK constraint's functions only when it creates the table, and
    // evaluates the constraint again whenever it checks the table: a constraint over
    // `random()` failed half the plugin's rows at each `integrity_check` and lost them in a
    // restore from a dump; one over `changes()` or `sqlite_version()` decided by the
    // application's connection and its SQLite build.
    let env = scripted();
    for (sql, function) in [
        (
            "CREATE TABLE attacker__t (a, CHECK (random() > 0))",
            "random",
        ),
        (
            "CREATE TABLE attacker__t (a CHECK (length(randomblob(4)) = 4 AND a > 0))",
            "randomblob",
        ),
        (
            "CREATE TABLE attacker__t (a CHECK (changes() < 2))",
            "changes",
        ),
        // The clock, which SQLite takes in a CHECK as the keywords (not as `'now'`): a row
        // that passed fails the check later.
        (
            "CREATE TABLE attacker__t (a CHECK (a > CURRENT_TIMESTAMP))",
            "current_timestamp",
        ),
        (
            "CREATE TABLE attacker__t (a); ALTER TABLE attacker__t ADD COLUMN b CHECK (b >= current_date)",
            "current_date",
        ),
        (
            "CREATE TABLE attacker__t (a, CHECK (a < CURRENT_TIME OR a IS NULL))",
            "current_time",
        ),
        (
            "CREATE TABLE attacker__t (a); ALTER TABLE attacker__t ADD COLUMN b CHECK (sqlite_version() >= '3')",
            "sqlite_version",
        ),
        // With a trigger on the table (whose own calls are its own business).
        (
            "CREATE TABLE attacker__t (a CHECK (random() > 0)); CREATE TABLE attacker__log (x);
             CREATE TRIGGER attacker__tr AFTER INSERT ON attacker__t BEGIN
               INSERT INTO attacker__log VALUES (randomblob(4)); END",
            "random",
        ),
        // A hex number that ends where a comment starts: read as `0xe-` and a string, the
        // constraint after it looked like text.
        (
            "CREATE TABLE attacker__t (x INTEGER DEFAULT (0xe--'\n), y CHECK (random() > 0) --'\n)",
            "random",
        ),
    ] {
        let err = env.refused(
            "attacker",
            "0.2.0",
            sql,
            &format!("table \"attacker__t\"'s constraints call {function}()"),
        );
        assert!(
            err.contains("SQLite evaluates a table's constraints again"),
            "{err}"
        );
    }
    // SQLite itself refuses what is not deterministic in generated columns and indexes;
    // `fts5_source_id()`, which it takes for deterministic, is not a plugin's to call.
    for (sql, function) in [
        (
            "CREATE TABLE attacker__t (a); CREATE INDEX attacker__i ON attacker__t (fts5_source_id() || a)",
            "function fts5_source_id() is not available to plugins",
        ),
        (
            "CREATE TABLE attacker__t (a, b AS (sqlite_version() || a))",
            "sqlite_version",
        ),
        (
            "CREATE TABLE attacker__t (a); CREATE INDEX attacker__i ON attacker__t (sqlite_version() || a)",
            "sqlite_version",
        ),
        (
            "CREATE TABLE attacker__t (a); CREATE INDEX attacker__i ON attacker__t (a) WHERE changes() > 0",
            "non-deterministic functions prohibited",
        ),
    ] {
        env.refused("attacker", "0.2.0", sql, function);
    }
    // What honest tables hold: a random key as a default, constraints over the row, one
    // naming its own table, generated columns, expression and partial indexes.
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (id BLOB PRIMARY KEY DEFAULT (randomblob(16)),
             n INTEGER NOT NULL CHECK (n > 0), name TEXT CHECK (length(name) < 100),
             at TEXT DEFAULT CURRENT_TIMESTAMP,
             total AS (n * 2), CHECK (attacker__t.n < 1000)) WITHOUT ROWID;
         CREATE INDEX attacker__by_name ON attacker__t (lower(name)) WHERE name IS NOT NULL;
         ALTER TABLE attacker__t ADD COLUMN note TEXT CHECK (note <> '');
         CREATE TABLE attacker__log (x);
         CREATE TRIGGER attacker__stamp AFTER INSERT ON attacker__t BEGIN
           INSERT INTO attacker__log VALUES (hex(randomblob(8))); END;
         INSERT INTO attacker__t (n, name) VALUES (1, 'One')",
    );
    env.conn()
        .execute_batch("INSERT INTO attacker__t (n, name) VALUES (2, 'Two')")
        .unwrap();
    assert_eq!(
        env.value::<String>("PRAGMA integrity_check"),
        "ok".to_string()
    );
    // A trigger's calls are the trigger's, however an insert into the table reaches it: a
    // TEMP trigger on the table, a child table's trigger that the cascade of a row a REPLACE
    // deletes fires.
    env.applies(
        "attacker",
        "0.3.0",
        "CREATE TABLE attacker__p (id INTEGER PRIMARY KEY, k UNIQUE ON CONFLICT REPLACE);
         CREATE TABLE attacker__c (pid REFERENCES attacker__p (id) ON DELETE CASCADE);
         CREATE TRIGGER attacker__gone AFTER DELETE ON attacker__c BEGIN
           INSERT INTO attacker__log VALUES (hex(randomblob(8))); END;
         CREATE TEMP TRIGGER attacker__early BEFORE INSERT ON attacker__p BEGIN
           SELECT random(); END",
    );
}

#[test]
fn what_the_applications_sqlite_build_may_answer_otherwise_is_not_stored() {
    // The plugin's own statements may call `soundex()`; LIKE and GLOB of text are theirs, in
    // constraints and indexes too, and the application's SQLite finds the table whole.
    let env = scripted();
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (name TEXT CHECK (name LIKE '%o%'), code TEXT);
         CREATE INDEX attacker__i ON attacker__t (name GLOB 'O*') WHERE name LIKE 'o%';
         INSERT INTO attacker__t SELECT 'One', soundex('One')",
    );
    env.conn()
        .execute_batch("INSERT INTO attacker__t VALUES ('Two', NULL)")
        .unwrap();
    assert_eq!(
        env.value::<String>("PRAGMA integrity_check"),
        "ok".to_string()
    );
    // A function SQLite has only when built with an option (`soundex`, SQLITE_SOUNDEX): the
    // application's SQLite of the same version may lack it, and its `integrity_check` and
    // `VACUUM` then fail on the plugin's index, for the whole database.
    for sql in [
        "CREATE TABLE attacker__s (a CHECK (soundex(a) <> ''))",
        "CREATE TABLE attacker__s (a, b AS (soundex(a)))",
        "CREATE TABLE attacker__s (a); INSERT INTO attacker__s VALUES ('Robert');
         CREATE INDEX attacker__si ON attacker__s (soundex(a))",
        "CREATE INDEX attacker__si ON attacker__t (code) WHERE soundex(name) > 'A'",
        "CREATE VIEW attacker__v AS SELECT soundex('Robert') AS s",
        "CREATE TABLE attacker__s (a DEFAULT (soundex('Robert')))",
        "CREATE TRIGGER attacker__st AFTER INSERT ON attacker__t BEGIN
           UPDATE attacker__t SET code = soundex(new.name) WHERE rowid = new.rowid; END",
        "CREATE TABLE attacker__s (a CHECK (fts5_locale('en', a) IS NOT NULL))",
    ] {
        let err = env.refused("attacker", "0.3.0", sql, "in only some builds of SQLite");
        assert!(
            err.contains("soundex()") || err.contains("fts5_locale()"),
            "{err}"
        );
    }
    // LIKE and GLOB of a blob: SQLite built with SQLITE_LIKE_DOESNT_MATCH_BLOBS (as Debian's
    // and Python's are) answers 0 where wasmig's SQLite matches; rows stored under one answer
    // were reported damaged by the other's `integrity_check`.
    for sql in [
        "CREATE TABLE attacker__b (x CHECK (x LIKE 'ab%')); INSERT INTO attacker__b VALUES (x'616263')",
        "CREATE TABLE attacker__b (x CHECK (NOT x LIKE 'ab%')); INSERT INTO attacker__b VALUES (x'616263')",
        "CREATE TABLE attacker__b (y); INSERT INTO attacker__b VALUES (x'616263');
         CREATE INDEX attacker__bi ON attacker__b (y GLOB 'a*')",
        "-- query\nSELECT x'616263' LIKE NULL",
    ] {
        env.refused(
            "attacker",
            "0.3.0",
            sql,
            "LIKE and GLOB of a blob are not available to plugins",
        );
    }
    // SQLite checks a table's rows against a constraint that ALTER TABLE adds with its own
    // built-in functions, not wasmig's: `a GLOB 'a'` stood on a blob, and the application's
    // `integrity_check` then failed; `instr()` of two large values ran on past the deadline.
    for (check, function) in [
        ("a GLOB 'a'", "glob()"),
        ("a LIKE 'a'", "like()"),
        ("a LIKE 'a' ESCAPE '\\'", "like()"),
        ("instr(a, 'b') >= 0", "instr()"),
        ("replace(a, 'a', 'b') IS NOT NULL", "replace()"),
        ("RTRIM(a) IS NOT NULL", "rtrim()"),
    ] {
        let err = env.refused(
            "attacker",
            "0.3.0",
            &format!(
                "CREATE TABLE attacker__b (id INTEGER PRIMARY KEY, a);
                 INSERT INTO attacker__b (a) VALUES (x'61'), ('a');
                 ALTER TABLE attacker__b ADD CONSTRAINT attacker__c CHECK ({check})"
            ),
            "in a CHECK constraint that ALTER TABLE adds",
        );
        assert!(err.contains(&format!("function {function}")), "{err}");
    }
    // The same query computes a virtual generated column it reads with SQLite's built-ins
    // too, through `ADD CHECK` and `SET NOT NULL` alike.
    // A TEMP table of the same name, which a name alone finds first, hides nothing.
    for (column, alter) in [
        ("g AS (b LIKE 'a%')", "ADD CHECK (g)"),
        (
            "g AS (instr(b, 'x'))",
            "ADD CONSTRAINT attacker__c CHECK (g >= 0)",
        ),
        ("g AS (instr(b, 'x'))", "ALTER COLUMN g SET NOT NULL"),
        ("g AS (b LIKE 'a%')", "ADD CHECK (g) -- temp"),
    ] {
        let temp = if alter.ends_with("-- temp") {
            "CREATE TEMP TABLE attacker__b (b, g);"
        } else {
            ""
        };
        env.refused(
            "attacker",
            "0.3.0",
            &format!(
                "CREATE TABLE attacker__b (b);
                 INSERT INTO attacker__b (b) VALUES (x'61'), (x'6162');
                 ALTER TABLE attacker__b ADD COLUMN {column};
                 {temp}
                 ALTER TABLE main.attacker__b {alter}"
            ),
            "column g of attacker__b is generated: SQLite computes it with its own built-in functions",
        );
    }
    assert!(!env.tables().contains(&"attacker__b".to_string()));
    assert_eq!(env.value::<String>("PRAGMA integrity_check"), "ok");
    // A constraint over the table's other columns is added as before.
    env.applies(
        "attacker",
        "0.3.0",
        "CREATE TABLE attacker__b (a, g AS (a || 'x'), s AS (lower(a)) STORED);
         INSERT INTO attacker__b (a) VALUES ('A');
         ALTER TABLE attacker__b ADD CHECK (length(a) < 10 AND s <> '');
         ALTER TABLE attacker__b ALTER COLUMN a SET NOT NULL",
    );
}

#[test]
fn a_definition_may_not_end_inside_a_comment() {
    // `.dump` writes each definition followed by `;`: after a view whose stored text ends
    // inside an open `/*`, the `;` is in the comment, and a second view's string holding
    // `*/; INSERT INTO app_users …` became SQL that restoring the dump ran, with the
    // restorer's rights. A trailing `--` comment joins the next line to the definition.
    let env = scripted();
    env.conn()
        .execute_batch("CREATE TABLE app_users (name TEXT, admin INT DEFAULT 0)")
        .unwrap();
    for sql in [
        "-- each\nCREATE VIEW attacker__v1 AS SELECT 1 AS a /* x",
        "-- each\nCREATE TABLE attacker__t (a);\n-- next\nCREATE INDEX attacker__i ON attacker__t (a) -- x",
    ] {
        env.refused("attacker", "0.2.0", sql, "ends inside a comment");
    }
    env.applies(
        "attacker",
        "0.2.0",
        "-- each\nCREATE VIEW attacker__v1 AS SELECT 1 AS a /* closed */\n-- next\n\
         CREATE VIEW attacker__v2 AS SELECT '*/; INSERT INTO app_users VALUES (''mallory'', 1); -- ' AS a",
    );
    // The schema written out and read back, as a restore does, is what it was.
    let conn = env.conn();
    let mut dump = String::new();
    let mut stmt = conn
        .prepare("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name LIKE 'attacker__v%' ORDER BY name")
        .unwrap();
    for sql in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
        dump.push_str(&sql.unwrap());
        dump.push_str(";\n");
    }
    let restored = rusqlite::Connection::open_in_memory().unwrap();
    restored
        .execute_batch("CREATE TABLE app_users (name TEXT, admin INT DEFAULT 0)")
        .unwrap();
    restored.execute_batch(&dump).unwrap();
    let admins: i64 = restored
        .query_row("SELECT count(*) FROM app_users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(admins, 0, "{dump}");
}

#[test]
fn a_plugins_objects_have_plain_names() {
    // Python's `iterdump` puts a table's name inside a string literal of the query it
    // builds: a `'` in the name ended the literal, and the rest of the name wrote a line of
    // the dump that restoring it ran (another admin in the application's users).
    let env = scripted();
    for sql in [
        "CREATE TABLE \"attacker__q' || char(59) || '\" (a)",
        "CREATE TABLE \"attacker__a b\" (a)",
        "CREATE TABLE attacker__t (a); CREATE INDEX \"attacker__i;\" ON attacker__t (a)",
        "CREATE VIEW \"attacker__v\nx\" AS SELECT 1 AS a",
    ] {
        env.refused(
            "attacker",
            "0.2.0",
            sql,
            "a plugin's objects have plain names",
        );
    }
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__données_2 (a); CREATE TABLE \"attacker__Mixed$Case\" (a)",
    );
}

#[test]
fn definitions_past_the_limits_the_applications_connections_set_are_refused() {
    // A connection that sets SQLite's limits below its defaults (as SQLite recommends, and
    // diesel's `set_recommended_security_limits` does) applies them to each definition when
    // it reads the schema, and one past them makes it read no table at all. Declared in the
    // policy, the limits hold for every plugin's objects.
    let env = scripted();
    env.applies("victim", "0.2.0", VICTIM_DATA);
    let columns: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let wide = format!("CREATE TABLE attacker__wide ({})", columns.join(", "));
    // Without the declaration, SQLite's defaults hold: 101 columns load.
    env.script(
        "attacker",
        "0.2.0",
        &wide,
        Some("DROP TABLE attacker__wide"),
    );
    env.ok(&["up", "attacker@0.2.0"]);
    env.ok(&["down", "attacker", "--steps", "1"]);
    env.applies("attacker", "0.2.0", "SELECT 1");
    env.policy("[sqlite]\napplication_limits = \"recommended\"\n");
    let deep: Vec<String> = (0..12).map(|i| format!("a > {i}")).collect();
    for (plant, what) in [
        (wide.clone(), "table \"attacker__wide\""),
        (
            format!(
                "CREATE TABLE attacker__s (a, b DEFAULT '{}')",
                "x".repeat(110_000)
            ),
            "table \"attacker__s\"",
        ),
        (
            format!("CREATE TABLE attacker__d (a CHECK ({}))", deep.join(" AND ")),
            "table \"attacker__d\"",
        ),
        (
            "CREATE TABLE attacker__f (a CHECK (coalesce(a, 1, 2, 3, 4, 5, 6, 7, 8, 9) IS NOT NULL))"
                .to_string(),
            "table \"attacker__f\"",
        ),
        (
            "CREATE TABLE attacker__t (a); CREATE INDEX attacker__i ON attacker__t \
             (coalesce(a, 1, 2, 3, 4, 5, 6, 7, 8, 9))"
                .to_string(),
            "index \"attacker__i\"",
        ),
        (
            "CREATE VIEW attacker__v AS SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4"
                .to_string(),
            "view \"attacker__v\"",
        ),
        (
            "CREATE TABLE attacker__t (a); CREATE TRIGGER attacker__tr AFTER INSERT ON \
             attacker__t BEGIN SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4; END"
                .to_string(),
            "trigger \"attacker__tr\"",
        ),
        // Read with the schema, but resolved whenever the application renames or drops a
        // column or renames a table: more columns than `column` then fail each of those.
        (
            format!(
                "CREATE TABLE attacker__a ({0}); CREATE TABLE attacker__b ({0});
                 CREATE VIEW attacker__v AS SELECT * FROM attacker__a, attacker__b",
                (0..60).map(|i| format!("c{i}")).collect::<Vec<_>>().join(", ")
            ),
            "view \"attacker__v\"",
        ),
        (
            format!(
                "CREATE TABLE attacker__t (a); CREATE TRIGGER attacker__tr AFTER INSERT ON \
                 attacker__t BEGIN SELECT {}; END",
                (0..101).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
            ),
            "trigger \"attacker__tr\"",
        ),
    ] {
        let err = env.refused("attacker", "0.3.0", &plant, "is past the limits the application's connections set");
        assert!(err.contains(what), "{err}");
    }
    // A value longer than their `length` is refused as the step makes it: those
    // connections compute the plugin's checks and index expressions again in
    // `integrity_check`, `REINDEX`, `ANALYZE` and a dump's restore.
    for plant in [
        "CREATE TABLE attacker__c (a CHECK (length(printf('%.*c', 1100000, 'x')) > 0));
         INSERT INTO attacker__c VALUES (1)",
        "CREATE TABLE attacker__k (a); CREATE INDEX attacker__ki ON attacker__k (a || a);
         INSERT INTO attacker__k VALUES (hex(zeroblob(300000)))",
    ] {
        env.refused("attacker", "0.3.0", plant, "too big");
    }
    // The application's connection with those limits reads every table.
    let application = |env: &Env| {
        let conn = env.conn();
        for (limit, value) in [
            (rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, 1_000_000),
            (rusqlite::limits::Limit::SQLITE_LIMIT_SQL_LENGTH, 100_000),
            (rusqlite::limits::Limit::SQLITE_LIMIT_COLUMN, 100),
            (rusqlite::limits::Limit::SQLITE_LIMIT_EXPR_DEPTH, 10),
            (rusqlite::limits::Limit::SQLITE_LIMIT_COMPOUND_SELECT, 3),
            (rusqlite::limits::Limit::SQLITE_LIMIT_FUNCTION_ARG, 8),
        ] {
            conn.set_limit(limit, value).unwrap();
        }
        conn.query_row("SELECT v FROM victim__data", [], |r| r.get::<_, String>(0))
            .unwrap()
    };
    assert_eq!(application(&env), "precious");
    // Tables within them apply, whatever the statements that check the plugin's triggers
    // would be: 98 columns with an UPDATE trigger (101 set with the rowid's names), and
    // 52 columns of names of 1,000 bytes (a statement setting them all is past
    // `sql_length`).
    let long: Vec<String> = (0..52)
        .map(|i| format!("c{i}_{}", "x".repeat(995)))
        .collect();
    env.script(
        "attacker",
        "0.3.0",
        &format!(
            "CREATE TABLE attacker__n ({});
             CREATE TABLE attacker__l ({});
             CREATE TRIGGER attacker__nt AFTER UPDATE ON attacker__n BEGIN SELECT 1; END;
             CREATE TRIGGER attacker__lt AFTER UPDATE ON attacker__l BEGIN SELECT 1; END",
            (0..98)
                .map(|i| format!("c{i}"))
                .collect::<Vec<_>>()
                .join(", "),
            long.join(", ")
        ),
        Some("DROP TABLE attacker__n; DROP TABLE attacker__l"),
    );
    env.ok(&["up", "attacker@0.3.0"]);
    env.ok(&["down", "attacker", "--steps", "1"]);
    // Honest definitions within them apply: a view of three terms, an index, a trigger,
    // an `fts5` table.
    env.applies(
        "attacker",
        "0.3.0",
        "CREATE TABLE attacker__t (a, b, c CHECK (c IS NULL OR c > 0));
         CREATE INDEX attacker__i ON attacker__t (lower(a), b);
         CREATE VIEW attacker__v AS SELECT a FROM attacker__t UNION SELECT b FROM attacker__t
           UNION SELECT c FROM attacker__t;
         CREATE VIRTUAL TABLE attacker__f USING fts5(x);
         CREATE TRIGGER attacker__tr AFTER INSERT ON attacker__t BEGIN
           INSERT INTO attacker__f (x) VALUES (new.a); END",
    );
    assert_eq!(application(&env), "precious");
    // And the application, on such a connection, still changes its own tables.
    let conn = env.conn();
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_COLUMN, 100)
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE app_users (id, name); ALTER TABLE app_users RENAME COLUMN name TO full_name",
    )
    .unwrap();
    drop(conn);
    // The number of objects in the whole database, when declared: SQLite counts its schema
    // table and a WITHOUT ROWID table's primary key too.
    let objects: i64 = env.value(
        "SELECT 1 + (SELECT count(*) FROM sqlite_schema)
           + (SELECT count(*) FROM pragma_table_list WHERE schema = 'main' AND wr)",
    );
    env.policy(&format!(
        "[sqlite.application_limits]\nschema = {}\n",
        objects + 1
    ));
    env.refused(
        "attacker",
        "0.4.0",
        "CREATE TABLE attacker__two (a PRIMARY KEY) WITHOUT ROWID",
        &format!("would hold {} schema objects", objects + 2),
    );
    env.applies("attacker", "0.4.0", "CREATE TABLE attacker__one (a)");
    env.refused(
        "attacker",
        "0.5.0",
        "CREATE TABLE attacker__two (a)",
        "schema objects, more than",
    );
    let conn = env.conn();
    conn.set_limit(
        rusqlite::limits::Limit::SQLITE_LIMIT_SCHEMA,
        (objects + 1) as i32,
    )
    .unwrap();
    conn.query_row("SELECT count(*) FROM victim__data", [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap();
}

#[test]
fn the_applications_limits_in_the_policy_are_checked() {
    let env = scripted();
    for (policy, expected) in [
        (
            "[sqlite]\napplication_limits = \"strict\"\n",
            "[sqlite] application_limits: unknown preset \"strict\"",
        ),
        (
            "[sqlite.application_limits]\ncolumns = 100\n",
            "unknown field `columns`",
        ),
        (
            "[sqlite.application_limits]\ncolumn = 0\n",
            "column = 0 is out of range",
        ),
    ] {
        env.policy(policy);
        let err = env.fails(&["up"]);
        assert!(err.contains(expected), "{policy}: {err}");
    }
}

#[test]
fn names_that_differ_only_in_a_non_ascii_letters_case_are_checked_as_two_objects() {
    // SQLite folds the case of ASCII letters only: `attacker__é` and `attacker__É` are two
    // objects, and the one made or changed second is checked like any other.
    let env = scripted();
    env.applies("victim", "0.2.0", VICTIM_DATA);
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (x);
         CREATE TRIGGER attacker__é AFTER INSERT ON attacker__t BEGIN SELECT 1; END;
         CREATE TABLE attacker__ü (x)",
    );
    env.refused(
        "attacker",
        "0.3.0",
        "CREATE TRIGGER attacker__É AFTER INSERT ON attacker__t BEGIN DELETE FROM victim__data; END",
        UNRESOLVED,
    );
    env.refused(
        "attacker",
        "0.3.0",
        "CREATE TABLE attacker__Ü (v REFERENCES victim__data (id))",
        "victim__data",
    );
    env.policy("[sqlite]\napplication_limits = \"recommended\"\n");
    let columns: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    env.refused(
        "attacker",
        "0.3.0",
        &format!("CREATE TABLE attacker__É ({})", columns.join(", ")),
        "too many columns",
    );
    application_writes_and_victim_survives(&env);
}

#[test]
fn a_trigger_that_would_break_the_applications_renames_is_refused_whatever_its_name() {
    // SQLite's parser drops `0 AND EXISTS (…)` without resolving what the subquery names,
    // but an ALTER TABLE that renames or drops a column resolves every trigger again, and
    // fails over one that names a table that does not exist. A trigger named like a
    // storage table of an fts5 table made after it must be checked all the same.
    let trigger = |name: &str| {
        format!(
            "CREATE TRIGGER {name} AFTER INSERT ON attacker__t BEGIN
               INSERT INTO attacker__l SELECT 1 WHERE 0 AND EXISTS (SELECT 1 FROM app_future);
             END;"
        )
    };
    let env = scripted();
    for plant in [
        format!(
            "CREATE TABLE attacker__t (x); CREATE TABLE attacker__l (n); {}",
            trigger("attacker__tr")
        ),
        format!(
            "CREATE TABLE attacker__t (x); CREATE TABLE attacker__l (n); {}
             CREATE VIRTUAL TABLE attacker__f USING fts5(body, columnsize = 0);
             CREATE TABLE attacker__z AS SELECT 1 AS one;",
            trigger("attacker__f_docsize")
        ),
    ] {
        env.refused(
            "attacker",
            "0.2.0",
            &plant,
            "an ALTER TABLE that renames a column fails over plugin attacker's definitions",
        );
    }
    env.conn()
        .execute_batch(
            "CREATE TABLE app_users (id INTEGER PRIMARY KEY, email TEXT, legacy TEXT);
             ALTER TABLE app_users RENAME COLUMN email TO mail;
             ALTER TABLE app_users DROP COLUMN legacy",
        )
        .unwrap();
}
