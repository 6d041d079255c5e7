//! mesh-audit as Istio really runs it: a real Envoy shaped like an Istio
//! proxy (tests/istio/envoy.yaml) receiving the shipped WasmPlugins
//! (examples/istio/) by ECDS, rendered as istiod renders them. A missing
//! key, a broken configuration or a bad update never costs a request; the
//! records keep who called whom under Istio's naming.
#![cfg(feature = "cli")]
// Test code: helpers fail the test by panicking.
#![allow(clippy::panic, clippy::unwrap_used)]

mod e2e;
#[path = "istio/proxy.rs"]
mod proxy;

use e2e::{pki, wait_for, Record, Sink};
use proxy::{
    ecds_resource, plugin_config_json, shipped, IstioProxy, GATEWAY_PLUGIN, KEYS, SIDECAR_PLUGIN,
};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const BROKEN: &str = "{\"sink\": {\"cluster\": ";
const BROKEN_LINE: &str =
    "mesh-audit: invalid configuration: $: not valid JSON: EOF while parsing a value at line 1 column 21";

/// The shipped sidecar plugin's ECDS resource at `version`, with its
/// configuration replaced by `config` when given.
fn sidecar_resource(config: Option<&str>, version: u32) -> Value {
    let sidecar = shipped(SIDECAR_PLUGIN);
    let config = config.map_or_else(|| plugin_config_json(&sidecar), str::to_string);
    ecds_resource(&sidecar, version, &config)
}

fn alice() -> String {
    std::fs::read_to_string(pki().join("alice.jwt"))
        .unwrap()
        .trim()
        .to_string()
}

/// The request records the sink holds for `request_id`.
fn records_of(sink: &Sink, request_id: &str) -> Vec<Record> {
    sink.records()
        .into_iter()
        .filter(|r| r.str("/request_id") == Some(request_id))
        .collect()
}

fn wait_records(sink: &Sink, request_id: &str, n: usize) -> Vec<Record> {
    wait_for(WAIT, || {
        Some(records_of(sink, request_id)).filter(|r| r.len() >= n)
    })
    .unwrap_or_else(|| panic!("no {n} records for {request_id}: {:#?}", sink.records()))
}

fn wait_stat(proxy: &IstioProxy, name: &str, at_least: u64) -> u64 {
    wait_for(WAIT, || {
        proxy.stats().get(name).copied().filter(|v| *v >= at_least)
    })
    .unwrap_or_else(|| panic!("{name} never reached {at_least}: {:?}", proxy.stats()))
}

#[test]
fn a_sidecar_without_the_keys_serves_every_request_and_records_say_degraded() {
    let sink = Sink::start();
    let proxy = IstioProxy::sidecar(&sidecar_resource(None, 1), &[], &sink);
    let reply = proxy.inbound("/orders/42");
    assert_eq!(reply.status, 200, "{reply:#?}");
    let r = &wait_records(&sink, reply.request_id(), 1)[0];
    assert_eq!(
        r.json["degraded"],
        json!(["hash_key_missing", "chain_key_missing"]),
        "{}",
        r.line
    );
    // Istio's naming reaches the record; who called is the SPIFFE identity.
    assert_eq!(r.str("/route/name"), Some("default"));
    assert_eq!(r.str("/route/cluster"), Some("inbound|8080||"));
    assert_eq!(r.str("/route/virtual_host"), Some("inbound|http|8080"));
    assert_eq!(
        r.str("/source/principal"),
        Some("spiffe://cluster.local/ns/shop/sa/frontend")
    );
    assert_eq!(
        r.str("/destination/principal"),
        Some("spiffe://cluster.local/ns/default/sa/backend")
    );
    assert_eq!(
        r.str("/prev"),
        Some("0".repeat(64).as_str()),
        "unkeyed chain"
    );
    assert_eq!(wait_stat(&proxy, "degraded", 1), 1);
    assert_eq!(proxy.stats().get("config_invalid"), Some(&0));
    let line = "mesh-audit: degraded configuration: redact.hash_key_env: environment variable MESH_AUDIT_HASH_KEY is not set (pass it in vm_config.environment_variables); hash becomes mask (hash_key_missing)";
    assert!(proxy.log_lines_ending(line) >= 1, "{}", proxy.log());
    // No NACK: Envoy took the filter configuration.
    let name = "extension_config_discovery.http_filter.extensions.istio.io/wasmplugin/istio-system.mesh-audit";
    assert_eq!(proxy.envoy_stat(&format!("{name}.config_fail")), 0);
}

#[test]
fn a_broken_plugin_config_passes_traffic_unaudited_and_counted() {
    let sink = Sink::start();
    let proxy = IstioProxy::sidecar(&sidecar_resource(Some(BROKEN), 1), &KEYS, &sink);
    for i in 0..3 {
        let reply = proxy.inbound(&format!("/orders/{i}"));
        assert_eq!(reply.status, 200, "{reply:#?}");
    }
    // Two workers: each request is counted by the one that served it.
    assert_eq!(wait_stat(&proxy, "requests_unaudited", 3), 3);
    assert_eq!(proxy.stats().get("config_invalid"), Some(&1));
    assert!(proxy.log_lines_ending(BROKEN_LINE) >= 1, "{}", proxy.log());
    // Prometheus (what Istio's merged metrics on :15020 re-export) names
    // them mesh_audit_*, without Envoy's wasmcustom namespace.
    let prometheus = proxy.prometheus();
    for line in [
        "mesh_audit_requests_unaudited{} 3",
        "mesh_audit_config_invalid{} 1",
    ] {
        assert!(
            prometheus.lines().any(|l| l == line),
            "no `{line}` in:\n{prometheus}"
        );
    }
    assert!(
        sink.records()
            .iter()
            .all(|r| r.str("/route/name").is_none()),
        "no sidecar request was audited: {:#?}",
        sink.records()
    );
}

