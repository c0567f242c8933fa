//! `plugin!` on real crates: each case is a crate in a temporary directory with a migrations
//! folder, checked with cargo. A good folder compiles; each kind of mistake fails to compile
//! with an error that names the file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Checks a crate named `case` at `version` whose `src/lib.rs` is `lib` and whose files
/// are `files` (paths relative to the crate); returns whether it compiled, and cargo's
/// messages.
fn check(version: &str, lib: &str, files: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let sdk = workspace().join("guest-sdk");
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"case\"\nversion = \"{version}\"\nedition = \"2024\"\n\
             [dependencies]\nwasmig-guest = {{ path = {:?} }}\n[workspace]\n",
            sdk.display().to_string()
        ),
    )
    .unwrap();
    // The workspace's lock file: the same dependency versions, nothing to fetch.
    std::fs::copy(
        workspace().join("Cargo.lock"),
        dir.path().join("Cargo.lock"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), lib).unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let out = Command::new(env!("CARGO"))
        .current_dir(dir.path())
        .args(["check", "--offline", "--quiet", "--color", "never"])
        // One target directory for every case: the SDK is built once.
        .env(
            "CARGO_TARGET_DIR",
            workspace().join("target/plugin-macro-cases"),
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const LIB: &str = "wasmig_guest::plugin! { migrations: \"migrations\" }\n";

fn fails(version: &str, files: &[(&str, &str)], expected: &[&str]) {
    let (ok, err) = check(version, LIB, files);
    assert!(!ok, "should not compile: {files:?}");
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in:\n{err}");
    }
}

#[test]
fn a_folder_of_sql_and_code_steps_compiles_with_the_crates_name_and_version() {
    let lib = "wasmig_guest::plugin! { description: \"cases\", migrations: \"migrations\" }\n\
               const _: () = assert!(CHECKSUMS.len() == 3);\n";
    let (ok, err) = check(
        "0.3.0",
        lib,
        &[
            (
                "migrations/0.1.0-create-items.up.sql",
                "CREATE TABLE case__item (id INTEGER)",
            ),
            (
                "migrations/0.1.0-create-items.down.sql",
                "DROP TABLE case__item",
            ),
            (
                "migrations/0.2.0-add-names.up.sql",
                "ALTER TABLE case__item ADD COLUMN name TEXT",
            ),
            (
                "migrations/0.3.0-fill-names.rs",
                "//! A code step.\nuse wasmig_guest::{Result, Tx};\n\
                 pub const REVISION: &str = \"2\";\n\
                 pub fn up(tx: &Tx) -> Result<()> {\n\
                     tx.execute(\"UPDATE case__item SET name = 'x'\", &[])?;\n    Ok(())\n}\n\
                 pub fn down(_: &Tx) -> Result<()> {\n    Ok(())\n}\n",
            ),
        ],
    );
    assert!(ok, "{err}");
}

#[test]
fn a_file_that_is_not_a_step_is_a_compile_error_naming_it() {
    fails(
        "0.1.0",
        &[("migrations/0.1.0_users.up.sql", "SELECT 1")],
        &["0.1.0_users.up.sql", "<version>-<slug>"],
    );
    fails(
        "0.1.0",
        &[("migrations/notes.txt", "")],
        &["notes.txt", "holds only"],
    );
}

#[test]
fn a_version_that_is_not_semantic_is_a_compile_error_naming_the_file() {
    fails(
        "0.1.0",
        &[("migrations/1.0-users.up.sql", "SELECT 1")],
        &["1.0-users.up.sql", "is not a semantic version"],
    );
}

#[test]
fn two_steps_with_one_version_are_a_compile_error_naming_the_file() {
    fails(
        "0.1.0",
        &[
            ("migrations/0.1.0-a.up.sql", "SELECT 1"),
            ("migrations/0.1.0-b.up.sql", "SELECT 1"),
        ],
        &["0.1.0-b.up.sql", "each version is one step"],
    );
}

#[test]
fn a_down_file_without_its_up_file_is_a_compile_error_naming_it() {
    fails(
        "0.2.0",
        &[
            ("migrations/0.1.0-a.up.sql", "SELECT 1"),
            ("migrations/0.2.0-b.down.sql", "SELECT 1"),
        ],
        &["0.2.0-b.down.sql", "a down step without its up step"],
    );
}

#[test]
fn a_step_newer_than_the_plugin_is_a_compile_error_naming_it() {
    fails(
        "0.1.0",
        &[
            ("migrations/0.1.0-a.up.sql", "SELECT 1"),
            ("migrations/0.2.0-b.up.sql", "SELECT 1"),
        ],
        &["0.2.0-b.up.sql", "newer than the plugin's version 0.1.0"],
    );
}

#[test]
fn a_code_step_without_up_is_a_compile_error_naming_it() {
    fails(
        "0.1.0",
        &[("migrations/0.1.0-a.rs", "pub fn down() {}")],
        &["0.1.0-a.rs", "pub fn up"],
    );
}
