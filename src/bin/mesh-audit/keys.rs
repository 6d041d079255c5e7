//! Public key files and the keyring (SPEC §5), for `verify` and the sink.
//!
//! The keyring has one key per line, `KEY_ID PUBKEY [PATTERN…]`: the key id
//! (first 16 hex digits of SHA-256 of the raw public key, as seals name it),
//! the public key (raw 32 bytes in hex or base64, or a path to a PEM file,
//! relative to the keyring's directory), and optional patterns (exact, or a
//! prefix ending in `*`) restricting which `destination.principal` values the
//! key may vouch for. Blank lines and lines starting with `#` are ignored.

use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::VerifyingKey;
use mesh_audit::config::PrincipalMatch;
use mesh_audit::deliver::seal::{key_id, Signer};
use std::io;
use std::path::{Path, PathBuf};

/// A public key that cannot be used, as a flag or a keyring line gives it.
#[derive(Debug, thiserror::Error)]
pub enum PublicKeyError {
    #[error("a raw public key is 32 bytes (64 hex digits, or 44 characters of base64)")]
    Length,
    #[error("not a valid Ed25519 public key")]
    Invalid,
    #[error("a weak (small-order) Ed25519 public key: make a new pair with mesh-audit keygen")]
    Weak,
    #[error("{}: {source} (a public key is 64 hex digits, base64 of 32 bytes, or a PEM file)", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: is a private key; the keyring takes public keys (mesh-audit keygen writes both)", .path.display())]
    Private { path: PathBuf },
    #[error("{}: not an Ed25519 public key PEM", .path.display())]
    NotPem { path: PathBuf },
}

/// What is wrong in keyring text.
#[derive(Debug, thiserror::Error)]
pub enum KeyringProblem {
    #[error(
        "line {0}: expected KEY_ID PUBKEY [PATTERN...] (mesh-audit keygen prints such a line)"
    )]
    Shape(usize),
    #[error("line {line}: {source}")]
    PublicKey { line: usize, source: PublicKeyError },
    #[error("line {line}: key id {} does not match its key, whose id is {actual}", crate::escape::text(.id))]
    WrongId {
        line: usize,
        id: String,
        actual: String,
    },
    #[error("line {line}: key {id} is listed twice")]
    Twice { line: usize, id: String },
    #[error("the keyring lists no key: add a line KEY_ID PUBKEY [PATTERN...] per key (mesh-audit keygen prints one)")]
    Empty,
}

/// A keyring file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {problem}", .path.display())]
    Bad {
        path: PathBuf,
        problem: KeyringProblem,
    },
}

/// A private key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrivateKeyError {
    #[error("{}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: {reason}", .path.display())]
    Bad { path: PathBuf, reason: String },
}

/// The sink's setup still reports its errors as text.
impl From<PrivateKeyError> for String {
    fn from(e: PrivateKeyError) -> String {
        e.to_string()
    }
}

/// One trusted public key.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub public: VerifyingKey,
    /// Empty: the key may vouch for any destination.
    pub patterns: Vec<PrincipalMatch>,
    /// The patterns as written, for messages.
    pub shown: Vec<String>,
}

impl Key {
    /// Whether the key may vouch for a record whose destination is
    /// `principal`. A restricted key vouches only for records naming a
    /// matching destination, never for one that names none.
    pub fn may_vouch_for(&self, principal: Option<&str>) -> bool {
        self.patterns.is_empty()
            || principal.is_some_and(|p| self.patterns.iter().any(|m| m.matches(p)))
    }
}

#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// Reads a keyring file; PEM paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyringError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Keyring::parse(&text, base).map_err(|problem| KeyringError::Bad {
            path: path.to_path_buf(),
            problem,
        })
    }

    /// Parses keyring text; the error names the line.
    pub fn parse(text: &str, base: &Path) -> Result<Keyring, KeyringProblem> {
        let mut keys: Vec<Key> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let number = i + 1;
            let mut words = line.split_whitespace();
            let (Some(id), Some(public)) = (words.next(), words.next()) else {
                return Err(KeyringProblem::Shape(number));
            };
            let public =
                parse_public_key(public, base).map_err(|source| KeyringProblem::PublicKey {
                    line: number,
                    source,
                })?;
            let actual = key_id(&public);
            if id != actual {
                return Err(KeyringProblem::WrongId {
                    line: number,
                    id: id.to_string(),
                    actual,
                });
            }
            if keys.iter().any(|k| k.id == actual) {
                return Err(KeyringProblem::Twice {
                    line: number,
                    id: actual,
                });
            }
            let shown: Vec<String> = words.map(str::to_string).collect();
            keys.push(Key {
                id: actual,
                public,
                patterns: shown.iter().map(|p| PrincipalMatch::parse(p)).collect(),
                shown,
            });
        }
        if keys.is_empty() {
            return Err(KeyringProblem::Empty);
        }
        Ok(Keyring { keys })
    }

    pub fn get(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

/// A public key as the keyring or a flag gives it: 64 hex digits, base64 of
/// the 32 raw bytes, or a path (relative to `base`) to a PEM public key.
pub fn parse_public_key(text: &str, base: &Path) -> Result<VerifyingKey, PublicKeyError> {
    let raw = if text.len() == 64 {
        unhex(text)
    } else if text.len() == 44 || text.len() == 43 {
        <base64ct::Base64 as base64ct::Encoding>::decode_vec(text)
            .or_else(|_| <base64ct::Base64Unpadded as base64ct::Encoding>::decode_vec(text))
            .ok()
    } else {
        None
    };
    let public = match raw {
        Some(bytes) => {
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| PublicKeyError::Length)?;
            VerifyingKey::from_bytes(&bytes).map_err(|_| PublicKeyError::Invalid)?
        }
        None => read_public_pem(&base.join(text))?,
    };
    if public.is_weak() {
        return Err(PublicKeyError::Weak);
    }
    Ok(public)
}

