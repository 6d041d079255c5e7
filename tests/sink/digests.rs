//! Signed digests: what an attacker who can edit the stored trail — and
//! delete its tail, whole emitters, segments or digests — cannot hide from
//! `verify --digests`.

use crate::cli_support::sink::SinkProcess;
use crate::cli_support::{requests, run, stdout, trail, Scratch};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn sh(cmd: &str) {
    let status = Command::new("bash").arg("-c").arg(cmd).status().unwrap();
    assert!(status.success(), "{cmd}");
}

fn verify(trail: &Path, digests: &Path, key: &Path) -> (i32, String) {
    let out = run(
        &[
            "verify",
            trail.to_str().unwrap(),
            "--digests",
            digests.to_str().unwrap(),
            "--sink-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    (out.status.code().unwrap(), stdout(&out))
}

/// A rotated trail of two emitters with its digests, the last digest
/// written after the last record; returns (trail dir, digests dir, public key).
fn signed_trail(s: &Scratch) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let key = s.path("sink-key.pem");
    let public = s.path("sink-key.pub.pem");
    sh(&format!(
        "openssl genpkey -algorithm ed25519 -out {k} && openssl pkey -in {k} -pubout -out {p}",
        k = key.display(),
        p = public.display()
    ));
    let dir = s.path("trail");
    let sink = SinkProcess::start(
        &dir,
        &[
            "--rotate-bytes",
            "3000",
            "--digest-key",
            key.to_str().unwrap(),
            "--digest-secs",
            "1",
        ],
    );
    sink.wait_for_stderr("signing digests with key ");
    let a = trail(A, None, requests(20));
    let b = trail(B, None, requests(5));
    for chunk in a.chunks(4) {
        assert_eq!(sink.post_jsonl(chunk).0, 200);
    }
    assert_eq!(sink.post_jsonl(&b).0, 200);
    let written = sink.metric("mesh_audit_sink_last_write_timestamp_seconds");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.metric("mesh_audit_sink_last_digest_timestamp_seconds") <= written
        || sink.metric("mesh_audit_sink_digests_total") < 3.0
    {
        assert!(Instant::now() < deadline, "no digest after the last write");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(sink);
    (dir, s.path("trail.digests"), public)
}

/// A fresh copy of the trail and its digests to attack.
fn copy(
    s: &Scratch,
    dir: &Path,
    digests: &Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let t = s.path(&format!("{name}/trail"));
    let d = s.path(&format!("{name}/trail.digests"));
    sh(&format!(
        "mkdir -p {n} && cp -r {dir} {t} && cp -r {dg} {d}",
        n = s.path(name).display(),
        dir = dir.display(),
        t = t.display(),
        dg = digests.display(),
        d = d.display()
    ));
    (t, d)
}

fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.sort();
    names
}

#[test]
fn truncated_deleted_or_edited_segments_missing_digests_and_removed_tails_all_fail() {
    let s = Scratch::new("sink-digests");
    let (dir, digests, key) = signed_trail(&s);
    let (code, out) = verify(&dir, &digests, &key);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" checked; newest #"), "{out}");
    assert!(out.contains(", sha256 "), "{out}");
    let names = segments(&dir);
    assert!(names.len() >= 3, "{names:?}");

    // Truncate the last segment by its last line (emitter B's tail).
    let (t, d) = copy(&s, &dir, &digests, "truncated");
    let last = t.join(names.last().unwrap());
    sh(&format!("sed -i '$ d' {}", last.display()));
    let (code, out) = verify(&t, &d, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("truncated:"), "{out}");
    assert!(
        out.contains(&format!("emitter {B}: seq 5, its last record when digest")),
        "{out}"
    );

    // Delete a whole segment.
    let (t, d) = copy(&s, &dir, &digests, "deleted");
    std::fs::remove_file(t.join(&names[0])).unwrap();
    let (code, out) = verify(&t, &d, &key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("file {}: listed by digest", names[0])) && out.contains("is deleted"),
        "{out}"
    );

    // Delete a digest in the middle of the chain.
    let (t, d) = copy(&s, &dir, &digests, "no-digest");
    let mut ds: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    ds.sort();
    std::fs::remove_file(&ds[1]).unwrap();
    let (code, out) = verify(&t, &d, &key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("digests 2..2 are missing from the chain"),
        "{out}"
    );

    // Remove a whole emitter, rewriting the files it was in.
    let (t, d) = copy(&s, &dir, &digests, "no-emitter");
    sh(&format!("sed -i '/{B}/d' {}/*.jsonl", t.display()));
    let (code, out) = verify(&t, &d, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("emitter {B}: seq 5")), "{out}");
    assert!(
        out.contains("edited:") || out.contains("truncated:"),
        "{out}"
    );

    // A digest signed by another key is not the sink's.
    let other = s.path("other.pub.pem");
    sh(&format!(
        "openssl genpkey -algorithm ed25519 | openssl pkey -pubout -out {}",
        other.display()
    ));
    let (code, out) = verify(&dir, &digests, &other);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("signature does not verify with --sink-key"),
        "{out}"
    );
}

#[test]
fn retention_deletes_only_closed_segments_a_signed_digest_lists() {
    let s = Scratch::new("sink-retain");
    let key = s.path("k.pem");
    sh(&format!(
        "openssl genpkey -algorithm ed25519 -out {}",
        key.display()
    ));
    let dir = s.path("trail");
    let sink = SinkProcess::start(
        &dir,
        &[
            "--rotate-bytes",
            "2000",
            "--digest-key",
            key.to_str().unwrap(),
            "--digest-secs",
            "1",
            "--retain-days",
            "0",
        ],
    );
    let lines = trail(A, None, requests(12));
    for chunk in lines.chunks(3) {
        assert_eq!(sink.post_jsonl(chunk).0, 200);
    }
    let line = sink.wait_for_stderr("older than --retain-days and covered by digest");
    assert!(line.contains("deleted segment 00000001-"), "{line}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while segments(&dir).len() > 1 {
        assert!(
            Instant::now() < deadline,
            "closed segments kept: {:?}",
            segments(&dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!segments(&dir).is_empty(), "the open segment stays");
    drop(sink);
    let public = s.path("k.pub.pem");
    sh(&format!(
        "openssl pkey -in {} -pubout -out {}",
        key.display(),
        public.display()
    ));
    // The chain check sees the deleted prefix as a gap; the digests hold.
    let (_, out) = verify(&dir, &s.path("trail.digests"), &public);
    let digests = out
        .lines()
        .find(|l| l.starts_with("digests: "))
        .unwrap_or_default();
    assert!(
        digests.ends_with(": OK"),
        "after retention the newest digest describes the trail: {out}"
    );
    assert!(!out.contains("DIGEST PROBLEM"), "{out}");
    let refused = run(
        &[
            "sink",
            "--out",
            s.path("x").to_str().unwrap(),
            "--retain-days",
            "1",
        ],
        &[],
    );
    assert_eq!(
        refused.status.code(),
        Some(2),
        "--retain-days without --digest-key"
    );
}
