//! The library API, as a server embedding wasmig uses it.

use crate::support::{Env, artifacts};

/// The steps of accounts.wasm and notes.wasm, in the order a run applies them.
const ACCOUNTS_THEN_NOTES: [&str; 5] = [
    "accounts 0.1.0",
    "accounts 0.2.0",
    "notes 0.1.0",
    "notes 0.2.0",
    "notes 0.3.0",
];

#[tokio::test]
async fn a_server_migrates_at_start_up_through_the_library() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOTES, "notes.wasm");
    let host = env.host();

    let report = host.up(wasmig::UpOptions::default()).await.unwrap();
    assert_eq!(report.steps.len(), 5);
    assert_eq!(report.ran, 5);
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
async fn up_with_hands_over_each_step_as_it_ends_and_keeps_none() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOTES, "notes.wasm");
    let host = env.host();
    let db = env.db.clone();

    let mut seen = Vec::new();
    let mut events = Vec::new();
    let report = host
        .up_with(wasmig::UpOptions::default(), &mut |event| {
            let step = match event {
                wasmig::RunEvent::Planned { steps } => {
                    events.push(format!("planned {steps}"));
                    return;
                }
                wasmig::RunEvent::Started {
                    plugin, version, ..
                } => {
                    events.push(format!("started {plugin} {version}"));
                    return;
                }
                wasmig::RunEvent::Ended(step) => step,
            };
            events.push(format!("ended {} {}", step.plugin, step.version));
            // The step has committed when its report arrives: its ledger row is there.
            let conn = rusqlite::Connection::open(&db).unwrap();
            let recorded: i64 = conn
                .query_row(
                    "SELECT count(*) FROM _wasmig_ledger WHERE plugin = ?1 AND version = ?2 \
                     AND outcome = 'succeeded'",
                    [&step.plugin, &step.version],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(
                recorded, 1,
                "{} {} not committed yet",
                step.plugin, step.version
            );
            seen.push(format!("{} {}", step.plugin, step.version));
        })
        .await
        .unwrap();
    assert_eq!(seen, ACCOUNTS_THEN_NOTES);
    // The plan's size first, then each step as it starts and as it ends.
    let mut expected = vec!["planned 5".to_string()];
    for step in ACCOUNTS_THEN_NOTES {
        expected.push(format!("started {step}"));
        expected.push(format!("ended {step}"));
    }
    assert_eq!(events, expected);
    assert!(report.steps.is_empty(), "{:?}", report.steps);
    assert_eq!(report.ran, 5);
    assert!(report.failure().is_none());

    let mut seen = Vec::new();
    let report = host
        .down_with(
            wasmig::DownOptions {
                plugin: "notes".into(),
                steps: Some(2),
                ..Default::default()
            },
            &mut |event| {
                if let wasmig::RunEvent::Ended(step) = event {
                    seen.push((step.version, step.direction))
                }
            },
        )
        .await
        .unwrap();
    assert_eq!(
        seen,
        [
            ("0.3.0".to_string(), wasmig::Direction::Down),
            ("0.2.0".to_string(), wasmig::Direction::Down)
        ]
    );
    assert_eq!((report.steps.len(), report.ran), (0, 2));
}

