//! The plugin `bench`: one step that inserts many rows, as `bench__config` says: one import
//! call per row (`single`), values end to end a few thousand rows per call (`batch`), or a
//! list per row, all rows built before they are sent (`many`). For the boundary benchmark and
//! the batch tests.

use wasmig_guest::{Error, Migration, Plugin, Result, Tx, Value, params};

const INSERT: &str = "INSERT INTO bench__item (id, name, qty, price) VALUES (?1, ?2, ?3, ?4)";

fn row(i: i64) -> Vec<Value> {
    vec![
        Value::Integer(i),
        Value::Text(format!("item-{i}")),
        Value::Integer(i % 100),
        Value::Real(i as f64 * 0.5),
    ]
}

fn insert(tx: &Tx) -> Result<()> {
    let config = tx.query("SELECT mode, n FROM bench__config", &[])?;
    let config = config.get(0).ok_or_else(|| Error::other("no config"))?;
    let mode: String = config.get("mode")?;
    let n: i64 = config.get("n")?;
    match mode.as_str() {
        "single" => {
            for i in 0..n {
                let name = format!("item-{i}");
                tx.execute(INSERT, params![i, name, i % 100, i as f64 * 0.5])?;
            }
        }
        "batch" => {
            // Values end to end, sent a few thousand rows per call (execute-batch).
            // A row is an array, as native code binds `params![...]`: no Vec per row.
            let mut batch = tx.batch(INSERT);
            for i in 0..n {
                batch.row([
                    Value::Integer(i),
                    Value::Text(format!("item-{i}")),
                    Value::Integer(i % 100),
                    Value::Real(i as f64 * 0.5),
                ])?;
            }
            batch.finish()?;
        }
        "many" => {
            // A list per row, every row built first; the SDK sends rows of one width packed,
            // as a batch.
            let rows: Vec<Vec<Value>> = (0..n).map(row).collect();
            tx.execute_many(INSERT, &rows)?;
        }
        "types" => {
            // Every kind of value, with its edge cases, through each way of sending it.
            tx.execute("CREATE TABLE bench__typed (via TEXT, i INTEGER, v)", &[])?;
            let values = typed_values();
            let insert = "INSERT INTO bench__typed VALUES (?1, ?2, ?3)";
            for (i, v) in values.iter().enumerate() {
                tx.execute(
                    insert,
                    &[Value::from("execute"), Value::from(i as i64), v.clone()],
                )?;
            }
            let mut batch = tx.batch(insert);
            for (i, v) in values.iter().enumerate() {
                batch.row([Value::from("batch"), Value::from(i as i64), v.clone()])?;
            }
            batch.finish()?;
            let rows: Vec<Vec<Value>> = (values.iter().enumerate())
                .map(|(i, v)| vec![Value::from("many"), Value::from(i as i64), v.clone()])
                .collect();
            tx.execute_many(insert, &rows)?;
        }
        "interleaved" => {
            // Two batches whose chunks the host runs in turn, with other calls in between:
            // each batch's count is its own, and a query sees every row sent before it.
            let mut evens = tx.batch(INSERT);
            let mut odds = tx.batch(INSERT);
            for i in 0..n {
                let batch = if i % 2 == 0 { &mut evens } else { &mut odds };
                batch.row(row(i))?;
                if i % 5_000 == 4_999 {
                    let seen: i64 = tx
                        .query("SELECT count(*) AS c FROM bench__item", &[])?
                        .get(0)
                        .ok_or_else(|| Error::other("no count"))?
                        .get("c")?;
                    if seen > i + 1 {
                        return Err(Error::other(format!("{seen} rows after {}", i + 1)));
                    }
                }
            }
            let (e, o) = (evens.finish()?, odds.finish()?);
            if (e, o) != (((n + 1) / 2) as u64, (n / 2) as u64) {
                return Err(Error::other(format!("counted {e} and {o} rows of {n}")));
            }
        }
        "caught" => {
            // Row 5 repeats row 4's id. The error comes back from a later call; the plugin
            // records which row's call returned it, and carries on.
            let mut batch = tx.batch(INSERT);
            let mut failed_at = None;
            for i in 0..n {
                let id = if i == 5 { 4 } else { i };
                if let Err(e) = batch.row([id.into(), "x".into(), 0.into(), 0.0.into()]) {
                    failed_at = Some((i, e));
                    break;
                }
            }
            let (at, error) = match failed_at {
                Some(failure) => failure,
                None => match batch.finish() {
                    Ok(_) => return Err(Error::other("no row failed")),
                    Err(e) => (n, e),
                },
            };
            // The config's one row, named: not a rewrite of a table's every row.
            tx.execute(
                "UPDATE bench__config SET n = ?1, mode = ?2 WHERE n IS NOT NULL",
                params![at, error.to_string()],
            )?;
        }
        "script-caught" => {
            // The second statement of a script fails; the plugin records the error and goes
            // on: the first statement's row stays, the third statement never runs.
            script_fails_and_goes_on(
                tx,
                "INSERT INTO bench__item (id, name) VALUES (1, 'kept');
                 INSERT INTO bench__item (id, name) VALUES (1, 'again');
                 INSERT INTO bench__item (id, name) VALUES (2, 'never')",
            )?;
        }
        "script-nul" => {
            // A script whose second statement holds a NUL character, which no database takes
            // in a statement's text: the first statement's row stays, none after it runs.
            script_fails_and_goes_on(
                tx,
                "INSERT INTO bench__item (id, name) VALUES (1, 'kept');
                 SELECT 'a\0b';
                 INSERT INTO bench__item (id, name) VALUES (2, 'never');
                 INSERT INTO bench__item (id, name) VALUES (3, 'never')",
            )?;
        }
        "dropped" => {
            // A batch whose sent rows fail, dropped without `finish`: the step fails anyway.
            let mut batch = tx.batch(INSERT);
            for i in 0..n {
                let id = if i == 5 { 4 } else { i };
                batch.row([id.into(), "x".into(), 0.into(), 0.0.into()])?;
            }
            drop(batch);
        }
        "panic" => {
            // A chunk sent, then a panic while the host runs it.
            let mut batch = tx.batch(INSERT);
            for i in 0..n {
                batch.row(row(i))?;
            }
            panic!("gave up after sending {n} rows");
        }
        "ragged" => {
            // A batch whose second row is short: refused by the SDK, nothing sent.
            let mut batch = tx.batch(INSERT);
            batch.row(row(0))?;
            batch.row(row(1).into_iter().take(3))?;
            batch.finish()?;
        }
        other => return Err(Error::other(format!("unknown mode {other}"))),
    }
    Ok(())
}

