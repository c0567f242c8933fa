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
