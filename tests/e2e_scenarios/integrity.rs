//! The integrity chain end to end: Envoy's workers deliver to the real
//! `mesh-audit sink`, and `mesh-audit verify` proves the stored trail whole,
//! also when acknowledgements were lost and the sink restarted meanwhile.

use crate::cli::{stored, verify, CliSink, Scratch};
use crate::http::Conn;
use crate::relay::{Outcome, Relay};
use crate::sidecar::Sidecar;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Asserts verify's per-emitter verdict: every seq from 1 once, chained,
/// nothing missing, the last record a seal vouching for all of them.
fn assert_whole(emitter: &Value, records: u64) {
    assert_eq!(emitter["ok"], json!(true), "{emitter:#}");
    assert_eq!(emitter["chained"], json!(true), "{emitter:#}");
    assert_eq!(emitter["sealed_through"], json!(records), "{emitter:#}");
    assert_eq!(emitter["problems"], json!([]), "{emitter:#}");
    assert_eq!(emitter["records"], json!(records), "{emitter:#}");
    assert_eq!(
        (&emitter["first_seq"], &emitter["last_seq"]),
        (&json!(1), &json!(records)),
        "{emitter:#}"
    );
    for list in [
        "explained_gaps",
        "unexplained_gaps",
        "duplicates",
        "mismatches",
        "unchecked",
        "losses",
    ] {
        assert_eq!(emitter[list], json!([]), "{list}: {emitter:#}");
    }
}

