//! Plugin configuration (SPEC §3): serde checks the shape, then
//! [`Config::from_json`] turns it into a validated, ready-to-use form.
//!
//! Every error names the JSON path of the offending value, so the single log
//! line `mesh-audit: invalid configuration: <path>: <what>` points at it.

mod read;

use crate::deliver::seal::Signer;
use crate::secret::Secret;
use read::Obj;
use serde_json::Value;
use std::fmt;

/// A configuration error: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The exact log line the filter writes for a rejected configuration.
pub fn error_line(err: &ConfigError) -> String {
    format!("mesh-audit: invalid configuration: {err}")
}

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

/// The log line for a degradation, repeated while it lasts.
pub fn degraded_line(d: &Degradation) -> String {
    format!(
        "mesh-audit: degraded configuration: {}; {} ({})",
        d.problem, d.instead, d.code
    )
}

// ---------------------------------------------------------------- shape ---
#[derive(Default)]
struct RawConfig {
    sink: RawSink,
    batch: RawBatch,
    retry: RawRetry,
    on_overflow: Option<String>,
    capture: RawCapture,
    redact: RawRedact,
    sampling: RawSampling,
    integrity: RawIntegrity,
    access_policy: Vec<RawPolicy>,
}
#[derive(Default)]
struct RawSink {
    cluster: String,
    authority: Option<String>,
    path: Option<String>,
    format: Option<String>,
    timeout_ms: Option<u64>,
    headers: Vec<(String, String)>,
    compression: Option<String>,
    token_env: Option<String>,
}

#[derive(Default)]
struct RawBatch {
    max_records: Option<u64>,
    max_bytes: Option<u64>,
    flush_interval_ms: Option<u64>,
    max_buffered_records: Option<u64>,
    max_buffered_bytes: Option<u64>,
    max_in_flight: Option<u64>,
}

#[derive(Default)]
struct RawRetry {
    backoff_base_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
}

#[derive(Default)]
struct RawCapture {
    request_headers: Vec<String>,
    response_headers: Vec<String>,
    query: Option<bool>,
    jwt: Option<RawJwt>,
}
#[derive(Default)]
struct RawJwt {
    metadata_namespace: Option<String>,
    payload_key: Option<String>,
    claims: Vec<String>,
}

#[derive(Default)]
struct RawRedact {
    headers: Vec<(String, String)>,
    query_params: Vec<(String, String)>,
    claims: Vec<(String, String)>,
    hash_key_env: Option<String>,
    path_segments: Vec<String>,
}

#[derive(Default)]
struct RawSampling {
    default_rate: Option<f64>,
    key: Option<String>,
    max_records_per_second: Option<u64>,
    rules: Vec<RawRule>,
}
#[derive(Default)]
struct RawRule {
    name: String,
    when: RawWhen,
    rate: f64,
}

#[derive(Default)]
struct RawWhen {
    status: Option<Vec<String>>,
    path_prefix: Option<String>,
    method: Option<String>,
    principal: Option<String>,
    destination: Option<String>,
    route: Option<String>,
}

#[derive(Default)]
struct RawIntegrity {
    chain: Option<bool>,
    key_env: Option<String>,
    signing_key_env: Option<String>,
    seal_every_batch: Option<bool>,
}
#[derive(Default)]
struct RawPolicy {
    name: String,
    path_prefix: String,
    allow_principals: Vec<String>,
}

