//! What the robustness tests feed the filter: configurations (arbitrary
//! JSON over the real key names, and mutants of the SPEC's example) and the
//! bytes a proxy may hand over (short integers, garbage UTF-8, huge values,
//! serialised pairs).

use proptest::prelude::*;
use serde_json::{Map, Value};

/// The example configuration of SPEC §3: every key, valid as given.
pub const SPEC_EXAMPLE: &str = r#"{
  "sink": {"cluster": "audit_sink", "authority": "audit-sink", "path": "/v1/audit", "format": "jsonl",
           "timeout_ms": 5000, "headers": {"x-audit-tenant": "shop"}},
  "batch": {"max_records": 500, "max_bytes": 1048576, "flush_interval_ms": 1000,
            "max_buffered_records": 20000, "max_buffered_bytes": 33554432, "max_in_flight": 2},
  "retry": {"backoff_base_ms": 200, "backoff_max_ms": 30000},
  "on_overflow": "drop",
  "capture": {"request_headers": ["user-agent", "x-forwarded-for", "authorization"],
              "response_headers": ["content-type"], "query": true,
              "jwt": {"metadata_namespace": "envoy.filters.http.jwt_authn", "payload_key": "jwt_payload",
                      "claims": ["sub", "iss", "email"]}},
  "redact": {"headers": {"authorization": "mask", "cookie": "drop", "x-user-email": "hash"},
             "query_params": {"token": "mask", "access_token": "mask", "password": "drop"},
             "claims": {"email": "hash"}, "hash_key_env": "MESH_AUDIT_HASH_KEY"},
  "sampling": {"default_rate": 1.0, "key": "x-request-id", "max_records_per_second": 0,
               "rules": [{"name": "denied", "when": {"status": ["401", "403", "5xx"]}, "rate": 1.0},
                         {"name": "health", "when": {"path_prefix": "/healthz"}, "rate": 0.0},
                         {"name": "batch-jobs", "when": {"principal": "spiffe://cluster.local/ns/batch/*"}, "rate": 0.01}]},
  "integrity": {"chain": true, "key_env": "MESH_AUDIT_CHAIN_KEY"},
  "access_policy": [{"name": "admin-only", "path_prefix": "/admin",
                     "allow_principals": ["spiffe://cluster.local/ns/ops/sa/console"]}]
}"#;

const KEYS: &[&str] = &[
    "sink",
    "cluster",
    "authority",
    "path",
    "format",
    "timeout_ms",
    "headers",
    "batch",
    "max_records",
    "max_bytes",
    "flush_interval_ms",
    "max_buffered_records",
    "max_buffered_bytes",
    "max_in_flight",
    "retry",
    "backoff_base_ms",
    "backoff_max_ms",
    "on_overflow",
    "capture",
    "request_headers",
    "response_headers",
    "query",
    "jwt",
    "metadata_namespace",
    "payload_key",
    "claims",
    "redact",
    "query_params",
    "hash_key_env",
    "sampling",
    "default_rate",
    "key",
    "max_records_per_second",
    "rules",
    "name",
    "when",
    "status",
    "path_prefix",
    "method",
    "principal",
    "route",
    "rate",
    "integrity",
    "chain",
    "key_env",
    "access_policy",
    "allow_principals",
    "unknown",
];

const WORDS: &[&str] = &[
    "audit_sink",
    "jsonl",
    "otlp",
    "drop",
    "reject",
    "mask",
    "hash",
    "4xx",
    "5xx",
    "401",
    "999",
    "/admin",
    "/",
    "spiffe://cluster.local/ns/*",
    "*",
    "MESH_AUDIT_HASH_KEY",
    "MESH_AUDIT_CHAIN_KEY",
    "NO_SUCH_VAR",
    "authorization",
    "x-request-id",
    ":path",
    "",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0u64..10).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just(u64::MAX), Just(u64::MAX / 2), Just(1u64 << 53)].prop_map(Value::from),
        (-2.0f64..2.0).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
    ]
}

