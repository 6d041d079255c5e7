//! A finished request's facts → the sampler's verdict → its record, with no
//! host in sight: the proxy-wasm filter and the native module read the facts
//! (`filter::facts`) and hand them here.
//!
//! Facts come in two parts because reading them is the cost: [`SampleFacts`]
//! is what sampling and the access policy look at; [`RecordFacts`], the
//! rest, is read only once [`sample`] has kept the request.

use super::identity::{decision, decode_flags, span_id, trace_id};
use super::record::{json, Prepared};
use super::record::{
    Decision, Destination, Fields, Kind, Plugin, Record, Request, Response, Route, Sample, Source,
    Tls,
};
use super::redact::Redactor;
use super::sample::{Facts, Sampler, Verdict};
use super::time::format_rfc3339;
use crate::config::{Config, Policy, Scope};
use crate::host::Headers;
use std::borrow::Cow;
use std::rc::Rc;

/// Connection-level facts (peer identity, TLS, addresses, protocol): the
/// same for every request of a downstream connection, and so is their
/// part of the record, written once per connection.
#[derive(Debug, Default, PartialEq)]
pub struct ConnFacts {
    pub source: Source,
    pub destination: Destination,
    pub tls: Tls,
    pub protocol: Option<String>,
    /// The record's `source`, `destination` and `tls` members, written.
    written: Vec<u8>,
}

impl ConnFacts {
    pub fn new(
        source: Source,
        destination: Destination,
        tls: Tls,
        protocol: Option<String>,
    ) -> Self {
        let mut r = Record::new(Kind::Request, String::new());
        r.source = Some(source).filter(|s| *s != Source::default());
        r.destination = Some(destination).filter(|d| *d != Destination::default());
        r.tls = Some(tls);
        let written = json::connection(&r);
        ConnFacts {
            source: r.source.unwrap_or_default(),
            destination: r.destination.unwrap_or_default(),
            tls: r.tls.unwrap_or_default(),
            protocol,
            written,
        }
    }
}

/// What sampling and the access policy look at.
pub struct SampleFacts {
    pub request_headers: Headers,
    pub response_headers: Headers,
    /// The maps hold only the headers sampling looks at; the record needs
    /// them whole.
    pub partial: bool,
    /// `:status`, else `response.code`.
    pub status: Option<u32>,
    /// Read early only when a rule or the policy looks at principals.
    pub conn: Option<Rc<ConnFacts>>,
    /// Read early only when a rule looks at the route.
    pub route: Option<Route>,
    /// `response.code_details`, read early for an error status other than
    /// 401/403: only the details tell an RBAC or ext_authz denial.
    pub details: Option<Option<String>>,
    /// The proxy's clock, when the per-second cap needs it (else 0).
    pub now_ms: u64,
}

/// The rest of a kept request's facts.
pub struct RecordFacts {
    pub conn: Rc<ConnFacts>,
    pub route: Route,
    /// `request.time`, nanoseconds since the Unix epoch.
    pub start: u64,
    /// `request.duration`, nanoseconds.
    pub duration: Option<u64>,
    pub details: Option<String>,
    /// `response.flags`, Envoy's bits.
    pub flags: Option<u64>,
    pub request_bytes: Option<u64>,
    pub response_bytes: Option<u64>,
    /// `x-request-id`, else `request.id`.
    pub request_id: Option<String>,
    /// The verified JWT's configured claims, before redaction.
    pub claims: Option<Fields<serde_json::Value>>,
}

/// The sampler's answer, with what the record will need of the decision.
pub struct Sampled {
    pub verdict: Verdict,
    /// The access-policy rule the request broke, if any.
    pub violation: Option<String>,
}

pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a [u8]> {
    headers.get(name)
}

pub fn header_str(headers: &Headers, name: &str) -> Option<String> {
    header_text(headers, name).map(Cow::into_owned)
}

/// A header's value as text, borrowed unless it is not UTF-8.
fn header_text<'h>(headers: &'h Headers, name: &str) -> Option<Cow<'h, str>> {
    header(headers, name).map(crate::host::lossy)
}

/// `:path` as sent, and its query string when it has one.
fn path_and_query(headers: &Headers) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    let Some(full) = header_text(headers, ":path") else {
        return (None, None);
    };
    match full {
        Cow::Borrowed(full) => match full.split_once('?') {
            Some((p, q)) => (Some(Cow::Borrowed(p)), Some(Cow::Borrowed(q))),
            None => (Some(Cow::Borrowed(full)), None),
        },
        Cow::Owned(full) => match full.split_once('?') {
            Some((p, q)) => (
                Some(Cow::Owned(p.to_string())),
                Some(Cow::Owned(q.to_string())),
            ),
            None => (Some(Cow::Owned(full)), None),
        },
    }
}

/// Whether the status alone tells the decision is not a denial, so
/// `response.code_details` need not be read before sampling.
pub fn status_settles_denial(status: Option<u32>) -> bool {
    matches!(status, Some(200..=399) | Some(401) | Some(403))
}

