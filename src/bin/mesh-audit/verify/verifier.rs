//! Reading a trail into per-emitter entries, one line at a time, then
//! checking each emitter once every line is read.

use super::emitter::check_emitter;
use super::entry::{Entry, Loss, SealCheck, Signature};
use super::outcome::{BadLine, Mode, Outcome};
use super::text;
use crate::keys::Keyring;
use mesh_audit::audit::record::{Kind, Reason, Record};
use mesh_audit::deliver::chain::{genesis, link_with};
use mesh_audit::deliver::seal;
use mesh_audit::digest::HmacKey;
use std::collections::BTreeMap;

pub struct Verifier {
    key: Option<HmacKey>,
    keyring: Option<Keyring>,
    emitters: BTreeMap<String, Vec<Entry>>,
    bad_lines: Vec<BadLine>,
    records: usize,
}

impl Verifier {
    pub fn new(key: Option<Vec<u8>>, keyring: Option<Keyring>) -> Self {
        Verifier {
            key: key.as_deref().map(HmacKey::new),
            keyring,
            emitters: BTreeMap::new(),
            bad_lines: Vec::new(),
            records: 0,
        }
    }

    fn mode(&self) -> Mode {
        match (&self.keyring, &self.key) {
            (Some(_), _) => Mode::Signatures,
            (None, Some(_)) => Mode::Hmac,
            (None, None) => Mode::Unkeyed,
        }
    }

    pub fn add_line(&mut self, line: usize, bytes: &[u8]) {
        let record: Record = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => return self.bad(line, format!("not an audit record: {e}")),
        };
        let Record {
            kind,
            emitter,
            seq,
            prev,
            reason,
            count,
            from_seq,
            to_seq,
            destination,
            ..
        } = record;
        let (Some(emitter), Some(seq)) = (emitter, seq) else {
            return self.bad(line, "record has no emitter or no seq".into());
        };
        if seq == 0 {
            return self.bad(line, "seq 0 is not a valid seq".into());
        }
        let (loss, close) = match (kind, reason) {
            (Kind::Loss, Some(Reason::Loss(reason))) => (
                Some(Loss {
                    seq,
                    reason,
                    count: count.unwrap_or(0),
                    from_seq,
                    to_seq,
                }),
                None,
            ),
            (Kind::Loss, _) => return self.bad(line, "loss record has no loss reason".into()),
            (Kind::Close, Some(Reason::Close(reason))) => {
                let name = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string));
                (None, Some(name.unwrap_or_default()))
            }
            (Kind::Close, _) => return self.bad(line, "close record has no close reason".into()),
            _ => (None, None),
        };
        let seal = (kind == Kind::Seal).then(|| self.check_seal(bytes));
        self.records += 1;
        let entry = Entry {
            seq,
            line,
            link: link_with(self.key.as_ref(), bytes),
            prev,
            kind,
            loss,
            close,
            seal,
            destination: destination.and_then(|d| d.principal),
        };
        self.emitters.entry(emitter).or_default().push(entry);
    }

    fn check_seal(&self, bytes: &[u8]) -> SealCheck {
        let parsed = match seal::parse(bytes) {
            Ok(p) => p,
            Err(e) => return SealCheck::Malformed(e),
        };
        let (key_id, signature) = match (&parsed.signed, &self.keyring) {
            (None, _) => (None, Signature::Unsigned),
            (Some(s), None) => (Some(s.key_id.clone()), Signature::NotChecked),
            (Some(s), Some(ring)) => {
                let verdict = match ring.get(&s.key_id) {
                    None => Signature::UnknownKey,
                    Some(k) if seal::verify(s, &k.public) => Signature::Valid,
                    Some(_) => Signature::Invalid,
                };
                (Some(s.key_id.clone()), verdict)
            }
        };
        SealCheck::Ok {
            from_seq: parsed.from_seq,
            to_seq: parsed.to_seq,
            key_id,
            signature,
        }
    }

    fn bad(&mut self, line: usize, error: String) {
        self.bad_lines.push(BadLine { line, error });
    }

    pub fn finish(self) -> Outcome {
        let mode = self.mode();
        let mut links_checked = 0;
        let mut links_failed = 0;
        let mut emitters = Vec::new();
        for (emitter, mut entries) in self.emitters {
            entries.sort_by_key(|e| (e.seq, e.line));
            let start = genesis(self.key.as_ref(), &emitter);
            let (outcome, checked, failed) =
                check_emitter(emitter, &start, &entries, mode, self.keyring.as_ref());
            links_checked += checked;
            links_failed += failed;
            emitters.push(outcome);
        }
        let hint = (links_failed >= 2 && links_failed == links_checked).then(|| {
            let how = if self.key.is_some() {
                "a different key than --key-env gives"
            } else {
                "a key: pass --key-env"
            };
            format!("every link after seq 1 failed: the records were probably chained with {how}")
        });
        Outcome {
            ok: self.bad_lines.is_empty() && emitters.iter().all(|e| e.ok),
            records: self.records,
            keyed: self.key.is_some(),
            mode,
            keyring_keys: self.keyring.as_ref().map(Keyring::len),
            proves: text::proves(mode).to_string(),
            emitters,
            bad_lines: self.bad_lines,
            hint,
        }
    }
}
