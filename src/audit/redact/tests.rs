//! Test code only: its parent declares it under #[cfg(test)].
use super::*;
use serde_json::json;

pub(super) const KEY: &str = "audit-key";
/// A well-formed HS256 JWT.
pub(super) const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl";
// python3 -c 'import hmac,hashlib; print(hmac.new(b"audit-key", V, hashlib.sha256).hexdigest()[:32])'
const HMAC_EMAIL: &str = "hmac-sha256:74e64720dfd5af7ffcd8e423399b9911"; // "alice@example.com"
const HMAC_BEARER: &str = "hmac-sha256:e5afc1f2692944d076de73246da32faa"; // "Bearer abc.def"
pub(super) const HMAC_SPACED: &str = "hmac-sha256:c10e01de19a0434336e26728803880fe"; // "s3cr3t value"
const HMAC_42: &str = "hmac-sha256:c616824d3db392f43d081259254abe43"; // "42"
const HMAC_JOINED: &str = "hmac-sha256:e86ee66ab7ba3629b5caad94bf047f31"; // "a, b"

type Rules<'a> = &'a [(&'a str, Action)];

pub(super) fn redactor(headers: Rules, query: Rules, claims: Rules, key: Option<&str>) -> Redactor {
    let own = |r: Rules| r.iter().map(|(n, a)| (n.to_string(), *a)).collect();
    Redactor::new(&Redact {
        headers: own(headers),
        query_params: own(query),
        claims: own(claims),
        hash_key: key.map(|k| k.as_bytes().to_vec().into()),
        path_segments: Vec::new(),
    })
}

/// Defaults plus `redact.path_segments` patterns.
pub(super) fn with_globs(patterns: &[&str]) -> Redactor {
    Redactor::new(&Redact {
        headers: Vec::new(),
        query_params: Vec::new(),
        claims: Vec::new(),
        hash_key: None,
        path_segments: patterns.iter().map(|p| Glob::parse(p).unwrap()).collect(),
    })
}

pub(super) fn defaults() -> Redactor {
    redactor(&[], &[], &[], None)
}

pub(super) fn captured(pairs: &[(&str, &str)]) -> crate::host::Headers {
    pairs.iter().copied().collect()
}

pub(super) fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub(super) fn query_table(r: &Redactor, cases: &[(&str, &str, &[&str])]) {
    for (raw, want, listed) in cases {
        let mut red = Vec::new();
        assert_eq!(r.query(raw, &mut red), *want, "query {raw:?}");
        assert_eq!(red, names(listed), "redacted for {raw:?}");
    }
}

pub(super) fn header_table(r: &Redactor, cases: &[(&str, &str, Option<&str>)]) {
    for (name, value, want) in cases {
        let mut red = Vec::new();
        let got = r.headers(
            &captured(&[(name, value)]),
            &names(&[name]),
            "request.headers",
            &mut red,
        );
        assert_eq!(got.get(name).map(String::as_str), *want, "{name}: {value}");
        let listed = *want != Some(*value);
        let expected = if listed {
            vec![format!("request.headers.{name}")]
        } else {
            vec![]
        };
        assert_eq!(red, expected, "{name}: {value}");
    }
}

#[test]
fn masks_default_headers_and_keeps_only_known_auth_schemes() {
    header_table(
        &defaults(),
        &[
            ("authorization", "Bearer abc.def", Some("Bearer [REDACTED]")),
            (
                "authorization",
                "basic dXNlcjpwYXNz",
                Some("basic [REDACTED]"),
            ),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=x",
                Some("AWS4-HMAC-SHA256 [REDACTED]"),
            ),
            ("authorization", "s3cr3tt0ken", Some("[REDACTED]")),
            ("authorization", "s3cr3tt0ken more", Some("[REDACTED]")),
            (
                "proxy-authorization",
                "Basic Zm9vOmJhcg==",
                Some("Basic [REDACTED]"),
            ),
            ("cookie", "session=abc; theme=dark", Some("[REDACTED]")),
            ("set-cookie", "session=abc; HttpOnly", Some("[REDACTED]")),
            ("x-api-key", "k-123", Some("[REDACTED]")),
            ("user-agent", "curl/8.5.0", Some("curl/8.5.0")),
            ("x-api-version", "kept", Some("kept")),
        ],
    );
}

#[test]
fn explicit_header_rules_override_defaults() {
    let r = redactor(
        &[
            ("authorization", Action::Hash),
            ("cookie", Action::Drop),
            ("x-user-email", Action::Hash),
            ("X-Internal", Action::Mask),
        ],
        &[],
        &[],
        Some(KEY),
    );
    header_table(
        &r,
        &[
            ("authorization", "Bearer abc.def", Some(HMAC_BEARER)),
            ("cookie", "session=abc", None),
            ("x-user-email", "alice@example.com", Some(HMAC_EMAIL)),
            ("x-internal", "Bearer x", Some("[REDACTED]")),
            ("set-cookie", "still=masked", Some("[REDACTED]")),
        ],
    );
}

#[test]
fn headers_follow_wanted_order_and_join_repeats() {
    let r = redactor(&[("x-h", Action::Hash)], &[], &[], Some(KEY));
    let cap = captured(&[
        ("x-b", "1"),
        ("X-A", "first"),
        ("x-h", "a"),
        ("cookie", "c1"),
        ("x-a", "second"),
        ("x-h", "b"),
        ("cookie", "c2"),
        ("x-unwanted", "z"),
    ]);
    let mut red = Vec::new();
    let got = r.headers(
        &cap,
        &names(&["x-a", "x-missing", "x-h", "cookie", "x-b", "x-a"]),
        "response.headers",
        &mut red,
    );
    assert_eq!(
        serde_json::to_string(&got).unwrap(),
        format!(
            r#"{{"x-a":"first, second","x-h":"{HMAC_JOINED}","cookie":"[REDACTED]","x-b":"1"}}"#
        )
    );
    assert_eq!(
        red,
        names(&["response.headers.x-h", "response.headers.cookie"])
    );
}

#[test]
fn non_utf8_header_values_are_replaced_lossily() {
    let cap: crate::host::Headers = [("x-bin", [b'a', 0xff, b'b'])].into_iter().collect();
    let got = defaults().headers(&cap, &names(&["x-bin"]), "request.headers", &mut Vec::new());
    assert_eq!(got.get("x-bin").map(String::as_str), Some("a\u{fffd}b"));
}

#[test]
fn hash_without_a_key_masks_instead() {
    let r = redactor(
        &[("x-h", Action::Hash)],
        &[("q", Action::Hash)],
        &[("email", Action::Hash)],
        None,
    );
    let mut red = Vec::new();
    let got = r.headers(
        &captured(&[("x-h", "v")]),
        &names(&["x-h"]),
        "request.headers",
        &mut red,
    );
    assert_eq!(got.get("x-h").map(String::as_str), Some("[REDACTED]"));
    assert_eq!(r.query("q=v", &mut red), "q=[REDACTED]");
    let claims = r.claims(Fields(vec![("email".into(), json!("a@b"))]), &mut red);
    assert_eq!(claims.get("email"), Some(&json!("[REDACTED]")));
    assert_eq!(
        red,
        names(&["request.headers.x-h", "request.query.q", "user.email"])
    );
}

#[test]
fn claims_are_masked_dropped_or_hashed_by_exact_name() {
    let r = redactor(
        &[],
        &[],
        &[
            ("email", Action::Hash),
            ("phone", Action::Drop),
            ("name", Action::Mask),
            ("n", Action::Hash),
        ],
        Some(KEY),
    );
    let claims = Fields(vec![
        ("sub".to_string(), json!("alice")),
        ("email".to_string(), json!("alice@example.com")),
        (
            "Email".to_string(),
            json!("kept: claim names are case-sensitive"),
        ),
        ("phone".to_string(), json!("+1 555")),
        ("name".to_string(), json!({"given": "Alice"})),
        ("n".to_string(), json!(42)),
    ]);
    let mut red = Vec::new();
    let got = r.claims(claims, &mut red);
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        json!({"sub": "alice", "email": HMAC_EMAIL, "Email": "kept: claim names are case-sensitive",
               "name": "[REDACTED]", "n": HMAC_42})
    );
    assert_eq!(
        got.0.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["sub", "email", "Email", "name", "n"]
    );
    assert_eq!(
        red,
        names(&["user.email", "user.phone", "user.name", "user.n"])
    );
}

