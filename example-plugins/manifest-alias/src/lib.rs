//! A plugin whose code answers `manifest()` by hand, without the SDK's `Plugin`: its `reads`
//! are 2,000,000 strings that all point at the same byte of its memory. Each costs the plugin
//! 20 bytes (its `String` and its place in the answer); copied into the host, each would be a
//! `String` and an allocation of its own.

use wasmig_guest::__bindings::wasmig::plugin::types::Error;
use wasmig_guest::__private::{Guest, WitManifest};

const STRINGS: usize = 2_000_000;

struct Alias;

impl Guest for Alias {
    fn manifest() -> WitManifest {
        let byte: &'static mut [u8] = Box::leak(Box::new(*b"x"));
        let at = byte.as_mut_ptr();
        // SAFETY: none. Every string owns the same byte, which nothing frees before the host
        // has copied the answer (the host stops copying before it is done).
        let reads = (0..STRINGS)
            .map(|_| unsafe { String::from_raw_parts(at, 1, 1) })
            .collect();
        WitManifest {
            name: "alias".to_string(),
            version: "0.1.0".to_string(),
            description: "strings that all point at one byte".to_string(),
            depends_on: Vec::new(),
            reads,
            migrations: Vec::new(),
        }
    }

    fn up(_: String) -> Result<(), Error> {
        Ok(())
    }

    fn down(_: String) -> Result<(), Error> {
        Ok(())
    }
}

wasmig_guest::__bindings::__export_migration_plugin!(Alias with_types_in wasmig_guest::__bindings);
