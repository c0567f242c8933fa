//! A plugin whose second migration creates a table, writes rows, then fails: wasmig must roll
//! the whole step back and record the failure.

use wasmig_guest::{Error, Migration, Plugin, Result, Tx};

fn write_then_fail(tx: &Tx) -> Result<()> {
    tx.execute_script(
        "CREATE TABLE failing__partial (id INTEGER PRIMARY KEY);
         INSERT INTO failing__partial (id) VALUES (1), (2), (3);
         INSERT INTO failing__ok (id) VALUES (42);",
    )?;
    Err(Error::other("deliberate failure after writing rows"))
}

fn plugin() -> Plugin {
    Plugin::new("failing", "0.2.0")
        .description("Fails in its second migration")
        .migration(Migration::sql(
            "0.1.0",
            "a step that works",
            "CREATE TABLE failing__ok (id INTEGER PRIMARY KEY)",
        ))
        .migration(Migration::code(
            "0.2.0",
            "a step that fails",
            "fail-v1",
            write_then_fail,
        ))
}

wasmig_guest::export_plugin!(plugin);
