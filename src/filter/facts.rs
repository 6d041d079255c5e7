//! What a request's audit reads from the proxy, named once, and the two ways
//! to read it.
//!
//! Host calls dominate the filter's cost (each is microseconds in V8), so on
//! Envoy every read of a [`Plan`] is compiled once into a CEL expression and
//! evaluated in a single host call per request (and one more for a new
//! connection's identity). A proxy without that ability gets the same values
//! read one by one, header maps whole and once.

use crate::config::Config;
use crate::host::{Headers, Host, Map, Read};

/// Values every record needs, in plan order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    ConnectionId,
    Time,
    Duration,
    RequestSize,
    ResponseSize,
    CodeDetails,
    Flags,
    Route,
    Cluster,
    VirtualHost,
    Status,
    Method,
    Path,
    Authority,
    Scheme,
    RequestId,
    Traceparent,
    SamplingKey,
    Host,
}

const FIXED: [Attr; 19] = [
    Attr::ConnectionId,
    Attr::Time,
    Attr::Duration,
    Attr::RequestSize,
    Attr::ResponseSize,
    Attr::CodeDetails,
    Attr::Flags,
    Attr::Route,
    Attr::Cluster,
    Attr::VirtualHost,
    Attr::Status,
    Attr::Method,
    Attr::Path,
    Attr::Authority,
    Attr::Scheme,
    Attr::RequestId,
    Attr::Traceparent,
    Attr::SamplingKey,
    Attr::Host,
];

fn read_of(attr: Attr, sampling_key: &str) -> Read {
    let p = |path: &'static [&'static str]| Read::Property(path);
    let h = |name: &str| Read::RequestHeader(name.to_string());
    match attr {
        Attr::ConnectionId => p(&["connection", "id"]),
        Attr::Time => p(&["request", "time"]),
        Attr::Duration => p(&["request", "duration"]),
        Attr::RequestSize => p(&["request", "size"]),
        Attr::ResponseSize => p(&["response", "size"]),
        Attr::CodeDetails => p(&["response", "code_details"]),
        Attr::Flags => p(&["response", "flags"]),
        Attr::Route => p(&["xds", "route_name"]),
        Attr::Cluster => p(&["xds", "cluster_name"]),
        Attr::VirtualHost => p(&["xds", "virtual_host_name"]),
        Attr::Status => p(&["response", "code"]),
        Attr::Method => h(":method"),
        Attr::Path => h(":path"),
        Attr::Authority => h(":authority"),
        Attr::Scheme => h(":scheme"),
        Attr::RequestId => h("x-request-id"),
        Attr::Traceparent => h("traceparent"),
        Attr::SamplingKey => h(sampling_key),
        Attr::Host => h("host"),
    }
}

/// Connection-level values, read once per connection.
pub const CONNECTION: [&[&str]; 10] = [
    &["source", "address"],
    &["destination", "address"],
    &["connection", "mtls"],
    &["connection", "tls_version"],
    &["connection", "uri_san_peer_certificate"],
    &["connection", "subject_peer_certificate"],
    &["connection", "sha256_peer_certificate_digest"],
    &["connection", "uri_san_local_certificate"],
    &["connection", "requested_server_name"],
    &["request", "protocol"],
];

/// The reads of one kind of request, fixed at configure time.
#[derive(Debug)]
pub struct Plan {
    reads: Vec<Read>,
    captured_request: usize,
    /// The compiled batch, when the proxy can evaluate one.
    batch: Option<u32>,
    /// The same for a new connection's facts.
    connection_batch: Option<u32>,
}

