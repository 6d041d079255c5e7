//! Key files and the keyring (SPEC §5), shared by `verify`, `sink` and
//! `keygen`.
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
use std::path::Path;

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
    pub fn load(path: &Path) -> Result<Keyring, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Keyring::parse(&text, base).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses keyring text; the error names the line.
    pub fn parse(text: &str, base: &Path) -> Result<Keyring, String> {
        let mut keys: Vec<Key> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |e: String| format!("line {}: {e}", i + 1);
            let mut words = line.split_whitespace();
            let (Some(id), Some(public)) = (words.next(), words.next()) else {
                return Err(at("expected KEY_ID PUBKEY [PATTERN...]".into()));
            };
            let public = parse_public_key(public, base).map_err(at)?;
            let actual = key_id(&public);
            if id != actual {
                return Err(at(format!(
                    "key id {} does not match its key, whose id is {actual}",
                    crate::escape::text(id)
                )));
            }
            if keys.iter().any(|k| k.id == actual) {
                return Err(at(format!("key {actual} is listed twice")));
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
            return Err("the keyring lists no key".into());
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
pub fn parse_public_key(text: &str, base: &Path) -> Result<VerifyingKey, String> {
    let raw = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(unhex(text))
    } else if text.len() == 44 || text.len() == 43 {
        <base64ct::Base64 as base64ct::Encoding>::decode_vec(text)
            .or_else(|_| <base64ct::Base64Unpadded as base64ct::Encoding>::decode_vec(text))
            .ok()
    } else {
        None
    };
    let public = match raw {
        Some(bytes) => {
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| "a raw public key is 32 bytes".to_string())?;
            VerifyingKey::from_bytes(&bytes)
                .map_err(|_| "is not a valid Ed25519 public key".to_string())?
        }
        None => read_public_pem(&base.join(text))?,
    };
    if public.is_weak() {
        return Err("is a weak (small-order) Ed25519 public key".into());
    }
    Ok(public)
}

fn read_public_pem(path: &Path) -> Result<VerifyingKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (a public key is 64 hex digits, base64 of 32 bytes, or a PEM file)",
            path.display()
        )
    })?;
    if text.contains("PRIVATE KEY-----") {
        return Err(format!(
            "{}: is a private key; the keyring takes public keys (mesh-audit keygen writes both)",
            path.display()
        ));
    }
    VerifyingKey::from_public_key_pem(text.trim())
        .map_err(|_| format!("{}: not an Ed25519 public key PEM", path.display()))
}

/// A private key file: PKCS#8 PEM, or the 32-byte seed in base64.
pub fn load_private_key(path: &Path) -> Result<Signer, String> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    Signer::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn unhex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            digit(pair[0]) << 4 | digit(pair[1])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use mesh_audit::audit::hex;

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
            let err = Keyring::parse(&text, &dir).unwrap_err();
            assert!(err.contains(want), "{text:?}\n→ {err}\nwant {want}");
        }
    }

    #[test]
    fn a_key_id_with_control_characters_is_shown_escaped() {
        let a = signer(1);
        let text = format!("\u{1b}[31mevil {}\n", hex(a.verifying_key().as_bytes()));
        let err = Keyring::parse(&text, Path::new(".")).unwrap_err();
        assert!(!err.contains('\u{1b}'), "{err}");
    }

    #[test]
    fn private_key_files_load_as_pem_or_seed() {
        let dir = tmp("private");
        let a = signer(9);
        std::fs::write(dir.join("k.pem"), a.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
        assert_eq!(load_private_key(&dir.join("k.pem")).unwrap(), a);
        std::fs::write(
            dir.join("k.b64"),
            <base64ct::Base64 as base64ct::Encoding>::encode_string(&[9; 32]),
        )
        .unwrap();
        assert_eq!(load_private_key(&dir.join("k.b64")).unwrap(), a);
        assert!(load_private_key(&dir.join("missing"))
            .unwrap_err()
            .contains("missing"));
    }
}
