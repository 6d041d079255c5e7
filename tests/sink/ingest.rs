//! Verification at ingest: a batch that does not continue the stored chain,
//! carries an inconsistent loss record, or (with --keys) is not sealed by a
//! key that may vouch for it gets 422 and is quarantined, never stored.

use crate::cli_support::sink::SinkProcess;
use crate::cli_support::{loss, requests, trail, Scratch};
use crate::{read, sealed_batches, stored, EMITTER};
use mesh_audit::audit::record::LossReason;
use mesh_audit::deliver::seal::{key_id, Signer};

#[test]
fn without_keys_a_broken_chain_or_a_forged_loss_record_is_422() {
    let s = Scratch::new("sink-ingest");
    let out = s.path("audit.jsonl");
    let sink = SinkProcess::start(&out, &[]);
    sink.wait_for_stderr("no --keys: records are checked for format, continuity and loss consistency, but cannot be authenticated");
    let genuine = trail(EMITTER, None, requests(3));
    assert_eq!(sink.post_jsonl(&genuine).0, 200);

    let mut other = requests(4);
    other[2].request.as_mut().unwrap().path = Some("/elsewhere".into());
    let forged = trail(EMITTER, None, other);
    let (status, body) = sink.post_jsonl(&forged[3..]);
    assert_eq!(
        (status, body.as_str()),
        (422, format!("does not verify: emitter {EMITTER} seq 4: prev does not link to the stored chain\n").as_str())
    );

    // Loss records that cannot be true: a range that does not precede the
    // record, a count that is not the range's.
    let mut records = requests(3);
    records.push(loss(LossReason::Rejected, 2, Some((4, 5))));
    let with_loss = trail(EMITTER, None, records);
    let (status, body) = sink.post_jsonl(&with_loss[3..]);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("seq 4: loss record names seqs 4..5, which do not precede it"),
        "{body}"
    );

    let mut records = requests(3);
    records.push(loss(LossReason::Rejected, 5, Some((1, 2))));
    let miscounted = trail(EMITTER, None, records);
    let (status, body) = sink.post_jsonl(&miscounted[3..]);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("counts 5 records for seqs 1..2"), "{body}");

    assert_eq!(read(&out), stored(&genuine));
    let quarantined = String::from_utf8(read(&s.path("audit.jsonl.quarantine.jsonl"))).unwrap();
    assert_eq!(quarantined.lines().count(), 3);
    assert_eq!(
        sink.metric("mesh_audit_sink_batches_rejected_total{reason=\"invalid\"}"),
        3.0
    );
    assert_eq!(
        sink.post_jsonl(&trail(EMITTER, None, requests(4))[3..]).0,
        200,
        "the genuine continuation"
    );
}

#[test]
fn with_keys_only_batches_sealed_by_a_listed_key_for_their_destination_are_stored() {
    let s = Scratch::new("sink-keys");
    let out = s.path("audit.jsonl");
    let proxy = Signer::from_seed(&[7; 32]);
    let stranger = Signer::from_seed(&[9; 32]);
    let public: String = proxy
        .verifying_key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let keyring = s.path("keyring");
    std::fs::write(
        &keyring,
        format!(
            "{} {public} spiffe://cluster.local/ns/shop/*\n",
            key_id(&proxy.verifying_key())
        ),
    )
    .unwrap();
    let sink = SinkProcess::start(&out, &["--keys", keyring.to_str().unwrap()]);
    sink.wait_for_stderr("verifying every batch's seal at ingest with 1 keys");
    let shop = "spiffe://cluster.local/ns/shop/sa/orders";

    let good = sealed_batches(EMITTER, 2, 3, shop, Some(&proxy));
    assert_eq!(
        sink.post_jsonl(&good[0]),
        (200, "{\"stored\":4,\"duplicates\":0}\n".into())
    );

    let (status, body) = sink.post_jsonl(
        &sealed_batches(
            "11111111111111111111111111111111",
            1,
            3,
            shop,
            Some(&stranger),
        )[0],
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("that is not in --keys"), "{body}");
    let (status, body) =
        sink.post_jsonl(&sealed_batches("22222222222222222222222222222222", 1, 3, shop, None)[0]);
    assert!(
        status == 422 && body.contains("the seal is not signed"),
        "{body}"
    );
    let (status, body) = sink.post_jsonl(&good[1][..3]);
    assert!(
        status == 422 && body.contains("not covered by a seal in the batch"),
        "{body}"
    );
    let mut tampered = good[1].clone();
    let sig_at = tampered[3].len() - 10;
    tampered[3][sig_at] = if tampered[3][sig_at] == b'0' {
        b'1'
    } else {
        b'0'
    };
    let (status, body) = sink.post_jsonl(&tampered);
    assert!(
        status == 422 && body.contains("signature does not verify"),
        "{body}"
    );
    let elsewhere = "ffffffffffffffffffffffffffffffff";
    let (status, body) = sink.post_jsonl(
        &sealed_batches(
            elsewhere,
            1,
            2,
            "spiffe://cluster.local/ns/bank/sa/vault",
            Some(&proxy),
        )[0],
    );
    assert!(
        status == 422
            && body
                .contains("may not vouch for destination spiffe://cluster.local/ns/bank/sa/vault"),
        "{body}"
    );

    assert_eq!(sink.post_jsonl(&good[1]).0, 200);
    assert_eq!(read(&out), stored(&good.concat()));
}
