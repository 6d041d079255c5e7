//! Connection-level facts (peer identity, TLS, addresses, protocol), read
//! once per downstream connection and cached by `connection.id`: each host
//! call costs microseconds, and these never change within a connection.

use crate::audit::build::ConnFacts;
use crate::audit::identity::{parse_spiffe, principal_from_uri_sans, tls_version};
use crate::audit::record::{Destination, Source, Tls};
use crate::host::Attributes;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// How many connections' facts a worker remembers.
const CAPACITY: usize = 2048;

fn text(host: &dyn Attributes, path: &[&str]) -> Option<String> {
    let bytes = host.property(path)?;
    let s = String::from_utf8_lossy(&bytes).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// One connection's facts, read from the proxy.
fn read(host: &dyn Attributes) -> ConnFacts {
    let mtls = host
        .property(&["connection", "mtls"])
        .is_some_and(|b| b.first().is_some_and(|&v| v != 0));
    let tls_ver = text(host, &["connection", "tls_version"]).and_then(|v| tls_version(&v));
    let mut source = Source {
        address: text(host, &["source", "address"]),
        ..Source::default()
    };
    let mut destination = Destination {
        address: text(host, &["destination", "address"]),
        principal: None,
    };
    // Certificate facts only exist on TLS connections; skip the calls otherwise.
    if mtls {
        if let Some(p) = text(host, &["connection", "uri_san_peer_certificate"])
            .and_then(|s| principal_from_uri_sans(&s))
        {
            let id = parse_spiffe(&p);
            source.trust_domain = id.trust_domain;
            source.namespace = id.namespace;
            source.service_account = id.service_account;
            source.principal = Some(p);
        }
        source.subject = text(host, &["connection", "subject_peer_certificate"]);
        source.cert_sha256 = text(host, &["connection", "sha256_peer_certificate_digest"]);
    }
    let sni = if tls_ver.is_some() {
        destination.principal = text(host, &["connection", "uri_san_local_certificate"])
            .and_then(|s| principal_from_uri_sans(&s));
        text(host, &["connection", "requested_server_name"])
    } else {
        None
    };
    ConnFacts::new(
        source,
        destination,
        Tls {
            mtls,
            version: tls_ver,
            sni,
        },
        text(host, &["request", "protocol"]),
    )
}

/// A bounded map `connection.id → facts`; the oldest entry goes first.
#[derive(Default)]
pub struct ConnCache {
    map: HashMap<u64, Rc<ConnFacts>>,
    order: VecDeque<u64>,
}

impl ConnCache {
    pub fn get_or_read(&mut self, id: Option<u64>, host: &dyn Attributes) -> Rc<ConnFacts> {
        let Some(id) = id else {
            return Rc::new(read(host));
        };
        if let Some(f) = self.map.get(&id) {
            return Rc::clone(f);
        }
        let facts = Rc::new(read(host));
        if self.order.len() >= CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        self.order.push_back(id);
        self.map.insert(id, Rc::clone(&facts));
        facts
    }
}
