//! Configuration on both guests: `proxy_on_configure` accepts good
//! configurations and, in strict mode (`MESH_AUDIT_STRICT_CONFIG=1`), refuses
//! bad ones with exactly one log line
//! `mesh-audit: invalid configuration: <path>: <what>` (SPEC §3, §2.7; the
//! default inert and degraded modes are in config_modes.rs).

use crate::host::fixtures::{config_digest, is_hex};
use crate::host::{each_guest, level, Guest, Host};

const STRICT: &str = "MESH_AUDIT_STRICT_CONFIG";

const METRICS: [&str; 11] = [
    "mesh_audit.records_admitted",
    "mesh_audit.records_sampled_out",
    "mesh_audit.records_not_admitted",
    "mesh_audit.records_delivered",
    "mesh_audit.records_rejected",
    "mesh_audit.batches_sent",
    "mesh_audit.batch_failures",
    "mesh_audit.batch_retries",
    "mesh_audit.requests_rejected",
    "mesh_audit.policy_violations",
    "mesh_audit.records_buffered",
];

/// Configures a fresh host in strict mode; returns the result and the lines logged by
/// `proxy_on_configure` itself.
fn configure(guest: Guest, config: &str, env: &[(&str, &str)]) -> (bool, Vec<(u32, String)>) {
    let mut h = Host::on(guest);
    h.env(STRICT, "1");
    for (k, v) in env {
        h.env(k, v);
    }
    assert!(h.start());
    let before = h.logs().len();
    let ok = h.configure(config);
    let logged = h.logs()[before..]
        .iter()
        .map(|l| (l.level, l.message.clone()))
        .collect();
    (ok, logged)
}

#[test]
fn the_minimal_config_configures_and_says_so_once() {
    each_guest(|guest| {
        let config = r#"{"sink":{"cluster":"audit_sink"}}"#;
        let mut h = Host::on(guest);
        assert!(h.configure(config), "{}", h.log_dump());
        let logs = h.logs();
        assert_eq!(logs.len(), 1, "{}", h.log_dump());
        assert_eq!(logs[0].level, level::INFO);
        let prefix = "mesh-audit 0.1.0 configured: emitter ";
        let rest = logs[0]
            .message
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{}", logs[0].message));
        let (emitter, rest) = rest.split_once(", ").unwrap();
        assert!(is_hex(emitter, 32), "emitter {emitter}");
        assert_eq!(
            rest,
            format!(
                "sink audit_sink audit_sink/v1/audit, config {}",
                config_digest(config)
            )
        );
        // The tick drives flushes: min(flush_interval_ms, 100).
        assert_eq!(h.tick_period_ms(), Some(100));
        for m in METRICS {
            assert_eq!(h.metric(m), 0, "{m}");
        }
    });
}

#[test]
fn the_full_spec_example_configures_with_its_keys_in_the_environment() {
    each_guest(|guest| {
        let config = include_str!("../../examples/configs/full.json");
        let env = [
            ("MESH_AUDIT_HASH_KEY", "hash-key"),
            ("MESH_AUDIT_CHAIN_KEY", "chain-key"),
        ];
        let (ok, logs) = configure(guest, config, &env);
        assert!(ok, "{logs:?}");
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(
            logs[0].1.contains("sink audit_sink audit-sink/v1/audit"),
            "{logs:?}"
        );
    });
}

#[test]
fn otlp_and_a_short_flush_interval_configure() {
    each_guest(|guest| {
        let config =
            r#"{"sink":{"cluster":"otel","format":"otlp"},"batch":{"flush_interval_ms":40}}"#;
        let mut h = Host::on(guest);
        assert!(h.configure(config), "{}", h.log_dump());
        assert!(
            h.logs()[0].message.contains("sink otel otel/v1/logs"),
            "{}",
            h.log_dump()
        );
        assert_eq!(h.tick_period_ms(), Some(40));
    });
}

