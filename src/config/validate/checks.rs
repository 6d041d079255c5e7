//! The checks sections share: numbers, rates, names, matchers, and the
//! one way a name becomes an enum.

use super::super::model::{Action, StatusMatch};
use super::super::ConfigError;

pub fn positive(path: &str, value: Option<u64>, default: u64) -> Result<u64, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::at(path, "must be greater than 0")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

pub fn as_usize(path: &str, v: u64) -> Result<usize, ConfigError> {
    usize::try_from(v).map_err(|_| ConfigError::at(path, "is too large"))
}

pub fn rate(path: &str, r: f64) -> Result<f64, ConfigError> {
    if r.is_finite() && (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(ConfigError::at(
            path,
            format!("must be between 0 and 1, got {r}"),
        ))
    }
}

pub fn non_empty(path: &str, s: &str) -> Result<(), ConfigError> {
    if s.trim().is_empty() {
        Err(ConfigError::at(path, "must not be empty"))
    } else {
        Ok(())
    }
}

pub fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    non_empty(path, name)?;
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:".contains(&b));
    if !valid {
        return Err(ConfigError::at(
            path,
            format!("\"{name}\" is not a valid header name"),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

pub fn action(path: &str, name: &str, keep: bool) -> Result<Action, ConfigError> {
    if name == "keep" && !keep {
        return Err(ConfigError::at(
            path,
            "action \"keep\" opts out of a default redaction, and claims have none: remove the rule",
        ));
    }
    let actions = [
        ("mask", Action::Mask),
        ("drop", Action::Drop),
        ("hash", Action::Hash),
        ("keep", Action::Keep),
    ];
    let choices = if keep { &actions[..] } else { &actions[..3] };
    one_of(path, "action", Some(name), Action::Mask, choices)
}

/// `given` as one of `choices` by name (absent: `default`); any other name
/// is an error that lists the choices: "expected a or b", or "expected one
/// of a, b, c".
pub fn one_of<T: Copy>(
    path: &str,
    what: &str,
    given: Option<&str>,
    default: T,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(given) = given else {
        return Ok(default);
    };
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == given) {
        return Ok(*value);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    let expected = match names.as_slice() {
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", names.join(", ")),
    };
    Err(ConfigError::at(
        path,
        format!("unknown {what} \"{given}\", expected {expected}"),
    ))
}

/// Pseudo-headers (`:path`, `:authority`, …) are facts with fields of their
/// own, redacted there; captured as headers they would bypass that.
pub fn not_pseudo(path: &str, name: &str) -> Result<(), ConfigError> {
    if name.starts_with(':') {
        return Err(ConfigError::at(
            path,
            format!("\"{name}\" is a pseudo-header: its fact has its own field in the record (request.method, .authority, .path, .query, response.code)"),
        ));
    }
    Ok(())
}

pub fn status_match(path: &str, s: &str) -> Result<StatusMatch, ConfigError> {
    let bad = || {
        ConfigError::at(
            path,
            format!("\"{s}\" is not a status code (100-599) or class (1xx-5xx)"),
        )
    };
    let b = s.as_bytes();
    if b.len() != 3 {
        return Err(bad());
    }
    let class = match b[0] {
        c @ b'1'..=b'5' => u32::from(c - b'0'),
        _ => return Err(bad()),
    };
    if &s[1..] == "xx" {
        return Ok(StatusMatch::Class(class));
    }
    match s.parse::<u32>() {
        Ok(code) if (100..=599).contains(&code) => Ok(StatusMatch::Exact(code)),
        _ => Err(bad()),
    }
}
