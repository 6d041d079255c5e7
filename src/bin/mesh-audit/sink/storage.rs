//! Where the trail lives on disk: one file, or (with rotation) a directory of
//! segment files `NNNNNNNN-<UTC>.jsonl`, closed ones optionally gzipped.
//! Only regular files are ever opened (never through a symbolic link), one
//! sink at a time holds the trail (an exclusive lock), every append is
//! fsynced before it counts, and a free-space floor keeps the disk from
//! filling: below it appends are refused so proxies retry later.

use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    file: File,
    name: String,
    len: u64,
    hasher: Sha256,
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
    /// Set when a failed write could not be rolled back: the file's tail is
    /// unknown, so nothing more may be appended until a restart re-reads it.
    broken: bool,
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

fn refuse_link(path: &Path, want_dir: bool) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::other(format!(
            "{} is a symbolic link; the sink writes only to a real {}",
            path.display(),
            if want_dir { "directory" } else { "file" }
        ))),
        Ok(m) if want_dir && !m.is_dir() => Err(io::Error::other(format!(
            "{} is not a directory (rotation stores segments in a directory)",
            path.display()
        ))),
        Ok(m) if !want_dir && !m.is_file() => Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        ))),
        Ok(_) => Ok(true),
    }
}

/// Opens a regular file for reading and appending, never following a link.
pub fn open_regular(path: &Path) -> io::Result<File> {
    refuse_link(path, false)?;
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

fn lock(file: &File, what: &Path) -> io::Result<()> {
    // SAFETY: flock on a descriptor this process owns; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(io::Error::other(format!(
            "another process (a second sink?) holds the lock on {}; two writers would interleave the trail",
            what.display()
        )));
    }
    Err(e)
}

/// Free bytes for an unprivileged writer on the filesystem of `file`.
pub fn available(file: &File) -> io::Result<u64> {
    // SAFETY: fstatvfs fills the zeroed struct we pass; the descriptor is ours.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn utc_stamp(t: SystemTime) -> String {
    let nanos = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    let s = mesh_audit::audit::time::format_rfc3339(nanos);
    // 2026-11-21T14:03:05.123456Z -> 20261121T140305Z
    let digits: String = s[..19]
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{digits}Z")
}

/// The number of a segment file name, if it is one (`.jsonl` or `.jsonl.gz`).
pub fn segment_index(name: &str) -> Option<u64> {
    let stem = name
        .strip_suffix(".jsonl")
        .or_else(|| name.strip_suffix(".jsonl.gz"))?;
    let (index, _) = stem.split_once('-')?;
    (index.len() == 8 && index.bytes().all(|b| b.is_ascii_digit()))
        .then(|| index.parse().ok())
        .flatten()
}

/// Segment files of `dir`, in order: (index, file name).
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(index) = segment_index(&name) {
            if !entry.file_type()?.is_file() {
                return Err(io::Error::other(format!(
                    "{} is not a regular file",
                    entry.path().display()
                )));
            }
            out.push((index, name));
        }
    }
    out.sort();
    // A crash between writing `X.jsonl.gz` and removing `X.jsonl` leaves both,
    // each complete: read the segment once, from the plain file.
    out.dedup_by(|later, earlier| later.0 == earlier.0);
    Ok(out)
}

/// Reads the complete lines of `reader`, calling `f` for each; returns the
/// bytes of complete lines and their SHA-256.
fn read_lines(
    reader: impl Read,
    f: &mut impl FnMut(&[u8], u32),
    segment: u32,
) -> io::Result<(u64, Sha256, u64)> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut hasher = Sha256::new();
    let (mut complete, mut lines) = (0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        let Some(line) = buf.strip_suffix(b"\n") else {
            break;
        };
        complete += n as u64;
        hasher.update(&buf);
        if !line.is_empty() {
            lines += 1;
            f(line, segment);
        }
    }
    Ok((complete, hasher, lines))
}

