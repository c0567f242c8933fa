//! Example plugin: notes owned by accounts. Two SQL steps, then a code step that reads every
//! note and writes derived rows (a slug and a word count): a backfill.

wasmig_guest::plugin! {
    version: "0.3.0",
    description: "Notes attached to accounts",
    depends_on: ["accounts" = "^0.2"],
    migrations: "migrations",
}
