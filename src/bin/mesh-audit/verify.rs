//! `mesh-audit verify`: per emitter, sorts records by `seq`, finds gaps (and
//! which of them `rejected` loss records explain), duplicates, and checks each
//! `prev` against the link of the same emitter's previous record.
//!
//! Only each record's link (32 bytes) is kept, never its text, so files far
//! larger than memory verify.

use mesh_audit::audit::hex;
use mesh_audit::audit::record::{Kind, LossReason, Record};
use mesh_audit::deliver::chain::{genesis, link};
use mesh_audit::digest::HmacKey;
use serde::Serialize;
use std::collections::BTreeMap;

struct Entry {
    seq: u64,
    line: usize,
    link: [u8; 32],
    prev: Option<String>,
    loss: Option<Loss>,
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

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Gap {
    pub from_seq: u64,
    pub to_seq: u64,
    /// The `rejected` loss record that explains the gap, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_seq: Option<u64>,
}

#[derive(Serialize, Debug)]
pub struct Duplicate {
    pub seq: u64,
    pub lines: Vec<usize>,
    /// All copies are byte-identical (a batch stored twice), not a conflict.
    pub identical: bool,
    /// For a conflict: the line of the copy the next seq's `prev` links to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked_line: Option<usize>,
}

#[derive(Serialize, Debug)]
pub struct Mismatch {
    pub seq: u64,
    pub line: usize,
    /// What `prev` should be; absent when the predecessor has several different copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What `prev` is; absent when the record has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct Unchecked {
    pub seq: u64,
    pub line: usize,
    /// Whether the missing predecessor is explained by a `rejected` loss record.
    pub predecessor_explained: bool,
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
    /// Records carry `prev` (integrity.chain on).
    pub chained: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    pub explained_gaps: Vec<Gap>,
    pub unexplained_gaps: Vec<Gap>,
    pub duplicates: Vec<Duplicate>,
    pub mismatches: Vec<Mismatch>,
    pub unchecked: Vec<Unchecked>,
    pub losses: Vec<Loss>,
}

#[derive(Serialize, Debug)]
pub struct Outcome {
    pub ok: bool,
    pub records: usize,
    /// Links were checked as HMAC-SHA256 with a key.
    pub keyed: bool,
    pub emitters: Vec<EmitterOutcome>,
    pub bad_lines: Vec<BadLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

pub struct Verifier {
    key: Option<Vec<u8>>,
    emitters: BTreeMap<String, Vec<Entry>>,
    bad_lines: Vec<BadLine>,
    records: usize,
}

impl Verifier {
    pub fn new(key: Option<Vec<u8>>) -> Self {
        Verifier {
            key,
            emitters: BTreeMap::new(),
            bad_lines: Vec::new(),
            records: 0,
        }
    }

    pub fn add_line(&mut self, line: usize, bytes: &[u8]) {
        let record: Record = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => return self.bad(line, format!("not an audit record: {e}")),
        };
        let loss_reason = record.loss_reason();
        let (Some(emitter), Some(seq)) = (record.emitter, record.seq) else {
            return self.bad(line, "record has no emitter or no seq".into());
        };
        if seq == 0 {
            return self.bad(line, "seq 0 is not a valid seq".into());
        }
        let loss = match (record.kind, loss_reason) {
            (Kind::Request | Kind::Seal | Kind::Close, _) => None,
            (Kind::Loss, None) => return self.bad(line, "loss record has no reason".into()),
            (Kind::Loss, Some(reason)) => Some(Loss {
                seq,
                reason,
                count: record.count.unwrap_or(0),
                from_seq: record.from_seq,
                to_seq: record.to_seq,
            }),
        };
        self.records += 1;
        let entry = Entry {
            seq,
            line,
            link: link(self.key.as_deref(), bytes),
            prev: record.prev,
            loss,
        };
        self.emitters.entry(emitter).or_default().push(entry);
    }

    fn bad(&mut self, line: usize, error: String) {
        self.bad_lines.push(BadLine { line, error });
    }

    pub fn finish(self) -> Outcome {
        let mut links_checked = 0;
        let mut links_failed = 0;
        let mut emitters = Vec::new();
        for (emitter, mut entries) in self.emitters {
            entries.sort_by_key(|e| (e.seq, e.line));
            let start = genesis(self.key.as_deref().map(HmacKey::new).as_ref(), &emitter);
            let (outcome, checked, failed) = check_emitter(emitter, &start, &entries);
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
            emitters,
            bad_lines: self.bad_lines,
            hint,
        }
    }
}

/// Checks one emitter's records, sorted by (seq, line). Also returns how many
/// links after seq 1 were checked and how many of those failed.
fn check_emitter(
    emitter: String,
    start: &str,
    entries: &[Entry],
) -> (EmitterOutcome, usize, usize) {
    let groups: Vec<&[Entry]> = entries.chunk_by(|a, b| a.seq == b.seq).collect();
    let losses: Vec<Loss> = entries.iter().filter_map(|e| e.loss.clone()).collect();
    let rejected: Vec<Gap> = losses
        .iter()
        .filter(|l| l.reason == LossReason::Rejected)
        .filter_map(|l| match (l.from_seq, l.to_seq) {
            (Some(from_seq), Some(to_seq)) if from_seq <= to_seq => Some(Gap {
                from_seq,
                to_seq,
                loss_seq: Some(l.seq),
            }),
            _ => None,
        })
        .collect();

    let mut explained_gaps = Vec::new();
    let mut unexplained_gaps = Vec::new();
    let mut expected_next = 1;
    for g in &groups {
        if g[0].seq > expected_next {
            let (explained, unexplained) = explain(expected_next, g[0].seq - 1, &rejected);
            explained_gaps.extend(explained);
            unexplained_gaps.extend(unexplained);
        }
        expected_next = g[0].seq + 1;
    }

    let duplicates: Vec<Duplicate> = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.len() > 1)
        .map(|(i, g)| {
            let identical = g.iter().all(|e| e.link == g[0].link);
            let next: Vec<&str> = groups
                .get(i + 1)
                .filter(|n| n[0].seq == g[0].seq + 1)
                .map(|n| n.iter().filter_map(|e| e.prev.as_deref()).collect())
                .unwrap_or_default();
            let linked_line = if identical {
                None
            } else {
                g.iter()
                    .find(|e| next.contains(&hex(&e.link).as_str()))
                    .map(|e| e.line)
            };
            Duplicate {
                seq: g[0].seq,
                lines: g.iter().map(|e| e.line).collect(),
                identical,
                linked_line,
            }
        })
        .collect();

