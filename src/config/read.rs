//! A small reader over a parsed JSON value that knows where it is: every
//! error carries the JSON path of the offending value. It replaces derived
//! deserializers, which cost the `.wasm` tens of KB per struct.
//!
//! An object remembers the keys that were read from it, so a key nobody
//! read is the "unknown field" error and no list of allowed keys is kept
//! beside the reading code. A failed read records its error and yields
//! nothing, and reading goes on, so that an unknown key still wins over a
//! bad value of the same object, as when the keys were checked first; of
//! the rest, the first error in reading order is the one reported.

use super::ConfigError;
use serde_json::{Map, Value};
use std::cell::RefCell;

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

/// Reads `v` as the top-level object.
pub fn root<T>(v: &Value, read: impl FnOnce(&Obj) -> T) -> Result<T, ConfigError> {
    let top = Obj::at(v, String::new());
    let out = read(&top);
    top.finish().map(|()| out)
}

/// A JSON object being read: the keys asked for so far, and the first error.
pub struct Obj<'a> {
    path: String,
    map: Option<&'a Map<String, Value>>,
    read: RefCell<Vec<&'static str>>,
    error: RefCell<Option<ConfigError>>,
}

impl<'a> Obj<'a> {
    fn at(v: &'a Value, path: String) -> Obj<'a> {
        let obj = Obj {
            map: v.as_object(),
            read: RefCell::new(Vec::new()),
            error: RefCell::new(None),
            path,
        };
        if obj.map.is_none() {
            obj.fail(type_error(&obj.path, "an object", v));
        }
        obj
    }

    /// The object's error: a key that was never read, else the first
    /// failed read.
    fn finish(self) -> Result<(), ConfigError> {
        let read = self.read.into_inner();
        let unknown = self
            .map
            .and_then(|m| m.keys().find(|k| !read.contains(&k.as_str())));
        if let Some(k) = unknown {
            let expected: Vec<String> = read.iter().map(|a| format!("`{a}`")).collect();
            return Err(ConfigError::at(
                join(&self.path, k),
                format!(
                    "unknown field `{k}`, expected one of {}",
                    expected.join(", ")
                ),
            ));
        }
        match self.error.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn fail(&self, e: ConfigError) {
        let mut error = self.error.borrow_mut();
        if error.is_none() {
            *error = Some(e);
        }
    }

    /// Keeps the value of a conversion, or records its error.
    fn keep<T>(&self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.fail(e)).ok()
    }

    pub fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value at `key`, which is now known; `null` counts as absent.
    pub fn take(&self, key: &'static str) -> Option<&'a Value> {
        let mut read = self.read.borrow_mut();
        if !read.contains(&key) {
            read.push(key);
        }
        self.map?.get(key).filter(|v| !v.is_null())
    }

    pub fn required(&self, key: &'static str) -> Option<&'a Value> {
        let v = self.take(key);
        if v.is_none() {
            self.fail(ConfigError::at(self.path(key), "is required"));
        }
        v
    }

    /// A required string; empty when missing (the error is recorded).
    pub fn required_string(&self, key: &'static str) -> String {
        let v = self.take(key);
        self.required_string_of(key, v)
    }

    /// `v`, a value taken at `key`, as a required string.
    pub fn required_string_of(&self, key: &str, v: Option<&Value>) -> String {
        if v.is_none() {
            self.fail(ConfigError::at(self.path(key), "is required"));
        }
        self.string_of(key, v).unwrap_or_default()
    }

    pub fn string(&self, key: &'static str) -> Option<String> {
        let v = self.take(key);
        self.string_of(key, v)
    }

    /// `v`, a value taken at `key`, as a string.
    pub fn string_of(&self, key: &str, v: Option<&Value>) -> Option<String> {
        self.keep(v.map(|v| as_string(v, &self.path(key))).transpose())
            .flatten()
    }

    pub fn u64(&self, key: &'static str) -> Option<u64> {
        let v = self.take(key);
        self.u64_of(key, v)
    }

    pub fn u64_of(&self, key: &str, v: Option<&Value>) -> Option<u64> {
        let as_u64 = |v: &Value| {
            v.as_u64()
                .ok_or_else(|| type_error(&self.path(key), "a whole number >= 0", v))
        };
        self.keep(v.map(as_u64).transpose()).flatten()
    }

    pub fn f64_of(&self, key: &str, v: Option<&Value>) -> Option<f64> {
        let as_f64 = |v: &Value| {
            v.as_f64()
                .ok_or_else(|| type_error(&self.path(key), "a number", v))
        };
        self.keep(v.map(as_f64).transpose()).flatten()
    }

    pub fn bool(&self, key: &'static str) -> Option<bool> {
        let as_bool = |v: &Value| {
            v.as_bool()
                .ok_or_else(|| type_error(&self.path(key), "true or false", v))
        };
        self.keep(self.take(key).map(as_bool).transpose()).flatten()
    }

    /// A list of strings (absent: empty); element paths are `key[i]`.
    pub fn strings(&self, key: &'static str) -> Vec<String> {
        let items = self.list(key);
        let strings: Result<Vec<String>, ConfigError> = items
            .into_iter()
            .map(|(path, v)| as_string(v, &path))
            .collect();
        self.keep(strings).unwrap_or_default()
    }

    /// A list's elements with their paths (absent: empty).
    fn list(&self, key: &'static str) -> Vec<(String, &'a Value)> {
        match self.take(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{}[{i}]", self.path(key)), v))
                .collect(),
            Some(v) => {
                self.fail(type_error(&self.path(key), "a list", v));
                Vec::new()
            }
        }
    }

    /// An object of string values (absent: empty), in key order.
    pub fn string_map(&self, key: &'static str) -> Vec<(String, String)> {
        let pairs = match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| Ok((k.clone(), as_string(v, &join(&self.path(key), k))?)))
                .collect(),
            Some(v) => Err(type_error(&self.path(key), "an object", v)),
        };
        self.keep(pairs).unwrap_or_default()
    }

    /// A nested object, if present, read by `read`.
    pub fn object<T>(&self, key: &'static str, read: impl FnOnce(&Obj<'a>) -> T) -> Option<T> {
        let v = self.take(key)?;
        self.nested(v, self.path(key), read)
    }

    /// A required nested object.
    pub fn required_object<T>(
        &self,
        key: &'static str,
        read: impl FnOnce(&Obj<'a>) -> T,
    ) -> Option<T> {
        let v = self.required(key)?;
        self.nested(v, self.path(key), read)
    }

    /// A list of objects (absent: empty), each read by `read`.
    pub fn objects<T>(&self, key: &'static str, read: impl Fn(&Obj<'a>) -> T) -> Vec<T> {
        self.list(key)
            .into_iter()
            .filter_map(|(path, v)| self.nested(v, path, &read))
            .collect()
    }

    fn nested<T>(&self, v: &'a Value, path: String, read: impl FnOnce(&Obj<'a>) -> T) -> Option<T> {
        let obj = Obj::at(v, path);
        let out = read(&obj);
        match obj.finish() {
            Ok(()) => Some(out),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }
}

pub fn as_string(v: &Value, path: &str) -> Result<String, ConfigError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| type_error(path, "a string", v))
}
