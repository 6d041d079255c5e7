//! The core's host for one emitter on the main thread: the sink callouts,
//! the metrics (defined once, shared by every emitter), the reply being
//! handled. Everything here runs on Envoy's main thread.

use super::abi::{self, EnvoyBuffer, EnvoyHeader, ModuleBuffer, ModuleHeader};
use super::{env_var, fill_random, log, now_nanos};
use crate::host::{Attributes, Headers, HostError, Level, Map, MetricKind, Proxy};
use std::cell::{Cell, RefCell};
use std::ffi::c_void;

/// A metric defined with Envoy: what the core's handle (its index) names.
pub struct Metric {
    pub(super) kind: MetricKind,
    pub(super) name: String,
    pub(super) envoy_id: usize,
}

/// The core's host for one emitter, on the main thread.
pub struct MainHost<'a> {
    pub(super) config_envoy: *mut c_void,
    pub(super) config: &'a [u8],
    /// The sink's answer being handled (`Map::CallResponseHeaders`, the body).
    pub(super) reply: Option<&'a Answer>,
    pub(super) done: &'a Cell<bool>,
    /// Callouts this host started: (callout id, token).
    pub(super) started: &'a RefCell<Vec<(u64, u32)>>,
    pub(super) next_token: &'a Cell<u32>,
    pub(super) metrics: &'a RefCell<Vec<Metric>>,
}

/// Most headers kept of a sink reply, and most bytes of its body: the core
/// reads the status, `Retry-After` and an OTLP export response (a few
/// dozen bytes), never more than 64 KiB of it.
const MAX_REPLY_HEADERS: usize = 256;
const MAX_REPLY_BODY: usize = 64 * 1024;

/// What the sink answered, copied out of Envoy's buffers.
pub struct Answer {
    headers: Headers,
    body: Vec<u8>,
}

impl Answer {
    /// Copies a callout's answer, within the bounds above; `None` when
    /// Envoy gave no headers.
    ///
    /// # Safety
    /// A non-null `headers` addresses `count` headers and a non-null `body`
    /// `chunks` buffers, valid for the hook that gave them.
    pub unsafe fn copy(
        headers: *const EnvoyHeader,
        count: usize,
        body: *const EnvoyBuffer,
        chunks: usize,
    ) -> Option<Answer> {
        if headers.is_null() || count > 8192 {
            return None;
        }
        // Safety: per the contract.
        let raw = unsafe { std::slice::from_raw_parts(headers, count) };
        let headers: Headers = raw
            .iter()
            .filter_map(|h| {
                // Safety: Envoy's buffers, valid for this hook.
                let key = unsafe { abi::copy_bytes(h.key_ptr, h.key_length) }?;
                let value = unsafe { abi::copy_bytes(h.value_ptr, h.value_length) }?;
                Some((String::from_utf8(key).ok()?, value))
            })
            .take(MAX_REPLY_HEADERS)
            .collect();
        let mut bytes = Vec::new();
        if !body.is_null() && chunks <= 8192 {
            // Safety: per the contract.
            for chunk in unsafe { std::slice::from_raw_parts(body, chunks) } {
                let room = MAX_REPLY_BODY - bytes.len();
                if room == 0 {
                    break;
                }
                // Safety: Envoy's buffer; never more than there is room for.
                if let Some(b) = unsafe { abi::copy_bytes(chunk.ptr, chunk.length.min(room)) } {
                    bytes.extend_from_slice(&b);
                }
            }
        }
        Some(Answer {
            headers,
            body: bytes,
        })
    }
}

impl Attributes for MainHost<'_> {
    /// The main thread has no request: the node id is not offered by the
    /// dynamic-module ABI (v0.2.0) either, so the OTLP resource goes
    /// without `service.instance.id`.
    fn property_or_error(&self, _: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        Ok(None)
    }
    fn headers(&self, map: Map) -> Headers {
        match (map, self.reply) {
            (Map::CallResponseHeaders, Some(a)) => a.headers.clone(),
            _ => Headers::default(),
        }
    }
}

