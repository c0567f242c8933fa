//! The plugin author's toolkit: a plugin crate made by `wasmig new` builds (offline, against
//! the workspace's SDK) and passes `wasmig test` unchanged; so does every `wasmig add`
//! template; `wasmig test` finds a down step that does not undo its up step.

use crate::support::{Env, artifacts, wasmig};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `wasmig ARGS` in `dir`; its stdout, or a panic with its stderr.
fn run_in(dir: &Path, args: &[&str]) -> String {
    let out = wasmig().current_dir(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "wasmig {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails_in(dir: &Path, args: &[&str]) -> String {
    let out = wasmig().current_dir(dir).args(args).output().unwrap();
    assert!(!out.status.success(), "wasmig {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Builds the plugin crate in `dir` with one cargo command, as its README says, and returns
/// the component. Every test's crate has a name of its own: they share a target directory.
fn build(dir: &Path, file_stem: &str) -> PathBuf {
    let target = workspace().join("target/scaffold-cases");
    let out = Command::new(env!("CARGO"))
        .current_dir(dir)
        .args(["build", "--release", "--offline", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join(format!("wasm32-unknown-unknown/release/{file_stem}.wasm"))
}

/// A new plugin crate `name` in a temporary directory, built against the workspace's SDK.
fn new_crate(env: &Env, name: &str) -> PathBuf {
    let sdk = workspace().join("guest-sdk");
    let out = run_in(
        env.dir.path(),
        &["new", name, "--sdk", sdk.to_str().unwrap()],
    );
    assert!(
        out.contains(&format!("created plugin {name} step 0.1.0")),
        "{out}"
    );
    let dir = env.dir.path().join(name);
    // The example plugins' lock file: the SDK's dependencies at versions already fetched.
    std::fs::copy(
        workspace().join("example-plugins/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .unwrap();
    dir
}

#[test]
fn a_new_plugin_builds_applies_and_rolls_back_to_nothing() {
    let env = Env::new();
    let dir = new_crate(&env, "shop");
    for file in [
        "Cargo.toml",
        ".cargo/config.toml",
        "build.rs",
        "src/lib.rs",
        "README.md",
        "migrations/0.1.0-create-items.up.sql",
        "migrations/0.1.0-create-items.down.sql",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("shop__*"), "{readme}");
    let built = build(&dir, "shop");
    let out = run_in(env.dir.path(), &["test", built.to_str().unwrap()]);
    assert!(out.contains("shop: passed"), "{out}");
    std::fs::copy(&built, env.plugins.join("shop.wasm")).unwrap();
    env.ok(&["up"]);
    assert!(env.tables().contains(&"shop__item".to_string()));
    env.ok(&["uninstall", "shop"]);
    assert!(!env.tables().iter().any(|t| t.starts_with("shop__")));
}

#[test]
fn every_template_adds_a_step_that_applies_and_rolls_back() {
    let env = Env::new();
    let dir = new_crate(&env, "store");
    let adds: &[&[&str]] = &[
        &[
            "add",
            "add tags",
            "--template",
            "add-column",
            "--table",
            "item",
            "--column",
            "tags",
        ],
        &[
            "add",
            "index tags",
            "--template",
            "add-index",
            "--table",
            "item",
            "--column",
            "tags",
        ],
        &[
            "add",
            "rename tags",
            "--template",
            "rename",
            "--table",
            "item",
            "--column",
            "tags",
            "--to",
            "labels",
        ],
        &["add", "create orders"],
        &[
            "add",
            "rename orders",
            "--template",
            "rename",
            "--table",
            "orders",
            "--to",
            "purchases",
        ],
        &[
            "add",
            "fill labels",
            "--template",
            "backfill",
            "--table",
            "item",
            "--column",
            "labels",
        ],
    ];
    for (i, args) in adds.iter().enumerate() {
        let out = run_in(&dir, args);
        assert!(out.contains(&format!("step 0.{}.0", i + 2)), "{out}");
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("version = \"0.7.0\""), "{manifest}");
    assert!(dir.join("migrations/0.7.0-fill-labels.rs").is_file());

    let built = build(&dir, "store");
    let report = wasmig()
        .args(["--json", "test", built.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(report.status.success());
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["plugins"][0]["steps"].as_array().unwrap().len(), 7);
    // The first step alone, rows in it, then every added step.
    std::fs::copy(&built, env.plugins.join("store.wasm")).unwrap();
    env.ok(&["up", "store@0.1.0"]);
    env.exec("INSERT INTO store__item (id, name) VALUES (1, 'a'), (2, 'b')");
    let before = env.dump_except_ledger();
    env.ok(&["up"]);
    assert_eq!(
        env.rows("SELECT id, labels FROM store__item ORDER BY id"),
        ["1|labels-1", "2|labels-2"]
    );
    assert!(env.tables().contains(&"store__purchases".to_string()));
    // Down to the first step: what it was before the added steps, rows included.
    env.ok(&["down", "store", "--to", "0.1.0"]);
    let after = env.dump_except_ledger();
    assert_eq!(
        after.replace("0.7.0", "0.1.0"),
        before.replace("0.7.0", "0.1.0"),
        "the added steps' down steps undo their up steps"
    );
    env.ok(&["uninstall", "store"]);
    assert!(!env.tables().iter().any(|t| t.starts_with("store__")));
}

#[test]
fn bad_names_and_missing_arguments_are_clear_errors() {
    let env = Env::new();
    let err = fails_in(env.dir.path(), &["new", "Shop_1"]);
    assert!(err.contains("invalid plugin name \"Shop_1\""), "{err}");
    std::fs::create_dir(env.dir.path().join("taken")).unwrap();
    std::fs::write(env.dir.path().join("taken/x"), "").unwrap();
    let err = fails_in(env.dir.path(), &["new", "shop", "--path", "taken"]);
    assert!(err.contains("exists and is not empty"), "{err}");

    let dir = new_crate(&env, "shop");
    let err = fails_in(&dir, &["add", "x", "--template", "drop-everything"]);
    assert!(err.contains("no template \"drop-everything\""), "{err}");
    let err = fails_in(
        &dir,
        &["add", "tags", "--template", "add-column", "--table", "item"],
    );
    assert!(
        err.contains("the add-column template needs --column"),
        "{err}"
    );
    let err = fails_in(
        &dir,
        &[
            "add",
            "tags",
            "--template",
            "add-column",
            "--table",
            "item; DROP TABLE x",
            "--column",
            "c",
        ],
    );
    assert!(err.contains("--table"), "{err}");
    let err = fails_in(env.dir.path(), &["add", "tags"]);
    assert!(err.contains("run wasmig add in a plugin crate"), "{err}");
    // Nothing was written by the failed commands.
    let steps = std::fs::read_dir(dir.join("migrations")).unwrap().count();
    assert_eq!(steps, 2);
}

#[test]
fn a_down_step_that_forgets_an_index_fails_wasmig_test_naming_it() {
    let env = Env::new();
    let dir = new_crate(&env, "forgetful");
    run_in(
        &dir,
        &[
            "add",
            "index names",
            "--template",
            "add-index",
            "--table",
            "item",
            "--column",
            "name",
        ],
    );
    std::fs::write(
        dir.join("migrations/0.2.0-index-names.down.sql"),
        "SELECT 1;\n",
    )
    .unwrap();
    let built = build(&dir, "forgetful");
    let out = wasmig()
        .args(["test", built.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("forgetful 0.2.0 down does not restore the schema"),
        "{stdout}"
    );
    assert!(
        stdout.contains("+ index forgetful__item_name_idx on forgetful__item (name)"),
        "{stdout}"
    );
    assert!(stdout.contains("forgetful: FAILED"), "{stdout}");
}

#[test]
fn an_irreversible_step_is_reported_and_fails_only_when_steps_must_be_reversible() {
    let env = Env::new();
    let dir = new_crate(&env, "oneway");
    run_in(
        &dir,
        &[
            "add",
            "add notes",
            "--template",
            "add-column",
            "--table",
            "item",
            "--column",
            "notes",
        ],
    );
    std::fs::remove_file(dir.join("migrations/0.2.0-add-notes.down.sql")).unwrap();
    let built = build(&dir, "oneway");
    let out = run_in(env.dir.path(), &["test", built.to_str().unwrap()]);
    assert!(out.contains("irreversible"), "{out}");
    assert!(out.contains("oneway: passed"), "{out}");
    let out = wasmig()
        .args(["test", "--require-reversible", built.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("oneway: FAILED"));
}

#[test]
fn wasmig_test_takes_dependencies_from_the_plugins_directory_or_with() {
    // notes depends on accounts, which sits beside it.
    let env = Env::new();
    let out = run_in(env.dir.path(), &["test", artifacts::NOTES]);
    assert!(out.contains("notes: passed"), "{out}");
    // Alone in a directory, accounts is missing until it is given.
    let alone = env.dir.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(artifacts::NOTES, alone.join("notes.wasm")).unwrap();
    let err = fails_in(env.dir.path(), &["test", "alone/notes.wasm"]);
    assert!(err.contains("depends on accounts"), "{err}");
    let out = run_in(
        env.dir.path(),
        &["test", "alone/notes.wasm", "--with", artifacts::ACCOUNTS],
    );
    assert!(out.contains("notes: passed"), "{out}");
    // The scratch database is the test's own: nothing was written here.
    assert!(!env.dir.path().join("wasmig.db").exists());
}

#[test]
fn wasmig_test_runs_on_postgres_with_db() {
    let env = Env::postgres();
    let dir = new_crate(&env, "shelf");
    run_in(
        &dir,
        &[
            "add",
            "add tags",
            "--template",
            "add-column",
            "--table",
            "item",
            "--column",
            "tags",
        ],
    );
    let built = build(&dir, "shelf");
    let out = run_in(
        env.dir.path(),
        &[
            "--db",
            env.db.to_str().unwrap(),
            "test",
            built.to_str().unwrap(),
        ],
    );
    assert!(out.contains("shelf: passed"), "{out}");
}

#[test]
fn a_step_that_checks_data_fails_wasmig_test_when_its_down_step_leaves_a_row() {
    checks_data(
        Env::new(),
        "seeded",
        "+ row seeded__item (2, 'ink', '2026-01-01')",
    );
}

#[test]
fn a_step_that_checks_data_is_compared_on_postgres_too() {
    checks_data(
        Env::postgres(),
        "seededpg",
        "+ row seededpg__item (2,ink,2026-01-01)",
    );
}

/// A step marked `wasmig:check-data` whose down step leaves one of the rows its up step
/// wrote: `wasmig test` names the row; once the down step removes both, it passes.
fn checks_data(env: Env, name: &str, left_over: &str) {
    let dir = new_crate(&env, name);
    // `--db` only on PostgreSQL: on SQLite the test makes its own scratch file.
    let db: Vec<&str> = if env.pg.is_some() {
        vec!["--db", env.db.to_str().unwrap()]
    } else {
        Vec::new()
    };
    run_in(
        &dir,
        &[
            "add",
            "seed items",
            "--template",
            "create-table",
            "--table",
            "unused",
        ],
    );
    let up = dir.join("migrations/0.2.0-seed-items.up.sql");
    let down = dir.join("migrations/0.2.0-seed-items.down.sql");
    std::fs::write(
        &up,
        format!(
            "-- wasmig:check-data\nINSERT INTO {name}__item (id, name, created_at)\n\
             VALUES (1, 'pen', '2026-01-01'), (2, 'ink', '2026-01-01');\n"
        ),
    )
    .unwrap();
    // Forgets the second row: the schema is restored, the rows are not.
    std::fs::write(&down, format!("DELETE FROM {name}__item WHERE id = 1;\n")).unwrap();
    let built = build(&dir, name);
    let out = wasmig()
        .args(&db)
        .args(["test", built.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("schema, rows"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{name} 0.2.0 down does not restore the schema and rows"
        )),
        "{stdout}"
    );
    assert!(stdout.contains(left_over), "{stdout}");

    // With a down step that removes both rows, the same plugin passes, its rows compared.
    std::fs::write(
        &down,
        format!("DELETE FROM {name}__item WHERE id IN (1, 2);\n"),
    )
    .unwrap();
    let built = build(&dir, name);
    // The database where the first test left the plugin applied is refused.
    if !db.is_empty() {
        let out = wasmig()
            .args(&db)
            .args(["test", built.to_str().unwrap()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{stdout}");
        assert!(
            stdout.contains("2 of its steps are already applied on this database"),
            "{stdout}"
        );
    }
    let fresh = env.pg.is_some().then(Env::postgres);
    let db: Vec<&str> = match &fresh {
        Some(fresh) => vec!["--db", fresh.db.to_str().unwrap()],
        None => Vec::new(),
    };
    let out = wasmig()
        .args(&db)
        .args(["--json", "test", built.to_str().unwrap()])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report:#}");
    let steps = &report["plugins"][0]["steps"];
    assert_eq!(steps[1]["checks_data"], true, "{report:#}");
    assert_eq!(steps[0]["checks_data"], false, "{report:#}");
    for phase in ["up", "down", "again"] {
        assert_eq!(steps[1][phase]["result"], "passed", "{report:#}");
    }
}

/// `wasmig test` holds a long value by its start, its length and its SHA-256: a plugin whose
/// steps write 16 MB values, their rows compared after every step, is tested within a bound
/// of the host's memory, and a long value its down step does not restore is still found.
#[test]
fn wasmig_test_holds_long_values_by_their_digest() {
    long_values(Env::new(), "bulky", "hex(zeroblob(8000000))");
}

#[test]
fn wasmig_test_holds_long_rows_by_their_digest_on_postgres() {
    long_values(Env::postgres(), "bulkypg", "repeat('0', 16000000)");
}

/// The test of a plugin `name` whose values are 16 MB of zeros, as `zeros` makes them.
fn long_values(env: Env, name: &str, zeros: &str) {
    let dir = new_crate(&env, name);
    let step = |description: &str, version: &str, up: String, down: String| {
        run_in(
            &dir,
            &[
                "add",
                description,
                "--template",
                "create-table",
                "--table",
                "unused",
            ],
        );
        let stem = format!("migrations/{version}-{description}");
        std::fs::write(dir.join(format!("{stem}.up.sql")), up).unwrap();
        std::fs::write(dir.join(format!("{stem}.down.sql")), down).unwrap();
    };
    // Four rows of a 16 MB value each (a statement each: a step's SQLite memory is bounded),
    // then the first one made longer by a byte.
    let inserts: String = (1..=4)
        .map(|id| {
            format!(
                "INSERT INTO {name}__item (id, name, created_at) \
                 VALUES ({id}, {zeros}, '2026-01-01');\n"
            )
        })
        .collect();
    step(
        "fill",
        "0.2.0",
        format!("-- wasmig:check-data\n{inserts}"),
        format!("DELETE FROM {name}__item WHERE id <= 4;\n"),
    );
    let grow = |down_value: &str| {
        step(
            "grow",
            "0.3.0",
            format!(
                "-- wasmig:check-data\nUPDATE {name}__item SET name = name || 'x' WHERE id = 1;\n"
            ),
            format!("UPDATE {name}__item SET name = {down_value} WHERE id = 1;\n"),
        )
    };
    grow(zeros);
    let built = build(&dir, name);
    let (status, peak_kib) = env.peak_memory(&["test", built.to_str().unwrap()]);
    assert!(status.success(), "wasmig test of {name} failed");
    // Each of the three snapshots compared holds 64 MB of values as text when they are
    // held whole: several hundred MiB.
    assert!(
        peak_kib < 160 * 1024,
        "wasmig test peaked at {} MiB",
        peak_kib / 1024
    );

    // A down step that leaves the value a byte too long: named by its length and digest.
    std::fs::remove_file(dir.join("migrations/0.3.0-grow.up.sql")).unwrap();
    std::fs::remove_file(dir.join("migrations/0.3.0-grow.down.sql")).unwrap();
    grow("substr(name, 1, 16000001)");
    let built = build(&dir, name);
    let fresh = if env.pg.is_some() {
        Env::postgres()
    } else {
        Env::new()
    };
    let out = fresh
        .command()
        .args(["test", built.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{name} 0.3.0 down does not restore the schema and rows"
        )),
        "{stdout}"
    );
    // SQLite describes each value, PostgreSQL the whole row: `(1, '000…' (16000000 bytes,
    // sha256 …), …)` or `(1,000…,2026-01-01) (16000014 bytes, sha256 …)`. The row left over
    // is a byte longer than the one missing.
    let length = |sign: &str| -> usize {
        let line = stdout
            .lines()
            .find(|l| {
                l.trim_start()
                    .starts_with(&format!("{sign} row {name}__item (1,"))
            })
            .unwrap_or_else(|| panic!("no {sign} row in {stdout}"));
        assert!(line.contains("0000000000…"), "{line}");
        assert!(line.len() < 400, "{line}");
        let (before, _) = line.split_once(" bytes, sha256 ").expect(line);
        before.rsplit('(').next().unwrap().parse().expect(line)
    };
    assert_eq!(length("+"), length("-") + 1, "{stdout}");
}

/// `wasmig test` reads a plugin's stored values only: a VIRTUAL generated column is computed
/// as it is read, by an expression of the plugin's, which on the host's connection would run
/// outside every bound of a step (here a value of 300 MB).
#[test]
fn wasmig_test_does_not_compute_virtual_columns() {
    let env = Env::new();
    let name = "virtual";
    let dir = new_crate(&env, name);
    run_in(
        &dir,
        &[
            "add",
            "costly",
            "--template",
            "create-table",
            "--table",
            "unused",
        ],
    );
    std::fs::write(
        dir.join("migrations/0.2.0-costly.up.sql"),
        format!(
            "-- wasmig:check-data\n\
             INSERT INTO {name}__item (id, name, created_at) VALUES (1, 'a', '2026-01-01');\n\
             ALTER TABLE {name}__item ADD COLUMN big AS (printf('%.*c', 300000000, name)) VIRTUAL;\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("migrations/0.2.0-costly.down.sql"),
        format!("ALTER TABLE {name}__item DROP COLUMN big;\nDELETE FROM {name}__item;\n"),
    )
    .unwrap();
    let built = build(&dir, name);
    let (status, peak_kib) = env.peak_memory(&["test", built.to_str().unwrap()]);
    assert!(status.success(), "wasmig test of {name} failed");
    assert!(
        peak_kib < 160 * 1024,
        "wasmig test peaked at {} MiB",
        peak_kib / 1024
    );
}
