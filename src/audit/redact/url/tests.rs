//! Test code only: its parent declares it under #[cfg(test)].
use super::super::tests::{defaults, header_table};

#[test]
fn url_valued_headers_get_query_fragment_and_path_redaction() {
    header_table(
        &defaults(),
        &[
            (
                "referer",
                "https://shop.example/cart?step=2&token=abc",
                Some("https://shop.example/cart?step=2&token=[REDACTED]"),
            ),
            (
                "referer",
                "https://app.example/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz",
                Some("https://app.example/callback?code=[REDACTED]&state=[REDACTED]"),
            ),
            (
                "location",
                "https://client.example/cb#access_token=2YotnFZFEjr1zCsicMWpAA&token_type=bearer&expires_in=3600",
                Some("https://client.example/cb#access_token=[REDACTED]&token_type=[REDACTED]&expires_in=3600"),
            ),
            (
                "location",
                "/login;jsessionid=0123ABCD?next=%2Fhome",
                Some("/login;jsessionid=[REDACTED]?next=%2Fhome"),
            ),
            (
                "content-location",
                "/exports/1?X-Amz-Credential=AKIAX%2F20261121&X-Amz-Signature=ab12",
                Some("/exports/1?X-Amz-Credential=[REDACTED]&X-Amz-Signature=[REDACTED]"),
            ),
            (
                "x-envoy-original-path",
                "/orders/42?api_token=t0k",
                Some("/orders/42?api_token=[REDACTED]"),
            ),
            (
                "x-original-url",
                "/a?session=s1&page=2",
                Some("/a?session=[REDACTED]&page=2"),
            ),
            (
                "x-forwarded-uri",
                "/a?pwd=hunter2",
                Some("/a?pwd=[REDACTED]"),
            ),
            (
                "x-rewrite-url",
                "/a?hub.secret=s",
                Some("/a?hub.secret=[REDACTED]"),
            ),
            (
                "refresh",
                "5; url=https://x.example/next?token=abc",
                Some("5; url=https://x.example/next?token=[REDACTED]"),
            ),
            (
                "refresh",
                "0;URL='/next?auth=abc'",
                Some("0;URL='/next?auth=[REDACTED]'"),
            ),
            (
                "forwarded",
                "for=192.0.2.60;proto=https;token=abc, for=198.51.100.17",
                Some("for=192.0.2.60;proto=https;token=[REDACTED], for=198.51.100.17"),
            ),
            (
                "forwarded",
                "for=192.0.2.60;path=\"/cb?code=xyz;a=1\"",
                Some("for=192.0.2.60;path=\"/cb?code=[REDACTED]\""),
            ),
            (
                "referer",
                "https://alice:hunter2@shop.example/",
                Some("https://[REDACTED]@shop.example/"),
            ),
            (
                "referer",
                "https://shop.example/spa#/reset?token=abc",
                Some("https://shop.example/spa#/reset?token=[REDACTED]"),
            ),
        ],
    );
}

#[test]
fn url_valued_headers_without_secrets_are_kept_and_not_listed() {
    header_table(
        &defaults(),
        &[
            (
                "referer",
                "https://shop.example/cart?page=2&sort=asc#top",
                Some("https://shop.example/cart?page=2&sort=asc#top"),
            ),
            ("location", "/orders/42", Some("/orders/42")),
            ("refresh", "5", Some("5")),
            (
                "forwarded",
                "for=192.0.2.60;proto=http;by=203.0.113.43",
                Some("for=192.0.2.60;proto=http;by=203.0.113.43"),
            ),
            // Any other header holding an absolute URL gets the same treatment.
            (
                "x-callback",
                "https://hooks.example/cb?limit=1",
                Some("https://hooks.example/cb?limit=1"),
            ),
        ],
    );
}

#[test]
fn any_captured_header_holding_a_web_url_is_url_redacted() {
    header_table(
        &defaults(),
        &[(
            "x-callback",
            "https://hooks.example/cb?signature=abc&limit=1",
            Some("https://hooks.example/cb?signature=[REDACTED]&limit=1"),
        )],
    );
}
