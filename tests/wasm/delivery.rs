//! Delivery on both guests (SPEC §2): batches leave on size or
//! interval from the root context, failed ones stay buffered and are sent
//! again, acknowledged ones are counted, and shutdown drains before done.

use crate::host::fixtures::{configured_on, lines, orders_request, records};
use crate::host::{each_guest, level, status, Answer, Host};
use serde_json::json;

/// A batch holds `max_records` records, its seal included: 3 requests fill one.
const SINK: &str = r#"{"sink":{"cluster":"audit_sink","authority":"audit.example","path":"/ingest",
  "timeout_ms":2500,"headers":{"x-audit-tenant":"shop"}},
  "batch":{"max_records":4,"flush_interval_ms":60000},"retry":{"backoff_base_ms":200,"backoff_max_ms":1000}}"#;

fn run_n(h: &mut Host, n: u64) {
    for i in 0..n {
        h.run(orders_request(100 + i));
    }
}

#[test]
fn a_full_batch_leaves_at_the_next_tick_without_waiting_for_the_interval() {
    each_guest(|guest| {
        let mut h = configured_on(guest, SINK);
        run_n(&mut h, 2);
        h.tick();
        assert!(
            h.dispatch_attempts().is_empty(),
            "2 + the seal < max_records and the interval has not passed"
        );
        run_n(&mut h, 1);
        h.tick();
        let sent = h.dispatched();
        assert_eq!(sent.len(), 1);
        let seqs: Vec<u64> = records(&sent[0])
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4], "three requests and their seal");
        // Ticks come at min(flush_interval_ms, 100); what is left over waits
        // for the interval.
        assert_eq!(h.tick_period_ms(), Some(100));
        h.reply(h.token(0), 200, b"");
        run_n(&mut h, 1);
        h.advance_and_tick(60_000);
        let sent = h.dispatched();
        assert_eq!(sent.len(), 2, "{}", h.log_dump());
        assert_eq!(records(&sent[1])[0]["seq"], 5, "after the first seal");
    });
}

#[test]
fn a_partial_batch_leaves_when_the_flush_interval_has_passed() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"audit_sink"},"batch":{"flush_interval_ms":1000}}"#,
        );
        run_n(&mut h, 1);
        h.advance_and_tick(999);
        assert!(
            h.dispatch_attempts().is_empty(),
            "999 ms < flush_interval_ms"
        );
        h.advance_and_tick(1);
        assert_eq!(h.dispatched().len(), 1);
        let r = records(&h.dispatched()[0]);
        assert_eq!(r.len(), 2, "the record and its seal");
        assert_eq!(r[1]["kind"], "seal");
    });
}

#[test]
fn a_batch_is_posted_to_the_sink_with_the_configured_headers_and_timeout() {
    each_guest(|guest| {
        let mut h = configured_on(guest, SINK);
        run_n(&mut h, 3);
        h.tick();
        let d = &h.dispatched()[0];
        assert_eq!(d.cluster, "audit_sink");
        assert_eq!(d.header(":method").as_deref(), Some("POST"));
        assert_eq!(d.header(":path").as_deref(), Some("/ingest"));
        assert_eq!(d.header(":authority").as_deref(), Some("audit.example"));
        assert_eq!(
            d.header("content-type").as_deref(),
            Some("application/x-ndjson")
        );
        assert_eq!(d.header("x-audit-tenant").as_deref(), Some("shop"));
        let emitter = records(d)[0]["emitter"].as_str().unwrap().to_string();
        assert_eq!(d.header("x-mesh-audit-emitter"), Some(emitter));
        assert_eq!(d.header("x-mesh-audit-seq").as_deref(), Some("1-4"));
        assert_eq!(d.timeout_ms, 2500);
        assert!(d.trailers.is_empty());
        assert_eq!(lines(d).len(), 4);
    });
}

#[test]
fn an_acknowledged_batch_is_counted_delivered_and_leaves_the_buffer() {
    each_guest(|guest| {
        let mut h = configured_on(guest, SINK);
        run_n(&mut h, 3);
        h.tick();
        // Three requests and their seal.
        assert_eq!(h.metric("mesh_audit.records_buffered"), 4);
        h.reply(h.token(0), 200, b"");
        h.tick();
        assert_eq!(h.metric("mesh_audit.records_admitted"), 4);
        assert_eq!(h.metric("mesh_audit.records_delivered"), 4);
        assert_eq!(h.metric("mesh_audit.records_buffered"), 0);
        assert_eq!(h.metric("mesh_audit.batches_sent"), 1);
        assert_eq!(h.metric("mesh_audit.batch_failures"), 0);
        assert!(h.logs_at_least(level::WARN).is_empty(), "{}", h.log_dump());
    });
}

