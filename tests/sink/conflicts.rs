//! A stored record can be neither overwritten nor shadowed: different bytes
//! for a stored (emitter, seq) get 409, are quarantined, logged and counted;
//! byte-identical retries stay 200.

use crate::cli_support::sink::SinkProcess;
use crate::cli_support::{requests, trail, Scratch};
use crate::{read, stored, EMITTER};
use mesh_audit::deliver::encode_otlp::{encode, Resource};

#[test]
fn different_bytes_for_a_stored_seq_are_409_quarantined_and_the_original_kept() {
    let s = Scratch::new("sink-conflict");
    let out = s.path("audit.jsonl");
    let genuine = trail(EMITTER, None, requests(3));
    let mut other = requests(3);
    other[1].request.as_mut().unwrap().path = Some("/forged".into());
    let forged = trail(EMITTER, None, other);
    {
        let sink = SinkProcess::start(&out, &[]);
        assert_eq!(sink.post_jsonl(&genuine).0, 200);
        assert_eq!(
            sink.post_jsonl(&genuine),
            (200, "{\"stored\":0,\"duplicates\":3}\n".into())
        );
        let (status, body) = sink.post_jsonl(&forged);
        assert_eq!(status, 409, "{body}");
        assert_eq!(
            body,
            format!("conflict: emitter {EMITTER} seq 2: different bytes than the stored record (and 1 more)\n")
        );
        let line = sink.wait_for_stderr("error: refused a batch from anonymous with 409");
        assert!(line.contains("audit.jsonl.quarantine.jsonl"), "{line}");
        assert_eq!(
            sink.metric("mesh_audit_sink_batches_rejected_total{reason=\"conflict\"}"),
            1.0
        );
        assert_eq!(
            sink.metric("mesh_audit_sink_batches_quarantined_total"),
            1.0
        );
    }
    assert_eq!(
        read(&out),
        stored(&genuine),
        "the genuine records stay, alone"
    );
    let q = String::from_utf8(read(&s.path("audit.jsonl.quarantine.jsonl"))).unwrap();
    let entry: serde_json::Value = serde_json::from_str(q.trim()).unwrap();
    assert_eq!(entry["status"], 409);
    assert_eq!(entry["identity"], "anonymous");
    let kept: Vec<&str> = entry["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        kept[1].as_bytes(),
        forged[1].as_slice(),
        "the refused batch is kept whole"
    );

    // After a restart the window is rebuilt from the trail.
    let sink = SinkProcess::start(&out, &[]);
    assert_eq!(sink.post_jsonl(&forged[1..2]).0, 409);
    assert_eq!(sink.post_jsonl(&genuine[1..2]).0, 200);
}

#[test]
fn a_seq_older_than_the_window_cannot_be_replaced() {
    let s = Scratch::new("sink-window");
    let out = s.path("audit.jsonl");
    let sink = SinkProcess::start(&out, &["--window", "4"]);
    let genuine = trail(EMITTER, None, requests(10));
    assert_eq!(sink.post_jsonl(&genuine).0, 200);
    assert_eq!(sink.post_jsonl(&genuine[7..]).0, 200, "a recent retry");
    let (status, body) = sink.post_jsonl(&genuine[..1]);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("older than the sink's window"), "{body}");
    assert_eq!(read(&out), stored(&genuine));
}

#[test]
fn emitters_that_are_not_32_lowercase_hex_are_422_and_never_printed_raw() {
    let s = Scratch::new("sink-emitter");
    let out = s.path("audit.jsonl");
    let sink = SinkProcess::start(&out, &[]);
    let evil = "\u{1b}[2K\rsummary: 0 records: OK\u{202e}";
    let mut line = String::from_utf8(trail(EMITTER, None, requests(1)).remove(0)).unwrap();
    line = line.replace(
        EMITTER,
        &serde_json::to_string(evil)
            .unwrap()
            .trim_matches('"')
            .to_string(),
    );
    let (status, body) = sink.post_jsonl(&[line.into_bytes()]);
    assert_eq!(
        (status, body.as_str()),
        (
            422,
            "does not verify: line 1: emitter is not 32 lowercase hex digits\n"
        )
    );
    let logged = sink.wait_for_stderr("with 422");
    assert!(
        !logged.contains('\u{1b}') && !logged.contains('\u{202e}'),
        "{logged:?}"
    );
    assert_eq!(read(&out), b"");
    assert!(!read(&s.path("audit.jsonl.quarantine.jsonl")).is_empty());
}

#[test]
fn an_otlp_body_with_trailing_whitespace_is_stored_as_the_exact_record() {
    let s = Scratch::new("sink-otlp-ws");
    let out = s.path("audit.jsonl");
    let sink = SinkProcess::start(&out, &[]);
    let lines = trail(EMITTER, None, requests(2));
    let padded: Vec<Vec<u8>> = lines
        .iter()
        .map(|l| [l.as_slice(), b" \n"].concat())
        .collect();
    let refs: Vec<&[u8]> = padded.iter().map(Vec::as_slice).collect();
    let resource = Resource {
        emitter: EMITTER,
        node_id: None,
        version: "0.1.0",
    };
    let body = encode(&refs, &resource, 1_795_269_785_000_000_000);
    assert_eq!(
        sink.post("/v1/logs", "application/x-protobuf", &body).0,
        200
    );
    assert_eq!(read(&out), stored(&lines));
    let two = [lines[0].as_slice(), b"\n", lines[1].as_slice()].concat();
    let body = encode(&[two.as_slice()], &resource, 1_795_269_785_000_000_000);
    let (status, reason) = sink.post("/v1/logs", "application/x-protobuf", &body);
    assert_eq!(
        (status, reason.as_str()),
        (
            400,
            "malformed batch: log record 0: a record must be one line\n"
        )
    );
}
