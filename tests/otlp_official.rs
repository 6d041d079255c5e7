//! The OTLP batch body, decoded with the official OpenTelemetry message
//! definitions (the `opentelemetry-proto` crate), not mesh-audit's own: every
//! mapped field lands where a collector looks for it, and every body is the
//! exact chained line, so the chain verifies from what a collector stores.

// Helpers outside `#[test]` functions fail the test the same way an assert does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mesh_audit::audit::hex;
use mesh_audit::audit::record::{
    Decision, Destination, Fields, Kind, LossReason, Record, Request, Response, Route, Source, Tls,
};
use mesh_audit::deliver::chain::{Sequencer, GENESIS};
use mesh_audit::deliver::encode_otlp::{self, Resource};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use prost::Message;
use sha2::{Digest, Sha256};

const EMITTER: &str = "6f1c2b0000000000000000000000abcd";
const TS: &str = "2026-11-21T14:03:05.123456Z";
const TS_NANOS: u64 = 1_795_269_785_123_456_000;
const OBSERVED: u64 = 1_795_269_790_000_000_000;

fn request(decision: Decision, code: u32) -> Record {
    let mut r = Record::new(Kind::Request, TS.to_string());
    r.request_id = Some("90ae957f-1".into());
    r.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    r.span_id = Some("00f067aa0ba902b7".into());
    r.source = Some(Source {
        address: Some("10.0.0.7:51234".into()),
        principal: Some("spiffe://cluster.local/ns/shop/sa/frontend".into()),
        trust_domain: Some("cluster.local".into()),
        namespace: Some("shop".into()),
        service_account: Some("frontend".into()),
        ..Source::default()
    });
    r.destination = Some(Destination {
        address: Some("10.0.0.9:8443".into()),
        principal: Some("spiffe://cluster.local/ns/default/sa/backend".into()),
    });
    r.tls = Some(Tls {
        mtls: true,
        version: Some("TLSv1.3".into()),
        sni: Some("backend.default.svc".into()),
    });
    r.user = Some(Fields(vec![
        ("sub".into(), "alice".into()),
        ("iss".into(), "https://idp.example".into()),
    ]));
    r.request = Some(Request {
        method: Some("POST".into()),
        scheme: Some("https".into()),
        authority: Some("backend".into()),
        path: Some("/orders/42".into()),
        query: Some("token=[REDACTED]&page=2".into()),
        protocol: Some("HTTP/2".into()),
        bytes: Some(12),
        ..Request::default()
    });
    r.response = Some(Response {
        code: Some(code),
        code_details: Some("via_upstream".into()),
        flags: if decision == Decision::Error {
            vec!["UF".into(), "URX".into()]
        } else {
            vec![]
        },
        bytes: Some(94),
        ..Response::default()
    });
    r.route = Some(Route {
        name: Some("orders".into()),
        cluster: Some("backend".into()),
        virtual_host: None,
    });
    r.duration_ms = Some(1.5);
    r.decision = Some(decision);
    r
}

/// Four records as the filter would chain them, and their exact lines.
fn chained_batch() -> Vec<Vec<u8>> {
    let mut denied = request(Decision::Denied, 403);
    if let Some(src) = denied.source.as_mut() {
        src.address = Some("[2001:db8::7]:40000".into());
    }
    denied.violation = Some("admin-only".into());
    let records = vec![
        request(Decision::Allowed, 200),
        denied,
        request(Decision::Error, 503),
        Record::loss(LossReason::BufferFull, 7, TS.into(), TS.into(), TS.into()),
    ];
    let mut seq = Sequencer::new(EMITTER.to_string(), true, None);
    records
        .into_iter()
        .map(|mut r| {
            let line = seq.stamp(&mut r);
            seq.commit(&line);
            line
        })
        .collect()
}

fn decode(lines: &[Vec<u8>], node_id: Option<&str>) -> ExportLogsServiceRequest {
    let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let resource = Resource {
        emitter: EMITTER,
        node_id,
        version: "0.1.0",
    };
    let body = encode_otlp::encode(&refs, &resource, OBSERVED);
    ExportLogsServiceRequest::decode(body.as_slice())
        .expect("the official definitions decode the batch")
}

fn attrs(list: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Vec<(String, Value)> {
    list.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value
                    .clone()
                    .and_then(|v| v.value)
                    .expect("every attribute has a value"),
            )
        })
        .collect()
}

fn s(k: &str, v: &str) -> (String, Value) {
    (k.to_string(), Value::StringValue(v.to_string()))
}

fn i(k: &str, v: i64) -> (String, Value) {
    (k.to_string(), Value::IntValue(v))
}

fn body(log: &LogRecord) -> Vec<u8> {
    match log.body.clone().and_then(|b| b.value) {
        Some(Value::StringValue(s)) => s.into_bytes(),
        other => panic!("body is not a string: {other:?}"),
    }
}

fn logs(req: &ExportLogsServiceRequest) -> &[LogRecord] {
    assert_eq!(req.resource_logs.len(), 1, "one ResourceLogs per batch");
    assert_eq!(
        req.resource_logs[0].scope_logs.len(),
        1,
        "one ScopeLogs per batch"
    );
    &req.resource_logs[0].scope_logs[0].log_records
}

#[test]
fn bodies_are_the_exact_chained_lines_and_the_chain_verifies() {
    let lines = chained_batch();
    let req = decode(&lines, None);
    let bodies: Vec<Vec<u8>> = logs(&req).iter().map(body).collect();
    assert_eq!(bodies, lines);
    let mut prev = GENESIS.to_string();
    for b in &bodies {
        let r: Record = serde_json::from_slice(b).expect("a body is a record");
        assert_eq!(r.prev.as_deref(), Some(prev.as_str()));
        prev = hex(&Sha256::digest(b));
    }
    assert_eq!(
        encode_otlp::record_lines(&req.encode_to_vec()).unwrap(),
        lines
    );
}

