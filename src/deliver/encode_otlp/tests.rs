//! Test code only: its parent declares it under #[cfg(test)].
use super::proto::{ExportLogsServiceRequest, LogRecord, Value};
use super::*;
use crate::audit::record::{Decision, Kind, LossReason, Record};
use proptest::prelude::*;

const FULL: &str = r#"{"kind":"request","ts":"2026-11-21T14:03:05.123456Z","emitter":"6f1c2b00000000000000000000000001",
 "seq":17,"prev":"9a0f","request_id":"90ae957f-1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
 "source":{"address":"10.0.0.7:51234","principal":"spiffe://cluster.local/ns/shop/sa/frontend",
   "trust_domain":"cluster.local","namespace":"shop","service_account":"frontend"},
 "destination":{"address":"10.0.0.9:8443","principal":"spiffe://cluster.local/ns/default/sa/backend"},
 "tls":{"mtls":true,"version":"TLSv1.3","sni":"backend.default.svc"},
 "user":{"sub":"alice","iss":"https://idp.example"},
 "request":{"method":"GET","scheme":"https","authority":"backend:8443","path":"/orders/42",
   "query":"token=[REDACTED]&page=2","protocol":"HTTP/1.1","bytes":12},
 "response":{"code":200,"code_details":"via_upstream","flags":["UF","URX"],"bytes":94},
 "route":{"name":"orders","cluster":"backend","virtual_host":"backend"},
 "duration_ms":1.234,"decision":"allowed","violation":"admin-only"}"#;

const RESOURCE: Resource<'static> = Resource {
    emitter: "e1",
    node_id: Some("sidecar~10.0.0.9~pod.ns~ns.svc"),
    version: "0.1.0",
};

/// The exact bytes the chain would hash for a record.
fn line(r: &Record) -> Vec<u8> {
    serde_json::to_vec(r).unwrap()
}

fn full() -> Record {
    serde_json::from_str(FULL).unwrap()
}

fn decode(body: &[u8]) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest::decode(body).unwrap()
}

/// Encodes one line and returns its log record.
fn one(line: &[u8]) -> LogRecord {
    let req = decode(&encode(&[line], &RESOURCE, 42));
    req.resource_logs[0].scope_logs[0].log_records[0].clone()
}

fn attr<'a>(log: &'a LogRecord, key: &str) -> Option<&'a Value> {
    let mut found = log.attributes.iter().filter(|kv| kv.key == key);
    let first = found.next();
    assert!(found.next().is_none(), "attribute {key} appears twice");
    first
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn s(v: &str) -> Option<Value> {
    Some(Value::String(v.to_string()))
}

fn i(v: i64) -> Option<Value> {
    Some(Value::Int(v))
}

#[test]
fn maps_every_request_field_to_its_attribute() {
    let log = one(&line(&full()));
    let expect = [
        ("event.name", s("mesh_audit.request")),
        ("mesh_audit.kind", s("request")),
        ("mesh_audit.emitter", s("6f1c2b00000000000000000000000001")),
        ("mesh_audit.seq", i(17)),
        ("mesh_audit.request_id", s("90ae957f-1")),
        ("mesh_audit.decision", s("allowed")),
        ("mesh_audit.violation", s("admin-only")),
        ("http.request.method", s("GET")),
        ("url.scheme", s("https")),
        ("server.address", s("backend")),
        ("server.port", i(8443)),
        ("url.path", s("/orders/42")),
        ("url.query", s("token=[REDACTED]&page=2")),
        ("network.protocol.version", s("1.1")),
        ("http.request.body.size", i(12)),
        ("http.response.status_code", i(200)),
        ("http.response.body.size", i(94)),
        ("mesh_audit.response.flags", s("UF,URX")),
        ("client.address", s("10.0.0.7")),
        ("client.port", i(51234)),
        (
            "mesh_audit.source.principal",
            s("spiffe://cluster.local/ns/shop/sa/frontend"),
        ),
        ("mesh_audit.source.namespace", s("shop")),
        ("mesh_audit.source.service_account", s("frontend")),
        (
            "mesh_audit.destination.principal",
            s("spiffe://cluster.local/ns/default/sa/backend"),
        ),
        ("tls.protocol.name", s("tls")),
        ("tls.protocol.version", s("1.3")),
        ("user.id", s("alice")),
        ("mesh_audit.route.name", s("orders")),
        ("mesh_audit.route.cluster", s("backend")),
    ];
    for (key, want) in &expect {
        assert_eq!(attr(&log, key), want.as_ref(), "{key}");
    }
    assert_eq!(
        log.attributes.len(),
        expect.len(),
        "unexpected extra attributes: {:?}",
        log.attributes
    );
    assert_eq!(log.event_name, "mesh_audit.request");
}

