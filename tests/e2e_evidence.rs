//! The evidence of an emitter's end in the real, pinned Envoy (SPEC §2.4),
//! signed as an operator deploys it: a key pair from `mesh-audit keygen`,
//! the private key in the filter VM's environment
//! (`integrity.signing_key_env`), the keyring line handed to a strict
//! `mesh-audit verify --keys --key-env`.
//!
//! A reload drains the old filter, which ends its emitter with a sealed
//! `close` record and loses nothing; a plain SIGTERM with records buffered
//! leaves the emitter open since its last seal, and `verify` says so instead
//! of staying silent, the `records_buffered` gauge bounding what was lost.
//! Doctored copies of a real trail fail with their reason and seq. The
//! reload runs on both builds; the SIGTERM case is the wasm filter's (the
//! native module drains in Envoy's shutdown hook instead:
//! tests/e2e_native.rs).
#![cfg(feature = "cli")]
// Test code: helpers fail the test by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod cli_support;
mod e2e;

use cli_support::{problems, Scratch};
use e2e::{trail, wait_for, Build, Envoy, Sink};
use mesh_audit::audit::hex;
use mesh_audit::deliver::chain::link;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const CHAIN_KEY: &str = "e2e-evidence-chain-key";

/// A proxy's signing key made by `mesh-audit keygen`: the PKCS#8 PEM the VM
/// is given, and the keyring `verify --keys` reads.
struct SigningKey {
    pem: String,
    key_id: String,
    keyring: PathBuf,
    _dir: Scratch,
}

impl SigningKey {
    fn generate() -> SigningKey {
        let dir = Scratch::new("keys");
        let out = Command::new(env!("CARGO_BIN_EXE_mesh-audit"))
            .arg("keygen")
            .arg("--out")
            .arg(dir.path("proxy"))
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {out:?}");
        let line = String::from_utf8(out.stdout).unwrap();
        let key_id = line.split_whitespace().next().unwrap().to_string();
        let keyring = dir.path("keyring");
        std::fs::write(&keyring, &line).unwrap();
        let pem = std::fs::read_to_string(dir.path("proxy.key.pem")).unwrap();
        SigningKey {
            pem,
            key_id,
            keyring,
            _dir: dir,
        }
    }

    /// The filter VM's environment: this key and the chain key.
    fn vm_env(&self) -> Value {
        json!({"MESH_AUDIT_SIGNING_KEY": self.pem, "MESH_AUDIT_CHAIN_KEY": CHAIN_KEY})
    }
}

fn config(flush_ms: u64, generation: &str) -> Value {
    json!({
        "sink": {"cluster": "audit_sink", "timeout_ms": 2000,
                 "headers": {"x-audit-generation": generation}},
        "batch": {"flush_interval_ms": flush_ms},
        "integrity": {"key_env": "MESH_AUDIT_CHAIN_KEY", "signing_key_env": "MESH_AUDIT_SIGNING_KEY"}
    })
}

/// The acknowledged lines, in arrival order, as the sink stored them.
fn stored_lines(sink: &Sink) -> Vec<String> {
    sink.records().into_iter().map(|r| r.line).collect()
}

/// Strict `mesh-audit verify --keys KEYRING --key-env` of `lines`: the
/// exit code, the `--json` outcome and the text report.
fn verify(lines: &[String], key: &SigningKey) -> (i32, Value, String) {
    let dir = Scratch::new("verify");
    let file = dir.path("trail.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let run = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mesh-audit"));
        cmd.arg("verify")
            .arg(&file)
            .arg("--keys")
            .arg(&key.keyring)
            .args(["--key-env", "CHAIN_KEY"])
            .env("CHAIN_KEY", CHAIN_KEY);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let (out, text) = (run(true), run(false));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(if report["ok"] == true { 0 } else { 1 })
    );
    assert_eq!(report["mode"], "signatures", "{text}");
    assert_eq!(report["keyed"], true, "{text}");
    (out.status.code().unwrap(), report, text)
}

