//! Every Envoy configuration the project ships must be accepted by the pinned
//! Envoy (`envoy --mode validate`, which also loads the `.wasm` or the native
//! module and runs the plugin's configure step), once its placeholders are
//! filled.

// Test code: helpers fail the test by panicking.
#![allow(clippy::panic, clippy::unwrap_used)]

mod e2e;

use e2e::variant::{plugin_config_scalar, render};
use e2e::{envoy_bin, free_port, pki, repo_root, target_dir, wasm};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Values for every placeholder the shipped templates use.
fn placeholder_values(
    plugin_config: &serde_json::Value,
    out_dir: &Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("ADMIN_PORT", free_port().to_string()),
        ("MTLS_PORT", free_port().to_string()),
        ("PLAIN_PORT", free_port().to_string()),
        ("BACKEND_PORT", free_port().to_string()),
        ("SINK_PORT", free_port().to_string()),
        ("CLOSED_PORT", free_port().to_string()),
        ("CERT_DIR", pki().display().to_string()),
        ("WASM", wasm().display().to_string()),
        ("PLUGIN_CONFIG", plugin_config_scalar(plugin_config)),
        (
            "ACCESS_LOG",
            out_dir.join("access.log").display().to_string(),
        ),
    ]
}

fn validate(template: &Path, plugin_config: &serde_json::Value) -> Output {
    let name = template
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("config");
    // Unique per call: both tests validate e2e.yaml at the same time.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::SeqCst);
    let out_dir = target_dir()
        .join("e2e/validate")
        .join(format!("{name}-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let text = std::fs::read_to_string(template).unwrap();
    let rendered = out_dir.join(format!("{name}.yaml"));
    std::fs::write(
        &rendered,
        render(&text, &placeholder_values(plugin_config, &out_dir)),
    )
    .unwrap();
    let mut envoy = Command::new(envoy_bin());
    envoy
        .args(["--mode", "validate", "-l", "info", "-c"])
        .arg(&rendered);
    // A template loading the native module: Envoy finds it by its search
    // rule, and the module reads its keys from Envoy's environment.
    if text.contains("envoy.bootstrap.dynamic_modules") {
        envoy
            .env(
                "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
                e2e::native_module().parent().unwrap(),
            )
            .env("MESH_AUDIT_HASH_KEY", "e2e-hash-key");
    }
    // A template that takes its keys from Envoy's environment
    // (`host_env_keys`, as envoy/demo.yaml does): give them, as the demo
    // script does, so the filter's configuration is what gets validated.
    if text.contains("host_env_keys") {
        envoy
            .env("MESH_AUDIT_CHAIN_KEY", "e2e-chain-key")
            // An Ed25519 seed in base64, as `integrity.signing_key_env` takes it.
            .env(
                "MESH_AUDIT_SIGNING_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            );
    }
    let output = envoy.output().unwrap();
    std::fs::remove_dir_all(&out_dir).unwrap();
    output
}

fn shipped_envoy_yamls() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("envoy"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_envoy_yaml_passes_envoy_validate() {
    let files = shipped_envoy_yamls();
    let names: Vec<_> = files
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
        .collect();
    assert!(
        names.contains(&"e2e.yaml") && names.contains(&"demo.yaml"),
        "found only {names:?}"
    );
    for file in &files {
        let output = validate(file, &json!({"sink": {"cluster": "audit_sink"}}));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && text.contains("OK"),
            "{} failed `envoy --mode validate` ({}):\n{text}",
            file.display(),
            output.status
        );
    }
}

#[test]
fn envoy_validate_rejects_an_invalid_plugin_configuration_with_its_error_line() {
    let output = validate(
        &repo_root().join("envoy/e2e.yaml"),
        &json!({"sink": {"cluster": ""}}),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.status.success(),
        "Envoy accepted an empty sink.cluster:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l
                .ends_with(": mesh-audit: invalid configuration: sink.cluster: must not be empty")),
        "no configuration error line in:\n{text}"
    );
}
