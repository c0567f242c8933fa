//! Bulk loads: `Tx::batch` (values packed end to end, a few thousand rows per
//! `send-batch-packed` call, which the host runs on another thread while the plugin builds the
//! next) and `execute_many` (every row at once) insert every row, in order, inside the step's
//! transaction; a malformed batch fails the step with nothing inserted, and a failed row's
//! error comes back from the plugin's next call.

use crate::support::{Env, artifacts};

/// The `bench` plugin with its tables, set to insert `n` rows in `mode` at its next step.
fn bench(mode: &str, n: i64) -> Env {
    bench_in(Env::new(), mode, n)
}

/// [`bench`] on the database of `env` (SQLite or PostgreSQL).
fn bench_in(env: Env, mode: &str, n: i64) -> Env {
    env.add(artifacts::BENCH_ROWS, "bench.wasm");
    env.ok(&["up", "bench@0.1.0"]);
    env.exec(&format!("INSERT INTO bench__config VALUES ('{mode}', {n})"));
    env
}

/// (count, sum of ids, last name, sum of qty, total of price) of the inserted rows.
fn summary(env: &Env) -> (i64, i64, Option<String>, i64, f64) {
    env.conn()
        .query_row(
            "SELECT count(*), coalesce(sum(id), 0),
                    (SELECT name FROM bench__item ORDER BY id DESC LIMIT 1),
                    coalesce(sum(qty), 0), total(price)
             FROM bench__item",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
}

fn expected(n: i64) -> (i64, i64, Option<String>, i64, f64) {
    let qty: i64 = (0..n).map(|i| i % 100).sum();
    let price: f64 = (0..n).map(|i| i as f64 * 0.5).sum();
    (
        n,
        n * (n - 1) / 2,
        Some(format!("item-{}", n - 1)),
        qty,
        price,
    )
}

#[test]
fn a_batch_inserts_every_row_across_calls_and_chunks() {
    // 10,000 rows of 4 values: three execute-batch-packed calls (16,384 values each at most),
    // each bound by the host in chunks of 1,024 rows.
    let env = bench("batch", 10_000);
    let lines = env.json_lines(&["up"]);
    let step = lines.iter().find(|l| l["event"] == "step").unwrap();
    assert_eq!(step["rows_changed"], 10_000, "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(
        (&last["event"], &last["ran"]),
        (&"finished".into(), &1.into()),
        "{lines:?}"
    );
    assert_eq!(summary(&env), expected(10_000));
}

#[test]
fn execute_many_inserts_every_row() {
    let env = bench("many", 2_500);
    env.ok(&["up"]);
    assert_eq!(summary(&env), expected(2_500));
}

#[test]
fn a_ragged_batch_fails_the_step_with_nothing_inserted() {
    let env = bench("ragged", 0);
    let err = env.fails(&["up"]);
    assert!(
        err.contains("plugin bench migration 0.2.0")
            && err.contains("a batch row has 3 values; this batch's rows have 4"),
        "{err}"
    );
    assert_eq!(summary(&env).0, 0);
    let last = env.ledger().pop().unwrap();
    assert_eq!((last.0.as_str(), last.3.as_str()), ("bench", "failed"));
}

#[test]
fn every_kind_of_value_crosses_every_way_unchanged() {
    // `execute` and `Tx::batch` send packed values, `execute_many` too (rows of one width);
    // each must store exactly what the plugin sent.
    let env = bench("types", 0);
    env.ok(&["up"]);
    let stored = |via: &str| -> Vec<(String, String)> {
        env.conn()
            .prepare("SELECT typeof(v), quote(v) FROM bench__typed WHERE via = ?1 ORDER BY i")
            .unwrap()
            .query_map([via], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let mut expected: Vec<(String, String)> = [
        ("null", "NULL"),
        ("integer", "-9223372036854775808"),
        ("integer", "-1"),
        ("integer", "0"),
        ("integer", "9223372036854775807"),
        ("real", "-1.5"),
        ("real", "1.0e+300"),
        ("text", "''"),
        ("text", "'héllo ✓ ''quoted'''"),
        ("blob", "X''"),
        ("blob", "X'00FF0304'"),
    ]
    .into_iter()
    .map(|(t, q)| (t.to_string(), q.to_string()))
    .collect();
    for n in 1..=17u8 {
        let text = &"abcdefghijklmnopq"[..n as usize];
        let blob: String = (1..=n).map(|b| format!("{b:02X}")).collect();
        expected.push(("text".into(), format!("'{text}'")));
        expected.push(("blob".into(), format!("X'{blob}'")));
    }
    for via in ["execute", "batch", "many"] {
        assert_eq!(stored(via), expected, "values sent through {via}");
    }
}

#[test]
fn interleaved_batches_count_their_own_rows_and_queries_see_what_was_sent() {
    // Two batches sent in turn, queries between their chunks (which wait for the chunk in
    // flight): the plugin checks each batch's count and fails the step otherwise.
    let env = bench("interleaved", 20_000);
    env.ok(&["up"]);
    assert_eq!(summary(&env), expected(20_000));
}

#[test]
fn a_batch_error_comes_back_from_the_next_call_and_later_rows_do_not_run() {
    // Row 5 of the first chunk (rows 0–4,095, sent by the 4,096th `row`) fails; the host runs
    // that chunk while the plugin builds the next, so the error comes back from the call that
    // sends the second chunk (the 8,192nd `row`, index 8,191). Rows 0–4 went in, nothing after.
    let env = bench("caught", 20_000);
    env.ok(&["up"]);
    let (at, error): (i64, String) = env
        .conn()
        .query_row("SELECT n, mode FROM bench__config", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(at, 8_191);
    assert!(
        error.contains("UNIQUE constraint failed: bench__item.id"),
        "{error}"
    );
    let ids: Vec<i64> = env.column("SELECT id FROM bench__item ORDER BY id");
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
}

#[test]
fn a_step_that_drops_a_failed_batch_unread_fails_with_its_error() {
    let env = bench("dropped", 5_000);
    let err = env.fails(&["up"]);
    assert!(
        err.contains("plugin bench migration 0.2.0")
            && err.contains("a batch the step sent failed")
            && err.contains("UNIQUE constraint failed: bench__item.id"),
        "{err}"
    );
    assert_eq!(summary(&env).0, 0, "rolled back");
}

#[test]
fn a_trap_while_a_batch_runs_rolls_the_step_back_and_the_run_goes_on() {
    // 5,000 rows: the first 4,096 are sent (running on the host's worker) when the plugin
    // panics. The host waits for them before it rolls back.
    let env = bench("panic", 5_000);
    let err = env.fails(&["up"]);
    assert!(
        err.contains("plugin bench migration 0.2.0")
            && err.contains("gave up after sending 5000 rows"),
        "{err}"
    );
    assert_eq!(summary(&env).0, 0, "rolled back");
    let last = env.ledger().pop().unwrap();
    assert_eq!((last.0.as_str(), last.3.as_str()), ("bench", "failed"));
    // The connection came back whole: the step runs again once the plugin is told otherwise.
    env.conn()
        .execute("UPDATE bench__config SET mode = 'batch'", [])
        .unwrap();
    env.ok(&["up"]);
    assert_eq!(summary(&env), expected(5_000));
}

#[test]
fn a_script_that_fails_keeps_its_earlier_statements_and_runs_none_after_the_failed_one() {
    // On PostgreSQL a script's statements go to the server together; what they do must be
    // what running them one by one does, as on SQLite.
    for env in [Env::new(), Env::postgres()] {
        let env = bench_in(env, "script-caught", 0);
        let lines = env.json_lines(&["up"]);
        let step = lines.iter().find(|l| l["event"] == "step").unwrap();
        // The row the first statement inserted and the one the plugin's report updated.
        assert_eq!(step["rows_changed"], 2, "{lines:?}");
        assert_eq!(
            env.rows("SELECT id, name FROM bench__item ORDER BY id"),
            vec!["1|kept"]
        );
        let error = &env.rows("SELECT mode FROM bench__config")[0];
        assert!(
            error.contains("UNIQUE constraint failed: bench__item.id")
                || error.contains("duplicate key value violates unique constraint"),
            "{error}"
        );
        // The ledger lists the statements that ran: the failed one, not the one after it.
        let statements = &env.rows(&format!(
            "SELECT statements FROM {} WHERE version = '0.2.0'",
            env.host_table("ledger")
        ))[0];
        assert!(statements.contains("'again'"), "{statements}");
        assert!(!statements.contains("'never'"), "{statements}");
    }
}

#[test]
fn a_script_statement_the_client_cannot_send_is_the_last_one_sent() {
    for env in [Env::new(), Env::postgres()] {
        let env = bench_in(env, "script-nul", 0);
        env.ok(&["up"]);
        assert_eq!(
            env.rows("SELECT id, name FROM bench__item ORDER BY id"),
            vec!["1|kept"]
        );
        let error = &env.rows("SELECT mode FROM bench__config")[0];
        assert!(!error.is_empty() && error != "script-nul", "{error}");
    }
}
