//! The shipped demo bootstrap (envoy/demo.yaml) delivering to a real sink
//! over mTLS: the proxy's workload identity is listed and its records are
//! stored; when another writer got a seq first, the proxy's batch gets 409,
//! which the filter counts in records_rejected and reports by a loss record.

use crate::cli_support::sink::{pki_file, SinkProcess, Via};
use crate::cli_support::{run, Scratch};
use crate::e2e::process::{launch_with_env, mesh_audit_stats, run_dir, stop, wait_ready};
use crate::e2e::variant::render;
use crate::e2e::{free_port, pki, repo_root, wait_for, wasm};
use mesh_audit::audit::hex;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

const BACKEND: &str = "spiffe://cluster.local/ns/default/sa/backend";

fn get(port: u16, path: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: backend\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 "), "{reply:?}");
}

fn lines(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn wait_lines(out: &Path, n: usize) -> Vec<String> {
    wait_for(Duration::from_secs(30), || {
        let l = lines(out);
        (l.len() >= n).then_some(l)
    })
    .unwrap_or_else(|| panic!("the sink holds {} records, not {n}", lines(out).len()))
}

#[test]
fn the_demo_proxy_delivers_over_mtls_and_a_shadowed_seq_becomes_a_rejection_it_reports() {
    let s = Scratch::new("sink-envoy");
    let out = s.path("audit.jsonl");
    let args = [
        "--tls-cert".to_string(),
        pki_file("audit-sink.pem"),
        "--tls-key".into(),
        pki_file("audit-sink-key.pem"),
        "--client-ca".into(),
        pki_file("ca.pem"),
        "--allow-principal".into(),
        BACKEND.into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut sink = SinkProcess::start(&out, &args);
    sink.via = Via::Tls(None);

    let dir = run_dir();
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
    let config = render(
        &std::fs::read_to_string(repo_root().join("envoy/demo.yaml")).unwrap(),
        &[
            ("ADMIN_PORT", ports[0].to_string()),
            ("MTLS_PORT", ports[1].to_string()),
            ("PLAIN_PORT", ports[2].to_string()),
            ("BACKEND_PORT", ports[3].to_string()),
            ("CLOSED_PORT", ports[4].to_string()),
            ("SINK_PORT", sink.port().to_string()),
            ("CERT_DIR", pki().display().to_string()),
            ("WASM", wasm().display().to_string()),
        ],
    );
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, config).unwrap();
    // The demo's keys, as scripts/demo.sh gives them: a chain key and a
    // signing key from `mesh-audit keygen`, in Envoy's environment.
    let prefix = s.path("proxy");
    let keygen = run(&["keygen", "--out", prefix.to_str().unwrap()], &[]);
    assert!(keygen.status.success(), "keygen: {keygen:?}");
    let signing_key = std::fs::read_to_string(s.path("proxy.key.pem")).unwrap();
    let env = [
        (
            "MESH_AUDIT_CHAIN_KEY".to_string(),
            "sink-envoy-chain-key".into(),
        ),
        ("MESH_AUDIT_SIGNING_KEY".to_string(), signing_key.into()),
    ];
    let mut envoy = launch_with_env(&path, &dir, 1, &[], &env);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_ready(&mut envoy, ports[0], "envoy");
        for i in 1..=3 {
            get(ports[2], &format!("/orders/{i}"));
        }
        wait_lines(&out, 3);
        // Every batch ends with its seal: wait until the three requests and
        // their seals are stored and nothing is buffered or in flight, so
        // the last stored seq is the emitter's head.
        let stored = wait_for(Duration::from_secs(30), || {
            let st = mesh_audit_stats(ports[0]);
            let get = |name: &str| st.get(name).copied().unwrap_or(0);
            let settled = get("records_buffered") == 0
                && get("records_admitted") > 0
                && get("records_delivered") == get("records_admitted");
            let l = lines(&out);
            let requests = l
                .iter()
                .filter(|l| l.contains("\"kind\":\"request\""))
                .count();
            let stored_all = l.len() as u64 == get("records_delivered");
            (settled && stored_all && requests == 3).then_some(l)
        })
        .unwrap_or_else(|| panic!("never settled: {:?}", mesh_audit_stats(ports[0])));
        let first: serde_json::Value = serde_json::from_str(&stored[0]).unwrap();
        let emitter = first["emitter"].as_str().unwrap().to_string();
        let owners = std::fs::read_to_string(s.path("audit.jsonl.owners")).unwrap();
        assert!(
            owners.contains(&format!("\"identity\":\"{BACKEND}\"")),
            "{owners}"
        );

        // The same identity (a compromised or misconfigured proxy) writes
        // the emitter's next seq first, chained correctly: a copy of the last
        // request, after the seal that is the emitter's head.
        let parsed: Vec<serde_json::Value> = stored
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let at_head = |kind: &str| {
            (0..stored.len())
                .filter(|&i| parsed[i]["kind"] == kind)
                .max_by_key(|&i| parsed[i]["seq"].as_u64())
                .unwrap()
        };
        let head = &stored[at_head("seal")];
        let seq = parsed[at_head("seal")]["seq"].as_u64().unwrap();
        assert_eq!(
            Some(seq),
            parsed.iter().filter_map(|r| r["seq"].as_u64()).max(),
            "the last batch does not end with its seal: {stored:#?}"
        );
        let last_request = &parsed[at_head("request")];
        let old_seq = last_request["seq"].as_u64().unwrap();
        let old_prev = last_request["prev"].as_str().unwrap();
        let forged = stored[at_head("request")]
            .replace(
                &format!("\"seq\":{old_seq},"),
                &format!("\"seq\":{},", seq + 1),
            )
            .replace(old_prev, &hex(&Sha256::digest(head.as_bytes())))
            .replace("/orders/3", "/forged");
        assert!(forged.contains("/forged"), "{forged}");
        let (status, body) = sink
            .post_lines(Via::Tls(Some("server")), "", &[forged.into_bytes()])
            .unwrap();
        assert_eq!(status, 200, "{body}");

        // The next request's batch (the request and its seal) takes the
        // shadowed seq and the one after it.
        get(ports[2], "/orders/4");
        let stats = wait_for(Duration::from_secs(30), || {
            let st = mesh_audit_stats(ports[0]);
            (st.get("records_rejected").copied().unwrap_or(0) >= 2).then_some(st)
        })
        .unwrap_or_else(|| panic!("no rejection counted: {:?}", mesh_audit_stats(ports[0])));
        assert_eq!(
            stats["records_rejected"], 2,
            "the request and its seal: {stats:?}"
        );
        let conflict = sink.wait_for_stderr("with 409");
        assert!(conflict.contains(BACKEND), "{conflict}");
        let loss = wait_for(Duration::from_secs(30), || {
            lines(&out)
                .into_iter()
                .find(|l| l.contains("\"kind\":\"loss\"") && l.contains(&emitter))
        })
        .expect("the filter's loss record for the rejected batch");
        let loss: serde_json::Value = serde_json::from_str(&loss).unwrap();
        assert_eq!(loss["reason"], "rejected", "{loss}");
        assert_eq!(
            (loss["from_seq"].as_u64(), loss["to_seq"].as_u64()),
            (Some(seq + 1), Some(seq + 2)),
            "{loss}"
        );
        assert_eq!(
            sink.metric("mesh_audit_sink_batches_rejected_total{reason=\"conflict\"}"),
            1.0
        );
    }));
    stop(&mut envoy, &dir, "envoy");
    if let Err(e) = result {
        eprintln!("sink stderr:\n{}", sink.stderr());
        std::panic::resume_unwind(e);
    }
}
