//! The module's event hooks, as Envoy calls them: declared once for the
//! test binaries that play Envoy's part (tests/native_abi.rs, tests/native_cost.rs).

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
