//! `accounts` 0.3.0 that inserted a migration 0.1.5 between two released ones: on a
//! database where 0.2.0 is applied, 0.1.5 is a gap that must never be skipped silently.

use wasmig_guest::{Migration, Plugin};

fn plugin() -> Plugin {
    Plugin::new("accounts", "0.3.0")
        .description("User accounts and roles")
        .migration(
            Migration::sql(
                "0.1.0",
                "create users",
                include_str!("../../accounts/migrations/0.1.0-create-users.up.sql"),
            )
            .down_sql(include_str!(
                "../../accounts/migrations/0.1.0-create-users.down.sql"
            )),
        )
        .migration(Migration::sql(
            "0.1.5",
            "inserted late",
            "CREATE TABLE accounts__late (id INTEGER)",
        ))
        .migration(
            Migration::sql(
                "0.2.0",
                "display names and roles",
                include_str!("../../accounts/migrations/0.2.0-display-names-and-roles.up.sql"),
            )
            .down_sql(include_str!(
                "../../accounts/migrations/0.2.0-display-names-and-roles.down.sql"
            )),
        )
        .migration(Migration::sql(
            "0.3.0",
            "sessions",
            "CREATE TABLE accounts__session (id INTEGER PRIMARY KEY)",
        ))
}

wasmig_guest::export_plugin!(plugin);
