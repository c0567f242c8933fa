//! A declaration section's bytes, as a plugin's component carries them: decoding either fails
//! with a message or gives a declaration whose every step can be looked up and whose manifest
//! validates or is refused, without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmig_format::declaration::Declaration;

fuzz_target!(|data: &[u8]| {
    let Ok(declaration) = Declaration::decode(data) else {
        return;
    };
    let _ = declaration.has_code();
    for migration in &declaration.manifest.migrations {
        if let Ok(version) = semver::Version::parse(&migration.version) {
            let _ = declaration.sql(&version, true);
            let _ = declaration.sql(&version, false);
        }
    }
    let _ = declaration.manifest.clone().validate();
});
