//! Test code only: its parent declares it under #[cfg(test)].
use super::*;

use super::super::tests::JWT;

#[test]
fn well_known_credential_shapes_are_found_anywhere_in_a_value() {
    let cases: &[(&str, Shape)] = &[
        (JWT, Shape::Jwt),
        ("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", Shape::Jwt),
        (
            "id=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.sig-part_1",
            Shape::Jwt,
        ),
        ("AKIAIOSFODNN7EXAMPLE", Shape::AwsKeyId),
        ("key ASIAY34FZKBOKMUTVV7A here", Shape::AwsKeyId),
        ("ghp_0123456789abcdefABCDEF0123456789abcd", Shape::GitHub),
        (
            "token gho_16C7e42F292c6912E7710c838347Ae178B4a",
            Shape::GitHub,
        ),
        (
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            Shape::GitHub,
        ),
        ("xoxb-2364718-1234567890-AbCdEfGhIj", Shape::Slack),
        ("xoxp-1234567890-abcdef", Shape::Slack),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", Shape::Stripe),
        ("-----BEGIN PRIVATE KEY----- MIIEvQ", Shape::PrivateKey),
        ("-----BEGIN RSA PRIVATE KEY-----", Shape::PrivateKey),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", Shape::PrivateKey),
        ("-----BEGIN ENCRYPTED PRIVATE KEY-----", Shape::PrivateKey),
    ];
    for (value, shape) in cases {
        assert_eq!(find(value.as_bytes()), Some(*shape), "{value}");
    }
}

#[test]
fn ordinary_values_have_no_credential_shape() {
    for value in [
        "curl/8.5.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
        "application/json; charset=utf-8",
        "90ae957f-6b4f-4d54-9f3b-1f8d6a0c2e11",
        "eyJ-but-not-a-token-at-all",
        "eyJhbGciOiJIUzI1NiJ9 without dots",
        "MAKIAIOSFODNN7EXAMPLE",
        "AKIA-short-1234",
        "ghp_tooShort123",
        "xoxz-1234567890-abcdef",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "-----BEGIN CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----",
        "short",
        "",
    ] {
        assert_eq!(find(value.as_bytes()), None, "{value}");
    }
}
