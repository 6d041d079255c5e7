//! What a record is made of, on both guests: decisions and flags from the
//! response, JWT claims from verified metadata, which requests are always
//! kept, and how few properties a request costs to read.

use crate::host::fixtures::{configured_on, orders_request, records};
use crate::host::{each_guest, typical_request, u64_le, Host};
use serde_json::json;

const MINIMAL: &str = r#"{"sink":{"cluster":"s"}}"#;

#[test]
fn two_response_flags_decode_in_order_and_an_rbac_403_is_a_denial() {
    each_guest(|guest| {
        let mut h = configured_on(guest, MINIMAL);
        let reset = orders_request(1)
            .status("503")
            .props(typical_request().set("response.flags", u64_le(0x20 | 0x2)))
            .property(
                "response.code_details",
                "upstream_reset_before_response_started{connection_failure}",
            );
        h.run(reset);
        let rbac = orders_request(1).status("403").property(
            "response.code_details",
            "rbac_access_denied_matched_policy[none]",
        );
        h.run(rbac);
        h.advance_and_tick(1_000);
        let recs = records(&h.dispatched()[0]);
        assert_eq!(recs[0]["response"]["flags"], json!(["UH", "UF"]));
        assert_eq!(recs[0]["decision"], "error");
        assert_eq!(recs[1]["decision"], "denied");
        assert_eq!(recs[1]["seq"], 2);
    });
}

#[test]
fn an_authz_local_reply_with_another_status_is_always_kept() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"s"},"sampling":{"default_rate":0.0}}"#,
        );
        let ext = orders_request(1)
            .set_header("x-request-id", "ext")
            .status("429")
            .property("response.code_details", "ext_authz_denied");
        h.run(ext);
        let not_found = orders_request(1)
            .set_header("x-request-id", "nf")
            .status("404")
            .property("response.code_details", "route_not_found");
        h.run(not_found);
        h.advance_and_tick(1_000);
        let recs = records(&h.dispatched()[0]);
        assert_eq!(recs.len(), 2, "the kept record and its seal");
        assert_eq!(recs[1]["kind"], "seal");
        assert_eq!(recs[0]["request_id"], "ext");
        assert_eq!(recs[0]["decision"], "denied");
        assert_eq!(h.metric("mesh_audit.records_sampled_out"), 1);
    });
}

#[test]
fn sampled_out_requests_are_counted_and_cheap() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"s"},"sampling":{"default_rate":0.0}}"#,
        );
        let dropped = h.run(orders_request(1));
        assert_eq!(
            h.property_reads(dropped.context),
            Vec::<String>::new(),
            "the header maps decide it"
        );
        h.run(orders_request(1).status("403"));
        h.tick();
        assert_eq!(h.metric("mesh_audit.records_sampled_out"), 1);
        assert_eq!(
            h.metric("mesh_audit.records_admitted"),
            1,
            "denied requests are always kept"
        );
    });
}

#[test]
fn connection_facts_are_read_once_per_connection() {
    each_guest(|guest| {
        let mut h = configured_on(
            guest,
            r#"{"sink":{"cluster":"s"},"capture":{"request_headers":["user-agent"]}}"#,
        );
        h.run(orders_request(9));
        let second = h.run(orders_request(9));
        let reads = h.property_reads(second.context);
        // connection.id, request.time, request.duration, response.size,
        // response.code_details, response.flags and three route names; the two
        // header maps are separate calls. request.size is not read: the request
        // headers ended the stream, so no body bytes were received.
        assert_eq!(
            reads.len(),
            9,
            "property reads for a request on a known connection: {reads:?}"
        );
    });
}

#[test]
fn request_size_is_read_only_when_the_headers_cannot_tell_it() {
    each_guest(|guest| {
        let mut h = configured_on(guest, r#"{"sink":{"cluster":"s"}}"#);
        let size_read = |h: &Host, ctx| h.property_reads(ctx).iter().any(|p| p == "request.size");
        // Headers that end the stream: no body, 0 bytes, nothing read.
        let bodiless = h.run(orders_request(5).property("request.size", u64_le(0)));
        assert!(!size_read(&h, bodiless.context));
        // A declared length is what Envoy reports too.
        let declared = h.run(
            orders_request(5)
                .header("content-length", "11")
                .body("hello world")
                .property("request.size", u64_le(11)),
        );
        assert!(!size_read(&h, declared.context));
        // A body without a length (chunked): only the proxy knows.
        let chunked = h.run(
            orders_request(5)
                .body("hello world")
                .property("request.size", u64_le(11)),
        );
        assert!(size_read(&h, chunked.context));
        h.advance_and_tick(1_000);
        let r = records(&h.dispatched()[0]);
        let bytes: Vec<_> = r[..3]
            .iter()
            .map(|r| r["request"]["bytes"].clone())
            .collect();
        assert_eq!(bytes, [json!(0), json!(11), json!(11)]);
    });
}

/// Envoy 1.40's pairs layout of a verified JWT payload: sub, email, exp (a double).
fn jwt_payload() -> Vec<u8> {
    let mut p = 3u32.to_le_bytes().to_vec();
    for (k, v) in [(3u32, 5u32), (5, 17), (3, 8)] {
        p.extend_from_slice(&k.to_le_bytes());
        p.extend_from_slice(&v.to_le_bytes());
    }
    for (k, v) in [
        (&b"sub"[..], &b"alice"[..]),
        (b"email", b"alice@example.com"),
        (b"exp", &4_102_444_800f64.to_le_bytes()),
    ] {
        p.extend_from_slice(k);
        p.push(0);
        p.extend_from_slice(v);
        p.push(0);
    }
    p
}

#[test]
fn jwt_claims_come_from_verified_metadata_and_fall_back_claim_by_claim() {
    let config = r#"{"sink":{"cluster":"s"},"capture":{"jwt":{"claims":["sub","email","exp"]}},
                     "redact":{"claims":{"email":"hash"},"hash_key_env":"HK"}}"#;
    let payload = [
        "metadata",
        "filter_metadata",
        "envoy.filters.http.jwt_authn",
        "payload",
    ];
    each_guest(|guest| {
        let mut h = Host::on(guest);
        h.env("HK", "k");
        assert!(h.configure(config), "{}", h.log_dump());
        h.run(orders_request(1).property_at(&payload, jwt_payload()));
        // The payload as a whole cannot be serialised: claim by claim.
        h.unserializable(&payload);
        let [a, b, ns, key] = payload;
        h.run(orders_request(1).property_at(&[a, b, ns, key, "sub"], "bob"));
        h.advance_and_tick(1_000);
        let recs = records(&h.dispatched()[0]);
        assert_eq!(recs[0]["user"]["sub"], "alice");
        assert_eq!(recs[0]["user"]["exp"], 4_102_444_800i64);
        let email = recs[0]["user"]["email"].as_str().unwrap();
        assert!(
            email.starts_with("hmac-sha256:") && email.len() == 12 + 32,
            "{email}"
        );
        assert!(recs[0]["redacted"]
            .as_array()
            .unwrap()
            .contains(&json!("user.email")));
        assert_eq!(recs[1]["user"], json!({"sub": "bob"}));
    });
}
