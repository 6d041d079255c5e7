//! What a sidecar keeps when it samples nothing, and what it never lets out:
//! access-policy violations survive a 0% rate; secrets in captured headers
//! and the query string never reach the sink, not even as raw bytes.

use crate::e2e::{pki, record_of, wait_for, Envoy, Sink, Workload};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const CONSOLE: &str = "spiffe://cluster.local/ns/ops/sa/console";

crate::on_both_builds! {
fn admin_calls_outside_the_access_policy_are_kept_at_rate_zero_and_counted(build: Build) {
    let sink = Sink::start();
    let plugin = json!({
        "sink": {"cluster": "audit_sink"},
        "batch": {"flush_interval_ms": 100},
        "sampling": {"default_rate": 0.0},
        "access_policy": [{"name": "admin-only", "path_prefix": "/admin", "allow_principals": [CONSOLE]}]
    });
    let envoy = Envoy::start_build(build, &plugin, &sink);
    let violation = envoy.mtls(Workload::Frontend, "/admin/reports");
    let denied = envoy.mtls(Workload::Reporter, "/admin/reports");
    let ordinary = envoy.mtls(Workload::Frontend, "/orders/1");
    let plaintext = envoy.plain("/orders/2");
    // RBAC lets the frontend through and stops the reporter: the policy only detects.
    let statuses = [&violation, &denied, &ordinary, &plaintext].map(|r| r.status);
    assert_eq!(statuses, [200, 403, 200, 200]);

    // Once every request has been decided, only the two violations were kept.
    let stats = wait_for(WAIT, || {
        Some(envoy.stats()).filter(|s| {
            s.get("records_sampled_out") == Some(&2)
                && s.get("records_buffered") == Some(&0)
                && s.get("records_admitted").is_some_and(|a| *a > 2)
                && s.get("records_delivered") == s.get("records_admitted")
        })
    })
    .unwrap_or_else(|| panic!("stats {:?}", envoy.stats()));
    assert_eq!(stats.get("policy_violations"), Some(&2), "{stats:?}");
    // The two kept records and the seals of their batches.
    assert_eq!(
        stats.get("records_admitted"),
        Some(&(sink.records().len() as u64)),
        "{stats:?}"
    );
    let records = sink.audit_records();
    assert_eq!(records.len(), 2, "{records:#?}");

    let rec = record_of(&records, violation.request_id());
    assert_eq!(rec.str("/violation"), Some("admin-only"), "{}", rec.line);
    assert_eq!(rec.str("/decision"), Some("allowed"));
    assert_eq!(
        rec.str("/source/principal"),
        Some(Workload::Frontend.principal())
    );
    assert_eq!(rec.str("/request/path"), Some("/admin/reports"));
    assert_eq!(rec.json["sample"], json!({"rate": 0.0}), "{}", rec.line);

    let rec = record_of(&records, denied.request_id());
    assert_eq!(rec.str("/violation"), Some("admin-only"), "{}", rec.line);
    assert_eq!(rec.str("/decision"), Some("denied"));
    assert_eq!(
        rec.str("/source/principal"),
        Some(Workload::Reporter.principal())
    );

    for dropped in [&ordinary, &plaintext] {
        assert!(
            records
                .iter()
                .all(|r| r.str("/request_id") != Some(dropped.request_id())),
            "{} was recorded at rate 0",
            dropped.request_id()
        );
    }
}
}

/// A value no one could guess, so finding it proves a leak.
fn secret(label: &str) -> String {
    use std::hash::BuildHasher;
    let noise = std::collections::hash_map::RandomState::new().hash_one(label);
    format!("{label}{noise:016x}{:08x}", std::process::id())
}

crate::on_both_builds! {
fn captured_credentials_never_reach_the_sink_in_any_byte(build: Build) {
    let sink = Sink::start();
    // No redact rules: authorization, cookie and access_token are secret by default.
    let plugin = json!({
        "sink": {"cluster": "audit_sink"},
        "batch": {"flush_interval_ms": 100},
        "capture": {"request_headers": ["authorization", "cookie", "user-agent"], "query": true}
    });
    let envoy = Envoy::start_build(build, &plugin, &sink);
    let jwt = std::fs::read_to_string(pki().join("alice.jwt")).unwrap();
    let jwt = jwt.trim().to_string();
    // Valid credentials (the verified JWT), and an opaque token jwt_authn refuses.
    let (opaque, session, access) = (secret("opaque"), secret("session"), secret("access"));
    let (session2, access2) = (secret("session"), secret("access"));
    let calls = [
        (jwt.as_str(), session.as_str(), access.as_str(), 200),
        (opaque.as_str(), session2.as_str(), access2.as_str(), 401),
    ];
    let mut ids = Vec::new();
    for (token, cookie_value, access_token, status) in calls {
        let bearer = format!("Bearer {token}");
        let cookie = format!("session={cookie_value}");
        let reply = envoy.mtls_with(
            Workload::Frontend,
            &format!("/orders/42?access_token={access_token}&page=2"),
            &[("authorization", &bearer), ("cookie", &cookie)],
        );
        assert_eq!(reply.status, status, "{reply:#?}");
        ids.push(reply.request_id().to_string());
    }
    let records = sink.wait_for_records(2, WAIT);

    let secrets = [&jwt, &opaque, &session, &access, &session2, &access2];
    // The JWT's signature alone is a secret too.
    let signature = jwt.rsplit('.').next().unwrap().to_string();
    for delivery in sink.deliveries() {
        for s in secrets.iter().copied().chain([&signature]) {
            let found = delivery.body.windows(s.len()).any(|w| w == s.as_bytes());
            assert!(
                !found,
                "secret {s} in a batch: {}",
                String::from_utf8_lossy(&delivery.body)
            );
        }
        for (name, value) in &delivery.headers {
            assert!(
                secrets.iter().all(|s| !value.contains(s.as_str())),
                "secret in sink header {name}: {value}"
            );
        }
    }
    for (id, decision) in ids.iter().zip(["allowed", "denied"]) {
        let rec = record_of(&records, id);
        assert_eq!(rec.str("/decision"), Some(decision), "{}", rec.line);
        assert_eq!(
            rec.str("/request/headers/authorization"),
            Some("Bearer [REDACTED]")
        );
        assert_eq!(rec.str("/request/headers/cookie"), Some("[REDACTED]"));
        assert!(
            rec.str("/request/headers/user-agent")
                .is_some_and(|ua| ua.starts_with("curl/")),
            "{}",
            rec.line
        );
        assert_eq!(
            rec.str("/request/query"),
            Some("access_token=[REDACTED]&page=2")
        );
        assert_eq!(
            rec.json["redacted"],
            json!([
                "request.headers.authorization",
                "request.headers.cookie",
                "request.query.access_token"
            ]),
            "{}",
            rec.line
        );
    }
}
}
