//! Seals, loss records and the close record of one emitter: which seals are
//! valid, how far they vouch (`sealed_through`), and everything that breaks
//! the rules of SPEC §4.1 and §7.

use super::chain::Facts;
use super::entry::{Entry, SealCheck, Signature};
use super::outcome::{Mode, Problem};
use crate::keys::Keyring;
use mesh_audit::audit::record::{Kind, LossReason};
use std::collections::HashSet;

pub struct Sealed {
    pub problems: Vec<Problem>,
    pub sealed_through: u64,
    /// The close reason, when the emitter is closed.
    pub close: Option<String>,
    pub unsealed_from: Option<u64>,
    pub seals: usize,
    pub signed_by: Vec<String>,
}

fn problem(seq: u64, reason: &'static str, detail: String) -> Problem {
    Problem {
        seq,
        reason,
        detail,
    }
}

pub fn check(entries: &[Entry], facts: &Facts, mode: Mode, keyring: Option<&Keyring>) -> Sealed {
    let strict = mode != Mode::Unkeyed;
    let mut problems = Vec::new();
    let broken: HashSet<u64> = facts
        .mismatches
        .iter()
        .map(|m| m.seq)
        .chain(
            facts
                .duplicates
                .iter()
                .filter(|d| !d.identical)
                .map(|d| d.seq),
        )
        .collect();
    let missing = |seq: u64| {
        facts
            .explained_gaps
            .iter()
            .chain(&facts.unexplained_gaps)
            .any(|g| (g.from_seq..=g.to_seq).contains(&seq))
    };
    // One entry per seq: copies are either identical or a conflict reported elsewhere.
    let firsts: Vec<&Entry> = entries
        .chunk_by(|a, b| a.seq == b.seq)
        .map(|g| &g[0])
        .collect();

    let mut sealed_through = 0;
    let mut previous_seal: Option<u64> = None;
    let mut seals = 0;
    let mut signed_by: Vec<String> = Vec::new();
    for e in firsts.iter().filter(|e| e.kind == Kind::Seal) {
        seals += 1;
        let s = e.seq;
        let expected_from = previous_seal.map_or(1, |p| p + 1);
        previous_seal = Some(s);
        let (from_seq, to_seq, key_id, signature) = match &e.seal {
            Some(SealCheck::Ok {
                from_seq,
                to_seq,
                key_id,
                signature,
            }) => (*from_seq, *to_seq, key_id.clone(), *signature),
            Some(SealCheck::Malformed(why)) => {
                problems.push(problem(s, "bad_seal", why.clone()));
                continue;
            }
            None => continue,
        };
        let before = problems.len();
        if to_seq + 1 != s || from_seq > to_seq {
            problems.push(problem(
                s,
                "seal_range",
                format!("seal covers {from_seq}..{to_seq}, not up to seq {}", s - 1),
            ));
        } else if from_seq != expected_from && !(from_seq > expected_from && missing(from_seq - 1))
        {
            problems.push(problem(
                s,
                "seal_range",
                format!(
                    "seal covers from seq {from_seq}, but the previous seal ends at seq {}",
                    expected_from - 1
                ),
            ));
        }
        if s > 1 && missing(s - 1) {
            problems.push(problem(
                s,
                "seal_range",
                format!(
                    "the records this seal vouches for are missing (seq {})",
                    s - 1
                ),
            ));
        }
        let key = key_id.as_deref().unwrap_or("");
        if mode == Mode::Signatures {
            match signature {
                Signature::Unsigned => problems.push(problem(
                    s,
                    "unsigned_seal",
                    "seal is not signed (the proxy has no integrity.signing_key_env)".into(),
                )),
                Signature::UnknownKey => problems.push(problem(
                    s,
                    "unknown_key",
                    format!("key {key} is not in the keyring"),
                )),
                Signature::Invalid => problems.push(problem(
                    s,
                    "bad_signature",
                    format!("signature does not verify under key {key}"),
                )),
                Signature::Valid | Signature::NotChecked => {}
            }
            if let Some(k) = keyring.and_then(|r| r.get(key)) {
                let vouched = firsts
                    .iter()
                    .filter(|r| (from_seq..=to_seq).contains(&r.seq) && r.kind == Kind::Request);
                for r in vouched {
                    if !k.may_vouch_for(r.destination.as_deref()) {
                        let dest = r.destination.as_deref().unwrap_or("(none)");
                        problems.push(problem(
                            r.seq,
                            "key_not_allowed",
                            format!(
                                "key {key} may vouch only for {}, not for destination {dest} (sealed at seq {s})",
                                k.shown.join(" ")
                            ),
                        ));
                    }
                }
            }
        }
        let valid = problems.len() == before && !broken.contains(&s);
        if valid {
            sealed_through = s;
            if signature == Signature::Valid && !signed_by.iter().any(|k| k == key) {
                signed_by.push(key.to_string());
            }
        }
    }

    for e in firsts.iter() {
        let Some(l) = &e.loss else { continue };
        let bad = |detail: String| problem(e.seq, "bad_loss", detail);
        match (l.reason, l.from_seq, l.to_seq) {
            (LossReason::Rejected, Some(from), Some(to)) => {
                if from > to || to >= e.seq {
                    problems.push(bad(format!(
                        "rejected range {from}..{to} is not below the loss record's own seq"
                    )));
                } else if l.count == 0 || l.count > to - from + 1 {
                    // At most the range: an OTLP partial success says how
                    // many records of the batch were refused, not which.
                    problems.push(bad(format!(
                        "count {} does not fit its range {from}..{to} ({} records)",
                        l.count,
                        to - from + 1
                    )));
                }
            }
            (LossReason::Rejected, _, _) => {
                problems.push(bad("rejected loss names no from_seq..to_seq".into()))
            }
            (_, None, None) if l.count == 0 => problems.push(bad("count is 0".into())),
            (_, None, None) => {}
            (_, _, _) => problems.push(bad(
                "only a rejected loss names a seq range; this one was never admitted".into(),
            )),
        }
    }

    let mut close = None;
    if let Some(c) = firsts.iter().find(|e| e.kind == Kind::Close) {
        for after in firsts.iter().filter(|e| e.seq > c.seq) {
            let its_seal = after.seq == c.seq + 1 && after.kind == Kind::Seal;
            if !its_seal {
                problems.push(problem(
                    after.seq,
                    "after_close",
                    format!("record after the emitter's close record (seq {})", c.seq),
                ));
            }
        }
        if !strict || c.seq <= sealed_through {
            close = c.close.clone();
        }
    }

    let unsealed_from = firsts
        .iter()
        .find(|e| e.seq > sealed_through)
        .map(|e| e.seq);
    if let (true, Some(from)) = (strict, unsealed_from) {
        let last = firsts.last().map_or(from, |e| e.seq);
        let since = if sealed_through == 0 {
            "no valid seal vouches for them".to_string()
        } else {
            format!("the last valid seal is seq {sealed_through}")
        };
        problems.push(problem(
            from,
            "unsealed",
            format!("seq {} unsealed: {since}", super::text::range(from, last)),
        ));
    }

    Sealed {
        problems,
        sealed_through,
        close,
        unsealed_from,
        seals,
        signed_by,
    }
}
