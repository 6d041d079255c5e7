//! One Envoy process of the harness: launched with a config and a run
//! directory, ready when its admin port says so, asked for its stats,
//! stopped with its log printed when the test fails.

use super::{envoy_bin, repo_root, target_dir, wait_for};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// V8 compiles the module at start; two parallel Envoys on a small machine
/// take a few seconds at worst.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(30);

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
pub(super) fn read_template(path: &str) -> String {
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

pub(super) fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

pub(super) fn file(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
