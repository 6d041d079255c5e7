//! A request's facts → its audit record, at `on_log`.
//!
//! The values come from [`Facts`]: one host call on Envoy, reads on demand
//! elsewhere. Sampling is decided from the cheapest facts first, so a
//! request that is dropped costs as little as the proxy allows.

use super::facts::{Attr, Facts};
use super::root::{Active, Auditor};
use super::stats::Counter;
use crate::audit::identity::{decision, decode_flags, span_id, trace_id};
use crate::audit::record::{Decision, Fields, Kind, Plugin, Record, Request, Response, Route, Sample};
use crate::audit::sample::Facts as SampleFacts;
use crate::audit::time::format_rfc3339;
use crate::audit::{jwt, policy};
use crate::host::{le_u64, Host};

/// Which attribute names this Envoy understands for route facts: newer
/// releases say `xds.route_name`, older ones `route_name`. Learned from the
/// first request that has a route, then fixed. Only matters when values are
/// read one by one (a batch on an older Envoy fails and falls back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Naming {
    #[default]
    Unknown,
    Xds,
    Legacy,
}

fn text(value: Option<Vec<u8>>) -> Option<String> {
    let v = value?;
    (!v.is_empty()).then(|| String::from_utf8_lossy(&v).into_owned())
}

fn int(value: Option<Vec<u8>>) -> Option<u64> {
    le_u64(&value?)
}

fn route_facts(f: &mut Facts, host: &dyn Host, naming: &mut Naming) -> Route {
    let r = Route {
        name: text(f.get(host, Attr::Route)),
        cluster: text(f.get(host, Attr::Cluster)),
        virtual_host: text(f.get(host, Attr::VirtualHost)),
    };
    let found = |r: &Route| r.name.is_some() || r.cluster.is_some() || r.virtual_host.is_some();
    if f.batched() || *naming == Naming::Xds || found(&r) {
        if found(&r) {
            *naming = Naming::Xds;
        }
        return r;
    }
    let legacy = Route {
        name: text(host.property(&["route_name"])),
        cluster: text(host.property(&["cluster_name"])),
        virtual_host: None,
    };
    if found(&legacy) {
        *naming = Naming::Legacy;
    }
    legacy
}

