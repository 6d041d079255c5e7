//! `redacted` is truthful (SPEC §3.1): secrets planted in arbitrary
//! carriers, several per request, names in any case, values percent-encoded
//! at random, go through the compiled filter twice, once to a JSON-lines
//! sink and once to an OTLP one. Each carrier's field must be listed in
//! `redacted`, and the raw value of no listed field (as sent, or decoded)
//! may occur anywhere in either encoded batch.

use super::carriers::{config, contains, flush, request, secret, Place, CARRIERS};
use crate::host::fixtures::configured;
use crate::host::Host;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use proptest::prelude::*;
use prost::Message;
use serde_json::Value;
use std::cell::RefCell;

thread_local! {
    /// One configured filter per encoding, reused across cases.
    static HOSTS: RefCell<Option<(Host, Host)>> = const { RefCell::new(None) };
}

/// Percent-encodes the bytes of `s` the mask selects (`%XX`, random case).
fn encode(s: &str, mask: &[bool], lower: &[bool]) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        if mask.get(i).copied().unwrap_or(false) {
            let hex = format!("%{b:02X}");
            out.push_str(&if lower.get(i).copied().unwrap_or(false) {
                hex.to_lowercase()
            } else {
                hex
            });
        } else {
            out.push(b as char);
        }
    }
    out
}

fn flip_case(s: &str, flips: &[bool]) -> String {
    s.chars()
        .zip(flips.iter().chain(std::iter::repeat(&false)))
        .map(|(c, f)| if *f { c.to_ascii_uppercase() } else { c })
        .collect()
}

/// The `redacted` list of each record, by request id.
fn redacted_lists(lines: &[String]) -> Vec<(String, Vec<String>)> {
    lines
        .iter()
        .filter_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            let id = v["request_id"].as_str()?.to_string();
            let names = v["redacted"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Some((id, names))
        })
        .collect()
}

fn otlp_lines(body: &[u8]) -> Vec<String> {
    let export = ExportLogsServiceRequest::decode(body).unwrap();
    let mut out = Vec::new();
    for rl in export.resource_logs {
        for sl in rl.scope_logs {
            for log in sl.log_records {
                if let Some(Any::StringValue(s)) = log.body.and_then(|b| b.value) {
                    out.push(s);
                }
            }
        }
    }
    out
}

fn carriers() -> impl Strategy<Value = Vec<usize>> {
    proptest::sample::subsequence((0..CARRIERS.len()).collect::<Vec<_>>(), 1..7).prop_map(
        |mut picked| {
            // One `:path` per request: keep the first path carrier only.
            let mut seen_path = false;
            picked.retain(|i| {
                let is_path = matches!(CARRIERS[*i].0, Place::Path(_));
                let keep = !(is_path && seen_path);
                seen_path |= is_path;
                keep
            });
            picked
        },
    )
}

fn bits() -> impl Strategy<Value = Vec<bool>> {
    proptest::collection::vec(any::<bool>(), 48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_raw_value_of_a_listed_field_occurs_in_either_encoding(
        picked in carriers(),
        salt in any::<u64>(),
        name_case in bits(),
        enc in bits(),
        lower in bits(),
        shuffle in any::<u64>(),
    ) {
        HOSTS.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (jsonl, otlp) =
                cell.get_or_insert_with(|| (configured(&config("jsonl")), configured(&config("otlp"))));
            let mut planted = Vec::new();
            for (n, i) in picked.iter().enumerate() {
                let raw = secret(*i, salt.wrapping_add(n as u64));
                let (place, sent) = match CARRIERS[*i].0 {
                    // A backend decodes the query and path: plant the secret encoded.
                    Place::Path(t) => (Place::Path(t), encode(&raw, &enc, &lower)),
                    Place::Header(name, t) => {
                        let name: &'static str = Box::leak(flip_case(name, &name_case).into_boxed_str());
                        (Place::Header(name, t), raw.clone())
                    }
                    other => (other, raw.clone()),
                };
                planted.push((*i, place, raw, sent));
            }
            // Arbitrary order of the headers.
            let rotate = (shuffle as usize) % planted.len().max(1);
            planted.rotate_left(rotate);
            let id = format!("truthful-{salt:016x}");
            let places: Vec<(Place, String)> =
                planted.iter().map(|(_, p, _, sent)| (*p, sent.clone())).collect();
            jsonl.run(request(&id, &places));
            otlp.run(request(&id, &places));
            let json_bodies = flush(jsonl);
            let otlp_bodies = flush(otlp);
            prop_assert!(!json_bodies.is_empty() && !otlp_bodies.is_empty());

            let json_lines: Vec<String> = json_bodies
                .iter()
                .flat_map(|b| String::from_utf8_lossy(b).lines().map(str::to_string).collect::<Vec<_>>())
                .collect();
            let otlp_records: Vec<String> = otlp_bodies.iter().flat_map(|b| otlp_lines(b)).collect();
            for (encoding, lines) in [("jsonl", &json_lines), ("otlp", &otlp_records)] {
                let lists = redacted_lists(lines);
                let listed = lists
                    .iter()
                    .find(|(rid, _)| *rid == id)
                    .map(|(_, l)| l.clone())
                    .unwrap_or_default();
                for (i, place, _, _) in &planted {
                    let want = CARRIERS[*i].1;
                    prop_assert!(listed.iter().any(|l| l == want),
                        "{encoding}: {place:?} not listed as {want}: {listed:?}");
                }
            }
            for (_, place, raw, sent) in &planted {
                for body in json_bodies.iter().chain(&otlp_bodies) {
                    prop_assert!(!contains(body, raw), "{place:?}: raw {raw} in a batch");
                    prop_assert!(!contains(body, sent), "{place:?}: sent {sent} in a batch");
                }
            }
            Ok(())
        })?;
    }
}
