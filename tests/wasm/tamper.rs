//! The tamper suite (SPEC §7): trails made by the compiled filter in the
//! emulated proxy, with a real signing key, then doctored the ways an
//! attacker who can edit the stored trail would, each checked with
//! `mesh-audit verify --keys`: every doctored trail fails with the expected
//! reason at the expected seq, and every clean one passes.

use crate::cli_support::{problems, run, stdout, Scratch};
use crate::host::fixtures::{lines, orders_request};
use crate::host::Host;
use mesh_audit::audit::hex;
use mesh_audit::deliver::chain::link;
use mesh_audit::deliver::seal::{self, Seal, Signer};
use serde_json::{json, Value};

const SEED: [u8; 32] = [0x5a; 32];
const CHAIN_KEY: &str = "tamper-chain-key";
const CONFIG: &str = r#"{"sink":{"cluster":"audit_sink"},
  "batch":{"max_records":4,"flush_interval_ms":1000},
  "integrity":{"key_env":"CHAIN_KEY","signing_key_env":"SIGNING_KEY"}}"#;

fn signer() -> Signer {
    Signer::from_seed(&SEED)
}

fn seed_base64() -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(&SEED)
}

/// A configured filter with the signing and chain keys in its environment.
fn proxy(seed: u64) -> Host {
    let mut h = Host::new();
    h.seed(seed)
        .env("SIGNING_KEY", &seed_base64())
        .env("CHAIN_KEY", CHAIN_KEY);
    assert!(h.configure(CONFIG), "{}", h.log_dump());
    h
}

/// Runs `n` requests, lets batches leave and acknowledges each one;
/// returns the lines the sink would have stored, in arrival order.
fn serve(h: &mut Host, n: u64) -> Vec<String> {
    let before = h.dispatched().len();
    for i in 0..n {
        h.run(orders_request(i));
    }
    h.advance_and_tick(1000);
    ack_all(h, before)
}

fn ack_all(h: &mut Host, from: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = from;
    while i < h.dispatched().len() {
        let d = h.dispatched()[i].clone();
        out.extend(lines(&d));
        h.reply(d.token.unwrap(), 200, b"");
        h.tick();
        i += 1;
    }
    out
}

/// A drain: the close record and its seal, acknowledged.
fn drain(h: &mut Host) -> Vec<String> {
    let before = h.dispatched().len();
    assert!(!h.shutdown(), "the close record must be delivered first");
    ack_all(h, before)
}

/// A full, clean trail: 10 requests in sealed batches, then a drain.
fn clean_trail() -> Vec<String> {
    let mut h = proxy(1);
    let mut trail = serve(&mut h, 10);
    trail.extend(drain(&mut h));
    trail
}

fn keyring(s: &Scratch, patterns: &str) -> String {
    let k = signer();
    let ring = format!(
        "{} {} {patterns}\n",
        k.key_id(),
        hex(k.verifying_key().as_bytes())
    );
    s.write_lines("keys", &[ring.trim_end().as_bytes().to_vec()])
}

/// `verify --keys` (and `--key-env` when `hmac`) in JSON and text.
fn verify_with(trail: &[String], patterns: &str, hmac: bool) -> (i32, Value, String) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let s = Scratch::new(&format!("tamper-{n}"));
    let file = s.write_lines(
        "trail.jsonl",
        &trail
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    );
    let ring = keyring(&s, patterns);
    let mut args = vec!["verify", file.as_str(), "--keys", ring.as_str()];
    if hmac {
        args.extend(["--key-env", "CHAIN_KEY"]);
    }
    let env = [("CHAIN_KEY", CHAIN_KEY)];
    let text = run(&args, &env);
    args.push("--json");
    let out = run(&args, &env);
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert_eq!(out.status.code(), text.status.code());
    (out.status.code().unwrap(), json, stdout(&text))
}

fn verify(trail: &[String]) -> (i32, Value, String) {
    verify_with(trail, "", true)
}

