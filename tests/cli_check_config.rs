//! `mesh-audit check-config`: the filter's own checks and exact error line
//! over plain JSON, Envoy bootstraps (YAML and JSON) and Istio WasmPlugins.
#![cfg(feature = "cli")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use cli_support::{fixture, run, stdout, Scratch};
use mesh_audit::config::{error_line, Config};

const KEY_NOT_SET: &str = "is not set (pass it in vm_config.environment_variables)";
/// What a missing chain key becomes outside strict mode (SPEC §2.7).
const UNKEYED: &str = "the chain is unkeyed (plain SHA-256) (chain_key_missing)";

struct Case {
    name: &'static str,
    config: &'static str,
    env: &'static [(&'static str, &'static str)],
    /// `None`: valid. `Some`: the error after `mesh-audit: invalid configuration: `.
    error: Option<&'static str>,
}

const JSON_CASES: &[Case] = &[
    Case { name: "minimal", config: r#"{"sink": {"cluster": "audit_sink"}}"#, env: &[], error: None },
    Case { name: "no sink", config: "{}", env: &[], error: Some("sink: is required") },
    Case { name: "empty cluster", config: r#"{"sink": {"cluster": ""}}"#, env: &[], error: Some("sink.cluster: must not be empty") },
    Case {
        name: "unknown format",
        config: r#"{"sink": {"cluster": "a", "format": "csv"}}"#,
        env: &[],
        error: Some(r#"sink.format: unknown format "csv", expected jsonl or otlp"#),
    },
    Case {
        name: "rate out of range",
        config: r#"{"sink": {"cluster": "a"}, "sampling": {"rules": [{"name": "x", "rate": 1.5}]}}"#,
        env: &[],
        error: Some("sampling.rules[0].rate: must be between 0 and 1, got 1.5"),
    },
    Case {
        name: "chain key missing, strict",
        config: r#"{"sink": {"cluster": "a"}, "integrity": {"key_env": "CHECK_CONFIG_TEST_KEY"}}"#,
        env: &[("MESH_AUDIT_STRICT_CONFIG", "1")],
        error: Some("integrity.key_env: environment variable CHECK_CONFIG_TEST_KEY is not set (pass it in vm_config.environment_variables)"),
    },
    Case {
        name: "chain key present",
        config: r#"{"sink": {"cluster": "a"}, "integrity": {"key_env": "CHECK_CONFIG_TEST_KEY"}}"#,
        env: &[("CHECK_CONFIG_TEST_KEY", "s3cret")],
        error: None,
    },
];

#[test]
fn plain_json_configs_get_the_filters_exact_error_line() {
    let s = Scratch::new("check-json");
    for case in JSON_CASES {
        let path = s.path("config.json");
        std::fs::write(&path, case.config).unwrap();
        let out = run(&["check-config", path.to_str().unwrap()], case.env);
        let expected = match case.error {
            None => "ok\n".to_string(),
            Some(e) => format!("mesh-audit: invalid configuration: {e}\n"),
        };
        assert_eq!(stdout(&out), expected, "case {}", case.name);
        assert_eq!(
            out.status.code(),
            Some(if case.error.is_none() { 0 } else { 1 }),
            "case {}",
            case.name
        );

        // The very line the filter logs for the same bytes and environment.
        let env = |name: &str| {
            case.env
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        if let Err(e) = Config::from_json(case.config.as_bytes(), &env) {
            assert_eq!(
                stdout(&out),
                format!("{}\n", error_line(&e)),
                "case {}",
                case.name
            );
        }
    }
}

#[test]
fn broken_json_is_reported_like_the_filter_does() {
    let s = Scratch::new("check-broken");
    let path = s.path("config.json");
    std::fs::write(&path, "{\"sink\": ").unwrap();
    let out = run(&["check-config", path.to_str().unwrap()], &[]);
    let line = error_line(&Config::from_json(b"{\"sink\": ", &|_: &str| None).unwrap_err());
    assert_eq!(stdout(&out), format!("{line}\n"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_spec_example_needs_both_keys_in_the_environment() {
    let file = fixture("plugin-full.json");
    let path = file.to_str().unwrap();
    let out = run(&["check-config", path], &[("MESH_AUDIT_HASH_KEY", "h")]);
    assert_eq!(stdout(&out), format!("mesh-audit: degraded configuration: integrity.key_env: environment variable MESH_AUDIT_CHAIN_KEY {KEY_NOT_SET}; {UNKEYED}\n"));
    assert_eq!(out.status.code(), Some(1));
    let out = run(
        &["check-config", path],
        &[("MESH_AUDIT_HASH_KEY", "h"), ("MESH_AUDIT_CHAIN_KEY", "c")],
    );
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("ok\n", Some(0))
    );
}

const INGRESS: &str = "static_resources.listeners[0](ingress).filter_chains[0].filters[0](envoy.filters.network.http_connection_manager).http_filters[0](envoy.filters.http.wasm)";
const EGRESS: &str = "static_resources.listeners[1](egress).filter_chains[0].filters[0](envoy.filters.network.http_connection_manager).http_filters[0](audit)";

#[test]
fn every_mesh_audit_filter_of_an_envoy_bootstrap_is_checked_where_it_is() {
    // The ingress filter's key comes from its vm_config, not from this process;
    // the other plugin's Wasm filter is not ours and is left alone.
    let out = run(
        &[
            "check-config",
            fixture("envoy-bootstrap.yaml").to_str().unwrap(),
        ],
        &[],
    );
    let expected = format!(
        "{INGRESS}: ok\n{EGRESS}: mesh-audit: invalid configuration: sampling.default_rate: must be between 0 and 1, got 2\n"
    );
    assert_eq!(stdout(&out), expected);
    assert_eq!(out.status.code(), Some(1));

    let out = run(
        &[
            "check-config",
            fixture("envoy-bootstrap.json").to_str().unwrap(),
        ],
        &[],
    );
    let at = "static_resources.listeners[0](main).filter_chains[0].filters[0](envoy.filters.network.http_connection_manager).http_filters[0](envoy.filters.http.wasm)";
    assert_eq!(stdout(&out), format!("{at}: mesh-audit: invalid configuration: sink.format: unknown format \"csv\", expected jsonl or otlp\n"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_key_only_in_this_process_does_not_satisfy_a_filter_whose_vm_config_lacks_it() {
    let s = Scratch::new("check-envoy-env");
    let yaml = std::fs::read_to_string(fixture("envoy-bootstrap.yaml")).unwrap();
    let without = yaml.replace(
        "key_values: {MESH_AUDIT_CHAIN_KEY: \"k3y-from-vm-config\"}",
        "host_env_keys: [MESH_AUDIT_CHAIN_KEY]",
    );
    assert_ne!(without, yaml);
    let path = s.path("envoy.yaml");
    std::fs::write(&path, &without).unwrap();
    let missing = format!("{INGRESS}: mesh-audit: degraded configuration: integrity.key_env: environment variable MESH_AUDIT_CHAIN_KEY {KEY_NOT_SET}; {UNKEYED}\n");
    let out = run(&["check-config", path.to_str().unwrap()], &[]);
    assert!(stdout(&out).starts_with(&missing), "{}", stdout(&out));
    // host_env_keys passes the variable through from Envoy's environment (here, ours).
    let out = run(
        &["check-config", path.to_str().unwrap()],
        &[("MESH_AUDIT_CHAIN_KEY", "k")],
    );
    assert!(
        stdout(&out).starts_with(&format!("{INGRESS}: ok\n")),
        "{}",
        stdout(&out)
    );

    let declared = "                  environment_variables:\n                    key_values: {MESH_AUDIT_CHAIN_KEY: \"k3y-from-vm-config\"}\n";
    let undeclared = yaml.replace(declared, "");
    assert_ne!(undeclared, yaml);
    std::fs::write(&path, &undeclared).unwrap();
    let out = run(
        &["check-config", path.to_str().unwrap()],
        &[("MESH_AUDIT_CHAIN_KEY", "k")],
    );
    assert!(stdout(&out).starts_with(&missing), "{}", stdout(&out));
}

#[test]
fn istio_wasm_plugins_are_checked_with_their_vm_env() {
    let path = fixture("istio-wasmplugin.yaml");
    let gateway = "WasmPlugin gateways/mesh-audit-gateway: mesh-audit: invalid configuration: on_overflow: unknown value \"block\", expected drop or reject\n";
    let out = run(&["check-config", path.to_str().unwrap()], &[]);
    assert_eq!(
        stdout(&out),
        format!("WasmPlugin istio-system/mesh-audit: mesh-audit: degraded configuration: integrity.key_env: environment variable MESH_AUDIT_CHAIN_KEY {KEY_NOT_SET}; {UNKEYED}\n{gateway}")
    );
    assert_eq!(out.status.code(), Some(1));
    // valueFrom: HOST reads the proxy's environment; the hash key is inline.
    let out = run(
        &["check-config", path.to_str().unwrap()],
        &[("MESH_AUDIT_CHAIN_KEY", "k")],
    );
    assert_eq!(
        stdout(&out),
        format!("WasmPlugin istio-system/mesh-audit: ok\n{gateway}")
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn files_without_a_mesh_audit_configuration_fail() {
    let s = Scratch::new("check-none");
    let cases: [(&str, &str, &str, i32); 4] = [
        (
            "other.yaml",
            "kind: Deployment\nmetadata: {name: x}\n",
            "no mesh-audit configuration found",
            1,
        ),
        ("broken.yaml", "foo: [1\n", "not valid JSON or YAML", 1),
        (
            "bootstrap.yaml",
            "static_resources:\n  listeners: []\n",
            "no mesh-audit filter found",
            1,
        ),
        ("empty.yaml", "", "no mesh-audit configuration found", 1),
    ];
    for (name, content, message, code) in cases {
        let path = s.path(name);
        std::fs::write(&path, content).unwrap();
        let out = run(&["check-config", path.to_str().unwrap()], &[]);
        let text = stdout(&out);
        assert!(
            text.starts_with(&format!("{}: {message}", path.display())),
            "{name}: {text}"
        );
        assert_eq!(out.status.code(), Some(code), "{name}");
    }
    let out = run(
        &["check-config", s.path("absent.json").to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
}
