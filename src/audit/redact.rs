//! Redaction of captured headers, the path, the query string and JWT
//! claims (SPEC §3, §3.1).
//!
//! Actions: `mask` → `[REDACTED]` (`authorization` and `proxy-authorization`
//! keep a well-known scheme: `Bearer [REDACTED]`), `drop` → the field is
//! omitted, `hash` → `hmac-sha256:` + hex of the first 16 bytes of
//! HMAC-SHA256(key, value), `keep` → the value as sent, no default applied.
//! Every field changed is named once in the record's `redacted` list.
//!
//! Secure by default, in layers, each a module:
//! - `name`: headers and parameters named like credentials are masked
//!   (normalised pattern matching); explicit rules win over defaults;
//! - `params`, `query`, `path`: query, fragment and path parameters, and the
//!   path segments of `redact.path_segments`;
//! - `url`: headers that carry URLs get the path, query and fragment rules;
//! - `detect`: values shaped like well-known credentials are masked in
//!   every captured header, parameter and path segment, whatever they are
//!   called.
//!
//! Claims have no defaults.

use super::record::Fields;
use crate::config::{Action, Redact};
use crate::digest::HmacKey;
use crate::host::Headers;
use name::{Kind, Rule, Scratch, Verdict};
use params::Notes;
use std::cell::RefCell;

mod detect;
mod name;
mod params;
mod path;
mod query;
mod url;

pub use crate::config::Glob;
pub use url::URL_HEADERS;

/// Authorization schemes kept in front of `[REDACTED]` (IANA HTTP
/// Authentication Scheme registry plus AWS SigV4). Any other first word is
/// masked with the rest: it may itself be the credential.
const KNOWN_SCHEMES: &[&str] = &[
    "basic",
    "bearer",
    "digest",
    "dpop",
    "gnap",
    "hoba",
    "mutual",
    "negotiate",
    "ntlm",
    "oauth",
    "privatetoken",
    "concealed",
    "scram-sha-1",
    "scram-sha-256",
    "vapid",
    "aws4-hmac-sha256",
];

/// Headers whose masked form keeps the authentication scheme.
const SCHEME_HEADERS: &[&str] = &["authorization", "proxy-authorization"];

pub const MASK: &str = "[REDACTED]";
const HASH_PREFIX: &str = "hmac-sha256:";

/// How one captured header is redacted, decided once per configuration.
#[derive(Clone, Copy, Debug)]
struct HeaderPlan {
    /// The action of an explicit rule or a default; `None`: only URL and
    /// shape redaction apply.
    action: Option<Action>,
    /// Masking keeps the authentication scheme.
    scheme: bool,
    /// The header carries a URL.
    form: Option<url::Form>,
}

/// Redaction rules, resolved once at configuration time.
pub struct Redactor {
    /// Explicit header rules, names normalised.
    headers: Vec<Rule>,
    /// Explicit query (and path) parameter rules, names normalised.
    params: Vec<Rule>,
    /// Claim name (case-sensitive, as JWT claim names are) → action.
    claims: Vec<(String, Action)>,
    /// `redact.path_segments`.
    globs: Vec<Glob>,
    /// HMAC state with the key already absorbed; cloned per value.
    mac: Option<HmacKey>,
    /// Header plans per list of captured names: the lists come from the
    /// configuration, so each is planned on its first request only.
    plans: RefCell<Vec<(Vec<String>, Vec<HeaderPlan>)>>,
    /// Decoding and normalising buffers, kept from one request to the next.
    scratch: RefCell<Scratch>,
}

/// Scratch buffers are kept between requests up to this many bytes.
const KEPT_SCRATCH_BYTES: usize = 16 * 1024;

/// Plans are kept for this many header lists (request and response).
const PLANNED_LISTS: usize = 4;

fn rules(explicit: &[(String, Action)]) -> Vec<Rule> {
    explicit.iter().map(|(n, a)| Rule::new(n, *a)).collect()
}

/// Appends `prefix.name` to `redacted` unless it is already there.
fn note(redacted: &mut Vec<String>, prefix: &str, name: &str) {
    let seen = redacted.iter().any(|r| {
        r.len() == prefix.len() + 1 + name.len()
            && r.starts_with(prefix)
            && r.as_bytes()[prefix.len()] == b'.'
            && r.ends_with(name)
    });
    if !seen {
        let mut s = String::with_capacity(prefix.len() + 1 + name.len());
        s.push_str(prefix);
        s.push('.');
        s.push_str(name);
        redacted.push(s);
    }
}

