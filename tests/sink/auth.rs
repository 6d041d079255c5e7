//! Only listed identities store anything; each emitter stays with the
//! identity that first wrote it, across restarts.

use crate::cli_support::sink::{mtls_args, SinkProcess, Via};
use crate::cli_support::{requests, run, stdout, trail, Scratch};
use crate::{forged_emitters, read, rss_kib, stored, EMITTER, OTHER, SHOP};

const TOKEN: &str = "0f7a1c-sink-token";

fn start(out: &std::path::Path) -> SinkProcess {
    let mut args = mtls_args(&[SHOP]);
    args.extend(["--token-env".to_string(), "SINK_TEST_TOKEN".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut sink = SinkProcess::start_with_env(out, &args, &[("SINK_TEST_TOKEN", TOKEN)]);
    sink.via = Via::Tls(None);
    sink
}

#[test]
fn unauthenticated_wrong_ca_unlisted_and_wrong_token_writers_store_nothing() {
    let s = Scratch::new("sink-auth");
    let out = s.path("audit.jsonl");
    let sink = start(&out);
    // A forged three-record chain for a new emitter, as an attacker would send it.
    let forged = trail(EMITTER, None, requests(3));

    let plain = sink.post_lines(Via::Plain, "", &forged);
    assert!(plain.is_err(), "plaintext to the TLS port: {plain:?}");
    assert_eq!(
        sink.post_lines(Via::Tls(None), "", &forged).unwrap(),
        (
            401,
            "a bearer token or a client certificate is required\n".into()
        )
    );
    assert_eq!(
        sink.post_lines(Via::Tls(None), "Authorization: Bearer guessed\r\n", &forged)
            .unwrap(),
        (401, "the bearer token is not accepted\n".into())
    );
    let rogue = sink.post_lines(Via::Tls(Some("rogue")), "", &forged);
    assert!(
        rogue.is_err(),
        "a certificate from a foreign CA completes no handshake: {rogue:?}"
    );
    assert_eq!(
        sink.post_lines(Via::Tls(Some("reporter")), "", &forged)
            .unwrap(),
        (
            403,
            "principal spiffe://cluster.local/ns/batch/sa/reporter is not allowed to write\n"
                .into()
        )
    );
    assert_eq!(read(&out), b"", "nothing of a refused batch is stored");
    assert_eq!(read(&s.path("audit.jsonl.owners")), b"");
    assert_eq!(
        sink.metric("mesh_audit_sink_batches_rejected_total{reason=\"unauthenticated\"}"),
        2.0
    );
    assert_eq!(
        sink.metric("mesh_audit_sink_batches_rejected_total{reason=\"forbidden\"}"),
        1.0
    );
    assert_eq!(sink.metric("mesh_audit_sink_records_stored_total"), 0.0);

    assert_eq!(
        sink.post_lines(Via::Tls(Some("frontend")), "", &forged)
            .unwrap(),
        (200, "{\"stored\":3,\"duplicates\":0}\n".into())
    );
    assert_eq!(read(&out), stored(&forged));
}

#[test]
fn an_emitter_belongs_to_the_identity_that_first_wrote_it_across_restarts() {
    let s = Scratch::new("sink-owner");
    let out = s.path("audit.jsonl");
    let lines = trail(EMITTER, None, requests(4));
    let token = format!("Authorization: Bearer {TOKEN}\r\n");
    {
        let sink = start(&out);
        assert_eq!(
            sink.post_lines(Via::Tls(Some("frontend")), "", &lines[..2])
                .unwrap()
                .0,
            200
        );
        let (status, body) = sink
            .post_lines(Via::Tls(None), &token, &lines[2..])
            .unwrap();
        assert_eq!(status, 403, "{body}");
        assert!(
            body.contains("belongs to another identity; token:SINK_TEST_TOKEN may not write it"),
            "{body}"
        );
        sink.wait_for_stderr("error: refused a batch from token:SINK_TEST_TOKEN with 403");
        let theirs = trail(OTHER, None, requests(1));
        assert_eq!(
            sink.post_lines(Via::Tls(None), &token, &theirs).unwrap().0,
            200
        );
        assert_eq!(
            sink.metric("mesh_audit_sink_batches_rejected_total{reason=\"owner\"}"),
            1.0
        );
    }
    let sink = start(&out);
    let (status, _) = sink
        .post_lines(Via::Tls(None), &token, &lines[2..])
        .unwrap();
    assert_eq!(status, 403, "the binding survived the restart");
    assert_eq!(
        sink.post_lines(Via::Tls(Some("frontend")), "", &lines[2..])
            .unwrap()
            .0,
        200
    );
    let out_s = out.to_str().unwrap();
    let verified = run(&["verify", out_s], &[]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
}

#[test]
fn beyond_loopback_the_sink_will_not_run_without_authentication() {
    let s = Scratch::new("sink-open");
    let out = s.path("audit.jsonl");
    let refused = run(
        &[
            "sink",
            "--listen",
            "0.0.0.0:0",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{err}"
    );
    let missing = run(
        &[
            "sink",
            "--out",
            out.to_str().unwrap(),
            "--token-env",
            "SINK_TEST_UNSET_VAR",
        ],
        &[],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("--token-env SINK_TEST_UNSET_VAR: the environment variable is not set"));
    assert!(!out.exists() || read(&out).is_empty());
}

#[test]
fn unauthenticated_floods_of_new_emitters_cost_no_memory() {
    let s = Scratch::new("sink-flood");
    let out = s.path("audit.jsonl");
    let sink = SinkProcess::start_with_env(
        &out,
        &["--token-env", "SINK_TEST_TOKEN"],
        &[("SINK_TEST_TOKEN", TOKEN)],
    );
    let before = rss_kib(&sink);
    // One million forged one-record emitters, 10 000 per batch. The client
    // asks before sending each body (Expect: 100-continue): a sink that read
    // unauthenticated bodies would answer 100 and this would fail.
    for batch in forged_emitters(1_000_000, 10_000) {
        let head = format!(
            "POST /v1/audit HTTP/1.1\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nExpect: 100-continue",
            batch.len()
        );
        let (status, _) = sink.exchange(Via::Plain, &head, b"").unwrap();
        assert_eq!(status, 401);
    }
    let after = rss_kib(&sink);
    eprintln!("sink RSS before {before} KiB, after 1 M refused emitters {after} KiB");
    assert!(
        after < before + 8 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    assert_eq!(read(&out), b"");
    assert_eq!(sink.metric("mesh_audit_sink_emitters"), 0.0);
    assert_eq!(
        sink.metric("mesh_audit_sink_batches_rejected_total{reason=\"unauthenticated\"}"),
        100.0
    );
}