fn read_public_pem(path: &Path) -> Result<VerifyingKey, PublicKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PublicKeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if text.contains("PRIVATE KEY-----") {
        return Err(PublicKeyError::Private {
            path: path.to_path_buf(),
        });
    }
    VerifyingKey::from_public_key_pem(text.trim()).map_err(|_| PublicKeyError::NotPem {
        path: path.to_path_buf(),
    })
}

/// The bytes `text` spells in hex digits (either case), or `None` when it is
/// not an even number of them.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16);
            Some((digit(pair[0])? << 4 | digit(pair[1])?) as u8)
        })
        .collect()
}

/// A private key file: PKCS#8 PEM, or the 32-byte seed in base64.
pub fn load_private_key(path: &Path) -> Result<Signer, PrivateKeyError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        PrivateKeyError::Read {
            path: path.to_path_buf(),
            source,
        }
    })?);
    Signer::parse(&text).map_err(|reason| PrivateKeyError::Bad {
        path: path.to_path_buf(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use mesh_audit::audit::hex;
    use mesh_audit::deliver::seal::Signer;

    fn signer(seed: u8) -> Signer {
        Signer::from_seed(&[seed; 32])
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mesh-audit-keys-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_hex_base64_and_pem_keys_with_patterns() {
        let dir = tmp("forms");
        let (a, b, c) = (signer(1), signer(2), signer(3));
        let pem = c
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        std::fs::write(dir.join("c.pub.pem"), pem).unwrap();
        let b64 =
            <base64ct::Base64 as base64ct::Encoding>::encode_string(b.verifying_key().as_bytes());
        let text = format!(
            "# shop namespace\n{} {}\n\n{} {b64} spiffe://cluster.local/ns/shop/*  spiffe://cluster.local/ns/ops/sa/console\n  {} c.pub.pem\n",
            a.key_id(),
            hex(a.verifying_key().as_bytes()),
            b.key_id(),
            c.key_id()
        );
        let ring = Keyring::parse(&text, &dir).unwrap();
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.get(a.key_id()).unwrap().public, a.verifying_key());
        assert_eq!(ring.get(c.key_id()).unwrap().public, c.verifying_key());
        let kb = ring.get(b.key_id()).unwrap();
        assert!(kb.may_vouch_for(Some("spiffe://cluster.local/ns/shop/sa/cart")));
        assert!(kb.may_vouch_for(Some("spiffe://cluster.local/ns/ops/sa/console")));
        assert!(!kb.may_vouch_for(Some("spiffe://cluster.local/ns/ops/sa/other")));
        assert!(
            !kb.may_vouch_for(None),
            "a restricted key never vouches for no destination"
        );
        assert!(ring.get(a.key_id()).unwrap().may_vouch_for(None));
        assert!(ring.get("0000000000000000").is_none());
    }

    #[test]
    fn bad_keyrings_name_the_line_and_the_problem() {
        let dir = tmp("bad");
        let a = signer(1);
        let public = hex(a.verifying_key().as_bytes());
        std::fs::write(
            dir.join("private.pem"),
            a.to_pkcs8_pem().unwrap().as_bytes(),
        )
        .unwrap();
        let cases = [
            (
                format!("{}\n", a.key_id()),
                "line 1: expected KEY_ID PUBKEY",
            ),
            (
                format!("\n0123456789abcdef {public}\n"),
                "line 2: key id 0123456789abcdef does not match its key, whose id is",
            ),
            (
                format!("{0} {public}\n{0} {public}\n", a.key_id()),
                "line 2: key ",
            ),
            (format!("{} nothing-here.pem\n", a.key_id()), "line 1: "),
            (format!("{} private.pem\n", a.key_id()), "is a private key"),
            (format!("{} {}\n", a.key_id(), "ab".repeat(31)), "line 1:"),
            ("# only a comment\n".to_string(), "lists no key"),
            (format!("{} {}\n", a.key_id(), "0".repeat(64)), "weak"),
        ];
        for (text, want) in cases {
            let err = Keyring::parse(&text, &dir).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}\n→ {err}\nwant {want}");
        }
    }

    #[test]
    fn a_key_id_with_control_characters_is_shown_escaped() {
        let a = signer(1);
        let text = format!("\u{1b}[31mevil {}\n", hex(a.verifying_key().as_bytes()));
        let err = Keyring::parse(&text, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
    }
}
