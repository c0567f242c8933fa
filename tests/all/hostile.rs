//! The hostile-plugin suite: the plugin `evil` runs one attack per test. Each attack must fail
//! with its specific error, change nothing outside `evil__*` (a full dump of the database is
//! compared, only the ledger may gain the failure row), and leave the host able to migrate a
//! well-behaved plugin afterwards.

use crate::support::{Env, artifacts};

/// Sets up `accounts` 0.1.0 with one user and `evil` with `attack` chosen.
pub fn armed(attack: &str) -> Env {
    armed_with(artifacts::HOSTILE, attack)
}

/// [`armed`], with `evil` from the component `hostile` (a build of the hostile plugin).
pub fn armed_with(hostile: &str, attack: &str) -> Env {
    let env = Env::new();
    env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    env.add(hostile, "evil.wasm");
    env.ok(&["up", "accounts"]);
    env.ok(&["up", "evil@0.1.0"]);
    let conn = env.conn();
    conn.execute(
        "INSERT INTO accounts__user (email) VALUES ('victim@example.com')",
        [],
    )
    .unwrap();
    conn.execute("INSERT INTO evil__attack (name) VALUES (?1)", [attack])
        .unwrap();
    env
}

/// Runs the armed attack; asserts it failed with `expected` in the error, that nothing but
/// the ledger changed, and that a well-behaved plugin still migrates. Returns the error.
pub fn attack_fails(attack: &str, extra: &[&str], expected: &str) -> String {
    attack_fails_with(artifacts::HOSTILE, attack, extra, expected)
}

/// [`attack_fails`], with `evil` from the component `hostile`.
pub fn attack_fails_with(hostile: &str, attack: &str, extra: &[&str], expected: &str) -> String {
    let env = armed_with(hostile, attack);
    let before = env.dump_except_ledger();
    let ledger_before = env.ledger().len();

    let mut args = vec!["up"];
    args.extend_from_slice(extra);
    let err = env.fails(&args);
    assert!(
        err.to_lowercase().contains(&expected.to_lowercase()),
        "attack {attack}: expected {expected:?} in:\n{err}"
    );
    assert!(err.contains("plugin evil migration 0.2.0"), "{err}");

    assert_eq!(
        env.dump_except_ledger(),
        before,
        "attack {attack} changed the database"
    );
    let ledger = env.ledger();
    assert_eq!(ledger.len(), ledger_before + 1);
    let last = ledger.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str(), last.3.as_str()),
        ("evil", "0.2.0", "failed")
    );
    assert!(
        last.4
            .as_deref()
            .unwrap()
            .to_lowercase()
            .contains(&expected.to_lowercase()),
        "the ledger records the cause: {:?}",
        last.4
    );

    // The host carries on: a well-behaved plugin still migrates.
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.ok(&["up", "accounts"]);
    assert_eq!(env.ledger().last().unwrap().1, "0.2.0");
    assert!(env.tables().contains(&"accounts__role".to_string()));
    err
}

macro_rules! attacks {
    ($($test:ident: $attack:literal => $expected:expr;)*) => {$(
        #[test]
        fn $test() {
            attack_fails($attack, &[], $expected);
        }
    )*};
}

const OUTSIDE: &str = "is outside plugin evil's namespace";

