//! `mesh-audit verify` on trails made by the crate's own Sequencer and then
//! doctored: every kind of damage is detected and named by its seq.
#![cfg(feature = "cli")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use cli_support::{loss, requests, run, sealed_trail, stdout, trail, Scratch};
use mesh_audit::audit::hex;
use mesh_audit::audit::record::LossReason;
use mesh_audit::deliver::chain::link;
use serde_json::Value;

const EMITTER: &str = "6f1c2b0e9d8a7c6b5a4f3e2d1c0b9a88";

fn replace(line: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(line.to_vec()).unwrap();
    assert!(text.contains(from), "{from} not in {text}");
    text.replacen(from, to, 1).into_bytes()
}

/// Runs verify on `lines` and returns (exit code, text output, JSON output).
fn verify(
    scratch: &Scratch,
    lines: &[Vec<u8>],
    env: &[(&str, &str)],
    key: bool,
) -> (i32, String, Value) {
    let file = scratch.write_lines("trail.jsonl", lines);
    let mut args = vec!["verify", file.as_str()];
    if key {
        args.extend(["--key-env", "CHAIN_KEY"]);
    }
    let text = run(&args, env);
    args.push("--json");
    let json = run(&args, env);
    assert_eq!(
        text.status.code(),
        json.status.code(),
        "text and JSON modes agree on the verdict"
    );
    let parsed: Value = serde_json::from_slice(&json.stdout).unwrap();
    (text.status.code().unwrap(), stdout(&text), parsed)
}

fn emitter(json: &Value) -> &Value {
    &json["emitters"][0]
}

#[test]
fn an_untouched_trail_passes() {
    let s = Scratch::new("verify-untouched");
    let (code, text, json) = verify(&s, &trail(EMITTER, None, requests(10)), &[], false);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!(
            "emitter {EMITTER}: 10 records, seq 1..10, chained\n"
        )) && text.contains("\n  ok\n"),
        "{text}"
    );
    assert!(text.ends_with(": OK\n"), "{text}");
    assert_eq!(json["ok"], true);
    assert_eq!(json["records"], 10);
    assert_eq!(emitter(&json)["last_seq"], 10);
    assert_eq!(emitter(&json)["mismatches"], serde_json::json!([]));
}

#[test]
fn an_edited_field_breaks_the_link_to_the_next_record() {
    let s = Scratch::new("verify-edit");
    let mut lines = trail(EMITTER, None, requests(10));
    lines[3] = replace(&lines[3], "/orders/4", "/orders/X");
    let (code, text, json) = verify(&s, &lines, &[], false);
    assert_eq!(code, 1);
    assert!(
        text.contains("HASH MISMATCH: seq 5 (line 5): prev does not match seq 4: seq 4 was altered, or seq 5 was forged or altered"),
        "{text}"
    );
    assert!(text.contains("FAILED: first bad seq 5"), "{text}");
    assert_eq!(emitter(&json)["first_bad_seq"], 5);
    assert_eq!(emitter(&json)["mismatches"].as_array().unwrap().len(), 1);
}

#[test]
fn a_deleted_line_is_an_unexplained_gap() {
    let s = Scratch::new("verify-delete");
    let mut lines = trail(EMITTER, None, requests(10));
    lines.remove(5);
    let (code, text, json) = verify(&s, &lines, &[], false);
    assert_eq!(code, 1);
    assert!(text.contains("UNEXPLAINED GAP: seq 6 missing"), "{text}");
    assert!(
        text.contains("unchecked: seq 7 (line 6): its predecessor is missing (unexplained gap)"),
        "{text}"
    );
    assert_eq!(
        emitter(&json)["unexplained_gaps"],
        serde_json::json!([{"from_seq": 6, "to_seq": 6}])
    );
    assert_eq!(emitter(&json)["first_bad_seq"], 6);
    assert_eq!(emitter(&json)["mismatches"], serde_json::json!([]));
}

