//! `accounts` 0.2.0 whose first migration was edited after release: applied databases see
//! drift on 0.1.0.

use wasmig_guest::{Migration, Plugin};

fn plugin() -> Plugin {
    Plugin::new("accounts", "0.2.0")
        .description("User accounts and roles")
        .migration(
            Migration::sql(
                "0.1.0",
                "create users",
                "CREATE TABLE accounts__user (
                     id         INTEGER PRIMARY KEY,
                     email      TEXT NOT NULL UNIQUE,
                     created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
                     edited     INTEGER  -- added after 0.1.0 was released
                 );",
            )
            .down_sql(include_str!(
                "../../accounts/migrations/0.1.0-create-users.down.sql"
            )),
        )
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
}

wasmig_guest::export_plugin!(plugin);