attacks! {
    read_another_plugins_table: "read-other" => "table \"accounts__user\" is outside plugin evil's namespace or does not exist";
    insert_into_another_plugins_table: "write-other" => "table \"accounts__user\" is outside plugin evil's namespace";
    update_another_plugins_table: "update-other" => "table \"accounts__user\" is outside";
    delete_from_another_plugins_table: "delete-other" => "table \"accounts__user\" is outside";
    drop_another_plugins_table: "drop-other" => "table \"accounts__user\" is outside";
    alter_another_plugins_table: "alter-other" => "table \"accounts__user\" is outside";
    rename_another_plugins_table: "rename-other" => "table \"accounts__user\" is outside";
    rename_own_table_into_another_namespace: "rename-into-other" => "the step created table \"accounts__planted\"";
    index_on_another_plugins_table: "index-on-other" => "table \"accounts__user\" is outside";
    index_named_in_another_namespace: "index-named-other" => "index \"accounts__idx\" is outside";
    trigger_on_another_plugins_table: "trigger-on-other" => "table \"accounts__user\" is outside";
    trigger_that_writes_another_plugins_table: "trigger-writes-other" => "trigger \"evil__trg\" would reach outside the plugin";
    temp_trigger_on_another_plugins_table: "temp-trigger-on-other" => "table \"accounts__user\" is outside";
    view_over_another_plugins_table: "view-over-other" => "view \"evil__v\" would reach outside the plugin";
    virtual_table_in_another_namespace: "vtable-named-other" => "virtual table \"accounts__search\" is outside";
    temp_view_over_another_plugins_table: "temp-view-over-other" => "view \"evil__v\" would reach outside the plugin";
    create_table_as_select_from_another: "create-as-select" => "table \"accounts__user\" is outside";
    insert_select_from_another: "subquery-read" => "table \"accounts__user\" is outside";
    read_the_ledger: "read-ledger" => "table \"_wasmig_ledger\" is outside";
    read_dbstat: "read-dbstat" => "table \"dbstat\" is outside";
    read_dbstat_as_a_function: "read-dbstat-fn" => "table \"dbstat\" is outside";
    read_raw_pages: "read-dbpage" => "table \"sqlite_dbpage\" is outside";
    read_raw_pages_as_a_function: "read-dbpage-fn" => "table \"sqlite_dbpage\" is outside";
    overwrite_a_raw_page: "write-dbpage" => "table \"sqlite_dbpage\" is outside";
    delete_the_ledger: "write-ledger" => "table \"_wasmig_ledger\" is outside";
    forge_applied_state: "write-applied" => "table \"_wasmig_applied\" is outside";
    drop_the_ledger: "drop-ledger" => "table \"_wasmig_ledger\" is outside";
    read_stored_components: "read-components" => "table \"_wasmig_component\" is outside";
    attach_a_database_file: "attach" => "ATTACH is not available to plugins";
    attach_memory: "attach-memory" => "ATTACH is not available to plugins";
    detach_main: "detach" => "DETACH is not available to plugins";
    vacuum: "vacuum" => "VACUUM is not available to plugins";
    pragma_writable_schema: "writable-schema" => "PRAGMA writable_schema is not available";
    pragma_on_another_plugins_table: "pragma-other" => "PRAGMA table_info is not available";
    pragma_foreign_keys: "pragma-foreign-keys" => "PRAGMA foreign_keys is not available";
    pragma_journal_mode: "pragma-journal" => "PRAGMA journal_mode is not available";
    load_extension: "load-extension" => "function load_extension() is not available";
    commit_the_hosts_transaction: "commit" => "transaction control is the host's";
    roll_back_the_hosts_transaction: "rollback" => "transaction control is the host's";
    begin_a_transaction: "begin" => "transaction control is the host's";
    savepoint: "savepoint" => "transaction control is the host's";
    release_a_savepoint: "release" => "transaction control is the host's";
    hostile_statement_late_in_a_batch: "batch-later-statement" => "table \"accounts__user\" is outside";
    upper_case_name: "upper-case" => OUTSIDE_CI;
    mixed_case_name: "mixed-case" => OUTSIDE_CI;
    double_quoted_name: "double-quoted" => OUTSIDE_CI;
    bracket_quoted_name: "bracket-quoted" => OUTSIDE_CI;
    backtick_quoted_name: "backtick-quoted" => OUTSIDE_CI;
    main_qualified_name: "main-qualified" => OUTSIDE_CI;
    quoted_qualified_name: "quoted-qualified" => OUTSIDE_CI;
    temp_table_shadowing_another_plugins_table: "temp-shadow" => "table \"accounts__user\" is outside";
    temp_qualified_table_in_another_namespace: "temp-qualified" => "table \"accounts__user\" is outside";
    read_the_schema_of_every_plugin: "schema-table" => "lists every plugin's schema";
    panic: "panic" => "evil panics on purpose";
    writes_then_an_error: "write-then-fail" => "failing after writes";
}

/// What the case and quoting variations must all come down to.
const OUTSIDE_CI: &str = "\"accounts__user\" is outside plugin evil's namespace";

#[test]
fn vacuum_into_writes_no_file() {
    let err = attack_fails("vacuum-into", &[], "VACUUM is not available to plugins");
    assert!(err.contains("evil"), "{err}");
    // The attack would have written evil-copy.db in the directory wasmig runs in.
    let env = armed("vacuum-into");
    env.fails(&["up"]);
    assert!(!env.dir.path().join("evil-copy.db").exists());
    assert!(!env.dir.path().join("evil-attached.db").exists());
}

#[test]
fn attach_creates_no_file() {
    let env = armed("attach");
    env.fails(&["up"]);
    assert!(!env.dir.path().join("evil-attached.db").exists());
}

