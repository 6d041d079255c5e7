//! `mesh-audit report`: who accessed what. Aggregates request records per
//! source principal × destination workload × route (counts by decision,
//! violations, duration percentiles), source → destination edges for the
//! access graph, and loss records per emitter and reason. It does not
//! verify: run `verify` for that.
//!
//! Names follow what tells workloads apart under Istio too, where every
//! inbound route is `default` and every inbound cluster `inbound|PORT||`:
//! the destination is the workload's principal (plus its service when the
//! record names one), and a route without a telling name is its method and
//! path template, numeric and UUID segments folded into `{id}`.

use crate::escape;
use mesh_audit::audit::identity::parse_spiffe;
use mesh_audit::audit::record::{Decision, Kind, LossReason, Record};
use std::collections::{BTreeMap, BTreeSet};
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
    /// (source, destination, route) → counts and durations.
    pub access: BTreeMap<(String, String, String), Access>,
    /// (source, destination) → counts, for the access graph.
    pub edges: BTreeMap<(String, String), Counts>,
    /// (rule, source, route) → requests.
    pub violations: BTreeMap<(String, String, String), u64>,
    /// (emitter, reason) → records lost.
    pub losses: BTreeMap<(String, &'static str), LossTotal>,
    /// Destination principal → the services it was reached as; folded into
    /// the destination's label by [`Summary::finish`].
    pub services: BTreeMap<String, BTreeSet<String>>,
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
                let (destination, service) = destination_of(r);
                if let Some(service) = service {
                    self.services
                        .entry(destination.clone())
                        .or_default()
                        .insert(service);
                }
                let access = self
                    .access
                    .entry((source.clone(), destination.clone(), route.clone()))
                    .or_default();
                access.counts.add(r);
                access
                    .durations
                    .extend(r.duration_ms.filter(|d| d.is_finite()));
                self.edges
                    .entry((source.clone(), destination))
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

    /// Sorts durations so percentiles can be read, and names each
    /// destination workload with the services it was reached as:
    /// `spiffe://…/sa/backend (backend.shop)`.
    pub fn finish(&mut self) {
        for a in self.access.values_mut() {
            a.durations.sort_by(f64::total_cmp);
        }
        let services = std::mem::take(&mut self.services);
        let label = |d: String| match services.get(&d) {
            Some(s) => format!("{d} ({})", s.iter().cloned().collect::<Vec<_>>().join(", ")),
            None => d,
        };
        self.access = std::mem::take(&mut self.access)
            .into_iter()
            .map(|((src, d, route), a)| ((src, label(d), route), a))
            .collect();
        self.edges = std::mem::take(&mut self.edges)
            .into_iter()
            .map(|((src, d), c)| ((src, label(d)), c))
            .collect();
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

/// The route's name when it tells routes apart, else method and path
/// template (`GET /orders/{id}`). Istio names every inbound route
/// `default`, which tells nothing.
pub fn route_of(r: &Record) -> String {
    if let Some(name) = r
        .route
        .as_ref()
        .and_then(|x| x.name.clone())
        .filter(|n| !n.is_empty() && n != "default")
    {
        return name;
    }
    let req = r.request.as_ref();
    let method = req.and_then(|q| q.method.as_deref()).unwrap_or("-");
    let path = req
        .and_then(|q| q.path.as_deref())
        .map_or_else(|| "-".to_string(), path_template);
    format!("{method} {path}")
}

/// `path` with each numeric or UUID segment replaced by `{id}`, so
/// `/orders/42` and `/orders/7` are one route.
pub fn path_template(path: &str) -> String {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.split('/')
        .map(|segment| {
            let numeric = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
            if numeric || is_uuid(segment) {
                "{id}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// 8-4-4-4-12 hex digits, either case.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The destination workload, and the service it was reached as: its
/// principal (the local certificate's SPIFFE ID) when known, else the
/// service alone, else `(unknown)`. A bare service name is qualified with
/// the principal's namespace, so `backend` and `backend.shop.svc…` agree.
pub fn destination_of(r: &Record) -> (String, Option<String>) {
    let principal = r
        .destination
        .as_ref()
        .and_then(|d| d.principal.clone())
        .filter(|p| !p.is_empty());
    match (principal, service_of(r)) {
        (Some(p), Some(s)) => {
            let s = match parse_spiffe(&p).namespace {
                Some(ns) if !s.contains('.') => format!("{s}.{ns}"),
                _ => s,
            };
            (p, Some(s))
        }
        (Some(p), None) => (p, None),
        (None, Some(s)) => (s, None),
        (None, None) => ("(unknown)".to_string(), None),
    }
}

/// The service a request was for. Istio's outbound cluster
/// `outbound|PORT|SUBSET|HOST` names it; its inbound cluster
/// `inbound|PORT||` does not, and then the authority the caller used does;
/// any other cluster name is the operator's own name for the service.
/// Kubernetes names are shortened to `name.namespace`.
pub fn service_of(r: &Record) -> Option<String> {
    let cluster = r
        .route
        .as_ref()
        .and_then(|x| x.cluster.as_deref())
        .filter(|c| !c.is_empty());
    let from_cluster = match cluster.map(|c| c.split('|').collect::<Vec<_>>()) {
        Some(parts) if parts.len() == 4 && matches!(parts[0], "inbound" | "outbound") => {
            Some(parts[3]).filter(|h| !h.is_empty())
        }
        Some(_) => cluster,
        None => None,
    };
    let authority = || {
        let a = r.request.as_ref()?.authority.as_deref()?;
        let host = match a.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => a,
        };
        // An address says where, not what.
        let is_ip = host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[');
        (!host.is_empty() && !is_ip).then_some(host)
    };
    let host = from_cluster.or_else(authority)?;
    Some(match host.split_once(".svc.") {
        Some((name_ns, _)) => name_ns.to_string(),
        None => host.strip_suffix(".svc").unwrap_or(host).to_string(),
    })
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

/// Formatted rows of the access table, shared by the text and HTML reports
/// (each escapes the values for its own output).
pub fn access_rows(s: &Summary) -> Vec<[String; 10]> {
    s.access
        .iter()
        .map(|((source, destination, route), a)| {
            let c = &a.counts;
            [
                source.clone(),
                destination.clone(),
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

pub const ACCESS_HEADER: [&str; 10] = [
    "SOURCE",
    "DESTINATION",
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
    fn numeric_and_uuid_segments_fold_into_a_template() {
        for (path, template) in [
            ("/orders/42", "/orders/{id}"),
            ("/orders/42/items/7?x=1", "/orders/{id}/items/{id}"),
            (
                "/u/3F2504E0-4F89-11D3-9A0C-0305E82C3301/photo",
                "/u/{id}/photo",
            ),
            ("/v2/orders", "/v2/orders"),
            ("/orders/42a", "/orders/42a"),
            ("/", "/"),
            ("/a//b", "/a//b"),
        ] {
            assert_eq!(path_template(path), template, "{path}");
        }
    }

    fn istio(cluster: &str, authority: &str, principal: Option<&str>) -> Record {
        let json = serde_json::json!({
            "kind": "request", "ts": "2026-11-21T14:03:05.000000Z",
            "destination": principal.map(|p| serde_json::json!({"principal": p})),
            "request": {"method": "GET", "authority": authority, "path": "/orders/42"},
            "route": {"name": "default", "cluster": cluster}
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn destinations_are_workloads_and_their_services_under_istio_naming() {
        let backend = "spiffe://cluster.local/ns/shop/sa/backend";
        let cases = [
            // Inbound at the server's sidecar: the cluster says nothing.
            (
                istio(
                    "inbound|8080||",
                    "backend.shop.svc.cluster.local:8080",
                    Some(backend),
                ),
                (backend, Some("backend.shop")),
            ),
            (
                istio("inbound|8080||", "backend:8080", Some(backend)),
                (backend, Some("backend.shop")),
            ),
            (
                istio("inbound|8080||", "10.0.0.9:8080", Some(backend)),
                (backend, None),
            ),
            // Outbound at the client's sidecar: the cluster names the service.
            (
                istio(
                    "outbound|8080||orders.shop.svc.cluster.local",
                    "orders:8080",
                    None,
                ),
                ("orders.shop", None),
            ),
            (istio("backend", "backend", None), ("backend", None)),
            (
                istio("inbound|8080||", "[::1]:8080", None),
                ("(unknown)", None),
            ),
        ];
        for (record, (key, service)) in cases {
            assert_eq!(
                destination_of(&record),
                (key.to_string(), service.map(str::to_string))
            );
        }
        assert_eq!(
            route_of(&istio("inbound|8080||", "b", None)),
            "GET /orders/{id}"
        );
    }

    #[test]
    fn milliseconds_are_printed_without_noise() {
        assert_eq!(fmt_ms(Some(50.0)), "50");
        assert_eq!(fmt_ms(Some(1.2344)), "1.234");
        assert_eq!(fmt_ms(Some(0.5)), "0.5");
        assert_eq!(fmt_ms(None), "-");
    }
}