/// `Bearer [REDACTED]` when `value` starts with a known scheme, else `[REDACTED]`.
fn mask_keeping_scheme(value: &[u8]) -> String {
    let trimmed = value.trim_ascii_start();
    let scheme_len = trimmed
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(0);
    let scheme = &trimmed[..scheme_len];
    if scheme_len > 0
        && KNOWN_SCHEMES
            .iter()
            .any(|k| k.as_bytes().eq_ignore_ascii_case(scheme))
    {
        let mut s = String::with_capacity(scheme_len + 1 + MASK.len());
        s.push_str(&String::from_utf8_lossy(scheme));
        s.push(' ');
        s.push_str(MASK);
        s
    } else {
        MASK.to_string()
    }
}

impl Redactor {
    /// `cfg.hash_key` is the HMAC key (already read from the environment).
    /// Configuration validation guarantees a key whenever a rule says `hash`;
    /// should one be missing anyway, `hash` degrades to `mask`, never to clear text.
    pub fn new(cfg: &Redact) -> Redactor {
        Redactor {
            headers: rules(&cfg.headers),
            params: rules(&cfg.query_params),
            claims: cfg.claims.clone(),
            globs: cfg.path_segments.clone(),
            mac: cfg.hash_key.as_deref().map(HmacKey::new),
            plans: RefCell::new(Vec::new()),
            scratch: RefCell::new(Scratch::default()),
        }
    }

    /// Runs `f` with the kept scratch buffers (fresh ones if they are in
    /// use); buffers an unusually long value grew are not kept.
    fn with_scratch<T>(&self, f: impl FnOnce(&mut Scratch) -> T) -> T {
        match self.scratch.try_borrow_mut() {
            Ok(mut s) => {
                let out = f(&mut s);
                if s.capacity() > KEPT_SCRATCH_BYTES {
                    *s = Scratch::default();
                }
                out
            }
            Err(_) => f(&mut Scratch::default()),
        }
    }

    /// `hmac-sha256:` + hex of the first 16 bytes of HMAC-SHA256(key, value),
    /// or `[REDACTED]` without a key.
    pub fn hash(&self, value: &[u8]) -> String {
        let Some(mac) = &self.mac else {
            return MASK.to_string();
        };
        let sum = mac.mac(value);
        let mut s = String::with_capacity(HASH_PREFIX.len() + 32);
        s.push_str(HASH_PREFIX);
        s.push_str(&super::hex(&sum[..16]));
        s
    }

