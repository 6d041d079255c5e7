//! When a failed batch is tried again.

use super::Limits;

/// Exponential backoff with "equal jitter": half the step fixed, half random,
/// so retries from many workers spread out but never collapse to zero.
pub fn backoff_ms(limits: &Limits, attempts: u32, jitter: f64) -> u64 {
    let exp = attempts.saturating_sub(1).min(32);
    let step = limits
        .backoff_base_ms
        .saturating_mul(1u64 << exp)
        .min(limits.backoff_max_ms);
    let jitter = jitter.clamp(0.0, 1.0);
    step / 2 + ((step - step / 2) as f64 * jitter) as u64
}
