//! `mesh-audit verify`: per emitter, sorts records by `seq` and checks the
//! chain (gaps, duplicates, each `prev`), the seals (signatures, ranges,
//! what each key may vouch for), loss records, and whether the emitter was
//! closed. With `--keys` or `--key-env` the check is strict (SPEC §7):
//! whatever no valid seal or key vouches for fails.
//!
//! Only each record's link (32 bytes) and a few facts are kept, never its
//! text, so files far larger than memory verify.

mod chain;
mod seals;
pub mod text;

use crate::keys::Keyring;
use chain::{Duplicate, Gap, Mismatch, Unchecked};
use mesh_audit::audit::record::{Kind, LossReason, Reason, Record};
use mesh_audit::deliver::chain::{genesis, link_with};
use mesh_audit::deliver::seal;
use mesh_audit::digest::HmacKey;
use serde::Serialize;
use std::collections::BTreeMap;

/// Problems listed per emitter before the rest are only counted.
const MAX_PROBLEMS: usize = 1000;

/// One stored record, reduced to what the checks need.
pub struct Entry {
    pub seq: u64,
    pub line: usize,
    pub link: [u8; 32],
    pub prev: Option<String>,
    pub kind: Kind,
    pub loss: Option<Loss>,
    pub close: Option<String>,
    pub seal: Option<SealCheck>,
    /// `destination.principal` of a request record.
    pub destination: Option<String>,
}

