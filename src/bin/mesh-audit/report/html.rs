//! The HTML report: one self-contained file (inline CSS and SVG, no scripts,
//! no external assets) a reviewer can open in any browser. Every value from
//! a record is escaped: principals and paths come from the network.

use super::graph;
use super::rows::{access_rows, ACCESS_HEADER};
use super::summary::Summary;
use crate::escape::html as escape;
use std::fmt::Write;

const CSS: &str = "
body { font-family: Helvetica, Arial, sans-serif; margin: 24px 32px; color: #212121; background: #fafafa; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.meta { color: #616161; margin-top: 0; }
.graph { max-width: 100%; height: auto; background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid #e0e0e0; padding: 4px 10px; text-align: left; }
th { background: #eceff1; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.denied td.d { color: #c62828; font-weight: bold; }
tr.violation td.v { color: #e65100; font-weight: bold; }
";

pub fn render(s: &Summary, file: &str) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(
        out,
        "<title>mesh-audit access report: {}</title>",
        escape(file)
    );
    let _ = writeln!(out, "<style>{CSS}</style>\n</head>\n<body>");
    let _ = writeln!(out, "<h1>mesh-audit access report</h1>");
    let span = match (&s.first_ts, &s.last_ts) {
        (Some(a), Some(b)) => format!(", {} .. {}", escape(a), escape(b)),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "<p class=\"meta\">{}: {} requests, {} loss records{span}. Integrity is not checked here: run <code>mesh-audit verify</code>.</p>",
        escape(file),
        s.requests,
        s.loss_records
    );
    if s.unreadable > 0 {
        let _ = writeln!(
            out,
            "<p class=\"meta\">{} lines skipped: not audit records.</p>",
            s.unreadable
        );
    }

    let _ = writeln!(out, "<h2>Service-to-service access</h2>");
    out.push_str(&graph::render(&s.edges));

    let _ = writeln!(out, "<h2>Access by source, destination and route</h2>");
    let rows = access_rows(s);
    out.push_str("<table class=\"access\">\n<tr>");
    for h in ACCESS_HEADER {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for row in &rows {
        let denied = row[5] != "0";
        let violation = row[7] != "0";
        let class = match (denied, violation) {
            (true, true) => " class=\"denied violation\"",
            (true, false) => " class=\"denied\"",
            (false, true) => " class=\"violation\"",
            (false, false) => "",
        };
        let _ = write!(out, "<tr{class}>");
        for (i, cell) in row.iter().enumerate() {
            let cls = match i {
                0..=2 => "",
                5 => " class=\"n d\"",
                7 => " class=\"n v\"",
                _ => " class=\"n\"",
            };
            let _ = write!(out, "<td{cls}>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");

    if !s.violations.is_empty() {
        let _ = writeln!(out, "<h2>Access-policy violations</h2>");
        out.push_str("<table class=\"violations\">\n<tr><th>RULE</th><th>SOURCE</th><th>ROUTE</th><th>REQUESTS</th></tr>\n");
        for ((rule, source, route), n) in &s.violations {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{n}</td></tr>",
                escape(rule),
                escape(source),
                escape(route)
            );
        }
        out.push_str("</table>\n");
    }

    let _ = writeln!(out, "<h2>Losses</h2>");
    if s.losses.is_empty() {
        out.push_str("<p>No loss reported.</p>\n");
    } else {
        out.push_str("<table class=\"losses\">\n<tr><th>EMITTER</th><th>REASON</th><th>RECORDS LOST</th><th>LOSS RECORDS</th></tr>\n");
        for ((emitter, reason), t) in &s.losses {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(emitter),
                escape(reason),
                t.records,
                t.loss_records
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}
