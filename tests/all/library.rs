//! The library API, as a server embedding wasmig uses it.

use crate::support::{Env, artifacts};

#[tokio::test]
async fn a_server_migrates_at_start_up_through_the_library() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOTES, "notes.wasm");
    let host = env.host();

    let report = host.up(wasmig::UpOptions::default()).await.unwrap();
    assert_eq!(report.steps.len(), 5);
    assert!(report.failure().is_none());
    assert!(
        report
            .steps
            .iter()
            .all(|s| s.outcome == wasmig::Outcome::Succeeded)
    );

    let again = host.up(wasmig::UpOptions::default()).await.unwrap();
    assert!(again.steps.is_empty());

    let status = host.status().await.unwrap();
    assert_eq!(status.len(), 2);
    assert!(status.iter().all(|s| s.pending == 0));

    let history = host.history(Some("notes")).await.unwrap();
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|h| h.plugin == "notes"));
}

#[tokio::test]
async fn a_failed_step_is_a_typed_error() {
    let env = Env::new();
    env.add(artifacts::FAILING, "failing.wasm");
    let err = env
        .host()
        .up(wasmig::UpOptions::default())
        .await
        .unwrap_err();
    match err {
        wasmig::Error::StepFailed {
            plugin,
            version,
            cause,
            ..
        } => {
            assert_eq!((plugin.as_str(), version.as_str()), ("failing", "0.2.0"));
            assert!(cause.contains("deliberate failure"), "{cause}");
        }
        other => panic!("expected StepFailed, got {other}"),
    }
}

#[tokio::test]
async fn a_plan_problem_is_a_typed_error() {
    let env = Env::new();
    env.add(artifacts::NOTES, "notes.wasm");
    let err = env
        .host()
        .up(wasmig::UpOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, wasmig::Error::PlanProblems(_)), "{err}");
}
