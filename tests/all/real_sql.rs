//! Real SQL keeps working: a notes application's published migrations, renamed into the
//! plugin's namespace (`tests/corpus/`), apply one step each, and the application then uses
//! what they made through a plain connection: `STRICT` and `WITHOUT ROWID` tables, generated
//! columns, partial and expression indexes, views, triggers, `fts5` with external content kept
//! in sync by triggers, contentless `fts5`, `rtree`, bulk updates and deletes, and SQLite's
//! documented table rebuild (which drops a column: a destructive step, marked and allowed).

use crate::scripted::scripted;

const CORPUS: &[(&str, &str)] = &[
    ("0.2.0", include_str!("../corpus/001-core.sql")),
    ("0.3.0", include_str!("../corpus/002-search.sql")),
    ("0.4.0", include_str!("../corpus/003-data.sql")),
    ("0.5.0", include_str!("../corpus/004-rebuild.sql")),
];

#[test]
fn a_real_applications_migrations_apply_and_are_used_afterwards() {
    let env = scripted();
    // The rebuild drops a column: marked destructive in its SQL, and allowed here.
    env.policy("[plugins.victim]\nallow_destructive = true\n");
    for (version, sql) in CORPUS {
        env.applies("victim", version, sql);
    }
    let conn = env.conn();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };

    // The data the migrations wrote, through the rebuilt table and its view.
    assert_eq!(count("SELECT count(*) FROM victim__user"), 3);
    let notes = count("SELECT count(*) FROM victim__note");
    assert!(notes > 150 && notes < 300, "{notes}");
    assert_eq!(
        count("SELECT count(*) FROM victim__note_summary WHERE email = 'cy@example.com'"),
        0
    );
    assert!(count("SELECT count(*) FROM victim__note WHERE status = 'published'") > 0);

    // Full-text search stays in sync with the application's own writes.
    let hits = |q: &str| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM victim__note_fts WHERE victim__note_fts MATCH ?1",
            [q],
            |r| r.get(0),
        )
        .unwrap()
    };
    let lighthouses = hits("lighthouse");
    assert!(lighthouses > 0);
    conn.execute("INSERT INTO victim__note (user_id, title, body) VALUES (1, 'fresh', 'a zeppelin lighthouse')", []).unwrap();
    assert_eq!(hits("zeppelin"), 1);
    assert_eq!(hits("lighthouse"), lighthouses + 1);
    conn.execute(
        "UPDATE victim__note SET body = 'a blimp' WHERE title = 'fresh'",
        [],
    )
    .unwrap();
    assert_eq!((hits("zeppelin"), hits("blimp")), (0, 1));
    conn.execute("DELETE FROM victim__note WHERE title = 'fresh'", [])
        .unwrap();
    assert_eq!(hits("blimp"), 0);
    conn.execute(
        "INSERT INTO victim__note_fts (victim__note_fts) VALUES ('integrity-check')",
        [],
    )
    .unwrap();

    // Generated columns, the expression index, the WITHOUT ROWID table, the spatial index.
    assert_eq!(
        count("SELECT words FROM victim__note WHERE title = 'note 1'"),
        5
    );
    assert_eq!(
        count("SELECT count(*) FROM victim__note WHERE lower(slug) = 'note-4'"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM victim__setting WHERE key = 'theme'"),
        2
    );
    assert_eq!(
        count("SELECT count(*) FROM victim__place WHERE min_lat <= 48.2 AND max_lat >= 48.15"),
        10
    );
    conn.execute(
        "INSERT INTO victim__place VALUES (1000, 10, 11, 10, 11, 1)",
        [],
    )
    .unwrap();
    assert_eq!(
        count("SELECT note_id FROM victim__place WHERE min_lat >= 10"),
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM victim__tag_fts WHERE victim__tag_fts MATCH 't1'"),
        3
    );

    // Constraints the migrations declared hold for the application.
    assert!(
        conn.execute(
            "INSERT INTO victim__note (user_id, title, status) VALUES (1, 'x', 'bogus')",
            []
        )
        .is_err()
    );
    assert!(
        conn.execute(
            "INSERT INTO victim__user (email) VALUES ('ADA@example.com')",
            []
        )
        .is_err()
    );
    conn.execute(
        "DELETE FROM victim__user WHERE email = 'bob@example.com'",
        [],
    )
    .unwrap();
    assert_eq!(
        count("SELECT count(*) FROM victim__note WHERE user_id = 2"),
        0,
        "ON DELETE CASCADE"
    );

    // And wasmig's own record agrees with the database.
    env.ok(&["validate"]);
}

#[test]
fn temp_objects_keep_working_when_a_table_is_made_from_a_select_between_them() {
    // A table made from a select is not run again where each statement is first compiled,
    // which is made afresh from the database then, TEMP objects included: a TEMP trigger on a
    // main table keeps writing to its TEMP table.
    let env = scripted();
    env.applies(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__doc (id INTEGER PRIMARY KEY, title TEXT);
         CREATE TEMP TABLE victim__log (x);
         CREATE TEMP TRIGGER victim__tt AFTER INSERT ON victim__doc BEGIN INSERT INTO victim__log VALUES (new.id); END;
         CREATE TABLE victim__copy AS SELECT 1 AS one;
         INSERT INTO victim__doc (title) VALUES ('d');
         INSERT INTO victim__copy SELECT count(*) FROM victim__log",
    );
    assert_eq!(
        env.value::<i64>("SELECT sum(one) FROM victim__copy"),
        2,
        "the TEMP trigger wrote its row"
    );
}

