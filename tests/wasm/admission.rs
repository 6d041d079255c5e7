//! Admission on both guests (SPEC §2.2, §2.5, §3): a full
//! buffer counts what it cannot admit and reports it in-band with a `loss`
//! record, fail-closed answers 503, sampling decides alike on every hop, and
//! policy violations are kept and counted.

use crate::host::fixtures::{configured_on, lines, orders_request, records, sha256_hex};
use crate::host::{each_guest, level, Host};
use mesh_audit::audit::sample::unit_interval;
use serde_json::json;

/// admitted = delivered + rejected + buffered (SPEC §2.6), on published metrics.
fn assert_conserved(h: &Host) {
    let m = |n: &str| h.metric(&format!("mesh_audit.{n}"));
    assert_eq!(
        m("records_admitted"),
        m("records_delivered") + m("records_rejected") + m("records_buffered"),
        "{:?}",
        h.metrics()
    );
}

#[test]
fn a_full_buffer_counts_records_not_admitted_and_reports_them_with_a_loss_record() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"audit_sink"},"batch":{"max_records":3,"max_buffered_records":3,"flush_interval_ms":60000}}"#,
        );
        for conn in 1..=4 {
            h.run(orders_request(conn));
        }
        h.tick();
        // Two records and the seal that ends their batch fill the buffer.
        assert_eq!(h.metric("mesh_audit.records_admitted"), 3);
        assert_eq!(h.metric("mesh_audit.records_not_admitted"), 2);
        let warns = h.logs_at_least(level::WARN);
        assert_eq!(
            warns,
            ["mesh-audit: buffer full, records are not admitted (counted, reported by a loss record)"],
            "logged once"
        );
        let first = h.dispatched()[0].clone();
        h.reply(first.token.unwrap(), 200, b"");

        h.run(orders_request(5));
        h.advance_and_tick(60_000);
        let batch = h.dispatched()[1].clone();
        let (l, r) = (lines(&batch), records(&batch));
        assert_eq!(
            r.len(),
            3,
            "the loss, the request, their seal: {}",
            batch.body_text()
        );
        // The lost records ended at request.time + request.duration.
        let end = "2026-11-21T14:03:05.124690Z";
        let emitter = r[0]["emitter"].clone();
        assert_eq!(
            r[0],
            json!({"kind": "loss", "ts": end, "emitter": emitter, "seq": 4,
                   "prev": sha256_hex(lines(&first)[2].as_bytes()),
                   "reason": "buffer_full", "count": 2, "since": end, "until": end})
        );
        assert_eq!(r[1]["kind"], "request");
        assert_eq!(r[1]["seq"], 5);
        assert_eq!(r[1]["prev"], json!(sha256_hex(l[0].as_bytes())));
        assert_eq!(r[2]["kind"], "seal");
        assert_eq!(
            h.metric("mesh_audit.records_admitted"),
            6,
            "the loss record and the seals are admitted too"
        );
        assert_conserved(&h);
    });
}

#[test]
fn fail_closed_answers_503_while_the_buffer_is_full() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"audit_sink"},"on_overflow":"reject",
                "batch":{"max_records":1,"max_buffered_records":1,"flush_interval_ms":60000}}"#,
        );
        let served = h.run(orders_request(1));
        assert_eq!(served.request_action, 0);
        assert!(served.local_reply.is_none());
        let refused = h.run(orders_request(1));
        assert_eq!(refused.request_action, 1, "the request stops at the filter");
        let reply = refused.local_reply.expect("a local reply");
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body, b"audit unavailable");
        assert_eq!(
            reply.headers,
            [("content-type".to_string(), b"text/plain".to_vec())]
        );
        h.tick();
        assert_eq!(h.metric("mesh_audit.requests_rejected"), 1);
        // The served request and the seal that ends its one-record batch.
        assert_eq!(h.metric("mesh_audit.records_admitted"), 2);

        // Once delivered, there is room again: requests are served.
        let token = h.dispatched()[0].token.unwrap();
        h.reply(token, 200, b"");
        assert!(h.run(orders_request(1)).local_reply.is_none());
    });
}

#[test]
fn a_batch_the_sink_rejects_is_dropped_and_named_by_a_loss_record() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"audit_sink"},"batch":{"max_records":3,"flush_interval_ms":60000}}"#,
        );
        // Two records and their seal make a full batch of 3.
        for conn in 1..=2 {
            h.run(orders_request(conn));
        }
        h.tick();
        let rejected = h.dispatched()[0].clone();
        h.reply(rejected.token.unwrap(), 400, b"malformed");
        h.tick();
        assert_eq!(h.metric("mesh_audit.records_rejected"), 3);
        assert_eq!(h.metric("mesh_audit.batch_failures"), 1);
        assert_eq!(
            h.metric("mesh_audit.records_buffered"),
            1,
            "the loss record"
        );
        assert_conserved(&h);
        let errors = h.logs_at_least(level::ERROR);
        assert_eq!(errors.len(), 1, "{}", h.log_dump());
        assert!(
            errors[0].contains("rejected records 1..3 with status 400"),
            "{errors:?}"
        );

        h.advance_and_tick(60_000);
        let r = records(&h.dispatched()[1]);
        let now = "2026-11-21T14:03:05.000000Z";
        assert_eq!(r.len(), 2, "the loss record and its seal");
        assert_eq!(
            r[0],
            json!({"kind": "loss", "ts": now, "emitter": r[0]["emitter"], "seq": 4,
                "prev": sha256_hex(lines(&rejected)[2].as_bytes()),
                "reason": "rejected", "count": 3, "from_seq": 1, "to_seq": 3,
                "since": now, "until": now})
        );
        assert_eq!(
            (r[1]["kind"].clone(), r[1]["from_seq"].clone()),
            (json!("seal"), json!(4))
        );
    });
}

