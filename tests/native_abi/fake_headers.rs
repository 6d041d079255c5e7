//! The fake Envoy's header getters: the request's own headers, and a
//! fixed `200 text/plain` response.

use super::req;
use mesh_audit::native::abi::{EnvoyBuffer, EnvoyHeader, ModuleBuffer};
use std::ffi::c_void;

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_headers_size(
    ctx: *mut c_void,
    kind: u32,
) -> usize {
    let r = req(ctx);
    match kind {
        0 => r.claimed_headers.unwrap_or(r.headers.len()),
        _ => 2,
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_headers(
    ctx: *mut c_void,
    kind: u32,
    out: *mut EnvoyHeader,
) -> bool {
    let r = req(ctx);
    let response: [(&'static [u8], &'static [u8]); 2] =
        [(b":status", b"200"), (b"content-type", b"text/plain")];
    let entries: Vec<(&[u8], &[u8])> = match kind {
        0 => r
            .headers
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect(),
        _ => response.to_vec(),
    };
    for (i, (k, v)) in entries.iter().enumerate() {
        let value_ptr = if r.null_values && kind == 0 && k != b":path" && k != b":method" {
            std::ptr::null()
        } else {
            v.as_ptr()
        };
        unsafe {
            *out.add(i) = EnvoyHeader {
                key_ptr: k.as_ptr(),
                key_length: k.len(),
                value_ptr,
                value_length: v.len(),
            }
        };
    }
    true
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_callback_access_logger_get_header_value(
    ctx: *mut c_void,
    kind: u32,
    key: ModuleBuffer,
    out: *mut EnvoyBuffer,
    index: usize,
    _total: *mut usize,
) -> bool {
    let r = req(ctx);
    let key = unsafe { std::slice::from_raw_parts(key.ptr, key.length) };
    let response: [(&'static [u8], &'static [u8]); 2] =
        [(b":status", b"200"), (b"content-type", b"text/plain")];
    let found = match kind {
        0 => r
            .headers
            .iter()
            .filter(|(k, _)| k.as_slice() == key)
            .map(|(_, v)| v.as_slice())
            .nth(index),
        _ => response
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .nth(index),
    };
    let Some(v) = found else { return false };
    // As the whole-map getter does, a poisoned request gives null values.
    let ptr = if r.null_values && kind == 0 && key != b":path" && key != b":method" {
        std::ptr::null()
    } else {
        v.as_ptr()
    };
    unsafe {
        *out = EnvoyBuffer {
            ptr,
            length: v.len(),
        }
    };
    true
}
