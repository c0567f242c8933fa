//! `attacker`'s code under the name `watcher`, which asks to read `victim`'s tables and,
//! by its name, runs after `victim` in a run (see `attacker/src/lib.rs`).

include!("../../attacker/src/scripted.rs");
