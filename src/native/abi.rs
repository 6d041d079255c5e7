//! The part of Envoy's dynamic-module ABI (`abi.h`, ABI v0.2.0 as shipped
//! in Envoy 1.40) that mesh-audit uses, declared by hand: only the callbacks
//! the module calls, with the C types they take. Every signature here exists
//! unchanged in ABI v0.1.0, so the module also states the compatibility the
//! ABI promises (a module for X.Y loads on X.Y and X.(Y+1)). The HTTP
//! filter's declarations are v0.2.0's as Envoy 1.40 ships them.
//!
//! Names follow the header so a reader can find each one there; the event
//! hooks the module exports are in [`super::entry`].

#![allow(non_camel_case_types)]

use std::ffi::c_void;

/// The ABI version this module was written against, NUL-terminated, as
/// `envoy_dynamic_module_on_program_init` must return it.
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

/// A byte range owned by Envoy (valid for the duration of the call that gave it).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const EMPTY: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// A byte range owned by the module.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }
}

/// One header owned by Envoy.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

/// One header owned by the module (an HTTP callout's request).
#[repr(C)]
pub struct ModuleHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

/// `envoy_dynamic_module_type_http_header_type`.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum HeaderType {
    Request = 0,
    Response = 2,
}

/// `envoy_dynamic_module_type_log_level`.
#[repr(u32)]
#[derive(Clone, Copy)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// `envoy_dynamic_module_type_http_callout_init_result`.
pub const CALLOUT_INIT_SUCCESS: u32 = 0;
pub const CALLOUT_INIT_CLUSTER_NOT_FOUND: u32 = 2;
/// `envoy_dynamic_module_type_metrics_result_Success`.
pub const METRICS_SUCCESS: u32 = 0;
/// `envoy_dynamic_module_type_http_callout_result`.
pub const CALLOUT_RESULT_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_attribute_id_XdsVirtualHostName`: the only
/// fact without a dedicated access-logger getter.
pub const ATTRIBUTE_XDS_VIRTUAL_HOST_NAME: u32 = 63;

/// `envoy_dynamic_module_type_timing_info`: nanoseconds, -1 when unknown.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct TimingInfo {
    pub start_time_unix_ns: i64,
    pub request_complete_duration_ns: i64,
    pub first_upstream_tx_byte_sent_ns: i64,
    pub last_upstream_tx_byte_sent_ns: i64,
    pub first_upstream_rx_byte_received_ns: i64,
    pub last_upstream_rx_byte_received_ns: i64,
    pub first_downstream_tx_byte_sent_ns: i64,
    pub last_downstream_tx_byte_sent_ns: i64,
}

/// `envoy_dynamic_module_type_bytes_info`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct BytesInfo {
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub wire_bytes_received: u64,
    pub wire_bytes_sent: u64,
}

/// `envoy_dynamic_module_type_event_cb`: a completion callback Envoy waits for.
pub type EventCallback = Option<unsafe extern "C" fn(context: *mut c_void)>;

extern "C" {
    // Common.
    pub fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);

    // Access logger: the finished request, valid only during the log hook.
    pub fn envoy_dynamic_module_callback_access_logger_get_headers_size(
        ctx: *mut c_void,
        header_type: HeaderType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_access_logger_get_headers(
        ctx: *mut c_void,
        header_type: HeaderType,
        result_headers: *mut EnvoyHeader,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_header_value(
        ctx: *mut c_void,
        header_type: HeaderType,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        total_count_out: *mut usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_response_code(ctx: *mut c_void) -> u32;
    pub fn envoy_dynamic_module_callback_access_logger_get_response_code_details(
        ctx: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_response_flags(ctx: *mut c_void) -> u64;
    pub fn envoy_dynamic_module_callback_access_logger_get_protocol(
        ctx: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_timing_info(
        ctx: *mut c_void,
        timing_out: *mut TimingInfo,
    );
    pub fn envoy_dynamic_module_callback_access_logger_get_bytes_info(
        ctx: *mut c_void,
        bytes_out: *mut BytesInfo,
    );
    pub fn envoy_dynamic_module_callback_access_logger_get_route_name(
        ctx: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_upstream_cluster(
        ctx: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_request_id(
        ctx: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_attribute_string(
        ctx: *mut c_void,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_dynamic_metadata(
        ctx: *mut c_void,
        filter_name: ModuleBuffer,
        path: ModuleBuffer,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_dynamic_metadata_number(
        ctx: *mut c_void,
        filter_name: ModuleBuffer,
        path: ModuleBuffer,
        result: *mut f64,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_dynamic_metadata_bool(
        ctx: *mut c_void,
        filter_name: ModuleBuffer,
        path: ModuleBuffer,
        result: *mut bool,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_downstream_remote_address(
        ctx: *mut c_void,
        address_out: *mut EnvoyBuffer,
        port_out: *mut u32,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_downstream_local_address(
        ctx: *mut c_void,
        address_out: *mut EnvoyBuffer,
        port_out: *mut u32,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_connection_id(ctx: *mut c_void) -> u64;
    pub fn envoy_dynamic_module_callback_access_logger_is_mtls(ctx: *mut c_void) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_requested_server_name(
        ctx: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_downstream_tls_version(
        ctx: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_downstream_peer_subject(
        ctx: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_downstream_peer_cert_digest(
        ctx: *mut c_void,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_downstream_peer_uri_san_size(
        ctx: *mut c_void,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_access_logger_get_downstream_peer_uri_san(
        ctx: *mut c_void,
        sans_out: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_access_logger_get_downstream_local_uri_san_size(
        ctx: *mut c_void,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_access_logger_get_downstream_local_uri_san(
        ctx: *mut c_void,
        sans_out: *mut EnvoyBuffer,
    ) -> bool;

    // HTTP filter (fail-closed only): a worker's stream.
    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id_out: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: *mut c_void,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: *mut c_void,
        status_code: u32,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    // Bootstrap extension: the main thread's timers and HTTP callouts.
    pub fn envoy_dynamic_module_callback_bootstrap_extension_config_signal_init_complete(
        config: *mut c_void,
    );
    pub fn envoy_dynamic_module_callback_bootstrap_extension_timer_new(
        config: *mut c_void,
    ) -> *mut c_void;
    pub fn envoy_dynamic_module_callback_bootstrap_extension_timer_enable(
        timer: *mut c_void,
        delay_milliseconds: u64,
    );
    pub fn envoy_dynamic_module_callback_bootstrap_extension_config_define_counter(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id_out: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_bootstrap_extension_config_define_gauge(
        config: *mut c_void,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        gauge_id_out: *mut usize,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_bootstrap_extension_config_increment_counter(
        config: *mut c_void,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_bootstrap_extension_config_set_gauge(
        config: *mut c_void,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_bootstrap_extension_config_increment_gauge(
        config: *mut c_void,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_bootstrap_extension_config_decrement_gauge(
        config: *mut c_void,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
    pub fn envoy_dynamic_module_callback_bootstrap_extension_http_callout(
        config: *mut c_void,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;
}

/// Copies an Envoy buffer, or nothing when the pointer is null: a length
/// that comes with a null pointer is never trusted.
///
/// # Safety
/// A non-null `ptr` must address `length` readable bytes, as the ABI
/// promises for the duration of the call that returned it.
pub unsafe fn copy_bytes(ptr: *const u8, length: usize) -> Option<Vec<u8>> {
    // Safety: the caller's contract.
    unsafe { borrow_bytes(ptr, length) }.map(<[u8]>::to_vec)
}

/// An Envoy buffer as a slice, under the same rule as [`copy_bytes`].
///
/// # Safety
/// As [`copy_bytes`]; the slice must not outlive the call that gave it.
pub unsafe fn borrow_bytes<'a>(ptr: *const u8, length: usize) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return (length == 0).then_some(&[]);
    }
    // Safety: checked non-null above; the length is Envoy's own for that range.
    Some(unsafe { std::slice::from_raw_parts(ptr, length) })
}
