//! Plugins that declare their migrations as data (`StaticPlugin`): their manifest and SQL
//! steps are read from the component without compiling it, and their SQL runs with the same
//! permissions, limits and records as SQL sent by code.

use crate::support::{Env, artifacts};
use std::path::Path;

fn cwasm_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count()
        })
        .unwrap_or(0)
}

/// A declaration as the guest SDK encodes it (see `guest-sdk/src/declaration.rs`).
pub(crate) struct Decl {
    pub(crate) bytes: Vec<u8>,
    step_description: String,
}

impl Decl {
    fn new(name: &str, version: &str, migrations: u32) -> Self {
        Self::described(name, version, "declared in a test", "a step", migrations)
    }

    /// A declaration with these descriptions for the plugin and each of its steps.
    pub(crate) fn described(
        name: &str,
        version: &str,
        description: &str,
        step_description: &str,
        migrations: u32,
    ) -> Self {
        let mut d = Decl {
            bytes: vec![1],
            step_description: step_description.to_string(),
        };
        d.text(name).text(version).text(description);
        d.bytes.extend(0u32.to_le_bytes()); // no dependencies
        d.bytes.extend(0u32.to_le_bytes()); // no reads
        d.bytes.extend(migrations.to_le_bytes());
        d
    }

    fn text(&mut self, s: &str) -> &mut Self {
        self.bytes.extend((s.len() as u32).to_le_bytes());
        self.bytes.extend(s.as_bytes());
        self
    }

    /// A migration: `up` and `down` are `(kind, text)`, kind 1 SQL, 2 code; no down: `None`.
    pub(crate) fn migration(
        &mut self,
        version: &str,
        up: (u8, &str),
        down: Option<(u8, &str)>,
    ) -> &mut Self {
        let description = self.step_description.clone();
        self.text(version).text(&description);
        self.bytes.push(up.0);
        self.text(up.1);
        match down {
            None => self.bytes.push(0),
            Some((kind, text)) => {
                self.bytes.push(kind);
                self.text(text);
            }
        }
        self
    }
}

pub(crate) fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A LEB128 number at `*at` in `bytes`, moving `*at` past it.
fn read_leb128(bytes: &[u8], at: &mut usize) -> usize {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let byte = bytes[*at];
        *at += 1;
        n |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return n;
        }
        shift += 7;
    }
}

/// `binary` (a component or a core module) without its custom sections named `name`, at any
/// depth: the declaration `plugin!` writes sits in the component's core module.
pub(crate) fn without_section(binary: &[u8], name: &str) -> Vec<u8> {
    let component = binary[6..8] == [1, 0];
    let mut out = binary[..8].to_vec();
    let mut at = 8;
    while at < binary.len() {
        let id = binary[at];
        at += 1;
        let size = read_leb128(binary, &mut at);
        let payload = &binary[at..at + size];
        at += size;
        let kept = match id {
            0 => {
                let mut i = 0;
                let len = read_leb128(payload, &mut i);
                (&payload[i..i + len] != name.as_bytes()).then(|| payload.to_vec())
            }
            // A core module (1) or a component (4) inside a component.
            1 | 4 if component => Some(without_section(payload, name)),
            _ => Some(payload.to_vec()),
        };
        if let Some(payload) = kept {
            out.push(id);
            leb128(payload.len(), &mut out);
            out.extend(payload);
        }
    }
    out
}

/// `component` with a custom section `name` holding `data` appended at its top level.
pub(crate) fn with_section(component: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    leb128(name.len(), &mut payload);
    payload.extend(name.as_bytes());
    payload.extend(data);
    let mut out = component.to_vec();
    out.push(0);
    leb128(payload.len(), &mut out);
    out.extend(payload);
    out
}

pub(crate) const SECTION: &str = "wasmig:plugin/declaration@0.1.0";