/// Asserts the trail fails with `reason` at `seq`.
fn fails_with(trail: &[String], reason: &str, seq: u64) -> String {
    let (code, json, text) = verify(trail);
    assert_eq!(code, 1, "{text}");
    let found = problems(&json);
    assert!(
        found.contains(&(seq, reason.to_string())),
        "expected {reason} at seq {seq}, got {found:?}\n{text}"
    );
    text
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

fn seq_of(line: &str) -> u64 {
    parse(line)["seq"].as_u64().unwrap()
}

fn kind_of(line: &str) -> String {
    parse(line)["kind"].as_str().unwrap().to_string()
}

fn emitter_of(trail: &[String]) -> String {
    parse(&trail[0])["emitter"].as_str().unwrap().to_string()
}

/// The trail's line with `seq`.
fn at(trail: &[String], seq: u64) -> usize {
    trail.iter().position(|l| seq_of(l) == seq).unwrap()
}

#[test]
fn a_clean_trail_is_sealed_signed_and_closed() {
    let trail = clean_trail();
    let kinds: Vec<String> = trail.iter().map(|l| kind_of(l)).collect();
    // max_records 4: three requests and their seal per batch.
    assert_eq!(&kinds[..4], ["request", "request", "request", "seal"]);
    assert_eq!(&kinds[kinds.len() - 2..], ["close", "seal"]);
    let (code, json, text) = verify(&trail);
    assert_eq!(code, 0, "{text}");
    let e = &json["emitters"][0];
    assert_eq!(e["sealed_through"], seq_of(trail.last().unwrap()));
    assert_eq!(e["closed"], true);
    assert_eq!(e["close_reason"], "shutdown");
    assert_eq!(e["signed_by"], json!([signer().key_id()]));
    assert_eq!(json["mode"], "signatures");
    assert!(text.contains("closed (shutdown)"), "{text}");
    assert!(
        text.contains(&format!(
            "sealed through seq {}, signed by {}",
            seq_of(trail.last().unwrap()),
            signer().key_id()
        )),
        "{text}"
    );
}

#[test]
fn an_emitter_stopped_without_a_drain_is_open_since_its_last_seal_but_passes() {
    let mut h = proxy(2);
    let trail = serve(&mut h, 5);
    // More records are admitted, then the proxy dies (SIGTERM): they never leave.
    for i in 0..2 {
        h.run(orders_request(50 + i));
    }
    let last_seal = seq_of(trail.last().unwrap());
    assert_eq!(kind_of(trail.last().unwrap()), "seal");
    let (code, json, text) = verify(&trail);
    assert_eq!(code, 0, "{text}");
    assert_eq!(json["emitters"][0]["closed"], false);
    assert_eq!(json["emitters"][0]["open_since"], last_seal);
    assert!(
        text.contains(&format!("open since seq {last_seal}")),
        "{text}"
    );
}

#[test]
fn interleaved_emitters_retries_stored_twice_and_explained_gaps_pass() {
    let mut a = proxy(3);
    let mut b = proxy(4);
    let ta = serve(&mut a, 4);
    let tb = serve(&mut b, 4);
    // The sink refuses one batch of `a` (400): a sealed loss record explains it.
    for i in 0..3 {
        a.run(orders_request(70 + i));
    }
    a.advance_and_tick(1000);
    let refused = a.dispatched().len() - 1;
    a.reply(a.token(refused), 400, b"bad");
    a.advance_and_tick(1000);
    let after = ack_all(&mut a, refused + 1);
    assert!(
        after.iter().any(|l| l.contains("\"reason\":\"rejected\"")),
        "{after:?}"
    );
    let mut trail = Vec::new();
    for (x, y) in ta.iter().zip(&tb) {
        trail.push(x.clone());
        trail.push(y.clone());
    }
    trail.extend(after);
    trail.extend(drain(&mut a));
    trail.extend(drain(&mut b));
    // A retried batch stored twice.
    trail.extend(ta[..4].iter().cloned());
    let (code, json, text) = verify(&trail);
    assert_eq!(code, 0, "{text}");
    assert_eq!(json["emitters"].as_array().unwrap().len(), 2);
    assert!(text.contains("explained gap"), "{text}");
    assert!(text.contains("identical"), "{text}");
}

#[test]
fn an_edited_record_fails_at_the_next_link() {
    let mut trail = clean_trail();
    trail[1] = trail[1].replace("/orders/42", "/orders/43");
    fails_with(&trail, "prev_mismatch", 3);
}

#[test]
fn deleting_records_and_forging_a_loss_over_the_hole_fails() {
    let mut trail = clean_trail();
    let emitter = emitter_of(&trail);
    let last = seq_of(trail.last().unwrap());
    trail.retain(|l| !(2..=7).contains(&seq_of(l)));
    let forged = format!(
        "{{\"kind\":\"loss\",\"ts\":\"2026-11-21T14:03:09Z\",\"emitter\":\"{emitter}\",\"seq\":{},\"prev\":\"{}\",\"reason\":\"rejected\",\"count\":6,\"from_seq\":2,\"to_seq\":7,\"since\":\"x\",\"until\":\"x\"}}",
        last + 1,
        "ab".repeat(32)
    );
    trail.push(forged);
    let text = fails_with(&trail, "gap", 2);
    fails_with(&trail, "prev_mismatch", last + 1);
    fails_with(&trail, "unsealed", last + 1);
    assert!(text.contains("UNEXPLAINED GAP: seq 2..7 missing"), "{text}");
}

#[test]
fn stripping_prev_then_deleting_and_renumbering_fails() {
    let trail = clean_trail();
    let mut doctored: Vec<String> = trail
        .iter()
        .filter(|l| seq_of(l) != 2)
        .map(|l| {
            let mut v = parse(l);
            v.as_object_mut().unwrap().remove("prev");
            serde_json::to_string(&v).unwrap()
        })
        .collect();
    for (i, l) in doctored.iter_mut().enumerate() {
        let mut v = parse(l);
        v["seq"] = json!(i + 1);
        *l = serde_json::to_string(&v).unwrap();
    }
    fails_with(&doctored, "no_prev", 1);
}

#[test]
fn a_forged_new_emitter_fails_on_genesis_and_seal() {
    let mut trail = clean_trail();
    let forged = "{\"kind\":\"request\",\"ts\":\"2026-11-21T14:03:05Z\",\"emitter\":\"00000000000000000000000000000bad\",\"seq\":1,\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"request\":{\"method\":\"POST\",\"path\":\"/admin/delete-all\"}}";
    trail.push(forged.to_string());
    fails_with(&trail, "bad_genesis", 1);
    fails_with(&trail, "unsealed", 1);
    // Without the chain key the seal still catches it.
    let (code, json, text) = verify_with(&trail, "", false);
    assert_eq!(code, 1, "{text}");
    assert!(problems(&json).contains(&(1, "unsealed".into())), "{text}");
}

#[test]
fn a_seal_forged_with_another_key_or_a_changed_signature_fails() {
    let trail = clean_trail();
    let first_seal = at(&trail, 4);
    // Re-signed by a key the auditor does not list.
    let mut other = trail.clone();
    let p = seal::parse(other[first_seal].as_bytes()).unwrap();
    let prev = p.prev.clone();
    let emitter = emitter_of(&trail);
    let fields = Seal {
        ts: "2026-11-21T14:03:06Z",
        emitter: &emitter,
        seq: 4,
        prev: prev.as_deref(),
        from_seq: 1,
        to_seq: 3,
    };
    other[first_seal] =
        String::from_utf8(seal::encode(&fields, Some(&Signer::from_seed(&[1; 32])))).unwrap();
    fails_with(&other, "unknown_key", 4);
    // A signature byte changed.
    let mut bad = trail.clone();
    let line = &bad[first_seal];
    let at_sig = line.len() - 5;
    let flipped = if &line[at_sig..at_sig + 1] == "0" {
        "1"
    } else {
        "0"
    };
    bad[first_seal] = format!("{}{flipped}{}", &line[..at_sig], &line[at_sig + 1..]);
    fails_with(&bad, "bad_signature", 4);
    // The signature stripped: an unsigned checkpoint does not count with --keys.
    let mut unsigned = trail.clone();
    unsigned[first_seal] = String::from_utf8(seal::encode(&fields, None)).unwrap();
    fails_with(&unsigned, "unsigned_seal", 4);
}

#[test]
fn records_reordered_and_renumbered_fail() {
    let mut trail = clean_trail();
    let (i, j) = (at(&trail, 1), at(&trail, 2));
    let (mut a, mut b) = (parse(&trail[i]), parse(&trail[j]));
    a["seq"] = json!(2);
    b["seq"] = json!(1);
    trail[i] = serde_json::to_string(&b).unwrap();
    trail[j] = serde_json::to_string(&a).unwrap();
    fails_with(&trail, "bad_genesis", 1);
}

#[test]
fn deleting_whole_trailing_batches_leaves_it_open_but_a_partial_batch_fails() {
    // Drop the last batch (a record, the close, its seal): what is left ends
    // at a seal, so the emitter is reported open since it. Only the sink's
    // digests can tell this from a proxy killed by SIGTERM (SPEC §7).
    let mut trail = clean_trail();
    trail.truncate(trail.len() - 3);
    let last_seal = seq_of(trail.last().unwrap());
    let (code, json, text) = verify(&trail);
    assert_eq!(code, 0, "{text}");
    assert_eq!(json["emitters"][0]["closed"], false);
    assert_eq!(json["emitters"][0]["open_since"], last_seal);
    // Drop only the final seal: the batch before it is no longer vouched for.
    let mut cut = clean_trail();
    cut.pop();
    let first_unsealed = seq_of(&cut[cut.len() - 2]);
    fails_with(&cut, "unsealed", first_unsealed);
}

#[test]
fn a_record_appended_after_the_close_fails() {
    let mut trail = clean_trail();
    let last = trail.last().unwrap().clone();
    let emitter = emitter_of(&trail);
    let next = seq_of(&last) + 1;
    let extra = format!(
        "{{\"kind\":\"request\",\"ts\":\"2026-11-21T14:03:10Z\",\"emitter\":\"{emitter}\",\"seq\":{next},\"prev\":\"{}\"}}",
        hex(&link(Some(CHAIN_KEY.as_bytes()), last.as_bytes()))
    );
    trail.push(extra);
    fails_with(&trail, "after_close", next);
    fails_with(&trail, "unsealed", next);
}

#[test]
fn a_key_vouching_outside_its_patterns_fails() {
    let trail = clean_trail();
    let (code, json, text) = verify_with(&trail, "spiffe://cluster.local/ns/shop/*", true);
    assert_eq!(code, 1, "{text}");
    assert!(
        problems(&json).contains(&(1, "key_not_allowed".into())),
        "{text}"
    );
    assert!(
        text.contains("may vouch only for spiffe://cluster.local/ns/shop/*"),
        "{text}"
    );
    let (code, _, text) = verify_with(&trail, "spiffe://cluster.local/ns/default/*", true);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn a_hostile_emitter_name_is_reported_escaped() {
    let mut trail = clean_trail();
    let emitter = emitter_of(&trail);
    for l in trail.iter_mut() {
        *l = l.replace(&emitter, "evil\\u001b[2J\\u202eX");
    }
    let text = fails_with(&trail, "bad_emitter", 1);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text:?}"
    );
    assert!(text.contains("evil\\u{001B}[2J\\u{202E}X"), "{text}");
}

