//! The deadline is the host's: a step past it is rolled back and recorded within the deadline
//! and a second, whatever the plugin does: execute wasm (the engine's epoch), block in a WASI
//! call (the host's clock around every guest call), run a long SQL statement (the progress
//! handler and the watchdog's interrupt), or make one function call on large values, which is
//! one opcode to SQLite (the bounded functions check the clock themselves).

use crate::hostile::{armed, attack_fails};

/// Runs the attack with a 2 s deadline; it must fail naming the deadline, and the ledger must
/// show it stopped within the deadline and a second.
fn stopped_at_the_deadline(attack: &str) {
    let err = attack_fails(attack, &["--deadline", "2s"], "deadline");
    assert!(
        err.contains("exceeded its 2s deadline")
            || err.contains("still running at the step's deadline"),
        "{attack}: {err}"
    );
    let env = armed(attack);
    env.fails(&["up", "--deadline", "2s"]);
    let took: i64 = env.value(
        "SELECT duration_us FROM _wasmig_ledger WHERE plugin = 'evil' AND outcome = 'failed' ORDER BY id DESC LIMIT 1",
    );
    assert!(
        took < 3_000_000,
        "{attack}: the step was stopped after {} ms",
        took / 1000
    );
}

#[test]
fn a_guest_blocked_in_a_wasi_sleep_is_stopped() {
    stopped_at_the_deadline("sleep");
}

#[test]
fn one_like_call_on_a_large_value_is_stopped() {
    stopped_at_the_deadline("slow-like");
}

#[test]
fn one_glob_call_on_a_large_value_is_stopped() {
    stopped_at_the_deadline("slow-glob");
}

#[test]
fn one_substring_search_on_a_large_value_is_stopped() {
    stopped_at_the_deadline("slow-instr");
}

#[test]
fn one_replace_call_on_a_large_value_is_stopped() {
    stopped_at_the_deadline("slow-replace");
}

#[test]
fn one_trim_call_with_a_large_character_set_is_stopped() {
    stopped_at_the_deadline("slow-trim");
}

#[test]
fn a_straight_line_of_function_calls_on_large_values_is_stopped() {
    // Between two calls SQLite's program does not jump, so neither the progress handler nor an
    // interrupt is consulted; the next allocation past the deadline fails instead.
    stopped_at_the_deadline("json-straight-line");
}