impl Storage {
    /// Opens the trail, calling `f(line, segment)` for every stored line (in
    /// order) so the caller rebuilds its state, and cuts off an incomplete
    /// last line.
    pub fn open(options: Options, mut f: impl FnMut(&[u8], u32)) -> io::Result<(Storage, Opened)> {
        let rotating = options.rotate_bytes.is_some() || options.rotate_secs.is_some();
        let mut opened = Opened::default();
        if !rotating {
            let file = open_regular(&options.path)?;
            lock(&file, &options.path)?;
            let (complete, hasher, lines) = read_lines(&file, &mut f, 0)?;
            opened.lines = lines;
            opened.truncated_bytes = truncate(&file, complete)?;
            opened.segments = 1;
            let name = options
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let lock_file = file.try_clone()?;
            let current = Current {
                file,
                name,
                len: complete,
                hasher,
                opened: SystemTime::now(),
            };
            let storage = Storage {
                options,
                _lock: lock_file,
                current,
                closed: Vec::new(),
                index: 0,
                broken: false,
            };
            return Ok((storage, opened));
        }
        let dir = options.path.clone();
        if !refuse_link(&dir, true)? {
            fs::create_dir_all(&dir)?;
        }
        let lock_path = dir.join(".lock");
        let lock_file = open_regular(&lock_path)?;
        lock(&lock_file, &dir)?;
        let segments = list_segments(&dir)?;
        let mut closed = Vec::new();
        let mut last_plain: Option<(u64, String, u64, Sha256)> = None;
        for (i, (index, name)) in segments.iter().enumerate() {
            let path = dir.join(name);
            let file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            let closed_at = file.metadata()?.modified().ok();
            let gz = name.ends_with(".gz");
            let (complete, hasher, lines) = if gz {
                read_lines(
                    flate2::read::MultiGzDecoder::new(file),
                    &mut f,
                    *index as u32,
                )?
            } else {
                read_lines(&file, &mut f, *index as u32)?
            };
            opened.lines += lines;
            let plain_name = name.trim_end_matches(".gz").to_string();
            if !gz && i + 1 == segments.len() {
                last_plain = Some((*index, plain_name, complete, hasher));
            } else {
                closed.push(Segment {
                    name: plain_name,
                    size: complete,
                    sha: hasher.finalize().into(),
                    closed_at,
                });
            }
        }
        opened.segments = segments.len();
        let now = SystemTime::now();
        let (index, current) = match last_plain {
            Some((index, name, len, hasher)) => {
                let file = open_regular(&dir.join(&name))?;
                opened.truncated_bytes = truncate(&file, len)?;
                (
                    index,
                    Current {
                        file,
                        name,
                        len,
                        hasher,
                        opened: now,
                    },
                )
            }
            None => {
                let index = segments.last().map_or(1, |(i, _)| i + 1);
                (index, new_segment(&dir, index, now)?)
            }
        };
        let storage = Storage {
            options,
            _lock: lock_file,
            current,
            closed,
            index,
            broken: false,
        };
        storage.compress_closed();
        Ok((storage, opened))
    }

    pub fn rotating(&self) -> bool {
        self.options.rotate_bytes.is_some() || self.options.rotate_secs.is_some()
    }

    /// The number of the segment appends go to now (0 for a single file).
    pub fn segment(&self) -> u32 {
        self.index as u32
    }

    /// Every file of the trail with its current size and hash, oldest first.
    pub fn segments(&self) -> Vec<Segment> {
        let mut all = self.closed.clone();
        all.push(Segment {
            name: self.current.name.clone(),
            size: self.current.len,
            sha: self.current.hasher.clone().finalize().into(),
            closed_at: None,
        });
        all
    }

