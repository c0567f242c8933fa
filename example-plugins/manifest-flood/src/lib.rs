//! A plugin whose code (it carries no declaration) answers `manifest()` with 600,000 steps,
//! past what a plugin may declare: the host refuses it without holding the list whole.

use wasmig_guest::{Migration, Plugin};

fn plugin() -> Plugin {
    let mut plugin = Plugin::new("flood", "0.1.0");
    for i in 0..600_000u32 {
        plugin = plugin.migration(Migration::sql(&format!("0.0.{i}"), "a step", "SELECT 1"));
    }
    plugin
}

wasmig_guest::export_plugin!(plugin);
