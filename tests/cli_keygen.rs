//! `mesh-audit keygen`: a PKCS#8 private key only its owner can read, the
//! public key, and a keyring line `verify --keys` accepts for seals signed
//! with that key.
#![cfg(feature = "cli")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use cli_support::{requests, run, sealed_trail, stdout, Scratch};
use mesh_audit::deliver::seal::Signer;

const EMITTER: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn keygen_writes_a_pair_whose_keyring_line_verifies_its_seals() {
    let s = Scratch::new("keygen");
    let prefix = s.path("shop");
    let out = run(
        &[
            "keygen",
            "--out",
            prefix.to_str().unwrap(),
            "spiffe://cluster.local/ns/shop/*",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let line = stdout(&out);
    let pem = std::fs::read_to_string(s.path("shop.key.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let public = std::fs::read_to_string(s.path("shop.pub.pem")).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.path("shop.key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The line names the key by its id, and the private key never shows.
    let signer = Signer::parse(&pem).unwrap();
    assert!(line.starts_with(&format!("{} ", signer.key_id())), "{line}");
    assert!(
        line.trim_end()
            .ends_with(" spiffe://cluster.local/ns/shop/*"),
        "{line}"
    );
    assert!(!line.contains("PRIVATE"), "{line}");

    // Seals signed with the key verify under that line (a request without a
    // destination is outside the pattern, so use an unrestricted copy too).
    let ring = s.write_lines("keyring", &[line.trim_end().as_bytes().to_vec()]);
    let unrestricted = s.write_lines(
        "open-keyring",
        &[format!("{} shop.pub.pem", signer.key_id()).into_bytes()],
    );
    let trail = s.write_lines(
        "trail.jsonl",
        &sealed_trail(EMITTER, None, Some(&signer), requests(3)),
    );
    let ok = run(&["verify", &trail, "--keys", &unrestricted], &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    let restricted = run(&["verify", &trail, "--keys", &ring], &[]);
    assert_eq!(restricted.status.code(), Some(1), "{}", stdout(&restricted));
    assert!(
        stdout(&restricted).contains("KEY_NOT_ALLOWED: seq 1"),
        "{}",
        stdout(&restricted)
    );

    // Never overwrites a key.
    let again = run(&["keygen", "--out", prefix.to_str().unwrap()], &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("shop.key.pem"));
    assert_eq!(
        std::fs::read_to_string(s.path("shop.key.pem")).unwrap(),
        pem
    );
}

#[test]
fn an_existing_public_key_stops_keygen_before_it_writes_a_private_one() {
    let s = Scratch::new("keygen-half");
    std::fs::write(s.path("ops.pub.pem"), b"kept").unwrap();
    let prefix = s.path("ops");
    let out = run(&["keygen", "--out", prefix.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ops.pub.pem: already exists, and keygen never replaces a key"),
        "{err}"
    );
    assert!(
        !s.path("ops.key.pem").exists(),
        "no private key without its pair"
    );
    assert_eq!(std::fs::read(s.path("ops.pub.pem")).unwrap(), b"kept");
}
