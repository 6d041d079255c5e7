//! A trail where an OTLP collector refused part of a batch: the records it
//! kept are stored, the refused one is missing, and the filter's `rejected`
//! loss record (count 1, the batch's range) explains the gap, so `verify`
//! passes and says what was lost.
#![cfg(feature = "cli")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_support;

use cli_support::{loss, requests, run, stdout, trail, Scratch};
use mesh_audit::audit::record::LossReason;
use serde_json::{json, Value};

#[test]
fn a_partial_rejection_loss_record_explains_the_record_the_collector_refused() {
    let s = Scratch::new("verify-partial");
    let mut records = requests(3);
    records.push(loss(LossReason::Rejected, 1, Some((1, 3))));
    let lines = trail("0123456789abcdef0123456789abcdef", None, records);
    // seq 2 was the refused record: the collector stored 1, 3 and, later, the loss record.
    let kept: Vec<Vec<u8>> = [0, 2, 3].iter().map(|&i| lines[i].clone()).collect();
    let file = s.write_lines("trail.jsonl", &kept);

    let out = run(&["verify", &file, "--json"], &[]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["ok"], json!(true), "{report:#}");

    // Without the loss record the same gap is a failure.
    let file = s.write_lines("no-loss.jsonl", &kept[..2]);
    let out = run(&["verify", &file, "--json"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}
