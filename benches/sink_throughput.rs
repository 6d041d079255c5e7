//! `make bench-sink`: sustained records/s into `mesh-audit sink`, fsync per
//! batch, from 4 concurrent writers sending 500-record batches of ~800-byte
//! records over kept-alive connections: once in plaintext without
//! verification, once over mTLS with `--keys` (every batch sealed and its
//! seal checked at ingest). Also the sink's memory for a million
//! one-record emitters. The client runs on the same machine and competes
//! for its cores, so the figures are a floor.
//!
//! `BENCH_QUICK=1`: a tenth of the batches and no memory run (a smoke run,
//! numbers not meaningful). `SINK_BENCH_WRAP="valgrind --tool=callgrind"`:
//! runs the sink under that command, to count its instructions per record.
//! Fails when mTLS with `--keys` stays below [`MTLS_KEYS_TARGET`] records/s
//! (not in a quick run).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mesh_audit::audit::record::{
    Destination, Fields, Kind, Record, Request, Response, Route, Source,
};
use mesh_audit::deliver::chain::Sequencer;
use mesh_audit::deliver::seal::{key_id, Signer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WRITERS: usize = 4;
const PER_BATCH: usize = 500;
/// The ingest rate the sink must keep over mTLS with seals checked.
const MTLS_KEYS_TARGET: f64 = 200_000.0;

fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// Batches each writer sends.
fn rounds() -> usize {
    if quick() {
        12
    } else {
        120
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pki() -> PathBuf {
    let dir = root().join("target/e2e/pki");
    assert!(Command::new("bash")
        .arg(root().join("envoy/pki.sh"))
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    dir
}

fn record(i: usize) -> Record {
    let mut r = Record::new(
        Kind::Request,
        format!("2026-11-21T14:03:{:02}.{:06}Z", i % 60, i % 1_000_000),
    );
    r.source = Some(Source {
        principal: Some("spiffe://cluster.local/ns/shop/sa/frontend".into()),
        address: Some("10.0.0.7:51234".into()),
        subject: Some("O=acme,CN=frontend".into()),
        cert_sha256: Some("9502d3".repeat(10)),
        ..Source::default()
    });
    r.destination = Some(Destination {
        principal: Some("spiffe://cluster.local/ns/default/sa/backend".into()),
        address: Some("10.0.0.9:8443".into()),
    });
    r.request = Some(Request {
        method: Some("GET".into()),
        path: Some(format!("/orders/{i}")),
        authority: Some("backend".into()),
        ..Request::default()
    });
    r.response = Some(Response {
        code: Some(200),
        ..Response::default()
    });
    r.route = Some(Route {
        name: Some("orders".into()),
        cluster: Some("backend".into()),
        virtual_host: Some("backend".into()),
    });
    r.request_id = Some(format!("90ae957f-{i:012}-4a1b-8c2d-{:012}", i * 7));
    r.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    r.duration_ms = Some(1.234);
    r
}

/// One writer's batches, as JSON-lines HTTP bodies (sealed when `signer`).
fn batches(writer: usize, signer: Option<&Signer>) -> (Vec<Vec<u8>>, usize) {
    let emitter = format!("{writer:032x}");
    let mut seq = Sequencer::new(emitter, true, None);
    let mut bytes = 0;
    let mut out = Vec::new();
    for b in 0..rounds() {
        let from = seq.next_seq();
        let mut body = Vec::with_capacity(PER_BATCH * 900);
        let n = if signer.is_some() {
            PER_BATCH - 1
        } else {
            PER_BATCH
        };
        for i in 0..n {
            let mut r = record(b * PER_BATCH + i);
            let mut line = seq.stamp(&mut r);
            // Pad to ~800 bytes with a captured header, as a real record has.
            if line.len() < 760 {
                r.request.as_mut().unwrap().headers = Some(Fields(vec![(
                    "user-agent".to_string(),
                    "x".repeat(800 - line.len() - 40),
                )]));
                line = seq.stamp(&mut r);
            }
            seq.commit(&line);
            bytes += line.len();
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
        if let Some(s) = signer {
            let seal = seq.seal("2026-11-21T14:03:59.000000Z", from, Some(s));
            seq.commit(&seal);
            body.extend_from_slice(&seal);
            body.push(b'\n');
        }
        out.push(body);
    }
    (out, bytes / (rounds() * PER_BATCH))
}

struct Sink {
    child: Child,
    port: u16,
}

impl Drop for Sink {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: a wrapper such as callgrind writes its
        // profile as the sink ends.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn start_sink(out: &Path, extra: &[String]) -> Sink {
    let wrap = std::env::var("SINK_BENCH_WRAP").unwrap_or_default();
    let mut command: Vec<String> = wrap.split_whitespace().map(String::from).collect();
    command.push(env!("CARGO_BIN_EXE_mesh-audit").to_string());
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .args([
            "sink",
            "--listen",
            "127.0.0.1:0",
            "--out",
            out.to_str().unwrap(),
            "--progress-secs",
            "3600",
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("sink exited").unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .split(',')
                .next()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Sink { child, port }
}

fn tls_config(pki: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_file_iter(pki.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki.join("server-key.pem")).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap(),
    )
}

/// Sends every batch on one kept-alive connection, each after the last is acknowledged.
fn send_all(mut conn: impl Read + Write, bodies: &[Vec<u8>]) {
    let mut reader_buf = Vec::new();
    for body in bodies {
        let head = format!(
            "POST /v1/audit HTTP/1.1\r\nHost: audit-sink\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(body).unwrap();
        conn.flush().unwrap();
        // Read one response: headers, then Content-Length bytes.
        reader_buf.clear();
        let mut byte = [0u8; 4096];
        let (status, mut rest, len) = loop {
            let n = conn.read(&mut byte).unwrap();
            assert!(n > 0, "connection closed");
            reader_buf.extend_from_slice(&byte[..n]);
            if let Some(end) = reader_buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&reader_buf[..end]).to_ascii_lowercase();
                let status: u16 = head[9..12].parse().unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                break (status, reader_buf.len() - end - 4, len);
            }
        };
        while rest < len {
            rest += conn.read(&mut byte).unwrap();
        }
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reader_buf));
    }
}

fn run(name: &str, mtls: bool, pki: &Path, dir: &Path) -> f64 {
    let signer = Signer::from_seed(&[42; 32]);
    let mut extra = Vec::new();
    if mtls {
        let public: String = signer
            .verifying_key()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let keyring = dir.join("keyring");
        std::fs::write(
            &keyring,
            format!("{} {public}\n", key_id(&signer.verifying_key())),
        )
        .unwrap();
        for (flag, value) in [
            ("--tls-cert", pki.join("audit-sink.pem")),
            ("--tls-key", pki.join("audit-sink-key.pem")),
            ("--client-ca", pki.join("ca.pem")),
            ("--keys", keyring),
        ] {
            extra.push(flag.to_string());
            extra.push(value.display().to_string());
        }
        extra.extend([
            "--allow-principal".to_string(),
            "spiffe://cluster.local/ns/default/sa/backend".to_string(),
        ]);
    }
    let work: Vec<(Vec<Vec<u8>>, usize)> = (0..WRITERS)
        .map(|w| batches(w, mtls.then_some(&signer)))
        .collect();
    let record_bytes = work[0].1;
    let out = dir.join(format!("{name}.jsonl"));
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(dir.join(format!("{name}.jsonl.owners")));
    let sink = start_sink(&out, &extra);
    let config = tls_config(pki);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (bodies, _) in &work {
            let config = config.clone();
            let port = sink.port;
            scope.spawn(move || {
                let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
                tcp.set_nodelay(true).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                if mtls {
                    let conn =
                        ClientConnection::new(config, ServerName::try_from("audit-sink").unwrap())
                            .unwrap();
                    send_all(StreamOwned::new(conn, tcp), bodies);
                } else {
                    send_all(tcp, bodies);
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let records = (WRITERS * rounds() * PER_BATCH) as f64;
    let rate = records / secs;
    println!(
        "{name}: {records} records of ~{record_bytes} bytes in {secs:.2} s = {rate:.0} records/s ({WRITERS} writers x {PER_BATCH}-record batches, fsync per batch)"
    );
    drop(sink);
    let _ = std::fs::remove_file(&out);
    rate
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn memory(dir: &Path) {
    let out = dir.join("million.jsonl");
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(dir.join("million.jsonl.owners"));
    let sink = start_sink(&out, &[]);
    let before = rss_kib(sink.child.id());
    let template = String::from_utf8(
        batches(0, None).0[0]
            .split(|&b| b == b'\n')
            .next()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let emitter = format!("{:032x}", 0);
    let bodies: Vec<Vec<u8>> = (0..100u32)
        .map(|b| {
            let mut body = Vec::new();
            for i in 0..10_000u32 {
                body.extend_from_slice(
                    template
                        .replace(&emitter, &format!("{b:08x}{i:024x}"))
                        .as_bytes(),
                );
                body.push(b'\n');
            }
            body
        })
        .collect();
    send_all(
        TcpStream::connect(("127.0.0.1", sink.port)).unwrap(),
        &bodies,
    );
    let after = rss_kib(sink.child.id());
    println!(
        "memory: 1 000 000 one-record emitters: sink RSS {} MiB -> {} MiB ({} B per emitter)",
        before / 1024,
        after / 1024,
        (after - before) * 1024 / 1_000_000
    );
    drop(sink);
    let _ = std::fs::remove_file(&out);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let pki = pki();
    let dir = root().join("target/bench/sink");
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "sink ingest: {WRITERS} writers x {PER_BATCH}-record batches, each acknowledged once fsynced"
    );
    run("plaintext", false, &pki, &dir);
    let mtls = run("mtls+keys", true, &pki, &dir);
    if quick() {
        return;
    }
    memory(&dir);
    if mtls < MTLS_KEYS_TARGET {
        eprintln!("sink ingest over mTLS with --keys: {mtls:.0} records/s, below the target of {MTLS_KEYS_TARGET:.0}");
        std::process::exit(1);
    }
}
