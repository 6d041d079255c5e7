//! Shared by the `mesh-audit` CLI tests: the built binary, scratch
//! directories, and real record lines made by the crate's own Sequencer.
#![allow(dead_code)]

pub mod sink;

use mesh_audit::audit::record::{
    Decision, Kind, LossReason, Record, Request, Response, Route, Source,
};
use mesh_audit::deliver::chain::Sequencer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mesh-audit")
}

/// Runs the CLI with `args` and extra environment variables.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A scratch directory removed when dropped; one of its own per call, so
/// tests running at once never share one.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "mesh-audit-cli-{name}-{}-{call}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// Writes `lines`, one per line, and returns the file's path as a string.
    pub fn write_lines(&self, file: &str, lines: &[Vec<u8>]) -> String {
        let mut body = Vec::new();
        for l in lines {
            body.extend_from_slice(l);
            body.push(b'\n');
        }
        let path = self.path(file);
        std::fs::write(&path, body).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cli")
        .join(name)
}

/// One request as the filter would describe it.
#[derive(Clone)]
pub struct Call<'a> {
    pub principal: Option<&'a str>,
    pub route: Option<&'a str>,
    pub cluster: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub code: u32,
    pub decision: Decision,
    pub duration_ms: f64,
    pub violation: Option<&'a str>,
}

impl Default for Call<'_> {
    fn default() -> Self {
        Call {
            principal: Some("spiffe://cluster.local/ns/shop/sa/frontend"),
            route: Some("orders"),
            cluster: "backend",
            method: "GET",
            path: "/orders/1",
            code: 200,
            decision: Decision::Allowed,
            duration_ms: 1.5,
            violation: None,
        }
    }
}

pub fn request(ts: &str, call: &Call) -> Record {
    let mut r = Record::new(Kind::Request, ts.to_string());
    r.source = Some(Source {
        principal: call.principal.map(String::from),
        address: Some("10.0.0.7:51234".into()),
        ..Source::default()
    });
    r.request = Some(Request {
        method: Some(call.method.into()),
        path: Some(call.path.into()),
        authority: Some(call.cluster.into()),
        ..Request::default()
    });
    r.response = Some(Response {
        code: Some(call.code),
        ..Response::default()
    });
    r.route = Some(Route {
        name: call.route.map(String::from),
        cluster: Some(call.cluster.into()),
        virtual_host: None,
    });
    r.duration_ms = Some(call.duration_ms);
    r.decision = Some(call.decision);
    r.violation = call.violation.map(String::from);
    r
}

pub fn loss(reason: LossReason, count: u64, range: Option<(u64, u64)>) -> Record {
    let mut r = Record::loss(
        reason,
        count,
        "2026-11-21T14:00:00.000000Z".into(),
        "2026-11-21T14:00:01.000000Z".into(),
        "2026-11-21T14:00:01.000000Z".into(),
    );
    if let Some((from, to)) = range {
        r.from_seq = Some(from);
        r.to_seq = Some(to);
    }
    r
}

/// An emitter's chained trail: each record stamped and committed in order,
/// returned as exact line bytes (index i holds seq i + 1).
pub fn trail(emitter: &str, key: Option<&[u8]>, records: Vec<Record>) -> Vec<Vec<u8>> {
    let mut seq = Sequencer::new(emitter.to_string(), true, key);
    records
        .into_iter()
        .map(|mut r| {
            let line = seq.stamp(&mut r);
            seq.commit(&line);
            line
        })
        .collect()
}

/// [`trail`] ended by a seal over all of it, as the filter ends a batch
/// (signed when `signer` is given).
pub fn sealed_trail(
    emitter: &str,
    key: Option<&[u8]>,
    signer: Option<&mesh_audit::deliver::seal::Signer>,
    records: Vec<Record>,
) -> Vec<Vec<u8>> {
    let mut seq = Sequencer::new(emitter.to_string(), true, key);
    let mut lines: Vec<Vec<u8>> = records
        .into_iter()
        .map(|mut r| {
            let line = seq.stamp(&mut r);
            seq.commit(&line);
            line
        })
        .collect();
    lines.push(seq.seal("2026-11-21T14:03:06Z", 1, signer));
    lines
}

/// `n` plain requests, paths `/orders/1`..`/orders/n`.
pub fn requests(n: usize) -> Vec<Record> {
    (1..=n)
        .map(|i| {
            let path = format!("/orders/{i}");
            let ts = format!("2026-11-21T14:03:{:02}.000000Z", i % 60);
            request(
                &ts,
                &Call {
                    path: &path,
                    ..Call::default()
                },
            )
        })
        .collect()
}

const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
const CONSOLE: &str = "spiffe://cluster.local/ns/ops/sa/console";

/// frontend → orders: 100 requests taking 1..=100 ms (90 allowed, 7 denied,
/// 3 errors, 2 violations); console → GET /admin: 4 requests; one health
/// check without identity; losses on two emitters.
pub fn known_trail() -> Vec<Vec<u8>> {
    let mut a: Vec<Record> = (1..=100)
        .map(|i| {
            let (code, decision) = match i {
                1..=90 => (200, Decision::Allowed),
                91..=97 => (403, Decision::Denied),
                _ => (503, Decision::Error),
            };
            let call = Call {
                principal: Some(FRONTEND),
                code,
                decision,
                duration_ms: f64::from(i),
                violation: (i % 50 == 0).then_some("admin-only"),
                ..Call::default()
            };
            request("2026-11-21T14:03:05.000000Z", &call)
        })
        .collect();
    for ms in [5.0, 1.0, 3.0, 2.0] {
        let call = Call {
            principal: Some(CONSOLE),
            route: None,
            cluster: "admin",
            path: "/admin",
            duration_ms: ms,
            ..Call::default()
        };
        a.push(request("2026-11-21T14:03:06.000000Z", &call));
    }
    let health = Call {
        principal: None,
        route: None,
        cluster: "backend",
        path: "/healthz",
        duration_ms: 0.25,
        ..Call::default()
    };
    a.push(request("2026-11-21T14:03:07.000000Z", &health));
    a.push(loss(LossReason::BufferFull, 5, None));
    a.push(loss(LossReason::BufferFull, 7, None));
    a.push(loss(LossReason::RateLimited, 3, None));
    let b = vec![loss(LossReason::Rejected, 4, Some((1, 4)))];
    let mut lines = trail("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", None, a);
    lines.extend(trail("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", None, b));
    lines
}

/// The (seq, reason) of every problem `mesh-audit verify --json` reports,
/// across its emitters.
pub fn problems(report: &serde_json::Value) -> Vec<(u64, String)> {
    report["emitters"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["problems"].as_array().unwrap().clone())
        .map(|p| {
            (
                p["seq"].as_u64().unwrap(),
                p["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
