//! `reporting` asks to read `accounts`' tables (the operator must grant it in wasmig.toml).
//! Its first step reads them; its second tries to write to them, which a read grant never
//! allows.

wasmig_guest::plugin! {
    version: "0.2.0",
    description: "Summaries of other plugins' data",
    depends_on: ["accounts" = ">=0.1"],
    reads: ["accounts"],
    migrations: "migrations",
}
