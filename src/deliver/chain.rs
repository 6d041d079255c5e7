//! Sequencing and hash-chaining (SPEC §4): each admitted record of an emitter
//! gets the next `seq` and `prev` = SHA-256 (or HMAC-SHA256 with the
//! integrity key) of the previous record's exact JSON bytes. With a key the
//! chain's start is keyed too (SPEC §4.1), so nobody without the key can
//! begin a new emitter that verifies.

use crate::audit::hex;
use crate::audit::record::{json, Prepared, Record};
use crate::deliver::seal::{self, Seal, Signer};
use crate::digest::{sha256, HmacKey};

/// `prev` of `seq` 1 of an unkeyed chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `prev` of `seq` 1: 64 zeros, or HMAC-SHA256(key, `"mesh-audit genesis " + emitter`).
pub fn genesis(key: Option<&HmacKey>, emitter: &str) -> String {
    match key {
        Some(k) => hex(&k.mac(format!("mesh-audit genesis {emitter}").as_bytes())),
        None => GENESIS.to_string(),
    }
}

/// The chain link over one record's exact bytes.
pub fn link(key: Option<&[u8]>, line: &[u8]) -> [u8; 32] {
    link_with(key.map(HmacKey::new).as_ref(), line)
}

/// [`link`] with the key prepared once.
pub fn link_with(key: Option<&HmacKey>, line: &[u8]) -> [u8; 32] {
    match key {
        Some(k) => k.mac(line),
        None => sha256(line),
    }
}

/// One emitter's sequence and chain state.
#[derive(Clone, Debug)]
pub struct Sequencer {
    emitter: String,
    next_seq: u64,
    chain: bool,
    key: Option<HmacKey>,
    prev: String,
}

impl Sequencer {
    pub fn new(emitter: String, chain: bool, key: Option<&[u8]>) -> Self {
        let key = key.map(HmacKey::new);
        Sequencer {
            prev: genesis(key.as_ref(), &emitter),
            emitter,
            next_seq: 1,
            chain,
            key,
        }
    }

    pub fn emitter(&self) -> &str {
        &self.emitter
    }

    /// The `seq` the next admitted record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Stamps `record` with emitter, seq and prev and returns its exact JSON
    /// bytes, without advancing: call [`Sequencer::commit`] once admitted.
    pub fn stamp(&self, record: &mut Record) -> Vec<u8> {
        record.emitter = Some(self.emitter.clone());
        record.seq = Some(self.next_seq);
        record.prev = self.chain.then(|| self.prev.clone());
        json::to_vec(record)
    }

    /// [`Sequencer::stamp`] for a record already written (its emitter,
    /// seq and prev left out): the same bytes.
    pub fn stamp_prepared(&self, record: Prepared) -> Vec<u8> {
        record.into_stamped(|out| {
            let prev = self.chain.then_some(self.prev.as_str());
            json::stamp(Some(&self.emitter), Some(self.next_seq), prev, out)
        })
    }

    /// The next record's `seal`, covering `from_seq` up to the last admitted
    /// record, as exact bytes (signed by `signer` if given); like
    /// [`Sequencer::stamp`], call [`Sequencer::commit`] once admitted.
    pub fn seal(&self, ts: &str, from_seq: u64, signer: Option<&Signer>) -> Vec<u8> {
        let fields = Seal {
            ts,
            emitter: &self.emitter,
            seq: self.next_seq,
            prev: self.chain.then_some(self.prev.as_str()),
            from_seq,
            to_seq: self.next_seq - 1,
        };
        seal::encode(&fields, signer)
    }

    /// Advances past a record whose stamped bytes were admitted.
    pub fn commit(&mut self, line: &[u8]) {
        self.next_seq += 1;
        if self.chain {
            let link = link_with(self.key.as_ref(), line);
            self.prev.clear();
            crate::digest::hex_into(&link, &mut self.prev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{Kind, Record};

    fn rec(ts: &str) -> Record {
        Record::new(Kind::Request, ts.to_string())
    }

    #[test]
    fn first_record_links_to_genesis_and_seq_grows() {
        let mut s = Sequencer::new("e1".into(), true, None);
        let mut a = rec("t1");
        let la = s.stamp(&mut a);
        assert_eq!(a.seq, Some(1));
        assert_eq!(a.prev.as_deref(), Some(GENESIS));
        s.commit(&la);
        let mut b = rec("t2");
        let lb = s.stamp(&mut b);
        assert_eq!(b.seq, Some(2));
        assert_eq!(b.prev, Some(hex(&sha256(&la))));
        let parsed: Record = serde_json::from_slice(&lb).unwrap();
        assert_eq!(parsed, b);
    }

    #[test]
    fn chain_is_reproducible_and_keyed() {
        let run = |key: Option<Vec<u8>>| {
            let mut s = Sequencer::new("e".into(), true, key.as_deref());
            let mut out = Vec::new();
            for t in ["a", "b", "c"] {
                let mut r = rec(t);
                let l = s.stamp(&mut r);
                s.commit(&l);
                out.push(l);
            }
            out
        };
        assert_eq!(run(None), run(None));
        assert_ne!(run(None), run(Some(b"k".to_vec())));
        assert_ne!(run(Some(b"k1".to_vec())), run(Some(b"k2".to_vec())));
    }

    #[test]
    fn a_keyed_chain_starts_at_the_keyed_genesis_of_its_emitter() {
        use hmac::Mac;
        let emitter = "0123456789abcdef0123456789abcdef";
        let s = Sequencer::new(emitter.into(), true, Some(b"chain-key"));
        let mut r = rec("t");
        s.stamp(&mut r);
        // Checked against the crate directly, from the SPEC's definition.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"chain-key").unwrap();
        mac.update(format!("mesh-audit genesis {emitter}").as_bytes());
        let want = hex(&mac.finalize().into_bytes());
        assert_eq!(r.prev.as_deref(), Some(want.as_str()));
        assert_ne!(want, GENESIS);
        // Another emitter, or another key, starts elsewhere: a genesis cannot be reused.
        let other = genesis(
            Some(&HmacKey::new(b"chain-key")),
            "ffffffffffffffffffffffffffffffff",
        );
        assert_ne!(other, want);
        assert_ne!(genesis(Some(&HmacKey::new(b"other-key")), emitter), want);
        assert_eq!(genesis(None, emitter), GENESIS);
    }

    #[test]
    fn a_seal_takes_the_next_seq_and_chains_like_any_record() {
        let signer = Signer::from_seed(&[3; 32]);
        let mut s = Sequencer::new("e".into(), true, None);
        let mut lines = Vec::new();
        for t in ["a", "b"] {
            let mut r = rec(t);
            let l = s.stamp(&mut r);
            s.commit(&l);
            lines.push(l);
        }
        let line = s.seal("t", 1, Some(&signer));
        let parsed = seal::parse(&line).unwrap();
        assert_eq!((parsed.seq, parsed.from_seq, parsed.to_seq), (3, 1, 2));
        assert_eq!(parsed.prev, Some(hex(&sha256(&lines[1]))));
        assert!(seal::verify(
            &parsed.signed.unwrap(),
            &signer.verifying_key()
        ));
        s.commit(&line);
        let mut after = rec("c");
        s.stamp(&mut after);
        assert_eq!(after.seq, Some(4));
        assert_eq!(after.prev, Some(hex(&sha256(&line))));
    }

    #[test]
    fn unchained_records_carry_no_prev() {
        let s = Sequencer::new("e".into(), false, None);
        let mut r = rec("t");
        let line = s.stamp(&mut r);
        assert!(!String::from_utf8(line).unwrap().contains("prev"));
    }
}
