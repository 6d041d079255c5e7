//! What a sink's reply means for the batch it answers (SPEC §2.3): the
//! status class, a `Retry-After` the sink asked for, and, from an OTLP
//! collector, a partial success that refused some of the records.

use super::encode_otlp::{self, PartialSuccess};
use crate::audit::time::parse_http_date;
use crate::host::Headers;

/// How the sink answered a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: delivered.
    Ack,
    /// Connect failure, timeout, 5xx, 408, 429 (and anything unexpected): try again.
    Retry,
    /// Like [`Outcome::Retry`], but the sink asked (`Retry-After`) to wait at
    /// least this many milliseconds; honoured up to `backoff_max_ms`.
    RetryAfter(u64),
    /// Any other 4xx: the sink will never accept this batch.
    Reject,
    /// 2xx, but the sink refused this many of the batch's records (OTLP
    /// `partial_success.rejected_log_records`); more than the batch holds
    /// means all of it.
    PartialReject(u64),
}

/// Classifies a sink reply by its `:status` (None: no reply at all).
pub fn classify(status: Option<u32>) -> Outcome {
    match status {
        Some(200..=299) => Outcome::Ack,
        Some(408) | Some(429) => Outcome::Retry,
        Some(400..=499) => Outcome::Reject,
        _ => Outcome::Retry,
    }
}

/// The reply, interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    /// An OTLP partial success (records refused, or a warning).
    pub partial: Option<PartialSuccess>,
    /// The body of a 2xx OTLP reply could not be read; the batch still
    /// counts as delivered (the status says so), and this says why.
    pub unreadable: Option<String>,
}

