//! The hostile-plugin suite: the plugin `evil` runs one attack per test. Each attack must fail
//! with its specific error, change nothing outside `evil__*` (a full dump of the database is
//! compared, only the ledger may gain the failure row), and leave the host able to migrate a
//! well-behaved plugin afterwards. Every attack runs on SQLite and on PostgreSQL; the
//! attacks specific to PostgreSQL are in `postgres.rs`.

use crate::support::{Env, artifacts};

/// Sets up `accounts` 0.1.0 with one user and `evil` with `attack` chosen, on SQLite.
pub fn armed(attack: &str) -> Env {
    armed_on(Env::new(), artifacts::HOSTILE, attack)
}

/// [`armed`] with `evil` from the component `hostile` (a build of the hostile plugin), on
/// the database of `env` (SQLite or PostgreSQL).
pub fn armed_on(env: Env, hostile: &str, attack: &str) -> Env {
    env.add(artifacts::ACCOUNTS_V1, "accounts.wasm");
    env.add(hostile, "evil.wasm");
    env.ok(&["up", "accounts"]);
    env.ok(&["up", "evil@0.1.0"]);
    env.exec(&format!(
        "INSERT INTO accounts__user (id, email) VALUES (1, 'victim@example.com');
         INSERT INTO evil__attack (name) VALUES ('{}');",
        attack.replace('\'', "''")
    ));
    env
}

/// Runs the armed attack on SQLite; asserts it failed with `expected` in the error, that
/// nothing but the ledger changed, and that a well-behaved plugin still migrates. Returns the
/// error.
pub fn attack_fails(attack: &str, extra: &[&str], expected: &str) -> String {
    attack_fails_on(Env::new(), artifacts::HOSTILE, attack, extra, expected)
}

/// [`attack_fails`], with `evil` from the component `hostile`.
pub fn attack_fails_with(hostile: &str, attack: &str, extra: &[&str], expected: &str) -> String {
    attack_fails_on(Env::new(), hostile, attack, extra, expected)
}

