//! The segment directory's format: files `NNNNNNNN-<UTC>.jsonl`, numbered in
//! order, closed ones optionally gzipped to `NNNNNNNN-<UTC>.jsonl.gz`, each
//! read back as complete lines with the SHA-256 a digest lists it by.

use super::files::{open_read, open_regular, sync_dir};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// What reading a file of the trail found: the bytes of its complete lines,
/// their SHA-256, and how many lines were not blank.
pub struct Lines {
    pub complete: u64,
    pub hasher: Sha256,
    pub lines: u64,
}

/// Reads the complete lines of `reader`, calling `f` for each.
pub fn read_lines(
    reader: impl Read,
    f: &mut impl FnMut(&[u8], u32),
    segment: u32,
) -> io::Result<Lines> {
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
    Ok(Lines {
        complete,
        hasher,
        lines,
    })
}

/// Reads segment `name` of `dir`, plain or gzipped.
pub fn read_segment(
    dir: &Path,
    name: &str,
    f: &mut impl FnMut(&[u8], u32),
    segment: u32,
) -> io::Result<(Lines, Option<SystemTime>)> {
    let file = open_read(&dir.join(name))?;
    let closed_at = file.metadata()?.modified().ok();
    let read = if name.ends_with(".gz") {
        read_lines(flate2::read::MultiGzDecoder::new(file), f, segment)?
    } else {
        read_lines(&file, f, segment)?
    };
    Ok((read, closed_at))
}

/// Creates segment `index` of `dir`, named for `now`; returns its name and file.
pub fn create(dir: &Path, index: u64, now: SystemTime) -> io::Result<(String, File)> {
    let name = format!("{index:08}-{}.jsonl", utc_stamp(now));
    let file = open_regular(&dir.join(&name))?;
    sync_dir(dir)?;
    Ok((name, file))
}

/// Replaces closed segment `name` by `name.gz`, durably, in that order: a
/// crash in between leaves both, which [`list_segments`] reads once.
pub fn gzip(dir: &Path, name: &str) -> io::Result<()> {
    let plain = dir.join(name);
    let tmp = dir.join(format!("{name}.gz.tmp"));
    let mut input = open_read(&plain)?;
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
