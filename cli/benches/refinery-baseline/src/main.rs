//! Applies the same SQL as wasmig's benchmark plugins (bench-template10, names patched to
//! `p000000000000001`, …) to a fresh SQLite file with refinery, natively.
//!
//! usage: refinery-baseline DB PLUGINS STEPS

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (db, plugins, steps): (&str, usize, usize) = (
        &args[1],
        args[2].parse().expect("PLUGINS"),
        args[3].parse().expect("STEPS"),
    );
    let mut migrations = Vec::new();
    let mut version = 0;
    for p in 1..=plugins {
        let ns = format!("p{p:015}__");
        for i in 1..=steps {
            version += 1;
            let sql = format!(
                "CREATE TABLE {ns}t{i} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER);
             CREATE INDEX {ns}t{i}_name ON {ns}t{i} (name);
             INSERT INTO {ns}t{i} (name, n) VALUES ('a', 1), ('b', 2), ('c', 3);"
            );
            migrations.push(
                refinery::Migration::unapplied(&format!("V{version}__p{p}_t{i}"), &sql)
                    .expect("valid migration name"),
            );
        }
    }
    let mut conn = rusqlite::Connection::open(db).expect("open the database");
    let report = refinery::Runner::new(&migrations)
        .set_grouped(false)
        .run(&mut conn)
        .expect("refinery applies the migrations");
    assert_eq!(report.applied_migrations().len(), plugins * steps);
}
