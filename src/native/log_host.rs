//! The access-log context of one finished request as the core's host:
//! [`LogHost`] answers the core's property paths from the access logger's
//! dedicated getters, so `filter::http::build` runs unchanged. Every
//! pointer and count from Envoy is checked before it is read.

use super::abi::{self, EnvoyBuffer};
use super::quiet::Reader;

mod headers;
use crate::host::{Attributes, Headers, HostError, Level, Map};
use std::cell::Cell;
use std::ffi::c_void;

/// The access-log context of one finished request, as the core's host.
pub struct LogHost<'a> {
    pub(super) ctx: *mut c_void,
    pub(super) config: &'a [u8],
    /// Configuring: its lines are said by Envoy's load and the main thread.
    pub(super) quiet: bool,
    /// Envoy fills each struct whole: read once per request.
    pub(super) timing: Cell<Option<abi::TimingInfo>>,
    pub(super) bytes: Cell<Option<abi::BytesInfo>>,
}

impl<'a> LogHost<'a> {
    pub(super) fn new(ctx: *mut c_void, config: &'a [u8], quiet: bool) -> LogHost<'a> {
        LogHost {
            ctx,
            config,
            quiet,
            timing: Cell::new(None),
            bytes: Cell::new(None),
        }
    }
}

/// A property as an access-logger getter gives it: Envoy's bytes,
/// borrowed for the hook, or a value the module made.
enum Value<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
    Int(u64),
}

impl Value<'_> {
    /// As proxy-wasm gives a property: an integer as 8 little-endian bytes.
    fn into_bytes(self) -> Vec<u8> {
        match self {
            Value::Borrowed(b) => b.to_vec(),
            Value::Owned(v) => v,
            Value::Int(n) => n.to_le_bytes().to_vec(),
        }
    }
}

fn int<'a>(v: u64) -> Option<Value<'a>> {
    Some(Value::Int(v))
}

