//! Reading a stored trail: one record per line, exactly as the sink wrote it.
//! Files can be large, so they are streamed, never read whole.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

/// Calls `f(line_number, line_bytes)` for every non-empty line of `path`
/// (numbers start at 1; the bytes exclude the newline).
pub fn for_each_line(path: &Path, mut f: impl FnMut(usize, &[u8])) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        number += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if !line.is_empty() {
            f(number, line);
        }
    }
}
