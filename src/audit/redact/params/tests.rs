//! Test code only: its parent declares it under #[cfg(test)].
use super::super::tests::{defaults, query_table};

#[test]
fn values_shaped_like_credentials_are_masked_whatever_the_name() {
    let jwt = super::super::tests::JWT;
    query_table(
        &defaults(),
        &[
            (
                format!("page=2&id={jwt}").as_str(),
                "page=2&id=[REDACTED]",
                &["request.query.id"],
            ),
            (
                "u=AKIAIOSFODNN7EXAMPLE",
                "u=[REDACTED]",
                &["request.query.u"],
            ),
            (
                "x=%65yJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
                "x=[REDACTED]",
                &["request.query.x"],
            ),
            (
                "pem=-----BEGIN+RSA+PRIVATE+KEY-----MIIE",
                "pem=[REDACTED]",
                &["request.query.pem"],
            ),
            (
                "hook=xoxb-2364718-1234567890-AbCdEfGhIj&page=1",
                "hook=[REDACTED]&page=1",
                &["request.query.hook"],
            ),
            (
                "stripe=sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                "stripe=[REDACTED]",
                &["request.query.stripe"],
            ),
            (
                "gh=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
                "gh=[REDACTED]",
                &["request.query.gh"],
            ),
        ],
    );
}

#[test]
fn a_name_that_is_itself_a_credential_masks_the_whole_parameter() {
    let jwt = super::super::tests::JWT;
    query_table(
        &defaults(),
        &[
            (
                format!("{jwt}&page=2").as_str(),
                "[REDACTED]&page=2",
                &["request.query"],
            ),
            (
                "ghp_0123456789abcdefABCDEF0123456789abcd=1",
                "[REDACTED]",
                &["request.query"],
            ),
        ],
    );
}
