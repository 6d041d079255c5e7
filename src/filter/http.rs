//! A request's facts → its audit record, at `on_log`.
//!
//! Host calls are the cost that matters (each one is microseconds in V8), so
//! this reads header maps whole, once; takes the status, method, path and
//! request id from them; takes identity and TLS facts from the per-connection
//! cache; and decides sampling before reading anything a dropped record would
//! not need.

use super::naming::Naming;
use super::root::Auditor;
use super::stats::Counter;
use crate::audit::identity::{decision, decode_flags, span_id, trace_id};
use crate::audit::record::{
    Decision, Fields, Kind, Plugin, Record, Request, Response, Route, Sample,
};
use crate::audit::sample::Facts;
use crate::audit::time::format_rfc3339;
use crate::audit::{jwt, policy};
use crate::host::{le_u64, Headers, Host, Map};

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

fn header_str(headers: &Headers, name: &str) -> Option<String> {
    header(headers, name).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn text(host: &dyn Host, path: &[&str]) -> Option<String> {
    let b = host.property(path)?;
    (!b.is_empty()).then(|| String::from_utf8_lossy(&b).into_owned())
}

fn int(host: &dyn Host, path: &[&str]) -> Option<u64> {
    le_u64(&host.property(path)?)
}

fn route_facts(host: &dyn Host, naming: &mut Naming) -> Route {
    let xds = |host: &dyn Host| Route {
        name: text(host, &["xds", "route_name"]),
        cluster: text(host, &["xds", "cluster_name"]),
        virtual_host: text(host, &["xds", "virtual_host_name"]),
    };
    let legacy = |host: &dyn Host| Route {
        name: text(host, &["route_name"]),
        cluster: text(host, &["cluster_name"]),
        virtual_host: None,
    };
    let found = |r: &Route| r.name.is_some() || r.cluster.is_some() || r.virtual_host.is_some();
    match *naming {
        Naming::Xds => xds(host),
        Naming::Legacy => legacy(host),
        Naming::Unknown => {
            let r = xds(host);
            if found(&r) {
                *naming = Naming::Xds;
                return r;
            }
            let r = legacy(host);
            if found(&r) {
                *naming = Naming::Legacy;
            }
            r
        }
    }
}

/// What auditing a finished request came to, before admission.
pub enum Outcome {
    /// Kept: the record, and the time it is admitted at (the request's end).
    Keep(Box<Record>, u64),
    /// Let go by the sampler; `rate_limited_at` when the rate cap did it.
    SampledOut { rate_limited_at: Option<u64> },
    /// The auditor is not configured.
    Inactive,
}

/// `on_log`: audit the request that just finished.
pub fn on_log(auditor: &mut Auditor, host: &dyn Host) {
    if auditor.is_inert() {
        auditor.unaudited();
        return;
    }
    match build(auditor, host) {
        Outcome::Keep(record, at) => auditor.admit(host, *record, at),
        Outcome::SampledOut { rate_limited_at } => auditor.sampled_out(rate_limited_at),
        Outcome::Inactive => {}
    }
}

/// A finished request's facts → its record or the sampler's verdict, with
/// policy violations counted; admission is the caller's (the native module
/// builds on a worker and admits on the thread that delivers).
pub fn build(auditor: &mut Auditor, host: &dyn Host) -> Outcome {
    let draw = auditor.draw();
    let Some(active) = auditor.active.as_mut() else {
        return Outcome::Inactive;
    };
    let req_headers = host.headers(Map::RequestHeaders);
    let resp_headers = host.headers(Map::ResponseHeaders);
    let status = header_str(&resp_headers, ":status")
        .and_then(|s| s.trim().parse::<u32>().ok())
        .or_else(|| {
            int(host, &["response", "code"])
                .map(|c| c as u32)
                .filter(|&c| c != 0)
        });
    let method = header_str(&req_headers, ":method");
    let full_path = header_str(&req_headers, ":path");
    let (path, query) = match full_path.as_deref().map(|p| p.split_once('?')) {
        Some(Some((p, q))) => (Some(p.to_string()), Some(q.to_string())),
        Some(None) => (full_path.clone(), None),
        None => (None, None),
    };

    let needs_identity = active.rules_use_principal
        || active.rules_use_destination
        || !active.config.access_policy.is_empty();
    let conn = needs_identity.then(|| {
        active
            .conns
            .get_or_read(int(host, &["connection", "id"]), host)
    });
    let principal = conn.as_ref().and_then(|c| c.source.principal.clone());
    let destination = conn.as_ref().and_then(|c| c.destination.principal.clone());
    let violation = path
        .as_deref()
        .and_then(|p| policy::violation(&active.config.access_policy, p, principal.as_deref()))
        .map(str::to_string);
    let mut route = None;
    if active.rules_use_route {
        route = Some(route_facts(host, &mut active.naming));
    }
    let now_ms = if active.config.sampling.max_records_per_second > 0 {
        host.now_nanos() / 1_000_000
    } else {
        0
    };
    // A denial is always kept. 401/403 say so at once; any other error status
    // may still be an RBAC or ext_authz local reply, which only the details
    // tell, so they are read early for those (and reused below).
    let early_details = match status {
        Some(200..=399) | Some(401) | Some(403) => None,
        _ => Some(text(host, &["response", "code_details"])),
    };
    let denied = matches!(status, Some(401) | Some(403))
        || early_details
            .as_ref()
            .is_some_and(|d| decision(status, d.as_deref(), &[]) == Decision::Denied);
    let facts = Facts {
        status,
        path: path.as_deref(),
        method: method.as_deref(),
        principal: principal.as_deref(),
        destination: destination.as_deref(),
        route: route.as_ref().and_then(|r| r.name.as_deref()),
        always_keep: denied || violation.is_some(),
    };
    let key = header(&req_headers, &active.config.sampling.key);
    let verdict = active.sampler.decide(&facts, key, draw, now_ms);
    if violation.is_some() {
        auditor.stats.add(Counter::PolicyViolations, 1);
    }
    if !verdict.keep {
        return Outcome::SampledOut {
            rate_limited_at: verdict.rate_limited.then_some(now_ms * 1_000_000),
        };
    }

    let conn = match conn {
        Some(c) => c,
        None => active
            .conns
            .get_or_read(int(host, &["connection", "id"]), host),
    };
    let route = match route {
        Some(r) => r,
        None => route_facts(host, &mut active.naming),
    };
    // Envoy always reports the start; should it not, "now" beats 1970.
    let start = int(host, &["request", "time"]).unwrap_or_else(|| host.now_nanos());
    let duration = int(host, &["request", "duration"]);
    let details = early_details.unwrap_or_else(|| text(host, &["response", "code_details"]));
    let flags = int(host, &["response", "flags"])
        .map(decode_flags)
        .unwrap_or_default();

    let mut redacted = Vec::new();
    let cfg = &active.config;
    let request_headers = (!cfg.capture.request_headers.is_empty()).then(|| {
        active.redactor.headers(
            &req_headers,
            &cfg.capture.request_headers,
            "request.headers",
            &mut redacted,
        )
    });
    // Policy and sampling saw the path as sent; the record gets it redacted.
    let recorded_path = path
        .as_deref()
        .map(|p| active.redactor.path(p, &mut redacted));
    let query = match (cfg.capture.query, query) {
        (true, Some(q)) if !q.is_empty() => Some(active.redactor.query(&q, &mut redacted)),
        _ => None,
    };
    let response_headers = (!cfg.capture.response_headers.is_empty()).then(|| {
        active.redactor.headers(
            &resp_headers,
            &cfg.capture.response_headers,
            "response.headers",
            &mut redacted,
        )
    });
    let user = cfg.capture.jwt.as_ref().and_then(|j| {
        let payload = [
            "metadata",
            "filter_metadata",
            j.metadata_namespace.as_str(),
            j.payload_key.as_str(),
        ];
        let claims = match host.property_or_error(&payload) {
            Ok(Some(bytes)) => jwt::claims_from_struct(&bytes, &j.claims),
            Ok(None) => return None,
            // The payload as a whole cannot be serialized: read claim by claim.
            Err(_) => Fields(
                j.claims
                    .iter()
                    .filter_map(|c| {
                        let [a, b, ns, key] = payload;
                        let bytes = host.property(&[a, b, ns, key, c.as_str()])?;
                        Some((c.clone(), jwt::claim_value(&bytes)))
                    })
                    .collect(),
            ),
        };
        (!claims.is_empty()).then(|| active.redactor.claims(claims, &mut redacted))
    });

    let mut r = Record::new(Kind::Request, format_rfc3339(start));
    r.request_id =
        header_str(&req_headers, "x-request-id").or_else(|| text(host, &["request", "id"]));
    let traceparent = header_str(&req_headers, "traceparent");
    r.trace_id = traceparent.as_deref().and_then(trace_id);
    r.span_id = traceparent.as_deref().and_then(span_id);
    r.source = Some(conn.source.clone()).filter(|s| *s != Default::default());
    r.destination = Some(conn.destination.clone()).filter(|d| *d != Default::default());
    r.tls = Some(conn.tls.clone());
    r.user = user;
    r.request = Some(Request {
        method,
        scheme: header_str(&req_headers, ":scheme"),
        authority: header_str(&req_headers, ":authority")
            .or_else(|| header_str(&req_headers, "host")),
        path: recorded_path,
        query,
        protocol: conn.protocol.clone(),
        headers: request_headers,
        bytes: int(host, &["request", "size"]),
    });
    r.decision = Some(decision(status, details.as_deref(), &flags));
    r.response = Some(Response {
        code: status,
        code_details: details,
        flags,
        headers: response_headers,
        bytes: int(host, &["response", "size"]),
    });
    r.route = Some(route).filter(|r| *r != Route::default());
    r.duration_ms = duration.map(|d| (d / 1_000) as f64 / 1_000.0);
    r.violation = violation;
    r.sample = Some(Sample {
        rule: verdict.rule,
        rate: verdict.rate,
    });
    r.redacted = redacted;
    r.plugin = Some(Plugin {
        version: crate::VERSION.to_string(),
        config: cfg.digest.clone(),
    });
    let end = start.saturating_add(duration.unwrap_or(0));
    Outcome::Keep(Box::new(r), end)
}
