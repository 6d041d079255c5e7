//! The native module at its ABI, without Envoy: this test binary plays
//! Envoy's part, defining the callbacks the module imports (recording what
//! the module asked for) and calling the module's event hooks as Envoy
//! does. A request goes in through the access-logger hooks and comes out as
//! an HTTP callout from the bootstrap extension; poisoned answers (absurd
//! counts, null pointers with lengths, bytes that are not UTF-8) must be
//! survived, and a panic inside a hook must stay inside the module.
//!
//! Run with `--features native` (as `make test` does).
#![cfg(feature = "native")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The fakes implement Envoy's C signatures, pointers and all.
#![allow(clippy::missing_safety_doc, clippy::not_unsafe_ptr_arg_deref)]

use mesh_audit::native::abi::EnvoyBuffer;
use mesh_audit::native::guard;
use std::ffi::{c_void, CStr};
use std::sync::Mutex;

#[path = "native_abi/fake_envoy.rs"]
mod fake_envoy;

use fake_envoy::{with, FakeRequest};

#[path = "native_abi/hooks.rs"]
mod hooks;

use hooks::*;

static SHUTDOWN_DONE: Mutex<usize> = Mutex::new(0);

/// Held while a test switches a variable in the process environment, which
/// the module reads as Envoy's.
static ENV: Mutex<()> = Mutex::new(());

unsafe extern "C" fn shutdown_done(context: *mut c_void) {
    assert_eq!(context as usize, 42, "the completion got another context");
    *SHUTDOWN_DONE.lock().unwrap() += 1;
}

fn request(headers: &[(&[u8], &[u8])]) -> FakeRequest {
    FakeRequest::new(headers, "spiffe://cluster.local/ns/shop/sa/frontend")
}

