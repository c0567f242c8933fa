// The scripted plugin's code, included by `attacker` and `victim` under their own names.

use wasmig_guest::{Migration, Plugin, Result, Tx, params};

const NAME: &str = env!("CARGO_PKG_NAME");

fn run(tx: &Tx, version: &str, column: &str) -> Result<()> {
    let rows = tx.query(
        &format!("SELECT {column} FROM {NAME}__script WHERE version = ?1"),
        params![version],
    )?;
    let script: Option<String> = match rows.get(0) {
        Some(row) => row.get(column)?,
        None => None,
    };
    match script {
        // Statements one `execute` each (a query, marked so, one `query`), in order, between
        // `-- next` lines: the same text can run twice in one step.
        // A statement marked `-- caught` has its error dropped, as a plugin that handles an
        // error and goes on; `-- spin N` runs the plugin's own code for N milliseconds.
        Some(script) if script.starts_with("-- each\n") => {
            for statement in script["-- each\n".len()..].split("\n-- next\n") {
                if let Some(ms) = statement.strip_prefix("-- spin ") {
                    let ms: u64 = ms.trim().parse().unwrap_or(0);
                    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
                    while std::time::Instant::now() < until {}
                    continue;
                }
                let (caught, statement) = match statement.strip_prefix("-- caught\n") {
                    Some(rest) => (true, rest),
                    None => (false, statement),
                };
                let ran = match statement.strip_prefix("-- query\n") {
                    Some(query) => tx.query(query, &[]).map(|_| ()),
                    None => tx.execute(statement, &[]).map(|_| ()),
                };
                if !caught {
                    ran?;
                }
            }
            Ok(())
        }
        // A query whose rows the step reads (and drops), as a plugin reads its own data.
        Some(script) => match script.strip_prefix("-- query\n") {
            Some(query) => tx.query(query, &[]).map(|_| ()),
            None => tx.execute_script(&script),
        },
        None => Ok(()),
    }
}

macro_rules! steps {
    ($($version:literal => $up:ident, $down:ident;)*) => {
        $(
            fn $up(tx: &Tx) -> Result<()> {
                run(tx, $version, "up")
            }
            fn $down(tx: &Tx) -> Result<()> {
                run(tx, $version, "down")
            }
        )*
        const STEPS: &[(&str, fn(&Tx) -> Result<()>, fn(&Tx) -> Result<()>)] =
            &[$(($version, $up, $down)),*];
    };
}

steps! {
    "0.2.0" => up_2, down_2;
    "0.3.0" => up_3, down_3;
    "0.4.0" => up_4, down_4;
    "0.5.0" => up_5, down_5;
    "0.6.0" => up_6, down_6;
}

fn plugin() -> Plugin {
    let mut plugin = Plugin::new(NAME, "0.6.0")
        .description("Runs the SQL its script table holds")
        .migration(
            Migration::sql(
                "0.1.0",
                "the script table",
                &format!("CREATE TABLE {NAME}__script (version TEXT PRIMARY KEY, up TEXT, down TEXT)"),
            )
            .down_sql(&format!("DROP TABLE {NAME}__script")),
        );
    if NAME == "reader" || NAME == "watcher" {
        plugin = plugin.reads("victim");
    }
    for (version, up, down) in STEPS {
        plugin = plugin.migration(
            Migration::code(version, "scripted", "scripted-v1", *up).down_code("scripted-v1", *down),
        );
    }
    plugin
}

wasmig_guest::export_plugin!(plugin);
