//! The real, pinned Envoy: one request carries planted secrets in ten
//! different carriers, captured with the configuration a cautious operator
//! would write, and none of them reaches the sink in any byte.

use crate::e2e::{record_of, Envoy, Sink, Workload};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// A value no one could guess, upper-case letters and digits so it fits
/// every credential shape; finding it proves a leak.
fn secret(label: &str) -> String {
    use std::hash::BuildHasher;
    let noise = std::collections::hash_map::RandomState::new().hash_one(label);
    format!(
        "{}{noise:016X}{:08X}",
        label.to_ascii_uppercase(),
        std::process::id()
    )
}

#[test]
fn ten_planted_secrets_in_ten_carriers_never_reach_the_sink() {
    let sink = Sink::start();
    let plugin = json!({
        "sink": {"cluster": "audit_sink"},
        "batch": {"flush_interval_ms": 100},
        "capture": {
            "request_headers": ["user-agent", "x-forwarded-for", "authorization", "cookie",
                                "referer", "x-auth-token", "x-original-url", "forwarded",
                                "x-debug", "accept"],
            "response_headers": ["content-type"],
            "query": true
        },
        "redact": {"path_segments": ["/orders/reset/*"]}
    });
    let envoy = Envoy::start(&plugin, &sink);
    let s: Vec<String> = [
        "hdr", "referer", "code", "camel", "double", "jsession", "jwtsig", "origurl", "fwd",
        "akia", "reset",
    ]
    .iter()
    .map(|l| secret(l))
    .collect();
    let path = format!(
        "/orders;jsessionid={}/reset/{}?code={}&accessToken={}&%2574oken={}&u=AKIA{}&page=2&sort=asc",
        s[5], s[10], s[2], s[3], s[4], s[9]
    );
    let referer = format!("https://shop.example/cart?step=2&token={}", s[1]);
    let debug = format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.{}", s[6]);
    let original = format!("/orders/42?api_key={}", s[7]);
    let forwarded = format!("for=192.0.2.60;proto=https;token={}", s[8]);
    let reply = envoy.mtls_with(
        Workload::Frontend,
        &path,
        &[
            ("x-auth-token", &s[0]),
            ("referer", &referer),
            ("x-debug", &debug),
            ("x-original-url", &original),
            ("forwarded", &forwarded),
            ("accept", "application/json"),
        ],
    );
    assert_eq!(reply.status, 200, "{reply:#?}");
    let records = sink.wait_for_records(1, WAIT);

    for delivery in sink.deliveries() {
        for secret in &s {
            let found = delivery
                .body
                .windows(secret.len())
                .any(|w| w == secret.as_bytes());
            assert!(
                !found,
                "secret {secret} in a batch: {}",
                String::from_utf8_lossy(&delivery.body)
            );
        }
        for (name, value) in &delivery.headers {
            assert!(
                s.iter().all(|secret| !value.contains(secret.as_str())),
                "secret in sink header {name}: {value}"
            );
        }
    }
    let rec = record_of(&records, reply.request_id());
    assert_eq!(
        rec.str("/request/path"),
        Some("/orders;jsessionid=[REDACTED]/reset/[REDACTED]"),
        "{}",
        rec.line
    );
    assert_eq!(
        rec.str("/request/query"),
        Some("code=[REDACTED]&accessToken=[REDACTED]&%2574oken=[REDACTED]&u=[REDACTED]&page=2&sort=asc"),
        "{}",
        rec.line
    );
    assert_eq!(
        rec.str("/request/headers/referer"),
        Some("https://shop.example/cart?step=2&token=[REDACTED]")
    );
    assert_eq!(rec.str("/request/headers/x-auth-token"), Some("[REDACTED]"));
    assert_eq!(rec.str("/request/headers/x-debug"), Some("[REDACTED]"));
    assert_eq!(
        rec.str("/request/headers/x-original-url"),
        Some("/orders/42?api_key=[REDACTED]")
    );
    assert_eq!(
        rec.str("/request/headers/forwarded"),
        Some("for=192.0.2.60;proto=https;token=[REDACTED]")
    );
    assert_eq!(rec.str("/request/headers/accept"), Some("application/json"));
    assert!(
        rec.str("/request/headers/user-agent")
            .is_some_and(|ua| ua.starts_with("curl/")),
        "{}",
        rec.line
    );
    assert_eq!(
        rec.json["redacted"],
        json!([
            "request.headers.referer",
            "request.headers.x-auth-token",
            "request.headers.x-original-url",
            "request.headers.forwarded",
            "request.headers.x-debug",
            "request.path.jsessionid",
            "request.path",
            "request.query.code",
            "request.query.access_token",
            "request.query.token",
            "request.query.u"
        ]),
        "{}",
        rec.line
    );
}
