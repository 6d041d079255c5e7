//! Envoy bootstraps: every Wasm HTTP filter that is mesh-audit's, found
//! wherever it sits, with the VM environment its vm_config passes.

use super::finding::{proxy_env, validate, Finding, HostEnv};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub const WASM_TYPE: &str = "envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE: &str = "google.protobuf.StringValue";

/// Collects every Wasm HTTP filter config (the `Wasm` message's `config`)
/// with its location.
pub fn walk<'a>(v: &'a Value, path: &mut String, out: &mut Vec<(String, &'a Map<String, Value>)>) {
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

pub fn envoy_filter(
    at: String,
    config: &Map<String, Value>,
    host: HostEnv,
) -> Option<Vec<Finding>> {
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
