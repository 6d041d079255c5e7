//! Envoys shaped like Istio proxies (tests/istio/sidecar.yaml, gateway.yaml), fed the
//! shipped WasmPlugins (examples/istio/) by file-based ECDS, rendered the
//! way istiod renders them and istio-agent hands them on: the resource name
//! `extensions.istio.io/wasmplugin/<ns>.<name>`, plugin name `<ns>.<name>`,
//! root id = `pluginName`, the pluginConfig as a JSON `StringValue`, the V8
//! runtime, `vmConfig.env` split into inline `key_values` and `host_env_keys`
//! (plus istiod's own resource-version and pull-policy variables), the
//! failure policy from `failStrategy`, and the remote OCI code replaced by
//! the local file istio-agent extracted.

use crate::e2e::process::{admin_request, mesh_audit_stats, run_dir, run_log, stop, wait_ready};
use crate::e2e::variant::render;
use crate::e2e::{envoy_bin, free_port, pki, repo_root, wasm, Reply, Sink};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const SIDECAR_PLUGIN: &str = "examples/istio/wasmplugin.yaml";
pub const GATEWAY_PLUGIN: &str = "examples/istio/wasmplugin-gateway.yaml";
/// The keys the shipped plugins read from the proxy's environment (HOST).
pub const KEYS: [(&str, &str); 2] = [
    ("MESH_AUDIT_HASH_KEY", "istio-hash-key"),
    ("MESH_AUDIT_CHAIN_KEY", "istio-chain-key"),
];

/// A shipped WasmPlugin, read from the repository.
pub fn shipped(path: &str) -> Value {
    let text =
        std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value = yaml_serde::Value::deserialize(yaml_serde::Deserializer::from_str(&text))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::to_value(value).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The ECDS resource (a DiscoveryResponse) for `plugin` at `version`, with
/// `configuration` as the plugin configuration text (istiod's JSON of
/// `pluginConfig` unless a test breaks it on purpose).
pub fn ecds_resource(plugin: &Value, version: u32, configuration: &str) -> Value {
    let meta = &plugin["metadata"];
    let spec = &plugin["spec"];
    let name = format!(
        "{}.{}",
        meta["namespace"].as_str().unwrap_or("default"),
        meta["name"]
            .as_str()
            .unwrap_or_else(|| panic!("a WasmPlugin without a name"))
    );
    let mut key_values = BTreeMap::new();
    key_values.insert(
        "ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION".to_string(),
        version.to_string(),
    );
    if let Some(policy) = spec["imagePullPolicy"].as_str() {
        key_values.insert("ISTIO_META_WASM_IMAGE_PULL_POLICY".into(), policy.into());
    }
    let mut host_env_keys = Vec::new();
    for var in spec["vmConfig"]["env"].as_array().into_iter().flatten() {
        let var_name = var["name"].as_str().unwrap_or_default().to_string();
        match var["valueFrom"].as_str() {
            Some("HOST") => host_env_keys.push(var_name),
            _ => {
                let value = var["value"].as_str().unwrap_or_default().to_string();
                key_values.insert(var_name, value);
            }
        }
    }
    let failure_policy = match spec["failStrategy"].as_str() {
        Some("FAIL_OPEN") => "FAIL_OPEN",
        Some("FAIL_RELOAD") => "FAIL_RELOAD",
        _ => "FAIL_CLOSED",
    };
    json!({
        "version_info": version.to_string(),
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": format!("extensions.istio.io/wasmplugin/{name}"),
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": name,
                    "root_id": spec["pluginName"].as_str().unwrap_or_default(),
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": configuration,
                    },
                    "vm_config": {
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": wasm().display().to_string()}},
                        "environment_variables": {
                            "key_values": key_values,
                            "host_env_keys": host_env_keys,
                        },
                    },
                    "failure_policy": failure_policy,
                }
            }
        }]
    })
}

/// The plugin configuration as istiod hands it over: compact JSON.
pub fn plugin_config_json(plugin: &Value) -> String {
    plugin["spec"]["pluginConfig"].to_string()
}

pub struct IstioProxy {
    child: Child,
    pub admin_port: u16,
    /// The sidecar's inbound listener, or the gateway's HTTP listener.
    pub port: u16,
    dir: PathBuf,
}

impl IstioProxy {
    /// Starts a sidecar (tests/istio/sidecar.yaml) with this ECDS resource
    /// and `env` as its process environment (the keys are removed otherwise).
    pub fn sidecar(resource: &Value, env: &[(&str, &str)], sink: &Sink) -> Self {
        let port = free_port();
        let values = vec![
            ("INBOUND_PORT", port.to_string()),
            ("BACKEND_PORT", free_port().to_string()),
        ];
        IstioProxy::start(
            "tests/istio/sidecar.yaml",
            resource,
            env,
            sink,
            port,
            values,
        )
    }

    /// Starts an ingress gateway (tests/istio/gateway.yaml) in front of
    /// `sidecar`.
    pub fn gateway(
        resource: &Value,
        env: &[(&str, &str)],
        sink: &Sink,
        sidecar: &IstioProxy,
    ) -> Self {
        let port = free_port();
        let values = vec![
            ("GATEWAY_PORT", port.to_string()),
            ("INBOUND_PORT", sidecar.port.to_string()),
        ];
        IstioProxy::start(
            "tests/istio/gateway.yaml",
            resource,
            env,
            sink,
            port,
            values,
        )
    }

