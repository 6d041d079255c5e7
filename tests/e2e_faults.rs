//! SPEC §2 under real faults, in the real, pinned Envoy: the sink goes down,
//! gets slow, fails, the buffer overflows (fail-open and fail-closed), and
//! the filter is drained by a listener reload. Each test runs its own Envoy
//! and sink; timings are short so the suite stays quick. Every scenario
//! runs on both builds (fail-closed with the native module's HTTP filter).

// Test code: helpers fail the test by panicking.
#![allow(clippy::panic, clippy::unwrap_used)]

mod e2e;

use e2e::load::percentile;
use e2e::{trail, wait_for, Answer, Envoy, Load, Outcome, Sink};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::thread::sleep;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// Quick retries, a short sink timeout, flushes every 100 ms.
fn config() -> Value {
    json!({
        "sink": {"cluster": "audit_sink", "timeout_ms": 500},
        "batch": {"flush_interval_ms": 100},
        "retry": {"backoff_base_ms": 100, "backoff_max_ms": 1000}
    })
}

/// [`config`] with `extra` merged in, one level deep per top-level key.
fn with(extra: Value) -> Value {
    let mut base = config();
    for (key, value) in extra.as_object().unwrap() {
        match (base.get_mut(key), value) {
            (Some(Value::Object(into)), Value::Object(from)) => {
                into.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())))
            }
            _ => {
                base[key] = value.clone();
            }
        }
    }
    base
}

fn stat(stats: &BTreeMap<String, u64>, name: &str) -> u64 {
    stats.get(name).copied().unwrap_or(0)
}

crate::on_both_builds! {
fn sink_down_for_ten_seconds_under_load_breaks_no_request_and_loses_no_record(build: Build) {
    let sink = Sink::start();
    let envoy = Envoy::start_build(build, &config(), &sink);
    let load = Load::start(envoy.plain_port, "/orders/load", 50, 4);
    sleep(Duration::from_secs(2));

    sink.go_down();
    let down_at = Instant::now();
    let mut max_buffered = 0;
    let mut gauge_dips = 0;
    while down_at.elapsed() < Duration::from_secs(10) {
        let buffered = envoy.stat("records_buffered");
        if buffered < max_buffered {
            gauge_dips += 1;
        }
        max_buffered = max_buffered.max(buffered);
        sleep(Duration::from_millis(100));
    }
    let during_outage = envoy.stat("records_admitted");
    sink.come_back();
    let back_at = Instant::now();
    sleep(Duration::from_secs(2));
    let outcomes = load.stop();
    let stats = envoy.settled_stats(WAIT);

    let errors: Vec<&Outcome> = outcomes.iter().filter(|o| o.failed()).collect();
    assert!(errors.is_empty(), "client-visible errors: {errors:#?}");
    let emitters = trail(&sink.deliveries());
    assert_eq!(
        emitters.len(),
        1,
        "one worker, one emitter: {:?}",
        emitters.keys()
    );
    let (name, emitter) = emitters.iter().next().unwrap();
    emitter.assert_complete_chain(name);
    assert_eq!(emitter.losses().count(), 0, "nothing may be lost");
    let audited: BTreeSet<&str> = emitter
        .requests()
        .filter_map(|r| r.str("/request_id"))
        .collect();
    for o in &outcomes {
        let id = o
            .request_id
            .as_deref()
            .unwrap_or_else(|| panic!("no x-request-id: {o:?}"));
        assert!(
            audited.contains(id),
            "request {} ({id}) was never audited",
            o.index
        );
    }
    assert_eq!(
        emitter.requests().count(),
        outcomes.len(),
        "one record per request"
    );
    let admitted = stat(&stats, "records_admitted");
    assert_eq!(admitted, emitter.records.len() as u64, "{stats:?}");
    assert_eq!(stat(&stats, "records_delivered"), admitted, "{stats:?}");
    assert_eq!(stat(&stats, "records_not_admitted"), 0, "{stats:?}");
    assert_eq!(stat(&stats, "records_rejected"), 0, "{stats:?}");
    assert!(
        stat(&stats, "batch_failures") >= 1 && stat(&stats, "batch_retries") >= 1,
        "{stats:?}"
    );
    assert!(
        max_buffered > 0,
        "the gauge never showed the outage's backlog"
    );

    let caught_up = (1..=during_outage)
        .filter_map(|seq| emitter.first_acked.get(&seq))
        .max()
        .map_or(Duration::ZERO, |at| at.saturating_duration_since(back_at));
    let before: Vec<&Outcome> = outcomes.iter().filter(|o| o.index < 100).collect();
    let during: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| (100..600).contains(&o.index))
        .collect();
    eprintln!(
        "sink down 10 s under 50 req/s: requests {}, client errors {}, records admitted {}, \
         max records_buffered seen {max_buffered} (gauge dips while down: {gauge_dips}), \
         batches sent {}, batch failures {}, batch retries {}, \
         sink back → backlog delivered in {} ms, duplicates at the sink {}, out of seq order {}, \
         latency p50/p99/max before {:?}/{:?}/{:?}, during {:?}/{:?}/{:?}",
        outcomes.len(),
        errors.len(),
        admitted,
        stat(&stats, "batches_sent"),
        stat(&stats, "batch_failures"),
        stat(&stats, "batch_retries"),
        caught_up.as_millis(),
        emitter.duplicates,
        emitter.out_of_order,
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        percentile(&before, 1.0),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        percentile(&during, 1.0),
    );
}
}

