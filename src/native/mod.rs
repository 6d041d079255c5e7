//! The native host seam: mesh-audit as an Envoy dynamic module (ABI v0.2.0,
//! Envoy 1.40), implementing the same [`Attributes`](crate::host::Attributes)
//! and [`Proxy`](crate::host::Proxy) traits as the proxy-wasm host so the
//! core runs unchanged.
//!
//! The module attaches twice. An **access logger** (one instance per worker)
//! reads each finished request through the access logger's getters and
//! builds its record; it cannot call out or set timers, so it hands the
//! record to a **bootstrap extension** on the main thread through a bounded
//! queue. There, one auditor per worker (one emitter per worker) admits,
//! chains and batches, and delivers with the extension's HTTP callouts; the
//! extension's shutdown hook drains what is buffered before Envoy exits.

pub mod abi;
mod bootstrap;
mod entry;
mod filter;
mod handoff;
mod log_host;
mod main_host;
mod main_thread;
mod quiet;
mod worker;

use crate::host::Level;
pub use handoff::{Gate, Handoff, QUEUE_CAPACITY};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

/// Queues of loggers created since the main thread last looked, with the
/// configuration each was made with and its gate. Locked when a logger is
/// created and on the main thread's tick, never per request.
static PENDING: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

/// A worker's new queue: what it receives, its logger's configuration, its gate.
type Registered = (Receiver<Handoff>, Vec<u8>, Arc<Gate>);

/// `response.code_details` of the 503 the HTTP filter answers while the
/// configuration is invalid and `MESH_AUDIT_FAIL_CLOSED` is set: the access
/// logger skips these requests as the wasm filter does (they are counted in
/// `requests_rejected`, not `requests_unaudited`).
pub const REJECTED_DETAILS: &str = "mesh_audit_unavailable";

/// The module runs inside Envoy's process: its environment is the VM's.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Whether the switch `name` (e.g. `MESH_AUDIT_STRICT_CONFIG`) is on in
/// Envoy's environment, read as the core reads it from the VM's.
fn switched_on(name: &str) -> bool {
    env_var(name).is_some_and(|v| matches!(v.trim(), "1" | "true"))
}

fn fill_random(buf: &mut [u8]) -> bool {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => abi::LogLevel::Trace,
        Level::Debug => abi::LogLevel::Debug,
        Level::Info => abi::LogLevel::Info,
        Level::Warn => abi::LogLevel::Warn,
        Level::Error => abi::LogLevel::Error,
        Level::Critical => abi::LogLevel::Critical,
    };
    // Safety: the message outlives the call; Envoy copies it.
    unsafe {
        abi::envoy_dynamic_module_callback_log(level, abi::ModuleBuffer::of(message.as_bytes()))
    };
}

/// Runs an entry point's body; a panic never unwinds into Envoy: it is
/// logged and the entry point returns `fallback`.
pub fn guard<R>(hook: &str, fallback: R, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            let _ = std::panic::catch_unwind(|| {
                log(
                    Level::Critical,
                    &format!("mesh-audit: panic in {hook}; the hook was abandoned"),
                )
            });
            fallback
        }
    }
}
