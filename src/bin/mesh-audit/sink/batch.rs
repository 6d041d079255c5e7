//! Parsing an incoming batch into records: each must be exactly one JSON
//! object on one line, as the filter writes it, with a well-formed emitter
//! and a seq. Any bad record refuses the whole batch, so the filter reports
//! it as `rejected` rather than half-stored.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// The members the sink needs; the rest of a record is kept as bytes, never
/// re-encoded (the chain covers the exact line).
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    emitter: Option<Cow<'a, str>>,
    seq: Option<u64>,
    #[serde(borrow)]
    prev: Option<Cow<'a, str>>,
    #[serde(borrow)]
    destination: Option<Destination<'a>>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
    count: Option<u64>,
    from_seq: Option<u64>,
    to_seq: Option<u64>,
}

#[derive(Deserialize)]
struct Destination<'a> {
    #[serde(borrow)]
    principal: Option<Cow<'a, str>>,
}

/// What ingest checks read of a record besides its identity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    pub kind: String,
    pub destination: Option<String>,
    pub reason: Option<String>,
    pub count: Option<u64>,
    pub from_seq: Option<u64>,
    pub to_seq: Option<u64>,
}

/// One record of an incoming batch: its identity, its exact bytes and their SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub emitter: Emitter,
    pub seq: u64,
    pub line: Vec<u8>,
    pub sha: [u8; 32],
    pub prev: Option<String>,
    pub facts: Facts,
}

/// An emitter id: 128 bits, written as exactly 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Emitter(pub u128);

impl Emitter {
    pub fn parse(s: &str) -> Option<Emitter> {
        let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
        if s.len() != 32 || !s.as_bytes().iter().all(lower_hex) {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(Emitter)
    }
}

impl std::fmt::Display for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Why a batch cannot be taken: malformed (400) or well-formed but not a
/// valid record of the trail (422, quarantined).
#[derive(Debug, PartialEq)]
pub enum BadBatch {
    Malformed(String),
    Invalid(String),
}

/// Parses one record line; surrounding ASCII whitespace (a `\r`, a collector's
/// trailing newline) is not part of the record and is removed.
pub fn parse_record(raw: &[u8]) -> Result<Incoming, BadBatch> {
    let line = raw.trim_ascii();
    if line.first() != Some(&b'{') {
        return Err(BadBatch::Malformed("not a JSON object".into()));
    }
    if line.iter().any(|&b| b == b'\n' || b == b'\r') {
        return Err(BadBatch::Malformed("a record must be one line".into()));
    }
    let record: Head = serde_json::from_slice(line)
        .map_err(|e| BadBatch::Malformed(format!("not an audit record: {e}")))?;
    if record.kind.is_empty() {
        return Err(BadBatch::Malformed("record has an empty kind".into()));
    }
    let emitter = match record.emitter.as_deref() {
        None | Some("") => return Err(BadBatch::Malformed("record has no emitter".into())),
        Some(e) => Emitter::parse(e)
            .ok_or_else(|| BadBatch::Invalid("emitter is not 32 lowercase hex digits".into()))?,
    };
    let seq = match record.seq {
        Some(seq) if seq >= 1 => seq,
        _ => {
            return Err(BadBatch::Malformed(
                "record has no seq (must be 1 or more)".into(),
            ))
        }
    };
    Ok(Incoming {
        emitter,
        seq,
        sha: Sha256::digest(line).into(),
        line: line.to_vec(),
        prev: record.prev.map(Cow::into_owned),
        facts: Facts {
            kind: record.kind.into_owned(),
            destination: record
                .destination
                .and_then(|d| d.principal)
                .map(Cow::into_owned),
            reason: record.reason.map(Cow::into_owned),
            count: record.count,
            from_seq: record.from_seq,
            to_seq: record.to_seq,
        },
    })
}

fn at(prefix: String, e: BadBatch) -> BadBatch {
    match e {
        BadBatch::Malformed(m) => BadBatch::Malformed(format!("{prefix}: {m}")),
        BadBatch::Invalid(m) => BadBatch::Invalid(format!("{prefix}: {m}")),
    }
}

/// Splits a JSON-lines body into records (blank lines are ignored).
pub fn parse_jsonl(body: &[u8]) -> Result<Vec<Incoming>, BadBatch> {
    let mut out = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        out.push(parse_record(line).map_err(|e| at(format!("line {}", i + 1), e))?);
    }
    Ok(out)
}

/// Each LogRecord body of an OTLP request is one record's exact JSON line.
pub fn parse_otlp(body: &[u8]) -> Result<Vec<Incoming>, BadBatch> {
    mesh_audit::deliver::encode_otlp::record_lines(body)
        .map_err(BadBatch::Malformed)?
        .into_iter()
        .enumerate()
        .map(|(i, line)| parse_record(&line).map_err(|e| at(format!("log record {i}"), e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "0123456789abcdef0123456789abcdef";

    fn line(emitter: &str, seq: u64) -> Vec<u8> {
        format!("{{\"kind\":\"request\",\"ts\":\"2026-01-01T00:00:00.000000Z\",\"emitter\":\"{emitter}\",\"seq\":{seq}}}")
            .into_bytes()
    }

    #[test]
    fn a_record_keeps_its_exact_bytes_without_surrounding_whitespace() {
        let mut padded = line(E, 2);
        padded.extend_from_slice(b" \r\n\n");
        let r = parse_record(&padded).unwrap();
        assert_eq!(r.line, line(E, 2));
        assert_eq!(r.emitter.to_string(), E);
        let body = [line(E, 1), b"".to_vec(), line(E, 2)].join(&b'\n');
        assert_eq!(parse_jsonl(&body).unwrap().len(), 2);
    }

    #[test]
    fn bad_records_name_the_line_and_what_is_wrong() {
        let body = [line(E, 1), b"{\"kind\":\"request\",\"ts\":\"t\"}".to_vec()].join(&b'\n');
        assert_eq!(
            parse_jsonl(&body).unwrap_err(),
            BadBatch::Malformed("line 2: record has no emitter".into())
        );
        assert_eq!(
            parse_record(&line("0123456789ABCDEF0123456789abcdef", 1)).unwrap_err(),
            BadBatch::Invalid("emitter is not 32 lowercase hex digits".into())
        );
        assert_eq!(
            parse_record(&line("\\u001b[2Jx", 1)).unwrap_err(),
            BadBatch::Invalid("emitter is not 32 lowercase hex digits".into())
        );
        assert_eq!(
            parse_record(b"[\"request\"]").unwrap_err(),
            BadBatch::Malformed("not a JSON object".into())
        );
        let mut two = line(E, 1);
        two.extend_from_slice(b" {}");
        assert!(
            matches!(parse_record(&two), Err(BadBatch::Malformed(m)) if m.starts_with("not an audit record"))
        );
    }
}
