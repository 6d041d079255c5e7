//! Test code only: its parent declares it under #[cfg(test)].
use super::*;
use proptest::prelude::*;
use serde_json::json;

// --- a tiny protobuf encoder for building payloads by hand

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(num: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(num << 3 | 2, &mut out);
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

fn string_value(s: &str) -> Vec<u8> {
    field(3, s.as_bytes())
}

fn number_value(x: f64) -> Vec<u8> {
    let mut out = vec![2 << 3 | 1];
    out.extend_from_slice(&x.to_bits().to_le_bytes());
    out
}

fn bool_value(b: bool) -> Vec<u8> {
    vec![4 << 3, u8::from(b)]
}

fn null_value() -> Vec<u8> {
    vec![1 << 3, 0]
}

/// A `Struct` body: entries `{key = 1, value = 2}` in field 1.
fn structure(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in entries {
        let mut e = field(1, k.as_bytes());
        e.extend(field(2, v));
        out.extend(field(1, &e));
    }
    out
}

fn struct_value(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    field(5, &structure(entries))
}

fn list_value(values: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = values.iter().flat_map(|v| field(1, v)).collect();
    field(6, &body)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn json_of(f: &Fields<Value>) -> String {
    serde_json::to_string(f).unwrap()
}

fn payload() -> Vec<u8> {
    structure(&[
        ("iss", string_value("https://idp.example")),
        ("sub", string_value("alice")),
        ("exp", number_value(1_700_000_000.0)),
        ("score", number_value(-2.5)),
        ("admin", bool_value(true)),
        ("nothing", null_value()),
        (
            "groups",
            list_value(&[
                string_value("ops"),
                string_value("dev"),
                list_value(&[number_value(1.0)]),
            ]),
        ),
        (
            "realm",
            struct_value(&[
                ("roles", list_value(&[string_value("a")])),
                ("n", struct_value(&[])),
            ]),
        ),
        ("email", string_value("alice@example.com")),
    ])
}

#[test]
fn decodes_a_struct_written_byte_by_byte() {
    // Struct { fields: {"sub": Value { string_value: "alice" }} }
    let bytes = [
        0x0a, 0x0e, 0x0a, 0x03, b's', b'u', b'b', 0x12, 0x07, 0x1a, 0x05, b'a', b'l', b'i', b'c',
        b'e',
    ];
    assert_eq!(bytes.to_vec(), structure(&[("sub", string_value("alice"))]));
    assert_eq!(
        json_of(&claims_from_struct(&bytes, &names(&["sub"]))),
        r#"{"sub":"alice"}"#
    );
}

#[test]
fn selects_wanted_claims_in_configured_order() {
    let got = claims_from_struct(
        &payload(),
        &names(&["email", "sub", "missing", "exp", "sub"]),
    );
    assert_eq!(
        json_of(&got),
        r#"{"email":"alice@example.com","sub":"alice","exp":1700000000}"#
    );
}

#[test]
fn decodes_every_value_kind_nested() {
    let got = claims_from_struct(
        &payload(),
        &names(&["score", "admin", "nothing", "groups", "realm"]),
    );
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        json!({"score": -2.5, "admin": true, "nothing": null, "groups": ["ops", "dev", [1]],
               "realm": {"roles": ["a"], "n": {}}})
    );
}

#[test]
fn numbers_become_integers_when_exact_and_null_when_not_json() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0"),
        (-0.0, "0"),
        (-7.0, "-7"),
        (9_007_199_254_740_992.0, "9007199254740992"),
        (1e300, "1e+300"),
        (0.5, "0.5"),
        (f64::NAN, "null"),
        (f64::INFINITY, "null"),
    ];
    for (x, want) in cases {
        let got = claims_from_struct(&structure(&[("n", number_value(*x))]), &names(&["n"]));
        assert_eq!(json_of(&got), format!(r#"{{"n":{want}}}"#), "{x}");
    }
}

#[test]
fn tolerates_unknown_fields_repeats_and_empty_values() {
    let mut bytes = structure(&[("sub", string_value("old"))]);
    bytes.extend([7 << 3, 42]); // unknown varint field in Struct
    bytes.extend(structure(&[
        ("sub", string_value("new")),
        ("empty", vec![]),
    ]));
    let mut entry = field(1, b"bare"); // entry without a value
    entry.extend([3 << 3 | 5, 1, 2, 3, 4]); // unknown fixed32 field in the entry
    bytes.extend(field(1, &entry));
    let mut v = string_value("first");
    v.extend(bool_value(false)); // last oneof member wins
    bytes.extend(structure(&[("kind", v), ("bad", vec![0xff])]));
    let got = claims_from_struct(&bytes, &names(&["sub", "empty", "bare", "kind"]));
    assert_eq!(
        json_of(&got),
        r#"{"sub":"new","empty":null,"bare":null,"kind":false}"#
    );
}

#[test]
fn unwanted_claims_are_not_decoded() {
    let bytes = structure(&[("junk", vec![0xff, 0xff]), ("sub", string_value("alice"))]);
    assert_eq!(
        json_of(&claims_from_struct(&bytes, &names(&["sub"]))),
        r#"{"sub":"alice"}"#
    );
    assert_eq!(
        json_of(&claims_from_struct(&bytes, &names(&["junk", "sub"]))),
        "{}"
    );
}

#[test]
fn non_utf8_strings_are_replaced_lossily() {
    let bytes = structure(&[("sub", field(3, &[b'a', 0xff]))]);
    assert_eq!(
        json_of(&claims_from_struct(&bytes, &names(&["sub"]))),
        "{\"sub\":\"a\u{fffd}\"}"
    );
}

#[test]
fn garbage_yields_no_claims() {
    let wanted = names(&["sub"]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("group wire type", vec![0x0b, 0x0c]),
        ("length past the end", vec![0x0a, 0x7f, 0x00]),
        (
            "huge length",
            vec![
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ),
        ("overlong varint", vec![0x80; 11]),
        (
            "truncated fixed64",
            structure(&[("sub", number_value(1.0)[..5].to_vec())]),
        ),
        ("invalid json", b"{\"sub\": ".to_vec()),
        ("json array", b"[1]".to_vec()),
    ];
    for (what, bytes) in cases {
        assert!(claims_from_struct(&bytes, &wanted).is_empty(), "{what}");
    }
    assert!(claims_from_struct(&[], &wanted).is_empty());
}

#[test]
fn every_truncation_of_a_payload_decodes_or_yields_nothing() {
    let full = payload();
    let wanted = names(&[
        "iss", "sub", "exp", "score", "admin", "nothing", "groups", "realm", "email",
    ]);
    let complete = claims_from_struct(&full, &wanted);
    assert_eq!(complete.0.len(), 9);
    for n in 0..full.len() {
        let got = claims_from_struct(&full[..n], &wanted);
        for (k, v) in &got.0 {
            assert_eq!(complete.get(k), Some(v), "prefix {n}: {k}");
        }
    }
}

fn nested(depth: usize) -> Vec<u8> {
    let mut v = string_value("deep");
    for i in 0..depth {
        v = if i % 2 == 0 {
            list_value(&[v])
        } else {
            struct_value(&[("x", v)])
        };
    }
    structure(&[("deep", v), ("sub", string_value("alice"))])
}

#[test]
fn nesting_is_bounded() {
    let wanted = names(&["deep", "sub"]);
    assert_eq!(claims_from_struct(&nested(MAX_DEPTH), &wanted).0.len(), 2);
    assert!(claims_from_struct(&nested(MAX_DEPTH + 1), &wanted).is_empty());
    assert!(claims_from_struct(&nested(100), &wanted).is_empty());
    assert!(claims_from_struct(&nested(1_000), &wanted).is_empty());
    assert_eq!(
        claims_from_struct(&nested(1_000), &names(&["sub"])).0.len(),
        1
    );
}

#[test]
fn accepts_json_payloads() {
    let got = claims_from_struct(
        b"  {\"sub\":\"alice\",\"exp\":1700000000,\"roles\":[\"a\"],\"x\":1}",
        &names(&["roles", "sub", "exp", "nope"]),
    );
    assert_eq!(
        json_of(&got),
        r#"{"roles":["a"],"sub":"alice","exp":1700000000}"#
    );
}

#[test]
fn nothing_wanted_nothing_decoded() {
    assert!(claims_from_struct(&payload(), &[]).is_empty());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = claims_from_struct(&bytes, &names(&["sub", "iss", "groups"]));
    }

    #[test]
    fn mutated_payloads_never_panic(flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..8)) {
        let mut bytes = payload();
        for (at, b) in flips {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        let _ = claims_from_struct(&bytes, &names(&["sub", "groups", "realm", "exp"]));
    }
}