/// `on_log`: audit the request that just finished.
pub fn on_log(auditor: &mut Auditor, host: &dyn Host) {
    let draw = auditor.draw();
    let Some(active) = auditor.active.as_mut() else { return };
    let Active { plan, conns, naming, sampler, redactor, config: cfg, rules_use_principal, rules_use_route, .. } =
        active;
    let mut f = plan.facts(host);

    let status = int(f.get(host, Attr::Status)).and_then(|c| u32::try_from(c).ok()).filter(|&c| c != 0);
    let method = text(f.get(host, Attr::Method));
    let full_path = text(f.get(host, Attr::Path));
    let (path, query) = match full_path.as_deref().map(|p| p.split_once('?')) {
        Some(Some((p, q))) => (Some(p.to_string()), Some(q.to_string())),
        Some(None) => (full_path.clone(), None),
        None => (None, None),
    };

    let needs_identity = *rules_use_principal || !cfg.access_policy.is_empty();
    let mut conn = None;
    if needs_identity {
        conn = Some(conns.get_or_read(int(f.get(host, Attr::ConnectionId)), plan, host));
    }
    let principal = conn.as_ref().and_then(|c| c.source.principal.clone());
    let violation = path
        .as_deref()
        .and_then(|p| policy::violation(&cfg.access_policy, p, principal.as_deref()))
        .map(str::to_string);
    let route = rules_use_route.then(|| route_facts(&mut f, host, naming));
    let now_ms = if cfg.sampling.max_records_per_second > 0 { host.now_nanos() / 1_000_000 } else { 0 };
    // A denial is always kept. 401/403 say so at once; any other error status
    // may still be an RBAC or ext_authz local reply, which only the details tell.
    let details = match status {
        Some(200..=399) | Some(401) | Some(403) => None,
        _ => Some(text(f.get(host, Attr::CodeDetails))),
    };
    let denied = matches!(status, Some(401) | Some(403))
        || details.as_ref().is_some_and(|d| decision(status, d.as_deref(), &[]) == Decision::Denied);
    let key = f.get(host, Attr::SamplingKey);
    let verdict = sampler.decide(
        &SampleFacts {
            status,
            path: path.as_deref(),
            method: method.as_deref(),
            principal: principal.as_deref(),
            route: route.as_ref().and_then(|r| r.name.as_deref()),
            always_keep: denied || violation.is_some(),
        },
        key.as_deref(),
        draw,
        now_ms,
    );
    if violation.is_some() {
        auditor.stats.add(Counter::PolicyViolations, 1);
    }
    if !verdict.keep {
        auditor.sampled_out(verdict.rate_limited.then_some(now_ms * 1_000_000));
        return;
    }

    let conn = match conn {
        Some(c) => c,
        None => conns.get_or_read(int(f.get(host, Attr::ConnectionId)), plan, host),
    };
    let route = match route {
        Some(r) => r,
        None => route_facts(&mut f, host, naming),
    };
    // Envoy always reports the start; should it not, "now" beats 1970.
    let start = int(f.get(host, Attr::Time)).unwrap_or_else(|| host.now_nanos());
    let duration = int(f.get(host, Attr::Duration));
    let details = details.unwrap_or_else(|| text(f.get(host, Attr::CodeDetails)));
    let flags = int(f.get(host, Attr::Flags)).map(decode_flags).unwrap_or_default();

    let mut redacted = Vec::new();
    let request_headers = (!cfg.capture.request_headers.is_empty()).then(|| {
        let captured = f.request_headers(host, &cfg.capture.request_headers);
        redactor.headers(&captured, &cfg.capture.request_headers, "request.headers", &mut redacted)
    });
    let query = match (cfg.capture.query, query) {
        (true, Some(q)) if !q.is_empty() => Some(redactor.query(&q, &mut redacted)),
        _ => None,
    };
    let response_headers = (!cfg.capture.response_headers.is_empty()).then(|| {
        let captured = f.response_headers(host, &cfg.capture.response_headers);
        redactor.headers(&captured, &cfg.capture.response_headers, "response.headers", &mut redacted)
    });
    let user = cfg.capture.jwt.as_ref().and_then(|j| {
        let payload = ["metadata", "filter_metadata", j.metadata_namespace.as_str(), j.payload_key.as_str()];
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
        (!claims.is_empty()).then(|| redactor.claims(claims, &mut redacted))
    });

    let mut r = Record::new(Kind::Request, format_rfc3339(start));
    // Envoy always sets x-request-id unless told not to; then ask for its id.
    r.request_id = text(f.get(host, Attr::RequestId)).or_else(|| text(host.property(&["request", "id"])));
    let traceparent = text(f.get(host, Attr::Traceparent));
    r.trace_id = traceparent.as_deref().and_then(trace_id);
    r.span_id = traceparent.as_deref().and_then(span_id);
    r.source = Some(conn.source.clone()).filter(|s| *s != Default::default());
    r.destination = Some(conn.destination.clone()).filter(|d| *d != Default::default());
    r.tls = Some(conn.tls.clone());
    r.user = user;
    r.request = Some(Request {
        method,
        scheme: text(f.get(host, Attr::Scheme)),
        authority: text(f.get(host, Attr::Authority)).or_else(|| text(f.get(host, Attr::Host))),
        path,
        query,
        protocol: conn.protocol.clone(),
        headers: request_headers,
        bytes: int(f.get(host, Attr::RequestSize)),
    });
    r.decision = Some(decision(status, details.as_deref(), &flags));
    r.response = Some(Response {
        code: status,
        code_details: details,
        flags,
        headers: response_headers,
        bytes: int(f.get(host, Attr::ResponseSize)),
    });
    r.route = Some(route).filter(|r| *r != Route::default());
    r.duration_ms = duration.map(|d| (d / 1_000) as f64 / 1_000.0);
    r.violation = violation;
    r.sample = Some(Sample { rule: verdict.rule, rate: verdict.rate });
    r.redacted = redacted;
    r.plugin = Some(Plugin { version: crate::VERSION.to_string(), config: cfg.digest.clone() });
    let end = start.saturating_add(duration.unwrap_or(0));
    auditor.admit(host, r, end);
}
