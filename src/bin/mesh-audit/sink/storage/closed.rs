//! What happens to closed segments (rotation only): gzip in the background,
//! and retention, which drops from the listing and then deletes only the
//! segments a signed digest already covers.

use super::files::sync_dir;
use super::{segments, Segment, Storage};
use std::fs;
use std::io;
use std::time::{Duration, SystemTime};

impl Storage {
    /// Gzips closed segments still stored plain, in the background: the
    /// digest lists a segment by its plain name and uncompressed content, so
    /// it verifies the same before and after.
    pub(super) fn compress_closed(&self) {
        if !self.options.gzip {
            return;
        }
        let dir = self.options.path.clone();
        let names: Vec<String> = self
            .closed
            .iter()
            .map(|s| s.name.clone())
            .filter(|n| dir.join(n).exists())
            .collect();
        if names.is_empty() {
            return;
        }
        std::thread::spawn(move || {
            for name in names {
                if let Err(e) = segments::gzip(&dir, &name) {
                    eprintln!(
                        "mesh-audit sink: cannot gzip segment {name}: {e}; it stays uncompressed"
                    );
                }
            }
        });
    }

    /// Closed segments older than `max_age`, no longer listed from now on
    /// (the caller has a digest covering them; the next lists the rest).
    pub fn take_expired(&mut self, max_age: Duration) -> Vec<String> {
        let now = SystemTime::now();
        let (old, keep): (Vec<Segment>, Vec<Segment>) =
            std::mem::take(&mut self.closed).into_iter().partition(|s| {
                s.closed_at
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age >= max_age)
            });
        self.closed = keep;
        old.into_iter().map(|s| s.name).collect()
    }

    /// Deletes a segment's file, plain or gzipped.
    pub fn delete_segment(&self, name: &str) -> io::Result<()> {
        let dir = &self.options.path;
        for candidate in [name.to_string(), format!("{name}.gz")] {
            match fs::remove_file(dir.join(&candidate)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        sync_dir(dir)
    }
}