/// The sampler's verdict on a finished request. Denials and policy
/// violations are always kept.
pub fn sample(
    facts: &SampleFacts,
    policy: &[Policy],
    sampler: &mut Sampler,
    key: &str,
    draw: f64,
) -> Sampled {
    let method = header_text(&facts.request_headers, ":method");
    let (path, _) = path_and_query(&facts.request_headers);
    let conn = facts.conn.as_deref();
    let principal = conn.and_then(|c| c.source.principal.as_deref());
    let destination = conn.and_then(|c| c.destination.principal.as_deref());
    let violation = path
        .as_deref()
        .and_then(|p| super::policy::violation(policy, p, principal))
        .map(str::to_string);
    let status = facts.status;
    let denied = matches!(status, Some(401) | Some(403))
        || facts
            .details
            .as_ref()
            .is_some_and(|d| decision(status, d.as_deref(), &[]) == Decision::Denied);
    let rule_facts = Facts {
        status,
        path: path.as_deref(),
        method: method.as_deref(),
        principal,
        destination,
        route: facts.route.as_ref().and_then(|r| r.name.as_deref()),
        always_keep: denied || violation.is_some(),
    };
    let key = header(&facts.request_headers, key);
    let verdict = sampler.decide(&rule_facts, key, draw, facts.now_ms);
    Sampled { verdict, violation }
}

/// A kept request's record (unstamped: admission gives it emitter, seq and
/// prev), and the time it is admitted at: the request's end.
pub fn record(
    early: &SampleFacts,
    rest: RecordFacts,
    sampled: Sampled,
    cfg: &Config,
    redactor: &Redactor,
) -> (Prepared, u64) {
    let req = &early.request_headers;
    let resp = &early.response_headers;
    let (path, query) = path_and_query(req);
    let flags = rest.flags.map(decode_flags).unwrap_or_default();
    let mut redacted = Vec::new();
    let request_headers = (!cfg.capture.request_headers.is_empty()).then(|| {
        redactor.headers(
            req,
            &cfg.capture.request_headers,
            "request.headers",
            &mut redacted,
        )
    });
    // Policy and sampling saw the path as sent; the record gets it redacted.
    let recorded_path = path.as_deref().map(|p| redactor.path(p, &mut redacted));
    let query = match (cfg.capture.query, query) {
        (true, Some(q)) if !q.is_empty() => Some(redactor.query(&q, &mut redacted)),
        _ => None,
    };
    let response_headers = (!cfg.capture.response_headers.is_empty()).then(|| {
        redactor.headers(
            resp,
            &cfg.capture.response_headers,
            "response.headers",
            &mut redacted,
        )
    });
    let user = rest
        .claims
        .filter(|c| !c.is_empty())
        .map(|c| redactor.claims(c, &mut redacted));

    let conn = &rest.conn;
    let status = early.status;
    let mut r = Record::new(Kind::Request, format_rfc3339(rest.start));
    r.request_id = rest.request_id;
    let traceparent = header_text(req, "traceparent");
    r.trace_id = traceparent.as_deref().and_then(trace_id);
    r.span_id = traceparent.as_deref().and_then(span_id);
    r.user = user;
    r.request = Some(Request {
        method: header_str(req, ":method"),
        scheme: header_str(req, ":scheme"),
        authority: header_str(req, ":authority").or_else(|| header_str(req, "host")),
        path: recorded_path,
        query,
        protocol: conn.protocol.clone(),
        headers: request_headers,
        bytes: rest.request_bytes,
    });
    r.decision = Some(decision(status, rest.details.as_deref(), &flags));
    r.response = Some(Response {
        code: status,
        code_details: rest.details,
        flags,
        headers: response_headers,
        bytes: rest.response_bytes,
    });
    r.route = Some(rest.route).filter(|r| *r != Route::default());
    r.duration_ms = rest.duration.map(|d| (d / 1_000) as f64 / 1_000.0);
    r.violation = sampled.violation;
    r.sample = Some(Sample {
        rule: sampled.verdict.rule,
        rate: sampled.verdict.rate,
    });
    r.redacted = redacted;
    r.degraded = degraded(cfg, Kind::Request);
    r.plugin = Some(Plugin {
        version: crate::VERSION.to_string(),
        config: cfg.digest.clone(),
    });
    let end = rest.start.saturating_add(rest.duration.unwrap_or(0));
    // The connection's members as written when it was first seen.
    (Prepared::with_connection(&r, &conn.written), end)
}

/// The degradations in force that a record of `kind` lists (SPEC §4.1):
/// a request record all of them, the filter's own records those that
/// concern records.
pub fn degraded(cfg: &Config, kind: Kind) -> Vec<String> {
    cfg.degraded
        .iter()
        .filter(|d| kind == Kind::Request || d.scope == Scope::Records)
        .map(|d| d.code.to_string())
        .collect()
}