fn read_raw(v: &Value) -> Result<RawConfig, ConfigError> {
    let top = Obj::new(
        v,
        "",
        &[
            "sink",
            "batch",
            "retry",
            "on_overflow",
            "capture",
            "redact",
            "sampling",
            "integrity",
            "access_policy",
        ],
    )?;
    let sink_v = top.required("sink")?;
    let sink = Obj::new(
        sink_v,
        "sink",
        &[
            "cluster",
            "authority",
            "path",
            "format",
            "timeout_ms",
            "headers",
            "compression",
            "token_env",
        ],
    )?;
    let raw_sink = RawSink {
        cluster: read::as_string(sink.required("cluster")?, "sink.cluster")?,
        authority: sink.string("authority")?,
        path: sink.string("path")?,
        format: sink.string("format")?,
        timeout_ms: sink.u64("timeout_ms")?,
        headers: sink.string_map("headers")?,
        compression: sink.string("compression")?,
        token_env: sink.string("token_env")?,
    };
    let batch = match top.object(
        "batch",
        &[
            "max_records",
            "max_bytes",
            "flush_interval_ms",
            "max_buffered_records",
            "max_buffered_bytes",
            "max_in_flight",
        ],
    )? {
        None => RawBatch::default(),
        Some(b) => RawBatch {
            max_records: b.u64("max_records")?,
            max_bytes: b.u64("max_bytes")?,
            flush_interval_ms: b.u64("flush_interval_ms")?,
            max_buffered_records: b.u64("max_buffered_records")?,
            max_buffered_bytes: b.u64("max_buffered_bytes")?,
            max_in_flight: b.u64("max_in_flight")?,
        },
    };
    let retry = match top.object("retry", &["backoff_base_ms", "backoff_max_ms"])? {
        None => RawRetry::default(),
        Some(r) => RawRetry {
            backoff_base_ms: r.u64("backoff_base_ms")?,
            backoff_max_ms: r.u64("backoff_max_ms")?,
        },
    };
    let capture = match top.object(
        "capture",
        &["request_headers", "response_headers", "query", "jwt"],
    )? {
        None => RawCapture::default(),
        Some(c) => RawCapture {
            request_headers: c.strings("request_headers")?,
            response_headers: c.strings("response_headers")?,
            query: c.bool("query")?,
            jwt: match c.object("jwt", &["metadata_namespace", "payload_key", "claims"])? {
                None => None,
                Some(j) => Some(RawJwt {
                    metadata_namespace: j.string("metadata_namespace")?,
                    payload_key: j.string("payload_key")?,
                    claims: j.strings("claims")?,
                }),
            },
        },
    };
    let redact = match top.object(
        "redact",
        &[
            "headers",
            "query_params",
            "claims",
            "hash_key_env",
            "path_segments",
        ],
    )? {
        None => RawRedact::default(),
        Some(r) => RawRedact {
            headers: r.string_map("headers")?,
            query_params: r.string_map("query_params")?,
            claims: r.string_map("claims")?,
            hash_key_env: r.string("hash_key_env")?,
            path_segments: r.strings("path_segments")?,
        },
    };
    let sampling = match top.object(
        "sampling",
        &["default_rate", "key", "max_records_per_second", "rules"],
    )? {
        None => RawSampling::default(),
        Some(s) => {
            let mut rules = Vec::new();
            for (path, rv) in s.list("rules")? {
                let r = Obj::new(rv, &path, &["name", "when", "rate"])?;
                let when = match r.object(
                    "when",
                    &[
                        "status",
                        "path_prefix",
                        "method",
                        "principal",
                        "destination",
                        "route",
                    ],
                )? {
                    None => RawWhen::default(),
                    Some(w) => RawWhen {
                        status: match w.required("status") {
                            Ok(_) => Some(w.strings("status")?),
                            Err(_) => None,
                        },
                        path_prefix: w.string("path_prefix")?,
                        method: w.string("method")?,
                        principal: w.string("principal")?,
                        destination: w.string("destination")?,
                        route: w.string("route")?,
                    },
                };
                rules.push(RawRule {
                    name: read::as_string(r.required("name")?, &r.path("name"))?,
                    when,
                    rate: r
                        .f64("rate")?
                        .ok_or_else(|| ConfigError::at(r.path("rate"), "is required"))?,
                });
            }
            RawSampling {
                default_rate: s.f64("default_rate")?,
                key: s.string("key")?,
                max_records_per_second: s.u64("max_records_per_second")?,
                rules,
            }
        }
    };
    let integrity = match top.object(
        "integrity",
        &["chain", "key_env", "signing_key_env", "seal_every_batch"],
    )? {
        None => RawIntegrity::default(),
        Some(i) => RawIntegrity {
            chain: i.bool("chain")?,
            key_env: i.string("key_env")?,
            signing_key_env: i.string("signing_key_env")?,
            seal_every_batch: i.bool("seal_every_batch")?,
        },
    };
    let mut access_policy = Vec::new();
    for (path, pv) in top.list("access_policy")? {
        let p = Obj::new(pv, &path, &["name", "path_prefix", "allow_principals"])?;
        access_policy.push(RawPolicy {
            name: read::as_string(p.required("name")?, &p.path("name"))?,
            path_prefix: read::as_string(p.required("path_prefix")?, &p.path("path_prefix"))?,
            allow_principals: {
                p.required("allow_principals")?;
                p.strings("allow_principals")?
            },
        });
    }
    Ok(RawConfig {
        sink: raw_sink,
        batch,
        retry,
        on_overflow: top.string("on_overflow")?,
        capture,
        redact,
        sampling,
        integrity,
        access_policy,
    })
}

