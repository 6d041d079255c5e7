//! The compiled filter facing a real collector's answers (SPEC §2.3, §4.1):
//! an OTLP partial success is a rejection of that many records, counted and
//! reported by a `loss` record; `Retry-After` sets the next attempt;
//! `sink.compression: gzip` sends `content-encoding: gzip`; the resource
//! carries `service.instance.id` from the node id, read once per VM. Bodies
//! are built and read with the official OpenTelemetry definitions. A batch
//! is its records, then their seal: `max_records` 4 makes three requests a
//! full batch.

use crate::host::fixtures::{configured_on, orders_request, USER_AGENT};
use crate::host::{each_guest, Dispatch, Host};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use serde_json::Value;
use std::io::Read;

const NODE_ID: &str = "sidecar~10.1.2.3~backend-5d9f8-x2x7k.shop~shop.svc.cluster.local";

fn otlp(extra: &str) -> String {
    format!(
        r#"{{"sink":{{"cluster":"audit_sink","format":"otlp"{extra}}},
        "batch":{{"max_records":4,"flush_interval_ms":60000}},
        "retry":{{"backoff_base_ms":200,"backoff_max_ms":2000}},
        "capture":{{"request_headers":["user-agent"]}}}}"#
    )
}

fn run_n(h: &mut Host, n: u64) {
    for i in 0..n {
        h.run(orders_request(100 + i));
    }
}

/// The export a dispatch carries, gunzipped when it says so.
fn export(d: &Dispatch) -> ExportLogsServiceRequest {
    let body = match d.header("content-encoding").as_deref() {
        Some("gzip") => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&d.body[..])
                .read_to_end(&mut plain)
                .unwrap();
            plain
        }
        None => d.body.clone(),
        Some(other) => panic!("content-encoding {other}"),
    };
    ExportLogsServiceRequest::decode(body.as_slice()).unwrap()
}

/// The record lines (LogRecord bodies) of an export.
fn bodies(e: &ExportLogsServiceRequest) -> Vec<Value> {
    e.resource_logs[0].scope_logs[0]
        .log_records
        .iter()
        .map(|l| match l.body.clone().and_then(|b| b.value) {
            Some(Any::StringValue(s)) => serde_json::from_str(&s).unwrap(),
            other => panic!("body {other:?}"),
        })
        .collect()
}

/// The `kind` of each record of an export, in order.
fn kinds(e: &ExportLogsServiceRequest) -> Vec<String> {
    bodies(e)
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect()
}

fn attribute(list: &[KeyValue], key: &str) -> Option<Any> {
    list.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

fn partial(rejected: i64, message: &str) -> Vec<u8> {
    ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: rejected,
            error_message: message.to_string(),
        }),
    }
    .encode_to_vec()
}

fn balance(h: &Host) -> (i64, i64, i64, i64) {
    (
        h.metric("mesh_audit.records_admitted"),
        h.metric("mesh_audit.records_delivered"),
        h.metric("mesh_audit.records_rejected"),
        h.metric("mesh_audit.records_buffered"),
    )
}

