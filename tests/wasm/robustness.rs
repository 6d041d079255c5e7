//! Robustness (SPEC §2.1: a bug must not panic the VM), under `make test`:
//! the configuration parser and the record builder take arbitrary input
//! and never panic, and whatever reaches the sink is well-formed. The
//! cargo-fuzz targets in fuzz/ drive the same code with the same host.

mod inputs;
mod scenario;

use crate::host::{Guest, Host};
use inputs::{bytes, headers, json_value, spec_mutants, typical_headers, SPEC_EXAMPLE};
use mesh_audit::config::{error_line, Config, Format};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use prost::Message;
use scenario::{check_jsonl, env, full_config, run_on, Outcome, Scenario};
use serde_json::Value;

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

/// A mutant of the SPEC's example: whatever parses must also run on `guest`.
fn audit_mutant(guest: Guest, config: &Value, reply: &str) -> Result<(), TestCaseError> {
    let bytes = config.to_string().into_bytes();
    let Some(parsed) = parse_checked(&bytes) else {
        return Ok(());
    };
    let otlp = parsed.sink.format == Format::Otlp;
    let outcome = run_on(
        Host::on(guest),
        Scenario {
            config: bytes,
            pool: vec![
                b"spiffe://cluster.local/ns/ops/sa/x".to_vec(),
                7u64.to_le_bytes().to_vec(),
            ],
            request: typical_headers(),
            response: vec![(":status".into(), b"200".to_vec())],
            reply: vec![(":status".into(), reply.as_bytes().to_vec())],
            requests: 3,
            env: env(),
            ..Scenario::default()
        },
    );
    prop_assert!(accepted_on(guest, &outcome), "{:?}", outcome.refusal);
    check_bodies(&outcome.bodies, otlp);
    Ok(())
}

/// The full configuration, with every property, both header maps and the
/// sink's reply arbitrary.
fn audit_arbitrary(guest: Guest, otlp: bool, scenario: Scenario) -> Result<(), TestCaseError> {
    let requests = scenario.requests;
    let outcome = run_on(
        Host::on(guest),
        Scenario {
            config: full_config(if otlp { "otlp" } else { "jsonl" }),
            env: env(),
            ..scenario
        },
    );
    prop_assert!(outcome.configured);
    let records = check_bodies(&outcome.bodies, otlp);
    prop_assert!(records >= 1, "{} requests, no record sent", requests);
    Ok(())
}

/// Whether a configuration the native parser accepts also configured on
/// `guest`. The `.wasm` is 32-bit: a count beyond its address space is
/// refused there, with the usual one-line error.
fn accepted_on(guest: Guest, outcome: &Outcome) -> bool {
    outcome.configured
        || (guest == Guest::Wasm
            && outcome.refusal.as_deref().is_some_and(|l| {
                l.starts_with("mesh-audit: invalid configuration: ")
                    && l.ends_with(": is too large")
            }))
}

fn arbitrary_scenario() -> impl Strategy<Value = (bool, Scenario)> {
    (
        any::<bool>(),
        prop::collection::vec(bytes(), 0..8),
        any::<u64>(),
        headers(),
        headers(),
        headers(),
        1usize..8,
    )
        .prop_map(|(otlp, pool, salt, request, response, reply, requests)| {
            let scenario = Scenario {
                pool,
                salt,
                request,
                response,
                reply,
                requests,
                ..Scenario::default()
            };
            (otlp, scenario)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_accepted_configuration_audits_requests_without_panicking(
        config in spec_mutants(),
        reply in prop::sample::select(&["200", "503", "400", ""][..]),
    ) {
        audit_mutant(Guest::Native, &config, reply)?;
    }

    #[test]
    fn arbitrary_properties_and_headers_always_make_records_that_parse(
        (otlp, scenario) in arbitrary_scenario(),
    ) {
        audit_arbitrary(Guest::Native, otlp, scenario)?;
    }
}

// The same properties inside the compiled `.wasm`, where a panic is a trap:
// fewer cases, each one instantiates the module.
proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_accepted_configuration_audits_requests_without_a_trap(
        config in spec_mutants(),
        reply in prop::sample::select(&["200", "503", "400", ""][..]),
    ) {
        audit_mutant(Guest::Wasm, &config, reply)?;
    }

    #[test]
    fn arbitrary_properties_and_headers_make_records_that_parse_without_a_trap(
        (otlp, scenario) in arbitrary_scenario(),
    ) {
        audit_arbitrary(Guest::Wasm, otlp, scenario)?;
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
            for guest in Guest::ALL {
                let scenario = Scenario {
                    config: config.clone(),
                    request: typical_headers(),
                    reply: vec![(":status".into(), reply.as_bytes().to_vec())],
                    requests: 3,
                    env: env(),
                    ..Scenario::default()
                };
                let outcome = run_on(Host::on(guest), scenario);
                assert!(
                    accepted_on(guest, &outcome),
                    "{guest}: {:?}",
                    outcome.refusal
                );
                check_bodies(&outcome.bodies, false);
            }
        }
    }
}
