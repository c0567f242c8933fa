//! The data wasmig reads from plugins, which a plugin controls entirely: its manifest (lifted
//! from `manifest()` or read from its declaration), the declaration section, and SQL values
//! packed into bytes. Each decoder here takes untrusted bytes and either returns a value or an
//! error naming what is wrong; none panics, allocates beyond what its input justifies, or
//! reaches anything else. The host uses them, and `fuzz/` runs them on arbitrary input.

//!
//! Without the default `decode` feature only what the guest SDK shares with the host is
//! built: [`checksum`] and [`section`].

#![deny(missing_docs)]

pub mod checksum;
#[cfg(feature = "decode")]
pub mod declaration;
#[cfg(feature = "decode")]
pub mod manifest;
#[cfg(feature = "decode")]
pub mod packed;
pub mod section;
