//! The evidence of an emitter's end in the real, pinned Envoy (SPEC §2.4):
//! a reload drains the old filter, which ends its emitter with a sealed
//! `close` record and loses nothing; a plain SIGTERM with records buffered
//! leaves the emitter open since its last seal, and `mesh-audit verify`
//! says so instead of staying silent. The reload runs on both builds; the
//! SIGTERM case is the wasm filter's (the native module drains in Envoy's
//! shutdown hook instead: tests/e2e_native.rs).
#![cfg(feature = "cli")]
// Test code: helpers fail the test by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod e2e;

use e2e::{trail, wait_for, Envoy, Sink};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
/// `mesh-audit verify --json` of the acknowledged lines. The seals here
/// are unsigned checkpoints (signatures are covered by tests/tamper.rs);
/// what matters is how the emitter ended.
fn verify(sink: &Sink) -> (i32, Value) {
    let dir = std::env::temp_dir().join(format!(
        "mesh-audit-e2e-evidence-{}-{}",
        std::process::id(),
        sink.port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut body = String::new();
    for rec in sink.records() {
        body.push_str(&rec.line);
        body.push('\n');
    }
    std::fs::write(dir.join("trail.jsonl"), body).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-audit"))
        .arg("verify")
        .arg(dir.join("trail.jsonl"))
        .arg("--json")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), json)
}

fn config(flush_ms: u64) -> Value {
    json!({
        "sink": {"cluster": "audit_sink", "timeout_ms": 2000},
        "batch": {"flush_interval_ms": flush_ms}
    })
}

crate::on_both_builds! {
fn a_reload_ends_the_old_emitter_with_a_sealed_close_record_and_loses_nothing(build: Build) {
    let sink = Sink::start();
    let envoy = Envoy::start_reloadable_on(build, &config(60_000), &sink);
    let ids = envoy.plain_ok("/orders/before-reload", 4);
    wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| s.get("records_buffered") == Some(&4))
    })
    .unwrap_or_else(|| panic!("four records buffered: {:?}", envoy.stats()));
    envoy.reload_plugin(&json!({
        "sink": {"cluster": "audit_sink", "timeout_ms": 2000, "headers": {"x-audit-generation": "2"}},
        "batch": {"flush_interval_ms": 60_000}
    }));
    let drained = sink.wait_for_records(4, WAIT);
    let audited: Vec<&str> = drained
        .iter()
        .filter_map(|r| r.str("/request_id"))
        .collect();
    assert_eq!(audited, ids, "nothing missing");
    envoy.wait_for_log(
        "mesh-audit: shutdown: all records delivered; 0 records undelivered",
        WAIT,
    );
    let emitters = trail(&sink.deliveries());
    // The worker's emitter (the main thread's VMs audit no request).
    let (name, old) = emitters
        .iter()
        .find(|(_, e)| e.records.iter().any(|r| r.str("/kind") == Some("request")))
        .unwrap();
    old.assert_complete_chain(name);
    let kinds: Vec<&str> = old.records.iter().filter_map(|r| r.str("/kind")).collect();
    assert_eq!(
        kinds,
        ["request", "request", "request", "request", "close", "seal"]
    );
    assert_eq!(old.records[4].str("/reason"), Some("shutdown"));

    let (code, report) = verify(&sink);
    assert_eq!(code, 0, "{report:#}");
    let e = report["emitters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["emitter"] == json!(name))
        .unwrap();
    assert_eq!(e["closed"], true, "{report:#}");
    assert_eq!(e["sealed_through"], 6, "{report:#}");
    assert_eq!(e["problems"], json!([]), "{report:#}");
}
}

#[test]
fn sigterm_with_records_buffered_leaves_the_emitter_open_since_its_last_seal() {
    let sink = Sink::start();
    let mut envoy = Envoy::start(&config(100), &sink);
    envoy.plain_ok("/orders/delivered", 3);
    sink.wait_for_records(3, WAIT);
    let delivered = wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| {
            s.get("records_buffered") == Some(&0)
                && s.get("records_delivered") == s.get("records_admitted")
        })
    })
    .unwrap_or_else(|| panic!("delivered: {:?}", envoy.stats()));
    // The sink goes away; two more records stay buffered; then a plain SIGTERM.
    sink.go_down();
    envoy.plain_ok("/orders/lost", 2);
    let buffered = wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| s.get("records_buffered").is_some_and(|b| *b >= 2))
    })
    .unwrap_or_else(|| panic!("buffered: {:?}", envoy.stats()));
    envoy.terminate();
    assert!(envoy.wait_exit(WAIT).is_some());

    let (code, report) = verify(&sink);
    assert_eq!(
        code, 0,
        "an open emitter is reported, not a failure: {report:#}"
    );
    let e = &report["emitters"][0];
    let last_seal = delivered.get("records_delivered").copied().unwrap_or(0);
    assert_eq!(e["closed"], false, "{report:#}");
    assert_eq!(e["open_since"], json!(last_seal), "{report:#}");
    assert_eq!(e["sealed_through"], json!(last_seal), "{report:#}");
    eprintln!(
        "SIGTERM: open since seq {last_seal}; the records_buffered gauge said {} were held",
        buffered.get("records_buffered").copied().unwrap_or(0)
    );
}
