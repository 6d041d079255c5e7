//! Test code only: its parent declares it under #[cfg(test)].
//! The lifecycle, natively, against a test double of the proxy. The same
//! behaviours are checked again inside the compiled `.wasm` (tests/wasm_*.rs).

mod fake;

use super::http::on_log;
use super::root::Auditor;
use fake::FakeHost;
use serde_json::json;

fn configured(config: &str) -> (FakeHost, Auditor) {
    let host = FakeHost::new(config);
    let mut a = Auditor::new(&host);
    assert!(
        a.configure(&host),
        "config rejected: {:?}",
        host.logs.borrow()
    );
    (host, a)
}

fn one_request(host: &FakeHost, a: &mut Auditor, conn: u64, id: &str) {
    host.mtls_connection(conn);
    host.finished_request(id);
    on_log(a, host);
}

fn reply(host: &FakeHost, a: &mut Auditor, token: u32, status: &str) {
    *host.call_headers.borrow_mut() = vec![(":status".into(), status.as_bytes().to_vec())];
    a.call_response(host, token);
}

#[test]
fn a_bad_config_logs_one_line_and_refuses() {
    let host = FakeHost::new(r#"{"sink":{"cluster":"s"},"batch":{"max_records":0}}"#);
    let mut a = Auditor::new(&host);
    assert!(!a.configure(&host));
    let logs = host.logs.borrow();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].1,
        "mesh-audit: invalid configuration: batch.max_records: must be greater than 0"
    );
}

