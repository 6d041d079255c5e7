//! The audit record (SPEC §4). Field order is the wire order: the chain
//! hashes the exact JSON bytes, so it must never change. Unknown values are
//! `None` and omitted, never `null`.

use serde::{Deserialize, Serialize};

pub mod json;
pub use json::Prepared;

/// An ordered `name → value` map, serialised as a JSON object in insertion order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields<V>(pub Vec<(String, V)>);

impl<V> Fields<V> {
    pub fn get(&self, name: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
impl<V: Serialize> Serialize for Fields<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Fields<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = Fields<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Fields<V>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry()? {
                    out.push((k, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Request,
    Loss,
    /// Vouches for the emitter's records up to it (SPEC §4.1); written by
    /// [`crate::deliver::seal`], never built as a `Record`.
    Seal,
    /// The emitter's end, at a clean shutdown of its root context.
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allowed,
    Denied,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossReason {
    BufferFull,
    RateLimited,
    Rejected,
}

/// Why an emitter was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    Shutdown,
    Reconfigure,
}

/// `reason`: a loss record's or a close record's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reason {
    Loss(LossReason),
    Close(CloseReason),
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct Source {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trust_domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service_account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cert_sha256: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct Destination {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub principal: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct Tls {
    pub mtls: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sni: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct Request {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub headers: Option<Fields<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct Response {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code_details: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub flags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub headers: Option<Fields<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct Route {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub virtual_host: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct Sample {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rule: Option<String>,
    pub rate: f64,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct Plugin {
    pub version: String,
    pub config: String,
}

/// One audit record, `request` or `loss`. Written by [`json`]; its serde
/// form, derived only for the tests, is what that writer is checked against.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub struct Record {
    pub kind: Kind,
    pub ts: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub emitter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prev: Option<String>,
    // --- request records
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub trace_id: Option<String>,
    /// The caller's span (the parent id of `traceparent`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub span_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<Source>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub destination: Option<Destination>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tls: Option<Tls>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user: Option<Fields<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request: Option<Request>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub response: Option<Response>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub route: Option<Route>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub decision: Option<Decision>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub violation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sample: Option<Sample>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub redacted: Vec<String>,
    /// Safety degradations in force (SPEC §2.7), e.g. `hash_key_missing`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub degraded: Vec<String>,
    // --- loss and close records
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<Reason>,
    // --- loss records
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub from_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub until: Option<String>,
    // --- request records
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub plugin: Option<Plugin>,
}

impl Record {
    /// An empty record of `kind` at `ts`; callers fill in what they know.
    pub fn new(kind: Kind, ts: String) -> Record {
        Record {
            kind,
            ts,
            emitter: None,
            seq: None,
            prev: None,
            request_id: None,
            trace_id: None,
            span_id: None,
            source: None,
            destination: None,
            tls: None,
            user: None,
            request: None,
            response: None,
            route: None,
            duration_ms: None,
            decision: None,
            violation: None,
            sample: None,
            redacted: Vec::new(),
            degraded: Vec::new(),
            reason: None,
            count: None,
            from_seq: None,
            to_seq: None,
            since: None,
            until: None,
            plugin: None,
        }
    }

    /// The `loss` record for `count` records lost between `since` and `until`.
    pub fn loss(
        reason: LossReason,
        count: u64,
        since: String,
        until: String,
        ts: String,
    ) -> Record {
        let mut r = Record::new(Kind::Loss, ts);
        r.reason = Some(Reason::Loss(reason));
        r.count = Some(count);
        r.since = Some(since);
        r.until = Some(until);
        r
    }

    /// The `close` record ending an emitter.
    pub fn close(reason: CloseReason, ts: String) -> Record {
        let mut r = Record::new(Kind::Close, ts);
        r.reason = Some(Reason::Close(reason));
        r
    }

    /// A loss record's reason.
    pub fn loss_reason(&self) -> Option<LossReason> {
        match self.reason {
            Some(Reason::Loss(r)) => Some(r),
            _ => None,
        }
    }
}
