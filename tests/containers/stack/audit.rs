//! What the recipe's audit side says: the proxy's counters (and waiting
//! until they settle), the trail the sink stored, and `verify` over it.

use super::{docker, docker_ok, text, Stack};
use crate::e2e::process::{admin_request, mesh_audit_stats};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

impl Stack {
    /// The filter's metrics from the recipe's Envoy.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        stats_at(self.admin_port)
    }

    /// Waits (bounded by [`crate::SETTLE`]) until the trail holds at least
    /// `requests` request records, then until every admitted record is
    /// delivered and none is buffered, per Envoy's counters. A client has
    /// its response before Envoy logs the request, so counters that agree
    /// right after the last response may not yet count its record.
    pub fn settled(&self, requests: usize) -> BTreeMap<String, u64> {
        self.settled_at(self.admin_port, requests, |_| true, |_| true)
    }

    /// [`Stack::settled`] for the Envoy whose admin is published on `port`,
    /// counting only the request records `mine` picks out of the shared
    /// trail (a hop's by its route), and waiting also for `also` to hold of
    /// that Envoy's counters.
    pub fn settled_at(
        &self,
        port: u16,
        requests: usize,
        mine: impl Fn(&Value) -> bool,
        also: impl Fn(&BTreeMap<String, u64>) -> bool,
    ) -> BTreeMap<String, u64> {
        let deadline = Instant::now() + crate::SETTLE;
        loop {
            let trail = self.trail();
            let stored = crate::records_of_kind(&trail, "request")
                .into_iter()
                .filter(|r| mine(r))
                .count();
            let stats = stats_at(port);
            let get = |n: &str| stats.get(n).copied().unwrap_or(0);
            if stored >= requests
                && get("records_admitted") > 0
                && get("records_delivered") + get("records_rejected") == get("records_admitted")
                && get("records_buffered") == 0
                && also(&stats)
            {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "records of the Envoy with admin :{port} never settled ({stored} of {requests} \
                 request records stored): {stats:?}\nenvoy:\n{}\nsink:\n{}",
                self.logs("envoy"),
                self.logs("sink")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Connections the mTLS listener (:8443) has accepted so far.
    pub fn listener_connections(&self) -> u64 {
        let body =
            http_get(self.admin_port, "/stats?filter=downstream_cx_total").unwrap_or_else(|| {
                panic!(
                    "Envoy's admin on 127.0.0.1:{} is unreachable",
                    self.admin_port
                )
            });
        body.lines()
            .find_map(|l| l.strip_prefix("listener.0.0.0.0_8443.downstream_cx_total: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no connection count for :8443 in {body}"))
    }

    pub fn admin_post(&self, path: &str) -> Option<String> {
        http_request(self.admin_port, "POST", path)
    }

    /// Every line the sink stored, parsed.
    pub fn trail(&self) -> Vec<Value> {
        let id = self.container("sink");
        docker_ok(&["exec", &id, "cat", "/data/audit.jsonl"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Strict `mesh-audit verify --keys --key-env --json` inside the sink's
    /// container, as the recipe's README runs it (the mounted keyring and
    /// the chain key from auditor.env): (exit success, outcome, text report).
    pub fn verify(&self) -> (bool, Value, String) {
        let id = self.container("sink");
        let run = |json: &str| {
            docker(&[
                "exec",
                &id,
                "bash",
                "-c",
                &format!(
                    "mesh-audit verify --keys /etc/mesh-audit/keyring \
                     --key-env MESH_AUDIT_CHAIN_KEY {json} /data/audit.jsonl"
                ),
            ])
        };
        let (json, human) = (run("--json"), run(""));
        let outcome: Value = serde_json::from_slice(&json.stdout)
            .unwrap_or_else(|e| panic!("verify --json: {e}:\n{}", text(&json)));
        (json.status.success(), outcome, text(&human))
    }
}

/// The filter's metrics from the Envoy admin published on `port`, read as
/// the end-to-end harness reads them (both builds' metric prefixes).
fn stats_at(port: u16) -> BTreeMap<String, u64> {
    mesh_audit_stats(port)
}

/// The body of a 200 from the Envoy admin published on `port` (loopback).
fn http_request(port: u16, method: &str, path: &str) -> Option<String> {
    admin_request(port, method, path).and_then(|(status, body)| (status == 200).then_some(body))
}

fn http_get(port: u16, path: &str) -> Option<String> {
    http_request(port, "GET", path)
}