#[test]
fn requests_become_delivered_records_and_poisoned_answers_are_survived() {
    let envoy_config = 0x1000usize as *mut c_void;
    let version = unsafe { CStr::from_ptr(envoy_dynamic_module_on_program_init()) };
    assert_eq!(version.to_str().unwrap(), "v0.2.0");

    // Bootstrap first, as Envoy does: it must unblock Envoy's init at once
    // and define its metrics before the server freezes stat creation.
    let ext = start_bootstrap(envoy_config);
    assert!(!ext.is_null());
    with(|r| {
        assert_eq!(r.init_complete, 1);
        assert_eq!(r.timers, 1);
        assert!(
            r.counters
                .iter()
                .any(|c| c == "mesh_audit.records_delivered"),
            "{:?}",
            r.counters
        );
        // The three gauges of SPEC §2.6.
        assert_eq!(
            r.gauges,
            vec![
                "mesh_audit.records_buffered".to_string(),
                "mesh_audit.config_invalid".to_string(),
                "mesh_audit.degraded".to_string(),
            ]
        );
    });

    // SPEC §2.7: a bad configuration is refused with the documented line
    // in strict mode, and leaves the module inert otherwise; a null
    // pointer with a length is not read.
    let invalid = b"{\"sink\": {}}";
    let env = ENV.lock().unwrap_or_else(|p| p.into_inner());
    std::env::set_var("MESH_AUDIT_STRICT_CONFIG", "1");
    let bad = unsafe {
        envoy_dynamic_module_on_access_logger_config_new(
            std::ptr::null_mut(),
            buf(b""),
            buf(invalid),
        )
    };
    std::env::remove_var("MESH_AUDIT_STRICT_CONFIG");
    drop(env);
    assert!(bad.is_null());
    let inert = unsafe {
        envoy_dynamic_module_on_access_logger_config_new(
            std::ptr::null_mut(),
            buf(b""),
            buf(invalid),
        )
    };
    assert!(!inert.is_null());
    let lying = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 64,
    };
    assert!(unsafe {
        envoy_dynamic_module_on_access_logger_config_new(std::ptr::null_mut(), buf(b""), lying)
    }
    .is_null());
    with(|r| {
        assert!(
            r.logs
                .iter()
                .any(|l| l.starts_with("mesh-audit: invalid configuration: sink.cluster")),
            "{:?}",
            r.logs
        );
    });

    // Fail-closed on a full buffer is the HTTP filter's to answer: the
    // logger takes the configuration (the filter's test is below).
    let reject = br#"{"sink": {"cluster": "audit_sink"}, "on_overflow": "reject"}"#;
    let rejecting = unsafe {
        envoy_dynamic_module_on_access_logger_config_new(
            std::ptr::null_mut(),
            buf(b""),
            buf(reject),
        )
    };
    assert!(!rejecting.is_null());
    unsafe { envoy_dynamic_module_on_access_logger_config_destroy(rejecting) };

    // An inert logger lets a request pass and counts it, on the main thread.
    let inert_logger =
        unsafe { envoy_dynamic_module_on_access_logger_new(inert, std::ptr::null_mut()) };
    assert!(!inert_logger.is_null());
    let passing = request(&[(b":path", b"/orders/9"), (b"x-request-id", b"req-0")]);
    unsafe {
        envoy_dynamic_module_on_access_logger_log(
            &passing as *const _ as *mut c_void,
            inert_logger,
            6,
        )
    };
    tick(envoy_config);
    with(|r| {
        let unaudited = r
            .counters
            .iter()
            .position(|c| c == "mesh_audit.requests_unaudited")
            .unwrap();
        assert!(
            r.increments.contains(&(unaudited, 1)),
            "{:?} {:?}",
            r.counters,
            r.increments
        );
        // Said again by the inert auditor, at once.
        let said = r
            .logs
            .iter()
            .filter(|l| l.starts_with("mesh-audit: invalid configuration: sink.cluster"))
            .count();
        assert!(said >= 2, "{:?}", r.logs);
    });
    unsafe { envoy_dynamic_module_on_access_logger_destroy(inert_logger) };
    unsafe { envoy_dynamic_module_on_access_logger_config_destroy(inert) };

    let json = br#"{"sink": {"cluster": "audit_sink"}, "batch": {"flush_interval_ms": 100}, "capture": {"request_headers": ["user-agent", "x-api-key"]}}"#;
    let config = unsafe {
        envoy_dynamic_module_on_access_logger_config_new(std::ptr::null_mut(), buf(b""), buf(json))
    };
    assert!(!config.is_null());
    let logger = unsafe { envoy_dynamic_module_on_access_logger_new(config, std::ptr::null_mut()) };
    assert!(!logger.is_null());

    // 1: an ordinary request.
    let good = request(&[
        (b":method", b"GET"),
        (b":path", b"/orders/42?page=2"),
        (b":authority", b"backend"),
        (b"x-request-id", b"req-1"),
        (b"user-agent", b"curl/8"),
        (b"x-api-key", b"s3cret"),
    ]);
    // 2: a header count far beyond any real map: nothing is allocated for it.
    let mut absurd = request(&[(b"x-request-id", b"req-2")]);
    absurd.claimed_headers = Some(1 << 40);
    absurd.claimed_sans = Some(usize::MAX);
    absurd.connection = 8;
    // 3: values as null pointers with lengths, a name that is not UTF-8.
    let mut broken = request(&[
        (b":method", b"GET"),
        (b":path", b"/orders/3"),
        (b"x-request-id", b"req-3"),
        (b"user-agent\xff", b"x"),
    ]);
    broken.null_values = true;
    for r in [&good, &absurd, &broken] {
        unsafe {
            envoy_dynamic_module_on_access_logger_log(r as *const _ as *mut c_void, logger, 6)
        };
    }
    // Null pointers from Envoy are ignored, not dereferenced.
    unsafe { envoy_dynamic_module_on_access_logger_log(std::ptr::null_mut(), logger, 6) };
    unsafe {
        envoy_dynamic_module_on_access_logger_log(
            &good as *const _ as *mut c_void,
            std::ptr::null(),
            6,
        )
    };
    // A periodic log of a stream is not its end: no record.
    unsafe {
        envoy_dynamic_module_on_access_logger_log(&good as *const _ as *mut c_void, logger, 5)
    };

    // The first batch leaves one flush interval after the emitter starts.
    let mut first_callout = None;
    for _ in 0..10 {
        tick(envoy_config);
        first_callout = with(|r| r.callouts.first().cloned());
        if first_callout.is_some() {
            break;
        }
    }
    let (cluster, headers, body) = first_callout.expect("no callout after ten ticks");
    assert_eq!(cluster, "audit_sink");
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header(":method"), Some("POST"));
    assert_eq!(header(":path"), Some("/v1/audit"));
    // Three requests and the seal that ends their batch.
    assert_eq!(header("x-mesh-audit-seq"), Some("1-4"));
    let lines: Vec<serde_json::Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(lines[3]["kind"], "seal", "{lines:#?}");
    assert_eq!(lines[3]["from_seq"], 1);
    assert_eq!(lines[3]["to_seq"], 3);
    let first = &lines[0];
    assert_eq!(first["request_id"], "req-1");
    assert_eq!(
        first["source"]["principal"],
        "spiffe://cluster.local/ns/shop/sa/frontend"
    );
    assert_eq!(first["source"]["address"], "10.0.0.7:51234");
    assert_eq!(first["destination"]["address"], "[::1]:8443");
    assert_eq!(first["request"]["headers"]["x-api-key"], "[REDACTED]");
    assert_eq!(first["route"]["name"], "orders");
    assert_eq!(first["duration_ms"], 1.5);
    // The absurd request: no headers read, so the stream info's id.
    assert_eq!(lines[1]["request_id"], "req-from-stream-info");
    assert!(
        lines[1]["source"].get("principal").is_none(),
        "{:#}",
        lines[1]
    );
    assert_eq!(lines[1]["request"]["headers"], serde_json::json!({}));
    // The broken request: only what is well-formed (the null values and the
    // name that is not UTF-8 are dropped, the path and method kept).
    assert_eq!(lines[2]["request"]["path"], "/orders/3");
    assert_eq!(lines[2]["request"]["method"], "GET");
    assert_eq!(lines[2]["request_id"], "req-from-stream-info");
    assert_eq!(lines[2]["request"]["headers"], serde_json::json!({}));

    // The sink's 2xx settles the batch; the next tick publishes it.
    acknowledge(envoy_config, ext, 101);
    tick(envoy_config);
    with(|r| {
        let delivered = r
            .counters
            .iter()
            .position(|c| c == "mesh_audit.records_delivered")
            .unwrap();
        let total: u64 = r
            .increments
            .iter()
            .filter(|(id, _)| *id == delivered)
            .map(|(_, v)| v)
            .sum();
        // The three requests and their seal.
        assert_eq!(total, 4, "{:?}", r.increments);
    });

    // At shutdown the emitter ends with a close record and its seal; the
    // shutdown completes, with Envoy's context, once the sink acknowledged them.
    unsafe {
        envoy_dynamic_module_on_bootstrap_extension_shutdown(
            std::ptr::null_mut(),
            ext,
            Some(shutdown_done),
            42usize as *mut c_void,
        )
    };
    assert_eq!(
        *SHUTDOWN_DONE.lock().unwrap(),
        0,
        "not before the close is acknowledged"
    );
    let closing = with(|r| r.callouts.get(1).cloned());
    let (_, _, body) = closing.expect("no callout with the close record at shutdown");
    let kinds: Vec<String> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(kinds, ["\"close\"", "\"seal\""]);
    acknowledge(envoy_config, ext, 102);
    tick(envoy_config);
    assert_eq!(*SHUTDOWN_DONE.lock().unwrap(), 1);
    unsafe { envoy_dynamic_module_on_access_logger_destroy(logger) };
    unsafe { envoy_dynamic_module_on_access_logger_config_destroy(config) };
}

