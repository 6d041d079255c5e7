//! Scenarios across sidecars and tools, on the real pinned Envoy: two
//! chained sidecars sampling alike, access-policy detection and redaction
//! seen from the sink's raw bytes, several workers delivering to the real
//! `mesh-audit sink`, retried batches de-duplicated across a sink restart,
//! and OTLP decoded with the official OpenTelemetry definitions.
//!
//! Needs the CLI binary: run with `--features cli` (as `make test` does).
#![cfg(feature = "cli")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e;

#[path = "e2e_scenarios/cli.rs"]
mod cli;
#[path = "e2e_scenarios/http.rs"]
mod http;
#[path = "e2e_scenarios/relay.rs"]
mod relay;
#[path = "e2e_scenarios/sidecar.rs"]
mod sidecar;

#[path = "e2e_scenarios/chain.rs"]
mod chain;
#[path = "e2e_scenarios/integrity.rs"]
mod integrity;
#[path = "e2e_scenarios/otlp.rs"]
mod otlp;
#[path = "e2e_scenarios/otlp_collector.rs"]
mod otlp_collector;
#[path = "e2e_scenarios/policy.rs"]
mod policy;
#[path = "e2e_scenarios/redaction.rs"]
mod redaction;
