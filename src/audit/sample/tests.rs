//! Test code only: its parent declares it under #[cfg(test)].
use super::*;
use crate::config::{PrincipalMatch, StatusMatch};
use StatusMatch::{Class, Exact};

/// Builds a `When` one condition at a time.
trait Cond: Sized {
    fn status(self, s: &[StatusMatch]) -> When;
    fn path(self, p: &str) -> When;
    fn method(self, m: &str) -> When;
    fn principal(self, p: &str) -> When;
    fn route(self, r: &str) -> When;
}

impl Cond for When {
    fn status(mut self, s: &[StatusMatch]) -> When {
        self.status = s.to_vec();
        self
    }
    fn path(mut self, p: &str) -> When {
        self.path_prefix = Some(p.into());
        self
    }
    fn method(mut self, m: &str) -> When {
        self.method = Some(m.into());
        self
    }
    fn principal(mut self, p: &str) -> When {
        self.principal = Some(match p.strip_suffix('*') {
            Some(prefix) => PrincipalMatch::Prefix(prefix.into()),
            None => PrincipalMatch::Exact(p.into()),
        });
        self
    }
    fn route(mut self, r: &str) -> When {
        self.route = Some(r.into());
        self
    }
}

fn w() -> When {
    When::default()
}

fn rule(name: &str, when: When, rate: f64) -> Rule {
    Rule {
        name: name.to_string(),
        when,
        rate,
    }
}

fn sampler(default_rate: f64, cap: u64, rules: Vec<Rule>) -> Sampler {
    Sampler::new(&Sampling {
        default_rate,
        key: "x-request-id".into(),
        max_records_per_second: cap,
        rules,
    })
}

const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
const BACKEND: &str = "spiffe://cluster.local/ns/shop/sa/backend";

fn facts<'a>() -> Facts<'a> {
    Facts {
        status: Some(200),
        path: Some("/orders/42?page=2"),
        method: Some("get"),
        principal: Some(FRONTEND),
        destination: Some(BACKEND),
        route: Some("orders"),
        always_keep: false,
    }
}

fn with_status<'a>(code: u32, path: &'a str) -> Facts<'a> {
    Facts {
        status: Some(code),
        path: Some(path),
        ..facts()
    }
}

fn with_path(path: &str) -> Facts<'_> {
    Facts {
        path: Some(path),
        ..facts()
    }
}

fn anonymous<'a>() -> Facts<'a> {
    Facts {
        principal: None,
        ..facts()
    }
}

fn kept_always(f: Facts) -> Facts {
    Facts {
        always_keep: true,
        ..f
    }
}

fn verdict(keep: bool, rule: Option<&str>, rate: f64, rate_limited: bool) -> Verdict {
    Verdict {
        keep,
        rule: rule.map(str::to_string),
        rate,
        rate_limited,
    }
}

/// A small deterministic generator for request-id-like keys.
fn keys(n: usize) -> impl Iterator<Item = String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        format!("{:016x}-{:08x}", x, x >> 21)
    })
}

#[test]
fn unit_interval_is_fnv1a_then_splitmix_with_known_values() {
    // Computed independently (python3) from the FNV-1a 64 vector fnv("a") = 0xaf63dc4c8601ec8c.
    assert_eq!(unit_interval(b""), 0.9576734252420561);
    assert_eq!(unit_interval(b"a"), 0.010753497314070604);
    let uuid = b"90ae957f-1b6c-4c1e-9d3a-2f4b1c7e8a01";
    assert_eq!(unit_interval(uuid), 0.6466584996067439);
}

#[test]
fn same_key_decides_alike_across_samplers() {
    for key in keys(2000) {
        let mut a = sampler(0.3, 0, vec![]);
        let mut b = sampler(0.3, 0, vec![]);
        let va = a.decide(&facts(), Some(key.as_bytes()), 0.0, 0);
        let vb = b.decide(&facts(), Some(key.as_bytes()), 0.99, 5_000);
        assert_eq!(va, vb, "key {key}");
        assert_eq!(va.keep, unit_interval(key.as_bytes()) < 0.3);
    }
}

#[test]
fn kept_fraction_matches_the_rate() {
    for (rate, n, tolerance) in [(0.01, 100_000, 0.0015), (0.5, 100_000, 0.006)] {
        let mut s = sampler(rate, 0, vec![]);
        let kept = keys(n)
            .filter(|k| s.decide(&facts(), Some(k.as_bytes()), 0.0, 0).keep)
            .count();
        let fraction = kept as f64 / n as f64;
        assert!(
            (fraction - rate).abs() < tolerance,
            "rate {rate}: kept {fraction}"
        );
    }
}

