//! What a record line says, as OTLP log fields: severity, trace id, and
//! attributes under OpenTelemetry semantic-convention names where one exists,
//! `mesh_audit.*` otherwise.
//!
//! The line is read as a generic JSON value rather than into
//! [`crate::audit::record::Record`]: the filter already carries a JSON-value
//! parser, while a typed `Record` deserializer would add tens of KB to the
//! `.wasm` for nothing the attributes need. A field of an unexpected type is
//! simply not mapped. The record's enum spellings still come from
//! `record.rs` through serde.

use super::proto::{KeyValue, Severity};
use crate::audit::record::{Decision, Kind};
use serde::Deserialize;
use serde_json::Value as Json;

/// A parsed record line: a JSON object with a known `kind` and a `ts`.
pub struct Line {
    json: Json,
    kind: Kind,
}

impl Line {
    /// `None` for anything that is not a record.
    pub fn parse(bytes: &[u8]) -> Option<Line> {
        let json: Json = serde_json::from_slice(bytes).ok()?;
        let kind = Kind::deserialize(json.get("kind")?).ok()?;
        json.get("ts")?.as_str()?;
        Some(Line { json, kind })
    }

    fn str(&self, path: &[&str]) -> Option<&str> {
        self.at(path)?.as_str()
    }

    fn u64(&self, path: &[&str]) -> Option<u64> {
        self.at(path)?.as_u64()
    }

    fn at(&self, path: &[&str]) -> Option<&Json> {
        path.iter().try_fold(&self.json, |v, k| v.get(k))
    }

    pub fn ts(&self) -> &str {
        self.str(&["ts"]).unwrap_or_default()
    }

    pub fn trace_id(&self) -> Option<&str> {
        self.str(&["trace_id"])
    }

    pub fn span_id(&self) -> Option<&str> {
        self.str(&["span_id"])
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn decision(&self) -> Option<Decision> {
        Decision::deserialize(self.at(&["decision"])?).ok()
    }
}

/// `ERROR` for an error, `WARN` for anything an auditor must look at
/// (denied, a policy violation, lost records), `INFO` otherwise.
pub fn severity(r: &Line) -> Severity {
    let decision = r.decision();
    if decision == Some(Decision::Error) {
        Severity::Error
    } else if r.kind == Kind::Loss
        || decision == Some(Decision::Denied)
        || r.at(&["violation"]).is_some()
    {
        Severity::Warn
    } else {
        Severity::Info
    }
}

pub fn event_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Request => "mesh_audit.request",
        Kind::Loss => "mesh_audit.loss",
        Kind::Seal => "mesh_audit.seal",
        Kind::Close => "mesh_audit.close",
    }
}

/// The 16 bytes of a 32-hex-digit trace id; empty (OTLP's "no trace") when
/// the id is malformed or all zeros.
pub fn trace_id(hex: &str) -> Vec<u8> {
    id_bytes(hex, 16)
}

/// The 8 bytes of a 16-hex-digit span id; empty when malformed or all zeros.
pub fn span_id(hex: &str) -> Vec<u8> {
    id_bytes(hex, 8)
}

fn id_bytes(hex: &str, len: usize) -> Vec<u8> {
    let b = hex.as_bytes();
    if b.len() != len * 2 {
        return Vec::new();
    }
    let out: Option<Vec<u8>> = b
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect();
    out.filter(|id| id.iter().any(|&x| x != 0))
        .unwrap_or_default()
}

fn nibble(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits `host:port`, `[v6]:port`, or a bare host / bare IPv6 address.
pub fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, port)) => match port.strip_prefix(':').and_then(|p| p.parse().ok()) {
                Some(p) => (host, Some(p)),
                None => (s, None),
            },
            None => (s, None),
        };
    }
    match s.split_once(':') {
        Some((host, port)) if !port.contains(':') => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (s, None),
        },
        _ => (s, None),
    }
}

/// `HTTP/1.1` → `1.1`, `HTTP/2` → `2` (semconv `network.protocol.version`).
pub fn http_version(protocol: &str) -> Option<&str> {
    protocol.strip_prefix("HTTP/").filter(|v| !v.is_empty())
}

