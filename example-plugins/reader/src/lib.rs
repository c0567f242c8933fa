//! `attacker`'s code under the name `reader`, which asks to read `victim`'s tables (see
//! `attacker/src/lib.rs`).

include!("../../attacker/src/scripted.rs");