#[test]
fn a_refused_dispatch_keeps_the_records_and_sends_them_later() {
    each_guest(|guest| {
        let mut h = configured_on(guest, SINK);
        h.unknown_cluster("audit_sink");
        run_n(&mut h, 3);
        h.tick();
        let attempts = h.dispatch_attempts();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status, status::BAD_ARGUMENT);
        let body = attempts[0].body.clone();
        let errors = h.logs_at_least(level::ERROR);
        assert_eq!(errors.len(), 1, "{}", h.log_dump());
        assert!(
            errors[0].starts_with("mesh-audit: cannot dispatch to cluster audit_sink (BadArgument"),
            "{errors:?}"
        );
        assert_eq!(h.metric("mesh_audit.batch_failures"), 1);
        assert_eq!(h.metric("mesh_audit.records_buffered"), 4);

        // The cluster appears; once the backoff (at most backoff_base_ms) passes, the same batch goes.
        h.known_cluster("audit_sink");
        h.advance_and_tick(200);
        let sent = h.dispatched();
        assert_eq!(sent.len(), 1, "{}", h.log_dump());
        assert_eq!(sent[0].body, body, "the same records, same bytes");
        h.reply(h.token(0), 200, b"");
        h.tick();
        assert_eq!(h.metric("mesh_audit.records_delivered"), 4);
        assert_eq!(h.metric("mesh_audit.records_buffered"), 0);
        assert_eq!(h.metric("mesh_audit.batch_retries"), 1);
    });
}

#[test]
fn a_503_reply_keeps_the_records_and_they_are_resent_in_order() {
    each_guest(|guest| {
        let mut h = configured_on(guest, SINK);
        run_n(&mut h, 3);
        h.tick();
        let first = h.dispatched()[0].clone();
        h.reply(first.token.unwrap(), 503, b"overloaded");
        run_n(&mut h, 3);
        h.tick();
        assert_eq!(
            h.dispatched().len(),
            1,
            "nothing newer leaves while the failed batch waits"
        );
        // Two batches of three requests and their seal.
        assert_eq!(h.metric("mesh_audit.records_buffered"), 8);
        assert_eq!(h.metric("mesh_audit.batch_failures"), 1);
        let warns = h.logs_at_least(level::WARN);
        assert_eq!(warns.len(), 1, "{}", h.log_dump());
        assert!(
            warns[0].contains("failed a batch of 4 records (status 503)"),
            "{warns:?}"
        );

        h.advance_and_tick(200);
        let sent = h.dispatched();
        assert!(sent.len() >= 2, "{}", h.log_dump());
        assert_eq!(
            sent[1].body, first.body,
            "the failed batch again, same bytes, first"
        );
        for d in &sent[1..] {
            h.reply(d.token.unwrap(), 200, b"");
        }
        h.tick();
        for d in h.pending() {
            h.reply(d.token.unwrap(), 200, b"");
        }
        h.tick();
        let seqs: Vec<u64> = h.dispatched()[1..]
            .iter()
            .flat_map(records)
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(h.metric("mesh_audit.records_delivered"), 8);
        assert_eq!(h.metric("mesh_audit.records_buffered"), 0);
    });
}

#[test]
fn shutdown_with_buffered_records_flushes_and_reports_done_after_the_ack() {
    each_guest(|guest| {
        let mut h = configured_on(guest, SINK);
        run_n(&mut h, 2);
        assert!(!h.shutdown(), "records are held: done must wait");
        let sent = h.dispatched();
        assert_eq!(sent.len(), 1, "shutdown flushes the partial batch at once");
        let kinds: Vec<serde_json::Value> = records(&sent[0])
            .iter()
            .map(|r| r["kind"].clone())
            .collect();
        assert_eq!(
            kinds,
            ["request", "request", "close", "seal"],
            "ended by the close record, sealed"
        );
        h.tick();
        assert!(!h.done_called(), "no done before the sink answers");
        h.reply(h.token(0), 200, b"");
        assert!(
            h.done_called(),
            "done once the flush is acknowledged\n{}",
            h.log_dump()
        );
        assert_eq!(h.state().done_calls, 1);
        assert_eq!(h.metric("mesh_audit.records_delivered"), 4);
        assert_eq!(h.metric("mesh_audit.records_buffered"), 0);
    });
}

#[test]
fn shutdown_reports_done_once_sink_timeout_ms_passes_without_a_reply() {
    each_guest(|guest| {
        let mut h = configured_on(guest, SINK);
        run_n(&mut h, 2);
        assert!(!h.shutdown());
        h.advance_and_tick(2_499);
        assert!(!h.done_called(), "2499 ms < sink.timeout_ms");
        h.advance_and_tick(1);
        assert!(h.done_called(), "{}", h.log_dump());
        assert_eq!(h.state().done_calls, 1);
        let warns = h.logs_at_least(level::WARN);
        assert!(
            warns
                .iter()
                .any(|w| w == "mesh-audit: shutdown: sink.timeout_ms passed; 4 records undelivered"),
            "{}",
            h.log_dump()
        );
        h.elapse_ms(1_000);
        assert_eq!(h.state().done_calls, 1, "done is reported once");
        assert!(h
            .dispatched()
            .iter()
            .all(|d| d.answer != Answer::Status(200)));
    });
}