pub fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

/// Every JSON pointer inside `v`, the root excluded.
fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, c)| (k.replace('~', "~0").replace('/', "~1"), c))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, c)| (i.to_string(), c))
            .collect(),
        _ => return,
    };
    for (key, child) in children {
        let pointer = format!("{at}/{key}");
        out.push(pointer.clone());
        pointers(child, &pointer, out);
    }
}

/// Applies one mutation to the value at a pointer chosen by `pick`: drop
/// it, replace it, or give an object one more (perhaps unknown) key.
fn mutate(config: &mut Value, pick: usize, op: u8, key: &str, new: Value) {
    let mut all = Vec::new();
    pointers(config, "", &mut all);
    let Some(pointer) = all.get(pick % all.len().max(1)).cloned() else {
        return;
    };
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let last = last.replace("~1", "/").replace("~0", "~");
    match op % 3 {
        0 => match config.pointer_mut(if parent.is_empty() { "" } else { parent }) {
            Some(Value::Object(m)) => {
                m.remove(&last);
            }
            Some(Value::Array(a)) => {
                if let Ok(i) = last.parse::<usize>() {
                    if i < a.len() {
                        a.remove(i);
                    }
                }
            }
            _ => {}
        },
        1 => {
            if let Some(slot) = config.pointer_mut(&pointer) {
                *slot = new;
            }
        }
        _ => {
            if let Some(Value::Object(m)) = config.pointer_mut(&pointer) {
                m.insert(key.to_string(), new);
            }
        }
    }
}

pub fn spec_mutants() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            any::<usize>(),
            any::<u8>(),
            prop::sample::select(KEYS),
            json_value(),
        ),
        1..5,
    )
    .prop_map(|mutations| {
        let mut config: Value = serde_json::from_str(SPEC_EXAMPLE).unwrap();
        for (pick, op, key, new) in mutations {
            mutate(&mut config, pick, op, key, new);
        }
        config
    })
}

/// A plain GET request as Envoy would show it.
pub fn typical_headers() -> Vec<(String, Vec<u8>)> {
    [
        (":method", "GET"),
        (":path", "/admin/x?token=t&page=2"),
        (":authority", "backend"),
        ("x-request-id", "r-1"),
        ("authorization", "Bearer abc"),
        ("user-agent", "curl"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect()
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                ":status",
                ":path",
                ":method",
                ":authority",
                ":scheme",
                "host",
                "x-request-id",
                "traceparent",
                "user-agent",
                "authorization",
                "cookie",
                "x-forwarded-for",
                "x-user-email",
                "content-type",
                "set-cookie",
            ][..]
        )
        .prop_map(str::to_string),
        "\\PC{0,12}",
    ]
}

/// Bytes as a proxy might hand them over, well-formed or not.
pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..10),
        any::<u64>().prop_map(|n| n.to_le_bytes().to_vec()),
        any::<f64>().prop_map(|f| f.to_le_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..80),
        "\\PC{0,40}".prop_map(String::into_bytes),
        "/[a-z/]{0,12}(\\?[a-z_]{0,8}=[a-z%]{0,6}(&[a-z_]{0,8}=[a-z]{0,4}){0,3})?"
            .prop_map(String::into_bytes),
        prop_oneof![
            Just("200"),
            Just("403"),
            Just("503"),
            Just("99999999999"),
            Just("-1")
        ]
        .prop_map(|s| s.as_bytes().to_vec()),
        "00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]".prop_map(String::into_bytes),
        (any::<u8>(), 10_000usize..70_000).prop_map(|(b, n)| vec![b; n]),
        // Envoy's serialised pairs (a JWT payload, a map attribute).
        prop::collection::vec(
            ("\\PC{0,8}", prop::collection::vec(any::<u8>(), 0..12)),
            0..5
        )
        .prop_map(|pairs| pairs_bytes(&pairs)),
    ]
}

fn pairs_bytes(pairs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

pub fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop::collection::vec((header_name(), bytes()), 0..12)
}
