//! The per-worker auditor behind the root context: configuration, admission,
//! batching on tick, sink replies, metrics and the shutdown drain.
//!
//! HTTP contexts hand their records to [`Auditor::admit`]; every dispatch
//! happens here, from the root context, because a call dispatched from a
//! request's context dies with the request.

use super::conn::ConnCache;
use super::http;
use super::stats::{Counter, Stats};
use crate::audit::record::{LossReason, Record};
use crate::audit::time::format_rfc3339;
use crate::audit::{hex, redact::Redactor, sample::Sampler};
use crate::config::{error_line, Config, Format, Overflow};
use crate::deliver::buffer::{classify, Buffer, Entry, Limits, Settled};
use crate::deliver::chain::Sequencer;
use crate::deliver::{encode_json, encode_otlp};
use crate::host::{Host, Level, Map};

/// Longest pause between two ticks: size-triggered flushes wait at most this.
const MAX_TICK_MS: u64 = 100;

/// Records that could not be admitted, waiting to be reported by a `loss` record.
#[derive(Default, Debug)]
struct Lost {
    count: u64,
    since_nanos: u64,
    until_nanos: u64,
}

impl Lost {
    fn note(&mut self, at_nanos: u64) {
        if self.count == 0 {
            self.since_nanos = at_nanos;
        }
        self.count += 1;
        self.until_nanos = at_nanos;
    }
}

/// Everything configured: only exists once `on_configure` succeeded.
pub struct Active {
    pub config: Config,
    pub redactor: Redactor,
    pub sampler: Sampler,
    pub(super) conns: ConnCache,
    pub(super) naming: http::Naming,
    /// Whether any sampling rule looks at the principal / the route: decides
    /// what must be read before a request can be sampled out.
    pub(super) rules_use_principal: bool,
    pub(super) rules_use_route: bool,
    seq: Sequencer,
    buffer: Buffer,
    not_admitted: Lost,
    rate_limited: Lost,
    last_flush_ms: u64,
    node_id: Option<String>,
}

/// Causes we log once (then only count), so a broken sink cannot flood Envoy's log.
#[derive(Default)]
struct Warned {
    dispatch_refused: bool,
    sink_failing: bool,
    sink_rejected: bool,
    buffer_full: bool,
}