#[test]
fn maps_loss_records() {
    let mut r = Record::loss(
        LossReason::BufferFull,
        7,
        "a".into(),
        "b".into(),
        "2026-11-21T14:03:05Z".into(),
    );
    r.emitter = Some("e1".into());
    r.seq = Some(3);
    let log = one(&line(&r));
    assert_eq!(attr(&log, "event.name"), s("mesh_audit.loss").as_ref());
    assert_eq!(attr(&log, "mesh_audit.kind"), s("loss").as_ref());
    assert_eq!(
        attr(&log, "mesh_audit.loss.reason"),
        s("buffer_full").as_ref()
    );
    assert_eq!(attr(&log, "mesh_audit.loss.count"), i(7).as_ref());
    assert_eq!(attr(&log, "mesh_audit.seq"), i(3).as_ref());
    assert_eq!(attr(&log, "http.request.method"), None);
    assert_eq!(log.event_name, "mesh_audit.loss");
    assert_eq!(
        (log.severity_number, log.severity_text.as_str()),
        (13, "WARN")
    );
}

#[test]
fn severity_follows_decision_violation_and_kind() {
    let case = |decision: Option<Decision>, violation: Option<&str>| {
        let mut r = Record::new(Kind::Request, "2026-11-21T14:03:05Z".into());
        r.decision = decision;
        r.violation = violation.map(str::to_string);
        let log = one(&line(&r));
        (log.severity_number, log.severity_text)
    };
    assert_eq!(case(Some(Decision::Allowed), None), (9, "INFO".into()));
    assert_eq!(case(None, None), (9, "INFO".into()));
    assert_eq!(case(Some(Decision::Denied), None), (13, "WARN".into()));
    assert_eq!(
        case(Some(Decision::Allowed), Some("admin-only")),
        (13, "WARN".into())
    );
    assert_eq!(case(Some(Decision::Error), None), (17, "ERROR".into()));
    assert_eq!(
        case(Some(Decision::Error), Some("admin-only")),
        (17, "ERROR".into())
    );
}

#[test]
fn a_line_that_is_not_a_record_is_sent_body_only_as_warn() {
    let not_records: [&[u8]; 7] = [
        b"not json",
        b"",
        b"[1,2]",
        b"{\"kind\":\"nope\",\"ts\":\"2026-11-21T14:03:05Z\"}",
        b"{\"ts\":\"2026-11-21T14:03:05Z\",\"seq\":1}",
        b"{\"kind\":\"request\",\"seq\":1}",
        b"{\"kind\":\"request\",\"ts\":5}",
    ];
    for bad in not_records {
        let log = one(bad);
        assert_eq!(
            log.body.and_then(|b| b.value),
            Some(Value::String(String::from_utf8(bad.to_vec()).unwrap()))
        );
        assert_eq!(
            (log.severity_number, log.severity_text.as_str()),
            (13, "WARN")
        );
        assert!(log.attributes.is_empty());
        assert_eq!((log.time_unix_nano, log.observed_time_unix_nano), (0, 42));
        assert!(log.trace_id.is_empty() && log.event_name.is_empty());
    }
}

#[test]
fn a_field_of_an_unexpected_type_is_left_out_and_the_rest_is_mapped() {
    let mut json: serde_json::Value = serde_json::from_str(FULL).unwrap();
    json["seq"] = "seventeen".into();
    json["request"]["method"] = 7.into();
    json["response"]["flags"] = "UF".into();
    json["decision"] = "maybe".into();
    let log = one(&serde_json::to_vec(&json).unwrap());
    for gone in [
        "mesh_audit.seq",
        "http.request.method",
        "mesh_audit.response.flags",
    ] {
        assert_eq!(attr(&log, gone), None, "{gone}");
    }
    assert_eq!(attr(&log, "url.path"), s("/orders/42").as_ref());
    assert_eq!(
        attr(&log, "mesh_audit.decision"),
        s("maybe").as_ref(),
        "the record's own words are kept"
    );
    assert_eq!(log.severity_text, "WARN", "still a violation");
    assert_eq!(log.time_unix_nano, 1_795_269_785_123_456_000);
}

#[test]
fn a_line_that_is_not_utf8_travels_as_bytes() {
    let bad = b"{\"kind\":\xff}";
    let log = one(bad);
    assert_eq!(
        log.body.and_then(|b| b.value),
        Some(Value::Bytes(bad.to_vec()))
    );
    assert_eq!(log.severity_text, "WARN");
    assert_eq!(
        record_lines(&encode(&[bad], &RESOURCE, 0)).unwrap(),
        vec![bad.to_vec()]
    );
}

#[test]
fn times_come_from_ts_and_the_encoding_instant() {
    let log = one(&line(&full()));
    assert_eq!(log.time_unix_nano, 1_795_269_785_123_456_000);
    assert_eq!(log.observed_time_unix_nano, 42);
    let log = one(&line(&Record::new(Kind::Request, "yesterday".into())));
    assert_eq!(
        log.time_unix_nano, 0,
        "an unreadable ts is OTLP's unknown time"
    );
    assert_eq!(
        log.severity_text, "INFO",
        "the record itself is still understood"
    );
}

