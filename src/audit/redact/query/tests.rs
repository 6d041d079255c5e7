//! Test code only: its parent declares it under #[cfg(test)].
use super::super::tests::{defaults, query_table, redactor, HMAC_SPACED, KEY};
use crate::config::Action;

#[test]
fn masks_default_query_params_by_decoded_case_insensitive_name() {
    let t: &[&str] = &["request.query.token"];
    query_table(
        &defaults(),
        &[
            ("token=abc&page=2", "token=[REDACTED]&page=2", t),
            ("page=2", "page=2", &[]),
            ("TOKEN=abc", "TOKEN=[REDACTED]", t),
            ("tok%65n=abc", "tok%65n=[REDACTED]", t),
            ("%54oKeN=%61bc", "%54oKeN=[REDACTED]", t),
            (
                "access%5ftoken=a",
                "access%5ftoken=[REDACTED]",
                &["request.query.access_token"],
            ),
            (
                "token=a&x=1&Token=b&token=c",
                "token=[REDACTED]&x=1&Token=[REDACTED]&token=[REDACTED]",
                t,
            ),
            (
                "api_key[]=a&api_key[]=b",
                "api_key[]=[REDACTED]&api_key[]=[REDACTED]",
                &["request.query.api_key"],
            ),
            (
                "monkey=1&keyword=2&donkey=3&keys=4",
                "monkey=1&keyword=2&donkey=3&keys=4",
                &[],
            ),
            (
                "tokens=3&mytoken=4",
                "tokens=[REDACTED]&mytoken=[REDACTED]",
                &["request.query.tokens", "request.query.mytoken"],
            ),
            (
                "key=1&sig=2&X-Amz-Signature=3",
                "key=[REDACTED]&sig=[REDACTED]&X-Amz-Signature=[REDACTED]",
                &[
                    "request.query.key",
                    "request.query.sig",
                    "request.query.x_amz_signature",
                ],
            ),
            (
                "password=p&client_secret=s&id_token=i",
                "password=[REDACTED]&client_secret=[REDACTED]&id_token=[REDACTED]",
                &[
                    "request.query.password",
                    "request.query.client_secret",
                    "request.query.id_token",
                ],
            ),
            ("token", "token=[REDACTED]", t),
            ("token=", "token=[REDACTED]", t),
        ],
    );
}

#[test]
fn kept_params_are_copied_byte_for_byte() {
    query_table(
        &defaults(),
        &[
            ("", "", &[]),
            ("&&a=1&", "&&a=1&", &[]),
            (
                "q=hello%20world+x&z=%E2%82%ac",
                "q=hello%20world+x&z=%E2%82%ac",
                &[],
            ),
            ("q=caf\u{e9}&r=a=b", "q=caf\u{e9}&r=a=b", &[]),
            ("a=1;b=2", "a=1;b=2", &[]),
        ],
    );
}

#[test]
fn semicolons_separate_params_but_a_redacted_value_runs_to_the_next_ampersand() {
    let t: &[&str] = &["request.query.token"];
    query_table(
        &defaults(),
        &[
            ("a=1;token=x&b=2", "a=1;token=[REDACTED]&b=2", t),
            ("token=ab;cd&b=2", "token=[REDACTED]&b=2", t),
            (
                "jsessionid=xyz;a=1",
                "jsessionid=[REDACTED]",
                &["request.query.jsessionid"],
            ),
            ("token;a=1", "token=[REDACTED];a=1", t),
        ],
    );
}

#[test]
fn malformed_query_keeps_the_parsed_prefix_and_masks_the_rest() {
    let q: &[&str] = &["request.query"];
    query_table(
        &defaults(),
        &[
            ("a=%zz&b=2", "[REDACTED]", q),
            ("a=1&b=%ff&token=x", "a=1&[REDACTED]", q),
            ("a=1&%e9=2", "a=1&[REDACTED]", q),
            ("a=1&b=2%4", "a=1&[REDACTED]", q),
            ("a=1&b=%", "a=1&[REDACTED]", q),
            ("a=1;%zz", "a=1;[REDACTED]", q),
            (
                "token=abc&a=%zz",
                "token=[REDACTED]&[REDACTED]",
                &["request.query.token", "request.query"],
            ),
            (
                "token=%zz&a=1",
                "token=[REDACTED]&a=1",
                &["request.query.token"],
            ),
        ],
    );
}

#[test]
fn explicit_query_rules_drop_and_hash_decoded_values() {
    let r = redactor(
        &[],
        &[
            ("password", Action::Drop),
            ("Session", Action::Hash),
            ("email", Action::Mask),
        ],
        &[],
        Some(KEY),
    );
    let h = format!("session={HMAC_SPACED}");
    query_table(
        &r,
        &[
            ("password=x&a=1", "a=1", &["request.query.password"]),
            ("a=1&password=x", "a=1", &["request.query.password"]),
            (
                "a=1&password=x;y=2&b=2",
                "a=1&b=2",
                &["request.query.password"],
            ),
            ("password=x", "", &["request.query.password"]),
            ("session=s3cr3t+value", &h, &["request.query.session"]),
            ("session=s3cr3t%20value", &h, &["request.query.session"]),
            (
                "SESSION=s3cr3t%20value",
                &format!("SESSION={HMAC_SPACED}"),
                &["request.query.session"],
            ),
            ("session=%zz&a=1", "[REDACTED]", &["request.query"]),
            (
                "email=a%40b&token=t",
                "email=[REDACTED]&token=[REDACTED]",
                &["request.query.email", "request.query.token"],
            ),
        ],
    );
}
