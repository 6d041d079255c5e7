//! A configuration problem never breaks traffic (SPEC §2.7), through the
//! compiled filter: an invalid configuration leaves it inert (or 503 with
//! `MESH_AUDIT_FAIL_CLOSED`), a missing key degrades it safely and loudly,
//! `MESH_AUDIT_STRICT_CONFIG` restores fail-fast, and a later configuration
//! takes over cleanly while an invalid one never replaces a valid one.

use crate::host::fixtures::{config_digest, orders_request, records};
use crate::host::{each_guest, level, Guest, Host};

const INVALID: &str = r#"{"sink":{"cluster":"audit_sink"},"batch":{"max_records":0}}"#;
const INVALID_LINE: &str =
    "mesh-audit: invalid configuration: batch.max_records: must be greater than 0";
const VALID: &str = r#"{"sink":{"cluster":"audit_sink"},"batch":{"flush_interval_ms":1000}}"#;
const HASHING: &str = r#"{"sink":{"cluster":"audit_sink"},"capture":{"request_headers":["x-user"]},"redact":{"headers":{"x-user":"hash"},"hash_key_env":"MESH_AUDIT_HASH_KEY"},"integrity":{"key_env":"MESH_AUDIT_CHAIN_KEY"}}"#;

fn host_with(guest: Guest, env: &[(&str, &str)]) -> Host {
    let mut h = Host::on(guest);
    for (k, v) in env {
        h.env(k, v);
    }
    h
}

fn errors(h: &Host) -> Vec<String> {
    h.logs()
        .into_iter()
        .filter(|l| l.level >= level::ERROR)
        .map(|l| l.message)
        .collect()
}

#[test]
fn an_invalid_configuration_leaves_the_filter_inert_and_says_so_every_minute() {
    each_guest(|guest| {
        let mut h = Host::on(guest);
        assert!(h.configure(INVALID), "{}", h.log_dump());
        assert_eq!(errors(&h), [INVALID_LINE], "{}", h.log_dump());
        assert_eq!(
            h.logs().len(),
            1,
            "one line, nothing else: {}",
            h.log_dump()
        );
        assert_eq!(h.metric("mesh_audit.config_invalid"), 1);
        assert_eq!(h.metric("mesh_audit.degraded"), 0);
        for conn in 1..=3 {
            let out = h.run(orders_request(conn));
            assert_eq!(
                (out.request_action, out.response_action, out.local_reply),
                (0, 0, None),
                "the request passes untouched"
            );
        }
        h.elapse_ms(59_000);
        assert_eq!(h.metric("mesh_audit.requests_unaudited"), 3);
        assert_eq!(h.metric("mesh_audit.records_admitted"), 0);
        assert!(h.dispatched().is_empty());
        assert_eq!(errors(&h).len(), 1, "not yet repeated: {}", h.log_dump());
        h.elapse_ms(1_000);
        assert_eq!(errors(&h), [INVALID_LINE, INVALID_LINE]);
        h.elapse_ms(60_000);
        assert_eq!(errors(&h).len(), 3);
    });
}

#[test]
fn fail_closed_makes_an_inert_filter_answer_503() {
    each_guest(|guest| {
        let mut h = host_with(guest, &[("MESH_AUDIT_FAIL_CLOSED", "1")]);
        assert!(h.configure("{not json"));
        assert_eq!(
            errors(&h),
            ["mesh-audit: invalid configuration: $: not valid JSON: key must be a string at line 1 column 2"]
        );
        let out = h.run(orders_request(1));
        let reply = out.local_reply.expect("a local reply");
        assert_eq!(
            (reply.status, reply.body.as_slice()),
            (503, &b"audit unavailable"[..])
        );
        h.elapse_ms(1_000);
        assert_eq!(h.metric("mesh_audit.requests_rejected"), 1);
        assert_eq!(h.metric("mesh_audit.requests_unaudited"), 0);
    });
}