#[test]
fn sampling_by_request_id_decides_alike_on_every_hop() {
    each_guest(|guest| {
        let config = r#"{"sink":{"cluster":"audit_sink"},"sampling":{"default_rate":0.5}}"#;
        let ids: Vec<String> = (0..40).map(|i| format!("req-{i:04}")).collect();
        let kept_by = |seed: u64| -> Vec<String> {
            let mut h = Host::on(guest);
            h.seed(seed);
            assert!(h.configure(config));
            for id in &ids {
                let mut req = orders_request(1);
                req.headers.retain(|(k, _)| k != "x-request-id");
                h.run(req.header("x-request-id", id));
            }
            h.advance_and_tick(1_000);
            let kept: Vec<String> = h
                .dispatched()
                .iter()
                .flat_map(records)
                .filter(|r| r["kind"] != "seal")
                .map(|r| {
                    assert_eq!(r["sample"], json!({"rate": 0.5}));
                    r["request_id"].as_str().unwrap().to_string()
                })
                .collect();
            assert_eq!(
                h.metric("mesh_audit.records_sampled_out") + kept.len() as i64,
                40
            );
            let seals = h
                .dispatched()
                .iter()
                .flat_map(records)
                .filter(|r| r["kind"] == "seal")
                .count();
            assert_eq!(
                h.metric("mesh_audit.records_admitted"),
                (kept.len() + seals) as i64,
                "the kept requests and the seals of their batches"
            );
            kept
        };
        let expected: Vec<String> = ids
            .iter()
            .filter(|id| unit_interval(id.as_bytes()) < 0.5)
            .cloned()
            .collect();
        assert!(!expected.is_empty() && expected.len() < ids.len());
        assert_eq!(kept_by(1), expected);
        assert_eq!(
            kept_by(0xdead_beef),
            expected,
            "another worker/hop, other randomness, same decision"
        );
    });
}

#[test]
fn rules_pick_the_rate_and_denied_requests_are_always_kept() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"audit_sink"},"sampling":{"default_rate":0.0,
                "rules":[{"name":"errors","when":{"status":["5xx"]},"rate":1.0}]}}"#,
        );
        h.run(orders_request(1));
        h.run(orders_request(1).status("503"));
        h.run(orders_request(1).status("403"));
        h.advance_and_tick(1_000);
        assert_eq!(h.metric("mesh_audit.records_sampled_out"), 1);
        let r = records(&h.dispatched()[0]);
        assert_eq!(r.len(), 3, "the two kept records and their seal");
        assert_eq!(r[2]["kind"], "seal");
        assert_eq!(
            (r[0]["response"]["code"].clone(), r[0]["sample"].clone()),
            (json!(503), json!({"rule": "errors", "rate": 1.0}))
        );
        assert_eq!(r[0]["decision"], "error");
        assert_eq!(
            (r[1]["response"]["code"].clone(), r[1]["sample"].clone()),
            (json!(403), json!({"rate": 0.0}))
        );
        assert_eq!(r[1]["decision"], "denied");
    });
}

#[test]
fn a_policy_violation_is_marked_counted_and_kept() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"audit_sink"},"sampling":{"default_rate":0.0},
                "access_policy":[{"name":"admin-only","path_prefix":"/admin",
                  "allow_principals":["spiffe://cluster.local/ns/ops/sa/console"]}]}"#,
        );
        let mut admin = orders_request(1);
        admin.headers.retain(|(k, _)| k != ":path");
        h.run(admin.header(":path", "/admin/users"));
        h.run(orders_request(1));
        h.advance_and_tick(1_000);
        assert_eq!(h.metric("mesh_audit.policy_violations"), 1);
        assert_eq!(h.metric("mesh_audit.records_sampled_out"), 1);
        let r = records(&h.dispatched()[0]);
        assert_eq!(r.len(), 2, "the kept record and its seal");
        assert_eq!(r[1]["kind"], "seal");
        assert_eq!(r[0]["violation"], "admin-only");
        assert_eq!(r[0]["request"]["path"], "/admin/users");
        assert_eq!(
            r[0]["source"]["principal"],
            "spiffe://cluster.local/ns/shop/sa/frontend"
        );
    });
}
