//! Secure-by-default redaction (SPEC §3.1) in the compiled filter: every
//! credential carrier a penetration tester tries, the truthfulness of
//! `redacted` in both encodings, what redaction costs per request, and the
//! real Envoy leaving none of ten planted secrets at the sink.
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "host/mod.rs"]
mod host;

#[path = "redaction/carriers.rs"]
mod carriers;
#[path = "redaction/cost.rs"]
mod cost;
#[path = "redaction/truthful.rs"]
mod truthful;

mod e2e;
#[path = "redaction/envoy.rs"]
mod envoy;
