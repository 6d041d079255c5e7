//! What the sink remembers per emitter, in bounded memory: who owns it, the
//! highest stored seq (the watermark) with its record's hash, and a small
//! window of short hashes of the most recent seqs, so a retried batch is told
//! from a conflicting one without keeping a set of every seq ever stored.
//!
//! A seq inside the window is classified exactly: new (a late batch filling a
//! hole), a byte-identical duplicate, or a conflict. A seq below the window
//! cannot be compared any more and is refused as a conflict: the filter sends
//! in seq order with at most `max_in_flight` batches outstanding, so a genuine
//! retry is always recent.

use crate::sink::batch::{Emitter, Incoming};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    New,
    Duplicate,
    /// Different bytes for a stored seq.
    Conflict,
    /// Below the window: cannot be told from a conflict.
    TooOld,
}

struct State {
    owner: u32,
    /// The segment holding the record at `high` (0 for a single file).
    segment: u32,
    /// Seq 1 was stored with a `prev` of 64 zeros: a plain SHA-256 chain the
    /// sink can follow without a key.
    unkeyed: bool,
    low: u64,
    high: u64,
    /// SHA-256 of the record at `high`: the head a continuation must link to.
    head: [u8; 32],
    /// Short hashes (nonzero) of seqs `high - slots.len() + 1 ..= high`,
    /// indexed by `seq % slots.len()`; 0 = not stored.
    slots: Box<[u32]>,
}

fn short(sha: &[u8; 32]) -> u32 {
    u32::from_le_bytes([sha[0], sha[1], sha[2], sha[3]]) | 1
}

impl State {
    fn slot(&self, seq: u64) -> Option<usize> {
        let len = self.slots.len() as u64;
        (seq <= self.high && self.high - seq < len).then_some((seq % len) as usize)
    }

    fn verdict(&self, seq: u64, sha: &[u8; 32]) -> Verdict {
        if seq > self.high {
            return Verdict::New;
        }
        match self.slot(seq) {
            None if seq < self.low => Verdict::New,
            None => Verdict::TooOld,
            Some(i) if self.slots[i] == 0 => Verdict::New,
            Some(i) if self.slots[i] == short(sha) => Verdict::Duplicate,
            Some(_) => Verdict::Conflict,
        }
    }

    /// Grows the window (up to `max`) so it spans `low..=high`.
    fn grow(&mut self, low: u64, high: u64, max: u64) {
        let want = (high - low + 1).min(max).next_power_of_two().min(max);
        let len = self.slots.len() as u64;
        if want <= len {
            return;
        }
        let mut slots = vec![0u32; want as usize].into_boxed_slice();
        if len > 0 {
            for seq in self.high.saturating_sub(len - 1).max(1)..=self.high {
                if let Some(i) = self.slot(seq) {
                    slots[(seq % want) as usize] = self.slots[i];
                }
            }
        }
        self.slots = slots;
    }

    fn insert(&mut self, seq: u64, sha: &[u8; 32], segment: u32, max: u64) {
        let low = self.low.min(seq);
        let high = self.high.max(seq);
        self.grow(low, high, max);
        let len = self.slots.len() as u64;
        if seq > self.high {
            let clear = (seq - self.high).min(len);
            for s in seq - clear + 1..=seq {
                self.slots[(s % len) as usize] = 0;
            }
            self.high = seq;
            self.head = *sha;
            self.segment = segment;
        }
        self.low = low;
        if let Some(i) = self.slot(seq) {
            self.slots[i] = short(sha);
        }
    }
}

/// Every emitter's state, and the identities that own them.
pub struct Emitters {
    states: HashMap<Emitter, State>,
    identities: Vec<String>,
    ids: HashMap<String, u32>,
    window: u64,
}

/// The stored head of an emitter, as a digest lists it.
pub struct Head {
    pub emitter: Emitter,
    pub high: u64,
    pub sha: [u8; 32],
    pub segment: u32,
}

