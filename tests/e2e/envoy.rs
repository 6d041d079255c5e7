//! One real Envoy per test, started from envoy/e2e.yaml with the release
//! `.wasm`, stopped on drop. When a test fails, Envoy's log is printed.

use super::sink::Sink;
use super::{envoy_bin, free_port, pki, repo_root, target_dir, wait_for, wasm};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// V8 compiles the module at start; two parallel Envoys on a small machine
/// take a few seconds at worst.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Moves mesh-audit's HTTP filter of envoy/e2e.yaml into the front HCM's
/// access loggers: an `envoy.access_loggers.wasm` with the same plugin
/// configuration, right after Envoy's own JSON access log. Both lists sit at
/// the same indentation, so the block moves unchanged but for its name and
/// type.
fn as_access_logger(config: String) -> String {
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
const STRICT: &[(&str, &str)] = &[("MESH_AUDIT_STRICT_CONFIG", "1")];

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
fn native_hcm(lines: &[&str], indent: &str, with_key: bool, http_filter: bool) -> Vec<String> {
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
fn with_native_bootstrap(lines: Vec<String>) -> String {
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

pub struct Envoy {
    child: Child,
    pub admin_port: u16,
    pub mtls_port: u16,
    pub plain_port: u16,
    dir: PathBuf,
    /// The listener file of a reloadable Envoy.
    listeners: Option<Listeners>,
}

/// The filesystem LDS file of a reloadable Envoy, and how to render it.
struct Listeners {
    path: PathBuf,
    template: String,
    values: Vec<(&'static str, String)>,
}

impl Listeners {
    /// Writes the listener with this plugin configuration; a rename, so
    /// Envoy never reads half a file (it watches for the move).
    fn write(&self, plugin_config: &serde_json::Value) {
        let mut values = self.values.clone();
        values.push(("PLUGIN_CONFIG", plugin_config_scalar(plugin_config)));
        let staged = self.path.with_extension("yaml.next");
        write(&staged, &render(&self.template, &values));
        std::fs::rename(&staged, &self.path)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
    }
}

impl Envoy {
    /// Starts Envoy with this plugin configuration, delivering to `sink`,
    /// and waits until it reports ready.
    pub fn start(plugin_config: &serde_json::Value, sink: &Sink) -> Envoy {
        Envoy::spawn(plugin_config, sink).ready()
    }

    /// Starts Envoy with a configuration it must refuse; returns its log once
    /// it has exited unsuccessfully.
    pub fn start_expecting_refusal(plugin_config: &serde_json::Value, sink: &Sink) -> String {
        Envoy::start_build_expecting_refusal(Build::Wasm, plugin_config, sink)
    }

    /// [`Envoy::start_expecting_refusal`] with `build` of mesh-audit, strict
    /// as in [`Envoy::start_build`].
    pub fn start_build_expecting_refusal(
        build: Build,
        plugin_config: &serde_json::Value,
        sink: &Sink,
    ) -> String {
        let mut envoy = match build {
            Build::Wasm => Envoy::spawn(plugin_config, sink),
            native => Envoy::spawn_native(native, plugin_config, sink.port(), 1, STRICT),
        };
        let status = wait_for(START_TIMEOUT, || envoy.child.try_wait().ok().flatten());
        let status: ExitStatus =
            status.unwrap_or_else(|| panic!("Envoy still running after {START_TIMEOUT:?}"));
        assert!(
            !status.success(),
            "Envoy accepted the configuration and exited with {status}"
        );
        envoy.log()
    }

    /// Starts Envoy with mesh-audit attached as a wasm access logger
    /// (`envoy.access_loggers.wasm`) instead of an HTTP filter: the same
    /// `.wasm`, configuration and listeners as [`Envoy::start`].
    pub fn start_access_logger(plugin_config: &serde_json::Value, sink: &Sink) -> Envoy {
        Envoy::spawn_with(plugin_config, sink, as_access_logger).ready()
    }

    /// Starts Envoy with `build` of mesh-audit, as the wasm VM would be
    /// configured: the hash key, and strict mode (a standalone Envoy fails
    /// fast on a configuration problem).
    pub fn start_build(build: Build, plugin_config: &serde_json::Value, sink: &Sink) -> Envoy {
        match build {
            Build::Wasm => Envoy::start(plugin_config, sink),
            native => Envoy::start_native_with(native, plugin_config, sink.port(), 1, STRICT),
        }
    }

    /// Starts Envoy from envoy/e2e.yaml with mesh-audit as the native
    /// module (`make native`) instead of the `.wasm`, found through
    /// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`. The module reads the variables
    /// the wasm VM is given from Envoy's environment: the hash key here.
    pub fn start_native(plugin_config: &serde_json::Value, sink_port: u16, workers: u32) -> Envoy {
        Envoy::start_native_with(Build::Native, plugin_config, sink_port, workers, &[])
    }

    /// [`Envoy::start_native`] as `build`, with `env` added to Envoy's environment.
    pub fn start_native_with(
        build: Build,
        plugin_config: &serde_json::Value,
        sink_port: u16,
        workers: u32,
        env: &[(&str, &str)],
    ) -> Envoy {
        Envoy::spawn_native(build, plugin_config, sink_port, workers, env).ready()
    }

    fn spawn_native(
        build: Build,
        plugin_config: &serde_json::Value,
        sink_port: u16,
        workers: u32,
        env: &[(&str, &str)],
    ) -> Envoy {
        assert_ne!(build, Build::Wasm, "spawn_native runs the native module");
        let dir = run_dir();
        let (admin_port, mtls_port, plain_port) = (free_port(), free_port(), free_port());
        let template = as_native(
            read_template("envoy/e2e.yaml"),
            build == Build::NativeWithFilter,
        );
        let config = render(
            &template,
            &[
                ("ADMIN_PORT", admin_port.to_string()),
                ("MTLS_PORT", mtls_port.to_string()),
                ("PLAIN_PORT", plain_port.to_string()),
                ("BACKEND_PORT", free_port().to_string()),
                ("SINK_PORT", sink_port.to_string()),
                ("CLOSED_PORT", free_port().to_string()),
                ("CERT_DIR", pki().display().to_string()),
                ("PLUGIN_CONFIG", plugin_config_scalar(plugin_config)),
                ("ACCESS_LOG", dir.join("access.log").display().to_string()),
                // Only e2e.yaml's header comment names it: no .wasm is loaded.
                ("WASM", "(none: the native module)".to_string()),
            ],
        );
        let config_path = dir.join("envoy.yaml");
        write(&config_path, &config);
        let child = launch_with_env(&config_path, &dir, workers, &[], &build_env(build, env));
        Envoy {
            child,
            admin_port,
            mtls_port,
            plain_port,
            dir,
            listeners: None,
        }
    }

    fn spawn(plugin_config: &serde_json::Value, sink: &Sink) -> Envoy {
        Envoy::spawn_with(plugin_config, sink, |config| config)
    }

    fn spawn_with(
        plugin_config: &serde_json::Value,
        sink: &Sink,
        attach: fn(String) -> String,
    ) -> Envoy {
        let dir = run_dir();
        let (admin_port, mtls_port, plain_port) = (free_port(), free_port(), free_port());
        let template = read_template("envoy/e2e.yaml");
        let config = render(
            &template,
            &[
                ("ADMIN_PORT", admin_port.to_string()),
                ("MTLS_PORT", mtls_port.to_string()),
                ("PLAIN_PORT", plain_port.to_string()),
                ("BACKEND_PORT", free_port().to_string()),
                ("SINK_PORT", sink.port().to_string()),
                ("CLOSED_PORT", free_port().to_string()),
                ("CERT_DIR", pki().display().to_string()),
                ("WASM", wasm().display().to_string()),
                ("PLUGIN_CONFIG", plugin_config_scalar(plugin_config)),
                ("ACCESS_LOG", dir.join("access.log").display().to_string()),
            ],
        );
        let config_path = dir.join("envoy.yaml");
        write(&config_path, &attach(config));
        let child = launch(&config_path, &dir, 1, &[]);
        Envoy {
            child,
            admin_port,
            mtls_port,
            plain_port,
            dir,
            listeners: None,
        }
    }

    /// Starts Envoy from tests/e2e/faults.yaml: the plaintext listener (with the
    /// filter) comes from a file Envoy watches (filesystem LDS), so
    /// [`Envoy::reload_plugin`] can replace it, and Envoy drains the old one
    /// for 1 s before it removes it. There is no mTLS listener.
    pub fn start_reloadable(plugin_config: &serde_json::Value, sink: &Sink) -> Envoy {
        Envoy::start_reloadable_on(Build::Wasm, plugin_config, sink, &serde_json::json!({}))
    }

    /// [`Envoy::start_reloadable`] running `build`, with the variables of
    /// `env` (a JSON object of strings, e.g. a signing key) where the build
    /// reads them: the filter VM's environment for the wasm filter, Envoy's
    /// own for the native module. For the native module, its bootstrap
    /// extension goes in faults.yaml and its access logger in the listener
    /// file instead of the wasm filter, so a reload drops the old listener's
    /// loggers while the bootstrap extension stays.
    pub fn start_reloadable_on(
        build: Build,
        plugin_config: &serde_json::Value,
        sink: &Sink,
        env: &serde_json::Value,
    ) -> Envoy {
        let dir = run_dir();
        let (admin_port, plain_port, backend_port) = (free_port(), free_port(), free_port());
        let (lds_template, bootstrap) = (
            read_template("tests/e2e/faults-lds.yaml"),
            read_template("tests/e2e/faults.yaml"),
        );
        let (lds_template, bootstrap, wasm_path) = match build {
            Build::Wasm => (lds_template, bootstrap, wasm().display().to_string()),
            native => {
                let lines: Vec<&str> = lds_template.lines().collect();
                let hcm = native_hcm(&lines, "        ", true, native == Build::NativeWithFilter);
                let lines: Vec<String> = bootstrap.lines().map(str::to_string).collect();
                (
                    hcm.join("\n") + "\n",
                    with_native_bootstrap(lines),
                    "(none: the native module)".to_string(),
                )
            }
        };
        let lds = Listeners {
            path: dir.join("lds.yaml"),
            template: lds_template,
            values: vec![
                ("PLAIN_PORT", plain_port.to_string()),
                ("WASM", wasm_path),
                // JSON is YAML's flow syntax: the object goes in as it is.
                ("VM_ENV", env.to_string()),
            ],
        };
        lds.write(plugin_config);
        let config = render(
            &bootstrap,
            &[
                ("ADMIN_PORT", admin_port.to_string()),
                ("BACKEND_PORT", backend_port.to_string()),
                ("SINK_PORT", sink.port().to_string()),
                ("LDS_PATH", lds.path.display().to_string()),
            ],
        );
        let config_path = dir.join("envoy.yaml");
        write(&config_path, &config);
        let pairs: Vec<(&str, &str)> = env
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .collect();
        let env = build_env(build, &pairs);
        let child = launch_with_env(&config_path, &dir, 1, &["--drain-time-s", "1"], &env);
        Envoy {
            child,
            admin_port,
            mtls_port: 0,
            plain_port,
            dir,
            listeners: Some(lds),
        }
        .ready()
    }

    /// Replaces the filter's configuration the way a control plane does: a
    /// new listener version (written atomically) that Envoy picks up, while
    /// the old listener, and the filter instance in it, is drained and then
    /// removed (its `on_done` runs). Only for [`Envoy::start_reloadable`].
    pub fn reload_plugin(&self, plugin_config: &serde_json::Value) {
        self.listeners
            .as_ref()
            .unwrap_or_else(|| panic!("reload_plugin needs Envoy::start_reloadable"))
            .write(plugin_config);
    }

    /// Sends SIGTERM, as an orchestrator stopping the pod would.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("running kill: {e}"));
        assert!(status.success(), "kill -TERM {}: {status}", self.child.id());
    }

    /// Waits (bounded) for Envoy to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_for(timeout, || self.child.try_wait().ok().flatten())
    }

    /// POST on the admin port (e.g. `/drain_listeners?graceful`): status and body.
    pub fn admin_post(&self, path: &str) -> Option<(u16, String)> {
        self.admin_request("POST", path)
    }

    fn ready(mut self) -> Envoy {
        wait_ready(&mut self.child, self.admin_port, "Envoy");
        self
    }

    /// GET on the admin port: status and body, or `None` if unreachable.
    pub fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        self.admin_request("GET", path)
    }

    fn admin_request(&self, method: &str, path: &str) -> Option<(u16, String)> {
        admin_request(self.admin_port, method, path)
    }

    /// The filter's metrics, by their name after `mesh_audit.`.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        mesh_audit_stats(self.admin_port)
    }

    /// One filter metric, by its name after `mesh_audit.` (0 until published).
    pub fn stat(&self, name: &str) -> u64 {
        self.stats().get(name).copied().unwrap_or(0)
    }

    /// Waits (bounded) until the published stats say that every admitted
    /// record is settled (delivered or rejected) and none is buffered.
    pub fn settled_stats(&self, timeout: Duration) -> BTreeMap<String, u64> {
        wait_for(timeout, || {
            let stats = self.stats();
            let get = |name: &str| stats.get(name).copied().unwrap_or(0);
            let settled = get("records_delivered") + get("records_rejected");
            let admitted = get("records_admitted");
            (admitted > 0 && settled == admitted && get("records_buffered") == 0).then_some(stats)
        })
        .unwrap_or_else(|| panic!("records never settled: {:?}", self.stats()))
    }

    /// Envoy's own access log entries (JSON), as flushed so far.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Envoy's access log entry for a request id, waiting for its flush.
    pub fn access_log_entry(&self, request_id: &str) -> serde_json::Value {
        wait_for(Duration::from_secs(5), || {
            self.access_log()
                .into_iter()
                .find(|e| e["request_id"] == request_id)
        })
        .unwrap_or_else(|| panic!("no access log entry for request {request_id}"))
    }

    /// Envoy's application log (and anything it wrote to stderr).
    pub fn log(&self) -> String {
        run_log(&self.dir)
    }

    /// Waits (bounded) until Envoy's log holds `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        wait_for(timeout, || {
            Some(self.log()).filter(|log| log.contains(needle))
        })
        .unwrap_or_else(|| panic!("Envoy never logged {needle:?} in {timeout:?}"))
    }

    pub fn run_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        stop(&mut self.child, &self.dir, "Envoy");
    }
}

