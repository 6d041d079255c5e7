//! `mesh-audit report`: who accessed what. Aggregates request records per
//! source principal × route (counts by decision, violations, duration
//! percentiles), source → destination edges for the access graph, and loss
//! records per emitter and reason. It does not verify: run `verify` for that.

use mesh_audit::audit::record::{Decision, Kind, LossReason, Record};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The source label of a request without a peer identity (no mTLS).
pub const NO_IDENTITY: &str = "(no identity)";

#[derive(Default, Debug, Clone, PartialEq)]
pub struct Counts {
    pub total: u64,
    pub allowed: u64,
    pub denied: u64,
    pub error: u64,
    pub violations: u64,
}

impl Counts {
    fn add(&mut self, r: &Record) {
        self.total += 1;
        match r.decision {
            Some(Decision::Allowed) => self.allowed += 1,
            Some(Decision::Denied) => self.denied += 1,
            Some(Decision::Error) => self.error += 1,
            None => {}
        }
        self.violations += u64::from(r.violation.is_some());
    }
}

#[derive(Default, Debug)]
pub struct Access {
    pub counts: Counts,
    /// Every `duration_ms` seen; sorted by [`Summary::finish`].
    pub durations: Vec<f64>,
}

#[derive(Default, Debug, Clone, PartialEq)]
pub struct LossTotal {
    pub records: u64,
    pub loss_records: u64,
}

#[derive(Default, Debug)]
pub struct Summary {
    pub requests: u64,
    pub loss_records: u64,
    pub unreadable: u64,
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
    /// (source, route) → counts and durations.
    pub access: BTreeMap<(String, String), Access>,
    /// (source, destination) → counts, for the access graph.
    pub edges: BTreeMap<(String, String), Counts>,
    /// (rule, source, route) → requests.
    pub violations: BTreeMap<(String, String, String), u64>,
    /// (emitter, reason) → records lost.
    pub losses: BTreeMap<(String, &'static str), LossTotal>,
}

impl Summary {
    pub fn add_line(&mut self, bytes: &[u8]) {
        match serde_json::from_slice::<Record>(bytes) {
            Ok(r) => self.add(&r),
            Err(_) => self.unreadable += 1,
        }
    }

    pub fn add(&mut self, r: &Record) {
        if !matches!(&self.first_ts, Some(t) if *t <= r.ts) {
            self.first_ts = Some(r.ts.clone());
        }
        if !matches!(&self.last_ts, Some(t) if *t >= r.ts) {
            self.last_ts = Some(r.ts.clone());
        }
        match r.kind {
            Kind::Loss => {
                self.loss_records += 1;
                let emitter = r.emitter.clone().unwrap_or_default();
                let total = self
                    .losses
                    .entry((emitter, reason_name(r.loss_reason())))
                    .or_default();
                total.records += r.count.unwrap_or(0);
                total.loss_records += 1;
            }
            // They vouch for the trail; `verify` reads them.
            Kind::Seal | Kind::Close => {}
            Kind::Request => {
                self.requests += 1;
                let source = source_of(r);
                let route = route_of(r);
                let access = self
                    .access
                    .entry((source.clone(), route.clone()))
                    .or_default();
                access.counts.add(r);
                access
                    .durations
                    .extend(r.duration_ms.filter(|d| d.is_finite()));
                self.edges
                    .entry((source.clone(), destination_of(r)))
                    .or_default()
                    .add(r);
                if let Some(rule) = &r.violation {
                    *self
                        .violations
                        .entry((rule.clone(), source, route))
                        .or_default() += 1;
                }
            }
        }
    }

    /// Sorts durations so percentiles can be read.
    pub fn finish(&mut self) {
        for a in self.access.values_mut() {
            a.durations.sort_by(f64::total_cmp);
        }
    }
}

fn reason_name(reason: Option<LossReason>) -> &'static str {
    match reason {
        Some(LossReason::BufferFull) => "buffer_full",
        Some(LossReason::RateLimited) => "rate_limited",
        Some(LossReason::Rejected) => "rejected",
        None => "unknown",
    }
}

pub fn source_of(r: &Record) -> String {
    r.source
        .as_ref()
        .and_then(|s| s.principal.clone())
        .unwrap_or_else(|| NO_IDENTITY.to_string())
}

/// `route.name`, else method and path.
pub fn route_of(r: &Record) -> String {
    if let Some(name) = r
        .route
        .as_ref()
        .and_then(|x| x.name.clone())
        .filter(|n| !n.is_empty())
    {
        return name;
    }
    let req = r.request.as_ref();
    let method = req.and_then(|q| q.method.as_deref()).unwrap_or("-");
    let path = req.and_then(|q| q.path.as_deref()).unwrap_or("-");
    format!("{method} {path}")
}

/// The destination service: route cluster, else destination principal, else authority.
pub fn destination_of(r: &Record) -> String {
    r.route
        .as_ref()
        .and_then(|x| x.cluster.clone())
        .or_else(|| r.destination.as_ref().and_then(|d| d.principal.clone()))
        .or_else(|| r.request.as_ref().and_then(|q| q.authority.clone()))
        .unwrap_or_else(|| "(unknown)".to_string())
}

/// Nearest-rank percentile of sorted `values`: the smallest value with at
/// least `p` percent of the values at or below it.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Milliseconds with at most three decimals, without trailing zeros.
pub fn fmt_ms(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) => {
            let s = format!("{v:.3}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

/// Formatted rows of the access table, shared by the text and HTML reports.
pub fn access_rows(s: &Summary) -> Vec<[String; 9]> {
    s.access
        .iter()
        .map(|((source, route), a)| {
            let c = &a.counts;
            [
                source.clone(),
                route.clone(),
                c.total.to_string(),
                c.allowed.to_string(),
                c.denied.to_string(),
                c.error.to_string(),
                c.violations.to_string(),
                fmt_ms(percentile(&a.durations, 50.0)),
                fmt_ms(percentile(&a.durations, 99.0)),
            ]
        })
        .collect()
}

pub const ACCESS_HEADER: [&str; 9] = [
    "SOURCE",
    "ROUTE",
    "REQUESTS",
    "ALLOWED",
    "DENIED",
    "ERROR",
    "VIOLATIONS",
    "P50 MS",
    "P99 MS",
];

pub fn render_text(s: &Summary) -> String {
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
    table(&mut out, &ACCESS_HEADER, &rows, 2);

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
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
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
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn milliseconds_are_printed_without_noise() {
        assert_eq!(fmt_ms(Some(50.0)), "50");
        assert_eq!(fmt_ms(Some(1.2344)), "1.234");
        assert_eq!(fmt_ms(Some(0.5)), "0.5");
        assert_eq!(fmt_ms(None), "-");
    }
}
