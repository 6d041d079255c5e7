//! Reading a stored trail: one record per line, exactly as the sink wrote it.
//! A trail is a file, a gzipped file, or a directory of segment files (the
//! sink's rotation, `.jsonl` or `.jsonl.gz`) read in segment order. Files can
//! be large, so they are streamed, never read whole.

use crate::sink::storage::list_segments;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Calls `f(line_number, line_bytes)` for every non-empty line of the trail
/// at `path` (numbers start at 1 and run on across segments; the bytes
/// exclude the newline).
pub fn for_each_line(path: &Path, mut f: impl FnMut(usize, &[u8])) -> io::Result<()> {
    let mut number = 0;
    if path.is_dir() {
        let segments = list_segments(path)?;
        if segments.is_empty() {
            return Err(io::Error::other(
                "the directory holds no segment files (NNNNNNNN-*.jsonl[.gz])",
            ));
        }
        for (_, name) in segments {
            read_file(&path.join(&name), &mut number, &mut f)
                .map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))?;
        }
        return Ok(());
    }
    read_file(path, &mut number, &mut f)
}

fn read_file(path: &Path, number: &mut usize, f: &mut impl FnMut(usize, &[u8])) -> io::Result<()> {
    let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
    // Gzip by its magic number, whatever the file is called.
    let gzipped = file.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if gzipped {
        read_lines(
            BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(file)),
            number,
            f,
        )
    } else {
        read_lines(file, number, f)
    }
}

fn read_lines(
    mut reader: impl BufRead,
    number: &mut usize,
    f: &mut impl FnMut(usize, &[u8]),
) -> io::Result<()> {
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

/// The whole uncompressed content of a trail file (gzip by magic number).
pub fn open_plain(path: &Path) -> io::Result<Box<dyn Read>> {
    let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
    if file.fill_buf()?.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Ok(Box::new(file))
    }
}
