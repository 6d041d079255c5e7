//! `"format": "otlp"` from the real Envoy: the batch as an OpenTelemetry
//! Collector would decode it (the official `opentelemetry-proto`
//! definitions), and the same traffic stored by the real `mesh-audit sink`
//! at /v1/logs, whose trail then verifies.

use crate::cli::{stored, verify, CliSink, Scratch};
use crate::relay::{Outcome, Relay};
use crate::sidecar::Sidecar;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use prost::Message as _;
use serde_json::{json, Value};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
const REPORTER: &str = "spiffe://cluster.local/ns/batch/sa/reporter";

fn attribute(list: &[KeyValue], key: &str) -> Option<Any> {
    list.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

fn string(v: &str) -> Option<Any> {
    Some(Any::StringValue(v.to_string()))
}

fn body(log: &LogRecord) -> String {
    match log.body.clone().and_then(|b| b.value) {
        Some(Any::StringValue(s)) => s,
        other => panic!("log body is not a string: {other:?}"),
    }
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

crate::on_both_builds! {
fn otlp_batches_decode_with_the_official_definitions_and_verify_from_the_cli_sink(build: Build) {
    let scratch = Scratch::new();
    let file = scratch.path("audit.jsonl");
    let sink = CliSink::start(&file);
    let relay = Relay::start(sink.addr);
    // One batch holding the three requests.
    let plugin = json!({
        "sink": {"cluster": "audit_sink", "format": "otlp"},
        "batch": {"max_records": 4, "flush_interval_ms": 60000}
    });
    let envoy = Sidecar::start_on(build, "otlp", "e2e.yaml", &plugin, relay.port(), 1, &[]);
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let calls = [
        (
            "frontend",
            "/orders/42",
            vec![("traceparent", traceparent.as_str())],
            200,
            FRONTEND,
        ),
        ("reporter", "/admin/reports", vec![], 403, REPORTER),
        ("frontend", "/missing-upstream", vec![], 503, FRONTEND),
    ];
    let ids: Vec<String> = calls
        .iter()
        .map(|(cert, path, headers, status, _)| {
            let (got, id) = envoy.mtls_get(cert, path, headers);
            assert_eq!(got, *status, "{cert} {path}");
            id
        })
        .collect();
    let exchanges = relay.wait_for("an acknowledged batch", |x| {
        x.iter().any(|e| e.outcome == Outcome::Relayed)
    });
    assert_eq!(exchanges.len(), 1, "{:#?}", relay.summary());
    let batch = &exchanges[0];
    assert_eq!(batch.request.method_and_path(), ("POST", "/v1/logs"));
    assert_eq!(
        batch.request.header("content-type"),
        Some("application/x-protobuf")
    );
    assert_eq!(
        batch.reply.as_ref().map(crate::http::Message::status),
        Some(200)
    );

    let export = ExportLogsServiceRequest::decode(batch.request.body.as_slice())
        .unwrap_or_else(|e| panic!("not an ExportLogsServiceRequest: {e}"));
    assert_eq!(export.resource_logs.len(), 1, "{export:#?}");
    let resource_logs = &export.resource_logs[0];
    let resource = resource_logs.resource.as_ref().expect("a resource");
    let emitter = batch.request.header("x-mesh-audit-emitter").unwrap();
    assert_eq!(
        attribute(&resource.attributes, "service.name"),
        string("mesh-audit")
    );
    assert_eq!(
        attribute(&resource.attributes, "mesh_audit.emitter"),
        string(emitter)
    );
    assert_eq!(resource_logs.scope_logs.len(), 1, "{export:#?}");
    let scope = resource_logs.scope_logs[0].scope.as_ref().expect("a scope");
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("mesh-audit", env!("CARGO_PKG_VERSION"))
    );
    let logs = &resource_logs.scope_logs[0].log_records;
    assert_eq!(
        logs.len(),
        calls.len() + 1,
        "one LogRecord per request, and the seal ending the batch: {logs:#?}"
    );
    let seal: Value = serde_json::from_str(&body(&logs[calls.len()])).unwrap();
    assert_eq!(seal["kind"], "seal", "{seal}");

    let severities = [
        SeverityNumber::Info,
        SeverityNumber::Warn,
        SeverityNumber::Error,
    ];
    for (((_, path, _, status, principal), id), severity) in calls.iter().zip(&ids).zip(severities)
    {
        let log = logs
            .iter()
            .find(|l| serde_json::from_str::<Value>(&body(l)).unwrap()["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no LogRecord for {path} ({id})"));
        let line: Value = serde_json::from_str(&body(log)).unwrap();
        assert_eq!(line["emitter"], json!(emitter));
        assert_eq!(line["source"]["principal"], json!(principal), "{line}");
        assert_eq!(line["request"]["path"], json!(path), "{line}");
        assert_eq!(line["response"]["code"], json!(status), "{line}");
        assert_eq!(log.severity_number, severity as i32, "{path}: {log:#?}");
        assert_eq!(
            log.severity_text,
            severity
                .as_str_name()
                .trim_start_matches("SEVERITY_NUMBER_")
        );
        assert!(log.time_unix_nano > 0, "{log:#?}");
        let attrs = &log.attributes;
        assert_eq!(attribute(attrs, "http.request.method"), string("GET"));
        assert_eq!(attribute(attrs, "url.path"), string(path));
        assert_eq!(
            attribute(attrs, "http.response.status_code"),
            Some(Any::IntValue(i64::from(*status)))
        );
        assert_eq!(
            attribute(attrs, "mesh_audit.source.principal"),
            string(principal)
        );
        let trace = if *path == "/orders/42" {
            hex_bytes(TRACE_ID)
        } else {
            Vec::new()
        };
        assert_eq!(log.trace_id, trace, "{path}");
    }

    // The CLI sink stored the bodies as the exact chained lines.
    let bodies: Vec<String> = logs.iter().map(body).collect();
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().collect::<Vec<_>>(), bodies);
    assert_eq!(stored(&file).len(), calls.len() + 1);
    let verified = verify(&file);
    assert_eq!(verified.exit_code, Some(0), "{}", verified.text);
    assert_eq!(verified.json["ok"], json!(true), "{:#}", verified.json);
    assert_eq!(
        verified.json["records"],
        json!(calls.len() + 1),
        "{:#}",
        verified.json
    );
    let emitters = verified.json["emitters"].as_array().unwrap();
    assert_eq!(emitters.len(), 1, "{:#}", verified.json);
    assert_eq!(emitters[0]["emitter"], json!(emitter));
    assert_eq!(emitters[0]["chained"], json!(true));
    assert_eq!(emitters[0]["last_seq"], json!(calls.len() + 1));
    assert_eq!(emitters[0]["sealed_through"], json!(calls.len() + 1));
}
}
