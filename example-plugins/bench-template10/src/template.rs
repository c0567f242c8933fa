// Shared by bench-template10 and bench-template20: a plugin whose name the benchmark patches
// in the compiled component (same length), making many distinct plugins from one build. Its
// SQL is built from the name at run time, so the patch changes both.

use wasmig_guest::{Migration, Plugin};

/// Patched by the benchmark: exactly 16 bytes, appearing once in the component.
const NAME: &str = "zbenchplaceholdr";

fn plugin() -> Plugin {
    let ns = format!("{}__", NAME.replace('-', "_"));
    let mut p = Plugin::new(NAME, &format!("1.{STEPS}.0")).description("benchmark template");
    for i in 1..=STEPS {
        let sql = format!(
            "CREATE TABLE {ns}t{i} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER);
             CREATE INDEX {ns}t{i}_name ON {ns}t{i} (name);
             INSERT INTO {ns}t{i} (id, name, n) VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3);"
        );
        p = p.migration(Migration::sql(&format!("1.{i}.0"), &format!("table {i}"), &sql));
    }
    p
}

wasmig_guest::export_plugin!(plugin);
