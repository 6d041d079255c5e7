//! Test code only: its parent declares it under #[cfg(test)].
use super::*;
use crate::digest::sha256;
use ed25519_dalek::Verifier as _;
use proptest::prelude::*;

/// Made by `openssl genpkey -algorithm ed25519`; its public key and seed
/// below were printed by `openssl pkey`.
const OPENSSL_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAgEUFUg58GJpHkQqfTlZioMLcOt3GZrPG05MvstLGDp
-----END PRIVATE KEY-----
";
const OPENSSL_PUBLIC_HEX: &str = "1e7e6f0f58b13a23708d35c03fad0f5ed6bfc967f9f503b1140045cdb74ec68a";
const OPENSSL_SEED_BASE64: &str = "CARQVSDnwYmkeRCp9OVmKgwtw63cZms8bTky+y0sYOk=";

const EMITTER: &str = "0123456789abcdef0123456789abcdef";
const PREV: &str = "9a0f9a0f9a0f9a0f9a0f9a0f9a0f9a0f9a0f9a0f9a0f9a0f9a0f9a0f9a0f9a0f";

fn seal(seq: u64) -> Seal<'static> {
    Seal {
        ts: "2026-11-21T14:03:05.123456Z",
        emitter: EMITTER,
        seq,
        prev: Some(PREV),
        from_seq: 1,
        to_seq: seq - 1,
    }
}

fn signer() -> Signer {
    Signer::from_seed(&[7; 32])
}

