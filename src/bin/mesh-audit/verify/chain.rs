//! The chain facts of one emitter's records, sorted by (seq, line): gaps
//! (and which of them `rejected` loss records explain), duplicates, and each
//! `prev` against the link of the previous record of the same emitter.

use super::entry::Entry;
use mesh_audit::audit::hex;
use serde::Serialize;

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

/// What the chain shows about one emitter.
pub struct Facts {
    pub explained_gaps: Vec<Gap>,
    pub unexplained_gaps: Vec<Gap>,
    pub duplicates: Vec<Duplicate>,
    pub mismatches: Vec<Mismatch>,
    pub unchecked: Vec<Unchecked>,
    /// Records carry `prev` (integrity.chain on).
    pub chained: bool,
    /// Links after seq 1 checked, and how many of those failed.
    pub checked: usize,
    pub failed: usize,
}

/// Checks one emitter's records, sorted by (seq, line); `start` is the
/// genesis `prev`, `rejected` the ranges trusted loss records explain.
pub fn check(start: &str, entries: &[Entry], rejected: &[Gap]) -> Facts {
    let groups: Vec<&[Entry]> = entries.chunk_by(|a, b| a.seq == b.seq).collect();
    let mut explained_gaps = Vec::new();
    let mut unexplained_gaps = Vec::new();
    let mut expected_next = 1;
    for g in &groups {
        if g[0].seq > expected_next {
            let (explained, unexplained) = explain(expected_next, g[0].seq - 1, rejected);
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

    Facts {
        explained_gaps,
        unexplained_gaps,
        duplicates,
        mismatches,
        unchecked,
        chained,
        checked,
        failed,
    }
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
