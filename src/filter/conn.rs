//! Connection-level facts (peer identity, TLS, addresses, protocol), read
//! once per downstream connection and cached by `connection.id`: they never
//! change within a connection, and host calls are the filter's main cost.

use super::facts::Plan;
use crate::audit::identity::{parse_spiffe, principal_from_uri_sans, tls_version};
use crate::audit::record::{Destination, Source, Tls};
use crate::host::Host;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

/// How many connections' facts a worker remembers.
const CAPACITY: usize = 2048;

#[derive(Debug, Default, PartialEq)]
pub struct ConnFacts {
    pub source: Source,
    pub destination: Destination,
    pub tls: Tls,
    pub protocol: Option<String>,
}

fn text(value: Option<Vec<u8>>) -> Option<String> {
    let s = String::from_utf8_lossy(&value?).trim().to_string();
    (!s.is_empty()).then_some(s)
}

impl ConnFacts {
    /// From values in [`super::facts::CONNECTION`] order.
    pub fn from_values(values: Vec<Option<Vec<u8>>>) -> ConnFacts {
        let mut v = values.into_iter();
        let mut next = || v.next().flatten();
        let (src, dst, mtls, version) = (next(), next(), next(), next());
        let (peer_sans, subject, digest, local_sans, sni, protocol) = (next(), next(), next(), next(), next(), next());
        let mtls = mtls.is_some_and(|b| b.first().is_some_and(|&x| x != 0));
        let version = text(version).and_then(|v| tls_version(&v));
        let mut source = Source { address: text(src), ..Source::default() };
        if mtls {
            if let Some(p) = text(peer_sans).and_then(|s| principal_from_uri_sans(&s)) {
                let id = parse_spiffe(&p);
                source.trust_domain = id.trust_domain;
                source.namespace = id.namespace;
                source.service_account = id.service_account;
                source.principal = Some(p);
            }
            source.subject = text(subject);
            source.cert_sha256 = text(digest);
        }
        let tls = version.is_some();
        ConnFacts {
            source,
            destination: Destination {
                address: text(dst),
                principal: if tls { text(local_sans).and_then(|s| principal_from_uri_sans(&s)) } else { None },
            },
            tls: Tls { mtls, version, sni: if tls { text(sni) } else { None } },
            protocol: text(protocol),
        }
    }
}

/// A bounded map `connection.id → facts`; the oldest entry goes first.
#[derive(Default)]
pub struct ConnCache {
    map: HashMap<u64, Rc<ConnFacts>>,
    order: VecDeque<u64>,
}

impl ConnCache {
    pub fn get_or_read(&mut self, id: Option<u64>, plan: &Plan, host: &dyn Host) -> Rc<ConnFacts> {
        let read = || Rc::new(ConnFacts::from_values(plan.connection(host)));
        let Some(id) = id else { return read() };
        if let Some(f) = self.map.get(&id) {
            return Rc::clone(f);
        }
        let facts = read();
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
