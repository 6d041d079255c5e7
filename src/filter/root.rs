//! The per-worker auditor behind the root context: configuration, admission,
//! batching on tick, sink replies, metrics and the shutdown drain.
//!
//! HTTP contexts hand their records to [`Auditor::admit`]; every dispatch
//! happens here, from the root context, because a call dispatched from a
//! request's context dies with the request.

mod seals;

use super::conn::ConnCache;
use super::facts::Naming;
use super::problems::{switch, Problems, INERT_TICK_MS};
use super::stats::{Counter, Flag, Stats};
use crate::audit::record::{CloseReason, Kind, LossReason, Record};
use crate::audit::time::format_rfc3339;
use crate::audit::{hex, redact::Redactor, sample::Sampler};
use crate::config::{degraded_line, error_line, Compression, Config, Format, Overflow, Scope};
use crate::deliver::buffer::{Buffer, Entry, Limits, Settled};
use crate::deliver::chain::Sequencer;
use crate::deliver::{encode_json, encode_otlp, gzip, reply};
use crate::host::{Host, Level, Map};

/// Longest pause between two ticks: size-triggered flushes wait at most this.
const MAX_TICK_MS: u64 = 100;

/// The most of a sink reply body read: an OTLP export response is a few
/// dozen bytes, its error message included.
const MAX_REPLY_BODY: usize = 64 * 1024;
pub use super::problems::{FAIL_CLOSED_ENV, STRICT_ENV};

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
    pub(super) naming: Naming,
    /// Whether any sampling rule looks at the principal / the route: decides
    /// what must be read before a request can be sampled out.
    pub(super) rules_use_principal: bool,
    pub(super) rules_use_destination: bool,
    pub(super) rules_use_route: bool,
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

