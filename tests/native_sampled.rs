//! A configuration that may sample requests out, on the native module
//! without Envoy: sampling reads only the sampling key (one header lookup)
//! and the response code, and a request it keeps then has both header maps
//! read whole. The kept records must carry exactly what the request sent:
//! the maps are refilled for the record, never added to what sampling
//! read, and reused request after request without carrying anything over.
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

const REQUESTS: usize = 60;

#[test]
fn a_kept_request_of_a_sampled_configuration_carries_its_own_headers_once() {
    let envoy_config = 0x1000usize as *mut c_void;
    // Half the requests, by the default sampling key (x-request-id), which
    // the record also captures.
    let json = br#"{"sink": {"cluster": "audit_sink"},
        "batch": {"flush_interval_ms": 50},
        "sampling": {"default_rate": 0.5},
        "capture": {"request_headers": ["x-request-id", "user-agent"],
                    "response_headers": ["content-type"]}}"#;
    let (_ext, logger) = start_logger(envoy_config, json);

    for i in 0..REQUESTS {
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
        let request = FakeRequest::new(&headers, "spiffe://cluster.local/ns/shop/sa/frontend");
        unsafe {
            envoy_dynamic_module_on_access_logger_log(
                &request as *const _ as *mut c_void,
                logger,
                6,
            )
        };
    }
    let mut body = None;
    for _ in 0..20 {
        tick(envoy_config);
        body = with(|r| r.callouts.first().map(|(_, _, b)| b.clone()));
        if body.is_some() {
            break;
        }
    }
    let body = body.expect("no batch after twenty ticks");
    let records: Vec<serde_json::Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["kind"] == "request")
        .collect();
    // Exactly the requests the sampling function keeps, each once.
    let mut kept: Vec<String> = records
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    kept.sort();
    let mut expected: Vec<String> = (0..REQUESTS)
        .map(|i| format!("req-{i}"))
        .filter(|id| unit_interval(id.as_bytes()) < 0.5)
        .collect();
    expected.sort();
    assert!(
        expected.len() > 5 && expected.len() < REQUESTS - 5,
        "half of {REQUESTS} expected, {expected:?}"
    );
    assert_eq!(kept, expected);
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
        assert_eq!(r["sample"]["rate"], 0.5, "{r:#}");
    }
}
