//! `mesh-audit check-config`: runs the filter's own configuration check
//! ([`Config::from_json`]) over a plain JSON configuration, every mesh-audit
//! filter of an Envoy bootstrap, or Istio WasmPlugin resources, with the
//! environment the filter would see.

use crate::args::CheckConfigArgs;
use crate::status::{self, OutputError, Verdict};
use crate::wasmplugin;
use mesh_audit::config::{degraded_line, error_line, Config};
use mesh_audit::filter::root::STRICT_ENV;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

const WASM_TYPE: &str = "envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE: &str = "google.protobuf.StringValue";

/// One configuration checked: where it is (none for a plain JSON file) and
/// the filter's error line when it is invalid.
#[derive(Debug, PartialEq)]
pub struct Finding {
    pub location: Option<String>,
    pub error: Option<String>,
}

/// How a variable is looked up in this process's environment.
pub type HostEnv<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Why `check-config` could not check FILE (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum CheckConfigError {
    #[error("{}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Why FILE holds nothing to check: a failed check (exit status 1), printed
/// on stdout after the file's name like any other finding.
#[derive(Debug, thiserror::Error)]
pub enum NotChecked {
    #[error("not valid JSON or YAML: {0}")]
    Syntax(yaml_serde::Error),
    #[error("not valid YAML: {0}")]
    Merge(yaml_serde::Error),
    #[error("document {index}: {source}")]
    Document {
        index: usize,
        source: serde_json::Error,
    },
    #[error("no mesh-audit configuration found: expected a plugin configuration (JSON), an Envoy bootstrap or an Istio WasmPlugin")]
    NoConfiguration,
    #[error("no mesh-audit filter found (an envoy.filters.http.wasm filter with root_id \"mesh-audit\" or code mesh_audit.wasm)")]
    NoFilter,
}

pub fn run(args: &CheckConfigArgs) -> Result<Verdict, CheckConfigError> {
    let path = &args.file;
    let bytes = std::fs::read(path).map_err(|source| CheckConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let (text, ok) = match check(&bytes, &|name| std::env::var(name).ok()) {
        Err(why) => (format!("{}: {why}\n", path.display()), false),
        Ok(findings) => {
            let mut text = String::new();
            for f in &findings {
                let result = f.error.as_deref().unwrap_or("ok");
                match &f.location {
                    Some(at) => text.push_str(&format!("{at}: {result}\n")),
                    None => text.push_str(&format!("{result}\n")),
                }
            }
            (text, findings.iter().all(|f| f.error.is_none()))
        }
    };
    status::write(&text, None)?;
    Ok(Verdict::of(ok))
}

/// Checks every mesh-audit configuration in `bytes`; `Err` when there is none
/// or the file cannot be read as JSON or YAML.
pub fn check(bytes: &[u8], host: HostEnv) -> Result<Vec<Finding>, NotChecked> {
    let text = String::from_utf8_lossy(bytes);
    if text.trim_start().starts_with('{') {
        return Ok(match serde_json::from_slice::<Value>(bytes) {
            // A broken JSON configuration gets the filter's own syntax error.
            Err(_) => plain(bytes, host),
            Ok(doc) => match classify(&doc, None, host) {
                Some(found) => return non_empty(found),
                None => plain(bytes, host),
            },
        });
    }
    let mut found = Vec::new();
    let mut recognised = false;
    for (i, doc) in yaml_serde::Deserializer::from_slice(bytes).enumerate() {
        let mut value = yaml_serde::Value::deserialize(doc).map_err(NotChecked::Syntax)?;
        value.apply_merge().map_err(NotChecked::Merge)?;
        let doc: Value = serde_json::to_value(&value).map_err(|source| NotChecked::Document {
            index: i + 1,
            source,
        })?;
        if let Some(f) = classify(&doc, Some(i + 1), host) {
            recognised = true;
            found.extend(f);
        }
    }
    if !recognised {
        return Err(NotChecked::NoConfiguration);
    }
    non_empty(found)
}

fn non_empty(found: Vec<Finding>) -> Result<Vec<Finding>, NotChecked> {
    if found.is_empty() {
        Err(NotChecked::NoFilter)
    } else {
        Ok(found)
    }
}

fn plain(bytes: &[u8], host: HostEnv) -> Vec<Finding> {
    validate(None, bytes, &|name| host(name))
}

/// What the filter would say about `config` in a VM with `env`: its error
/// line, or one line per degradation (the error line in strict mode, where
/// the proxy refuses it). A degradation fails the check: the proxy would
/// run, but without a key the configuration asks for.
fn validate(
    location: Option<String>,
    config: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<Finding> {
    let finding = |error| Finding {
        location: location.clone(),
        error,
    };
    let config = match Config::from_json(config, &|name: &str| env(name)) {
        Err(e) => return vec![finding(Some(error_line(&e)))],
        Ok(c) => c,
    };
    let strict = env(STRICT_ENV).is_some_and(|v| matches!(v.trim(), "1" | "true"));
    if config.degraded.is_empty() {
        return vec![finding(None)];
    }
    config
        .degraded
        .iter()
        .map(|d| {
            finding(Some(if strict {
                error_line(&d.problem)
            } else {
                degraded_line(d)
            }))
        })
        .collect()
}

/// What a document is: a WasmPlugin, an Envoy bootstrap (or any document
/// holding Wasm HTTP filters), or neither (`None`).
fn classify(doc: &Value, index: Option<usize>, host: HostEnv) -> Option<Vec<Finding>> {
    if doc.get("kind").and_then(Value::as_str) == Some("WasmPlugin") {
        return Some(istio(doc, index, host));
    }
    let mut filters = Vec::new();
    walk(doc, &mut String::new(), &mut filters);
    let bootstrap = ["static_resources", "dynamic_resources", "admin", "node"]
        .iter()
        .any(|k| doc.get(k).is_some());
    if filters.is_empty() && !bootstrap {
        return None;
    }
    Some(
        filters
            .into_iter()
            .filter_map(|(at, wasm)| envoy_filter(at, wasm, host))
            .flatten()
            .collect(),
    )
}

/// Collects every Wasm HTTP filter config (the `Wasm` message's `config`)
/// with its location.
fn walk<'a>(v: &'a Value, path: &mut String, out: &mut Vec<(String, &'a Map<String, Value>)>) {
    match v {
        Value::Object(m) => {
            if let Some(config) = wasm_config(m) {
                out.push((path.replace(".typed_config", ""), config));
                return;
            }
            for (k, child) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk(child, path, out);
                path.truncate(len);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if let Some(name) = child.get("name").and_then(Value::as_str) {
                    path.push_str(&format!("({name})"));
                }
                walk(child, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The `config` of a Wasm HTTP filter message, given directly or as a TypedStruct.
fn wasm_config(m: &Map<String, Value>) -> Option<&Map<String, Value>> {
    let ty = m.get("@type")?.as_str()?;
    if ty.ends_with(WASM_TYPE) {
        return m.get("config")?.as_object();
    }
    let typed_struct = ty.ends_with("type.v1.TypedStruct") || ty.ends_with("type.v3.TypedStruct");
    if typed_struct && m.get("type_url")?.as_str()?.ends_with(WASM_TYPE) {
        return m.get("value")?.get("config")?.as_object();
    }
    None
}

fn envoy_filter(at: String, config: &Map<String, Value>, host: HostEnv) -> Option<Vec<Finding>> {
    let vm = config.get("vm_config");
    let code = vm.and_then(|v| v.get("code"));
    let code_names = [
        code.and_then(|c| c.pointer("/local/filename")),
        code.and_then(|c| c.pointer("/remote/http_uri/uri")),
    ];
    let ours = config.get("root_id").and_then(Value::as_str) == Some("mesh-audit")
        || code_names
            .iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .any(|n| n.ends_with("mesh_audit.wasm"));
    if !ours {
        return None;
    }
    let vars = vm.and_then(|v| v.get("environment_variables"));
    let inline: BTreeMap<String, String> = vars
        .and_then(|v| v.get("key_values"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let from_host: Vec<String> = vars
        .and_then(|v| v.get("host_env_keys"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let env = |name: &str| proxy_env(&inline, &from_host, host, name);
    let not_a_string = |found: Option<&str>| {
        let found = found
            .map(|what| format!(", found {what}"))
            .unwrap_or_default();
        Some(vec![Finding {
            location: Some(at.clone()),
            error: Some(format!(
                "configuration must be a {STRING_VALUE} holding the JSON configuration{found}"
            )),
        }])
    };
    let bytes = match config.get("configuration") {
        None => Vec::new(),
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(Value::Object(any)) => {
            match (any.get("@type").and_then(Value::as_str), any.get("value")) {
                (None, Some(Value::String(s))) => s.clone().into_bytes(),
                (Some(t), Some(Value::String(s))) if t.ends_with(STRING_VALUE) => {
                    s.clone().into_bytes()
                }
                (Some(t), _) if t.ends_with(STRING_VALUE) => Vec::new(),
                (t, _) => {
                    return not_a_string(Some(t.unwrap_or("an object without a string value")))
                }
            }
        }
        Some(_) => return not_a_string(None),
    };
    Some(validate(Some(at), &bytes, &env))
}

/// A variable as the proxy's Wasm VM would see it: given inline, or passed
/// through from the proxy's own environment (here, this process's).
fn proxy_env(
    inline: &BTreeMap<String, String>,
    from_host: &[String],
    host: HostEnv,
    name: &str,
) -> Option<String> {
    inline.get(name).cloned().or_else(|| {
        from_host
            .iter()
            .any(|k| k == name)
            .then(|| host(name))
            .flatten()
    })
}

/// A WasmPlugin: the resource's own fields first, then the plugin config.
fn istio(doc: &Value, index: Option<usize>, host: HostEnv) -> Vec<Finding> {
    let name = doc.pointer("/metadata/name").and_then(Value::as_str);
    let namespace = doc.pointer("/metadata/namespace").and_then(Value::as_str);
    let at = match (namespace, name, index) {
        (Some(ns), Some(n), _) => format!("WasmPlugin {ns}/{n}"),
        (None, Some(n), _) => format!("WasmPlugin {n}"),
        (_, None, Some(i)) => format!("WasmPlugin (document {i})"),
        (_, None, None) => "WasmPlugin".to_string(),
    };
    let mut inline = BTreeMap::new();
    let mut from_host = Vec::new();
    for var in doc
        .pointer("/spec/vmConfig/env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = var.get("name").and_then(Value::as_str) else {
            continue;
        };
        if var.get("valueFrom").and_then(Value::as_str) == Some("HOST") {
            from_host.push(name.to_string());
        } else if let Some(value) = var.get("value").and_then(Value::as_str) {
            inline.insert(name.to_string(), value.to_string());
        }
    }
    let env = |name: &str| proxy_env(&inline, &from_host, host, name);
    // Istio hands pluginConfig to the filter as its JSON form.
    let bytes = match doc.pointer("/spec/pluginConfig") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::to_vec(v).unwrap_or_default(),
    };
    let mut found: Vec<Finding> = wasmplugin::problems(doc)
        .into_iter()
        .map(|p| Finding {
            location: Some(at.clone()),
            error: Some(format!("{}{p}", wasmplugin::PREFIX)),
        })
        .collect();
    let config = validate(Some(at), &bytes, &env);
    if found.is_empty() || config.iter().any(|f| f.error.is_some()) {
        found.extend(config);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_with(configuration: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "static_resources": {"listeners": [{"name": "in", "filter_chains": [{"filters": [{
                "name": "hcm",
                "typed_config": {"http_filters": [{
                    "name": "envoy.filters.http.wasm",
                    "typed_config": {
                        "@type": format!("type.googleapis.com/{WASM_TYPE}"),
                        "config": {"root_id": "mesh-audit", "configuration": configuration}
                    }
                }]}
            }]}]}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_configuration_that_is_not_a_string_value_is_named_with_what_was_found() {
        let at = "static_resources.listeners[0](in).filter_chains[0].filters[0](hcm).http_filters[0](envoy.filters.http.wasm)";
        let cases = [
            (
                serde_json::json!({"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}),
                "configuration must be a google.protobuf.StringValue holding the JSON configuration, found type.googleapis.com/google.protobuf.Struct",
            ),
            (
                serde_json::json!({"value": 7}),
                "configuration must be a google.protobuf.StringValue holding the JSON configuration, found an object without a string value",
            ),
            (
                serde_json::json!(7),
                "configuration must be a google.protobuf.StringValue holding the JSON configuration",
            ),
        ];
        for (configuration, error) in cases {
            let found = check(&filter_with(configuration), &|_| None).unwrap();
            assert_eq!(
                found,
                vec![Finding {
                    location: Some(at.to_string()),
                    error: Some(error.to_string()),
                }]
            );
        }
    }

    #[test]
    fn files_without_a_configuration_say_why() {
        let none = check(b"kind: Deployment\n", &|_| None).unwrap_err();
        assert!(matches!(none, NotChecked::NoConfiguration), "{none}");
        let no_filter = check(b"static_resources: {}\n", &|_| None).unwrap_err();
        assert!(matches!(no_filter, NotChecked::NoFilter), "{no_filter}");
        let broken = check(b"foo: [1\n", &|_| None).unwrap_err();
        assert!(matches!(broken, NotChecked::Syntax(_)), "{broken}");
    }
}
