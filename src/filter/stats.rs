//! The filter's counters (SPEC §2.6). Counted locally per request and
//! published to the proxy on tick, so auditing a request costs no metric
//! host call.

use crate::host::{Host, MetricKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    RecordsAdmitted,
    RecordsSampledOut,
    RecordsNotAdmitted,
    RecordsDelivered,
    RecordsRejected,
    BatchesSent,
    BatchFailures,
    BatchRetries,
    RequestsRejected,
    PolicyViolations,
    RequestsUnaudited,
}

const COUNTERS: [(Counter, &str); 11] = [
    (Counter::RecordsAdmitted, "mesh_audit.records_admitted"),
    (Counter::RecordsSampledOut, "mesh_audit.records_sampled_out"),
    (
        Counter::RecordsNotAdmitted,
        "mesh_audit.records_not_admitted",
    ),
    (Counter::RecordsDelivered, "mesh_audit.records_delivered"),
    (Counter::RecordsRejected, "mesh_audit.records_rejected"),
    (Counter::BatchesSent, "mesh_audit.batches_sent"),
    (Counter::BatchFailures, "mesh_audit.batch_failures"),
    (Counter::BatchRetries, "mesh_audit.batch_retries"),
    (Counter::RequestsRejected, "mesh_audit.requests_rejected"),
    (Counter::PolicyViolations, "mesh_audit.policy_violations"),
    (Counter::RequestsUnaudited, "mesh_audit.requests_unaudited"),
];

pub const BUFFERED_GAUGE: &str = "mesh_audit.records_buffered";

/// Gauges that say "this is so" (0 or 1), SPEC §2.7.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// The configuration last given is invalid.
    ConfigInvalid,
    /// A safety degradation is in force.
    Degraded,
}

const FLAGS: [(Flag, &str); 2] = [
    (Flag::ConfigInvalid, "mesh_audit.config_invalid"),
    (Flag::Degraded, "mesh_audit.degraded"),
];

#[derive(Default, Debug)]
pub struct Stats {
    values: [u64; 11],
    published: [u64; 11],
    ids: [Option<u32>; 11],
    gauge: Option<u32>,
    /// What this worker has added to the shared gauge so far.
    gauge_published: u64,
    flags: [bool; 2],
    flag_ids: [Option<u32>; 2],
    /// What was last recorded for each flag (none yet: record it).
    flags_published: [Option<bool>; 2],
}

impl Stats {
    /// Defines the metrics with the proxy (once; later calls are no-ops).
    pub fn define(&mut self, host: &dyn Host) {
        for (i, (_, name)) in COUNTERS.iter().enumerate() {
            if self.ids[i].is_none() {
                self.ids[i] = host.define_metric(MetricKind::Counter, name);
            }
        }
        if self.gauge.is_none() {
            self.gauge = host.define_metric(MetricKind::Gauge, BUFFERED_GAUGE);
        }
        for (i, (_, name)) in FLAGS.iter().enumerate() {
            if self.flag_ids[i].is_none() {
                self.flag_ids[i] = host.define_metric(MetricKind::Gauge, name);
            }
        }
    }

    pub fn set_flag(&mut self, f: Flag, on: bool) {
        self.flags[f as usize] = on;
    }

    pub fn add(&mut self, c: Counter, n: u64) {
        self.values[c as usize] += n;
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize]
    }

    /// Pushes what changed since the last publish, the buffered gauge and
    /// the flags. Envoy shares a metric between all VMs of the plugin (one
    /// per worker), so the buffered gauge moves by this worker's change
    /// rather than being set; a flag is set, so every worker saying 1 is 1.
    pub fn publish(&mut self, host: &dyn Host, buffered: u64) {
        for i in 0..COUNTERS.len() {
            let delta = self.values[i] - self.published[i];
            if delta > 0 {
                if let Some(id) = self.ids[i] {
                    host.increment_metric(id, delta as i64);
                    self.published[i] = self.values[i];
                }
            }
        }
        if let Some(id) = self.gauge {
            let delta = buffered as i64 - self.gauge_published as i64;
            if delta != 0 {
                host.increment_metric(id, delta);
                self.gauge_published = buffered;
            }
        }
        for i in 0..FLAGS.len() {
            if let (Some(id), value) = (self.flag_ids[i], self.flags[i]) {
                if self.flags_published[i] != Some(value) {
                    host.record_metric(id, u64::from(value));
                    self.flags_published[i] = Some(value);
                }
            }
        }
    }
}