pub struct Auditor {
    emitter: String,
    rng: u64,
    pub active: Option<Active>,
    pub stats: Stats,
    draining: bool,
    drain_deadline_ms: u64,
    done_called: bool,
    warned: Warned,
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
            draining: false,
            drain_deadline_ms: 0,
            done_called: false,
            warned: Warned::default(),
        }
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

    /// `on_configure`: false (and exactly one error line) for a bad configuration.
    pub fn configure(&mut self, host: &dyn Host) -> bool {
        let bytes = host.plugin_config().unwrap_or_default();
        let env = |name: &str| host.env_var(name);
        let config = match Config::from_json(&bytes, &env) {
            Ok(c) => c,
            Err(e) => {
                host.log(Level::Error, &error_line(&e));
                return false;
            }
        };
        self.stats.define(host);
        let tick = config.batch.flush_interval_ms.min(MAX_TICK_MS);
        host.set_tick_period_ms(tick);
        let limits = Limits::from_config(&config);
        // A reconfigured worker keeps what it already admitted, and its chain.
        let (seq, buffer) = match self.active.take() {
            Some(old) => (old.seq, old.buffer),
            None => (
                Sequencer::new(
                    self.emitter.clone(),
                    config.integrity.chain,
                    config.integrity.key.as_deref(),
                ),
                Buffer::new(limits.clone()),
            ),
        };
        let mut buffer = buffer;
        buffer.set_limits(limits);
        let node_id = host
            .property(&["node", "id"])
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| !s.is_empty());
        host.log(
            Level::Info,
            &format!(
                "mesh-audit {} configured: emitter {}, sink {} {}{}, config {}",
                crate::VERSION,
                self.emitter,
                config.sink.cluster,
                config.sink.authority,
                config.sink.path,
                config.digest
            ),
        );
        let rules = &config.sampling.rules;
        self.active = Some(Active {
            rules_use_principal: rules.iter().any(|r| r.when.principal.is_some()),
            rules_use_route: rules.iter().any(|r| r.when.route.is_some()),
            redactor: Redactor::new(&config.redact),
            sampler: Sampler::new(&config.sampling),
            config,
            conns: ConnCache::default(),
            naming: http::Naming::default(),
            seq,
            buffer,
            not_admitted: Lost::default(),
            rate_limited: Lost::default(),
            last_flush_ms: host.now_nanos() / 1_000_000,
            node_id,
        });
        true
    }

    /// Fail-closed check at request headers: true when the request must be
    /// answered 503 because the buffer is full.
    pub fn must_reject(&mut self) -> bool {
        match &self.active {
            Some(a) if a.config.on_overflow == Overflow::Reject && a.buffer.is_full() => {
                self.stats.add(Counter::RequestsRejected, 1);
                true
            }
            _ => false,
        }
    }

    /// Counts a request the sampler let go.
    pub fn sampled_out(&mut self, rate_limited_at: Option<u64>) {
        self.stats.add(Counter::RecordsSampledOut, 1);
        if let (Some(at), Some(a)) = (rate_limited_at, self.active.as_mut()) {
            a.rate_limited.note(at);
        }
    }

    /// Admission (SPEC §2.2): stamps, chains and buffers `record`, or counts it
    /// as not admitted when the buffer is full. `at_nanos` is the record's time.
    pub fn admit(&mut self, host: &dyn Host, record: Record, at_nanos: u64) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        // Report earlier losses first, so the loss record precedes what follows it.
        report_losses(a, &mut self.stats, 2, at_nanos);
        let mut record = record;
        let line = a.seq.stamp(&mut record);
        if a.buffer.fits(1, line.len()) {
            a.seq.commit(&line);
            let seq = a.seq.next_seq() - 1;
            a.buffer.push(Entry { seq, line });
            self.stats.add(Counter::RecordsAdmitted, 1);
        } else {
            a.not_admitted.note(at_nanos);
            self.stats.add(Counter::RecordsNotAdmitted, 1);
            if !self.warned.buffer_full {
                self.warned.buffer_full = true;
                host.log(
                    Level::Warn,
                    "mesh-audit: buffer full, records are not admitted (counted, reported by a loss record)",
                );
            }
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
        self.pump(host, now_ms, false);
        self.publish(host);
        if self.draining && !self.done_called && now_ms >= self.drain_deadline_ms {
            self.finish(host, "sink.timeout_ms passed");
        }
    }

    /// A reply from the sink for `token`.
    pub fn call_response(&mut self, host: &dyn Host, token: u32) {
        let now_nanos = host.now_nanos();
        let now_ms = now_nanos / 1_000_000;
        let status = host
            .headers(Map::CallResponseHeaders)
            .into_iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| std::str::from_utf8(&v).ok()?.trim().parse::<u32>().ok());
        let jitter = self.draw();
        let Some(a) = self.active.as_mut() else {
            return;
        };
        match a.buffer.settle(token, classify(status), now_ms, jitter) {
            Settled::Delivered { records } => {
                self.stats.add(Counter::RecordsDelivered, records as u64);
                if self.warned.sink_failing {
                    self.warned.sink_failing = false;
                    host.log(Level::Info, "mesh-audit: sink accepts batches again");
                }
            }
            Settled::WillRetry {
                records,
                attempts,
                delay_ms,
            } => {
                self.stats.add(Counter::BatchFailures, 1);
                if !self.warned.sink_failing {
                    self.warned.sink_failing = true;
                    let why = status
                        .map_or("no reply (connect failure or timeout)".to_string(), |s| {
                            format!("status {s}")
                        });
                    host.log(
                        Level::Warn,
                        &format!(
                            "mesh-audit: sink {} failed a batch of {records} records ({why}), attempt {attempts}; retrying in {delay_ms} ms, records stay buffered",
                            a.config.sink.cluster
                        ),
                    );
                }
            }
            Settled::Rejected {
                records,
                from_seq,
                to_seq,
            } => {
                self.stats.add(Counter::BatchFailures, 1);
                self.stats.add(Counter::RecordsRejected, records as u64);
                if !self.warned.sink_rejected {
                    self.warned.sink_rejected = true;
                    host.log(
                        Level::Error,
                        &format!(
                            "mesh-audit: sink {} rejected records {from_seq}..{to_seq} with status {}; they are dropped and reported by a loss record",
                            a.config.sink.cluster,
                            status.unwrap_or(0)
                        ),
                    );
                }
                let ts = format_rfc3339(now_nanos);
                let mut loss = Record::loss(
                    LossReason::Rejected,
                    records as u64,
                    ts.clone(),
                    ts.clone(),
                    ts,
                );
                loss.from_seq = Some(from_seq);
                loss.to_seq = Some(to_seq);
                // A rejection loss record is always kept: it may exceed the cap by one.
                push(a, &mut self.stats, loss);
            }
            Settled::Unknown => return,
        }
        self.pump(host, now_ms, false);
        if self.draining {
            self.publish(host);
            let drained = self.active.as_ref().is_none_or(|a| a.buffer.is_empty());
            if drained {
                self.finish(host, "all records delivered");
            }
        }
    }

    /// `on_done` of the root context: start draining. True when nothing is
    /// held and the proxy may finish now; false means `done()` follows.
    pub fn shutdown(&mut self, host: &dyn Host) -> bool {
        let now_nanos = host.now_nanos();
        let now_ms = now_nanos / 1_000_000;
        let Some(a) = self.active.as_mut() else {
            return true;
        };
        report_losses(a, &mut self.stats, 1, now_nanos);
        if a.buffer.is_empty() {
            self.publish(host);
            return true;
        }
        host.log(
            Level::Info,
            &format!(
                "mesh-audit: draining {} buffered records before shutdown",
                a.buffer.records()
            ),
        );
        self.draining = true;
        self.drain_deadline_ms = now_ms.saturating_add(a.config.sink.timeout_ms);
        self.pump(host, now_ms, true);
        self.publish(host);
        false
    }

    fn finish(&mut self, host: &dyn Host, why: &str) {
        self.done_called = true;
        let left = self.active.as_ref().map_or(0, |a| a.buffer.records());
        let level = if left == 0 { Level::Info } else { Level::Warn };
        host.log(
            level,
            &format!("mesh-audit: shutdown: {why}; {left} records undelivered"),
        );
        host.done();
    }

    /// Sends every batch that is due. While draining, a partial batch is
    /// always due; `burst` (once, when the drain starts) also sends what waits
    /// for a backoff timer or the in-flight limit. Later retries in a drain
    /// keep their backoff, so a failing sink is not hammered until the deadline.
    fn pump(&mut self, host: &dyn Host, now_ms: u64, burst: bool) {
        let draining = self.draining;
        loop {
            let jitter = self.draw();
            let Some(a) = self.active.as_mut() else {
                return;
            };
            let interval_due = draining
                || now_ms.saturating_sub(a.last_flush_ms) >= a.config.batch.flush_interval_ms;
            let sink = &a.config.sink;
            let Some(send) = a.buffer.next_send(now_ms, interval_due, burst) else {
                return;
            };
            let (id, attempt, range) = (
                send.id,
                send.attempt,
                format!("{}-{}", send.first_seq, send.last_seq),
            );
            let (content_type, body) = match sink.format {
                Format::Jsonl => (
                    encode_json::CONTENT_TYPE,
                    encode_json::encode(send.lines.iter().copied()),
                ),
                Format::Otlp => {
                    let resource = encode_otlp::Resource {
                        emitter: &self.emitter,
                        node_id: a.node_id.as_deref(),
                        version: crate::VERSION,
                    };
                    (
                        encode_otlp::CONTENT_TYPE,
                        encode_otlp::encode(&send.lines, &resource, now_ms * 1_000_000),
                    )
                }
            };
            let mut headers: Vec<(&str, &str)> = vec![
                (":method", "POST"),
                (":path", &sink.path),
                (":authority", &sink.authority),
                ("content-type", content_type),
                ("x-mesh-audit-emitter", &self.emitter),
                ("x-mesh-audit-seq", &range),
            ];
            headers.extend(sink.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            // Validated as visible ASCII when the configuration was read.
            if let Some(value) = sink
                .authorization
                .as_deref()
                .and_then(|t| std::str::from_utf8(t).ok())
            {
                headers.push(("authorization", value));
            }
            match host.dispatch(&sink.cluster, &headers, &body, sink.timeout_ms) {
                Ok(token) => {
                    a.buffer.sent(id, token);
                    a.last_flush_ms = now_ms;
                    self.stats.add(Counter::BatchesSent, 1);
                    if attempt > 1 {
                        self.stats.add(Counter::BatchRetries, 1);
                    }
                    host.log(
                        Level::Debug,
                        &format!(
                            "mesh-audit: sent records {range} to {} (attempt {attempt}); admitted={} delivered={} rejected={} buffered={} in_flight={}",
                            sink.cluster,
                            self.stats.get(Counter::RecordsAdmitted),
                            self.stats.get(Counter::RecordsDelivered),
                            self.stats.get(Counter::RecordsRejected),
                            a.buffer.records(),
                            a.buffer.in_flight()
                        ),
                    );
                }
                Err(e) => {
                    let delay = a.buffer.send_failed(id, now_ms, jitter);
                    self.stats.add(Counter::BatchFailures, 1);
                    if attempt > 1 {
                        self.stats.add(Counter::BatchRetries, 1);
                    }
                    if !self.warned.dispatch_refused {
                        self.warned.dispatch_refused = true;
                        host.log(
                            Level::Error,
                            &format!(
                                "mesh-audit: cannot dispatch to cluster {} ({e:?}: is the cluster defined?); records stay buffered, retrying in {delay} ms",
                                sink.cluster
                            ),
                        );
                    }
                    return;
                }
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

/// Admits a `loss` record for each kind of loss still unreported, when the
/// buffer has room for `room` more records (the loss record and what follows).
fn report_losses(a: &mut Active, stats: &mut Stats, room: usize, at_nanos: u64) {
    for reason in [LossReason::BufferFull, LossReason::RateLimited] {
        let lost = match reason {
            LossReason::BufferFull => &mut a.not_admitted,
            _ => &mut a.rate_limited,
        };
        if lost.count == 0 || !a.buffer.fits(room, 0) {
            continue;
        }
        let loss = Record::loss(
            reason,
            lost.count,
            format_rfc3339(lost.since_nanos),
            format_rfc3339(lost.until_nanos),
            format_rfc3339(at_nanos),
        );
        *lost = Lost::default();
        push(a, stats, loss);
    }
}

/// Admits a record the filter itself produced (a `loss` record): it bypasses
/// the byte cap by design, so a loss is never itself lost.
fn push(a: &mut Active, stats: &mut Stats, mut record: Record) {
    let line = a.seq.stamp(&mut record);
    a.seq.commit(&line);
    let seq = a.seq.next_seq() - 1;
    a.buffer.push(Entry { seq, line });
    stats.add(Counter::RecordsAdmitted, 1);
}
