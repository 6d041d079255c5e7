//! The trail on disk: never through a symlink, one writer at a time, a
//! free-space floor, and segments that `verify` and `report` read as one trail.

use crate::cli_support::sink::SinkProcess;
use crate::cli_support::{requests, run, stdout, trail, Scratch};
use crate::{read, EMITTER};
use std::time::{Duration, Instant};

#[test]
fn a_symlinked_out_is_refused_and_its_target_untouched() {
    let s = Scratch::new("sink-symlink");
    let target = s.path("precious.txt");
    std::fs::write(&target, b"line one\nhalf a line").unwrap();
    let link = s.path("audit.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = run(&["sink", "--out", link.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a symbolic link; the sink writes only to a real file"),
        "{err}"
    );
    assert_eq!(read(&target), b"line one\nhalf a line");
    let fifo = s.path("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = run(&["sink", "--out", fifo.to_str().unwrap()], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a regular file"));
}

#[test]
fn a_second_sink_on_the_same_trail_fails_with_a_clear_error() {
    let s = Scratch::new("sink-lock");
    let out = s.path("audit.jsonl");
    let _first = SinkProcess::start(&out, &[]);
    let second = run(
        &[
            "sink",
            "--listen",
            "127.0.0.1:0",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another process (a second sink?) holds the lock on"),
        "{err}"
    );

    let dir = s.path("segments");
    let _rotating = SinkProcess::start(&dir, &["--rotate-bytes", "1000000"]);
    let second = run(
        &[
            "sink",
            "--listen",
            "127.0.0.1:0",
            "--out",
            dir.to_str().unwrap(),
            "--rotate-secs",
            "60",
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("holds the lock"));
}

#[test]
fn below_the_free_space_floor_batches_get_503_with_retry_after() {
    let s = Scratch::new("sink-floor");
    let out = s.path("audit.jsonl");
    let sink = SinkProcess::start(&out, &["--min-free-bytes", "18446744073709551615"]);
    let reply = sink.send(
        &format!(
            "POST /v1/audit HTTP/1.1\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}",
            trail(EMITTER, None, requests(1))[0].len()
        ),
        &trail(EMITTER, None, requests(1))[0],
    );
    assert_eq!(reply.0, 503, "{reply:?}");
    assert!(
        reply.1.contains("below the sink's floor; retry later"),
        "{reply:?}"
    );
    assert_eq!(read(&out), b"");
    assert_eq!(
        sink.metric("mesh_audit_sink_batches_rejected_total{reason=\"unavailable\"}"),
        1.0
    );
}

#[test]
fn rotated_and_gzipped_segments_verify_and_report_as_one_trail() {
    let s = Scratch::new("sink-rotate");
    let dir = s.path("trail");
    let lines = trail(EMITTER, None, requests(30));
    {
        let sink = SinkProcess::start(&dir, &["--rotate-bytes", "4000", "--gzip"]);
        for chunk in lines.chunks(5) {
            assert_eq!(sink.post_jsonl(chunk).0, 200);
        }
        // Closed segments are gzipped in the background.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            let gz = names.iter().filter(|n| n.ends_with(".jsonl.gz")).count();
            let plain = names.iter().filter(|n| n.ends_with(".jsonl")).count();
            if gz >= 2 && plain == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "segments: {names:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            sink.post_jsonl(&lines[..5]),
            (200, "{\"stored\":0,\"duplicates\":5}\n".into())
        );
    }
    let d = dir.to_str().unwrap();
    let verified = run(&["verify", d], &[]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
    assert!(
        stdout(&verified).contains("30 records"),
        "{}",
        stdout(&verified)
    );
    let report = run(&["report", d], &[]);
    assert_eq!(report.status.code(), Some(0));
    assert!(stdout(&report).contains("frontend"), "{}", stdout(&report));

    // A restart reads every segment back: retries are still duplicates.
    let sink = SinkProcess::start(&dir, &["--rotate-bytes", "4000", "--gzip"]);
    assert!(sink
        .wait_for_stderr("listening on")
        .contains("(30 records from 1 emitters already stored)"));
    assert_eq!(
        sink.post_jsonl(&lines[25..]),
        (200, "{\"stored\":0,\"duplicates\":5}\n".into())
    );
}