#[test]
fn a_request_becomes_a_complete_record() {
    let (host, mut a) = configured(
        r#"{"sink":{"cluster":"audit_sink","headers":{"x-audit-tenant":"shop"}},
            "capture":{"request_headers":["user-agent","authorization"],"response_headers":["content-type"]},
            "batch":{"flush_interval_ms":1000}}"#,
    );
    one_request(&host, &mut a, 7, "req-1");
    host.advance(1000);
    a.tick(&host);
    let calls = host.calls.borrow().clone();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c.cluster, "audit_sink");
    assert_eq!(c.timeout_ms, 5000);
    let h = |k: &str| {
        c.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(h(":path").as_deref(), Some("/v1/audit"));
    assert_eq!(h(":method").as_deref(), Some("POST"));
    assert_eq!(h(":authority").as_deref(), Some("audit_sink"));
    assert_eq!(h("content-type").as_deref(), Some("application/x-ndjson"));
    assert_eq!(h("x-audit-tenant").as_deref(), Some("shop"));
    // The record and the seal that ends its batch.
    assert_eq!(h("x-mesh-audit-seq").as_deref(), Some("1-2"));
    assert_eq!(host.records_in(0)[1]["kind"], "seal");
    let r = &host.records_in(0)[0];
    assert_eq!(r["kind"], "request");
    assert_eq!(r["ts"], "2026-11-21T14:03:05.123456Z");
    assert_eq!(r["emitter"].as_str().unwrap().len(), 32);
    assert_eq!(r["seq"], 1);
    assert_eq!(r["prev"], "0".repeat(64));
    assert_eq!(r["request_id"], "req-1");
    assert_eq!(r["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(r["span_id"], "00f067aa0ba902b7");
    assert_eq!(
        r["source"],
        json!({"address":"10.0.0.7:51234","principal":"spiffe://cluster.local/ns/shop/sa/frontend",
               "trust_domain":"cluster.local","namespace":"shop","service_account":"frontend",
               "subject":"O=acme,CN=frontend","cert_sha256":"9502d3aa"})
    );
    assert_eq!(
        r["destination"],
        json!({"address":"10.0.0.9:8443","principal":"spiffe://cluster.local/ns/default/sa/backend"})
    );
    assert_eq!(
        r["tls"],
        json!({"mtls":true,"version":"TLSv1.3","sni":"backend.default.svc"})
    );
    assert_eq!(
        r["request"],
        json!({"method":"GET","scheme":"https","authority":"backend","path":"/orders/42",
               "query":"page=2&token=[REDACTED]","protocol":"HTTP/1.1",
               "headers":{"user-agent":"curl/8.5.0","authorization":"Bearer [REDACTED]"},"bytes":0})
    );
    assert_eq!(
        r["response"],
        json!({"code":200,"code_details":"via_upstream","headers":{"content-type":"application/json"},"bytes":94})
    );
    assert_eq!(
        r["route"],
        json!({"name":"orders","cluster":"backend","virtual_host":"backend"})
    );
    assert_eq!(r["duration_ms"], 1.234);
    assert_eq!(r["decision"], "allowed");
    assert_eq!(r["sample"], json!({"rate":1.0}));
    assert_eq!(
        r["redacted"],
        json!(["request.headers.authorization", "request.query.token"])
    );
    assert_eq!(r["plugin"]["version"], crate::VERSION);
    // Field order is the contract: the chain hashes these exact bytes.
    let body = String::from_utf8(calls[0].body.clone()).unwrap();
    let order = [
        "kind",
        "ts",
        "emitter",
        "seq",
        "prev",
        "request_id",
        "trace_id",
        "span_id",
        "source",
        "destination",
        "tls",
        "request",
        "response",
        "route",
        "duration_ms",
        "decision",
        "sample",
        "redacted",
        "plugin",
    ];
    let pos: Vec<usize> = order
        .iter()
        .map(|k| body.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "field order {pos:?}");
}

#[test]
fn plaintext_requests_have_no_identity_and_no_error() {
    let (host, mut a) = configured(r#"{"sink":{"cluster":"s"}}"#);
    host.int("connection.id", 3);
    host.prop("source.address", "127.0.0.1:4000");
    host.finished_request("p");
    on_log(&mut a, &host);
    host.advance(1000);
    a.tick(&host);
    let r = &host.records_in(0)[0];
    assert_eq!(r["tls"], json!({"mtls": false}));
    assert_eq!(r["source"], json!({"address":"127.0.0.1:4000"}));
    assert!(host
        .logs
        .borrow()
        .iter()
        .all(|(l, _)| *l < crate::host::Level::Warn));
}

#[test]
fn decisions_and_flags_come_from_the_response() {
    let (host, mut a) = configured(r#"{"sink":{"cluster":"s"}}"#);
    host.mtls_connection(1);
    host.finished_request("a");
    host.response(&[(":status", "503")]);
    host.int("response.flags", 0x20 | 0x2);
    host.prop(
        "response.code_details",
        "upstream_reset_before_response_started{connection_failure}",
    );
    on_log(&mut a, &host);
    host.finished_request("b");
    host.response(&[(":status", "403")]);
    host.prop(
        "response.code_details",
        "rbac_access_denied_matched_policy[none]",
    );
    on_log(&mut a, &host);
    host.advance(1000);
    a.tick(&host);
    let recs = host.records_in(0);
    assert_eq!(recs[0]["response"]["flags"], json!(["UH", "UF"]));
    assert_eq!(recs[0]["decision"], "error");
    assert_eq!(recs[1]["decision"], "denied");
    assert_eq!(recs[1]["seq"], 2);
}

#[test]
fn flushes_on_size_at_the_next_tick_and_on_interval() {
    let (host, mut a) = configured(
        r#"{"sink":{"cluster":"s"},"batch":{"max_records":3,"flush_interval_ms":60000}}"#,
    );
    assert_eq!(host.tick_ms.get(), 100);
    one_request(&host, &mut a, 1, "a");
    a.tick(&host);
    assert!(
        host.calls.borrow().is_empty(),
        "one record, interval not due"
    );
    one_request(&host, &mut a, 1, "b");
    one_request(&host, &mut a, 1, "c");
    a.tick(&host);
    assert_eq!(host.calls.borrow().len(), 1, "a full batch goes at once");
    // Two records and their seal make the 3 of max_records.
    assert_eq!(host.records_in(0).len(), 3);
    assert_eq!(host.records_in(0)[2]["kind"], "seal");
    host.advance(60_000);
    a.tick(&host);
    assert_eq!(host.calls.borrow().len(), 2);
    assert_eq!(host.records_in(1)[0]["request_id"], "c");
}

#[test]
fn failed_batches_are_retried_and_counted_until_acknowledged() {
    let (host, mut a) = configured(r#"{"sink":{"cluster":"s"},"retry":{"backoff_base_ms":200}}"#);
    one_request(&host, &mut a, 1, "a");
    host.refuse_dispatch.set(true);
    host.advance(1000);
    a.tick(&host);
    assert!(host.calls.borrow().is_empty());
    assert_eq!(
        host.logs
            .borrow()
            .iter()
            .filter(|(_, m)| m.contains("cannot dispatch"))
            .count(),
        1
    );
    host.refuse_dispatch.set(false);
    host.advance(200);
    a.tick(&host);
    reply(&host, &mut a, 1, "503");
    // The record and its seal.
    assert_eq!(host.metric("mesh_audit.records_buffered"), 2);
    host.advance(400);
    a.tick(&host);
    assert_eq!(host.calls.borrow().len(), 2);
    assert_eq!(
        host.calls.borrow()[1].body,
        host.calls.borrow()[0].body,
        "a retry resends the same bytes"
    );
    reply(&host, &mut a, 2, "200");
    a.tick(&host);
    assert_eq!(host.metric("mesh_audit.records_admitted"), 2);
    assert_eq!(host.metric("mesh_audit.records_delivered"), 2);
    assert_eq!(host.metric("mesh_audit.records_buffered"), 0);
    assert_eq!(host.metric("mesh_audit.batch_failures"), 2);
    assert_eq!(host.metric("mesh_audit.batch_retries"), 2);
    let debug: Vec<String> = host
        .logs
        .borrow()
        .iter()
        .filter(|(l, _)| *l == crate::host::Level::Debug)
        .map(|(_, m)| m.clone())
        .collect();
    assert_eq!(debug.len(), 2, "one debug line per batch sent: {debug:?}");
    assert!(debug[1].starts_with("mesh-audit: sent records 1-2 to s (attempt 3); admitted=2 delivered=0 rejected=0 buffered=2 in_flight=1"), "{}", debug[1]);
}

#[test]
fn a_rejected_batch_is_reported_by_a_loss_record() {
    let (host, mut a) = configured(r#"{"sink":{"cluster":"s"}}"#);
    one_request(&host, &mut a, 1, "a");
    one_request(&host, &mut a, 1, "b");
    host.advance(1000);
    a.tick(&host);
    reply(&host, &mut a, 1, "400");
    host.advance(1000);
    a.tick(&host);
    let loss = &host.records_in(1)[0];
    assert_eq!(loss["kind"], "loss");
    assert_eq!(loss["reason"], "rejected");
    assert_eq!(
        (
            loss["from_seq"].as_u64(),
            loss["to_seq"].as_u64(),
            loss["count"].as_u64()
        ),
        (Some(1), Some(3), Some(3)),
        "both records and their seal"
    );
    assert_eq!(loss["seq"], 4);
    assert_eq!(host.metric("mesh_audit.records_rejected"), 3);
}

#[test]
fn a_full_buffer_counts_and_reports_what_it_could_not_admit() {
    let (host, mut a) = configured(
        r#"{"sink":{"cluster":"s"},"batch":{"max_records":3,"max_buffered_records":3,"flush_interval_ms":60000}}"#,
    );
    // a, b and their seal fill the buffer; c and d are not admitted.
    for id in ["a", "b", "c", "d"] {
        one_request(&host, &mut a, 1, id);
    }
    a.tick(&host);
    assert_eq!(host.metric("mesh_audit.records_not_admitted"), 2);
    reply(&host, &mut a, 1, "200");
    one_request(&host, &mut a, 1, "e");
    host.advance(60_000);
    a.tick(&host);
    let recs = host.records_in(1);
    assert_eq!(recs[0]["kind"], "loss");
    assert_eq!(recs[0]["reason"], "buffer_full");
    assert_eq!(recs[0]["count"], 2);
    assert_eq!(recs[1]["request_id"], "e");
    assert_eq!(
        (recs[0]["seq"].as_u64(), recs[1]["seq"].as_u64()),
        (Some(4), Some(5))
    );
}

#[test]
fn fail_closed_rejects_only_while_full() {
    let (host, mut a) = configured(
        r#"{"sink":{"cluster":"s"},"on_overflow":"reject","batch":{"max_records":1,"max_buffered_records":1}}"#,
    );
    assert!(!a.must_reject());
    one_request(&host, &mut a, 1, "a");
    assert!(a.must_reject());
    a.tick(&host);
    reply(&host, &mut a, 1, "200");
    assert!(!a.must_reject());
    a.tick(&host);
    assert_eq!(host.metric("mesh_audit.requests_rejected"), 1);
}

#[test]
fn shutdown_drains_then_calls_done() {
    let (host, mut a) =
        configured(r#"{"sink":{"cluster":"s"},"batch":{"flush_interval_ms":60000}}"#);
    one_request(&host, &mut a, 1, "a");
    assert!(!a.shutdown(&host));
    assert_eq!(host.calls.borrow().len(), 1, "flushed at once");
    assert!(!host.done.get());
    reply(&host, &mut a, 1, "200");
    assert!(host.done.get());
}

#[test]
fn shutdown_gives_up_after_the_sink_timeout() {
    let (host, mut a) = configured(r#"{"sink":{"cluster":"s","timeout_ms":300}}"#);
    one_request(&host, &mut a, 1, "a");
    assert!(!a.shutdown(&host));
    host.advance(299);
    a.tick(&host);
    assert!(!host.done.get());
    host.advance(1);
    a.tick(&host);
    assert!(host.done.get());
    assert!(host
        .logs
        .borrow()
        .iter()
        .any(|(_, m)| m.contains("3 records undelivered")));
}

#[test]
fn an_idle_shutdown_finishes_at_once() {
    let (host, mut a) = configured(r#"{"sink":{"cluster":"s"}}"#);
    assert!(
        a.shutdown(&host),
        "an emitter without records has nothing to close"
    );
}

#[test]
fn a_shutdown_after_delivery_sends_the_close_record_and_finishes_once_acknowledged() {
    let (host, mut a) = configured(r#"{"sink":{"cluster":"s"}}"#);
    one_request(&host, &mut a, 1, "a");
    host.advance(1000);
    a.tick(&host);
    reply(&host, &mut a, 1, "200");
    assert!(!a.shutdown(&host));
    let recs = host.records_in(1);
    assert_eq!(
        (recs[0]["kind"].as_str(), recs[0]["reason"].as_str()),
        (Some("close"), Some("shutdown"))
    );
    assert_eq!(
        (recs[1]["kind"].as_str(), recs[1]["from_seq"].as_u64()),
        (Some("seal"), Some(3))
    );
    reply(&host, &mut a, 2, "200");
    assert!(host.done.get());
}

#[test]
fn connection_facts_are_read_once_per_connection() {
    let (host, mut a) =
        configured(r#"{"sink":{"cluster":"s"},"capture":{"request_headers":["user-agent"]}}"#);
    one_request(&host, &mut a, 9, "a");
    let first = host.property_reads.get();
    one_request(&host, &mut a, 9, "b");
    let second = host.property_reads.get() - first;
    // connection.id, request.time, request.duration, request.size, response.size,
    // response.code_details, response.flags and three route names; the two
    // header maps are separate calls.
    assert_eq!(
        second, 10,
        "property reads for a request on a known connection"
    );
}

#[test]
fn sampled_out_requests_are_counted_and_cheap() {
    let (host, mut a) = configured(r#"{"sink":{"cluster":"s"},"sampling":{"default_rate":0.0}}"#);
    host.mtls_connection(1);
    host.finished_request("a");
    let before = host.property_reads.get();
    on_log(&mut a, &host);
    assert_eq!(
        host.property_reads.get() - before,
        0,
        "the header maps decide it"
    );
    host.response(&[(":status", "403")]);
    on_log(&mut a, &host);
    a.tick(&host);
    assert_eq!(host.metric("mesh_audit.records_sampled_out"), 1);
    assert_eq!(
        host.metric("mesh_audit.records_admitted"),
        1,
        "denied requests are always kept"
    );
}

#[test]
fn unknown_reply_tokens_are_ignored() {
    let (host, mut a) = configured(r#"{"sink":{"cluster":"s"}}"#);
    reply(&host, &mut a, 99, "200");
    a.tick(&host);
    assert_eq!(host.metric("mesh_audit.records_delivered"), 0);
}

#[test]
fn jwt_claims_come_from_verified_metadata_and_fall_back_claim_by_claim() {
    let cfg = r#"{"sink":{"cluster":"s"},"capture":{"jwt":{"claims":["sub","email","exp"]}},
                  "redact":{"claims":{"email":"hash"},"hash_key_env":"HK"}}"#;
    let host = FakeHost::new(cfg);
    host.env.borrow_mut().insert("HK".into(), "k".into());
    let mut a = Auditor::new(&host);
    assert!(a.configure(&host));
    let ns = "metadata.filter_metadata.envoy.filters.http.jwt_authn.jwt_payload";
    // Envoy 1.40's pairs layout: sub, email, exp (a double).
    let mut p = 3u32.to_le_bytes().to_vec();
    for (k, v) in [(3u32, 5u32), (5, 17), (3, 8)] {
        p.extend_from_slice(&k.to_le_bytes());
        p.extend_from_slice(&v.to_le_bytes());
    }
    for (k, v) in [
        (&b"sub"[..], &b"alice"[..]),
        (b"email", b"alice@example.com"),
        (b"exp", &4_102_444_800f64.to_le_bytes()),
    ] {
        p.extend_from_slice(k);
        p.push(0);
        p.extend_from_slice(v);
        p.push(0);
    }
    host.prop(ns, p);
    one_request(&host, &mut a, 1, "whole");
    host.unserializable.borrow_mut().push(ns.to_string());
    host.prop(&format!("{ns}.sub"), "bob");
    one_request(&host, &mut a, 1, "by-claim");
    host.advance(1000);
    a.tick(&host);
    let recs = host.records_in(0);
    assert_eq!(recs[0]["user"]["sub"], "alice");
    assert_eq!(recs[0]["user"]["exp"], 4_102_444_800i64);
    let email = recs[0]["user"]["email"].as_str().unwrap();
    assert!(
        email.starts_with("hmac-sha256:") && email.len() == 12 + 32,
        "{email}"
    );
    assert!(recs[0]["redacted"]
        .as_array()
        .unwrap()
        .contains(&json!("user.email")));
    assert_eq!(recs[1]["user"], json!({"sub": "bob"}));
}

#[test]
fn an_authz_local_reply_with_another_status_is_always_kept() {
    let (host, mut a) = configured(r#"{"sink":{"cluster":"s"},"sampling":{"default_rate":0.0}}"#);
    host.mtls_connection(1);
    host.finished_request("ext");
    host.response(&[(":status", "429")]);
    host.prop("response.code_details", "ext_authz_denied");
    on_log(&mut a, &host);
    host.finished_request("nf");
    host.response(&[(":status", "404")]);
    host.prop("response.code_details", "route_not_found");
    on_log(&mut a, &host);
    host.advance(1000);
    a.tick(&host);
    let recs = host.records_in(0);
    assert_eq!(recs.len(), 2, "the kept record and its seal");
    assert_eq!(recs[1]["kind"], "seal");
    assert_eq!(recs[0]["request_id"], "ext");
    assert_eq!(recs[0]["decision"], "denied");
    assert_eq!(host.metric("mesh_audit.records_sampled_out"), 1);
}

#[test]
fn a_loss_is_reported_on_tick_even_without_more_traffic() {
    let (host, mut a) = configured(
        r#"{"sink":{"cluster":"s"},"batch":{"max_records":3,"max_buffered_records":3,"flush_interval_ms":60000}}"#,
    );
    // a, b and their seal fill the buffer; c is not admitted.
    for id in ["a", "b", "c"] {
        one_request(&host, &mut a, 1, id);
    }
    a.tick(&host);
    reply(&host, &mut a, 1, "200");
    host.advance(60_000);
    a.tick(&host);
    let loss = &host.records_in(1)[0];
    assert_eq!(
        (
            loss["kind"].as_str(),
            loss["reason"].as_str(),
            loss["count"].as_u64()
        ),
        (Some("loss"), Some("buffer_full"), Some(1))
    );
}

#[test]
fn a_drain_against_a_failing_sink_keeps_its_backoff() {
    let (host, mut a) =
        configured(r#"{"sink":{"cluster":"s","timeout_ms":2000},"retry":{"backoff_base_ms":400}}"#);
    one_request(&host, &mut a, 1, "a");
    assert!(!a.shutdown(&host));
    reply(&host, &mut a, 1, "503");
    assert_eq!(
        host.calls.borrow().len(),
        1,
        "no immediate resend after a failure while draining"
    );
    host.advance(400);
    a.tick(&host);
    assert_eq!(
        host.calls.borrow().len(),
        2,
        "resent once its backoff passed"
    );
    host.advance(1600);
    a.tick(&host);
    assert!(host.done.get());
}
