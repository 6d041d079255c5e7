//! The human-readable form of a verification [`Outcome`]: one block per
//! emitter, problems in capitals, what the result proves, a summary line
//! last. Everything read from the trail is escaped ([`crate::escape`]).

use super::outcome::{EmitterOutcome, Mode, Outcome};
use crate::escape;
use mesh_audit::audit::record::LossReason;
use std::fmt::Write;

/// What a passing result proves in `mode`, and what it does not.
pub fn proves(mode: Mode) -> &'static str {
    match mode {
        Mode::Unkeyed => "no key given (--keys, --key-env): this trail is checked against accidental damage only; anyone who can write it can edit, insert or delete records and recompute every prev and seal. Seal signatures were not checked.",
        Mode::Hmac => "HMAC chain checked with --key-env: without that key nobody can edit, insert, delete, reorder or forge records, losses, seals or emitters; whoever holds the key (every proxy, and this auditor) can. Seal signatures were not checked (pass --keys). Deleting an emitter's newest batches or a whole emitter is not visible without the sink's digests.",
        Mode::Signatures => "seals checked against the keyring: without a listed signing key nobody can edit, insert, delete, reorder or forge records, losses, seals or emitters, and one key can vouch only for what its patterns allow. Deleting an emitter's newest batches or a whole emitter is not visible without the sink's digests.",
    }
}

pub fn genesis_detail(mode: Mode) -> String {
    match mode {
        Mode::Hmac | Mode::Signatures => {
            "prev of seq 1 is not the genesis value (HMAC of the emitter with --key-env, else 64 zeros): a forged emitter, or another key".into()
        }
        Mode::Unkeyed => "prev of seq 1 is not 64 zeros (pass --key-env for a keyed chain)".into(),
    }
}

pub fn render(o: &Outcome) -> String {
    let mut out = String::new();
    for e in &o.emitters {
        emitter(&mut out, e);
    }
    for b in &o.bad_lines {
        let _ = writeln!(out, "BAD LINE {}: {}", b.line, escape::text(&b.error));
    }
    if let Some(hint) = &o.hint {
        let _ = writeln!(out, "hint: {hint}");
    }
    let keys = o
        .keyring_keys
        .map_or(String::new(), |n| format!(" ({n} keys)"));
    let _ = writeln!(out, "integrity{keys}: {}", o.proves);
    let count = |f: fn(&EmitterOutcome) -> usize| o.emitters.iter().map(f).sum::<usize>();
    let gaps = count(|e| e.unexplained_gaps.len());
    let conflicts = count(|e| e.duplicates.iter().filter(|d| !d.identical).count());
    let mismatches = count(|e| e.mismatches.len());
    let problems = count(|e| e.problems.len() + e.problems_omitted);
    let open = count(|e| usize::from(!e.closed));
    let _ = writeln!(
        out,
        "summary: {} records from {} emitters ({}, {} open); {} unexplained gaps, {} conflicting duplicates, {} hash mismatches, {} problems, {} bad lines: {}",
        o.records,
        o.emitters.len(),
        match (o.mode, o.keyed) {
            (Mode::Signatures, true) => "signed seals, HMAC-SHA256 chain",
            (Mode::Signatures, false) => "signed seals, SHA-256 chain",
            (_, true) => "HMAC-SHA256 chain",
            (_, false) => "SHA-256 chain",
        },
        open,
        gaps,
        conflicts,
        mismatches,
        problems,
        o.bad_lines.len(),
        if o.ok { "OK" } else { "FAILED" }
    );
    out
}

