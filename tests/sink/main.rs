//! `mesh-audit sink` against a writer on the network: who may write, what a
//! stored record is protected from, how the trail is kept on disk, and what
//! the sink's memory costs — each with real processes on loopback sockets.
#![cfg(feature = "cli")]
// Test code: a failed unwrap or panic is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../cli_support/mod.rs"]
mod cli_support;
#[path = "../e2e/mod.rs"]
mod e2e;

mod auth;
mod commit;
mod conflicts;
mod digests;
mod envoy;
mod ingest;
mod memory;
mod storage;

pub const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
pub const SHOP: &str = "spiffe://cluster.local/ns/shop/*";
pub const EMITTER: &str = "0123456789abcdef0123456789abcdef";
pub const OTHER: &str = "fedcba9876543210fedcba9876543210";

/// The trail file's bytes (empty when it does not exist).
pub fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

pub fn stored(lines: &[Vec<u8>]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect()
}

/// Resident memory of the sink process, from /proc.
pub fn rss_kib(sink: &cli_support::sink::SinkProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", sink.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `total` one-record emitters (distinct, well-formed), as JSON-lines
/// bodies of `per_batch` records each.
pub fn forged_emitters(total: u32, per_batch: u32) -> impl Iterator<Item = Vec<u8>> {
    let template =
        String::from_utf8(cli_support::trail(EMITTER, None, cli_support::requests(1)).remove(0))
            .unwrap();
    (0..total / per_batch).map(move |b| {
        let mut body = Vec::new();
        for i in 0..per_batch {
            let e = format!("{:08x}{:024x}", b, i);
            body.extend_from_slice(template.replace(EMITTER, &e).as_bytes());
            body.push(b'\n');
        }
        body
    })
}

/// Batches as a sealing proxy sends them: each `per_batch` requests to
/// `destination` followed by their seal, signed by `signer`.
pub fn sealed_batches(
    emitter: &str,
    batches: usize,
    per_batch: usize,
    destination: &str,
    signer: Option<&mesh_audit::deliver::seal::Signer>,
) -> Vec<Vec<Vec<u8>>> {
    let mut seq = mesh_audit::deliver::chain::Sequencer::new(emitter.to_string(), true, None);
    let mut records = cli_support::requests(batches * per_batch).into_iter();
    (0..batches)
        .map(|_| {
            let from = seq.next_seq();
            let mut batch: Vec<Vec<u8>> = records
                .by_ref()
                .take(per_batch)
                .map(|mut r| {
                    r.destination = Some(mesh_audit::audit::record::Destination {
                        principal: Some(destination.to_string()),
                        ..Default::default()
                    });
                    let line = seq.stamp(&mut r);
                    seq.commit(&line);
                    line
                })
                .collect();
            let seal = seq.seal("2026-11-21T14:03:59.000000Z", from, signer);
            seq.commit(&seal);
            batch.push(seal);
            batch
        })
        .collect()
}
