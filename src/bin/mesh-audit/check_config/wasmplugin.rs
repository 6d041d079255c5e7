//! The Istio `WasmPlugin` resource's own fields (`extensions.istio.io/v1alpha1`),
//! checked as the API server's schema and istiod's validation do, so a
//! resource `check-config` passes is one `kubectl apply` accepts. Each
//! problem is one line in the filter's style: `<json.path>: <what is wrong>`.

use serde_json::{Map, Value};

/// The line prefix for a problem in the resource itself.
pub const PREFIX: &str = "mesh-audit: invalid WasmPlugin: ";

const FIELDS: &[&str] = &[
    "url",
    "sha256",
    "imagePullPolicy",
    "imagePullSecret",
    "verificationKey",
    "pluginConfig",
    "pluginName",
    "phase",
    "priority",
    "failStrategy",
    "vmConfig",
    "match",
    "type",
    "selector",
    "targetRef",
    "targetRefs",
];
const SCHEMES: &[&str] = &["oci", "http", "https", "file"];
const PHASES: &[&str] = &["UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS"];
const FAIL_STRATEGIES: &[&str] = &["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"];
const PULL_POLICIES: &[&str] = &["UNSPECIFIED_POLICY", "IfNotPresent", "Always"];
const MODES: &[&str] = &["UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER"];
const TYPES: &[&str] = &["UNSPECIFIED_PLUGIN_TYPE", "HTTP"];
const VALUE_FROM: &[&str] = &["INLINE", "HOST"];
/// The API server's limits on `vmConfig.env`.
const MAX_ENV: usize = 256;
const MAX_ENV_NAME: usize = 256;
const MAX_ENV_VALUE: usize = 2048;

/// Every problem of `doc`'s `spec`, in field order; empty when it is valid.
pub fn problems(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(spec) = doc.get("spec").and_then(Value::as_object) else {
        out.push("spec: is required (an object)".to_string());
        return out;
    };
    for key in spec.keys() {
        if !FIELDS.contains(&key.as_str()) {
            out.push(format!("spec.{key}: unknown field"));
        }
    }
    url(spec, &mut out);
    if let Some(v) = spec.get("sha256") {
        let ok = v.as_str().is_some_and(|s| {
            s.is_empty()
                || (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        });
        if !ok {
            out.push(format!(
                "spec.sha256: must be 64 lowercase hex digits, got {v}"
            ));
        }
    }
    one_of(
        spec,
        "imagePullPolicy",
        "spec.imagePullPolicy",
        PULL_POLICIES,
        &mut out,
    );
    one_of(spec, "phase", "spec.phase", PHASES, &mut out);
    one_of(
        spec,
        "failStrategy",
        "spec.failStrategy",
        FAIL_STRATEGIES,
        &mut out,
    );
    if let Some(t) = spec.get("type") {
        if t.as_str() == Some("NETWORK") {
            out.push("spec.type: mesh-audit is an HTTP filter, NETWORK would never run it".into());
        } else {
            one_of(spec, "type", "spec.type", TYPES, &mut out);
        }
    }
    if let Some(name) = spec.get("pluginName") {
        if name.as_str().is_none_or(str::is_empty) {
            out.push(format!(
                "spec.pluginName: must be a non-empty string, got {name}"
            ));
        }
    }
    if let Some(p) = spec.get("priority") {
        if !(p.is_null() || p.as_i64().is_some_and(|n| i32::try_from(n).is_ok())) {
            out.push(format!("spec.priority: must be a 32-bit integer, got {p}"));
        }
    }
    targets(spec, &mut out);
    matches(spec, &mut out);
    vm_env(spec, &mut out);
    out
}

fn one_of(
    spec: &Map<String, Value>,
    key: &str,
    path: &str,
    allowed: &[&str],
    out: &mut Vec<String>,
) {
    let Some(v) = spec.get(key) else {
        return;
    };
    if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
        out.push(format!(
            "{path}: unknown value {v}, expected one of {}",
            allowed.join(", ")
        ));
    }
}

fn url(spec: &Map<String, Value>, out: &mut Vec<String>) {
    let Some(v) = spec.get("url") else {
        out.push("spec.url: is required".into());
        return;
    };
    let Some(u) = v.as_str().filter(|s| !s.trim().is_empty()) else {
        out.push(format!("spec.url: must be a non-empty string, got {v}"));
        return;
    };
    // Without a scheme Istio pulls an OCI image.
    let Some((scheme, rest)) = u.split_once("://") else {
        return;
    };
    if !SCHEMES.contains(&scheme) {
        out.push(format!(
            "spec.url: scheme \"{scheme}\" is not one of oci://, http://, https://, file://"
        ));
    } else if rest.is_empty() || rest == "/" {
        out.push(format!("spec.url: \"{u}\" names no image or file"));
    }
}