#[test]
fn a_declared_plugin_is_applied_and_undone_without_being_compiled() {
    let env = Env::new();
    let cache = env.dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let file = env.add(artifacts::ACCOUNTS, "accounts.wasm");

    let info = env.json(&[
        "--cache-dir",
        cache_arg,
        "--no-cache",
        "inspect",
        file.to_str().unwrap(),
    ]);
    assert_eq!(info["declared"], true, "{info}");
    assert_eq!(info["code_disagrees"], serde_json::json!([]), "{info}");

    let lines = env.json_lines(&["--cache-dir", cache_arg, "up"]);
    let report = lines.last().unwrap();
    assert_eq!(
        (&report["event"], &report["ran"]),
        (&"finished".into(), &2.into()),
        "{lines:?}"
    );
    assert_eq!(cwasm_entries(&cache), 0, "nothing was compiled");
    assert!(env.tables().contains(&"accounts__user".to_string()));

    // The audit trail records the declared SQL, statement by statement.
    let statements: String =
        env.value("SELECT statements FROM _wasmig_ledger WHERE version = '0.1.0'");
    assert!(
        statements.contains("CREATE TABLE accounts__user"),
        "{statements}"
    );

    // Undone from the component stored in the database, the file gone: still not compiled.
    env.remove("accounts.wasm");
    env.ok(&["--cache-dir", cache_arg, "uninstall", "accounts"]);
    assert!(!env.tables().iter().any(|t| t.starts_with("accounts__")));
    assert_eq!(cwasm_entries(&cache), 0, "nothing was compiled");
    let ledger = env.ledger();
    assert_eq!(ledger.len(), 4, "{ledger:?}");
    assert!(ledger.iter().all(|row| row.3 == "succeeded"), "{ledger:?}");
}

#[test]
fn declared_sql_gets_the_plugins_permissions_and_nothing_more() {
    for (sql, expected) in [
        (
            "CREATE TABLE decl__ok (x); CREATE TABLE accounts__user (x)",
            "access denied",
        ),
        ("ATTACH DATABASE 'other.db' AS other", "access denied"),
        (
            "CREATE TABLE decl__ok (x); SELECT * FROM _wasmig_ledger",
            "access denied",
        ),
        (
            "CREATE TABLE decl__ok (x); CREATE TABLE decl__ok (y)",
            "already exists",
        ),
    ] {
        let env = Env::new();
        let mut decl = Decl::new("decl", "0.1.0", 1);
        decl.migration("0.1.0", (1, sql), None);
        // Any plugin's component will do as the carrier: its code is never run.
        let bytes = with_section(
            &std::fs::read(artifacts::ACCOUNTS_V1).unwrap(),
            SECTION,
            &decl.bytes,
        );
        env.add_bytes(&bytes, "decl.wasm");
        let err = env.fails(&["up"]);
        assert!(
            err.contains("plugin decl migration 0.1.0") && err.contains(expected),
            "{sql}: {err}"
        );
        let tables = env.tables();
        assert!(
            tables.iter().all(|t| t.starts_with("_wasmig")),
            "{sql}: nothing is left behind: {tables:?}"
        );
        let ledger = env.ledger();
        assert_eq!(ledger.len(), 1, "{ledger:?}");
        assert_eq!(
            (ledger[0].0.as_str(), ledger[0].3.as_str()),
            ("decl", "failed")
        );
    }
}

#[test]
fn a_declared_code_step_runs_the_code_and_the_sql_steps_run_the_data() {
    // notes' code has SQL steps 0.1.0 and 0.2.0 and a code step 0.3.0 ("stats-v1"). The
    // declaration changes 0.1.0's SQL: what runs must be the declared SQL.
    let notes = std::fs::read(artifacts::NOTES).unwrap();
    let mut decl = Decl::new("notes", "0.3.0", 3);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-plugins/notes/migrations");
    let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap();
    let first = format!(
        "{}; CREATE TABLE notes__declared (x)",
        read("0.1.0-create-notes.up.sql")
    );
    decl.migration(
        "0.1.0",
        (1, &first),
        Some((1, &read("0.1.0-create-notes.down.sql"))),
    )
    .migration(
        "0.2.0",
        (1, &read("0.2.0-tags.up.sql")),
        Some((1, &read("0.2.0-tags.down.sql"))),
    )
    .migration("0.3.0", (2, "stats-v1"), Some((2, "stats-v1")));
    // notes depends on accounts; the test's declaration does not say so, accounts is added
    // anyway for the foreign key.
    let env = Env::new();
    let cache = env.dir.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    // The test's declaration replaces the one `plugin!` wrote.
    let notes = without_section(&notes, SECTION);
    env.add_bytes(&with_section(&notes, SECTION, &decl.bytes), "notes.wasm");
    env.ok(&["--cache-dir", cache_arg, "up"]);
    let tables = env.tables();
    assert!(
        tables.contains(&"notes__declared".to_string()),
        "{tables:?}"
    );
    assert!(tables.contains(&"notes__stats".to_string()), "{tables:?}");
    assert_eq!(
        cwasm_entries(&cache),
        1,
        "notes was compiled for its code step"
    );

    env.ok(&["--cache-dir", cache_arg, "down", "notes", "--to", "0.1.0"]);

    // `inspect` shows where the code's own manifest() answers otherwise.
    let file = env.plugins.join("notes.wasm");
    let info = env.json(&["--cache-dir", cache_arg, "inspect", file.to_str().unwrap()]);
    let differences: Vec<String> = info["code_disagrees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert!(
        differences
            .iter()
            .any(|d| d.starts_with("step 0.1.0: checksum"))
            && differences
                .iter()
                .any(|d| d.starts_with("depends on: \"\" declared"))
            && !differences
                .iter()
                .any(|d| d.starts_with("step 0.2.0: checksum")),
        "{differences:?}"
    );
    let text = env.ok(&["--cache-dir", cache_arg, "inspect", file.to_str().unwrap()]);
    assert!(
        text.contains("warning:     its code's manifest() disagrees with its declaration: step 0.1.0: checksum"),
        "{text}"
    );
    let tables = env.tables();
    assert!(!tables.contains(&"notes__stats".to_string()), "{tables:?}");
    assert!(
        tables.contains(&"notes__declared".to_string()),
        "{tables:?}"
    );
}

