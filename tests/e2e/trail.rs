//! What the sink holds, read as an auditor would: per emitter, by `seq`,
//! with retried copies set aside and the hash chain checked.

use super::sha256_hex;
use super::sink::{Delivery, Record};
use std::collections::BTreeMap;
use std::time::Instant;

const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The acknowledged records of one emitter.
#[derive(Debug, Default)]
pub struct Emitter {
    /// One record per `seq`, in `seq` order.
    pub records: Vec<Record>,
    /// Records that arrived again after a first acknowledged copy.
    pub duplicates: usize,
    /// Records that arrived after one with a higher `seq`.
    pub out_of_order: usize,
    /// When the sink acknowledged each `seq` first.
    pub first_acked: BTreeMap<u64, Instant>,
}

impl Emitter {
    pub fn requests(&self) -> impl Iterator<Item = &Record> {
        self.records
            .iter()
            .filter(|r| r.str("/kind") == Some("request"))
    }

    pub fn losses(&self) -> impl Iterator<Item = &Record> {
        self.records
            .iter()
            .filter(|r| r.str("/kind") == Some("loss"))
    }

    /// `seq` runs 1, 2, … without a gap and every `prev` is the SHA-256 of
    /// the previous record's exact line.
    pub fn assert_complete_chain(&self, emitter: &str) {
        let mut prev = ZERO_HASH.to_string();
        for (i, rec) in self.records.iter().enumerate() {
            assert_eq!(
                rec.u64("/seq"),
                Some(i as u64 + 1),
                "emitter {emitter}: gap before {}",
                rec.line
            );
            assert_eq!(
                rec.str("/prev"),
                Some(prev.as_str()),
                "emitter {emitter}: broken chain at {}",
                rec.line
            );
            prev = sha256_hex(rec.line.as_bytes());
        }
    }
}

/// Reads every acknowledged delivery, in arrival order. A record that
/// comes twice must come with the very same bytes (a retry resends them).
pub fn trail(deliveries: &[Delivery]) -> BTreeMap<String, Emitter> {
    let mut emitters: BTreeMap<String, Emitter> = BTreeMap::new();
    let mut highest: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen: BTreeMap<(String, u64), String> = BTreeMap::new();
    for delivery in deliveries.iter().filter(|d| d.accepted()) {
        for rec in delivery.records() {
            let emitter = rec
                .str("/emitter")
                .unwrap_or_else(|| panic!("record without emitter: {}", rec.line))
                .to_string();
            let seq = rec
                .u64("/seq")
                .unwrap_or_else(|| panic!("record without seq: {}", rec.line));
            let entry = emitters.entry(emitter.clone()).or_default();
            if let Some(first) = seen.get(&(emitter.clone(), seq)) {
                assert_eq!(first, &rec.line, "seq {seq} of {emitter} came back changed");
                entry.duplicates += 1;
                continue;
            }
            seen.insert((emitter.clone(), seq), rec.line.clone());
            let top = highest.entry(emitter).or_default();
            if seq < *top {
                entry.out_of_order += 1;
            }
            *top = (*top).max(seq);
            entry.first_acked.insert(seq, delivery.at);
            entry.records.push(rec);
        }
    }
    for emitter in emitters.values_mut() {
        emitter.records.sort_by_key(|r| r.u64("/seq"));
    }
    emitters
}
