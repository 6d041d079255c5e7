//! The main-thread side: Envoy's bootstrap extension. One [`Auditor`] per
//! worker logger (one emitter per worker, as in the wasm build) admits what
//! its worker handed over, batches on the extension's timer, delivers with
//! the extension's HTTP callouts and drains in Envoy's shutdown hook.
//!
//! Everything here runs on Envoy's main thread, so the state lives in a
//! thread-local: no lock is ever taken on the delivery path.

use super::abi::{self, EnvoyHeader, ModuleBuffer, ModuleHeader};
use super::{env_var, fill_random, log, now_nanos, Handoff, NODE_ID, PENDING};
use crate::config::Config;
use crate::filter::http::Outcome;
use crate::filter::root::Auditor;
use crate::filter::Counter;
use crate::host::{Attributes, Headers, HostError, Level, Map, MetricKind, Proxy};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::TryLockError;

/// How often the main thread takes what workers handed over and runs the
/// auditors' tick (the wasm filter's tick is capped at the same 100 ms).
const TICK_MS: u64 = 100;
/// Most hand-offs taken from one worker per tick, so one busy worker cannot
/// hold the main thread (the rest wait in its bounded queue).
const TAKE_PER_TICK: usize = 20_000;

struct Emitter {
    queue: Receiver<Handoff>,
    /// The configuration of the logger that feeds it.
    config: Vec<u8>,
    auditor: Auditor,
    /// The worker's logger is gone; the emitter stays until it is drained.
    closed: bool,
    /// `done()` was called after a shutdown drain.
    done: bool,
    configured: bool,
}

/// A sink reply, kept until the main state is free to take it (a callout
/// may complete inside the call that started it).
struct Reply {
    callout: u64,
    status: Option<Vec<u8>>,
}

/// A metric defined with Envoy: what the core's handle (its index) names.
struct Metric {
    kind: MetricKind,
    name: String,
    envoy_id: usize,
}

#[derive(Default)]
struct Main {
    /// Shared by every emitter: Envoy sums what each one adds.
    metrics: RefCell<Vec<Metric>>,
    config_envoy: Option<usize>,
    timer: Option<usize>,
    emitters: Vec<Emitter>,
    next_token: u32,
    /// callout id → (emitter, the token its auditor knows the batch by).
    callouts: HashMap<u64, (usize, u32)>,
    shutdown: Option<(abi::EventCallback, usize)>,
}

thread_local! {
    static MAIN: RefCell<Main> = RefCell::new(Main::default());
    static REPLIES: RefCell<Vec<Reply>> = const { RefCell::new(Vec::new()) };
}

/// The core's host for one emitter, on the main thread.
struct MainHost<'a> {
    config_envoy: *mut c_void,
    config: &'a [u8],
    /// The reply being handled, for `Map::CallResponseHeaders`.
    reply_status: Option<&'a [u8]>,
    done: &'a Cell<bool>,
    /// Callouts this host started: (callout id, token).
    started: &'a RefCell<Vec<(u64, u32)>>,
    next_token: &'a Cell<u32>,
    metrics: &'a RefCell<Vec<Metric>>,
}

impl Attributes for MainHost<'_> {
    fn property_or_error(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        Ok(match path {
            ["xds", "node", "id"] => NODE_ID.get().map(|id| id.clone().into_bytes()),
            _ => None,
        })
    }
    fn headers(&self, map: Map) -> Headers {
        match (map, self.reply_status) {
            (Map::CallResponseHeaders, Some(s)) => vec![(":status".to_string(), s.to_vec())],
            _ => Vec::new(),
        }
    }
}

