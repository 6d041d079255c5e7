//! JSON string escaping as `serde_json` does it, with the common case
//! (nothing to escape) checked a word at a time.

/// Whether `b` must be escaped in a JSON string (as `serde_json` does:
/// quotes, backslashes and control characters; never DEL or non-ASCII).
pub(super) fn must_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether none of the eight bytes of `w` must be escaped: exact, with
/// the borrow tricks that tell a byte below a bound in a word.
fn clean_word(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(ONES * 0x20);
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v;
    (below_space | zero_byte(quote) | zero_byte(backslash)) & !w & HIGH == 0
}

/// Whether `bytes` can be copied into a JSON string as they are.
pub(super) fn clean(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    let whole = words.all(|c| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        clean_word(u64::from_le_bytes(w))
    });
    whole && !words.remainder().iter().any(|&b| must_escape(b))
}

/// `s` as a JSON string. Most values need no escape: checked a word at a
/// time, then copied whole.
pub(super) fn escaped(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let clean = clean(bytes);
    if clean {
        out.extend_from_slice(bytes);
    } else {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if !must_escape(b) {
                continue;
            }
            out.extend_from_slice(&bytes[start..i]);
            start = i + 1;
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 15) as usize]);
                }
            }
        }
        out.extend_from_slice(&bytes[start..]);
    }
    out.push(b'"');
}
