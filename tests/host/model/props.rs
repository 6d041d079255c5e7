//! Envoy attributes as the proxy hands them to a module, and ready-made sets
//! for a typical mTLS connection and a typical request.
//!
//! Encodings (what Envoy's `getProperty` serialises): integers are 8 bytes
//! little-endian, booleans one byte, strings raw bytes, timestamps and
//! durations signed 64-bit nanoseconds little-endian.

/// A set of properties by path. Paths are given dotted (`"xds.route_name"`)
/// or, when a segment itself holds dots, as segments (`set_at`).
#[derive(Clone, Debug, Default)]
pub struct Props(pub Vec<(Vec<String>, Vec<u8>)>);

impl Props {
    pub fn new() -> Props {
        Props::default()
    }

    pub fn set(self, dotted: &str, value: impl AsRef<[u8]>) -> Props {
        let segments: Vec<&str> = dotted.split('.').collect();
        self.set_at(&segments, value)
    }

    pub fn set_at(mut self, segments: &[&str], value: impl AsRef<[u8]>) -> Props {
        let key: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
        self.0.retain(|(k, _)| *k != key);
        self.0.push((key, value.as_ref().to_vec()));
        self
    }

    pub fn remove(mut self, dotted: &str) -> Props {
        let key: Vec<String> = dotted.split('.').map(str::to_string).collect();
        self.0.retain(|(k, _)| *k != key);
        self
    }

    /// `other`'s values win.
    pub fn merge(mut self, other: Props) -> Props {
        for (k, v) in other.0 {
            self.0.retain(|(key, _)| *key != k);
            self.0.push((k, v));
        }
        self
    }

    /// The paths as the module sends them: segments joined by NUL.
    pub fn wire(&self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        self.0
            .iter()
            .map(|(k, v)| (k.join("\0").into_bytes(), v.clone()))
    }
}

pub fn u64_le(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

pub fn i64_le(v: i64) -> [u8; 8] {
    v.to_le_bytes()
}

pub fn boolean(b: bool) -> [u8; 1] {
    [u8::from(b)]
}

/// `request.time`: nanoseconds since the Unix epoch.
pub fn time_nanos(nanos: i64) -> [u8; 8] {
    nanos.to_le_bytes()
}

/// `request.duration`: nanoseconds.
pub fn duration_nanos(nanos: i64) -> [u8; 8] {
    nanos.to_le_bytes()
}

pub mod typical {
    //! The values the ready-made property sets use, for assertions.
    pub const SOURCE_ADDRESS: &str = "10.0.0.7:51234";
    pub const DESTINATION_ADDRESS: &str = "10.0.0.9:8443";
    pub const PEER_URI_SAN: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
    pub const PEER_SUBJECT: &str = "O=acme,CN=frontend";
    pub const PEER_SHA256: &str =
        "9502d3c4a1b2f0e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060";
    pub const TLS_VERSION: &str = "TLSv1.3";
    pub const SNI: &str = "backend.default.svc";
    pub const LOCAL_URI_SAN: &str = "spiffe://cluster.local/ns/default/sa/backend";
    pub const PROTOCOL: &str = "HTTP/1.1";

    /// 2026-11-21T14:03:05.123456Z
    pub const REQUEST_TIME_NANOS: i64 = 1_795_269_785_123_456_000;
    pub const REQUEST_TIME: &str = "2026-11-21T14:03:05.123456Z";
    pub const DURATION_NANOS: i64 = 1_234_000;
    pub const REQUEST_SIZE: u64 = 0;
    pub const RESPONSE_SIZE: u64 = 94;
    pub const RESPONSE_CODE: u64 = 200;
    pub const CODE_DETAILS: &str = "via_upstream";
    pub const ROUTE: &str = "orders";
    pub const CLUSTER: &str = "backend";
    pub const VIRTUAL_HOST: &str = "backend";
    pub const REQUEST_ID: &str = "90ae957f-1b6e-4f7a-9c55-2f9a3c1e7d21";
}

/// A downstream mTLS connection from the `frontend` workload, as Envoy
/// reports it on the inbound sidecar.
pub fn mtls_connection(id: u64) -> Props {
    use typical::*;
    Props::new()
        .set("source.address", SOURCE_ADDRESS)
        .set("destination.address", DESTINATION_ADDRESS)
        .set("connection.id", u64_le(id))
        .set("connection.mtls", boolean(true))
        .set("connection.uri_san_peer_certificate", PEER_URI_SAN)
        .set("connection.subject_peer_certificate", PEER_SUBJECT)
        .set("connection.sha256_peer_certificate_digest", PEER_SHA256)
        .set("connection.tls_version", TLS_VERSION)
        .set("connection.requested_server_name", SNI)
        .set("connection.uri_san_local_certificate", LOCAL_URI_SAN)
        .set("request.protocol", PROTOCOL)
}

/// A plaintext connection: addresses and id only, no TLS facts at all.
pub fn plaintext_connection(id: u64) -> Props {
    use typical::*;
    Props::new()
        .set("source.address", SOURCE_ADDRESS)
        .set("destination.address", DESTINATION_ADDRESS)
        .set("connection.id", u64_le(id))
        .set("request.protocol", PROTOCOL)
}

/// The request-level attributes of a completed 200 request.
pub fn typical_request() -> Props {
    use typical::*;
    Props::new()
        .set("request.time", time_nanos(REQUEST_TIME_NANOS))
        .set("request.duration", duration_nanos(DURATION_NANOS))
        .set("request.size", u64_le(REQUEST_SIZE))
        .set("response.size", u64_le(RESPONSE_SIZE))
        .set("response.code", u64_le(RESPONSE_CODE))
        .set("response.code_details", CODE_DETAILS)
        .set("response.flags", u64_le(0))
        .set("xds.route_name", ROUTE)
        .set("xds.cluster_name", CLUSTER)
        .set("xds.virtual_host_name", VIRTUAL_HOST)
        .set("request.id", REQUEST_ID)
}
