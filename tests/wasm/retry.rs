//! Retries and drains on both guests: what a failed batch costs in
//! counters and log lines, losses reported without more traffic, and a
//! drain that keeps its backoff against a failing sink.

use crate::host::fixtures::{configured_on, orders_request, records};
use crate::host::{each_guest, level, Host};

#[test]
fn failed_batches_are_retried_and_counted_until_acknowledged() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"s"},"retry":{"backoff_base_ms":200}}"#,
        );
        h.run(orders_request(1));
        h.unknown_cluster("s");
        h.advance_and_tick(1_000);
        assert!(h.dispatched().is_empty());
        let refusals = h.logs_at_least(level::TRACE);
        let refusals = refusals.iter().filter(|m| m.contains("cannot dispatch"));
        assert_eq!(refusals.count(), 1);
        h.known_cluster("s");
        // At most backoff_base_ms for the first retry, twice that for the next.
        h.advance_and_tick(200);
        h.reply(h.token(0), 503, b"");
        // The record and its seal.
        assert_eq!(h.metric("mesh_audit.records_buffered"), 2);
        h.advance_and_tick(400);
        let sent = h.dispatched();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].body, sent[0].body, "a retry resends the same bytes");
        h.reply(h.token(1), 200, b"");
        h.tick();
        assert_eq!(h.metric("mesh_audit.records_admitted"), 2);
        assert_eq!(h.metric("mesh_audit.records_delivered"), 2);
        assert_eq!(h.metric("mesh_audit.records_buffered"), 0);
        assert_eq!(h.metric("mesh_audit.batch_failures"), 2);
        assert_eq!(h.metric("mesh_audit.batch_retries"), 2);
        let debug: Vec<String> = h
            .logs()
            .into_iter()
            .filter(|l| l.level == level::DEBUG)
            .map(|l| l.message)
            .collect();
        assert_eq!(debug.len(), 2, "one debug line per batch sent: {debug:?}");
        assert!(
            debug[1].starts_with(
                "mesh-audit: sent records 1-2 to s (attempt 3); admitted=2 delivered=0 \
                 rejected=0 buffered=2 in_flight=1"
            ),
            "{}",
            debug[1]
        );
    });
}

#[test]
fn a_loss_is_reported_on_tick_even_without_more_traffic() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"s"},"batch":{"max_records":3,"max_buffered_records":3,"flush_interval_ms":60000}}"#,
        );
        // Two records and their seal fill the buffer; the third is not admitted.
        for conn in 1..=3 {
            h.run(orders_request(conn));
        }
        h.tick();
        h.reply(h.token(0), 200, b"");
        h.advance_and_tick(60_000);
        let loss = &records(&h.dispatched()[1])[0];
        assert_eq!(
            (
                loss["kind"].as_str(),
                loss["reason"].as_str(),
                loss["count"].as_u64()
            ),
            (Some("loss"), Some("buffer_full"), Some(1))
        );
    });
}

#[test]
fn a_drain_against_a_failing_sink_keeps_its_backoff() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"s","timeout_ms":2000},"retry":{"backoff_base_ms":400}}"#,
        );
        h.run(orders_request(1));
        assert!(!h.shutdown());
        h.reply(h.token(0), 503, b"");
        assert_eq!(
            h.dispatched().len(),
            1,
            "no immediate resend after a failure while draining"
        );
        h.advance_and_tick(400);
        assert_eq!(h.dispatched().len(), 2, "resent once its backoff passed");
        h.advance_and_tick(1_600);
        assert!(h.done_called(), "{}", h.log_dump());
    });
}

/// Native only: the proxy-wasm SDK refuses a token it never dispatched
/// (it traps) before the filter could see it; the core guards anyway.
#[test]
fn the_core_ignores_a_reply_token_it_never_dispatched() {
    let mut h = Host::native();
    assert!(h.configure(r#"{"sink":{"cluster":"s"}}"#));
    h.stray_reply(99, 200);
    h.tick();
    assert_eq!(h.metric("mesh_audit.records_delivered"), 0);
}