impl LogHost<'_> {
    fn buffer(
        &self,
        getter: unsafe extern "C" fn(*mut c_void, *mut EnvoyBuffer) -> bool,
    ) -> Option<Value<'_>> {
        let mut out = EnvoyBuffer::EMPTY;
        // Safety: the context is Envoy's, valid for this hook; `out` is ours.
        if !unsafe { getter(self.ctx, &mut out) } {
            return None;
        }
        // Safety: Envoy's buffer, valid until the hook returns (the host
        // lives no longer than the hook).
        unsafe { abi::borrow_bytes(out.ptr, out.length) }.map(Value::Borrowed)
    }

    fn address(
        &self,
        getter: unsafe extern "C" fn(*mut c_void, *mut EnvoyBuffer, *mut u32) -> bool,
    ) -> Option<Vec<u8>> {
        let (mut ip, mut port) = (EnvoyBuffer::EMPTY, 0u32);
        // Safety: as in `buffer`.
        if !unsafe { getter(self.ctx, &mut ip, &mut port) } {
            return None;
        }
        // Safety: as in `buffer`.
        let ip = String::from_utf8(unsafe { abi::copy_bytes(ip.ptr, ip.length) }?).ok()?;
        // Envoy's own address format: brackets around an IPv6 host.
        let text = if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        };
        Some(text.into_bytes())
    }

    /// The first URI SAN, as Envoy's `connection.uri_san_*` attributes give it.
    fn first_san(
        &self,
        size: unsafe extern "C" fn(*mut c_void) -> usize,
        sans: unsafe extern "C" fn(*mut c_void, *mut EnvoyBuffer) -> bool,
    ) -> Option<Vec<u8>> {
        // Safety: as in `buffer`.
        let n = unsafe { size(self.ctx) };
        // A certificate with thousands of SANs is not one to allocate for.
        if n == 0 || n > 1024 {
            return None;
        }
        let mut out = vec![EnvoyBuffer::EMPTY; n];
        // Safety: `out` holds the `n` entries Envoy said it writes.
        if !unsafe { sans(self.ctx, out.as_mut_ptr()) } {
            return None;
        }
        let first = out.first()?;
        // Safety: as in `buffer`.
        unsafe { abi::copy_bytes(first.ptr, first.length) }
    }

    /// One dynamic-metadata value, encoded as proxy-wasm gives a property:
    /// a string's bytes, a number as a little-endian double, a bool as one byte.
    fn metadata_value(&self, namespace: &str, path: &str) -> Option<Vec<u8>> {
        use abi::*;
        let (ns, key) = (
            ModuleBuffer::of(namespace.as_bytes()),
            ModuleBuffer::of(path.as_bytes()),
        );
        let mut text = EnvoyBuffer::EMPTY;
        // Safety (each call): the context is Envoy's, valid for this hook;
        // the names outlive the call; the outputs are ours.
        if unsafe {
            envoy_dynamic_module_callback_access_logger_get_dynamic_metadata(
                self.ctx, ns, key, &mut text,
            )
        } {
            // Safety: as in `buffer`.
            return unsafe { copy_bytes(text.ptr, text.length) };
        }
        let mut number = 0f64;
        if unsafe {
            envoy_dynamic_module_callback_access_logger_get_dynamic_metadata_number(
                self.ctx,
                ns,
                key,
                &mut number,
            )
        } {
            return Some(number.to_le_bytes().to_vec());
        }
        let mut flag = false;
        if unsafe {
            envoy_dynamic_module_callback_access_logger_get_dynamic_metadata_bool(
                self.ctx, ns, key, &mut flag,
            )
        } {
            return Some(vec![u8::from(flag)]);
        }
        None
    }

    fn timing(&self) -> abi::TimingInfo {
        if let Some(t) = self.timing.get() {
            return t;
        }
        let mut t = abi::TimingInfo::default();
        // Safety: as in `buffer`; Envoy fills the whole struct.
        unsafe {
            abi::envoy_dynamic_module_callback_access_logger_get_timing_info(self.ctx, &mut t)
        };
        self.timing.set(Some(t));
        t
    }

    fn bytes(&self) -> abi::BytesInfo {
        if let Some(b) = self.bytes.get() {
            return b;
        }
        let mut b = abi::BytesInfo::default();
        // Safety: as in `timing`.
        unsafe {
            abi::envoy_dynamic_module_callback_access_logger_get_bytes_info(self.ctx, &mut b)
        };
        self.bytes.set(Some(b));
        b
    }

    fn property_of(&self, path: &[&str]) -> Option<Value<'_>> {
        use abi::*;
        let ctx = self.ctx;
        // Safety (every call below): the context is Envoy's, valid for this hook.
        match path {
            ["response", "code"] => {
                int(
                    unsafe { envoy_dynamic_module_callback_access_logger_get_response_code(ctx) }
                        as u64,
                )
            }
            ["response", "code_details"] => {
                self.buffer(envoy_dynamic_module_callback_access_logger_get_response_code_details)
            }
            ["response", "flags"] => {
                int(unsafe { envoy_dynamic_module_callback_access_logger_get_response_flags(ctx) })
            }
            ["response", "size"] => int(self.bytes().bytes_sent),
            ["request", "size"] => int(self.bytes().bytes_received),
            ["request", "time"] => u64::try_from(self.timing().start_time_unix_ns)
                .ok()
                .and_then(int),
            ["request", "duration"] => u64::try_from(self.timing().request_complete_duration_ns)
                .ok()
                .and_then(int),
            ["request", "id"] => {
                self.buffer(envoy_dynamic_module_callback_access_logger_get_request_id)
            }
            ["request", "protocol"] => {
                self.buffer(envoy_dynamic_module_callback_access_logger_get_protocol)
            }
            ["connection", "id"] => {
                int(unsafe { envoy_dynamic_module_callback_access_logger_get_connection_id(ctx) })
            }
            ["connection", "mtls"] => Some(Value::Owned(vec![u8::from(unsafe {
                envoy_dynamic_module_callback_access_logger_is_mtls(ctx)
            })])),
            ["connection", "tls_version"] => {
                self.buffer(envoy_dynamic_module_callback_access_logger_get_downstream_tls_version)
            }
            ["connection", "requested_server_name"] => {
                self.buffer(envoy_dynamic_module_callback_access_logger_get_requested_server_name)
            }
            ["connection", "subject_peer_certificate"] => {
                self.buffer(envoy_dynamic_module_callback_access_logger_get_downstream_peer_subject)
            }
            ["connection", "sha256_peer_certificate_digest"] => self.buffer(
                envoy_dynamic_module_callback_access_logger_get_downstream_peer_cert_digest,
            ),
            ["connection", "uri_san_peer_certificate"] => self
                .first_san(
                    envoy_dynamic_module_callback_access_logger_get_downstream_peer_uri_san_size,
                    envoy_dynamic_module_callback_access_logger_get_downstream_peer_uri_san,
                )
                .map(Value::Owned),
            ["connection", "uri_san_local_certificate"] => self
                .first_san(
                    envoy_dynamic_module_callback_access_logger_get_downstream_local_uri_san_size,
                    envoy_dynamic_module_callback_access_logger_get_downstream_local_uri_san,
                )
                .map(Value::Owned),
            ["source", "address"] => self
                .address(envoy_dynamic_module_callback_access_logger_get_downstream_remote_address)
                .map(Value::Owned),
            ["destination", "address"] => self
                .address(envoy_dynamic_module_callback_access_logger_get_downstream_local_address)
                .map(Value::Owned),
            ["xds", "route_name"] => {
                self.buffer(envoy_dynamic_module_callback_access_logger_get_route_name)
            }
            ["xds", "cluster_name"] => {
                self.buffer(envoy_dynamic_module_callback_access_logger_get_upstream_cluster)
            }
            ["xds", "virtual_host_name"] => {
                let mut out = EnvoyBuffer::EMPTY;
                let found = unsafe {
                    envoy_dynamic_module_callback_access_logger_get_attribute_string(
                        ctx,
                        ATTRIBUTE_XDS_VIRTUAL_HOST_NAME,
                        &mut out,
                    )
                };
                // Safety: as in `buffer`.
                found
                    .then(|| unsafe { borrow_bytes(out.ptr, out.length) })?
                    .map(Value::Borrowed)
            }
            // Not offered to access loggers in this ABI (the node id):
            // absent, as a proxy that cannot tell.
            _ => None,
        }
    }
}

