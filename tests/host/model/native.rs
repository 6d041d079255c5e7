//! The native guest: the crate's core in the emulated proxy, through the
//! host traits. It plays the part of the proxy-wasm glue (src/filter/glue.rs,
//! wasm32 only): the same contexts, the same calls into the core, the same
//! answers; host calls are counted under the ABI import each one is on wasm,
//! so per-request counts compare across guests.

use super::state::{buffer, map, status, State};
use super::{Call, Guest, GuestCode, ROOT_ID};
use mesh_audit::filter::http;
use mesh_audit::filter::root::Auditor;
use mesh_audit::host::{Attributes, Headers, HostError, Level, Map, MetricKind, Proxy};
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// The host traits over the emulator's state, for the length of one call.
struct Seam<'a>(&'a RefCell<State>);

impl Seam<'_> {
    fn enter(&self, import: &str) -> std::cell::RefMut<'_, State> {
        let mut s = self.0.borrow_mut();
        s.count("env", import);
        s
    }
}

/// The reason behind a failed read, as src/host/wasm.rs reads the status.
fn read_error(status: i32) -> HostError {
    match status {
        status::BAD_ARGUMENT => HostError::NotAvailableInThisPhase,
        status::SERIALIZATION_FAILURE => HostError::Unserializable,
        _ => HostError::InternalFailure,
    }
}

impl Attributes for Seam<'_> {
    fn property_or_error(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        let mut s = self.enter("proxy_get_property");
        match s.get_property(path.join("\0").as_bytes()) {
            // An empty value crosses the ABI as no buffer at all.
            Ok(value) => Ok((!value.is_empty()).then_some(value)),
            Err(status::NOT_FOUND) => Ok(None),
            Err(other) => Err(read_error(other)),
        }
    }

    fn headers(&self, which: Map) -> Headers {
        let s = self.enter("proxy_get_header_map_pairs");
        let kind = match which {
            Map::RequestHeaders => map::REQUEST_HEADERS,
            Map::ResponseHeaders => map::RESPONSE_HEADERS,
            Map::CallResponseHeaders => map::CALL_RESPONSE_HEADERS,
        };
        s.header_map(kind)
            .map(|m| m.iter().map(|(k, v)| (k, v)).collect())
            .unwrap_or_default()
    }
}

impl Proxy for Seam<'_> {
    fn plugin_config(&self) -> Option<Vec<u8>> {
        let s = self.enter("proxy_get_buffer_bytes");
        let bytes = s.buffer_bytes(buffer::PLUGIN_CONFIGURATION, 0, u32::MAX as usize);
        bytes.ok().filter(|b| !b.is_empty())
    }

    fn call_response_body(&self, max: usize) -> Option<Vec<u8>> {
        let s = self.enter("proxy_get_buffer_bytes");
        let bytes = s.buffer_bytes(buffer::CALL_RESPONSE_BODY, 0, max);
        bytes.ok().filter(|b| !b.is_empty())
    }

    fn env_var(&self, name: &str) -> Option<String> {
        let mut s = self.0.borrow_mut();
        s.count("wasi_snapshot_preview1", "environ_get");
        s.env_var(name)
    }

    fn fill_random(&self, buf: &mut [u8]) -> bool {
        let mut s = self.0.borrow_mut();
        s.count("wasi_snapshot_preview1", "random_get");
        buf.copy_from_slice(&s.random_bytes(buf.len()));
        true
    }

    fn now_nanos(&self) -> u64 {
        self.enter("proxy_get_current_time_nanoseconds").now_nanos
    }

    fn set_tick_period_ms(&self, ms: u64) {
        let mut s = self.enter("proxy_set_tick_period_milliseconds");
        s.set_tick_period(ms.min(u64::from(u32::MAX)) as u32);
    }

    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, HostError> {
        let mut s = self.enter("proxy_http_call");
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        // The SDK sends the timeout as 32-bit milliseconds, and no trailers.
        let timeout = timeout_ms as u32;
        let result = s.http_call(
            cluster.to_string(),
            Some(headers),
            body.to_vec(),
            Some(Vec::new()),
            timeout,
        );
        result.map_err(|status| match status {
            status::BAD_ARGUMENT => HostError::BadArgument,
            _ => HostError::InternalFailure,
        })
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let mut s = self.enter("proxy_define_metric");
        let kind = match kind {
            MetricKind::Counter => 0,
            MetricKind::Gauge => 1,
        };
        s.define_metric(kind, name.to_string()).ok()
    }

    fn increment_metric(&self, id: u32, delta: i64) {
        let mut s = self.enter("proxy_increment_metric");
        // The filter ignores the status, as on wasm.
        let _ = s.increment_metric(id as i32, delta);
    }

    fn record_metric(&self, id: u32, value: u64) {
        let mut s = self.enter("proxy_record_metric");
        if let Some(m) = s.metric_mut(id as i32) {
            m.value = value as i64;
        }
    }

    fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        let s = self.enter("proxy_get_shared_data");
        s.shared_data.get(key).filter(|v| !v.is_empty()).cloned()
    }

    fn set_shared_data(&self, key: &str, value: &[u8]) -> bool {
        let mut s = self.enter("proxy_set_shared_data");
        s.shared_data.insert(key.to_string(), value.to_vec());
        true
    }

    fn log(&self, level: Level, message: &str) {
        let mut s = self.enter("proxy_log");
        // proxy-wasm's numbering, as src/host/wasm.rs passes it.
        let level = match level {
            Level::Trace => 0,
            Level::Debug => 1,
            Level::Info => 2,
            Level::Warn => 3,
            Level::Error => 4,
            Level::Critical => 5,
        };
        s.log(level, message.to_string());
    }

    fn send_local_reply(&self, code: u32, body: &[u8], headers: &[(&str, &str)]) {
        let mut s = self.enter("proxy_send_local_response");
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        let details = "mesh_audit_unavailable".to_string();
        s.local_reply(code, details, body.to_vec(), headers, -1);
    }

    fn done(&self) {
        self.enter("proxy_done").done();
    }
}

