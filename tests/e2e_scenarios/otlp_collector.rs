//! OTLP from the real Envoy 1.40, against what real collectors do: the
//! node id Envoy was started with is the resource's `service.instance.id`;
//! a gzip export reaches the real `mesh-audit sink` and verifies; a
//! collector that answers `429` with `Retry-After` is waited for, and one
//! that answers with a partial success has those records counted rejected
//! and reported by a `loss` record.

use crate::cli::{stored, verify, CliSink, Scratch};
use crate::http::{read_message, Message};
use crate::relay::{Outcome, Relay};
use crate::sidecar::Sidecar;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message as _;
use serde_json::{json, Value};
use std::io::{BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An Istio sidecar's node id (`--service-node`, as istio-agent sets it).
const NODE_ID: &str = "sidecar~10.1.2.3~backend-5d9f8-x2x7k.shop~shop.svc.cluster.local";

fn attribute(list: &[KeyValue], key: &str) -> Option<Any> {
    list.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

/// The export a request carries, gunzipped when it says so.
fn export(request: &Message) -> ExportLogsServiceRequest {
    let body = match request.header("content-encoding") {
        Some("gzip") => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&request.body[..])
                .read_to_end(&mut plain)
                .unwrap();
            plain
        }
        None => request.body.clone(),
        Some(other) => panic!("content-encoding {other}"),
    };
    ExportLogsServiceRequest::decode(body.as_slice())
        .unwrap_or_else(|e| panic!("not an ExportLogsServiceRequest: {e}"))
}

fn lines(e: &ExportLogsServiceRequest) -> Vec<Value> {
    e.resource_logs[0].scope_logs[0]
        .log_records
        .iter()
        .map(|l| match l.body.clone().and_then(|b| b.value) {
            Some(Any::StringValue(s)) => serde_json::from_str(&s).unwrap(),
            other => panic!("log body is not a string: {other:?}"),
        })
        .collect()
}

/// The wasm filter only: Envoy's dynamic-module ABI (v0.2.0) offers no
/// node id to a module, so the native module's OTLP resource has no
/// `service.instance.id` (README, "Native module").
#[test]
fn a_real_envoys_node_id_names_the_otlp_resource_and_gzip_exports_verify_from_the_cli_sink() {
    let build = crate::e2e::Build::Wasm;
    let scratch = Scratch::new();
    let file = scratch.path("audit.jsonl");
    let sink = CliSink::start(&file);
    let relay = Relay::start(sink.addr);
    let plugin = json!({
        "sink": {"cluster": "audit_sink", "format": "otlp", "compression": "gzip"},
        "batch": {"max_records": 2, "flush_interval_ms": 60000},
        "capture": {"request_headers": ["user-agent"]}
    });
    let envoy = Sidecar::start_built(
        build,
        "otlp-node",
        "e2e.yaml",
        &plugin,
        relay.port(),
        1,
        &[],
        &[
            "--service-node",
            NODE_ID,
            "--service-cluster",
            "backend.shop",
        ],
    );
    for path in ["/orders/1", "/orders/2"] {
        let (status, _) = envoy.mtls_get("frontend", path, &[("user-agent", "audit-e2e/1.0")]);
        assert_eq!(status, 200, "{path}");
    }
    // A batch holds `max_records` records, its seal included: each request
    // leaves in a batch of its own, sealed.
    let exchanges = relay.wait_for("both batches acknowledged", |x| {
        x.iter().filter(|e| e.outcome == Outcome::Relayed).count() >= 2
    });
    let batch = &exchanges[0];
    assert_eq!(
        batch.reply.as_ref().map(Message::status),
        Some(200),
        "{:#?}",
        relay.summary()
    );
    assert_eq!(batch.request.header("content-encoding"), Some("gzip"));
    assert_eq!(
        batch.request.header("content-type"),
        Some("application/x-protobuf")
    );
    let e = export(&batch.request);
    let resource = e.resource_logs[0].resource.clone().expect("a resource");
    assert_eq!(
        attribute(&resource.attributes, "service.instance.id"),
        Some(Any::StringValue(NODE_ID.into())),
        "{resource:#?}\n{}",
        envoy.log()
    );

    let records = lines(&e);
    let kinds: Vec<&Value> = records.iter().map(|r| &r["kind"]).collect();
    assert_eq!(kinds, [&json!("request"), &json!("seal")], "{records:#?}");
    let log = &e.resource_logs[0].scope_logs[0].log_records[0];
    let subject = records[0]["source"]["subject"].as_str().expect("a subject");
    let digest = records[0]["source"]["cert_sha256"]
        .as_str()
        .expect("a digest");
    assert_eq!(
        attribute(&log.attributes, "tls.client.subject"),
        Some(Any::StringValue(subject.into()))
    );
    assert_eq!(
        attribute(&log.attributes, "tls.client.hash.sha256"),
        Some(Any::StringValue(digest.to_ascii_uppercase()))
    );
    assert_eq!(
        attribute(&log.attributes, "user_agent.original"),
        Some(Any::StringValue("audit-e2e/1.0".into()))
    );

    // The CLI sink took the gzip bodies, stored the exact lines (two
    // requests, each with its batch's seal), and they verify.
    let trail = stored(&file);
    let count = |kind: &str| trail.iter().filter(|r| r["kind"] == kind).count();
    assert_eq!((count("request"), count("seal")), (2, 2), "{trail:#?}");
    assert_eq!(trail.len(), 4, "{trail:#?}");
    let verified = verify(&file);
    assert_eq!(verified.exit_code, Some(0), "{}", verified.text);
    assert_eq!(verified.json["ok"], json!(true), "{:#}", verified.json);
}

