//! `redact.path_segments` patterns, validated: glob-style, matched segment
//! by segment against a path's leading segments after percent-decoding (no
//! regex engine: a pattern is a few literal comparisons):
//! - a literal segment matches itself;
//! - a segment with `*` (`*`, `tmp-*`) matches one non-empty segment, and
//!   the segment it matches is masked;
//! - `**` matches any number of segments, masking none.
//!
//! `/reset/*` masks the token of `/reset/<token>` and of
//! `/reset/<token>/confirm`; `/**/keys/*` masks the segment after any `keys`.
//! The path redaction (`audit::redact::path`) applies them.

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
    pub(crate) fn mark(&self, path: &[&str], mask: &mut [bool]) -> bool {
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
