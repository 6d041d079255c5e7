//! The access-log context's header maps: a whole map copied in one call,
//! or a few headers by name, each a lookup in Envoy's map.

use super::LogHost;
use crate::host::{Headers, Map};
use crate::native::abi::{self, EnvoyBuffer, EnvoyHeader, HeaderType};

impl LogHost<'_> {
    /// A few headers by name cost a few lookups in Envoy's map, where the
    /// whole map is a copy of every header. `:status` is the response
    /// code Envoy took from it, which costs no lookup.
    pub(super) fn named_headers(&self, map: Map, names: &[&str], out: &mut Headers) -> bool {
        out.clear();
        let Some(kind) = header_type(map) else {
            return true;
        };
        if self.ctx.is_null() {
            return true;
        }
        for &name in names {
            if kind == HeaderType::Response && name == ":status" {
                if let Some(code) = self.response_code() {
                    out.push(name, itoa::Buffer::new().format(code).as_bytes());
                }
            } else if let Some(v) = self.header_value(kind, name.as_bytes()) {
                out.push(name, v);
            }
        }
        true
    }

    /// A whole map, copied into `out` (its allocation reused).
    pub(super) fn whole_map(&self, map: Map, out: &mut Headers) {
        out.clear();
        let Some(kind) = header_type(map) else {
            return;
        };
        if self.ctx.is_null() {
            return;
        }
        // Safety: the context is Envoy's, valid for this hook.
        let n = unsafe {
            abi::envoy_dynamic_module_callback_access_logger_get_headers_size(self.ctx, kind)
        };
        // Envoy caps a header map far below this; more is not a real map.
        if n == 0 || n > 8192 {
            return;
        }
        const EMPTY: EnvoyHeader = EnvoyHeader {
            key_ptr: std::ptr::null(),
            key_length: 0,
            value_ptr: std::ptr::null(),
            value_length: 0,
        };
        // A usual map fits on the stack; a larger one is allocated.
        let mut stack = [EMPTY; 48];
        let mut heap = Vec::new();
        let raw: &mut [EnvoyHeader] = match stack.get_mut(..n) {
            Some(s) => s,
            None => {
                heap.resize(n, EMPTY);
                &mut heap
            }
        };
        // Safety: `raw` holds the `n` entries Envoy said it writes.
        if !unsafe {
            abi::envoy_dynamic_module_callback_access_logger_get_headers(
                self.ctx,
                kind,
                raw.as_mut_ptr(),
            )
        } {
            return;
        }
        for h in raw.iter() {
            // Safety: Envoy's buffers, valid until the hook returns.
            let key = unsafe { abi::borrow_bytes(h.key_ptr, h.key_length) };
            let value = unsafe { abi::borrow_bytes(h.value_ptr, h.value_length) };
            // A header Envoy gives broken (a null pointer with a length, a
            // name that is not UTF-8) is left out.
            if let (Some(Some(key)), Some(value)) = (key.map(crate::host::text), value) {
                out.push(key, value);
            }
        }
    }
}

fn header_type(map: Map) -> Option<HeaderType> {
    match map {
        Map::RequestHeaders => Some(HeaderType::Request),
        Map::ResponseHeaders => Some(HeaderType::Response),
        Map::CallResponseHeaders => None,
    }
}

impl LogHost<'_> {
    /// The first value of request header `name` (lower-case), valid until
    /// the hook returns.
    pub(in crate::native) fn request_header(&self, name: &[u8]) -> Option<&[u8]> {
        if self.ctx.is_null() {
            return None;
        }
        self.header_value(HeaderType::Request, name)
    }

    /// Envoy's response code, the `:status` it sent; `None` before one.
    pub(in crate::native) fn response_code(&self) -> Option<u32> {
        if self.ctx.is_null() {
            return None;
        }
        // Safety: the context is Envoy's, valid for this hook.
        let code =
            unsafe { abi::envoy_dynamic_module_callback_access_logger_get_response_code(self.ctx) };
        (code != 0).then_some(code)
    }

    /// The first value of header `name`, as Envoy's map lookup finds it,
    /// valid until the hook returns.
    fn header_value(&self, kind: HeaderType, name: &[u8]) -> Option<&[u8]> {
        let mut out = EnvoyBuffer::EMPTY;
        // Safety: the context is Envoy's, valid for this hook; the name
        // outlives the call; a null count pointer asks for no count.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_access_logger_get_header_value(
                self.ctx,
                kind,
                abi::ModuleBuffer::of(name),
                &mut out,
                0,
                std::ptr::null_mut(),
            )
        };
        // Safety: Envoy's buffer, valid until the hook returns (the host
        // lives no longer than the hook).
        found.then(|| unsafe { abi::borrow_bytes(out.ptr, out.length) })?
    }
}
