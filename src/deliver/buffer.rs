//! The per-worker buffer of admitted records (SPEC §2).
//!
//! An admitted record stays here until the sink acknowledges the batch that
//! carries it. Batches are cut from the head of the pending queue, sent at
//! most `max_in_flight` at a time, and a failed batch keeps its place: it is
//! retried with exponential backoff and jitter, and nothing newer is sent
//! while it waits, so delivery stays in `seq` order. Only a batch the sink
//! rejects as malformed is dropped, and the caller turns that into a `loss`
//! record. A sink that accepts a batch only in part (an OTLP partial
//! success) settles it too: the records it refused count as rejected, the
//! rest as delivered, so admitted = delivered + rejected + buffered holds.
//!
//! With seals (SPEC §4.1) the caller decides where a batch ends, because a
//! batch is "records, then their seal": it closes a group after pushing the
//! seal, and only closed groups are cut, one group per batch.

use super::reply::Outcome;
use std::collections::VecDeque;

/// Limits taken from `batch.*` and `retry.*`.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_buffered_records: usize,
    pub max_buffered_bytes: usize,
    pub max_in_flight: usize,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
}

impl Limits {
    pub fn from_config(c: &crate::config::Config) -> Limits {
        Limits {
            max_records: c.batch.max_records,
            max_bytes: c.batch.max_bytes,
            max_buffered_records: c.batch.max_buffered_records,
            max_buffered_bytes: c.batch.max_buffered_bytes,
            max_in_flight: c.batch.max_in_flight,
            backoff_base_ms: c.retry.backoff_base_ms,
            backoff_max_ms: c.retry.backoff_max_ms,
        }
    }
}

/// One admitted record: its sequence number and exact JSON bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub line: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// Cut but not (successfully) handed to the proxy yet.
    Ready,
    InFlight {
        token: u32,
    },
    /// Failed; may be sent again at `until_ms`.
    Backoff {
        until_ms: u64,
    },
}

#[derive(Debug)]
struct Batch {
    entries: Vec<Entry>,
    bytes: usize,
    attempts: u32,
    state: State,
}

impl Batch {
    fn first_seq(&self) -> u64 {
        self.entries.first().map_or(0, |e| e.seq)
    }
    fn last_seq(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.seq)
    }
}

/// What a reply did to the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    Delivered {
        records: usize,
    },
    WillRetry {
        records: usize,
        attempts: u32,
        delay_ms: u64,
    },
    Rejected {
        records: usize,
        from_seq: u64,
        to_seq: u64,
    },
    /// Acknowledged with `rejected` of its records refused: which ones, the
    /// sink does not say, only that they are among `from_seq..=to_seq`.
    PartlyRejected {
        delivered: usize,
        rejected: usize,
        from_seq: u64,
        to_seq: u64,
    },
    /// The token is not one of ours (a late or foreign reply): ignored.
    Unknown,
}

/// A batch to hand to the proxy now.
pub struct Send<'a> {
    pub id: u64,
    pub lines: Vec<&'a [u8]>,
    pub first_seq: u64,
    pub last_seq: u64,
    pub attempt: u32,
}

#[derive(Debug)]
pub struct Buffer {
    limits: Limits,
    pending: VecDeque<Entry>,
    pending_bytes: usize,
    /// Sealed mode: the (records, bytes) of each closed group at the head
    /// of `pending`, oldest first; the rest of `pending` is the open group.
    groups: Option<VecDeque<(usize, usize)>>,
    batches: VecDeque<Batch>,
    records: usize,
    bytes: usize,
}

impl Buffer {
    pub fn new(limits: Limits) -> Buffer {
        Buffer {
            limits,
            pending: VecDeque::new(),
            pending_bytes: 0,
            groups: None,
            batches: VecDeque::new(),
            records: 0,
            bytes: 0,
        }
    }

    /// New limits from a reconfiguration; what is held stays.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Switches to sealed batches: from now on a batch is exactly one group
    /// closed by [`Buffer::close_group`]. What is already pending forms the
    /// open group.
    pub fn seal_batches(&mut self) {
        if self.groups.is_none() {
            self.groups = Some(VecDeque::new());
        }
    }

    fn closed(&self) -> (usize, usize) {
        self.groups
            .iter()
            .flatten()
            .fold((0, 0), |(r, b), g| (r + g.0, b + g.1))
    }

    /// Records and bytes pushed since the last closed group.
    pub fn open_group(&self) -> (usize, usize) {
        let (records, bytes) = self.closed();
        (self.pending.len() - records, self.pending_bytes - bytes)
    }

    /// Closed groups not yet cut into a batch.
    pub fn closed_groups(&self) -> usize {
        self.groups.as_ref().map_or(0, VecDeque::len)
    }

    /// Ends the open group: it becomes the next batch (sealed mode only).
    pub fn close_group(&mut self) {
        let open = self.open_group();
        if let Some(groups) = self.groups.as_mut() {
            if open.0 > 0 {
                groups.push_back(open);
            }
        }
    }

