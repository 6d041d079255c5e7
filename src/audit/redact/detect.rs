//! Values shaped like well-known credentials (SPEC §3.1), found wherever
//! they are, whatever the field is called: JWTs, AWS access key ids, GitHub,
//! Slack and Stripe tokens, PEM private keys.
//!
//! One pass over the bytes, no allocation: a byte that can start no shape
//! costs one comparison. Shapes are checked at a word boundary (the byte
//! before is not a letter or digit), so `xAKIA…` inside an ordinary word
//! does not count, and are deliberately generous about what follows: a
//! false positive masks a value, a false negative leaks a credential.

/// The shortest value any shape can match: shorter values are not scanned.
const SHORTEST: usize = 15;

/// What was found; a private key spans whatever follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Jwt,
    AwsKeyId,
    GitHub,
    Slack,
    Stripe,
    PrivateKey,
}

fn base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn upper_or_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// How many bytes of `b` from `at` satisfy `ok`.
fn run(b: &[u8], at: usize, ok: impl Fn(u8) -> bool) -> usize {
    b.get(at..)
        .map_or(0, |rest| rest.iter().take_while(|c| ok(**c)).count())
}

/// `eyJ…` (base64url of `{"`), a dot, a payload, a dot, an optional signature.
fn jwt(b: &[u8], at: usize) -> bool {
    if !b[at..].starts_with(b"eyJ") {
        return false;
    }
    let header = run(b, at, base64url);
    if header < 10 || b.get(at + header) != Some(&b'.') {
        return false;
    }
    let payload_at = at + header + 1;
    let payload = run(b, payload_at, base64url);
    payload >= 2 && b.get(payload_at + payload) == Some(&b'.')
}

/// `AKIA`/`ASIA`/`ABIA`/`ACCA` and 16 more upper-case letters or digits.
fn aws(b: &[u8], at: usize) -> bool {
    let rest = &b[at..];
    [b"AKIA", b"ASIA", b"ABIA", b"ACCA"]
        .iter()
        .any(|p| rest.starts_with(*p))
        && run(b, at + 4, upper_or_digit) >= 16
}

/// `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` and 30+ letters or digits; `github_pat_` and 22+.
fn github(b: &[u8], at: usize) -> bool {
    let rest = &b[at..];
    if rest.starts_with(b"github_pat_") {
        return run(b, at + 11, |c| c.is_ascii_alphanumeric() || c == b'_') >= 22;
    }
    rest.len() > 4
        && rest.starts_with(b"gh")
        && matches!(rest[2], b'p' | b'o' | b'u' | b's' | b'r')
        && rest[3] == b'_'
        && run(b, at + 4, |c| c.is_ascii_alphanumeric()) >= 30
}

/// `xoxa-`/`xoxb-`/`xoxp-`/`xoxr-` and 10+ letters, digits or dashes.
fn slack(b: &[u8], at: usize) -> bool {
    let rest = &b[at..];
    rest.len() > 5
        && rest.starts_with(b"xox")
        && matches!(rest[3], b'a' | b'b' | b'p' | b'r')
        && rest[4] == b'-'
        && run(b, at + 5, |c| c.is_ascii_alphanumeric() || c == b'-') >= 10
}

/// `sk_live_`/`rk_live_` and 10+ letters or digits.
fn stripe(b: &[u8], at: usize) -> bool {
    let rest = &b[at..];
    (rest.starts_with(b"sk_live_") || rest.starts_with(b"rk_live_"))
        && run(b, at + 8, |c| c.is_ascii_alphanumeric()) >= 10
}

/// `-----BEGIN `, a few words (`RSA`, `EC`, `OPENSSH`, `ENCRYPTED`), `PRIVATE KEY-----`.
fn private_key(b: &[u8], at: usize) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"PRIVATE KEY-----";
    if !b[at..].starts_with(BEGIN) {
        return false;
    }
    let words = at + BEGIN.len();
    let span = run(b, words, |c| c.is_ascii_uppercase() || c == b' ').min(24);
    (0..=span).any(|skip| b[words + skip..].starts_with(END))
}

/// The first credential shape in `b`, if any.
pub fn find(b: &[u8]) -> Option<Shape> {
    if b.len() < SHORTEST {
        return None;
    }
    for at in 0..b.len() {
        let start = at == 0 || !b[at - 1].is_ascii_alphanumeric();
        let shape = match b[at] {
            b'e' if start || b[at - 1] == b'.' => jwt(b, at).then_some(Shape::Jwt),
            b'A' if start => aws(b, at).then_some(Shape::AwsKeyId),
            b'g' if start => github(b, at).then_some(Shape::GitHub),
            b'x' if start => slack(b, at).then_some(Shape::Slack),
            b's' | b'r' if start => stripe(b, at).then_some(Shape::Stripe),
            b'-' => private_key(b, at).then_some(Shape::PrivateKey),
            _ => None,
        };
        if shape.is_some() {
            return shape;
        }
    }
    None
}

#[cfg(test)]
mod tests;
