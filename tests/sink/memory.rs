//! What the sink's state costs: per emitter a watermark and a small window,
//! never a set of every seq; and a cap on emitters.

use crate::cli_support::sink::{SinkProcess, Via};
use crate::cli_support::{requests, trail, Scratch};
use crate::{forged_emitters, rss_kib};

/// Stated bound: a fixed allowance (the runtime, the allocator keeping freed
/// batch buffers) plus, per one-record emitter, the map entry, its share of
/// the map's spare capacity and a one-slot window (measured about 280 B).
const FIXED_KIB: u64 = 32 * 1024;
const BYTES_PER_EMITTER: u64 = 300;

fn within_bound(before: u64, now: u64) -> bool {
    now.saturating_sub(before) <= FIXED_KIB + u64::from(EMITTERS) * BYTES_PER_EMITTER / 1024
}
/// Enough emitters that the fixed costs vanish, few enough for a debug
/// build; `make bench-sink` measures a million with the release build.
const EMITTERS: u32 = 200_000;

#[test]
fn many_authenticated_emitters_stay_within_the_stated_bound_and_the_restart_too() {
    let s = Scratch::new("sink-million");
    let out = s.path("audit.jsonl");
    let env = [("SINK_TEST_TOKEN", "t0k3n")];
    let args = ["--token-env", "SINK_TEST_TOKEN"];
    let token = "Authorization: Bearer t0k3n\r\n";
    let sink = SinkProcess::start_with_env(&out, &args, &env);
    let before = rss_kib(&sink);
    for batch in forged_emitters(EMITTERS, 10_000) {
        let head = format!(
            "POST /v1/audit HTTP/1.1\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n{}",
            batch.len(),
            token.trim_end()
        );
        let (status, body) = sink.exchange(Via::Plain, &head, &batch).unwrap();
        assert_eq!(
            (status, body.as_str()),
            (200, "{\"stored\":10000,\"duplicates\":0}\n")
        );
    }
    let after = rss_kib(&sink);
    let per = (after.saturating_sub(before)) * 1024 / u64::from(EMITTERS);
    eprintln!(
        "{EMITTERS} authenticated emitters: RSS {before} KiB -> {after} KiB, {per} B per emitter"
    );
    assert!(within_bound(before, after), "{per} B per emitter");
    drop(sink);

    let sink = SinkProcess::start_with_env(&out, &args, &env);
    sink.wait_for_stderr(&format!(
        "({EMITTERS} records from {EMITTERS} emitters already stored)"
    ));
    let restarted = rss_kib(&sink);
    eprintln!("after a restart that re-read them: RSS {restarted} KiB");
    let per = restarted.saturating_sub(before) * 1024 / u64::from(EMITTERS);
    assert!(
        within_bound(before, restarted),
        "restart: {per} B per emitter"
    );
}

#[test]
fn past_the_emitter_cap_new_emitters_get_503_and_known_ones_still_write() {
    let s = Scratch::new("sink-cap");
    let out = s.path("audit.jsonl");
    let sink = SinkProcess::start(&out, &["--max-emitters", "2"]);
    let a = trail("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", None, requests(2));
    let b = trail("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", None, requests(1));
    let c = trail("cccccccccccccccccccccccccccccccc", None, requests(1));
    assert_eq!(sink.post_jsonl(&a[..1]).0, 200);
    assert_eq!(sink.post_jsonl(&b).0, 200);
    let (status, body) = sink.post_jsonl(&c);
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            "the sink holds its limit of 2 emitters (--max-emitters)\n"
        )
    );
    assert_eq!(sink.post_jsonl(&a[1..]).0, 200);
}