/// A request to an Envoy admin port: status and body, or `None` if unreachable.
pub fn admin_request(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let status = reply.split(' ').nth(1)?.parse().ok()?;
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body))
}

/// Waits until the Envoy `child` answers `/ready` on `admin_port`; fails the
/// test if it exits or takes too long.
pub fn wait_ready(child: &mut Child, admin_port: u16, name: &str) {
    let outcome = wait_for(START_TIMEOUT, || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Err(status));
        }
        match admin_request(admin_port, "GET", "/ready") {
            Some((200, _)) => Some(Ok(())),
            _ => None,
        }
    });
    match outcome {
        Some(Ok(())) => {}
        Some(Err(status)) => panic!("{name} exited during start-up: {status}"),
        None => panic!("{name} not ready after {START_TIMEOUT:?}"),
    }
}

/// The filter's metrics (summed over all VMs), by their name after
/// `mesh_audit.`: Envoy 1.40 lists proxy-wasm metrics as `wasmcustom.<name>`
/// and a dynamic module's as `dynamicmodulescustom.<name>`.
pub fn mesh_audit_stats(admin_port: u16) -> BTreeMap<String, u64> {
    let (status, body) = admin_request(admin_port, "GET", "/stats?filter=mesh_audit")
        .unwrap_or_else(|| panic!("admin port {admin_port} unreachable"));
    assert_eq!(status, 200, "/stats answered {status}: {body}");
    body.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            // The native module's metrics carry Envoy's dynamic-module prefix.
            let name = name
                .strip_prefix("wasmcustom.mesh_audit.")
                .or_else(|| name.strip_prefix("dynamicmodulescustom.mesh_audit."))?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// What an Envoy started by [`launch`] in `dir` has logged so far.
pub fn run_log(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("{}{}", read("envoy.log"), read("stderr.log"))
}

/// Stops an Envoy started by [`launch`]. When the test is failing, prints
/// the tail of its log and its access log; otherwise removes its run dir.
pub fn stop(child: &mut Child, dir: &Path, name: &str) {
    let _ = child.kill();
    let _ = child.wait();
    if std::thread::panicking() {
        let log = run_log(dir);
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(300)..];
        eprintln!(
            "\n===== {name} log ({} lines, last {} shown; run dir {}) =====\n{}\n===== access log =====\n{}",
            lines.len(),
            tail.len(),
            dir.display(),
            tail.join("\n"),
            std::fs::read_to_string(dir.join("access.log")).unwrap_or_default()
        );
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A configuration template, by its path in the repository.
fn read_template(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs the pinned Envoy on `config` with the harness's usual flags, logs in `dir`.
/// Starts the pinned Envoy on `config` with `workers` worker threads,
/// logging into `dir`.
pub fn launch(config: &Path, dir: &Path, workers: u32, extra_args: &[&str]) -> Child {
    launch_with_env(config, dir, workers, extra_args, &[])
}

/// [`launch`], with these variables added to Envoy's environment.
pub fn launch_with_env(
    config: &Path,
    dir: &Path,
    workers: u32,
    extra_args: &[&str],
    env: &[(String, std::ffi::OsString)],
) -> Child {
    Command::new(envoy_bin())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("-c")
        .arg(config)
        .args([
            "--use-dynamic-base-id",
            "--concurrency",
            &workers.to_string(),
            "-l",
            "info",
        ])
        .args(["--component-log-level", "wasm:debug,dynamic_modules:debug"])
        // Log and access-log lines reach their files promptly.
        .args(["--file-flush-interval-msec", "50"])
        .args(extra_args)
        .arg("--log-path")
        .arg(dir.join("envoy.log"))
        .stdin(Stdio::null())
        .stdout(file(&dir.join("stdout.log")))
        .stderr(file(&dir.join("stderr.log")))
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", envoy_bin().display()))
}

/// A fresh directory for one Envoy, named after the running test.
pub fn run_dir() -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let test = std::thread::current()
        .name()
        .unwrap_or("test")
        .replace("::", "-");
    let dir = target_dir().join("e2e/runs").join(format!(
        "{test}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn file(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
