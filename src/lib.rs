//! mesh-audit: an Envoy proxy-wasm filter that records who called what, how,
//! and what happened, and delivers a tamper-evident audit trail.
//!
//! All logic lives in modules that never touch the host directly; the host is
//! reached through [`host::Host`]. This file only wires the proxy-wasm entry
//! point.

pub mod audit;
pub mod config;
pub mod deliver;
pub mod digest;
pub mod filter;
pub mod host;
pub mod secret;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    filter::glue::install();
}}
