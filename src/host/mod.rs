//! The one boundary between mesh-audit's logic and the proxy, in two traits
//! along the seam a proxy really has:
//!
//! - [`Attributes`]: what the proxy knows about the request being audited
//!   (properties and header maps), read while that request is alive;
//! - [`Proxy`]: what the proxy does or provides for the plugin as a whole
//!   (its configuration, clock, environment and randomness, the tick timer,
//!   calls to a cluster, metrics, logging, local replies, `done`).
//!
//! [`Host`] is both, which is what the filter's lifecycle takes. The
//! proxy-wasm implementation (`ProxyHost` in host/wasm.rs, wasm32 only) is
//! the single place that makes host calls; the native Envoy dynamic module
//! (src/native, feature `native`) implements the same two traits over
//! Envoy's dynamic-module ABI. Reads never fail loudly: a property or header
//! map the proxy cannot give is simply absent, because auditing must never
//! break a request.

mod pairs;
#[cfg(target_arch = "wasm32")]
mod wasm;

mod headers;
pub use pairs::{decode_pairs, encode_pairs, pairs};
#[cfg(target_arch = "wasm32")]
pub use wasm::ProxyHost;

/// Log levels, most verbose first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

/// Which header map to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Map {
    RequestHeaders,
    ResponseHeaders,
    CallResponseHeaders,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// Why the proxy did not do or give what was asked, by the reason it gave.
/// The variant names are what the filter's log lines show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The value exists only in another phase of the request (Envoy answers
    /// BadArgument for, e.g., a response attribute read at request headers).
    NotAvailableInThisPhase,
    /// The proxy refused an argument (for a dispatch: typically no such cluster).
    BadArgument,
    /// The proxy has the value but cannot serialise it (Envoy refuses, e.g.,
    /// a metadata `Struct` holding a null).
    Unserializable,
    /// A failure inside the proxy, or a status this host does not expect.
    InternalFailure,
}

pub use headers::Headers;

/// What the proxy knows about the request being audited.
pub trait Attributes {
    /// A property (Envoy attribute) by path, raw bytes as the proxy gives
    /// them; tells "absent" (`Ok(None)`) from the reasons it cannot be read.
    fn property_or_error(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError>;
    /// Like [`Attributes::property_or_error`], with every failure read as absent.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.property_or_error(path).ok().flatten()
    }
    /// A property as text (lossy UTF-8); `None` when absent or empty.
    fn property_text(&self, path: &[&str]) -> Option<String> {
        let b = self.property(path)?;
        (!b.is_empty()).then(|| lossy(&b).into_owned())
    }
    /// An integer property, as Envoy encodes one (8 bytes, little-endian).
    fn property_u64(&self, path: &[&str]) -> Option<u64> {
        le_u64(&self.property(path)?)
    }
    /// A whole header map, in one call; empty when the proxy has none.
    fn headers(&self, map: Map) -> Headers;
    /// [`Attributes::headers`] into `out`, replacing what it held; a host
    /// that copies the map itself (the native module) reuses its
    /// allocation: a worker audits request after request with the same two maps.
    fn headers_into(&self, map: Map, out: &mut Headers) {
        *out = self.headers(map);
    }
    /// The first value of each header in `names` (lower-case) that the
    /// request has, into `out` (replacing what it held), for a host that reads single headers
    /// cheaper than a whole map (the native module); false: read the whole
    /// map instead (proxy-wasm, where every read is a VM re-entry).
    fn headers_named(&self, map: Map, names: &[&str], out: &mut Headers) -> bool {
        let _ = (map, names, out);
        false
    }
}

/// What the proxy does or provides for the plugin as a whole.
pub trait Proxy {
    /// The plugin configuration bytes (`on_configure`).
    fn plugin_config(&self) -> Option<Vec<u8>>;
    /// The body of the sink reply being handled (in `on_http_call_response`),
    /// at most `max` bytes. A host that cannot give it says `None`.
    fn call_response_body(&self, max: usize) -> Option<Vec<u8>> {
        let _ = max;
        None
    }
    /// An environment variable given to the VM (`vm_config.environment_variables`).
    fn env_var(&self, name: &str) -> Option<String>;
    /// Fill `buf` with random bytes; false when unavailable.
    fn fill_random(&self, buf: &mut [u8]) -> bool;
    /// Wall-clock time, nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> u64;
    fn set_tick_period_ms(&self, ms: u64);
    /// POST `body` to `cluster`; the reply arrives at the root context with
    /// the returned token.
    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, HostError>;
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment_metric(&self, id: u32, delta: i64);
    /// Sets a gauge: the same value from every worker VM is one value.
    fn record_metric(&self, id: u32, value: u64);
    /// Envoy's shared data, which outlives a VM: the value under `key`.
    fn shared_data(&self, key: &str) -> Option<Vec<u8>>;
    /// Stores `value` under `key` in the shared data; false when refused.
    fn set_shared_data(&self, key: &str, value: &[u8]) -> bool;
    fn log(&self, level: Level, message: &str);
    /// Answer the current request locally.
    fn send_local_reply(&self, status: u32, body: &[u8], headers: &[(&str, &str)]);
    /// Tell the proxy a deferred `on_done` has finished.
    fn done(&self);
}

/// A whole host: what the filter's lifecycle is given.
pub trait Host: Attributes + Proxy {}

impl<T: Attributes + Proxy + ?Sized> Host for T {}

/// `bytes` as text, invalid UTF-8 replaced as `String::from_utf8_lossy`
/// does; valid text (nearly all of it) is borrowed.
pub fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match text(bytes) {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => String::from_utf8_lossy(bytes),
    }
}

/// `bytes` as text when they are UTF-8. Header names and values are
/// nearly always ASCII, which is checked a word at a time; `str::from_utf8`
/// spends more on the short strings a request is made of (callgrind,
/// `tests/native_cost.rs`).
pub fn text(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // Safety: ASCII is UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

/// Reads an integer property encoded as Envoy does: 8 bytes, little-endian.
pub fn le_u64(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossy_text_is_what_from_utf8_lossy_gives() {
        let cases: [&[u8]; 6] = [
            b"",
            b"plain",
            "é ü 日本".as_bytes(),
            b"a\xffb",
            b"\xc3",
            b"x\x80\x80y",
        ];
        for c in cases {
            assert_eq!(lossy(c), String::from_utf8_lossy(c), "{c:?}");
            assert_eq!(text(c), std::str::from_utf8(c).ok(), "{c:?}");
        }
        // Every ASCII byte, control characters and DEL included, is text.
        let ascii: Vec<u8> = (0..=0x7f).collect();
        assert_eq!(text(&ascii).map(str::len), Some(128));
        assert!(matches!(lossy(b"ok"), std::borrow::Cow::Borrowed("ok")));
    }

    #[test]
    fn reads_little_endian_integers() {
        assert_eq!(le_u64(&200u64.to_le_bytes()), Some(200));
        assert_eq!(le_u64(&[1, 2]), None);
    }
}
