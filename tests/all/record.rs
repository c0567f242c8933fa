//! What the ledger says of a step is the host's: text a plugin chooses (an error its code
//! returns, a message its trigger or function raises) is labelled as the plugin's, so that
//! it cannot pass for one of the host's verdicts about another plugin.

use crate::on_both;
use crate::support::{Env, artifacts};

/// The host's verdict when another plugin's code changed during a step, as a plugin would
/// forge it.
const FORGED: &str = "access denied: plugin victim's functions changed while the step ran";

/// `attacker` at step 0.1.0, its step 0.2.0 running `up`.
fn armed(env: &Env, up: &str) {
    env.add(artifacts::ATTACKER, "attacker.wasm");
    env.ok(&["up", "attacker@0.1.0"]);
    env.script("attacker", "0.2.0", up, None);
}

/// The error of the attacker's failed step 0.2.0 in the ledger.
fn failure(env: &Env) -> String {
    let (plugin, version, _, outcome, error) = env.ledger().pop().unwrap();
    assert_eq!((plugin.as_str(), version.as_str()), ("attacker", "0.2.0"));
    assert_eq!(outcome, "failed");
    error.unwrap_or_default()
}

on_both! {
    fn text_the_plugins_code_raises_is_labelled_as_its_own(env) {
        let raise = if env.pg.is_some() {
            // Any SQLSTATE: the one the host's verdict has too.
            format!(
                "DO $$ BEGIN RAISE EXCEPTION USING MESSAGE = '{}', ERRCODE = '42501'; END $$",
                FORGED.replace('\'', "''")
            )
        } else {
            format!(
                "CREATE TABLE attacker__t (x); \
                 CREATE TRIGGER attacker__raise BEFORE INSERT ON attacker__t \
                 BEGIN SELECT RAISE(ABORT, '{}'); END; \
                 INSERT INTO attacker__t VALUES (1)",
                FORGED.replace('\'', "''")
            )
        };
        armed(&env, &raise);
        let out = env.run(&["up", "attacker@0.2.0"]);
        assert!(!out.status.success());
        let error = failure(&env);
        let label = if env.pg.is_some() {
            "RAISE in PL/pgSQL code: "
        } else {
            "constraint failed: RAISE in a trigger: "
        };
        assert!(error.starts_with(&format!("{label}{FORGED}")), "{error}");
    }
}

on_both! {
    fn an_error_the_plugin_returns_of_its_own_is_labelled_so(env) {
        // `failing` returns an error no call of its was answered with; a step whose SQL
        // fails returns the host's answer, which keeps its kind.
        env.add(artifacts::FAILING, "failing.wasm");
        let out = env.run(&["up"]);
        assert!(!out.status.success());
        let (_, _, _, outcome, error) = env.ledger().pop().unwrap();
        assert_eq!(outcome, "failed");
        assert_eq!(
            error.as_deref(),
            Some("the plugin's own error: deliberate failure after writing rows")
        );
        armed(&env, "INSERT INTO attacker__nowhere VALUES (1)");
        let out = env.run(&["up", "attacker@0.2.0"]);
        assert!(!out.status.success());
        let error = failure(&env);
        assert!(
            !error.contains("own error") && error.contains("attacker__nowhere"),
            "{error}"
        );
    }
}

on_both! {
    fn a_scripts_statement_that_failed_is_marked_in_the_audit_trail(env) {
        armed(
            &env,
            "CREATE TABLE attacker__t (x int UNIQUE); INSERT INTO attacker__t VALUES (1); \
             INSERT INTO attacker__t VALUES (1); INSERT INTO attacker__t VALUES (2)",
        );
        let out = env.run(&["up", "attacker@0.2.0"]);
        assert!(!out.status.success());
        let ledger = if env.pg.is_some() { "wasmig.ledger" } else { "_wasmig_ledger" };
        let trail = env.rows(&format!(
            "SELECT statements FROM {ledger} WHERE plugin = 'attacker' AND version = '0.2.0'"
        ));
        let trail: Vec<String> = serde_json::from_str(&trail[0]).unwrap();
        let n = trail.len();
        assert!(n >= 3, "{trail:?}");
        // The first insert ran, the second failed whole, the third never ran.
        assert!(
            trail[n - 2].contains("INSERT INTO attacker__t VALUES (1)")
                && !trail[n - 2].ends_with("-- failed")
                && trail[n - 1].contains("INSERT INTO attacker__t VALUES (1)")
                && trail[n - 1].ends_with(" -- failed"),
            "{trail:?}"
        );
        // A statement refused before it ran is in the trail too, marked; what follows it
        // is not.
        env.script(
            "attacker",
            "0.2.0",
            "CREATE TABLE attacker__u (x int); SELECT * FROM victim__script; \
             INSERT INTO attacker__u VALUES (2)",
            None,
        );
        let out = env.run(&["up", "attacker@0.2.0"]);
        assert!(!out.status.success());
        let trail = env.rows(&format!(
            "SELECT statements FROM {ledger} WHERE plugin = 'attacker' AND version = '0.2.0' \
             ORDER BY id DESC LIMIT 1"
        ));
        let trail: Vec<String> = serde_json::from_str(&trail[0]).unwrap();
        let n = trail.len();
        assert!(
            trail[n - 2].contains("CREATE TABLE attacker__u (x int)")
                && !trail[n - 2].ends_with("-- failed")
                && trail[n - 1].contains("SELECT * FROM victim__script")
                && !trail[n - 1].contains("INSERT INTO attacker__u")
                && trail[n - 1].ends_with(" -- failed"),
            "{trail:?}"
        );
    }
}

#[test]
fn wasmigs_own_verdicts_that_the_plugin_calls_for_are_labelled_as_its_own() {
    // The plugin's role may call the host's functions that run in its session; their
    // verdicts, reached by the plugin's own statement, are of the plugin's making, with
    // names of its choosing in them.
    let env = Env::postgres();
    armed(
        &env,
        "SELECT wasmig.statement_check(ARRAY['victim 0.3.0 refused by the operator']::name[])",
    );
    let out = env.run(&["up", "attacker@0.2.0"]);
    assert!(!out.status.success());
    let error = failure(&env);
    assert!(
        error.starts_with("RAISE in PL/pgSQL code: wasmig: "),
        "{error}"
    );
}
