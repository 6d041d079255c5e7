//! Ready-made pieces for wasm-level tests: a typical audited request, a
//! configured host, and the sink's view of a dispatched batch.

use super::driver::Request;
use super::props::{mtls_connection, typical, typical_request};
use super::state::Dispatch;
use super::{Guest, Host};

pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const SPAN_ID: &str = "00f067aa0ba902b7";
pub const USER_AGENT: &str = "curl/8.5.0";

/// `GET https://backend/orders/42?token=abc&page=2` from the `frontend`
/// workload over mTLS connection `conn`, answered 200 by the upstream.
pub fn orders_request(conn: u64) -> Request {
    Request::default()
        .header(":method", "GET")
        .header(":scheme", "https")
        .header(":authority", "backend")
        .header(":path", "/orders/42?token=abc&page=2")
        .header("user-agent", USER_AGENT)
        .header("authorization", "Bearer abc.def.ghi")
        .header("x-request-id", typical::REQUEST_ID)
        .header("traceparent", TRACEPARENT)
        .response_header(":status", "200")
        .response_header("content-type", "application/json")
        .props(mtls_connection(conn))
        .props(typical_request())
}

/// A wasm host started and configured with `config`; fails the test if the
/// configuration is refused.
pub fn configured(config: &str) -> Host {
    configured_on(Guest::Wasm, config)
}

/// Like [`configured`], on `guest`.
pub fn configured_on(guest: Guest, config: &str) -> Host {
    let mut h = Host::on(guest);
    assert!(
        h.configure(config),
        "configuration refused: {config}\n{}",
        h.log_dump()
    );
    h
}

/// The body's lines (JSON lines format), without the trailing newline.
pub fn lines(d: &Dispatch) -> Vec<String> {
    let text = d.body_text();
    assert!(
        text.ends_with('\n'),
        "a JSON-lines body ends with a newline: {text:?}"
    );
    text.lines().map(str::to_string).collect()
}

/// The records of a JSON-lines batch.
pub fn records(d: &Dispatch) -> Vec<serde_json::Value> {
    lines(d)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `plugin.config`: the first 4 bytes of SHA-256 of the configuration, hex.
pub fn config_digest(config: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(config.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hex SHA-256 of `bytes` (the chain link of an unkeyed chain).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `len` lower-case hex digits (an emitter, a digest).
pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
