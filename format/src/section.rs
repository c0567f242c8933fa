//! The declaration section's name and encoding version: the guest SDK writes the section,
//! the host reads it ([`crate::declaration`]), and both take these from here.

/// The name of the custom section that carries a plugin's declaration.
pub const SECTION: &str = "wasmig:plugin/declaration@0.1.0";

/// The encoding's version, the section's first byte.
pub const FORMAT: u8 = 1;
