//! Group commit: a batch is written under the store's lock, but synced
//! outside it, and one sync covers every batch written before it started.
//! A request waits until the trail is durable up to where its batch ends
//! (or, for a batch of retries only, up to where the trail ended when its
//! records were found stored), so a 2xx still means "on disk".
//!
//! Whoever waits and finds no sync running runs the next one (the leader);
//! batches written meanwhile wait for it to end and then elect the next
//! leader, whose sync covers them all. With one writer this is one sync per
//! batch as before; with many, the syncs no longer queue behind each other.

use crate::sink::storage::Unsynced;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Default)]
struct Progress {
    /// [`crate::sink::storage::Storage::written`] up to which the trail is on disk.
    durable: u64,
    syncing: bool,
    /// A sync failed: nothing written since `durable` will ever be.
    failed: Option<String>,
}

#[derive(Default)]
pub struct Commits {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Commits {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns once everything written up to `end` is durable. `unsynced`
    /// says what a sync must cover now (it takes the store's lock briefly);
    /// `failed` is told when a sync fails, so the store stops appending.
    /// Says whether this caller ran a sync itself.
    pub fn wait(
        &self,
        end: u64,
        unsynced: impl Fn() -> io::Result<Unsynced>,
        failed: impl Fn(&io::Error),
    ) -> Result<bool, String> {
        let mut ran = false;
        let mut p = self.progress();
        loop {
            if p.durable >= end {
                return Ok(ran);
            }
            if let Some(why) = &p.failed {
                return Err(why.clone());
            }
            if p.syncing {
                p = self.changed.wait(p).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            p.syncing = true;
            drop(p);
            ran = true;
            let synced = unsynced().and_then(|u| u.file.sync_data().map(|()| u.written));
            if let Err(e) = &synced {
                failed(e);
            }
            p = self.progress();
            p.syncing = false;
            match synced {
                Ok(written) => p.durable = p.durable.max(written),
                Err(e) => p.failed = Some(format!("the batch could not be made durable: {e}")),
            }
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn scratch(name: &str) -> Arc<File> {
        let p =
            std::env::temp_dir().join(format!("mesh-audit-commit-{}-{name}", std::process::id()));
        Arc::new(File::create(p).unwrap())
    }

    #[test]
    fn one_sync_covers_every_batch_written_before_it() {
        let commits = Commits::default();
        let file = scratch("cover");
        let written = AtomicU64::new(300);
        let syncs = AtomicU64::new(0);
        let unsynced = || {
            syncs.fetch_add(1, Ordering::Relaxed);
            Ok(Unsynced {
                file: file.clone(),
                written: written.load(Ordering::Relaxed),
            })
        };
        // Three batches ending at 100, 200 and 300 were written: the first
        // waiter's sync covers all three.
        assert!(commits.wait(100, unsynced, |_| {}).unwrap());
        assert!(!commits.wait(200, unsynced, |_| {}).unwrap());
        assert!(!commits.wait(300, unsynced, |_| {}).unwrap());
        assert_eq!(syncs.load(Ordering::Relaxed), 1);
        written.store(400, Ordering::Relaxed);
        assert!(commits.wait(400, unsynced, |_| {}).unwrap());
        assert_eq!(syncs.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn after_a_failed_sync_nothing_later_is_acknowledged() {
        let commits = Commits::default();
        let file = scratch("fail");
        let told = AtomicU64::new(0);
        let ok = || {
            Ok(Unsynced {
                file: file.clone(),
                written: 10,
            })
        };
        commits.wait(10, ok, |_| {}).unwrap();
        let e = commits
            .wait(
                20,
                || Err(io::Error::other("disk gone")),
                |_| {
                    told.fetch_add(1, Ordering::Relaxed);
                },
            )
            .err()
            .unwrap();
        assert!(e.contains("disk gone"), "{e}");
        assert_eq!(told.load(Ordering::Relaxed), 1);
        assert!(commits.wait(30, ok, |_| {}).is_err(), "stays failed");
        assert!(
            commits.wait(10, ok, |_| {}).is_ok(),
            "what was durable stays so"
        );
    }
}