impl Emitters {
    pub fn new(window: u64) -> Emitters {
        Emitters {
            states: HashMap::new(),
            identities: Vec::new(),
            ids: HashMap::new(),
            window: window.max(1).next_power_of_two(),
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn contains(&self, e: Emitter) -> bool {
        self.states.contains_key(&e)
    }

    fn intern(&mut self, identity: &str) -> u32 {
        if let Some(&id) = self.ids.get(identity) {
            return id;
        }
        let id = self.identities.len() as u32;
        self.identities.push(identity.to_string());
        self.ids.insert(identity.to_string(), id);
        id
    }

    /// The identity that first wrote `e`, if any.
    pub fn owner(&self, e: Emitter) -> Option<&str> {
        let s = self.states.get(&e)?;
        self.identities.get(s.owner as usize).map(String::as_str)
    }

    /// Binds a not yet known emitter to `identity` (its state starts empty).
    pub fn bind(&mut self, e: Emitter, identity: &str) {
        let owner = self.intern(identity);
        let state = self.states.entry(e).or_insert(State {
            owner,
            segment: 0,
            unkeyed: false,
            low: u64::MAX,
            high: 0,
            head: [0; 32],
            slots: Box::new([]),
        });
        state.owner = owner;
    }

    pub fn verdict(&self, r: &Incoming) -> Verdict {
        self.states
            .get(&r.emitter)
            .map_or(Verdict::New, |s| s.verdict(r.seq, &r.sha))
    }

    /// The highest stored seq of `e` and its record's SHA-256.
    pub fn head(&self, e: Emitter) -> Option<(u64, [u8; 32])> {
        self.states
            .get(&e)
            .filter(|s| s.high > 0)
            .map(|s| (s.high, s.head))
    }

    /// Records that `r` is stored; the emitter must be bound.
    pub fn insert(&mut self, r: &Incoming, segment: u32) {
        let window = self.window;
        if let Some(s) = self.states.get_mut(&r.emitter) {
            s.insert(r.seq, &r.sha, segment, window);
            if r.seq == 1 && r.prev.as_deref() == Some(mesh_audit::deliver::chain::GENESIS) {
                s.unkeyed = true;
            }
        }
    }

    /// Whether `e`'s chain is known to be plain SHA-256 (see `State::unkeyed`).
    pub fn unkeyed(&self, e: Emitter) -> bool {
        self.states.get(&e).is_some_and(|s| s.unkeyed)
    }

    pub fn heads(&self) -> Vec<Head> {
        let mut heads: Vec<Head> = self
            .states
            .iter()
            .filter(|(_, s)| s.high > 0)
            .map(|(e, s)| Head {
                emitter: *e,
                high: s.high,
                sha: s.head,
                segment: s.segment,
            })
            .collect();
        heads.sort_by_key(|h| h.emitter);
        heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn rec(seq: u64, body: &str) -> Incoming {
        let line = format!("{seq}{body}").into_bytes();
        Incoming {
            emitter: Emitter(7),
            seq,
            sha: Sha256::digest(&line).into(),
            line,
            prev: None,
            facts: Default::default(),
        }
    }

    fn emitters(window: u64) -> Emitters {
        let mut e = Emitters::new(window);
        e.bind(Emitter(7), "spiffe://a");
        e
    }

    #[test]
    fn retries_are_duplicates_and_different_bytes_are_conflicts() {
        let mut e = emitters(8);
        for seq in 1..=5 {
            e.insert(&rec(seq, "x"), 0);
        }
        assert_eq!(e.verdict(&rec(3, "x")), Verdict::Duplicate);
        assert_eq!(e.verdict(&rec(3, "forged")), Verdict::Conflict);
        assert_eq!(e.verdict(&rec(6, "x")), Verdict::New);
        assert_eq!(e.head(Emitter(7)).unwrap().0, 5);
        assert_eq!(e.owner(Emitter(7)), Some("spiffe://a"));
    }

    #[test]
    fn a_late_batch_fills_a_hole_inside_the_window() {
        let mut e = emitters(16);
        for seq in (1..=3).chain(7..=9) {
            e.insert(&rec(seq, "x"), 0);
        }
        assert_eq!(e.verdict(&rec(5, "x")), Verdict::New);
        e.insert(&rec(5, "x"), 0);
        assert_eq!(e.verdict(&rec(5, "x")), Verdict::Duplicate);
        assert_eq!(e.verdict(&rec(5, "y")), Verdict::Conflict);
        assert_eq!(e.head(Emitter(7)).unwrap().0, 9, "the watermark stays");
    }

    #[test]
    fn below_the_window_nothing_can_be_compared() {
        let mut e = emitters(4);
        for seq in 1..=100 {
            e.insert(&rec(seq, "x"), 0);
        }
        assert_eq!(e.verdict(&rec(97, "x")), Verdict::Duplicate);
        assert_eq!(e.verdict(&rec(96, "x")), Verdict::TooOld);
        assert_eq!(e.verdict(&rec(96, "y")), Verdict::TooOld);
    }

    #[test]
    fn the_window_grows_only_as_far_as_an_emitter_spans() {
        let mut e = emitters(1024);
        e.insert(&rec(1, "x"), 0);
        assert_eq!(e.states[&Emitter(7)].slots.len(), 1);
        for seq in 2..=40 {
            e.insert(&rec(seq, "x"), 0);
        }
        assert_eq!(e.states[&Emitter(7)].slots.len(), 64);
        for seq in 1..=40 {
            assert_eq!(e.verdict(&rec(seq, "x")), Verdict::Duplicate, "seq {seq}");
        }
    }

    #[test]
    fn an_emitter_first_seen_late_accepts_its_earlier_seqs() {
        let mut e = emitters(8);
        e.insert(&rec(501, "x"), 0);
        assert_eq!(e.verdict(&rec(1, "x")), Verdict::New);
        e.insert(&rec(499, "x"), 0);
        assert_eq!(e.verdict(&rec(499, "x")), Verdict::Duplicate);
    }
}