#[tokio::test]
async fn a_file_changed_before_its_turn_stops_the_run_and_names_what_was_not_applied() {
    // The run reads each plugin's file again at its turn and checks it against the hash it
    // planned with. accounts and notes run first; the template plugin (zbenchplaceholdr,
    // last in the plan) is loaded only once notes begins, so replacing its file while
    // accounts' first step ends changes it before its turn.
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::NOTES, "notes.wasm");
    let last = env.add(artifacts::BENCH_TEMPLATE20, "template.wasm");
    let mut seen = Vec::new();
    let err = env
        .host()
        .up_with(wasmig::UpOptions::default(), &mut |event| {
            let wasmig::RunEvent::Ended(step) = event else {
                return;
            };
            if seen.is_empty() {
                std::fs::copy(artifacts::ACCOUNTS_V1, &last).unwrap();
            }
            seen.push(format!("{} {}", step.plugin, step.version));
        })
        .await
        .unwrap_err();
    assert_eq!(seen, ACCOUNTS_THEN_NOTES);
    let wasmig::Error::RunStopped { cause, not_applied } = &err else {
        panic!("{err}");
    };
    assert!(
        matches!(**cause, wasmig::Error::InvalidPlugin { ref file, ref reason }
            if file == &last && reason.contains("changed while wasmig was running")),
        "{cause}"
    );
    let expected: Vec<String> = (1..=20)
        .map(|i| format!("zbenchplaceholdr 1.{i}.0"))
        .collect();
    assert_eq!(not_applied, &expected);
    // The message names the first ten and counts the rest.
    let message = err.to_string();
    assert!(
        message.contains("template.wasm")
            && message.contains("not applied: zbenchplaceholdr 1.1.0, zbenchplaceholdr 1.2.0")
            && message.ends_with("zbenchplaceholdr 1.10.0 and 10 more"),
        "{message}"
    );
    // What ran is applied and recorded; nothing of the template plugin is.
    let recorded: Vec<String> = env
        .ledger()
        .into_iter()
        .map(|(plugin, version, _, outcome, _)| format!("{plugin} {version} {outcome}"))
        .collect();
    let expected: Vec<String> = ACCOUNTS_THEN_NOTES
        .iter()
        .map(|step| format!("{step} succeeded"))
        .collect();
    assert_eq!(recorded, expected);
}

#[tokio::test]
async fn up_with_hands_over_a_failed_step_before_the_error() {
    let env = Env::new();
    env.add(artifacts::FAILING, "failing.wasm");
    let mut seen = Vec::new();
    let err = env
        .host()
        .up_with(wasmig::UpOptions::default(), &mut |event| {
            if let wasmig::RunEvent::Ended(step) = event {
                seen.push((step.version, step.outcome, step.error))
            }
        })
        .await
        .unwrap_err();
    assert!(matches!(err, wasmig::Error::StepFailed { .. }), "{err}");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].1, wasmig::Outcome::Succeeded);
    assert_eq!(
        (seen[1].0.as_str(), seen[1].1),
        ("0.2.0", wasmig::Outcome::Failed)
    );
    assert!(
        seen[1].2.as_deref().unwrap().contains("deliberate failure"),
        "{seen:?}"
    );
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
    // Data, not a sentence: the missing dependency is named, and the library's text names no
    // command-line flag.
    let wasmig::Error::PlanProblems(problems) = &err else {
        panic!("{err}");
    };
    assert!(
        matches!(&problems[..], [wasmig::planner::Problem::MissingDependency { plugin, dependency, .. }]
            if plugin == "notes" && dependency == "accounts"),
        "{problems:?}"
    );
    assert!(!err.to_string().contains("--"), "{err}");
}

#[tokio::test]
async fn a_server_names_itself_in_the_ledger() {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    let host = wasmig::Host::builder()
        .plugins_dir(&env.plugins)
        .database(&env.db)
        .cache_dir(Some(crate::support::cache_dir()))
        .operator("billing-api@prod-3")
        .build()
        .unwrap();
    assert_eq!(host.operator(), "billing-api@prod-3");
    host.up(wasmig::UpOptions::default()).await.unwrap();
    let history = host.history(None).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(
        history.iter().all(|e| e.applied_by == "billing-api@prod-3"),
        "{history:#?}"
    );
}