fn targets(spec: &Map<String, Value>, out: &mut Vec<String>) {
    let has = |k: &str| spec.get(k).is_some_and(|v| !v.is_null());
    if has("selector") && (has("targetRef") || has("targetRefs")) {
        let other = if has("targetRefs") {
            "targetRefs"
        } else {
            "targetRef"
        };
        out.push(format!(
            "spec: selector and {other} are mutually exclusive, set only one"
        ));
    }
    if has("targetRef") && has("targetRefs") {
        out.push("spec: targetRef and targetRefs are mutually exclusive, set only one".into());
    }
    if let Some(labels) = spec.get("selector").and_then(|s| s.get("matchLabels")) {
        match labels.as_object() {
            None => out.push(format!(
                "spec.selector.matchLabels: expected an object of labels, got {labels}"
            )),
            Some(m) => {
                for (k, v) in m {
                    if k.is_empty() || k.contains('*') || v.as_str().is_none_or(|s| s.contains('*'))
                    {
                        out.push(format!(
                            "spec.selector.matchLabels.{k}: a label key and value must be non-empty strings without wildcards"
                        ));
                    }
                }
            }
        }
    }
    let mut refs: Vec<(String, &Value)> = Vec::new();
    if let Some(r) = spec.get("targetRef").filter(|v| !v.is_null()) {
        refs.push(("spec.targetRef".into(), r));
    }
    if let Some(list) = list(spec.get("targetRefs"), "spec.targetRefs", out) {
        refs.extend(
            list.iter()
                .enumerate()
                .map(|(i, r)| (format!("spec.targetRefs[{i}]"), r)),
        );
    }
    for (path, r) in refs {
        let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let (group, kind) = (text("group"), text("kind"));
        if text("name").is_empty() {
            out.push(format!("{path}.name: is required"));
        }
        let supported = matches!(
            (group, kind),
            ("" | "core", "Service") | ("gateway.networking.k8s.io", "Gateway")
        );
        if !supported {
            out.push(format!(
                "{path}: kind \"{kind}\" of group \"{group}\" is not supported, expected Service (group \"\") or Gateway (group gateway.networking.k8s.io)"
            ));
        }
        if !text("namespace").is_empty() {
            out.push(format!(
                "{path}.namespace: cross-namespace references are not supported"
            ));
        }
    }
}

/// The list at `path`; `None` when it is absent, or is not a list (a problem).
fn list<'a>(v: Option<&'a Value>, path: &str, out: &mut Vec<String>) -> Option<&'a Vec<Value>> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => Some(list),
        Some(other) => {
            out.push(format!("{path}: expected a list, got {other}"));
            None
        }
    }
}

fn matches(spec: &Map<String, Value>, out: &mut Vec<String>) {
    let Some(list) = list(spec.get("match"), "spec.match", out) else {
        return;
    };
    for (i, m) in list.iter().enumerate() {
        let path = format!("spec.match[{i}]");
        let Some(m) = m.as_object() else {
            out.push(format!("{path}: expected an object, got {m}"));
            continue;
        };
        one_of(m, "mode", &format!("{path}.mode"), MODES, out);
        for (j, p) in m
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let n = p.get("number");
            if !n
                .and_then(Value::as_u64)
                .is_some_and(|n| (1..=65535).contains(&n))
            {
                let got = n.map_or("nothing".to_string(), Value::to_string);
                out.push(format!(
                    "{path}.ports[{j}].number: must be a port 1-65535, got {got}"
                ));
            }
        }
    }
}

fn vm_env(spec: &Map<String, Value>, out: &mut Vec<String>) {
    let Some(vm) = spec.get("vmConfig").filter(|v| !v.is_null()) else {
        return;
    };
    let Some(env) = list(vm.get("env"), "spec.vmConfig.env", out) else {
        return;
    };
    if env.len() > MAX_ENV {
        out.push(format!(
            "spec.vmConfig.env: at most {MAX_ENV} variables, got {}",
            env.len()
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, var) in env.iter().enumerate() {
        let path = format!("spec.vmConfig.env[{i}]");
        let Some(var) = var.as_object() else {
            out.push(format!(
                "{path}: expected an object with name, valueFrom, value, got {var}"
            ));
            continue;
        };
        for key in var.keys() {
            if !["name", "value", "valueFrom"].contains(&key.as_str()) {
                out.push(format!("{path}.{key}: unknown field"));
            }
        }
        match var.get("name").and_then(Value::as_str) {
            None | Some("") => out.push(format!("{path}.name: is required")),
            Some(n) if n.len() > MAX_ENV_NAME => {
                out.push(format!("{path}.name: at most {MAX_ENV_NAME} characters"))
            }
            Some(n) if seen.contains(&n) => out.push(format!("{path}.name: {n} is given twice")),
            Some(n) => seen.push(n),
        }
        one_of(
            var,
            "valueFrom",
            &format!("{path}.valueFrom"),
            VALUE_FROM,
            out,
        );
        match var.get("value") {
            None => {}
            Some(_) if var.get("valueFrom").and_then(Value::as_str) == Some("HOST") => out.push(
                format!("{path}.value: may only be set when valueFrom is INLINE (HOST reads the proxy's environment)"),
            ),
            Some(Value::String(s)) if s.len() > MAX_ENV_VALUE => {
                out.push(format!("{path}.value: at most {MAX_ENV_VALUE} characters"))
            }
            Some(Value::String(_)) => {}
            Some(other) => out.push(format!(
                "{path}.value: must be a string (quote it in YAML), got {other}"
            )),
        }
    }
}
