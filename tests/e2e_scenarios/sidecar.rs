//! An Envoy the shared harness cannot start: any template under envoy/, any
//! sink port (the CLI sink, a relay), any worker count. Otherwise it behaves
//! like the harness's Envoy: pinned binary, fresh release `.wasm`, its own
//! loopback ports, stopped on drop, logs printed when the test fails.

use crate::e2e::process::{launch_with_env, mesh_audit_stats, run_dir, run_log, stop, wait_ready};
use crate::e2e::variant::{as_native, build_env, plugin_config_scalar, render};
use crate::e2e::{free_port, pki, repo_root, wait_for, wasm, Build};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// Ports every template under envoy/ may use; each gets a free one unless given.
const PORTS: [&str; 5] = [
    "ADMIN_PORT",
    "MTLS_PORT",
    "PLAIN_PORT",
    "BACKEND_PORT",
    "CLOSED_PORT",
];

pub struct Sidecar {
    name: &'static str,
    child: Child,
    ports: BTreeMap<&'static str, u16>,
    dir: PathBuf,
}

impl Sidecar {
    /// Starts envoy/`template` running `build`, with `--concurrency
    /// workers`, delivering to 127.0.0.1:`sink_port`, with `given` ports
    /// fixed, and waits until ready.
    pub fn start_on(
        build: Build,
        name: &'static str,
        template: &str,
        plugin: &serde_json::Value,
        sink_port: u16,
        workers: u32,
        given: &[(&'static str, u16)],
    ) -> Sidecar {
        Sidecar::start_built(
            build,
            name,
            template,
            plugin,
            sink_port,
            workers,
            given,
            &[],
        )
    }

    /// Like [`Sidecar::start_on`], with more Envoy command-line arguments
    /// (e.g. `--service-node`). For the native module, the template gets
    /// the module in place of the `.wasm`, and Envoy's environment the wasm
    /// VM's variables (hash key, strict mode).
    #[allow(clippy::too_many_arguments)]
    pub fn start_built(
        build: Build,
        name: &'static str,
        template: &str,
        plugin: &serde_json::Value,
        sink_port: u16,
        workers: u32,
        given: &[(&'static str, u16)],
        args: &[&str],
    ) -> Sidecar {
        let dir = run_dir();
        let ports: BTreeMap<&'static str, u16> = PORTS
            .iter()
            .map(|&p| {
                (
                    p,
                    given
                        .iter()
                        .find(|g| g.0 == p)
                        .map_or_else(free_port, |g| g.1),
                )
            })
            .collect();
        let mut values: Vec<(&str, String)> =
            ports.iter().map(|(k, v)| (*k, v.to_string())).collect();
        values.extend([
            ("SINK_PORT", sink_port.to_string()),
            ("CERT_DIR", pki().display().to_string()),
            (
                "WASM",
                match build {
                    Build::Wasm => wasm().display().to_string(),
                    _ => "(none: the native module)".to_string(),
                },
            ),
            ("PLUGIN_CONFIG", plugin_config_scalar(plugin)),
            ("ACCESS_LOG", dir.join("access.log").display().to_string()),
        ]);
        let template_path = repo_root().join("envoy").join(template);
        let text = std::fs::read_to_string(&template_path)
            .unwrap_or_else(|e| panic!("{}: {e}", template_path.display()));
        let text = match build {
            Build::Wasm => text,
            native => as_native(text, native == Build::NativeWithFilter),
        };
        let config = dir.join("envoy.yaml");
        std::fs::write(&config, render(&text, &values))
            .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        let env = build_env(build, &[("MESH_AUDIT_STRICT_CONFIG", "1")]);
        let child = launch_with_env(&config, &dir, workers, args, &env);
        let mut sidecar = Sidecar {
            name,
            child,
            ports,
            dir,
        };
        let admin = sidecar.port("ADMIN_PORT");
        wait_ready(&mut sidecar.child, admin, &format!("Envoy {name}"));
        sidecar
    }

    pub fn port(&self, name: &str) -> u16 {
        self.ports[name]
    }

    /// The filter's metrics by their name after `mesh_audit.`, summed over all VMs.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        mesh_audit_stats(self.port("ADMIN_PORT"))
    }

    /// Waits (bounded) until the stats satisfy `want`, and returns them.
    pub fn stats_when(
        &self,
        what: &str,
        want: impl Fn(&BTreeMap<String, u64>) -> bool,
    ) -> BTreeMap<String, u64> {
        wait_for(Duration::from_secs(15), || {
            Some(self.stats()).filter(|s| want(s))
        })
        .unwrap_or_else(|| {
            panic!(
                "Envoy {}: stats never showed {what}: {:?}",
                self.name,
                self.stats()
            )
        })
    }

    pub fn log(&self) -> String {
        run_log(&self.dir)
    }

    /// The emitters the filter's root contexts announced when configured,
    /// split by the Envoy thread that configured them: (main thread, workers).
    pub fn configured_emitters(&self) -> (Vec<String>, Vec<String>) {
        let log = self.log();
        // `[time][thread id][level][component] ...`
        let thread = |line: &str| line.split("][").nth(1).map(str::to_string);
        let main = log
            .lines()
            .find(|l| l.contains("starting main dispatch loop"))
            .and_then(thread)
            .unwrap_or_else(|| panic!("Envoy {}: no main dispatch loop in the log", self.name));
        let (mut on_main, mut on_workers) = (Vec::new(), Vec::new());
        for line in log.lines() {
            let Some(emitter) = line
                .split(" configured: emitter ")
                .nth(1)
                .and_then(|r| r.split(',').next())
            else {
                continue;
            };
            if thread(line).as_ref() == Some(&main) {
                on_main.push(emitter.to_string());
            } else {
                on_workers.push(emitter.to_string());
            }
        }
        (on_main, on_workers)
    }

    /// GET `path` over mTLS with curl, presenting workload `cert` (a name
    /// from envoy/pki.sh); returns the status and the x-request-id Envoy
    /// echoed.
    pub fn mtls_get(&self, cert: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let dir = pki();
        let port = self.port("MTLS_PORT");
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--http1.1",
            "--max-time",
            "10",
        ])
        .arg("--cacert")
        .arg(dir.join("ca.pem"))
        .arg("--cert")
        .arg(dir.join(format!("{cert}.pem")))
        .arg("--key")
        .arg(dir.join(format!("{cert}-key.pem")))
        .arg("--resolve")
        .arg(format!("backend.default.svc:{port}:127.0.0.1"));
        for (name, value) in headers {
            cmd.arg("-H").arg(format!("{name}: {value}"));
        }
        let out = cmd
            .arg(format!("https://backend.default.svc:{port}{path}"))
            .output()
            .unwrap_or_else(|e| panic!("running curl: {e}"));
        let head = String::from_utf8_lossy(&out.stdout);
        let status = head
            .lines()
            .next()
            .and_then(|l| l.split(' ').nth(1)?.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "curl got no response: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let request_id = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("x-request-id")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no x-request-id in {head}"));
        (status, request_id)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        stop(&mut self.child, &self.dir, &format!("Envoy {}", self.name));
    }
}