#[test]
fn a_main_index_stays_on_its_table_beside_a_temp_table_of_the_same_name() {
    let env = scripted();
    env.applies(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__d (x);
         CREATE INDEX victim__di ON victim__d (x);
         CREATE TEMP TABLE victim__d (x);
         CREATE TABLE victim__e AS SELECT 1 AS one;
         INSERT INTO victim__e SELECT count(*) FROM main.victim__d INDEXED BY victim__di",
    );
    assert_eq!(env.value::<i64>("SELECT count(*) FROM victim__e"), 2);
}

#[test]
fn constraints_added_and_dropped_on_a_plugins_own_table() {
    // SQLite's ALTER TABLE checks a new constraint against the table's rows and rewrites the
    // table's statement with functions of its own, which SQL cannot call.
    let env = scripted();
    env.applies(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__item (id INTEGER PRIMARY KEY, qty INTEGER, note TEXT);
         INSERT INTO victim__item (qty, note) VALUES (1, 'a'), (2, 'b');
         ALTER TABLE victim__item ADD CONSTRAINT victim__qty_positive CHECK (qty > 0);
         ALTER TABLE victim__item ADD CHECK (length(note) < 100);
         ALTER TABLE victim__item ALTER COLUMN note SET NOT NULL",
    );
    let insert = |sql: &str| env.conn().execute_batch(sql);
    assert!(insert("INSERT INTO victim__item (qty, note) VALUES (0, 'c')").is_err());
    assert!(insert("INSERT INTO victim__item (qty, note) VALUES (3, NULL)").is_err());
    // A constraint the rows break is refused, and the step rolls back.
    env.refused(
        "victim",
        "0.3.0",
        "ALTER TABLE victim__item ADD CHECK (qty > 1)",
        "constraint failed",
    );
    env.applies(
        "victim",
        "0.3.0",
        "ALTER TABLE victim__item DROP CONSTRAINT victim__qty_positive;
         ALTER TABLE victim__item ALTER COLUMN note DROP NOT NULL",
    );
    insert("INSERT INTO victim__item (qty, note) VALUES (0, NULL)").unwrap();
    // A plugin cannot call them.
    env.refused(
        "attacker",
        "0.2.0",
        "-- query\nSELECT sqlite_fail('x', 1)",
        "sqlite_fail",
    );
    env.ok(&["validate"]);
}

#[test]
fn columns_added_to_strict_tables_and_with_checks() {
    // SQLite checks the table's rows against such a column with `pragma_quick_check` on the
    // table: a plugin's own table is its own to check.
    let env = scripted();
    env.applies(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__s (id INTEGER PRIMARY KEY, n INTEGER) STRICT;
         INSERT INTO victim__s (n) VALUES (1), (2);
         ALTER TABLE victim__s ADD COLUMN note TEXT;
         CREATE TABLE victim__c (id INTEGER PRIMARY KEY, n INTEGER);
         INSERT INTO victim__c (n) VALUES (1);
         ALTER TABLE victim__c ADD COLUMN m INTEGER CHECK (m IS NULL OR m > 0);
         ALTER TABLE victim__c ADD COLUMN twice INTEGER GENERATED ALWAYS AS (n * 2) NOT NULL;
         ALTER TABLE victim__c ADD COLUMN tag TEXT CHECK (tag IS NULL OR tag LIKE 't%')",
    );
    assert_eq!(env.value::<i64>("SELECT twice FROM victim__c"), 2);
    // A column the rows break is refused, and the step rolls back.
    env.refused(
        "victim",
        "0.3.0",
        "ALTER TABLE victim__c ADD COLUMN k INTEGER DEFAULT 0 CHECK (k > 0)",
        "CHECK constraint failed",
    );
    // The check of the whole database, or of another plugin's table, is not the plugin's.
    for pragma in [
        "PRAGMA quick_check",
        "PRAGMA quick_check(100)",
        "PRAGMA quick_check(attacker__none)",
        "-- query\nSELECT * FROM pragma_quick_check('victim__s')",
        "-- query\nSELECT * FROM pragma_quick_check",
    ] {
        env.refused("attacker", "0.2.0", pragma, "");
    }
    env.ok(&["validate"]);
}

#[test]
fn reindex_and_index_pragmas_reach_the_indexes_of_a_plugins_own_constraints() {
    // SQLite names a UNIQUE or PRIMARY KEY constraint's index `sqlite_autoindex_<table>_<n>`,
    // and `REINDEX <table>` rebuilds it with the table's others.
    let env = crate::scripted::scripted();
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__t (a UNIQUE, b, PRIMARY KEY (b)) WITHOUT ROWID;
         CREATE INDEX attacker__by_a ON attacker__t (a);
         REINDEX attacker__t; REINDEX sqlite_autoindex_attacker__t_1;
         PRAGMA index_info(sqlite_autoindex_attacker__t_1);
         PRAGMA index_xinfo('sqlite_autoindex_attacker__t_2')",
    );
    env.applies("victim", "0.2.0", "CREATE TABLE victim__t (a UNIQUE)");
    for sql in [
        "REINDEX sqlite_autoindex_victim__t_1",
        "REINDEX victim__t",
        "PRAGMA index_info(sqlite_autoindex_victim__t_1)",
    ] {
        env.refused("attacker", "0.3.0", sql, "attacker");
    }
}