#[test]
fn swapping_the_seq_of_two_records_breaks_the_chain() {
    let s = Scratch::new("verify-swap");
    let mut lines = trail(EMITTER, None, requests(10));
    lines[2] = replace(&lines[2], "\"seq\":3,", "\"seq\":4,");
    lines[3] = replace(&lines[3], "\"seq\":4,", "\"seq\":3,");
    let (code, text, json) = verify(&s, &lines, &[], false);
    assert_eq!(code, 1);
    let seqs: Vec<u64> = emitter(&json)["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    assert!(text.contains("FAILED: first bad seq 3"), "{text}");
}

#[test]
fn records_in_any_file_order_verify() {
    let s = Scratch::new("verify-order");
    let mut lines = trail(EMITTER, None, requests(10));
    lines.reverse();
    let other = trail("00000000000000000000000000000002", None, requests(4));
    for (i, l) in other.into_iter().enumerate() {
        lines.insert(i * 2, l);
    }
    let (code, text, json) = verify(&s, &lines, &[], false);
    assert_eq!(code, 0, "{text}");
    assert_eq!(json["emitters"].as_array().unwrap().len(), 2);
}

#[test]
fn an_identical_duplicate_is_reported_but_a_conflicting_one_fails() {
    let s = Scratch::new("verify-dup");
    let mut lines = trail(EMITTER, None, requests(10));
    lines.push(lines[4].clone());
    let (code, text, json) = verify(&s, &lines, &[], false);
    assert!(
        text.contains("duplicate: seq 5 stored 2 times, identical (lines 5, 11)"),
        "{text}"
    );
    assert_eq!(
        emitter(&json)["duplicates"],
        serde_json::json!([{"seq": 5, "lines": [5, 11], "identical": true}])
    );
    assert_eq!(code, 0, "a batch stored twice loses and alters nothing");

    let last = lines.len() - 1;
    lines[last] = replace(&lines[last], "/orders/5", "/orders/55");
    let (code, text, json) = verify(&s, &lines, &[], false);
    assert_eq!(code, 1);
    assert!(
        text.contains(
            "CONFLICT: seq 5 has 2 different records (lines 5, 11); seq 6 links to line 5"
        ),
        "{text}"
    );
    assert_eq!(emitter(&json)["duplicates"][0]["linked_line"], 5);
    assert_eq!(emitter(&json)["first_bad_seq"], 5);
}

#[test]
fn with_a_key_a_line_forged_without_it_is_detected() {
    let s = Scratch::new("verify-hmac");
    let key = b"chain-key-0123456789";
    let env = [("CHAIN_KEY", "chain-key-0123456789")];
    // Six requests and the seal that ends their batch (seq 7).
    let genuine = sealed_trail(EMITTER, Some(key), None, requests(6));
    let (code, text, _) = verify(&s, &genuine, &env, true);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("HMAC-SHA256 chain"), "{text}");

    // A forger without the key can only link their record with plain SHA-256.
    let mut extra = requests(8).remove(7);
    extra.emitter = Some(EMITTER.into());
    extra.seq = Some(8);
    extra.prev = Some(hex(&link(None, &genuine[6])));
    let mut forged = genuine.clone();
    forged.push(mesh_audit::audit::record::json::to_vec(&extra));
    let (code, text, json) = verify(&s, &forged, &env, true);
    assert_eq!(code, 1);
    assert!(text.contains("HASH MISMATCH: seq 8 (line 8)"), "{text}");
    assert_eq!(emitter(&json)["first_bad_seq"], 8);

    let (code, text, json) = verify(&s, &genuine, &[], false);
    assert_eq!(code, 1, "an HMAC chain does not verify as plain SHA-256");
    assert!(
        json["hint"].as_str().unwrap().contains("pass --key-env"),
        "{text}"
    );

    let out = run(
        &[
            "verify",
            s.path("trail.jsonl").to_str().unwrap(),
            "--key-env",
            "NO_SUCH_VARIABLE_SET",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("environment variable NO_SUCH_VARIABLE_SET is not set"));
}

#[test]
fn gaps_explained_by_rejected_losses_pass_and_losses_are_reported() {
    let s = Scratch::new("verify-losses");
    let mut records = requests(6);
    records.push(loss(LossReason::Rejected, 3, Some((4, 6))));
    records.push(requests(1).remove(0));
    records.push(loss(LossReason::BufferFull, 12, None));
    records.push(loss(LossReason::RateLimited, 2, None));
    let mut lines = trail(EMITTER, None, records);
    // seq 4..6 were the batch the sink refused; seq 7 says so.
    lines.drain(3..6);
    let (code, text, json) = verify(&s, &lines, &[], false);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("explained gap: seq 4..6 (rejected by the sink, loss record seq 7)"),
        "{text}"
    );
    assert!(
        text.contains("unchecked: seq 7 (line 4): its predecessor is missing (explained gap)"),
        "{text}"
    );
    assert!(
        text.contains("loss: 12 records never admitted (buffer_full, loss record seq 9)"),
        "{text}"
    );
    assert!(
        text.contains("loss: 2 records never admitted (rate_limited, loss record seq 10)"),
        "{text}"
    );
    let e = emitter(&json);
    assert_eq!(
        e["explained_gaps"],
        serde_json::json!([{"from_seq": 4, "to_seq": 6, "loss_seq": 7}])
    );
    assert_eq!(
        e["losses"][1],
        serde_json::json!({"seq": 9, "reason": "buffer_full", "count": 12})
    );

    // Without the loss record, the same gap is unexplained.
    lines.remove(3);
    let (code, text, _) = verify(&s, &lines, &[], false);
    assert_eq!(code, 1);
    assert!(text.contains("UNEXPLAINED GAP: seq 4..7 missing"), "{text}");
}

