//! Packed SQL values, as a plugin passes them to `execute-packed` and the batch calls: decoding
//! either fails or gives at most the values asked for, each borrowed from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmig_format::packed::{ValueRef, unpack};

fuzz_target!(|data: &[u8]| {
    let max = 1 + data.first().copied().unwrap_or(0) as usize;
    let mut out = Vec::new();
    if unpack(data, &mut out, max).is_ok() {
        assert!(out.len() <= max);
        let borrowed: usize = out
            .iter()
            .map(|v| match v {
                ValueRef::Text(t) => t.len(),
                ValueRef::Blob(b) => b.len(),
                _ => 0,
            })
            .sum();
        assert!(borrowed <= data.len());
    }
});
