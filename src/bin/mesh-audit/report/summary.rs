//! The aggregates of a report, built one record at a time: per source
//! principal × destination workload × route (counts by decision,
//! violations, durations), source → destination edges for the access graph,
//! and loss records per emitter and reason.

use super::names::{destination_of, reason_name, route_of, source_of};
use mesh_audit::audit::record::{Decision, Kind, Record};
use std::collections::{BTreeMap, BTreeSet};

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
