//! Example plugin: user accounts and their roles. Pure SQL migrations from `migrations/`,
//! embedded at compile time: wasmig runs them without compiling the plugin.

wasmig_guest::plugin! {
    description: "User accounts and roles",
    migrations: "migrations",
}