impl Proxy for MainHost<'_> {
    fn plugin_config(&self) -> Option<Vec<u8>> {
        Some(self.config.to_vec())
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

impl Main {
    /// Runs `f` on emitter `i` with its host; records the callouts it started.
    fn with_host(
        &mut self,
        i: usize,
        reply_status: Option<&[u8]>,
        f: impl FnOnce(&mut Auditor, &MainHost),
    ) {
        let config_envoy = self.config_envoy.unwrap_or(0) as *mut c_void;
        let done = Cell::new(false);
        let started = RefCell::new(Vec::new());
        let next_token = Cell::new(self.next_token);
        let Some(e) = self.emitters.get_mut(i) else {
            return;
        };
        let host = MainHost {
            config_envoy,
            config: &e.config,
            reply_status,
            done: &done,
            started: &started,
            next_token: &next_token,
            metrics: &self.metrics,
        };
        if !e.configured {
            e.configured = true;
            e.auditor.configure(&host);
        }
        f(&mut e.auditor, &host);
        if done.get() {
            e.done = true;
        }
        self.next_token = next_token.get();
        for (id, token) in started.into_inner() {
            self.callouts.insert(id, (i, token));
        }
    }

    /// Takes new workers' queues and what every worker handed over.
    fn take(&mut self) {
        let fresh: Vec<_> = match PENDING.try_lock() {
            Ok(mut p) => p.drain(..).collect(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().drain(..).collect(),
            // A worker is registering: its queue is taken on the next tick.
            Err(TryLockError::WouldBlock) => Vec::new(),
        };
        for (queue, config) in fresh {
            // An invalid configuration is configured at once: its gauge
            // and its reminder do not wait for traffic (it never admits a
            // record, so it never writes a `close` record either).
            let inert = Config::from_json(&config, &env_var).is_err();
            self.emitters.push(Emitter {
                queue,
                config,
                auditor: Auditor::new(&Seed),
                closed: false,
                done: false,
                configured: false,
            });
            if inert {
                self.with_host(self.emitters.len() - 1, None, |_, _| {});
            }
        }
        for i in 0..self.emitters.len() {
            let mut taken = Vec::new();
            if let Some(e) = self.emitters.get_mut(i) {
                while taken.len() < TAKE_PER_TICK {
                    match e.queue.try_recv() {
                        Ok(h) => taken.push(h),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            e.closed = true;
                            break;
                        }
                    }
                }
            }
            if taken.is_empty() {
                continue;
            }
            self.with_host(i, None, |a, host| {
                for h in taken {
                    apply(a, host, h);
                }
            });
        }
    }

    /// Defines the auditor's metrics while Envoy still accepts new ones (it
    /// freezes stat creation once the server runs); every emitter's
    /// `define_metric` then finds them by name.
    fn predefine_metrics(&mut self) {
        let (done, started, next_token) =
            (Cell::new(false), RefCell::new(Vec::new()), Cell::new(0));
        let host = MainHost {
            config_envoy: self.config_envoy.unwrap_or(0) as *mut c_void,
            config: &[],
            reply_status: None,
            done: &done,
            started: &started,
            next_token: &next_token,
            metrics: &self.metrics,
        };
        Auditor::new(&Seed).stats.define(&host);
    }

    /// Emitters that have had something to audit; the others (e.g. the
    /// loggers Envoy creates on the main thread) stay silent and unconfigured.
    fn live(&self) -> Vec<usize> {
        (0..self.emitters.len())
            .filter(|&i| self.emitters.get(i).is_some_and(|e| e.configured))
            .collect()
    }

    fn tick(&mut self) {
        self.take();
        for i in self.live() {
            self.with_host(i, None, |a, host| a.tick(host));
        }
        self.finish_shutdown_if_done();
    }

    fn reply(&mut self, r: Reply) {
        let Some((i, token)) = self.callouts.remove(&r.callout) else {
            return;
        };
        self.with_host(i, r.status.as_deref(), |a, host| {
            a.call_response(host, token)
        });
        self.finish_shutdown_if_done();
    }

    fn start_shutdown(&mut self, cb: abi::EventCallback, ctx: usize) {
        self.shutdown = Some((cb, ctx));
        self.take();
        for e in self.emitters.iter_mut().filter(|e| !e.configured) {
            e.done = true;
        }
        for i in self.live() {
            let mut finished = false;
            self.with_host(i, None, |a, host| finished = a.shutdown(host));
            if finished {
                if let Some(e) = self.emitters.get_mut(i) {
                    e.done = true;
                }
            }
        }
        self.finish_shutdown_if_done();
    }

    fn finish_shutdown_if_done(&mut self) {
        if self.shutdown.is_none() || !self.emitters.iter().all(|e| e.done) {
            return;
        }
        if let Some((Some(cb), ctx)) = self.shutdown.take() {
            // Safety: Envoy's completion callback with the context it gave.
            unsafe { cb(ctx as *mut c_void) };
        }
    }
}

/// Applies one hand-off to the worker's auditor, as the wasm filter's
/// `on_log` would have.
fn apply(a: &mut Auditor, host: &MainHost, h: Handoff) {
    match h {
        Handoff::Outcome { outcome, violation } => {
            if violation {
                a.stats.add(Counter::PolicyViolations, 1);
            }
            match outcome {
                Outcome::Keep(record, at) => a.admit(host, *record, at),
                Outcome::SampledOut { rate_limited_at } => a.sampled_out(rate_limited_at),
                Outcome::Inactive => {}
            }
        }
        Handoff::Unaudited => a.unaudited(),
        Handoff::NotAdmitted {
            count,
            since,
            until,
        } => {
            for k in 0..count {
                a.not_admitted(host, if k == 0 { since } else { until });
            }
        }
    }
}

/// The host an emitter is born with: only randomness and the clock.
struct Seed;

impl Attributes for Seed {
    fn property_or_error(&self, _: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        Ok(None)
    }
    fn headers(&self, _: Map) -> Headers {
        Vec::new()
    }
}

impl Proxy for Seed {
    fn plugin_config(&self) -> Option<Vec<u8>> {
        None
    }
    fn env_var(&self, _: &str) -> Option<String> {
        None
    }
    fn fill_random(&self, buf: &mut [u8]) -> bool {
        fill_random(buf)
    }
    fn now_nanos(&self) -> u64 {
        now_nanos()
    }
    fn set_tick_period_ms(&self, _: u64) {}
    fn dispatch(&self, _: &str, _: &[(&str, &str)], _: &[u8], _: u64) -> Result<u32, HostError> {
        Err(HostError::InternalFailure)
    }
    fn define_metric(&self, _: MetricKind, _: &str) -> Option<u32> {
        None
    }
    fn increment_metric(&self, _: u32, _: i64) {}
    fn record_metric(&self, _: u32, _: u64) {}
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
    fn done(&self) {}
}

/// Runs `f` on the main state, then any replies that arrived meanwhile.
fn with_main(f: impl FnOnce(&mut Main)) {
    MAIN.with(|m| {
        let Ok(mut main) = m.try_borrow_mut() else {
            return;
        };
        f(&mut main);
        loop {
            let replies: Vec<Reply> = REPLIES
                .with(|r| r.try_borrow_mut().map(|mut v| v.drain(..).collect()))
                .unwrap_or_default();
            if replies.is_empty() {
                break;
            }
            for r in replies {
                main.reply(r);
            }
        }
    });
}

pub fn config_new(config_envoy: *mut c_void) {
    with_main(|m| {
        m.config_envoy = Some(config_envoy as usize);
        m.predefine_metrics();
    });
    // Nothing to wait for: delivery starts with the first tick.
    // Safety: main thread, Envoy's own config pointer.
    unsafe {
        abi::envoy_dynamic_module_callback_bootstrap_extension_config_signal_init_complete(
            config_envoy,
        )
    };
}

pub fn server_initialized() {
    with_main(|m| {
        let Some(config) = m.config_envoy else {
            return;
        };
        // Safety: main thread, after the server's dispatcher exists.
        let timer = unsafe {
            abi::envoy_dynamic_module_callback_bootstrap_extension_timer_new(config as *mut c_void)
        };
        if timer.is_null() {
            log(
                Level::Error,
                "mesh-audit: no timer from Envoy: records will not be delivered",
            );
            return;
        }
        m.timer = Some(timer as usize);
        // Safety: the timer Envoy just made.
        unsafe {
            abi::envoy_dynamic_module_callback_bootstrap_extension_timer_enable(timer, TICK_MS)
        };
    });
}

pub fn timer_fired(timer: *mut c_void) {
    with_main(|m| m.tick());
    if !timer.is_null() {
        // Safety: the timer that just fired, re-armed on the main thread.
        unsafe {
            abi::envoy_dynamic_module_callback_bootstrap_extension_timer_enable(timer, TICK_MS)
        };
    }
}

pub fn drain_started() {
    with_main(|m| m.tick());
}

pub fn shutdown(cb: abi::EventCallback, ctx: *mut c_void) {
    let mut started = false;
    with_main(|m| {
        started = true;
        m.start_shutdown(cb, ctx as usize);
    });
    if !started {
        if let Some(cb) = cb {
            // Safety: Envoy's completion callback with the context it gave.
            unsafe { cb(ctx) };
        }
    }
}

/// A callout finished: keeps the status, handled once the state is free.
///
/// # Safety
/// `headers` must address `count` headers, as the ABI promises for this hook.
pub unsafe fn callout_done(callout: u64, result: u32, headers: *const EnvoyHeader, count: usize) {
    let mut status = None;
    if result == abi::CALLOUT_RESULT_SUCCESS && !headers.is_null() && count <= 8192 {
        // Safety: per the caller's contract.
        let hs = unsafe { std::slice::from_raw_parts(headers, count) };
        for h in hs {
            // Safety: Envoy's buffers, valid for this hook.
            let key = unsafe { abi::copy_bytes(h.key_ptr, h.key_length) };
            if key.as_deref() == Some(b":status".as_slice()) {
                status = unsafe { abi::copy_bytes(h.value_ptr, h.value_length) };
                break;
            }
        }
    }
    REPLIES.with(|r| {
        if let Ok(mut v) = r.try_borrow_mut() {
            v.push(Reply { callout, status });
        }
    });
    with_main(|_| {});
}
