//! Where the trail lives on disk: one file, or (with rotation) a directory of
//! segment files (see [`segments`]), closed ones optionally gzipped. Only
//! regular files are ever opened (never through a symbolic link), one sink at
//! a time holds the trail (an exclusive lock), and a free-space floor keeps
//! the disk from filling: below it appends are refused so proxies retry later.
//!
//! An append only writes; what makes it durable is a sync of the file up to
//! [`Storage::written`], which the commit queue (`sink::commit`) runs once
//! for every batch written before it.

mod closed;
mod files;
mod segments;

use crate::lines::list_segments;
pub use files::{available, open_regular};

use files::{lock, refuse_link, truncate};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub struct Options {
    pub path: PathBuf,
    pub rotate_bytes: Option<u64>,
    pub rotate_secs: Option<u64>,
    pub gzip: bool,
    pub min_free_bytes: u64,
}

/// A file of the trail as a digest lists it: its uncompressed size and SHA-256.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub name: String,
    pub size: u64,
    pub sha: [u8; 32],
    /// When it was closed (segments only); retention counts from here.
    pub closed_at: Option<SystemTime>,
}

struct Current {
    /// Shared with a sync running outside the store's lock.
    file: Arc<File>,
    name: String,
    len: u64,
    /// SHA-256 of the segment so far, kept only for digests (see
    /// [`Storage::open`]): hashing every appended byte again costs as much
    /// as hashing each record.
    hasher: Option<Sha256>,
    opened: SystemTime,
}

pub struct Storage {
    options: Options,
    /// Holds the exclusive lock for as long as the sink runs.
    _lock: File,
    current: Current,
    /// Closed segments still on disk, oldest first (rotation only).
    pub closed: Vec<Segment>,
    /// Segments numbered so far; the current one is `index`.
    index: u64,
    /// Bytes appended since the trail was opened, over all segments: where
    /// a batch ends in this count is what a sync must cover before it is
    /// acknowledged.
    written: u64,
    /// Set when the file's durable tail is unknown (a failed write could not
    /// be rolled back, or a sync failed): nothing more may be appended until
    /// a restart re-reads the trail.
    broken: Option<String>,
}

/// Why an append was not done.
#[derive(Debug)]
pub enum AppendError {
    /// Free space is below the floor: retry later.
    Full {
        available: u64,
    },
    Io(io::Error),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Full { available } => write!(
                f,
                "free disk space ({available} bytes) is below the sink's floor"
            ),
            AppendError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// What reading the existing trail at start found.
#[derive(Debug, Default, PartialEq)]
pub struct Opened {
    pub lines: u64,
    /// Bytes of an incomplete last line removed (a write that was never acknowledged).
    pub truncated_bytes: u64,
    pub segments: usize,
}

/// What a sync must cover: the file appends go to, and [`Storage::written`]
/// when it was taken. Earlier segments were synced when they were closed.
pub struct Unsynced {
    pub file: Arc<File>,
    pub written: u64,
}

impl Storage {
    /// Opens the trail, calling `f(line, segment)` for every stored line (in
    /// order) so the caller rebuilds its state, and cuts off an incomplete
    /// last line. With `hashing`, appends keep each segment's SHA-256 for
    /// [`Storage::segments`].
    pub fn open(
        options: Options,
        hashing: bool,
        mut f: impl FnMut(&[u8], u32),
    ) -> io::Result<(Storage, Opened)> {
        let rotating = options.rotate_bytes.is_some() || options.rotate_secs.is_some();
        let mut opened = Opened::default();
        if !rotating {
            let file = open_regular(&options.path)?;
            lock(&file, &options.path)?;
            let read = segments::read_lines(&file, &mut f, 0)?;
            opened.lines = read.lines;
            opened.truncated_bytes = truncate(&file, read.complete)?;
            opened.segments = 1;
            let name = options
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let lock_file = file.try_clone()?;
            let current = Current {
                file: Arc::new(file),
                name,
                len: read.complete,
                hasher: hashing.then_some(read.hasher),
                opened: SystemTime::now(),
            };
            let storage = Storage::new(options, lock_file, current, Vec::new(), 0);
            return Ok((storage, opened));
        }
        let dir = options.path.clone();
        if !refuse_link(&dir, true)? {
            fs::create_dir_all(&dir)?;
        }
        let lock_file = open_regular(&dir.join(".lock"))?;
        lock(&lock_file, &dir)?;
        let listed = list_segments(&dir)?;
        let mut closed = Vec::new();
        let mut last_plain = None;
        for (i, (index, name)) in listed.iter().enumerate() {
            let (read, closed_at) = segments::read_segment(&dir, name, &mut f, *index as u32)?;
            opened.lines += read.lines;
            let plain_name = name.trim_end_matches(".gz").to_string();
            if !name.ends_with(".gz") && i + 1 == listed.len() {
                last_plain = Some((*index, plain_name, read));
            } else {
                closed.push(Segment {
                    name: plain_name,
                    size: read.complete,
                    sha: read.hasher.finalize().into(),
                    closed_at,
                });
            }
        }
        opened.segments = listed.len();
        let now = SystemTime::now();
        let (index, current) = match last_plain {
            Some((index, name, read)) => {
                let file = open_regular(&dir.join(&name))?;
                opened.truncated_bytes = truncate(&file, read.complete)?;
                let current = Current {
                    file: Arc::new(file),
                    name,
                    len: read.complete,
                    hasher: hashing.then_some(read.hasher),
                    opened: now,
                };
                (index, current)
            }
            None => {
                let index = listed.last().map_or(1, |(i, _)| i + 1);
                (index, new_segment(&dir, index, now, hashing)?)
            }
        };
        let storage = Storage::new(options, lock_file, current, closed, index);
        storage.compress_closed();
        Ok((storage, opened))
    }

