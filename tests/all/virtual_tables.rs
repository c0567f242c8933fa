//! Virtual tables: only the allowed modules (`fts5`, `rtree`), and an `fts5` table's external
//! content only from the plugin's own table. A module decides what its table reads, whatever
//! the table is named: `sqlite_dbpage` under a name of the plugin's reads every page of the
//! file, every plugin's rows, the ledger and the application's tables.

use crate::scripted::scripted;

#[test]
fn a_virtual_table_over_the_raw_pages_is_refused_under_any_name() {
    let env = scripted();
    env.applies(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__secret (v TEXT); INSERT INTO victim__secret VALUES ('s3cret')",
    );
    for module in [
        "sqlite_dbpage",
        "dbstat",
        "fts5vocab",
        "fts4",
        "fts3",
        "json_each",
        "pragma_table_list",
    ] {
        let sql = format!("CREATE VIRTUAL TABLE attacker__pages USING {module}");
        let err = env.refused("attacker", "0.2.0", &sql, "is not available to plugins");
        assert!(err.contains(module), "{err}");
    }
    // The application, with full rights, finds nothing the attacker could have planted.
    let conn = env.conn();
    let planted: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'attacker__pages%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(planted, 0);
}

#[test]
fn an_fts5_table_may_index_only_the_plugins_own_table() {
    let env = scripted();
    env.applies("victim", "0.2.0", "CREATE TABLE victim__doc (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO victim__doc (body) VALUES ('private words')");
    for content in [
        "'victim__doc'",
        "\"victim__doc\"",
        "[victim__doc]",
        "victim__doc",
        "'VICTIM__DOC'",
        "'main.victim__doc'",
    ] {
        let sql = format!(
            "CREATE VIRTUAL TABLE attacker__idx USING fts5(body, content={content}, content_rowid='id')"
        );
        env.refused(
            "attacker",
            "0.2.0",
            &sql,
            "external content must be the plugin's own table",
        );
    }
    // fts5 takes any prefix of an option's name: `c=` and `Conte=` are `content=`. Only
    // options spelled out are accepted, even naming the plugin's own table.
    for (key, table) in [
        ("c", "victim__doc"),
        ("conte", "victim__doc"),
        ("c", "attacker__doc"),
        ("Cont", "attacker__doc"),
        ("Conten", "attacker__doc"),
    ] {
        let sql = format!(
            "CREATE TABLE attacker__doc (id INTEGER PRIMARY KEY, body TEXT);
             CREATE VIRTUAL TABLE attacker__idx USING fts5(body, {key}='{table}', content_rowid='id')"
        );
        let err = env.refused("attacker", "0.2.0", &sql, "");
        assert!(
            err.contains("spell the option out in full")
                || err.contains("\"victim__doc\" is outside"),
            "{key}={table}: {err}"
        );
    }
    // Its own content table works, and the application can search it.
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__doc (id INTEGER PRIMARY KEY, body TEXT);
         CREATE VIRTUAL TABLE attacker__idx USING fts5(body, content='attacker__doc', content_rowid='id');
         INSERT INTO attacker__doc (body) VALUES ('public words');
         INSERT INTO attacker__idx (attacker__idx) VALUES ('rebuild')",
    );
    let found: i64 =
        env.value("SELECT rowid FROM attacker__idx WHERE attacker__idx MATCH 'public'");
    assert_eq!(found, 1);
}

#[test]
fn a_table_named_like_an_fts5_tables_storage_is_checked_as_any_table() {
    // A contentless fts5 table makes no `_content` table, and one without column sizes no
    // `_docsize`: a table of the plugin's made under that name, before the fts5 table, is
    // SQLite's shadow table by its name, but its defaults are the plugin's (here one that
    // would record the application's connection state in each row it inserts).
    let env = scripted();
    for (suffix, options) in [("content", "content=''"), ("docsize", "columnsize=0")] {
        let sql = format!(
            "CREATE TABLE attacker__f_{suffix} (id INTEGER PRIMARY KEY, seen DEFAULT (changes()));
             CREATE VIRTUAL TABLE attacker__f USING fts5(body, {options})"
        );
        let err = env.refused("attacker", "0.2.0", &sql, "");
        assert!(
            err.contains("changes") || err.contains("may not be modified"),
            "{err}"
        );
    }
    // The module's own storage, with the same options, is fine.
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE VIRTUAL TABLE attacker__f USING fts5(body, content='', columnsize=0);
         CREATE VIRTUAL TABLE attacker__g USING fts5(body)",
    );
}

#[test]
fn own_rtree_and_fts5_tables_work_after_the_application_analyzed_the_database() {
    let env = scripted();
    // ANALYZE makes sqlite_stat1, which rtree reads when it opens a table.
    env.conn().execute_batch("CREATE TABLE app_t (x); CREATE INDEX app_i ON app_t (x); INSERT INTO app_t VALUES (1), (2); ANALYZE").unwrap();
    env.applies(
        "victim",
        "0.2.0",
        "CREATE VIRTUAL TABLE victim__geo USING rtree(id, minx, maxx, miny, maxy);
         INSERT INTO victim__geo VALUES (1, 0, 10, 0, 10), (2, 20, 30, 20, 30);
         DELETE FROM victim__geo WHERE id = 2;
         CREATE TABLE victim__box AS SELECT id FROM victim__geo WHERE minx < 5;
         CREATE VIRTUAL TABLE victim__text USING fts5(body);
         INSERT INTO victim__text VALUES ('one two'), ('three');
         DELETE FROM victim__text WHERE body = 'three'",
    );
    assert_eq!(env.value::<i64>("SELECT count(*) FROM victim__geo"), 1);
    assert_eq!(env.value::<i64>("SELECT id FROM victim__box"), 1);
    assert_eq!(
        env.value::<i64>("SELECT count(*) FROM victim__text WHERE victim__text MATCH 'two'"),
        1
    );
    // The statistics (which name every table) are SQLite's, not the plugin's to read, and
    // are refused whether or not the application analyzed the database: whether it did is
    // not the plugin's to learn either.
    for sql in [
        "SELECT count(*) FROM sqlite_stat1",
        "CREATE TABLE victim__stats AS SELECT tbl, stat FROM sqlite_stat1",
    ] {
        let analyzed = env.refused("victim", "0.3.0", sql, "\"sqlite_stat1\" is outside");
        let fresh = scripted();
        fresh.applies("victim", "0.2.0", "CREATE TABLE victim__t (x)");
        let not_analyzed = fresh.refused("victim", "0.3.0", sql, "\"sqlite_stat1\" is outside");
        let line = |e: &str| e.lines().next().unwrap_or_default().to_string();
        assert_eq!(line(&analyzed), line(&not_analyzed));
    }
}