#[test]
fn strict_mode_refuses_invalid_and_degraded_configurations_with_the_v1_line() {
    each_guest(|guest| {
        let mut h = host_with(guest, &[("MESH_AUDIT_STRICT_CONFIG", "1")]);
        assert!(!h.configure(INVALID));
        assert_eq!(errors(&h), [INVALID_LINE]);

        let mut h = host_with(
            guest,
            &[
                ("MESH_AUDIT_STRICT_CONFIG", "1"),
                ("MESH_AUDIT_CHAIN_KEY", "c"),
            ],
        );
        assert!(!h.configure(HASHING));
        assert_eq!(
            errors(&h),
            ["mesh-audit: invalid configuration: redact.hash_key_env: environment variable MESH_AUDIT_HASH_KEY is not set (pass it in vm_config.environment_variables)"]
        );
    });
}

#[test]
fn a_missing_hash_key_masks_instead_and_every_record_says_so() {
    each_guest(|guest| {
        let mut h = host_with(guest, &[("MESH_AUDIT_CHAIN_KEY", "chain")]);
        assert!(h.configure(HASHING), "{}", h.log_dump());
        let line = "mesh-audit: degraded configuration: redact.hash_key_env: environment variable MESH_AUDIT_HASH_KEY is not set (pass it in vm_config.environment_variables); hash becomes mask (hash_key_missing)";
        assert_eq!(errors(&h), [line]);
        h.run(orders_request(1).header("x-user", "alice"));
        h.elapse_ms(1_000);
        assert_eq!(h.metric("mesh_audit.degraded"), 1);
        assert_eq!(h.metric("mesh_audit.config_invalid"), 0);
        let r = records(&h.dispatched()[0]);
        assert_eq!(r[0]["request"]["headers"]["x-user"], "[REDACTED]");
        assert_eq!(r[0]["degraded"], serde_json::json!(["hash_key_missing"]));
        assert!(
            r[0]["redacted"]
                .as_array()
                .unwrap()
                .contains(&"request.headers.x-user".into()),
            "{}",
            r[0]
        );
        // `degraded` sits right after `redacted` (field order is fixed).
        let text = h.dispatched()[0].body_text();
        assert!(
            text.contains(r#""request.query.token"],"degraded":["hash_key_missing"],"plugin""#),
            "{text}"
        );
        h.elapse_ms(59_000);
        assert_eq!(errors(&h), [line, line]);
    });
}

#[test]
fn a_missing_chain_key_leaves_a_plain_chain_and_marks_loss_records_too() {
    each_guest(|guest| {
        let config = r#"{"sink":{"cluster":"audit_sink"},"batch":{"max_records":1,"max_buffered_records":1,"flush_interval_ms":60000},"integrity":{"key_env":"MESH_AUDIT_CHAIN_KEY"}}"#;
        let mut h = Host::on(guest);
        assert!(h.configure(config));
        assert_eq!(
            errors(&h),
            ["mesh-audit: degraded configuration: integrity.key_env: environment variable MESH_AUDIT_CHAIN_KEY is not set (pass it in vm_config.environment_variables); the chain is unkeyed (plain SHA-256) (chain_key_missing)"]
        );
        for conn in 1..=2 {
            h.run(orders_request(conn));
        }
        h.tick();
        let first = h.dispatched()[0].clone();
        h.reply(first.token.unwrap(), 200, b"");
        h.tick();
        let r = records(&first);
        assert_eq!(r[0]["prev"], "0".repeat(64), "unkeyed genesis");
        assert_eq!(r[0]["degraded"], serde_json::json!(["chain_key_missing"]));
        let loss = records(&h.dispatched()[1]);
        assert_eq!(loss[0]["kind"], "loss");
        assert_eq!(
            loss[0]["degraded"],
            serde_json::json!(["chain_key_missing"])
        );
    });
}

#[test]
fn a_hash_key_missing_affects_request_records_only() {
    each_guest(|guest| {
        let config = r#"{"sink":{"cluster":"audit_sink"},"batch":{"max_records":1,"max_buffered_records":1,"flush_interval_ms":60000},"redact":{"hash_key_env":"MESH_AUDIT_HASH_KEY"}}"#;
        let mut h = Host::on(guest);
        assert!(h.configure(config));
        for conn in 1..=2 {
            h.run(orders_request(conn));
        }
        h.tick();
        let first = h.dispatched()[0].clone();
        h.reply(first.token.unwrap(), 200, b"");
        h.tick();
        assert_eq!(
            records(&first)[0]["degraded"],
            serde_json::json!(["hash_key_missing"])
        );
        let loss = records(&h.dispatched()[1]);
        assert_eq!(loss[0]["kind"], "loss");
        assert!(loss[0].get("degraded").is_none(), "{}", loss[0]);
    });
}

#[test]
fn a_valid_configuration_takes_over_from_an_invalid_one() {
    each_guest(|guest| {
        let mut h = Host::on(guest);
        assert!(h.configure(INVALID));
        h.run(orders_request(1));
        assert!(h.configure(VALID), "{}", h.log_dump());
        h.run(orders_request(2));
        h.elapse_ms(1_000);
        assert_eq!(h.metric("mesh_audit.config_invalid"), 0);
        assert_eq!(h.metric("mesh_audit.requests_unaudited"), 1);
        assert_eq!(
            h.metric("mesh_audit.records_admitted"),
            1 + 1,
            "the audited request and its seal"
        );
        let r = records(&h.dispatched()[0]);
        assert_eq!((r.len(), &r[1]["kind"]), (2, &serde_json::json!("seal")));
        assert_eq!(r[0]["kind"], "request");
        assert_eq!(r[0]["plugin"]["config"], config_digest(VALID));
        assert_eq!(r[0]["seq"], 1);
        h.elapse_ms(60_000);
        assert_eq!(errors(&h), [INVALID_LINE], "no reminder once fixed");
    });
}

#[test]
fn an_invalid_update_keeps_the_valid_configuration_running() {
    each_guest(|guest| {
        let mut h = Host::on(guest);
        assert!(h.configure(VALID));
        h.run(orders_request(1));
        assert!(h.configure(INVALID));
        let warns = h.logs_at_least(level::WARN);
        assert_eq!(
            warns,
            [
                INVALID_LINE.to_string(),
                format!(
                    "mesh-audit: the last valid configuration (config {}) stays in force",
                    config_digest(VALID)
                )
            ]
        );
        h.run(orders_request(2));
        h.elapse_ms(1_000);
        assert_eq!(h.metric("mesh_audit.config_invalid"), 1);
        assert_eq!(h.metric("mesh_audit.requests_unaudited"), 0);
        let r = records(&h.dispatched()[0]);
        let kinds: Vec<&str> = r.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["request", "request", "seal"],
            "both requests audited, then their seal"
        );
        assert_eq!(r[1]["plugin"]["config"], config_digest(VALID));
        assert_eq!(r[1]["seq"], 2, "the same chain goes on");
        h.elapse_ms(60_000);
        assert_eq!(errors(&h), [INVALID_LINE, INVALID_LINE]);
    });
}

