//! Foreign keys: a reference makes SQLite read and guard the referenced table on the
//! plugin's behalf (deletes, drops and renames of the parent), so a plugin may reference only
//! its own tables, existing or not. The authorizer does not see a `REFERENCES` clause; the
//! schema check reads every new or changed table's foreign keys before the step commits.

use crate::scripted::scripted;

const OUTSIDE: &str = "a foreign key may reference only the plugin's own tables";

#[test]
fn a_foreign_key_into_another_namespace_is_refused() {
    let env = scripted();
    env.applies("victim", "0.2.0", "CREATE TABLE victim__parent (id INTEGER PRIMARY KEY); INSERT INTO victim__parent VALUES (1), (2)");
    for sql in [
        "CREATE TABLE attacker__child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES victim__parent (id))",
        "CREATE TABLE attacker__child (p INTEGER, FOREIGN KEY (p) REFERENCES \"VICTIM__PARENT\" (id) ON DELETE CASCADE)",
        "CREATE TABLE attacker__child (p); ALTER TABLE attacker__child ADD COLUMN q REFERENCES victim__parent (id)",
        // A table that does not exist yet is refused too.
        "CREATE TABLE attacker__child (p REFERENCES victim__later (id))",
    ] {
        env.refused("attacker", "0.2.0", sql, OUTSIDE);
    }
    // The victim's own migrations and the application's deletes are unhindered.
    env.applies(
        "victim",
        "0.3.0",
        "ALTER TABLE victim__parent RENAME TO victim__parent2; ALTER TABLE victim__parent2 RENAME TO victim__parent;
         CREATE TABLE victim__later (id INTEGER PRIMARY KEY)",
    );
    env.conn()
        .execute("DELETE FROM victim__parent WHERE id = 1", [])
        .unwrap();
    env.conn().execute("DROP TABLE victim__later", []).unwrap();
}

#[test]
fn foreign_keys_inside_the_namespace_work() {
    let env = scripted();
    env.applies(
        "victim",
        "0.2.0",
        "CREATE TABLE victim__parent (id INTEGER PRIMARY KEY);
         CREATE TABLE victim__child (id INTEGER PRIMARY KEY, p INTEGER NOT NULL REFERENCES victim__parent (id) ON DELETE CASCADE);
         INSERT INTO victim__parent VALUES (1); INSERT INTO victim__child VALUES (10, 1)",
    );
    let conn = env.conn();
    conn.execute("DELETE FROM victim__parent WHERE id = 1", [])
        .unwrap();
    assert_eq!(env.value::<i64>("SELECT count(*) FROM victim__child"), 0);
}

#[test]
fn a_deferred_key_left_violated_fails_the_step_that_left_it() {
    // SQLite checks a deferred key at the commit: the step is refused before it, as its own
    // failure, and a dry run says so too.
    let env = scripted();
    let step = "CREATE TABLE attacker__p (id INTEGER PRIMARY KEY);
         CREATE TABLE attacker__c (pid REFERENCES attacker__p (id) DEFERRABLE INITIALLY DEFERRED);
         INSERT INTO attacker__c VALUES (5)";
    env.script("attacker", "0.2.0", step, None);
    let out = env.run(&["plan", "attacker@0.2.0"]);
    let plan =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(plan.contains("deferred foreign key violated"), "{plan}");
    env.refused("attacker", "0.2.0", step, "deferred foreign key violated");
    // Repaired before the step ends, the same key is the step's to defer.
    env.applies(
        "attacker",
        "0.2.0",
        &format!("{step}; INSERT INTO attacker__p VALUES (5)"),
    );
}
