//! Every credential carrier of the penetration test, and more: one request
//! per carrier through the compiled filter's record builder, each with its
//! own planted secret. None may reach the batch, each must be listed in
//! `redacted`, and ordinary headers and parameters stay readable.

use crate::host::fixtures::configured_on;
use crate::host::{each_guest, mtls_connection, typical_request, Host, Request};
use serde_json::Value;

/// Where a secret is planted; `{}` in the template is the secret.
#[derive(Clone, Copy, Debug)]
pub enum Place {
    /// A request header.
    Header(&'static str, &'static str),
    /// A response header.
    Response(&'static str, &'static str),
    /// The `:path`, query and fragment included.
    Path(&'static str),
}

/// One carrier: where the secret goes and the `redacted` entry it must produce.
pub type Carrier = (Place, &'static str);

use Place::{Header, Path, Response};

pub const CARRIERS: &[Carrier] = &[
    // Credential headers: the v1 names, and names only a pattern catches.
    (
        Header("authorization", "Bearer {}"),
        "request.headers.authorization",
    ),
    (
        Header("proxy-authorization", "Basic {}"),
        "request.headers.proxy-authorization",
    ),
    (
        Header("cookie", "sid={}; theme=dark"),
        "request.headers.cookie",
    ),
    (Header("x-api-key", "{}"), "request.headers.x-api-key"),
    (Header("x-auth-token", "{}"), "request.headers.x-auth-token"),
    (
        Header("x-access-token", "{}"),
        "request.headers.x-access-token",
    ),
    (Header("api-key", "{}"), "request.headers.api-key"),
    (Header("apikey", "{}"), "request.headers.apikey"),
    (
        Header("private-token", "{}"),
        "request.headers.private-token",
    ),
    (
        Header("x-goog-api-key", "{}"),
        "request.headers.x-goog-api-key",
    ),
    (
        Header("ocp-apim-subscription-key", "{}"),
        "request.headers.ocp-apim-subscription-key",
    ),
    (
        Header("x-vault-token", "{}"),
        "request.headers.x-vault-token",
    ),
    (
        Header("x-amz-security-token", "{}"),
        "request.headers.x-amz-security-token",
    ),
    (Header("x-csrf-token", "{}"), "request.headers.x-csrf-token"),
    (
        Header("x-session-token", "{}"),
        "request.headers.x-session-token",
    ),
    (Header("x-jwt", "{}"), "request.headers.x-jwt"),
    (
        Header("x-client-secret", "{}"),
        "request.headers.x-client-secret",
    ),
    (
        Header("x-refresh-token", "{}"),
        "request.headers.x-refresh-token",
    ),
    (Header("x-password", "{}"), "request.headers.x-password"),
    (Header("x-signature", "{}"), "request.headers.x-signature"),
    (Header("x-credential", "{}"), "request.headers.x-credential"),
    (Header("x-xsrf-token", "{}"), "request.headers.x-xsrf-token"),
    (
        Header("x-webhook-key", "{}"),
        "request.headers.x-webhook-key",
    ),
    (
        Response("set-cookie", "session={}; HttpOnly"),
        "response.headers.set-cookie",
    ),
    // Headers that carry URLs.
    (
        Header("referer", "https://a.example/p?token={}&page=2"),
        "request.headers.referer",
    ),
    (
        Header("referer", "https://a.example/cb?code={}&page=2"),
        "request.headers.referer",
    ),
    (
        Header("referer", "https://a.example/#id_token={}"),
        "request.headers.referer",
    ),
    (
        Header("referer", "https://u:{}@a.example/"),
        "request.headers.referer",
    ),
    (
        Header("referer", "https://a.example/login;jsessionid={}"),
        "request.headers.referer",
    ),
    (
        Response(
            "location",
            "https://c.example/cb#access_token={}&token_type=bearer",
        ),
        "response.headers.location",
    ),
    (
        Response("location", "/next?state={}"),
        "response.headers.location",
    ),
    (
        Response("content-location", "/r?X-Amz-Signature={}"),
        "response.headers.content-location",
    ),
    (
        Response("refresh", "0; url=/next?token={}"),
        "response.headers.refresh",
    ),
    (
        Header("x-envoy-original-path", "/orders?api_key={}"),
        "request.headers.x-envoy-original-path",
    ),
    (
        Header("x-original-url", "/a?session={}"),
        "request.headers.x-original-url",
    ),
    (
        Header("x-forwarded-uri", "/a?auth={}"),
        "request.headers.x-forwarded-uri",
    ),
    (
        Header("x-rewrite-url", "/a?pwd={}"),
        "request.headers.x-rewrite-url",
    ),
    (
        Header("forwarded", "for=192.0.2.1;token={}"),
        "request.headers.forwarded",
    ),
    (
        Header("forwarded", "for=192.0.2.1;path=\"/cb?code={}\""),
        "request.headers.forwarded",
    ),
    (
        Header("x-callback", "https://h.example/cb?signature={}"),
        "request.headers.x-callback",
    ),
    // Query names outside the v1 list, and names a backend normalises.
    (
        Path("/p?access-token={}&page=2"),
        "request.query.access_token",
    ),
    (Path("/p?accessToken={}"), "request.query.access_token"),
    (Path("/p?api_token={}"), "request.query.api_token"),
    (Path("/p?jwt={}"), "request.query.jwt"),
    (Path("/p?session={}"), "request.query.session"),
    (Path("/p?sessionid={}"), "request.query.sessionid"),
    (Path("/p?code={}"), "request.query.code"),
    (Path("/p?oauth_token={}"), "request.query.oauth_token"),
    (Path("/p?auth={}"), "request.query.auth"),
    (Path("/p?pwd={}"), "request.query.pwd"),
    (Path("/p?user[password]={}"), "request.query.user[password]"),
    (Path("/p?private_key={}"), "request.query.private_key"),
    (Path("/p?credential={}"), "request.query.credential"),
    (Path("/p?hub.secret={}"), "request.query.hub_secret"),
    (
        Path("/p?X-Amz-Credential={}"),
        "request.query.x_amz_credential",
    ),
    (
        Path("/p?X-Amz-Signature={}"),
        "request.query.x_amz_signature",
    ),
    (Path("/p?api.key={}"), "request.query.api_key"),
    (Path("/p?api+key={}"), "request.query.api_key"),
    (Path("/p?api%20key={}"), "request.query.api_key"),
    (Path("/p?%2574oken={}"), "request.query.token"),
    (Path("/p?%74oken={}"), "request.query.token"),
    (Path("/p?TOKEN={}"), "request.query.token"),
    (Path("/p?token[]={}"), "request.query.token"),
    (Path("/p?apiKey={}"), "request.query.api_key"),
    (Path("/p?sessionId={}"), "request.query.session_id"),
    (Path("/p?client_secret={}"), "request.query.client_secret"),
    (Path("/p?refresh_token={}"), "request.query.refresh_token"),
    (Path("/p?id_token={}"), "request.query.id_token"),
    (Path("/p?password={}"), "request.query.password"),
    (Path("/p?secret={}"), "request.query.secret"),
    (Path("/p?key={}"), "request.query.key"),
    (Path("/p?sig={}"), "request.query.sig"),
    (Path("/p?signature={}"), "request.query.signature"),
    (Path("/p?state={}"), "request.query.state"),
    (Path("/p?assertion={}"), "request.query.assertion"),
    (Path("/p?page=2;token={}"), "request.query.token"),
    // Fragments.
    (Path("/cb?x=1#token={}"), "request.query.token"),
    (Path("/cb#access_token={}"), "request.path.access_token"),
    // Secrets in the path.
    (Path("/login;jsessionid={}"), "request.path.jsessionid"),
    (Path("/api;token={}/orders"), "request.path.token"),
    (Path("/reset/{}"), "request.path"),
    (Path("/reset/{}/confirm"), "request.path"),
    // Values shaped like credentials, whatever they are called.
    (
        Header("x-debug", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.{}"),
        "request.headers.x-debug",
    ),
    (Header("x-slack", "xoxb-{}"), "request.headers.x-slack"),
    (Header("x-deploy", "ghp_{}"), "request.headers.x-deploy"),
    (
        Header("x-key-material", "-----BEGIN PRIVATE KEY----- {}"),
        "request.headers.x-key-material",
    ),
    (Path("/p?u=AKIA{}"), "request.query.u"),
    (Path("/p?u=ASIA{}"), "request.query.u"),
    (Path("/p?stripe=sk_live_{}"), "request.query.stripe"),
    (
        Path("/p?pem=-----BEGIN+RSA+PRIVATE+KEY-----{}"),
        "request.query.pem",
    ),
    (Path("/p?gh=github_pat_{}"), "request.query.gh"),
    (
        Path("/p?eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.{}&page=2"),
        "request.query",
    ),
    (Path("/gh/ghp_{}"), "request.path"),
    (
        Path("/verify/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.{}"),
        "request.path",
    ),
    (Path("/a;id=xoxp-{}/b"), "request.path.id"),
];

/// Ordinary headers every request carries, and must keep as sent.
pub const ORDINARY: &[(&str, &str)] = &[
    ("user-agent", "curl/8.5.0"),
    ("content-type", "application/json"),
    ("accept", "application/json"),
];

/// A secret no one could guess, upper-case letters and digits so it fits
/// every credential shape, distinct per carrier.
pub fn secret(i: usize, salt: u64) -> String {
    format!(
        "ZQ7K{i:03}P9LM3VT8RWXA2B4C6D8E0{:012X}",
        salt & 0xffff_ffff_ffff
    )
}

/// The capture a cautious operator would configure for all of them.
pub fn config(format: &str) -> String {
    let mut request: Vec<&str> = ORDINARY.iter().map(|(n, _)| *n).collect();
    request.push("x-request-id");
    let mut response = vec!["content-type"];
    for (place, _) in CARRIERS {
        match place {
            Header(n, _) if !request.contains(n) => request.push(n),
            Response(n, _) if !response.contains(n) => response.push(n),
            _ => {}
        }
    }
    serde_json::json!({
        "sink": {"cluster": "audit_sink", "format": format},
        "batch": {"max_records": 10000, "max_buffered_records": 10000, "flush_interval_ms": 1000},
        "capture": {"request_headers": request, "response_headers": response, "query": true},
        "redact": {"path_segments": ["/reset/*"]}
    })
    .to_string()
}

/// The request planting `secret` at `place`, with ordinary headers and
/// parameters beside it.
pub fn request(id: &str, places: &[(Place, String)]) -> Request {
    let mut path = "/orders/42?page=2&limit=10&sort=asc".to_string();
    let mut req = Request::default()
        .header(":method", "GET")
        .header(":scheme", "https")
        .header(":authority", "backend")
        .header("x-request-id", id);
    for (n, v) in ORDINARY {
        req = req.header(n, v);
    }
    let mut response = Request::default();
    for (place, secret) in places {
        match place {
            Header(n, t) => req = req.header(n, t.replace("{}", secret)),
            Response(n, t) => response = response.response_header(n, t.replace("{}", secret)),
            Path(t) => path = t.replace("{}", secret),
        }
    }
    req = req.header(":path", &path);
    req.response_headers
        .push((":status".into(), b"200".to_vec()));
    req.response_headers.extend(response.response_headers);
    req.response_headers
        .push(("content-type".into(), b"application/json".to_vec()));
    req.props(mtls_connection(7)).props(typical_request())
}

/// Lets the flush interval pass, acknowledges every batch, and returns
/// their bodies.
pub fn flush(h: &mut Host) -> Vec<Vec<u8>> {
    let before = h.dispatched().len();
    h.advance_and_tick(1_000);
    let sent = h.dispatched()[before..].to_vec();
    for d in &sent {
        if let Some(t) = d.token {
            h.reply(t, 200, b"");
        }
    }
    sent.into_iter().map(|d| d.body).collect()
}

pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn no_carrier_leaks_and_each_is_listed_while_ordinary_fields_stay_readable() {
    each_guest(|guest| {
        let mut h = configured_on(guest, &config("jsonl"));
        let secrets: Vec<String> = (0..CARRIERS.len()).map(|i| secret(i, 0x5eed)).collect();
        for (i, (place, _)) in CARRIERS.iter().enumerate() {
            h.run(request(
                &format!("carrier-{i}"),
                &[(*place, secrets[i].clone())],
            ));
        }
        let bodies = flush(&mut h);
        let mut records = std::collections::HashMap::new();
        for body in &bodies {
            for line in String::from_utf8_lossy(body).lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                if let Some(id) = v["request_id"].as_str() {
                    records.insert(id.to_string(), (line.to_string(), v.clone()));
                }
            }
        }
        let mut failures = Vec::new();
        for (i, (place, listed)) in CARRIERS.iter().enumerate() {
            let Some((line, rec)) = records.get(&format!("carrier-{i}")) else {
                failures.push(format!("{place:?}: no record"));
                continue;
            };
            if line.contains(&secrets[i]) {
                failures.push(format!("{place:?}: leaked in {line}"));
            }
            let names: Vec<&str> = rec["redacted"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !names.contains(listed) {
                failures.push(format!("{place:?}: {listed} not in redacted {names:?}"));
            }
            for (n, v) in ORDINARY {
                if rec["request"]["headers"][n] != *v {
                    failures.push(format!("{place:?}: {n} not kept: {line}"));
                }
            }
            let query = rec["request"]["query"].as_str().unwrap_or_default();
            if matches!(place, Header(..) | Response(..)) && query != "page=2&limit=10&sort=asc" {
                failures.push(format!("{place:?}: page, limit, sort not kept: {line}"));
            }
        }
        // Every byte of every batch, not only the parsed records.
        for body in &bodies {
            for (i, s) in secrets.iter().enumerate() {
                if contains(body, s) {
                    failures.push(format!("{:?}: secret in a batch", CARRIERS[i].0));
                }
            }
        }
        println!("{} carriers, {} failures", CARRIERS.len(), failures.len());
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    });
}

#[test]
fn capturing_a_pseudo_header_is_refused_with_the_exact_error() {
    each_guest(|guest| {
        let mut h = Host::on(guest);
        let config = r#"{"sink":{"cluster":"s"},"capture":{"request_headers":[":path"]}}"#;
        h.env("MESH_AUDIT_STRICT_CONFIG", "1");
        let ok = h.configure(config);
        let logs = h.logs_at_least(crate::host::level::ERROR);
        assert!(!ok || !logs.is_empty(), "accepted: {}", h.log_dump());
        assert!(
            logs.iter().any(|l| l
                == "mesh-audit: invalid configuration: capture.request_headers[0]: \":path\" is a pseudo-header: its fact has its own field in the record (request.method, .authority, .path, .query, response.code)"),
            "{}",
            h.log_dump()
        );
    });
}
