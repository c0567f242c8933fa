//! A plugin whose steps run the SQL a test writes into its own table, for the sandbox tests:
//! the test plays a hostile author (or an honest one) step by step. The plugin is named after
//! its crate (`attacker`; `victim` and `reader` include this file, and `reader` asks to read
//! `victim`'s tables), and owns `<name>__*`.
//!
//! Step 0.1.0 creates `<name>__script (version, up, down)`. Each later step runs the `up` (or,
//! rolled back, the `down`) script of its version from that table, and does nothing when there
//! is none. A script starting `-- query` is one query; one starting `-- each` is statements
//! run one call each, between `-- next` lines, one of them starting `-- caught` has its error
//! dropped, and one `-- spin N` runs the plugin's own code for N milliseconds.

include!("scripted.rs");
