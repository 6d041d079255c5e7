//! End-to-end harness: the real, pinned Envoy running the release `.wasm`,
//! a recording audit sink in the test process (whose behaviour a test can
//! switch: slow, failing, down), `curl` as the client, and a steady load
//! generator over kept-alive connections.
//!
//! Every test gets its own Envoy on its own loopback ports, so tests run in
//! parallel. Nothing is ever skipped: a missing Envoy, a missing or stale
//! `.wasm` or a missing `curl` fails the test with what to run.

// Each test binary uses its own subset of the harness.
#![allow(dead_code, unused_imports)]
// Harness helpers fail the calling test by panicking, with what went wrong.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod client;
pub mod envoy;
pub mod http1;
pub mod load;
pub mod process;
pub mod sink;
pub mod trail;
pub mod variant;

pub use client::{Reply, Workload};
pub use envoy::Envoy;
pub use load::{Load, Outcome};
pub use sink::{record_of, Answer, Delivery, Record, Sink};
pub use trail::trail;
pub use variant::Build;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

pub const ENVOY_VERSION: &str = "1.40.0";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR` as cargo does.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => repo_root().join(dir),
        None => repo_root().join("target"),
    }
}

/// The pinned Envoy, checked once per test process.
pub fn envoy_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = repo_root().join(".venv/bin/envoy");
        // Locally as under CI: a missing Envoy is a failure, never a skip.
        let out = Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "Envoy {ENVOY_VERSION} not found at {} ({e}): run `make envoy`",
                    bin.display()
                )
            });
        let version = String::from_utf8_lossy(&out.stdout);
        assert!(
            version.contains(&format!("/{ENVOY_VERSION}/")),
            "{} is not Envoy {ENVOY_VERSION} ({}): run `make envoy`",
            bin.display(),
            version.trim()
        );
        bin
    })
}

/// The release `.wasm`, refused when missing or older than any source file
/// it was built from. Cargo's dep-info file next to it lists exactly those
/// files (test-only modules under src/ are not among them).
pub fn wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let release = target_dir().join("wasm32-wasip1/release");
        let wasm = release.join("mesh_audit.wasm");
        let built =
            modified(&wasm).unwrap_or_else(|e| panic!("{}: {e}: run `make build`", wasm.display()));
        let dep_info = release.join("mesh_audit.d");
        let deps = std::fs::read_to_string(&dep_info)
            .unwrap_or_else(|e| panic!("{}: {e}: run `make build`", dep_info.display()));
        let sources = dep_info_sources(&deps);
        assert!(
            !sources.is_empty(),
            "{} lists no sources: run `make build`",
            dep_info.display()
        );
        for source in sources {
            if let Ok(changed) = modified(&source) {
                assert!(
                    changed <= built,
                    "{} is older than {}: run `make build` (tests never run a stale .wasm)",
                    wasm.display(),
                    source.display()
                );
            }
        }
        wasm
    })
}

/// The native module (`make native`), refused when missing or older than
/// any source file it was built from, like [`wasm`]. The harness loads it
/// from the `native` profile's own directory, which no other build writes.
pub fn native_module() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        let dir = target_dir().join("native");
        let so = dir.join("libmesh_audit.so");
        let built =
            modified(&so).unwrap_or_else(|e| panic!("{}: {e}: run `make native`", so.display()));
        let dep_info = dir.join("libmesh_audit.d");
        let deps = std::fs::read_to_string(&dep_info)
            .unwrap_or_else(|e| panic!("{}: {e}: run `make native`", dep_info.display()));
        let sources = dep_info_sources(&deps);
        assert!(
            sources.iter().any(|s| s.ends_with("src/native/entry.rs")),
            "{} was not built with the native host: run `make native`",
            so.display()
        );
        for source in sources {
            if let Ok(changed) = modified(&source) {
                assert!(
                    changed <= built,
                    "{} is older than {}: run `make native` (tests never run a stale module)",
                    so.display(),
                    source.display()
                );
            }
        }
        so
    })
}

fn modified(path: &Path) -> std::io::Result<SystemTime> {
    std::fs::metadata(path)?.modified()
}

/// The prerequisites of a Makefile-style dep-info line (`target: a b\ c`).
fn dep_info_sources(dep_info: &str) -> Vec<PathBuf> {
    let first = dep_info.lines().next().unwrap_or_default();
    let Some((_, list)) = first.split_once(": ") else {
        return Vec::new();
    };
    let mut sources = Vec::new();
    let mut current = String::new();
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' if !current.is_empty() => sources.push(PathBuf::from(std::mem::take(&mut current))),
            ' ' => {}
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        sources.push(PathBuf::from(current));
    }
    sources
}

/// The test PKI (envoy/pki.sh), made once and shared; the script itself is
/// safe against concurrent runs from several test binaries.
pub fn pki() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = target_dir().join("e2e/pki");
        let status = Command::new("bash")
            .arg(repo_root().join("envoy/pki.sh"))
            .arg(&dir)
            .status()
            .unwrap_or_else(|e| panic!("running envoy/pki.sh: {e}"));
        assert!(
            status.success(),
            "envoy/pki.sh {} failed: {status}",
            dir.display()
        );
        dir
    })
}

/// SHA-256 (hex) of a test certificate's DER encoding, computed without
/// Envoy, to check what the filter reports as `cert_sha256`.
pub fn cert_sha256(name: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(pki().join(format!("{name}.pem")))
        .output()
        .unwrap_or_else(|e| panic!("running openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl x509 {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sha256_hex(&out.stdout)
}

/// A loopback port that nothing listens on right now, for Envoy to bind.
///
/// Taken below the kernel's ephemeral range, so an outgoing connection (curl,
/// Envoy's upstream and sink connections) cannot grab it as its local port
/// between now and Envoy's bind. Ports handed out in this process are never
/// handed out twice, so parallel tests do not collide.
pub fn free_port() -> u16 {
    use std::hash::BuildHasher;
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_start.max(10_001));
    let random = std::collections::hash_map::RandomState::new();
    for attempt in 0u32..1000 {
        let port = low + (random.hash_one(attempt) % u64::from(high - low)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.insert(port) {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex of exactly `len` digits.
pub fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// Polls `probe` every 25 ms until it yields a value or `timeout` passes.
pub fn wait_for<T>(
    timeout: std::time::Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// Runs each scenario on both builds: `fn name(build: Build) { .. }`
/// becomes the tests `name::wasm` and `name::native`, one Envoy each.
#[macro_export]
macro_rules! on_both_builds {
    ($($(#[$meta:meta])* fn $name:ident($build:ident: Build) $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                #[allow(unused_imports)]
                use $crate::e2e::Build;

                fn scenario($build: Build) $body

                #[test]
                fn wasm() {
                    scenario($crate::e2e::Build::Wasm)
                }

                #[test]
                fn native() {
                    scenario($crate::e2e::Build::Native)
                }
            }
        )*
    };
}
