//! The main-thread side: Envoy's bootstrap extension. One [`Auditor`] per
//! worker logger (one emitter per worker, as in the wasm build) admits what
//! its worker handed over, batches on the extension's timer, delivers with
//! the extension's HTTP callouts and drains in Envoy's shutdown hook.
//!
//! Everything here runs on Envoy's main thread, so the state lives in a
//! thread-local: no lock is ever taken on the delivery path.

use super::abi::{self, EnvoyBuffer, EnvoyHeader};
use super::handoff::{apply, is_kept};
use super::main_host::{Answer, MainHost, Metric};
use super::quiet::Seed;
use super::{env_var, log, Gate, Handoff, PENDING};
use crate::config::Config;
use crate::filter::root::Auditor;
use crate::host::Level;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, TryLockError};

/// How often the main thread takes what workers handed over and runs the
/// auditors' tick (the wasm filter's tick is capped at the same 100 ms).
const TICK_MS: u64 = 100;
/// Most hand-offs taken from one worker per tick, so one busy worker cannot
/// hold the main thread (the rest wait in its bounded queue).
const TAKE_PER_TICK: usize = 20_000;

struct Emitter {
    queue: Receiver<Handoff>,
    /// What the worker's HTTP filter reads to answer 503 on a full buffer.
    gate: Arc<Gate>,
    /// The configuration of the logger that feeds it.
    config: Vec<u8>,
    /// The gate's sampled-out count this emitter has taken.
    sampled_out: u64,
    auditor: Auditor,
    /// The worker's loggers are gone; the emitter stays until it is drained.
    closed: bool,
    /// Its shutdown drain was started (by [`Main::end_if_closed`] or Envoy's).
    ended: bool,
    /// `done()` was called after a shutdown drain.
    done: bool,
    configured: bool,
}

/// A sink reply, kept until the main state is free to take it (a callout
/// may complete inside the call that started it).
struct Reply {
    callout: u64,
    answer: Option<Answer>,
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

impl Main {
    /// Runs `f` on emitter `i` with its host; records the callouts it started.
    fn with_host(
        &mut self,
        i: usize,
        reply: Option<&Answer>,
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
            reply,
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
        e.gate.publish_from(&e.auditor);
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
        for (queue, config, gate) in fresh {
            // An invalid configuration is configured at once: its gauge
            // and its reminder do not wait for traffic (it never admits a
            // record, so it never writes a `close` record either).
            let inert = Config::from_json(&config, &env_var).is_err();
            self.emitters.push(Emitter {
                queue,
                gate,
                config,
                sampled_out: 0,
                auditor: Auditor::new(&Seed),
                closed: false,
                ended: false,
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
            let sampled_out = self
                .emitters
                .get_mut(i)
                .map_or(0, |e| e.gate.sampled_out_since(&mut e.sampled_out));
            if !taken.is_empty() || sampled_out > 0 {
                let kept = taken.iter().filter(|h| is_kept(h)).count() as u64;
                // Admitted and published as buffered before they stop
                // counting as in flight: the worker never misses them.
                self.with_host(i, None, |a, host| {
                    a.sampled_out_count(sampled_out);
                    for h in taken {
                        apply(a, host, h);
                    }
                });
                if let Some(e) = self.emitters.get(i) {
                    e.gate.taken(kept);
                }
            }
            self.end_if_closed(i);
        }
    }

    /// An emitter whose worker's loggers are all gone (a listener reload,
    /// a removed listener) ends as the wasm filter's root context ends on
    /// `on_done`: its `close` record, then a drain of what it holds.
    fn end_if_closed(&mut self, i: usize) {
        let Some(e) = self.emitters.get_mut(i) else {
            return;
        };
        if !e.closed || e.ended {
            return;
        }
        e.ended = true;
        if !e.configured {
            e.done = true;
            return;
        }
        let mut finished = false;
        self.with_host(i, None, |a, host| finished = a.shutdown(host));
        if finished {
            if let Some(e) = self.emitters.get_mut(i) {
                e.done = true;
            }
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
            reply: None,
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
        self.with_host(i, r.answer.as_ref(), |a, host| a.call_response(host, token));
        self.finish_shutdown_if_done();
    }

    fn start_shutdown(&mut self, cb: abi::EventCallback, ctx: usize) {
        self.shutdown = Some((cb, ctx));
        self.take();
        for e in self.emitters.iter_mut().filter(|e| !e.configured) {
            e.done = true;
        }
        for i in self.live() {
            // Already ending (its loggers went first): it finishes on its own.
            if self.emitters.get(i).is_some_and(|e| e.ended) {
                continue;
            }
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

/// A callout finished: keeps its answer, handled once the state is free.
///
/// # Safety
/// `headers` must address `count` headers and `body` `chunks` buffers, as
/// the ABI promises for this hook.
pub unsafe fn callout_done(
    callout: u64,
    result: u32,
    headers: *const EnvoyHeader,
    count: usize,
    body: *const EnvoyBuffer,
    chunks: usize,
) {
    let answer = (result == abi::CALLOUT_RESULT_SUCCESS)
        // Safety: per the caller's contract.
        .then(|| unsafe { Answer::copy(headers, count, body, chunks) })
        .flatten();
    REPLIES.with(|r| {
        if let Ok(mut v) = r.try_borrow_mut() {
            v.push(Reply { callout, answer });
        }
    });
    with_main(|_| {});
}
