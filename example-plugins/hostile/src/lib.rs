//! The plugin `evil`, for the hostile-plugin suite. Migration 0.1.0 creates
//! `evil__attack (name)`; the test writes the name of one attack into it; migration 0.2.0
//! reads the name and runs that attack against the sandbox. Every attack must fail without
//! changing anything outside `evil__*`.

use wasmig_guest::{Error, Migration, Plugin, Result, Tx, Value, log, params};

/// Attacks that are one SQL script; each one reaches outside the plugin's namespace.
const SQL_ATTACKS: &[(&str, &str)] = &[
    ("read-other", "SELECT * FROM accounts__user"),
    (
        "write-other",
        "INSERT INTO accounts__user (email) VALUES ('evil@example.com')",
    ),
    (
        "update-other",
        "UPDATE accounts__user SET email = 'evil@example.com'",
    ),
    ("delete-other", "DELETE FROM accounts__user"),
    ("drop-other", "DROP TABLE accounts__user"),
    // The bundled SQLite has the dbstat virtual table: every table's name and size.
    ("read-dbstat", "SELECT name, pgsize FROM dbstat"),
    ("read-dbstat-fn", "SELECT name FROM dbstat('main')"),
    // wasmig's SQLite has sqlite_dbpage (the schema check reads pages through it): every
    // page of the file, and writable outside defensive mode.
    (
        "read-dbpage",
        "SELECT data FROM sqlite_dbpage WHERE pgno = 1",
    ),
    ("read-dbpage-fn", "SELECT data FROM sqlite_dbpage('main')"),
    (
        "write-dbpage",
        "UPDATE sqlite_dbpage SET data = zeroblob(4096) WHERE pgno = 2",
    ),
    (
        "alter-other",
        "ALTER TABLE accounts__user ADD COLUMN backdoor TEXT",
    ),
    (
        "rename-other",
        "ALTER TABLE accounts__user RENAME TO evil__stolen",
    ),
    (
        "rename-into-other",
        "CREATE TABLE evil__t (x INTEGER); ALTER TABLE evil__t RENAME TO accounts__planted",
    ),
    (
        "index-on-other",
        "CREATE INDEX evil__idx ON accounts__user (email)",
    ),
    (
        "index-named-other",
        "CREATE TABLE evil__t (x INTEGER); CREATE INDEX accounts__idx ON evil__t (x)",
    ),
    (
        "trigger-on-other",
        "CREATE TRIGGER evil__trg AFTER INSERT ON accounts__user BEGIN SELECT 1; END",
    ),
    (
        "trigger-writes-other",
        "CREATE TABLE evil__t (x); CREATE TRIGGER evil__trg AFTER INSERT ON evil__t BEGIN DELETE FROM accounts__user; END",
    ),
    (
        "temp-trigger-on-other",
        "CREATE TEMP TRIGGER evil__trg AFTER INSERT ON main.accounts__user BEGIN SELECT 1; END",
    ),
    (
        "view-over-other",
        "CREATE VIEW evil__v AS SELECT * FROM accounts__user",
    ),
    (
        "vtable-named-other",
        "CREATE VIRTUAL TABLE accounts__search USING fts5(body)",
    ),
    (
        "temp-view-over-other",
        "CREATE TEMP VIEW evil__v AS SELECT * FROM accounts__user",
    ),
    (
        "create-as-select",
        "CREATE TABLE evil__copy AS SELECT * FROM accounts__user",
    ),
    (
        "subquery-read",
        "CREATE TABLE evil__t (x TEXT); INSERT INTO evil__t SELECT email FROM accounts__user",
    ),
    ("read-ledger", "SELECT * FROM _wasmig_ledger"),
    ("write-ledger", "DELETE FROM _wasmig_ledger"),
    (
        "write-applied",
        "INSERT INTO _wasmig_applied VALUES ('x', '1.0.0', 'c', 's', '1.0.0', 0, 1)",
    ),
    ("drop-ledger", "DROP TABLE _wasmig_ledger"),
    ("read-components", "SELECT bytes FROM _wasmig_component"),
    ("attach", "ATTACH DATABASE 'evil-attached.db' AS loot"),
    ("attach-memory", "ATTACH DATABASE ':memory:' AS loot"),
    ("detach", "DETACH DATABASE main"),
    ("vacuum", "VACUUM"),
    ("vacuum-into", "VACUUM INTO 'evil-copy.db'"),
    ("writable-schema", "PRAGMA writable_schema = ON"),
    ("pragma-other", "PRAGMA table_info(accounts__user)"),
    ("pragma-foreign-keys", "PRAGMA foreign_keys = OFF"),
    ("pragma-journal", "PRAGMA journal_mode = OFF"),
    ("load-extension", "SELECT load_extension('/tmp/evil.so')"),
    ("commit", "COMMIT"),
    ("rollback", "ROLLBACK"),
    ("begin", "BEGIN"),
    ("savepoint", "SAVEPOINT evil"),
    ("release", "SAVEPOINT evil; RELEASE evil"),
    (
        "batch-later-statement",
        "CREATE TABLE evil__ok (x INTEGER); INSERT INTO evil__ok VALUES (1); DROP TABLE accounts__user",
    ),
    ("upper-case", "DROP TABLE ACCOUNTS__USER"),
    ("mixed-case", "DELETE FROM Accounts__User"),
    ("double-quoted", "DELETE FROM \"accounts__user\""),
    ("bracket-quoted", "DELETE FROM [accounts__user]"),
    ("backtick-quoted", "DELETE FROM `accounts__user`"),
    ("main-qualified", "DELETE FROM main.accounts__user"),
    (
        "quoted-qualified",
        "DELETE FROM \"main\".\"Accounts__User\"",
    ),
    (
        "temp-shadow",
        "CREATE TEMP TABLE accounts__user (id INTEGER, email TEXT)",
    ),
    (
        "temp-qualified",
        "CREATE TABLE temp.accounts__user (id INTEGER)",
    ),
    ("schema-table", "SELECT sql FROM sqlite_schema"),
    (
        "infinite-sql",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    ),
    // One function call on large values: a single opcode for SQLite, quadratic in its inputs.
    (
        "slow-like",
        "SELECT replace(hex(zeroblob(8000000)), '0', 'a') LIKE '%' || replace(hex(zeroblob(450)), '0', 'a') || 'b'",
    ),
    (
        "slow-glob",
        "SELECT replace(hex(zeroblob(8000000)), '0', 'a') GLOB '*' || replace(hex(zeroblob(450)), '0', 'a') || 'b'",
    ),
    (
        "slow-instr",
        "SELECT instr(zeroblob(16000000) || 'x', zeroblob(8000000) || 'y')",
    ),
    (
        "slow-replace",
        "SELECT length(replace(hex(zeroblob(8000000)), hex(zeroblob(4000000)) || 'x', ''))",
    ),
    (
        "slow-trim",
        "SELECT length(ltrim(hex(zeroblob(8000000)), printf('%.*c', 1000000, 'x') || '0'))",
    ),
    // Temporary files: a TEMP table, a sort that spills, a materialized subquery.
    (
        "temp-filler",
        "CREATE TEMP TABLE evil__big AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT randomblob(1000) AS b FROM c",
    ),
    (
        "sort-spill",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT count(*) FROM (SELECT randomblob(1000) AS b FROM c ORDER BY b)",
    ),
    (
        "materialize-spill",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) SELECT count(*) FROM (SELECT DISTINCT randomblob(1000) AS b FROM c)",
    ),
    // One row of many large values, all held by SQLite before the host reads the first.
    (
        "wide-row",
        "SELECT randomblob(16000000), randomblob(16000000), randomblob(16000000), randomblob(16000000), randomblob(16000000), randomblob(16000000), randomblob(16000000), randomblob(16000000), randomblob(16000000), randomblob(16000000), randomblob(16000000), randomblob(16000000)",
    ),
    (
        "disk-filler",
        "CREATE TABLE evil__fill (b); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) INSERT INTO evil__fill SELECT randomblob(100000) FROM c",
    ),
];

