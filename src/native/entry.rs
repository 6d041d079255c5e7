//! The module's program init and access-logger hooks
//! (`envoy_dynamic_module_on_*`), and the per-worker queues they register;
//! the bootstrap extension's hooks are in [`super::bootstrap`], the HTTP
//! filter's in [`super::filter`]. Each hook only checks its pointers and
//! delegates, inside [`guard`]: no panic crosses into Envoy, and a hook that
//! cannot do its work returns what tells Envoy "nothing" (a null pointer,
//! or no action).

use super::abi::{self, EnvoyBuffer};
use super::worker::Logger;
use super::{env_var, guard, log, switched_on, Gate, Handoff, PENDING, QUEUE_CAPACITY};
use crate::config::{degraded_line, error_line, Config};
use crate::filter::root::STRICT_ENV;
use crate::host::Level;
use std::cell::RefCell;
use std::ffi::{c_char, c_void};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

/// What `access_log` hands every logger of one configuration.
struct LoggerConfig {
    json: Vec<u8>,
}

/// `access_log` types that end an HTTP request (`DownstreamEnd`, or
/// `NotSet` from Envoys that do not say).
const LOG_TYPE_NOT_SET: u32 = 0;
const LOG_TYPE_DOWNSTREAM_END: u32 = 6;

thread_local! {
    /// This thread's queue to the main thread, per configuration: loggers
    /// of one configuration on one worker (e.g. two listeners sharing an
    /// HTTP connection manager) feed one emitter, as they share one VM in
    /// the wasm build.
    /// With the number of loggers using it: when the last one goes, the
    /// queue closes and the main thread ends its emitter.
    static QUEUES: RefCell<Vec<Queue>> = const { RefCell::new(Vec::new()) };
}

struct Queue {
    config: Vec<u8>,
    tx: SyncSender<Handoff>,
    gate: Arc<Gate>,
    loggers: usize,
}

fn queue_for(json: &[u8]) -> Option<(SyncSender<Handoff>, Arc<Gate>)> {
    QUEUES.with(|q| {
        let mut q = q.try_borrow_mut().ok()?;
        if let Some(queue) = q.iter_mut().find(|e| e.config == json) {
            queue.loggers += 1;
            return Some((queue.tx.clone(), Arc::clone(&queue.gate)));
        }
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let gate = Arc::new(Gate::default());
        // A panic elsewhere cannot leave the list half-written (a push is
        // all anyone does under the lock), so a poisoned lock is still good.
        PENDING.lock().unwrap_or_else(|p| p.into_inner()).push((
            rx,
            json.to_vec(),
            Arc::clone(&gate),
        ));
        q.push(Queue {
            config: json.to_vec(),
            tx: tx.clone(),
            gate: Arc::clone(&gate),
            loggers: 1,
        });
        Some((tx, gate))
    })
}

/// Whether this worker's emitter for `json` has no room for another record
/// (no emitter here yet: it has room).
pub fn emitter_full(json: &[u8]) -> bool {
    QUEUES.with(|q| {
        q.try_borrow()
            .ok()
            .and_then(|q| q.iter().find(|e| e.config == json).map(|e| e.gate.full()))
            .unwrap_or(false)
    })
}

