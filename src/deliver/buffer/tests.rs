//! Test code only: its parent declares it under #[cfg(test)].
use super::*;
use crate::deliver::reply::classify;
use proptest::prelude::*;

fn limits() -> Limits {
    Limits {
        max_records: 3,
        max_bytes: 1000,
        max_buffered_records: 10,
        max_buffered_bytes: 10_000,
        max_in_flight: 2,
        backoff_base_ms: 100,
        backoff_max_ms: 1000,
    }
}

fn push_n(b: &mut Buffer, from: u64, n: u64) {
    for seq in from..from + n {
        b.push(Entry {
            seq,
            line: format!("{{\"seq\":{seq}}}").into_bytes(),
        });
    }
}

#[test]
fn classifies_sink_replies() {
    assert_eq!(classify(Some(200)), Outcome::Ack);
    assert_eq!(classify(Some(204)), Outcome::Ack);
    for s in [None, Some(500), Some(503), Some(408), Some(429), Some(302)] {
        assert_eq!(classify(s), Outcome::Retry, "{s:?}");
    }
    for s in [400, 401, 404, 413] {
        assert_eq!(classify(Some(s)), Outcome::Reject, "{s}");
    }
}

#[test]
fn cuts_full_batches_without_waiting_and_partial_ones_on_flush() {
    let mut b = Buffer::new(limits());
    push_n(&mut b, 1, 2);
    assert!(
        b.next_send(0, false, false).is_none(),
        "2 < max_records: wait"
    );
    push_n(&mut b, 3, 2);
    let s = b.next_send(0, false, false).unwrap();
    assert_eq!((s.first_seq, s.last_seq, s.lines.len()), (1, 3, 3));
    b.sent(1, 10);
    assert!(
        b.next_send(0, false, false).is_none(),
        "1 pending, no flush"
    );
    let s = b.next_send(0, true, false).unwrap();
    assert_eq!((s.first_seq, s.last_seq), (4, 4));
}

#[test]
fn respects_max_in_flight() {
    let mut b = Buffer::new(limits());
    push_n(&mut b, 1, 9);
    for token in [1, 2] {
        let id = b.next_send(0, false, false).unwrap().id;
        b.sent(id, token);
    }
    assert_eq!(b.in_flight(), 2);
    assert!(b.next_send(0, true, false).is_none());
    assert_eq!(
        b.settle(1, Outcome::Ack, 0, 0.5),
        Settled::Delivered { records: 3 }
    );
    assert!(b.next_send(0, true, false).is_some());
}

#[test]
fn a_failed_batch_keeps_its_place_and_backs_off() {
    let mut b = Buffer::new(limits());
    push_n(&mut b, 1, 6);
    let id = b.next_send(0, false, false).unwrap().id;
    b.sent(id, 1);
    let s = b.settle(1, Outcome::Retry, 1000, 0.0);
    assert_eq!(
        s,
        Settled::WillRetry {
            records: 3,
            attempts: 1,
            delay_ms: 50
        }
    );
    // Nothing newer goes out while the retry waits, even though a full batch is pending.
    assert!(b.next_send(1049, true, false).is_none());
    let again = b.next_send(1050, false, false).unwrap();
    assert_eq!((again.first_seq, again.attempt), (1, 2));
    b.sent(1, 2);
    assert_eq!(b.records(), 6);
    let second = b.next_send(1050, false, false).unwrap();
    assert_eq!(second.first_seq, 4);
}

#[test]
fn draining_ignores_backoff_and_in_flight_limits() {
    let mut b = Buffer::new(limits());
    push_n(&mut b, 1, 7);
    let id = b.next_send(0, false, false).unwrap().id;
    b.sent(id, 1);
    b.settle(1, Outcome::Retry, 0, 1.0);
    let mut sent = 0;
    while let Some(s) = b.next_send(0, false, true) {
        let id = s.id;
        sent += 1;
        b.sent(id, 100 + sent);
    }
    assert_eq!(sent, 3, "the retry, one full batch and the partial rest");
}

#[test]
fn rejection_drops_the_batch_and_names_its_range() {
    let mut b = Buffer::new(limits());
    push_n(&mut b, 5, 3);
    let id = b.next_send(0, false, false).unwrap().id;
    b.sent(id, 9);
    assert_eq!(
        b.settle(9, Outcome::Reject, 0, 0.0),
        Settled::Rejected {
            records: 3,
            from_seq: 5,
            to_seq: 7
        }
    );
    assert!(b.is_empty());
    assert_eq!(b.bytes(), 0);
}

