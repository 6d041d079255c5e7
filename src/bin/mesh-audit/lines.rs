//! Reading a stored trail: one record per line, exactly as the sink wrote it.
//! A trail is a file, a gzipped file, or a directory of segment files (the
//! sink's rotation, `.jsonl` or `.jsonl.gz`) read in segment order. Files can
//! be large, so they are streamed, never read whole.

use crate::status::if_missing;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Why a trail could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error("{}: {source}{}", .path.display(), if_missing(.source, " (give the file or directory `mesh-audit sink --out` wrote)"))]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: the directory holds no segment files (NNNNNNNN-*.jsonl[.gz]): give the directory `mesh-audit sink --out` wrote with --rotate-bytes/--rotate-secs, or one trail file", .path.display())]
    NoSegments { path: PathBuf },
}

impl TrailError {
    fn at(path: &Path) -> impl FnOnce(io::Error) -> TrailError + '_ {
        move |source| TrailError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Calls `f(line_number, line_bytes)` for every non-empty line of the trail
/// at `path` (numbers start at 1 and run on across segments; the bytes
/// exclude the newline).
pub fn for_each_line(path: &Path, mut f: impl FnMut(usize, &[u8])) -> Result<(), TrailError> {
    let mut number = 0;
    if !path.is_dir() {
        return read_lines(path, &mut number, &mut f).map_err(TrailError::at(path));
    }
    let segments = list_segments(path).map_err(TrailError::at(path))?;
    if segments.is_empty() {
        return Err(TrailError::NoSegments {
            path: path.to_path_buf(),
        });
    }
    for (_, name) in segments {
        let segment = path.join(&name);
        read_lines(&segment, &mut number, &mut f).map_err(TrailError::at(&segment))?;
    }
    Ok(())
}

fn read_lines(path: &Path, number: &mut usize, f: &mut impl FnMut(usize, &[u8])) -> io::Result<()> {
    let mut reader = open_plain(path)?;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        *number += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if !line.is_empty() {
            f(*number, line);
        }
    }
}

/// The uncompressed content of a trail file: gzip by its magic number,
/// whatever the file is called.
pub fn open_plain(path: &Path) -> io::Result<Box<dyn BufRead>> {
    let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
    if file.fill_buf()?.starts_with(&[0x1f, 0x8b]) {
        let plain = flate2::read::MultiGzDecoder::new(file);
        Ok(Box::new(BufReader::with_capacity(1 << 20, plain)))
    } else {
        Ok(Box::new(file))
    }
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