fn emitter(out: &mut String, e: &EmitterOutcome) {
    let chain = if e.chained {
        "chained"
    } else {
        "not chained: integrity not checkable"
    };
    let _ = writeln!(
        out,
        "emitter {}: {} records, seq {}..{}, {chain}",
        escape::text(&e.emitter),
        e.records,
        e.first_seq,
        e.last_seq
    );
    let keys = if e.signed_by.is_empty() {
        String::new()
    } else {
        format!(", signed by {}", e.signed_by.join(", "))
    };
    match e.sealed_through {
        0 => {
            let _ = writeln!(out, "  no valid seal ({} seals)", e.seals);
        }
        n => {
            let _ = writeln!(out, "  sealed through seq {n}{keys}");
        }
    }
    match (&e.close_reason, e.open_since) {
        (Some(reason), _) => {
            let _ = writeln!(out, "  closed ({})", escape::text(reason));
        }
        (None, Some(since)) => {
            let _ = writeln!(
                out,
                "  open since seq {since}: no close record; records after it may have been lost (the proxy's records_buffered gauge bounds how many)"
            );
        }
        (None, None) => {}
    }
    if let Some(from) = e.unsealed_from {
        let _ = writeln!(
            out,
            "  unsealed: seq {from}..{} (no valid seal after them)",
            e.last_seq
        );
    }
    for g in &e.explained_gaps {
        let loss = g
            .loss_seq
            .map_or(String::new(), |s| format!(", loss record seq {s}"));
        let _ = writeln!(
            out,
            "  explained gap: seq {} (rejected by the sink{loss})",
            range(g.from_seq, g.to_seq)
        );
    }
    for l in e.losses.iter().filter(|l| l.reason != LossReason::Rejected) {
        let why = match l.reason {
            LossReason::RateLimited => "rate_limited",
            _ => "buffer_full",
        };
        let _ = writeln!(
            out,
            "  loss: {} records never admitted ({why}, loss record seq {})",
            l.count, l.seq
        );
    }
    for g in &e.unexplained_gaps {
        let _ = writeln!(
            out,
            "  UNEXPLAINED GAP: seq {} missing",
            range(g.from_seq, g.to_seq)
        );
    }
    for d in &e.duplicates {
        let lines = d
            .lines
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if d.identical {
            let _ = writeln!(
                out,
                "  duplicate: seq {} stored {} times, identical (lines {lines})",
                d.seq,
                d.lines.len()
            );
        } else {
            let linked = match d.linked_line {
                Some(l) => format!("; seq {} links to line {l}", d.seq + 1),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "  CONFLICT: seq {} has {} different records (lines {lines}){linked}",
                d.seq,
                d.lines.len()
            );
        }
    }
    for m in &e.mismatches {
        let what = match (&m.found, m.seq) {
            (None, _) => "has no prev".to_string(),
            (Some(_), 1) => {
                "prev is not the genesis value (64 zeros, or keyed with --key-env)".to_string()
            }
            (Some(_), s) => format!(
                "prev does not match seq {}: seq {} was altered, or seq {s} was forged or altered",
                s - 1,
                s - 1
            ),
        };
        let _ = writeln!(
            out,
            "  HASH MISMATCH: seq {} (line {}): {what}",
            m.seq, m.line
        );
    }
    for u in &e.unchecked {
        let why = if u.predecessor_explained {
            "explained gap"
        } else {
            "unexplained gap"
        };
        let _ = writeln!(
            out,
            "  unchecked: seq {} (line {}): its predecessor is missing ({why})",
            u.seq, u.line
        );
    }
    // Gaps, conflicts and mismatches have their own lines above.
    let listed = ["gap", "conflict", "prev_mismatch", "bad_genesis"];
    for p in e.problems.iter().filter(|p| !listed.contains(&p.reason)) {
        let _ = writeln!(
            out,
            "  {}: seq {}: {}",
            p.reason.to_uppercase(),
            p.seq,
            escape::text(&p.detail)
        );
    }
    if e.problems_omitted > 0 {
        let _ = writeln!(out, "  … and {} more problems", e.problems_omitted);
    }
    match e.first_bad_seq {
        Some(s) => {
            let _ = writeln!(out, "  FAILED: first bad seq {s}");
        }
        None => {
            let _ = writeln!(out, "  ok");
        }
    }
}

pub fn range(from: u64, to: u64) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from}..{to}")
    }
}
