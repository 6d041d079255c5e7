//! The wasm-level suite, one test binary so wasmtime links once: the
//! emulated proxy (tests/host/) with its two guests, the compiled `.wasm` and
//! the native core, and every lifecycle test run on both.
//!
//! A new file of this suite is a module here (`mod name;` below, the file
//! at tests/wasm/name.rs) that uses `crate::host`.

// Test code: helpers fail the test by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

#[path = "../host/mod.rs"]
mod host;

// The tamper suite runs `mesh-audit verify`, the CLI binary.
#[cfg(feature = "cli")]
#[path = "../cli_support/mod.rs"]
mod cli_support;

mod admission;
mod config;
mod config_modes;
mod delivery;
mod emulator;
mod facts;
mod lifecycle;
mod otlp_replies;
mod redaction;
mod retry;
mod robustness;
mod sampling_istio;
#[cfg(feature = "cli")]
mod tamper;
