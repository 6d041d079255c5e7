//! A request's life through the filter, on both guests: the record it becomes,
//! field by field (SPEC §4), the host calls it costs (SPEC §6), and what
//! hostile input does to it (SPEC §2.1: nothing).

use crate::host::fixtures::{
    config_digest, configured_on, is_hex, lines, orders_request, records, sha256_hex, SPAN_ID,
    TRACE_ID, USER_AGENT,
};
use crate::host::{
    each_guest, level, plaintext_connection, typical, typical_request, u64_le, Dispatch, Host,
};
use serde_json::{json, Value};

const CONFIG: &str = r#"{"sink":{"cluster":"audit_sink"},
  "capture":{"request_headers":["user-agent","authorization"],"response_headers":["content-type"]}}"#;

/// Flushes by letting the flush interval pass, and returns the one batch.
fn flush(h: &mut Host) -> Dispatch {
    let before = h.dispatched().len();
    h.advance_and_tick(1_000);
    let sent = h.dispatched();
    assert_eq!(
        sent.len(),
        before + 1,
        "one batch after the interval\n{}",
        h.log_dump()
    );
    sent[before].clone()
}

#[test]
fn an_mtls_request_becomes_a_complete_record() {
    each_guest(|guest| {
        let mut h = configured_on(guest, CONFIG);
        h.run(orders_request(7));
        let batch = flush(&mut h);
        // The sink request's defaults (SPEC §3): POST /v1/audit to the cluster.
        assert_eq!(batch.cluster, "audit_sink");
        assert_eq!(batch.timeout_ms, 5000);
        assert_eq!(batch.header(":method").as_deref(), Some("POST"));
        assert_eq!(batch.header(":path").as_deref(), Some("/v1/audit"));
        assert_eq!(batch.header(":authority").as_deref(), Some("audit_sink"));
        assert_eq!(
            batch.header("content-type").as_deref(),
            Some("application/x-ndjson")
        );
        // The record and the seal that ends its batch.
        assert_eq!(batch.header("x-mesh-audit-seq").as_deref(), Some("1-2"));
        let recs = records(&batch);
        assert_eq!(recs.len(), 2, "the record and the seal ending its batch");
        assert_eq!(recs[1]["kind"], "seal");
        let r = &recs[0];
        let emitter = r["emitter"].as_str().unwrap().to_string();
        assert!(is_hex(&emitter, 32), "{emitter}");
        let expected = json!({
            "kind": "request",
            "ts": typical::REQUEST_TIME,
            "emitter": emitter,
            "seq": 1,
            "prev": "0".repeat(64),
            "request_id": typical::REQUEST_ID,
            "trace_id": TRACE_ID,
            // Not in SPEC §4's example: the filter adds the traceparent's span id (OTLP uses it).
            "span_id": SPAN_ID,
            "source": {
                "address": typical::SOURCE_ADDRESS,
                "principal": typical::PEER_URI_SAN,
                "trust_domain": "cluster.local",
                "namespace": "shop",
                "service_account": "frontend",
                "subject": typical::PEER_SUBJECT,
                "cert_sha256": typical::PEER_SHA256,
            },
            "destination": {"address": typical::DESTINATION_ADDRESS, "principal": typical::LOCAL_URI_SAN},
            "tls": {"mtls": true, "version": "TLSv1.3", "sni": typical::SNI},
            "request": {
                "method": "GET", "scheme": "https", "authority": "backend", "path": "/orders/42",
                "query": "token=[REDACTED]&page=2", "protocol": "HTTP/1.1",
                "headers": {"user-agent": USER_AGENT, "authorization": "Bearer [REDACTED]"},
                "bytes": 0,
            },
            "response": {
                "code": 200, "code_details": "via_upstream",
                "headers": {"content-type": "application/json"}, "bytes": 94,
            },
            "route": {"name": "orders", "cluster": "backend", "virtual_host": "backend"},
            "duration_ms": 1.234,
            "decision": "allowed",
            "sample": {"rate": 1.0},
            "redacted": ["request.headers.authorization", "request.query.token"],
            "plugin": {"version": env!("CARGO_PKG_VERSION"), "config": config_digest(CONFIG)},
        });
        assert_eq!(r, &expected, "\n got: {r}\nwant: {expected}");

        // The chain hashes exact bytes, so the field order is part of the contract.
        let line = &lines(&batch)[0];
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
        let at: Vec<usize> = order
            .iter()
            .map(|k| {
                line.find(&format!("\"{k}\":"))
                    .unwrap_or_else(|| panic!("{k} missing in {line}"))
            })
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "field order differs from SPEC §4: {line}"
        );
        assert!(h.logs_at_least(level::WARN).is_empty(), "{}", h.log_dump());
    });
}

