//! mesh-audit: an Envoy proxy-wasm filter that records who called what, how,
//! and what happened, and delivers a tamper-evident audit trail.
//!
//! All logic lives in modules that never touch the host directly; the host is
//! reached through the [`host`] traits. This file only wires the proxy-wasm entry
//! point; the Envoy dynamic module (`native`) is a second host over the same
//! traits and core.

pub mod audit;
pub mod config;
pub mod deliver;
pub mod digest;
pub mod filter;
pub mod host;
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
pub mod native;
pub mod secret;
pub mod signing;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    filter::glue::install();
}}