#[test]
fn unknown_tokens_are_ignored() {
    let mut b = Buffer::new(limits());
    push_n(&mut b, 1, 3);
    assert_eq!(b.settle(42, Outcome::Ack, 0, 0.0), Settled::Unknown);
    assert_eq!(b.records(), 3);
}

#[test]
fn dispatch_refusal_backs_off() {
    let mut b = Buffer::new(limits());
    push_n(&mut b, 1, 3);
    let id = b.next_send(0, false, false).unwrap().id;
    assert_eq!(b.send_failed(id, 0, 1.0), 100);
    assert!(b.next_send(99, true, false).is_none());
    assert_eq!(b.next_send(100, false, false).unwrap().attempt, 2);
}

#[test]
fn admission_caps_by_records_and_bytes() {
    let mut b = Buffer::new(Limits {
        max_buffered_records: 3,
        max_buffered_bytes: 30,
        ..limits()
    });
    assert!(b.fits(1, 10));
    push_n(&mut b, 1, 2);
    assert!(b.fits(1, 1));
    assert!(!b.fits(1, 30 - b.bytes() + 1));
    push_n(&mut b, 3, 1);
    assert!(b.is_full());
}

#[test]
fn backoff_grows_exponentially_with_jitter_and_caps() {
    let l = limits();
    assert_eq!(backoff_ms(&l, 1, 0.0), 50);
    assert_eq!(backoff_ms(&l, 1, 1.0), 100);
    assert_eq!(backoff_ms(&l, 2, 1.0), 200);
    assert_eq!(backoff_ms(&l, 3, 0.5), 300);
    assert_eq!(backoff_ms(&l, 10, 1.0), 1000);
    assert_eq!(backoff_ms(&l, u32::MAX, 1.0), 1000);
}

#[derive(Debug, Clone)]
enum Event {
    Admit(u8),
    Send { flush: bool, drain: bool },
    Reply { pick: u8, status: u16 },
    Advance(u16),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (1u8..5).prop_map(Event::Admit),
        (any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(flush, drain)| Event::Send { flush, drain }),
        (
            any::<u8>(),
            // 1001..: an OTLP partial success refusing that many; 2000..: a retry
            // asked to wait (status - 2000) * 100 ms.
            prop::sample::select(vec![
                200u16, 204, 400, 408, 429, 500, 503, 0, 1001, 1002, 1009, 2000, 2003, 2050
            ])
        )
            .prop_map(|(pick, status)| Event::Reply { pick, status }),
        (0u16..2000).prop_map(Event::Advance),
    ]
}

/// One batch of `n` records in flight with token 7.
fn one_in_flight(n: u64) -> Buffer {
    let mut b = Buffer::new(limits());
    push_n(&mut b, 1, n);
    let id = b.next_send(0, true, false).unwrap().id;
    b.sent(id, 7);
    b
}

#[test]
fn a_partial_success_delivers_the_rest_and_rejects_the_refused() {
    let mut b = one_in_flight(3);
    assert_eq!(
        b.settle(7, Outcome::PartialReject(2), 0, 0.5),
        Settled::PartlyRejected {
            delivered: 1,
            rejected: 2,
            from_seq: 1,
            to_seq: 3
        }
    );
    assert!(b.is_empty());
    // Refusing as many as the batch holds, or more, rejects all of it.
    for n in [3, 4, u64::MAX] {
        let mut b = one_in_flight(3);
        assert_eq!(
            b.settle(7, Outcome::PartialReject(n), 0, 0.5),
            Settled::Rejected {
                records: 3,
                from_seq: 1,
                to_seq: 3
            }
        );
    }
    let mut b = one_in_flight(3);
    assert_eq!(
        b.settle(7, Outcome::PartialReject(0), 0, 0.5),
        Settled::Delivered { records: 3 }
    );
}