#[test]
fn trace_id_is_sixteen_bytes_and_span_id_eight() {
    let log = one(&line(&full()));
    let want: Vec<u8> = vec![
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    assert_eq!(log.trace_id, want);
    assert_eq!(
        log.span_id,
        vec![0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
    );
    let not_hex = "zz".repeat(16);
    for bad in [
        "",
        "4bf92f",
        not_hex.as_str(),
        "00000000000000000000000000000000",
    ] {
        let mut r = full();
        r.trace_id = Some(bad.to_string());
        assert!(one(&line(&r)).trace_id.is_empty(), "{bad:?}");
    }
}

#[test]
fn client_address_of_an_ipv6_peer() {
    let mut r = full();
    r.source.as_mut().unwrap().address = Some("[2001:db8::7]:40000".into());
    let log = one(&line(&r));
    assert_eq!(attr(&log, "client.address"), s("2001:db8::7").as_ref());
    assert_eq!(attr(&log, "client.port"), i(40000).as_ref());
}

#[test]
fn resource_and_scope_describe_the_emitter() {
    let req = decode(&encode(&[b"x"], &RESOURCE, 0));
    assert_eq!(req.resource_logs.len(), 1);
    let attrs = &req.resource_logs[0].resource.as_ref().unwrap().attributes;
    let pairs: Vec<(&str, Option<&Value>)> = attrs
        .iter()
        .map(|kv| {
            (
                kv.key.as_str(),
                kv.value.as_ref().and_then(|v| v.value.as_ref()),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("service.name", s("mesh-audit").as_ref()),
            ("mesh_audit.emitter", s("e1").as_ref()),
            (
                "service.instance.id",
                s("sidecar~10.0.0.9~pod.ns~ns.svc").as_ref()
            ),
        ]
    );
    let scope = req.resource_logs[0].scope_logs[0].scope.clone().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("mesh-audit", "0.1.0")
    );

    let anonymous = Resource {
        node_id: None,
        ..RESOURCE
    };
    let req = decode(&encode(&[b"x"], &anonymous, 0));
    let keys: Vec<String> = req.resource_logs[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| kv.key.clone())
        .collect();
    assert_eq!(keys, ["service.name", "mesh_audit.emitter"]);
}

#[test]
fn record_lines_returns_the_exact_lines_in_order() {
    let mut loss = Record::loss(LossReason::Rejected, 2, "a".into(), "b".into(), "c".into());
    loss.from_seq = Some(1);
    let lines = [line(&full()), b"not json".to_vec(), line(&loss)];
    let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let body = encode(&refs, &RESOURCE, 1);
    assert_eq!(record_lines(&body).unwrap(), lines.to_vec());
    assert_eq!(
        record_lines(&encode(&[], &RESOURCE, 1)).unwrap(),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(record_lines(b"").unwrap(), Vec::<Vec<u8>>::new());
}

#[test]
fn record_lines_explains_what_is_wrong() {
    let err = record_lines(b"\x0a\x05garbage").unwrap_err();
    assert!(
        err.starts_with("not an OTLP ExportLogsServiceRequest: "),
        "{err}"
    );
    assert!(
        record_lines(b"{\"resourceLogs\":[]}").is_err(),
        "OTLP/JSON is not accepted as protobuf"
    );

    let mut req = decode(&encode(&[b"a", b"b"], &RESOURCE, 0));
    req.resource_logs[0].scope_logs[0].log_records[1].body = Some(AnyValue {
        value: Some(Value::Int(5)),
    });
    assert_eq!(
        record_lines(&req.encode_to_vec()).unwrap_err(),
        "resource_logs[0].scope_logs[0].log_records[1]: no string body"
    );
    req.resource_logs[0].scope_logs[0].log_records[1].body = None;
    assert!(record_lines(&req.encode_to_vec())
        .unwrap_err()
        .ends_with("log_records[1]: no string body"));
}

proptest! {
    #[test]
    fn record_lines_never_panics_on_random_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = record_lines(&body);
    }

    #[test]
    fn record_lines_never_panics_on_a_damaged_batch(
        cut in 0usize..4096,
        flips in proptest::collection::vec((0usize..4096, any::<u8>()), 0..8),
    ) {
        let lines = [line(&full()), line(&full())];
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let mut body = encode(&refs, &RESOURCE, 1);
        for (at, byte) in flips {
            let n = body.len();
            body[at % n] = byte;
        }
        body.truncate(cut);
        let _ = record_lines(&body);
    }

    #[test]
    fn any_lines_round_trip(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(record_lines(&encode(&refs, &RESOURCE, 7)).unwrap(), lines);
    }
}