/// A logger of `json` on this thread is gone; the last one closes the queue.
fn release_queue(json: &[u8]) {
    QUEUES.with(|q| {
        let Ok(mut q) = q.try_borrow_mut() else {
            return;
        };
        if let Some(i) = q.iter().position(|e| e.config == json) {
            if let Some(queue) = q.get_mut(i) {
                queue.loggers = queue.loggers.saturating_sub(1);
                if queue.loggers == 0 {
                    q.remove(i);
                }
            }
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    abi::ABI_VERSION.as_ptr().cast()
}

/// # Safety
/// Envoy's buffers, valid for the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_access_logger_config_new(
    _config_envoy: *mut c_void,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guard("access_logger_config_new", std::ptr::null(), || {
        // Safety: Envoy's buffer for this call.
        let Some(json) = (unsafe { abi::copy_bytes(config.ptr, config.length) }) else {
            return std::ptr::null();
        };
        let strict = switched_on(STRICT_ENV);
        match Config::from_json(&json, &env_var) {
            // Strict mode (SPEC §2.7): a missing key variable refuses the
            // configuration here, while Envoy can still fail fast, instead
            // of leaving every worker's logger unconfigured.
            Ok(c) if strict && !c.degraded.is_empty() => {
                for d in &c.degraded {
                    log(Level::Error, &error_line(&d.problem));
                }
                std::ptr::null()
            }
            Ok(c) => {
                // Said at load time too, so `envoy --mode validate` shows it.
                for d in &c.degraded {
                    log(Level::Error, &degraded_line(d));
                }
                Box::into_raw(Box::new(LoggerConfig { json }))
                    .cast_const()
                    .cast()
            }
            // Strict mode: Envoy refuses the access log and fails fast.
            Err(e) if strict => {
                log(Level::Error, &error_line(&e));
                std::ptr::null()
            }
            // SPEC §2.7: an invalid configuration leaves the module inert
            // (requests pass, counted in `requests_unaudited`, gauge
            // `config_invalid`); the line is said now and every minute by
            // the main thread's auditors.
            Err(e) => {
                log(Level::Error, &error_line(&e));
                Box::into_raw(Box::new(LoggerConfig { json }))
                    .cast_const()
                    .cast()
            }
        }
    })
}

/// # Safety
/// A pointer this module returned from `access_logger_config_new`.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_access_logger_config_destroy(
    config: *const c_void,
) {
    guard("access_logger_config_destroy", (), || {
        if !config.is_null() {
            // Safety: made by Box::into_raw in config_new, destroyed once.
            drop(unsafe { Box::from_raw(config.cast_mut().cast::<LoggerConfig>()) });
        }
    })
}

/// # Safety
/// A pointer this module returned from `access_logger_config_new`.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_access_logger_new(
    config: *const c_void,
    _logger_envoy: *mut c_void,
) -> *const c_void {
    guard("access_logger_new", std::ptr::null(), || {
        if config.is_null() {
            return std::ptr::null();
        }
        // Safety: made in config_new and alive until config_destroy.
        let config = unsafe { &*config.cast::<LoggerConfig>() };
        let Some((tx, gate)) = queue_for(&config.json) else {
            return std::ptr::null();
        };
        Box::into_raw(Box::new(Logger::new(config.json.clone(), tx, gate)))
            .cast_const()
            .cast()
    })
}

/// # Safety
/// `logger` is a pointer this module returned from `access_logger_new`;
/// `ctx` is Envoy's, valid for the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_access_logger_log(
    ctx: *mut c_void,
    logger: *const c_void,
    log_type: u32,
) {
    guard("access_logger_log", (), || {
        if logger.is_null() || ctx.is_null() {
            return;
        }
        if log_type != LOG_TYPE_DOWNSTREAM_END && log_type != LOG_TYPE_NOT_SET {
            return;
        }
        // Safety: made in access_logger_new; Envoy calls a logger from its
        // own worker only, never two hooks at once.
        let logger = unsafe { &mut *logger.cast_mut().cast::<Logger>() };
        logger.log(ctx);
    })
}

/// # Safety
/// A pointer this module returned from `access_logger_new`.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_access_logger_destroy(logger: *const c_void) {
    guard("access_logger_destroy", (), || {
        if !logger.is_null() {
            // Safety: made by Box::into_raw in access_logger_new, destroyed once.
            let logger = unsafe { Box::from_raw(logger.cast_mut().cast::<Logger>()) };
            // The last logger of its configuration on this thread closes the
            // queue; the main thread drains what is left and ends the emitter.
            release_queue(logger.config());
            drop(logger);
        }
    })
}