#[test]
fn a_malformed_or_doubled_declaration_is_refused_naming_the_file() {
    let accounts = std::fs::read(artifacts::ACCOUNTS_V1).unwrap();
    let mut good = Decl::new("decl", "0.1.0", 1);
    good.migration("0.1.0", (1, "CREATE TABLE decl__t (x)"), None);
    let truncated = &good.bytes[..good.bytes.len() - 3];
    let doubled = with_section(
        &with_section(&accounts, SECTION, &good.bytes),
        SECTION,
        &good.bytes,
    );
    for (bytes, expected) in [
        (
            with_section(&accounts, SECTION, truncated),
            "its declaration is malformed: a text runs past the end",
        ),
        (
            with_section(&accounts, SECTION, &[9]),
            "its declaration is in format 9",
        ),
        (doubled, "has two wasmig:plugin/declaration@0.1.0 sections"),
    ] {
        let env = Env::new();
        env.add_bytes(&bytes, "decl.wasm");
        for command in [&["up"][..], &["status"]] {
            // `status` shows the problem in its table; `up` refuses on stderr.
            let out = env.run(command);
            assert!(!out.status.success(), "{command:?}");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.contains("decl.wasm") && text.contains(expected),
                "{text}"
            );
        }
        assert!(!env.db.exists() || env.ledger().is_empty());
    }
}

#[test]
fn a_declaration_of_too_many_steps_is_refused_without_checking_each() {
    // A plugin file of a few megabytes may declare hundreds of thousands of steps, which
    // every command that lists the plugins directory would check one against another.
    let mut many = Decl::new("decl", "0.1.0", 200_000);
    for i in 0..200_000 {
        many.migration(&format!("0.0.{i}"), (1, "SELECT 1"), None);
    }
    let env = Env::new();
    env.add_bytes(
        &with_section(
            &std::fs::read(artifacts::ACCOUNTS_V1).unwrap(),
            SECTION,
            &many.bytes,
        ),
        "decl.wasm",
    );
    let out = env.run(&["status"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("decl.wasm")
            && text.contains("it declares 200000 migrations, more than the 10000 a plugin may"),
        "{text}"
    );
}

#[test]
fn a_declared_plugins_component_is_still_checked() {
    // The declaration is fine, the component around it is not: it imports what wasmig does
    // not grant (the network).
    let mut decl = Decl::new("decl", "0.1.0", 1);
    decl.migration("0.1.0", (1, "CREATE TABLE decl__t (x)"), None);
    let net = with_section(
        &std::fs::read(artifacts::HOSTILE_NET).unwrap(),
        SECTION,
        &decl.bytes,
    );
    let env = Env::new();
    env.add_bytes(&net, "decl.wasm");
    let err = env.fails(&["up"]);
    assert!(
        err.contains("decl.wasm") && err.contains("which wasmig does not grant"),
        "{err}"
    );
}
