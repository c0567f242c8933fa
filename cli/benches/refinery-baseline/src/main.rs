//! Applies the same SQL as wasmig's benchmark plugins (bench-template10, names patched to
//! `p000000000000001`, …) with refinery, natively: to a fresh SQLite file, or to a fresh
//! PostgreSQL database (a `postgres://` URL), each plugin's tables in a schema of its own as
//! wasmig puts them.
//!
//! usage: refinery-baseline DB PLUGINS STEPS
//!        refinery-baseline POSTGRES-URL PLUGINS STEPS --floor|--floor-one-by-one
//!        (the same SQL without refinery, one role per plugin: see `floor.rs`)

mod floor;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (db, plugins, steps): (&str, usize, usize) = (
        &args[1],
        args[2].parse().expect("PLUGINS"),
        args[3].parse().expect("STEPS"),
    );
    match args.get(4).map(String::as_str) {
        Some("--floor") => return floor::run(db, plugins, steps, floor::Steps::Batched),
        Some("--floor-one-by-one") => {
            return floor::run(db, plugins, steps, floor::Steps::OneByOne);
        }
        Some(other) => panic!("unknown option {other}"),
        None => {}
    }
    let postgres = db.starts_with("postgres://") || db.starts_with("postgresql://");
    let mut migrations = Vec::new();
    let mut version = 0;
    for p in 1..=plugins {
        let ns = format!("p{p:015}__");
        let table = |i: usize| {
            if postgres {
                format!("p{p:015}.{ns}t{i}")
            } else {
                format!("{ns}t{i}")
            }
        };
        if postgres {
            version += 1;
            let sql = format!("CREATE SCHEMA p{p:015};");
            migrations.push(
                refinery::Migration::unapplied(&format!("V{version}__p{p}_schema"), &sql)
                    .expect("valid migration name"),
            );
        }
        for i in 1..=steps {
            version += 1;
            let t = table(i);
            let sql = format!(
                "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER);
             CREATE INDEX {ns}t{i}_name ON {t} (name);
             INSERT INTO {t} (id, name, n) VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3);"
            );
            migrations.push(
                refinery::Migration::unapplied(&format!("V{version}__p{p}_t{i}"), &sql)
                    .expect("valid migration name"),
            );
        }
    }
    let runner = refinery::Runner::new(&migrations).set_grouped(false);
    let applied = if postgres {
        let mut client =
            postgres::Client::connect(db, postgres::NoTls).expect("connect to PostgreSQL");
        runner
            .run(&mut client)
            .expect("refinery applies the migrations")
    } else {
        let mut conn = rusqlite::Connection::open(db).expect("open the database");
        runner
            .run(&mut conn)
            .expect("refinery applies the migrations")
    };
    let schemas = if postgres { plugins } else { 0 };
    assert_eq!(
        applied.applied_migrations().len(),
        plugins * steps + schemas
    );
}
