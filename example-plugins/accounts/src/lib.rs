//! Example plugin: user accounts and their roles. Pure SQL migrations, declared at compile
//! time: wasmig runs them without compiling the plugin.

use wasmig_guest::{StaticMigration, StaticPlugin};

const PLUGIN: StaticPlugin = StaticPlugin::new("accounts", "0.2.0")
    .description("User accounts and roles")
    .migrations(&[
        StaticMigration::sql(
            "0.1.0",
            "create users",
            include_str!("../migrations/0.1.0-users.up.sql"),
        )
        .down_sql(include_str!("../migrations/0.1.0-users.down.sql")),
        StaticMigration::sql(
            "0.2.0",
            "display names and roles",
            include_str!("../migrations/0.2.0-profiles.up.sql"),
        )
        .down_sql(include_str!("../migrations/0.2.0-profiles.down.sql")),
    ]);

wasmig_guest::export_static_plugin!(PLUGIN);
