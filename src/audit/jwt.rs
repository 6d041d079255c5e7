//! End-user identity from a JWT that Envoy's `jwt_authn` filter has already
//! verified and stored in dynamic metadata (`payload_in_metadata`).
//!
//! The filter reads it with one property lookup of
//! `["metadata", "filter_metadata", <metadata_namespace>, <payload_key>]`.
//! Envoy 1.40 answers in proxy-wasm's pairs layout ([`pairs`]); other
//! builds serialize the `google.protobuf.Struct` as protobuf, decoded here
//! by hand; JSON text (starting with `{`) is accepted too. When the whole
//! payload cannot be serialized (Envoy refuses a `Struct` holding a `null`),
//! the filter reads each wanted claim on its own and types it with
//! [`claim_value`].
//! Tokens are never decoded from request headers: an unverified token says
//! nothing about who called.

use super::record::Fields;
use pairs::number;
use serde_json::{Map, Value};

mod pairs;

/// One claim read on its own (`…/<payload_key>/<claim>`), typed by shape.
pub fn claim_value(bytes: &[u8]) -> Value {
    pairs::leaf(bytes)
}

/// How many structs and lists may nest inside a claim; deeper input is rejected.
const MAX_DEPTH: usize = 32;

/// The configured `wanted` claims, in that order, from the payload `bytes`.
/// Absent claims are omitted; undecodable input yields no claims at all.
/// Only wanted claims are decoded.
///
/// Wire format: `Struct { map<string, Value> fields = 1 }` (entries are
/// `{ key = 1, value = 2 }`); `Value` is one of `null_value = 1`,
/// `number_value = 2` (double), `string_value = 3`, `bool_value = 4`,
/// `struct_value = 5`, `list_value = 6`; `ListValue { repeated Value values = 1 }`.
/// Integral numbers up to 2^53 become JSON integers (`"exp": 1700000000`).
pub fn claims_from_struct(bytes: &[u8], wanted: &[String]) -> Fields<Value> {
    if wanted.is_empty() {
        return Fields(Vec::new());
    }
    if let Some(entries) = pairs::parse(bytes) {
        return Fields(
            wanted
                .iter()
                .filter_map(|w| {
                    let (_, v) = entries.iter().find(|(k, _)| *k == w.as_bytes())?;
                    Some((w.clone(), pairs::leaf(v)))
                })
                .collect(),
        );
    }
    if bytes.trim_ascii_start().first() == Some(&b'{') {
        return from_json(bytes, wanted);
    }
    let mut slots: Vec<Option<Value>> = vec![None; wanted.len()];
    if select_struct(bytes, wanted, &mut slots).is_none() {
        return Fields(Vec::new());
    }
    let out = wanted
        .iter()
        .zip(slots)
        .filter_map(|(name, slot)| slot.map(|v| (name.clone(), v)))
        .collect();
    Fields(out)
}

fn from_json(bytes: &[u8], wanted: &[String]) -> Fields<Value> {
    let Ok(mut map) = serde_json::from_slice::<Map<String, Value>>(bytes) else {
        return Fields(Vec::new());
    };
    Fields(
        wanted
            .iter()
            .filter_map(|name| map.remove(name).map(|v| (name.clone(), v)))
            .collect(),
    )
}

/// Walks the top-level entries, decoding only the values of wanted keys
/// (the first slot of a key named twice in `wanted`; a repeated entry wins).
fn select_struct(bytes: &[u8], wanted: &[String], slots: &mut [Option<Value>]) -> Option<()> {
    let mut r = Reader { b: bytes, pos: 0 };
    while !r.done() {
        match r.tag()? {
            (1, WIRE_LEN) => {
                let (key, value) = entry(r.len_delimited()?)?;
                if let Some(i) = wanted.iter().position(|w| w.as_bytes() == key) {
                    slots[i] = Some(value.map_or(Some(Value::Null), |v| decode_value(v, 0))?);
                }
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Some(())
}

/// A map entry's key and (undecoded) value.
fn entry(bytes: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let mut r = Reader { b: bytes, pos: 0 };
    let (mut key, mut value): (&[u8], Option<&[u8]>) = (b"", None);
    while !r.done() {
        match r.tag()? {
            (1, WIRE_LEN) => key = r.len_delimited()?,
            (2, WIRE_LEN) => value = Some(r.len_delimited()?),
            (_, wire) => r.skip(wire)?,
        }
    }
    Some((key, value))
}

fn decode_value(bytes: &[u8], depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut r = Reader { b: bytes, pos: 0 };
    let mut v = Value::Null;
    while !r.done() {
        v = match r.tag()? {
            (1, WIRE_VARINT) => {
                r.varint()?;
                Value::Null
            }
            (2, WIRE_I64) => number(f64::from_bits(r.fixed64()?)),
            (3, WIRE_LEN) => {
                Value::String(String::from_utf8_lossy(r.len_delimited()?).into_owned())
            }
            (4, WIRE_VARINT) => Value::Bool(r.varint()? != 0),
            (5, WIRE_LEN) => Value::Object(decode_struct(r.len_delimited()?, depth + 1)?),
            (6, WIRE_LEN) => Value::Array(decode_list(r.len_delimited()?, depth + 1)?),
            (_, wire) => {
                r.skip(wire)?;
                continue;
            }
        };
    }
    Some(v)
}

fn decode_struct(bytes: &[u8], depth: usize) -> Option<Map<String, Value>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut r = Reader { b: bytes, pos: 0 };
    let mut map = Map::new();
    while !r.done() {
        match r.tag()? {
            (1, WIRE_LEN) => {
                let (key, value) = entry(r.len_delimited()?)?;
                let value = match value {
                    Some(v) => decode_value(v, depth)?,
                    None => Value::Null,
                };
                map.insert(String::from_utf8_lossy(key).into_owned(), value);
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    Some(map)
}

fn decode_list(bytes: &[u8], depth: usize) -> Option<Vec<Value>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut r = Reader { b: bytes, pos: 0 };
    let mut list = Vec::new();
    while !r.done() {
        match r.tag()? {
            (1, WIRE_LEN) => list.push(decode_value(r.len_delimited()?, depth)?),
            (_, wire) => r.skip(wire)?,
        }
    }
    Some(list)
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// A bounds-checked cursor over protobuf wire data; every read is `None` past the end.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let byte = *self.b.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// `(field number, wire type)`.
    fn tag(&mut self) -> Option<(u64, u8)> {
        let t = self.varint()?;
        Some((t >> 3, (t & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn fixed64(&mut self) -> Option<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Some(u64::from_le_bytes(a))
    }

    fn len_delimited(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }

    /// Skips a field of an unknown number; groups (wire types 3, 4) are not
    /// valid in these messages and make the input undecodable.
    fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_I64 => self.take(8).map(drop),
            WIRE_LEN => self.len_delimited().map(drop),
            WIRE_I32 => self.take(4).map(drop),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
