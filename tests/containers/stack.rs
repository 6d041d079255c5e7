//! One Compose project of the shipped recipe, driven through the machine's
//! Compose tool (v2 `docker compose` or v1 `docker-compose`), with the images
//! `make images` built, its own keys and loopback ports, and a project name
//! of its own so that runs never meet. Dropping it removes every container,
//! network and volume the project made.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod audit;
mod background;
mod engine;
pub use background::Background;
use engine::{compose_tool, local_images};
pub use engine::{docker, docker_ok, engine_or_notice, text};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn recipe_dir() -> PathBuf {
    repo_root().join("examples/docker-compose")
}

pub struct Stack {
    pub project: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
    pub admin_port: u16,
    pub https_port: u16,
    /// Id of the proxy's signing key (keys.sh), which every seal must carry.
    pub key_id: String,
    pub scratch: PathBuf,
}

impl Stack {
    /// A project of `compose_file` (the recipe, or a test's own file that
    /// reuses its images and keys), nothing started yet.
    pub fn new(label: &str, compose_file: &Path) -> Stack {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let project = format!(
            "mesh-audit-test-{}-{}-{label}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::SeqCst)
        );
        let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&project);
        std::fs::create_dir_all(&scratch).unwrap();
        // The recipe's own keys.sh: the proxy's hash, chain and signing
        // keys in keys.env; the chain key in auditor.env and the signing
        // key's keyring line in keyring, for the sink's container.
        let made = Command::new("sh")
            .arg(recipe_dir().join("keys.sh"))
            .arg(&scratch)
            .output()
            .unwrap_or_else(|e| panic!("keys.sh: {e}"));
        assert!(made.status.success(), "keys.sh: {}", text(&made));
        let keys = scratch.join("keys.env");
        let auditor = scratch.join("auditor.env");
        let keyring = scratch.join("keyring");
        let key_id = std::fs::read_to_string(&keyring)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("keys.sh wrote no keyring line"))
            .to_string();
        let (admin_port, https_port) = (free_port(), free_port());
        let mut env = local_images();
        env.push(("MESH_AUDIT_KEYS_FILE".into(), keys.display().to_string()));
        env.push((
            "MESH_AUDIT_AUDITOR_KEYS_FILE".into(),
            auditor.display().to_string(),
        ));
        env.push((
            "MESH_AUDIT_KEYRING_FILE".into(),
            keyring.display().to_string(),
        ));
        env.push(("MESH_AUDIT_ADMIN_PORT".into(), admin_port.to_string()));
        env.push(("MESH_AUDIT_HTTPS_PORT".into(), https_port.to_string()));
        Stack {
            project,
            files: vec![compose_file.to_path_buf()],
            env,
            admin_port,
            https_port,
            key_id,
            scratch,
        }
    }

    /// Adds a Compose file over the project's (`-f` after `-f`): its
    /// services' settings merge into, or replace, the earlier files'.
    pub fn add_file(&mut self, compose_file: &Path) {
        self.files.push(compose_file.to_path_buf());
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    fn command(&self, args: &[&str]) -> Command {
        let tool = compose_tool();
        let mut cmd = Command::new(tool[0]);
        cmd.args(&tool[1..]).args(["-p", &self.project]);
        for file in &self.files {
            cmd.arg("-f").arg(file);
        }
        cmd.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn compose(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("compose {args:?}: {e}"))
    }

    pub fn compose_ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "compose {args:?} failed:\n{}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `up -d` of the given services (and what they depend on), then waits
    /// until each reports healthy (or, without a healthcheck, running).
    pub fn up(&self, services: &[&str]) {
        let mut args = vec!["up", "-d", "--no-build"];
        args.extend_from_slice(services);
        self.compose_ok(&args);
        for service in services {
            self.wait_healthy(service);
        }
    }

    pub fn wait_healthy(&self, service: &str) {
        let id = self.container(service);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let status = docker_ok(&[
                "inspect",
                "-f",
                "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                &id,
            ]);
            if status == "healthy" || status == "running" {
                return;
            }
            assert!(
                status != "exited" && status != "unhealthy" && Instant::now() < deadline,
                "{service} is {status}; its log:\n{}",
                self.logs(service)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The id of the service's (first) container.
    pub fn container(&self, service: &str) -> String {
        let id = self.compose_ok(&["ps", "-q", service]);
        let id = id.lines().next().unwrap_or_default().to_string();
        assert!(!id.is_empty(), "{service} has no container");
        id
    }

    pub fn logs(&self, service: &str) -> String {
        text(&self.compose(&["logs", "--no-color", "--tail", "60", service]))
    }

    /// The Docker network Compose made for the recipe's network `name`.
    pub fn network(&self, name: &str) -> String {
        let id = docker_ok(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!(
                "label=com.docker.compose.project={}",
                self.compose_project()
            ),
            "--filter",
            &format!("label=com.docker.compose.network={name}"),
        ]);
        assert!(!id.is_empty(), "no network {name} in {}", self.project);
        id
    }

    /// Compose v1 strips characters v2 keeps; both keep these.
    fn compose_project(&self) -> String {
        self.project.clone()
    }

    /// The container's address on the recipe's network `name`.
    pub fn address(&self, service: &str, network: &str) -> String {
        let id = self.container(service);
        // `network ls -q` prints the short id; inspect has the long one.
        let net = self.network(network);
        let all = docker_ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.NetworkID}} {{.IPAddress}}\n{{end}}",
            &id,
        ]);
        all.lines()
            .find(|l| l.starts_with(&net))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("{service} is not on {network}: {all}"))
            .to_string()
    }

    /// Runs `script` with bash in a one-off container of `service` (the
    /// recipe's mounts and networks), waits, returns its output.
    pub fn run(&self, service: &str, script: &str) -> String {
        self.compose_ok(&[
            "run",
            "--rm",
            "-T",
            "--no-deps",
            "--entrypoint",
            "bash",
            service,
            "-c",
            script,
        ])
    }

    /// Runs `script` with bash in the service's running container.
    pub fn exec(&self, service: &str, script: &str) -> String {
        docker_ok(&["exec", &self.container(service), "bash", "-c", script])
    }

    /// Runs `script` with bash in a throw-away client container on the
    /// recipe's network `name`, with the PKI volume; its output.
    pub fn on_network(&self, name: &str, script: &str) -> String {
        let image = self
            .env
            .iter()
            .find(|(k, _)| k == "MESH_AUDIT_CLIENT_IMAGE")
            .map(|(_, v)| v.clone())
            .unwrap();
        let pki = docker_ok(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.project),
            "--filter",
            "label=com.docker.compose.volume=pki",
        ]);
        docker_ok(&[
            "run",
            "--rm",
            "--label",
            &format!("com.docker.compose.project={}", self.project),
            "--network",
            &self.network(name),
            "-v",
            &format!("{pki}:/pki:ro"),
            &image,
            "bash",
            "-c",
            script,
        ])
    }

    /// A free loopback port in the variable `name`, for a published port.
    pub fn publish(&mut self, name: &str) -> u16 {
        let port = free_port();
        self.set_env(name, &port.to_string());
        port
    }

    /// The address of a container on its one network.
    pub fn address_on_any(&self, service: &str) -> String {
        let id = self.container(service);
        docker_ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &id,
        ])
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let down = self.compose(&["down", "-v", "--remove-orphans", "-t", "2"]);
        let label = format!(
            "label=com.docker.compose.project={}",
            self.compose_project()
        );
        // One-off containers (`run -d`) and anything `down` left.
        for (kind, list) in [
            ("container", vec!["ps", "-aq", "--filter", &label]),
            ("network", vec!["network", "ls", "-q", "--filter", &label]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &label]),
        ] {
            let ids = String::from_utf8_lossy(&docker(&list).stdout).to_string();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if ids.is_empty() {
                continue;
            }
            let mut rm = vec![kind, "rm"];
            if kind == "container" {
                rm.push("-f");
            }
            rm.extend(ids);
            let _ = docker(&rm);
        }
        if !down.status.success() {
            eprintln!("compose down of {}: {}", self.project, text(&down));
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

pub(super) fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A loopback port nothing listens on now, for a published container port.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    listener.local_addr().unwrap().port()
}
