//! Faults across the container networks, each under load from a workload
//! container and each followed by `verify`: the sink's container stopped for
//! 10 s, the sink cut off its network, Envoy drained and restarted. Nothing
//! that was admitted may be lost: every request Envoy answered has its
//! record in the trail, the counters balance, the chain verifies. Then Envoy killed
//! with a plain SIGTERM (`docker stop`) while records are buffered: that loss
//! is never silent.

use crate::stack::{docker_ok, Background, Stack};
use crate::{assert_verify_clean, engine_or_notice, recipe, records_of_kind, slot, SETTLE};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const OUTAGE: Duration = Duration::from_secs(10);

/// The frontend workload calling /orders/load-N for `seconds`, one
/// connection per request, printing each status (000: no answer).
fn load(stack: &Stack, seconds: u64) -> Background {
    stack.start(
        "frontend",
        &format!(
            "c=/pki/certs; end=$((SECONDS+{seconds})); i=0; \
             while ((SECONDS < end)); do \
               curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 5 --cacert $c/ca.pem \
                 --cert $c/frontend.pem --key $c/frontend-key.pem \
                 https://backend.default.svc:8443/orders/load-$i || true; \
               i=$((i+1)); sleep 0.05; \
             done"
        ),
    )
}

/// How many requests Envoy answered (000: no answer). Every answer is due
/// a record, whatever its status: during a drain the built-in backend's
/// listener drains too, and a request caught in between gets a 503.
fn answered(output: &str) -> usize {
    let codes: Vec<&str> = output.lines().collect();
    for code in &codes {
        assert!(
            code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()),
            "not a status: {code:?} in {output}"
        );
    }
    let other: Vec<&&str> = codes
        .iter()
        .filter(|c| !["200", "000"].contains(*c))
        .collect();
    if !other.is_empty() {
        eprintln!("statuses other than 200: {other:?}");
    }
    codes.iter().filter(|c| **c != "000").count()
}

fn get(stats: &BTreeMap<String, u64>, name: &str) -> u64 {
    stats.get(name).copied().unwrap_or(0)
}

/// Every answered request is in the trail exactly once, the counters
/// balance with nothing rejected or refused admission, the chain verifies.
/// `admitted` is the sum over Envoy's lifetimes (a restart resets them).
fn assert_nothing_admitted_lost(stack: &Stack, fault: &str, ok: usize, admitted: u64) {
    let trail = stack.trail();
    let requests = records_of_kind(&trail, "request");
    assert_eq!(
        requests.len(),
        ok,
        "{fault}: {ok} requests answered, {} records in the trail",
        requests.len()
    );
    assert_eq!(
        admitted, ok as u64,
        "{fault}: admitted {admitted}, answered {ok}"
    );
    let losses = records_of_kind(&trail, "loss");
    assert!(losses.is_empty(), "{fault}: loss records {losses:?}");
    let outcome = assert_verify_clean(stack, fault);
    assert_eq!(outcome["records"], trail.len(), "{fault}");
    eprintln!(
        "{fault}: {ok} answered, {} records, {} emitter(s), verify ok",
        trail.len(),
        outcome["emitters"].as_array().map_or(0, Vec::len)
    );
}

/// Polls the counters until `until`; the highest `records_buffered` seen.
fn peak_buffered(stack: &Stack, fault: &str, until: Instant) -> u64 {
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(get(&stack.stats(), "records_buffered"));
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("{fault}: at most {peak} records buffered during the fault");
    peak
}

fn settled_without_loss(stack: &Stack, fault: &str) -> BTreeMap<String, u64> {
    let stats = stack.settled(SETTLE);
    assert_eq!(get(&stats, "records_not_admitted"), 0, "{fault}: {stats:?}");
    assert_eq!(get(&stats, "records_rejected"), 0, "{fault}: {stats:?}");
    eprintln!("{fault}: counters after recovery {stats:?}");
    stats
}

/// Waits (bounded) until the counters show records held back (the sink
/// unreachable) and returns them.
fn buffering(stack: &Stack, fault: &str) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let stats = stack.stats();
        if get(&stats, "records_buffered") > 0 && get(&stats, "batch_failures") > 0 {
            eprintln!("{fault}: counters during the fault {stats:?}");
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "{fault}: nothing held back: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_sink_container_stopped_for_ten_seconds_under_load_loses_nothing() {
    if !engine_or_notice("the_sink_container_stopped_for_ten_seconds_under_load_loses_nothing") {
        return;
    }
    let _one = slot();
    let fault = "sink stopped 10 s";
    let stack = recipe("sink-stop");
    let sink = stack.container("sink");
    let traffic = load(&stack, 16);
    std::thread::sleep(Duration::from_secs(3));
    docker_ok(&["stop", "-t", "5", &sink]);
    let stopped = Instant::now();
    buffering(&stack, fault);
    peak_buffered(&stack, fault, stopped + OUTAGE);
    docker_ok(&["start", &sink]);
    stack.wait_healthy("sink");
    let ok = answered(&traffic.wait(Duration::from_secs(60)));
    let stats = settled_without_loss(&stack, fault);
    assert!(
        get(&stats, "batch_retries") > 0,
        "{fault}: no retry: {stats:?}"
    );
    assert_nothing_admitted_lost(&stack, fault, ok, get(&stats, "records_admitted"));
}

