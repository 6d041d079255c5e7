//! The host an auditor is born with, and the part of the core's `Proxy`
//! that every native host other than the main thread's shares: it reads
//! (configuration, environment, clock, randomness) and logs, and does
//! nothing else. Delivery, timers, metrics and replies belong to the main
//! thread's host; shared data is a proxy-wasm facility the module has no
//! use for (its configuration lives as long as the process).

use super::{fill_random, log, now_nanos};
use crate::host::{Attributes, Headers, HostError, Level, Map, MetricKind, Proxy};

/// A host that only reads: what it gives the core beyond the clock and
/// randomness. Implementing it gives the whole [`Proxy`].
pub trait Reader {
    /// The plugin configuration, when this host has one.
    fn config(&self) -> Option<&[u8]>;
    /// Whether it reads Envoy's environment (as the VM's).
    fn reads_env(&self) -> bool;
    /// Whether a line at `level` goes to Envoy's log.
    fn says(&self, level: Level) -> bool;
}

impl<T: Reader> Proxy for T {
    fn plugin_config(&self) -> Option<Vec<u8>> {
        self.config().map(<[u8]>::to_vec)
    }
    fn env_var(&self, name: &str) -> Option<String> {
        self.reads_env().then(|| super::env_var(name)).flatten()
    }
    fn fill_random(&self, buf: &mut [u8]) -> bool {
        fill_random(buf)
    }
    fn now_nanos(&self) -> u64 {
        now_nanos()
    }
    fn set_tick_period_ms(&self, _: u64) {}
    fn dispatch(&self, _: &str, _: &[(&str, &str)], _: &[u8], _: u64) -> Result<u32, HostError> {
        // Only the main thread delivers.
        Err(HostError::InternalFailure)
    }
    fn define_metric(&self, _: MetricKind, _: &str) -> Option<u32> {
        None
    }
    fn increment_metric(&self, _: u32, _: i64) {}
    fn record_metric(&self, _: u32, _: u64) {}
    fn shared_data(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
    fn set_shared_data(&self, _: &str, _: &[u8]) -> bool {
        false
    }
    fn log(&self, level: Level, message: &str) {
        if self.says(level) {
            log(level, message);
        }
    }
    fn send_local_reply(&self, _: u32, _: &[u8], _: &[(&str, &str)]) {}
    fn done(&self) {}
}

/// The host an emitter is born with: only randomness and the clock.
pub struct Seed;

impl Attributes for Seed {
    fn property_or_error(&self, _: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        Ok(None)
    }
    fn headers(&self, _: Map) -> Headers {
        Headers::default()
    }
}

impl Reader for Seed {
    fn config(&self) -> Option<&[u8]> {
        None
    }
    fn reads_env(&self) -> bool {
        false
    }
    fn says(&self, _: Level) -> bool {
        true
    }
}
