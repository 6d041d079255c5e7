//! The writer against the record's serde form: the same bytes for any
//! record, and a line the readers parse back to the same record.

use super::escape::{clean, must_escape};
use super::*;
use crate::audit::record::{CloseReason, Decision, Fields, Kind, LossReason, Reason, Record};
use proptest::prelude::*;

/// Text as hostile as a header value gets: quotes, backslashes, every
/// control character, DEL, non-ASCII, long runs without any of them.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[ -~]{0,40}",
        "[\\x00-\\x1f\"\\\\\\x7f]{1,8}",
        "[a-z\"\\\\\\n\\t\\x01é☃😀\\x7f]{0,40}",
        "[a-z0-9/_.-]{16,80}",
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn fields() -> impl Strategy<Value = Option<Fields<String>>> {
    proptest::option::of(proptest::collection::vec((text(), text()), 0..4).prop_map(Fields))
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(1.0),
        Just(1.5),
        Just(0.001),
        Just(1e21),
        Just(f64::NAN),
        -1e6..1e6f64
    ]
}

prop_compose! {
    fn source()(a in opt_text(), p in opt_text(), t in opt_text(), n in opt_text(),
                s in opt_text(), su in opt_text(), c in opt_text()) -> Source {
        Source { address: a, principal: p, trust_domain: t, namespace: n,
                 service_account: s, subject: su, cert_sha256: c }
    }
}

prop_compose! {
    fn request()(method in opt_text(), scheme in opt_text(), authority in opt_text(),
                 path in opt_text(), query in opt_text(), protocol in opt_text(),
                 headers in fields(), bytes in proptest::option::of(any::<u64>())) -> Request {
        Request { method, scheme, authority, path, query, protocol, headers, bytes }
    }
}

prop_compose! {
    fn response()(code in proptest::option::of(any::<u32>()), code_details in opt_text(),
                  flags in proptest::collection::vec(text(), 0..3), headers in fields(),
                  bytes in proptest::option::of(any::<u64>())) -> Response {
        Response { code, code_details, flags, headers, bytes }
    }
}

fn claims() -> impl Strategy<Value = Option<Fields<serde_json::Value>>> {
    let value = prop_oneof![
        text().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        number().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        proptest::collection::vec(text(), 0..3).prop_map(serde_json::Value::from),
    ];
    proptest::option::of(proptest::collection::vec((text(), value), 0..3).prop_map(Fields))
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Request),
        Just(Kind::Loss),
        Just(Kind::Seal),
        Just(Kind::Close)
    ]
}

fn reason() -> impl Strategy<Value = Option<Reason>> {
    proptest::option::of(prop_oneof![
        Just(Reason::Loss(LossReason::BufferFull)),
        Just(Reason::Loss(LossReason::RateLimited)),
        Just(Reason::Loss(LossReason::Rejected)),
        Just(Reason::Close(CloseReason::Shutdown)),
        Just(Reason::Close(CloseReason::Reconfigure)),
    ])
}

fn decision() -> impl Strategy<Value = Option<Decision>> {
    proptest::option::of(prop_oneof![
        Just(Decision::Allowed),
        Just(Decision::Denied),
        Just(Decision::Error)
    ])
}

prop_compose! {
    fn ids()(emitter in opt_text(), seq in proptest::option::of(any::<u64>()), prev in opt_text(),
             request_id in opt_text(), trace_id in opt_text(), span_id in opt_text())
             -> [Option<String>; 6] {
        [emitter, seq.map(|s| s.to_string()), prev, request_id, trace_id, span_id]
    }
}

