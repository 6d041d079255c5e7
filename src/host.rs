//! The one boundary between mesh-audit's logic and the proxy.
//!
//! Everything the filter needs from Envoy goes through [`Host`]. The
//! proxy-wasm implementation ([`ProxyHost`], wasm32 only) is the single place
//! that makes host calls; native unit tests use their own implementation.
//! Reads never fail loudly: a property or header map the proxy cannot give is
//! simply absent, because auditing must never break a request.

/// Log levels as proxy-wasm numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// Which header map to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Map {
    RequestHeaders,
    ResponseHeaders,
    CallResponseHeaders,
}

/// Metric kinds as proxy-wasm numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter = 0,
    Gauge = 1,
}

/// Why a dispatch could not even start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatchError {
    /// The proxy refused the arguments (typically: no such cluster).
    BadArgument,
    /// Any other refusal.
    Failed,
}

pub type Headers = Vec<(String, Vec<u8>)>;

/// The proxy has the property but could not serialize it for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unserializable;

pub trait Host {
    /// A property (Envoy attribute) by path, raw bytes as the proxy gives them.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// Like [`Host::property`], but tells "absent" from "present but not
    /// serializable" (Envoy refuses, e.g., a metadata `Struct` holding a null).
    fn property_or_error(&self, path: &[&str]) -> Result<Option<Vec<u8>>, Unserializable> {
        Ok(self.property(path))
    }
    /// A whole header map, in one call.
    fn headers(&self, map: Map) -> Headers;
    /// The plugin configuration bytes (`on_configure`).
    fn plugin_config(&self) -> Option<Vec<u8>>;
    /// Wall-clock time, nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> u64;
    fn log(&self, level: Level, message: &str);
    fn set_tick_period_ms(&self, ms: u64);
    /// POST `body` to `cluster`; the reply arrives at the root context.
    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, DispatchError>;
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment_metric(&self, id: u32, delta: i64);
    /// Sets a gauge: the same value from every worker VM is one value.
    fn record_metric(&self, id: u32, value: u64);
    /// Answer the current request locally.
    fn send_local_reply(&self, status: u32, body: &[u8], headers: &[(&str, &str)]);
    /// Tell the proxy a deferred `on_done` has finished.
    fn done(&self);
    /// An environment variable given to the VM (`vm_config.environment_variables`).
    fn env_var(&self, name: &str) -> Option<String>;
    /// Fill `buf` with random bytes (WASI `random_get`); false when unavailable.
    fn fill_random(&self, buf: &mut [u8]) -> bool;
}

/// Reads an integer property encoded as Envoy does: 8 bytes, little-endian.
pub fn le_u64(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(arr))
}

#[cfg(target_arch = "wasm32")]
pub use proxy::ProxyHost;

