//! The fake Envoy of tests/native_abi.rs: the callbacks the module imports,
//! answering for one finished request and recording what the module asked
//! for (logs, timers, callouts, metrics, local replies).

use mesh_audit::native::abi::{BytesInfo, EnvoyBuffer, ModuleBuffer, ModuleHeader, TimingInfo};
use std::ffi::c_void;
use std::sync::Mutex;

// ---- what the fake Envoy records -------------------------------------------

/// One HTTP callout: cluster, headers, body.
pub(crate) type Callout = (String, Vec<(String, String)>, Vec<u8>);

/// One local reply: status, headers, body, details.
pub(crate) type LocalReply = (u32, Vec<(String, String)>, String, String);

#[derive(Default)]
pub(crate) struct Recorded {
    pub(crate) logs: Vec<String>,
    pub(crate) init_complete: usize,
    pub(crate) timers: usize,
    pub(crate) callouts: Vec<Callout>,
    pub(crate) counters: Vec<String>,
    pub(crate) gauges: Vec<String>,
    /// (metric id, value) of every counter increment.
    pub(crate) increments: Vec<(usize, u64)>,
    /// Counters the HTTP filter defined, and what it added to them.
    pub(crate) filter_counters: Vec<String>,
    pub(crate) filter_increments: Vec<(usize, u64)>,
    /// Local replies: status, headers, body, details.
    pub(crate) replies: Vec<LocalReply>,
}

pub(crate) static RECORDED: Mutex<Option<Recorded>> = Mutex::new(None);

pub(crate) fn with<R>(f: impl FnOnce(&mut Recorded) -> R) -> R {
    let mut r = RECORDED.lock().unwrap_or_else(|p| p.into_inner());
    f(r.get_or_insert_with(Recorded::default))
}

pub(crate) unsafe fn text(b: ModuleBuffer) -> String {
    String::from_utf8_lossy(std::slice::from_raw_parts(b.ptr, b.length)).into_owned()
}

// ---- one finished request, as the access logger's getters answer --------

pub(crate) struct FakeRequest {
    pub(crate) headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Answer the header count with this instead of the real one.
    pub(crate) claimed_headers: Option<usize>,
    /// Give every header value as a null pointer with a length.
    pub(crate) null_values: bool,
    pub(crate) peer_san: &'static str,
    pub(crate) claimed_sans: Option<usize>,
    /// Connection facts are cached per connection id.
    pub(crate) connection: u64,
    /// The response code and its details.
    pub(crate) code: u32,
    pub(crate) details: &'static str,
}

impl FakeRequest {
    /// A well-formed request on connection 7 from the workload `peer_san`.
    pub(crate) fn new(headers: &[(&[u8], &[u8])], peer_san: &'static str) -> FakeRequest {
        FakeRequest {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect(),
            claimed_headers: None,
            null_values: false,
            peer_san,
            claimed_sans: None,
            connection: 7,
            code: 200,
            details: "via_upstream",
        }
    }
}

pub(crate) fn req<'a>(ctx: *mut c_void) -> &'a FakeRequest {
    unsafe { &*(ctx as *const FakeRequest) }
}

