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

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}