#[test]
fn the_sink_cut_off_its_network_under_load_loses_nothing() {
    if !engine_or_notice("the_sink_cut_off_its_network_under_load_loses_nothing") {
        return;
    }
    let _one = slot();
    let fault = "sink network disconnected 10 s";
    let stack = recipe("sink-net");
    let (sink, audit) = (stack.container("sink"), stack.network("audit"));
    let traffic = load(&stack, 16);
    std::thread::sleep(Duration::from_secs(3));
    docker_ok(&["network", "disconnect", &audit, &sink]);
    let cut = Instant::now();
    buffering(&stack, fault);
    peak_buffered(&stack, fault, cut + OUTAGE);
    docker_ok(&["network", "connect", "--alias", "audit-sink", &audit, &sink]);
    let ok = answered(&traffic.wait(Duration::from_secs(60)));
    let stats = settled_without_loss(&stack, fault);
    assert!(get(&stats, "batch_failures") > 0, "{fault}: {stats:?}");
    assert_nothing_admitted_lost(&stack, fault, ok, get(&stats, "records_admitted"));
}

/// The operator's restart: drain the listeners (Envoy stops taking
/// connections after --drain-time-s), wait until the filter holds nothing,
/// then stop and start the container.
#[test]
fn envoy_drained_and_restarted_under_load_loses_nothing() {
    if !engine_or_notice("envoy_drained_and_restarted_under_load_loses_nothing") {
        return;
    }
    let _one = slot();
    let fault = "envoy drained and restarted";
    let stack = recipe("drain");
    let envoy = stack.container("envoy");
    let traffic = load(&stack, 20);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        stack.admin_post("/drain_listeners?graceful").is_some(),
        "{fault}: /drain_listeners refused"
    );
    let before = quiet(&stack, fault);
    docker_ok(&["restart", "-t", "10", &envoy]);
    stack.wait_healthy("envoy");
    // However long the restart took, the new Envoy gets traffic too.
    let more = load(&stack, 4);
    let ok = answered(&traffic.wait(Duration::from_secs(60)))
        + answered(&more.wait(Duration::from_secs(60)));
    let after = settled_without_loss(&stack, fault);
    assert!(
        get(&after, "records_admitted") > 0,
        "{fault}: no traffic after the restart"
    );
    let admitted = get(&before, "records_admitted") + get(&after, "records_admitted");
    assert_nothing_admitted_lost(&stack, fault, ok, admitted);
    // Each Envoy worker is its own emitter; the restarted Envoy's are new.
    let (_, outcome, _) = stack.verify();
    assert!(
        outcome["emitters"].as_array().map_or(0, Vec::len) >= 2,
        "{outcome}"
    );
}

/// After a drain: the listener has stopped taking connections (its
/// connection count holds still for 2 s) and every admitted record is
/// delivered.
fn quiet(stack: &Stack, fault: &str) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + SETTLE;
    let mut last = None;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let connections = stack.listener_connections();
        let stats = stack.settled(SETTLE);
        if last == Some(connections) {
            eprintln!("{fault}: counters after the drain {stats:?}");
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "{fault}: the listener kept taking connections"
        );
        last = Some(connections);
    }
}

/// A plain SIGTERM: Envoy runs the filter's on_done only after its workers
/// stopped, so what is buffered then cannot be sent. The loss must be
/// visible: the records the trail lacks are exactly what the last scrape of
/// `records_buffered` said was held.
#[test]
fn envoy_stopped_by_sigterm_with_records_buffered_loses_them_visibly() {
    if !engine_or_notice("envoy_stopped_by_sigterm_with_records_buffered_loses_them_visibly") {
        return;
    }
    let _one = slot();
    let fault = "envoy SIGTERM";
    let stack = recipe("sigterm");
    let (sink, envoy, audit) = (
        stack.container("sink"),
        stack.container("envoy"),
        stack.network("audit"),
    );
    let burst = |n: usize| {
        stack.run(
            "frontend",
            &format!(
                "c=/pki/certs; for ((i=0; i<{n}; i++)); do \
                   curl -s -o /dev/null -w '%{{http_code}}\\n' --cacert $c/ca.pem \
                     --cert $c/frontend.pem --key $c/frontend-key.pem \
                     https://backend.default.svc:8443/orders/term-$i; \
                 done"
            ),
        )
    };
    let delivered = answered(&burst(5));
    stack.settled(SETTLE);
    docker_ok(&["network", "disconnect", &audit, &sink]);
    let held = answered(&burst(20));
    let last_scrape = buffering(&stack, fault);
    assert_eq!(
        get(&last_scrape, "records_buffered"),
        held as u64,
        "{last_scrape:?}"
    );
    docker_ok(&["stop", "-t", "10", &envoy]);
    docker_ok(&["network", "connect", "--alias", "audit-sink", &audit, &sink]);

    // Nothing came back: the trail holds exactly what was delivered before.
    let trail = stack.trail();
    let stored = records_of_kind(&trail, "request").len();
    assert_eq!(stored, delivered, "{trail:?}");
    assert_eq!(
        get(&last_scrape, "records_admitted") - stored as u64,
        get(&last_scrape, "records_buffered"),
        "{fault}: what the trail lacks is what the last scrape said was buffered"
    );
    let (ok, outcome, human) = stack.verify();
    eprintln!(
        "{fault}: {held} buffered records lost; last scrape {last_scrape:?}; verify says:\n{human}"
    );
    assert_eq!(outcome["records"], delivered, "{human}");
    // What today's verify can show: each emitter's trail simply ends at its
    // last delivered seq, so only the counters reveal the held records.
    assert!(ok, "{human}");
}
