//! Headers whose value is a URL (SPEC §3.1): `referer`, `location`,
//! `content-location`, `refresh`, `x-envoy-original-path`, `x-original-url`,
//! `x-forwarded-uri`, `x-rewrite-url`, `forwarded`, and any captured header
//! whose value is an absolute `http(s)://` URL.
//!
//! Their path, query and fragment get the same redaction as the request's
//! own; a URL's user-info (`https://user:pass@host/`) is always masked. The
//! header is listed once, as `<prefix>.<name>`, when anything changed.

use super::name::{Kind, Scratch, Verdict};
use super::params::{self, Notes, QUERY};
use super::{path, Redactor, MASK};

/// Headers that carry a URL or a path, lower-case.
pub const URL_HEADERS: &[&str] = &[
    "referer",
    "location",
    "content-location",
    "refresh",
    "x-envoy-original-path",
    "x-original-url",
    "x-forwarded-uri",
    "x-rewrite-url",
    "forwarded",
];

/// How to read a URL-valued header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// The value is a URL or a path.
    Url,
    /// `5; url=https://…` (`refresh`).
    Refresh,
    /// `for=…;host=…;proto=…, for=…` (RFC 7239).
    Forwarded,
}

/// The form of header `name` (lower-case), if it is URL-valued by name.
pub fn form_of(name: &str) -> Option<Form> {
    match name {
        "refresh" => Some(Form::Refresh),
        "forwarded" => Some(Form::Forwarded),
        n if URL_HEADERS.contains(&n) => Some(Form::Url),
        _ => None,
    }
}

/// Whether `value` starts like an absolute web URL, whatever header holds it.
pub fn is_web_url(value: &[u8]) -> bool {
    let starts = |scheme: &[u8]| {
        value
            .get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    };
    starts(b"http://") || starts(b"https://")
}

/// Appends the redacted header value to `out`.
pub fn redact(
    r: &Redactor,
    form: Form,
    raw: &str,
    s: &mut Scratch,
    notes: &mut Notes,
    out: &mut String,
) {
    match form {
        Form::Url => redact_url(r, raw, s, notes, out),
        Form::Refresh => redact_refresh(r, raw, s, notes, out),
        Form::Forwarded => redact_forwarded(r, raw, s, notes, out),
    }
}

/// The length of `scheme://` at the start of `raw`, if it has one.
fn scheme_len(raw: &str) -> Option<usize> {
    let colon = raw.find("://")?;
    let scheme = &raw.as_bytes()[..colon];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some(colon + 3)
}

/// A URL, absolute (`https://host/p?q#f`) or a path (`/p?q#f`).
pub fn redact_url(r: &Redactor, raw: &str, s: &mut Scratch, notes: &mut Notes, out: &mut String) {
    let mut rest = raw;
    if let Some(len) = scheme_len(raw) {
        out.push_str(&raw[..len]);
        let after = &raw[len..];
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let authority = &after[..end];
        let host = match authority.rfind('@') {
            Some(at) => {
                out.push_str(MASK);
                out.push('@');
                notes.field();
                &authority[at + 1..]
            }
            None => authority,
        };
        if s.value_shape(host.as_bytes()).is_some() {
            out.push_str(MASK);
            notes.field();
        } else {
            out.push_str(host);
        }
        rest = &after[end..];
    }
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (rest, None),
    };
    let (p, q) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    path::redact_segments(r, p, true, s, notes, out);
    if let Some(q) = q {
        out.push('?');
        params::redact(r, q, QUERY, s, notes, out);
    }
    if let Some(f) = fragment {
        out.push('#');
        path::redact_fragment(r, f, s, notes, out);
    }
}

/// `<seconds>; url=<URL>` (the URL may be quoted), or `<seconds>; <URL>`.
fn redact_refresh(r: &Redactor, raw: &str, s: &mut Scratch, notes: &mut Notes, out: &mut String) {
    let lower = raw.to_ascii_lowercase();
    let start = match (lower.find("url="), raw.find(';')) {
        (Some(i), _) => i + 4,
        (None, Some(i)) => i + 1 + (raw[i + 1..].len() - raw[i + 1..].trim_start().len()),
        (None, None) => {
            whole_value(raw, s, notes, out);
            return;
        }
    };
    out.push_str(&raw[..start]);
    quoted(&raw[start..], out, |inner, out| {
        redact_url(r, inner, s, notes, out)
    });
}

/// Calls `f` on the text inside matching quotes (`'…'` or `"…"`), or on all of it.
fn quoted(value: &str, out: &mut String, f: impl FnOnce(&str, &mut String)) {
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            out.push(q);
            f(&value[1..value.len() - 1], out);
            out.push(q);
            return;
        }
    }
    f(value, out)
}

/// `forwarded`: pairs separated by `;` and `,`, values tokens or quoted
/// strings. A pair named like a credential, or whose value has a
/// credential's shape, is masked; a value holding a path or URL is
/// redacted as one.
fn redact_forwarded(r: &Redactor, raw: &str, s: &mut Scratch, notes: &mut Notes, out: &mut String) {
    let b = raw.as_bytes();
    let mut pos = 0;
    while pos < b.len() {
        let end = pair_end(b, pos);
        let pair = &raw[pos..end];
        match pair.split_once('=') {
            Some((name, value)) => {
                let masked = match s.examine(name.trim().as_bytes(), &r.params, Kind::Param) {
                    Ok(f) => {
                        f.is_secret
                            || match f.verdict {
                                Verdict::Rule(i) => {
                                    r.params[i].action != crate::config::Action::Keep
                                }
                                Verdict::Default => true,
                                Verdict::None => false,
                            }
                    }
                    Err(_) => false,
                };
                let inner = value.trim_matches('"');
                if masked && name_is_secret(r, name, s) {
                    out.push_str(MASK);
                    notes.field();
                } else if masked || s.value_shape(inner.as_bytes()).is_some() {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(MASK);
                    notes.field();
                } else if inner.contains(['/', '?', '#']) {
                    out.push_str(name);
                    out.push('=');
                    quoted(value, out, |inner, out| redact_url(r, inner, s, notes, out));
                } else {
                    out.push_str(pair);
                }
            }
            None => whole_value(pair, s, notes, out),
        }
        if end < b.len() {
            out.push(b[end] as char);
        }
        pos = end + 1;
    }
}

/// Whether a pair's name itself has a credential's shape.
fn name_is_secret(r: &Redactor, name: &str, s: &mut Scratch) -> bool {
    s.examine(name.trim().as_bytes(), &r.params, Kind::Param)
        .is_ok_and(|f| f.is_secret)
}

/// The end of the pair at `pos`: the next `;` or `,` outside quotes.
fn pair_end(b: &[u8], pos: usize) -> usize {
    let mut in_quotes = false;
    let mut i = pos;
    while i < b.len() {
        match b[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b';' | b',' if !in_quotes => return i,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// A value that is not a URL: masked whole when it has a credential's shape.
fn whole_value(raw: &str, s: &mut Scratch, notes: &mut Notes, out: &mut String) {
    if s.value_shape(raw.as_bytes()).is_some() {
        out.push_str(MASK);
        notes.field();
    } else {
        out.push_str(raw);
    }
}

#[cfg(test)]
mod tests;