fn attack(tx: &Tx) -> Result<()> {
    let rows = tx.query("SELECT name FROM evil__attack", &[])?;
    let name: String = rows
        .get(0)
        .ok_or_else(|| Error::other("no attack chosen"))?
        .get("name")?;
    if let Some((_, sql)) = SQL_ATTACKS.iter().find(|(n, _)| *n == name) {
        return tx.execute_script(sql);
    }
    match name.as_str() {
        "infinite-loop" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "memory-bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "deep-recursion" => {
            fn dive(n: u64) -> u64 {
                if std::hint::black_box(n) == u64::MAX {
                    return 0;
                }
                std::hint::black_box(dive(n + 1)) + 1
            }
            dive(0);
            Ok(())
        }
        "huge-result" => {
            let rows = tx.query(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
                 SELECT x, randomblob(1000) FROM c",
                &[],
            )?;
            Err(Error::other(format!("received {} rows", rows.len())))
        }
        "many-small-rows" => {
            // Eight bytes a value in SQLite, several times that on the host.
            let rows = tx.query(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 8000000)
                 SELECT x FROM c",
                &[],
            )?;
            Err(Error::other(format!("received {} rows", rows.len())))
        }
        "many-params" => {
            // More parameters than any statement binds, each costing the host a lifted value.
            use wasmig_guest::__bindings::wasmig::plugin::sql;
            let params = vec![Value::Null; 100_000];
            sql::query("SELECT 1", &params)?;
            Ok(())
        }
        "json-straight-line" => {
            // Many calls in one row, each walking a large array once per path: no jump
            // between them for SQLite to check its progress handler at.
            tx.execute(
                "CREATE TABLE evil__j AS SELECT '[' || replace(hex(zeroblob(4000000)), '00', '0,') || '0]' AS j",
                &[],
            )?;
            let paths = vec!["'$[#-1]'"; 20].join(", ");
            let calls = vec![format!("json_extract(j, {paths})"); 200].join(" || ");
            tx.query(&format!("SELECT {calls} FROM evil__j"), &[])?;
            Ok(())
        }
        "audit-flood" => {
            // Ever new statements: the audit trail keeps a bounded part of them.
            let pad = "x".repeat(1000);
            for i in 0..3000 {
                tx.query(&format!("SELECT {i}, '{pad}'"), &[])?;
            }
            Ok(())
        }
        "log-flood" => {
            for i in 0..1_000_000u32 {
                log::info(&format!("flood message {i} {}", "x".repeat(100)));
            }
            for i in 0..100_000u32 {
                println!("stdout flood {i}");
                eprintln!("stderr flood {i}");
            }
            // The flood itself must not break anything; the step then fails on purpose so the
            // test can check that the failure is recorded normally.
            Err(Error::other("flood done"))
        }
        "panic" => panic!("evil panics on purpose"),
        "sleep" => {
            // Blocked in a WASI call, the guest executes no wasm: the engine's epoch never
            // sees it.
            std::thread::sleep(std::time::Duration::from_secs(300));
            Ok(())
        }
        "slow" => {
            // A long step that would succeed: for the crash test, which kills wasmig during it.
            tx.execute("CREATE TABLE evil__slow (n INTEGER)", &[])?;
            let start = std::time::Instant::now();
            let mut n = 0i64;
            while start.elapsed() < std::time::Duration::from_secs(4) {
                tx.execute("INSERT INTO evil__slow (n) VALUES (?1)", params![n])?;
                n += 1;
            }
            Ok(())
        }
        "write-then-fail" => {
            tx.execute_script(
                "CREATE TABLE evil__junk (x INTEGER); INSERT INTO evil__junk VALUES (1), (2);
                 UPDATE evil__attack SET name = 'tampered'",
            )?;
            Err(Error::other("failing after writes"))
        }
        "escape-fs" => {
            let found = std::fs::read_to_string("/etc/passwd")
                .map(|s| s.len().to_string())
                .unwrap_or_else(|e| format!("error: {e}"));
            let listing = std::fs::read_dir("/")
                .map(|d| d.count().to_string())
                .unwrap_or_else(|e| format!("error: {e}"));
            tx.execute("CREATE TABLE evil__loot (what TEXT, result TEXT)", &[])?;
            tx.execute(
                "INSERT INTO evil__loot VALUES ('read /etc/passwd', ?1)",
                params![found],
            )?;
            tx.execute(
                "INSERT INTO evil__loot VALUES ('list /', ?1)",
                params![listing],
            )?;
            Ok(())
        }
        "escape-env" => {
            let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
            let args: Vec<String> = std::env::args().collect();
            tx.execute("CREATE TABLE evil__loot (what TEXT, result TEXT)", &[])?;
            tx.execute(
                "INSERT INTO evil__loot VALUES ('env', ?1)",
                params![vars.join(",")],
            )?;
            tx.execute(
                "INSERT INTO evil__loot VALUES ('args', ?1)",
                params![args.join(",")],
            )?;
            Ok(())
        }
        "reuse-cached-insert" => {
            // The very text the `bench` plugin runs with `execute` (cached under its scope
            // when it ran earlier in the same process).
            tx.execute(
                "INSERT INTO bench__item (id, name, qty, price) VALUES (?1, ?2, ?3, ?4)",
                params![1_000_000, "planted", 1, 1.0],
            )?;
            Ok(())
        }
        "reuse-host-execute" => {
            // The same, through `execute`, whose statement the host keeps prepared while the
            // plugin repeats it: the text the host runs in every step's transaction.
            tx.execute(
                "SELECT EXISTS (SELECT 1 FROM _wasmig_applied WHERE plugin = ?1 AND version = ?2)",
                params!["accounts", "0.1.0"],
            )?;
            Ok(())
        }
        "reuse-host-statement" => {
            // The text of a statement the host itself prepares and caches on the connection.
            let rows = tx.query(
                "SELECT EXISTS (SELECT 1 FROM _wasmig_component WHERE sha256 = ?1)",
                params!["x"],
            )?;
            Err(Error::other(format!("read {} rows", rows.len())))
        }
        "empty-many-other" => {
            // No rows at all: the statement is still prepared, so still authorized.
            tx.execute_many("INSERT INTO accounts__user (email) VALUES (?1)", &[])?;
            Ok(())
        }
        "empty-batch-other" => {
            use wasmig_guest::__bindings::wasmig::plugin::sql;
            sql::execute_batch_packed("INSERT INTO accounts__user (email) VALUES (?1)", 1, &[])?;
            Ok(())
        }
        "packed-other" => {
            // Packed parameters go through the same checks as any other call.
            use wasmig_guest::__bindings::wasmig::plugin::sql;
            let mut email = vec![3, 3, 0, 0, 0];
            email.extend_from_slice(b"a@x");
            sql::execute_packed("INSERT INTO accounts__user (email) VALUES (?1)", &email)?;
            Ok(())
        }
        "packed-bad-tag" | "packed-cut-short" | "packed-not-utf8" | "packed-too-many" => {
            // Packed parameters the host cannot read, on the plugin's own table.
            use wasmig_guest::__bindings::wasmig::plugin::sql;
            tx.execute("CREATE TABLE evil__t (a INTEGER)", &[])?;
            tx.execute("INSERT INTO evil__t VALUES (1)", &[])?;
            let insert = "INSERT INTO evil__t VALUES (?1)";
            match name.as_str() {
                "packed-bad-tag" => sql::execute_packed(insert, &[1, 0, 0, 0, 0, 0, 0, 0, 0, 9])?,
                // A text that says it has 200 bytes and has 1.
                "packed-cut-short" => sql::execute_packed(insert, &[3, 200, 0, 0, 0, b'a'])?,
                "packed-not-utf8" => sql::execute_packed(insert, &[3, 1, 0, 0, 0, 0xff])?,
                // One NULL more than a call may carry.
                _ => sql::execute_batch_packed(insert, 1, &vec![0; (1 << 20) + 1])?,
            };
            Ok(())
        }
        "packed-ragged" => {
            // Seven packed integers for rows of four.
            use wasmig_guest::__bindings::wasmig::plugin::sql;
            tx.execute(
                "CREATE TABLE evil__t (a INTEGER, b INTEGER, c INTEGER, d INTEGER)",
                &[],
            )?;
            let mut packed = Vec::new();
            for i in 0..7i64 {
                packed.push(1);
                packed.extend_from_slice(&i.to_le_bytes());
            }
            sql::execute_batch_packed("INSERT INTO evil__t VALUES (?1, ?2, ?3, ?4)", 4, &packed)?;
            Ok(())
        }
        "sent-other" | "sent-unread" | "sent-ragged" | "sent-bad-tag" => {
            // Batches the host runs on its worker (`send-batch-packed`): the same checks,
            // reported by the next call; one never collected still fails the step.
            use wasmig_guest::__bindings::wasmig::plugin::sql;
            let mut email = vec![3, 3, 0, 0, 0];
            email.extend_from_slice(b"a@x");
            let steal = "INSERT INTO accounts__user (email) VALUES (?1)";
            match name.as_str() {
                "sent-other" => {
                    sql::send_batch_packed(steal, 1, &email)?;
                    sql::finish_batches()?;
                }
                "sent-unread" => sql::send_batch_packed(steal, 1, &email)?,
                "sent-ragged" => {
                    tx.execute("CREATE TABLE evil__t (a TEXT, b TEXT)", &[])?;
                    sql::send_batch_packed("INSERT INTO evil__t VALUES (?1, ?2)", 2, &email)?;
                    // Any call reports it, and does nothing else.
                    tx.execute("DROP TABLE evil__t", &[])?;
                }
                _ => {
                    tx.execute("CREATE TABLE evil__t (a INTEGER)", &[])?;
                    sql::send_batch_packed("INSERT INTO evil__t VALUES (?1)", 1, &[9])?;
                    sql::finish_batches()?;
                }
            }
            Ok(())
        }
        other => Err(Error::other(format!("unknown attack {other}"))),
    }
}

fn plugin() -> Plugin {
    Plugin::new("evil", "0.2.0")
        .description("Attacks the sandbox")
        .migration(Migration::sql(
            "0.1.0",
            "a table to choose the attack",
            "CREATE TABLE evil__attack (name TEXT NOT NULL)",
        ))
        .migration(Migration::code("0.2.0", "attack", "attack-v1", attack))
}

wasmig_guest::export_plugin!(plugin);
