//! `default_rate` alone (no rules, no policy, no cap) on the native module,
//! without Envoy: its workers sample most requests out from the response
//! code and the sampling key, without building them, and count them. That
//! shortcut must decide exactly as the full build does: every denial kept
//! (by status or by its details), every other request kept exactly when its
//! key falls below the rate, and every request counted once.
#![cfg(feature = "native")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The fakes implement Envoy's C signatures, pointers and all.
#![allow(clippy::missing_safety_doc, clippy::not_unsafe_ptr_arg_deref)]

use mesh_audit::audit::sample::unit_interval;
use std::collections::BTreeSet;
use std::ffi::c_void;

#[path = "native_abi/fake_envoy.rs"]
mod fake_envoy;
#[path = "native_abi/hooks.rs"]
mod hooks;

use fake_envoy::{with, FakeRequest};
use hooks::*;

const REQUESTS: usize = 300;
const RATE: f64 = 0.3;

/// Request `i`'s response code and details: a denial by status, a 5xx that
/// is not a denial, a denial only its details tell, a redirect, a 200.
fn answer(i: usize) -> (u32, &'static str) {
    match i % 5 {
        0 => (403, "rbac_access_denied_matched_policy[none]"),
        1 => (503, "upstream_reset_before_response_started"),
        2 => (500, "ext_authz_error"),
        3 => (302, "via_upstream"),
        _ => (200, "via_upstream"),
    }
}

#[test]
fn the_plain_rate_shortcut_keeps_and_counts_exactly_what_the_full_build_would() {
    let envoy_config = 0x1000usize as *mut c_void;
    let json = br#"{"sink": {"cluster": "audit_sink"},
        "batch": {"flush_interval_ms": 50},
        "sampling": {"default_rate": 0.3}}"#;
    let (ext, logger) = start_logger(envoy_config, json);

    let mut want = BTreeSet::new();
    for i in 0..REQUESTS {
        let id = format!("plain-{i}");
        let (code, details) = answer(i);
        let denied = i % 5 == 0 || i % 5 == 2;
        if denied || unit_interval(id.as_bytes()) < RATE {
            want.insert(id.clone());
        }
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":path", b"/orders/1"),
            (b"x-request-id", id.as_bytes()),
        ];
        let mut request = FakeRequest::new(&headers, "spiffe://cluster.local/ns/shop/sa/frontend");
        request.code = code;
        request.details = details;
        unsafe {
            envoy_dynamic_module_on_access_logger_log(
                &request as *const _ as *mut c_void,
                logger,
                6,
            )
        };
    }
    // Kept: every denial, and some of each other kind (the shortcut is not
    // taken for a 5xx, so both ways of deciding are exercised).
    assert!(want.len() > REQUESTS * 2 / 5 && want.len() < REQUESTS * 4 / 5);

    let mut got = BTreeSet::new();
    let mut acknowledged = 0;
    for _ in 0..40 {
        tick(envoy_config);
        let batches = with(|r| r.callouts.clone());
        for (n, (_, _, body)) in batches.iter().enumerate().skip(acknowledged) {
            for line in String::from_utf8(body.clone()).unwrap().lines() {
                let r: serde_json::Value = serde_json::from_str(line).unwrap();
                if r["kind"] == "request" {
                    let id = r["request_id"].as_str().unwrap().to_string();
                    assert!(got.insert(id.clone()), "{id} delivered twice");
                }
            }
            acknowledge(envoy_config, ext, 101 + n as u64);
        }
        acknowledged = batches.len();
        if got.len() >= want.len() && sampled_out() == Some((REQUESTS - want.len()) as u64) {
            break;
        }
    }
    assert_eq!(
        got, want,
        "kept records differ from the full build's decisions"
    );
    assert_eq!(
        sampled_out(),
        Some((REQUESTS - want.len()) as u64),
        "every request let go is counted once"
    );
}

/// What `mesh_audit.records_sampled_out` has been incremented by in all.
fn sampled_out() -> Option<u64> {
    with(|r| {
        let id = r
            .counters
            .iter()
            .position(|n| n.ends_with("records_sampled_out"))?;
        Some(
            r.increments
                .iter()
                .filter(|(i, _)| *i == id)
                .map(|(_, v)| v)
                .sum(),
        )
    })
}
