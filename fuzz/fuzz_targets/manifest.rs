//! A manifest as a plugin's `manifest()` returns it, lifted: validation either refuses it with
//! reasons or gives a manifest that survives the JSON the host stores it as, unchanged.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wasmig_format::manifest::{Manifest, RawManifest, RawMigration};

#[derive(Arbitrary, Debug)]
struct Lifted {
    name: String,
    version: String,
    description: String,
    depends_on: Vec<(String, String)>,
    reads: Vec<String>,
    migrations: Vec<(String, String, bool, String)>,
}

fuzz_target!(|m: Lifted| {
    let raw = RawManifest {
        name: m.name,
        version: m.version,
        description: m.description,
        depends_on: m.depends_on,
        reads: m.reads,
        migrations: m
            .migrations
            .into_iter()
            .map(
                |(version, description, reversible, checksum)| RawMigration {
                    version,
                    description,
                    reversible,
                    checksum,
                },
            )
            .collect(),
    };
    match raw.validate() {
        Err(reasons) => assert!(!reasons.is_empty()),
        Ok(manifest) => {
            let json = serde_json::to_string(&manifest).unwrap();
            let stored: Manifest = serde_json::from_str(&json).unwrap();
            assert!(manifest.differences(&stored).is_empty());
        }
    }
});
