//! Example plugin: user accounts and their roles. Pure SQL migrations.

use wasmig_guest::{Migration, Plugin};

fn plugin() -> Plugin {
    Plugin::new("accounts", "0.2.0")
        .description("User accounts and roles")
        .migration(
            Migration::sql(
                "0.1.0",
                "create users",
                include_str!("../migrations/0.1.0-users.up.sql"),
            )
            .down_sql(include_str!("../migrations/0.1.0-users.down.sql")),
        )
        .migration(
            Migration::sql(
                "0.2.0",
                "display names and roles",
                include_str!("../migrations/0.2.0-profiles.up.sql"),
            )
            .down_sql(include_str!("../migrations/0.2.0-profiles.down.sql")),
        )
}

wasmig_guest::export_plugin!(plugin);