/// [`attack_fails_with`] on the database of `env` (SQLite or PostgreSQL).
pub fn attack_fails_on(
    env: Env,
    hostile: &str,
    attack: &str,
    extra: &[&str],
    expected: &str,
) -> String {
    let env = armed_on(env, hostile, attack);
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

/// What an attack written in SQLite's terms comes to on PostgreSQL, where what SQLite's
/// authorizer refuses by name is refused by the server's privileges and the guard (or is not
/// PostgreSQL at all).
pub enum OnPg {
    /// It fails as completely as on SQLite, with this in its error.
    Fails(&'static str),
    /// It is not an attack there, for the reason given: the step succeeds and no plugin's
    /// objects or rows change.
    Harmless(&'static str),
}

/// Runs the armed attack on PostgreSQL as `expected` says.
pub fn attack_on_postgres(attack: &str, expected: OnPg) {
    match expected {
        OnPg::Fails(expected) => {
            attack_fails_on(Env::postgres(), artifacts::HOSTILE, attack, &[], expected);
        }
        OnPg::Harmless(_why) => {
            let env = armed_on(Env::postgres(), artifacts::HOSTILE, attack);
            let before = env.dump();
            env.ok(&["up"]);
            assert_eq!(
                env.dump(),
                before,
                "attack {attack} changed the plugins' data"
            );
        }
    }
}

/// One test per attack, on both databases: `name: "attack" => what SQLite's error says,
/// what it comes to on PostgreSQL ([`OnPg`]);`.
macro_rules! attacks {
    ($($test:ident: $attack:literal => $expected:expr, $pg:expr;)*) => {$(
        mod $test {
            use super::*;

            #[test]
            fn sqlite() {
                attack_fails_on(Env::new(), artifacts::HOSTILE, $attack, &[], $expected);
            }

            #[test]
            fn postgres() {
                attack_on_postgres($attack, $pg);
            }
        }
    )*};
}

const OUTSIDE: &str = "is outside plugin evil's namespace";

use OnPg::{Fails, Harmless};

attacks! {
    read_another_plugins_table: "read-other" => "table \"accounts__user\" is outside plugin evil's namespace or does not exist",
        Fails("relation \"accounts__user\" does not exist");
    insert_into_another_plugins_table: "write-other" => "table \"accounts__user\" is outside plugin evil's namespace",
        Fails("relation \"accounts__user\" does not exist");
    update_another_plugins_table: "update-other" => "table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    delete_from_another_plugins_table: "delete-other" => "table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    drop_another_plugins_table: "drop-other" => "table \"accounts__user\" is outside",
        Fails("table \"accounts__user\" does not exist");
    alter_another_plugins_table: "alter-other" => "table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    rename_another_plugins_table: "rename-other" => "table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    rename_own_table_into_another_namespace: "rename-into-other" => "table \"accounts__planted\" is outside",
        Fails("the step created table evil.accounts__planted, which is not named evil__*");
    index_on_another_plugins_table: "index-on-other" => "table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    index_named_in_another_namespace: "index-named-other" => "index \"accounts__idx\" is outside",
        Fails("the step created index evil.accounts__idx, which is not named evil__*");
    trigger_on_another_plugins_table: "trigger-on-other" => "table \"accounts__user\" is outside",
        Fails("syntax error at or near \"BEGIN\"");
    trigger_that_writes_another_plugins_table: "trigger-writes-other" => "trigger \"evil__trg\" does not compile as plugin evil's own object",
        Fails("syntax error at end of input");
    temp_trigger_on_another_plugins_table: "temp-trigger-on-other" => "table \"accounts__user\" is outside",
        Fails("syntax error at or near \"TRIGGER\"");
    view_over_another_plugins_table: "view-over-other" => "view \"evil__v\" does not compile as plugin evil's own object",
        Fails("relation \"accounts__user\" does not exist");
    virtual_table_in_another_namespace: "vtable-named-other" => "virtual table \"accounts__search\" is outside",
        Fails("syntax error at or near \"VIRTUAL\"");
    temp_view_over_another_plugins_table: "temp-view-over-other" => "view \"evil__v\" does not compile as plugin evil's own object",
        Fails("relation \"accounts__user\" does not exist");
    create_table_as_select_from_another: "create-as-select" => "table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    insert_select_from_another: "subquery-read" => "table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    read_the_ledger: "read-ledger" => "table \"_wasmig_ledger\" is outside",
        Fails("relation \"_wasmig_ledger\" does not exist");
    read_dbstat: "read-dbstat" => "table \"dbstat\" is outside",
        Fails("relation \"dbstat\" does not exist");
    read_dbstat_as_a_function: "read-dbstat-fn" => "table \"dbstat\" is outside",
        Fails("function dbstat(unknown) does not exist");
    read_raw_pages: "read-dbpage" => "table \"sqlite_dbpage\" is outside",
        Fails("relation \"sqlite_dbpage\" does not exist");
    read_raw_pages_as_a_function: "read-dbpage-fn" => "table \"sqlite_dbpage\" is outside",
        Fails("function sqlite_dbpage(unknown) does not exist");
    overwrite_a_raw_page: "write-dbpage" => "table \"sqlite_dbpage\" is outside",
        Fails("relation \"sqlite_dbpage\" does not exist");
    delete_the_ledger: "write-ledger" => "table \"_wasmig_ledger\" is outside",
        Fails("relation \"_wasmig_ledger\" does not exist");
    forge_applied_state: "write-applied" => "table \"_wasmig_applied\" is outside",
        Fails("relation \"_wasmig_applied\" does not exist");
    drop_the_ledger: "drop-ledger" => "table \"_wasmig_ledger\" is outside",
        Fails("table \"_wasmig_ledger\" does not exist");
    read_stored_components: "read-components" => "table \"_wasmig_component\" is outside",
        Fails("relation \"_wasmig_component\" does not exist");
    attach_a_database_file: "attach" => "ATTACH is not available to plugins",
        Fails("a plugin's statement may not be ATTACH");
    attach_memory: "attach-memory" => "ATTACH is not available to plugins",
        Fails("a plugin's statement may not be ATTACH");
    detach_main: "detach" => "DETACH is not available to plugins",
        Fails("a plugin's statement may not be DETACH");
    vacuum: "vacuum" => "VACUUM is not available to plugins",
        Fails("a plugin's statement may not be VACUUM");
    pragma_writable_schema: "writable-schema" => "PRAGMA writable_schema is not available",
        Fails("a plugin's statement may not be PRAGMA");
    pragma_on_another_plugins_table: "pragma-other" => "PRAGMA table_info is not available",
        Fails("a plugin's statement may not be PRAGMA");
    pragma_foreign_keys: "pragma-foreign-keys" => "PRAGMA foreign_keys is not available",
        Fails("a plugin's statement may not be PRAGMA");
    pragma_journal_mode: "pragma-journal" => "PRAGMA journal_mode is not available",
        Fails("a plugin's statement may not be PRAGMA");
    load_extension: "load-extension" => "function load_extension() is not available",
        Fails("function load_extension(unknown) does not exist");
    commit_the_hosts_transaction: "commit" => "transaction control is the host's",
        Fails("a plugin's statement may not be COMMIT");
    roll_back_the_hosts_transaction: "rollback" => "transaction control is the host's",
        Fails("a plugin's statement may not be ROLLBACK");
    begin_a_transaction: "begin" => "transaction control is the host's",
        Fails("a plugin's statement may not be BEGIN");
    savepoint: "savepoint" => "transaction control is the host's",
        Fails("a plugin's statement may not be SAVEPOINT");
    release_a_savepoint: "release" => "transaction control is the host's",
        Fails("a plugin's statement may not be SAVEPOINT");
    hostile_statement_late_in_a_batch: "batch-later-statement" => "table \"accounts__user\" is outside",
        Fails("table \"accounts__user\" does not exist");
    upper_case_name: "upper-case" => OUTSIDE_CI,
        Fails("table \"accounts__user\" does not exist");
    mixed_case_name: "mixed-case" => OUTSIDE_CI,
        Fails("relation \"accounts__user\" does not exist");
    double_quoted_name: "double-quoted" => OUTSIDE_CI,
        Fails("relation \"accounts__user\" does not exist");
    bracket_quoted_name: "bracket-quoted" => OUTSIDE_CI,
        Fails("syntax error at or near \"[\"");
    backtick_quoted_name: "backtick-quoted" => OUTSIDE_CI,
        Fails("syntax error at or near \"`\"");
    main_qualified_name: "main-qualified" => OUTSIDE_CI,
        Fails("relation \"main.accounts__user\" does not exist");
    quoted_qualified_name: "quoted-qualified" => OUTSIDE_CI,
        Fails("relation \"main.Accounts__User\" does not exist");
    temp_table_shadowing_another_plugins_table: "temp-shadow" => "table \"accounts__user\" is outside",
        Harmless("a temporary table is the plugin session's own and ends with the step");
    temp_qualified_table_in_another_namespace: "temp-qualified" => "table \"accounts__user\" is outside",
        Fails("schema \"temp\" does not exist");
    read_the_schema_of_every_plugin: "schema-table" => "lists every plugin's schema",
        Fails("relation \"sqlite_schema\" does not exist");
    panic: "panic" => "evil panics on purpose",
        Fails("plugin evil 0.2.0 trapped (unreachable code reached");
    writes_then_an_error: "write-then-fail" => "failing after writes",
        Fails("failing after writes");
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
    an_empty_execute_many_is_still_authorized: "empty-many-other" => "table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    an_empty_raw_batch_is_still_authorized: "empty-batch-other" => "table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    packed_parameters_are_authorized_like_any_others: "packed-other" => "table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    a_packed_value_with_an_unknown_tag_is_refused: "packed-bad-tag" => "malformed packed parameters: unknown tag 9 at byte 9 of 10",
        Fails("malformed packed parameters: unknown tag 9 at byte 9 of 10");
    a_packed_text_longer_than_its_bytes_is_refused: "packed-cut-short" => "malformed packed parameters: a text or blob longer than the bytes left at byte 0 of 6",
        Fails("malformed packed parameters: a text or blob longer than the bytes left at byte 0 of 6");
    a_packed_text_not_in_utf8_is_refused: "packed-not-utf8" => "malformed packed parameters: text not UTF-8 at byte 0 of 6",
        Fails("malformed packed parameters: text not UTF-8 at byte 0 of 6");
    a_packed_batch_over_the_limit_is_refused: "packed-too-many" => "a packed call takes at most 1048576 values",
        Fails("limit reached: a packed call takes at most 1048576 values");
    a_ragged_packed_batch_is_refused_whole: "packed-ragged" => "execute-batch-packed got 7 values, which is not a whole number of rows of 4",
        Fails("SQL error: execute-batch-packed got 7 values, which is not a whole number of rows of 4");
    reusing_a_statement_the_host_cached_is_denied: "reuse-host-statement" => "_wasmig_component",
        Fails("relation \"_wasmig_component\" does not exist");
    executing_a_statement_the_host_cached_is_denied: "reuse-host-execute" => "table \"_wasmig_applied\" is outside",
        Fails("relation \"_wasmig_applied\" does not exist");
    a_sent_batch_is_authorized_like_any_other: "sent-other" => "table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    a_sent_batch_never_collected_still_fails_the_step: "sent-unread" => "a batch the step sent failed: access denied: table \"accounts__user\" is outside",
        Fails("relation \"accounts__user\" does not exist");
    a_sent_ragged_batch_is_reported_by_the_next_call: "sent-ragged" => "send-batch-packed got 1 values, which is not a whole number of rows of 2",
        Fails("SQL error: send-batch-packed got 1 values, which is not a whole number of rows of 2");
    a_sent_malformed_batch_is_refused: "sent-bad-tag" => "malformed packed parameters: unknown tag 9 at byte 0 of 1",
        Fails("malformed packed parameters: unknown tag 9 at byte 0 of 1");
}