crate::on_both_builds! {
fn a_sink_slower_than_the_timeout_then_failing_gets_the_same_batch_until_it_acknowledges(build: Build) {
    let sink = Sink::start();
    // Envoy gives up on the first attempt after 500 ms; the sink still
    // receives it (and answers too late), then fails twice, then accepts.
    sink.script(&[
        Answer::After {
            delay_ms: 1500,
            status: 200,
        },
        Answer::Status(500),
        Answer::Status(500),
    ]);
    // Exactly one batch: it is sealed and cut when the third record arrives.
    let plugin = with(json!({"batch": {"max_records": 4, "flush_interval_ms": 60000}}));
    let envoy = Envoy::start_build(build, &plugin, &sink);
    let ids = envoy.plain_ok("/orders/slow", 3);
    let stats = envoy.settled_stats(WAIT);

    let deliveries = sink.wait_for_deliveries(4, WAIT);
    let answers: Vec<(u16, u64)> = deliveries
        .iter()
        .map(|d| (d.answered, d.delay_ms))
        .collect();
    assert!(
        answers.contains(&(200, 1500)),
        "the slow attempt reached the sink: {answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|a| a.0 == 500).count(),
        2,
        "{answers:?}"
    );
    for d in &deliveries {
        assert_eq!(
            d.body, deliveries[0].body,
            "every attempt carries the same bytes"
        );
    }
    let emitters = trail(&deliveries);
    let (name, emitter) = emitters.iter().next().unwrap();
    emitter.assert_complete_chain(name);
    let audited: Vec<&str> = emitter
        .requests()
        .filter_map(|r| r.str("/request_id"))
        .collect();
    assert_eq!(audited, ids);
    // The late answer is no acknowledgement: the filter retried, so the
    // sink holds the batch twice, byte for byte (it deduplicates by seq).
    // Three requests and their seal.
    assert_eq!(emitter.duplicates, 4);
    assert_eq!(stat(&stats, "records_delivered"), 4, "{stats:?}");
    assert_eq!(stat(&stats, "batches_sent"), 4, "{stats:?}");
    assert_eq!(stat(&stats, "batch_failures"), 3, "{stats:?}");
    assert_eq!(stat(&stats, "batch_retries"), 3, "{stats:?}");
}
}

