//! The per-worker auditor behind the root context: configuration, admission,
//! batching on tick, sink replies, metrics and the shutdown drain.
//!
//! HTTP contexts hand their records to [`Auditor::admit`]; every dispatch
//! happens here, from the root context, because a call dispatched from a
//! request's context dies with the request.

mod admit;
mod configure;
mod pump;
mod replies;
mod seals;
mod shutdown;

use super::conn::ConnCache;
use super::events::Events;
use super::facts::Needs;
use super::naming::Naming;
use super::problems::Problems;
use super::stats::{Counter, Stats};
use crate::audit::{hex, redact::Redactor, sample::Sampler};
use crate::config::{Config, Overflow};
use crate::deliver::buffer::Buffer;
use crate::deliver::chain::Sequencer;
use crate::host::Headers;
use crate::host::Host;
use admit::{report_losses, Lost};

pub use super::problems::{FAIL_CLOSED_ENV, STRICT_ENV};

/// Everything configured: only exists once `on_configure` succeeded.
pub struct Active {
    pub config: Config,
    pub redactor: Redactor,
    pub sampler: Sampler,
    pub(super) conns: ConnCache,
    pub(super) naming: Naming,
    /// What must be read before a request can be sampled out, from the
    /// configuration.
    pub(super) needs: Needs,
    /// The last request's header maps: their allocations serve the next
    /// request, whose fill replaces what they hold.
    pub(super) maps: (Headers, Headers),
    seq: Sequencer,
    buffer: Buffer,
    not_admitted: Lost,
    rate_limited: Lost,
    last_flush_ms: u64,
    node_id: Option<String>,
    /// `seq` of the emitter's last seal (0: none yet).
    last_seal: u64,
    /// The emitter has its `close` record: nothing more is admitted.
    closed: bool,
}

/// A request's maps are kept up to this size for the next one.
const KEPT_MAP_BYTES: usize = 16 * 1024;

impl Active {
    /// Keeps `facts`' header maps for the next request, which fills them
    /// afresh (every host's fill replaces what a map held).
    pub(super) fn keep_maps(&mut self, facts: crate::audit::build::SampleFacts) {
        let (mut request, mut response) = (facts.request_headers, facts.response_headers);
        request.shrink_past(KEPT_MAP_BYTES);
        response.shrink_past(KEPT_MAP_BYTES);
        self.maps = (request, response);
    }
}

/// Where the root context is in its life. Whether it audits is another
/// matter ([`Auditor::is_inert`]): a configuration can come, go or stay
/// invalid while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
    Running,
    /// `on_done` found records buffered: they are delivered until
    /// `deadline_ms`, then the proxy is told `done()`.
    Draining {
        deadline_ms: u64,
    },
    /// `done()` was called.
    Done,
}

impl Lifecycle {
    /// Draining, or drained: every partial batch is due.
    fn draining(self) -> bool {
        self != Lifecycle::Running
    }
}

pub struct Auditor {
    emitter: String,
    rng: u64,
    pub active: Option<Active>,
    pub stats: Stats,
    lifecycle: Lifecycle,
    events: Events,
    problems: Problems,
    /// Inert requests are answered 503 (`MESH_AUDIT_FAIL_CLOSED`).
    fail_closed: bool,
    /// The last configuration of this plugin that was valid: an invalid
    /// update leaves it in force.
    last_valid: Option<Vec<u8>>,
}

impl Auditor {
    /// A new auditor; `host` supplies the emitter's 128 random bits.
    pub fn new(host: &dyn Host) -> Auditor {
        let mut seed = [0u8; 24];
        if !host.fill_random(&mut seed) {
            // Without WASI randomness, fall back to the clock: still unique per VM start.
            let t = host.now_nanos().to_le_bytes();
            seed[..8].copy_from_slice(&t);
            seed[16..].copy_from_slice(&t);
        }
        let mut rng_bytes = [0u8; 8];
        rng_bytes.copy_from_slice(&seed[16..24]);
        Auditor {
            emitter: hex(&seed[..16]),
            rng: u64::from_le_bytes(rng_bytes) | 1,
            active: None,
            stats: Stats::default(),
            lifecycle: Lifecycle::Running,
            events: Events::default(),
            problems: Problems::default(),
            fail_closed: false,
            last_valid: None,
        }
    }

    /// No valid configuration: requests pass unaudited (or get 503).
    pub fn is_inert(&self) -> bool {
        self.active.is_none()
    }

    pub fn emitter(&self) -> &str {
        &self.emitter
    }

    /// A uniform draw in [0, 1) from a per-worker xorshift generator: per-request
    /// randomness without a host call.
    pub fn draw(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fail-closed check at request headers: true when the request must be
    /// answered 503 because the buffer is full, or because the filter is
    /// inert with `MESH_AUDIT_FAIL_CLOSED`.
    pub fn must_reject(&mut self) -> bool {
        let reject = match &self.active {
            Some(a) => a.config.on_overflow == Overflow::Reject && a.buffer.is_full(),
            None => self.fail_closed,
        };
        if reject {
            self.stats.add(Counter::RequestsRejected, 1);
        }
        reject
    }

    /// Counts a request that passed an inert filter.
    pub fn unaudited(&mut self) {
        self.stats.add(Counter::RequestsUnaudited, 1);
    }

    /// `n` requests the sampler let go, counted elsewhere (the native
    /// module's workers count the plain ones without a hand-off).
    pub fn sampled_out_count(&mut self, n: u64) {
        self.stats.add(Counter::RecordsSampledOut, n);
    }

    /// Counts a request the sampler let go.
    pub fn sampled_out(&mut self, rate_limited_at: Option<u64>) {
        self.sampled_out_count(1);
        if let (Some(at), Some(a)) = (rate_limited_at, self.active.as_mut()) {
            a.rate_limited.note(at);
        }
    }

    /// `on_tick`: flush what is due, publish metrics, finish a drain.
    pub fn tick(&mut self, host: &dyn Host) {
        let now_nanos = host.now_nanos();
        let now_ms = now_nanos / 1_000_000;
        // A loss is reported as soon as there is room, not only when the next
        // request comes: traffic may never come back.
        if let Some(a) = self.active.as_mut() {
            report_losses(a, &mut self.stats, 1, now_nanos);
        }
        self.problems.remind(host, now_ms);
        self.pump(host, now_ms, false);
        self.publish(host);
        if let Lifecycle::Draining { deadline_ms } = self.lifecycle {
            if now_ms >= deadline_ms {
                self.finish(host, "sink.timeout_ms passed");
            }
        }
    }

    /// Publishes counters and the buffered gauge (one consistent snapshot per
    /// call, so admitted = delivered + rejected + buffered holds in the stats).
    fn publish(&mut self, host: &dyn Host) {
        let buffered = self
            .active
            .as_ref()
            .map_or(0, |a| a.buffer.records() as u64);
        self.stats.publish(host, buffered);
    }
}
