//! Every deployment recipe under examples/ and the OCI image of scripts/oci.sh
//! are checked here: plugin configurations by the filter's own parser, Envoy
//! configurations by the pinned Envoy (`--mode validate` also loads the
//! `.wasm` and runs its configure step), Istio manifests by `mesh-audit
//! check-config` and for consistency with one another, the compose file for
//! the files it needs, and the OCI layout byte by byte.
//!
//! Only built with `--features cli` (as `make test` does): it runs the CLI
//! binary (`CARGO_BIN_EXE_mesh-audit` exists only then) and reads YAML with
//! the CLI's optional YAML crate.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;
#[path = "examples/compose.rs"]
mod compose;
mod e2e;
#[path = "examples/istio.rs"]
mod istio;
#[path = "examples/oci.rs"]
mod oci;
#[path = "examples/oci_registry.rs"]
mod oci_registry;

use cli_support::{run, stdout, Scratch};
use e2e::{envoy_bin, pki, repo_root, sha256_hex, wasm};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const KEYS: [(&str, &str); 3] = [
    ("MESH_AUDIT_HASH_KEY", "example-hash-key"),
    ("MESH_AUDIT_CHAIN_KEY", "example-chain-key"),
    // An Ed25519 seed in base64, as keys.sh writes it.
    (
        "MESH_AUDIT_SIGNING_KEY",
        "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=",
    ),
];
/// Where `make build` puts the filter; the only generated file examples mount.
const BUILT_WASM: &str = "target/wasm32-wasip1/release/mesh_audit.wasm";

fn examples() -> PathBuf {
    repo_root().join("examples")
}

/// Every YAML document of a file, as JSON values.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| {
            let value = yaml_serde::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
            serde_json::to_value(value).unwrap()
        })
        .collect()
}

fn yaml_doc(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(
        docs.len(),
        1,
        "{}: expected one YAML document",
        path.display()
    );
    docs.remove(0)
}

fn doc_of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let mut found = docs.iter().filter(|d| d["kind"] == kind);
    let doc = found.next().unwrap_or_else(|| panic!("no {kind} document"));
    assert!(found.next().is_none(), "more than one {kind} document");
    doc
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    out.sort();
}

fn env_of_test(name: &str) -> Option<String> {
    KEYS.iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[test]
fn every_example_plugin_config_is_accepted_by_the_filter() {
    let mut configs = Vec::new();
    files_under(&examples().join("configs"), "json", &mut configs);
    assert!(
        configs.len() >= 2,
        "expected full.json and minimal.json, found {configs:?}"
    );
    for path in &configs {
        let bytes = std::fs::read(path).unwrap();
        if let Err(e) = mesh_audit::config::Config::from_json(&bytes, &env_of_test) {
            panic!("{}: {}", path.display(), mesh_audit::config::error_line(&e));
        }
    }
}

// ------------------------------------------------------------------ Envoy --

/// Envoy bootstraps under examples/ (documents with `static_resources`).
fn example_envoy_configs() -> Vec<PathBuf> {
    let mut yamls = Vec::new();
    files_under(&examples(), "yaml", &mut yamls);
    // The native module's example is validated by tests/e2e_native.rs:
    // check-config reads Wasm filter configurations only.
    let native = examples().join("native");
    let configs: Vec<PathBuf> = yamls
        .into_iter()
        .filter(|p| !p.starts_with(&native))
        .filter(|p| {
            yaml_docs(p)
                .iter()
                .any(|d| d.get("static_resources").is_some())
        })
        .collect();
    for expected in ["envoy/envoy.yaml", "docker-compose/envoy.yaml"] {
        assert!(
            configs.contains(&examples().join(expected)),
            "{expected} not found in {configs:?}"
        );
    }
    configs
}

/// Calls `f` with every `filename` value (Envoy's DataSource paths).
fn for_each_filename(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(path) if key == "filename" => f(path),
                    _ => for_each_filename(v, f),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| for_each_filename(v, f)),
        _ => {}
    }
}

/// Replaces every `filename` (a path inside the proxy's container) by the
/// local file standing in for it; an unknown path fails the test.
fn localise_filenames(config: &mut Value, file: &Path) {
    let local: [(&str, &Path); 3] = [
        ("/etc/envoy/certs/", pki()),
        ("/pki/certs/", pki()),
        ("/etc/envoy/mesh_audit.wasm", wasm()),
    ];
    for_each_filename(config, &mut |path| {
        let (prefix, to) = local
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
            .unwrap_or_else(|| panic!("{}: no local file for {path}", file.display()));
        let rest = &path[prefix.len()..];
        let replaced = if rest.is_empty() {
            to.to_path_buf()
        } else {
            to.join(rest)
        };
        assert!(
            replaced.exists(),
            "{}: {path} → {} does not exist",
            file.display(),
            replaced.display()
        );
        *path = replaced.display().to_string();
    });
}

/// `envoy --mode validate` on a copy of `file` with local paths, with or
/// without the keys in Envoy's environment; (success, full output).
fn envoy_validate(file: &Path, with_keys: bool) -> (bool, String) {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let scratch = Scratch::new(&format!(
        "examples-validate-{}",
        CALLS.fetch_add(1, Ordering::SeqCst)
    ));
    let mut config = yaml_doc(file);
    localise_filenames(&mut config, file);
    let rendered = scratch.path("envoy.json");
    std::fs::write(&rendered, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let mut cmd = Command::new(envoy_bin());
    cmd.args(["--mode", "validate", "-l", "info", "-c"])
        .arg(&rendered);
    for (k, v) in KEYS {
        if with_keys {
            cmd.env(k, v);
        } else {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("OK"), text)
}

#[test]
fn every_example_envoy_config_passes_envoy_validate() {
    for file in example_envoy_configs() {
        let (ok, text) = envoy_validate(&file, true);
        assert!(
            ok,
            "{} failed `envoy --mode validate`:\n{text}",
            file.display()
        );
    }
}

#[test]
fn example_envoy_configs_take_the_keys_only_from_envoys_environment() {
    for file in example_envoy_configs() {
        let (ok, text) = envoy_validate(&file, false);
        assert!(
            !ok,
            "{} validated without MESH_AUDIT_HASH_KEY in Envoy's environment",
            file.display()
        );
        let expected = "mesh-audit: invalid configuration: redact.hash_key_env: environment variable MESH_AUDIT_HASH_KEY is not set";
        assert!(
            text.contains(expected),
            "{}: no `{expected}` in:\n{text}",
            file.display()
        );
    }
}

#[test]
fn example_envoy_configs_pass_check_config() {
    for file in example_envoy_configs() {
        let out = run(&["check-config", file.to_str().unwrap()], &KEYS);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{}:\n{text}", file.display());
        assert!(
            !text.is_empty() && text.lines().all(|l| l.ends_with(": ok")),
            "{}:\n{text}",
            file.display()
        );
    }
}