/// Interprets a reply with `:status` `status` and `headers`. `otlp`: the
/// batch was an OTLP export, whose 2xx body may carry a partial success;
/// `body` is asked for only then. `now_nanos` dates a `Retry-After` given
/// as an HTTP date.
pub fn interpret(
    status: Option<u32>,
    headers: &Headers,
    otlp: bool,
    body: impl FnOnce() -> Option<Vec<u8>>,
    now_nanos: u64,
) -> Verdict {
    let mut verdict = Verdict {
        outcome: classify(status),
        partial: None,
        unreadable: None,
    };
    match verdict.outcome {
        Outcome::Retry => {
            if let Some(ms) =
                header(headers, "retry-after").and_then(|v| retry_after_ms(v, now_nanos))
            {
                verdict.outcome = Outcome::RetryAfter(ms);
            }
        }
        Outcome::Ack if otlp => {
            let json = header(headers, "content-type")
                .is_some_and(|t| t.trim_start().starts_with("application/json"));
            match encode_otlp::partial_success(&body().unwrap_or_default(), json) {
                Ok(Some(p)) => {
                    if p.rejected > 0 {
                        verdict.outcome = Outcome::PartialReject(p.rejected);
                    }
                    verdict.partial = Some(p);
                }
                Ok(None) => {}
                Err(why) => verdict.unreadable = Some(why),
            }
        }
        _ => {}
    }
    verdict
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// `Retry-After` (RFC 9110 §10.2.3) in milliseconds from `now_nanos`:
/// delay-seconds, or an HTTP date (a date already past is 0). Anything else
/// is ignored.
pub fn retry_after_ms(value: &str, now_nanos: u64) -> Option<u64> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "a very long time".
        return Some(
            value
                .parse::<u64>()
                .map_or(u64::MAX, |s| s.saturating_mul(1000)),
        );
    }
    let at = parse_http_date(value)?;
    Some(at.saturating_sub(now_nanos) / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    /// An `ExportLogsServiceResponse` with a partial success, by hand:
    /// field 1 (message) holding field 1 (varint) and field 2 (string).
    fn partial_pb(rejected: u8, message: &str) -> Vec<u8> {
        let mut inner = vec![0x08, rejected, 0x12, message.len() as u8];
        inner.extend_from_slice(message.as_bytes());
        let mut out = vec![0x0a, inner.len() as u8];
        out.extend(inner);
        out
    }

    const NOW: u64 = 1_795_269_785_000_000_000; // 2026-11-21T14:03:05Z

    #[test]
    fn retry_after_in_seconds_or_as_an_http_date() {
        assert_eq!(retry_after_ms("7", NOW), Some(7000));
        assert_eq!(retry_after_ms(" 0 ", NOW), Some(0));
        assert_eq!(
            retry_after_ms("99999999999999999999999", NOW),
            Some(u64::MAX)
        );
        assert_eq!(
            retry_after_ms("Sat, 21 Nov 2026 14:03:15 GMT", NOW),
            Some(10_000)
        );
        assert_eq!(
            retry_after_ms("Sat, 21 Nov 2026 14:00:00 GMT", NOW),
            Some(0)
        );
        for bad in ["", "-1", "1.5", "soon", "Sat, 21 Nov 2026 14:03:15"] {
            assert_eq!(retry_after_ms(bad, NOW), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_only_matters_when_the_batch_is_retried() {
        let h = headers(&[("retry-after", "3")]);
        for status in [Some(429), Some(503), Some(500)] {
            let v = interpret(status, &h, false, || None, NOW);
            assert_eq!(v.outcome, Outcome::RetryAfter(3000), "{status:?}");
        }
        assert_eq!(
            interpret(
                Some(503),
                &headers(&[("retry-after", "later")]),
                false,
                || None,
                NOW
            )
            .outcome,
            Outcome::Retry
        );
        assert_eq!(
            interpret(Some(200), &h, false, || None, NOW).outcome,
            Outcome::Ack
        );
        assert_eq!(
            interpret(Some(400), &h, false, || None, NOW).outcome,
            Outcome::Reject
        );
    }

    #[test]
    fn an_otlp_partial_success_rejects_that_many_records() {
        let h = headers(&[("content-type", "application/x-protobuf")]);
        let v = interpret(
            Some(200),
            &h,
            true,
            || Some(partial_pb(2, "2 records too large")),
            NOW,
        );
        assert_eq!(v.outcome, Outcome::PartialReject(2));
        assert_eq!(
            v.partial,
            Some(PartialSuccess {
                rejected: 2,
                message: "2 records too large".into()
            })
        );

        let json = headers(&[("content-type", "application/json")]);
        let body = br#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"quota"}}"#;
        let v = interpret(Some(200), &json, true, || Some(body.to_vec()), NOW);
        assert_eq!(v.outcome, Outcome::PartialReject(3));
        let body = br#"{"partial_success":{"rejected_log_records":1}}"#;
        let v = interpret(Some(200), &json, true, || Some(body.to_vec()), NOW);
        assert_eq!(v.outcome, Outcome::PartialReject(1));
    }

    #[test]
    fn a_full_otlp_success_or_a_warning_delivers_everything() {
        let h = headers(&[]);
        for body in [Vec::new(), vec![0x0a, 0x00]] {
            let v = interpret(Some(200), &h, true, || Some(body.clone()), NOW);
            assert_eq!(
                (v.outcome, v.partial, v.unreadable),
                (Outcome::Ack, None, None)
            );
        }
        let v = interpret(
            Some(200),
            &h,
            true,
            || Some(partial_pb(0, "slow down")),
            NOW,
        );
        assert_eq!(v.outcome, Outcome::Ack);
        assert_eq!(v.partial.map(|p| p.message), Some("slow down".into()));
    }

    #[test]
    fn an_unreadable_otlp_reply_still_acknowledges_and_says_why() {
        let v = interpret(Some(200), &headers(&[]), true, || Some(vec![0xff; 3]), NOW);
        assert_eq!(v.outcome, Outcome::Ack);
        assert!(v
            .unreadable
            .is_some_and(|w| w.contains("ExportLogsServiceResponse")));
    }

    proptest::proptest! {
        /// Whatever a sink answers, interpreting it never panics and never
        /// turns a 2xx into a retry or a reject.
        #[test]
        fn any_reply_is_interpreted_without_panicking(
            status in proptest::option::of(0u32..1000),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            json in proptest::bool::ANY,
            retry_after in "[ -~]{0,40}",
        ) {
            let ct = if json { "application/json" } else { "application/x-protobuf" };
            let h = headers(&[("content-type", ct), ("retry-after", &retry_after)]);
            let v = interpret(status, &h, true, || Some(body.clone()), NOW);
            if matches!(status, Some(200..=299)) {
                proptest::prop_assert!(matches!(v.outcome, Outcome::Ack | Outcome::PartialReject(_)));
            }
        }
    }

    #[test]
    fn a_jsonl_reply_body_is_never_read() {
        let v = interpret(
            Some(200),
            &headers(&[]),
            false,
            || panic!("body read for a jsonl sink"),
            NOW,
        );
        assert_eq!(v.outcome, Outcome::Ack);
    }
}
