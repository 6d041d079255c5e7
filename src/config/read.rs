//! A small reader over a parsed JSON value that knows where it is: every
//! error carries the JSON path of the offending value. It replaces derived
//! deserializers, which cost the `.wasm` tens of KB per struct.

use super::ConfigError;
use serde_json::{Map, Value};

/// How a value is described in an error: its JSON type, and short values verbatim.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() <= 40 => format!("string \"{s}\""),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_error(path: &str, expected: &str, got: &Value) -> ConfigError {
    ConfigError::at(
        if path.is_empty() { "$" } else { path },
        format!("expected {expected}, got {}", describe(got)),
    )
}

/// A JSON object whose keys were checked against the ones allowed.
pub struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    pub fn new(v: &'a Value, path: &str, allowed: &[&str]) -> Result<Obj<'a>, ConfigError> {
        let Value::Object(map) = v else {
            return Err(type_error(path, "an object", v));
        };
        if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let expected: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
            return Err(ConfigError::at(
                join(path, k),
                format!(
                    "unknown field `{k}`, expected one of {}",
                    expected.join(", ")
                ),
            ));
        }
        Ok(Obj {
            path: path.to_string(),
            map,
        })
    }

    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value at `key`; `null` counts as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn required(&self, key: &str) -> Result<&'a Value, ConfigError> {
        self.get(key)
            .ok_or_else(|| ConfigError::at(self.path(key), "is required"))
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.get(key)
            .map(|v| as_string(v, &self.path(key)))
            .transpose()
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| type_error(&self.path(key), "a whole number >= 0", v))
            })
            .transpose()
    }

    pub fn f64(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        self.get(key)
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| type_error(&self.path(key), "a number", v))
            })
            .transpose()
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.get(key)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| type_error(&self.path(key), "true or false", v))
            })
            .transpose()
    }

    /// A list of strings (absent: empty); element paths are `key[i]`.
    pub fn strings(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        self.list(key)?
            .into_iter()
            .map(|(path, v)| as_string(v, &path))
            .collect()
    }

    /// A list's elements with their paths (absent: empty).
    pub fn list(&self, key: &str) -> Result<Vec<(String, &'a Value)>, ConfigError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{}[{i}]", self.path(key)), v))
                .collect()),
            Some(v) => Err(type_error(&self.path(key), "a list", v)),
        }
    }

    /// An object of string values (absent: empty), in key order.
    pub fn string_map(&self, key: &str) -> Result<Vec<(String, String)>, ConfigError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), as_string(v, &join(&self.path(key), k))?)))
                .collect(),
            Some(v) => Err(type_error(&self.path(key), "an object", v)),
        }
    }

    /// A nested object, if present.
    pub fn object(&self, key: &str, allowed: &[&str]) -> Result<Option<Obj<'a>>, ConfigError> {
        self.get(key)
            .map(|v| Obj::new(v, &self.path(key), allowed))
            .transpose()
    }
}

pub fn as_string(v: &Value, path: &str) -> Result<String, ConfigError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| type_error(path, "a string", v))
}
