//! The wasmig plugin `{{ name }}`. Its steps are the files in `migrations/`: SQL
//! (`<version>-<slug>.up.sql`, with `.down.sql` to undo it) and code (`<version>-<slug>.rs`).
//! Its tables, indexes, views and triggers are named `{{ namespace }}*`.

wasmig_guest::plugin! {
    migrations: "migrations",
}
