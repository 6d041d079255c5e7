//! The worker side: Envoy's access-logger hook, one logger per worker. It
//! builds each record with [`LogHost`] as the core's host; what it builds
//! goes to the main thread through a bounded queue, never blocking.

use super::log_host::LogHost;
use super::{log, Gate, Handoff, REJECTED_DETAILS};
use crate::audit::sample::plainly_out;
use crate::filter::http::{self, Outcome};
use crate::filter::root::{Auditor, FAIL_CLOSED_ENV};
use crate::filter::Counter;
use crate::host::{Attributes, Level};
use std::ffi::c_void;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;

/// Records lost because the queue to the main thread was full, waiting to
/// be reported (as not admitted, so a `loss` record names them).
#[derive(Default)]
struct Overflow {
    count: u64,
    since: u64,
    until: u64,
}

/// One worker's logger: builds records, hands them over.
pub struct Logger {
    builder: Auditor,
    queue: SyncSender<Handoff>,
    overflow: Overflow,
    config: Vec<u8>,
    /// Inert with `MESH_AUDIT_FAIL_CLOSED`: requests should have been
    /// answered 503 by the HTTP filter; said once when one was not.
    fail_closed: bool,
    warned_fail_open: bool,
    /// Whether this worker's emitter has room (`on_overflow: reject`).
    gate: Arc<Gate>,
    /// `on_overflow: reject`: requests the HTTP filter answered 503 are
    /// not audited, as the wasm filter does not audit them.
    rejects: bool,
    /// The rate and the sampling key where `default_rate` alone decides:
    /// kept here, next to the logger, because the requests this settles
    /// are most requests at a low rate and touch nothing else.
    plain: Option<(f64, Box<[u8]>)>,
}

impl Logger {
    pub fn new(config: Vec<u8>, queue: SyncSender<Handoff>, gate: Arc<Gate>) -> Logger {
        let host = LogHost::new(std::ptr::null_mut(), &config, true);
        let mut builder = Auditor::new(&host);
        // Envoy's load and the main thread's auditors say what is wrong
        // with the configuration; an invalid one leaves this copy inert.
        builder.configure(&host);
        let limit = builder
            .active
            .as_ref()
            .filter(|a| a.config.on_overflow == crate::config::Overflow::Reject)
            .map_or(0, |a| a.config.batch.max_buffered_records as u64);
        gate.set_limit(limit);
        let rejects = limit > 0;
        let plain = http::plain_rate(&builder).map(|(rate, key)| (rate, key.as_bytes().into()));
        Logger {
            plain,
            builder,
            queue,
            overflow: Overflow::default(),
            config,
            fail_closed: super::switched_on(FAIL_CLOSED_ENV),
            warned_fail_open: false,
            gate,
            rejects,
        }
    }

    /// The configuration this logger was made with.
    pub fn config(&self) -> &[u8] {
        &self.config
    }

    /// A request that passed an inert logger: counted by the main thread,
    /// unless the HTTP filter answered it 503 (then it is a rejection).
    fn unaudited(&mut self, details: Option<Vec<u8>>) {
        if details.as_deref() == Some(REJECTED_DETAILS.as_bytes()) {
            return;
        }
        if self.fail_closed && !self.warned_fail_open {
            self.warned_fail_open = true;
            log(Level::Error, FAIL_OPEN_WARNING);
        }
        // A full queue only loses a count; the main thread is behind.
        let _ = self.queue.try_send(Handoff::Unaudited);
    }

    /// The access-log hook: one finished request.
    pub fn log(&mut self, ctx: *mut c_void) {
        let host = LogHost::new(ctx, &self.config, false);
        if self.builder.is_inert() {
            self.unaudited(host.property(&["response", "code_details"]));
            return;
        }
        // Only read when the filter may have answered: one getter less per
        // request otherwise.
        if self.rejects
            && host.property(&["response", "code_details"]).as_deref()
                == Some(REJECTED_DETAILS.as_bytes())
        {
            return;
        }
        // Most requests at a low rate: a count, from two reads.
        if let Some((rate, key)) = &self.plain {
            if self.overflow.count == 0
                && plainly_out(*rate, host.response_code(), host.request_header(key))
            {
                self.gate.sampled_out();
                return;
            }
        }
        let violations = self.builder.stats.get(Counter::PolicyViolations);
        let outcome = http::build(&mut self.builder, &host);
        let violation = self.builder.stats.get(Counter::PolicyViolations) > violations;
        if matches!(outcome, Outcome::Inactive) {
            return;
        }
        let at = match &outcome {
            Outcome::Keep(_, at) => *at,
            _ => 0,
        };
        if self.overflow.count > 0 {
            let o = std::mem::take(&mut self.overflow);
            let report = Handoff::NotAdmitted {
                count: o.count,
                since: o.since,
                until: o.until,
            };
            if let Err(TrySendError::Full(_)) = self.queue.try_send(report) {
                self.overflow = o;
            }
        }
        // A plain sampled-out verdict is only a count: it does not take a
        // slot in the queue.
        if !violation
            && matches!(
                outcome,
                Outcome::SampledOut {
                    rate_limited_at: None
                }
            )
        {
            self.gate.sampled_out();
            return;
        }
        let kept = matches!(outcome, Outcome::Keep(..));
        match self.queue.try_send(Handoff::Outcome { outcome, violation }) {
            Ok(()) if kept => self.gate.handed_over(),
            Ok(()) => {}
            Err(TrySendError::Full(Handoff::Outcome {
                outcome: Outcome::Keep(..),
                ..
            })) => {
                let o = &mut self.overflow;
                if o.count == 0 {
                    o.since = at;
                }
                o.count += 1;
                o.until = at;
            }
            // A sampled-out verdict that finds no room only loses a count;
            // a closed queue means the main thread is gone (shutdown).
            Err(_) => {}
        }
    }
}

/// Said once per logger when `MESH_AUDIT_FAIL_CLOSED` is set, the
/// configuration is invalid, and a request passed: the 503 needs the
/// module's HTTP filter in the chain.
pub const FAIL_OPEN_WARNING: &str = "mesh-audit: MESH_AUDIT_FAIL_CLOSED is set and the configuration is invalid, but requests pass: add the mesh-audit HTTP filter (envoy.filters.http.dynamic_modules, filter_name mesh-audit) to answer them 503";
