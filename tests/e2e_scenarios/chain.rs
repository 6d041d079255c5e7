//! Two sidecars in a chain: the frontend's (plaintext in, mTLS out with the
//! frontend's workload certificate) calls the backend's (mTLS in). Each runs
//! its own mesh-audit filter at a 1% default rate and delivers to its own
//! sink. Deterministic sampling on x-request-id must make both hops keep
//! exactly the same requests.

use crate::e2e::Sink;
use crate::http::Conn;
use crate::sidecar::Sidecar;
use mesh_audit::audit::sample::unit_interval;
use serde_json::json;
use std::collections::BTreeSet;

const REQUESTS: usize = 1000;
const RATE: f64 = 0.01;
const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";

fn request_ids(sink: &Sink) -> Vec<String> {
    sink.audit_records()
        .iter()
        .map(|r| {
            r.str("/request_id")
                .unwrap_or_else(|| panic!("no request_id: {}", r.line))
                .to_string()
        })
        .collect()
}

crate::on_both_builds! {
fn both_hops_of_a_chain_keep_exactly_the_same_one_percent_of_request_ids(build: Build) {
    let plugin = json!({
        "sink": {"cluster": "audit_sink"},
        "batch": {"flush_interval_ms": 100},
        "sampling": {"default_rate": RATE}
    });
    let (caller_sink, callee_sink) = (Sink::start(), Sink::start());
    let callee = Sidecar::start_on(build,
        "callee",
        "chain-callee.yaml",
        &plugin,
        callee_sink.port(),
        1,
        &[],
    );
    let caller = Sidecar::start_on(build,
        "caller",
        "chain-caller.yaml",
        &plugin,
        caller_sink.port(),
        1,
        &[("BACKEND_PORT", callee.port("MTLS_PORT"))],
    );

    let ids: Vec<String> = (0..REQUESTS).map(|i| format!("chain-{i:04}")).collect();
    // What sampling.key = x-request-id must keep at this rate, computed
    // without Envoy. The ids are fixed, so this set is too: 6 of the 1000
    // (a binomial draw at 1% lands there often enough; it is within 1.3 sd).
    let expected: BTreeSet<String> = ids
        .iter()
        .filter(|id| unit_interval(id.as_bytes()) < RATE)
        .cloned()
        .collect();
    assert!(
        (3..=20).contains(&expected.len()),
        "a 1% sample of {REQUESTS} ids should keep a few, keeps {expected:?}"
    );

    let mut conn = Conn::open(caller.port("PLAIN_PORT"));
    for id in &ids {
        let reply = conn.get("/orders/1", &[("x-request-id", id)]);
        assert_eq!(reply.status(), 200, "{reply:#?}");
        // The backend behind both hops saw the very id the client chose.
        assert_eq!(reply.header("x-upstream-request-id"), Some(id.as_str()));
    }

    let kept = expected.len() as u64;
    for (envoy, name) in [(&caller, "caller"), (&callee, "callee")] {
        // The kept records and the seals of their batches.
        let stats = envoy.stats_when("every request decided and the kept ones delivered", |s| {
            s.get("records_sampled_out") == Some(&(REQUESTS as u64 - kept))
                && s.get("records_buffered") == Some(&0)
                && s.get("records_admitted").is_some_and(|a| *a > kept)
                && s.get("records_delivered") == s.get("records_admitted")
        });
        let seals = stats.get("records_admitted").copied().unwrap_or(0) - kept;
        assert!(seals >= 1 && seals <= kept, "{name}: {stats:?}");
    }
    let (at_caller, at_callee) = (request_ids(&caller_sink), request_ids(&callee_sink));
    assert_eq!(
        at_caller.len(),
        expected.len(),
        "caller kept a request twice: {at_caller:?}"
    );
    assert_eq!(
        at_callee.len(),
        expected.len(),
        "callee kept a request twice: {at_callee:?}"
    );
    assert_eq!(
        at_caller.into_iter().collect::<BTreeSet<_>>(),
        expected,
        "caller"
    );
    assert_eq!(
        at_callee.into_iter().collect::<BTreeSet<_>>(),
        expected,
        "callee"
    );

    // Each hop describes its own side of the same call.
    for rec in caller_sink.audit_records() {
        assert_eq!(rec.json["tls"]["mtls"], json!(false), "{}", rec.line);
        assert_eq!(rec.str("/route/name"), Some("to-backend"), "{}", rec.line);
        assert_eq!(rec.json["sample"], json!({"rate": RATE}), "{}", rec.line);
    }
    for rec in callee_sink.audit_records() {
        assert_eq!(rec.json["tls"]["mtls"], json!(true), "{}", rec.line);
        assert_eq!(rec.str("/source/principal"), Some(FRONTEND), "{}", rec.line);
        assert_eq!(rec.str("/route/name"), Some("orders"), "{}", rec.line);
        assert_eq!(rec.json["sample"], json!({"rate": RATE}), "{}", rec.line);
    }
}
}
