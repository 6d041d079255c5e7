//! Test code only: its parent declares it under #[cfg(test)].
//! Planted secrets never reach the record, however they are spelled.

use super::*;
use proptest::prelude::*;
use serde_json::json;

/// Percent-encodes each byte of `s` where `mask` says so, with upper- or
/// lower-case hex as `upper` says.
fn encode(s: &str, mask: &[bool], upper: &[bool]) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        if mask.get(i).copied().unwrap_or(false) {
            let hex = format!("%{b:02X}");
            out.push_str(&if upper.get(i).copied().unwrap_or(true) {
                hex
            } else {
                hex.to_lowercase()
            });
        } else {
            out.push(b as char);
        }
    }
    out
}

fn random_case(s: &str, flips: &[bool]) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if flips.get(i).copied().unwrap_or(false) {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{12,32}"
}

fn bits() -> impl Strategy<Value = Vec<bool>> {
    proptest::collection::vec(any::<bool>(), 40)
}

/// Benign fields are too short to contain a secret; their names (`b` and
/// digits) look like no credential.
fn benign_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(("b[0-9]{0,6}", "[a-z ./]{0,10}"), 0..6)
}

/// Headers masked by default: the v1 names and names that only match by pattern.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-vault-token",
    "ocp-apim-subscription-key",
    "x-goog-api-key",
    "private-token",
    "x-jwt",
];

/// Parameter names masked by default, as they are written.
const CREDENTIAL_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "accessToken",
    "api-key",
    "api.key",
    "password",
    "user[password]",
    "client_secret",
    "sig",
    "code",
    "state",
    "X-Amz-Credential",
    "jsessionid",
    "oauth_token",
];

const HEADER_FORMS: &[&str] = &[
    "Bearer {}",
    "{}",
    "Basic {}",
    "{} trailing",
    "session={}; theme=dark",
    "  bearer   {}",
];

fn leaks(text: &str, secret: &str, encoded: &[String]) -> bool {
    text.contains(secret) || encoded.iter().any(|e| text.contains(e.as_str()))
}

fn full_encoding(s: &str) -> [String; 2] {
    let all = vec![true; s.len()];
    [
        encode(s, &all, &all),
        encode(s, &all, &vec![false; s.len()]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn planted_secrets_never_leak(
        s in secret(),
        benign_headers in benign_pairs(),
        benign_params in benign_pairs(),
        header in 0..CREDENTIAL_HEADERS.len(),
        form in 0..HEADER_FORMS.len(),
        param in 0..CREDENTIAL_PARAMS.len(),
        name_case in bits(),
        name_enc in bits(),
        name_hex in bits(),
        value_enc in bits(),
        value_hex in bits(),
        split_at in 0usize..8,
        semicolon in any::<bool>(),
        repeats in 1usize..3,
    ) {
        let r = Redactor::new(&Redact {
            headers: vec![],
            query_params: vec![],
            claims: vec![("email".into(), Action::Hash), ("profile".into(), Action::Hash)],
            hash_key: Some(b"proptest-key".to_vec().into()),
            path_segments: vec![],
        });
        let mut red = Vec::new();

        // headers: the secret in a default-covered header, name in random case
        let hname = CREDENTIAL_HEADERS[header];
        let mut cap: Vec<(String, Vec<u8>)> =
            benign_headers.iter().map(|(n, v)| (n.clone(), v.clone().into_bytes())).collect();
        let planted = HEADER_FORMS[form].replace("{}", &s);
        let at = split_at.min(cap.len());
        cap.insert(at, (random_case(hname, &name_case), planted.into_bytes()));
        let mut wanted: Vec<String> = benign_headers.iter().map(|(n, _)| n.clone()).collect();
        wanted.push(hname.to_string());
        let headers = r.headers(&cap.iter().cloned().collect(), &wanted, "request.headers", &mut red);

        // query: a default-covered name, random case and percent-encoding of name and value
        let pname = encode(&random_case(CREDENTIAL_PARAMS[param], &name_case), &name_enc, &name_hex);
        let pvalue = encode(&s, &value_enc, &value_hex);
        let mut parts: Vec<String> = benign_params.iter().map(|(n, v)| format!("{n}={}", v.replace(' ', "+"))).collect();
        for _ in 0..repeats {
            let at = split_at.min(parts.len());
            parts.insert(at, format!("{pname}={pvalue}"));
        }
        let query = parts.join(if semicolon { ";" } else { "&" });
        let redacted_query = r.query(&query, &mut red);

        // claims: hashed, as a string and nested in an object
        let claims = Fields(vec![
            ("sub".to_string(), json!("someone")),
            ("email".to_string(), json!(s.clone())),
            ("profile".to_string(), json!({"inner": [s.clone()]})),
        ]);
        let claims = r.claims(claims, &mut red);

        let text = format!(
            "{}\n{}\n{}\n{}",
            serde_json::to_string(&headers).unwrap(),
            serde_json::to_string(&redacted_query).unwrap(),
            serde_json::to_string(&claims).unwrap(),
            serde_json::to_string(&red).unwrap(),
        );
        let mut encoded = vec![pvalue.clone()];
        encoded.extend(full_encoding(&s));
        prop_assert!(!leaks(&text, &s, &encoded), "secret {} leaked in {} (query was {})", s, text, query);
        let header_name = format!("request.headers.{hname}");
        prop_assert!(red.contains(&header_name), "{:?}", red);
        prop_assert!(red.contains(&"user.email".to_string()));
        prop_assert_eq!(red.iter().filter(|n| n.starts_with("request.query.")).count(), 1, "{:?}", red);
    }

    #[test]
    fn arbitrary_query_strings_never_pass_a_default_param_value_through(
        noise in "[a-zA-Z0-9%+=&;._~-]{0,40}",
        s in secret(),
        param in 0..CREDENTIAL_PARAMS.len(),
    ) {
        let query = format!("{noise}&{}={s}&{noise}", CREDENTIAL_PARAMS[param]);
        let out = Redactor::new(&Redact {
            headers: vec![], query_params: vec![], claims: vec![], hash_key: None,
            path_segments: vec![],
        }).query(&query, &mut Vec::new());
        prop_assert!(!out.contains(&s), "{} → {}", query, out);
    }
}
