//! `mesh-audit check-config` on an Istio `WasmPlugin`: the resource's own
//! fields as the API server and istiod check them (SPEC §5), each problem
//! one exact line, then the plugin configuration as the filter checks it.
#![cfg(feature = "cli")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use cli_support::{run, stdout, Scratch};

const AT: &str = "WasmPlugin shop/mesh-audit: ";

/// A valid resource with `spec_extra` (YAML lines, indented for `spec:`)
/// added after its URL line, which `url` replaces.
fn plugin(url: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {{name: mesh-audit, namespace: shop}}
spec:
  url: {url}
{spec_extra}  pluginConfig:
    sink: {{cluster: \"outbound|8080||audit-sink.audit.svc.cluster.local\"}}
"
    )
}

fn check(yaml: &str) -> (String, Option<i32>) {
    // Tests run in parallel: each check gets its own scratch directory.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let s = Scratch::new(&format!("check-wasmplugin-{n}"));
    let path = s.path("plugin.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = run(&["check-config", path.to_str().unwrap()], &[]);
    (stdout(&out), out.status.code())
}

const OCI: &str = "oci://registry.example.com/mesh-audit:0.1.0";

#[test]
fn a_resource_the_api_server_accepts_is_ok() {
    let extra = "  phase: STATS
  failStrategy: FAIL_OPEN
  imagePullPolicy: IfNotPresent
  type: HTTP
  priority: 10
  sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  selector: {matchLabels: {app: orders}}
  match: [{mode: SERVER, ports: [{number: 8080}]}]
  vmConfig:
    env:
    - {name: MESH_AUDIT_STRICT_CONFIG, value: \"0\"}
    - {name: MESH_AUDIT_HASH_KEY, valueFrom: HOST}
";
    for url in [
        OCI,
        "registry.example.com/mesh-audit:0.1.0",
        "https://artifacts.example.com/mesh_audit.wasm",
        "http://artifacts.example.com/mesh_audit.wasm",
        "file:///opt/filters/mesh_audit.wasm",
    ] {
        assert_eq!(
            check(&plugin(url, extra)),
            (format!("{AT}ok\n"), Some(0)),
            "{url}"
        );
    }
    let gateway = "  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: ingress}
  - {kind: Service, name: orders}
";
    assert_eq!(check(&plugin(OCI, gateway)), (format!("{AT}ok\n"), Some(0)));
}

#[test]
fn each_field_the_api_server_rejects_gets_its_own_line() {
    let table: &[(&str, &str, &str)] = &[
        ("ftp://example.com/x.wasm", "", "spec.url: scheme \"ftp\" is not one of oci://, http://, https://, file://"),
        ("oci://", "", "spec.url: \"oci://\" names no image or file"),
        ("\"\"", "", "spec.url: must be a non-empty string, got \"\""),
        (OCI, "  phase: LOGGING\n", "spec.phase: unknown value \"LOGGING\", expected one of UNSPECIFIED_PHASE, AUTHN, AUTHZ, STATS"),
        (OCI, "  failStrategy: FAIL_SAFE\n", "spec.failStrategy: unknown value \"FAIL_SAFE\", expected one of FAIL_CLOSE, FAIL_OPEN, FAIL_RELOAD"),
        (OCI, "  imagePullPolicy: Never\n", "spec.imagePullPolicy: unknown value \"Never\", expected one of UNSPECIFIED_POLICY, IfNotPresent, Always"),
        (OCI, "  type: NETWORK\n", "spec.type: mesh-audit is an HTTP filter, NETWORK would never run it"),
        (OCI, "  type: TCP\n", "spec.type: unknown value \"TCP\", expected one of UNSPECIFIED_PLUGIN_TYPE, HTTP"),
        (OCI, "  sha256: ABC\n", "spec.sha256: must be 64 lowercase hex digits, got \"ABC\""),
        (OCI, "  priority: high\n", "spec.priority: must be a 32-bit integer, got \"high\""),
        (OCI, "  pluginName: \"\"\n", "spec.pluginName: must be a non-empty string, got \"\""),
        (OCI, "  rootID: mesh-audit\n", "spec.rootID: unknown field"),
        (OCI, "  selector: {matchLabels: {app: orders}}\n  targetRefs: [{kind: Service, name: orders}]\n", "spec: selector and targetRefs are mutually exclusive, set only one"),
        (OCI, "  selector: {matchLabels: {app: \"*\"}}\n", "spec.selector.matchLabels.app: a label key and value must be non-empty strings without wildcards"),
        (OCI, "  targetRef: {kind: Service, name: a}\n  targetRefs: [{kind: Service, name: b}]\n", "spec: targetRef and targetRefs are mutually exclusive, set only one"),
        (OCI, "  targetRefs: [{kind: Deployment, group: apps, name: orders}]\n", "spec.targetRefs[0]: kind \"Deployment\" of group \"apps\" is not supported, expected Service (group \"\") or Gateway (group gateway.networking.k8s.io)"),
        (OCI, "  targetRefs: [{kind: Service}]\n", "spec.targetRefs[0].name: is required"),
        (OCI, "  targetRefs: [{kind: Service, name: a, namespace: other}]\n", "spec.targetRefs[0].namespace: cross-namespace references are not supported"),
        (OCI, "  match: [{mode: INBOUND}]\n", "spec.match[0].mode: unknown value \"INBOUND\", expected one of UNDEFINED, CLIENT, SERVER, CLIENT_AND_SERVER"),
        (OCI, "  match: [{mode: SERVER, ports: [{number: 0}]}]\n", "spec.match[0].ports[0].number: must be a port 1-65535, got 0"),
        (OCI, "  match: {mode: SERVER}\n", "spec.match: expected a list, got {\"mode\":\"SERVER\"}"),
        (OCI, "  vmConfig: {env: [{name: K, valueFrom: HOST, value: x}]}\n", "spec.vmConfig.env[0].value: may only be set when valueFrom is INLINE (HOST reads the proxy's environment)"),
        (OCI, "  vmConfig: {env: [{name: K, valueFrom: SECRET}]}\n", "spec.vmConfig.env[0].valueFrom: unknown value \"SECRET\", expected one of INLINE, HOST"),
        (OCI, "  vmConfig: {env: [{value: x}]}\n", "spec.vmConfig.env[0].name: is required"),
        (OCI, "  vmConfig: {env: [{name: K, value: 1}]}\n", "spec.vmConfig.env[0].value: must be a string (quote it in YAML), got 1"),
        (OCI, "  vmConfig: {env: [{name: K, value: a}, {name: K, value: b}]}\n", "spec.vmConfig.env[1].name: K is given twice"),
        (OCI, "  vmConfig: {env: [{name: K, valueFrom: HOST, secretRef: s}]}\n", "spec.vmConfig.env[0].secretRef: unknown field"),
        (OCI, "  vmConfig: {env: {K: v}}\n", "spec.vmConfig.env: expected a list, got {\"K\":\"v\"}"),
    ];
    for (url, extra, want) in table {
        let (out, code) = check(&plugin(url, extra));
        assert_eq!(
            (out.as_str(), code),
            (
                format!("{AT}mesh-audit: invalid WasmPlugin: {want}\n").as_str(),
                Some(1)
            ),
            "spec extra {extra:?}"
        );
    }
}

#[test]
fn every_problem_is_reported_at_once_and_then_the_plugin_config() {
    let yaml = "apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: mesh-audit, namespace: shop}
spec:
  url: s3://bucket/mesh_audit.wasm
  phase: LOG
  failStrategy: OPEN
  selector: {matchLabels: {app: orders}}
  targetRefs: [{kind: Service, name: orders}]
  match: [{mode: INBOUND}]
  vmConfig: {env: [{name: MESH_AUDIT_HASH_KEY, valueFrom: HOST, value: k}]}
  pluginConfig: {sink: {cluster: \"\"}}
";
    let (out, code) = check(yaml);
    let p = format!("{AT}mesh-audit: invalid WasmPlugin: ");
    let expected = [
        format!("{p}spec.url: scheme \"s3\" is not one of oci://, http://, https://, file://"),
        format!("{p}spec.phase: unknown value \"LOG\", expected one of UNSPECIFIED_PHASE, AUTHN, AUTHZ, STATS"),
        format!("{p}spec.failStrategy: unknown value \"OPEN\", expected one of FAIL_CLOSE, FAIL_OPEN, FAIL_RELOAD"),
        format!("{p}spec: selector and targetRefs are mutually exclusive, set only one"),
        format!("{p}spec.match[0].mode: unknown value \"INBOUND\", expected one of UNDEFINED, CLIENT, SERVER, CLIENT_AND_SERVER"),
        format!("{p}spec.vmConfig.env[0].value: may only be set when valueFrom is INLINE (HOST reads the proxy's environment)"),
        format!("{AT}mesh-audit: invalid configuration: sink.cluster: must not be empty"),
    ];
    assert_eq!(out, format!("{}\n", expected.join("\n")));
    assert_eq!(code, Some(1));
}

#[test]
fn a_missing_key_is_reported_as_the_degradation_the_proxy_would_apply() {
    let yaml = plugin(
        OCI,
        "  vmConfig: {env: [{name: CHECK_WASMPLUGIN_HASH_KEY, valueFrom: HOST}]}\n",
    )
    .replace(
        "    sink: {",
        "    redact: {headers: {x-user: hash}, hash_key_env: CHECK_WASMPLUGIN_HASH_KEY}\n    sink: {",
    );
    let degraded = format!("{AT}mesh-audit: degraded configuration: redact.hash_key_env: environment variable CHECK_WASMPLUGIN_HASH_KEY is not set (pass it in vm_config.environment_variables); hash becomes mask (hash_key_missing)\n");
    assert_eq!(check(&yaml), (degraded, Some(1)));
    // With MESH_AUDIT_STRICT_CONFIG in the VM the proxy refuses it instead.
    let strict = yaml.replace(
        "env: [{name: CHECK",
        "env: [{name: MESH_AUDIT_STRICT_CONFIG, value: \"1\"}, {name: CHECK",
    );
    let refused = format!("{AT}mesh-audit: invalid configuration: redact.hash_key_env: environment variable CHECK_WASMPLUGIN_HASH_KEY is not set (pass it in vm_config.environment_variables)\n");
    assert_eq!(check(&strict), (refused, Some(1)));
}