    fn new(
        options: Options,
        lock: File,
        current: Current,
        closed: Vec<Segment>,
        index: u64,
    ) -> Storage {
        Storage {
            options,
            _lock: lock,
            current,
            closed,
            index,
            written: 0,
            broken: None,
        }
    }

    pub fn rotating(&self) -> bool {
        self.options.rotate_bytes.is_some() || self.options.rotate_secs.is_some()
    }

    /// The number of the segment appends go to now (0 for a single file).
    pub fn segment(&self) -> u32 {
        self.index as u32
    }

    /// Every file of the trail with its current size and hash, oldest
    /// first; `None` unless opened with `hashing`.
    pub fn segments(&self) -> Option<Vec<Segment>> {
        let sha = self.current.hasher.clone()?.finalize().into();
        let mut all = self.closed.clone();
        all.push(Segment {
            name: self.current.name.clone(),
            size: self.current.len,
            sha,
            closed_at: None,
        });
        Some(all)
    }

    /// Bytes appended since the trail was opened (see [`Storage::append`]).
    pub fn written(&self) -> u64 {
        self.written
    }

    fn usable(&self) -> io::Result<()> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(io::Error::other(format!(
                "{why}; the trail's tail is unknown: restart the sink (it re-reads the trail)"
            ))),
        }
    }

    /// Marks the trail's tail unknown: a sync of it failed.
    pub fn fail(&mut self, e: &io::Error) {
        if self.broken.is_none() {
            self.broken = Some(format!("a sync of the trail failed ({e})"));
        }
    }

    /// Writes `bytes` (whole lines) without syncing; returns
    /// [`Storage::written`] after them, which a sync must reach before they
    /// count. On error nothing was written: the file is rolled back to its
    /// prior length.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64, AppendError> {
        self.usable().map_err(AppendError::Io)?;
        let free = available(&self.current.file).map_err(AppendError::Io)?;
        if free
            < self
                .options
                .min_free_bytes
                .saturating_add(bytes.len() as u64)
        {
            return Err(AppendError::Full { available: free });
        }
        if self.due(bytes.len() as u64) {
            self.rotate().map_err(AppendError::Io)?;
        }
        let c = &mut self.current;
        if let Err(e) = (&*c.file).write_all(bytes) {
            if c.file
                .set_len(c.len)
                .and_then(|()| c.file.sync_data())
                .is_err()
            {
                self.broken = Some(format!("a failed write could not be undone ({e})"));
            }
            return Err(AppendError::Io(e));
        }
        c.len += bytes.len() as u64;
        if let Some(h) = &mut c.hasher {
            h.update(bytes);
        }
        self.written += bytes.len() as u64;
        Ok(self.written)
    }

    /// What a sync must cover now, or why nothing written can be made durable.
    pub fn unsynced(&self) -> io::Result<Unsynced> {
        self.usable()?;
        Ok(Unsynced {
            file: self.current.file.clone(),
            written: self.written,
        })
    }

    /// Syncs everything written so far, here and now (before a digest lists it).
    pub fn sync(&mut self) -> io::Result<()> {
        self.usable()?;
        let synced = self.current.file.sync_data();
        if let Err(e) = &synced {
            self.fail(e);
        }
        synced
    }

    fn due(&self, adding: u64) -> bool {
        if !self.rotating() || self.current.len == 0 {
            return false;
        }
        let by_size = self
            .options
            .rotate_bytes
            .is_some_and(|max| self.current.len + adding > max);
        let by_age = self.options.rotate_secs.is_some_and(|secs| {
            self.current.opened.elapsed().unwrap_or_default() >= Duration::from_secs(secs)
        });
        by_size || by_age
    }

    /// Rotates a segment that is old enough even when nothing is written.
    pub fn tick(&mut self) -> io::Result<()> {
        if self.due(0) {
            self.usable()?;
            self.rotate()?;
        }
        Ok(())
    }

    /// Closes the current segment, synced: a sync after this covers only the
    /// next one, so the closed one must be durable first.
    fn rotate(&mut self) -> io::Result<()> {
        if let Err(e) = self.current.file.sync_all() {
            self.fail(&e);
            return Err(e);
        }
        let now = SystemTime::now();
        let hashing = self.current.hasher.is_some();
        let next = new_segment(&self.options.path, self.index + 1, now, hashing)?;
        let old = std::mem::replace(&mut self.current, next);
        self.index += 1;
        self.closed.push(Segment {
            name: old.name,
            size: old.len,
            sha: old.hasher.map(|h| h.finalize().into()).unwrap_or_default(),
            closed_at: Some(now),
        });
        self.compress_closed();
        Ok(())
    }
}

fn new_segment(
    dir: &std::path::Path,
    index: u64,
    now: SystemTime,
    hashing: bool,
) -> io::Result<Current> {
    let (name, file) = segments::create(dir, index, now)?;
    Ok(Current {
        file: Arc::new(file),
        name,
        len: 0,
        hasher: hashing.then(Sha256::new),
        opened: now,
    })
}

#[cfg(test)]
mod tests;
