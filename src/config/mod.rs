//! Plugin configuration (SPEC §3), in two steps. [`Config::from_json`]
//! parses the bytes with serde_json into a JSON value, then `raw` reads the
//! shape from it by hand (types, known keys; see `read` for why no derived
//! deserializer), and `validate` turns that into the validated `model`:
//! defaults applied, values checked, keys read from the environment.
//!
//! Every error names the JSON path of the offending value, so the single log
//! line `mesh-audit: invalid configuration: <path>: <what>` points at it.

mod glob;
mod model;
mod raw;
mod read;
mod validate;

pub use glob::Glob;
pub use model::*;
use serde_json::Value;
use std::fmt;

/// A configuration error: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The exact log line the filter writes for a rejected configuration.
pub fn error_line(err: &ConfigError) -> String {
    format!("mesh-audit: invalid configuration: {err}")
}

/// The log line for a degradation, repeated while it lasts.
pub fn degraded_line(d: &Degradation) -> String {
    format!(
        "mesh-audit: degraded configuration: {}; {} ({})",
        d.problem, d.instead, d.code
    )
}

/// Where configuration reads environment variables from.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl Config {
    /// Parses and validates configuration bytes.
    pub fn from_json(bytes: &[u8], env: &dyn Env) -> Result<Config, ConfigError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| ConfigError::at("$", format!("not valid JSON: {e}")))?;
        validate::validate(raw::read_raw(&value)?, env, digest(bytes))
    }
}

fn digest(bytes: &[u8]) -> String {
    let sum = crate::digest::sha256(bytes);
    crate::digest::hex(&sum[..4])
}

#[cfg(test)]
mod tests;