crate::on_both_builds! {
fn two_workers_deliver_to_the_cli_sink_and_both_chains_verify(build: Build) {
    const CONNECTIONS: usize = 16;
    const PER_CONNECTION: usize = 25;
    const TOTAL: u64 = (CONNECTIONS * PER_CONNECTION) as u64;
    let scratch = Scratch::new();
    let file = scratch.path("audit.jsonl");
    let sink = CliSink::start(&file);
    let plugin = json!({"sink": {"cluster": "audit_sink"}, "batch": {"flush_interval_ms": 100}});
    let envoy = Sidecar::start_on(build, "workers", "e2e.yaml", &plugin, sink.addr.port(), 2, &[]);

    // Connections spread over both workers (SO_REUSEPORT hashes each one).
    let port = envoy.port("PLAIN_PORT");
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut conn = Conn::open(port);
                (0..PER_CONNECTION)
                    .map(|i| conn.get(&format!("/orders/{c}-{i}"), &[]).status())
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    for client in clients {
        let statuses = client.join().unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    // Every request, plus at least one seal per worker.
    let stats = envoy.stats_when("every record delivered", |s| {
        s.get("records_buffered") == Some(&0)
            && s.get("records_admitted").is_some_and(|a| *a >= TOTAL + 2)
            && s.get("records_delivered") == s.get("records_admitted")
    });
    let admitted = stats.get("records_admitted").copied().unwrap_or(0);

    let lines = stored(&file);
    assert_eq!(
        lines.len() as u64,
        admitted,
        "the sink stored each record once"
    );
    let requests = lines.iter().filter(|l| l["kind"] == "request").count() as u64;
    assert_eq!(requests, TOTAL, "every request, once");
    let mut per_emitter: BTreeMap<String, u64> = BTreeMap::new();
    for line in &lines {
        *per_emitter
            .entry(line["emitter"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(
        per_emitter.len(),
        2,
        "one emitter per worker: {per_emitter:?}"
    );
    // Under wasm, Envoy configures the plugin on its main thread too (the
    // base VM, then the main thread's own VM): those root contexts never
    // see a request. Exactly the two worker VMs' emitters wrote records.
    let (on_main, on_workers) = envoy.configured_emitters();
    eprintln!("emitters configured on the main thread: {on_main:?}; on workers: {on_workers:?}; records per emitter: {per_emitter:?}");
    match build {
        Build::Wasm => {
            assert_eq!(
                on_workers.iter().collect::<BTreeSet<_>>(),
                per_emitter.keys().collect(),
                "{on_main:?}"
            );
            assert!(
                on_main.iter().all(|e| !per_emitter.contains_key(e)),
                "{on_main:?}"
            );
        }
        // The native module runs every emitter on the main thread and
        // configures it on its worker's first hand-off: exactly the
        // emitters that wrote records, all said from the main thread.
        _ => {
            assert_eq!(on_workers, Vec::<String>::new(), "{on_main:?}");
            assert_eq!(
                on_main.iter().collect::<BTreeSet<_>>(),
                per_emitter.keys().collect(),
                "{on_main:?}"
            );
        }
    }

    let verified = verify(&file);
    assert_eq!(verified.exit_code, Some(0), "{}", verified.text);
    let report = &verified.json;
    assert_eq!(report["ok"], json!(true), "{report:#}");
    assert_eq!(report["records"], json!(admitted), "{report:#}");
    assert_eq!(report["bad_lines"], json!([]), "{report:#}");
    let emitters = report["emitters"].as_array().unwrap();
    assert_eq!(emitters.len(), 2, "{report:#}");
    for e in emitters {
        let name = e["emitter"].as_str().unwrap();
        assert_whole(e, per_emitter[name]);
    }
}
}

crate::on_both_builds! {
fn a_batch_whose_acknowledgement_is_lost_is_stored_once_across_a_sink_restart(build: Build) {
    let scratch = Scratch::new();
    let file = scratch.path("audit.jsonl");
    let first_sink = CliSink::start(&file);
    let relay = Relay::start(first_sink.addr);
    let plugin = json!({
        "sink": {"cluster": "audit_sink"},
        "batch": {"max_records": 4, "flush_interval_ms": 60000},
        "retry": {"backoff_base_ms": 50, "backoff_max_ms": 200}
    });
    let envoy = Sidecar::start_on(build, "retrying", "e2e.yaml", &plugin, relay.port(), 1, &[]);
    let mut conn = Conn::open(envoy.port("PLAIN_PORT"));
    let mut send = |from: usize| {
        for i in from..from + 3 {
            assert_eq!(conn.get(&format!("/orders/{i}"), &[]).status(), 200);
        }
    };

    // Three requests and their seal make a batch of max_records 4.
    // Batch 1-4 reaches the first sink, which stores it; its answer is lost,
    // and the relay has no sink until the restarted one is up.
    relay.drop_replies(1, true);
    send(0);
    relay.wait_for("the first answer dropped", |x| {
        x.iter().any(|e| e.outcome == Outcome::ReplyDropped)
    });
    let first_log = first_sink.kill();
    let second_sink = CliSink::start(&file);
    relay.forward_to(second_sink.addr);
    relay.wait_for("1-4 acknowledged", |x| {
        x.iter()
            .any(|e| e.seq_range() == "1-4" && e.outcome == Outcome::Relayed)
    });

    // Batch 5-8: the restarted sink stores it, the answer is lost once more,
    // and the retry reaches the same sink process.
    relay.drop_replies(1, false);
    send(3);
    relay.wait_for("5-8 acknowledged", |x| {
        x.iter()
            .any(|e| e.seq_range() == "5-8" && e.outcome == Outcome::Relayed)
    });
    let stats = envoy.stats_when("six requests and two seals delivered", |s| {
        s.get("records_delivered") == Some(&8)
    });
    assert!(
        stats.get("batch_retries").is_some_and(|n| *n >= 2),
        "{stats:?}"
    );

    // What each sink answered, attempt by attempt (attempts meeting no sink aside).
    let answered: Vec<(String, Outcome, String)> = relay
        .exchanges()
        .iter()
        .filter(|x| x.outcome != Outcome::NoSink)
        .map(|x| {
            (
                x.seq_range().to_string(),
                x.outcome,
                x.reply_body().trim().to_string(),
            )
        })
        .collect();
    let stored_3 = r#"{"stored":4,"duplicates":0}"#.to_string();
    let duplicate_3 = r#"{"stored":0,"duplicates":4}"#.to_string();
    assert_eq!(
        answered,
        [
            ("1-4".to_string(), Outcome::ReplyDropped, stored_3.clone()),
            ("1-4".to_string(), Outcome::Relayed, duplicate_3.clone()),
            ("5-8".to_string(), Outcome::ReplyDropped, stored_3),
            ("5-8".to_string(), Outcome::Relayed, duplicate_3),
        ],
        "{:#?}\nfirst sink: {first_log:#?}",
        relay.summary()
    );

    let lines = stored(&file);
    let keys: Vec<(String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["emitter"].as_str().unwrap().to_string(),
                l["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let emitter = keys[0].0.clone();
    assert_eq!(
        keys,
        (1..=8).map(|s| (emitter.clone(), s)).collect::<Vec<_>>()
    );
    let verified = verify(&file);
    assert_eq!(verified.exit_code, Some(0), "{}", verified.text);
    assert_eq!(verified.json["ok"], json!(true), "{:#}", verified.json);
    let emitters = verified.json["emitters"].as_array().unwrap();
    assert_eq!(emitters.len(), 1, "{:#}", verified.json);
    assert_whole(&emitters[0], 8);
    drop(second_sink);
}
}
