//! The native module (Envoy dynamic module, `make native`) in the real,
//! pinned Envoy, side by side with the wasm filter: the same requests make
//! the same records, field for field and in the same order; the trail it
//! delivers to the real `mesh-audit sink` verifies; and a SIGTERM with
//! records still buffered loses none of them (the shutdown hook drains).
//!
//! Needs the CLI binary: run with `--features cli` (as `make test` does),
//! after `make build native`.
#![cfg(feature = "cli")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e;

#[path = "e2e_scenarios/cli.rs"]
#[allow(dead_code)]
mod cli;

use cli::{stored, verify, CliSink, Scratch};
use e2e::{envoy_bin, native_module, pki, repo_root, Build, Envoy, Reply, Sink, Workload};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// Captures headers, the query and the verified JWT's claims; hashes a
/// header and a claim.
fn config() -> Value {
    json!({
        "sink": {"cluster": "audit_sink"},
        "batch": {"flush_interval_ms": 100},
        "capture": {
            "request_headers": ["user-agent", "x-api-key", "x-user-email"],
            "response_headers": ["content-type"],
            "query": true,
            "jwt": {"claims": ["sub", "iss", "email"]}
        },
        "redact": {
            "headers": {"x-user-email": "hash"},
            "claims": {"email": "hash"},
            "hash_key_env": "MESH_AUDIT_HASH_KEY"
        }
    })
}

/// The same traffic for either build: identities, an end user, a denial, an
/// upstream failure, no route, plaintext, redaction.
fn traffic(envoy: &Envoy) -> Vec<Reply> {
    let token = std::fs::read_to_string(pki().join("alice.jwt")).unwrap();
    let bearer = format!("Bearer {}", token.trim());
    let secret = [
        ("authorization", bearer.as_str()),
        ("x-api-key", "s3cret"),
        ("x-user-email", "alice@example.com"),
        ("user-agent", "e2e-native/1"),
    ];
    vec![
        envoy.mtls_with(Workload::Frontend, "/orders/42?token=abc&page=2", &secret),
        envoy.mtls(Workload::Reporter, "/orders/7"),
        envoy.mtls(Workload::Reporter, "/admin/users"),
        envoy.plain("/orders/1"),
        envoy.plain("/missing-upstream/x"),
        envoy.plain("/nowhere"),
    ]
}

/// Every object key of a JSON line, in the order the line has them.
fn key_order(line: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            let start = i + 1;
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            let end = i.min(bytes.len());
            i += 1;
            if bytes.get(i) == Some(&b':') {
                keys.push(line[start..end].to_string());
            }
        } else {
            i += 1;
        }
    }
    keys
}

/// A record without what differs between two Envoys by nature: times,
/// the emitter and its chain (`seq` and `prev` count the seals the wasm
/// filter writes after every batch), request ids, ports.
fn comparable(mut rec: Value) -> Value {
    let obj = rec.as_object_mut().unwrap();
    for volatile in ["ts", "emitter", "seq", "prev", "request_id", "duration_ms"] {
        obj.remove(volatile);
    }
    for (section, field) in [
        ("source", "address"),
        ("destination", "address"),
        ("request", "authority"),
    ] {
        if let Some(s) = obj.get_mut(section).and_then(Value::as_object_mut) {
            s.remove(field);
        }
    }
    rec
}