#[test]
fn a_signed_seal_has_the_exact_spec_layout_with_sig_last() {
    let s = signer();
    let line = String::from_utf8(encode(&seal(18), Some(&s))).unwrap();
    let want_head = format!(
        "{{\"kind\":\"seal\",\"ts\":\"2026-11-21T14:03:05.123456Z\",\"emitter\":\"{EMITTER}\",\"seq\":18,\"prev\":\"{PREV}\",\"from_seq\":1,\"to_seq\":17,\"key_id\":\"{}\",\"sig\":\"",
        s.key_id()
    );
    assert!(line.starts_with(&want_head), "{line}");
    let sig = &line[want_head.len()..line.len() - 2];
    assert_eq!(sig.len(), 128);
    assert!(sig
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert!(line.ends_with("\"}"));
    assert!(line.len() <= MAX_SEAL_BYTES);
}

#[test]
fn the_signature_covers_the_line_without_its_sig_member_checked_by_the_crate() {
    let s = signer();
    let line = String::from_utf8(encode(&seal(5), Some(&s))).unwrap();
    // Rebuild the signed bytes independently of `parse`: cut the member out.
    let at = line.find(",\"sig\":\"").unwrap();
    let message = format!("{}}}", &line[..at]);
    let sig_hex = &line[at + 8..line.len() - 2];
    let sig_bytes: Vec<u8> = (0..64)
        .map(|i| u8::from_str_radix(&sig_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let sig = Signature::from_slice(&sig_bytes).unwrap();
    s.verifying_key().verify(message.as_bytes(), &sig).unwrap();
    assert_eq!(
        message.as_bytes(),
        encode(&seal(5), None)
            .strip_suffix(b"}")
            .map(|h| [h, format!(",\"key_id\":\"{}\"}}", s.key_id()).as_bytes()].concat())
            .unwrap()
    );
}

#[test]
fn an_unsigned_seal_is_a_checkpoint_without_key_id_and_sig() {
    let line = encode(&seal(3), None);
    assert_eq!(
        String::from_utf8(line.clone()).unwrap(),
        format!("{{\"kind\":\"seal\",\"ts\":\"2026-11-21T14:03:05.123456Z\",\"emitter\":\"{EMITTER}\",\"seq\":3,\"prev\":\"{PREV}\",\"from_seq\":1,\"to_seq\":2}}")
    );
    let parsed = parse(&line).unwrap();
    assert_eq!(parsed.signed, None);
    assert_eq!((parsed.seq, parsed.from_seq, parsed.to_seq), (3, 1, 2));
    assert_eq!(parsed.prev.as_deref(), Some(PREV));
}

#[test]
fn parse_then_verify_accepts_a_genuine_seal_only_under_its_own_key() {
    let s = signer();
    let line = encode(&seal(9), Some(&s));
    let parsed = parse(&line).unwrap();
    let signed = parsed.signed.unwrap();
    assert_eq!(signed.key_id, s.key_id());
    assert!(verify(&signed, &s.verifying_key()));
    let other = Signer::from_seed(&[8; 32]);
    assert!(!verify(&signed, &other.verifying_key()));
}

#[test]
fn malformed_seals_are_refused_with_a_reason() {
    let s = signer();
    let good = String::from_utf8(encode(&seal(4), Some(&s))).unwrap();
    let at = good.find(",\"sig\":\"").unwrap();
    let sig_member = &good[at..good.len() - 1];
    let cases = [
        (
            // sig moved before key_id: no longer the last member
            good[..at].replacen(",\"key_id\"", &format!("{sig_member},\"key_id\""), 1) + "}",
            "not the last member",
        ),
        (
            good.replace(&good[at + 8..at + 12], "ABCD"),
            "128 lowercase hex",
        ),
        (good[..at].to_string() + "}", "key_id but no sig"),
        (
            good.replacen(&format!(",\"key_id\":\"{}\"", s.key_id()), "", 1),
            "sig but no key_id",
        ),
        (good.replacen(s.key_id(), "XYZ", 1), "16 lowercase hex"),
        (
            good.replacen("\"kind\":\"seal\"", "\"kind\":\"close\"", 1),
            "not a seal",
        ),
        (
            good.replacen("\"to_seq\"", "\"count\":1,\"to_seq\"", 1),
            "malformed seal",
        ),
        (good.replacen("\"from_seq\":1,", "", 1), "malformed seal"),
    ];
    for (line, want) in cases {
        let err = parse(line.as_bytes()).unwrap_err();
        assert!(err.contains(want), "{line}\n→ {err}\nwant {want}");
    }
}

#[test]
fn reads_pkcs8_pem_and_base64_seeds_made_by_openssl() {
    let from_pem = Signer::parse(OPENSSL_PEM).unwrap();
    assert_eq!(hex(from_pem.verifying_key().as_bytes()), OPENSSL_PUBLIC_HEX);
    let from_seed = Signer::parse(OPENSSL_SEED_BASE64).unwrap();
    assert_eq!(from_seed, from_pem);
    // Envoy passes environment values verbatim: surrounding whitespace is fine.
    assert_eq!(
        Signer::parse(&format!("\n{OPENSSL_SEED_BASE64}\n")).unwrap(),
        from_pem
    );
    // The key id is the first 8 bytes of SHA-256 of the raw public key.
    let public: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&OPENSSL_PUBLIC_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert_eq!(from_pem.key_id(), hex(&sha256(&public)[..8]));
    // Our own PEM round-trips.
    let pem = from_pem.to_pkcs8_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(Signer::parse(&pem).unwrap(), from_pem);
}

#[test]
fn bad_key_text_is_refused_without_quoting_it() {
    let cases = [
        ("c2hvcnQ=", "decodes to 5 bytes"),
        ("not base64 at all!", "neither a PKCS#8 PEM nor a base64"),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "PKCS#8 PEM",
        ),
    ];
    for (text, want) in cases {
        let err = Signer::parse(text).unwrap_err();
        assert!(err.contains(want), "{text:?} → {err}");
        assert!(!err.contains(text.trim()), "{err}");
    }
}

#[test]
fn debug_shows_the_key_id_only() {
    let s = Signer::parse(OPENSSL_SEED_BASE64).unwrap();
    let shown = format!("{s:?} {s:#?}");
    assert!(shown.contains(s.key_id()));
    assert!(!shown.contains("CARQVSDn"), "{shown}");
    assert!(!shown.to_lowercase().contains("08045055"), "{shown}");
}

proptest! {
    #[test]
    fn every_seal_verifies_and_any_changed_byte_breaks_it(
        seed in any::<[u8; 32]>(),
        seq in 2u64..u64::MAX,
        from in 1u64..1000,
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let s = Signer::from_seed(&seed);
        let sealed = Seal { from_seq: from.min(seq - 1), to_seq: seq - 1, seq, ..seal(2) };
        let line = encode(&sealed, Some(&s));
        prop_assert!(line.len() <= MAX_SEAL_BYTES);
        let parsed = parse(&line).unwrap();
        prop_assert_eq!((parsed.seq, parsed.from_seq, parsed.to_seq), (seq, sealed.from_seq, seq - 1));
        let signed = parsed.signed.clone().unwrap();
        prop_assert!(verify(&signed, &s.verifying_key()));
        let mut doctored = line.clone();
        let i = flip.index(doctored.len());
        doctored[i] ^= 1 << bit;
        if let Ok(p) = parse(&doctored) {
            let d = p.signed.unwrap();
            prop_assert!(!verify(&d, &s.verifying_key()), "a changed byte still verified");
        }
    }
}
