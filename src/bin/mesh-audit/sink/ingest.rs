//! Checks a batch must pass before it joins the trail (else 422 and
//! quarantine): its chain continues what is stored, its loss records are
//! consistent with what the sink holds, and — with `--keys` — it is sealed by
//! a key of the keyring that may vouch for its records.
//!
//! A chain keyed with `integrity.key_env` cannot be followed without that key,
//! so continuity is checked for emitters whose seq 1 shows a plain SHA-256
//! chain; seals are checked whatever the chain.

use crate::keys::Keyring;
use crate::sink::batch::{Emitter, Incoming};
use crate::sink::emitters::Emitters;
use mesh_audit::audit::hex;
use mesh_audit::deliver::chain::GENESIS;
use mesh_audit::deliver::seal;
use std::collections::BTreeMap;

pub fn check(
    batch: &[Incoming],
    fresh: &[&Incoming],
    emitters: &Emitters,
    keys: Option<&Keyring>,
) -> Result<(), String> {
    let mut groups: BTreeMap<Emitter, Vec<&Incoming>> = BTreeMap::new();
    for r in fresh {
        groups.entry(r.emitter).or_default().push(r);
    }
    for (e, mut records) in groups {
        records.sort_by_key(|r| r.seq);
        let all: BTreeMap<u64, &Incoming> = batch
            .iter()
            .filter(|r| r.emitter == e)
            .map(|r| (r.seq, r))
            .collect();
        continuity(e, &records, &all, emitters)?;
        for r in &records {
            loss(e, r, &all)?;
        }
        if let Some(keys) = keys {
            sealed(e, &records, keys)?;
        }
    }
    Ok(())
}

fn continuity(
    e: Emitter,
    records: &[&Incoming],
    all: &BTreeMap<u64, &Incoming>,
    emitters: &Emitters,
) -> Result<(), String> {
    let unkeyed = emitters.unkeyed(e)
        || all
            .get(&1)
            .is_some_and(|r| r.prev.as_deref() == Some(GENESIS));
    if !unkeyed {
        return Ok(());
    }
    let head = emitters.head(e);
    for r in records {
        let predecessor = if r.seq == 1 {
            None
        } else if let Some(p) = all.get(&(r.seq - 1)) {
            Some(p.sha)
        } else {
            head.filter(|(high, _)| *high == r.seq - 1)
                .map(|(_, sha)| sha)
        };
        let expected = match (r.seq, predecessor) {
            (1, _) => GENESIS.to_string(),
            (_, Some(sha)) => hex(&sha),
            (_, None) => continue,
        };
        if r.prev.as_deref() != Some(expected.as_str()) {
            let what = if r.prev.is_none() {
                "has no prev"
            } else {
                "prev does not link to the stored chain"
            };
            return Err(format!("emitter {e} seq {}: {what}", r.seq));
        }
    }
    Ok(())
}

fn loss(e: Emitter, r: &Incoming, all: &BTreeMap<u64, &Incoming>) -> Result<(), String> {
    let f = &r.facts;
    if f.kind != "loss" {
        return Ok(());
    }
    let bad = |what: String| Err(format!("emitter {e} seq {}: loss record {what}", r.seq));
    let count = match f.count {
        Some(c) if c >= 1 => c,
        _ => return bad("has no count of at least 1".into()),
    };
    match (f.reason.as_deref(), f.from_seq, f.to_seq) {
        (Some("buffer_full" | "rate_limited"), None, None) => Ok(()),
        (Some("rejected"), Some(from), Some(to)) => {
            if from == 0 || from > to || to >= r.seq {
                return bad(format!("names seqs {from}..{to}, which do not precede it"));
            }
            // At most the range: an OTLP partial success says how many
            // records of the batch were refused, not which.
            if count > to - from + 1 {
                return bad(format!("counts {count} records for seqs {from}..{to}"));
            }
            // Records of the range stored by another write are no contradiction:
            // after a 409 the proxy truthfully reports its batch rejected.
            if let Some(s) = (from..=to).find(|s| all.contains_key(s)) {
                return bad(format!(
                    "says seqs {from}..{to} were rejected, but seq {s} is in the same batch"
                ));
            }
            Ok(())
        }
        (Some("rejected"), _, _) => bad("with reason rejected needs from_seq and to_seq".into()),
        (Some("buffer_full" | "rate_limited"), _, _) => {
            bad("names a seq range only reason rejected has".into())
        }
        _ => bad("has no known reason".into()),
    }
}

fn sealed(e: Emitter, records: &[&Incoming], keys: &Keyring) -> Result<(), String> {
    let mut covered_to = 0;
    let mut key_for: Vec<(u64, u64, &crate::keys::Key)> = Vec::new();
    for r in records.iter().filter(|r| r.facts.kind == "seal") {
        let s = seal::parse(&r.line).map_err(|why| format!("emitter {e} seq {}: {why}", r.seq))?;
        let Some(signed) = &s.signed else {
            return Err(format!("emitter {e} seq {}: the seal is not signed", r.seq));
        };
        let Some(key) = keys.get(&signed.key_id) else {
            return Err(format!(
                "emitter {e} seq {}: sealed by key {} that is not in --keys",
                r.seq,
                crate::escape::text(&signed.key_id)
            ));
        };
        if !seal::verify(signed, &key.public) {
            return Err(format!(
                "emitter {e} seq {}: the seal's signature does not verify with key {}",
                r.seq, key.id
            ));
        }
        key_for.push((s.from_seq, r.seq, key));
        covered_to = covered_to.max(r.seq);
    }
    for r in records {
        if r.seq > covered_to {
            return Err(format!(
                "emitter {e} seq {}: not covered by a seal in the batch",
                r.seq
            ));
        }
        if r.facts.kind != "request" {
            continue;
        }
        let key = key_for
            .iter()
            .find(|(from, to, _)| (*from..=*to).contains(&r.seq))
            .map(|(_, _, k)| *k);
        if let Some(key) = key {
            if !key.may_vouch_for(r.facts.destination.as_deref()) {
                return Err(format!(
                    "emitter {e} seq {}: key {} may not vouch for destination {} (only {})",
                    r.seq,
                    key.id,
                    crate::escape::text(r.facts.destination.as_deref().unwrap_or("(none)")),
                    crate::escape::text(&key.shown.join(" "))
                ));
            }
        }
    }
    Ok(())
}