pub(crate) fn give(out: *mut EnvoyBuffer, s: &'static str) -> bool {
    unsafe {
        *out = EnvoyBuffer {
            ptr: s.as_ptr(),
            length: s.len(),
        }
    };
    true
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_log(_level: u32, message: ModuleBuffer) {
    let line = unsafe { text(message) };
    with(|r| r.logs.push(line));
}

#[path = "fake_headers.rs"]
mod fake_headers;

/// Getters that answer a fixed string for every request.
macro_rules! answers {
    ($($name:ident => $value:expr;)*) => {$(
        #[no_mangle]
        pub extern "C" fn $name(_: *mut c_void, out: *mut EnvoyBuffer) -> bool {
            give(out, $value)
        }
    )*};
}

/// Getters that answer a fixed value.
macro_rules! constant {
    ($($name:ident -> $ty:ty = $value:expr;)*) => {$(
        #[no_mangle]
        pub extern "C" fn $name(_: *mut c_void) -> $ty {
            $value
        }
    )*};
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_response_code(
    ctx: *mut c_void,
) -> u32 {
    req(ctx).code
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_response_code_details(
    ctx: *mut c_void,
    out: *mut EnvoyBuffer,
) -> bool {
    give(out, req(ctx).details)
}

/// Getters of what these requests do not have.
macro_rules! absent {
    ($($name:ident($($arg:ty),*);)*) => {$(
        #[no_mangle]
        pub extern "C" fn $name(_: *mut c_void, $(_: $arg),*) -> bool {
            false
        }
    )*};
}

answers! {
    envoy_dynamic_module_callback_access_logger_get_protocol => "HTTP/1.1";
    envoy_dynamic_module_callback_access_logger_get_route_name => "orders";
    envoy_dynamic_module_callback_access_logger_get_upstream_cluster => "backend";
    envoy_dynamic_module_callback_access_logger_get_request_id => "req-from-stream-info";
    envoy_dynamic_module_callback_access_logger_get_requested_server_name => "backend.default.svc";
    envoy_dynamic_module_callback_access_logger_get_downstream_tls_version => "TLSv1.3";
    envoy_dynamic_module_callback_access_logger_get_downstream_peer_subject => "CN=frontend";
    envoy_dynamic_module_callback_access_logger_get_downstream_peer_cert_digest => "ab11";
    envoy_dynamic_module_callback_access_logger_get_downstream_local_uri_san => "spiffe://cluster.local/ns/default/sa/backend";
}

constant! {
    envoy_dynamic_module_callback_access_logger_get_response_flags -> u64 = 0;
    envoy_dynamic_module_callback_access_logger_is_mtls -> bool = true;
    envoy_dynamic_module_callback_access_logger_get_downstream_local_uri_san_size -> usize = 1;
}

absent! {
    envoy_dynamic_module_callback_access_logger_get_attribute_string(u32, *mut EnvoyBuffer);
    envoy_dynamic_module_callback_access_logger_get_dynamic_metadata(ModuleBuffer, ModuleBuffer, *mut EnvoyBuffer);
    envoy_dynamic_module_callback_access_logger_get_dynamic_metadata_number(ModuleBuffer, ModuleBuffer, *mut f64);
    envoy_dynamic_module_callback_access_logger_get_dynamic_metadata_bool(ModuleBuffer, ModuleBuffer, *mut bool);
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_timing_info(
    _: *mut c_void,
    out: *mut TimingInfo,
) {
    unsafe {
        *out = TimingInfo {
            start_time_unix_ns: 1_795_000_000_000_000_000,
            request_complete_duration_ns: 1_500_000,
            ..TimingInfo::default()
        }
    };
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_bytes_info(
    _: *mut c_void,
    out: *mut BytesInfo,
) {
    unsafe {
        *out = BytesInfo {
            bytes_received: 0,
            bytes_sent: 3,
            ..BytesInfo::default()
        }
    };
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_downstream_remote_address(
    _: *mut c_void,
    out: *mut EnvoyBuffer,
    port: *mut u32,
) -> bool {
    unsafe { *port = 51234 };
    give(out, "10.0.0.7")
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_downstream_local_address(
    _: *mut c_void,
    out: *mut EnvoyBuffer,
    port: *mut u32,
) -> bool {
    unsafe { *port = 8443 };
    give(out, "::1")
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_connection_id(
    ctx: *mut c_void,
) -> u64 {
    req(ctx).connection
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_downstream_peer_uri_san_size(
    ctx: *mut c_void,
) -> usize {
    req(ctx).claimed_sans.unwrap_or(1)
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_downstream_peer_uri_san(
    ctx: *mut c_void,
    out: *mut EnvoyBuffer,
) -> bool {
    give(out, req(ctx).peer_san)
}

// ---- the bootstrap extension's services -------------------------------------

pub(crate) static TIMER: u8 = 0;

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_bootstrap_extension_config_signal_init_complete(
    _: *mut c_void,
) {
    with(|r| r.init_complete += 1);
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_bootstrap_extension_timer_new(
    _: *mut c_void,
) -> *mut c_void {
    with(|r| r.timers += 1);
    std::ptr::addr_of!(TIMER).cast_mut().cast()
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_bootstrap_extension_timer_enable(
    _: *mut c_void,
    _delay_ms: u64,
) {
}
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_bootstrap_extension_http_callout(
    _: *mut c_void,
    id_out: *mut u64,
    cluster: ModuleBuffer,
    headers: *mut ModuleHeader,
    count: usize,
    body: ModuleBuffer,
    _timeout_ms: u64,
) -> u32 {
    let hs = unsafe { std::slice::from_raw_parts(headers, count) }
        .iter()
        .map(|h| unsafe {
            (
                text(ModuleBuffer {
                    ptr: h.key_ptr,
                    length: h.key_length,
                }),
                text(ModuleBuffer {
                    ptr: h.value_ptr,
                    length: h.value_length,
                }),
            )
        })
        .collect();
    let body = unsafe { std::slice::from_raw_parts(body.ptr, body.length) }.to_vec();
    let cluster = unsafe { text(cluster) };
    with(|r| {
        r.callouts.push((cluster, hs, body));
        unsafe { *id_out = 100 + r.callouts.len() as u64 };
    });
    0
}
pub(crate) fn define(
    names: fn(&mut Recorded) -> &mut Vec<String>,
    name: ModuleBuffer,
    id: *mut usize,
) -> u32 {
    let name = unsafe { text(name) };
    with(|r| {
        let list = names(r);
        list.push(name);
        unsafe { *id = list.len() - 1 };
    });
    0
}
/// Metric definitions `(config, name, labels, label count, id out)`, listed
/// in the `Recorded` field named.
macro_rules! metric_define {
    ($($name:ident => $field:ident;)*) => {$(
        #[no_mangle]
        pub extern "C" fn $name(
            _: *mut c_void,
            name: ModuleBuffer,
            _: *mut ModuleBuffer,
            _: usize,
            id: *mut usize,
        ) -> u32 {
            define(|r| &mut r.$field, name, id)
        }
    )*};
}

/// Metric updates `(config or stream, id, labels, label count, value)`,
/// each recorded by `record` (or not).
macro_rules! metric_update {
    ($($name:ident => $record:expr;)*) => {$(
        #[no_mangle]
        pub extern "C" fn $name(
            _: *mut c_void,
            id: usize,
            _: *mut ModuleBuffer,
            _: usize,
            value: u64,
        ) -> u32 {
            let record: fn(&mut Recorded, usize, u64) = $record;
            with(|r| record(r, id, value));
            0
        }
    )*};
}

metric_define! {
    envoy_dynamic_module_callback_bootstrap_extension_config_define_counter => counters;
    envoy_dynamic_module_callback_bootstrap_extension_config_define_gauge => gauges;
    envoy_dynamic_module_callback_http_filter_config_define_counter => filter_counters;
}

metric_update! {
    envoy_dynamic_module_callback_bootstrap_extension_config_increment_counter => |r, id, value| r.increments.push((id, value));
    envoy_dynamic_module_callback_bootstrap_extension_config_increment_gauge => |_, _, _| {};
    envoy_dynamic_module_callback_bootstrap_extension_config_set_gauge => |_, _, _| {};
    envoy_dynamic_module_callback_bootstrap_extension_config_decrement_gauge => |_, _, _| {};
    envoy_dynamic_module_callback_http_filter_increment_counter => |r, id, value| r.filter_increments.push((id, value));
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_http_send_response(
    _: *mut c_void,
    status: u32,
    headers: *mut ModuleHeader,
    headers_size: usize,
    body: ModuleBuffer,
    details: ModuleBuffer,
) {
    let headers = unsafe { std::slice::from_raw_parts(headers, headers_size) }
        .iter()
        .map(|h| unsafe {
            (
                text(ModuleBuffer {
                    ptr: h.key_ptr,
                    length: h.key_length,
                }),
                text(ModuleBuffer {
                    ptr: h.value_ptr,
                    length: h.value_length,
                }),
            )
        })
        .collect();
    let (body, details) = unsafe { (text(body), text(details)) };
    with(|r| r.replies.push((status, headers, body, details)));
}
