//! `on_log`: a finished request's facts → the sampler's verdict → its
//! record, handed to admission. The facts are read by [`super::facts`], the
//! verdict and the record come from the pure [`crate::audit::build`].

use super::facts;
pub use super::facts::Seen;
use super::root::Auditor;
use super::stats::Counter;
use crate::audit::build;
use crate::audit::record::Prepared;
use crate::host::Host;

/// What auditing a finished request came to, before admission.
pub enum Outcome {
    /// Kept: the record, and the time it is admitted at (the request's end).
    Keep(Prepared, u64),
    /// Let go by the sampler; `rate_limited_at` when the rate cap did it.
    SampledOut { rate_limited_at: Option<u64> },
    /// The auditor is not configured.
    Inactive,
}

/// `on_log`: audit the request that just finished; `seen` is what the
/// filter saw of it earlier.
pub fn on_log(auditor: &mut Auditor, host: &dyn Host, seen: Seen) {
    if auditor.is_inert() {
        auditor.unaudited();
        return;
    }
    match build_seen(auditor, host, seen) {
        Outcome::Keep(record, at) => auditor.admit(host, record, at),
        Outcome::SampledOut { rate_limited_at } => auditor.sampled_out(rate_limited_at),
        Outcome::Inactive => {}
    }
}

/// A finished request's facts → its record or the sampler's verdict, with
/// policy violations counted; admission is the caller's (the native module
/// builds on a worker and admits on the thread that delivers).
pub fn build(auditor: &mut Auditor, host: &dyn Host) -> Outcome {
    build_seen(auditor, host, Seen::default())
}

/// The rate and the sampling key where `default_rate` alone decides
/// ([`facts::Needs::plain_rate`]): a request is then sampled out from its
/// response code and its key alone ([`crate::audit::sample::plainly_out`]),
/// as [`build`] decides it. The native module's workers count those
/// without building anything.
pub fn plain_rate(auditor: &Auditor) -> Option<(f64, &str)> {
    let a = auditor.active.as_ref()?;
    let s = &a.config.sampling;
    a.needs
        .plain_rate
        .then_some((s.default_rate, s.key.as_str()))
}

fn build_seen(auditor: &mut Auditor, host: &dyn Host, seen: Seen) -> Outcome {
    let draw = auditor.draw();
    let Some(a) = auditor.active.as_mut() else {
        return Outcome::Inactive;
    };
    let key = a.config.sampling.key.as_str();
    let maps = std::mem::take(&mut a.maps);
    let mut early = facts::for_sampling(host, a.needs, key, maps, &mut a.conns, &mut a.naming);
    let cfg = &a.config;
    let sampled = build::sample(
        &early,
        &cfg.access_policy,
        &mut a.sampler,
        &cfg.sampling.key,
        draw,
    );
    if sampled.violation.is_some() {
        auditor.stats.add(Counter::PolicyViolations, 1);
    }
    let Some(a) = auditor.active.as_mut() else {
        return Outcome::Inactive;
    };
    if !sampled.verdict.keep {
        let at = sampled
            .verdict
            .rate_limited
            .then_some(early.now_ms * 1_000_000);
        a.keep_maps(early);
        return Outcome::SampledOut {
            rate_limited_at: at,
        };
    }
    let jwt = a.config.capture.jwt.as_ref();
    let rest = facts::for_record(host, &mut early, jwt, seen, &mut a.conns, &mut a.naming);
    let (record, at) = build::record(&early, rest, sampled, &a.config, &a.redactor);
    a.keep_maps(early);
    Outcome::Keep(record, at)
}
