//! Two hops across containers (two-hops.yaml): an app calls its sidecar in
//! plaintext, that sidecar calls the backend's sidecar in another container
//! over mTLS, each hop on its own network. Both sample on the request id, so
//! both keep exactly the requests the sampling function picks, and each
//! describes its own side of the call.

use crate::stack::{repo_root, Stack};
use crate::{
    assert_admitted_accounted, assert_verify_clean, engine_or_notice, records_of_kind, slot,
};
use mesh_audit::audit::sample::unit_interval;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const REQUESTS: usize = 200;
const RATE: f64 = 0.1;
const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
const BACKEND: &str = "spiffe://cluster.local/ns/default/sa/backend";

/// Waits (bounded) until an Envoy has decided every request, the trail
/// holds the `kept` records of its hop (those on `route`: a client has its
/// response before Envoy logs the request) and it delivered everything it
/// admitted, none refused: the requests it kept and each batch's seal.
fn settled(stack: &Stack, port: u16, route: &str, kept: u64) -> BTreeMap<String, u64> {
    let stats = stack.settled_at(
        port,
        kept as usize,
        |r| r["route"]["name"] == route,
        |stats| {
            let get = |n: &str| stats.get(n).copied().unwrap_or(0);
            get("records_sampled_out") == REQUESTS as u64 - kept
                && get("records_admitted") > kept
                && get("records_rejected") == 0
        },
    );
    assert_admitted_accounted(&stats, route);
    stats
}

fn ip(address: &Value) -> &str {
    address.as_str().unwrap().rsplit_once(':').unwrap().0
}

#[test]
fn both_sidecars_in_their_own_containers_keep_the_same_requests_with_their_own_principals() {
    if !engine_or_notice(
        "both_sidecars_in_their_own_containers_keep_the_same_requests_with_their_own_principals",
    ) {
        return;
    }
    let _one = slot();
    let mut stack = Stack::new(
        "two-hops",
        &repo_root().join("tests/containers/two-hops.yaml"),
    );
    let callee_admin = stack.publish("MESH_AUDIT_CALLEE_ADMIN_PORT");
    stack.up(&["sink", "callee", "caller", "app"]);

    let ids: Vec<String> = (0..REQUESTS).map(|i| format!("hop-{i:04}")).collect();
    let expected: BTreeSet<String> = ids
        .iter()
        .filter(|id| unit_interval(id.as_bytes()) < RATE)
        .cloned()
        .collect();
    assert!(
        (5..=40).contains(&expected.len()),
        "a {RATE} sample of {REQUESTS} ids should keep a few, keeps {expected:?}"
    );
    // One curl, one kept-alive connection, each request with its own id.
    let out = stack.exec(
        "app",
        &format!(
            "args=(); for ((i=0; i<{REQUESTS}; i++)); do \
               args+=(--next -s -o /dev/null -w '%{{http_code}} %header{{x-upstream-request-id}}\\n' \
                 -H \"x-request-id: $(printf 'hop-%04d' $i)\" http://caller:15001/orders/1); \
             done; curl \"${{args[@]:1}}\""
        ),
    );
    let replies: Vec<&str> = out.lines().collect();
    assert_eq!(replies.len(), REQUESTS, "{out}");
    for (reply, id) in replies.iter().zip(&ids) {
        // The backend behind both hops saw the very id the app chose.
        assert_eq!(*reply, format!("200 {id}"));
    }

    let kept = expected.len() as u64;
    // Each hop's records carry its own route: the caller's "to-backend",
    // the callee's "orders".
    let caller_stats = settled(&stack, stack.admin_port, "to-backend", kept);
    let callee_stats = settled(&stack, callee_admin, "orders", kept);

    let (app, caller, callee) = (
        stack.address_on_any("app"),
        stack.address("caller", "mesh"),
        stack.address("callee", "mesh"),
    );
    let trail = stack.trail();
    let requests = records_of_kind(&trail, "request");
    let (at_caller, at_callee): (Vec<&Value>, Vec<&Value>) = requests
        .iter()
        .partition(|r| r["route"]["name"] == "to-backend");
    for (hop, records) in [("caller", &at_caller), ("callee", &at_callee)] {
        let kept_ids: Vec<&str> = records
            .iter()
            .map(|r| r["request_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            kept_ids.len(),
            expected.len(),
            "{hop} kept a request twice: {kept_ids:?}"
        );
        let kept_ids: BTreeSet<String> = kept_ids.into_iter().map(str::to_string).collect();
        assert_eq!(kept_ids, expected, "{hop}");
    }
    // The caller's side: plaintext from its own app, so no peer identity.
    for r in &at_caller {
        assert_eq!(r["tls"]["mtls"], false, "{r}");
        assert!(r["source"].get("principal").is_none(), "{r}");
        assert_eq!(ip(&r["source"]["address"]), app, "{r}");
    }
    // The callee's side: the frontend's certificate, from the caller's
    // container, to the backend's identity at the callee's address.
    for r in &at_callee {
        assert_eq!(r["tls"]["mtls"], true, "{r}");
        assert_eq!(r["source"]["principal"], FRONTEND, "{r}");
        assert_eq!(ip(&r["source"]["address"]), caller, "{r}");
        assert_eq!(r["destination"]["principal"], BACKEND, "{r}");
        assert_eq!(ip(&r["destination"]["address"]), callee, "{r}");
        assert_eq!(r["route"]["name"], "orders", "{r}");
    }
    let outcome = assert_verify_clean(&stack, "two hops");
    assert_eq!(outcome["records"], trail.len(), "{outcome}");
    let delivered = caller_stats["records_delivered"] + callee_stats["records_delivered"];
    assert_eq!(
        delivered,
        trail.len() as u64,
        "{caller_stats:?} {callee_stats:?}"
    );
}
