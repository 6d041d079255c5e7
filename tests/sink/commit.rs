//! Group commit under concurrent writers: one sync covers the batches of
//! several writers, yet no batch is acknowledged before a sync that covers
//! its bytes (observed at the system call: every sync of the real sink is
//! logged by a preloaded shim once it returned), and racing versions of one
//! (emitter, seq) still end exactly: one stored, the other 409 every time.

use crate::cli_support::sink::SinkProcess;
use crate::cli_support::{requests, trail, Scratch};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Barrier, Mutex};

const EMITTERS: usize = 4;
/// Per emitter: two writers send the genuine chain (identical bytes), one a forged one.
const WRITERS: usize = 3;
const ROUNDS: usize = 8;
const PER_BATCH: usize = 50;

fn shim(s: &Scratch) -> PathBuf {
    let so = s.path("libsync_log.so");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sink/sync_log.c");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .status()
        .unwrap();
    assert!(status.success(), "cc {}: {status}", src.display());
    so
}

/// Where `batch` ends in the trail file (past its last line), if it is there.
fn end_in(trail: &[u8], batch: &[Vec<u8>]) -> Option<u64> {
    let mut last = batch.last()?.clone();
    last.push(b'\n');
    let at = trail
        .windows(last.len())
        .position(|w| w == last.as_slice())?;
    Some((at + last.len()) as u64)
}

/// The largest size a returned sync of inode `ino` is sure to have covered.
fn synced(log: &Path, ino: u64) -> u64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(i, _)| i.parse() == Ok(ino))
        .filter_map(|(_, size)| size.parse().ok())
        .max()
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Version {
    Genuine,
    Forged,
}

#[test]
fn concurrent_batches_share_syncs_and_none_is_acknowledged_before_its_sync() {
    let s = Scratch::new("sink-group-commit");
    let out = s.path("audit.jsonl");
    let log = s.path("syncs.log");
    let so = shim(&s);
    let sink = SinkProcess::start_with_env(
        &out,
        &[],
        &[
            ("LD_PRELOAD", so.to_str().unwrap()),
            ("SYNC_LOG", log.to_str().unwrap()),
            ("SYNC_DELAY_MS", "30"),
        ],
    );
    let ino = std::fs::metadata(&out).unwrap().ino();
    let emitters: Vec<String> = (0..EMITTERS)
        .map(|e| format!("{:032x}", 0xa0 + e))
        .collect();
    let chain = |e: usize, v: Version| {
        let mut records = requests(ROUNDS * PER_BATCH);
        if v == Version::Forged {
            for r in &mut records {
                r.request.as_mut().unwrap().path = Some("/forged".into());
            }
        }
        trail(&emitters[e], None, records)
    };
    let chains: Vec<[Vec<Vec<u8>>; 2]> = (0..EMITTERS)
        .map(|e| [chain(e, Version::Genuine), chain(e, Version::Forged)])
        .collect();
    let barrier = Barrier::new(EMITTERS * WRITERS);
    // (emitter, version, round, status, body) of every answer.
    let answers = Mutex::new(Vec::new());
    let early = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (e, versions) in chains.iter().enumerate() {
            for w in 0..WRITERS {
                let version = if w == WRITERS - 1 {
                    Version::Forged
                } else {
                    Version::Genuine
                };
                let lines = &versions[version as usize];
                let (sink, barrier, answers, early, out, log) =
                    (&sink, &barrier, &answers, &early, &out, &log);
                scope.spawn(move || {
                    let mut won = true;
                    for round in 0..ROUNDS {
                        // A writer whose version lost keeps retrying its first batch.
                        let k = if won { round } else { 0 };
                        let batch = &lines[k * PER_BATCH..(k + 1) * PER_BATCH];
                        barrier.wait();
                        let (status, body) = sink.post_jsonl(batch);
                        if status == 200 {
                            let end = end_in(&std::fs::read(out).unwrap_or_default(), batch);
                            let durable = synced(log, ino);
                            // Not asserted here: a panicking writer would
                            // leave the others waiting at the barrier.
                            if end.is_none_or(|end| durable < end) {
                                early.lock().unwrap().push(format!(
                                    "emitter {e} {version:?} round {round}: acknowledged ({body:?}) with the trail durable to {durable} bytes, the batch ending at {end:?}"
                                ));
                            }
                        }
                        if round == 0 {
                            won = status == 200;
                        }
                        answers
                            .lock()
                            .unwrap()
                            .push((e, version, round, status, body));
                    }
                });
            }
        }
    });
    let early = early.into_inner().unwrap();
    assert!(early.is_empty(), "acknowledged before durable: {early:#?}");
    let answers = answers.into_inner().unwrap();
    let mut conflicts = 0;
    let mut expected = Vec::new();
    for (e, chains) in chains.iter().enumerate() {
        let of = |v: Version| answers.iter().filter(move |a| a.0 == e && a.1 == v);
        let first = |v: Version| of(v).filter(|a| a.2 == 0).map(|a| a.3).collect::<Vec<_>>();
        let (winner, loser) = match (
            first(Version::Genuine).as_slice(),
            first(Version::Forged).as_slice(),
        ) {
            ([200, 200], [409]) => (Version::Genuine, Version::Forged),
            ([409, 409], [200]) => (Version::Forged, Version::Genuine),
            other => panic!("emitter {e}: round 0 must store exactly one version: {other:?}"),
        };
        for a in of(winner) {
            assert_eq!(a.3, 200, "{a:?}");
        }
        for a in of(loser) {
            assert_eq!(a.3, 409, "{a:?}");
            assert!(a.4.starts_with("conflict: "), "{a:?}");
            conflicts += 1;
        }
        // Each stored batch was stored once; every other 200 counted its records as duplicates.
        let stored: u64 = of(winner)
            .map(|a| {
                serde_json::from_str::<serde_json::Value>(&a.4).unwrap()["stored"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        assert_eq!(stored, (ROUNDS * PER_BATCH) as u64, "emitter {e}");
        expected.push((emitters[e].clone(), chains[winner as usize].clone()));
    }
    // The trail holds each emitter's winning chain, exactly and in order.
    let trail = String::from_utf8(std::fs::read(&out).unwrap()).unwrap();
    for (emitter, lines) in &expected {
        let kept: Vec<&str> = trail
            .lines()
            .filter(|l| l.contains(emitter.as_str()))
            .collect();
        let want: Vec<&str> = lines
            .iter()
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        assert_eq!(kept, want, "emitter {emitter}");
    }
    assert_eq!(trail.lines().count(), EMITTERS * ROUNDS * PER_BATCH);
    let quarantined = std::fs::read_to_string(s.path("audit.jsonl.quarantine.jsonl")).unwrap();
    assert_eq!(quarantined.lines().count(), conflicts);
    assert_eq!(
        sink.metric("mesh_audit_sink_batches_rejected_total{reason=\"conflict\"}"),
        conflicts as f64
    );
    let acknowledged = sink.metric("mesh_audit_sink_batches_stored_total");
    let syncs = sink.metric("mesh_audit_sink_syncs_total");
    assert_eq!(acknowledged as usize, answers.len() - conflicts);
    assert!(
        syncs >= 1.0 && syncs < acknowledged,
        "concurrent batches share syncs: {syncs} syncs for {acknowledged} acknowledged batches"
    );
}