/// Runs `script`, which must fail, and records its error in the config row, as a plugin
/// that handles the error and goes on.
fn script_fails_and_goes_on(tx: &Tx, script: &str) -> Result<()> {
    let error = match tx.execute_script(script) {
        Ok(()) => return Err(Error::other("no statement failed")),
        Err(e) => e.to_string(),
    };
    tx.execute(
        "UPDATE bench__config SET mode = ?1 WHERE n IS NOT NULL",
        params![error],
    )?;
    Ok(())
}

/// One of every kind of value, and the edge cases of each; then texts and blobs of every
/// length from 1 to 17, across the SDK's short copies (up to 16 bytes) and `memcpy`.
fn typed_values() -> Vec<Value> {
    let mut values = vec![
        Value::Null,
        Value::Integer(i64::MIN),
        Value::Integer(-1),
        Value::Integer(0),
        Value::Integer(i64::MAX),
        Value::Real(-1.5),
        Value::Real(1e300),
        Value::Text(String::new()),
        Value::Text("héllo ✓ 'quoted'".into()),
        Value::Blob(Vec::new()),
        Value::Blob(vec![0, 255, 3, 4]),
    ];
    for n in 1..=17 {
        values.push(Value::Text(LETTERS[..n].into()));
        values.push(Value::Blob((1..=n as u8).collect()));
    }
    values
}

const LETTERS: &str = "abcdefghijklmnopq";

fn plugin() -> Plugin {
    Plugin::new("bench", "0.2.0")
        .migration(Migration::sql(
            "0.1.0",
            "tables",
            "CREATE TABLE bench__config (mode TEXT NOT NULL, n INTEGER NOT NULL);
             CREATE TABLE bench__item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL);",
        ))
        .migration(Migration::code("0.2.0", "insert rows", "v1", insert))
}

wasmig_guest::export_plugin!(plugin);
