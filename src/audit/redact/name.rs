//! Header and parameter names as a backend reads them (SPEC §3.1), and which
//! of them look like credentials.
//!
//! A name is percent-decoded (repeatedly: `%2574oken` is `token`, as a
//! backend that decodes twice sees it), then normalised: ASCII case folded,
//! `-` `.` `+` space and `_` folded to one `_`, camelCase split to
//! snake_case. `accessToken`, `Access-Token`, `access.token` and
//! `access%5Ftoken` are all `access_token`. A PHP/Rack-style name `a[b]` is
//! both `a` and `b`.
//!
//! Matching is by pattern, not by list, so a name nobody thought of
//! (`x-vault-token`, `hub.secret`) is still caught; `keep` opts out.

use crate::config::Action;

/// Rounds of percent-decoding at most: three covers every double and triple
/// encoding seen in practice, and bounds the work on hostile input.
const DECODE_ROUNDS: usize = 3;

/// A credential-looking name contains one of these (normalised) …
const CONTAINS: &[&[u8]] = &[
    b"auth",
    b"token",
    b"secret",
    b"passw",
    b"pwd",
    b"session",
    b"cookie",
    b"jwt",
    b"signature",
    b"credential",
    b"private",
    b"api_key",
    b"apikey",
];
/// … or ends in this …
const SUFFIX: &[u8] = b"_key";
/// … or, for a query or path parameter, is exactly one of these …
const PARAM_EXACT: &[&[u8]] = &[b"key", b"sig", b"code", b"state", b"assertion"];
/// … or starts with this (AWS SigV4 presigned URLs).
const PARAM_PREFIX: &[u8] = b"x_amz_";

/// Where a name comes from: parameters have the extra exact names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Header,
    Param,
}

#[derive(Debug)]
pub struct Malformed;

/// Percent-decodes `raw` once into `out` (`+` is a space when `plus`).
pub fn decode_once(raw: &[u8], plus: bool, out: &mut Vec<u8>) -> Result<(), Malformed> {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' if plus => out.push(b' '),
            b'%' => {
                let hi = raw.get(i + 1).and_then(|c| (*c as char).to_digit(16));
                let lo = raw.get(i + 2).and_then(|c| (*c as char).to_digit(16));
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => return Err(Malformed),
                }
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(())
}

/// Reusable buffers for decoding and normalising, so a request allocates
/// them once however many names it has.
#[derive(Default)]
pub struct Scratch {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
    pub spare: Vec<u8>,
    pub snake: Vec<u8>,
    pub flat: Vec<u8>,
}

/// Decodes `raw` as a backend would: once strictly (a bad escape, or
/// anything but UTF-8, is [`Malformed`]), then again while escapes remain
/// and decode. Borrows `raw` when it has nothing to decode.
pub fn decode<'a>(
    raw: &'a [u8],
    buf: &'a mut Vec<u8>,
    spare: &mut Vec<u8>,
) -> Result<&'a [u8], Malformed> {
    if !raw.iter().any(|b| *b == b'%' || *b == b'+') {
        return Ok(raw);
    }
    decode_once(raw, true, buf)?;
    if std::str::from_utf8(buf).is_err() {
        return Err(Malformed);
    }
    for _ in 1..DECODE_ROUNDS {
        if !buf.contains(&b'%') || decode_once(buf, false, spare).is_err() {
            break;
        }
        std::mem::swap(buf, spare);
    }
    Ok(buf)
}

/// What a name says about its parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameFacts {
    pub verdict: Verdict,
    /// The name itself has a credential's shape (`?eyJhbGciOi…`).
    pub is_secret: bool,
}

impl Scratch {
    /// The bytes its buffers hold on to.
    pub fn capacity(&self) -> usize {
        [
            &self.name,
            &self.value,
            &self.spare,
            &self.snake,
            &self.flat,
        ]
        .iter()
        .map(|b| b.capacity())
        .sum()
    }

    /// Decodes and normalises `raw`, classifies it against `rules` and the
    /// defaults, and scans it for credential shapes. The normalised form
    /// stays available to [`Scratch::listed`] until the next call.
    pub fn examine(
        &mut self,
        raw: &[u8],
        rules: &[Rule],
        kind: Kind,
    ) -> Result<NameFacts, Malformed> {
        let name = decode(raw, &mut self.name, &mut self.spare)?;
        let is_secret = super::detect::find(name).is_some();
        normalise_into(name, &mut self.snake, &mut self.flat);
        let forms = Forms {
            snake: &self.snake,
            flat: &self.flat,
        };
        Ok(NameFacts {
            verdict: classify(rules, forms, kind),
            is_secret,
        })
    }

    /// The name a default redaction of the last examined name is listed under.
    /// It is the snake form unless only the flat one looks like a
    /// credential (`ToKeN` is listed as `token`, not `to_ke_n`).
    pub fn listed(&self) -> String {
        let credential =
            |form: &[u8]| components(form).any(|c| credential_component(c, Kind::Param));
        if !credential(&self.snake) && credential(&self.flat) {
            listed(&self.flat)
        } else {
            listed(&self.snake)
        }
    }

