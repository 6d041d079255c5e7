//! What an audited request costs with a realistic capture: host calls
//! counted by the emulated proxy, and (under callgrind) instructions.
//!
//! Instructions per request:
//! ```text
//! MESH_AUDIT_COST_REQUESTS=100 valgrind --tool=callgrind \
//!   --callgrind-out-file=cg.out --toggle-collect='*audited_requests*' \
//!   target/debug/deps/redaction-<hash> cost::cost --exact
//! callgrind_annotate --auto=no --threshold=100 cg.out
//! ```
//! The total `Ir` divided by the number of requests includes the emulated
//! proxy; the lines whose object is `???` are the compiled `.wasm` itself
//! (the JIT code has no symbols). Both are what the README reports.

use crate::host::fixtures::{configured, orders_request};
use crate::host::{Host, Request};

/// Headers a production capture commonly takes, some of them URL-valued.
const CONFIG: &str = r#"{"sink":{"cluster":"audit_sink"},
  "batch":{"max_records":100000,"max_buffered_records":100000,"flush_interval_ms":3600000},
  "capture":{"request_headers":["user-agent","authorization","cookie","referer","x-forwarded-for","accept","content-type","x-request-id"],
             "response_headers":["content-type","location","set-cookie"],"query":true}}"#;

fn realistic_request() -> Request {
    orders_request(42)
        .header("cookie", "session=3f1c9a77e0b24d6c; theme=dark")
        .header(
            "referer",
            "https://shop.example/cart?step=2&token=abc123def456",
        )
        .header("x-forwarded-for", "203.0.113.7")
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .response_header("location", "https://shop.example/orders/42")
        .response_header("set-cookie", "session=9d2e; HttpOnly; Secure")
}

#[inline(never)]
fn audited_requests(h: &mut Host, requests: &[Request]) -> u64 {
    let mut calls = 0;
    for r in requests {
        calls += h.run(r.clone()).host_calls;
    }
    calls
}

#[test]
fn cost() {
    let n: usize = std::env::var("MESH_AUDIT_COST_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut h = configured(CONFIG);
    // The first request on the connection reads its identity; not measured.
    h.run(realistic_request());
    let requests = vec![realistic_request(); n];
    let calls = audited_requests(&mut h, &requests);
    let per_request = calls / n as u64;
    println!("host calls per audited kept-alive request: {per_request} ({n} requests)");
    assert!(per_request <= 12, "{per_request} host calls per request");
}

/// A request the sampler lets go (`default_rate` 0, no rules): what 99 % of
/// requests cost at 1 % sampling.
#[test]
fn sampled_out_cost() {
    let n: usize = std::env::var("MESH_AUDIT_COST_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut h = configured(r#"{"sink":{"cluster":"audit_sink"},"sampling":{"default_rate":0.0}}"#);
    h.run(realistic_request());
    let requests = vec![realistic_request(); n];
    let calls = audited_requests(&mut h, &requests);
    let per_request = calls / n as u64;
    println!("host calls per sampled-out request: {per_request} ({n} requests)");
    assert!(per_request <= 2, "{per_request} host calls per request");
}