fn emitter_report<'a>(report: &'a Value, emitter: &str) -> &'a Value {
    report["emitters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["emitter"] == json!(emitter))
        .unwrap_or_else(|| panic!("no emitter {emitter} in {report:#}"))
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

/// Every seal of the trail is signed with `key`.
fn assert_signed_by(lines: &[String], key: &SigningKey) {
    let seals: Vec<Value> = lines
        .iter()
        .map(|l| parse(l))
        .filter(|r| r["kind"] == "seal")
        .collect();
    assert!(!seals.is_empty(), "no seal in {lines:#?}");
    for seal in seals {
        assert_eq!(seal["key_id"], json!(key.key_id), "{seal}");
        assert!(
            seal["sig"]
                .as_str()
                .is_some_and(|s| e2e::is_lower_hex(s, 128)),
            "{seal}"
        );
    }
}

/// Four requests buffered, then a reload drains the old filter: the sink
/// holds the old emitter's whole trail. (emitter, stored lines, request ids)
fn reloaded(build: Build, sink: &Sink, key: &SigningKey) -> (String, Vec<String>, Vec<String>) {
    let envoy = Envoy::start_reloadable_on(build, &config(60_000, "1"), sink, &key.vm_env());
    let ids = envoy.plain_ok("/orders/before-reload", 4);
    wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| s.get("records_buffered") == Some(&4))
    })
    .unwrap_or_else(|| panic!("four records buffered: {:?}", envoy.stats()));
    envoy.reload_plugin(&config(60_000, "2"));
    let drained = sink.wait_for_records(4, WAIT);
    let audited: Vec<&str> = drained
        .iter()
        .filter_map(|r| r.str("/request_id"))
        .collect();
    assert_eq!(audited, ids, "nothing missing");
    envoy.wait_for_log(
        "mesh-audit: shutdown: all records delivered; 0 records undelivered",
        WAIT,
    );
    let emitters = trail(&sink.deliveries());
    // The worker's emitter (the main thread's VMs audit no request).
    let (name, _) = emitters
        .iter()
        .find(|(_, e)| e.records.iter().any(|r| r.str("/kind") == Some("request")))
        .unwrap();
    (name.clone(), stored_lines(sink), ids)
}

crate::on_both_builds! {
fn a_reload_ends_the_old_emitter_with_a_signed_close_and_strict_verify_passes(build: Build) {
    let key = SigningKey::generate();
    let sink = Sink::start();
    let (name, lines, _) = reloaded(build, &sink, &key);
    let emitters = trail(&sink.deliveries());
    let old = &emitters[&name];
    // Keyed genesis: `prev` of seq 1 is not 64 zeros, so the harness's
    // unkeyed chain check does not apply; verify --key-env checks it.
    let kinds: Vec<&str> = old.records.iter().filter_map(|r| r.str("/kind")).collect();
    assert_eq!(
        kinds,
        ["request", "request", "request", "request", "close", "seal"]
    );
    assert_eq!(old.records[4].str("/reason"), Some("shutdown"));
    assert_signed_by(&lines, &key);

    let (code, report, text) = verify(&lines, &key);
    assert_eq!(code, 0, "{text}");
    let e = emitter_report(&report, &name);
    assert_eq!(e["closed"], true, "{text}");
    assert_eq!(e["close_reason"], "shutdown", "{text}");
    assert_eq!(e["sealed_through"], 6, "{text}");
    assert_eq!(e["last_seq"], 6, "{text}");
    assert_eq!(e["signed_by"], json!([key.key_id]), "{text}");
    assert_eq!(e["problems"], json!([]), "{text}");
    assert_eq!(e["unexplained_gaps"], json!([]), "{text}");
    assert!(text.contains("closed (shutdown)"), "{text}");
    eprintln!("reload, strict verify:\n{text}");
}
}