#[test]
fn draw_decides_when_the_key_is_absent() {
    let mut s = sampler(0.25, 0, vec![]);
    assert!(s.decide(&facts(), None, 0.2499, 0).keep);
    assert!(!s.decide(&facts(), None, 0.25, 0).keep);
    assert!(!s.decide(&facts(), None, f64::NAN, 0).keep);
}

#[test]
fn rate_one_always_keeps_and_rate_zero_never() {
    let mut one = sampler(1.0, 0, vec![]);
    let mut zero = sampler(0.0, 0, vec![]);
    for (i, key) in keys(500).enumerate() {
        let draw = i as f64 / 500.0;
        assert!(one.decide(&facts(), Some(key.as_bytes()), draw, 0).keep);
        assert!(one.decide(&facts(), None, draw, 0).keep);
        assert!(!zero.decide(&facts(), Some(key.as_bytes()), draw, 0).keep);
        assert!(!zero.decide(&facts(), None, draw, 0).keep);
    }
}

#[test]
fn each_when_field_must_match() {
    let cases: Vec<(When, bool)> = vec![
        (w(), true),
        (w().status(&[Exact(200)]), true),
        (w().status(&[Exact(404), Class(2)]), true),
        (w().status(&[Class(5)]), false),
        (w().path("/orders"), true),
        (w().path("/orders/42?page"), false),
        (w().path("/admin"), false),
        (w().method("GET"), true),
        (w().method("POST"), false),
        (w().principal(FRONTEND), true),
        (w().principal("spiffe://cluster.local/ns/shop/*"), true),
        (w().principal("spiffe://cluster.local/ns/batch/*"), false),
        (w().route("orders"), true),
        (w().route("order"), false),
        (w().method("GET").route("orders"), true),
        (w().method("GET").route("other"), false),
    ];
    for (when, expected) in cases {
        let mut s = sampler(1.0, 0, vec![rule("r", when.clone(), 0.0)]);
        let v = s.decide(&facts(), None, 0.5, 0);
        assert_eq!(v.rule.is_some(), expected, "{when:?}");
    }
}

#[test]
fn unknown_facts_match_no_condition_on_them() {
    let none = Facts::default();
    let conds = [
        w().status(&[Class(2)]),
        w().path("/"),
        w().method("GET"),
        w().principal("*"),
        w().route("orders"),
    ];
    for when in conds {
        let mut s = sampler(1.0, 0, vec![rule("r", when.clone(), 0.0)]);
        assert_eq!(s.decide(&none, None, 0.5, 0).rule, None, "{when:?}");
    }
}

#[test]
fn first_matching_rule_wins_else_default_rate() {
    let rules = vec![
        rule(
            "denied",
            w().status(&[Exact(401), Exact(403), Class(5)]),
            1.0,
        ),
        rule("health", w().path("/healthz"), 0.0),
        rule(
            "shop",
            w().principal("spiffe://cluster.local/ns/shop/*"),
            0.5,
        ),
        rule("all", w(), 0.25),
    ];
    let mut s = sampler(0.1, 0, rules.clone());
    let table: Vec<(Facts, Option<&str>, f64)> = vec![
        (with_status(503, "/healthz"), Some("denied"), 1.0),
        (with_path("/healthz/live"), Some("health"), 0.0),
        (facts(), Some("shop"), 0.5),
        (anonymous(), Some("all"), 0.25),
    ];
    for (f, name, rate) in table {
        let v = s.decide(&f, None, 0.3, 0);
        assert_eq!((v.rule.as_deref(), v.rate), (name, rate), "{f:?}");
        assert_eq!(v.keep, 0.3 < rate);
    }
    let mut no_catch_all = sampler(0.1, 0, rules[..3].to_vec());
    let v = no_catch_all.decide(&anonymous(), None, 0.05, 0);
    assert_eq!(v, verdict(true, None, 0.1, false));
}

#[test]
fn always_keep_overrides_the_rules_and_reports_the_matched_rule() {
    let mut s = sampler(0.0, 1, vec![rule("health", w().path("/healthz"), 0.0)]);
    for _ in 0..3 {
        let v = s.decide(&kept_always(with_path("/healthz")), Some(b"k"), 0.9, 0);
        assert_eq!(v, verdict(true, Some("health"), 0.0, false));
        let v = s.decide(&kept_always(facts()), None, 0.9, 0);
        assert_eq!(v, verdict(true, None, 0.0, false));
    }
}

