//! `mesh-audit report` on a known trail gives known numbers, as a terminal
//! table and as a self-contained HTML page with the access graph.
#![cfg(feature = "cli")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use cli_support::{known_trail, request, run, stdout, Call, Scratch};

#[test]
fn the_text_report_gives_known_counts_and_percentiles() {
    let s = Scratch::new("report-text");
    let file = s.write_lines("trail.jsonl", &known_trail());
    let out = run(&["report", &file], &[]);
    assert_eq!(out.status.code(), Some(0));
    let expected = "\
105 requests, 4 loss records, 2026-11-21T14:00:01.000000Z .. 2026-11-21T14:03:07.000000Z

ACCESS
SOURCE                                      DESTINATION  ROUTE         REQUESTS  ALLOWED  DENIED  ERROR  VIOLATIONS  P50 MS  P99 MS
(no identity)                               backend      GET /healthz         1        1       0      0           0    0.25    0.25
spiffe://cluster.local/ns/ops/sa/console    admin        GET /admin           4        4       0      0           0       2       5
spiffe://cluster.local/ns/shop/sa/frontend  backend      orders             100       90       7      3           2      50      99

VIOLATIONS
RULE        SOURCE                                      ROUTE   REQUESTS
admin-only  spiffe://cluster.local/ns/shop/sa/frontend  orders         2

LOSSES
EMITTER                           REASON        RECORDS LOST  LOSS RECORDS
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  buffer_full             12             2
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  rate_limited             3             1
bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb  rejected                 4             1
";
    assert_eq!(stdout(&out), expected);
}

#[test]
fn the_html_report_is_self_contained_with_the_access_graph() {
    let s = Scratch::new("report-html");
    let mut lines = known_trail();
    let hostile = Call {
        principal: Some("spiffe://evil/ns/x/sa/<script>alert(1)</script>"),
        ..Call::default()
    };
    lines.push(mesh_audit::audit::record::json::to_vec(&request(
        "2026-11-21T14:03:08.000000Z",
        &hostile,
    )));
    let file = s.write_lines("trail.jsonl", &lines);
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

    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<style>"));
    let svg = &html[html.find("<svg").unwrap()..html.find("</svg>").unwrap()];
    for node in [
        ">shop/frontend<",
        ">ops/console<",
        ">(no identity)<",
        ">backend<",
        ">admin<",
    ] {
        assert!(svg.contains(node), "node {node} missing from the graph");
    }
    assert!(
        svg.contains(">100 req · 7 denied · 3 error · 2 violations<"),
        "edge label with counts"
    );
    assert!(
        svg.contains("stroke=\"#c62828\" stroke-width=\"7.0\" stroke-dasharray=\"7 5\""),
        "the denied edge is red and dashed"
    );
    assert!(svg.contains(">4 req<"));
    assert!(
        html.contains("<td class=\"n\">50</td><td class=\"n\">99</td>"),
        "p50/p99 in the table"
    );

    // Nothing is fetched and nothing runs: no scripts, no external references.
    assert!(!html.contains("<script"), "record values are escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    for external in ["src=", "href=", "@import", "url(http"] {
        assert!(
            !html.contains(external),
            "{external} in a self-contained report"
        );
    }
}