    /// Records held (pending or in a batch), i.e. admitted but not settled.
    pub fn records(&self) -> usize {
        self.records
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    pub fn in_flight(&self) -> usize {
        self.batches
            .iter()
            .filter(|b| matches!(b.state, State::InFlight { .. }))
            .count()
    }

    /// Whether `extra` more records of `len` bytes in total would fit.
    pub fn fits(&self, extra: usize, len: usize) -> bool {
        self.records + extra <= self.limits.max_buffered_records
            && self.bytes + len <= self.limits.max_buffered_bytes
    }

    /// Whether the buffer is full: the next record, however small, would not fit.
    pub fn is_full(&self) -> bool {
        !self.fits(1, 1)
    }

    /// Adds an admitted record; the caller checked [`Buffer::fits`].
    pub fn push(&mut self, entry: Entry) {
        self.records += 1;
        self.bytes += entry.line.len();
        self.pending_bytes += entry.line.len();
        self.pending.push_back(entry);
    }

    /// Whether enough is pending to fill a batch.
    pub fn batch_full(&self) -> bool {
        self.pending.len() >= self.limits.max_records || self.pending_bytes >= self.limits.max_bytes
    }

    /// The next batch to send at `now_ms`, if any. `flush` sends a partial
    /// batch (interval elapsed); `draining` also ignores backoff timers and
    /// the in-flight limit (shutdown).
    pub fn next_send(&mut self, now_ms: u64, flush: bool, draining: bool) -> Option<Send<'_>> {
        if !draining && self.in_flight() >= self.limits.max_in_flight {
            return None;
        }
        let mut pick = None;
        for (i, b) in self.batches.iter().enumerate() {
            match b.state {
                State::InFlight { .. } => continue,
                State::Ready => {
                    pick = Some(i);
                    break;
                }
                State::Backoff { until_ms } if draining || now_ms >= until_ms => {
                    pick = Some(i);
                    break;
                }
                // Head of line: nothing newer goes out while a retry waits.
                State::Backoff { .. } => return None,
            }
        }
        let cut_due = match &self.groups {
            Some(groups) => !groups.is_empty(),
            None => !self.pending.is_empty() && (flush || draining || self.batch_full()),
        };
        let index = match pick {
            Some(i) => i,
            None if cut_due => {
                self.cut();
                self.batches.len() - 1
            }
            None => return None,
        };
        let b = self.batches.get(index)?;
        Some(Send {
            id: b.first_seq(),
            lines: b.entries.iter().map(|e| e.line.as_slice()).collect(),
            first_seq: b.first_seq(),
            last_seq: b.last_seq(),
            attempt: b.attempts + 1,
        })
    }

    fn cut(&mut self) {
        let mut entries = Vec::new();
        let mut bytes = 0;
        let group = self.groups.as_mut().and_then(VecDeque::pop_front);
        while let Some(e) = self.pending.front() {
            let len = e.line.len();
            let full = match group {
                Some((records, _)) => entries.len() >= records,
                None => {
                    entries.len() >= self.limits.max_records
                        || (!entries.is_empty() && bytes + len > self.limits.max_bytes)
                }
            };
            if full {
                break;
            }
            bytes += len;
            if let Some(e) = self.pending.pop_front() {
                entries.push(e);
            }
        }
        self.pending_bytes -= bytes;
        self.batches.push_back(Batch {
            entries,
            bytes,
            attempts: 0,
            state: State::Ready,
        });
    }

    fn find(&mut self, id: u64) -> Option<&mut Batch> {
        self.batches.iter_mut().find(|b| b.first_seq() == id)
    }

    /// The proxy accepted the dispatch of batch `id`.
    pub fn sent(&mut self, id: u64, token: u32) {
        if let Some(b) = self.find(id) {
            b.attempts += 1;
            b.state = State::InFlight { token };
        }
    }

    /// The proxy refused to dispatch batch `id` (e.g. no such cluster): back off.
    /// Returns the delay chosen.
    pub fn send_failed(&mut self, id: u64, now_ms: u64, jitter: f64) -> u64 {
        let limits = self.limits.clone();
        match self.find(id) {
            Some(b) => {
                b.attempts += 1;
                let delay = backoff_ms(&limits, b.attempts, jitter);
                b.state = State::Backoff {
                    until_ms: now_ms.saturating_add(delay),
                };
                delay
            }
            None => 0,
        }
    }

    /// Settles the batch sent with `token`.
    pub fn settle(&mut self, token: u32, outcome: Outcome, now_ms: u64, jitter: f64) -> Settled {
        let Some(index) = self
            .batches
            .iter()
            .position(|b| b.state == State::InFlight { token })
        else {
            return Settled::Unknown;
        };
        let retry_floor = match outcome {
            Outcome::Retry => Some(0),
            Outcome::RetryAfter(ms) => Some(ms.min(self.limits.backoff_max_ms)),
            _ => None,
        };
        if let Some(floor) = retry_floor {
            let limits = self.limits.clone();
            let Some(b) = self.batches.get_mut(index) else {
                return Settled::Unknown;
            };
            let delay = backoff_ms(&limits, b.attempts, jitter).max(floor);
            b.state = State::Backoff {
                until_ms: now_ms.saturating_add(delay),
            };
            return Settled::WillRetry {
                records: b.entries.len(),
                attempts: b.attempts,
                delay_ms: delay,
            };
        }
        let Some(b) = self.batches.remove(index) else {
            return Settled::Unknown;
        };
        self.records -= b.entries.len();
        self.bytes -= b.bytes;
        let (records, from_seq, to_seq) = (b.entries.len(), b.first_seq(), b.last_seq());
        let refused = match outcome {
            Outcome::Reject => records,
            Outcome::PartialReject(n) => usize::try_from(n).map_or(records, |n| n.min(records)),
            _ => 0,
        };
        if refused > 0 && refused == records {
            Settled::Rejected {
                records,
                from_seq,
                to_seq,
            }
        } else if refused > 0 {
            Settled::PartlyRejected {
                delivered: records - refused,
                rejected: refused,
                from_seq,
                to_seq,
            }
        } else {
            Settled::Delivered { records }
        }
    }
}

mod backoff;
pub use backoff::backoff_ms;

#[cfg(test)]
mod tests;
