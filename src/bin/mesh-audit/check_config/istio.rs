//! Istio WasmPlugin resources: the resource's own fields as the API server
//! checks them, then its pluginConfig with the env of spec.vmConfig.

use super::finding::{proxy_env, validate, Finding, HostEnv};
use super::wasmplugin;
use serde_json::Value;
use std::collections::BTreeMap;

/// A WasmPlugin: the resource's own fields first, then the plugin config.
pub fn istio(doc: &Value, index: Option<usize>, host: HostEnv) -> Vec<Finding> {
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
