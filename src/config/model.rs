//! The validated configuration: what [`super::Config::from_json`] returns,
//! with every default applied, names lower-cased and keys read.

use super::ConfigError;
use crate::secret::Secret;
use crate::signing::Signer;

/// Which records a degradation affects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Request records only (what redaction produces).
    Requests,
    /// Every record of the emitter (what the chain and seals vouch for).
    Records,
}

/// A safety degradation (SPEC §2.7): the configuration is valid but a key
/// variable it names is absent, so the filter runs with a safe substitute.
/// Computed at configure time; records list `code` in `degraded`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Degradation {
    /// The name records carry in `degraded`, e.g. `hash_key_missing`.
    pub code: &'static str,
    /// What is missing, as a configuration error (strict mode refuses with it).
    pub problem: ConfigError,
    /// What the filter does instead, for the log line.
    pub instead: &'static str,
    pub scope: Scope,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Otlp,
}

/// `sink.compression`: how batch bodies travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    /// `content-encoding: gzip`.
    Gzip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Fail open: serve the request, count the record as not admitted.
    Drop,
    /// Fail closed: answer 503 while the buffer is full.
    Reject,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Mask,
    Drop,
    Hash,
    /// The value as sent: an explicit opt-out of a default redaction.
    Keep,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sink {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub format: Format,
    pub timeout_ms: u64,
    pub headers: Vec<(String, String)>,
    pub compression: Compression,
    /// `authorization: Bearer <token>` from `sink.token_env`, sent on every batch.
    pub authorization: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub max_records: usize,
    pub max_bytes: usize,
    pub flush_interval_ms: u64,
    pub max_buffered_records: usize,
    pub max_buffered_bytes: usize,
    pub max_in_flight: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Jwt {
    pub metadata_namespace: String,
    pub payload_key: String,
    pub claims: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Capture {
    /// Lower-cased header names.
    pub request_headers: Vec<String>,
    pub response_headers: Vec<String>,
    pub query: bool,
    pub jwt: Option<Jwt>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Redact {
    /// Lower-cased header name → action (explicit rules only).
    pub headers: Vec<(String, Action)>,
    pub query_params: Vec<(String, Action)>,
    pub claims: Vec<(String, Action)>,
    /// The HMAC key for `hash`, read from the environment at configure time.
    pub hash_key: Option<Secret>,
    /// `redact.path_segments`: path segments known to be secret.
    pub path_segments: Vec<super::Glob>,
}

/// A status matcher: an exact code or a class (`4xx` → 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMatch {
    Exact(u32),
    Class(u32),
}

impl StatusMatch {
    pub fn matches(self, code: u32) -> bool {
        match self {
            StatusMatch::Exact(c) => c == code,
            StatusMatch::Class(c) => code / 100 == c,
        }
    }
}

/// A principal matcher: exact, or a prefix when the pattern ends with `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalMatch {
    Exact(String),
    Prefix(String),
}

impl PrincipalMatch {
    pub fn parse(pattern: &str) -> Self {
        match pattern.strip_suffix('*') {
            Some(prefix) => PrincipalMatch::Prefix(prefix.to_string()),
            None => PrincipalMatch::Exact(pattern.to_string()),
        }
    }

    pub fn matches(&self, principal: &str) -> bool {
        match self {
            PrincipalMatch::Exact(p) => p == principal,
            PrincipalMatch::Prefix(p) => principal.starts_with(p.as_str()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct When {
    pub status: Vec<StatusMatch>,
    pub path_prefix: Option<String>,
    pub method: Option<String>,
    pub principal: Option<PrincipalMatch>,
    /// The destination workload's principal (exact or trailing `*`): under
    /// Istio, route and cluster names do not tell workloads apart.
    pub destination: Option<PrincipalMatch>,
    pub route: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub name: String,
    pub when: When,
    pub rate: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    pub default_rate: f64,
    /// Lower-cased header name whose value decides deterministically.
    pub key: String,
    pub max_records_per_second: u64,
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Integrity {
    pub chain: bool,
    /// HMAC key of the chain (and its genesis).
    pub key: Option<Secret>,
    /// Signs every seal.
    pub signer: Option<Signer>,
    /// A seal ends every batch; otherwise only the emitter's last batch.
    pub seal_every_batch: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub name: String,
    pub path_prefix: String,
    pub allow_principals: Vec<PrincipalMatch>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub sink: Sink,
    pub batch: Batch,
    pub retry: Retry,
    pub on_overflow: Overflow,
    pub capture: Capture,
    pub redact: Redact,
    pub sampling: Sampling,
    pub integrity: Integrity,
    pub access_policy: Vec<Policy>,
    /// First 4 bytes (hex) of SHA-256 of the configuration bytes: `plugin.config`.
    pub digest: String,
    /// Key variables found missing, in configuration order.
    pub degraded: Vec<Degradation>,
}
