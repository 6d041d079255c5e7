//! The shutdown drain (SPEC §2.4): `on_done` closes the emitter, sends
//! what is buffered, and tells the proxy `done()` once all of it is
//! delivered or `sink.timeout_ms` has passed.

use super::admit::report_losses;
use super::{Auditor, Lifecycle};
use crate::audit::record::CloseReason;
use crate::filter::events::{Draining, ShutDown};
use crate::host::Host;

impl Auditor {
    /// `on_done` of the root context: start draining. True when nothing is
    /// held and the proxy may finish now; false means `done()` follows.
    pub fn shutdown(&mut self, host: &dyn Host) -> bool {
        let now_nanos = host.now_nanos();
        let now_ms = now_nanos / 1_000_000;
        let Some(a) = self.active.as_mut() else {
            return true;
        };
        report_losses(a, &mut self.stats, 1, now_nanos);
        // An emitter that never admitted a record is in no trail: nothing to close.
        if !a.closed && a.seq.next_seq() > 1 {
            a.close(&mut self.stats, CloseReason::Shutdown, now_nanos);
        }
        if a.buffer.is_empty() {
            self.publish(host);
            return true;
        }
        let records = a.buffer.records();
        let deadline_ms = now_ms.saturating_add(a.config.sink.timeout_ms);
        self.events
            .emit(host, &mut self.stats, Draining { records });
        self.lifecycle = Lifecycle::Draining { deadline_ms };
        self.pump(host, now_ms, true);
        self.publish(host);
        false
    }

    /// Ends the drain: logs what is left and tells the proxy `done()`.
    pub(super) fn finish(&mut self, host: &dyn Host, why: &str) {
        self.lifecycle = Lifecycle::Done;
        let undelivered = self.active.as_ref().map_or(0, |a| a.buffer.records());
        self.events
            .emit(host, &mut self.stats, ShutDown { why, undelivered });
        host.done();
    }
}