// ------------------------------------------------------------ validated ---

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
    pub path_segments: Vec<crate::audit::redact::Glob>,
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

/// Where configuration reads environment variables from.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl Config {
    /// Parses and validates configuration bytes.
    pub fn from_json(bytes: &[u8], env: &dyn Env) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| ConfigError::at("$", format!("not valid JSON: {e}")))?;
        validate(read_raw(&value)?, env, digest(bytes))
    }
}

fn digest(bytes: &[u8]) -> String {
    let sum = crate::digest::sha256(bytes);
    crate::audit::hex(&sum[..4])
}

/// `sink.compression` when not given, for either format: see the README
/// ("Compression") for why gzip is opt-in.
const DEFAULT_COMPRESSION: Compression = Compression::None;

/// The longest `sink.timeout_ms`: a sink slower than an hour is down.
const MAX_TIMEOUT_MS: u64 = 3_600_000;

fn positive(path: &str, value: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::at(path, "must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

fn as_usize(path: &str, v: u64) -> Result<usize, ConfigError> {
    usize::try_from(v).map_err(|_| ConfigError::at(path, "is too large"))
}

fn rate(path: &str, r: f64) -> Result<f64, ConfigError> {
    if r.is_finite() && (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(ConfigError::at(
            path,
            format!("must be between 0 and 1, got {r}"),
        ))
    }
}

fn non_empty(path: &str, s: &str) -> Result<(), ConfigError> {
    if s.trim().is_empty() {
        Err(ConfigError::at(path, "must not be empty"))
    } else {
        Ok(())
    }
}

fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    non_empty(path, name)?;
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:".contains(&b));
    if !valid {
        return Err(ConfigError::at(
            path,
            format!("\"{name}\" is not a valid header name"),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

fn action(path: &str, name: &str, keep: bool) -> Result<Action, ConfigError> {
    match name {
        "mask" => Ok(Action::Mask),
        "drop" => Ok(Action::Drop),
        "hash" => Ok(Action::Hash),
        "keep" if keep => Ok(Action::Keep),
        "keep" => Err(ConfigError::at(
            path,
            "action \"keep\" opts out of a default redaction, and claims have none: remove the rule",
        )),
        other => Err(ConfigError::at(
            path,
            format!(
                "unknown action \"{other}\", expected one of mask, drop, hash{}",
                if keep { ", keep" } else { "" }
            ),
        )),
    }
}

/// Pseudo-headers (`:path`, `:authority`, …) are facts with fields of their
/// own, redacted there; captured as headers they would bypass that.
fn not_pseudo(path: &str, name: &str) -> Result<(), ConfigError> {
    if name.starts_with(':') {
        return Err(ConfigError::at(
            path,
            format!("\"{name}\" is a pseudo-header: its fact has its own field in the record (request.method, .authority, .path, .query, response.code)"),
        ));
    }
    Ok(())
}

fn status_match(path: &str, s: &str) -> Result<StatusMatch, ConfigError> {
    let bad = || {
        ConfigError::at(
            path,
            format!("\"{s}\" is not a status code (100-599) or class (1xx-5xx)"),
        )
    };
    let b = s.as_bytes();
    if b.len() != 3 {
        return Err(bad());
    }
    let class = match b[0] {
        c @ b'1'..=b'5' => u32::from(c - b'0'),
        _ => return Err(bad()),
    };
    if &s[1..] == "xx" {
        return Ok(StatusMatch::Class(class));
    }
    match s.parse::<u32>() {
        Ok(code) if (100..=599).contains(&code) => Ok(StatusMatch::Exact(code)),
        _ => Err(bad()),
    }
}

fn env_key(path: &str, env: &dyn Env, name: &str) -> Result<Secret, ConfigError> {
    non_empty(path, name)?;
    match env.var(name) {
        Some(v) if !v.is_empty() => Ok(Secret::new(v.into_bytes())),
        _ => Err(ConfigError::at(
            path,
            format!("environment variable {name} is not set (pass it in vm_config.environment_variables)"),
        )),
    }
}

/// A key named by `path` (an environment variable name, if configured):
/// `Ok(None)` when not configured; when the variable is absent, the
/// degradation `code` is noted and the filter runs without the key.
fn key_or_degrade(
    degraded: &mut Vec<Degradation>,
    path: &str,
    env: &dyn Env,
    name: Option<&str>,
    (code, instead, scope): (&'static str, &'static str, Scope),
) -> Result<Option<Secret>, ConfigError> {
    let Some(name) = name else {
        return Ok(None);
    };
    match env_key(path, env, name) {
        Ok(key) => Ok(Some(key)),
        Err(problem) if !name.trim().is_empty() => {
            degraded.push(Degradation {
                code,
                problem,
                instead,
                scope,
            });
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The degradations a missing key causes: (code, what happens instead, scope).
const HASH_KEY_MISSING: (&str, &str, Scope) =
    ("hash_key_missing", "hash becomes mask", Scope::Requests);
const CHAIN_KEY_MISSING: (&str, &str, Scope) = (
    "chain_key_missing",
    "the chain is unkeyed (plain SHA-256)",
    Scope::Records,
);
const SIGNING_KEY_MISSING: (&str, &str, Scope) =
    ("signing_key_missing", "seals are unsigned", Scope::Records);

fn validate(raw: RawConfig, env: &dyn Env, digest: String) -> Result<Config, ConfigError> {
    let mut degraded = Vec::new();
    // sink
    let s = raw.sink;
    non_empty("sink.cluster", &s.cluster)?;
    let format = match s.format.as_deref() {
        None | Some("jsonl") => Format::Jsonl,
        Some("otlp") => Format::Otlp,
        Some(other) => {
            return Err(ConfigError::at(
                "sink.format",
                format!("unknown format \"{other}\", expected jsonl or otlp"),
            ))
        }
    };
    let path = match s.path {
        Some(p) if !p.starts_with('/') => {
            return Err(ConfigError::at("sink.path", "must start with /"))
        }
        Some(p) => p,
        None if format == Format::Otlp => "/v1/logs".to_string(),
        None => "/v1/audit".to_string(),
    };
    let authority = match s.authority {
        Some(a) => {
            non_empty("sink.authority", &a)?;
            a
        }
        None => s.cluster.clone(),
    };
    let mut sink_headers = Vec::new();
    for (k, v) in s.headers {
        let p = format!("sink.headers.{k}");
        let name = header_name(&p, &k)?;
        if name.starts_with(':')
            || name == "content-type"
            || name == "content-length"
            || name == "content-encoding"
        {
            return Err(ConfigError::at(
                p,
                "is set by mesh-audit and cannot be overridden",
            ));
        }
        if name == "authorization" && s.token_env.is_some() {
            return Err(ConfigError::at(
                p,
                "is set from sink.token_env; give one of the two",
            ));
        }
        sink_headers.push((name, v));
    }
    let authorization = match &s.token_env {
        Some(name) => {
            let token = env_key("sink.token_env", env, name)?;
            let token = std::str::from_utf8(&token)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| {
                    ConfigError::at(
                        "sink.token_env",
                        format!("environment variable {name} must hold a token of visible ASCII characters"),
                    )
                })?;
            Some(Secret::new(format!("Bearer {token}").into_bytes()))
        }
        None => None,
    };
    let sink = Sink {
        cluster: s.cluster,
        authority,
        path,
        format,
        timeout_ms: match positive("sink.timeout_ms", s.timeout_ms, 5000)? {
            // The proxy-wasm ABI carries a dispatch timeout as 32-bit milliseconds.
            t if t > MAX_TIMEOUT_MS => {
                return Err(ConfigError::at(
                    "sink.timeout_ms",
                    format!("must be at most {MAX_TIMEOUT_MS} (one hour)"),
                ))
            }
            t => t,
        },
        headers: sink_headers,
        compression: match s.compression.as_deref() {
            None => DEFAULT_COMPRESSION,
            Some("none") => Compression::None,
            Some("gzip") => Compression::Gzip,
            Some(other) => {
                return Err(ConfigError::at(
                    "sink.compression",
                    format!("unknown compression \"{other}\", expected none or gzip"),
                ))
            }
        },
        authorization,
    };

    // batch
    let b = raw.batch;
    let max_records = positive("batch.max_records", b.max_records, 500)?;
    let max_bytes = positive("batch.max_bytes", b.max_bytes, 1_048_576)?;
    let max_buffered_records =
        positive("batch.max_buffered_records", b.max_buffered_records, 20_000)?;
    let max_buffered_bytes =
        positive("batch.max_buffered_bytes", b.max_buffered_bytes, 33_554_432)?;
    if max_buffered_records < max_records {
        return Err(ConfigError::at(
            "batch.max_buffered_records",
            format!("must be at least batch.max_records ({max_records})"),
        ));
    }
    if max_buffered_bytes < max_bytes {
        return Err(ConfigError::at(
            "batch.max_buffered_bytes",
            format!("must be at least batch.max_bytes ({max_bytes})"),
        ));
    }
    let batch = Batch {
        max_records: as_usize("batch.max_records", max_records)?,
        max_bytes: as_usize("batch.max_bytes", max_bytes)?,
        flush_interval_ms: positive("batch.flush_interval_ms", b.flush_interval_ms, 1000)?,
        max_buffered_records: as_usize("batch.max_buffered_records", max_buffered_records)?,
        max_buffered_bytes: as_usize("batch.max_buffered_bytes", max_buffered_bytes)?,
        max_in_flight: as_usize(
            "batch.max_in_flight",
            positive("batch.max_in_flight", b.max_in_flight, 2)?,
        )?,
    };

    // retry
    let backoff_base_ms = positive("retry.backoff_base_ms", raw.retry.backoff_base_ms, 200)?;
    let backoff_max_ms = positive("retry.backoff_max_ms", raw.retry.backoff_max_ms, 30_000)?;
    if backoff_max_ms < backoff_base_ms {
        return Err(ConfigError::at(
            "retry.backoff_max_ms",
            format!("must be at least retry.backoff_base_ms ({backoff_base_ms})"),
        ));
    }
    let retry = Retry {
        backoff_base_ms,
        backoff_max_ms,
    };

    let on_overflow = match raw.on_overflow.as_deref() {
        None | Some("drop") => Overflow::Drop,
        Some("reject") => Overflow::Reject,
        Some(other) => {
            return Err(ConfigError::at(
                "on_overflow",
                format!("unknown value \"{other}\", expected drop or reject"),
            ))
        }
    };

    // capture
    let c = raw.capture;
    let names = |list: Vec<String>, field: &str| -> Result<Vec<String>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, n)| {
                let p = format!("capture.{field}[{i}]");
                not_pseudo(&p, n)?;
                header_name(&p, n)
            })
            .collect()
    };
    let jwt = match c.jwt {
        None => None,
        Some(j) => {
            let ns = j
                .metadata_namespace
                .unwrap_or_else(|| "envoy.filters.http.jwt_authn".into());
            non_empty("capture.jwt.metadata_namespace", &ns)?;
            let key = j.payload_key.unwrap_or_else(|| "payload".into());
            non_empty("capture.jwt.payload_key", &key)?;
            let claims = if j.claims.is_empty() {
                vec!["sub".into(), "iss".into()]
            } else {
                j.claims
            };
            for (i, claim) in claims.iter().enumerate() {
                non_empty(&format!("capture.jwt.claims[{i}]"), claim)?;
            }
            Some(Jwt {
                metadata_namespace: ns,
                payload_key: key,
                claims,
            })
        }
    };
    let capture = Capture {
        request_headers: names(c.request_headers, "request_headers")?,
        response_headers: names(c.response_headers, "response_headers")?,
        query: c.query.unwrap_or(true),
        jwt,
    };

    // redact
    let r = raw.redact;
    let mut uses_hash = None;
    let mut rules = |map: Vec<(String, String)>,
                     field: &str,
                     lower: bool|
     -> Result<Vec<(String, Action)>, ConfigError> {
        let mut out = Vec::new();
        for (k, v) in map {
            let p = format!("redact.{field}.{k}");
            non_empty(&p, &k)?;
            if field == "headers" {
                not_pseudo(&p, &k)?;
            }
            let a = action(&p, &v, field != "claims")?;
            if a == Action::Hash && uses_hash.is_none() {
                uses_hash = Some(p);
            }
            out.push((if lower { k.to_ascii_lowercase() } else { k }, a));
        }
        Ok(out)
    };
    let redact_headers = rules(r.headers, "headers", true)?;
    let redact_query = rules(r.query_params, "query_params", false)?;
    let redact_claims = rules(r.claims, "claims", false)?;
    let hash_key = match (&r.hash_key_env, uses_hash) {
        (Some(name), _) => key_or_degrade(
            &mut degraded,
            "redact.hash_key_env",
            env,
            Some(name),
            HASH_KEY_MISSING,
        )?,
        (None, Some(p)) => {
            return Err(ConfigError::at(
                p,
                "action \"hash\" needs redact.hash_key_env",
            ))
        }
        (None, None) => None,
    };
    let path_segments = r
        .path_segments
        .iter()
        .enumerate()
        .map(|(i, p)| {
            crate::audit::redact::Glob::parse(p)
                .map_err(|e| ConfigError::at(format!("redact.path_segments[{i}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let redact = Redact {
        headers: redact_headers,
        query_params: redact_query,
        claims: redact_claims,
        hash_key,
        path_segments,
    };

    // sampling
    let sm = raw.sampling;
    let default_rate = rate("sampling.default_rate", sm.default_rate.unwrap_or(1.0))?;
    let key = header_name("sampling.key", sm.key.as_deref().unwrap_or("x-request-id"))?;
    let mut rules_out = Vec::new();
    for (i, rule) in sm.rules.into_iter().enumerate() {
        let p = format!("sampling.rules[{i}]");
        non_empty(&format!("{p}.name"), &rule.name)?;
        let w = rule.when;
        let status = match w.status {
            None => Vec::new(),
            Some(list) => {
                if list.is_empty() {
                    return Err(ConfigError::at(
                        format!("{p}.when.status"),
                        "must not be empty",
                    ));
                }
                list.iter()
                    .enumerate()
                    .map(|(j, s)| status_match(&format!("{p}.when.status[{j}]"), s))
                    .collect::<Result<_, _>>()?
            }
        };
        if let Some(v) = &w.path_prefix {
            if !v.starts_with('/') {
                return Err(ConfigError::at(
                    format!("{p}.when.path_prefix"),
                    "must start with /",
                ));
            }
        }
        if let Some(v) = &w.method {
            non_empty(&format!("{p}.when.method"), v)?;
        }
        if let Some(v) = &w.principal {
            non_empty(&format!("{p}.when.principal"), v)?;
        }
        if let Some(v) = &w.destination {
            non_empty(&format!("{p}.when.destination"), v)?;
        }
        if let Some(v) = &w.route {
            non_empty(&format!("{p}.when.route"), v)?;
        }
        rules_out.push(Rule {
            name: rule.name,
            when: When {
                status,
                path_prefix: w.path_prefix,
                method: w.method.map(|m| m.to_ascii_uppercase()),
                principal: w.principal.as_deref().map(PrincipalMatch::parse),
                destination: w.destination.as_deref().map(PrincipalMatch::parse),
                route: w.route,
            },
            rate: rate(&format!("{p}.rate"), rule.rate)?,
        });
    }
    let sampling = Sampling {
        default_rate,
        key,
        max_records_per_second: sm.max_records_per_second.unwrap_or(0),
        rules: rules_out,
    };

    // integrity
    let chain = raw.integrity.chain.unwrap_or(true);
    let signing_path = "integrity.signing_key_env";
    if raw.integrity.signing_key_env.is_some() && !chain {
        // A seal vouches for earlier records only through `prev`.
        return Err(ConfigError::at(
            signing_path,
            "needs integrity.chain: a seal vouches for the records before it only through the chain",
        ));
    }
    let signing_key = key_or_degrade(
        &mut degraded,
        signing_path,
        env,
        raw.integrity.signing_key_env.as_deref(),
        SIGNING_KEY_MISSING,
    )?;
    let signer = match (signing_key, raw.integrity.signing_key_env.as_deref()) {
        (Some(text), Some(name)) => {
            let text = std::str::from_utf8(&text).unwrap_or("");
            Some(Signer::parse(text).map_err(|e| {
                ConfigError::at(signing_path, format!("environment variable {name} {e}"))
            })?)
        }
        _ => None,
    };
    let integrity = Integrity {
        chain,
        key: key_or_degrade(
            &mut degraded,
            "integrity.key_env",
            env,
            raw.integrity.key_env.as_deref(),
            CHAIN_KEY_MISSING,
        )?,
        signer,
        seal_every_batch: raw.integrity.seal_every_batch.unwrap_or(true),
    };

    // access policy
    let mut access_policy = Vec::new();
    for (i, p) in raw.access_policy.into_iter().enumerate() {
        let at = format!("access_policy[{i}]");
        non_empty(&format!("{at}.name"), &p.name)?;
        if !p.path_prefix.starts_with('/') {
            return Err(ConfigError::at(
                format!("{at}.path_prefix"),
                "must start with /",
            ));
        }
        for (j, pr) in p.allow_principals.iter().enumerate() {
            non_empty(&format!("{at}.allow_principals[{j}]"), pr)?;
        }
        access_policy.push(Policy {
            name: p.name,
            path_prefix: p.path_prefix,
            allow_principals: p
                .allow_principals
                .iter()
                .map(|s| PrincipalMatch::parse(s))
                .collect(),
        });
    }

    Ok(Config {
        sink,
        batch,
        retry,
        on_overflow,
        capture,
        redact,
        sampling,
        integrity,
        access_policy,
        digest,
        degraded,
    })
}

#[cfg(test)]
mod tests;
