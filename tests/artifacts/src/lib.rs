//! Paths of the example plugins, compiled to WebAssembly components by this crate's build
//! script. Tests copy them into temporary plugins directories.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
