//! proxy-wasm's pairs layout (header maps, and Envoy's maps and lists):
//! u32 count, a u32 key length and value length per entry, then each key
//! and value NUL-terminated.

use super::Headers;

/// The entries of `bytes`; `None` unless every byte is accounted for.
pub fn pairs(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let word = |at: usize| -> Option<usize> {
        Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let count = word(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (klen, vlen) = (word(4 + i * 8)?, word(8 + i * 8)?);
        let key = bytes.get(data..data.checked_add(klen)?)?;
        data += klen;
        if bytes.get(data) != Some(&0) {
            return None;
        }
        data += 1;
        let value = bytes.get(data..data.checked_add(vlen)?)?;
        data += vlen;
        if bytes.get(data) != Some(&0) {
            return None;
        }
        data += 1;
        out.push((key, value));
    }
    (data == bytes.len()).then_some(out)
}

/// A header map as the proxy serialised it; malformed input gives no headers.
pub fn decode_pairs(bytes: &[u8]) -> Headers {
    let pairs = pairs(bytes).unwrap_or_default();
    let mut out = Headers::with_capacity(pairs.len(), bytes.len());
    for (k, v) in pairs {
        out.push(&super::lossy(k), v);
    }
    out
}

/// The inverse, for what the filter hands the proxy.
pub fn encode_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_and_refuses_damaged_ones() {
        let mut b = Vec::new();
        b.extend_from_slice(&2u32.to_le_bytes());
        for n in [5u32, 1, 1, 2] {
            b.extend_from_slice(&n.to_le_bytes());
        }
        b.extend_from_slice(b":path\0/\0a\0bc\0");
        let pairs = decode_pairs(&b);
        assert_eq!(
            pairs,
            [(":path", &b"/"[..]), ("a", b"bc")].into_iter().collect()
        );
        assert!(decode_pairs(&b[..b.len() - 3]).is_empty());
        assert!(decode_pairs(&[1, 0]).is_empty());
        assert!(decode_pairs(&[255, 255, 255, 255]).is_empty());
    }

    #[test]
    fn encoding_round_trips() {
        let bytes = encode_pairs(&[("content-type", "text/plain"), ("x", "")]);
        assert_eq!(
            decode_pairs(&bytes),
            [("content-type", &b"text/plain"[..]), ("x", b"")]
                .into_iter()
                .collect()
        );
    }
}
