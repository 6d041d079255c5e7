//! The verdict on one emitter: its chain facts, seals and emitter id turned
//! into problems, strictly when a key was given.

use super::chain::{self, Gap};
use super::entry::{Entry, Loss};
use super::outcome::{EmitterOutcome, Mode, Problem};
use super::{seals, text};
use crate::keys::Keyring;
use mesh_audit::audit::record::LossReason;

/// Problems listed per emitter before the rest are only counted.
const MAX_PROBLEMS: usize = 1000;

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
pub fn check_emitter(
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
