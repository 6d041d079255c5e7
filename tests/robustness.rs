//! Robustness (SPEC §2.1: a bug must not panic the VM), under `make test`:
//! the configuration parser and the record builder take arbitrary input
//! and never panic, and whatever reaches the sink is well-formed. The
//! cargo-fuzz targets in fuzz/ drive the same code with the same host.

// Test code: helpers fail the test by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

#[path = "robustness/inputs.rs"]
mod inputs;
#[path = "robustness/scenario.rs"]
mod scenario;

use inputs::{bytes, headers, json_value, spec_mutants, typical_headers, SPEC_EXAMPLE};
use mesh_audit::config::{error_line, Config, Format};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use proptest::prelude::*;
use prost::Message;
use scenario::{check_jsonl, env, full_config, run, Scenario};

fn env_fn(name: &str) -> Option<String> {
    env().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Parses a config; an error must be one line, in the documented form.
fn parse_checked(bytes: &[u8]) -> Option<Config> {
    match Config::from_json(bytes, &env_fn) {
        Ok(config) => Some(config),
        Err(e) => {
            let line = error_line(&e);
            assert!(
                line.starts_with("mesh-audit: invalid configuration: "),
                "{line}"
            );
            assert!(!line.contains('\n'), "a multi-line error: {line:?}");
            None
        }
    }
}

/// Checks each body the sink would get; returns the records in them.
fn check_bodies(bodies: &[Vec<u8>], otlp: bool) -> usize {
    let mut records = 0;
    for body in bodies {
        if !otlp {
            records += check_jsonl(body).unwrap_or_else(|e| panic!("{e}"));
            continue;
        }
        let request = ExportLogsServiceRequest::decode(body.as_slice())
            .unwrap_or_else(|e| panic!("not an OTLP logs request: {e}"));
        for log in request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
        {
            let Some(AnyValue::StringValue(line)) =
                log.body.as_ref().and_then(|b| b.value.as_ref())
            else {
                panic!("an OTLP log record without a string body: {log:?}");
            };
            records += check_jsonl(line.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    records
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_config_parser_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_checked(&bytes);
    }

    #[test]
    fn the_config_parser_never_panics_on_arbitrary_json(config in json_value()) {
        parse_checked(config.to_string().as_bytes());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Mutants of the SPEC's example: whatever parses must also run.
    #[test]
    fn any_accepted_configuration_audits_requests_without_panicking(
        config in spec_mutants(),
        reply in prop::sample::select(&["200", "503", "400", ""][..]),
    ) {
        let bytes = config.to_string().into_bytes();
        if let Some(parsed) = parse_checked(&bytes) {
            let otlp = parsed.sink.format == Format::Otlp;
            let request = typical_headers();
            let outcome = run(Scenario {
                config: bytes,
                pool: vec![b"spiffe://cluster.local/ns/ops/sa/x".to_vec(), 7u64.to_le_bytes().to_vec()],
                request: request.clone(),
                response: vec![(":status".into(), b"200".to_vec())],
                reply: vec![(":status".into(), reply.as_bytes().to_vec())],
                requests: 3,
                env: env(),
                ..Scenario::default()
            });
            prop_assert!(outcome.configured);
            check_bodies(&outcome.bodies, otlp);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_properties_and_headers_always_make_records_that_parse(
        otlp in any::<bool>(),
        pool in prop::collection::vec(bytes(), 0..8),
        salt in any::<u64>(),
        request in headers(),
        response in headers(),
        reply in headers(),
        requests in 1usize..8,
    ) {
        let outcome = run(Scenario {
            config: full_config(if otlp { "otlp" } else { "jsonl" }),
            pool,
            salt,
            request,
            response,
            reply,
            requests,
            env: env(),
        });
        prop_assert!(outcome.configured);
        let records = check_bodies(&outcome.bodies, otlp);
        prop_assert!(records >= 1, "{} requests, no record sent", requests);
    }
}

#[test]
fn the_spec_example_is_a_valid_configuration() {
    assert!(parse_checked(SPEC_EXAMPLE.as_bytes()).is_some());
}

#[test]
fn the_largest_accepted_limits_do_not_overflow_anywhere() {
    let max = u64::MAX;
    // sink.timeout_ms is capped at one hour (the ABI carries 32-bit milliseconds).
    let timeout_max = 3_600_000;
    let extremes = [
        format!(r#""sink":{{"cluster":"s","timeout_ms":{timeout_max}}}"#),
        format!(
            r#""sink":{{"cluster":"s"}},"retry":{{"backoff_base_ms":{max},"backoff_max_ms":{max}}}"#
        ),
        format!(r#""sink":{{"cluster":"s"}},"batch":{{"flush_interval_ms":{max}}}"#),
        format!(
            r#""sink":{{"cluster":"s"}},"sampling":{{"max_records_per_second":{max},"default_rate":0.5}}"#
        ),
        format!(
            r#""sink":{{"cluster":"s"}},"batch":{{"max_records":{max},"max_buffered_records":{max},
               "max_bytes":{max},"max_buffered_bytes":{max},"max_in_flight":{max}}}"#
        ),
    ];
    for reply in ["503", "200"] {
        for extra in &extremes {
            let config = format!("{{{extra}}}").into_bytes();
            assert!(parse_checked(&config).is_some(), "{extra}");
            let outcome = run(Scenario {
                config,
                request: typical_headers(),
                reply: vec![(":status".into(), reply.as_bytes().to_vec())],
                requests: 3,
                env: env(),
                ..Scenario::default()
            });
            assert!(outcome.configured);
            check_bodies(&outcome.bodies, false);
        }
    }
}