#[test]
fn a_line_that_is_not_a_record_fails() {
    let s = Scratch::new("verify-garbage");
    let mut lines = trail(EMITTER, None, requests(3));
    lines.insert(1, b"{\"kind\":\"request\"".to_vec());
    let (code, text, json) = verify(&s, &lines, &[], false);
    assert_eq!(code, 1);
    assert!(text.contains("BAD LINE 2: not an audit record"), "{text}");
    assert_eq!(json["bad_lines"][0]["line"], 2);
    assert_eq!(
        emitter(&json)["ok"],
        true,
        "the emitter's own records are intact"
    );
}

/// Exit status 2 and `mesh-audit <command>: <what> (<what to do>)` on stderr.
fn fails_with(args: &[&str], wanted: &str) {
    let out = run(args, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.starts_with(&format!("mesh-audit {}: ", args[0])),
        "{err}"
    );
    assert!(err.contains(wanted), "{args:?}: {err}\nwant {wanted}");
}

#[test]
fn what_stops_a_check_exits_2_and_says_what_to_do() {
    let s = Scratch::new("verify-unreadable");
    let absent = s.path("absent.jsonl");
    let absent = absent.to_str().unwrap();
    for command in ["verify", "report"] {
        fails_with(
            &[command, absent],
            "(give the file or directory `mesh-audit sink --out` wrote)",
        );
    }
    let empty = s.path("empty");
    std::fs::create_dir(&empty).unwrap();
    fails_with(
        &["verify", empty.to_str().unwrap()],
        "the directory holds no segment files",
    );
    let file = s.write_lines("trail.jsonl", &trail(EMITTER, None, requests(2)));
    let ring = s.write_lines("keyring", &[b"only-one-word".to_vec()]);
    fails_with(
        &["verify", &file, "--keys", &ring],
        &format!("--keys {ring}: line 1: expected KEY_ID PUBKEY [PATTERN...]"),
    );
    fails_with(
        &[
            "verify",
            &file,
            "--digests",
            s.path("trail.jsonl.digests").to_str().unwrap(),
            "--sink-key",
            &"ab".repeat(32),
        ],
        "--sink-key: not a valid Ed25519 public key",
    );
    let into_nowhere = s.path("no-such-dir/report.html");
    fails_with(
        &["report", &file, "-o", into_nowhere.to_str().unwrap()],
        "check that its directory exists",
    );
}

#[test]
fn a_reader_that_stops_reading_leaves_the_verdict_as_the_exit_status() {
    let s = Scratch::new("verify-closed-stdout");
    let file = s.write_lines("trail.jsonl", &trail(EMITTER, None, requests(2000)));
    let mut child = std::process::Command::new(cli_support::bin())
        .args(["verify", &file])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
