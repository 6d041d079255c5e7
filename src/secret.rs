//! Key material read from the VM's environment (chain key, hash key): never
//! printed, wiped from memory when dropped.

use zeroize::Zeroizing;

/// Secret bytes. `Debug` shows nothing of them, so a configuration (or
/// anything holding one) can be logged or printed by a failing test without
/// leaking the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Secret {
        Secret::new(bytes)
    }
}

/// The key bytes, for the code that feeds them to a MAC.
impl std::ops::Deref for Secret {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let s = Secret::new(b"hunter2-chain-key".to_vec());
        let shown = format!("{s:?} {s:#?} {:?}", Some(&s));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("104"), "{shown}"); // not even as numbers
        assert_eq!(&*s, b"hunter2-chain-key");
    }
}