/// Facts, draw, clock, expected (keep, rate_limited), what the step shows.
type Step<'a> = (&'a Facts<'a>, f64, u64, (bool, bool), &'a str);

#[test]
fn per_second_cap_limits_only_records_kept_below_rate_one() {
    let mut s = sampler(0.5, 2, vec![rule("full", w().method("POST"), 1.0)]);
    let get = facts();
    let post = Facts {
        method: Some("POST"),
        ..facts()
    };
    let denied = kept_always(facts());
    let kept = |s: &mut Sampler, f: &Facts, draw: f64, now: u64| {
        let v = s.decide(f, None, draw, now);
        (v.keep, v.rate_limited)
    };
    let steps: &[Step] = &[
        (
            &get,
            0.9,
            1_000,
            (false, false),
            "sampled out uses no budget",
        ),
        (&get, 0.1, 1_000, (true, false), "first of the second"),
        (&get, 0.1, 1_500, (true, false), "second of the second"),
        (&get, 0.1, 1_999, (false, true), "cap reached"),
        (
            &get,
            0.9,
            1_999,
            (false, false),
            "sampled out is not rate limited",
        ),
        (&post, 0.9, 1_999, (true, false), "rate 1.0 is never capped"),
        (
            &denied,
            0.1,
            1_999,
            (true, false),
            "always_keep is never capped",
        ),
        (
            &get,
            0.1,
            2_000,
            (true, false),
            "a new second resets the window",
        ),
        (&get, 0.1, 2_001, (true, false), "second of the new second"),
        (&get, 0.1, 2_002, (false, true), "cap reached again"),
    ];
    for (f, draw, now, want, what) in steps {
        assert_eq!(kept(&mut s, f, *draw, *now), *want, "{what}");
    }
    let mut unlimited = sampler(0.5, 0, vec![]);
    assert!((0..10_000).all(|_| kept(&mut unlimited, &get, 0.1, 0) == (true, false)));
}

#[test]
fn reports_what_the_filter_can_skip() {
    let status = rule("denied", w().status(&[Class(5)]), 1.0);
    let health = rule("health", w().path("/healthz"), 0.0);
    let partial = rule("batch", w().route("batch"), 0.01);
    let s = |d, rules: &[&Rule]| sampler(d, 0, rules.iter().map(|r| (*r).clone()).collect());
    assert!(s(1.0, &[]).always_keeps());
    assert!(s(1.0, &[&status]).always_keeps());
    assert!(!s(1.0, &[&health]).always_keeps());
    assert!(!s(0.5, &[]).always_keeps());
    assert!(s(1.0, &[&status]).needs_status());
    assert!(!s(0.5, &[&health, &partial]).needs_status());
    assert!(!s(1.0, &[&status, &health]).needs_key());
    assert!(s(1.0, &[&health, &partial]).needs_key());
    assert!(s(0.3, &[]).needs_key());
    assert!(!s(0.0, &[]).needs_key());
}

#[test]
fn a_destination_rule_tells_workloads_apart_where_route_names_do_not() {
    // Istio names every inbound route `default`: only the workload differs.
    let mut when = w().route("default");
    when.destination = Some(PrincipalMatch::Prefix(
        "spiffe://cluster.local/ns/batch/".into(),
    ));
    let mut s = sampler(1.0, 0, vec![rule("batch-workloads", when, 0.0)]);
    let istio = |destination| Facts {
        route: Some("default"),
        destination,
        ..facts()
    };
    let batch = "spiffe://cluster.local/ns/batch/sa/reindex";
    assert!(!s.decide(&istio(Some(batch)), Some(b"k"), 0.5, 0).keep);
    assert!(s.decide(&istio(Some(BACKEND)), Some(b"k"), 0.5, 0).keep);
    assert!(
        s.decide(&istio(None), Some(b"k"), 0.5, 0).keep,
        "unknown destination never matches"
    );
}

#[test]
fn path_prefix_rules_see_the_path_the_upstream_will_read() {
    let mut s = sampler(1.0, 0, vec![rule("health", w().path("/healthz"), 0.0)]);
    for dropped in ["/healthz", "/healthz/live", "/%68ealthz", "/x/../healthz"] {
        assert!(
            !s.decide(&with_path(dropped), Some(b"k"), 0.5, 0).keep,
            "{dropped}"
        );
    }
    for kept in [
        "/healthz/../admin",
        "/healthz/%2e%2e/admin",
        "//admin",
        "/admin/healthz",
    ] {
        assert!(
            s.decide(&with_path(kept), Some(b"k"), 0.5, 0).keep,
            "{kept}"
        );
    }
}

mod plain;