#[test]
fn a_panic_inside_a_hook_is_caught_logged_and_answered_with_the_fallback() {
    let answer = guard("access_logger_log", 7, || -> i32 {
        panic!("poisoned input")
    });
    assert_eq!(answer, 7);
    with(|r| {
        assert!(
            r.logs
                .iter()
                .any(|l| l == "mesh-audit: panic in access_logger_log; the hook was abandoned"),
            "{:?}",
            r.logs
        );
    });
}

#[test]
fn the_http_filter_answers_503_only_for_an_invalid_configuration_with_fail_closed() {
    let _env = ENV.lock().unwrap_or_else(|p| p.into_inner());
    let stream = 0x2000usize as *mut c_void;
    let headers = |config: &[u8]| -> u32 {
        let c = unsafe {
            envoy_dynamic_module_on_http_filter_config_new(stream, buf(b"mesh-audit"), buf(config))
        };
        assert!(!c.is_null());
        let f = unsafe { envoy_dynamic_module_on_http_filter_new(c, stream) };
        let status =
            unsafe { envoy_dynamic_module_on_http_filter_request_headers(stream, f, true) };
        // A null stream from Envoy is not used.
        let ignored = unsafe {
            envoy_dynamic_module_on_http_filter_request_headers(std::ptr::null_mut(), f, true)
        };
        assert_eq!(ignored, 0);
        unsafe { envoy_dynamic_module_on_http_filter_destroy(f) };
        unsafe { envoy_dynamic_module_on_http_filter_config_destroy(c) };
        status
    };
    let valid = br#"{"sink": {"cluster": "audit_sink"}}"#;
    let invalid = br#"{"sink": {"cluster": ""}}"#;
    // Without MESH_AUDIT_FAIL_CLOSED every request goes on, valid or not.
    assert_eq!(headers(valid), 0);
    assert_eq!(headers(invalid), 0);
    assert!(with(|r| r.replies.is_empty()));
    std::env::set_var("MESH_AUDIT_FAIL_CLOSED", "1");
    let valid_status = headers(valid);
    let invalid_status = headers(invalid);
    std::env::remove_var("MESH_AUDIT_FAIL_CLOSED");
    assert_eq!(valid_status, 0);
    // Stopped, and answered as the wasm filter answers.
    assert_eq!(invalid_status, 1);
    with(|r| {
        assert_eq!(
            r.replies,
            vec![(
                503,
                vec![("content-type".to_string(), "text/plain".to_string())],
                "audit unavailable".to_string(),
                "mesh_audit_unavailable".to_string()
            )]
        );
        let rejected: Vec<usize> = r
            .filter_counters
            .iter()
            .enumerate()
            .filter(|(_, c)| *c == "mesh_audit.requests_rejected")
            .map(|(i, _)| i)
            .collect();
        assert_eq!(rejected.len(), 4, "{:?}", r.filter_counters);
        let counted: u64 = r
            .filter_increments
            .iter()
            .filter(|(id, _)| rejected.contains(id))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(counted, 1, "{:?}", r.filter_increments);
    });
}