    let chained = entries.iter().any(|e| e.prev.is_some());
    let mut mismatches = Vec::new();
    let mut unchecked = Vec::new();
    let (mut checked, mut failed) = (0, 0);
    if chained {
        for (i, g) in groups.iter().enumerate() {
            let seq = g[0].seq;
            let before: Option<&[Entry]> = i
                .checked_sub(1)
                .map(|j| groups[j])
                .filter(|p| p[0].seq + 1 == seq);
            let allowed: Vec<String> = match before {
                _ if seq == 1 => vec![start.to_string()],
                Some(p) => p.iter().map(|e| hex(&e.link)).collect(),
                None => {
                    let explained = explained_gaps.iter().any(|gap: &Gap| gap.to_seq == seq - 1);
                    unchecked.extend(g.iter().map(|e| Unchecked {
                        seq,
                        line: e.line,
                        predecessor_explained: explained,
                    }));
                    continue;
                }
            };
            for e in g.iter() {
                let good = e.prev.as_ref().is_some_and(|p| allowed.contains(p));
                if seq > 1 {
                    checked += 1;
                    failed += usize::from(!good);
                }
                if !good {
                    let mut distinct = allowed.clone();
                    distinct.sort();
                    distinct.dedup();
                    let expected = (distinct.len() == 1).then(|| distinct.remove(0));
                    mismatches.push(Mismatch {
                        seq,
                        line: e.line,
                        expected,
                        found: e.prev.clone(),
                    });
                }
            }
        }
    }

    let first_bad_seq = unexplained_gaps
        .iter()
        .map(|g| g.from_seq)
        .chain(duplicates.iter().filter(|d| !d.identical).map(|d| d.seq))
        .chain(mismatches.iter().map(|m| m.seq))
        .min();
    let outcome = EmitterOutcome {
        emitter,
        ok: first_bad_seq.is_none(),
        records: entries.len(),
        first_seq: entries.first().map_or(0, |e| e.seq),
        last_seq: entries.last().map_or(0, |e| e.seq),
        chained,
        first_bad_seq,
        explained_gaps,
        unexplained_gaps,
        duplicates,
        mismatches,
        unchecked,
        losses,
    };
    (outcome, checked, failed)
}

/// Splits the missing range `from..=to` into the parts `rejected` ranges
/// explain and the parts nothing explains.
fn explain(from: u64, to: u64, rejected: &[Gap]) -> (Vec<Gap>, Vec<Gap>) {
    let mut covering: Vec<&Gap> = rejected
        .iter()
        .filter(|r| r.to_seq >= from && r.from_seq <= to)
        .collect();
    covering.sort_by_key(|r| r.from_seq);
    let (mut explained, mut unexplained) = (Vec::new(), Vec::new());
    let mut cursor = from;
    for r in covering {
        if r.to_seq < cursor {
            continue;
        }
        if r.from_seq > cursor {
            unexplained.push(Gap {
                from_seq: cursor,
                to_seq: r.from_seq - 1,
                loss_seq: None,
            });
            cursor = r.from_seq;
        }
        let end = r.to_seq.min(to);
        explained.push(Gap {
            from_seq: cursor,
            to_seq: end,
            loss_seq: r.loss_seq,
        });
        cursor = end + 1;
        if cursor > to {
            break;
        }
    }
    if cursor <= to {
        unexplained.push(Gap {
            from_seq: cursor,
            to_seq: to,
            loss_seq: None,
        });
    }
    (explained, unexplained)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(from_seq: u64, to_seq: u64, loss_seq: Option<u64>) -> Gap {
        Gap {
            from_seq,
            to_seq,
            loss_seq,
        }
    }

    #[test]
    fn a_gap_is_split_into_explained_and_unexplained_parts() {
        let rejected = [gap(4, 5, Some(20)), gap(8, 12, Some(21))];
        let (explained, unexplained) = explain(3, 10, &rejected);
        assert_eq!(explained, vec![gap(4, 5, Some(20)), gap(8, 10, Some(21))]);
        assert_eq!(unexplained, vec![gap(3, 3, None), gap(6, 7, None)]);
    }

    #[test]
    fn overlapping_rejections_explain_a_gap_once() {
        let rejected = [gap(1, 6, Some(9)), gap(3, 4, Some(10))];
        let (explained, unexplained) = explain(2, 6, &rejected);
        assert_eq!(explained, vec![gap(2, 6, Some(9))]);
        assert!(unexplained.is_empty());
    }

    #[test]
    fn a_gap_without_rejections_is_unexplained() {
        assert_eq!(explain(7, 7, &[]), (vec![], vec![gap(7, 7, None)]));
    }
}
