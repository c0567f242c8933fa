//! Bulk loads: `Tx::batch` (values packed end to end, a few thousand rows per
//! `execute-batch-packed` call) and `execute_many` (a list per row, every row at once) insert
//! every row, in order, inside the step's transaction; a malformed batch fails the step with
//! nothing inserted.

use crate::support::{Env, artifacts};

/// The `bench` plugin with its tables, set to insert `n` rows in `mode` at its next step.
fn bench(mode: &str, n: i64) -> Env {
    let env = Env::new();
    env.add(artifacts::BENCH_ROWS, "bench.wasm");
    env.ok(&["up", "bench@0.1.0"]);
    env.conn()
        .execute(
            "INSERT INTO bench__config VALUES (?1, ?2)",
            rusqlite::params![mode, n],
        )
        .unwrap();
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
    let report = env.json(&["up"]);
    assert_eq!(report["steps"][0]["rows_changed"], 10_000, "{report}");
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
