//! Secure-by-default redaction (SPEC §3.1) in the compiled filter: every
//! credential carrier a penetration tester tries, the truthfulness of
//! `redacted` in both encodings, and what redaction costs per request. The
//! real Envoy's side is tests/e2e_scenarios/redaction.rs.

mod carriers;
mod cost;
mod truthful;
