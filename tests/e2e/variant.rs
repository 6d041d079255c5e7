//! The harness's Envoy configurations, derived from envoy/e2e.yaml and its
//! templates: the wasm filter as shipped, as a wasm access logger, or the
//! native module in its place; placeholders filled; what each build adds
//! to Envoy's environment.

use super::repo_root;
use std::path::Path;

/// Moves mesh-audit's HTTP filter of envoy/e2e.yaml into the front HCM's
/// access loggers: an `envoy.access_loggers.wasm` with the same plugin
/// configuration, right after Envoy's own JSON access log. Both lists sit at
/// the same indentation, so the block moves unchanged but for its name and
/// type.
pub(super) fn as_access_logger(config: String) -> String {
    let lines: Vec<&str> = config.lines().collect();
    let (start, end) = wasm_filter_lines(&lines, ITEM);
    let logger: Vec<String> = lines[start..end]
        .iter()
        .map(|l| {
            l.replace("envoy.filters.http.wasm", "envoy.access_loggers.wasm")
                .replace(
                    "extensions.filters.http.wasm.v3.Wasm",
                    "extensions.access_loggers.wasm.v3.WasmAccessLog",
                )
        })
        .collect();
    let front_routes = front_routes(&lines, start, ITEM);
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    out.extend(lines[..front_routes].iter().map(|l| l.to_string()));
    out.extend(logger);
    out.extend(lines[front_routes..start].iter().map(|l| l.to_string()));
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}

/// What envoy/e2e.yaml gives the wasm VM besides the hash key: a
/// standalone Envoy fails fast on a configuration problem.
pub(super) const STRICT: &[(&str, &str)] = &[("MESH_AUDIT_STRICT_CONFIG", "1")];

/// Which build of mesh-audit an Envoy of the harness runs: the same
/// listeners, routes and plugin configuration either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// The `.wasm` as the front listeners' HTTP filter (envoy/e2e.yaml).
    Wasm,
    /// The native module (`make native`): access logger + bootstrap extension.
    Native,
    /// The native module with its HTTP filter too, where fail-closed needs it.
    NativeWithFilter,
}

/// The front HCM's list items in envoy/e2e.yaml (`http_filters`, `access_log`).
const ITEM: &str = "          ";

/// The lines of mesh-audit's wasm HTTP filter, its list item at `indent`:
/// from that item to the next filter's.
fn wasm_filter_lines(lines: &[&str], indent: &str) -> (usize, usize) {
    let first = format!("{indent}- name: envoy.filters.http.wasm");
    let item = format!("{indent}- name: ");
    let start = lines
        .iter()
        .position(|l| *l == first)
        .unwrap_or_else(|| panic!("no mesh-audit HTTP filter at {} spaces", indent.len()));
    let end = start
        + 1
        + lines[start + 1..]
            .iter()
            .position(|l| l.starts_with(&item))
            .unwrap_or_else(|| panic!("nothing after the mesh-audit filter"));
    (start, end)
}

/// Where the HCM's `route_config` (at `indent`) starts: access loggers go
/// right before it, after Envoy's own JSON access log.
fn front_routes(lines: &[&str], filter_start: usize, indent: &str) -> usize {
    let key = format!("{indent}route_config:");
    let at = lines
        .iter()
        .position(|l| *l == key)
        .unwrap_or_else(|| panic!("no route_config at {} spaces", indent.len()));
    assert!(
        at < filter_start,
        "unexpected layout: route_config after the filters"
    );
    at
}

/// The module's bootstrap extension, a top-level key.
fn native_bootstrap() -> Vec<String> {
    vec![
        "bootstrap_extensions:".to_string(),
        "- name: envoy.bootstrap.dynamic_modules".to_string(),
        "  typed_config:".to_string(),
        "    \"@type\": type.googleapis.com/envoy.extensions.bootstrap.dynamic_modules.v3.DynamicModuleBootstrapExtension".to_string(),
        format!("    {MODULE}"),
        "    extension_name: mesh-audit".to_string(),
    ]
}

const MODULE: &str = "dynamic_module_config: {name: mesh_audit, do_not_close: true}";

