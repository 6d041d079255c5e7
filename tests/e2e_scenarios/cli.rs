//! The real `mesh-audit` CLI: `sink` as a child process on a loopback port
//! it picks itself (port 0; the bound address is read from its stderr), and
//! `verify --json` on the file it wrote.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mesh-audit")
}

/// A running `mesh-audit sink`, killed when dropped; its stderr is kept and
/// printed if the test fails.
pub struct CliSink {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl CliSink {
    pub fn start(out: &Path) -> CliSink {
        let mut child = Command::new(bin())
            .args([
                "sink",
                "--listen",
                "127.0.0.1:0",
                "--progress-secs",
                "1",
                "--out",
            ])
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&stderr);
        if let Some(pipe) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        let listening = crate::e2e::wait_for(Duration::from_secs(20), || {
            stderr
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find_map(|l| {
                    l.split("listening on ")
                        .nth(1)?
                        .split(',')
                        .next()?
                        .parse()
                        .ok()
                })
        });
        let mut sink = CliSink {
            child,
            addr: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
            stderr,
        };
        sink.addr =
            listening.unwrap_or_else(|| panic!("mesh-audit sink did not report its address"));
        sink
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Kills the process (as a crash or an eviction would) and waits for it.
    pub fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr()
    }
}

impl Drop for CliSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "\n===== mesh-audit sink {} stderr =====\n{}",
                self.addr,
                self.stderr().join("\n")
            );
        }
    }
}

/// What `mesh-audit verify FILE --json` said.
pub struct Verified {
    pub exit_code: Option<i32>,
    pub json: serde_json::Value,
    pub text: String,
}

pub fn verify(file: &Path) -> Verified {
    let out = Command::new(bin())
        .arg("verify")
        .arg(file)
        .arg("--json")
        .output()
        .unwrap_or_else(|e| panic!("running {} verify: {e}", bin()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify --json printed no JSON ({e}):\n{text}"));
    Verified {
        exit_code: out.status.code(),
        json,
        text,
    }
}

/// A scratch directory under target/, removed unless the test failed.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new() -> Scratch {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let test = std::thread::current()
            .name()
            .unwrap_or("test")
            .replace("::", "-");
        let dir = crate::e2e::target_dir().join("e2e/scenarios").join(format!(
            "{test}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("scratch directory kept: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The lines of a sink's file, parsed (each must be a JSON record).
pub fn stored(file: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("stored line is not JSON ({e}): {l}"))
        })
        .collect()
}