#[test]
fn retry_after_sets_the_least_delay_up_to_the_backoff_cap() {
    // limits(): base 100 ms, cap 1000 ms; the first retry alone waits 50..100 ms.
    let delay = |outcome| match one_in_flight(1).settle(7, outcome, 0, 0.0) {
        Settled::WillRetry { delay_ms, .. } => delay_ms,
        other => panic!("{other:?}"),
    };
    assert_eq!(delay(Outcome::Retry), 50);
    assert_eq!(delay(Outcome::RetryAfter(0)), 50);
    assert_eq!(delay(Outcome::RetryAfter(700)), 700);
    assert_eq!(delay(Outcome::RetryAfter(60_000)), 1000);
    let mut b = one_in_flight(1);
    b.settle(7, Outcome::RetryAfter(700), 0, 0.0);
    assert!(
        b.next_send(699, true, false).is_none(),
        "sent before Retry-After"
    );
    assert!(b.next_send(700, true, false).is_some());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// admitted = delivered + rejected + buffered, every seq settles at most
    /// once, nothing is delivered twice, and the caps hold — whatever happens.
    #[test]
    fn invariant_holds_for_any_event_sequence(events in prop::collection::vec(event(), 1..120)) {
        let mut b = Buffer::new(Limits { max_buffered_records: 12, ..limits() });
        let (mut next_seq, mut now, mut next_token) = (1u64, 0u64, 1u32);
        let (mut admitted, mut delivered, mut rejected) = (0usize, 0usize, 0usize);
        let mut in_flight: Vec<(u32, u64, u64)> = Vec::new();
        let mut settled = std::collections::BTreeSet::new();
        for ev in events {
            match ev {
                Event::Admit(n) => for _ in 0..n {
                    let line = format!("{{\"seq\":{next_seq}}}").into_bytes();
                    if b.fits(1, line.len()) {
                        b.push(Entry { seq: next_seq, line });
                        admitted += 1;
                        next_seq += 1;
                    }
                },
                Event::Send { flush, drain } => {
                    if let Some(s) = b.next_send(now, flush, drain) {
                        let (id, first, last) = (s.id, s.first_seq, s.last_seq);
                        prop_assert!(in_flight.iter().all(|f| f.1 != first), "batch sent twice at once");
                        b.sent(id, next_token);
                        in_flight.push((next_token, first, last));
                        next_token += 1;
                        prop_assert!(drain || b.in_flight() <= 2);
                    }
                }
                Event::Reply { pick, status } => {
                    if in_flight.is_empty() { continue; }
                    let (token, first, last) = in_flight.remove(pick as usize % in_flight.len());
                    let outcome = match status {
                        1001.. if status < 2000 => Outcome::PartialReject(u64::from(status - 1000)),
                        2000.. => Outcome::RetryAfter(u64::from(status - 2000) * 100),
                        s => classify((s != 0).then_some(u32::from(s))),
                    };
                    match b.settle(token, outcome, now, 0.5) {
                        Settled::Delivered { records } => {
                            delivered += records;
                            for s in first..=last { prop_assert!(settled.insert(s), "seq {} settled twice", s); }
                        }
                        Settled::Rejected { records, from_seq, to_seq } => {
                            prop_assert_eq!((from_seq, to_seq), (first, last));
                            rejected += records;
                            for s in first..=last { prop_assert!(settled.insert(s)); }
                        }
                        Settled::PartlyRejected { delivered: d, rejected: r, from_seq, to_seq } => {
                            prop_assert_eq!((from_seq, to_seq), (first, last));
                            prop_assert!(d > 0 && r > 0);
                            prop_assert_eq!((d + r) as u64, last - first + 1);
                            delivered += d;
                            rejected += r;
                            for s in first..=last { prop_assert!(settled.insert(s)); }
                        }
                        Settled::WillRetry { delay_ms, .. } => prop_assert!(delay_ms <= 1000),
                        Settled::Unknown => prop_assert!(false, "own token unknown"),
                    }
                }
                Event::Advance(ms) => now += ms as u64,
            }
            prop_assert_eq!(admitted, delivered + rejected + b.records());
            prop_assert!(b.records() <= 12);
        }
        // Drain: everything left is eventually delivered when the sink recovers.
        for _ in 0..100 {
            while let Some(s) = b.next_send(now, true, true) {
                let (id, first, last) = (s.id, s.first_seq, s.last_seq);
                b.sent(id, next_token);
                in_flight.push((next_token, first, last));
                next_token += 1;
            }
            for (token, _, _) in std::mem::take(&mut in_flight) {
                if let Settled::Delivered { records } = b.settle(token, Outcome::Ack, now, 0.5) { delivered += records; }
            }
        }
        prop_assert!(b.is_empty());
        prop_assert_eq!(admitted, delivered + rejected);
    }
}
