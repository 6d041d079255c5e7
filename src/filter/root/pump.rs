//! Sending: every batch that is due goes to the sink, as a request
//! [`crate::deliver::request`] builds.

use super::Auditor;
use crate::deliver::request::{self, Origin};
use crate::filter::events::{BatchSent, DispatchRefused};
use crate::filter::stats::Counter;
use crate::host::Host;

impl Auditor {
    /// Sends every batch that is due. While draining, a partial batch is
    /// always due; `burst` (once, when the drain starts) also sends what waits
    /// for a backoff timer or the in-flight limit. Later retries in a drain
    /// keep their backoff, so a failing sink is not hammered until the deadline.
    pub(super) fn pump(&mut self, host: &dyn Host, now_ms: u64, burst: bool) {
        let draining = self.lifecycle.draining();
        if let Some(a) = self.active.as_mut() {
            let due = draining
                || now_ms.saturating_sub(a.last_flush_ms) >= a.config.batch.flush_interval_ms;
            a.seal_if_due(&mut self.stats, host.now_nanos(), due);
        }
        loop {
            let jitter = self.draw();
            let Some(a) = self.active.as_mut() else {
                return;
            };
            let interval_due = draining
                || now_ms.saturating_sub(a.last_flush_ms) >= a.config.batch.flush_interval_ms;
            let sink = &a.config.sink;
            let Some(send) = a.buffer.next_send(now_ms, interval_due, burst) else {
                return;
            };
            let (id, attempt) = (send.id, send.attempt);
            let origin = Origin {
                emitter: &self.emitter,
                node_id: a.node_id.as_deref(),
            };
            let req = request::build(sink, &origin, &send, now_ms);
            let cluster = sink.cluster.as_str();
            match host.dispatch(cluster, &req.headers(), &req.body, sink.timeout_ms) {
                Ok(token) => {
                    a.buffer.sent(id, token);
                    a.last_flush_ms = now_ms;
                    let sent = BatchSent {
                        cluster,
                        range: &req.range,
                        attempt,
                        admitted: self.stats.get(Counter::RecordsAdmitted),
                        delivered: self.stats.get(Counter::RecordsDelivered),
                        rejected: self.stats.get(Counter::RecordsRejected),
                        buffered: a.buffer.records(),
                        in_flight: a.buffer.in_flight(),
                    };
                    self.events.emit(host, &mut self.stats, sent);
                }
                Err(error) => {
                    let delay_ms = a.buffer.send_failed(id, now_ms, jitter);
                    let refused = DispatchRefused {
                        cluster,
                        error,
                        attempt,
                        delay_ms,
                    };
                    self.events.emit(host, &mut self.stats, refused);
                    return;
                }
            }
        }
    }
}