#[test]
fn a_server_whose_program_keeps_sigpipe_outlives_a_compile_child_that_ends_early() {
    // Rust programs ignore SIGPIPE from their start; a server whose `main` is C or Python
    // keeps its default, which ends the process at a write to a pipe nobody reads. The
    // host writes the plugin to its compile child: a child that ends first (here one that
    // never reads) must cost an error, not the server. This test runs itself again in a
    // process of its own, with SIGPIPE at its default.
    const AGAIN: &str = "WASMIG_TEST_SIGPIPE_DEFAULT";
    if std::env::var_os(AGAIN).is_some() {
        // SAFETY: this process runs this one test alone; nothing else handles SIGPIPE.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let env = Env::new();
        // More than a pipe's buffer (64 KiB): the write waits for a reader that never comes.
        let mut bytes = std::fs::read(artifacts::ACCOUNTS_V1).unwrap();
        let pad = vec![0u8; 256 * 1024];
        bytes.push(0); // a custom section named "pad"
        let mut content = vec![3, b'p', b'a', b'd'];
        content.extend(&pad);
        crate::declared::leb128(content.len(), &mut bytes);
        bytes.extend(&content);
        env.add_bytes(&bytes, "accounts.wasm");
        let host = wasmig::Host::builder()
            .plugins_dir(&env.plugins)
            .database(&env.db)
            .cache_dir(None)
            .compile_in_child("/bin/true")
            .build()
            .unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let err = runtime
            .block_on(host.up(wasmig::UpOptions::default()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("without answering as wasmig's compile child"),
            "{err}"
        );
        return;
    }
    let name =
        "library::a_server_whose_program_keeps_sigpipe_outlives_a_compile_child_that_ends_early";
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1"])
        .env(AGAIN, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_server_validates_a_declared_plugin_once_however_often_it_is_asked() {
    // A declared plugin not yet applied is validated in the compile child before its
    // declaration is trusted; a server that shows its status at every request does that
    // once per file content, and again for new content. The program given as the compile
    // child writes a line per run, then becomes the real binary.
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    let runs = env.plugins.with_file_name("child-runs");
    let program = env.plugins.with_file_name("child.sh");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\necho \"$2\" >> '{}'\nexec '{}' \"$@\"\n",
            runs.display(),
            env!("CARGO_BIN_EXE_wasmig")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let host = wasmig::Host::builder()
        .plugins_dir(&env.plugins)
        .database(&env.db)
        .cache_dir(None)
        .compile_in_child(&program)
        .build()
        .unwrap();
    let validations = || {
        std::fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "--validate")
            .count()
    };
    for _ in 0..3 {
        let status = host.status().await.unwrap();
        assert!(
            status[0].pending > 0 && status[0].problem.is_none(),
            "{status:#?}"
        );
    }
    assert_eq!(validations(), 1);
    // New content is validated again.
    let mut bytes = std::fs::read(artifacts::ACCOUNTS).unwrap();
    bytes.extend([0, 4, 3, b'n', b'e', b'w']); // an empty custom section "new"
    env.add_bytes(&bytes, "accounts.wasm");
    host.status().await.unwrap();
    assert_eq!(validations(), 2);
}

#[tokio::test]
async fn a_server_compiles_plugins_in_a_child_process_of_its_own_program() {
    // The `wasmig` binary is such a program: it runs `wasmig::compile_child::main` when
    // given `wasmig::compile_child::ARG`. The plugin's steps are code, not declared SQL.
    let env = Env::new();
    env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    let builder = wasmig::Host::builder()
        .plugins_dir(&env.plugins)
        .database(&env.db)
        .cache_dir(None);
    let up_with = |program: std::path::PathBuf| {
        let host = builder.clone().compile_in_child(program).build().unwrap();
        async move { host.up(wasmig::UpOptions::default()).await }
    };
    for (program, refusal) in [
        // No such program.
        (
            env.plugins.join("no-such-program"),
            "accounts.wasm: cannot start the compiler process",
        ),
        // A program that does not run the compile child cannot pass for one by exiting 0.
        (
            "/bin/true".into(),
            "without answering as wasmig's compile child",
        ),
    ] {
        let err = up_with(program).await.unwrap_err().to_string();
        assert!(err.contains(refusal), "{err}");
    }
    assert!(env.ledger().is_empty());
    let report = builder
        .compile_in_child(env!("CARGO_BIN_EXE_wasmig"))
        .build()
        .unwrap()
        .up(wasmig::UpOptions::default())
        .await
        .unwrap();
    assert_eq!(report.ran, 1);
}