    /// The credential shape of `raw` (a value), decoded; a value that does
    /// not decode is scanned as it is.
    pub fn value_shape(&mut self, raw: &[u8]) -> Option<super::detect::Shape> {
        match decode(raw, &mut self.value, &mut self.spare) {
            Ok(v) => super::detect::find(v),
            Err(Malformed) => super::detect::find(raw),
        }
    }
}

/// The two normalised forms of one name.
#[derive(Clone, Copy)]
pub struct Forms<'a> {
    pub snake: &'a [u8],
    pub flat: &'a [u8],
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'+' | b' ' | b'_')
}

fn push_separator(out: &mut Vec<u8>) {
    if out.last() != Some(&b'_') {
        out.push(b'_');
    }
}

pub fn normalise_into(name: &[u8], snake: &mut Vec<u8>, flat: &mut Vec<u8>) {
    snake.clear();
    flat.clear();
    for (i, &b) in name.iter().enumerate() {
        if is_separator(b) {
            push_separator(snake);
            push_separator(flat);
            continue;
        }
        if b.is_ascii_uppercase() && i > 0 {
            let prev = name[i - 1];
            let next_lower = name.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                push_separator(snake);
            }
        }
        let lower = b.to_ascii_lowercase();
        snake.push(lower);
        flat.push(lower);
    }
}

/// The components of `a[b][c]`: `a`, `b`, `c` (empty ones skipped).
fn components(name: &[u8]) -> impl Iterator<Item = &[u8]> {
    name.split(|b| *b == b'[' || *b == b']')
        .filter(|c| !c.is_empty())
}

/// Whether `c` contains one of [`CONTAINS`]: one pass, and a byte no
/// pattern starts with costs one comparison (this runs for every parameter).
fn contains_pattern(c: &[u8]) -> bool {
    (0..c.len()).any(|i| {
        matches!(c[i], b'a' | b't' | b's' | b'p' | b'c' | b'j')
            && CONTAINS
                .iter()
                .any(|p| p[0] == c[i] && c[i..].starts_with(p))
    })
}

/// Whether one name component looks like a credential.
fn credential_component(c: &[u8], kind: Kind) -> bool {
    if contains_pattern(c) || c.ends_with(SUFFIX) {
        return true;
    }
    kind == Kind::Param && (PARAM_EXACT.contains(&c) || c.starts_with(PARAM_PREFIX))
}

/// An explicit rule, its name normalised once at configuration time.
pub struct Rule {
    /// The name listed in `redacted`: the rule's name, normalised.
    pub name: String,
    snake: Vec<u8>,
    flat: Vec<u8>,
    pub action: Action,
}

impl Rule {
    pub fn new(name: &str, action: Action) -> Rule {
        let (mut snake, mut flat) = (Vec::new(), Vec::new());
        normalise_into(name.as_bytes(), &mut snake, &mut flat);
        Rule {
            name: String::from_utf8_lossy(&snake).into_owned(),
            snake,
            flat,
            action,
        }
    }

    fn matches(&self, snake: &[u8], flat: &[u8]) -> bool {
        self.snake == snake || self.flat == flat
    }
}

/// What to do with a name, and whether an explicit rule said so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The explicit rule at this index of the rule list.
    Rule(usize),
    /// A default: masked.
    Default,
    /// Nothing matched: the name is ordinary.
    None,
}

/// How strongly an action hides a value, to choose between components.
fn strength(a: Action) -> u8 {
    match a {
        Action::Drop => 3,
        Action::Mask => 2,
        Action::Hash => 1,
        Action::Keep => 0,
    }
}

/// Explicit rules first: a rule for the whole name decides. Otherwise each
/// component (`user` and `password` of `user[password]`) is decided on its
/// own, by its explicit rule or else the default patterns, and the strongest
/// redaction of any component wins; a `keep` only ever covers the
/// component it names.
pub fn classify(rules: &[Rule], forms: Forms<'_>, kind: Kind) -> Verdict {
    if let Some(i) = rules
        .iter()
        .position(|r| r.matches(forms.snake, forms.flat))
    {
        return Verdict::Rule(i);
    }
    let mut best = Verdict::None;
    let mut best_strength = 0;
    for (snake, flat) in components(forms.snake).zip(components(forms.flat)) {
        let verdict = match rules.iter().position(|r| r.matches(snake, flat)) {
            Some(i) => Verdict::Rule(i),
            // The forms differ only where camelCase was split: same length, same text.
            None if credential_component(snake, kind)
                || (flat.len() != snake.len() && credential_component(flat, kind)) =>
            {
                Verdict::Default
            }
            None => continue,
        };
        let s = match verdict {
            Verdict::Rule(i) => strength(rules[i].action),
            _ => strength(Action::Mask),
        };
        if s > best_strength {
            best = verdict;
            best_strength = s;
        }
    }
    best
}

/// The name a default redaction is listed under: the snake form without an
/// array suffix (`api_key[]` and `api_key[0]` are `api_key`).
pub fn listed(snake: &[u8]) -> String {
    let mut end = snake.len();
    while end > 0 && snake[end - 1] == b']' {
        let Some(open) = snake[..end].iter().rposition(|b| *b == b'[') else {
            break;
        };
        if !snake[open + 1..end - 1].iter().all(u8::is_ascii_digit) || open == 0 {
            break;
        }
        end = open;
    }
    String::from_utf8_lossy(&snake[..end]).into_owned()
}

#[cfg(test)]
mod tests;
