//! Test code only: its parent declares it under #[cfg(test)].
use super::*;

fn snake(name: &str) -> String {
    let (mut s, mut f) = (Vec::new(), Vec::new());
    normalise_into(name.as_bytes(), &mut s, &mut f);
    String::from_utf8(s).unwrap()
}

fn verdict(rules: &[Rule], raw: &str, kind: Kind) -> Verdict {
    Scratch::default()
        .examine(raw.as_bytes(), rules, kind)
        .unwrap()
        .verdict
}

#[test]
fn names_normalise_as_a_backend_reads_them() {
    for (raw, want) in [
        ("token", "token"),
        ("TOKEN", "token"),
        ("accessToken", "access_token"),
        ("AccessToken", "access_token"),
        ("access-token", "access_token"),
        ("access.token", "access_token"),
        ("access+token", "access_token"),
        ("access token", "access_token"),
        ("access__token", "access_token"),
        ("APIKey", "api_key"),
        ("X-Amz-Credential", "x_amz_credential"),
        ("sessionID", "session_id"),
        ("oauth2Token", "oauth2_token"),
        ("user[password]", "user[password]"),
    ] {
        assert_eq!(snake(raw), want, "{raw}");
    }
}

#[test]
fn names_are_decoded_repeatedly_before_matching() {
    let mut s = Scratch::default();
    for (raw, want) in [
        ("%74oken", "token"),
        ("%2574oken", "token"),
        ("%252574oken", "token"),
        ("api%20key", "api_key"),
        ("api%2Bkey", "api_key"),
        ("%25zz", "%zz"),
    ] {
        s.examine(raw.as_bytes(), &[], Kind::Param).unwrap();
        assert_eq!(String::from_utf8(s.snake.clone()).unwrap(), want, "{raw}");
    }
    assert!(s.examine(b"%zz", &[], Kind::Param).is_err());
    assert!(s.examine(b"%ff", &[], Kind::Param).is_err());
}

#[test]
fn credential_names_match_by_pattern() {
    for header in [
        "authorization",
        "x-auth-token",
        "x-access-token",
        "api-key",
        "apikey",
        "x-api-key",
        "private-token",
        "x-goog-api-key",
        "ocp-apim-subscription-key",
        "x-vault-token",
        "x-amz-security-token",
        "x-csrf-token",
        "x-session-token",
        "x-jwt",
        "cookie",
        "x-client-secret",
        "x-password",
        "x-pwd",
        "x-signature",
        "x-credential",
    ] {
        assert_eq!(
            verdict(&[], header, Kind::Header),
            Verdict::Default,
            "{header}"
        );
    }
    for header in [
        "user-agent",
        "content-type",
        "x-request-id",
        "accept",
        "x-forwarded-for",
        "traceparent",
        "host",
        "x-keyboard",
        "code",
        "state",
    ] {
        assert_eq!(
            verdict(&[], header, Kind::Header),
            Verdict::None,
            "{header}"
        );
    }
    for param in [
        "key",
        "sig",
        "code",
        "state",
        "assertion",
        "x_amz_date",
        "X-Amz-Date",
        "passWord",
        "a[b][token]",
    ] {
        assert_eq!(
            verdict(&[], param, Kind::Param),
            Verdict::Default,
            "{param}"
        );
    }
    for param in [
        "page",
        "limit",
        "sort",
        "monkey",
        "keyword",
        "codes",
        "statement",
        "q",
    ] {
        assert_eq!(verdict(&[], param, Kind::Param), Verdict::None, "{param}");
    }
}

#[test]
fn explicit_rules_win_and_keep_covers_only_the_component_it_names() {
    let rules = [
        Rule::new("code", Action::Keep),
        Rule::new("user", Action::Keep),
        Rule::new("accessToken", Action::Hash),
        Rule::new("profile", Action::Drop),
    ];
    assert_eq!(verdict(&rules, "code", Kind::Param), Verdict::Rule(0));
    assert_eq!(verdict(&rules, "CODE", Kind::Param), Verdict::Rule(0));
    assert_eq!(
        verdict(&rules, "access-token", Kind::Param),
        Verdict::Rule(2)
    );
    assert_eq!(
        verdict(&rules, "access_token", Kind::Param),
        Verdict::Rule(2)
    );
    // `user` is kept, `password` is still a default.
    assert_eq!(
        verdict(&rules, "user[password]", Kind::Param),
        Verdict::Default
    );
    assert_eq!(verdict(&rules, "user[name]", Kind::Param), Verdict::None);
    // The strongest redaction of the components wins.
    assert_eq!(
        verdict(&rules, "profile[token]", Kind::Param),
        Verdict::Rule(3)
    );
}

#[test]
fn default_redactions_are_listed_without_array_suffixes() {
    for (snake, want) in [
        ("api_key[]", "api_key"),
        ("token[0]", "token"),
        ("token[0][]", "token"),
        ("user[password]", "user[password]"),
        ("[]", "[]"),
        ("token", "token"),
    ] {
        assert_eq!(listed(snake.as_bytes()), want, "{snake}");
    }
}
