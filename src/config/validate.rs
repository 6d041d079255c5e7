//! Raw → validated, one function per section of the configuration: each
//! applies its defaults and checks its values, erring at the first problem
//! with the JSON path of the value at fault. A key variable that is absent
//! is a degradation, not an error (SPEC §2.7).

mod checks;
mod keys;

use super::model::*;
use super::raw::*;
use super::{ConfigError, Env};
use checks::*;
use keys::{bearer, key_or_degrade, validate_integrity, HASH_KEY_MISSING};

/// `sink.compression` when not given, for either format: see the README
/// ("Compression") for why gzip is opt-in.
const DEFAULT_COMPRESSION: Compression = Compression::None;

/// The longest `sink.timeout_ms`: a sink slower than an hour is down.
const MAX_TIMEOUT_MS: u64 = 3_600_000;

pub fn validate(raw: RawConfig, env: &dyn Env, digest: String) -> Result<Config, ConfigError> {
    let mut degraded = Vec::new();
    Ok(Config {
        sink: validate_sink(raw.sink, env)?,
        batch: validate_batch(raw.batch)?,
        retry: validate_retry(raw.retry)?,
        on_overflow: one_of(
            "on_overflow",
            "value",
            raw.on_overflow.as_deref(),
            Overflow::Drop,
            &[("drop", Overflow::Drop), ("reject", Overflow::Reject)],
        )?,
        capture: validate_capture(raw.capture)?,
        redact: validate_redact(raw.redact, env, &mut degraded)?,
        sampling: validate_sampling(raw.sampling)?,
        integrity: validate_integrity(raw.integrity, env, &mut degraded)?,
        access_policy: validate_access_policy(raw.access_policy)?,
        digest,
        degraded,
    })
}

fn validate_sink(s: RawSink, env: &dyn Env) -> Result<Sink, ConfigError> {
    non_empty("sink.cluster", &s.cluster)?;
    let format = one_of(
        "sink.format",
        "format",
        s.format.as_deref(),
        Format::Jsonl,
        &[("jsonl", Format::Jsonl), ("otlp", Format::Otlp)],
    )?;
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
    let mut headers = Vec::new();
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
        headers.push((name, v));
    }
    let authorization = match &s.token_env {
        Some(name) => Some(bearer(env, name)?),
        None => None,
    };
    let timeout_ms = match positive("sink.timeout_ms", s.timeout_ms, 5000)? {
        // The proxy-wasm ABI carries a dispatch timeout as 32-bit milliseconds.
        t if t > MAX_TIMEOUT_MS => {
            return Err(ConfigError::at(
                "sink.timeout_ms",
                format!("must be at most {MAX_TIMEOUT_MS} (one hour)"),
            ))
        }
        t => t,
    };
    Ok(Sink {
        cluster: s.cluster,
        authority,
        path,
        format,
        timeout_ms,
        headers,
        compression: one_of(
            "sink.compression",
            "compression",
            s.compression.as_deref(),
            DEFAULT_COMPRESSION,
            &[("none", Compression::None), ("gzip", Compression::Gzip)],
        )?,
        authorization,
    })
}

fn validate_batch(b: RawBatch) -> Result<Batch, ConfigError> {
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
    Ok(Batch {
        max_records: as_usize("batch.max_records", max_records)?,
        max_bytes: as_usize("batch.max_bytes", max_bytes)?,
        flush_interval_ms: positive("batch.flush_interval_ms", b.flush_interval_ms, 1000)?,
        max_buffered_records: as_usize("batch.max_buffered_records", max_buffered_records)?,
        max_buffered_bytes: as_usize("batch.max_buffered_bytes", max_buffered_bytes)?,
        max_in_flight: as_usize(
            "batch.max_in_flight",
            positive("batch.max_in_flight", b.max_in_flight, 2)?,
        )?,
    })
}

fn validate_retry(r: RawRetry) -> Result<Retry, ConfigError> {
    let backoff_base_ms = positive("retry.backoff_base_ms", r.backoff_base_ms, 200)?;
    let backoff_max_ms = positive("retry.backoff_max_ms", r.backoff_max_ms, 30_000)?;
    if backoff_max_ms < backoff_base_ms {
        return Err(ConfigError::at(
            "retry.backoff_max_ms",
            format!("must be at least retry.backoff_base_ms ({backoff_base_ms})"),
        ));
    }
    Ok(Retry {
        backoff_base_ms,
        backoff_max_ms,
    })
}

fn validate_capture(c: RawCapture) -> Result<Capture, ConfigError> {
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
        Some(j) => Some(validate_jwt(j)?),
    };
    Ok(Capture {
        request_headers: names(c.request_headers, "request_headers")?,
        response_headers: names(c.response_headers, "response_headers")?,
        query: c.query.unwrap_or(true),
        jwt,
    })
}

fn validate_jwt(j: RawJwt) -> Result<Jwt, ConfigError> {
    let ns = j
        .metadata_namespace
        .unwrap_or_else(|| "envoy.filters.http.jwt_authn".into());
    non_empty("capture.jwt.metadata_namespace", &ns)?;
    // The key Istio (>= 1.24) keeps the verified payload under (SPEC §8).
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
    Ok(Jwt {
        metadata_namespace: ns,
        payload_key: key,
        claims,
    })
}

fn validate_redact(
    r: RawRedact,
    env: &dyn Env,
    degraded: &mut Vec<Degradation>,
) -> Result<Redact, ConfigError> {
    // The first rule that hashes: hashing needs a key.
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
    let headers = rules(r.headers, "headers", true)?;
    let query_params = rules(r.query_params, "query_params", false)?;
    let claims = rules(r.claims, "claims", false)?;
    let hash_key = match (&r.hash_key_env, uses_hash) {
        (Some(name), _) => key_or_degrade(
            degraded,
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
            super::Glob::parse(p)
                .map_err(|e| ConfigError::at(format!("redact.path_segments[{i}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Redact {
        headers,
        query_params,
        claims,
        hash_key,
        path_segments,
    })
}

fn validate_sampling(s: RawSampling) -> Result<Sampling, ConfigError> {
    let default_rate = rate("sampling.default_rate", s.default_rate.unwrap_or(1.0))?;
    let key = header_name("sampling.key", s.key.as_deref().unwrap_or("x-request-id"))?;
    let rules = s
        .rules
        .into_iter()
        .enumerate()
        .map(|(i, rule)| validate_rule(&format!("sampling.rules[{i}]"), rule))
        .collect::<Result<_, _>>()?;
    Ok(Sampling {
        default_rate,
        key,
        max_records_per_second: s.max_records_per_second.unwrap_or(0),
        rules,
    })
}

/// Sampling rule `p` (its JSON path).
fn validate_rule(p: &str, rule: RawRule) -> Result<Rule, ConfigError> {
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
    for (field, value) in [
        ("method", &w.method),
        ("principal", &w.principal),
        ("destination", &w.destination),
        ("route", &w.route),
    ] {
        if let Some(v) = value {
            non_empty(&format!("{p}.when.{field}"), v)?;
        }
    }
    Ok(Rule {
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
    })
}

fn validate_access_policy(list: Vec<RawPolicy>) -> Result<Vec<Policy>, ConfigError> {
    let mut access_policy = Vec::new();
    for (i, p) in list.into_iter().enumerate() {
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
    Ok(access_policy)
}