/// Causes we log once (then only count), so a broken sink cannot flood Envoy's log.
#[derive(Default)]
struct Warned {
    dispatch_refused: bool,
    sink_failing: bool,
    sink_rejected: bool,
    partial_success: bool,
    reply_unreadable: bool,
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
            draining: false,
            drain_deadline_ms: 0,
            done_called: false,
            warned: Warned::default(),
            problems: Problems::default(),
            fail_closed: false,
            last_valid: None,
        }
    }

    /// The last valid configuration of this plugin (kept beyond this root
    /// context and its VM by the host glue: under Istio each ECDS update
    /// brings new VMs).
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

    /// `on_configure` (SPEC §2.7). A valid configuration takes over, with
    /// its degradations logged and listed in records. An invalid one logs
    /// its one error line and leaves the last valid configuration of this
    /// plugin in force, or the filter inert; false only in strict mode, where
    /// a degradation refuses too.
    /// `on_configure`: applies the plugin configuration, falling back to the
    /// last valid one when it is invalid. That one is kept in Envoy's shared
    /// data, which outlives a VM: under Istio every ECDS update of a
    /// WasmPlugin starts new VMs (its resource version is in their
    /// environment), so an invalid update can only fall back to what an
    /// earlier VM left there, per plugin name.
    pub fn configure(&mut self, host: &dyn Host) -> bool {
        let plugin = host.property(&["plugin_name"]).unwrap_or_default();
        let key = format!(
            "mesh-audit.last_valid_config.{}",
            String::from_utf8_lossy(&plugin)
        );
        let remembered = || host.shared_data(&key).filter(|b| !b.is_empty());
        if self.last_valid.is_none() {
            self.last_valid = remembered();
        }
        let ok = self.apply_config(host);
        if let Some(valid) = self.last_valid.as_deref() {
            if remembered().as_deref() != Some(valid) {
                // Best effort: without it, a later invalid update leaves the filter inert.
                let _ = host.set_shared_data(&key, valid);
            }
        }
        ok
    }

    fn apply_config(&mut self, host: &dyn Host) -> bool {
        let bytes = host.plugin_config().unwrap_or_default();
        let strict = switch(host, STRICT_ENV);
        self.fail_closed = switch(host, FAIL_CLOSED_ENV);
        let now_ms = host.now_nanos() / 1_000_000;
        let env = |name: &str| host.env_var(name);
        let config = match Config::from_json(&bytes, &env) {
            Ok(c) => c,
            Err(e) => {
                let line = error_line(&e);
                host.log(Level::Error, &line);
                return !strict && self.keep_last_valid(host, line, now_ms);
            }
        };
        if strict {
            if let Some(d) = config.degraded.first() {
                host.log(Level::Error, &error_line(&d.problem));
                return false;
            }
        }
        self.stats.define(host);
        let lines: Vec<String> = config.degraded.iter().map(degraded_line).collect();
        for line in &lines {
            host.log(Level::Error, line);
        }
        self.problems = Problems::new(lines, now_ms);
        self.stats.set_flag(Flag::ConfigInvalid, false);
        self.activate(host, config);
        self.last_valid = Some(bytes);
        self.publish(host);
        true
    }

    /// After an invalid configuration: the one running stays, else the last
    /// valid one of this plugin starts, else the filter is inert.
    fn keep_last_valid(&mut self, host: &dyn Host, line: String, now_ms: u64) -> bool {
        self.stats.define(host);
        self.stats.set_flag(Flag::ConfigInvalid, true);
        if self.active.is_none() {
            let env = |name: &str| host.env_var(name);
            let previous = self
                .last_valid
                .as_deref()
                .map(|b| Config::from_json(b, &env));
            if let Some(Ok(config)) = previous {
                self.activate(host, config);
            }
        }
        let mut lines = vec![line];
        match &self.active {
            Some(a) => {
                host.log(
                    Level::Warn,
                    &format!(
                        "mesh-audit: the last valid configuration (config {}) stays in force",
                        a.config.digest
                    ),
                );
                lines.extend(a.config.degraded.iter().map(degraded_line));
            }
            None => host.set_tick_period_ms(INERT_TICK_MS),
        }
        self.problems = Problems::new(lines, now_ms);
        self.publish(host);
        true
    }

    /// Starts auditing with `config`.
    fn activate(&mut self, host: &dyn Host, config: Config) {
        self.stats
            .set_flag(Flag::Degraded, !config.degraded.is_empty());
        let tick = config.batch.flush_interval_ms.min(MAX_TICK_MS);
        host.set_tick_period_ms(tick);
        let limits = Limits::from_config(&config);
        // A reconfigured worker keeps what it already admitted, and its chain.
        let (seq, buffer, node_id, last_seal) = match self.active.take() {
            Some(old) => (old.seq, old.buffer, old.node_id, old.last_seal),
            None => (
                Sequencer::new(
                    self.emitter.clone(),
                    config.integrity.chain,
                    config.integrity.key.as_deref(),
                ),
                Buffer::new(limits.clone()),
                node_id(host),
                0,
            ),
        };
        let mut buffer = buffer;
        buffer.set_limits(limits);
        if config.integrity.seal_every_batch {
            buffer.seal_batches();
        }
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
            rules_use_destination: rules.iter().any(|r| r.when.destination.is_some()),
            rules_use_route: rules.iter().any(|r| r.when.route.is_some()),
            redactor: Redactor::new(&config.redact),
            sampler: Sampler::new(&config.sampling),
            config,
            conns: ConnCache::default(),
            naming: Naming::default(),
            seq,
            buffer,
            not_admitted: Lost::default(),
            rate_limited: Lost::default(),
            last_flush_ms: host.now_nanos() / 1_000_000,
            node_id,
            last_seal,
            closed: false,
        });
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
        if a.closed {
            // The emitter ended with its close record (a request that
            // finished during the drain): counted, never chained after it.
            self.stats.add(Counter::RecordsNotAdmitted, 1);
            return;
        }
        // Report earlier losses first, so the loss record precedes what follows it.
        report_losses(a, &mut self.stats, 2, at_nanos);
        let mut record = record;
        mark_degraded(a, &mut record);
        let line = a.seq.stamp(&mut record);
        if a.buffer.fits(1, line.len()) {
            a.seq.commit(&line);
            let seq = a.seq.next_seq() - 1;
            a.buffer.push(Entry { seq, line });
            self.stats.add(Counter::RecordsAdmitted, 1);
            a.seal_if_full(&mut self.stats, at_nanos);
        } else {
            self.not_admitted(host, at_nanos);
        }
    }

    /// Counts a record that found no room (SPEC §2.2), to be reported by a
    /// `loss` record; also used by a host whose hand-off queue was full.
    pub fn not_admitted(&mut self, host: &dyn Host, at_nanos: u64) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
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
        if self.draining && !self.done_called && now_ms >= self.drain_deadline_ms {
            self.finish(host, "sink.timeout_ms passed");
        }
    }

    /// A reply from the sink for `token`.
    pub fn call_response(&mut self, host: &dyn Host, token: u32) {
        let now_nanos = host.now_nanos();
        let now_ms = now_nanos / 1_000_000;
        let headers = host.headers(Map::CallResponseHeaders);
        let status = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok());
        let jitter = self.draw();
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let verdict = reply::interpret(
            status,
            &headers,
            a.config.sink.format == Format::Otlp,
            || host.call_response_body(MAX_REPLY_BODY),
            now_nanos,
        );
        self.warn_about_reply(host, &verdict);
        let Some(a) = self.active.as_mut() else {
            return;
        };
        match a.buffer.settle(token, verdict.outcome, now_ms, jitter) {
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
                push_rejected(a, &mut self.stats, records, (from_seq, to_seq), now_nanos);
            }
            Settled::PartlyRejected {
                delivered,
                rejected,
                from_seq,
                to_seq,
            } => {
                self.stats.add(Counter::RecordsDelivered, delivered as u64);
                self.stats.add(Counter::RecordsRejected, rejected as u64);
                // Which records the collector refused it does not say: the
                // loss names the batch they were among.
                push_rejected(a, &mut self.stats, rejected, (from_seq, to_seq), now_nanos);
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

    /// Logs (once per cause) what a reply said beyond its status: an OTLP
    /// partial success and its message, or a body that could not be read.
    fn warn_about_reply(&mut self, host: &dyn Host, verdict: &reply::Verdict) {
        let cluster = self
            .active
            .as_ref()
            .map_or("", |a| a.config.sink.cluster.as_str());
        if let Some(p) = &verdict.partial {
            if !self.warned.partial_success {
                self.warned.partial_success = true;
                let what = if p.rejected > 0 {
                    format!(
                        "rejected {} records of a batch; they are reported by a loss record",
                        p.rejected
                    )
                } else {
                    "accepted a batch with a warning".to_string()
                };
                host.log(
                    Level::Warn,
                    &format!(
                        "mesh-audit: sink {cluster} {what} (OTLP partial success: {:?})",
                        p.message
                    ),
                );
            }
        }
        if let Some(why) = &verdict.unreadable {
            if !self.warned.reply_unreadable {
                self.warned.reply_unreadable = true;
                host.log(
                    Level::Warn,
                    &format!("mesh-audit: sink {cluster} acknowledged a batch with a reply body that is not an OTLP response ({why}); counted as delivered"),
                );
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
        // An emitter that never admitted a record is in no trail: nothing to close.
        if !a.closed && a.seq.next_seq() > 1 {
            a.close(&mut self.stats, CloseReason::Shutdown, now_nanos);
        }
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
        if let Some(a) = self.active.as_mut() {
            let due = draining
                || now_ms.saturating_sub(a.last_flush_ms) >= a.config.batch.flush_interval_ms;
            a.seal_if_due(&mut self.stats, host.now_nanos(), due);
        }
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
            let body = match sink.compression {
                Compression::Gzip => match gzip::compress(&body) {
                    Some(packed) => {
                        headers.push(("content-encoding", gzip::CONTENT_ENCODING));
                        packed
                    }
                    None => body,
                },
                Compression::None => body,
            };
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

/// The Envoy node id (`service.instance.id`), read once per VM. Envoy 1.40
/// exposes the bootstrap's `Node` only as the `xds.node` attribute (a bare
/// `node` is not found); `node` is what older Envoys answered.
fn node_id(host: &dyn Host) -> Option<String> {
    [&["xds", "node", "id"][..], &["node", "id"][..]]
        .iter()
        .find_map(|path| {
            host.property(path)
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|s| !s.is_empty())
        })
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
        push(a, stats, loss, at_nanos);
    }
}

/// Admits the `rejected` loss record for `count` records a sink refused
/// among `range`.
fn push_rejected(
    a: &mut Active,
    stats: &mut Stats,
    count: usize,
    range: (u64, u64),
    at_nanos: u64,
) {
    let ts = format_rfc3339(at_nanos);
    let mut loss = Record::loss(
        LossReason::Rejected,
        count as u64,
        ts.clone(),
        ts.clone(),
        ts,
    );
    loss.from_seq = Some(range.0);
    loss.to_seq = Some(range.1);
    // A rejection loss record is always kept: it may exceed the cap by one.
    push(a, stats, loss, at_nanos);
}

/// Admits a record the filter itself produced (`loss`, `close`): it bypasses
/// the byte cap by design, so a loss is never itself lost.
fn push(a: &mut Active, stats: &mut Stats, mut record: Record, now_nanos: u64) {
    mark_degraded(a, &mut record);
    let line = a.seq.stamp(&mut record);
    a.seq.commit(&line);
    let seq = a.seq.next_seq() - 1;
    a.buffer.push(Entry { seq, line });
    stats.add(Counter::RecordsAdmitted, 1);
    a.seal_if_full(stats, now_nanos);
}

/// Lists the degradations in force that affect `record` (SPEC §4.1).
fn mark_degraded(a: &Active, record: &mut Record) {
    let request = record.kind == Kind::Request;
    record.degraded = a
        .config
        .degraded
        .iter()
        .filter(|d| request || d.scope == Scope::Records)
        .map(|d| d.code.to_string())
        .collect();
}
