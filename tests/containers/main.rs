//! The docker-compose recipe (examples/docker-compose/) run for real: the
//! images `make images` built locally (no registry), Compose v1 or v2, real
//! container networks. Two workloads call the audited proxy from their own
//! containers with their own certificates; the sink's trail must name each
//! by its identity and address and `verify` clean. Then faults across the
//! container networks (faults.rs), and a request across two sidecars
//! (two_hops.rs).
//!
//! At most two scenarios run at once: each starts a whole project, and a
//! small machine should not be swamped. Under `CI=true` a missing
//! container engine fails every test; elsewhere each prints what it did not
//! run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The end-to-end harness's admin client, for the published admin ports.
#[path = "../e2e/mod.rs"]
mod e2e;
mod faults;
mod native;
mod stack;
mod two_hops;

use serde_json::Value;
use stack::{engine_or_notice, recipe_dir, Stack};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// At most two scenarios at once (see the module docs).
fn slot() -> Permit {
    let mut running = SLOTS.0.lock().unwrap_or_else(|p| p.into_inner());
    while *running >= 2 {
        running = SLOTS.1.wait(running).unwrap_or_else(|p| p.into_inner());
    }
    *running += 1;
    Permit
}

static SLOTS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

struct Permit;

impl Drop for Permit {
    fn drop(&mut self) {
        *SLOTS.0.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        SLOTS.1.notify_one();
    }
}

/// The recipe's own project, up and healthy: pki, sink, envoy.
fn recipe(label: &str) -> Stack {
    let stack = Stack::new(label, &recipe_dir().join("docker-compose.yaml"));
    stack.up(&["sink", "envoy"]);
    stack
}

pub const SETTLE: Duration = Duration::from_secs(60);

/// A workload's one-off container: prints its own address on the mesh
/// network, runs the recipe's client.sh, then stays up (holding its address,
/// so the next workload gets another) until the project is removed.
/// (address, client output).
fn workload(stack: &Stack, name: &str, requests: usize) -> (String, Vec<String>) {
    let container = stack.start(
        name,
        &format!(
            "grep -w \"$HOSTNAME\" /etc/hosts | cut -f1 | head -n1; \
             bash /usr/local/bin/client.sh {name} && exec sleep 600"
        ),
    );
    let out = container.output_when(1 + requests, Duration::from_secs(60));
    let mut lines = out.lines().map(str::to_string);
    let address = lines.next().unwrap_or_default();
    assert!(
        address.parse::<std::net::Ipv4Addr>().is_ok(),
        "{name} printed no address: {out}"
    );
    (address, lines.collect())
}

pub fn records_of_kind<'a>(trail: &'a [Value], kind: &str) -> Vec<&'a Value> {
    trail.iter().filter(|r| r["kind"] == kind).collect()
}

/// Strict `verify` (the keyring and the chain key) passes with nothing to
/// report: every emitter is chained from its keyed genesis, each record is
/// covered by a valid seal signed by the proxy's listed key, and no gap, duplicate, mismatch or other problem is found.
/// Whether each emitter is closed or open is the caller's to assert.
pub fn assert_verify_clean(stack: &Stack, context: &str) -> Value {
    let (ok, outcome, human) = stack.verify();
    assert!(
        ok && outcome["ok"] == true,
        "{context}: verify failed:\n{human}"
    );
    assert_eq!(outcome["keyed"], true, "{context}: {human}");
    assert_eq!(outcome["mode"], "signatures", "{context}: {human}");
    assert!(
        outcome["bad_lines"].as_array().unwrap().is_empty(),
        "{context}: {human}"
    );
    let emitters = outcome["emitters"].as_array().unwrap();
    assert!(!emitters.is_empty(), "{context}: no emitter\n{human}");
    for emitter in emitters {
        assert_eq!(emitter["ok"], true, "{context}: {emitter}\n{human}");
        assert_eq!(emitter["chained"], true, "{context}: {emitter}\n{human}");
        for field in [
            "problems",
            "unexplained_gaps",
            "explained_gaps",
            "duplicates",
            "mismatches",
            "unchecked",
            "losses",
        ] {
            assert_eq!(
                emitter[field].as_array().map(Vec::len),
                Some(0),
                "{context}: {field} in {emitter}\n{human}"
            );
        }
        assert_eq!(
            emitter["sealed_through"], emitter["last_seq"],
            "{context}: records after the last seal in {emitter}\n{human}"
        );
        assert!(
            emitter.get("unsealed_from").is_none(),
            "{context}: {emitter}\n{human}"
        );
        assert_eq!(
            emitter["signed_by"],
            serde_json::json!([stack.key_id]),
            "{context}: {emitter}\n{human}"
        );
    }
    outcome
}

/// The counters balance: every admitted record (requests, seals, loss and
/// close records alike) is delivered, rejected or still buffered.
pub fn assert_admitted_accounted(stats: &std::collections::BTreeMap<String, u64>, context: &str) {
    let get = |n: &str| stats.get(n).copied().unwrap_or(0);
    assert_eq!(
        get("records_admitted"),
        get("records_delivered") + get("records_rejected") + get("records_buffered"),
        "{context}: admitted != delivered + rejected + buffered: {stats:?}"
    );
}

/// An emitter's outcome, by name.
pub fn emitter<'a>(outcome: &'a Value, name: &str) -> &'a Value {
    outcome["emitters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["emitter"] == name)
        .unwrap_or_else(|| panic!("no emitter {name} in {outcome}"))
}

