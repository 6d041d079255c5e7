//! The filter in the real, pinned Envoy: what each kind of request turns into
//! once it reaches the audit sink. Each scenario runs on both builds (the
//! `.wasm` and the native module), each test with its own Envoy.

// Test code: helpers fail the test by panicking.
#![allow(clippy::panic, clippy::unwrap_used)]

mod e2e;

use e2e::client::SERVER_NAME;
use e2e::{cert_sha256, is_lower_hex, pki, record_of, Envoy, Sink, Workload};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const BACKEND: &str = "spiffe://cluster.local/ns/default/sa/backend";

fn config() -> Value {
    json!({"sink": {"cluster": "audit_sink"}, "batch": {"flush_interval_ms": 100}})
}

crate::on_both_builds! {
fn records_name_each_workloads_spiffe_identity_and_tls_facts(build: Build) {
    let sink = Sink::start();
    let envoy = Envoy::start_build(build, &config(), &sink);
    let cases = [
        (
            Workload::Frontend,
            "/orders/42",
            "frontend",
            "shop",
            "frontend",
            "O=acme,CN=frontend",
        ),
        (
            Workload::Reporter,
            "/orders/7",
            "reporter",
            "batch",
            "reporter",
            "CN=reporter",
        ),
    ];
    let replies: Vec<_> = cases.iter().map(|c| envoy.mtls(c.0, c.1)).collect();
    let records = sink.wait_for_records(cases.len(), WAIT);

    for ((who, path, cert, namespace, account, subject), reply) in cases.iter().zip(&replies) {
        assert_eq!(reply.status, 200, "{reply:#?}");
        let upstream_saw = reply.header("x-upstream-request-id").unwrap();
        assert_eq!(
            upstream_saw,
            reply.request_id(),
            "Envoy forwarded another request id"
        );
        let rec = record_of(&records, upstream_saw);
        let logged = envoy.access_log_entry(upstream_saw);

        assert_eq!(rec.str("/kind"), Some("request"));
        assert_eq!(rec.str("/source/principal"), Some(who.principal()));
        assert_eq!(rec.str("/source/trust_domain"), Some("cluster.local"));
        assert_eq!(rec.str("/source/namespace"), Some(*namespace));
        assert_eq!(rec.str("/source/service_account"), Some(*account));
        assert_eq!(rec.str("/source/subject"), Some(*subject));
        let digest = rec.str("/source/cert_sha256").unwrap_or_default();
        assert!(is_lower_hex(digest, 64), "cert_sha256 {digest:?}");
        assert_eq!(digest, cert_sha256(cert));
        assert_eq!(rec.str("/source/address"), logged["source"].as_str());
        assert_eq!(
            rec.str("/destination/address"),
            logged["destination"].as_str()
        );
        assert_eq!(rec.str("/destination/principal"), Some(BACKEND));

        assert_eq!(rec.json["tls"]["mtls"], json!(true));
        assert!(
            reply.tls_version.is_some(),
            "curl did not report its TLS version"
        );
        assert_eq!(rec.str("/tls/version"), reply.tls_version.as_deref());
        assert_eq!(rec.str("/tls/sni"), Some(SERVER_NAME));

        assert_eq!(rec.str("/request/method"), Some("GET"));
        assert_eq!(rec.str("/request/scheme"), Some("https"));
        assert_eq!(
            rec.str("/request/authority"),
            Some(format!("{SERVER_NAME}:{}", envoy.mtls_port).as_str())
        );
        assert_eq!(rec.str("/request/path"), Some(*path));
        assert_eq!(rec.str("/request/protocol"), Some("HTTP/1.1"));
        assert_eq!(rec.u64("/response/code"), Some(200));
        assert_eq!(rec.str("/response/code_details"), Some("via_upstream"));
        assert_eq!(rec.u64("/response/bytes"), Some(reply.body.len() as u64));
        assert!(rec.flags().is_empty(), "flags {:?}", rec.flags());
        assert_eq!(rec.str("/route/name"), Some("orders"));
        assert_eq!(rec.str("/route/cluster"), Some("backend"));
        assert_eq!(rec.str("/route/virtual_host"), Some("backend"));
        assert_eq!(rec.str("/decision"), Some("allowed"));
        assert!(
            rec.json["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
            "{}",
            rec.line
        );
        assert!(
            rec.str("/ts").is_some_and(|t| t.ends_with('Z')),
            "{}",
            rec.line
        );
        assert_eq!(rec.str("/plugin/version"), Some(env!("CARGO_PKG_VERSION")));
    }
}

fn rbac_denial_of_the_reporter_on_admin_is_recorded_as_denied(build: Build) {
    let sink = Sink::start();
    let envoy = Envoy::start_build(build, &config(), &sink);
    let denied = envoy.mtls(Workload::Reporter, "/admin/reports");
    let allowed = envoy.mtls(Workload::Frontend, "/admin/reports");
    assert_eq!(denied.status, 403, "{denied:#?}");
    assert_eq!(allowed.status, 200, "{allowed:#?}");
    let records = sink.wait_for_records(2, WAIT);

    let rec = record_of(&records, denied.request_id());
    assert_eq!(rec.str("/decision"), Some("denied"));
    assert_eq!(rec.u64("/response/code"), Some(403));
    let details = rec.str("/response/code_details").unwrap_or_default();
    assert!(
        details.starts_with("rbac_access_denied"),
        "code_details {details:?}"
    );
    assert_eq!(
        rec.str("/source/principal"),
        Some(Workload::Reporter.principal())
    );
    assert_eq!(rec.str("/route/name"), Some("admin"));

    let rec = record_of(&records, allowed.request_id());
    assert_eq!(rec.str("/decision"), Some("allowed"));
    assert_eq!(rec.u64("/response/code"), Some(200));
}

fn unknown_path_is_recorded_with_the_no_route_flag(build: Build) {
    let sink = Sink::start();
    let envoy = Envoy::start_build(build, &config(), &sink);
    let reply = envoy.mtls(Workload::Frontend, "/nowhere");
    assert_eq!(reply.status, 404, "{reply:#?}");
    let records = sink.wait_for_records(1, WAIT);

    let rec = record_of(&records, reply.request_id());
    assert_eq!(rec.u64("/response/code"), Some(404));
    assert_eq!(rec.str("/response/code_details"), Some("route_not_found"));
    assert!(
        rec.flags().contains(&"NR".to_string()),
        "flags {:?}",
        rec.flags()
    );
    assert_eq!(
        rec.json.pointer("/route/name"),
        None,
        "no route was matched: {}",
        rec.line
    );
    assert_eq!(rec.str("/route/virtual_host"), Some("backend"));
}

fn refused_upstream_connection_is_recorded_as_an_error(build: Build) {
    let sink = Sink::start();
    let envoy = Envoy::start_build(build, &config(), &sink);
    let reply = envoy.mtls(Workload::Frontend, "/missing-upstream");
    assert_eq!(reply.status, 503, "{reply:#?}");
    let records = sink.wait_for_records(1, WAIT);

    let rec = record_of(&records, reply.request_id());
    assert_eq!(rec.u64("/response/code"), Some(503));
    let flags = rec.flags();
    assert!(
        flags.iter().any(|f| f == "UF" || f == "UH"),
        "flags {flags:?}"
    );
    assert_eq!(rec.str("/decision"), Some("error"));
    assert_eq!(rec.str("/route/name"), Some("missing-upstream"));
    assert_eq!(rec.str("/route/cluster"), Some("missing_upstream"));
}

fn plaintext_requests_are_recorded_without_mtls_or_principal(build: Build) {
    let sink = Sink::start();
    let envoy = Envoy::start_build(build, &config(), &sink);
    let reply = envoy.plain("/orders/1");
    assert_eq!(reply.status, 200, "{reply:#?}");
    let records = sink.wait_for_records(1, WAIT);

    let rec = record_of(&records, reply.request_id());
    assert_eq!(rec.json["tls"]["mtls"], json!(false), "{}", rec.line);
    assert_eq!(rec.json.pointer("/tls/version"), None, "{}", rec.line);
    assert_eq!(rec.json.pointer("/source/principal"), None, "{}", rec.line);
    assert_eq!(
        rec.json.pointer("/source/cert_sha256"),
        None,
        "{}",
        rec.line
    );
    assert_eq!(
        rec.str("/source/address"),
        envoy.access_log_entry(reply.request_id())["source"].as_str()
    );
    assert_eq!(rec.str("/request/scheme"), Some("http"));
    assert_eq!(rec.str("/decision"), Some("allowed"));
}

fn clients_outside_the_mesh_ca_are_refused_and_never_recorded(build: Build) {
    let sink = Sink::start();
    let envoy = Envoy::start_build(build, &config(), &sink);
    for who in [Workload::Rogue, Workload::Anonymous] {
        let reply = envoy.mtls(who, "/orders/1");
        assert_ne!(reply.exit_code, 0, "{who:?} got through: {reply:#?}");
        assert_eq!(reply.status, 0, "{who:?} got an HTTP answer: {reply:#?}");
    }
    let admitted = envoy.mtls(Workload::Frontend, "/orders/1");
    assert_eq!(admitted.status, 200, "{admitted:#?}");
    let records = sink.wait_for_records(1, WAIT);
    // Give a stray record from the refused handshakes time to show up.
    std::thread::sleep(Duration::from_millis(300));
    let records_now = sink.audit_records();
    assert_eq!(records_now.len(), 1, "{records_now:#?}");
    assert_eq!(records[0].str("/request_id"), Some(admitted.request_id()));
}

fn end_user_comes_from_the_verified_jwt_and_secrets_are_redacted(build: Build) {
    use hmac::Mac;
    let sink = Sink::start();
    let plugin = json!({
        "sink": {"cluster": "audit_sink"},
        "batch": {"flush_interval_ms": 100},
        "capture": {"request_headers": ["user-agent", "authorization"], "query": true,
                    "jwt": {"claims": ["sub", "iss", "email"]}},
        "redact": {"claims": {"email": "hash"}, "hash_key_env": "MESH_AUDIT_HASH_KEY"}
    });
    let envoy = Envoy::start_build(build, &plugin, &sink);
    let token = std::fs::read_to_string(pki().join("alice.jwt")).unwrap();
    let bearer = format!("Bearer {}", token.trim());
    let reply = envoy.mtls_with(
        Workload::Frontend,
        "/orders/42?token=s3cret&page=2",
        &[("authorization", &bearer)],
    );
    assert_eq!(reply.status, 200, "{reply:#?}");
    let records = sink.wait_for_records(1, WAIT);

    let rec = record_of(&records, reply.request_id());
    assert_eq!(rec.str("/user/sub"), Some("alice"));
    assert_eq!(rec.str("/user/iss"), Some("https://idp.example"));
    // The key is the one envoy/e2e.yaml gives the VM.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"e2e-hash-key").unwrap();
    mac.update(b"alice@example.com");
    let expected = format!(
        "hmac-sha256:{}",
        e2e::hex(&mac.finalize().into_bytes()[..16])
    );
    assert_eq!(rec.str("/user/email"), Some(expected.as_str()));
    assert_eq!(
        rec.str("/request/headers/authorization"),
        Some("Bearer [REDACTED]")
    );
    assert!(
        rec.str("/request/headers/user-agent")
            .is_some_and(|ua| ua.starts_with("curl/")),
        "{}",
        rec.line
    );
    assert_eq!(rec.str("/request/path"), Some("/orders/42"));
    assert_eq!(rec.str("/request/query"), Some("token=[REDACTED]&page=2"));
    assert!(
        !rec.line.contains("s3cret") && !rec.line.contains(token.trim()),
        "{}",
        rec.line
    );
    let redacted = rec.json["redacted"].as_array().cloned().unwrap_or_default();
    for field in ["request.headers.authorization", "request.query.token"] {
        assert!(
            redacted.contains(&json!(field)),
            "{field} not in redacted {redacted:?}"
        );
    }
}
}