#[test]
fn a_namespace_squatter_is_confined_to_its_own_namespace() {
    // accounts-user owns accounts_user__*; accounts owns accounts__*. Neither prefix is a
    // prefix of the other, so the squatter's second step cannot create accounts__user_extra.
    let env = Env::new();
    env.add(artifacts::ACCOUNTS, "accounts.wasm");
    env.add(artifacts::SQUATTER, "squatter.wasm");
    let err = env.fails(&["up"]);
    assert!(
        err.contains("table \"accounts__user_extra\" is outside plugin accounts-user's namespace"),
        "{err}"
    );
    let tables = env.tables();
    assert!(tables.contains(&"accounts_user__profile".to_string()));
    assert!(!tables.contains(&"accounts__user_extra".to_string()));
}

#[test]
fn outside_is_the_common_message() {
    // Keeps the macro's shared expectation honest: it is a real fragment of the message.
    assert!(OUTSIDE_CI.ends_with(OUTSIDE));
}

// --- the statement cache --------------------------------------------------------------------

/// A statement prepared earlier in the same run for another plugin (same text, authorized for
/// that plugin's scope) is never handed to the next plugin: it is prepared and authorized
/// again, for the plugin that runs it now.
#[test]
fn a_statement_cached_for_another_plugin_is_not_reused() {
    let env = armed("reuse-cached-insert");
    env.add(artifacts::BENCH_ROWS, "bench.wasm");
    env.ok(&["up", "bench@0.1.0"]);
    env.conn()
        .execute("INSERT INTO bench__config VALUES ('single', 3)", [])
        .unwrap();

    // One process: bench 0.2.0 runs the INSERT through `execute` (cached), then evil 0.2.0
    // runs the very same text.
    let err = env.fails(&["up"]);
    assert!(err.contains("plugin evil migration 0.2.0"), "{err}");
    assert!(
        err.contains("access denied") && err.contains("bench__item"),
        "{err}"
    );
    let tail: Vec<(String, String, String)> = env
        .ledger()
        .into_iter()
        .rev()
        .take(2)
        .map(|(p, v, _, o, _)| (p, v, o))
        .collect();
    assert_eq!(
        tail,
        [
            ("evil".into(), "0.2.0".into(), "failed".into()),
            ("bench".into(), "0.2.0".into(), "succeeded".into()),
        ],
        "bench ran first in the same run, so its statement was in the cache"
    );
    let ids: Vec<i64> = env.column("SELECT id FROM bench__item ORDER BY id");
    assert_eq!(ids, [0, 1, 2], "only bench's own rows");
}

attacks! {
    an_empty_execute_many_is_still_authorized: "empty-many-other" => "table \"accounts__user\" is outside";
    an_empty_raw_batch_is_still_authorized: "empty-batch-other" => "table \"accounts__user\" is outside";
    packed_parameters_are_authorized_like_any_others: "packed-other" => "table \"accounts__user\" is outside";
    a_packed_value_with_an_unknown_tag_is_refused: "packed-bad-tag" => "malformed packed parameters: unknown tag 9 at byte 9 of 10";
    a_packed_text_longer_than_its_bytes_is_refused: "packed-cut-short" => "malformed packed parameters: a text or blob longer than the bytes left at byte 0 of 6";
    a_packed_text_not_in_utf8_is_refused: "packed-not-utf8" => "malformed packed parameters: text not UTF-8 at byte 0 of 6";
    a_packed_batch_over_the_limit_is_refused: "packed-too-many" => "a packed call takes at most 1048576 values";
    a_ragged_packed_batch_is_refused_whole: "packed-ragged" => "execute-batch-packed got 7 values, which is not a whole number of rows of 4";
    reusing_a_statement_the_host_cached_is_denied: "reuse-host-statement" => "_wasmig_component";
    executing_a_statement_the_host_cached_is_denied: "reuse-host-execute" => "table \"_wasmig_applied\" is outside";
    a_sent_batch_is_authorized_like_any_other: "sent-other" => "table \"accounts__user\" is outside";
    a_sent_batch_never_collected_still_fails_the_step: "sent-unread" => "a batch the step sent failed: access denied: table \"accounts__user\" is outside";
    a_sent_ragged_batch_is_reported_by_the_next_call: "sent-ragged" => "send-batch-packed got 1 values, which is not a whole number of rows of 2";
    a_sent_malformed_batch_is_refused: "sent-bad-tag" => "malformed packed parameters: unknown tag 9 at byte 0 of 1";
}
