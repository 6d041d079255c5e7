//! The module's event hooks, as Envoy calls them: declared once for the
//! test binaries that play Envoy's part (tests/native_abi.rs, tests/native_cost.rs,
//! tests/native_sampled.rs, tests/native_plain_rate.rs).

// Each test binary calls the hooks it needs.
#![allow(dead_code)]

use mesh_audit::native::abi::{EnvoyBuffer, EnvoyHeader};
use std::ffi::{c_char, c_void};

extern "C" {
    pub(crate) fn envoy_dynamic_module_on_program_init() -> *const c_char;
    pub(crate) fn envoy_dynamic_module_on_access_logger_config_new(
        config_envoy: *mut c_void,
        name: EnvoyBuffer,
        config: EnvoyBuffer,
    ) -> *const c_void;
    pub(crate) fn envoy_dynamic_module_on_access_logger_new(
        config: *const c_void,
        logger_envoy: *mut c_void,
    ) -> *const c_void;
    pub(crate) fn envoy_dynamic_module_on_access_logger_log(
        ctx: *mut c_void,
        logger: *const c_void,
        log_type: u32,
    );
    pub(crate) fn envoy_dynamic_module_on_access_logger_destroy(logger: *const c_void);
    pub(crate) fn envoy_dynamic_module_on_access_logger_config_destroy(config: *const c_void);
    pub(crate) fn envoy_dynamic_module_on_bootstrap_extension_config_new(
        config_envoy: *mut c_void,
        name: EnvoyBuffer,
        config: EnvoyBuffer,
    ) -> *const c_void;
    pub(crate) fn envoy_dynamic_module_on_bootstrap_extension_server_initialized(
        extension_envoy: *mut c_void,
        extension: *const c_void,
    );
    pub(crate) fn envoy_dynamic_module_on_bootstrap_extension_timer_fired(
        config_envoy: *mut c_void,
        config: *const c_void,
        timer: *mut c_void,
    );
    pub(crate) fn envoy_dynamic_module_on_bootstrap_extension_http_callout_done(
        config_envoy: *mut c_void,
        config: *const c_void,
        callout_id: u64,
        result: u32,
        headers: *const EnvoyHeader,
        headers_size: usize,
        body: *const EnvoyBuffer,
        body_size: usize,
    );
    pub(crate) fn envoy_dynamic_module_on_http_filter_config_new(
        config_envoy: *mut c_void,
        name: EnvoyBuffer,
        config: EnvoyBuffer,
    ) -> *const c_void;
    pub(crate) fn envoy_dynamic_module_on_http_filter_new(
        config: *const c_void,
        filter_envoy: *mut c_void,
    ) -> *const c_void;
    pub(crate) fn envoy_dynamic_module_on_http_filter_request_headers(
        filter_envoy: *mut c_void,
        filter: *const c_void,
        end_of_stream: bool,
    ) -> u32;
    pub(crate) fn envoy_dynamic_module_on_http_filter_destroy(filter: *const c_void);
    pub(crate) fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void);
    pub(crate) fn envoy_dynamic_module_on_bootstrap_extension_shutdown(
        extension_envoy: *mut c_void,
        extension: *const c_void,
        completion: Option<unsafe extern "C" fn(*mut c_void)>,
        context: *mut c_void,
    );
}

/// A module-facing view of `bytes`.
pub(crate) fn buf(bytes: &[u8]) -> EnvoyBuffer {
    EnvoyBuffer {
        ptr: bytes.as_ptr(),
        length: bytes.len(),
    }
}

/// Creates the bootstrap extension with Envoy's `envoy_config` context and
/// tells it the server is initialised, as Envoy does at start.
pub(crate) fn start_bootstrap(envoy_config: *mut c_void) -> *const c_void {
    let ext = unsafe {
        envoy_dynamic_module_on_bootstrap_extension_config_new(
            envoy_config,
            buf(b"mesh-audit"),
            buf(b""),
        )
    };
    if !ext.is_null() {
        unsafe {
            envoy_dynamic_module_on_bootstrap_extension_server_initialized(
                std::ptr::null_mut(),
                ext,
            )
        };
    }
    ext
}

/// Program init, the bootstrap extension and one access logger with the
/// configuration `json`, as Envoy starts them: (extension, logger).
pub(crate) fn start_logger(
    envoy_config: *mut c_void,
    json: &[u8],
) -> (*const c_void, *const c_void) {
    unsafe { envoy_dynamic_module_on_program_init() };
    let ext = start_bootstrap(envoy_config);
    assert!(!ext.is_null());
    let config = unsafe {
        envoy_dynamic_module_on_access_logger_config_new(std::ptr::null_mut(), buf(b""), buf(json))
    };
    assert!(!config.is_null());
    let logger = unsafe { envoy_dynamic_module_on_access_logger_new(config, std::ptr::null_mut()) };
    assert!(!logger.is_null());
    (ext, logger)
}

/// The sink answers callout `id` with a bare `200`.
pub(crate) fn acknowledge(envoy_config: *mut c_void, ext: *const c_void, id: u64) {
    let (k, v) = (b":status", b"200");
    let reply = [EnvoyHeader {
        key_ptr: k.as_ptr(),
        key_length: k.len(),
        value_ptr: v.as_ptr(),
        value_length: v.len(),
    }];
    unsafe {
        envoy_dynamic_module_on_bootstrap_extension_http_callout_done(
            envoy_config,
            ext,
            id,
            0,
            reply.as_ptr(),
            reply.len(),
            std::ptr::null(),
            0,
        )
    };
}

/// Passes the flush interval, then fires the extension's timer.
pub(crate) fn tick(config_envoy: *mut c_void) {
    std::thread::sleep(std::time::Duration::from_millis(120));
    let timer = std::ptr::addr_of!(crate::fake_envoy::TIMER)
        .cast_mut()
        .cast();
    unsafe {
        envoy_dynamic_module_on_bootstrap_extension_timer_fired(
            config_envoy,
            std::ptr::null(),
            timer,
        )
    };
}
