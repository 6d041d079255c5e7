//! Sampling rules that still mean something under Istio naming, through the
//! compiled filter: every inbound route is `default`, so `when.destination`
//! (the destination workload's principal) and `when.path_prefix` (on the
//! normalized path) are what tell requests apart.

use crate::host::each_guest;
use crate::host::fixtures::{configured_on, records};
use crate::host::props::{mtls_connection, typical_request};
use crate::host::Request;

const CONFIG: &str = r#"{"sink":{"cluster":"audit_sink"},
  "batch":{"max_records":50,"flush_interval_ms":1000},
  "sampling":{"rules":[
    {"name":"batch-workloads","when":{"destination":"spiffe://cluster.local/ns/batch/*"},"rate":0.0},
    {"name":"health","when":{"path_prefix":"/healthz"},"rate":0.0}]}}"#;

#[test]
fn rules_on_the_destination_workload_and_the_normalized_path_decide() {
    each_guest(|guest| {
        let mut h = configured_on(guest, CONFIG);
        let istio = |conn: u64, local: &str, path: &str| {
            Request::default()
                .header(":method", "GET")
                .header(":scheme", "https")
                .header(":authority", "backend.default.svc.cluster.local:8080")
                .header(":path", path)
                .header("x-request-id", format!("request-{conn}"))
                .response_header(":status", "200")
                .props(mtls_connection(conn))
                .props(typical_request())
                .property("connection.uri_san_local_certificate", local)
                .property("xds.route_name", "default")
                .property("xds.cluster_name", "inbound|8080||")
        };
        let backend = "spiffe://cluster.local/ns/default/sa/backend";
        let reindex = "spiffe://cluster.local/ns/batch/sa/reindex";
        h.run(istio(1, reindex, "/orders/1"));
        h.run(istio(2, backend, "/orders/2"));
        h.run(istio(3, backend, "/healthz"));
        h.run(istio(4, backend, "/healthz/../admin"));
        h.advance_and_tick(1000);
        let batch = records(&h.dispatched()[0]);
        let kinds: Vec<&str> = batch.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["request", "request", "seal"],
            "the kept requests, then their seal"
        );
        let kept: Vec<(String, String)> = batch
            .iter()
            .filter(|r| r["kind"] == "request")
            .map(|r| {
                (
                    r["destination"]["principal"].as_str().unwrap().to_string(),
                    r["request"]["path"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            kept,
            [
                (backend.to_string(), "/orders/2".to_string()),
                (backend.to_string(), "/healthz/../admin".to_string()),
            ]
        );
        assert_eq!(h.metric("mesh_audit.records_sampled_out"), 2);
        assert_eq!(
            h.metric("mesh_audit.records_admitted"),
            2 + 1,
            "the kept requests and their seal"
        );
    });
}
