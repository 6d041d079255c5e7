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
use super::params::{self, Notes, PATH};
use super::{query, Redactor, MASK};

/// At most this many `**` per pattern: each one multiplies the matching work.
const MAX_ANY: usize = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Literal(String),
    /// Has a `*`; a segment it matches is masked.
    Secret(String),
    /// `**`.
    Any,
}

/// One `redact.path_segments` pattern, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    source: String,
    segments: Vec<Seg>,
}

impl Glob {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(pattern: &str) -> Result<Glob, String> {
        let Some(body) = pattern.strip_prefix('/') else {
            return Err(format!("\"{pattern}\" must start with /"));
        };
        if pattern.bytes().any(|b| matches!(b, b'?' | b'#' | b';')) {
            return Err(format!(
                "\"{pattern}\" may not contain ?, # or ; (patterns match path segments only)"
            ));
        }
        let mut segments = Vec::new();
        for seg in body.split('/') {
            segments.push(match seg {
                "" => return Err(format!("\"{pattern}\" has an empty segment")),
                "**" => Seg::Any,
                s if s.contains("**") => {
                    return Err(format!("\"{pattern}\": ** must be a whole segment"))
                }
                s if s.contains('*') => Seg::Secret(s.to_string()),
                s => Seg::Literal(s.to_string()),
            });
        }
        if !segments.iter().any(|s| matches!(s, Seg::Secret(_))) {
            return Err(format!(
                "\"{pattern}\" masks nothing: put a * where the secret segment is (e.g. /reset/*)"
            ));
        }
        if segments.iter().filter(|s| **s == Seg::Any).count() > MAX_ANY {
            return Err(format!("\"{pattern}\" has more than {MAX_ANY} **"));
        }
        Ok(Glob {
            source: pattern.to_string(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Sets `mask[i]` for each path segment `i` this pattern masks.
    fn mark(&self, path: &[&str], mask: &mut [bool]) -> bool {
        matches(&self.segments, path, 0, mask)
    }
}

fn matches(pattern: &[Seg], path: &[&str], at: usize, mask: &mut [bool]) -> bool {
    let Some((first, rest)) = pattern.split_first() else {
        return true;
    };
    match first {
        Seg::Any => (at..=path.len()).any(|skip| matches(rest, path, skip, mask)),
        Seg::Literal(lit) => {
            path.get(at) == Some(&lit.as_str()) && matches(rest, path, at + 1, mask)
        }
        Seg::Secret(glob) => {
            let hit = path
                .get(at)
                .is_some_and(|seg| !seg.is_empty() && wildcard(glob.as_bytes(), seg.as_bytes()));
            if hit && matches(rest, path, at + 1, mask) {
                mask[at] = true;
                return true;
            }
            false
        }
    }
}

/// `*` matches any run of bytes; everything else matches itself.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

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
            query::redact_fragment(r, fragment, s, notes, out);
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

#[cfg(test)]
mod tests;
