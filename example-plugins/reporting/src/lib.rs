//! `reporting` asks to read `accounts`' tables (the operator must grant it in wasmig.toml).
//! Its first step reads them; its second tries to write to them, which a read grant never
//! allows.

use wasmig_guest::{Migration, Plugin};

fn plugin() -> Plugin {
    Plugin::new("reporting", "0.2.0")
        .description("Summaries of other plugins' data")
        .depends_on("accounts", ">=0.1")
        .reads("accounts")
        .migration(Migration::sql(
            "0.1.0",
            "count users",
            "CREATE TABLE reporting__summary AS SELECT count(*) AS users FROM accounts__user",
        ))
        .migration(Migration::sql(
            "0.2.0",
            "write to accounts",
            "UPDATE accounts__user SET email = lower(email)",
        ))
}

wasmig_guest::export_plugin!(plugin);
