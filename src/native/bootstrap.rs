//! The bootstrap extension's hooks (`envoy_dynamic_module_on_bootstrap_*`):
//! the main thread's delivery, timer and shutdown, delegated to
//! [`super::main_thread`] inside [`guard`], like every hook of the module.

use super::abi::{self, EnvoyBuffer, EnvoyHeader};
use super::{guard, main_thread};
use std::ffi::c_void;

/// A pointer for hooks whose module-side object carries no state.
static MARKER: u8 = 0;

fn marker() -> *const c_void {
    std::ptr::addr_of!(MARKER).cast()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_config_new(
    config_envoy: *mut c_void,
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    guard("bootstrap_extension_config_new", std::ptr::null(), || {
        if config_envoy.is_null() {
            return std::ptr::null();
        }
        main_thread::config_new(config_envoy);
        marker()
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_config_destroy(_: *const c_void) {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_new(
    _config: *const c_void,
    _extension_envoy: *mut c_void,
) -> *const c_void {
    marker()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_server_initialized(
    _extension_envoy: *mut c_void,
    _extension: *const c_void,
) {
    guard(
        "bootstrap_extension_server_initialized",
        (),
        main_thread::server_initialized,
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_worker_thread_initialized(
    _extension_envoy: *mut c_void,
    _extension: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_drain_started(
    _extension_envoy: *mut c_void,
    _extension: *const c_void,
) {
    guard(
        "bootstrap_extension_drain_started",
        (),
        main_thread::drain_started,
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_shutdown(
    _extension_envoy: *mut c_void,
    _extension: *const c_void,
    completion: abi::EventCallback,
    context: *mut c_void,
) {
    let finished = guard("bootstrap_extension_shutdown", false, || {
        main_thread::shutdown(completion, context);
        true
    });
    if !finished {
        // Envoy waits for this callback: a failed drain must still release it.
        if let Some(cb) = completion {
            // Safety: Envoy's completion callback with the context it gave.
            unsafe { cb(context) };
        }
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_destroy(_: *const c_void) {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_config_scheduled(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _event_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_timer_fired(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    timer: *mut c_void,
) {
    guard("bootstrap_extension_timer_fired", (), || {
        main_thread::timer_fired(timer)
    })
}

/// # Safety
/// `headers` addresses `headers_size` headers and `body` `body_size`
/// buffers Envoy owns for the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_bootstrap_extension_http_callout_done(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    body: *const EnvoyBuffer,
    body_size: usize,
) {
    guard("bootstrap_extension_http_callout_done", (), || {
        // Safety: per this hook's contract.
        unsafe {
            main_thread::callout_done(callout_id, result, headers, headers_size, body, body_size)
        }
    })
}

// Hooks Envoy requires of every bootstrap extension; mesh-audit watches no
// file, serves no admin path and follows no cluster or listener changes.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_file_changed(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _path: EnvoyBuffer,
    _events: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_admin_request(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _method: EnvoyBuffer,
    _path: EnvoyBuffer,
    _body: EnvoyBuffer,
) -> u32 {
    404
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_cluster_add_or_update(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _cluster: EnvoyBuffer,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_cluster_removal(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _cluster: EnvoyBuffer,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_listener_add_or_update(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _listener: EnvoyBuffer,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_bootstrap_extension_listener_removal(
    _config_envoy: *mut c_void,
    _config: *const c_void,
    _listener: EnvoyBuffer,
) {
}
