//! `accounts-user` owns `accounts_user__*`. With a naive `name_` prefix rule, plugin
//! `accounts` would own `accounts_user_*` too, and this plugin could reach `accounts__user`
//! by name games. Its first step stays in its namespace; its second reaches for accounts'.

use wasmig_guest::{Migration, Plugin};

fn plugin() -> Plugin {
    Plugin::new("accounts-user", "0.2.0")
        .description("Squats next to accounts")
        .migration(Migration::sql(
            "0.1.0",
            "own table",
            "CREATE TABLE accounts_user__profile (id INTEGER PRIMARY KEY)",
        ))
        .migration(Migration::sql(
            "0.2.0",
            "reach into accounts",
            "CREATE TABLE accounts__user_extra (id INTEGER)",
        ))
}

wasmig_guest::export_plugin!(plugin);
