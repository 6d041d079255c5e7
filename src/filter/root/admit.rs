//! Admission (SPEC §2.2): records are stamped, chained and buffered, or
//! counted as lost and later reported by a `loss` record.

use super::{Active, Auditor};
use crate::audit::build::degraded;
use crate::audit::record::{LossReason, Prepared, Record};
use crate::audit::time::format_rfc3339;
use crate::deliver::buffer::Entry;
use crate::filter::events::NotAdmitted;
use crate::filter::stats::{Counter, Stats};
use crate::host::Host;

/// Records that could not be admitted, waiting to be reported by a `loss` record.
#[derive(Default, Debug)]
pub(super) struct Lost {
    count: u64,
    since_nanos: u64,
    until_nanos: u64,
}

impl Lost {
    pub(super) fn note(&mut self, at_nanos: u64) {
        if self.count == 0 {
            self.since_nanos = at_nanos;
        }
        self.count += 1;
        self.until_nanos = at_nanos;
    }
}

impl Auditor {
    /// Admission (SPEC §2.2): stamps, chains and buffers `record` (written
    /// where the request finished, its degradations listed), or counts it
    /// as not admitted when the buffer is full. `at_nanos` is the record's time.
    pub fn admit(&mut self, host: &dyn Host, record: Prepared, at_nanos: u64) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if a.closed {
            // The emitter ended with its close record (a request that
            // finished during the drain): counted, never chained after it.
            self.stats.add(Counter::RecordsNotAdmitted, 1);
            return;
        }
        // Report earlier losses first, so the loss record precedes what follows it.
        report_losses(a, &mut self.stats, 2, at_nanos);
        let line = a.seq.stamp_prepared(record);
        if a.buffer.fits(1, line.len()) {
            a.seq.commit(&line);
            let seq = a.seq.next_seq() - 1;
            a.buffer.push(Entry { seq, line });
            self.stats.add(Counter::RecordsAdmitted, 1);
            a.seal_if_full(&mut self.stats, at_nanos);
        } else {
            self.not_admitted(host, at_nanos);
        }
    }

    /// Counts a record that found no room (SPEC §2.2), to be reported by a
    /// `loss` record; also used by a host whose hand-off queue was full.
    pub fn not_admitted(&mut self, host: &dyn Host, at_nanos: u64) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        a.not_admitted.note(at_nanos);
        self.events.emit(host, &mut self.stats, NotAdmitted);
    }
}

/// Admits a `loss` record for each kind of loss still unreported, when the
/// buffer has room for `room` more records (the loss record and what follows).
pub(super) fn report_losses(a: &mut Active, stats: &mut Stats, room: usize, at_nanos: u64) {
    for reason in [LossReason::BufferFull, LossReason::RateLimited] {
        let lost = match reason {
            LossReason::BufferFull => &mut a.not_admitted,
            _ => &mut a.rate_limited,
        };
        if lost.count == 0 || !a.buffer.fits(room, 0) {
            continue;
        }
        let loss = Record::loss(
            reason,
            lost.count,
            format_rfc3339(lost.since_nanos),
            format_rfc3339(lost.until_nanos),
            format_rfc3339(at_nanos),
        );
        *lost = Lost::default();
        push(a, stats, loss, at_nanos);
    }
}

/// Admits the `rejected` loss record for `count` records a sink refused
/// among `range`.
pub(super) fn push_rejected(
    a: &mut Active,
    stats: &mut Stats,
    count: usize,
    range: (u64, u64),
    at_nanos: u64,
) {
    let ts = format_rfc3339(at_nanos);
    let mut loss = Record::loss(
        LossReason::Rejected,
        count as u64,
        ts.clone(),
        ts.clone(),
        ts,
    );
    loss.from_seq = Some(range.0);
    loss.to_seq = Some(range.1);
    // A rejection loss record is always kept: it may exceed the cap by one.
    push(a, stats, loss, at_nanos);
}

/// Admits a record the filter itself produced (`loss`, `close`): it bypasses
/// the byte cap by design, so a loss is never itself lost.
pub(super) fn push(a: &mut Active, stats: &mut Stats, mut record: Record, now_nanos: u64) {
    record.degraded = degraded(&a.config, record.kind);
    let line = a.seq.stamp(&mut record);
    a.seq.commit(&line);
    let seq = a.seq.next_seq() - 1;
    a.buffer.push(Entry { seq, line });
    stats.add(Counter::RecordsAdmitted, 1);
    a.seal_if_full(stats, now_nanos);
}
