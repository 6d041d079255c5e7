//! Sampling (SPEC §3): rules in order, first match wins, else `default_rate`.
//!
//! The decision is deterministic in the value of the `sampling.key` header,
//! so every hop of one request decides alike: [`unit_interval`] maps the key
//! to [0,1) and the record is kept when that is below the rate. Without the
//! header a per-record random draw stands in. Denied requests and policy
//! violations are kept whatever the rules say. `max_records_per_second` caps,
//! per worker, only the records kept by a rate below 1.
//!
//! `path_prefix` is matched against the path as the upstream will read it
//! (dot segments resolved, repeated slashes merged, percent-encoded
//! unreserved characters decoded), so `/healthz/../admin` or `//healthz`
//! cannot slip a request under a rule meant for health checks.

use crate::config::{Rule, Sampling, When};

/// What the rules can look at, as the filter knows it at `on_log`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts<'a> {
    pub status: Option<u32>,
    /// The request path; a query string, if still attached, is ignored.
    pub path: Option<&'a str>,
    pub method: Option<&'a str>,
    /// The source principal (SPIFFE ID of the peer certificate).
    pub principal: Option<&'a str>,
    /// The destination principal (SPIFFE ID of the local certificate).
    pub destination: Option<&'a str>,
    pub route: Option<&'a str>,
    /// Denied or a policy violation: kept whatever the rules say, never capped.
    pub always_keep: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub keep: bool,
    /// The matched rule's name; `None` when `default_rate` applied.
    pub rule: Option<String>,
    pub rate: f64,
    /// Sampled in, but refused by `max_records_per_second`.
    pub rate_limited: bool,
}

pub struct Sampler {
    rules: Vec<Rule>,
    default_rate: f64,
    /// Records per second admitted at a rate below 1; 0 = no limit.
    cap: u64,
    /// The second (`now_ms / 1000`) the count below belongs to.
    window: u64,
    admitted: u64,
}

/// Maps `key` to [0,1), the same on every build, platform and Envoy:
/// 64-bit FNV-1a over the bytes, then the SplitMix64 finalizer so that keys
/// differing only in their last bytes still spread over the whole interval;
/// the top 53 bits divided by 2^53.
pub fn unit_interval(key: &[u8]) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Where `default_rate` alone decides (no rules, no access policy, no
/// per-second cap): whether a request is sampled out by its status and its
/// sampling key, as [`Sampler::decide`] decides it. A 2xx or 3xx status
/// settles that it was not denied; `false` means "decide as usual" (it may
/// be kept, a denial, or have no key, when the random draw decides).
pub fn plainly_out(rate: f64, status: Option<u32>, key: Option<&[u8]>) -> bool {
    matches!(status, Some(200..=399)) && key.is_some_and(|k| unit_interval(k) >= rate)
}

fn matches(when: &When, f: &Facts) -> bool {
    let status = when.status.is_empty()
        || f.status
            .is_some_and(|c| when.status.iter().any(|m| m.matches(c)));
    let path = when.path_prefix.as_deref().is_none_or(|prefix| {
        f.path.is_some_and(|p| {
            let p = p.split_once('?').map_or(p, |(path, _)| path);
            normalize_path(p).starts_with(prefix)
        })
    });
    let method = when
        .method
        .as_deref()
        .is_none_or(|m| f.method.is_some_and(|fm| fm.eq_ignore_ascii_case(m)));
    let principal = when
        .principal
        .as_ref()
        .is_none_or(|pm| f.principal.is_some_and(|p| pm.matches(p)));
    let destination = when
        .destination
        .as_ref()
        .is_none_or(|pm| f.destination.is_some_and(|p| pm.matches(p)));
    let route = when.route.as_deref().is_none_or(|r| f.route == Some(r));
    status && path && method && principal && destination && route
}

impl Sampler {
    pub fn new(cfg: &Sampling) -> Sampler {
        Sampler {
            rules: cfg.rules.clone(),
            default_rate: cfg.default_rate,
            cap: cfg.max_records_per_second,
            window: 0,
            admitted: 0,
        }
    }

    /// `key`: the value of the `sampling.key` header, if present. `draw`: a
    /// uniform [0,1) value, used only without a key. `now_ms`: the clock for
    /// the per-second cap.
    pub fn decide(&mut self, facts: &Facts, key: Option<&[u8]>, draw: f64, now_ms: u64) -> Verdict {
        let (rule, rate) = match self.rules.iter().find(|r| matches(&r.when, facts)) {
            Some(r) => (Some(r.name.clone()), r.rate),
            None => (None, self.default_rate),
        };
        let verdict = |keep, rate_limited| Verdict {
            keep,
            rule,
            rate,
            rate_limited,
        };
        if facts.always_keep || rate >= 1.0 {
            return verdict(true, false);
        }
        let sampled = key.map_or(draw, unit_interval) < rate;
        if !sampled {
            return verdict(false, false);
        }
        if self.admit(now_ms) {
            verdict(true, false)
        } else {
            verdict(false, true)
        }
    }

    /// Counts one record against the per-second cap; false when it is reached.
    fn admit(&mut self, now_ms: u64) -> bool {
        if self.cap == 0 {
            return true;
        }
        let second = now_ms / 1000;
        if second != self.window {
            self.window = second;
            self.admitted = 0;
        }
        if self.admitted >= self.cap {
            return false;
        }
        self.admitted += 1;
        true
    }

    /// Whether some rule looks at the response status (the filter must then
    /// decide at `on_log`, not earlier).
    pub fn needs_status(&self) -> bool {
        self.rules.iter().any(|r| !r.when.status.is_empty())
    }

    /// Whether every request is kept whatever its facts (every rate is 1.0);
    /// `decide` is then needed only for the rule name.
    pub fn always_keeps(&self) -> bool {
        self.default_rate >= 1.0 && self.rules.iter().all(|r| r.rate >= 1.0)
    }

    /// Whether the decision can depend on the key or the draw (some rate is
    /// strictly between 0 and 1).
    pub fn needs_key(&self) -> bool {
        let partial = |r: f64| r > 0.0 && r < 1.0;
        partial(self.default_rate) || self.rules.iter().any(|r| partial(r.rate))
    }
}

mod path;
pub use path::normalize_path;

#[cfg(test)]
mod tests;
