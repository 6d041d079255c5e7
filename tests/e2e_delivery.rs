//! Delivery in the real, pinned Envoy: how batches reach the sink, how they
//! are sequenced and chained, retried, rejected and counted, and how a bad
//! configuration is refused. Each scenario runs on both builds, each test
//! with its own Envoy.

// Test code: helpers fail the test by panicking.
#![allow(clippy::panic, clippy::unwrap_used)]

mod e2e;

use e2e::{is_lower_hex, sha256_hex, Envoy, Record, Sink, Workload};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn config() -> Value {
    json!({"sink": {"cluster": "audit_sink"}, "batch": {"flush_interval_ms": 100}})
}

/// Records grouped by emitter, each group in `seq` order.
fn by_emitter(records: &[Record]) -> BTreeMap<String, Vec<Record>> {
    let mut groups: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for rec in records {
        let emitter = rec
            .str("/emitter")
            .unwrap_or_else(|| panic!("no emitter: {}", rec.line));
        groups
            .entry(emitter.to_string())
            .or_default()
            .push(rec.clone());
    }
    for group in groups.values_mut() {
        group.sort_by_key(|r| r.u64("/seq"));
    }
    groups
}

crate::on_both_builds! {
fn records_are_sequenced_from_one_and_hash_chained_per_emitter(build: Build) {
    let sink = Sink::start();
    let plugin = json!({
        "sink": {"cluster": "audit_sink", "authority": "audit.example", "headers": {"x-audit-tenant": "shop"}},
        "batch": {"flush_interval_ms": 100}
    });
    let envoy = Envoy::start_build(build, &plugin, &sink);
    let statuses: Vec<u16> = [
        envoy.mtls(Workload::Frontend, "/orders/1"),
        envoy.mtls(Workload::Reporter, "/admin/x"),
        envoy.mtls(Workload::Frontend, "/nowhere"),
        envoy.plain("/orders/2"),
        envoy.mtls(Workload::Reporter, "/orders/3"),
        envoy.mtls(Workload::Frontend, "/missing-upstream"),
    ]
    .iter()
    .map(|r| r.status)
    .collect();
    assert_eq!(statuses, [200, 403, 404, 200, 200, 503]);
    let records = sink.wait_for_records(statuses.len(), WAIT);
    assert_eq!(records.len(), statuses.len(), "{records:#?}");
    // The chain runs through every stored line, seals included.
    let records = sink.records();

    for delivery in sink.deliveries() {
        assert_eq!(delivery.method, "POST");
        assert_eq!(delivery.path, "/v1/audit");
        assert_eq!(
            delivery.header("content-type"),
            Some("application/x-ndjson")
        );
        assert_eq!(delivery.header("host"), Some("audit.example"));
        assert_eq!(delivery.header("x-audit-tenant"), Some("shop"));
    }
    for (emitter, group) in by_emitter(&records) {
        assert!(is_lower_hex(&emitter, 32), "emitter {emitter:?}");
        let mut prev = ZERO_HASH.to_string();
        for (i, rec) in group.iter().enumerate() {
            assert_eq!(
                rec.u64("/seq"),
                Some(i as u64 + 1),
                "gap or duplicate in {emitter}: {group:#?}"
            );
            assert_eq!(
                rec.str("/prev"),
                Some(prev.as_str()),
                "broken chain at {}",
                rec.line
            );
            prev = sha256_hex(rec.line.as_bytes());
        }
    }
}
}

crate::on_both_builds! {
fn a_full_batch_is_flushed_at_once_without_waiting_for_the_interval(build: Build) {
    let sink = Sink::start();
    // Four requests and their seal fill a batch of max_records 5.
    let plugin = json!({"sink": {"cluster": "audit_sink"}, "batch": {"max_records": 5, "flush_interval_ms": 60000}});
    let envoy = Envoy::start_build(build, &plugin, &sink);
    let started = Instant::now();
    for i in 0..4 {
        assert_eq!(
            envoy
                .mtls(Workload::Frontend, &format!("/orders/{i}"))
                .status,
            200
        );
    }
    let deliveries = sink.wait_for_deliveries(1, Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
    assert_eq!(
        deliveries[0].records().len(),
        5,
        "{:#?}",
        deliveries[0].records()
    );
    assert_eq!(deliveries[0].records()[4].str("/kind"), Some("seal"));
    // Three more stay buffered: the interval is a minute away.
    for i in 4..7 {
        assert_eq!(
            envoy
                .mtls(Workload::Frontend, &format!("/orders/{i}"))
                .status,
            200
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sink.deliveries().len(),
        1,
        "a partial batch was sent before the interval"
    );
}
}

crate::on_both_builds! {
fn failed_deliveries_are_retried_in_order_until_the_sink_acknowledges(build: Build) {
    let sink = Sink::start();
    sink.answer_with(503);
    let plugin = json!({
        "sink": {"cluster": "audit_sink"},
        // One batch in flight: the requests may span several sealed
        // batches, and acknowledgement order must then be seq order.
        "batch": {"flush_interval_ms": 100, "max_in_flight": 1},
        "retry": {"backoff_base_ms": 50, "backoff_max_ms": 200}
    });
    let envoy = Envoy::start_build(build, &plugin, &sink);
    for i in 0..3 {
        assert_eq!(
            envoy
                .mtls(Workload::Frontend, &format!("/orders/{i}"))
                .status,
            200
        );
    }
    let failed = sink.wait_for_deliveries(2, WAIT);
    assert!(failed.iter().all(|d| d.answered == 503));
    sink.answer_with(200);
    sink.wait_for_records(3, WAIT);
    let stats = e2e::wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| {
            s.get("records_buffered") == Some(&0)
                && s.get("records_delivered") == s.get("records_admitted")
        })
    })
    .unwrap_or_else(|| panic!("stats {:?}", envoy.stats()));
    // Every acknowledged line (the requests and their seals) once, in order.
    let records = sink.records();
    let seqs: Vec<_> = records.iter().map(|r| r.u64("/seq")).collect();
    let want: Vec<_> = (1..=records.len() as u64).map(Some).collect();
    assert_eq!(
        seqs, want,
        "acknowledged records must come once each, in order"
    );
    assert_eq!(
        stats.get("records_delivered"),
        Some(&(records.len() as u64))
    );
    // A retry resends the very bytes first sent: the chain depends on them.
    let accepted: Vec<&str> = records.iter().map(|r| r.line.as_str()).collect();
    for attempt in sink.deliveries().iter().filter(|d| !d.accepted()) {
        for rec in attempt.records() {
            assert!(
                accepted.contains(&rec.line.as_str()),
                "retried record changed: {}",
                rec.line
            );
        }
    }
    assert!(
        stats.get("batch_failures").is_some_and(|n| *n >= 2),
        "{stats:?}"
    );
    assert!(
        stats.get("batch_retries").is_some_and(|n| *n >= 1),
        "{stats:?}"
    );
}
}

