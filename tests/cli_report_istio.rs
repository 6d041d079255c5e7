//! `mesh-audit report` on a trail written by Istio sidecars, where every
//! inbound route is `default` and every inbound cluster `inbound|PORT||`:
//! workloads are still told apart (by `destination.principal` and the
//! service the caller addressed), numeric and UUID path segments fold into
//! `{id}`, and hostile characters in record values are shown escaped.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use cli_support::{run, stdout, Scratch};
use serde_json::json;

const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
const REPORTER: &str = "spiffe://cluster.local/ns/batch/sa/reporter";
const BACKEND: &str = "spiffe://cluster.local/ns/shop/sa/backend";
const PAYMENTS: &str = "spiffe://cluster.local/ns/shop/sa/payments";

/// A request record as an Istio sidecar's filter writes it, inbound.
fn inbound(source: &str, destination: &str, port: u16, authority: &str, path: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "kind": "request", "ts": "2026-11-21T14:03:05.000000Z",
        "source": {"principal": source},
        "destination": {"address": format!("10.0.0.9:{port}"), "principal": destination},
        "request": {"method": "GET", "authority": authority, "path": path},
        "response": {"code": 200},
        "route": {"name": "default", "cluster": format!("inbound|{port}||")},
        "duration_ms": 1.0, "decision": "allowed"
    }))
    .unwrap()
}

fn trail() -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = (1..=40)
        .map(|i| {
            inbound(
                FRONTEND,
                BACKEND,
                8080,
                "backend.shop.svc.cluster.local:8080",
                &format!("/orders/{i}"),
            )
        })
        .collect();
    lines.push(inbound(
        FRONTEND,
        BACKEND,
        8080,
        "backend:8080",
        "/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    ));
    for i in 0..3 {
        lines.push(inbound(
            REPORTER,
            PAYMENTS,
            9090,
            "payments.shop.svc.cluster.local",
            &format!("/invoices/{i}/pdf"),
        ));
    }
    lines
}

#[test]
fn istio_named_records_are_reported_per_workload_and_path_template() {
    let s = Scratch::new("report-istio");
    let file = s.write_lines("trail.jsonl", &trail());
    let out = run(&["report", &file], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("SOURCE"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    let backend = format!("{BACKEND} (backend.shop)");
    let payments = format!("{PAYMENTS} (payments.shop)");
    assert_eq!(
        rows,
        [
            vec![
                REPORTER,
                payments.as_str(),
                "GET /invoices/{id}/pdf",
                "3",
                "3",
                "0",
                "0",
                "0",
                "1",
                "1"
            ],
            vec![
                FRONTEND,
                backend.as_str(),
                "GET /orders/{id}",
                "41",
                "41",
                "0",
                "0",
                "0",
                "1",
                "1"
            ],
        ],
        "{text}"
    );
}

#[test]
fn the_access_graph_has_one_node_per_destination_workload() {
    let s = Scratch::new("report-istio-html");
    let file = s.write_lines("trail.jsonl", &trail());
    let html_path = s.path("report.html");
    let out = run(
        &[
            "report",
            &file,
            "--format",
            "html",
            "-o",
            html_path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    let svg = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap()];
    for node in [
        ">shop/frontend<",
        ">batch/reporter<",
        ">shop/backend (backend.shop)<",
        ">shop/payments (payments.shop)<",
    ] {
        assert!(svg.contains(node), "node {node} missing from the graph");
    }
    assert!(
        !svg.contains("inbound|"),
        "Istio's cluster names are not nodes"
    );
    assert!(svg.contains(">41 req<") && svg.contains(">3 req<"));
}

#[test]
fn control_and_bidi_characters_in_record_values_are_shown_escaped() {
    let s = Scratch::new("report-istio-hostile");
    // Reads as ".../sa/admin" in a terminal that honours the override, and
    // clears the screen in one that honours the escape sequence.
    let hostile = "spiffe://cluster.local/ns/x/sa/\u{202E}nimda\u{1b}[2J";
    let mut lines = trail();
    lines.push(inbound(hostile, BACKEND, 8080, "backend", "/orders/1"));
    let file = s.write_lines("trail.jsonl", &lines);

    let text = stdout(&run(&["report", &file], &[]));
    assert!(
        !text.contains('\u{202E}') && !text.contains('\u{1b}'),
        "{text:?}"
    );
    assert!(
        text.contains("spiffe://cluster.local/ns/x/sa/\\u{202E}nimda\\u{001B}[2J"),
        "{text}"
    );

    let html_path = s.path("report.html");
    run(
        &[
            "report",
            &file,
            "--format",
            "html",
            "-o",
            html_path.to_str().unwrap(),
        ],
        &[],
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(!html.contains('\u{202E}') && !html.contains('\u{1b}'));
    assert!(html.contains("\\u{202E}nimda"));
}
