//! A sink's reply to a batch: what it means for the buffer (delivered,
//! retried, rejected), counted and logged as events.

use super::admit::push_rejected;
use super::Auditor;
use crate::config::Format;
use crate::deliver::buffer::Settled;
use crate::deliver::reply;
use crate::filter::events::{Delivered, PartialSuccess, Rejected, ReplyUnreadable, WillRetry};
use crate::filter::stats::Counter;
use crate::host::{Host, Map};

/// The most of a sink reply body read: an OTLP export response is a few
/// dozen bytes, its error message included.
const MAX_REPLY_BODY: usize = 64 * 1024;

impl Auditor {
    /// A reply from the sink for `token`.
    pub fn call_response(&mut self, host: &dyn Host, token: u32) {
        let now_nanos = host.now_nanos();
        let now_ms = now_nanos / 1_000_000;
        let headers = host.headers(Map::CallResponseHeaders);
        let status = headers
            .iter()
            .find(|(k, _)| *k == ":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u32>().ok());
        let jitter = self.draw();
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let verdict = reply::interpret(
            status,
            &headers,
            a.config.sink.format == Format::Otlp,
            || host.call_response_body(MAX_REPLY_BODY),
            now_nanos,
        );
        let cluster = a.config.sink.cluster.as_str();
        if let Some(p) = &verdict.partial {
            let partial = PartialSuccess {
                cluster,
                rejected: p.rejected,
                message: &p.message,
            };
            self.events.emit(host, &mut self.stats, partial);
        }
        if let Some(why) = &verdict.unreadable {
            let unreadable = ReplyUnreadable { cluster, why };
            self.events.emit(host, &mut self.stats, unreadable);
        }
        let (events, stats) = (&mut self.events, &mut self.stats);
        match a.buffer.settle(token, verdict.outcome, now_ms, jitter) {
            Settled::Delivered { records } => events.emit(host, stats, Delivered { records }),
            Settled::WillRetry {
                records,
                attempts,
                delay_ms,
            } => {
                let retry = WillRetry {
                    cluster: &a.config.sink.cluster,
                    status,
                    records,
                    attempts,
                    delay_ms,
                };
                events.emit(host, stats, retry);
            }
            Settled::Rejected {
                records,
                from_seq,
                to_seq,
            } => {
                let rejected = Rejected {
                    cluster: &a.config.sink.cluster,
                    status,
                    records,
                    from_seq,
                    to_seq,
                };
                events.emit(host, stats, rejected);
                push_rejected(a, stats, records, (from_seq, to_seq), now_nanos);
            }
            Settled::PartlyRejected {
                delivered,
                rejected,
                from_seq,
                to_seq,
            } => {
                stats.add(Counter::RecordsDelivered, delivered as u64);
                stats.add(Counter::RecordsRejected, rejected as u64);
                // Which records the collector refused it does not say: the
                // loss names the batch they were among.
                push_rejected(a, stats, rejected, (from_seq, to_seq), now_nanos);
            }
            Settled::Unknown => return,
        }
        self.pump(host, now_ms, false);
        if self.lifecycle.draining() {
            self.publish(host);
            let drained = self.active.as_ref().is_none_or(|a| a.buffer.is_empty());
            if drained && self.lifecycle != super::Lifecycle::Done {
                self.finish(host, "all records delivered");
            }
        }
    }
}