/// The core, with what the glue keeps per context.
#[derive(Default)]
pub struct NativeGuest {
    state: State,
    auditor: Option<Auditor>,
    /// HTTP contexts, and whether each was answered 503 by fail-closed.
    rejected: HashMap<u32, bool>,
    /// What each HTTP context saw before `on_log`.
    seen: HashMap<u32, http::Seen>,
}

impl NativeGuest {
    fn run(&mut self, host: &Seam<'_>, call: Call) -> i32 {
        // Entry points before the root context exists find no auditor, as
        // the SDK would find no root context.
        if let Call::ContextCreate { context, parent } = call {
            if parent == 0 {
                self.auditor = Some(Auditor::new(host));
            } else {
                assert_eq!(parent, ROOT_ID, "context {context} under an unknown root");
                self.rejected.insert(context, false);
            }
            return 0;
        }
        let Some(auditor) = self.auditor.as_mut() else {
            return 0;
        };
        match call {
            Call::Init | Call::ContextCreate { .. } => 0,
            Call::VmStart { .. } => 1,
            Call::Configure { .. } => i32::from(auditor.configure(host)),
            Call::Tick => {
                auditor.tick(host);
                0
            }
            Call::RequestHeaders {
                context,
                end_of_stream,
                ..
            } => {
                self.seen.entry(context).or_default().request_without_body = end_of_stream;
                if auditor.must_reject() {
                    self.rejected.insert(context, true);
                    host.send_local_reply(
                        503,
                        b"audit unavailable",
                        &[("content-type", "text/plain")],
                    );
                    return 1;
                }
                0
            }
            Call::RequestBody { .. } | Call::ResponseHeaders { .. } | Call::ResponseBody { .. } => {
                0
            }
            Call::Log { context } => {
                if self.rejected.get(&context) == Some(&false) {
                    let seen = self.seen.get(&context).copied().unwrap_or_default();
                    http::on_log(auditor, host, seen);
                }
                0
            }
            Call::Done { context } if context == ROOT_ID => i32::from(auditor.shutdown(host)),
            Call::Done { .. } => 1,
            Call::Delete { context } => {
                self.rejected.remove(&context);
                self.seen.remove(&context);
                0
            }
            Call::HttpCallResponse { token, .. } => {
                auditor.call_response(host, token);
                0
            }
        }
    }
}

impl GuestCode for NativeGuest {
    fn kind(&self) -> Guest {
        Guest::Native
    }

    fn state(&self) -> &State {
        &self.state
    }

    fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    fn load(&mut self) {}

    fn call(&mut self, call: Call) -> i32 {
        let cell = RefCell::new(std::mem::take(&mut self.state));
        let result = catch_unwind(AssertUnwindSafe(|| self.run(&Seam(&cell), call)));
        self.state = cell.into_inner();
        match result {
            Ok(r) => r,
            Err(panic) => {
                eprintln!(
                    "the native core panicked in {call:?}; captured logs:\n{}",
                    self.state.log_dump()
                );
                resume_unwind(panic)
            }
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
