//! Test code only: its parent declares it under #[cfg(test)].
use super::super::tests::{defaults, names, with_globs};
use super::super::Redactor;
use super::*;

pub(crate) fn path_table(r: &Redactor, cases: &[(&str, &str, &[&str])]) {
    for (raw, want, listed) in cases {
        let mut red = Vec::new();
        assert_eq!(r.path(raw, &mut red), *want, "path {raw:?}");
        assert_eq!(red, names(listed), "redacted for {raw:?}");
    }
}

#[test]
fn path_parameters_are_redacted_like_query_parameters() {
    path_table(
        &defaults(),
        &[
            (
                "/login;jsessionid=0123ABCD",
                "/login;jsessionid=[REDACTED]",
                &["request.path.jsessionid"],
            ),
            (
                "/api;token=s3cr3t/orders",
                "/api;token=[REDACTED]/orders",
                &["request.path.token"],
            ),
            (
                "/a;v=1;Session-Id=x;y/b",
                "/a;v=1;Session-Id=[REDACTED]/b",
                &["request.path.session_id"],
            ),
            ("/a;v=1/b;page=2", "/a;v=1/b;page=2", &[]),
            (
                "/a;%74oken=x",
                "/a;%74oken=[REDACTED]",
                &["request.path.token"],
            ),
            ("/a;tok%zz=x/b", "/a;[REDACTED]/b", &["request.path"]),
        ],
    );
}

#[test]
fn ordinary_paths_are_untouched() {
    path_table(
        &defaults(),
        &[
            ("/orders/42", "/orders/42", &[]),
            ("/", "/", &[]),
            ("", "", &[]),
            ("/a%20b/c+d", "/a%20b/c+d", &[]),
            (
                "/orders/90ae957f-6b4f-4d54-9f3b-1f8d6a0c2e11",
                "/orders/90ae957f-6b4f-4d54-9f3b-1f8d6a0c2e11",
                &[],
            ),
        ],
    );
}

#[test]
fn segments_shaped_like_credentials_are_masked() {
    let p: &[&str] = &["request.path"];
    let jwt = super::super::tests::JWT;
    path_table(
        &defaults(),
        &[
            (format!("/verify/{jwt}").as_str(), "/verify/[REDACTED]", p),
            (
                "/keys/AKIAIOSFODNN7EXAMPLE/rotate",
                "/keys/[REDACTED]/rotate",
                p,
            ),
            (
                "/gh/ghp_0123456789abcdefABCDEF0123456789abcd",
                "/gh/[REDACTED]",
                p,
            ),
            (
                "/k/-----BEGIN%20PRIVATE%20KEY-----/MIIE/abc",
                "/k/[REDACTED]",
                p,
            ),
        ],
    );
}

#[test]
fn path_segment_patterns_mask_the_segments_their_wildcards_match() {
    let r = with_globs(&["/reset/*", "/**/invites/*/accept", "/files/tmp-*"]);
    let p: &[&str] = &["request.path"];
    path_table(
        &r,
        &[
            ("/reset/5f1c9a", "/reset/[REDACTED]", p),
            ("/reset/5f1c9a/confirm", "/reset/[REDACTED]/confirm", p),
            ("/re%73et/5f1c9a", "/re%73et/[REDACTED]", p),
            ("/reset/", "/reset/", &[]),
            ("/reset", "/reset", &[]),
            ("/resets/5f1c9a", "/resets/5f1c9a", &[]),
            (
                "/api/v2/invites/abc/accept",
                "/api/v2/invites/[REDACTED]/accept",
                p,
            ),
            ("/invites/abc/accept", "/invites/[REDACTED]/accept", p),
            ("/invites/abc/decline", "/invites/abc/decline", &[]),
            ("/files/tmp-123", "/files/[REDACTED]", p),
            ("/files/report", "/files/report", &[]),
            (
                "/reset/x;jsessionid=1",
                "/reset/[REDACTED];jsessionid=[REDACTED]",
                &["request.path", "request.path.jsessionid"],
            ),
        ],
    );
}

#[test]
fn a_fragment_in_the_path_is_redacted_like_a_query() {
    path_table(
        &defaults(),
        &[
            (
                "/cb#access_token=abc&state=xyz&x=1",
                "/cb#access_token=[REDACTED]&state=[REDACTED]&x=1",
                &["request.path.access_token", "request.path.state"],
            ),
            ("/doc#section-2", "/doc#section-2", &[]),
        ],
    );
}

#[test]
fn patterns_are_validated_with_a_reason() {
    for (pattern, error) in [
        ("reset/*", "\"reset/*\" must start with /"),
        ("/reset//*", "\"/reset//*\" has an empty segment"),
        ("/a**/*", "\"/a**/*\": ** must be a whole segment"),
        (
            "/reset",
            "\"/reset\" masks nothing: put a * where the secret segment is (e.g. /reset/*)",
        ),
        (
            "/r?x/*",
            "\"/r?x/*\" may not contain ?, # or ; (patterns match path segments only)",
        ),
        ("/**/**/**/*", "\"/**/**/**/*\" has more than 2 **"),
    ] {
        assert_eq!(Glob::parse(pattern).unwrap_err(), error, "{pattern}");
    }
    assert_eq!(Glob::parse("/reset/*").unwrap().as_str(), "/reset/*");
}