/// The emitters of the trail, by name.
pub fn emitters_of(trail: &[Value]) -> std::collections::BTreeSet<String> {
    trail
        .iter()
        .map(|r| r["emitter"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_recipe_audits_two_workloads_by_their_own_certificates_and_addresses() {
    if !engine_or_notice("the_recipe_audits_two_workloads_by_their_own_certificates_and_addresses")
    {
        return;
    }
    let _one = slot();
    let stack = recipe("recipe");
    let (frontend_ip, frontend) = workload(&stack, "frontend", 3);
    let (reporter_ip, reporter) = workload(&stack, "reporter", 2);
    assert_ne!(frontend_ip, reporter_ip);
    assert_eq!(
        frontend,
        [
            "frontend GET /orders/42?token=s3cr3t&page=2 -> 200",
            "frontend GET /healthz -> 200",
            "frontend GET /admin/users -> 200",
        ]
    );
    assert_eq!(
        reporter,
        [
            "reporter GET /orders/7 -> 200",
            "reporter GET /admin/users -> 403"
        ]
    );

    // Five requests answered, /healthz sampled out: four request records.
    let stats = stack.settled(4);
    assert_eq!(stats.get("records_sampled_out"), Some(&1), "{stats:?}");
    assert_admitted_accounted(&stats, "recipe");
    let trail = stack.trail();
    let requests = records_of_kind(&trail, "request");
    assert_eq!(requests.len(), 4, "{trail:?}");
    // Everything admitted (each batch ends in its seal) is in the trail.
    assert_eq!(
        stats.get("records_delivered"),
        Some(&(trail.len() as u64)),
        "{stats:?}"
    );
    assert!(!records_of_kind(&trail, "seal").is_empty(), "{trail:?}");
    let envoy_ip = stack.address("envoy", "mesh");
    let seen: Vec<(&str, &str, &str, &str)> = requests
        .iter()
        .map(|r| {
            let address = r["source"]["address"].as_str().unwrap();
            let ip = address.rsplit_once(':').unwrap().0;
            let who = if ip == frontend_ip {
                "frontend"
            } else if ip == reporter_ip {
                "reporter"
            } else {
                panic!("{address} is neither workload ({frontend_ip}, {reporter_ip})")
            };
            assert!(
                r["destination"]["address"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{envoy_ip}:")),
                "{r}"
            );
            assert_eq!(
                r["destination"]["principal"],
                "spiffe://cluster.local/ns/default/sa/backend"
            );
            (
                who,
                r["source"]["principal"].as_str().unwrap(),
                r["request"]["path"].as_str().unwrap(),
                r["decision"].as_str().unwrap(),
            )
        })
        .collect();
    let frontend_id = "spiffe://cluster.local/ns/shop/sa/frontend";
    let reporter_id = "spiffe://cluster.local/ns/batch/sa/reporter";
    for expected in [
        ("frontend", frontend_id, "/orders/42", "allowed"),
        ("frontend", frontend_id, "/admin/users", "allowed"),
        ("reporter", reporter_id, "/orders/7", "allowed"),
        ("reporter", reporter_id, "/admin/users", "denied"),
    ] {
        assert!(seen.contains(&expected), "{expected:?} not in {seen:?}");
    }
    let secret = requests
        .iter()
        .find(|r| r["request"]["path"] == "/orders/42")
        .unwrap();
    assert_eq!(secret["request"]["query"], "token=[REDACTED]&page=2");
    assert!(secret["request"]["headers"]["x-user-email"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));
    let outcome = assert_verify_clean(&stack, "recipe");
    assert_eq!(outcome["records"], trail.len());
}

/// Before `make build` (or with MESH_AUDIT_WASM naming a file that is not
/// there) `up` refuses at once and leaves no directory in the file's place.
#[test]
fn a_missing_wasm_fails_up_clearly_and_creates_nothing_in_its_place() {
    if !engine_or_notice("a_missing_wasm_fails_up_clearly_and_creates_nothing_in_its_place") {
        return;
    }
    let _one = slot();
    let mut stack = Stack::new("no-wasm", &recipe_dir().join("docker-compose.yaml"));
    let missing = stack.scratch.join("not-built/mesh_audit.wasm");
    stack.set_env("MESH_AUDIT_WASM", &missing.display().to_string());
    let out = stack.compose(&["up", "-d", "--no-build", "envoy"]);
    let said = stack::text(&out);
    assert!(
        !out.status.success(),
        "up succeeded without the .wasm:\n{said}"
    );
    assert!(
        said.contains("bind source path does not exist") && said.contains("mesh_audit.wasm"),
        "{said}"
    );
    assert!(
        !missing.exists() && !missing.parent().unwrap().exists(),
        "{} was created",
        missing.display()
    );
}

/// The sink takes records only from the proxy's certificate: from a
/// container on the sink's own network, the frontend's certificate (of the
/// same CA) is refused with 403, no certificate with 401.
#[test]
fn the_sink_admits_only_the_proxys_certificate() {
    if !engine_or_notice("the_sink_admits_only_the_proxys_certificate") {
        return;
    }
    let _one = slot();
    let stack = recipe("writers");
    let post = |cert: &str| {
        let tls = if cert.is_empty() {
            String::new()
        } else {
            format!("--cert /pki/certs/{cert}.pem --key /pki/certs/{cert}-key.pem")
        };
        stack.on_network(
            "audit",
            &format!(
                "curl -s -o /dev/null -w '%{{http_code}}' --cacert /pki/certs/ca.pem {tls} \
                 -X POST -H 'content-type: application/x-ndjson' --data-binary '{{}}' \
                 https://audit-sink:8080/v1/audit"
            ),
        )
    };
    assert_eq!(post("frontend"), "403");
    assert_eq!(post(""), "401");
    assert!(stack.trail().is_empty());
}