#[test]
fn a_reply_after_the_drain_deadline_does_not_report_done_again() {
    each_guest(|guest| {
        let mut h = configured_on(guest, SINK);
        run_n(&mut h, 2);
        assert!(!h.shutdown());
        h.reply(h.token(0), 503, b"");
        // The retry goes out once its backoff passed, well before the
        // deadline, and is still unanswered when the deadline comes.
        h.advance_and_tick(1_000);
        let retry = h.dispatched().len() - 1;
        assert!(retry >= 1, "{}", h.log_dump());
        h.advance_and_tick(1_500);
        assert_eq!(h.state().done_calls, 1, "{}", h.log_dump());
        h.reply(h.token(retry), 200, b"");
        assert_eq!(
            h.state().done_calls,
            1,
            "done is reported once, however late the sink answers\n{}",
            h.log_dump()
        );
        assert_eq!(h.metric("mesh_audit.records_delivered"), 4);
    });
}

#[test]
fn shutdown_with_nothing_buffered_is_immediate() {
    each_guest(|guest| {
        let mut h = configured_on(guest, SINK);
        assert!(
            h.shutdown(),
            "an emitter without records has nothing to close"
        );
        assert!(h.dispatch_attempts().is_empty());
    });
}

#[test]
fn shutdown_after_everything_was_delivered_still_delivers_the_close_record() {
    each_guest(|guest| {
        let mut h = configured_on(guest, SINK);
        run_n(&mut h, 3);
        h.tick();
        h.reply(h.token(0), 200, b"");
        assert!(!h.shutdown(), "the close record must be acknowledged first");
        let sent = h.dispatched();
        assert_eq!(sent.len(), 2);
        let r = records(&sent[1]);
        assert_eq!(
            (r[0]["kind"].clone(), r[0]["reason"].clone()),
            (json!("close"), json!("shutdown"))
        );
        assert_eq!(
            (r[1]["kind"].clone(), r[1]["seq"].clone()),
            (json!("seal"), json!(6))
        );
        h.reply(h.token(1), 200, b"");
        assert!(h.done_called(), "{}", h.log_dump());
    });
}

#[test]
fn an_otlp_sink_gets_a_protobuf_export_request_whose_bodies_are_the_records() {
    each_guest(|guest| {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        use prost::Message;

        let mut h = configured_on(guest, r#"{"sink":{"cluster":"otel","format":"otlp"}}"#);
        run_n(&mut h, 2);
        h.advance_and_tick(1_000);
        let d = &h.dispatched()[0];
        assert_eq!(d.header(":path").as_deref(), Some("/v1/logs"));
        assert_eq!(d.header(":authority").as_deref(), Some("otel"));
        assert_eq!(
            d.header("content-type").as_deref(),
            Some("application/x-protobuf")
        );
        let export = ExportLogsServiceRequest::decode(d.body.as_slice()).unwrap();
        assert_eq!(export.resource_logs.len(), 1);
        let logs = &export.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(logs.len(), 3, "two records and their seal");
        for (i, log) in logs.iter().take(2).enumerate() {
            let Some(Value::StringValue(body)) = log.body.as_ref().and_then(|b| b.value.clone())
            else {
                panic!("log {i} has no string body: {log:?}");
            };
            let record: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(record["seq"], i as u64 + 1);
            assert_eq!(record["kind"], "request");
            assert_eq!(log.trace_id.len(), 16, "from the traceparent");
        }
        assert!(logs[2].trace_id.is_empty(), "a seal belongs to no trace");
        h.reply(h.token(0), 200, b"");
        h.tick();
        assert_eq!(h.metric("mesh_audit.records_delivered"), 3);
    });
}

#[test]
fn shutdown_waits_for_every_batch_in_flight_and_pending() {
    each_guest(|guest| {
        let mut h = configured_on(guest, SINK);
        run_n(&mut h, 3);
        h.tick();
        run_n(&mut h, 2);
        assert!(!h.shutdown());
        assert_eq!(
            h.dispatched().len(),
            2,
            "the pending records leave at once, with the close record"
        );
        h.reply(h.token(0), 200, b"");
        assert!(!h.done_called(), "one batch is still in flight");
        h.reply(h.token(1), 200, b"");
        assert!(h.done_called(), "{}", h.log_dump());
        // 3 requests + seal, then 2 requests + close + seal.
        assert_eq!(h.metric("mesh_audit.records_delivered"), 8);
        assert_eq!(h.metric("mesh_audit.records_buffered"), 0);
    });
}
