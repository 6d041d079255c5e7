//! The query string and the fragment.
//!
//! Parameters follow the rules of the `params` module; names are matched
//! by normalised pattern (the `name` module), so every spelling a backend
//! would accept for `token` is caught, and every occurrence of a repeated
//! parameter is redacted.
//!
//! A fragment (`#access_token=…&state=…`, as the OAuth implicit flow puts
//! it in a `location`) is redacted like a query string; a single-page
//! app's `#/reset?token=…` like a path and a query; a fragment that is one
//! opaque word is masked only when it has a credential's shape.

use super::name::Scratch;
use super::params::{self, Notes, QUERY};
use super::{path, Redactor};

/// Appends the redacted `query` (the text after `?`, up to and including
/// any `#fragment`) to `out`.
pub fn redact(r: &Redactor, raw: &str, s: &mut Scratch, notes: &mut Notes, out: &mut String) {
    match raw.split_once('#') {
        Some((query, fragment)) => {
            params::redact(r, query, QUERY, s, notes, out);
            out.push('#');
            path::redact_fragment(r, fragment, s, notes, out);
        }
        None => params::redact(r, raw, QUERY, s, notes, out),
    }
}

#[cfg(test)]
mod tests;
