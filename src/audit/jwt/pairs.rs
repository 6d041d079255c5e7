//! The JWT payload as Envoy 1.40 hands a `Struct` to proxy-wasm: the same
//! "pairs" layout as header maps (u32 count, then u32 key and value lengths,
//! then NUL-terminated keys and values). Types are not on the wire: strings
//! come raw, numbers as 8-byte little-endian doubles, booleans as one byte,
//! nested objects as nested pairs, and lists as nested pairs whose keys are
//! the elements and whose values are empty. [`leaf`] recovers the JSON type
//! by shape, preferring a string whenever the bytes are printable text.

use serde_json::{Map, Number, Value};

/// How deeply pairs may nest before the input is treated as a plain value.
const MAX_DEPTH: usize = 8;

/// The entries of a complete, well-formed pairs buffer, or `None`.
pub use crate::host::pairs as parse;

fn printable(bytes: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(bytes).ok()?;
    (!s.chars()
        .any(|c| c.is_control() && c != '\t' && c != '\n' && c != '\r'))
    .then_some(s)
}

/// One claim value, typed by its shape.
pub fn leaf(bytes: &[u8]) -> Value {
    leaf_at(bytes, 0)
}

fn leaf_at(bytes: &[u8], depth: usize) -> Value {
    if let Some(s) = printable(bytes) {
        return Value::String(s.to_string());
    }
    if depth < MAX_DEPTH {
        if let Some(entries) = parse(bytes) {
            if entries.iter().all(|(_, v)| v.is_empty()) {
                return Value::Array(entries.iter().map(|(k, _)| leaf_at(k, depth + 1)).collect());
            }
            let map: Map<String, Value> = entries
                .iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        leaf_at(v, depth + 1),
                    )
                })
                .collect();
            return Value::Object(map);
        }
    }
    match bytes {
        [b @ (0 | 1)] => Value::Bool(*b == 1),
        _ if bytes.len() == 8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(bytes);
            number(f64::from_le_bytes(a))
        }
        _ => Value::String(String::from_utf8_lossy(bytes).into_owned()),
    }
}

/// A double as JSON: whole numbers within ±2^53 as integers
/// (`"exp": 1700000000`), NaN and infinities (which JSON cannot express) as null.
pub fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() <= 9_007_199_254_740_992.0 {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (entries.len() as u32).to_le_bytes().to_vec();
        for (k, v) in entries {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (k, v) in entries {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn decodes_what_envoy_sent_for_a_real_token() {
        // Captured from Envoy 1.40 for {"email","exp","iss","sub"} of a test token.
        let exp = 4_102_444_800f64.to_le_bytes();
        let b = pairs(&[
            (b"email", b"alice@example.com"),
            (b"exp", &exp),
            (b"iss", b"https://idp.example"),
            (b"sub", b"alice"),
        ]);
        assert_eq!(&exp, &[0, 0, 0, 0xe0, 0xca, 0x90, 0xee, 0x41]);
        let e = parse(&b).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(leaf(e[1].1), json!(4_102_444_800i64));
        assert_eq!(leaf(e[3].1), json!("alice"));
    }

    #[test]
    fn types_follow_the_shape() {
        assert_eq!(leaf(&[1]), json!(true));
        assert_eq!(leaf(&[0]), json!(false));
        assert_eq!(leaf(&1.5f64.to_le_bytes()), json!(1.5));
        assert_eq!(leaf(&0f64.to_le_bytes()), json!(0));
        assert_eq!(leaf(b""), json!(""));
        assert_eq!(
            leaf(b"12345678"),
            json!("12345678"),
            "printable text stays a string"
        );
        let list = pairs(&[(b"a", b""), (b"b", b"")]);
        assert_eq!(leaf(&list), json!(["a", "b"]));
        let obj = pairs(&[(b"role", b"admin"), (b"level", &[1])]);
        assert_eq!(leaf(&obj), json!({"role": "admin", "level": true}));
    }

    #[test]
    fn rejects_what_is_not_exactly_pairs() {
        let good = pairs(&[(b"k", b"v")]);
        assert!(parse(&good).is_some());
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_none(), "prefix of {cut} bytes");
        }
        let mut trailing = good.clone();
        trailing.push(7);
        assert!(parse(&trailing).is_none());
        assert!(parse(&[0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(parse(b"{\"sub\":\"alice\"}").is_none());
    }
}