    fn start(
        template: &str,
        resource: &Value,
        env: &[(&str, &str)],
        sink: &Sink,
        port: u16,
        mut values: Vec<(&'static str, String)>,
    ) -> Self {
        let dir = run_dir();
        let ecds = dir.join("ecds");
        std::fs::create_dir_all(&ecds).unwrap_or_else(|e| panic!("{}: {e}", ecds.display()));
        let admin_port = free_port();
        let sink_cluster = resource
            .pointer("/resources/0/typed_config/config/configuration/value")
            .and_then(Value::as_str)
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .and_then(|c| c["sink"]["cluster"].as_str().map(str::to_string))
            .unwrap_or_else(shipped_sink_cluster);
        let text = std::fs::read_to_string(repo_root().join(template))
            .unwrap_or_else(|e| panic!("{template}: {e}"));
        values.extend([
            ("ADMIN_PORT", admin_port.to_string()),
            ("SINK_PORT", sink.port().to_string()),
            ("SINK_CLUSTER", sink_cluster),
            ("CERT_DIR", pki().display().to_string()),
            ("ECDS_DIR", ecds.display().to_string()),
        ]);
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, render(&text, &values)).unwrap_or_else(|e| panic!("{e}"));
        write_atomically(&ecds.join("plugin.json"), resource);
        let mut cmd = Command::new(envoy_bin());
        cmd.arg("-c")
            .arg(&config_path)
            .args(["--use-dynamic-base-id", "--concurrency", "2", "-l", "info"])
            .args(["--component-log-level", "wasm:debug"])
            .args(["--file-flush-interval-msec", "50"])
            .arg("--log-path")
            .arg(dir.join("envoy.log"))
            .stdin(Stdio::null())
            .stdout(file(&dir.join("stdout.log")))
            .stderr(file(&dir.join("stderr.log")));
        for (k, _) in KEYS {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", envoy_bin().display()));
        wait_ready(&mut child, admin_port, template);
        IstioProxy {
            child,
            admin_port,
            port,
            dir,
        }
    }

    /// Replaces the ECDS resource, as istiod pushing an update; Envoy sees
    /// the rename in the watched directory.
    pub fn update(&self, resource: &Value) {
        write_atomically(&self.dir.join("ecds/plugin.json"), resource);
    }

    /// GET `path` on the sidecar's inbound listener, over mTLS as the
    /// frontend workload.
    pub fn inbound(&self, path: &str) -> Reply {
        let dir = pki();
        let args: Vec<String> = vec![
            "--cacert".into(),
            dir.join("ca.pem").display().to_string(),
            "--resolve".into(),
            format!("backend.default.svc:{}:127.0.0.1", self.port),
            "--cert".into(),
            dir.join("frontend.pem").display().to_string(),
            "--key".into(),
            dir.join("frontend-key.pem").display().to_string(),
        ];
        let url = format!("https://backend.default.svc:{}{path}", self.port);
        crate::e2e::client::curl(&args, &url, &[])
    }

    /// GET `path` on a gateway's listener as an end user with `jwt`.
    pub fn end_user(&self, path: &str, jwt: &str) -> Reply {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let auth = format!("Bearer {jwt}");
        crate::e2e::client::curl(&[], &url, &[("authorization", &auth)])
    }

    pub fn stats(&self) -> BTreeMap<String, u64> {
        mesh_audit_stats(self.admin_port)
    }

    /// One Envoy stat by its full name (0 when absent).
    pub fn envoy_stat(&self, name: &str) -> u64 {
        let (_, body) = admin_request(self.admin_port, "GET", &format!("/stats?filter={name}"))
            .unwrap_or_else(|| panic!("admin port {} unreachable", self.admin_port));
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The admin's Prometheus text, the mesh-audit samples only.
    pub fn prometheus(&self) -> String {
        let (_, body) = admin_request(self.admin_port, "GET", "/stats/prometheus")
            .unwrap_or_else(|| panic!("admin port {} unreachable", self.admin_port));
        body.lines()
            .filter(|l| l.starts_with("mesh_audit_"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn log(&self) -> String {
        run_log(&self.dir)
    }

    /// Lines of the log that end with `message` (Envoy prefixes its own).
    pub fn log_lines_ending(&self, message: &str) -> usize {
        self.log().lines().filter(|l| l.ends_with(message)).count()
    }
}

impl Drop for IstioProxy {
    fn drop(&mut self) {
        stop(&mut self.child, &self.dir, "Istio-shaped Envoy");
    }
}

/// The sink cluster of the shipped sidecar plugin.
fn shipped_sink_cluster() -> String {
    shipped(SIDECAR_PLUGIN)["spec"]["pluginConfig"]["sink"]["cluster"]
        .as_str()
        .unwrap_or_else(|| panic!("{SIDECAR_PLUGIN}: no sink.cluster"))
        .to_string()
}

/// Writes `value` beside `path` and renames it into place, so Envoy never
/// reads half a file.
fn write_atomically(path: &Path, value: &Value) {
    let staged = path.with_extension("json.next");
    std::fs::write(&staged, value.to_string())
        .unwrap_or_else(|e| panic!("{}: {e}", staged.display()));
    std::fs::rename(&staged, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn file(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