#[test]
fn redacted_names_are_listed_once_across_calls() {
    let r = defaults();
    let mut red = Vec::new();
    r.query("token=a", &mut red);
    r.query("token=b&a=%zz", &mut red);
    r.query("%zz", &mut red);
    r.headers(
        &captured(&[("cookie", "a")]),
        &names(&["cookie"]),
        "request.headers",
        &mut red,
    );
    r.headers(
        &captured(&[("cookie", "a")]),
        &names(&["cookie"]),
        "response.headers",
        &mut red,
    );
    assert_eq!(
        red,
        names(&[
            "request.query.token",
            "request.query",
            "request.headers.cookie",
            "response.headers.cookie"
        ])
    );
}

#[test]
fn hash_format_is_prefix_and_32_hex_digits() {
    let h = redactor(&[], &[], &[], Some(KEY)).hash(b"alice@example.com");
    assert_eq!(h, HMAC_EMAIL);
    let hex = h.strip_prefix("hmac-sha256:").unwrap();
    assert_eq!(hex.len(), 32);
    assert!(hex
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
}

#[test]
fn scratch_buffers_are_reused_and_a_huge_value_does_not_stay_allocated() {
    let r = defaults();
    let mut redacted = Vec::new();
    // Reused from one request to the next: the same answer each time.
    for _ in 0..3 {
        let q = r.query("page=2&token=abc&x%2Dapi%2Dkey=k", &mut redacted);
        assert_eq!(q, "page=2&token=[REDACTED]&x%2Dapi%2Dkey=[REDACTED]");
    }
    assert!(
        r.scratch.borrow().capacity() > 0,
        "kept for the next request"
    );
    // A 64 KiB encoded name grows the buffers past the cap: not kept.
    let long = format!("{}=1", "%61".repeat(20_000));
    r.query(&long, &mut redacted);
    assert!(r.scratch.borrow().capacity() <= KEPT_SCRATCH_BYTES);
    assert_eq!(
        r.query("token=abc", &mut redacted),
        "token=[REDACTED]",
        "and the next request is redacted as before"
    );
}
