//! The proxy-wasm host: raw ABI calls, the only host calls in the crate.
//! The SDK's own wrappers panic on statuses they do not expect; these turn
//! them into absent values or a [`HostError`]. Dispatch goes through the
//! SDK so its dispatcher routes the reply back to us.

use super::{
    decode_pairs, encode_pairs, Attributes, Headers, HostError, Level, Map, MetricKind, Proxy,
};
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};
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
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: BufferType,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_log(level: LogLevel, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_define_metric(
        metric_type: MetricType,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
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

/// Takes ownership of a buffer the host allocated through
/// `proxy_on_memory_allocate` (the SDK's allocator, i.e. ours).
unsafe fn owned(ptr: *mut u8, len: usize) -> Option<Vec<u8>> {
    if ptr.is_null() {
        return None;
    }
    Some(Vec::from_raw_parts(ptr, len, len))
}

// Statuses arrive as plain numbers: a number the enum lacks must not become
// an invalid `Status` value.
const OK: u32 = Status::Ok as u32;
const NOT_FOUND: u32 = Status::NotFound as u32;
const BAD_ARGUMENT: u32 = Status::BadArgument as u32;
const SERIALIZATION_FAILURE: u32 = Status::SerializationFailure as u32;

/// The reason behind a failed read (`NotFound` is absence, not an error).
fn read_error(status: u32) -> HostError {
    match status {
        BAD_ARGUMENT => HostError::NotAvailableInThisPhase,
        SERIALIZATION_FAILURE => HostError::Unserializable,
        _ => HostError::InternalFailure,
    }
}

fn map_type(map: Map) -> MapType {
    match map {
        Map::RequestHeaders => MapType::HttpRequestHeaders,
        Map::ResponseHeaders => MapType::HttpResponseHeaders,
        Map::CallResponseHeaders => MapType::HttpCallResponseHeaders,
    }
}

fn log_level(level: Level) -> LogLevel {
    match level {
        Level::Trace => LogLevel::Trace,
        Level::Debug => LogLevel::Debug,
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
        Level::Critical => LogLevel::Critical,
    }
}

pub struct ProxyHost;

impl Attributes for ProxyHost {
    fn property_or_error(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
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
                other => Err(read_error(other)),
            }
        }
    }

    fn headers(&self, map: Map) -> Headers {
        let mut data = null_mut();
        let mut size = 0;
        // SAFETY: as above.
        unsafe {
            let status = proxy_get_header_map_pairs(map_type(map), &mut data, &mut size);
            match owned(data, size) {
                Some(bytes) if status == OK => decode_pairs(&bytes),
                _ => Headers::default(),
            }
        }
    }
}

/// Up to `max` bytes of a host buffer.
fn buffer(kind: BufferType, max: usize) -> Option<Vec<u8>> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: pointers to locals; the host writes an allocation it made with our allocator.
    unsafe {
        let status = proxy_get_buffer_bytes(kind, 0, max, &mut data, &mut size);
        let value = owned(data, size);
        if status == OK {
            value
        } else {
            None
        }
    }
}

impl Proxy for ProxyHost {
    fn plugin_config(&self) -> Option<Vec<u8>> {
        buffer(BufferType::PluginConfiguration, usize::MAX)
    }

    fn call_response_body(&self, max: usize) -> Option<Vec<u8>> {
        buffer(BufferType::HttpCallResponseBody, max)
    }

    fn env_var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn fill_random(&self, buf: &mut [u8]) -> bool {
        getrandom::getrandom(buf).is_ok()
    }

    fn now_nanos(&self) -> u64 {
        let mut t = 0u64;
        // SAFETY: pointer to a local.
        unsafe {
            proxy_get_current_time_nanoseconds(&mut t);
        }
        t
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
    ) -> Result<u32, HostError> {
        proxy_wasm::hostcalls::dispatch_http_call(
            cluster,
            headers.to_vec(),
            Some(body),
            Vec::new(),
            Duration::from_millis(timeout_ms),
        )
        .map_err(|status| match status {
            Status::BadArgument => HostError::BadArgument,
            _ => HostError::InternalFailure,
        })
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let metric_type = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
        };
        let mut id = 0u32;
        // SAFETY: pointers to a live str and a local.
        let status =
            unsafe { proxy_define_metric(metric_type, name.as_ptr(), name.len(), &mut id) };
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

    fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        let mut data = null_mut();
        let mut size = 0;
        let mut cas = 0;
        // SAFETY: pointers to locals; the host writes an allocation it made with our allocator.
        unsafe {
            let status =
                proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas);
            let value = owned(data, size);
            if status == OK {
                value
            } else {
                None
            }
        }
    }

    fn set_shared_data(&self, key: &str, value: &[u8]) -> bool {
        // SAFETY: pointers and lengths of live slices; cas 0 = unconditional.
        unsafe {
            proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), 0) == OK
        }
    }

    fn log(&self, level: Level, message: &str) {
        // SAFETY: pointer and length of a live str.
        unsafe {
            proxy_log(log_level(level), message.as_ptr(), message.len());
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
}
