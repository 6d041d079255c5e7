//! The configuration's shape (SPEC §3), as read from JSON by [`super::read`]:
//! types checked, keys known, nothing validated yet. Absent values stay
//! `None`; their defaults are the validator's.

use super::read::{self, Obj};
use super::ConfigError;
use serde_json::Value;

#[derive(Default)]
pub struct RawConfig {
    pub sink: RawSink,
    pub batch: RawBatch,
    pub retry: RawRetry,
    pub on_overflow: Option<String>,
    pub capture: RawCapture,
    pub redact: RawRedact,
    pub sampling: RawSampling,
    pub integrity: RawIntegrity,
    pub access_policy: Vec<RawPolicy>,
}

#[derive(Default)]
pub struct RawSink {
    pub cluster: String,
    pub authority: Option<String>,
    pub path: Option<String>,
    pub format: Option<String>,
    pub timeout_ms: Option<u64>,
    pub headers: Vec<(String, String)>,
    pub compression: Option<String>,
    pub token_env: Option<String>,
}

#[derive(Default)]
pub struct RawBatch {
    pub max_records: Option<u64>,
    pub max_bytes: Option<u64>,
    pub flush_interval_ms: Option<u64>,
    pub max_buffered_records: Option<u64>,
    pub max_buffered_bytes: Option<u64>,
    pub max_in_flight: Option<u64>,
}

#[derive(Default)]
pub struct RawRetry {
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_ms: Option<u64>,
}

#[derive(Default)]
pub struct RawCapture {
    pub request_headers: Vec<String>,
    pub response_headers: Vec<String>,
    pub query: Option<bool>,
    pub jwt: Option<RawJwt>,
}

#[derive(Default)]
pub struct RawJwt {
    pub metadata_namespace: Option<String>,
    pub payload_key: Option<String>,
    pub claims: Vec<String>,
}

#[derive(Default)]
pub struct RawRedact {
    pub headers: Vec<(String, String)>,
    pub query_params: Vec<(String, String)>,
    pub claims: Vec<(String, String)>,
    pub hash_key_env: Option<String>,
    pub path_segments: Vec<String>,
}

#[derive(Default)]
pub struct RawSampling {
    pub default_rate: Option<f64>,
    pub key: Option<String>,
    pub max_records_per_second: Option<u64>,
    pub rules: Vec<RawRule>,
}

#[derive(Default)]
pub struct RawRule {
    pub name: String,
    pub when: RawWhen,
    pub rate: f64,
}

#[derive(Default)]
pub struct RawWhen {
    pub status: Option<Vec<String>>,
    pub path_prefix: Option<String>,
    pub method: Option<String>,
    pub principal: Option<String>,
    pub destination: Option<String>,
    pub route: Option<String>,
}

#[derive(Default)]
pub struct RawIntegrity {
    pub chain: Option<bool>,
    pub key_env: Option<String>,
    pub signing_key_env: Option<String>,
    pub seal_every_batch: Option<bool>,
}

#[derive(Default)]
pub struct RawPolicy {
    pub name: String,
    pub path_prefix: String,
    pub allow_principals: Vec<String>,
}

/// Reads the configuration's shape. A key is known by being read here, so
/// the order of the reads is the order an unknown-key error lists them in.
/// A few values are taken at their place in that list and converted later,
/// after the sections whose errors take precedence over theirs.
pub fn read_raw(v: &Value) -> Result<RawConfig, ConfigError> {
    read::root(v, |top| {
        let sink = top.required_object("sink", sink).unwrap_or_default();
        let batch = top.object("batch", batch).unwrap_or_default();
        let retry = top.object("retry", retry).unwrap_or_default();
        let on_overflow = top.take("on_overflow");
        RawConfig {
            sink,
            batch,
            retry,
            capture: top.object("capture", capture).unwrap_or_default(),
            redact: top.object("redact", redact).unwrap_or_default(),
            sampling: top.object("sampling", sampling).unwrap_or_default(),
            integrity: top.object("integrity", integrity).unwrap_or_default(),
            access_policy: top.objects("access_policy", policy),
            on_overflow: top.string_of("on_overflow", on_overflow),
        }
    })
}

fn sink(s: &Obj) -> RawSink {
    RawSink {
        cluster: s.required_string("cluster"),
        authority: s.string("authority"),
        path: s.string("path"),
        format: s.string("format"),
        timeout_ms: s.u64("timeout_ms"),
        headers: s.string_map("headers"),
        compression: s.string("compression"),
        token_env: s.string("token_env"),
    }
}

fn batch(b: &Obj) -> RawBatch {
    RawBatch {
        max_records: b.u64("max_records"),
        max_bytes: b.u64("max_bytes"),
        flush_interval_ms: b.u64("flush_interval_ms"),
        max_buffered_records: b.u64("max_buffered_records"),
        max_buffered_bytes: b.u64("max_buffered_bytes"),
        max_in_flight: b.u64("max_in_flight"),
    }
}

fn retry(r: &Obj) -> RawRetry {
    RawRetry {
        backoff_base_ms: r.u64("backoff_base_ms"),
        backoff_max_ms: r.u64("backoff_max_ms"),
    }
}

fn capture(c: &Obj) -> RawCapture {
    RawCapture {
        request_headers: c.strings("request_headers"),
        response_headers: c.strings("response_headers"),
        query: c.bool("query"),
        jwt: c.object("jwt", |j| RawJwt {
            metadata_namespace: j.string("metadata_namespace"),
            payload_key: j.string("payload_key"),
            claims: j.strings("claims"),
        }),
    }
}

fn redact(r: &Obj) -> RawRedact {
    RawRedact {
        headers: r.string_map("headers"),
        query_params: r.string_map("query_params"),
        claims: r.string_map("claims"),
        hash_key_env: r.string("hash_key_env"),
        path_segments: r.strings("path_segments"),
    }
}

fn sampling(s: &Obj) -> RawSampling {
    let default_rate = s.take("default_rate");
    let key = s.take("key");
    let max_records_per_second = s.take("max_records_per_second");
    let rules = s.objects("rules", rule);
    RawSampling {
        default_rate: s.f64_of("default_rate", default_rate),
        key: s.string_of("key", key),
        max_records_per_second: s.u64_of("max_records_per_second", max_records_per_second),
        rules,
    }
}

fn rule(r: &Obj) -> RawRule {
    let name = r.take("name");
    let when = r.object("when", when).unwrap_or_default();
    RawRule {
        name: r.required_string_of("name", name),
        when,
        rate: r
            .required("rate")
            .and_then(|v| r.f64_of("rate", Some(v)))
            .unwrap_or(0.0),
    }
}

fn when(w: &Obj) -> RawWhen {
    RawWhen {
        status: w.take("status").map(|_| w.strings("status")),
        path_prefix: w.string("path_prefix"),
        method: w.string("method"),
        principal: w.string("principal"),
        destination: w.string("destination"),
        route: w.string("route"),
    }
}

fn integrity(i: &Obj) -> RawIntegrity {
    RawIntegrity {
        chain: i.bool("chain"),
        key_env: i.string("key_env"),
        signing_key_env: i.string("signing_key_env"),
        seal_every_batch: i.bool("seal_every_batch"),
    }
}

fn policy(p: &Obj) -> RawPolicy {
    RawPolicy {
        name: p.required_string("name"),
        path_prefix: p.required_string("path_prefix"),
        allow_principals: {
            p.required("allow_principals");
            p.strings("allow_principals")
        },
    }
}
