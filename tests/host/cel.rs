//! Envoy's `expr_create` / `expr_evaluate` foreign functions, for the one
//! shape of CEL expression mesh-audit compiles: a list whose elements are
//! guarded reads, `has(a.b) ? a.b : b'\xff'` or
//! `'name' in request.headers ? request.headers['name'] : b'\xff'` (or
//! `response.headers`). Anything else is refused as Envoy refuses what it
//! cannot parse. Evaluation answers from the emulator's properties and
//! header maps and serialises the list as Envoy 1.40 does: pairs whose keys
//! are the elements.

use super::state::{map, Pairs, State};

/// What each element of a compiled expression reads.
#[derive(Clone, Debug, PartialEq)]
pub enum Elem {
    Property(Vec<u8>),
    Header(i32, String),
}

const ABSENT: &[u8] = b"\xff";

fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '\'' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Splits at top-level ", " (not inside quotes).
fn split(list: &str) -> Vec<String> {
    let (mut parts, mut cur, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in list.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '\'' {
            quoted = !quoted;
        } else if c == ',' && !quoted {
            parts.push(std::mem::take(&mut cur).trim().to_string());
            continue;
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        parts.push(cur.trim().to_string());
    }
    parts
}

fn element(e: &str) -> Option<Elem> {
    let (cond, rest) = e.split_once(" ? ")?;
    let (then, other) = rest.rsplit_once(" : ")?;
    if other != "b'\\xff'" {
        return None;
    }
    if let Some(path) = cond.strip_prefix("has(").and_then(|c| c.strip_suffix(')')) {
        let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if then != path || !path.split('.').all(ident) {
            return None;
        }
        return Some(Elem::Property(path.replace('.', "\0").into_bytes()));
    }
    let (name, map_expr) = cond.split_once(" in ")?;
    let which = match map_expr {
        "request.headers" => map::REQUEST_HEADERS,
        "response.headers" => map::RESPONSE_HEADERS,
        _ => return None,
    };
    let name_text = unquote(name)?;
    if then != format!("{map_expr}[{name}]") {
        return None;
    }
    Some(Elem::Header(which, name_text))
}

/// Compiles `expr`, or `None` for anything but mesh-audit's shape.
pub fn compile(expr: &str) -> Option<Vec<Elem>> {
    let inner = expr.trim().strip_prefix('[')?.strip_suffix(']')?;
    split(inner).iter().map(|e| element(e)).collect()
}

fn header(pairs: &Pairs, name: &str) -> Option<Vec<u8>> {
    let values: Vec<&[u8]> = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_slice()).collect();
    (!values.is_empty()).then(|| values.join(&b','))
}

/// Evaluates `elems` against the current request's state.
pub fn evaluate(state: &State, elems: &[Elem]) -> Vec<u8> {
    let values: Vec<Vec<u8>> = elems
        .iter()
        .map(|e| {
            let v = match e {
                Elem::Property(path) => state.properties.get(path).cloned(),
                Elem::Header(m, name) => state.maps.get(m).and_then(|p| header(p, name)),
            };
            v.unwrap_or_else(|| ABSENT.to_vec())
        })
        .collect();
    let mut out = (values.len() as u32).to_le_bytes().to_vec();
    for v in &values {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    for v in &values {
        out.extend_from_slice(v);
        out.extend_from_slice(&[0, 0]);
    }
    out
}