/// A seal as read, with its signature already checked against the keyring.
pub enum SealCheck {
    Malformed(String),
    Ok {
        from_seq: u64,
        to_seq: u64,
        /// Key id of a signed seal.
        key_id: Option<String>,
        signature: Signature,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    /// No `sig` member.
    Unsigned,
    /// Signed, but no keyring to check it against.
    NotChecked,
    Valid,
    Invalid,
    UnknownKey,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Loss {
    pub seq: u64,
    pub reason: LossReason,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_seq: Option<u64>,
}

/// One failed check: where, a stable code, and what exactly is wrong.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Problem {
    pub seq: u64,
    pub reason: &'static str,
    pub detail: String,
}

#[derive(Serialize, Debug)]
pub struct BadLine {
    pub line: usize,
    pub error: String,
}

#[derive(Serialize, Debug)]
pub struct EmitterOutcome {
    pub emitter: String,
    pub ok: bool,
    pub records: usize,
    pub first_seq: u64,
    pub last_seq: u64,
    pub chained: bool,
    /// `seq` of the last valid seal: everything up to it is vouched for (0: none).
    pub sealed_through: u64,
    /// The emitter ended with a `close` record (vouched for, when strict).
    pub closed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    /// Not closed: records after this seq may be lost (SIGTERM, crash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_since: Option<u64>,
    /// First seq after the last valid seal, when records follow it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsealed_from: Option<u64>,
    pub seals: usize,
    /// Key ids whose valid signatures vouch for this emitter.
    pub signed_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    pub problems: Vec<Problem>,
    #[serde(skip_serializing_if = "is_zero")]
    pub problems_omitted: usize,
    pub explained_gaps: Vec<Gap>,
    pub unexplained_gaps: Vec<Gap>,
    pub duplicates: Vec<Duplicate>,
    pub mismatches: Vec<Mismatch>,
    pub unchecked: Vec<Unchecked>,
    pub losses: Vec<Loss>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// How much the check can prove, from the keys it was given.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No key: accidental damage only.
    Unkeyed,
    /// `--key-env`: an HMAC chain.
    Hmac,
    /// `--keys` (with or without `--key-env`): signed seals.
    Signatures,
}

#[derive(Serialize, Debug)]
pub struct Outcome {
    pub ok: bool,
    pub records: usize,
    /// Links were checked as HMAC-SHA256 with a key.
    pub keyed: bool,
    pub mode: Mode,
    /// Keys in the keyring, with `--keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyring_keys: Option<usize>,
    /// What a passing result proves, in words.
    pub proves: String,
    pub emitters: Vec<EmitterOutcome>,
    pub bad_lines: Vec<BadLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

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

/// Whether `emitter` is 32 lowercase hex digits (SPEC §4.1).
fn emitter_is_valid(emitter: &str) -> bool {
    emitter.len() == 32
        && emitter
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `rejected` loss records as the ranges they explain.
fn rejected_ranges<'a>(losses: impl Iterator<Item = &'a Loss>) -> Vec<Gap> {
    losses
        .filter(|l| l.reason == LossReason::Rejected)
        .filter_map(|l| match (l.from_seq, l.to_seq) {
            (Some(from_seq), Some(to_seq)) if from_seq <= to_seq && to_seq < l.seq => Some(Gap {
                from_seq,
                to_seq,
                loss_seq: Some(l.seq),
            }),
            _ => None,
        })
        .collect()
}

/// Checks one emitter. Also returns how many links after seq 1 were checked
/// and how many of those failed.
fn check_emitter(
    emitter: String,
    start: &str,
    entries: &[Entry],
    mode: Mode,
    keyring: Option<&Keyring>,
) -> (EmitterOutcome, usize, usize) {
    let strict = mode != Mode::Unkeyed;
    let losses: Vec<Loss> = entries.iter().filter_map(|e| e.loss.clone()).collect();
    let all_rejected = rejected_ranges(losses.iter());
    let first = chain::check(start, entries, &all_rejected);
    let sealed = seals::check(entries, &first, mode, keyring);
    // Strictly, only a loss record a valid seal vouches for explains a gap.
    let facts = if strict {
        let trusted = rejected_ranges(losses.iter().filter(|l| l.seq <= sealed.sealed_through));
        chain::check(start, entries, &trusted)
    } else {
        first
    };

    let mut problems = sealed.problems;
    if !emitter_is_valid(&emitter) {
        problems.push(Problem {
            seq: entries.first().map_or(0, |e| e.seq),
            reason: "bad_emitter",
            detail: "emitter is not 32 lowercase hex digits".into(),
        });
    }
    for g in &facts.unexplained_gaps {
        problems.push(Problem {
            seq: g.from_seq,
            reason: "gap",
            detail: format!("seq {} missing", text::range(g.from_seq, g.to_seq)),
        });
    }
    for d in facts.duplicates.iter().filter(|d| !d.identical) {
        problems.push(Problem {
            seq: d.seq,
            reason: "conflict",
            detail: format!("{} different records with this seq", d.lines.len()),
        });
    }
    for m in &facts.mismatches {
        let (reason, detail) = match (&m.found, m.seq) {
            (None, _) => ("no_prev", "record has no prev".to_string()),
            (Some(_), 1) => ("bad_genesis", text::genesis_detail(mode)),
            (Some(_), s) => (
                "prev_mismatch",
                format!("prev does not match seq {}", s - 1),
            ),
        };
        problems.push(Problem {
            seq: m.seq,
            reason,
            detail,
        });
    }
    if strict && !facts.chained {
        problems.extend(entries.iter().map(|e| Problem {
            seq: e.seq,
            reason: "no_prev",
            detail: "record has no prev: the chain was stripped (or integrity.chain is off)".into(),
        }));
    }
    problems.sort_by_key(|p| p.seq);
    problems.dedup();
    let problems_omitted = problems.len().saturating_sub(MAX_PROBLEMS);
    problems.truncate(MAX_PROBLEMS);

    let first_bad_seq = problems.iter().map(|p| p.seq).min();
    let closed = sealed.close.is_some();
    let outcome = EmitterOutcome {
        emitter,
        ok: first_bad_seq.is_none(),
        records: entries.len(),
        first_seq: entries.first().map_or(0, |e| e.seq),
        last_seq: entries.last().map_or(0, |e| e.seq),
        chained: facts.chained,
        sealed_through: sealed.sealed_through,
        closed,
        close_reason: sealed.close,
        open_since: (!closed).then_some(sealed.sealed_through),
        unsealed_from: sealed.unsealed_from,
        seals: sealed.seals,
        signed_by: sealed.signed_by,
        first_bad_seq,
        problems,
        problems_omitted,
        explained_gaps: facts.explained_gaps,
        unexplained_gaps: facts.unexplained_gaps,
        duplicates: facts.duplicates,
        mismatches: facts.mismatches,
        unchecked: facts.unchecked,
        losses,
    };
    (outcome, facts.checked, facts.failed)
}
