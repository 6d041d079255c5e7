//! What `verify` found, as `--json` prints it: per emitter, its problems
//! with a stable reason code, its gaps, duplicates and seals, and what the
//! keys given can prove.

use super::chain::{Duplicate, Gap, Mismatch, Unchecked};
use super::entry::Loss;
use serde::Serialize;

/// One failed check: where, a stable code, and what exactly is wrong.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Problem {
    pub seq: u64,
    pub reason: &'static str,
    pub detail: String,
}

#[derive(Serialize, Debug)]
pub struct BadLine {
    pub line: usize,
    pub error: String,
}

#[derive(Serialize, Debug)]
pub struct EmitterOutcome {
    pub emitter: String,
    pub ok: bool,
    pub records: usize,
    pub first_seq: u64,
    pub last_seq: u64,
    pub chained: bool,
    /// `seq` of the last valid seal: everything up to it is vouched for (0: none).
    pub sealed_through: u64,
    /// The emitter ended with a `close` record (vouched for, when strict).
    pub closed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    /// Not closed: records after this seq may be lost (SIGTERM, crash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_since: Option<u64>,
    /// First seq after the last valid seal, when records follow it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsealed_from: Option<u64>,
    pub seals: usize,
    /// Key ids whose valid signatures vouch for this emitter.
    pub signed_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    pub problems: Vec<Problem>,
    #[serde(skip_serializing_if = "is_zero")]
    pub problems_omitted: usize,
    pub explained_gaps: Vec<Gap>,
    pub unexplained_gaps: Vec<Gap>,
    pub duplicates: Vec<Duplicate>,
    pub mismatches: Vec<Mismatch>,
    pub unchecked: Vec<Unchecked>,
    pub losses: Vec<Loss>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// How much the check can prove, from the keys it was given.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No key: accidental damage only.
    Unkeyed,
    /// `--key-env`: an HMAC chain.
    Hmac,
    /// `--keys` (with or without `--key-env`): signed seals.
    Signatures,
}

#[derive(Serialize, Debug)]
pub struct Outcome {
    pub ok: bool,
    pub records: usize,
    /// Links were checked as HMAC-SHA256 with a key.
    pub keyed: bool,
    pub mode: Mode,
    /// Keys in the keyring, with `--keys`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyring_keys: Option<usize>,
    /// What a passing result proves, in words.
    pub proves: String,
    pub emitters: Vec<EmitterOutcome>,
    pub bad_lines: Vec<BadLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}
