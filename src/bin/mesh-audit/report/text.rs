//! The plain-text report: a summary line, then column-aligned ACCESS,
//! VIOLATIONS and LOSSES tables. Every value read from the trail is escaped
//! ([`crate::escape`]).

use super::rows::{access_rows, ACCESS_HEADER};
use super::summary::Summary;
use crate::escape;
use std::fmt::Write;

pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let span = match (&s.first_ts, &s.last_ts) {
        (Some(a), Some(b)) => format!(", {a} .. {b}"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "{} requests, {} loss records{span}",
        s.requests, s.loss_records
    );
    if s.unreadable > 0 {
        let _ = writeln!(out, "{} lines skipped: not audit records", s.unreadable);
    }
    let _ = writeln!(out, "\nACCESS");
    let rows = access_rows(s);
    table(&mut out, &ACCESS_HEADER, &rows, 3);

    if !s.violations.is_empty() {
        let _ = writeln!(out, "\nVIOLATIONS");
        let rows: Vec<[String; 4]> = s
            .violations
            .iter()
            .map(|((rule, source, route), n)| {
                [rule.clone(), source.clone(), route.clone(), n.to_string()]
            })
            .collect();
        table(&mut out, &["RULE", "SOURCE", "ROUTE", "REQUESTS"], &rows, 3);
    }

    let _ = writeln!(out, "\nLOSSES");
    if s.losses.is_empty() {
        let _ = writeln!(out, "none reported");
    } else {
        let rows: Vec<[String; 4]> = s
            .losses
            .iter()
            .map(|((emitter, reason), t)| {
                [
                    emitter.clone(),
                    reason.to_string(),
                    t.records.to_string(),
                    t.loss_records.to_string(),
                ]
            })
            .collect();
        table(
            &mut out,
            &["EMITTER", "REASON", "RECORDS LOST", "LOSS RECORDS"],
            &rows,
            2,
        );
    }
    out
}

/// A column-aligned table; columns from `first_numeric` on are right-aligned.
fn table<const N: usize>(
    out: &mut String,
    header: &[&str; N],
    rows: &[[String; N]],
    first_numeric: usize,
) {
    let rows: Vec<[String; N]> = rows
        .iter()
        .map(|row| row.clone().map(|cell| escape::text(&cell).into_owned()))
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i > 0 {
                l.push_str("  ");
            }
            if i >= first_numeric {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
