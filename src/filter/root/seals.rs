//! Where batches end (SPEC §4.1): the seal that closes each batch, and the
//! `close` record that ends the emitter. A seal is signed once per batch,
//! when its batch is closed: by the tick once the flush interval is due, or
//! by the admission that fills the batch.

use super::admit::push;
use super::Active;
use crate::audit::record::{CloseReason, Record};
use crate::audit::time::format_rfc3339;
use crate::deliver::buffer::Entry;
use crate::deliver::seal::MAX_SEAL_BYTES;
use crate::filter::stats::{Counter, Stats};

impl Active {
    fn sealing(&self) -> bool {
        self.config.integrity.seal_every_batch
    }

    /// Seals the open group when one more record (its seal) would fill a
    /// batch. A batch holds `batch.max_records` records, its seal included
    /// (at least one record and its seal).
    pub(super) fn seal_if_full(&mut self, stats: &mut Stats, now_nanos: u64) {
        let (records, bytes) = self.buffer.open_group();
        let batch = &self.config.batch;
        let full =
            records + 1 >= batch.max_records.max(2) || bytes + MAX_SEAL_BYTES >= batch.max_bytes;
        if self.sealing() && records > 0 && full {
            self.seal(stats, now_nanos);
        }
    }

    /// Seals the open group when its batch is due (`due`: the flush
    /// interval passed, or a drain) and no sealed batch is still waiting to
    /// be cut, so a sink that is down does not earn one seal per tick.
    pub(super) fn seal_if_due(&mut self, stats: &mut Stats, now_nanos: u64, due: bool) {
        if self.sealing() && due && self.buffer.closed_groups() == 0 {
            self.seal(stats, now_nanos);
        }
    }

    /// Ends the emitter: a `close` record and the seal after it. Nothing is
    /// admitted afterwards.
    pub(super) fn close(&mut self, stats: &mut Stats, reason: CloseReason, now_nanos: u64) {
        let ts = format_rfc3339(now_nanos);
        push(self, stats, Record::close(reason, ts), now_nanos);
        self.seal(stats, now_nanos);
        self.closed = true;
    }

    /// Appends the seal of everything since the previous one, if anything.
    fn seal(&mut self, stats: &mut Stats, now_nanos: u64) {
        let from_seq = self.last_seal + 1;
        if self.seq.next_seq() <= from_seq {
            return;
        }
        let ts = format_rfc3339(now_nanos);
        let line = self
            .seq
            .seal(&ts, from_seq, self.config.integrity.signer.as_ref());
        self.seq.commit(&line);
        let seq = self.seq.next_seq() - 1;
        self.buffer.push(Entry { seq, line });
        self.buffer.close_group();
        self.last_seal = seq;
        stats.add(Counter::RecordsAdmitted, 1);
    }
}
