//! The floor for any tool that runs each plugin's SQL in a session that is the plugin's own
//! role on PostgreSQL, as wasmig does: the least work that guarantee needs, with nothing
//! checked. All roles and schemas are made in one transaction at the start (named
//! `<database>_p…`; the benchmark drops them with the database), each plugin's session logs
//! in on another thread while the previous plugin's steps run, and each step writes a
//! history row in its own transaction.

use std::sync::mpsc;

/// How a step's statements go to the server.
#[derive(Clone, Copy, PartialEq)]
pub enum Steps {
    /// The whole step (`BEGIN`, the migration, its history row, `COMMIT`) in one round trip.
    Batched,
    /// Each statement in a round trip of its own, inside a savepoint, as a tool must send
    /// them when the plugin's code decides what comes next.
    OneByOne,
}

pub fn run(url: &str, plugins: usize, steps: usize, how: Steps) {
    let mut admin = postgres::Client::connect(url, postgres::NoTls).expect("connect to PostgreSQL");
    let (prefix, database) = url.rsplit_once('/').expect("a URL that names a database");
    let database = database.split('?').next().unwrap_or(database).to_string();
    let role = {
        let database = database.clone();
        move |p: usize| format!("{database}_p{p:015}")
    };
    let mut setup = String::from(
        "BEGIN;
         CREATE SCHEMA floor;
         CREATE TABLE floor.history (plugin text, version integer, applied timestamptz NOT NULL \
             DEFAULT now(), PRIMARY KEY (plugin, version));
         GRANT USAGE ON SCHEMA floor TO PUBLIC;
         GRANT INSERT ON floor.history TO PUBLIC;",
    );
    for p in 1..=plugins {
        let r = role(p);
        setup.push_str(&format!(
            "CREATE ROLE {r} LOGIN PASSWORD '{r}';
             GRANT {r} TO CURRENT_USER;
             CREATE SCHEMA p{p:015} AUTHORIZATION {r};
             ALTER ROLE {r} SET search_path = p{p:015};"
        ));
    }
    setup.push_str("COMMIT;");
    admin
        .batch_execute(&setup)
        .expect("make the roles and schemas");

    // One session ready ahead of the one in use.
    let (tx, rx) = mpsc::sync_channel(1);
    let server = prefix.split_once("://").map_or(prefix, |(_, rest)| rest);
    let server = server
        .rsplit_once('@')
        .map_or(server, |(_, at)| at)
        .to_string();
    let connector = std::thread::spawn(move || {
        for p in 1..=plugins {
            let r = role(p);
            let url = format!("postgres://{r}:{r}@{server}/{database}");
            let client = postgres::Client::connect(&url, postgres::NoTls)
                .expect("log in as the plugin's role");
            if tx.send((p, client)).is_err() {
                return;
            }
        }
    });
    for (p, mut client) in rx {
        let ns = format!("p{p:015}__");
        for i in 1..=steps {
            let t = format!("{ns}t{i}");
            let statements = [
                format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER)"),
                format!("CREATE INDEX {t}_name ON {t} (name)"),
                format!(
                    "INSERT INTO {t} (id, name, n) VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)"
                ),
            ];
            let history =
                format!("INSERT INTO floor.history (plugin, version) VALUES ('{ns}', {i})");
            match how {
                Steps::Batched => client
                    .batch_execute(&format!(
                        "BEGIN; {}; {history}; COMMIT;",
                        statements.join("; ")
                    ))
                    .expect("apply a step"),
                Steps::OneByOne => {
                    client.batch_execute("BEGIN").expect("begin");
                    for statement in &statements {
                        client.batch_execute("SAVEPOINT s").expect("savepoint");
                        client.execute(statement, &[]).expect("apply a statement");
                        client
                            .batch_execute("RELEASE SAVEPOINT s")
                            .expect("release");
                    }
                    client
                        .batch_execute(&format!("{history}; COMMIT"))
                        .expect("commit a step");
                }
            }
        }
    }
    connector.join().expect("the connecting thread");
    let applied: i64 = admin
        .query_one("SELECT count(*) FROM floor.history", &[])
        .expect("count the history")
        .get(0);
    assert_eq!(applied as usize, plugins * steps);
}
