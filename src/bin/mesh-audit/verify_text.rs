//! The human-readable form of a verification [`Outcome`]: one block per
//! emitter, problems in capitals, a summary line last.

use crate::verify::{EmitterOutcome, Outcome};
use mesh_audit::audit::record::LossReason;
use std::fmt::Write;

pub fn render(o: &Outcome) -> String {
    let mut out = String::new();
    for e in &o.emitters {
        emitter(&mut out, e);
    }
    for b in &o.bad_lines {
        let _ = writeln!(out, "BAD LINE {}: {}", b.line, b.error);
    }
    if let Some(hint) = &o.hint {
        let _ = writeln!(out, "hint: {hint}");
    }
    let count = |f: fn(&EmitterOutcome) -> usize| o.emitters.iter().map(f).sum::<usize>();
    let gaps = count(|e| e.unexplained_gaps.len());
    let conflicts = count(|e| e.duplicates.iter().filter(|d| !d.identical).count());
    let mismatches = count(|e| e.mismatches.len());
    let _ = writeln!(
        out,
        "summary: {} records from {} emitters ({}); {} unexplained gaps, {} conflicting duplicates, {} hash mismatches, {} bad lines: {}",
        o.records,
        o.emitters.len(),
        if o.keyed { "HMAC-SHA256 chain" } else { "SHA-256 chain" },
        gaps,
        conflicts,
        mismatches,
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
        e.emitter, e.records, e.first_seq, e.last_seq
    );
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
    match e.first_bad_seq {
        Some(s) => {
            let _ = writeln!(out, "  FAILED: first bad seq {s}");
        }
        None => {
            let _ = writeln!(out, "  ok");
        }
    }
}

fn range(from: u64, to: u64) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from}..{to}")
    }
}