#[test]
fn a_partial_success_rejects_that_many_records_and_reports_them_by_a_loss_record() {
    each_guest(|guest| {
        let mut h = configured_on(guest, &otlp(""));
        run_n(&mut h, 3);
        h.tick();
        assert_eq!(
            kinds(&export(&h.dispatched()[0])),
            ["request", "request", "request", "seal"]
        );
        let token = h.token(0);
        h.reply_with(
            token,
            &[
                (":status", "200"),
                ("content-type", "application/x-protobuf"),
            ],
            &partial(2, "2 log records exceed the size limit"),
        );
        h.tick();
        // 3 requests + their seal + the loss record admitted; of the batch of 4,
        // 2 delivered and 2 rejected; the loss held.
        assert_eq!(balance(&h), (3 + 1 + 1, 2, 2, 1), "{}", h.log_dump());
        let warned = h.logs_at_least(crate::host::level::WARN);
        assert!(
            warned
                .iter()
                .any(|l| l.contains("rejected 2 records") && l.contains("exceed the size limit")),
            "{warned:?}"
        );

        // The loss record goes out with the next batch, naming the batch's range.
        run_n(&mut h, 2);
        h.tick();
        let next = h.dispatched();
        assert_eq!(next.len(), 2, "{}", h.log_dump());
        let sent = export(&next[1]);
        assert_eq!(kinds(&sent), ["loss", "request", "request", "seal"]);
        let loss = &bodies(&sent)[0];
        assert_eq!(loss["reason"], "rejected");
        assert_eq!(loss["count"], 2);
        assert_eq!(
            (loss["from_seq"].as_u64(), loss["to_seq"].as_u64()),
            (Some(1), Some(4)),
            "the rejected batch: 3 requests and their seal"
        );
        assert_eq!(loss["seq"], 5);
        h.reply(h.token(1), 200, b"");
        h.tick();
        // 5 requests, 2 seals, the loss record: all settled.
        assert_eq!(balance(&h), (5 + 2 + 1, 6, 2, 0));
    });
}

#[test]
fn a_collector_refusing_more_than_the_batch_rejects_it_all_and_a_warning_rejects_nothing() {
    each_guest(|guest| {
        let mut h = configured_on(guest, &otlp(""));
        run_n(&mut h, 3);
        h.tick();
        h.reply(h.token(0), 200, &partial(9, "quota"));
        h.tick();
        // The whole batch (3 requests and their seal) rejected, the loss held.
        assert_eq!(balance(&h), (3 + 1 + 1, 0, 4, 1));

        let mut h = configured_on(guest, &otlp(""));
        run_n(&mut h, 3);
        h.tick();
        h.reply(h.token(0), 200, &partial(0, "deprecated attribute"));
        h.tick();
        assert_eq!(balance(&h), (3 + 1, 4, 0, 0), "3 requests and their seal");
        assert!(h
            .logs_at_least(crate::host::level::WARN)
            .iter()
            .any(|l| l.contains("accepted a batch with a warning")
                && l.contains("deprecated attribute")));
    });
}

#[test]
fn a_json_partial_success_counts_too() {
    each_guest(|guest| {
        let mut h = configured_on(guest, &otlp(""));
        run_n(&mut h, 3);
        h.tick();
        h.reply_with(
            h.token(0),
            &[(":status", "200"), ("content-type", "application/json")],
            br#"{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"bad"}}"#,
        );
        h.tick();
        // 3 requests + their seal + the loss; 3 of the batch of 4 delivered.
        assert_eq!(balance(&h), (3 + 1 + 1, 3, 1, 1));
    });
}

#[test]
fn retry_after_seconds_delay_the_retry_up_to_backoff_max_ms() {
    each_guest(|guest| {
        let mut h = configured_on(guest, &otlp(""));
        run_n(&mut h, 3);
        h.tick();
        let at = h.now_ms();
        h.reply_with(h.token(0), &[(":status", "429"), ("retry-after", "1")], b"");
        // Plain backoff would retry within 200 ms; the sink asked for 1 s.
        h.elapse_ms(990);
        assert_eq!(h.dispatched().len(), 1, "retried before Retry-After");
        h.elapse_ms(120);
        let sent = h.dispatched();
        assert_eq!(sent.len(), 2);
        assert!(sent[1].at_ms - at >= 1000, "{} ms", sent[1].at_ms - at);

        // An hour is capped at retry.backoff_max_ms (2 s), not obeyed.
        h.reply_with(
            h.token(1),
            &[(":status", "503"), ("retry-after", "3600")],
            b"",
        );
        let at = h.now_ms();
        h.elapse_ms(2100);
        let sent = h.dispatched();
        assert_eq!(sent.len(), 3, "{}", h.log_dump());
        assert!(sent[2].at_ms - at <= 2100);
        assert!(sent[2].at_ms - at >= 1000, "{} ms", sent[2].at_ms - at);
    });
}