#[test]
fn the_next_record_chains_to_the_exact_bytes_of_the_previous_one_and_decodes_flags() {
    each_guest(|guest| {
        let mut h = configured_on(guest, CONFIG);
        h.run(orders_request(7));
        let mut failed = orders_request(7)
            .props(
                typical_request()
                    .set("response.flags", u64_le(0x20))
                    .set("response.code", u64_le(503)),
            )
            .property(
                "response.code_details",
                "upstream_reset_before_response_started{connection_failure}",
            );
        failed.response_headers = vec![(":status".into(), b"503".to_vec())];
        h.run(failed);
        let batch = flush(&mut h);
        let (l, r) = (lines(&batch), records(&batch));
        assert_eq!(r.len(), 3, "two records and their seal");
        assert_eq!(r[2]["kind"], "seal");
        assert_eq!(r[1]["seq"], 2);
        assert_eq!(r[1]["emitter"], r[0]["emitter"]);
        assert_eq!(r[1]["prev"], json!(sha256_hex(l[0].as_bytes())));
        assert_eq!(r[1]["response"]["code"], 503);
        assert_eq!(r[1]["response"]["flags"], json!(["UF"]));
        assert_eq!(
            r[1]["response"]["code_details"],
            "upstream_reset_before_response_started{connection_failure}"
        );
        assert_eq!(r[1]["decision"], "error");
    });
}

#[test]
fn a_plaintext_request_has_no_identity_and_logs_nothing_alarming() {
    each_guest(|guest| {
        let mut h = configured_on(guest, CONFIG);
        let req = h
            .request()
            .header(":method", "POST")
            .header(":scheme", "http")
            .header(":authority", "backend")
            .header(":path", "/orders")
            .header("x-request-id", "req-plain")
            .response_header(":status", "201")
            .props(plaintext_connection(9))
            .props(typical_request());
        h.run(req);
        let r = &records(&flush(&mut h))[0];
        assert_eq!(r["tls"], json!({"mtls": false}));
        assert_eq!(r["source"], json!({"address": typical::SOURCE_ADDRESS}));
        assert_eq!(
            r["destination"],
            json!({"address": typical::DESTINATION_ADDRESS})
        );
        assert_eq!(r["request_id"], "req-plain");
        assert_eq!(r["request"]["method"], "POST");
        assert_eq!(r["response"]["code"], 201);
        assert!(
            r.get("trace_id").is_none() && r.get("span_id").is_none(),
            "{r}"
        );
        assert!(r["request"].get("query").is_none(), "{r}");
        assert_eq!(r["decision"], "allowed");
        assert!(h.logs_at_least(level::WARN).is_empty(), "{}", h.log_dump());
    });
}

#[test]
fn a_second_request_on_a_kept_alive_connection_costs_at_most_12_host_calls() {
    each_guest(|guest| {
        let mut h = configured_on(guest, CONFIG);
        let first = h.run(orders_request(42));
        let second = h.run(orders_request(42));
        println!(
            "host calls per audited request: first on the connection {} (wasi {}), kept-alive {} (wasi {})",
            first.host_calls, first.wasi_calls, second.host_calls, second.wasi_calls
        );
        println!(
            "kept-alive request, by import: {:?}",
            second.calls_by_import
        );
        println!("kept-alive request, by phase: {:?}", second.calls_by_phase);
        assert!(
            second.host_calls <= 12,
            "{} host calls: {:?}",
            second.host_calls,
            second.calls_by_import
        );
        assert!(
            second.host_calls < first.host_calls,
            "connection facts are cached by connection.id"
        );
        let reads = h.property_reads(second.context);
        for conn_fact in [
            "connection.mtls",
            "connection.uri_san_peer_certificate",
            "source.address",
        ] {
            assert!(
                !reads.iter().any(|p| p == conn_fact),
                "{conn_fact} re-read: {reads:?}"
            );
        }
        // Both were recorded, from the cached facts too.
        let r = records(&flush(&mut h));
        assert_eq!(r.len(), 3, "both records and their seal");
        assert_eq!(r[2]["kind"], "seal");
        assert_eq!(r[1]["source"], r[0]["source"]);
        assert_eq!(r[1]["tls"], r[0]["tls"]);
    });
}

#[test]
fn requests_without_any_properties_or_headers_are_audited_without_a_trap() {
    each_guest(|guest| {
        let mut h = configured_on(guest, CONFIG);
        let out = h.run(h.request());
        assert_eq!((out.request_action, out.response_action), (0, 0));
        let r = &records(&flush(&mut h))[0];
        assert_eq!(r["kind"], "request");
        assert_eq!(r["tls"], json!({"mtls": false}));
        // No request.time: the record is stamped with the proxy's clock at on_log,
        // not with the Unix epoch.
        assert_eq!(r["ts"], "2026-11-21T14:03:05.000000Z", "{r}");
        assert!(h.logs_at_least(level::ERROR).is_empty(), "{}", h.log_dump());
    });
}

