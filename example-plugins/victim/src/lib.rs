//! `attacker`'s code under the name `victim` (see `attacker/src/lib.rs`).

include!("../../attacker/src/scripted.rs");
