//! A plugin reaches no files, network, environment or arguments, nor the operator's terminal.

use crate::hostile::armed_on;
use crate::on_both;
use crate::support::{Env, artifacts};

fn loot(env: &Env) -> Vec<(String, String)> {
    env.rows("SELECT what, result FROM evil__loot ORDER BY what")
        .into_iter()
        .map(|row| {
            let (what, result) = row.split_once('|').unwrap();
            (what.to_string(), result.to_string())
        })
        .collect()
}

on_both! {
    fn no_file_system(env) {
        let env = armed_on(env, artifacts::HOSTILE, "escape-fs");
        env.ok(&["up"]);
        let loot = loot(&env);
        assert!(!loot.is_empty());
        for (what, result) in loot {
            assert!(result.starts_with("error"), "{what} gave {result}");
        }
    }
}

on_both! {
    fn no_environment_and_no_arguments(env) {
        let env = armed_on(env, artifacts::HOSTILE, "escape-env");
        let out = env
            .command()
            .env("SECRET_TOKEN", "hunter2")
            .arg("up")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            loot(&env),
            [
                ("args".to_string(), String::new()),
                ("env".to_string(), String::new())
            ]
        );
    }
}

#[test]
fn a_plugin_that_imports_sockets_is_refused_at_load() {
    let env = Env::new();
    env.add(artifacts::HOSTILE_NET, "netcat.wasm");
    let err = env.fails(&["up"]);
    assert!(err.contains("netcat.wasm"), "{err}");
    assert!(err.contains("wasi:sockets/"), "{err}");
    assert!(
        err.contains("which wasmig does not grant to plugins"),
        "{err}"
    );
    assert!(env.ledger().is_empty());
}

#[test]
fn a_plugins_words_reach_the_terminal_without_control_characters() {
    // An error or a description could clear the operator's screen, retitle the window or draw
    // a fake report: every control character is shown as its escape.
    let env = crate::scripted::scripted();
    let sql = "SELECT * FROM \"attacker__\u{1b}[2J\u{1b}]0;pwned\u{7}FAKE: all steps succeeded\"";
    let err = env.refused("attacker", "0.2.0", sql, "");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(err.contains("\\u{1b}[2J"), "{err}");
    let history = env.ok(&["history"]);
    assert!(
        !history.contains('\u{1b}') && !history.contains('\u{7}'),
        "{history:?}"
    );
    // Line breaks in a plugin's words stay, each marked as a continuation: no line of them
    // reads as one of wasmig's own. Characters that reorder text show as escapes.
    let fake = "attacker__x\nsucceeded  up         victim                   0.2.0\n\
                Applied 2 step(s).\u{202e}\u{ad}\u{3164}\u{e0041}\u{fe0f}";
    let err = env.refused(
        "attacker",
        "0.2.0",
        &format!("-- query\nSELECT * FROM \"{fake}\""),
        "",
    );
    assert!(
        !err.lines()
            .any(|l| l.starts_with("succeeded") || l.starts_with("Applied")),
        "{err}"
    );
    assert!(err.contains("\n  │ succeeded  up"), "{err}");
    // The log too (with -v, a failed step's error is logged).
    let out = env.run(&["-v", "up", "attacker@0.2.0"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("step failed"), "{log}");
    assert!(
        !log.lines()
            .any(|l| l.starts_with("succeeded") || l.starts_with("Applied")),
        "{log}"
    );
    assert!(!log.contains('\u{202e}'), "{log}");
    // The same in a dry run's report of what a step would change (a name with line breaks
    // is refused, and named in the report).
    env.script(
        "attacker",
        "0.2.0",
        "CREATE TABLE \"attacker__t\n\nvictim 0.2.0 up:\n  created table victim__fine\" (x)",
        None,
    );
    let out = env.run(&["plan", "attacker@0.2.0"]);
    let plan =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !plan.lines().any(|l| l.starts_with("victim 0.2.0 up:")),
        "{plan}"
    );
    assert!(plan.contains("plain names"), "{plan}");
    for c in ['\u{202e}', '\u{ad}', '\u{3164}', '\u{e0041}', '\u{fe0f}'] {
        let escape = format!("\\u{{{:x}}}", c as u32);
        assert!(err.contains(&escape) && !err.contains(c), "{c:?} in {err}");
    }
}
