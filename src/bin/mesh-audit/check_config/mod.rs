//! `mesh-audit check-config`: runs the filter's own configuration check
//! ([`Config::from_json`]) over a plain JSON configuration, every mesh-audit
//! filter of an Envoy bootstrap, or Istio WasmPlugin resources, with the
//! environment the filter would see.

mod envoy;
mod finding;
mod istio;
mod wasmplugin;

use crate::args::CheckConfigArgs;
use crate::status::{self, OutputError, Verdict};
use envoy::{envoy_filter, walk};
use finding::{validate, Finding, HostEnv};
use istio::istio;
use serde::Deserialize;
use serde_json::Value;
use std::io;
use std::path::PathBuf;

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

#[cfg(test)]
mod tests {
    use super::envoy::WASM_TYPE;
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