#[test]
fn a_new_vm_falls_back_to_the_last_valid_configuration_an_earlier_vm_left() {
    each_guest(|guest| {
        // Under Istio every ECDS update brings new VMs; Envoy's shared data
        // outlives them.
        let mut first = Host::on(guest);
        assert!(first.configure(VALID));
        let shared = first.state().shared_data.clone();
        assert_eq!(shared.len(), 1, "{shared:?}");

        let mut next = Host::on(guest);
        next.shared_data(&shared);
        assert!(next.configure(INVALID));
        let kept = format!(
            "mesh-audit: the last valid configuration (config {}) stays in force",
            config_digest(VALID)
        );
        assert!(
            next.logs().iter().any(|l| l.message == kept),
            "{}",
            next.log_dump()
        );
        next.run(orders_request(1));
        next.elapse_ms(1_000);
        assert_eq!(next.metric("mesh_audit.config_invalid"), 1);
        assert_eq!(
            next.metric("mesh_audit.records_admitted"),
            1 + 1,
            "the audited request and its seal"
        );
        let r = records(&next.dispatched()[0]);
        assert_eq!(
            (&r[0]["kind"], &r[1]["kind"]),
            (&"request".into(), &"seal".into())
        );
        assert_eq!(r[0]["plugin"]["config"], config_digest(VALID));

        // Without it, the same update leaves the filter inert.
        let mut fresh = Host::on(guest);
        assert!(fresh.configure(INVALID));
        fresh.run(orders_request(1));
        fresh.elapse_ms(1_000);
        assert_eq!(fresh.metric("mesh_audit.requests_unaudited"), 1);
    });
}