crate::on_both_builds! {
fn a_full_buffer_serves_every_request_and_reports_each_record_it_could_not_admit(build: Build) {
    let sink = Sink::start();
    sink.go_down();
    // Overflow accounting with a fixed record count: no seals, whose number
    // would depend on where ticks fall (tests/wasm/tamper.rs covers seals).
    let plugin = with(
        json!({"batch": {"max_records": 2, "max_buffered_records": 5},
        "integrity": {"seal_every_batch": false}}),
    );
    let envoy = Envoy::start_build(build, &plugin, &sink);
    let ids = envoy.plain_ok("/orders/overflow", 12);
    let full = wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| stat(s, "records_not_admitted") == 7)
    })
    .unwrap_or_else(|| panic!("five admitted, seven not: {:?}", envoy.stats()));
    assert_eq!(stat(&full, "records_admitted"), 5, "{full:?}");

    sink.come_back();
    // No further traffic: the loss is reported as soon as there is room.
    let records = sink.wait_for_records(6, WAIT);
    let stats = envoy.settled_stats(WAIT);
    let emitters = trail(&sink.deliveries());
    let (name, emitter) = emitters.iter().next().unwrap();
    emitter.assert_complete_chain(name);
    let losses: Vec<_> = emitter.losses().collect();
    assert_eq!(losses.len(), 1, "{records:#?}");
    assert_eq!(losses[0].str("/reason"), Some("buffer_full"));
    assert_eq!(
        losses[0].u64("/count"),
        Some(stat(&stats, "records_not_admitted"))
    );
    assert!(losses[0].str("/since").is_some() && losses[0].str("/until").is_some());
    let audited: Vec<&str> = emitter
        .requests()
        .filter_map(|r| r.str("/request_id"))
        .collect();
    assert_eq!(audited, ids[..5], "the first five requests were admitted");
    assert_eq!(
        stat(&stats, "records_admitted"),
        6,
        "five requests and the loss record"
    );
}
}

crate::on_both_builds! {
fn fail_closed_answers_503_only_while_the_buffer_is_full_and_recovers_by_itself(build: Build) {
    // The native module answers 503 from its HTTP filter.
    let build = match build {
        Build::Native => Build::NativeWithFilter,
        wasm => wasm,
    };
    let sink = Sink::start();
    sink.go_down();
    let plugin = with(
        json!({"on_overflow": "reject", "batch": {"max_records": 3, "max_buffered_records": 3},
            "integrity": {"seal_every_batch": false}}),
    );
    let envoy = Envoy::start_build(build, &plugin, &sink);
    // Three requests fill the buffer (no seals, whose number would depend
    // on where ticks fall).
    let admitted = envoy.plain_ok("/orders/closed", 3);
    for i in 0..3 {
        let reply = envoy.plain(&format!("/orders/refused/{i}"));
        assert_eq!(reply.status, 503, "{reply:#?}");
        assert_eq!(reply.body, "audit unavailable");
        let logged = envoy.access_log_entry(reply.request_id());
        // Answered by the filter itself: the request was never proxied.
        assert_eq!(logged["code_details"], "mesh_audit_unavailable");
    }

    sink.come_back();
    let stats = envoy.settled_stats(WAIT);
    assert_eq!(stat(&stats, "requests_rejected"), 3, "{stats:?}");
    let after = envoy.plain_ok("/orders/open-again", 1);
    let records = sink.wait_for_records(4, WAIT);
    let audited: Vec<&str> = records
        .iter()
        .filter_map(|r| r.str("/request_id"))
        .collect();
    assert_eq!(
        audited,
        [admitted, after].concat(),
        "refused requests are not audited"
    );
}
}

