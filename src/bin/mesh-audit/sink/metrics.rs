//! The sink's counters: `GET /metrics` in the Prometheus text format, and
//! the periodic progress line on stderr.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a batch was refused, as the `reason` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    Unauthenticated,
    Forbidden,
    Owner,
    Malformed,
    TooLarge,
    Invalid,
    Conflict,
    Unavailable,
}

const REJECTIONS: [(Rejection, &str); 8] = [
    (Rejection::Unauthenticated, "unauthenticated"),
    (Rejection::Forbidden, "forbidden"),
    (Rejection::Owner, "owner"),
    (Rejection::Malformed, "malformed"),
    (Rejection::TooLarge, "too_large"),
    (Rejection::Invalid, "invalid"),
    (Rejection::Conflict, "conflict"),
    (Rejection::Unavailable, "unavailable"),
];

#[derive(Default)]
pub struct Metrics {
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub bytes: AtomicU64,
    pub batches: AtomicU64,
    pub syncs: AtomicU64,
    pub quarantined: AtomicU64,
    pub last_write_ms: AtomicU64,
    pub emitters: AtomicU64,
    pub connections: AtomicU64,
    pub connections_refused: AtomicU64,
    pub digests: AtomicU64,
    pub last_digest_ms: AtomicU64,
    rejected: [AtomicU64; 8],
}

impl Metrics {
    pub fn reject(&self, why: Rejection) {
        if let Some(i) = REJECTIONS.iter().position(|(r, _)| *r == why) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP mesh_audit_sink_{name} {help}");
            let _ = writeln!(out, "# TYPE mesh_audit_sink_{name} {kind}");
            let _ = writeln!(out, "mesh_audit_sink_{name} {value}");
        };
        one(
            "records_stored_total",
            "counter",
            "Records appended to the trail (fsynced).",
            get(&self.stored).to_string(),
        );
        one(
            "records_duplicate_total",
            "counter",
            "Byte-identical records already stored (retries), acknowledged and not stored again.",
            get(&self.duplicates).to_string(),
        );
        one(
            "bytes_stored_total",
            "counter",
            "Bytes appended to the trail.",
            get(&self.bytes).to_string(),
        );
        one(
            "batches_stored_total",
            "counter",
            "Batches acknowledged with a 2xx.",
            get(&self.batches).to_string(),
        );
        one(
            "syncs_total",
            "counter",
            "Syncs of the trail to disk; each covers every batch written before it began.",
            get(&self.syncs).to_string(),
        );
        one(
            "batches_quarantined_total",
            "counter",
            "Refused batches kept in the quarantine file.",
            get(&self.quarantined).to_string(),
        );
        one(
            "last_write_timestamp_seconds",
            "gauge",
            "When records were last appended (Unix time; 0 = never).",
            seconds(get(&self.last_write_ms)),
        );
        one(
            "emitters",
            "gauge",
            "Emitters the sink holds state for.",
            get(&self.emitters).to_string(),
        );
        one(
            "connections",
            "gauge",
            "Open client connections.",
            get(&self.connections).to_string(),
        );
        one(
            "connections_refused_total",
            "counter",
            "Connections closed at once because --max-connections were open.",
            get(&self.connections_refused).to_string(),
        );
        one(
            "digests_total",
            "counter",
            "Signed digests written.",
            get(&self.digests).to_string(),
        );
        one(
            "last_digest_timestamp_seconds",
            "gauge",
            "When the last digest was written (Unix time; 0 = never).",
            seconds(get(&self.last_digest_ms)),
        );
        let _ = writeln!(out, "# HELP mesh_audit_sink_batches_rejected_total Batches refused, by reason (nothing of them is stored).");
        let _ = writeln!(out, "# TYPE mesh_audit_sink_batches_rejected_total counter");
        for (i, (_, label)) in REJECTIONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "mesh_audit_sink_batches_rejected_total{{reason=\"{label}\"}} {}",
                get(&self.rejected[i])
            );
        }
        out
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_in_the_exposition() {
        let m = Metrics::default();
        m.stored.fetch_add(3, Ordering::Relaxed);
        m.reject(Rejection::Conflict);
        m.last_write_ms.store(1_700_000_000_123, Ordering::Relaxed);
        let text = m.render();
        assert!(
            text.contains("\nmesh_audit_sink_records_stored_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("mesh_audit_sink_batches_rejected_total{reason=\"conflict\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mesh_audit_sink_last_write_timestamp_seconds 1700000000.123\n"),
            "{text}"
        );
        assert_eq!(m.rejected_total(), 1);
    }
}