crate::on_both_builds! {
fn a_batch_the_sink_rejects_is_dropped_and_reported_by_a_loss_record(build: Build) {
    let sink = Sink::start();
    sink.answer_with(400);
    // Batches of two requests and their seal: the rejected one, then the
    // loss record with the next request.
    let plugin = json!({"sink": {"cluster": "audit_sink"}, "batch": {"max_records": 3, "flush_interval_ms": 60000}});
    let envoy = Envoy::start_build(build, &plugin, &sink);
    for i in 0..2 {
        assert_eq!(
            envoy
                .mtls(Workload::Frontend, &format!("/orders/{i}"))
                .status,
            200
        );
    }
    let rejected = sink.wait_for_deliveries(1, WAIT);
    let rejected_lines = rejected[0].records();
    assert_eq!(rejected_lines.len(), 3, "{rejected_lines:#?}");
    sink.answer_with(200);
    assert_eq!(envoy.mtls(Workload::Frontend, "/orders/after").status, 200);
    let records = sink.wait_for_records(2, WAIT);

    let loss = records
        .iter()
        .find(|r| r.str("/kind") == Some("loss"))
        .unwrap_or_else(|| panic!("{records:#?}"));
    assert_eq!(loss.str("/reason"), Some("rejected"));
    assert_eq!(loss.u64("/count"), Some(3));
    assert_eq!(
        (loss.u64("/from_seq"), loss.u64("/to_seq")),
        (Some(1), Some(3))
    );
    assert_eq!(loss.u64("/seq"), Some(4));
    // The chain runs through the rejected records the sink never kept.
    assert_eq!(
        loss.str("/prev"),
        Some(sha256_hex(rejected_lines[2].line.as_bytes()).as_str())
    );
    let stats = envoy.stats();
    assert_eq!(stats.get("records_rejected"), Some(&3), "{stats:?}");
}
}

crate::on_both_builds! {
fn stats_account_for_every_admitted_record(build: Build) {
    let sink = Sink::start();
    let envoy = Envoy::start_build(build, &config(), &sink);
    for i in 0..4 {
        assert_eq!(
            envoy
                .mtls(Workload::Reporter, &format!("/orders/{i}"))
                .status,
            200
        );
    }
    sink.wait_for_records(4, WAIT);
    let stats = e2e::wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| {
            s.get("records_buffered") == Some(&0)
                && s.get("records_delivered") == s.get("records_admitted")
        })
    })
    .unwrap_or_else(|| panic!("stats {:?}", envoy.stats()));
    // The four requests and the seals of their batches.
    let stored = sink.records().len() as u64;
    assert!(stored > 4, "{stored}");
    assert_eq!(stats.get("records_admitted"), Some(&stored), "{stats:?}");
    assert_eq!(stats.get("records_buffered"), Some(&0), "{stats:?}");
    assert_eq!(stats.get("records_not_admitted"), Some(&0), "{stats:?}");
    assert!(
        stats.get("batches_sent").is_some_and(|n| *n >= 1),
        "{stats:?}"
    );
}
}

crate::on_both_builds! {
fn an_invalid_configuration_makes_envoy_refuse_the_filter_with_one_log_line(build: Build) {
    let sink = Sink::start();
    let log = Envoy::start_build_expecting_refusal(build, &json!({"sink": {"cluster": ""}}), &sink);
    let expected = "mesh-audit: invalid configuration: sink.cluster: must not be empty";
    // Envoy prefixes wasm plugin log lines with "wasm log <plugin> <root id>: ".
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("invalid configuration"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one error line, got {lines:#?}\n{log}"
    );
    // The native module's lines carry Envoy's dynamic-module prefix, "[:] ".
    let prefix = match build {
        Build::Wasm => ": ",
        _ => "] ",
    };
    assert!(
        lines[0].ends_with(&format!("{prefix}{expected}")),
        "{}",
        lines[0]
    );
    assert!(sink.deliveries().is_empty());
}
}