#[test]
fn a_hash_key_is_read_from_the_vm_environment() {
    each_guest(|guest| {
        let config = r#"{"sink":{"cluster":"s"},"redact":{"headers":{"x-user":"hash"},"hash_key_env":"MESH_AUDIT_HASH_KEY"}}"#;
        let (ok, logs) = configure(guest, config, &[("MESH_AUDIT_HASH_KEY", "k")]);
        assert!(ok, "{logs:?}");
        let (ok, logs) = configure(guest, config, &[("OTHER", "k")]);
        assert!(!ok);
        assert_eq!(
            logs,
            vec![(
                level::ERROR,
                "mesh-audit: invalid configuration: redact.hash_key_env: environment variable \
                 MESH_AUDIT_HASH_KEY is not set (pass it in vm_config.environment_variables)"
                    .to_string()
            )]
        );
    });
}

#[test]
fn bad_configs_are_refused_with_exactly_one_line_naming_path_and_problem() {
    each_guest(|guest| {
        let table: &[(&str, &str)] = &[
            ("{}", "sink: is required"),
            ("", "$: not valid JSON: EOF while parsing a value at line 1 column 0"),
            ("not json", "$: not valid JSON: expected ident at line 1 column 2"),
            ("[]", "$: expected an object, got a list"),
            (
                r#"{"sink":{"cluster":"s"},"extra":true}"#,
                "extra: unknown field `extra`, expected one of `sink`, `batch`, `retry`, `on_overflow`, \
                 `capture`, `redact`, `sampling`, `integrity`, `access_policy`",
            ),
            (
                r#"{"sink":{"cluster":"s","bogus":1}}"#,
                "sink.bogus: unknown field `bogus`, expected one of `cluster`, `authority`, `path`, \
                 `format`, `timeout_ms`, `headers`, `compression`, `token_env`",
            ),
            (r#"{"sink":{"cluster":""}}"#, "sink.cluster: must not be empty"),
            (
                r#"{"sink":{"cluster":"s","timeout_ms":"5"}}"#,
                "sink.timeout_ms: expected a whole number >= 0, got string \"5\"",
            ),
            (
                r#"{"sink":{"cluster":"s","format":"xml"}}"#,
                "sink.format: unknown format \"xml\", expected jsonl or otlp",
            ),
            (
                r#"{"sink":{"cluster":"s"},"batch":{"max_records":0}}"#,
                "batch.max_records: must be greater than 0",
            ),
            (
                r#"{"sink":{"cluster":"s"},"sampling":{"default_rate":1.5}}"#,
                "sampling.default_rate: must be between 0 and 1, got 1.5",
            ),
            (
                r#"{"sink":{"cluster":"s"},"redact":{"headers":{"x":"shred"}}}"#,
                "redact.headers.x: unknown action \"shred\", expected one of mask, drop, hash, keep",
            ),
            (
                r#"{"sink":{"cluster":"s"},"access_policy":[{"name":"a","path_prefix":"admin","allow_principals":[]}]}"#,
                "access_policy[0].path_prefix: must start with /",
            ),
        ];
        let mut failures = Vec::new();
        for (config, want) in table {
            let (ok, logs) = configure(guest, config, &[]);
            let want = format!("mesh-audit: invalid configuration: {want}");
            if ok || logs != vec![(level::ERROR, want.clone())] {
                failures.push(format!(
                    "config {config:?}\n  configured: {ok}\n  logged: {logs:?}\n  want:   {want}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    });
}

#[test]
fn non_utf8_configuration_bytes_are_refused_not_trapped() {
    each_guest(|guest| {
        let mut h = Host::on(guest);
        h.env(STRICT, "1");
        assert!(!h.configure_bytes(&[0xff, 0xfe, b'{']));
        let errors = h.logs_at_least(level::WARN);
        assert_eq!(errors.len(), 1, "{}", h.log_dump());
        assert!(
            errors[0].starts_with("mesh-audit: invalid configuration: $: "),
            "{errors:?}"
        );
    });
}

#[test]
fn a_refused_configuration_audits_nothing() {
    each_guest(|guest| {
        let mut h = Host::on(guest);
        h.env(STRICT, "1");
        assert!(!h.configure("{}"));
        let out = h.run(crate::host::fixtures::orders_request(1));
        assert_eq!(out.request_action, 0, "the request continues");
        h.advance_and_tick(5_000);
        assert!(h.dispatch_attempts().is_empty());
        assert!(h.local_replies().is_empty());
    });
}