/// `TLSv1.3` → (`tls`, `1.3`), `SSLv3` → (`ssl`, `3`) (semconv
/// `tls.protocol.name` / `tls.protocol.version`).
pub fn tls_protocol(version: &str) -> Option<(&'static str, &str)> {
    let (name, v) = if let Some(v) = version.strip_prefix("TLSv") {
        ("tls", v)
    } else {
        ("ssl", version.strip_prefix("SSLv")?)
    };
    (!v.is_empty()).then_some((name, v))
}

/// Every attribute the record supports, in a stable order.
pub fn attributes(r: &Line) -> Vec<KeyValue> {
    let mut a = Attrs(Vec::with_capacity(32));
    a.str("event.name", Some(event_name(r.kind)));
    a.str("mesh_audit.kind", r.str(&["kind"]));
    a.str("mesh_audit.emitter", r.str(&["emitter"]));
    a.int("mesh_audit.seq", r.u64(&["seq"]));
    a.str("mesh_audit.request_id", r.str(&["request_id"]));
    a.str("mesh_audit.decision", r.str(&["decision"]));
    a.str("mesh_audit.violation", r.str(&["violation"]));
    a.str("http.request.method", r.str(&["request", "method"]));
    a.str("url.scheme", r.str(&["request", "scheme"]));
    if let Some((host, port)) = r.str(&["request", "authority"]).map(split_host_port) {
        a.str("server.address", Some(host));
        a.int("server.port", port.map(u64::from));
    }
    a.str("url.path", r.str(&["request", "path"]));
    a.str("url.query", r.str(&["request", "query"]));
    a.str(
        "network.protocol.version",
        r.str(&["request", "protocol"]).and_then(http_version),
    );
    a.int("http.request.body.size", r.u64(&["request", "bytes"]));
    a.int("http.response.status_code", r.u64(&["response", "code"]));
    a.int("http.response.body.size", r.u64(&["response", "bytes"]));
    if let Some(flags) = r.at(&["response", "flags"]).and_then(Json::as_array) {
        let flags: Vec<&str> = flags.iter().filter_map(Json::as_str).collect();
        if !flags.is_empty() {
            a.str("mesh_audit.response.flags", Some(&flags.join(",")));
        }
    }
    if let Some((host, port)) = r.str(&["source", "address"]).map(split_host_port) {
        a.str("client.address", Some(host));
        a.int("client.port", port.map(u64::from));
    }
    a.str(
        "mesh_audit.source.principal",
        r.str(&["source", "principal"]),
    );
    a.str(
        "mesh_audit.source.namespace",
        r.str(&["source", "namespace"]),
    );
    a.str(
        "mesh_audit.source.service_account",
        r.str(&["source", "service_account"]),
    );
    a.str(
        "mesh_audit.destination.principal",
        r.str(&["destination", "principal"]),
    );
    if let Some((name, version)) = r.str(&["tls", "version"]).and_then(tls_protocol) {
        a.str("tls.protocol.name", Some(name));
        a.str("tls.protocol.version", Some(version));
    }
    a.str("tls.client.subject", r.str(&["source", "subject"]));
    // Semconv asks for the fingerprint in upper case; Envoy reports lower.
    a.str(
        "tls.client.hash.sha256",
        r.str(&["source", "cert_sha256"])
            .map(str::to_ascii_uppercase)
            .as_deref(),
    );
    a.str(
        "user_agent.original",
        r.str(&["request", "headers", "user-agent"]),
    );
    a.str("user.id", r.str(&["user", "sub"]));
    a.str("mesh_audit.route.name", r.str(&["route", "name"]));
    a.str("mesh_audit.route.cluster", r.str(&["route", "cluster"]));
    a.str("mesh_audit.loss.reason", r.str(&["reason"]));
    a.int("mesh_audit.loss.count", r.u64(&["count"]));
    a.0
}

struct Attrs(Vec<KeyValue>);

impl Attrs {
    fn str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.0.push(KeyValue::string(key, v));
        }
    }

    fn int(&mut self, key: &str, value: Option<u64>) {
        if let Some(v) = value.and_then(|v| i64::try_from(v).ok()) {
            self.0.push(KeyValue::int(key, v));
        }
    }
}

#[cfg(test)]
mod tests;
