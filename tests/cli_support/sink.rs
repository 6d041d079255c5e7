//! `mesh-audit sink` as a real process on a loopback port, and clients that
//! talk to it over plain TCP or TLS (with or without a client certificate).

use super::bin;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The test PKI of envoy/pki.sh (mesh CA, server, frontend and reporter
/// workloads, a rogue client from a foreign CA), made once.
pub fn pki() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), |d| root.join(d));
        let dir = target.join("e2e/pki");
        let status = Command::new("bash")
            .arg(root.join("envoy/pki.sh"))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "envoy/pki.sh failed: {status}");
        dir
    })
}

pub fn pki_file(name: &str) -> String {
    pki().join(name).to_string_lossy().into_owned()
}

/// The sink's TLS arguments: the pki server certificate, client
/// certificates from the mesh CA, and these allowed principals.
pub fn mtls_args(allowed: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--tls-cert".to_string(),
        pki_file("server.pem"),
        "--tls-key".into(),
        pki_file("server-key.pem"),
        "--client-ca".into(),
        pki_file("ca.pem"),
    ];
    for p in allowed {
        args.push("--allow-principal".into());
        args.push(p.to_string());
    }
    args
}

/// How a test client reaches the sink.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    Plain,
    /// TLS, presenting the pki certificate of this name (`frontend`,
    /// `reporter`, `rogue`), or none.
    Tls(Option<&'static str>),
}

/// A running sink, killed when dropped.
pub struct SinkProcess {
    child: Child,
    pub addr: String,
    /// How `send`, `post`, `get` and `metric` reach the sink.
    pub via: Via,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl SinkProcess {
    pub fn start(out: &Path, extra: &[&str]) -> SinkProcess {
        SinkProcess::start_with_env(out, extra, &[])
    }

    pub fn start_with_env(out: &Path, extra: &[&str], env: &[(&str, &str)]) -> SinkProcess {
        let mut cmd = Command::new(bin());
        cmd.args([
            "sink",
            "--listen",
            "127.0.0.1:0",
            "--out",
            out.to_str().unwrap(),
            "--progress-secs",
            "1",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut sink = SinkProcess {
            child,
            addr: String::new(),
            via: Via::Plain,
            stderr,
        };
        // Re-reading a large trail at start takes a while in a debug build.
        let line = sink.wait_for_stderr_within("listening on ", Duration::from_secs(180));
        let addr = line
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        sink.addr = addr.to_string();
        sink
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn wait_for_stderr(&self, needle: &str) -> String {
        self.wait_for_stderr_within(needle, Duration::from_secs(30))
    }

    pub fn wait_for_stderr_within(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(l) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no stderr line with {needle:?}: {}", self.stderr());
    }

    /// Sends raw request `head` (without the blank line) and `body` over
    /// `via`; returns status and body, or why no HTTP answer came.
    pub fn exchange(&self, via: Via, head: &str, body: &[u8]) -> Result<(u16, String), String> {
        let tcp = TcpStream::connect(&self.addr).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut request = format!("{head}\r\nHost: sink\r\nConnection: close\r\n\r\n").into_bytes();
        request.extend_from_slice(body);
        let reply = match via {
            Via::Plain => talk(tcp, &request),
            Via::Tls(cert) => {
                let conn = ClientConnection::new(
                    client_config(cert),
                    ServerName::try_from("localhost").unwrap(),
                )
                .unwrap();
                talk(StreamOwned::new(conn, tcp), &request)
            }
        }?;
        let reply = String::from_utf8_lossy(&reply).into_owned();
        let status = reply
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no HTTP reply: {reply:?}"))?;
        let body = reply
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    pub fn send(&self, head: &str, body: &[u8]) -> (u16, String) {
        self.exchange(self.via, head, body).unwrap()
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        self.send(&post_head(path, content_type, body.len(), ""), body)
    }

    pub fn post_jsonl(&self, lines: &[Vec<u8>]) -> (u16, String) {
        self.post("/v1/audit", "application/x-ndjson", &lines.join(&b'\n'))
    }

    /// POSTs JSON lines over `via` with extra header lines (`Name: value\r\n`…).
    pub fn post_lines(
        &self,
        via: Via,
        extra_headers: &str,
        lines: &[Vec<u8>],
    ) -> Result<(u16, String), String> {
        let body = lines.join(&b'\n');
        self.exchange(
            via,
            &post_head(
                "/v1/audit",
                "application/x-ndjson",
                body.len(),
                extra_headers,
            ),
            &body,
        )
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.send(&format!("GET {path} HTTP/1.1"), b"")
    }

    /// The value of one metric line of GET /metrics (name with labels).
    pub fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no metric {name} in {text}"))
            .parse()
            .unwrap()
    }
}

fn post_head(path: &str, content_type: &str, len: usize, extra: &str) -> String {
    let extra = extra.trim_end_matches("\r\n");
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("\r\n{extra}")
    };
    format!("POST {path} HTTP/1.1\r\nContent-Type: {content_type}\r\nContent-Length: {len}{extra}")
}

fn talk(mut stream: impl Read + Write, request: &[u8]) -> Result<Vec<u8>, String> {
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let _ = stream.flush();
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            // A peer closing without close_notify after its answer is fine.
            Err(_) if !reply.is_empty() => break,
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(reply)
}

fn client_config(cert: Option<&str>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki().join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(pki().join(format!("{name}.pem")))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
            let key = PrivateKeyDer::from_pem_file(pki().join(format!("{name}-key.pem"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    Arc::new(config)
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