#[test]
fn garbage_property_bytes_do_not_trap() {
    each_guest(|guest| {
        let mut h = configured_on(guest, CONFIG);
        let req = orders_request(3)
            .property("connection.id", [1u8, 2])
            .property("connection.mtls", [] as [u8; 0])
            .property("request.time", [0xffu8])
            .property("request.duration", [1u8, 2, 3])
            .property("request.size", b"not a number")
            .property("response.flags", [0xffu8; 8])
            .property("response.code", [7u8])
            .property("connection.uri_san_peer_certificate", [0xffu8, 0xfe, 0x00])
            .property("connection.tls_version", [0u8; 3])
            .property("xds.route_name", [0xc3u8, 0x28]);
        let out = h.run(req);
        assert_eq!((out.request_action, out.response_action), (0, 0));
        h.advance_and_tick(1_000);
        // The record and the seal that ends its batch.
        assert_eq!(h.metric("mesh_audit.records_admitted"), 2);
        for d in h.dispatched() {
            for l in lines(&d) {
                serde_json::from_str::<Value>(&l)
                    .unwrap_or_else(|e| panic!("invalid JSON ({e}): {l}"));
            }
        }
    });
}

#[test]
fn non_utf8_and_huge_header_values_do_not_trap() {
    each_guest(|guest| {
        let mut h = configured_on(guest, CONFIG);
        let huge = "x".repeat(1 << 20);
        let req = orders_request(4)
            .header("user-agent", [0xffu8, 0xfe, b'a'])
            .header(":path", [b'/', 0xff, b'?', b'k', b'=', 0xfe])
            .header("authorization", huge.as_bytes())
            .header("x-big", huge.as_bytes());
        let out = h.run(req);
        assert_eq!((out.request_action, out.response_action), (0, 0));
        h.advance_and_tick(1_000);
        let admitted = h.metric("mesh_audit.records_admitted");
        let not_admitted = h.metric("mesh_audit.records_not_admitted");
        let sent: Vec<Value> = h
            .dispatched()
            .iter()
            .flat_map(lines)
            .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("invalid JSON ({e})")))
            .collect();
        let (seals, requests): (Vec<&Value>, Vec<&Value>) =
            sent.iter().partition(|r| r["kind"] == "seal");
        // Seals are admitted too; the one request is admitted or counted.
        assert_eq!(
            admitted - seals.len() as i64 + not_admitted,
            1,
            "{:?}",
            h.metrics()
        );
        for r in requests {
            assert!(
                r["request"]["headers"]["user-agent"].is_string(),
                "{}",
                r["request"]
            );
        }
    });
}

#[test]
fn facts_missing_from_headers_come_from_properties() {
    each_guest(|guest| {
        let mut h = configured_on(guest, CONFIG);
        let mut req = orders_request(5)
            .props(typical_request().set("response.code", u64_le(404)))
            .header("host", "backend.shop:8080");
        req.headers
            .retain(|(k, _)| k != "x-request-id" && k != ":authority");
        req.response_headers.clear();
        h.run(req);
        let r = &records(&flush(&mut h))[0];
        assert_eq!(r["request_id"], typical::REQUEST_ID, "from request.id");
        assert_eq!(r["response"]["code"], 404, "from response.code");
        assert_eq!(r["request"]["authority"], "backend.shop:8080", "from host");
        assert_eq!(r["decision"], "allowed");
    });
}

#[test]
fn the_filter_never_alters_or_holds_the_traffic_it_audits() {
    each_guest(|guest| {
        let mut h = configured_on(guest, CONFIG);
        let out = h.run(
            orders_request(6)
                .body(br#"{"order":42}"#)
                .response_body(b"{}"),
        );
        assert_eq!(
            (out.request_action, out.response_action),
            (0, 0),
            "Continue"
        );
        assert_eq!(
            (out.request_body_action, out.response_body_action),
            (Some(0), Some(0))
        );
        assert!(out.local_reply.is_none());
        assert!(
            h.state().header_writes.is_empty(),
            "{:?}",
            h.state().header_writes
        );
        assert!(h.stub_calls().is_empty(), "{:?}", h.stub_calls());
        h.advance_and_tick(1_000);
        // The record and the seal that ends its batch.
        assert_eq!(h.metric("mesh_audit.records_admitted"), 2);
    });
}
