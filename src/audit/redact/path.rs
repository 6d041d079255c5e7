//! The path: `;name=value` path parameters (`/login;jsessionid=…`) redacted
//! like query parameters, segments users know to be secret
//! (`redact.path_segments`), and segments shaped like credentials.
//!
//! Patterns are glob-style, matched segment by segment against the path's
//! leading segments after percent-decoding (no regex engine: a pattern is
//! a few literal comparisons):
//! - a literal segment matches itself;
//! - a segment with `*` (`*`, `tmp-*`) matches one non-empty segment, and
//!   the segment it matches is masked;
//! - `**` matches any number of segments, masking none.
//!
//! `/reset/*` masks the token of `/reset/<token>` and of
//! `/reset/<token>/confirm`; `/**/keys/*` masks the segment after any `keys`.

use super::detect::Shape;
use super::name::{decode_once, Scratch};
use super::params::{self, Notes, PATH, QUERY};
use super::{Redactor, MASK};
use crate::config::Glob;

/// Which segments of `raw` (a path without query) the patterns mask.
fn glob_marks(globs: &[Glob], raw: &str) -> Vec<bool> {
    let decoded: Vec<String> = raw
        .split('/')
        .map(|seg| {
            let main = seg.split(';').next().unwrap_or_default();
            let mut buf = Vec::new();
            match decode_once(main.as_bytes(), false, &mut buf) {
                Ok(()) => String::from_utf8(buf).unwrap_or_else(|_| main.to_string()),
                Err(_) => main.to_string(),
            }
        })
        .collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).skip(1).collect();
    let mut marks = vec![false; segments.len()];
    for g in globs {
        g.mark(&segments, &mut marks);
    }
    // Index 0 is the empty text before the leading `/`.
    let mut all = vec![false];
    all.extend(marks);
    all
}

/// Appends the redacted `raw` path (up to `?`; a `#fragment` included) to `out`.
pub fn redact(r: &Redactor, raw: &str, s: &mut Scratch, notes: &mut Notes, out: &mut String) {
    match raw.split_once('#') {
        Some((path, fragment)) => {
            redact_segments(r, path, true, s, notes, out);
            out.push('#');
            redact_fragment(r, fragment, s, notes, out);
        }
        None => redact_segments(r, raw, true, s, notes, out),
    }
}

/// Appends the redacted segments of `raw` to `out`; `globs` says whether
/// `redact.path_segments` applies (it does not to a fragment's route).
pub fn redact_segments(
    r: &Redactor,
    raw: &str,
    globs: bool,
    s: &mut Scratch,
    notes: &mut Notes,
    out: &mut String,
) {
    let marks = match globs && !r.globs.is_empty() && raw.starts_with('/') {
        true => glob_marks(&r.globs, raw),
        false => Vec::new(),
    };
    for (i, seg) in raw.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let (main, path_params) = match seg.split_once(';') {
            Some((m, p)) => (m, Some(p)),
            None => (seg, None),
        };
        if marks.get(i).copied().unwrap_or(false) {
            out.push_str(MASK);
            notes.field();
        } else {
            match s.value_shape(main.as_bytes()) {
                // A PEM key's body follows its header, slashes and all.
                Some(Shape::PrivateKey) => {
                    out.push_str(MASK);
                    notes.field();
                    return;
                }
                Some(_) => {
                    out.push_str(MASK);
                    notes.field();
                }
                None => out.push_str(main),
            }
        }
        if let Some(p) = path_params {
            out.push(';');
            params::redact(r, p, PATH, s, notes, out);
        }
    }
}

/// Appends the redacted `fragment` (the text after `#`) to `out`: a route
/// and a query, a query, or one word masked only when it has a credential's
/// shape (see the `query` module).
pub fn redact_fragment(
    r: &Redactor,
    raw: &str,
    s: &mut Scratch,
    notes: &mut Notes,
    out: &mut String,
) {
    if let Some((route, query)) = raw.split_once('?') {
        redact_segments(r, route, false, s, notes, out);
        out.push('?');
        params::redact(r, query, QUERY, s, notes, out);
    } else if raw.contains('=') {
        params::redact(r, raw, QUERY, s, notes, out);
    } else if s.value_shape(raw.as_bytes()).is_some() {
        out.push_str(MASK);
        notes.field();
    } else {
        out.push_str(raw);
    }
}

#[cfg(test)]
mod tests;
