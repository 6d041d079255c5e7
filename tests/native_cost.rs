//! What an audited request costs the native module, without Envoy: the
//! bench's request (`bench/run.sh`) and configuration
//! (`bench/config/audit-full.json`) through the access-logger hook on a
//! worker and the extension's timer on the main thread, up to the batch's
//! callout. The test checks the batch holds every record, chained; under
//! callgrind, built as Envoy loads the module, it counts instructions:
//!
//! ```text
//! cargo test --profile native --features native --test native_cost --no-run
//! MESH_AUDIT_COST_REQUESTS=2000 valgrind --tool=callgrind \
//!   --callgrind-out-file=cg.out --toggle-collect='*audited_requests*' \
//!   target/native/deps/native_cost-<hash> --exact cost
//! callgrind_annotate --auto=no --threshold=100 cg.out
//! ```
//! The total `Ir` divided by the number of requests is the module's
//! instructions per request, the fake getters included (a few dozen each).
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

/// The bench's request, as the load generator sends it and Envoy adds to it.
fn bench_request() -> FakeRequest {
    let headers: [(&[u8], &[u8]); 9] = [
        (b":authority", b"backend.default.svc"),
        (b":path", b"/orders/42?page=2&token=abc"),
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b"user-agent", b"bench-client/1.0"),
        (b"x-forwarded-for", b"10.1.2.3"),
        (b"authorization", b"Bearer bench-token"),
        (b"x-forwarded-proto", b"https"),
        (b"x-request-id", b"5f0c8a1e-2b7d-4e3a-9c61-0d2f4b8e7a93"),
    ];
    FakeRequest::new(&headers, "spiffe://cluster.local/ns/default/sa/frontend")
}

/// Every request through the worker's hook, then the main thread's timer
/// until the batch is called out: what the module spends per request.
#[inline(never)]
fn audited_requests(
    envoy_config: *mut c_void,
    logger: *const c_void,
    request: &FakeRequest,
    n: usize,
) -> usize {
    let ctx = request as *const FakeRequest as *mut c_void;
    for _ in 0..n {
        // 6: the end of the stream, as Envoy logs a finished request.
        unsafe { envoy_dynamic_module_on_access_logger_log(ctx, logger, 6) };
    }
    for _ in 0..20 {
        // Past the flush interval: the timer takes the hand-offs and flushes.
        tick(envoy_config);
        let called = with(|r| r.callouts.len());
        if called > 0 {
            return called;
        }
    }
    0
}

#[test]
fn cost() {
    let n: usize = std::env::var("MESH_AUDIT_COST_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // Envoy's context for the extension's configuration: an opaque pointer.
    let envoy_config = 0x1000usize as *mut c_void;
    unsafe { envoy_dynamic_module_on_program_init() };
    let ext = start_bootstrap(envoy_config);
    assert!(!ext.is_null());
    // The bench's configuration, with one batch for every request measured
    // and its seal.
    let mut config: serde_json::Value =
        serde_json::from_str(include_str!("../bench/config/audit-full.json")).unwrap();
    config["batch"] = serde_json::json!({
        "max_records": n + 1, "max_buffered_records": n + 1, "flush_interval_ms": 50,
        "max_bytes": 4096 * (n + 1), "max_buffered_bytes": 4096 * (n + 1)
    });
    let json = config.to_string();
    let logger_config = unsafe {
        envoy_dynamic_module_on_access_logger_config_new(
            std::ptr::null_mut(),
            buf(b""),
            buf(json.as_bytes()),
        )
    };
    assert!(!logger_config.is_null());
    let logger =
        unsafe { envoy_dynamic_module_on_access_logger_new(logger_config, std::ptr::null_mut()) };
    assert!(!logger.is_null());
    let request = bench_request();
    // The first request on the connection reads its identity; not measured.
    assert_eq!(audited_requests(envoy_config, logger, &request, 1), 1);
    // The sink acknowledges that batch (callout 101), so the next one leaves.
    acknowledge(envoy_config, ext, 101);

    assert_eq!(
        audited_requests(envoy_config, logger, &request, n),
        2,
        "no second batch"
    );
    let (_, headers, body) = with(|r| r.callouts[1].clone());
    let seq = headers
        .iter()
        .find(|(k, _)| k == "x-mesh-audit-seq")
        .map(|(_, v)| v.clone());
    // The first batch was the warm-up request and its seal (1-2).
    assert_eq!(seq, Some(format!("3-{}", n + 3)));
    let lines: Vec<serde_json::Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n + 1, "every request and the batch's seal");
    for (i, l) in lines[..n].iter().enumerate() {
        assert_eq!(l["seq"], (i + 3) as u64, "{l:#}");
        assert!(l["prev"].as_str().is_some_and(|p| p.len() == 64), "{l:#}");
        assert_eq!(
            l["request"]["headers"]["authorization"],
            "Bearer [REDACTED]"
        );
        assert_eq!(
            l["source"]["principal"],
            "spiffe://cluster.local/ns/default/sa/frontend"
        );
    }
    assert_eq!(lines[n]["kind"], "seal");
    assert_eq!(lines[n]["to_seq"], (n + 2) as u64);
}
