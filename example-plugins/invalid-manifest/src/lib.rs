//! A manifest with an invalid name, a version that is not semver, and a dependency
//! requirement that does not parse.

use wasmig_guest::{Migration, Plugin};

fn plugin() -> Plugin {
    Plugin::new("Invalid_Name", "one point oh")
        .depends_on("accounts", "about two")
        .migration(Migration::sql("0.1.0", "never runs", "SELECT 1"))
}

wasmig_guest::export_plugin!(plugin);
