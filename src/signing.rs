//! A proxy's Ed25519 signing key (`integrity.signing_key_env`): read from
//! the environment's text, named by its key id, never printed. The seals
//! of `deliver::seal` and the sink's digests are signed with it; the
//! validated configuration holds it.

use crate::digest::{hex, sha256};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

/// Hex digits of a key id.
pub const KEY_ID_HEX_LEN: usize = 16;

/// `key_id`: the first 16 hex digits of SHA-256 of the raw 32-byte public key.
pub fn key_id(public: &VerifyingKey) -> String {
    hex(&sha256(public.as_bytes())[..KEY_ID_HEX_LEN / 2])
}

/// A proxy's signing key. `Debug` shows only its key id.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
    key_id: String,
}

impl Signer {
    pub fn from_seed(seed: &[u8; 32]) -> Signer {
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(&key.verifying_key());
        Signer { key, key_id }
    }

    /// Reads a key as `integrity.signing_key_env` holds it: a PKCS#8 PEM
    /// (`-----BEGIN PRIVATE KEY-----`) or the 32-byte seed in base64. The
    /// error never quotes the value.
    pub fn parse(text: &str) -> Result<Signer, String> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return match SigningKey::from_pkcs8_pem(text) {
                Ok(key) => Ok(Signer {
                    key_id: key_id(&key.verifying_key()),
                    key,
                }),
                Err(_) => Err("is not an Ed25519 private key in PKCS#8 PEM".into()),
            };
        }
        let seed = zeroize::Zeroizing::new(
            <base64ct::Base64 as base64ct::Encoding>::decode_vec(text)
                .map_err(|_| "is neither a PKCS#8 PEM nor a base64 Ed25519 seed".to_string())?,
        );
        match <[u8; 32]>::try_from(seed.as_slice()) {
            Ok(bytes) => Ok(Signer::from_seed(&bytes)),
            Err(_) => Err(format!(
                "decodes to {} bytes; an Ed25519 seed is 32",
                seed.len()
            )),
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The Ed25519 signature of `message` (the sink signs its digests with it).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The private key as PKCS#8 PEM (for `mesh-audit keygen`).
    pub fn to_pkcs8_pem(&self) -> Result<zeroize::Zeroizing<String>, String> {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| format!("cannot encode the key: {e}"))
    }
}

impl PartialEq for Signer {
    fn eq(&self, other: &Signer) -> bool {
        self.key.verifying_key() == other.key.verifying_key()
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer {{ key_id: {:?} }}", self.key_id)
    }
}