    fn plan(&self, name: &str) -> HeaderPlan {
        let mut s = Scratch::default();
        let action = match s.examine(name.as_bytes(), &self.headers, Kind::Header) {
            Ok(f) => match f.verdict {
                Verdict::Rule(i) => Some(self.headers[i].action),
                Verdict::Default => Some(Action::Mask),
                Verdict::None => None,
            },
            // A configured header name never needs decoding; should one not
            // decode, it is treated as a credential.
            Err(_) => Some(Action::Mask),
        };
        HeaderPlan {
            action,
            scheme: SCHEME_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)),
            form: url::form_of(name),
        }
    }

    /// Runs `f` with the plans of `wanted`, planning them on first use.
    fn with_plans<T>(&self, wanted: &[String], f: impl FnOnce(&[HeaderPlan]) -> T) -> T {
        if let Ok(plans) = self.plans.try_borrow() {
            if let Some((_, p)) = plans.iter().find(|(w, _)| w.as_slice() == wanted) {
                return f(p);
            }
        }
        let planned: Vec<HeaderPlan> = wanted.iter().map(|n| self.plan(n)).collect();
        let out = f(&planned);
        if let Ok(mut plans) = self.plans.try_borrow_mut() {
            if plans.len() < PLANNED_LISTS {
                plans.push((wanted.to_vec(), planned));
            }
        }
        out
    }

    /// Captured headers (raw values; non-UTF-8 is replaced lossily) → the
    /// record's header object, in the order of `wanted` (lower-case names, as
    /// configuration guarantees; captured names match ignoring case), with
    /// the redacted field names (`<prefix>.<name>`) appended to `redacted`.
    ///
    /// A header sent several times is reported once, its values joined with
    /// `", "` in arrival order (the HTTP list form); a rule's action covers
    /// them as a whole, URL and shape redaction each value.
    pub fn headers(
        &self,
        captured: &Headers,
        wanted: &[String],
        prefix: &str,
        redacted: &mut Vec<String>,
    ) -> Fields<String> {
        self.with_plans(wanted, |plans| {
            self.with_scratch(|s| {
                let mut out: Vec<(String, String)> = Vec::with_capacity(wanted.len());
                for (i, (name, plan)) in wanted.iter().zip(plans).enumerate() {
                    if wanted[..i].iter().any(|w| w.eq_ignore_ascii_case(name)) {
                        continue;
                    }
                    let mut values = captured.values_of(name);
                    let Some(first) = values.next() else {
                        continue;
                    };
                    let value = match plan.action {
                        Some(Action::Drop) => None,
                        Some(Action::Mask) if plan.scheme => Some(mask_keeping_scheme(first)),
                        Some(Action::Mask) => Some(MASK.to_string()),
                        Some(Action::Hash) => Some(self.hash(join(first, values).as_bytes())),
                        Some(Action::Keep) => Some(join(first, values)),
                        None => {
                            let mut notes = Notes::header(redacted, prefix, name);
                            let mut v = String::with_capacity(first.len());
                            for (n, value) in std::iter::once(first).chain(values).enumerate() {
                                if n > 0 {
                                    v.push_str(", ");
                                }
                                self.header_value(plan, value, s, &mut notes, &mut v);
                            }
                            Some(v)
                        }
                    };
                    if matches!(
                        plan.action,
                        Some(Action::Drop | Action::Mask | Action::Hash)
                    ) {
                        note(redacted, prefix, name);
                    }
                    if let Some(v) = value {
                        out.push((name.clone(), v));
                    }
                }
                Fields(out)
            })
        })
    }

    /// One value of a header no rule covers: URL redaction where it carries
    /// a URL, else masked whole when it has a credential's shape.
    fn header_value(
        &self,
        plan: &HeaderPlan,
        value: &[u8],
        s: &mut Scratch,
        notes: &mut Notes,
        out: &mut String,
    ) {
        let text = crate::host::lossy(value);
        let form = plan
            .form
            .or_else(|| url::is_web_url(value).then_some(url::Form::Url));
        match form {
            Some(form) => url::redact(self, form, &text, s, notes, out),
            None if detect::find(value).is_some() => {
                out.push_str(MASK);
                notes.field();
            }
            None => out.push_str(&text),
        }
    }

    /// The request path (without `?query`) → the redacted path; path
    /// parameters are listed as `request.path.<name>`, masked segments as
    /// `request.path`.
    pub fn path(&self, raw: &str, redacted: &mut Vec<String>) -> String {
        let plain = !raw.bytes().any(|b| matches!(b, b';' | b'%' | b'+' | b'#'));
        if plain && self.globs.is_empty() && detect::find(raw.as_bytes()).is_none() {
            return raw.to_string();
        }
        let mut out = String::with_capacity(raw.len());
        let mut notes = Notes::per_name(redacted, "request.path");
        self.with_scratch(|s| path::redact(self, raw, s, &mut notes, &mut out));
        out
    }

    /// Raw query string (without `?`, with any `#fragment`) → the redacted
    /// query string; redacted parameters are named `request.query.<name>`.
    pub fn query(&self, raw: &str, redacted: &mut Vec<String>) -> String {
        // Room for one masked value: the usual query grows no further.
        let mut out = String::with_capacity(raw.len() + MASK.len());
        let mut notes = Notes::per_name(redacted, "request.query");
        self.with_scratch(|s| query::redact(self, raw, s, &mut notes, &mut out));
        out
    }

    /// Claims (already selected) → redacted claims, named `user.<claim>`.
    /// A non-string claim is hashed over its compact JSON text.
    pub fn claims(
        &self,
        claims: Fields<serde_json::Value>,
        redacted: &mut Vec<String>,
    ) -> Fields<serde_json::Value> {
        if self.claims.is_empty() {
            return claims;
        }
        let mut out = Vec::with_capacity(claims.0.len());
        for (name, value) in claims.0 {
            let action = self
                .claims
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, a)| *a);
            let value = match action {
                None | Some(Action::Keep) => Some(value),
                Some(Action::Drop) => None,
                Some(Action::Mask) => Some(serde_json::Value::String(MASK.to_string())),
                Some(Action::Hash) => Some(serde_json::Value::String(match &value {
                    serde_json::Value::String(s) => self.hash(s.as_bytes()),
                    other => self.hash(other.to_string().as_bytes()),
                })),
            };
            if action.is_some_and(|a| a != Action::Keep) {
                note(redacted, "user", &name);
            }
            if let Some(v) = value {
                out.push((name, v));
            }
        }
        Fields(out)
    }
}

/// The values of one header as a single string, joined with `", "`.
fn join<'v>(first: &'v [u8], rest: impl Iterator<Item = &'v [u8]>) -> String {
    let mut s = crate::host::lossy(first).into_owned();
    for v in rest {
        s.push_str(", ");
        s.push_str(&crate::host::lossy(v));
    }
    s
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