#[test]
fn sigterm_with_records_buffered_leaves_the_signed_emitter_open_since_its_last_seal() {
    let key = SigningKey::generate();
    let sink = Sink::start();
    let mut envoy =
        Envoy::start_reloadable_on(Build::Wasm, &config(100, "1"), &sink, &key.vm_env());
    let delivered_ids = envoy.plain_ok("/orders/delivered", 3);
    sink.wait_for_records(3, WAIT);
    wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| {
            s.get("records_buffered") == Some(&0)
                && s.get("records_delivered") == s.get("records_admitted")
        })
    })
    .unwrap_or_else(|| panic!("delivered: {:?}", envoy.stats()));
    // The sink goes away; two more records stay buffered; then a plain SIGTERM.
    sink.go_down();
    let lost_ids = envoy.plain_ok("/orders/lost", 2);
    let buffered = wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| s.get("records_buffered").is_some_and(|b| *b >= 2))
    })
    .unwrap_or_else(|| panic!("buffered: {:?}", envoy.stats()));
    let held = buffered["records_buffered"];
    envoy.terminate();
    assert!(envoy.wait_exit(WAIT).is_some());

    let lines = stored_lines(&sink);
    assert_signed_by(&lines, &key);
    let stored: Vec<Value> = lines.iter().map(|l| parse(l)).collect();
    let last_seal = stored
        .iter()
        .filter(|r| r["kind"] == "seal")
        .filter_map(|r| r["seq"].as_u64())
        .max()
        .unwrap();
    let audited: Vec<&str> = stored
        .iter()
        .filter_map(|r| r["request_id"].as_str())
        .collect();
    assert_eq!(audited, delivered_ids, "exactly what was delivered");
    // The loss: the requests after the last seal, no more than the gauge held.
    let lost = lost_ids
        .iter()
        .filter(|id| !audited.contains(&id.as_str()))
        .count();
    assert_eq!(lost, 2);
    assert!(lost as u64 <= held, "{lost} lost, the gauge held {held}");

    let (code, report, text) = verify(&lines, &key);
    assert_eq!(
        code, 0,
        "an open emitter is reported, not a failure: {text}"
    );
    let e = &report["emitters"][0];
    assert_eq!(report["emitters"].as_array().unwrap().len(), 1, "{text}");
    assert_eq!(e["closed"], false, "{text}");
    assert_eq!(e["open_since"], json!(last_seal), "{text}");
    assert_eq!(e["sealed_through"], json!(last_seal), "{text}");
    assert_eq!(e["problems"], json!([]), "{text}");
    assert!(
        text.contains(&format!("open since seq {last_seal}")),
        "{text}"
    );
    eprintln!(
        "SIGTERM: open since seq {last_seal}; records_buffered said {held} were held, {lost} lost\n{text}"
    );
}

#[test]
fn doctored_copies_of_a_real_signed_trail_fail_with_their_reason() {
    let key = SigningKey::generate();
    let sink = Sink::start();
    let (name, lines, ids) = reloaded(Build::Wasm, &sink, &key);
    let seq_of = |l: &String| parse(l)["seq"].as_u64().unwrap();
    let emitter_of = |l: &String| parse(l)["emitter"].as_str().unwrap().to_string();
    let fails_with = |doctored: &[String], reason: &str, seq: u64| {
        let (code, report, text) = verify(doctored, &key);
        assert_eq!(code, 1, "{text}");
        let found = problems(&report);
        assert!(
            found.contains(&(seq, reason.to_string())),
            "expected {reason} at seq {seq}, got {found:?}\n{text}"
        );
        text
    };

    // One request record deleted: the hole is unexplained.
    let mut deleted = lines.clone();
    deleted.retain(|l| !(emitter_of(l) == name && seq_of(l) == 2));
    let text = fails_with(&deleted, "gap", 2);
    assert!(text.contains("UNEXPLAINED GAP: seq 2 missing"), "{text}");

    // A request edited in place: the next record's `prev` no longer links.
    let mut edited = lines.clone();
    let at = edited.iter().position(|l| l.contains(&ids[1])).unwrap();
    edited[at] = edited[at].replace("/orders/before-reload", "/orders/elsewhere");
    assert_ne!(edited[at], lines[at]);
    fails_with(&edited, "prev_mismatch", seq_of(&edited[at]) + 1);

    // A forged emitter: a copy of a real request under a new name, its
    // genesis guessed, with an unsigned seal after it.
    let forged = "0000000000000000000000000000f0f0".to_string();
    let mut request = parse(&lines[at]);
    request["emitter"] = json!(forged);
    request["seq"] = json!(1);
    request["prev"] = json!("0".repeat(64));
    let seal = json!({"kind": "seal", "ts": request["ts"], "emitter": forged, "seq": 2,
                      "prev": e2e::sha256_hex(request.to_string().as_bytes()),
                      "from_seq": 1, "to_seq": 1});
    let mut with_forged = lines.clone();
    with_forged.push(request.to_string());
    with_forged.push(seal.to_string());
    fails_with(&with_forged, "bad_genesis", 1);
    fails_with(&with_forged, "unsigned_seal", 2);
    // The real emitter still passes next to it.
    let (_, report, text) = verify(&with_forged, &key);
    assert_eq!(emitter_report(&report, &name)["ok"], true, "{text}");

    // A record appended after the signed close.
    let mut appended = lines.clone();
    let last = lines
        .iter()
        .filter(|l| emitter_of(l) == name)
        .max_by_key(|l| seq_of(l))
        .unwrap();
    let mut extra = parse(&lines[at]);
    extra["seq"] = json!(seq_of(last) + 1);
    extra["prev"] = json!(hex(&link(Some(CHAIN_KEY.as_bytes()), last.as_bytes())));
    appended.push(extra.to_string());
    fails_with(&appended, "after_close", seq_of(last) + 1);
    fails_with(&appended, "unsealed", seq_of(last) + 1);
}
