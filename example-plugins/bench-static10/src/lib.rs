//! Benchmark template, declared: the SQL of `bench-template10` (10 migrations) as data, so
//! wasmig never compiles it. The benchmark patches its name (same length) everywhere it
//! appears in the compiled component, making many distinct plugins from one build.

use wasmig_guest::{StaticMigration, StaticPlugin};

/// Patched by the benchmark: exactly 16 bytes.
macro_rules! name {
    () => {
        "zbenchplaceholdr"
    };
}

/// Step `i`: the same statements as `bench-template10`'s (and the refinery baseline's).
macro_rules! step {
    ($i:literal) => {
        StaticMigration::sql(
            concat!("1.", $i, ".0"),
            concat!("table ", $i),
            concat!(
                "CREATE TABLE ",
                name!(),
                "__t",
                $i,
                " (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER);\n",
                "CREATE INDEX ",
                name!(),
                "__t",
                $i,
                "_name ON ",
                name!(),
                "__t",
                $i,
                " (name);\n",
                "INSERT INTO ",
                name!(),
                "__t",
                $i,
                " (id, name, n) VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3);"
            ),
        )
    };
}

const PLUGIN: StaticPlugin = StaticPlugin::new(name!(), "1.10.0")
    .description("benchmark template")
    .migrations(&[
        step!(1),
        step!(2),
        step!(3),
        step!(4),
        step!(5),
        step!(6),
        step!(7),
        step!(8),
        step!(9),
        step!(10),
    ]);

wasmig_guest::export_static_plugin!(PLUGIN);