#[test]
fn native_records_equal_the_wasm_filters_for_the_same_requests() {
    let (wasm_sink, native_sink) = (Sink::start(), Sink::start());
    let wasm = Envoy::start(&config(), &wasm_sink);
    let native = Envoy::start_native(&config(), native_sink.port(), 1);
    let wasm_replies = traffic(&wasm);
    let native_replies = traffic(&native);
    let statuses = |r: &[Reply]| r.iter().map(|r| r.status).collect::<Vec<_>>();
    assert_eq!(statuses(&wasm_replies), vec![200, 200, 403, 200, 503, 404]);
    assert_eq!(statuses(&native_replies), statuses(&wasm_replies));

    let n = wasm_replies.len();
    let mut from_wasm = wasm_sink.wait_for_records(n, WAIT);
    let mut from_native = native_sink.wait_for_records(n, WAIT);
    // One worker each: one emitter, its request records in request order.
    from_wasm.sort_by_key(|r| r.u64("/seq"));
    from_native.sort_by_key(|r| r.u64("/seq"));
    assert_eq!(from_wasm.len(), n, "{from_wasm:#?}");
    assert_eq!(from_native.len(), n, "{from_native:#?}");
    for (i, (w, nat)) in from_wasm.iter().zip(&from_native).enumerate() {
        assert_eq!(
            w.str("/request_id"),
            Some(wasm_replies[i].request_id()),
            "wasm record {i} is not request {i}"
        );
        assert_eq!(
            nat.str("/request_id"),
            Some(native_replies[i].request_id()),
            "native record {i} is not request {i}"
        );
        assert_eq!(
            key_order(&nat.line),
            key_order(&w.line),
            "fields or their order differ:\n native {}\n wasm   {}",
            nat.line,
            w.line
        );
        assert_eq!(
            comparable(nat.json.clone()),
            comparable(w.json.clone()),
            "values differ:\n native {}\n wasm   {}",
            nat.line,
            w.line
        );
    }
    // What the comparison covers, so it cannot pass on empty records.
    let first = &from_native[0];
    assert_eq!(
        first.str("/source/principal"),
        Some(Workload::Frontend.principal())
    );
    assert_eq!(first.str("/request/headers/x-api-key"), Some("[REDACTED]"));
    assert!(first
        .str("/request/headers/x-user-email")
        .is_some_and(|v| v.starts_with("hmac-sha256:")));
    assert_eq!(first.str("/user/sub"), Some("alice"));
    assert!(first
        .str("/user/email")
        .is_some_and(|v| v.starts_with("hmac-sha256:")));
    assert_eq!(
        from_native[1].str("/source/principal"),
        Some(Workload::Reporter.principal())
    );
    assert_eq!(from_native[2].str("/decision"), Some("denied"));
    assert_eq!(from_native[4].str("/decision"), Some("error"));
    assert!(
        !from_native[4].flags().is_empty(),
        "{}",
        from_native[4].line
    );
    assert_eq!(from_native[5].flags(), vec!["NR".to_string()]);
    assert_eq!(from_native[3].json["tls"]["mtls"], json!(false));

    // Each trail on its own: seq 1..=N without a gap over every record it
    // holds, the wasm filter's seals included; the counters count them all.
    let wasm_trail = settled_trail("wasm", &wasm, &wasm_sink, n);
    let seals = wasm_trail
        .iter()
        .filter(|r| r.str("/kind") == Some("seal"))
        .count();
    assert!(seals >= 1, "the wasm filter wrote no seal: {wasm_trail:#?}");
    assert_eq!(n + seals, wasm_trail.len(), "{wasm_trail:#?}");
    assert_eq!(
        wasm_trail.last().and_then(|r| r.str("/kind")),
        Some("seal"),
        "the wasm trail does not end with its last batch's seal: {wasm_trail:#?}"
    );
    settled_trail("native", &native, &native_sink, n);
}

/// Once `envoy`'s counters settled: every record `sink` acknowledged, by
/// `seq`, after checking that they run 1..=N, hold the `requests` request
/// records and are the N records the filter admitted and delivered.
fn settled_trail(build: &str, envoy: &Envoy, sink: &Sink, requests: usize) -> Vec<e2e::Record> {
    let stats = envoy.settled_stats(WAIT);
    let mut trail = sink.records();
    trail.sort_by_key(|r| r.u64("/seq"));
    let seqs: Vec<u64> = trail.iter().filter_map(|r| r.u64("/seq")).collect();
    assert_eq!(
        seqs,
        (1..=trail.len() as u64).collect::<Vec<_>>(),
        "{build}: {trail:#?}"
    );
    let in_requests = trail
        .iter()
        .filter(|r| r.str("/kind") == Some("request"))
        .count();
    assert_eq!(in_requests, requests, "{build}: {trail:#?}");
    let total = Some(&(trail.len() as u64));
    assert_eq!(stats.get("records_admitted"), total, "{build}: {stats:?}");
    assert_eq!(stats.get("records_delivered"), total, "{build}: {stats:?}");
    trail
}