impl Plan {
    pub fn new(config: &Config, host: &dyn Host) -> Plan {
        let mut reads: Vec<Read> = FIXED.iter().map(|&a| read_of(a, &config.sampling.key)).collect();
        let req = &config.capture.request_headers;
        let resp = &config.capture.response_headers;
        reads.extend(req.iter().map(|h| Read::RequestHeader(h.clone())));
        reads.extend(resp.iter().map(|h| Read::ResponseHeader(h.clone())));
        let batch = host.compile_batch(&reads);
        let conn: Vec<Read> = CONNECTION.iter().map(|&p| Read::Property(p)).collect();
        let connection_batch = batch.and_then(|_| host.compile_batch(&conn));
        Plan { reads, captured_request: req.len(), batch, connection_batch }
    }

    /// Whether requests are read in one host call.
    pub fn batched(&self) -> bool {
        self.batch.is_some()
    }

    /// The values of one request.
    pub fn facts<'p>(&'p self, host: &dyn Host) -> Facts<'p> {
        let values = self.batch.and_then(|t| host.eval_batch(t)).filter(|v| v.len() == self.reads.len());
        Facts { plan: self, values, request: None, response: None }
    }

    /// A new connection's values, in [`CONNECTION`] order; `mtls` tells
    /// whether certificate facts are worth reading one by one.
    pub fn connection(&self, host: &dyn Host) -> Vec<Option<Vec<u8>>> {
        if let Some(v) = self.connection_batch.and_then(|t| host.eval_batch(t)).filter(|v| v.len() == CONNECTION.len()) {
            return v;
        }
        let mtls = host.property(CONNECTION[2]).is_some_and(|b| b.first().is_some_and(|&x| x != 0));
        CONNECTION
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // Certificate facts exist only on mTLS connections: skip the calls otherwise.
                let certificate = (4..=8).contains(&i);
                if certificate && !mtls {
                    None
                } else if i == 2 {
                    Some(vec![u8::from(mtls)])
                } else {
                    host.property(p)
                }
            })
            .collect()
    }
}

/// One request's values: from the batch, or read on demand.
pub struct Facts<'p> {
    plan: &'p Plan,
    values: Option<Vec<Option<Vec<u8>>>>,
    request: Option<Headers>,
    response: Option<Headers>,
}

impl Facts<'_> {
    /// Whether the values came from one batched evaluation.
    pub fn batched(&self) -> bool {
        self.values.is_some()
    }

    fn take(&mut self, host: &dyn Host, index: usize) -> Option<Vec<u8>> {
        if let Some(values) = self.values.as_mut() {
            return values.get_mut(index).and_then(Option::take);
        }
        let read = self.plan.reads.get(index)?;
        // A repeated header's values, joined as Envoy joins them for CEL.
        let lookup = |headers: &Headers, name: &str| {
            let mut values = headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_slice());
            let first = values.next()?.to_vec();
            Some(values.fold(first, |mut acc, v| {
                acc.push(b',');
                acc.extend_from_slice(v);
                acc
            }))
        };
        match read {
            Read::Property(path) => host.property(path),
            Read::RequestHeader(name) => {
                let map = self.request.get_or_insert_with(|| host.headers(Map::RequestHeaders));
                lookup(map, name)
            }
            Read::ResponseHeader(name) => {
                let map = self.response.get_or_insert_with(|| host.headers(Map::ResponseHeaders));
                lookup(map, name)
            }
        }
    }

    /// The value of `attr` (each is taken once).
    pub fn get(&mut self, host: &dyn Host, attr: Attr) -> Option<Vec<u8>> {
        self.take(host, attr as usize)
    }

    /// The captured request headers present, in configured order.
    pub fn request_headers(&mut self, host: &dyn Host, names: &[String]) -> Headers {
        self.captured(host, FIXED.len(), names)
    }

    /// The captured response headers present, in configured order.
    pub fn response_headers(&mut self, host: &dyn Host, names: &[String]) -> Headers {
        self.captured(host, FIXED.len() + self.plan.captured_request, names)
    }

    fn captured(&mut self, host: &dyn Host, start: usize, names: &[String]) -> Headers {
        names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.clone(), self.take(host, start + i)?)))
            .collect()
    }
}
