//! A proxy whose every property answer is arbitrary data, and a whole filter
//! lifecycle run in it: configure, audit requests, flush, take the sink's
//! reply, drain. The proxy is the emulator (tests/host/) with arbitrary
//! property answers; shared by tests/wasm/robustness.rs (proptest, on both
//! guests, under `make test`) and the cargo-fuzz targets in fuzz/ (native
//! guest; they include tests/host/model/ as `host` and this file).
//!
//! Nothing here checks the records' content: only that the filter never
//! panics and that what it sends is well-formed.

// Each user (a test, a fuzz target) needs a different part of it.
#![allow(dead_code)]

use crate::host::{Arbitrary, Host};
use mesh_audit::config::Config;
/// Headers as the emulated proxy holds them.
type Headers = Vec<(String, Vec<u8>)>;

/// Everything the proxy will answer.
#[derive(Clone, Debug, Default)]
pub struct Scenario {
    /// The plugin configuration bytes.
    pub config: Vec<u8>,
    /// Values property reads are answered with: each property path maps to
    /// one of these (or to "absent", or to "not serializable") by its hash.
    pub pool: Vec<Vec<u8>>,
    /// Mixed into the path hash, so the same pool lands differently.
    pub salt: u64,
    pub request: Headers,
    pub response: Headers,
    /// The sink's reply headers.
    pub reply: Headers,
    /// How many requests are audited in each round.
    pub requests: usize,
    pub env: Vec<(String, String)>,
}

/// What the filter did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub configured: bool,
    /// The line a refused configuration logged.
    pub refusal: Option<String>,
    /// Bodies of the calls dispatched to the sink (refused ones included).
    pub bodies: Vec<Vec<u8>>,
}

/// [`run_on`] with the native core.
pub fn run(scenario: Scenario) -> Outcome {
    run_on(Host::native(), scenario)
}

/// Runs the lifecycle on `h`: configure; each request through the
/// fail-closed check and `on_log`; a tick a flush interval later; the sink's
/// reply to every call; the requests again; a drain with those still
/// buffered, a tick a flush interval later, the sink's replies.
pub fn run_on(mut h: Host, scenario: Scenario) -> Outcome {
    for (k, v) in &scenario.env {
        h.env(k, v);
    }
    h.seed(scenario.salt);
    h.arbitrary_properties(Arbitrary {
        pool: scenario.pool.clone(),
        salt: scenario.salt,
    });
    if !h.configure_bytes(&scenario.config) {
        return Outcome {
            refusal: h.logs().last().map(|l| l.message.clone()),
            ..Outcome::default()
        };
    }
    let env = |name: &str| {
        let found = scenario.env.iter().find(|(k, _)| k == name);
        found.map(|(_, v)| v.clone())
    };
    let flush_ms = Config::from_json(&scenario.config, &env)
        .map_or(1000, |c| c.batch.flush_interval_ms.min(86_400_000));
    let audit = |h: &mut Host| {
        for _ in 0..scenario.requests {
            let mut req = h.request();
            req.headers = scenario.request.clone();
            req.response_headers = scenario.response.clone();
            h.run(req);
            h.advance_ms(1);
        }
    };
    let answer_all = |h: &mut Host| {
        for d in h.pending() {
            if let Some(token) = d.token {
                h.reply_pairs(token, scenario.reply.clone(), b"");
            }
        }
    };
    audit(&mut h);
    h.advance_ms(flush_ms);
    h.tick();
    answer_all(&mut h);
    // More records, still buffered when the drain starts.
    audit(&mut h);
    if !h.shutdown() {
        h.advance_ms(flush_ms);
        h.tick();
        answer_all(&mut h);
    }
    Outcome {
        configured: true,
        refusal: None,
        bodies: h.dispatch_attempts().into_iter().map(|d| d.body).collect(),
    }
}

/// A configuration that turns on everything a record can carry, in the
/// given format.
pub fn full_config(format: &str) -> Vec<u8> {
    format!(
        r#"{{"sink":{{"cluster":"audit_sink","format":"{format}","headers":{{"x-audit-tenant":"t"}}}},
            "batch":{{"max_records":3,"max_buffered_records":5,"flush_interval_ms":1000}},
            "capture":{{"request_headers":["user-agent","authorization","cookie","x-forwarded-for","x-user-email"],
                        "response_headers":["content-type","set-cookie"],"query":true,
                        "jwt":{{"claims":["sub","iss","email","exp","groups"]}}}},
            "redact":{{"headers":{{"x-user-email":"hash","cookie":"drop"}},
                       "query_params":{{"token":"mask","password":"drop"}},
                       "claims":{{"email":"hash"}},"hash_key_env":"MESH_AUDIT_HASH_KEY"}},
            "sampling":{{"key":"x-request-id","rules":[
                {{"name":"denied","when":{{"status":["401","403","5xx"]}},"rate":1.0}},
                {{"name":"ops","when":{{"principal":"spiffe://cluster.local/ns/ops/*","route":"admin"}},"rate":1.0}}]}},
            "integrity":{{"chain":true,"key_env":"MESH_AUDIT_CHAIN_KEY"}},
            "access_policy":[{{"name":"admin-only","path_prefix":"/admin",
                               "allow_principals":["spiffe://cluster.local/ns/ops/sa/console"]}}]}}"#
    )
    .into_bytes()
}

/// The keys `full_config` and friends need.
pub fn env() -> Vec<(String, String)> {
    vec![
        ("MESH_AUDIT_HASH_KEY".into(), "hash-key".into()),
        ("MESH_AUDIT_CHAIN_KEY".into(), "chain-key".into()),
    ]
}

/// Every JSON-lines body holds only JSON objects with a `kind`, one per
/// line. Returns the number of records, or what is wrong.
pub fn check_jsonl(body: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let mut n = 0;
    for line in text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line is not JSON ({e}): {line}"))?;
        if !value.get("kind").is_some_and(|k| k.is_string()) {
            return Err(format!("record without kind: {line}"));
        }
        n += 1;
    }
    Ok(n)
}
