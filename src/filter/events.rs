//! The root context's operational events, one type each: what it counts,
//! how often its line is logged, and the line. A call site emits an event in
//! one call and never formats, counts or rate-limits by itself.

use super::stats::{Counter, Stats};
use crate::host::{Host, Level};

/// A cause whose line is logged once, then only counted, so a broken sink
/// cannot flood Envoy's log.
#[derive(Clone, Copy)]
pub enum Cause {
    DispatchRefused,
    SinkFailing,
    SinkRejected,
    PartialSuccess,
    ReplyUnreadable,
    BufferFull,
}

/// How often an event's line is logged.
pub enum Limit {
    Always,
    /// The first time, until the cause clears.
    Once(Cause),
    /// Only when it clears `Cause`, which was logged.
    Clears(Cause),
}

pub trait Event {
    /// What the event adds to the filter's counters.
    fn count(&self, _stats: &mut Stats) {}
    fn limit(&self) -> Limit {
        Limit::Always
    }
    /// The log line, formatted only when it is logged.
    fn line(&self) -> (Level, String);
}

/// The causes logged so far (their lines are not repeated).
#[derive(Default)]
pub struct Events {
    warned: [bool; 6],
}

impl Events {
    /// Counts `event` and logs its line unless its rate limit holds it back.
    pub fn emit(&mut self, host: &dyn Host, stats: &mut Stats, event: impl Event) {
        event.count(stats);
        match event.limit() {
            Limit::Always => {}
            Limit::Once(c) if self.warned[c as usize] => return,
            Limit::Once(c) => self.warned[c as usize] = true,
            Limit::Clears(c) if self.warned[c as usize] => self.warned[c as usize] = false,
            Limit::Clears(_) => return,
        }
        let (level, line) = event.line();
        host.log(level, &line);
    }
}

/// Counts a batch attempt that was not the first.
fn count_retry(stats: &mut Stats, attempt: u32) {
    if attempt > 1 {
        stats.add(Counter::BatchRetries, 1);
    }
}

/// A configuration was applied.
pub struct Configured<'a> {
    pub emitter: &'a str,
    pub config: &'a crate::config::Config,
}

impl Event for Configured<'_> {
    fn line(&self) -> (Level, String) {
        let sink = &self.config.sink;
        (
            Level::Info,
            format!(
                "mesh-audit {} configured: emitter {}, sink {} {}{}, config {}",
                crate::VERSION,
                self.emitter,
                sink.cluster,
                sink.authority,
                sink.path,
                self.config.digest
            ),
        )
    }
}

/// A configuration problem (invalid, or degraded), as its line says.
pub struct ConfigProblem<'a>(pub &'a str);

impl Event for ConfigProblem<'_> {
    fn line(&self) -> (Level, String) {
        (Level::Error, self.0.to_string())
    }
}

/// An invalid update left the last valid configuration in force.
pub struct LastValidStays<'a> {
    pub digest: &'a str,
}

impl Event for LastValidStays<'_> {
    fn line(&self) -> (Level, String) {
        (
            Level::Warn,
            format!(
                "mesh-audit: the last valid configuration (config {}) stays in force",
                self.digest
            ),
        )
    }
}

/// A record found the buffer full (SPEC §2.2).
pub struct NotAdmitted;

impl Event for NotAdmitted {
    fn count(&self, stats: &mut Stats) {
        stats.add(Counter::RecordsNotAdmitted, 1);
    }
    fn limit(&self) -> Limit {
        Limit::Once(Cause::BufferFull)
    }
    fn line(&self) -> (Level, String) {
        (
            Level::Warn,
            "mesh-audit: buffer full, records are not admitted (counted, reported by a loss record)"
                .to_string(),
        )
    }
}

/// A batch went out.
pub struct BatchSent<'a> {
    pub cluster: &'a str,
    pub range: &'a str,
    pub attempt: u32,
    /// The counters and buffer state the debug line shows.
    pub admitted: u64,
    pub delivered: u64,
    pub rejected: u64,
    pub buffered: usize,
    pub in_flight: usize,
}

impl Event for BatchSent<'_> {
    fn count(&self, stats: &mut Stats) {
        stats.add(Counter::BatchesSent, 1);
        count_retry(stats, self.attempt);
    }
    fn line(&self) -> (Level, String) {
        (
            Level::Debug,
            format!(
                "mesh-audit: sent records {} to {} (attempt {}); admitted={} delivered={} rejected={} buffered={} in_flight={}",
                self.range,
                self.cluster,
                self.attempt,
                self.admitted,
                self.delivered,
                self.rejected,
                self.buffered,
                self.in_flight
            ),
        )
    }
}

/// The proxy refused to dispatch a batch.
pub struct DispatchRefused<'a> {
    pub cluster: &'a str,
    pub error: crate::host::HostError,
    pub attempt: u32,
    pub delay_ms: u64,
}