#[test]
fn an_inconsistent_loss_record_fails() {
    let mut trail = clean_trail();
    let emitter = emitter_of(&trail);
    let last = trail.last().unwrap().clone();
    let next = seq_of(&last) + 1;
    let loss = format!(
        "{{\"kind\":\"loss\",\"ts\":\"t\",\"emitter\":\"{emitter}\",\"seq\":{next},\"prev\":\"{}\",\"reason\":\"rejected\",\"count\":9,\"from_seq\":{next},\"to_seq\":{}}}",
        hex(&link(Some(CHAIN_KEY.as_bytes()), last.as_bytes())),
        next + 3
    );
    trail.push(loss);
    fails_with(&trail, "bad_loss", next);
}

#[test]
fn without_keys_verify_says_what_an_unkeyed_chain_proves() {
    let trail = clean_trail();
    let s = Scratch::new("tamper-unkeyed");
    let file = s.write_lines(
        "trail.jsonl",
        &trail
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect::<Vec<_>>(),
    );
    let out = run(&["verify", file.as_str()], &[]);
    let text = stdout(&out);
    assert!(
        text.contains("checked against accidental damage only"),
        "{text}"
    );
    // The chain is keyed: without --key-env it cannot be checked at all.
    assert!(text.contains("pass --key-env"), "{text}");
}
