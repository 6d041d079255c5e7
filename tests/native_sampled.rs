//! A configuration that may sample requests out, on the native module
//! without Envoy: sampling reads only the sampling key (one header lookup)
//! and the response code, and a request it keeps then has both header maps
//! read whole. The kept records must carry exactly what the request sent:
//! the maps are refilled for the record, never added to what sampling
//! read, and reused request after request without carrying anything over.
//! At a low rate the main thread writes the records from the facts a
//! worker read (a request with large header maps excepted): the same
//! records either way.
#![cfg(feature = "native")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The fakes implement Envoy's C signatures, pointers and all.
#![allow(clippy::missing_safety_doc, clippy::not_unsafe_ptr_arg_deref)]

use std::ffi::c_void;

#[path = "native_abi/fake_envoy.rs"]
mod fake_envoy;
#[path = "native_abi/hooks.rs"]
mod hooks;

use fake_envoy::{with, FakeRequest};
use hooks::*;

use mesh_audit::audit::sample::unit_interval;
use mesh_audit::native::{MAIN_WRITES_MAP_BYTES, MAIN_WRITES_UP_TO};

#[test]
fn a_kept_request_of_a_sampled_configuration_carries_its_own_headers_once() {
    // One after the other, in one process (the module's main thread is
    // one): above MAIN_WRITES_UP_TO the worker writes every record; at it
    // the main thread does, but for the requests whose maps are too large
    // to hand over (every seventh).
    const { assert!(0.5 > MAIN_WRITES_UP_TO) };
    kept_requests_carry_their_own_headers(0.5, 60);
    kept_requests_carry_their_own_headers(MAIN_WRITES_UP_TO, 400);
}

/// `requests` requests, kept at `rate` by the default sampling key
/// (x-request-id), which the record also captures.
fn kept_requests_carry_their_own_headers(rate: f64, requests: usize) {
    let envoy_config = 0x1000usize as *mut c_void;
    let json = format!(
        r#"{{"sink": {{"cluster": "audit_sink"}},
        "batch": {{"flush_interval_ms": 50}},
        "sampling": {{"default_rate": {rate}}},
        "capture": {{"request_headers": ["x-request-id", "user-agent"],
                    "response_headers": ["content-type"]}}}}"#
    );
    let (_ext, logger) = start_logger(envoy_config, json.as_bytes());
    // Not captured, but in the maps a kept request's facts carry.
    let padding = vec![b'p'; MAIN_WRITES_MAP_BYTES + 1];

    for i in 0..requests {
        let id = format!("req-{i}");
        // Every other request carries a user-agent: one left over from the
        // request before would show in the next record.
        let agent: &[(&[u8], &[u8])] = if i % 2 == 0 {
            &[(b"user-agent", b"client/1.0")]
        } else {
            &[]
        };
        let mut headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":path", b"/orders/1"),
            (b"x-request-id", id.as_bytes()),
        ];
        headers.extend_from_slice(agent);
        if i % 7 == 3 {
            headers.push((b"x-padding", &padding));
        }
        let request = FakeRequest::new(&headers, "spiffe://cluster.local/ns/shop/sa/frontend");
        unsafe {
            envoy_dynamic_module_on_access_logger_log(
                &request as *const _ as *mut c_void,
                logger,
                6,
            )
        };
    }
    // This rate's records: an earlier run's batch may be sent again.
    let mut records: Vec<serde_json::Value> = Vec::new();
    for _ in 0..20 {
        tick(envoy_config);
        records = with(|r| {
            r.callouts
                .iter()
                .flat_map(|(_, _, body)| {
                    String::from_utf8(body.clone())
                        .unwrap()
                        .lines()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .map(|l| serde_json::from_str::<serde_json::Value>(&l).unwrap())
                .filter(|l| l["kind"] == "request" && l["sample"]["rate"] == rate)
                .collect()
        });
        if !records.is_empty() {
            break;
        }
    }
    assert!(
        !records.is_empty(),
        "no batch at rate {rate} after twenty ticks"
    );
    // Exactly the requests the sampling function keeps, each once.
    let mut kept: Vec<String> = records
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    kept.sort();
    let mut expected: Vec<String> = (0..requests)
        .map(|i| format!("req-{i}"))
        .filter(|id| unit_interval(id.as_bytes()) < rate)
        .collect();
    expected.sort();
    assert!(
        expected.len() > 5,
        "{rate} of {requests} keeps too few: {expected:?}"
    );
    assert_eq!(kept, expected);
    // Both writers are seen: requests with large maps and without.
    let padded = |r: &serde_json::Value| {
        let id = r["request_id"].as_str().unwrap();
        id.strip_prefix("req-").unwrap().parse::<usize>().unwrap() % 7 == 3
    };
    assert!(records.iter().any(padded), "no padded request kept");
    assert!(!records.iter().all(padded), "only padded requests kept");
    for r in &records {
        let id = r["request_id"].as_str().unwrap();
        let i: usize = id.strip_prefix("req-").unwrap().parse().unwrap();
        let mut want = serde_json::json!({"x-request-id": id});
        if i % 2 == 0 {
            want["user-agent"] = "client/1.0".into();
        }
        assert_eq!(r["request"]["headers"], want, "{r:#}");
        assert_eq!(r["request"]["path"], "/orders/1", "{r:#}");
        assert_eq!(r["request"]["method"], "GET", "{r:#}");
        assert_eq!(r["response"]["code"], 200, "{r:#}");
        assert_eq!(
            r["response"]["headers"],
            serde_json::json!({"content-type": "text/plain"}),
            "{r:#}"
        );
        assert_eq!(r["sample"]["rate"], rate, "{r:#}");
    }
}
