//! `name=value` parameters, wherever they are: the query string, a
//! fragment, a path segment's `;name=value` parameters, a URL inside a
//! header.
//!
//! - Kept parameters are copied byte for byte (never re-encoded); a
//!   redacted one keeps its name as sent: `tok%65n=[REDACTED]`. `hash`
//!   covers the decoded value.
//! - A parameter whose name or value has a credential's shape is masked
//!   whatever it is called; when the name itself is the credential, the
//!   whole parameter becomes `[REDACTED]`.
//! - The text must parse: a bad percent escape or invalid UTF-8 after
//!   decoding, in a name or a kept value, ends parsing there. What came
//!   before is kept, the rest becomes one `[REDACTED]` and the field is
//!   listed; the raw remainder is never passed through.

use super::name::{decode_once, Kind, Malformed, Scratch, Verdict};
use super::{Redactor, MASK};
use crate::config::Action;

/// Where redactions are listed: per parameter (`request.query.token`), or
/// only as the field that holds them (`request.headers.referer`).
pub struct Notes<'a> {
    redacted: &'a mut Vec<String>,
    prefix: &'a str,
    /// The header whose value this is: everything is listed under it.
    header: Option<&'a str>,
    /// Whether anything was changed.
    pub changed: bool,
}

impl<'a> Notes<'a> {
    /// Parameters are listed as `<prefix>.<name>`, other changes as `<prefix>`.
    pub fn per_name(redacted: &'a mut Vec<String>, prefix: &'a str) -> Notes<'a> {
        Notes {
            redacted,
            prefix,
            header: None,
            changed: false,
        }
    }

    /// Every change is listed as `<prefix>.<header>`.
    pub fn header(redacted: &'a mut Vec<String>, prefix: &'a str, header: &'a str) -> Notes<'a> {
        Notes {
            redacted,
            prefix,
            header: Some(header),
            changed: false,
        }
    }

    /// A parameter called `name` was redacted.
    pub fn name(&mut self, name: &str) {
        match self.header {
            None => {
                self.changed = true;
                super::note(self.redacted, self.prefix, name);
            }
            Some(_) => self.field(),
        }
    }

    /// Something unnamed in the field was redacted.
    pub fn field(&mut self) {
        self.changed = true;
        match self.header {
            Some(h) => super::note(self.redacted, self.prefix, h),
            None => {
                if !self.redacted.iter().any(|r| r == self.prefix) {
                    self.redacted.push(self.prefix.to_string());
                }
            }
        }
    }
}

/// Output that remembers the separator to put before the next part, so a
/// dropped parameter leaves no doubled separator behind.
struct Out<'o> {
    s: &'o mut String,
    wrote: bool,
    sep: Option<char>,
}

impl Out<'_> {
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

/// The syntax of one kind of parameter list.
#[derive(Clone, Copy)]
pub struct Syntax {
    /// Separates parameters.
    pub sep: fn(u8) -> bool,
    /// Ends the value of a redacted parameter: it may run past `sep`, so a
    /// credential containing a `;` is never partly kept.
    pub value_end: fn(u8) -> bool,
}

/// A query string or fragment: `&`, and `;` because some servers still split
/// on it (a `;token=…` hidden in another parameter's value is found).
pub const QUERY: Syntax = Syntax {
    sep: |c| c == b'&' || c == b';',
    value_end: |c| c == b'&',
};

/// A path segment's parameters (`;jsessionid=…`): a redacted value runs to
/// the end of the segment.
pub const PATH: Syntax = Syntax {
    sep: |c| c == b';',
    value_end: |_| false,
};

/// Appends the redacted form of the parameter list `raw` to `out`.
pub fn redact(
    r: &Redactor,
    raw: &str,
    syntax: Syntax,
    s: &mut Scratch,
    notes: &mut Notes,
    out: &mut String,
) {
    let b = raw.as_bytes();
    let mut out = Out {
        s: out,
        wrote: false,
        sep: None,
    };
    let mut pos = 0;
    loop {
        let end = position(b, pos, syntax.sep);
        let seg = &raw[pos..end];
        let (name_raw, value_raw) = match seg.find('=') {
            Some(i) => (&seg[..i], Some(&seg[i + 1..])),
            None => (seg, None),
        };
        let Ok(facts) = s.examine(name_raw.as_bytes(), &r.params, Kind::Param) else {
            return malformed(out, notes);
        };
        let action = match facts.verdict {
            Verdict::Rule(i) => Some((r.params[i].action, r.params[i].name.as_str())),
            Verdict::Default => Some((Action::Mask, "")),
            Verdict::None => None,
        };
        let seg_end = match action {
            Some((Action::Keep, _)) => {
                out.part(&[seg]);
                end
            }
            _ if facts.is_secret => {
                out.part(&[MASK]);
                notes.field();
                redacted_end(b, end, value_raw.is_some(), syntax)
            }
            None => {
                let secret = match value_raw {
                    Some(v) => {
                        match super::name::decode(v.as_bytes(), &mut s.value, &mut s.spare) {
                            Ok(decoded) => super::detect::find(decoded).is_some(),
                            Err(Malformed) => return malformed(out, notes),
                        }
                    }
                    None => false,
                };
                if secret {
                    out.part(&[name_raw, "=", MASK]);
                    notes.name(&s.listed());
                    redacted_end(b, end, true, syntax)
                } else {
                    out.part(&[seg]);
                    end
                }
            }
            Some((action, rule_name)) => {
                let seg_end = redacted_end(b, end, value_raw.is_some(), syntax);
                let value = match value_raw {
                    Some(_) => &raw[pos + name_raw.len() + 1..seg_end],
                    None => "",
                };
                match action {
                    Action::Drop | Action::Keep => {}
                    Action::Mask => out.part(&[name_raw, "=", MASK]),
                    Action::Hash => match decode_once(value.as_bytes(), true, &mut s.value) {
                        Ok(()) => out.part(&[name_raw, "=", &r.hash(&s.value)]),
                        Err(Malformed) => return malformed(out, notes),
                    },
                }
                if rule_name.is_empty() {
                    notes.name(&s.listed());
                } else {
                    notes.name(rule_name);
                }
                seg_end
            }
        };
        if seg_end >= b.len() {
            return;
        }
        out.sep = Some(b[seg_end] as char);
        pos = seg_end + 1;
    }
}

/// Where a redacted parameter ends: its value runs to `value_end`.
fn redacted_end(b: &[u8], end: usize, has_value: bool, syntax: Syntax) -> usize {
    if has_value {
        position(b, end, syntax.value_end)
    } else {
        end
    }
}

fn malformed(mut out: Out, notes: &mut Notes) {
    out.part(&[MASK]);
    notes.field();
}

#[cfg(test)]
mod tests;