#[test]
fn resource_and_scope_name_the_emitter_and_version() {
    let req = decode(
        &chained_batch(),
        Some("sidecar~10.0.0.9~backend-1.default~default.svc.cluster.local"),
    );
    let resource = req.resource_logs[0].resource.as_ref().expect("a resource");
    assert_eq!(
        attrs(&resource.attributes),
        vec![
            s("service.name", "mesh-audit"),
            s("mesh_audit.emitter", EMITTER),
            s(
                "service.instance.id",
                "sidecar~10.0.0.9~backend-1.default~default.svc.cluster.local"
            ),
        ]
    );
    let scope = req.resource_logs[0].scope_logs[0]
        .scope
        .as_ref()
        .expect("a scope");
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("mesh-audit", "0.1.0")
    );
}

#[test]
fn every_request_field_maps_to_its_semconv_or_mesh_audit_attribute() {
    let req = decode(&chained_batch(), None);
    let log = &logs(&req)[0];
    assert_eq!(log.time_unix_nano, TS_NANOS);
    assert_eq!(log.observed_time_unix_nano, OBSERVED);
    assert_eq!(log.severity_number, SeverityNumber::Info as i32);
    assert_eq!(log.severity_text, "INFO");
    assert_eq!(log.trace_id, hex_bytes("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(log.span_id, hex_bytes("00f067aa0ba902b7"));
    assert_eq!(log.event_name, "mesh_audit.request");
    assert_eq!(
        attrs(&log.attributes),
        vec![
            s("event.name", "mesh_audit.request"),
            s("mesh_audit.kind", "request"),
            s("mesh_audit.emitter", EMITTER),
            i("mesh_audit.seq", 1),
            s("mesh_audit.request_id", "90ae957f-1"),
            s("mesh_audit.decision", "allowed"),
            s("http.request.method", "POST"),
            s("url.scheme", "https"),
            s("server.address", "backend"),
            s("url.path", "/orders/42"),
            s("url.query", "token=[REDACTED]&page=2"),
            s("network.protocol.version", "2"),
            i("http.request.body.size", 12),
            i("http.response.status_code", 200),
            i("http.response.body.size", 94),
            s("client.address", "10.0.0.7"),
            i("client.port", 51234),
            s(
                "mesh_audit.source.principal",
                "spiffe://cluster.local/ns/shop/sa/frontend"
            ),
            s("mesh_audit.source.namespace", "shop"),
            s("mesh_audit.source.service_account", "frontend"),
            s(
                "mesh_audit.destination.principal",
                "spiffe://cluster.local/ns/default/sa/backend"
            ),
            s("tls.protocol.name", "tls"),
            s("tls.protocol.version", "1.3"),
            s("user.id", "alice"),
            s("mesh_audit.route.name", "orders"),
            s("mesh_audit.route.cluster", "backend"),
        ]
    );
}

#[test]
fn denied_error_and_loss_records_carry_their_severity_and_details() {
    let req = decode(&chained_batch(), None);
    let l = logs(&req);
    let find = |log: &LogRecord, key: &str| {
        attrs(&log.attributes)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    };

    assert_eq!(
        (l[1].severity_number, l[1].severity_text.as_str()),
        (SeverityNumber::Warn as i32, "WARN")
    );
    assert_eq!(
        find(&l[1], "mesh_audit.decision"),
        Some(Value::StringValue("denied".into()))
    );
    assert_eq!(
        find(&l[1], "mesh_audit.violation"),
        Some(Value::StringValue("admin-only".into()))
    );
    assert_eq!(
        find(&l[1], "client.address"),
        Some(Value::StringValue("2001:db8::7".into()))
    );
    assert_eq!(find(&l[1], "client.port"), Some(Value::IntValue(40000)));
    assert_eq!(find(&l[1], "mesh_audit.seq"), Some(Value::IntValue(2)));

    assert_eq!(
        (l[2].severity_number, l[2].severity_text.as_str()),
        (SeverityNumber::Error as i32, "ERROR")
    );
    assert_eq!(
        find(&l[2], "http.response.status_code"),
        Some(Value::IntValue(503))
    );
    assert_eq!(
        find(&l[2], "mesh_audit.response.flags"),
        Some(Value::StringValue("UF,URX".into()))
    );

    assert_eq!(
        (l[3].severity_number, l[3].severity_text.as_str()),
        (SeverityNumber::Warn as i32, "WARN")
    );
    assert_eq!(l[3].event_name, "mesh_audit.loss");
    assert!(l[3].trace_id.is_empty());
    assert_eq!(
        attrs(&l[3].attributes),
        vec![
            s("event.name", "mesh_audit.loss"),
            s("mesh_audit.kind", "loss"),
            s("mesh_audit.emitter", EMITTER),
            i("mesh_audit.seq", 4),
            s("mesh_audit.loss.reason", "buffer_full"),
            i("mesh_audit.loss.count", 7),
        ]
    );
}

#[test]
fn a_line_that_is_not_a_record_still_reaches_the_collector() {
    let mut lines = chained_batch();
    lines.insert(1, b"{not json".to_vec());
    let req = decode(&lines, None);
    let l = logs(&req);
    assert_eq!(l.len(), 5);
    assert_eq!(body(&l[1]), b"{not json");
    assert_eq!(l[1].severity_number, SeverityNumber::Warn as i32);
    assert!(l[1].attributes.is_empty());
    assert_eq!(
        (l[1].time_unix_nano, l[1].observed_time_unix_nano),
        (0, OBSERVED)
    );
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|k| u8::from_str_radix(&h[k..k + 2], 16).unwrap())
        .collect()
}
