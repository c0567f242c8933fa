//! {{ description }}: fills {{ column }} of {{ table }} where it is NULL, row by row, in Rust.
//! The down step empties what the up step filled.

use wasmig_guest::{Result, Tx, Value};

/// Stands for this code in the step's checksum: change it when what the code does changes.
pub const REVISION: &str = "1";

pub fn up(tx: &Tx) -> Result<()> {
    let rows = tx.query(
        "SELECT {{ key }} FROM {{ table }} WHERE {{ column }} IS NULL ORDER BY {{ key }}",
        &[],
    )?;
    let mut batch = tx.batch("UPDATE {{ table }} SET {{ column }} = ?1 WHERE {{ key }} = ?2");
    for row in &rows {
        let key: i64 = row.get("{{ key }}")?;
        // The value to derive for each row: replace with what the column should hold.
        let value = format!("{{ column }}-{key}");
        batch.row([Value::from(value), Value::from(key)])?;
    }
    batch.finish()?;
    Ok(())
}

pub fn down(tx: &Tx) -> Result<()> {
    tx.execute("UPDATE {{ table }} SET {{ column }} = NULL", &[])?;
    Ok(())
}
