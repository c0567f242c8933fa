//! The `accounts` plugin as it was at version 0.1.0: one migration, the same SQL as today's
//! first step (so the checksums agree). Dropping today's `accounts` over it is an upgrade.

use wasmig_guest::{Migration, Plugin};

fn plugin() -> Plugin {
    Plugin::new("accounts", "0.1.0")
        .description("User accounts")
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
}

wasmig_guest::export_plugin!(plugin);