impl Attributes for LogHost<'_> {
    fn property_or_error(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        if self.ctx.is_null() {
            return Ok(None);
        }
        match path {
            // The access logger gives metadata values one by one, never a
            // whole Struct: the core then reads the payload claim by claim.
            ["metadata", "filter_metadata", _, _] => Err(HostError::Unserializable),
            ["metadata", "filter_metadata", ns, key, claim] => {
                Ok(self.metadata_value(ns, &format!("{key}.{claim}")))
            }
            _ => Ok(self.property_of(path).map(Value::into_bytes)),
        }
    }

    /// Envoy's bytes made text once, not copied first.
    fn property_text(&self, path: &[&str]) -> Option<String> {
        if self.ctx.is_null() || path.first() == Some(&"metadata") {
            let b = self.property(path)?;
            return (!b.is_empty()).then(|| String::from_utf8_lossy(&b).into_owned());
        }
        let text = match self.property_of(path)? {
            Value::Borrowed(b) => crate::host::lossy(b).into_owned(),
            Value::Owned(v) => String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            Value::Int(n) => String::from_utf8_lossy(&n.to_le_bytes()).into_owned(),
        };
        (!text.is_empty()).then_some(text)
    }

    /// An integer getter's value as it is, not as bytes.
    fn property_u64(&self, path: &[&str]) -> Option<u64> {
        if self.ctx.is_null() || path.first() == Some(&"metadata") {
            return crate::host::le_u64(&self.property(path)?);
        }
        match self.property_of(path)? {
            Value::Int(n) => Some(n),
            other => crate::host::le_u64(&other.into_bytes()),
        }
    }

    /// A few headers by name cost a few lookups in Envoy's map, where the
    /// whole map is a copy of every header.
    fn headers_named(&self, map: Map, names: &[&str], out: &mut Headers) -> bool {
        self.named_headers(map, names, out)
    }

    fn headers(&self, map: Map) -> Headers {
        let mut out = Headers::default();
        self.whole_map(map, &mut out);
        out
    }

    fn headers_into(&self, map: Map, out: &mut Headers) {
        self.whole_map(map, out);
    }
}

impl Reader for LogHost<'_> {
    fn config(&self) -> Option<&[u8]> {
        Some(self.config)
    }
    fn reads_env(&self) -> bool {
        true
    }
    /// The worker's copy of the auditor only builds: its configure lines
    /// would repeat the main thread's, so only warnings and worse go out.
    fn says(&self, level: Level) -> bool {
        level >= Level::Warn && !self.quiet
    }
}