impl Event for DispatchRefused<'_> {
    fn count(&self, stats: &mut Stats) {
        stats.add(Counter::BatchFailures, 1);
        count_retry(stats, self.attempt);
    }
    fn limit(&self) -> Limit {
        Limit::Once(Cause::DispatchRefused)
    }
    fn line(&self) -> (Level, String) {
        (
            Level::Error,
            format!(
                "mesh-audit: cannot dispatch to cluster {} ({:?}: is the cluster defined?); records stay buffered, retrying in {} ms",
                self.cluster, self.error, self.delay_ms
            ),
        )
    }
}

/// The sink acknowledged a batch.
pub struct Delivered {
    pub records: usize,
}

impl Event for Delivered {
    fn count(&self, stats: &mut Stats) {
        stats.add(Counter::RecordsDelivered, self.records as u64);
    }
    fn limit(&self) -> Limit {
        Limit::Clears(Cause::SinkFailing)
    }
    fn line(&self) -> (Level, String) {
        (
            Level::Info,
            "mesh-audit: sink accepts batches again".to_string(),
        )
    }
}

/// A batch failed and stays buffered for a retry.
pub struct WillRetry<'a> {
    pub cluster: &'a str,
    /// The reply's status; none: no reply at all.
    pub status: Option<u32>,
    pub records: usize,
    pub attempts: u32,
    pub delay_ms: u64,
}

impl Event for WillRetry<'_> {
    fn count(&self, stats: &mut Stats) {
        stats.add(Counter::BatchFailures, 1);
    }
    fn limit(&self) -> Limit {
        Limit::Once(Cause::SinkFailing)
    }
    fn line(&self) -> (Level, String) {
        let why = self
            .status
            .map_or("no reply (connect failure or timeout)".to_string(), |s| {
                format!("status {s}")
            });
        (
            Level::Warn,
            format!(
                "mesh-audit: sink {} failed a batch of {} records ({why}), attempt {}; retrying in {} ms, records stay buffered",
                self.cluster, self.records, self.attempts, self.delay_ms
            ),
        )
    }
}

/// The sink refused a batch for good.
pub struct Rejected<'a> {
    pub cluster: &'a str,
    pub status: Option<u32>,
    pub records: usize,
    pub from_seq: u64,
    pub to_seq: u64,
}

impl Event for Rejected<'_> {
    fn count(&self, stats: &mut Stats) {
        stats.add(Counter::BatchFailures, 1);
        stats.add(Counter::RecordsRejected, self.records as u64);
    }
    fn limit(&self) -> Limit {
        Limit::Once(Cause::SinkRejected)
    }
    fn line(&self) -> (Level, String) {
        (
            Level::Error,
            format!(
                "mesh-audit: sink {} rejected records {}..{} with status {}; they are dropped and reported by a loss record",
                self.cluster,
                self.from_seq,
                self.to_seq,
                self.status.unwrap_or(0)
            ),
        )
    }
}

/// An OTLP collector refused some records of a batch, or warned.
pub struct PartialSuccess<'a> {
    pub cluster: &'a str,
    pub rejected: u64,
    pub message: &'a str,
}

impl Event for PartialSuccess<'_> {
    fn limit(&self) -> Limit {
        Limit::Once(Cause::PartialSuccess)
    }
    fn line(&self) -> (Level, String) {
        let what = if self.rejected > 0 {
            format!(
                "rejected {} records of a batch; they are reported by a loss record",
                self.rejected
            )
        } else {
            "accepted a batch with a warning".to_string()
        };
        (
            Level::Warn,
            format!(
                "mesh-audit: sink {} {what} (OTLP partial success: {:?})",
                self.cluster, self.message
            ),
        )
    }
}

/// A 2xx reply whose body is not an OTLP export response.
pub struct ReplyUnreadable<'a> {
    pub cluster: &'a str,
    pub why: &'a str,
}

impl Event for ReplyUnreadable<'_> {
    fn limit(&self) -> Limit {
        Limit::Once(Cause::ReplyUnreadable)
    }
    fn line(&self) -> (Level, String) {
        (
            Level::Warn,
            format!(
                "mesh-audit: sink {} acknowledged a batch with a reply body that is not an OTLP response ({}); counted as delivered",
                self.cluster, self.why
            ),
        )
    }
}

/// `on_done` found records still buffered.
pub struct Draining {
    pub records: usize,
}

impl Event for Draining {
    fn line(&self) -> (Level, String) {
        (
            Level::Info,
            format!(
                "mesh-audit: draining {} buffered records before shutdown",
                self.records
            ),
        )
    }
}

/// The drain ended (`done()` follows).
pub struct ShutDown<'a> {
    pub why: &'a str,
    pub undelivered: usize,
}

impl Event for ShutDown<'_> {
    fn line(&self) -> (Level, String) {
        let level = if self.undelivered == 0 {
            Level::Info
        } else {
            Level::Warn
        };
        (
            level,
            format!(
                "mesh-audit: shutdown: {}; {} records undelivered",
                self.why, self.undelivered
            ),
        )
    }
}
