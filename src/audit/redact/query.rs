//! Query-string redaction.
//!
//! - Parameters are separated by `&`, and also by `;` because some servers
//!   still split on it (a `;token=…` hidden in another parameter's value is
//!   found). The value of a parameter that gets redacted runs to the next `&`,
//!   so a credential containing a literal `;` is never partly kept.
//! - Names are compared after percent-decoding (`+` is a space), ignoring
//!   ASCII case, and also without an array suffix (`key[]`, `token[0]`).
//!   Every occurrence of a repeated parameter is redacted.
//! - Kept parameters are copied byte for byte (never re-encoded); a redacted
//!   one keeps its name as sent: `tok%65n=[REDACTED]`. `hash` covers the
//!   decoded value.
//! - The string must parse: a bad percent escape or invalid UTF-8 after
//!   decoding, in a name or a kept value, ends parsing there. What came before
//!   is kept, the rest becomes one `[REDACTED]`, and `request.query` is listed
//!   in `redacted`; the raw remainder is never passed through.

use super::{lookup, note, Redactor, MASK};
use crate::config::Action;

struct Malformed;

/// Percent-decodes `raw` (`+` → space) into UTF-8, borrowing when nothing is encoded.
fn decode<'a>(raw: &'a str, scratch: &'a mut Vec<u8>) -> Result<&'a str, Malformed> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(raw);
    }
    scratch.clear();
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => scratch.push(b' '),
            b'%' => {
                let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16));
                let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16));
                match (hi, lo) {
                    (Some(h), Some(l)) => scratch.push((h * 16 + l) as u8),
                    _ => return Err(Malformed),
                }
                i += 2;
            }
            c => scratch.push(c),
        }
        i += 1;
    }
    std::str::from_utf8(scratch).map_err(|_| Malformed)
}

/// The rule for a decoded parameter name, trying it without an array suffix too.
fn rule<'r>(rules: &'r [(String, Action)], name: &str) -> Option<(&'r str, Action)> {
    lookup(rules, name).or_else(|| {
        let open = name.find('[')?;
        (open > 0 && name.ends_with(']')).then(|| lookup(rules, &name[..open]))?
    })
}

/// Accumulates the output, remembering the separator to put before the next part.
struct Out {
    s: String,
    wrote: bool,
    sep: Option<char>,
}

impl Out {
    fn part(&mut self, pieces: &[&str]) {
        if self.wrote {
            if let Some(c) = self.sep {
                self.s.push(c);
            }
        }
        for p in pieces {
            self.s.push_str(p);
        }
        self.wrote = true;
    }
}

fn position(b: &[u8], from: usize, stop: impl Fn(u8) -> bool) -> usize {
    b[from..]
        .iter()
        .position(|c| stop(*c))
        .map_or(b.len(), |i| from + i)
}

pub(super) fn redact(r: &Redactor, raw: &str, redacted: &mut Vec<String>) -> String {
    let b = raw.as_bytes();
    let mut out = Out {
        s: String::with_capacity(raw.len()),
        wrote: false,
        sep: None,
    };
    let mut scratch = Vec::new();
    let mut pos = 0;
    loop {
        let end = position(b, pos, |c| c == b'&' || c == b';');
        let seg = &raw[pos..end];
        let (name_raw, value_raw) = match seg.find('=') {
            Some(i) => (&seg[..i], Some(&seg[i + 1..])),
            None => (seg, None),
        };
        let found = match decode(name_raw, &mut scratch) {
            Ok(name) => rule(&r.query, name),
            Err(Malformed) => return malformed(out, redacted),
        };
        let seg_end = match found {
            None => {
                if let Some(v) = value_raw {
                    if decode(v, &mut scratch).is_err() {
                        return malformed(out, redacted);
                    }
                }
                out.part(&[seg]);
                end
            }
            Some((rule_name, action)) => {
                let (seg_end, value) = match value_raw {
                    Some(_) => {
                        let amp = position(b, end, |c| c == b'&');
                        (amp, &raw[pos + name_raw.len() + 1..amp])
                    }
                    None => (end, ""),
                };
                match action {
                    Action::Drop => {}
                    Action::Mask => out.part(&[name_raw, "=", MASK]),
                    Action::Hash => match decode(value, &mut scratch) {
                        Ok(v) => out.part(&[name_raw, "=", &r.hash(v.as_bytes())]),
                        Err(Malformed) => return malformed(out, redacted),
                    },
                }
                note(redacted, "request.query", rule_name);
                seg_end
            }
        };
        if seg_end >= b.len() {
            return out.s;
        }
        out.sep = Some(b[seg_end] as char);
        pos = seg_end + 1;
    }
}

fn malformed(mut out: Out, redacted: &mut Vec<String>) -> String {
    out.part(&[MASK]);
    if !redacted.iter().any(|r| r == "request.query") {
        redacted.push("request.query".to_string());
    }
    out.s
}

#[cfg(test)]
mod tests;
