//! `seal` records (SPEC §4.1): the last record of every batch, signed with
//! the proxy's Ed25519 key when it has one.
//!
//! A seal's bytes are fixed: `{"kind":"seal","ts":…,"emitter":…,"seq":N,
//! "prev":…,"from_seq":a,"to_seq":N-1,"key_id":…,"sig":…}`. The signature
//! covers the line without its `,"sig":"…"` member (which is always last),
//! so a verifier rebuilds the signed bytes by cutting that member out. The
//! encoding, the key handling and the check of one seal live here, shared by
//! the filter, `mesh-audit verify` and the sink.

use crate::audit::hex;
pub use crate::signing::{key_id, Signer, KEY_ID_HEX_LEN};
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Hex digits of a signature in a seal (64 bytes).
pub const SIG_HEX_LEN: usize = 128;
/// A bound on a seal line's size (timestamps and seqs at their longest), so
/// a batch can keep room for its seal.
pub const MAX_SEAL_BYTES: usize = 512;

const SIG_MEMBER: &[u8] = b",\"sig\":\"";

/// What a seal says, before it is signed.
#[derive(Clone, Debug, PartialEq)]
pub struct Seal<'a> {
    pub ts: &'a str,
    pub emitter: &'a str,
    pub seq: u64,
    /// Absent only when `integrity.chain` is off.
    pub prev: Option<&'a str>,
    pub from_seq: u64,
    pub to_seq: u64,
}

#[derive(Serialize)]
struct Unsigned<'a> {
    kind: &'static str,
    ts: &'a str,
    emitter: &'a str,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: Option<&'a str>,
    from_seq: u64,
    to_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
}

/// The seal's exact line: signed by `signer`, or a plain checkpoint without
/// `key_id` and `sig`.
pub fn encode(seal: &Seal<'_>, signer: Option<&Signer>) -> Vec<u8> {
    let unsigned = Unsigned {
        kind: "seal",
        ts: seal.ts,
        emitter: seal.emitter,
        seq: seal.seq,
        prev: seal.prev,
        from_seq: seal.from_seq,
        to_seq: seal.to_seq,
        key_id: signer.map(|s| s.key_id()),
    };
    let mut line = Vec::with_capacity(MAX_SEAL_BYTES);
    // Plain strings and numbers: serialising cannot fail.
    if serde_json::to_writer(&mut line, &unsigned).is_err() {
        line.clear();
    }
    if let Some(signer) = signer {
        let sig = signer.sign(&line);
        line.pop(); // the closing `}`
        line.extend_from_slice(SIG_MEMBER);
        line.extend_from_slice(hex(&sig).as_bytes());
        line.extend_from_slice(b"\"}");
    }
    line
}

/// A stored seal, as a verifier sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed {
    pub emitter: String,
    pub seq: u64,
    pub prev: Option<String>,
    pub from_seq: u64,
    pub to_seq: u64,
    /// `key_id` and signature, for a signed seal.
    pub signed: Option<Signed>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Signed {
    pub key_id: String,
    pub sig: Signature,
    /// The bytes the signature covers: the line without its `sig` member.
    pub message: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    kind: String,
    #[allow(dead_code)]
    ts: String,
    emitter: String,
    seq: u64,
    #[serde(default)]
    prev: Option<String>,
    from_seq: u64,
    to_seq: u64,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    sig: Option<String>,
}

/// Reads a seal line; the error says precisely what is malformed.
pub fn parse(line: &[u8]) -> Result<Parsed, String> {
    let wire: Wire = serde_json::from_slice(line).map_err(|e| format!("malformed seal: {e}"))?;
    if wire.kind != "seal" {
        return Err("not a seal".into());
    }
    let signed = match (wire.key_id, wire.sig) {
        (None, None) => None,
        (Some(_), None) => return Err("seal has key_id but no sig".into()),
        (None, Some(_)) => return Err("seal has sig but no key_id".into()),
        (Some(key_id), Some(_)) => {
            let lower_hex = |s: &str, len: usize| {
                s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            };
            if !lower_hex(&key_id, KEY_ID_HEX_LEN) {
                return Err("key_id is not 16 lowercase hex digits".into());
            }
            let (message, sig_hex) = split_sig(line)
                .ok_or("sig is not the last member, or not 128 lowercase hex digits")?;
            let mut sig = [0u8; 64];
            for (i, byte) in sig.iter_mut().enumerate() {
                let pair = std::str::from_utf8(&sig_hex[2 * i..2 * i + 2]).unwrap_or("");
                *byte = u8::from_str_radix(pair, 16).map_err(|_| "sig is not hex")?;
            }
            Some(Signed {
                key_id,
                sig: Signature::from_bytes(&sig),
                message,
            })
        }
    };
    Ok(Parsed {
        emitter: wire.emitter,
        seq: wire.seq,
        prev: wire.prev,
        from_seq: wire.from_seq,
        to_seq: wire.to_seq,
        signed,
    })
}

/// Splits `…,"sig":"<128 hex>"}` into the signed bytes (`…}`) and the hex.
fn split_sig(line: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let body = line.strip_suffix(b"\"}")?;
    if body.len() < SIG_HEX_LEN + SIG_MEMBER.len() {
        return None;
    }
    let (head, sig_hex) = body.split_at(body.len() - SIG_HEX_LEN);
    let head = head.strip_suffix(SIG_MEMBER)?;
    if !sig_hex
        .iter()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut message = head.to_vec();
    message.push(b'}');
    Some((message, sig_hex))
}

/// Whether `signed` verifies under `key` (strict Ed25519: no malleable or
/// small-order forms).
pub fn verify(signed: &Signed, key: &VerifyingKey) -> bool {
    key.verify_strict(&signed.message, &signed.sig).is_ok()
}

#[cfg(test)]
mod tests;
