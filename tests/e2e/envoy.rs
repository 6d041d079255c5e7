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
}

impl Envoy {
    /// Starts Envoy with this plugin configuration, delivering to `sink`,
    /// and waits until it reports ready.
    pub fn start(plugin_config: &serde_json::Value, sink: &Sink) -> Envoy {
        let mut envoy = Envoy::spawn(plugin_config, sink);
        let outcome = wait_for(START_TIMEOUT, || {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                return Some(Err(status));
            }
            match envoy.admin_get("/ready") {
                Some((200, _)) => Some(Ok(())),
                _ => None,
            }
        });
        match outcome {
            Some(Ok(())) => envoy,
            Some(Err(status)) => panic!("Envoy exited during start-up: {status}"),
            None => panic!("Envoy not ready after {START_TIMEOUT:?}"),
        }
    }

    /// Starts Envoy with a configuration it must refuse; returns its log once
    /// it has exited unsuccessfully.
    pub fn start_expecting_refusal(plugin_config: &serde_json::Value, sink: &Sink) -> String {
        let mut envoy = Envoy::spawn(plugin_config, sink);
        let status = wait_for(START_TIMEOUT, || envoy.child.try_wait().ok().flatten());
        let status: ExitStatus =
            status.unwrap_or_else(|| panic!("Envoy still running after {START_TIMEOUT:?}"));
        assert!(
            !status.success(),
            "Envoy accepted the configuration and exited with {status}"
        );
        envoy.log()
    }

    fn spawn(plugin_config: &serde_json::Value, sink: &Sink) -> Envoy {
        let dir = run_dir();
        let (admin_port, mtls_port, plain_port) = (free_port(), free_port(), free_port());
        let template = std::fs::read_to_string(repo_root().join("envoy/e2e.yaml"))
            .unwrap_or_else(|e| panic!("envoy/e2e.yaml: {e}"));
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
        write(&config_path, &config);
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&config_path)
            .args(["--use-dynamic-base-id", "--concurrency", "1", "-l", "info"])
            .args(["--component-log-level", "wasm:debug"])
            // Log and access-log lines reach their files promptly.
            .args(["--file-flush-interval-msec", "50"])
            .arg("--log-path")
            .arg(dir.join("envoy.log"))
            .stdin(Stdio::null())
            .stdout(file(&dir.join("stdout.log")))
            .stderr(file(&dir.join("stderr.log")))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", envoy_bin().display()));
        Envoy {
            child,
            admin_port,
            mtls_port,
            plain_port,
            dir,
        }
    }

    /// GET on the admin port: status and body, or `None` if unreachable.
    pub fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.admin_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n"
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

    /// The filter's metrics, by their name after `mesh_audit.`. Envoy 1.40
    /// lists proxy-wasm metrics as `wasmcustom.<name>`.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        let (status, body) = self
            .admin_get("/stats?filter=mesh_audit")
            .unwrap_or_else(|| panic!("admin unreachable"));
        assert_eq!(status, 200, "/stats answered {status}: {body}");
        body.lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                let name = name.strip_prefix("wasmcustom.mesh_audit.")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
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
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("envoy.log"), read("stderr.log"))
    }

    pub fn run_dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(300)..];
            eprintln!(
                "\n===== Envoy log ({} lines, last {} shown; run dir {}) =====\n{}\n===== access log =====\n{}",
                lines.len(),
                tail.len(),
                self.dir.display(),
                tail.join("\n"),
                std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A fresh directory for one Envoy, named after the running test.
fn run_dir() -> PathBuf {
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
