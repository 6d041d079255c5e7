//! `mesh-audit sink` as a real process on a loopback port: batches are
//! stored byte-for-byte before the 2xx, de-duplicated across restarts, and
//! bad input gets an HTTP answer, never a crash.
#![cfg(feature = "cli")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use cli_support::sink::SinkProcess as Sink;
use cli_support::{requests, run, trail, Scratch};
use mesh_audit::deliver::encode_otlp::{encode, Resource};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const EMITTER: &str = "0123456789abcdef0123456789abcdef";

fn stored(lines: &[Vec<u8>]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect()
}

#[test]
fn a_batch_is_stored_byte_for_byte_before_the_answer_and_once_across_restarts() {
    let s = Scratch::new("sink-store");
    let out = s.path("audit.jsonl");
    let lines = trail(EMITTER, None, requests(5));
    let sink = Sink::start(&out, &[]);

    assert_eq!(
        sink.post_jsonl(&lines[..3]),
        (200, "{\"stored\":3,\"duplicates\":0}\n".into())
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        stored(&lines[..3]),
        "on disk when the 2xx arrives"
    );

    // A retried batch overlapping what is stored adds only the new records.
    assert_eq!(
        sink.post_jsonl(&lines[1..5]),
        (200, "{\"stored\":2,\"duplicates\":2}\n".into())
    );
    assert_eq!(
        sink.post_jsonl(&[lines[0].clone(), lines[0].clone()]),
        (200, "{\"stored\":0,\"duplicates\":2}\n".into())
    );
    assert_eq!(std::fs::read(&out).unwrap(), stored(&lines));
    let progress = sink.wait_for_stderr("records/s");
    assert!(
        progress.contains("5 records stored")
            && progress.contains("1 emitters")
            && progress.contains("4 duplicates dropped"),
        "{progress}"
    );
    drop(sink);

    let sink = Sink::start(&out, &[]);
    assert!(sink
        .wait_for_stderr("listening on")
        .contains("(5 records from 1 emitters already stored)"));
    assert_eq!(
        sink.post_jsonl(&lines),
        (200, "{\"stored\":0,\"duplicates\":5}\n".into())
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        stored(&lines),
        "the seen-set was rebuilt from the file"
    );

    let verified = run(&["verify", out.to_str().unwrap()], &[]);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
}

#[test]
fn malformed_batches_are_refused_whole_with_a_reason() {
    let s = Scratch::new("sink-bad");
    let out = s.path("audit.jsonl");
    let sink = Sink::start(&out, &[]);
    let lines = trail(EMITTER, None, requests(2));

    let (status, body) = sink.post("/v1/audit", "application/x-ndjson", b"\x00\xffgarbage");
    assert_eq!(status, 400);
    assert_eq!(body, "malformed batch: line 1: not a JSON object\n");

    let mut half = lines[0].clone();
    half.extend_from_slice(b"\n{\"kind\":\"request\",\"ts\":\"x\",\"seq\":2}\n");
    let (status, body) = sink.post("/v1/audit", "application/x-ndjson", &half);
    assert_eq!(
        (status, body.as_str()),
        (400, "malformed batch: line 2: record has no emitter\n")
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"",
        "no part of a refused batch is stored"
    );

    assert_eq!(sink.send("GET /v1/audit HTTP/1.1", b"").0, 405);
    assert_eq!(sink.post("/elsewhere", "text/plain", b"x").0, 404);
    assert_eq!(sink.post("/v1/logs", "application/json", b"{}").0, 415);
    assert_eq!(
        sink.send("POST /v1/audit HTTP/1.1\r\nContent-Length: nope", b"")
            .0,
        400
    );
    let (status, _) = sink.send(
        "POST /v1/audit HTTP/1.1\r\nContent-Length: 5\r\nContent-Encoding: gzip",
        b"12345",
    );
    assert_eq!(status, 415);
    assert_eq!(sink.post_jsonl(&lines).0, 200, "still serving");
}

#[test]
fn bodies_above_the_limit_get_413_however_they_are_sent() {
    let s = Scratch::new("sink-limit");
    let out = s.path("audit.jsonl");
    let sink = Sink::start(&out, &["--max-body-bytes", "1000"]);
    let big = vec![b'x'; 2000];

    assert_eq!(sink.post("/v1/audit", "application/x-ndjson", &big).0, 413);
    // A declared length far beyond memory must not be allocated or waited for.
    let (status, body) = sink.send(
        "POST /v1/audit HTTP/1.1\r\nContent-Length: 1000000000000000",
        b"abc",
    );
    assert_eq!(
        (status, body.as_str()),
        (413, "batch larger than 1000 bytes\n")
    );
    let mut chunked = format!("{:x}\r\n", big.len()).into_bytes();
    chunked.extend_from_slice(&big);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(
        sink.send(
            "POST /v1/audit HTTP/1.1\r\nTransfer-Encoding: chunked",
            &chunked
        )
        .0,
        413
    );

    assert_eq!(
        sink.send("GET /healthz HTTP/1.1", b"").0,
        200,
        "still serving"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"");
}

#[test]
fn otlp_batches_store_each_log_body_as_the_record_line() {
    let s = Scratch::new("sink-otlp");
    let out = s.path("audit.jsonl");
    let sink = Sink::start(&out, &[]);
    let lines = trail(EMITTER, None, requests(3));
    let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let resource = Resource {
        emitter: EMITTER,
        node_id: Some("sidecar~10.0.0.7"),
        version: "0.1.0",
    };
    let body = encode(&refs, &resource, 1_795_269_785_000_000_000);

    let head = format!(
        "POST /v1/logs HTTP/1.1\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}",
        body.len()
    );
    let mut conn = TcpStream::connect(&sink.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(format!("{head}\r\nHost: sink\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    conn.write_all(&body).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    let lower = reply.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/x-protobuf\r\n"),
        "{reply}"
    );
    assert!(
        lower.contains("content-length: 0\r\n"),
        "an empty ExportLogsServiceResponse: {reply}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), stored(&lines));

    assert_eq!(
        sink.post("/v1/logs", "application/x-protobuf", &body).0,
        200
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        stored(&lines),
        "an OTLP retry is de-duplicated too"
    );
    let (status, reason) = sink.post("/v1/logs", "application/x-protobuf", b"\x0a\x05garbage");
    assert_eq!(status, 400);
    assert!(reason.starts_with("malformed batch: "), "{reason}");
}