#[test]
fn with_the_keys_the_gateway_and_the_sidecar_record_the_end_user() {
    let sink = Sink::start();
    let sidecar = IstioProxy::sidecar(&sidecar_resource(None, 1), &KEYS, &sink);
    let plugin = shipped(GATEWAY_PLUGIN);
    let resource = ecds_resource(&plugin, 1, &plugin_config_json(&plugin));
    let gateway = IstioProxy::gateway(&resource, &KEYS, &sink, &sidecar);
    let reply = gateway.end_user("/orders/7?token=abc", &alice());
    assert_eq!(reply.status, 200, "{reply:#?}");
    // One record at the gateway (north-south), one at the sidecar behind it.
    let records = wait_records(&sink, reply.request_id(), 2);
    let (at_gateway, at_sidecar): (Vec<&Record>, Vec<&Record>) = records.iter().partition(|r| {
        r.str("/route/cluster") == Some("outbound|8080||orders.shop.svc.cluster.local")
    });
    assert_eq!((at_gateway.len(), at_sidecar.len()), (1, 1), "{records:#?}");
    for r in [at_gateway[0], at_sidecar[0]] {
        assert_eq!(r.str("/user/sub"), Some("alice"), "{}", r.line);
        assert_eq!(r.str("/user/iss"), Some("https://idp.example"));
        assert!(
            r.str("/user/email").unwrap().starts_with("hmac-sha256:"),
            "{}",
            r.line
        );
        assert!(r.json.get("degraded").is_none(), "{}", r.line);
        assert_eq!(r.str("/request/query"), Some("token=[REDACTED]"));
    }
    // The gateway's own upstream call carries its identity to the sidecar.
    assert_eq!(
        at_sidecar[0].str("/source/principal"),
        Some("spiffe://cluster.local/ns/shop/sa/frontend")
    );
    assert_eq!(at_sidecar[0].str("/route/name"), Some("default"));
}

#[test]
fn ecds_updates_from_broken_to_valid_to_broken_never_cost_a_request() {
    let sink = Sink::start();
    let proxy = IstioProxy::sidecar(&sidecar_resource(Some(BROKEN), 1), &KEYS, &sink);
    assert_eq!(proxy.inbound("/orders/1").status, 200);
    wait_stat(&proxy, "requests_unaudited", 1);
    assert_eq!(proxy.stats().get("config_invalid"), Some(&1));

    // A valid update takes over: requests are audited again.
    proxy.update(&sidecar_resource(None, 2));
    let audited = wait_for(WAIT, || {
        let reply = proxy.inbound("/orders/2");
        assert_eq!(reply.status, 200, "{reply:#?}");
        let id = reply.request_id().to_string();
        wait_for(Duration::from_secs(3), || records_of(&sink, &id).pop())
    })
    .unwrap_or_else(|| panic!("the valid update never took over:\n{}", proxy.log()));
    assert!(audited.json.get("degraded").is_none(), "{}", audited.line);
    assert_eq!(
        wait_for(WAIT, || proxy
            .stats()
            .get("config_invalid")
            .copied()
            .filter(|v| *v == 0)),
        Some(0)
    );

    // A broken update after it: the valid configuration stays in force.
    let invalid_before = proxy.log_lines_ending(BROKEN_LINE);
    proxy.update(&sidecar_resource(Some(BROKEN), 3));
    let name = "extension_config_discovery.http_filter.extensions.istio.io/wasmplugin/istio-system.mesh-audit";
    wait_for(WAIT, || {
        Some(()).filter(|_| proxy.envoy_stat(&format!("{name}.config_reload")) >= 3)
    })
    .unwrap_or_else(|| panic!("the broken update never arrived:\n{}", proxy.log()));
    // Its error line follows the reload, once Envoy has flushed its log.
    wait_for(WAIT, || {
        Some(()).filter(|_| proxy.log_lines_ending(BROKEN_LINE) > invalid_before)
    })
    .unwrap_or_else(|| panic!("no error line for the broken update:\n{}", proxy.log()));
    for i in 0..3 {
        let reply = proxy.inbound(&format!("/orders/after/{i}"));
        assert_eq!(reply.status, 200, "{reply:#?}");
        let r = &wait_records(&sink, reply.request_id(), 1)[0];
        assert_eq!(r.str("/route/name"), Some("default"));
    }
    assert_eq!(
        proxy.envoy_stat(&format!("{name}.config_fail")),
        0,
        "never a NACK"
    );
    assert_eq!(proxy.stats().get("config_invalid"), Some(&1));
    let kept = format!(
        "the last valid configuration (config {}) stays in force",
        config_digest(&plugin_config_json(&shipped(SIDECAR_PLUGIN)))
    );
    assert!(proxy.log_lines_ending(&kept) >= 1, "{}", proxy.log());
}

fn config_digest(config: &str) -> String {
    e2e::sha256_hex(config.as_bytes())[..8].to_string()
}
