//! mesh-audit attached as a wasm access logger (`envoy.access_loggers.wasm`)
//! in the real, pinned Envoy: the same `.wasm` and configuration produce the
//! same records as the HTTP filter, for every kind of request.

// Test code: helpers fail the test by panicking.
#![allow(clippy::panic, clippy::unwrap_used)]

mod e2e;

use e2e::{record_of, Envoy, Record, Sink, Workload};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn config() -> Value {
    json!({
        "sink": {"cluster": "audit_sink"},
        "batch": {"flush_interval_ms": 100},
        "capture": {
            "request_headers": ["user-agent", "x-api-key"],
            "response_headers": ["content-type"],
            "query": true
        },
        "access_policy": [
            {"name": "admin-only", "path_prefix": "/admin",
             "allow_principals": ["spiffe://cluster.local/ns/ops/sa/console"]}
        ]
    })
}

/// What a record says about its request, without what differs between two
/// Envoys and two runs (time, emitter, chain, ids, ports, duration).
fn facts(r: &Record) -> Value {
    let mut v = r.json.clone();
    let o = v.as_object_mut().unwrap();
    for volatile in [
        "ts",
        "emitter",
        "seq",
        "prev",
        "request_id",
        "trace_id",
        "span_id",
        "duration_ms",
    ] {
        o.remove(volatile);
    }
    for (side, field) in [
        ("source", "address"),
        ("destination", "address"),
        ("request", "authority"),
    ] {
        if let Some(obj) = o.get_mut(side).and_then(Value::as_object_mut) {
            let present = obj.remove(field).is_some();
            obj.insert(format!("{field} present"), Value::Bool(present));
        }
    }
    v
}

/// The same requests, in order: each with its label, for the failure message.
fn traffic(envoy: &Envoy) -> Vec<(&'static str, String)> {
    let ua = [
        ("user-agent", "logger-test/1.0"),
        ("x-api-key", "secret-key-value"),
    ];
    let mut sent = Vec::new();
    let reply = envoy.mtls_with(Workload::Frontend, "/orders/42?page=2&token=abc", &ua);
    assert_eq!(reply.status, 200, "{reply:#?}");
    sent.push(("frontend order", reply.request_id().to_string()));
    // RBAC denies the reporter /admin: a local 403 before any upstream.
    let reply = envoy.mtls(Workload::Reporter, "/admin/users");
    assert_eq!(reply.status, 403, "{reply:#?}");
    sent.push(("reporter denied", reply.request_id().to_string()));
    // No upstream behind this route: a 503 with upstream failure flags.
    let reply = envoy.mtls(Workload::Frontend, "/missing-upstream/x");
    assert_eq!(reply.status, 503, "{reply:#?}");
    sent.push(("no upstream", reply.request_id().to_string()));
    let reply = envoy.plain("/orders/7");
    assert_eq!(reply.status, 200, "{reply:#?}");
    sent.push(("plaintext", reply.request_id().to_string()));
    sent
}

#[test]
fn the_access_logger_writes_the_records_the_http_filter_writes() {
    let filter_sink = Sink::start();
    let filter = Envoy::start(&config(), &filter_sink);
    let by_filter = traffic(&filter);
    let filter_records = filter_sink.wait_for_records(by_filter.len(), WAIT);

    let logger_sink = Sink::start();
    let logger = Envoy::start_access_logger(&config(), &logger_sink);
    let by_logger = traffic(&logger);
    let logger_records = logger_sink.wait_for_records(by_logger.len(), WAIT);

    for ((what, filter_id), (_, logger_id)) in by_filter.iter().zip(&by_logger) {
        let f = record_of(&filter_records, filter_id);
        let l = record_of(&logger_records, logger_id);
        assert_eq!(
            facts(l),
            facts(f),
            "{what}: the access logger's record differs from the filter's\n\
             logger: {}\nfilter: {}",
            l.line,
            f.line
        );
    }
    // The facts compared above are the substance, not empty shells.
    let first = record_of(&logger_records, &by_logger[0].1);
    assert_eq!(
        first.str("/source/principal"),
        Some(Workload::Frontend.principal())
    );
    assert_eq!(first.str("/request/query"), Some("page=2&token=[REDACTED]"));
    assert_eq!(first.str("/request/headers/x-api-key"), Some("[REDACTED]"));
    let denied = record_of(&logger_records, &by_logger[1].1);
    assert_eq!(denied.str("/decision"), Some("denied"));
    assert_eq!(denied.str("/violation"), Some("admin-only"));
    let failed = record_of(&logger_records, &by_logger[2].1);
    assert_eq!(failed.str("/decision"), Some("error"));

    // Chain and counters hold in the logger as in the filter: every batch
    // ends with a seal (SPEC §4.1), which takes the next seq and counts as
    // admitted and delivered like the four request records.
    let stats = logger.settled_stats(WAIT);
    let mut trail = logger_sink.records();
    trail.sort_by_key(|r| r.u64("/seq"));
    let kinds = |kind: &str| {
        trail
            .iter()
            .filter(|r| r.str("/kind") == Some(kind))
            .count()
    };
    let (requests, seals) = (kinds("request"), kinds("seal"));
    assert_eq!(requests, 4, "{trail:#?}");
    assert!(seals >= 1, "no seal in the logger's trail: {trail:#?}");
    assert_eq!(requests + seals, trail.len(), "{trail:#?}");
    let total = Some(&(trail.len() as u64));
    assert_eq!(stats.get("records_admitted"), total, "{stats:?}");
    assert_eq!(stats.get("records_delivered"), total, "{stats:?}");
    assert_eq!(stats.get("policy_violations"), Some(&1));
    let seqs: Vec<u64> = trail.iter().filter_map(|r| r.u64("/seq")).collect();
    assert_eq!(seqs, (1..=trail.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        trail.last().and_then(|r| r.str("/kind")),
        Some("seal"),
        "the trail does not end with its batch's seal: {trail:#?}"
    );
}
