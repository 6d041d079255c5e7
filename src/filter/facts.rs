//! Reading a finished request's facts from the proxy, given what the
//! configuration needs. Every read is a host call, and a host call is the
//! cost that matters (≈ 1.7 µs of Envoy CPU each: a CEL arena and a VM
//! re-entry per value), so this reads header maps whole, once; takes the
//! status, method, path and request id from them; takes identity and TLS
//! facts from the per-connection cache; and reads what only a kept record
//! needs after sampling.

use super::conn::ConnCache;
use super::naming::Naming;
use crate::audit::build::{
    header, header_str, status_settles_denial, ConnFacts, RecordFacts, SampleFacts,
};
use crate::audit::jwt;
use crate::audit::record::{Fields, Route};
use crate::config::{Config, Jwt};
use crate::host::{Attributes, Headers, Host, Map};
use std::rc::Rc;

/// What the configuration needs read before a request can be sampled out.
#[derive(Clone, Copy, Debug, Default)]
pub struct Needs {
    /// A sampling rule or the access policy looks at principals.
    pub identity: bool,
    /// A sampling rule looks at the route.
    pub route: bool,
    /// `sampling.max_records_per_second` needs the clock.
    pub clock: bool,
    /// Sampling keeps every request (rate 1, no rules, no cap): the
    /// record's header maps are read whole at once.
    pub keeps_all: bool,
    /// A sampling rule or the access policy looks at the method or path.
    pub request_line: bool,
    /// `default_rate` alone decides, below 1 (no rules, no access policy,
    /// no per-second cap): the status and the sampling key settle most
    /// requests ([`super::http::plain_rate`], [`crate::audit::sample::plainly_out`]).
    pub plain_rate: bool,
}

impl Needs {
    /// What `cfg`'s sampling rules and access policy look at.
    pub fn of(cfg: &Config) -> Needs {
        let (s, policy) = (&cfg.sampling, !cfg.access_policy.is_empty());
        let any = |f: fn(&crate::config::Rule) -> bool| s.rules.iter().any(f);
        Needs {
            identity: policy
                || any(|r| r.when.principal.is_some())
                || any(|r| r.when.destination.is_some()),
            route: any(|r| r.when.route.is_some()),
            clock: s.max_records_per_second > 0,
            keeps_all: s.default_rate >= 1.0 && s.rules.is_empty() && s.max_records_per_second == 0,
            request_line: policy || !s.rules.is_empty(),
            plain_rate: !policy
                && s.rules.is_empty()
                && s.max_records_per_second == 0
                && s.default_rate < 1.0,
        }
    }
}

/// What the HTTP filter saw of the request before `on_log`; an access
/// logger sees nothing, so its default claims nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// The request headers ended the stream: no body bytes were received.
    pub request_without_body: bool,
}

