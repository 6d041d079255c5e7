//! Pure audit logic: what a record holds and how it is derived from what the
//! proxy reports. Nothing here calls the host.

pub mod build;
pub mod identity;
pub mod jwt;
pub mod policy;
pub mod record;
pub mod redact;
pub mod sample;
pub mod time;

pub use crate::digest::hex;
