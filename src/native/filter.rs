//! The module's HTTP filter, for fail-closed only: it answers `503 audit
//! unavailable`, as the wasm filter does, to every request while the
//! configuration is invalid and `MESH_AUDIT_FAIL_CLOSED=1` is in Envoy's
//! environment (SPEC §2.7), and under `"on_overflow": "reject"` while this
//! worker's emitter has no room (SPEC §2.5); otherwise it lets every request
//! through untouched. Auditing itself stays in the access logger, so a
//! chain without this filter pays nothing for it.
//!
//! The filter keeps no per-request state: each stream's module pointer is
//! its configuration's, and every hook only reads it.

use super::abi::{self, EnvoyBuffer, ModuleBuffer, ModuleHeader};
use super::{env_var, guard, log, switched_on, REJECTED_DETAILS};
use crate::config::{error_line, Config, Overflow};
use crate::filter::root::{FAIL_CLOSED_ENV, STRICT_ENV};
use crate::host::Level;
use std::ffi::c_void;

/// One filter configuration: whether it answers 503, and the counter it
/// counts that in (the same `mesh_audit.requests_rejected` the main
/// thread publishes: Envoy keeps one counter per name).
struct FilterConfig {
    reject: bool,
    /// Under `on_overflow: reject`, the configuration its emitters are
    /// found by on each worker.
    overflow_rejects: Option<Vec<u8>>,
    rejected: Option<usize>,
}

/// `envoy_dynamic_module_type_on_http_filter_*_status`: go on.
const CONTINUE: u32 = 0;
/// `envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration`.
const STOP_ITERATION: u32 = 1;

const REJECTED_COUNTER: &str = "mesh_audit.requests_rejected";

/// # Safety
/// Envoy's buffers, valid for the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: *mut c_void,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guard("http_filter_config_new", std::ptr::null(), || {
        // Safety: Envoy's buffer for this call.
        let Some(json) = (unsafe { abi::copy_bytes(config.ptr, config.length) }) else {
            return std::ptr::null();
        };
        let (reject, overflow_rejects) = match Config::from_json(&json, &env_var) {
            Ok(c) => (
                false,
                (c.on_overflow == Overflow::Reject).then(|| json.clone()),
            ),
            // Strict: refused here as the access logger refuses it.
            Err(e) if switched_on(STRICT_ENV) => {
                log(Level::Error, &error_line(&e));
                return std::ptr::null();
            }
            // The access logger says the line and counts; this filter only
            // decides whether requests pass.
            Err(_) => (switched_on(FAIL_CLOSED_ENV), None),
        };
        let mut id = 0usize;
        // Safety: Envoy's config pointer, while it still accepts new stats;
        // Envoy copies the name.
        let defined = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
                config_envoy,
                ModuleBuffer::of(REJECTED_COUNTER.as_bytes()),
                std::ptr::null_mut(),
                0,
                &mut id,
            )
        } == abi::METRICS_SUCCESS;
        let rejected = defined.then_some(id);
        Box::into_raw(Box::new(FilterConfig {
            reject,
            overflow_rejects,
            rejected,
        }))
        .cast_const()
        .cast()
    })
}

/// # Safety
/// A pointer this module returned from `http_filter_config_new`.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    guard("http_filter_config_destroy", (), || {
        if !config.is_null() {
            // Safety: made by Box::into_raw in config_new, destroyed once.
            drop(unsafe { Box::from_raw(config.cast_mut().cast::<FilterConfig>()) });
        }
    })
}

/// A stream's filter is its configuration: nothing is allocated per request.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: *mut c_void,
) -> *const c_void {
    config
}

/// # Safety
/// `filter` is a configuration this module returned; `filter_envoy` is
/// Envoy's stream, valid for the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: *mut c_void,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    guard("http_filter_request_headers", CONTINUE, || {
        if filter.is_null() || filter_envoy.is_null() {
            return CONTINUE;
        }
        // Safety: made in config_new and alive while its streams are.
        let config = unsafe { &*filter.cast::<FilterConfig>() };
        let full = || {
            config
                .overflow_rejects
                .as_deref()
                .is_some_and(super::entry::emitter_full)
        };
        if !config.reject && !full() {
            return CONTINUE;
        }
        if let Some(id) = config.rejected {
            // Safety: Envoy's stream; an id its configuration gave.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                    filter_envoy,
                    id,
                    std::ptr::null_mut(),
                    0,
                    1,
                )
            };
        }
        let (key, value) = ("content-type", "text/plain");
        let mut headers = [ModuleHeader {
            key_ptr: key.as_ptr(),
            key_length: key.len(),
            value_ptr: value.as_ptr(),
            value_length: value.len(),
        }];
        // Safety: Envoy's stream; every buffer outlives the call (Envoy copies).
        unsafe {
            abi::envoy_dynamic_module_callback_http_send_response(
                filter_envoy,
                503,
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(b"audit unavailable"),
                ModuleBuffer::of(REJECTED_DETAILS.as_bytes()),
            )
        };
        STOP_ITERATION
    })
}

// The other hooks Envoy requires of an HTTP filter: nothing to do.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _: *mut c_void,
    _: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _: *mut c_void,
    _: *const c_void,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _: *mut c_void,
    _: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _: *mut c_void,
    _: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _: *mut c_void,
    _: *const c_void,
) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _: *mut c_void,
    _: *const c_void,
) {
}

/// The stream's pointer is its configuration's, destroyed with it.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_: *const c_void) {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _: *mut c_void,
    _: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const abi::EnvoyHeader,
    _headers_size: usize,
    _body_chunks: *const EnvoyBuffer,
    _body_chunks_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _: *mut c_void,
    _: *const c_void,
    _stream_id: u64,
    _headers: *const abi::EnvoyHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _: *mut c_void,
    _: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _: *mut c_void,
    _: *const c_void,
    _stream_id: u64,
    _trailers: *const abi::EnvoyHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _: *mut c_void,
    _: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _: *mut c_void,
    _: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _: *mut c_void,
    _: *const c_void,
    _event_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _: *mut c_void,
    _: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _: *mut c_void,
    _: *const c_void,
) {
}