fn route(host: &dyn Attributes, naming: &mut Naming) -> Route {
    let xds = |host: &dyn Attributes| Route {
        name: host.property_text(&["xds", "route_name"]),
        cluster: host.property_text(&["xds", "cluster_name"]),
        virtual_host: host.property_text(&["xds", "virtual_host_name"]),
    };
    let legacy = |host: &dyn Attributes| Route {
        name: host.property_text(&["route_name"]),
        cluster: host.property_text(&["cluster_name"]),
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

fn conn(host: &dyn Attributes, conns: &mut ConnCache) -> Rc<ConnFacts> {
    conns.get_or_read(host.property_u64(&["connection", "id"]), host)
}

/// What sampling needs, and nothing more: where the host reads single
/// headers cheaply, only those sampling looks at (`key` is the sampling
/// key's header); else the whole maps, which the record then reuses.
/// `maps` are the request and response maps to fill, their allocations
/// kept from an earlier request.
pub fn for_sampling(
    host: &dyn Host,
    needs: Needs,
    key: &str,
    (mut request_headers, mut response_headers): (Headers, Headers),
    conns: &mut ConnCache,
    naming: &mut Naming,
) -> SampleFacts {
    let line = [":method", ":path", key];
    let names = if needs.request_line {
        &line[..]
    } else {
        &line[2..]
    };
    let partial = !needs.keeps_all
        && host.headers_named(Map::RequestHeaders, names, &mut request_headers)
        && host.headers_named(Map::ResponseHeaders, &[":status"], &mut response_headers);
    if !partial {
        host.headers_into(Map::RequestHeaders, &mut request_headers);
        host.headers_into(Map::ResponseHeaders, &mut response_headers);
    }
    let status = header(&response_headers, ":status")
        .and_then(|s| std::str::from_utf8(s).ok()?.trim().parse::<u32>().ok())
        .or_else(|| {
            host.property_u64(&["response", "code"])
                .map(|c| c as u32)
                .filter(|&c| c != 0)
        });
    SampleFacts {
        conn: needs.identity.then(|| conn(host, conns)),
        route: needs.route.then(|| route(host, naming)),
        details: (!status_settles_denial(status))
            .then(|| host.property_text(&["response", "code_details"])),
        now_ms: if needs.clock {
            host.now_nanos() / 1_000_000
        } else {
            0
        },
        request_headers,
        response_headers,
        partial,
        status,
    }
}

/// `request.size` as Envoy computes it: the `content-length` header when
/// there is one, else the body bytes received, which are none when the
/// headers ended the stream. Only what the headers cannot settle is read.
fn request_bytes(host: &dyn Attributes, headers: &Headers, seen: Seen) -> Option<u64> {
    let declared = header(headers, "content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok());
    match declared {
        Some(n) => Some(n),
        None if seen.request_without_body && header(headers, "content-length").is_none() => Some(0),
        None => host.property_u64(&["request", "size"]),
    }
}

/// The verified JWT's configured claims.
fn claims(host: &dyn Attributes, j: &Jwt) -> Option<Fields<serde_json::Value>> {
    let payload = [
        "metadata",
        "filter_metadata",
        j.metadata_namespace.as_str(),
        j.payload_key.as_str(),
    ];
    match host.property_or_error(&payload) {
        Ok(Some(bytes)) => Some(jwt::claims_from_struct(&bytes, &j.claims)),
        Ok(None) => None,
        // The payload as a whole cannot be serialized: read claim by claim.
        Err(_) => Some(Fields(
            j.claims
                .iter()
                .filter_map(|c| {
                    let [a, b, ns, key] = payload;
                    let bytes = host.property(&[a, b, ns, key, c.as_str()])?;
                    Some((c.clone(), jwt::claim_value(&bytes)))
                })
                .collect(),
        )),
    }
}

/// The rest of a kept request's facts; what sampling already read is reused.
pub fn for_record(
    host: &dyn Host,
    early: &mut SampleFacts,
    jwt: Option<&Jwt>,
    seen: Seen,
    conns: &mut ConnCache,
    naming: &mut Naming,
) -> RecordFacts {
    if early.partial {
        host.headers_into(Map::RequestHeaders, &mut early.request_headers);
        host.headers_into(Map::ResponseHeaders, &mut early.response_headers);
        early.partial = false;
    }
    let conn = match early.conn.take() {
        Some(c) => c,
        None => conn(host, conns),
    };
    let route = match early.route.take() {
        Some(r) => r,
        None => route(host, naming),
    };
    // Envoy always reports the start; should it not, "now" beats 1970.
    let start = host
        .property_u64(&["request", "time"])
        .unwrap_or_else(|| host.now_nanos());
    let duration = host.property_u64(&["request", "duration"]);
    let details = match early.details.take() {
        Some(d) => d,
        None => host.property_text(&["response", "code_details"]),
    };
    let flags = host.property_u64(&["response", "flags"]);
    let claims = jwt.and_then(|j| claims(host, j));
    let req = &early.request_headers;
    RecordFacts {
        conn,
        route,
        start,
        duration,
        details,
        flags,
        request_bytes: request_bytes(host, req, seen),
        response_bytes: host.property_u64(&["response", "size"]),
        request_id: header_str(req, "x-request-id")
            .or_else(|| host.property_text(&["request", "id"])),
        claims,
    }
}