#[test]
fn gzip_compression_sends_content_encoding_and_the_same_export() {
    each_guest(|guest| {
        let mut h = configured_on(guest, &otlp(r#","compression":"gzip""#));
        run_n(&mut h, 3);
        h.tick();
        let d = &h.dispatched()[0];
        assert_eq!(d.header("content-encoding").as_deref(), Some("gzip"));
        assert_eq!(
            d.header("content-type").as_deref(),
            Some("application/x-protobuf")
        );
        let e = export(d);
        assert_eq!(kinds(&e), ["request", "request", "request", "seal"]);
        assert_eq!(bodies(&e)[3]["seq"], 4);

        // Off unless asked for, for either format.
        let mut h = configured_on(guest, &otlp(""));
        run_n(&mut h, 3);
        h.tick();
        assert_eq!(h.dispatched()[0].header("content-encoding"), None);
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"audit_sink","compression":"gzip"},"batch":{"max_records":3}}"#,
        );
        run_n(&mut h, 2);
        h.tick();
        let d = &h.dispatched()[0];
        assert_eq!(d.header("content-encoding").as_deref(), Some("gzip"));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&d.body[..])
            .read_to_string(&mut text)
            .unwrap();
        let kinds: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["kind"].clone())
            .collect();
        assert_eq!(kinds, ["request", "request", "seal"], "{text}");
    });
}

/// The service.instance.id of every batch `h` sent, and the node
/// properties it read.
fn instance_ids_and_node_reads(mut h: Host) -> (Vec<Option<Any>>, Vec<String>) {
    assert!(h.configure(&otlp("")), "{}", h.log_dump());
    for round in 0..2 {
        run_n(&mut h, 3);
        h.tick();
        h.reply(h.token(round), 200, b"");
    }
    // A reconfiguration keeps the VM's node id without reading it again.
    assert!(h.configure(&otlp("")), "{}", h.log_dump());
    run_n(&mut h, 3);
    h.tick();
    let ids = h
        .dispatched()
        .iter()
        .map(|d| {
            let e = export(d);
            assert_eq!(kinds(&e), ["request", "request", "request", "seal"]);
            let resource = e.resource_logs[0].resource.clone().unwrap();
            attribute(&resource.attributes, "service.instance.id")
        })
        .collect();
    let reads = h
        .state()
        .property_reads
        .iter()
        .filter(|(_, p)| p.contains("node"))
        .map(|(_, p)| p.clone())
        .collect();
    (ids, reads)
}

#[test]
fn the_resource_names_the_envoy_node_read_once_per_vm() {
    each_guest(|guest| {
        // Envoy 1.40: the node is the `xds.node` attribute.
        let mut h = Host::on(guest);
        h.property("xds.node.id", NODE_ID);
        let (ids, reads) = instance_ids_and_node_reads(h);
        assert_eq!(ids, vec![Some(Any::StringValue(NODE_ID.into())); 3]);
        assert_eq!(reads, ["xds.node.id"], "read once, at the first configure");

        // Older Envoys answered a top-level `node`.
        let mut h = Host::on(guest);
        h.property("node.id", NODE_ID);
        let (ids, reads) = instance_ids_and_node_reads(h);
        assert_eq!(ids, vec![Some(Any::StringValue(NODE_ID.into())); 3]);
        assert_eq!(reads, ["xds.node.id", "node.id"]);

        // No node id at all: no attribute, never an empty one.
        let (ids, _) = instance_ids_and_node_reads(Host::on(guest));
        assert_eq!(ids, vec![None; 3]);
    });
}

#[test]
fn log_records_carry_the_client_certificate_and_user_agent_attributes() {
    each_guest(|guest| {
        let mut h = configured_on(guest, &otlp(""));
        run_n(&mut h, 3);
        h.tick();
        let e = export(&h.dispatched()[0]);
        let log = &e.resource_logs[0].scope_logs[0].log_records[0];
        let line = &bodies(&e)[0];
        let subject = line["source"]["subject"].as_str().unwrap();
        let digest = line["source"]["cert_sha256"].as_str().unwrap();
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
            Some(Any::StringValue(USER_AGENT.into()))
        );
    });
}