    /// Appends `bytes` (whole lines) and fsyncs. On error nothing counts and
    /// the file is rolled back to its prior length.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), AppendError> {
        if self.broken {
            return Err(AppendError::Io(io::Error::other(
                "an earlier write failed and could not be undone; restart the sink",
            )));
        }
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
        if let Err(e) = c.file.write_all(bytes).and_then(|()| c.file.sync_data()) {
            if c.file
                .set_len(c.len)
                .and_then(|()| c.file.sync_data())
                .is_err()
            {
                self.broken = true;
            }
            return Err(AppendError::Io(e));
        }
        c.len += bytes.len() as u64;
        c.hasher.update(bytes);
        Ok(())
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
            self.rotate()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let now = SystemTime::now();
        let next = new_segment(&self.options.path, self.index + 1, now)?;
        let old = std::mem::replace(&mut self.current, next);
        old.file.sync_all()?;
        self.index += 1;
        self.closed.push(Segment {
            name: old.name,
            size: old.len,
            sha: old.hasher.finalize().into(),
            closed_at: Some(now),
        });
        self.compress_closed();
        Ok(())
    }

    /// Gzips closed segments still stored plain, in the background: the
    /// digest lists a segment by its plain name and uncompressed content, so
    /// it verifies the same before and after.
    fn compress_closed(&self) {
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
                if let Err(e) = gzip(&dir, &name) {
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

fn truncate(file: &File, complete: u64) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len > complete {
        file.set_len(complete)?;
        file.sync_all()?;
    }
    Ok(len.saturating_sub(complete))
}

fn new_segment(dir: &Path, index: u64, now: SystemTime) -> io::Result<Current> {
    let name = format!("{index:08}-{}.jsonl", utc_stamp(now));
    let file = open_regular(&dir.join(&name))?;
    sync_dir(dir)?;
    Ok(Current {
        file,
        name,
        len: 0,
        hasher: Sha256::new(),
        opened: now,
    })
}

fn gzip(dir: &Path, name: &str) -> io::Result<()> {
    let plain = dir.join(name);
    let tmp = dir.join(format!("{name}.gz.tmp"));
    let mut input = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&plain)?;
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    io::copy(&mut input, &mut encoder)?;
    let out = encoder.finish()?;
    out.sync_all()?;
    fs::rename(&tmp, dir.join(format!("{name}.gz")))?;
    sync_dir(dir)?;
    fs::remove_file(&plain)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("mesh-audit-storage-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        let _ = fs::remove_file(&p);
        p
    }

    fn file_options(path: &Path) -> Options {
        Options {
            path: path.to_path_buf(),
            rotate_bytes: None,
            rotate_secs: None,
            gzip: false,
            min_free_bytes: 0,
        }
    }

    #[test]
    fn a_symlink_or_a_second_writer_is_refused() {
        let target = scratch("target");
        fs::write(&target, b"precious\n").unwrap();
        let link = scratch("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Storage::open(file_options(&link), |_, _| {}).err().unwrap();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        assert_eq!(fs::read(&target).unwrap(), b"precious\n");

        let path = scratch("locked");
        let (_first, _) = Storage::open(file_options(&path), |_, _| {}).unwrap();
        let e = Storage::open(file_options(&path), |_, _| {}).err().unwrap();
        assert!(e.to_string().contains("holds the lock"), "{e}");
        for p in [target, link, path] {
            let _ = fs::remove_file(p);
        }
    }

    #[test]
    fn segments_rotate_by_size_and_reopen_in_order() {
        let dir = scratch("segments");
        let options = || Options {
            rotate_bytes: Some(10),
            gzip: true,
            ..file_options(&dir)
        };
        let (mut s, _) = Storage::open(options(), |_, _| {}).unwrap();
        for i in 0..3 {
            s.append(format!("line-{i}-xx\n").as_bytes()).unwrap();
        }
        assert_eq!(s.closed.len(), 2);
        let listed = s.segments();
        drop(s);
        // Wait for the background gzip of the two closed segments.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while list_segments(&dir)
            .unwrap()
            .iter()
            .filter(|(_, n)| n.ends_with(".gz"))
            .count()
            < 2
        {
            assert!(std::time::Instant::now() < deadline, "segments not gzipped");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut seen = Vec::new();
        let (s, opened) = Storage::open(options(), |l, seg| {
            seen.push((String::from_utf8_lossy(l).into_owned(), seg))
        })
        .unwrap();
        assert_eq!(opened.lines, 3);
        assert_eq!(
            seen.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
            ["line-0-xx", "line-1-xx", "line-2-xx"]
        );
        assert_eq!(seen.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [1, 2, 3]);
        let reopened: Vec<(String, u64, [u8; 32])> = s
            .segments()
            .into_iter()
            .map(|x| (x.name, x.size, x.sha))
            .collect();
        let before: Vec<(String, u64, [u8; 32])> = listed
            .into_iter()
            .map(|x| (x.name, x.size, x.sha))
            .collect();
        assert_eq!(
            reopened, before,
            "same names, sizes and hashes after gzip and reopen"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn below_the_free_space_floor_nothing_is_written() {
        let path = scratch("floor");
        let (mut s, _) = Storage::open(
            Options {
                min_free_bytes: u64::MAX / 2,
                ..file_options(&path)
            },
            |_, _| {},
        )
        .unwrap();
        assert!(matches!(s.append(b"x\n"), Err(AppendError::Full { .. })));
        assert_eq!(fs::read(&path).unwrap(), b"");
        let _ = fs::remove_file(&path);
    }
}