#[test]
fn sigterm_with_records_buffered_loses_nothing_and_the_trail_verifies() {
    const REQUESTS: usize = 24;
    let scratch = Scratch::new();
    let file = scratch.path("audit.jsonl");
    let sink = CliSink::start(&file);
    // Nothing is due before the shutdown: a minute between flushes.
    let plugin = json!({"sink": {"cluster": "audit_sink"}, "batch": {"flush_interval_ms": 60000}});
    let mut envoy = Envoy::start_native(&plugin, sink.addr.port(), 2);
    let ids = envoy.plain_ok("/orders", REQUESTS);
    let buffered = e2e::wait_for(WAIT, || {
        let s = envoy.stats();
        (s.get("records_buffered") == Some(&(REQUESTS as u64))).then_some(s)
    })
    .unwrap_or_else(|| panic!("records never buffered: {:?}", envoy.stats()));
    assert_eq!(buffered.get("records_delivered"), Some(&0), "{buffered:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap_or_default(), "");

    envoy.terminate();
    let status = envoy
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("Envoy did not exit after SIGTERM:\n{}", envoy.log()));
    assert!(status.success(), "{status}:\n{}", envoy.log());
    let log = envoy.log();
    assert!(
        log.contains("mesh-audit: shutdown: all records delivered; 0 records undelivered"),
        "{log}"
    );

    let records = stored(&file);
    let delivered: Vec<&str> = records
        .iter()
        .filter(|r| r["kind"] == "request")
        .filter_map(|r| r["request_id"].as_str())
        .collect();
    for id in &ids {
        assert!(
            delivered.contains(&id.as_str()),
            "request {id} lost: {records:#?}"
        );
    }
    assert_eq!(delivered.len(), REQUESTS);
    let verified = verify(&file);
    assert_eq!(verified.exit_code, Some(0), "{}", verified.text);
    let report = &verified.json;
    assert_eq!(report["ok"], json!(true), "{report:#}");
    assert_eq!(report["bad_lines"], json!([]), "{report:#}");
    let emitters = report["emitters"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", verified.text));
    // One emitter per worker that saw a request.
    assert!((1..=2).contains(&emitters.len()), "{report:#}");
    let total: u64 = emitters
        .iter()
        .map(|e| e["records"].as_u64().unwrap())
        .sum();
    assert_eq!(total, records.len() as u64, "{}", verified.text);
    assert_eq!(report["records"], json!(records.len()), "{report:#}");
    for e in emitters {
        let emitter = e["emitter"].as_str().unwrap();
        let kinds = |kind: &str| {
            records
                .iter()
                .filter(|r| r["emitter"] == emitter && r["kind"] == kind)
                .count() as u64
        };
        // The shutdown hook drained in time: the emitter's requests, then
        // its `close` record and the seal that vouches for everything.
        let (requests, closes, seals) = (kinds("request"), kinds("close"), kinds("seal"));
        assert_eq!(closes, 1, "{e:#}");
        assert!(seals >= 1, "{e:#}");
        assert_eq!(e["records"], json!(requests + closes + seals), "{e:#}");
        assert_eq!(e["seals"], json!(seals), "{e:#}");
        assert_eq!(e["ok"], json!(true), "{e:#}");
        assert_eq!(e["chained"], json!(true), "{e:#}");
        assert_eq!(e["first_seq"], json!(1), "{e:#}");
        assert_eq!(e["last_seq"], e["records"], "{e:#}");
        assert_eq!(e["closed"], json!(true), "{e:#}");
        assert_eq!(e["close_reason"], json!("shutdown"), "{e:#}");
        assert_eq!(e["sealed_through"], e["last_seq"], "{e:#}");
        assert!(e.get("open_since").is_none(), "{e:#}");
        assert!(e.get("unsealed_from").is_none(), "{e:#}");
        for list in [
            "problems",
            "unexplained_gaps",
            "duplicates",
            "mismatches",
            "losses",
        ] {
            assert_eq!(e[list], json!([]), "{list}: {e:#}");
        }
    }
}

/// `envoy --mode validate` on examples/native/envoy.yaml with the test
/// certificates, the module found by Envoy's search rule, and `keys` in
/// Envoy's environment; (success, output).
fn validate_native_example(keys: &[(&str, &str)]) -> (bool, String) {
    let scratch = Scratch::new();
    let example = std::fs::read_to_string(repo_root().join("examples/native/envoy.yaml")).unwrap();
    let local = example.replace("/etc/envoy/certs/", &format!("{}/", pki().display()));
    let config = scratch.path("envoy.yaml");
    std::fs::write(&config, local).unwrap();
    let mut cmd = Command::new(envoy_bin());
    cmd.args(["--mode", "validate", "-l", "info", "-c"])
        .arg(&config)
        .env(
            "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
            native_module().parent().unwrap(),
        )
        .env_remove("MESH_AUDIT_HASH_KEY")
        .env_remove("MESH_AUDIT_CHAIN_KEY")
        .env_remove("MESH_AUDIT_STRICT_CONFIG");
    for (k, v) in keys {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("OK"), text)
}

#[test]
fn the_native_example_config_validates_and_degrades_without_its_keys_unless_strict() {
    let keys = [
        ("MESH_AUDIT_HASH_KEY", "example-hash-key"),
        ("MESH_AUDIT_CHAIN_KEY", "example-chain-key"),
    ];
    let (ok, text) = validate_native_example(&keys);
    assert!(
        ok,
        "examples/native/envoy.yaml failed `envoy --mode validate`:\n{text}"
    );
    assert!(
        text.contains("Dynamic module ABI version v0.2.0 matched"),
        "{text}"
    );

    assert!(!text.contains("degraded configuration"), "{text}");
    let missing = "redact.hash_key_env: environment variable MESH_AUDIT_HASH_KEY is not set";

    // Without the hash key (SPEC §2.7): valid, and degraded, loudly.
    let (ok, text) = validate_native_example(&keys[1..]);
    assert!(
        ok,
        "refused without MESH_AUDIT_HASH_KEY outside strict mode:\n{text}"
    );
    let degraded = format!("mesh-audit: degraded configuration: {missing}");
    assert!(text.contains(&degraded), "no `{degraded}` in:\n{text}");
    assert!(text.contains("(hash_key_missing)"), "{text}");

    // Strict mode, from Envoy's environment: the same gap refuses it.
    let strict = [keys[1], ("MESH_AUDIT_STRICT_CONFIG", "1")];
    let (ok, text) = validate_native_example(&strict);
    assert!(
        !ok,
        "validated without MESH_AUDIT_HASH_KEY in strict mode:\n{text}"
    );
    let refused = format!("mesh-audit: invalid configuration: {missing}");
    assert!(text.contains(&refused), "no `{refused}` in:\n{text}");
}

/// SPEC §2.7 in the real Envoy: an invalid configuration leaves the native
/// module inert (requests pass and are counted, `config_invalid` is 1, the
/// error line is logged); with `MESH_AUDIT_FAIL_CLOSED=1` the module's HTTP
/// filter answers them `503 audit unavailable` instead, counted as rejected.
#[test]
fn an_invalid_configuration_leaves_the_module_inert_or_with_fail_closed_answers_503() {
    let sink = Sink::start();
    let invalid = json!({"sink": {"cluster": ""}});
    let line = "mesh-audit: invalid configuration: sink.cluster: must not be empty";

    let inert = Envoy::start_native_with(Build::Native, &invalid, sink.port(), 1, &[]);
    for _ in 0..3 {
        assert_eq!(inert.plain("/orders/1").status, 200);
    }
    let stats = e2e::wait_for(WAIT, || {
        let s = inert.stats();
        (s.get("requests_unaudited") == Some(&3)).then_some(s)
    })
    .unwrap_or_else(|| panic!("unaudited requests not counted: {:?}", inert.stats()));
    assert_eq!(stats.get("config_invalid"), Some(&1), "{stats:?}");
    assert_eq!(stats.get("records_admitted").copied().unwrap_or(0), 0);
    assert!(inert.log().contains(line), "{}", inert.log());

    // FAIL_CLOSED without the HTTP filter cannot answer 503: said, not silent.
    let closed_env = [("MESH_AUDIT_FAIL_CLOSED", "1")];
    let open = Envoy::start_native_with(Build::Native, &invalid, sink.port(), 1, &closed_env);
    assert_eq!(open.plain("/orders/1").status, 200);
    open.wait_for_log(
        "MESH_AUDIT_FAIL_CLOSED is set and the configuration is invalid",
        WAIT,
    );

    let closed = Envoy::start_native_with(
        Build::NativeWithFilter,
        &invalid,
        sink.port(),
        1,
        &closed_env,
    );
    for _ in 0..2 {
        let reply = closed.plain("/orders/1");
        assert_eq!(reply.status, 503, "{reply:#?}");
        assert_eq!(reply.body, "audit unavailable");
    }
    let stats = e2e::wait_for(WAIT, || {
        let s = closed.stats();
        (s.get("requests_rejected") == Some(&2) && s.get("config_invalid") == Some(&1)).then_some(s)
    })
    .unwrap_or_else(|| panic!("rejections not counted: {:?}", closed.stats()));
    assert_eq!(
        stats.get("requests_unaudited").copied().unwrap_or(0),
        0,
        "{stats:?}"
    );

    // A valid configuration with the HTTP filter: it lets everything through.
    let valid = json!({"sink": {"cluster": "audit_sink"}, "batch": {"flush_interval_ms": 100}});
    let audited =
        Envoy::start_native_with(Build::NativeWithFilter, &valid, sink.port(), 1, &closed_env);
    let reply = audited.plain("/orders/1");
    assert_eq!(reply.status, 200, "{reply:#?}");
    let records = sink.wait_for_records(1, WAIT);
    assert_eq!(records[0].str("/request_id"), Some(reply.request_id()));
}