prop_compose! {
    fn record()(kind in kind(), ts in text(), ids in ids(),
                source in proptest::option::of(source()),
                destination in proptest::option::of((opt_text(), opt_text())),
                tls in proptest::option::of((any::<bool>(), opt_text(), opt_text())),
                user in claims(),
                request in proptest::option::of(request()),
                response in proptest::option::of(response()),
                route in proptest::option::of((opt_text(), opt_text(), opt_text())),
                duration_ms in proptest::option::of(number()),
                decision in decision(),
                violation in opt_text(),
                sample in proptest::option::of((opt_text(), number())),
                redacted in proptest::collection::vec(text(), 0..3),
                degraded in proptest::collection::vec(text(), 0..2),
                reason in reason(),
                counts in proptest::collection::vec(proptest::option::of(any::<u64>()), 3),
                since in opt_text(), until in opt_text(),
                plugin in proptest::option::of((text(), text()))) -> Record {
        let [emitter, seq, prev, request_id, trace_id, span_id] = ids;
        let mut r = Record::new(kind, ts);
        r.emitter = emitter;
        r.seq = seq.and_then(|s| s.parse().ok());
        r.prev = prev;
        r.request_id = request_id;
        r.trace_id = trace_id;
        r.span_id = span_id;
        r.source = source;
        r.destination = destination.map(|(address, principal)| Destination { address, principal });
        r.tls = tls.map(|(mtls, version, sni)| Tls { mtls, version, sni });
        r.user = user;
        r.request = request;
        r.response = response;
        r.route = route.map(|(name, cluster, virtual_host)| Route { name, cluster, virtual_host });
        r.duration_ms = duration_ms;
        r.decision = decision;
        r.violation = violation;
        r.sample = sample.map(|(rule, rate)| Sample { rule, rate });
        r.redacted = redacted;
        r.degraded = degraded;
        r.reason = reason;
        r.count = counts[0];
        r.from_seq = counts[1];
        r.to_seq = counts[2];
        r.since = since;
        r.until = until;
        r.plugin = plugin.map(|(version, config)| Plugin { version, config });
        r
    }
}

/// Runs `check` on 2000 generated records, on a thread with room for the
/// strategy's deep stack of generators (unoptimised test builds).
fn for_records(check: fn(Record) -> Result<(), TestCaseError>) {
    let run = move || {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(2000));
        if let Err(e) = runner.run(&record(), check) {
            panic!("{e}");
        }
    };
    let worker = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(run)
        .unwrap();
    if let Err(e) = worker.join() {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn writes_the_bytes_serde_json_writes() {
    for_records(|r| {
        let want = String::from_utf8(serde_json::to_vec(&r).unwrap()).unwrap();
        let got = String::from_utf8(to_vec(&r)).unwrap();
        prop_assert_eq!(got, want);
        Ok(())
    });
}

#[test]
fn a_prepared_record_stamped_is_the_record_with_its_stamp() {
    for_records(|r| {
        let mut unstamped = r.clone();
        (unstamped.emitter, unstamped.seq, unstamped.prev) = (None, None, None);
        let line = Prepared::of(&unstamped)
            .into_stamped(|out| stamp(r.emitter.as_deref(), r.seq, r.prev.as_deref(), out));
        prop_assert_eq!(line, to_vec(&r));
        Ok(())
    });
}

#[test]
fn a_record_with_its_connection_written_apart_is_the_same_record() {
    for_records(|r| {
        let mut apart = r.clone();
        (apart.source, apart.destination, apart.tls) = (None, None, None);
        let joined = Prepared::with_connection(&apart, &connection(&r));
        prop_assert_eq!(joined, Prepared::of(&r));
        Ok(())
    });
}

#[test]
fn a_written_record_reads_back_as_itself() {
    let mut r = Record::new(Kind::Request, "2026-12-01T00:00:00.000001Z".into());
    r.request_id = Some("id \"quoted\" \\ \u{1} é".into());
    r.duration_ms = Some(1.5);
    r.tls = Some(Tls {
        mtls: true,
        version: Some("TLSv1.3".into()),
        sni: None,
    });
    r.redacted = vec!["request.headers.authorization".into()];
    let back: Record = serde_json::from_slice(&to_vec(&r)).unwrap();
    assert_eq!(back, r);
}

#[test]
fn the_word_check_finds_every_byte_that_must_be_escaped_wherever_it_is() {
    for b in 0..=255u8 {
        for at in 0..17 {
            let mut bytes = [b'a'; 17];
            bytes[at] = b;
            assert_eq!(clean(&bytes), !must_escape(b), "byte {b:#04x} at {at}");
        }
    }
}
