//! `validate` and the checks `up` makes before it runs: drift, downgrades, missing files,
//! gaps. `up` refuses to run over drift or a downgrade unless told, and records the decision.

use crate::on_both;
use crate::support::{Env, artifacts};

fn kinds(env: &Env) -> Vec<String> {
    let out = env.run(&["validate", "--json"]);
    assert!(
        !out.status.success(),
        "validate exits non-zero when something is wrong"
    );
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["plugin"].as_str().unwrap(),
                f["kind"].as_str().unwrap()
            )
        })
        .collect()
}

on_both! {
    fn a_clean_database_validates(env) {
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.ok(&["up"]);
        let out = env.ok(&["validate"]);
        assert!(out.contains("Valid"), "{out}");
        assert_eq!(env.json(&["validate"]), serde_json::json!([]));
    }
}

on_both! {
    fn drift_is_reported_and_refused_unless_allowed_and_recorded(env) {
        env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
        env.ok(&["up"]);
        env.add(artifacts::ACCOUNTS_DRIFTED, "accounts.wasm");
        assert_eq!(kinds(&env), ["accounts drift"]);

        let err = env.fails(&["up"]);
        assert!(
            err.contains("plugin accounts migration 0.1.0 changed since it was applied"),
            "{err}"
        );
        assert!(err.contains("--allow-drift"), "{err}");
        assert_eq!(env.ledger().len(), 1, "nothing ran");

        env.ok(&["up", "--allow-drift"]);
        let history = env.json(&["history"]);
        let last = history.as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["version"], "0.2.0");
        assert!(
            last["note"].as_str().unwrap().contains(
                "applied over drift, as the operator allowed: plugin accounts migration 0.1.0 changed"
            ),
            "{last}"
        );
    }
}

on_both! {
    fn a_downgrade_is_reported_and_refused_unless_allowed(env) {
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.ok(&["up"]);
        env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
        assert_eq!(kinds(&env), ["accounts downgrade"]);
        let err = env.fails(&["up"]);
        assert!(
            err.contains("is version 0.1.0, older than the applied version 0.2.0"),
            "{err}"
        );
        assert!(err.contains("--allow-downgrade"), "{err}");
        env.ok(&["up", "--allow-downgrade"]);
    }
}

on_both! {
    fn a_missing_file_is_reported(env) {
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.ok(&["up"]);
        env.remove("accounts.wasm");
        assert_eq!(kinds(&env), ["accounts missing-file"]);
        let status = env.json(&["status"]);
        assert_eq!(
            status[0]["problem"],
            "applied, but no file in the plugins directory"
        );
    }
}

on_both! {
    fn a_gap_is_reported_and_never_skipped(env) {
        env.add(artifacts::ACCOUNTS, "accounts.wasm");
        env.ok(&["up"]);
        env.add(artifacts::ACCOUNTS_GAP, "accounts.wasm");
        assert_eq!(kinds(&env), ["accounts gap"]);
        let err = env.fails(&["up"]);
        assert!(
            err.contains("plugin accounts migration 0.1.5 is pending but the later migration 0.2.0 is already applied"),
            "{err}"
        );
        assert!(
            !env.tables().contains(&"accounts__session".to_string()),
            "0.3.0 did not run either"
        );
    }
}

on_both! {
    fn an_unusable_file_is_reported(env) {
        env.add_bytes(b"junk", "junk.wasm");
        assert_eq!(kinds(&env), [" invalid-file"]);
    }
}
