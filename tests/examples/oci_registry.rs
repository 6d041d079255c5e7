//! `make oci`, proven against real parts: the image it builds is pushed to a
//! real OCI registry (the CNCF distribution registry Debian packages as
//! `docker-registry`, on 127.0.0.1 with its own config and storage) by a real
//! OCI client (`skopeo`), pulled back, and `plugin.wasm` is taken out of it
//! the way istio-agent's fetcher does. The manifest digest `make oci` prints
//! is the one the registry serves: the value a `WasmPlugin`'s `sha256`
//! must hold.
//!
//! The tools come from scripts/ci-deps.sh (run by .ci/run). Under CI a
//! missing tool fails the test; elsewhere the test says loudly that it did
//! not run.

use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

const REGISTRY_BIN: &str = "docker-registry";
const SKOPEO: &str = "skopeo";
const REPOSITORY: &str = "mesh-audit/filter";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Whether every tool is on PATH; under CI a missing one is a failure.
fn tools_present() -> bool {
    let missing: Vec<&str> = [REGISTRY_BIN, SKOPEO]
        .into_iter()
        .filter(|tool| {
            Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "the OCI registry round trip needs {}, not found on PATH: run scripts/ci-deps.sh (Debian packages docker-registry, skopeo)",
        missing.join(" and ")
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("\n!!! NOT RUN: {why}\n");
    false
}

/// The registry process, stopped when dropped.
struct Registry {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Registry {
    fn start(scratch: &Scratch) -> Registry {
        let port = e2e::free_port();
        let addr = format!("127.0.0.1:{port}");
        let storage = scratch.path("registry-storage");
        std::fs::create_dir_all(&storage).unwrap();
        let config = scratch.path("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = scratch.path("registry.log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(scratch.path("registry.err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{REGISTRY_BIN}: {e}"));
        let registry = Registry { child, addr, log };
        let ready = e2e::wait_for(Duration::from_secs(20), || {
            registry.get("/v2/", "").ok().filter(|r| r.status == 200)
        });
        assert!(
            ready.is_some(),
            "the registry never answered /v2/ on {}: {}",
            registry.addr,
            registry.logs()
        );
        registry
    }

    fn logs(&self) -> String {
        let err = self.log.with_extension("err");
        format!(
            "{}{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            std::fs::read_to_string(err).unwrap_or_default()
        )
    }

    /// A plain HTTP/1.1 GET, as a registry client sends it.
    fn get(&self, path: &str, accept: &str) -> std::io::Result<Reply> {
        let mut stream = TcpStream::connect(&self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let accept = if accept.is_empty() {
            String::new()
        } else {
            format!("accept: {accept}\r\n")
        };
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: {}\r\n{accept}connection: close\r\n\r\n",
            self.addr
        )?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Reply::parse(&raw)
            .ok_or_else(|| std::io::Error::other(String::from_utf8_lossy(&raw).into_owned()))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn parse(raw: &[u8]) -> Option<Reply> {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&raw[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[end + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        if chunked {
            body = dechunk(&body)?;
        }
        Some(Reply {
            status,
            headers,
            body,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// skopeo with a signature policy of its own (accept anything: a local
/// registry of our own making), so no system policy file matters.
fn skopeo(scratch: &Scratch, args: &[&str]) -> std::process::Output {
    let policy = scratch.path("policy.json");
    if !policy.exists() {
        std::fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
    }
    let out = Command::new(SKOPEO)
        .arg("--policy")
        .arg(&policy)
        .args(args)
        .env("REGISTRY_AUTH_FILE", scratch.path("auth.json"))
        .output()
        .unwrap_or_else(|e| panic!("{SKOPEO}: {e}"));
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The manifest digest `make oci` printed (`manifest sha256:…`).
fn printed_digest(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("manifest "))
        .map(|d| d.trim().to_string())
        .unwrap_or_else(|| panic!("`make oci` printed no manifest digest:\n{stdout}"))
}

/// istio-agent's fetcher for the compat variant (pkg/wasm/imagefetcher.go):
/// exactly one layer, of the OCI tar+gzip media type; gunzip, walk the tar,
/// and take the first entry whose base name is `plugin.wasm`.
fn extract_like_istio(manifest: &Value, blob: &dyn Fn(&str) -> Vec<u8>) -> Vec<u8> {
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "Istio needs a single-layer image");
    assert_eq!(layers[0]["mediaType"], OCI_LAYER);
    let compressed = blob(layers[0]["digest"].as_str().unwrap());
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_end(&mut tar)
        .expect("the layer is gzip");
    super::oci::tar_entries(&tar)
        .into_iter()
        .find(|(name, _, _)| Path::new(name).file_name() == Some("plugin.wasm".as_ref()))
        .map(|(_, _, data)| data)
        .expect("plugin.wasm not found in the layer")
}

#[test]
fn the_image_make_oci_builds_round_trips_through_a_real_registry_as_istio_reads_it() {
    if !tools_present() {
        return;
    }
    let scratch = Scratch::new("examples-oci-registry");
    let out_dir = scratch.path("oci");
    let tag = env!("CARGO_PKG_VERSION");

    // `make oci` as a user runs it: builds (a no-op when fresh) and packages.
    let made = Command::new("make")
        .arg("-s")
        .arg("oci")
        .arg(format!("OCI_OUT={}", out_dir.display()))
        .current_dir(repo_root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&made.stdout).into_owned();
    assert!(
        made.status.success(),
        "make oci: {stdout}{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let digest = printed_digest(&stdout);
    let module = std::fs::read(wasm()).unwrap();

    let registry = Registry::start(&scratch);
    let remote = format!("docker://{}/{REPOSITORY}:{tag}", registry.addr);
    let layout = out_dir.join("mesh-audit");
    skopeo(
        &scratch,
        &[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:{tag}", layout.display()),
            &remote,
        ],
    );

    // What a client resolving the tag is told, and what it computes itself.
    let inspected: Value = serde_json::from_slice(
        &skopeo(&scratch, &["inspect", "--tls-verify=false", &remote]).stdout,
    )
    .unwrap();
    assert_eq!(
        inspected["Digest"],
        json!(digest),
        "skopeo inspect: {inspected:#}"
    );
    let raw = skopeo(
        &scratch,
        &["inspect", "--raw", "--tls-verify=false", &remote],
    )
    .stdout;
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), digest);

    // The registry API as go-containerregistry (istio-agent) calls it.
    let served = registry
        .get(
            &format!("/v2/{REPOSITORY}/manifests/{tag}"),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .unwrap();
    assert_eq!(served.status, 200, "{}", registry.logs());
    assert_eq!(
        served.header("docker-content-digest"),
        Some(digest.as_str())
    );
    assert_eq!(format!("sha256:{}", sha256_hex(&served.body)), digest);
    let manifest: Value = serde_json::from_slice(&served.body).unwrap();
    let from_registry = extract_like_istio(&manifest, &|blob_digest| {
        let reply = registry
            .get(&format!("/v2/{REPOSITORY}/blobs/{blob_digest}"), "")
            .unwrap();
        assert_eq!(reply.status, 200, "blob {blob_digest}");
        assert_eq!(format!("sha256:{}", sha256_hex(&reply.body)), blob_digest);
        reply.body
    });
    assert!(
        from_registry == module,
        "plugin.wasm served by the registry differs from the built .wasm"
    );

    // Pulled back by the client into a fresh layout: same digest, same module.
    let pulled = scratch.path("pulled");
    skopeo(
        &scratch,
        &[
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            &remote,
            &format!("oci:{}:{tag}", pulled.display()),
        ],
    );
    let index: Value =
        serde_json::from_slice(&std::fs::read(pulled.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], json!(digest), "pulled index: {index:#}");
    let read_blob = |d: &str| {
        let bytes = std::fs::read(
            pulled
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap();
        assert_eq!(format!("sha256:{}", sha256_hex(&bytes)), d);
        bytes
    };
    let manifest: Value = serde_json::from_slice(&read_blob(&digest)).unwrap();
    let from_pull = extract_like_istio(&manifest, &read_blob);
    assert!(
        from_pull == module,
        "plugin.wasm pulled back differs from the built .wasm"
    );

    // The WasmPlugin lines printed are the ones that match.
    let hex = digest.trim_start_matches("sha256:");
    assert!(stdout.contains(&format!("sha256: {hex}")), "{stdout}");
}