crate::on_both_builds! {
fn a_listener_reload_drains_the_old_filter_and_delivers_what_it_buffered(build: Build) {
    let sink = Sink::start();
    // Only the drain sends: the flush interval is a minute away.
    let before = json!({"sink": {"cluster": "audit_sink", "timeout_ms": 2000}, "batch": {"flush_interval_ms": 60000}});
    let mut envoy = Envoy::start_reloadable_on(build, &before, &sink, &json!({}));
    let ids = envoy.plain_ok("/orders/reload", 5);
    wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| stat(s, "records_buffered") == 5)
    })
    .unwrap_or_else(|| panic!("five records buffered: {:?}", envoy.stats()));
    assert!(
        sink.deliveries().is_empty(),
        "nothing is due before the reload"
    );

    let after = with(json!({"sink": {"headers": {"x-audit-generation": "2"}}}));
    envoy.reload_plugin(&after);
    let drained = sink.wait_for_records(5, WAIT);
    let audited: Vec<&str> = drained
        .iter()
        .filter_map(|r| r.str("/request_id"))
        .collect();
    assert_eq!(audited, ids);
    let log = envoy.wait_for_log(
        "mesh-audit: shutdown: all records delivered; 0 records undelivered",
        WAIT,
    );
    // The five records, the close record that ends the emitter, its seal.
    assert!(
        log.contains("mesh-audit: draining 7 buffered records before shutdown"),
        "{log}"
    );

    // The new filter instance is a new emitter, with its own chain.
    let later = envoy.plain_ok("/orders/reloaded", 1);
    let records = sink.wait_for_records(6, WAIT);
    let emitters = trail(&sink.deliveries());
    assert_eq!(emitters.len(), 2, "{records:#?}");
    for (name, emitter) in &emitters {
        emitter.assert_complete_chain(name);
    }
    let newest = &records[5];
    assert_eq!(newest.str("/request_id"), Some(later[0].as_str()));
    assert_eq!(newest.u64("/seq"), Some(1));
    let last = sink.deliveries().pop().unwrap();
    assert_eq!(last.header("x-audit-generation"), Some("2"));
    envoy.terminate();
    assert!(envoy.wait_exit(WAIT).is_some_and(|s| s.success()));
}
}

crate::on_both_builds! {
fn draining_listeners_before_sigterm_delivers_everything_buffered(build: Build) {
    let sink = Sink::start();
    sink.go_down();
    let envoy_config = with(json!({"batch": {"flush_interval_ms": 1000}}));
    let mut envoy = Envoy::start_build(build, &envoy_config, &sink);
    let ids = envoy.plain_ok("/orders/drain", 4);
    // SIGTERM alone would lose these: Envoy runs the filter's on_done only
    // after its workers stopped, when no call can complete any more. The
    // operator's sequence: stop taking traffic, wait for the gauge, stop.
    assert_eq!(
        envoy.admin_post("/drain_listeners?graceful").map(|r| r.0),
        Some(200)
    );
    sink.come_back();
    envoy.settled_stats(WAIT);
    envoy.terminate();
    assert!(envoy.wait_exit(WAIT).is_some_and(|s| s.success()));
    let audited: Vec<String> = sink
        .records()
        .iter()
        .filter_map(|r| r.str("/request_id").map(str::to_string))
        .collect();
    assert_eq!(audited, ids);
}
}

crate::on_both_builds! {
fn a_drain_against_a_failing_sink_backs_off_and_gives_up_after_the_sink_timeout(build: Build) {
    let sink = Sink::start();
    let before = json!({
        "sink": {"cluster": "audit_sink", "timeout_ms": 2000},
        "batch": {"flush_interval_ms": 60000},
        "retry": {"backoff_base_ms": 100, "backoff_max_ms": 1000}
    });
    let envoy = Envoy::start_reloadable_on(build, &before, &sink, &json!({}));
    envoy.plain_ok("/orders/doomed", 5);
    wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| stat(s, "records_buffered") == 5)
    })
    .unwrap_or_else(|| panic!("five records buffered: {:?}", envoy.stats()));
    sink.answer_with(503);
    envoy.reload_plugin(&with(
        json!({"sink": {"headers": {"x-audit-generation": "2"}}}),
    ));
    let started = Instant::now();
    // The five records, the close record and its seal.
    envoy.wait_for_log(
        "mesh-audit: draining 7 buffered records before shutdown",
        WAIT,
    );
    envoy.wait_for_log(
        "mesh-audit: shutdown: sink.timeout_ms passed; 7 records undelivered",
        WAIT,
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "gave up early: {:?}",
        started.elapsed()
    );
    // Backoff holds in a drain too: 100 ms doubling to 1 s, with jitter, fits
    // at most 7 attempts into 2 s; without it a failing sink gets thousands.
    let attempts = sink.deliveries().len();
    eprintln!(
        "drain against a 503 sink: {attempts} attempts, gave up after {:?}",
        started.elapsed()
    );
    assert!(
        (2..=8).contains(&attempts),
        "{attempts} attempts in a 2 s drain"
    );
}
}
