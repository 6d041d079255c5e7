//! Redaction of captured headers, the query string and JWT claims (SPEC §3).
//!
//! Actions: `mask` → `[REDACTED]` (`authorization` and `proxy-authorization`
//! keep a well-known scheme: `Bearer [REDACTED]`), `drop` → the field is
//! omitted, `hash` → `hmac-sha256:` + hex of the first 16 bytes of
//! HMAC-SHA256(key, value). Every field masked, dropped or hashed is named
//! once in the record's `redacted` list.
//!
//! Secure by default: without an explicit rule, the headers in
//! [`DEFAULT_HEADERS`] and the query parameters in [`DEFAULT_QUERY_PARAMS`]
//! are masked. An explicit rule for one of them replaces the default (it may
//! choose `hash` or `drop`). Claims have no defaults.

use super::record::Fields;
use crate::config::{Action, Redact};
use crate::digest::HmacKey;

mod query;

/// Headers masked when captured without an explicit rule.
pub const DEFAULT_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// Query parameters masked without an explicit rule. A parameter is "named
/// like" one of these when its name, after percent-decoding (`+` as space),
/// equals it ignoring ASCII case, optionally followed by a PHP/Rack-style
/// array suffix (`api_key[]`, `token[0]`). Nothing is matched by substring:
/// `monkey`, `keyword` or `tokens` are kept.
pub const DEFAULT_QUERY_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "session_token",
    "private_token",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "key",
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-security-token",
    "x-goog-signature",
    "jsessionid",
];

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

/// Redaction rules, resolved once at configuration time.
pub struct Redactor {
    /// Lower-cased header name → action; explicit rules, then uncovered defaults.
    headers: Vec<(String, Action)>,
    /// Lower-cased parameter name → action; explicit rules, then uncovered defaults.
    query: Vec<(String, Action)>,
    /// Claim name (case-sensitive, as JWT claim names are) → action.
    claims: Vec<(String, Action)>,
    /// HMAC state with the key already absorbed; cloned per value.
    mac: Option<HmacKey>,
}

fn with_defaults(explicit: &[(String, Action)], defaults: &[&str]) -> Vec<(String, Action)> {
    let mut out: Vec<(String, Action)> = Vec::with_capacity(explicit.len() + defaults.len());
    for (name, action) in explicit {
        let name = name.to_ascii_lowercase();
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, *action));
        }
    }
    for d in defaults {
        if !out.iter().any(|(n, _)| n == d) {
            out.push((d.to_string(), Action::Mask));
        }
    }
    out
}

/// The action of the first rule whose name equals `name` ignoring ASCII case.
fn lookup<'r>(rules: &'r [(String, Action)], name: &str) -> Option<(&'r str, Action)> {
    rules
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, a)| (n.as_str(), *a))
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
        let mac = cfg.hash_key.as_deref().map(HmacKey::new);
        Redactor {
            headers: with_defaults(&cfg.headers, DEFAULT_HEADERS),
            query: with_defaults(&cfg.query_params, DEFAULT_QUERY_PARAMS),
            claims: cfg.claims.clone(),
            mac,
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

    /// Captured headers (raw values; non-UTF-8 is replaced lossily) → the
    /// record's header object, in the order of `wanted` (lower-case names, as
    /// configuration guarantees; captured names match ignoring case), with
    /// the redacted field names (`<prefix>.<name>`) appended to `redacted`.
    ///
    /// A header sent several times is reported once, its values joined with
    /// `", "` in arrival order (the HTTP list form), and redacted as a whole.
    pub fn headers(
        &self,
        captured: &[(String, Vec<u8>)],
        wanted: &[String],
        prefix: &str,
        redacted: &mut Vec<String>,
    ) -> Fields<String> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(wanted.len());
        for (i, name) in wanted.iter().enumerate() {
            if wanted[..i].iter().any(|w| w.eq_ignore_ascii_case(name)) {
                continue;
            }
            let mut values = captured
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_slice());
            let Some(first) = values.next() else {
                continue;
            };
            let action = lookup(&self.headers, name).map(|(_, a)| a);
            let value = match action {
                Some(Action::Drop) => None,
                Some(Action::Mask)
                    if SCHEME_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) =>
                {
                    Some(mask_keeping_scheme(first))
                }
                Some(Action::Mask) => Some(MASK.to_string()),
                Some(Action::Hash) => Some(self.hash(join(first, values).as_bytes())),
                None => Some(join(first, values)),
            };
            if action.is_some() {
                note(redacted, prefix, name);
            }
            if let Some(v) = value {
                out.push((name.clone(), v));
            }
        }
        Fields(out)
    }

    /// Raw query string (without `?`) → the redacted query string; redacted
    /// parameters are named `request.query.<rule name>`. The parsing rules
    /// are those of the `query` module.
    pub fn query(&self, raw: &str, redacted: &mut Vec<String>) -> String {
        query::redact(self, raw, redacted)
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
                None => Some(value),
                Some(Action::Drop) => None,
                Some(Action::Mask) => Some(serde_json::Value::String(MASK.to_string())),
                Some(Action::Hash) => Some(serde_json::Value::String(match &value {
                    serde_json::Value::String(s) => self.hash(s.as_bytes()),
                    other => self.hash(other.to_string().as_bytes()),
                })),
            };
            if action.is_some() {
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
    let mut s = String::from_utf8_lossy(first).into_owned();
    for v in rest {
        s.push_str(", ");
        s.push_str(&String::from_utf8_lossy(v));
    }
    s
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