#[cfg(target_arch = "wasm32")]
mod proxy {
    //! Raw proxy-wasm ABI calls. The SDK's own wrappers panic on statuses
    //! they do not expect; these return "absent" instead. Dispatch goes
    //! through the SDK so its dispatcher routes the reply back to us.
    use super::{DispatchError, Headers, Host, Level, Map, MetricKind, Unserializable};
    use std::ptr::null_mut;
    use std::time::Duration;

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_property(
            path_data: *const u8,
            path_size: usize,
            return_value_data: *mut *mut u8,
            return_value_size: *mut usize,
        ) -> u32;
        fn proxy_get_header_map_pairs(
            map_type: u32,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> u32;
        fn proxy_get_buffer_bytes(
            buffer_type: u32,
            start: usize,
            max_size: usize,
            return_buffer_data: *mut *mut u8,
            return_buffer_size: *mut usize,
        ) -> u32;
        fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
        fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
        fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
        fn proxy_define_metric(
            metric_type: u32,
            name_data: *const u8,
            name_size: usize,
            return_id: *mut u32,
        ) -> u32;
        fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
        fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
        fn proxy_send_local_response(
            status_code: u32,
            status_code_details_data: *const u8,
            status_code_details_size: usize,
            body_data: *const u8,
            body_size: usize,
            headers_data: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        fn proxy_done() -> u32;
    }

    const OK: u32 = 0;
    const PLUGIN_CONFIGURATION: u32 = 7;

    /// Takes ownership of a buffer the host allocated through
    /// `proxy_on_memory_allocate` (the SDK's allocator, i.e. ours).
    unsafe fn owned(ptr: *mut u8, len: usize) -> Option<Vec<u8>> {
        if ptr.is_null() {
            return None;
        }
        Some(Vec::from_raw_parts(ptr, len, len))
    }

    /// proxy-wasm pair serialisation: count, (key len, value len)*, then
    /// NUL-terminated keys and values.
    fn encode_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
        for (k, v) in pairs {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    fn decode_pairs(bytes: &[u8]) -> Headers {
        crate::host::decode_pairs(bytes)
    }

    const NOT_FOUND: u32 = 1;

    pub struct ProxyHost;

    impl Host for ProxyHost {
        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            self.property_or_error(path).ok().flatten()
        }

        fn property_or_error(&self, path: &[&str]) -> Result<Option<Vec<u8>>, Unserializable> {
            let mut serialized = Vec::new();
            for part in path {
                serialized.extend_from_slice(part.as_bytes());
                serialized.push(0);
            }
            serialized.pop();
            let mut data = null_mut();
            let mut size = 0;
            // SAFETY: pointers to locals; the host writes an allocation it made with our allocator.
            unsafe {
                let status =
                    proxy_get_property(serialized.as_ptr(), serialized.len(), &mut data, &mut size);
                let value = owned(data, size);
                match status {
                    OK => Ok(value),
                    NOT_FOUND => Ok(None),
                    _ => Err(Unserializable),
                }
            }
        }

        fn headers(&self, map: Map) -> Headers {
            let map_type = match map {
                Map::RequestHeaders => 0,
                Map::ResponseHeaders => 2,
                Map::CallResponseHeaders => 6,
            };
            let mut data = null_mut();
            let mut size = 0;
            // SAFETY: as above.
            unsafe {
                let status = proxy_get_header_map_pairs(map_type, &mut data, &mut size);
                match owned(data, size) {
                    Some(bytes) if status == OK => decode_pairs(&bytes),
                    _ => Vec::new(),
                }
            }
        }

        fn plugin_config(&self) -> Option<Vec<u8>> {
            let mut data = null_mut();
            let mut size = 0;
            // SAFETY: as above.
            unsafe {
                let status = proxy_get_buffer_bytes(
                    PLUGIN_CONFIGURATION,
                    0,
                    usize::MAX,
                    &mut data,
                    &mut size,
                );
                let value = owned(data, size);
                if status == OK {
                    value
                } else {
                    None
                }
            }
        }

        fn now_nanos(&self) -> u64 {
            let mut t = 0u64;
            // SAFETY: pointer to a local.
            unsafe {
                proxy_get_current_time_nanoseconds(&mut t);
            }
            t
        }

        fn log(&self, level: Level, message: &str) {
            // SAFETY: pointer and length of a live str.
            unsafe {
                proxy_log(level as u32, message.as_ptr(), message.len());
            }
        }

        fn set_tick_period_ms(&self, ms: u64) {
            // SAFETY: plain value.
            unsafe {
                proxy_set_tick_period_milliseconds(ms.min(u32::MAX as u64) as u32);
            }
        }

        fn dispatch(
            &self,
            cluster: &str,
            headers: &[(&str, &str)],
            body: &[u8],
            timeout_ms: u64,
        ) -> Result<u32, DispatchError> {
            proxy_wasm::hostcalls::dispatch_http_call(
                cluster,
                headers.to_vec(),
                Some(body),
                Vec::new(),
                Duration::from_millis(timeout_ms),
            )
            .map_err(|status| match status {
                proxy_wasm::types::Status::BadArgument => DispatchError::BadArgument,
                _ => DispatchError::Failed,
            })
        }

        fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
            let mut id = 0u32;
            // SAFETY: pointers to a live str and a local.
            let status =
                unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
            (status == OK).then_some(id)
        }

        fn increment_metric(&self, id: u32, delta: i64) {
            // SAFETY: plain values.
            unsafe {
                proxy_increment_metric(id, delta);
            }
        }

        fn record_metric(&self, id: u32, value: u64) {
            // SAFETY: plain values.
            unsafe {
                proxy_record_metric(id, value);
            }
        }

        fn send_local_reply(&self, status: u32, body: &[u8], headers: &[(&str, &str)]) {
            let details = "mesh_audit_unavailable";
            let pairs = encode_pairs(headers);
            // SAFETY: pointers and lengths of live buffers.
            unsafe {
                proxy_send_local_response(
                    status,
                    details.as_ptr(),
                    details.len(),
                    body.as_ptr(),
                    body.len(),
                    pairs.as_ptr(),
                    pairs.len(),
                    -1,
                );
            }
        }

        fn done(&self) {
            // SAFETY: no arguments.
            unsafe {
                proxy_done();
            }
        }

        fn env_var(&self, name: &str) -> Option<String> {
            std::env::var(name).ok()
        }

        fn fill_random(&self, buf: &mut [u8]) -> bool {
            getrandom::getrandom(buf).is_ok()
        }
    }
}

/// proxy-wasm's pairs layout (header maps, and Envoy's maps and lists):
/// u32 count, a u32 key length and value length per entry, then each key
/// and value NUL-terminated. `None` unless every byte is accounted for.
pub fn pairs(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let word = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let count = word(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (klen, vlen) = (word(4 + i * 8)?, word(8 + i * 8)?);
        let key = bytes.get(data..data.checked_add(klen)?)?;
        data += klen;
        if bytes.get(data) != Some(&0) {
            return None;
        }
        data += 1;
        let value = bytes.get(data..data.checked_add(vlen)?)?;
        data += vlen;
        if bytes.get(data) != Some(&0) {
            return None;
        }
        data += 1;
        out.push((key, value));
    }
    (data == bytes.len()).then_some(out)
}

/// A header map as the proxy serialised it; malformed input gives no headers.
pub fn decode_pairs(bytes: &[u8]) -> Headers {
    pairs(bytes)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_and_refuses_damaged_ones() {
        let mut b = Vec::new();
        b.extend_from_slice(&2u32.to_le_bytes());
        for n in [5u32, 1, 1, 2] {
            b.extend_from_slice(&n.to_le_bytes());
        }
        b.extend_from_slice(b":path\0/\0a\0bc\0");
        let pairs = decode_pairs(&b);
        assert_eq!(
            pairs,
            vec![
                (":path".into(), b"/".to_vec()),
                ("a".into(), b"bc".to_vec())
            ]
        );
        assert!(decode_pairs(&b[..b.len() - 3]).is_empty());
        assert!(decode_pairs(&[1, 0]).is_empty());
        assert!(decode_pairs(&[255, 255, 255, 255]).is_empty());
    }

    #[test]
    fn reads_little_endian_integers() {
        assert_eq!(le_u64(&200u64.to_le_bytes()), Some(200));
        assert_eq!(le_u64(&[1, 2]), None);
    }
}
