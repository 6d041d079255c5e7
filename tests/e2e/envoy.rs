//! One real Envoy per test, started from envoy/e2e.yaml with the release
//! `.wasm`, stopped on drop. When a test fails, Envoy's log is printed.

use super::process::{
    admin_request, launch, launch_with_env, mesh_audit_stats, read_template, run_dir, run_log,
    stop, wait_ready, write, START_TIMEOUT,
};
use super::sink::Sink;
use super::variant::{
    as_access_logger, as_native, build_env, native_hcm, plugin_config_scalar, render,
    with_native_bootstrap, Build, STRICT,
};
use super::{envoy_bin, free_port, pki, repo_root, target_dir, wait_for, wasm};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
