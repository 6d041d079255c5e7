//! The hand-off from a worker's access logger to the main thread: what
//! crosses the queue, what it does to the worker's auditor there, and the
//! gate that lets the worker's HTTP filter see whether the buffer has room.

use super::main_host::MainHost;
use crate::filter::http::Outcome;
use crate::filter::root::Auditor;
use crate::filter::Counter;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a worker hands the main thread.
pub enum Handoff {
    /// One finished request: its record or the sampler's verdict, and
    /// whether it violated an access policy.
    Outcome { outcome: Outcome, violation: bool },
    /// Records the queue had no room for, since..until (nanoseconds).
    NotAdmitted { count: u64, since: u64, until: u64 },
    /// A request that passed an inert logger (invalid configuration).
    Unaudited,
}

/// Hand-offs one worker may have in flight to the main thread (a few KiB
/// each at most, so tens of MiB per worker at worst). The main thread takes
/// them every 100 ms; past this the record is counted as not admitted and
/// reported by a `loss` record, never waited for.
pub const QUEUE_CAPACITY: usize = 16_384;

/// Whether a worker's emitter has room, for `"on_overflow": "reject"`: the
/// worker's HTTP filter answers 503 while it has none. The main thread says
/// what its buffer holds; the worker counts what it handed over that the
/// main thread has not taken yet, so a full buffer is seen at once, not a
/// tick later. Counted in records (the buffer's byte limit is not).
///
/// It also counts the worker's plain sampled-out verdicts: most requests
/// at a low rate are one, and a counter costs the worker far less than a
/// hand-off through the queue (a slot written per request).
#[derive(Default)]
pub struct Gate {
    /// `batch.max_buffered_records` under `on_overflow: reject`, else 0.
    limit: AtomicU64,
    buffered: AtomicU64,
    in_flight: AtomicU64,
    /// Requests the worker's sampler let go (no rate cap, no policy
    /// violation), ever; only ever grows.
    sampled_out: AtomicU64,
}

impl Gate {
    /// Set by the worker's logger from its configuration, before traffic.
    pub(super) fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }
    /// The main thread's view, each time it ran the emitter: the records
    /// admitted and not yet settled (SPEC §2.6's invariant).
    pub(super) fn publish_from(&self, a: &Auditor) {
        let settled =
            a.stats.get(Counter::RecordsDelivered) + a.stats.get(Counter::RecordsRejected);
        let buffered = a
            .stats
            .get(Counter::RecordsAdmitted)
            .saturating_sub(settled);
        self.buffered.store(buffered, Ordering::Relaxed);
    }
    pub(super) fn handed_over(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }
    /// `n` hand-offs the main thread took, once what they became is published.
    pub(super) fn taken(&self, n: u64) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }
    /// One more plain sampled-out verdict, from the worker.
    pub(super) fn sampled_out(&self) {
        self.sampled_out.fetch_add(1, Ordering::Relaxed);
    }
    /// Sampled-out verdicts since the main thread last looked (`seen`
    /// holds what it had taken so far).
    pub(super) fn sampled_out_since(&self, seen: &mut u64) -> u64 {
        let now = self.sampled_out.load(Ordering::Relaxed);
        let new = now.wrapping_sub(*seen);
        *seen = now;
        new
    }
    /// No room for one more record.
    pub(super) fn full(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        let held = self.buffered.load(Ordering::Relaxed) + self.in_flight.load(Ordering::Relaxed);
        limit > 0 && held >= limit
    }
}

/// A record handed over (what the worker's gate counts in flight).
pub(super) fn is_kept(h: &Handoff) -> bool {
    matches!(
        h,
        Handoff::Outcome {
            outcome: Outcome::Keep(..),
            ..
        }
    )
}

/// Applies one hand-off to the worker's auditor, as the wasm filter's
/// `on_log` would have.
pub(super) fn apply(a: &mut Auditor, host: &MainHost, h: Handoff) {
    match h {
        Handoff::Outcome { outcome, violation } => {
            if violation {
                a.stats.add(Counter::PolicyViolations, 1);
            }
            match outcome {
                Outcome::Keep(record, at) => a.admit(host, record, at),
                Outcome::SampledOut { rate_limited_at } => a.sampled_out(rate_limited_at),
                Outcome::Inactive => {}
            }
        }
        Handoff::Unaudited => a.unaudited(),
        Handoff::NotAdmitted {
            count,
            since,
            until,
        } => {
            for k in 0..count {
                a.not_admitted(host, if k == 0 { since } else { until });
            }
        }
    }
}