/// The module's access logger (`http_filter` false) or HTTP filter, as a
/// list item at `indent`, with the plugin configuration placeholder.
fn native_item(indent: &str, http_filter: bool) -> Vec<String> {
    let (name, kind, key, config) = if http_filter {
        (
            "envoy.filters.http.dynamic_modules",
            "filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "filter_name",
            "filter_config",
        )
    } else {
        (
            "envoy.access_loggers.dynamic_modules",
            "access_loggers.dynamic_modules.v3.DynamicModuleAccessLog",
            "logger_name",
            "logger_config",
        )
    };
    vec![
        format!("{indent}- name: {name}"),
        format!("{indent}  typed_config:"),
        format!("{indent}    \"@type\": type.googleapis.com/envoy.extensions.{kind}"),
        format!("{indent}    {MODULE}"),
        format!("{indent}    {key}: mesh-audit"),
        format!("{indent}    {config}:"),
        format!("{indent}      \"@type\": type.googleapis.com/google.protobuf.StringValue"),
        format!("{indent}      value: {{{{PLUGIN_CONFIG}}}}"),
    ]
}

/// `lines` with mesh-audit's wasm filter (items at `indent`) replaced by the
/// module: its access logger before `route_config` (under a new
/// `access_log:` key when `with_key`), and with `http_filter` its HTTP
/// filter where the wasm filter was.
pub(super) fn native_hcm(
    lines: &[&str],
    indent: &str,
    with_key: bool,
    http_filter: bool,
) -> Vec<String> {
    let (start, end) = wasm_filter_lines(lines, indent);
    let routes = front_routes(lines, start, indent);
    let own = |range: &[&str]| range.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    let mut out = own(&lines[..routes]);
    if with_key {
        out.push(format!("{indent}access_log:"));
    }
    out.extend(native_item(indent, false));
    out.extend(own(&lines[routes..start]));
    if http_filter {
        out.extend(native_item(indent, true));
    }
    out.extend(own(&lines[end..]));
    out
}

/// A bootstrap with the module's bootstrap extension before its `admin:`.
pub(super) fn with_native_bootstrap(lines: Vec<String>) -> String {
    let admin = lines
        .iter()
        .position(|l| l == "admin:")
        .unwrap_or_else(|| panic!("no admin section"));
    let mut out = lines[..admin].to_vec();
    out.extend(native_bootstrap());
    out.extend(lines[admin..].iter().cloned());
    out.join("\n") + "\n"
}

/// envoy/e2e.yaml (or a template laid out like it) with mesh-audit as the
/// native module instead of the `.wasm`: a bootstrap extension (delivery,
/// shutdown drain), an access logger on the front HCM in place of the HTTP
/// filter, and, with `http_filter`, the module's HTTP filter where the wasm
/// filter was. Everything else (listeners, RBAC, JWT, routes, clusters) is
/// the template's.
pub fn as_native(config: String, http_filter: bool) -> String {
    let lines: Vec<&str> = config.lines().collect();
    with_native_bootstrap(native_hcm(&lines, ITEM, false, http_filter))
}

/// What a harness Envoy running `build` adds to its environment: nothing
/// for the wasm filter (its VM's variables are in the template); for the
/// native module, where Envoy finds it, the hash key the wasm VM is given in
/// envoy/e2e.yaml, and `env`.
pub fn build_env(build: Build, env: &[(&str, &str)]) -> Vec<(String, std::ffi::OsString)> {
    if build == Build::Wasm {
        return Vec::new();
    }
    let module = super::native_module();
    let search_path = module.parent().unwrap_or(Path::new("."));
    let mut vars = vec![
        (
            "ENVOY_DYNAMIC_MODULES_SEARCH_PATH".to_string(),
            search_path.as_os_str().to_os_string(),
        ),
        ("MESH_AUDIT_HASH_KEY".to_string(), "e2e-hash-key".into()),
    ];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.into())));
    vars
}

/// Fills `{{NAME}}` placeholders; every placeholder must be given a value.
pub fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    if let Some(at) = out.find("{{") {
        let rest = &out[at..];
        panic!(
            "unfilled placeholder {}",
            &rest[..rest.find("}}").map_or(rest.len(), |e| e + 2)]
        );
    }
    out
}

/// The plugin configuration as the YAML scalar the templates expect: a JSON
/// string literal is also a valid YAML double-quoted string.
pub fn plugin_config_scalar(config: &serde_json::Value) -> String {
    serde_json::Value::String(config.to_string()).to_string()
}