/// One scripted answer of the collector.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// An OTLP/HTTP collector that answers from a script (then `200` with an
/// empty `ExportLogsServiceResponse`), keeping every request and when it
/// arrived.
struct Collector {
    port: u16,
    seen: Arc<Mutex<Vec<(Instant, Message)>>>,
}

impl Collector {
    fn start(script: Vec<Answer>) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (seen, script) = (Arc::clone(&record), Arc::clone(&script));
                std::thread::spawn(move || {
                    let Ok(mut writer) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(stream);
                    while let Some(request) = read_message(&mut reader) {
                        seen.lock().unwrap().push((Instant::now(), request));
                        let answer = script.lock().unwrap().pop_front().unwrap_or(Answer {
                            status: 200,
                            headers: vec![],
                            body: vec![],
                        });
                        let mut head = format!(
                            "HTTP/1.1 {} X\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n",
                            answer.status,
                            answer.body.len()
                        );
                        for (k, v) in &answer.headers {
                            head.push_str(&format!("{k}: {v}\r\n"));
                        }
                        head.push_str("\r\n");
                        let sent = writer
                            .write_all(head.as_bytes())
                            .and_then(|()| writer.write_all(&answer.body));
                        if sent.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Collector { port, seen }
    }

    fn seen(&self) -> Vec<(Instant, Message)> {
        self.seen.lock().unwrap().clone()
    }

    fn wait_for(&self, n: usize) -> Vec<(Instant, Message)> {
        crate::e2e::wait_for(Duration::from_secs(20), || {
            Some(self.seen()).filter(|s| s.len() >= n)
        })
        .unwrap_or_else(|| panic!("the collector saw {} exports, not {n}", self.seen().len()))
    }
}

crate::on_both_builds! {
fn a_real_collectors_retry_after_is_waited_for_and_its_partial_success_is_a_reported_rejection(build: Build) {
    let partial = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 1,
            error_message: "1 log record exceeds the attribute limit".into(),
        }),
    }
    .encode_to_vec();
    let collector = Collector::start(vec![
        Answer {
            status: 429,
            headers: vec![("retry-after", "2".into())],
            body: vec![],
        },
        Answer {
            status: 200,
            headers: vec![],
            body: partial,
        },
    ]);
    let plugin = json!({
        "sink": {"cluster": "audit_sink", "format": "otlp"},
        "batch": {"max_records": 3, "flush_interval_ms": 60000},
        "retry": {"backoff_base_ms": 100, "backoff_max_ms": 10000}
    });
    let envoy = Sidecar::start_on(build,
        "otlp-collector",
        "e2e.yaml",
        &plugin,
        collector.port,
        1,
        &[],
    );
    // Two requests and their seal fill the first batch (seq 1-3): a batch
    // holds `max_records` records, its seal included.
    for i in 1..=2 {
        assert_eq!(
            envoy.mtls_get("frontend", &format!("/orders/{i}"), &[]).0,
            200
        );
    }
    let seen = collector.wait_for(2);
    let first: Vec<Value> = lines(&export(&seen[0].1));
    let kinds: Vec<&Value> = first.iter().map(|r| &r["kind"]).collect();
    assert_eq!(
        kinds,
        [&json!("request"), &json!("request"), &json!("seal")],
        "{first:#?}"
    );
    let waited = seen[1].0 - seen[0].0;
    // Without Retry-After the first retry comes after 50..100 ms.
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?} despite Retry-After: 2"
    );
    assert_eq!(
        seen[1].1.header("x-mesh-audit-seq"),
        Some("1-3"),
        "the same batch"
    );
    let stats = envoy.stats_when("the partial success settled", |s| {
        s.get("records_rejected") == Some(&1)
    });
    assert_eq!(stats["records_delivered"], 2, "{stats:?}");
    assert_eq!(
        stats["records_admitted"], 4,
        "2 requests, their seal and the loss record: {stats:?}"
    );
    assert_eq!(stats["records_buffered"], 1, "the loss record: {stats:?}");
    assert!(
        envoy
            .log()
            .contains("rejected 1 records of a batch; they are reported by a loss record"),
        "{}",
        envoy.log()
    );

    // The loss record leaves with the next batch (the loss record, one more
    // request and their seal) and names the range.
    assert_eq!(envoy.mtls_get("frontend", "/orders/3", &[]).0, 200);
    let seen = collector.wait_for(3);
    assert_eq!(seen[2].1.header("x-mesh-audit-seq"), Some("4-6"));
    let next = lines(&export(&seen[2].1));
    let kinds: Vec<&Value> = next.iter().map(|r| &r["kind"]).collect();
    assert_eq!(
        kinds,
        [&json!("loss"), &json!("request"), &json!("seal")],
        "{next:#?}"
    );
    let loss = next
        .iter()
        .find(|r| r["kind"] == "loss")
        .unwrap_or_else(|| panic!("no loss record in {next:#?}"));
    assert_eq!(loss["reason"], "rejected");
    assert_eq!(loss["count"], 1);
    assert_eq!(
        (loss["from_seq"].as_u64(), loss["to_seq"].as_u64()),
        (Some(1), Some(3))
    );
    // Delivered: 2 of the first batch, all 3 of the second.
    let stats = envoy.stats_when("everything settled", |s| {
        s.get("records_buffered") == Some(&0) && s.get("records_delivered") == Some(&5)
    });
    assert_eq!(stats["records_admitted"], 6, "{stats:?}");
    assert_eq!(
        stats["records_admitted"],
        stats["records_delivered"] + stats["records_rejected"],
        "{stats:?}"
    );
}
}