#[test]
fn a_straight_line_of_calls_that_make_small_values_is_stopped() {
    // Each call makes only a small value, which a connection could serve from its lookaside
    // slots, where the allocator would never see it: wasmig's connection has none, so the
    // first call past the deadline fails.
    let env = crate::scripted::scripted();
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__j AS SELECT '[' || replace(hex(zeroblob(4000000)), '00', '0,') || '0]' AS j",
    );
    let paths = vec!["'$[#-1]'"; 20].join(", ");
    let calls = vec![format!("length(json_extract(j, {paths}))"); 200].join(" + ");
    env.script(
        "attacker",
        "0.3.0",
        &format!("-- query\nSELECT {calls} FROM attacker__j"),
        None,
    );
    let out = env.run(&["up", "attacker@0.3.0", "--deadline", "2s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("deadline"), "{stderr}");
    let took: i64 = env.value(
        "SELECT duration_us FROM _wasmig_ledger WHERE plugin = 'attacker' AND version = '0.3.0' AND outcome = 'failed'",
    );
    assert!(took < 3_000_000, "stopped after {} ms", took / 1000);
}

#[test]
fn a_call_whose_cost_is_the_square_of_its_input_is_refused_in_a_step() {
    // `json_patch` searches the target's keys for each of the patch's; fts5's `snippet()`
    // scores a window around each match against every other. One call, one opcode: two
    // objects of 60,000 keys, or one document of 30,000 matching words, ran for minutes.
    let env = crate::scripted::scripted();
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__o AS WITH RECURSIVE n(i) AS
           (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
         SELECT (SELECT json_group_object('a' || i, 1) FROM n) AS a,
                (SELECT json_group_object('b' || i, 1) FROM n) AS b;
         CREATE VIRTUAL TABLE attacker__f USING fts5(body);
         INSERT INTO attacker__f SELECT trim(replace(hex(zeroblob(30000)), '00', 'w ')) ;",
    );
    env.refused(
        "attacker",
        "0.3.0",
        "-- query\nSELECT length(json_patch(a, b)) FROM attacker__o",
        "json_patch() of a 648895-byte value with a 648895-byte patch is not available to plugins",
    );
    env.refused(
        "attacker",
        "0.3.0",
        "-- query\nSELECT snippet(attacker__f, 0, '[', ']', '…', 64) FROM attacker__f WHERE attacker__f MATCH 'w'",
        "function snippet() is not available to plugins",
    );
    // Nor are fts5's other auxiliary functions, which walk a row's matches once per phrase of
    // the query.
    let phrases = vec!["w"; 700].join(" ");
    for function in ["highlight(attacker__f, 0, '[', ']')", "bm25(attacker__f)"] {
        env.refused(
            "attacker",
            "0.3.0",
            &format!(
                "-- query\nSELECT length({function}) FROM attacker__f WHERE attacker__f MATCH '{phrases}'"
            ),
            "is not available to plugins",
        );
    }
    // The rank column is the ranking function's answer (`bm25()` unless configured).
    for query in [
        format!("SELECT length(rank) FROM attacker__f WHERE attacker__f MATCH '{phrases}'"),
        format!(
            "SELECT rowid FROM attacker__f WHERE attacker__f MATCH '{phrases}'
               AND rank MATCH 'highlight(0, ''['', '']'')'"
        ),
        format!("SELECT rank FROM attacker__f('{phrases}')"),
    ] {
        env.refused(
            "attacker",
            "0.3.0",
            &format!("-- query\n{query}"),
            "the rank column of fts5 table attacker__f",
        );
    }
    // Small patches merge as SQLite merges them, and a query matches.
    env.applies(
        "attacker",
        "0.3.0",
        "CREATE TABLE attacker__m AS SELECT json_patch('{\"a\":1,\"b\":{\"c\":2}}', '{\"b\":{\"c\":null,\"d\":3}}') AS m;
         CREATE TABLE attacker__h AS SELECT count(*) AS h FROM attacker__f WHERE attacker__f MATCH 'w'",
    );
    assert_eq!(
        env.value::<String>("SELECT m FROM attacker__m"),
        "{\"a\":1,\"b\":{\"d\":3}}"
    );
    assert_eq!(env.value::<i64>("SELECT h FROM attacker__h"), 1);
    // Another table's column named rank is a column, a new fts5 table's is refused.
    env.applies(
        "attacker",
        "0.4.0",
        "CREATE TABLE attacker__ranked (rank int); INSERT INTO attacker__ranked VALUES (1);
         CREATE TABLE attacker__ranks AS SELECT rank FROM attacker__ranked;
         CREATE VIRTUAL TABLE attacker__quoted USING 'fts5'(body);
         INSERT INTO attacker__quoted VALUES ('w')",
    );
    env.refused(
        "attacker",
        "0.5.0",
        "CREATE TABLE attacker__leak AS SELECT rank FROM attacker__quoted WHERE attacker__quoted MATCH 'w'",
        "the rank column of fts5 table attacker__quoted",
    );
    env.refused(
        "attacker",
        "0.5.0",
        "CREATE VIRTUAL TABLE attacker__g USING fts5(body); INSERT INTO attacker__g VALUES ('w');
         CREATE TABLE attacker__leak AS SELECT rank FROM attacker__g WHERE attacker__g MATCH 'w'",
        "the rank column of fts5 table attacker__g",
    );
    // However the table was made or is named now, fts5's own ranking function is not there.
    env.refused(
        "attacker",
        "0.5.0",
        "CREATE VIRTUAL TABLE attacker__q USING \"fts5\"(body); INSERT INTO attacker__q VALUES ('w');
         ALTER TABLE attacker__q RENAME TO attacker__q2;
         CREATE TABLE attacker__leak AS SELECT rank FROM attacker__q2 WHERE attacker__q2 MATCH 'w'",
        "the rank column of fts5 table attacker__q2",
    );
    env.refused(
        "attacker",
        "0.5.0",
        "ALTER TABLE attacker__f RENAME TO \"ATTACKER__F2\";
         CREATE TABLE attacker__leak AS SELECT rank FROM attacker__f2 WHERE attacker__f2 MATCH 'w'",
        "the rank column of fts5 table ATTACKER__F2",
    );
}

/// `term` summed `n` times as a balanced tree (a flat sum would hit SQLite's depth limit).
fn balanced_sum(term: &str, n: usize) -> String {
    if n == 1 {
        term.to_string()
    } else {
        format!(
            "({} + {})",
            balanced_sum(term, n / 2),
            balanced_sum(term, n - n / 2)
        )
    }
}

#[test]
fn a_statement_that_sqlite_does_not_interrupt_is_abandoned_rolled_back_and_recorded() {
    // Thousands of `length()` calls on a 16 MiB text in one row: no jump between them, no
    // allocation, so neither the interrupt nor the allocator stops the statement before its
    // end. A second past the 4 s deadline the binary gives up, whatever the deadline: it ends
    // the process, SQLite's journal rolls the step back, and the next run records the
    // failure.
    let env = crate::scripted::scripted();
    env.applies(
        "attacker",
        "0.2.0",
        "CREATE TABLE attacker__big (x TEXT);
         INSERT INTO attacker__big VALUES (printf('%.*c', 16000000, 'x'))",
    );
    env.script(
        "attacker",
        "0.3.0",
        &format!(
            "CREATE TABLE attacker__planted (x); SELECT {} FROM attacker__big",
            balanced_sum("length(x)", 20_000)
        ),
        None,
    );
    let started = std::time::Instant::now();
    let out = env.run(&["up", "attacker@0.3.0", "--deadline", "4s"]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(took.as_secs_f64() < 6.5, "abandoned after {took:?}");
    assert!(
        stderr.contains("plugin attacker migration 0.3.0 (up) is still inside SQLite"),
        "{stderr}"
    );

    // Nothing of the step is applied, and the database is free for the next run, which
    // records the failure.
    let history = env.ok(&["history", "attacker"]);
    assert!(history.contains("0.3.0"), "{history}");
    let last = env.ledger().pop().unwrap();
    assert_eq!((last.1.as_str(), last.3.as_str()), ("0.3.0", "failed"));
    let error = last.4.unwrap_or_default();
    assert!(error.contains("still inside SQLite"), "{error}");
    // The trail names the call the step was in, whose own trail ended with the process.
    let trail: String = env.value(
        "SELECT statements FROM _wasmig_ledger WHERE version = '0.3.0' AND outcome = 'failed'",
    );
    assert!(
        trail.contains("CREATE TABLE attacker__planted (x); SELECT ((")
            && trail.contains("more bytes left out")
            && trail.contains("running when the step was abandoned"),
        "{}",
        &trail[..trail.len().min(300)]
    );
    let planted: i64 =
        env.value("SELECT count(*) FROM sqlite_schema WHERE name = 'attacker__planted'");
    assert_eq!(planted, 0, "the abandoned step's table is still there");
    let status = env.ok(&["status", "--json"]);
    assert!(!status.contains("\"0.3.0\""), "{status}");
    assert!(
        !std::path::Path::new(&format!("{}-wasmig-abandoned", env.db.display())).exists(),
        "the record of the abandoned step was not consumed"
    );
}
