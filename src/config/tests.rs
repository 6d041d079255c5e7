//! Test code only: its parent declares it under #[cfg(test)].
use super::*;

fn env_with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

fn parse(json: &str) -> Result<Config, ConfigError> {
    Config::from_json(
        json.as_bytes(),
        &env_with(&[
            ("HK", "secret"),
            ("CK", "chainkey"),
            ("MESH_AUDIT_HASH_KEY", "secret"),
            ("MESH_AUDIT_CHAIN_KEY", "chainkey"),
        ]),
    )
}

fn err(json: &str) -> String {
    match parse(json) {
        Ok(_) => panic!("expected an error for {json}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn minimal_config_takes_the_documented_defaults() {
    let c = parse(r#"{"sink":{"cluster":"audit_sink"}}"#).unwrap();
    assert_eq!(c.sink.authority, "audit_sink");
    assert_eq!(c.sink.path, "/v1/audit");
    assert_eq!(c.sink.format, Format::Jsonl);
    assert_eq!(c.sink.timeout_ms, 5000);
    assert_eq!(
        c.batch,
        Batch {
            max_records: 500,
            max_bytes: 1_048_576,
            flush_interval_ms: 1000,
            max_buffered_records: 20_000,
            max_buffered_bytes: 33_554_432,
            max_in_flight: 2
        }
    );
    assert_eq!(
        c.retry,
        Retry {
            backoff_base_ms: 200,
            backoff_max_ms: 30_000
        }
    );
    assert_eq!(c.on_overflow, Overflow::Drop);
    assert!(c.capture.query);
    assert!(c.capture.request_headers.is_empty());
    assert_eq!(c.capture.jwt, None);
    assert_eq!(c.sampling.default_rate, 1.0);
    assert_eq!(c.sampling.key, "x-request-id");
    assert!(c.integrity.chain);
    assert_eq!(c.integrity.key, None);
    assert_eq!(c.digest.len(), 8);
}

#[test]
fn otlp_defaults_to_v1_logs() {
    let c = parse(r#"{"sink":{"cluster":"otel","format":"otlp"}}"#).unwrap();
    assert_eq!(c.sink.path, "/v1/logs");
}

#[test]
fn compression_is_opt_in_for_either_format() {
    for format in ["jsonl", "otlp"] {
        let c = parse(&format!(
            r#"{{"sink":{{"cluster":"s","format":"{format}"}}}}"#
        ))
        .unwrap();
        assert_eq!(c.sink.compression, Compression::None, "{format}");
        let c = parse(&format!(
            r#"{{"sink":{{"cluster":"s","format":"{format}","compression":"gzip"}}}}"#
        ))
        .unwrap();
        assert_eq!(c.sink.compression, Compression::Gzip, "{format}");
    }
    let c = parse(r#"{"sink":{"cluster":"s","compression":"none"}}"#).unwrap();
    assert_eq!(c.sink.compression, Compression::None);
}

#[test]
fn the_spec_example_is_valid() {
    let spec = include_str!("../../examples/configs/full.json");
    let c = parse(spec).unwrap();
    assert_eq!(
        c.sink.headers,
        vec![("x-audit-tenant".to_string(), "shop".to_string())]
    );
    assert_eq!(
        c.capture.request_headers,
        vec!["user-agent", "x-forwarded-for", "authorization"]
    );
    assert_eq!(c.sampling.rules.len(), 3);
    assert_eq!(
        c.sampling.rules[0].when.status,
        vec![
            StatusMatch::Exact(401),
            StatusMatch::Exact(403),
            StatusMatch::Class(5)
        ]
    );
    assert_eq!(
        c.sampling.rules[2].when.principal,
        Some(PrincipalMatch::Prefix(
            "spiffe://cluster.local/ns/batch/".into()
        ))
    );
    assert_eq!(c.redact.hash_key.as_deref(), Some(&b"secret"[..]));
    assert_eq!(c.access_policy[0].name, "admin-only");
}

#[test]
fn bad_configs_name_the_path_and_the_problem() {
    let table: &[(&str, &str)] = &[
        ("{}", "sink: is required"),
        (r#"{"sink":{}}"#, "sink.cluster: is required"),
        ("not json", "$: not valid JSON: expected ident at line 1 column 2"),
        ("[]", "$: expected an object, got a list"),
        (r#"{"sink":{"cluster":"s"},"capture":{"request_headers":"user-agent"}}"#, "capture.request_headers: expected a list, got string \"user-agent\""),
        (r#"{"sink":{"cluster":"s"},"capture":{"query":"yes"}}"#, "capture.query: expected true or false, got string \"yes\""),
        (r#"{"sink":{"cluster":"s"},"sampling":{"rules":[{"name":"a"}]}}"#, "sampling.rules[0].rate: is required"),
        (r#"{"sink":{"cluster":""}}"#, "sink.cluster: must not be empty"),
        (r#"{"sink":{"cluster":"s","bogus":1}}"#, "sink.bogus: unknown field `bogus`, expected one of `cluster`, `authority`, `path`, `format`, `timeout_ms`, `headers`, `compression`, `token_env`"),
        (r#"{"sink":{"cluster":"s","compression":"br"}}"#, "sink.compression: unknown compression \"br\", expected none or gzip"),
        (r#"{"sink":{"cluster":"s","headers":{"Content-Encoding":"br"}}}"#, "sink.headers.Content-Encoding: is set by mesh-audit and cannot be overridden"),
        (r#"{"sink":{"cluster":"s"},"extra":true}"#, "extra: unknown field `extra`, expected one of `sink`, `batch`, `retry`, `on_overflow`, `capture`, `redact`, `sampling`, `integrity`, `access_policy`"),
        (r#"{"sink":{"cluster":"s","format":"xml"}}"#, "sink.format: unknown format \"xml\", expected jsonl or otlp"),
        (r#"{"sink":{"cluster":"s","path":"v1"}}"#, "sink.path: must start with /"),
        (r#"{"sink":{"cluster":"s","timeout_ms":0}}"#, "sink.timeout_ms: must be greater than 0"),
        (r#"{"sink":{"cluster":"s","timeout_ms":3600001}}"#, "sink.timeout_ms: must be at most 3600000 (one hour)"),
        (r#"{"sink":{"cluster":"s","timeout_ms":"5"}}"#, "sink.timeout_ms: expected a whole number >= 0, got string \"5\""),
        (r#"{"sink":{"cluster":"s","headers":{"content-type":"x"}}}"#, "sink.headers.content-type: is set by mesh-audit and cannot be overridden"),
        (r#"{"sink":{"cluster":"s"},"batch":{"max_records":0}}"#, "batch.max_records: must be greater than 0"),
        (r#"{"sink":{"cluster":"s"},"batch":{"max_records":100,"max_buffered_records":10}}"#, "batch.max_buffered_records: must be at least batch.max_records (100)"),
        (r#"{"sink":{"cluster":"s"},"retry":{"backoff_base_ms":500,"backoff_max_ms":100}}"#, "retry.backoff_max_ms: must be at least retry.backoff_base_ms (500)"),
        (r#"{"sink":{"cluster":"s"},"on_overflow":"panic"}"#, "on_overflow: unknown value \"panic\", expected drop or reject"),
        (r#"{"sink":{"cluster":"s"},"capture":{"request_headers":["ok","bad header"]}}"#, "capture.request_headers[1]: \"bad header\" is not a valid header name"),
        (r#"{"sink":{"cluster":"s"},"redact":{"headers":{"x":"shred"}}}"#, "redact.headers.x: unknown action \"shred\", expected one of mask, drop, hash, keep"),
        (r#"{"sink":{"cluster":"s"},"redact":{"headers":{"x":"hash"}}}"#, "redact.headers.x: action \"hash\" needs redact.hash_key_env"),
        (r#"{"sink":{"cluster":"s"},"redact":{"claims":{"email":"hash"},"hash_key_env":""}}"#, "redact.hash_key_env: must not be empty"),
        (r#"{"sink":{"cluster":"s"},"sampling":{"default_rate":1.5}}"#, "sampling.default_rate: must be between 0 and 1, got 1.5"),
        (r#"{"sink":{"cluster":"s"},"sampling":{"rules":[{"name":"a","rate":-0.1}]}}"#, "sampling.rules[0].rate: must be between 0 and 1, got -0.1"),
        (r#"{"sink":{"cluster":"s"},"sampling":{"rules":[{"name":"","rate":1}]}}"#, "sampling.rules[0].name: must not be empty"),
        (r#"{"sink":{"cluster":"s"},"sampling":{"rules":[{"name":"a","when":{"status":["6xx"]},"rate":1}]}}"#, "sampling.rules[0].when.status[0]: \"6xx\" is not a status code (100-599) or class (1xx-5xx)"),
        (r#"{"sink":{"cluster":"s"},"sampling":{"rules":[{"name":"a","when":{"status":["20"]},"rate":1}]}}"#, "sampling.rules[0].when.status[0]: \"20\" is not a status code (100-599) or class (1xx-5xx)"),
        (r#"{"sink":{"cluster":"s"},"sampling":{"rules":[{"name":"a","when":{"colour":"red"},"rate":1}]}}"#, "sampling.rules[0].when.colour: unknown field `colour`, expected one of `status`, `path_prefix`, `method`, `principal`, `destination`, `route`"),
        (r#"{"sink":{"cluster":"s"},"sampling":{"rules":[{"name":"a","when":{"path_prefix":"healthz"},"rate":0}]}}"#, "sampling.rules[0].when.path_prefix: must start with /"),
        (r#"{"sink":{"cluster":"s"},"sampling":{"rules":[{"name":"a","when":{"destination":""},"rate":0}]}}"#, "sampling.rules[0].when.destination: must not be empty"),
        (r#"{"sink":{"cluster":"s"},"integrity":{"key_env":" "}}"#, "integrity.key_env: must not be empty"),
        (r#"{"sink":{"cluster":"s"},"access_policy":[{"name":"a","path_prefix":"admin","allow_principals":[]}]}"#, "access_policy[0].path_prefix: must start with /"),
    ];
    for (json, want) in table {
        let got = err(json);
        assert!(
            got.starts_with(want),
            "config {json}\n  got:  {got}\n  want: {want}"
        );
    }
}

#[test]
fn error_line_is_the_documented_one() {
    let e = parse(r#"{"sink":{"cluster":""}}"#).unwrap_err();
    assert_eq!(
        error_line(&e),
        "mesh-audit: invalid configuration: sink.cluster: must not be empty"
    );
}

#[test]
fn keys_from_the_environment() {
    let c = parse(
        r#"{"sink":{"cluster":"s"},"integrity":{"key_env":"CK"},"redact":{"hash_key_env":"HK"}}"#,
    )
    .unwrap();
    assert_eq!(c.integrity.key.as_deref(), Some(&b"chainkey"[..]));
    assert_eq!(c.redact.hash_key.as_deref(), Some(&b"secret"[..]));
}

#[test]
fn redaction_settings_are_validated_with_exact_errors() {
    let table: &[(&str, &str)] = &[
        (r#"{"sink":{"cluster":"s"},"capture":{"request_headers":["user-agent",":path"]}}"#,
         "capture.request_headers[1]: \":path\" is a pseudo-header: its fact has its own field in the record (request.method, .authority, .path, .query, response.code)"),
        (r#"{"sink":{"cluster":"s"},"capture":{"response_headers":[":status"]}}"#,
         "capture.response_headers[0]: \":status\" is a pseudo-header: its fact has its own field in the record (request.method, .authority, .path, .query, response.code)"),
        (r#"{"sink":{"cluster":"s"},"capture":{"request_headers":[":Authority"]}}"#,
         "capture.request_headers[0]: \":Authority\" is a pseudo-header: its fact has its own field in the record (request.method, .authority, .path, .query, response.code)"),
        (r#"{"sink":{"cluster":"s"},"redact":{"headers":{":path":"keep"}}}"#,
         "redact.headers.:path: \":path\" is a pseudo-header: its fact has its own field in the record (request.method, .authority, .path, .query, response.code)"),
        (r#"{"sink":{"cluster":"s"},"redact":{"query_params":{"code":"kept"}}}"#,
         "redact.query_params.code: unknown action \"kept\", expected one of mask, drop, hash, keep"),
        (r#"{"sink":{"cluster":"s"},"redact":{"claims":{"email":"keep"}}}"#,
         "redact.claims.email: action \"keep\" opts out of a default redaction, and claims have none: remove the rule"),
        (r#"{"sink":{"cluster":"s"},"redact":{"claims":{"email":"shred"}}}"#,
         "redact.claims.email: unknown action \"shred\", expected one of mask, drop, hash"),
        (r#"{"sink":{"cluster":"s"},"redact":{"path_segments":"/reset/*"}}"#,
         "redact.path_segments: expected a list, got string \"/reset/*\""),
        (r#"{"sink":{"cluster":"s"},"redact":{"path_segments":["/reset/*","reset/*"]}}"#,
         "redact.path_segments[1]: \"reset/*\" must start with /"),
        (r#"{"sink":{"cluster":"s"},"redact":{"path_segments":["/reset"]}}"#,
         "redact.path_segments[0]: \"/reset\" masks nothing: put a * where the secret segment is (e.g. /reset/*)"),
        (r#"{"sink":{"cluster":"s"},"redact":{"path_segments":["/a//*"]}}"#,
         "redact.path_segments[0]: \"/a//*\" has an empty segment"),
        (r#"{"sink":{"cluster":"s"},"redact":{"path_segments":["/x**/*"]}}"#,
         "redact.path_segments[0]: \"/x**/*\": ** must be a whole segment"),
        (r#"{"sink":{"cluster":"s"},"redact":{"path_segments":["/reset/*?x"]}}"#,
         "redact.path_segments[0]: \"/reset/*?x\" may not contain ?, # or ; (patterns match path segments only)"),
        (r#"{"sink":{"cluster":"s"},"redact":{"extra":1}}"#,
         "redact.extra: unknown field `extra`, expected one of `headers`, `query_params`, `claims`, `hash_key_env`, `path_segments`"),
    ];
    for (json, want) in table {
        assert_eq!(err(json), *want, "config {json}");
    }
}

#[test]
fn keep_and_path_segments_are_accepted() {
    let c = parse(
        r#"{"sink":{"cluster":"s"},
            "capture":{"request_headers":["referer","x-csrf-token"]},
            "redact":{"headers":{"x-csrf-token":"keep"},"query_params":{"code":"keep","state":"keep"},
                      "path_segments":["/reset/*","/**/invites/*"]}}"#,
    )
    .unwrap();
    assert_eq!(
        c.redact.headers,
        vec![("x-csrf-token".to_string(), Action::Keep)]
    );
    assert_eq!(
        c.redact.query_params,
        vec![
            ("code".to_string(), Action::Keep),
            ("state".to_string(), Action::Keep)
        ]
    );
    let globs: Vec<&str> = c.redact.path_segments.iter().map(|g| g.as_str()).collect();
    assert_eq!(globs, ["/reset/*", "/**/invites/*"]);
}

#[test]
fn a_missing_key_variable_degrades_instead_of_failing() {
    let c = parse(
        r#"{"sink":{"cluster":"s"},"redact":{"claims":{"email":"hash"},"hash_key_env":"NOPE"},"integrity":{"key_env":"MISSING"}}"#,
    )
    .unwrap();
    assert_eq!(
        (c.redact.hash_key.as_ref(), c.integrity.key.as_ref()),
        (None, None)
    );
    let lines: Vec<(String, String, Scope)> = c
        .degraded
        .iter()
        .map(|d| (d.code.to_string(), degraded_line(d), d.scope))
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "hash_key_missing".to_string(),
                "mesh-audit: degraded configuration: redact.hash_key_env: environment variable NOPE is not set (pass it in vm_config.environment_variables); hash becomes mask (hash_key_missing)".to_string(),
                Scope::Requests
            ),
            (
                "chain_key_missing".to_string(),
                "mesh-audit: degraded configuration: integrity.key_env: environment variable MISSING is not set (pass it in vm_config.environment_variables); the chain is unkeyed (plain SHA-256) (chain_key_missing)".to_string(),
                Scope::Records
            ),
        ]
    );
    // Strict mode refuses with the problem as a configuration error.
    assert_eq!(
        error_line(&c.degraded[1].problem),
        "mesh-audit: invalid configuration: integrity.key_env: environment variable MISSING is not set (pass it in vm_config.environment_variables)"
    );
    assert!(parse(r#"{"sink":{"cluster":"s"}}"#)
        .unwrap()
        .degraded
        .is_empty());
}

#[test]
fn sink_token_env_becomes_a_bearer_header_that_is_never_printed() {
    let c = Config::from_json(
        br#"{"sink":{"cluster":"s","token_env":"TOK"}}"#,
        &env_with(&[("TOK", "s3cr3t-token\n")]),
    )
    .unwrap();
    let auth = c.sink.authorization.as_ref().unwrap();
    assert_eq!(&**auth, b"Bearer s3cr3t-token");
    assert!(
        !format!("{c:?}").contains("s3cr3t"),
        "Debug shows the token"
    );
    let missing = Config::from_json(
        br#"{"sink":{"cluster":"s","token_env":"NOPE"}}"#,
        &env_with(&[]),
    );
    assert!(missing
        .unwrap_err()
        .to_string()
        .contains("sink.token_env: environment variable NOPE is not set"));
    let both = Config::from_json(
        br#"{"sink":{"cluster":"s","token_env":"TOK","headers":{"authorization":"x"}}}"#,
        &env_with(&[("TOK", "t")]),
    );
    assert!(both
        .unwrap_err()
        .to_string()
        .contains("sink.headers.authorization: is set from sink.token_env"));
}

#[test]
fn a_missing_signing_key_leaves_seals_unsigned_and_says_so() {
    let c = parse(r#"{"sink":{"cluster":"s"},"integrity":{"signing_key_env":"NO_SIGNING_KEY"}}"#)
        .unwrap();
    assert!(c.integrity.signer.is_none());
    let codes: Vec<(&str, Scope)> = c.degraded.iter().map(|d| (d.code, d.scope)).collect();
    assert_eq!(codes, [("signing_key_missing", Scope::Records)]);
    assert_eq!(
        degraded_line(&c.degraded[0]),
        "mesh-audit: degraded configuration: integrity.signing_key_env: environment variable NO_SIGNING_KEY is not set (pass it in vm_config.environment_variables); seals are unsigned (signing_key_missing)"
    );
    // A signing key is still refused outright without the chain it vouches through.
    assert_eq!(
        err(r#"{"sink":{"cluster":"s"},"integrity":{"chain":false,"signing_key_env":"NO_SIGNING_KEY"}}"#),
        "integrity.signing_key_env: needs integrity.chain: a seal vouches for the records before it only through the chain"
    );
}