impl Proxy for MainHost<'_> {
    fn plugin_config(&self) -> Option<Vec<u8>> {
        Some(self.config.to_vec())
    }
    fn call_response_body(&self, max: usize) -> Option<Vec<u8>> {
        let body = &self.reply?.body;
        Some(body[..body.len().min(max)].to_vec())
    }
    fn env_var(&self, name: &str) -> Option<String> {
        env_var(name)
    }
    fn fill_random(&self, buf: &mut [u8]) -> bool {
        fill_random(buf)
    }
    fn now_nanos(&self) -> u64 {
        now_nanos()
    }
    fn set_tick_period_ms(&self, _: u64) {}
    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        if self.config_envoy.is_null() {
            return Err(HostError::InternalFailure);
        }
        let mut raw: Vec<ModuleHeader> = headers
            .iter()
            .map(|(k, v)| ModuleHeader {
                key_ptr: k.as_ptr(),
                key_length: k.len(),
                value_ptr: v.as_ptr(),
                value_length: v.len(),
            })
            .collect();
        let mut id = 0u64;
        // Safety: main thread; every buffer outlives the call, Envoy copies them.
        let result = unsafe {
            abi::envoy_dynamic_module_callback_bootstrap_extension_http_callout(
                self.config_envoy,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                raw.as_mut_ptr(),
                raw.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        };
        match result {
            abi::CALLOUT_INIT_SUCCESS => {
                let token = self.next_token.get().wrapping_add(1);
                self.next_token.set(token);
                self.started.borrow_mut().push((id, token));
                Ok(token)
            }
            abi::CALLOUT_INIT_CLUSTER_NOT_FOUND => Err(HostError::BadArgument),
            _ => Err(HostError::InternalFailure),
        }
    }
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let mut metrics = self.metrics.try_borrow_mut().ok()?;
        if let Some(i) = metrics
            .iter()
            .position(|m| m.kind == kind && m.name == name)
        {
            return u32::try_from(i).ok();
        }
        if self.config_envoy.is_null() {
            return None;
        }
        let mut envoy_id = 0usize;
        let name_buf = ModuleBuffer::of(name.as_bytes());
        // Safety: main thread; Envoy copies the name.
        let result = unsafe {
            match kind {
                MetricKind::Counter => {
                    abi::envoy_dynamic_module_callback_bootstrap_extension_config_define_counter(
                        self.config_envoy,
                        name_buf,
                        std::ptr::null_mut(),
                        0,
                        &mut envoy_id,
                    )
                }
                MetricKind::Gauge => {
                    abi::envoy_dynamic_module_callback_bootstrap_extension_config_define_gauge(
                        self.config_envoy,
                        name_buf,
                        std::ptr::null_mut(),
                        0,
                        &mut envoy_id,
                    )
                }
            }
        };
        if result != abi::METRICS_SUCCESS {
            return None;
        }
        metrics.push(Metric {
            kind,
            name: name.to_string(),
            envoy_id,
        });
        u32::try_from(metrics.len() - 1).ok()
    }
    fn increment_metric(&self, id: u32, delta: i64) {
        let Ok(metrics) = self.metrics.try_borrow() else {
            return;
        };
        let Some(m) = metrics.get(id as usize) else {
            return;
        };
        let (c, n) = (self.config_envoy, std::ptr::null_mut());
        let amount = delta.unsigned_abs();
        // Safety: main thread; an id Envoy gave for this config.
        unsafe {
            match (m.kind, delta >= 0) {
                (MetricKind::Counter, true) => {
                    abi::envoy_dynamic_module_callback_bootstrap_extension_config_increment_counter(
                        c, m.envoy_id, n, 0, amount,
                    )
                }
                (MetricKind::Counter, false) => abi::METRICS_SUCCESS,
                (MetricKind::Gauge, true) => {
                    abi::envoy_dynamic_module_callback_bootstrap_extension_config_increment_gauge(
                        c, m.envoy_id, n, 0, amount,
                    )
                }
                (MetricKind::Gauge, false) => {
                    abi::envoy_dynamic_module_callback_bootstrap_extension_config_decrement_gauge(
                        c, m.envoy_id, n, 0, amount,
                    )
                }
            }
        };
    }
    fn record_metric(&self, id: u32, value: u64) {
        let Ok(metrics) = self.metrics.try_borrow() else {
            return;
        };
        let Some(m) = metrics.get(id as usize) else {
            return;
        };
        if m.kind != MetricKind::Gauge {
            return;
        }
        // Safety: main thread; an id Envoy gave for this config.
        unsafe {
            abi::envoy_dynamic_module_callback_bootstrap_extension_config_set_gauge(
                self.config_envoy,
                m.envoy_id,
                std::ptr::null_mut(),
                0,
                value,
            );
        }
    }
    // Envoy's shared data is a proxy-wasm facility: the native module keeps
    // its configuration for the life of the process and has no VMs to
    // outlive, so there is nothing to remember across them.
    fn shared_data(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
    fn set_shared_data(&self, _: &str, _: &[u8]) -> bool {
        false
    }
    fn log(&self, level: Level, message: &str) {
        log(level, message);
    }
    fn send_local_reply(&self, _: u32, _: &[u8], _: &[(&str, &str)]) {}
    fn done(&self) {
        self.done.set(true);
    }
}
