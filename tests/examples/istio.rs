//! The Istio recipe: examples/istio/.

use super::*;

fn istio(file: &str) -> PathBuf {
    examples().join("istio").join(file)
}

#[test]
fn istio_wasmplugin_passes_check_config_with_the_keys_in_the_proxy_environment() {
    let path = istio("wasmplugin.yaml");
    let out = run(&["check-config", path.to_str().unwrap()], &KEYS);
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("WasmPlugin istio-system/mesh-audit: ok\n", Some(0))
    );
    // valueFrom: HOST really is where the keys come from.
    let out = Command::new(cli_support::bin())
        .arg("check-config")
        .arg(&path)
        .env_remove(KEYS[0].0)
        .env_remove(KEYS[1].0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("environment variable MESH_AUDIT_HASH_KEY is not set"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn istio_wasmplugin_runs_after_authz_fails_open_and_pulls_an_oci_image() {
    let plugin = yaml_doc(&istio("wasmplugin.yaml"));
    let spec = &plugin["spec"];
    assert_eq!(plugin["apiVersion"], "extensions.istio.io/v1alpha1");
    assert!(
        spec["url"].as_str().unwrap().starts_with("oci://"),
        "{}",
        spec["url"]
    );
    assert_eq!(
        (&spec["phase"], &spec["failStrategy"]),
        (&json!("STATS"), &json!("FAIL_OPEN"))
    );
}

#[test]
fn istio_sink_cluster_and_authority_name_the_sink_service() {
    let docs = yaml_docs(&istio("audit-sink.yaml"));
    let service = doc_of_kind(&docs, "Service");
    let (name, ns) = (
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap(),
    );
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["name"], "http", "Istio must see the sink port as HTTP");
    let sink = &yaml_doc(&istio("wasmplugin.yaml"))["spec"]["pluginConfig"]["sink"];
    let host = format!("{name}.{ns}.svc.cluster.local");
    assert_eq!(
        sink["cluster"],
        json!(format!("outbound|{}||{host}", port["port"]))
    );
    assert_eq!(sink["authority"], json!(host));

    // The sink is in the mesh: mTLS only, and only mesh identities may write.
    let namespace = doc_of_kind(&docs, "Namespace");
    assert_eq!(namespace["metadata"]["name"], json!(ns));
    assert_eq!(
        namespace["metadata"]["labels"]["istio-injection"],
        "enabled"
    );
    let peer = doc_of_kind(&docs, "PeerAuthentication");
    assert_eq!(peer["spec"]["mtls"]["mode"], "STRICT");
    let authz = doc_of_kind(&docs, "AuthorizationPolicy");
    assert_eq!(authz["spec"]["action"], "ALLOW");
    let rule = &authz["spec"]["rules"][0];
    assert_eq!(
        rule["from"][0]["source"]["principals"],
        json!(["cluster.local/ns/*/sa/*"])
    );
    assert_eq!(
        rule["to"][0]["operation"]["paths"],
        json!([sink["path"].as_str().unwrap_or("/v1/audit")])
    );
    let app = json!({"app": "audit-sink"});
    for kind in ["PeerAuthentication", "AuthorizationPolicy"] {
        assert_eq!(
            doc_of_kind(&docs, kind)["spec"]["selector"]["matchLabels"],
            app,
            "{kind}"
        );
    }
    assert_eq!(
        doc_of_kind(&docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        app
    );
    // Its own sidecar lets the batches it receives go unaudited.
    let rules = &yaml_doc(&istio("wasmplugin.yaml"))["spec"]["pluginConfig"]["sampling"]["rules"];
    let batches = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "audit-batches")
        .unwrap();
    assert_eq!(
        (&batches["when"]["path_prefix"], &batches["rate"]),
        (&rule["to"][0]["operation"]["paths"][0], &json!(0.0))
    );

    // It listens on the Service's target port and writes onto the claim.
    let pod = &doc_of_kind(&docs, "Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let listen = format!("0.0.0.0:{}", container["ports"][0]["containerPort"]);
    assert_eq!(container["ports"][0]["name"], port["targetPort"]);
    assert_eq!(args[..3], ["sink", "--listen", listen.as_str()]);
    assert_eq!(args[3], "--out");
    let mount = &container["volumeMounts"][0];
    assert!(
        args[4].starts_with(&format!("{}/", mount["mountPath"].as_str().unwrap())),
        "{args:?}"
    );
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    let claim = doc_of_kind(&docs, "PersistentVolumeClaim");
    assert_eq!(
        volume["persistentVolumeClaim"]["claimName"],
        claim["metadata"]["name"]
    );
}

#[test]
fn istio_injection_template_puts_every_host_key_into_every_proxy_from_the_secret() {
    let secret = doc_of_kind(&yaml_docs(&istio("proxy-keys.yaml")), "Secret").clone();
    let values = yaml_doc(&istio("injection-template.yaml"));
    let injector = &values["sidecarInjectorWebhook"];
    assert_eq!(
        injector["defaultTemplates"],
        json!(["sidecar", "mesh-audit-keys"])
    );
    let template: Value = {
        let text = injector["templates"]["mesh-audit-keys"].as_str().unwrap();
        let doc = yaml_serde::Value::deserialize(yaml_serde::Deserializer::from_str(text)).unwrap();
        serde_json::to_value(doc).unwrap()
    };
    let proxy = &template["spec"]["containers"][0];
    assert_eq!(proxy["name"], "istio-proxy");
    let mut supplied = Vec::new();
    for env in proxy["env"].as_array().unwrap() {
        let reference = &env["valueFrom"]["secretKeyRef"];
        assert_eq!(reference["name"], secret["metadata"]["name"], "{env}");
        // A namespace without the Secret still starts its pods (degraded).
        assert_eq!(reference["optional"], json!(true), "{env}");
        let key = reference["key"].as_str().unwrap();
        assert!(
            secret["stringData"].get(key).is_some(),
            "secret has no key {key}"
        );
        supplied.push(env["name"].as_str().unwrap());
    }
    supplied.sort();
    for file in ["wasmplugin.yaml", "wasmplugin-gateway.yaml"] {
        let plugin = yaml_doc(&istio(file));
        let mut from_host: Vec<&str> = plugin["spec"]["vmConfig"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["valueFrom"] == "HOST")
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        from_host.sort();
        assert_eq!(supplied, from_host, "{file}");
    }
}

#[test]
fn istio_gateway_plugin_reaches_gateways_and_both_read_the_jwt_payload_istio_stores() {
    let sidecar = yaml_doc(&istio("wasmplugin.yaml"));
    let gateway = yaml_doc(&istio("wasmplugin-gateway.yaml"));
    assert_eq!(sidecar["spec"]["match"], json!([{"mode": "SERVER"}]));
    // `mode: SERVER` never matches a gateway: the gateway plugin selects
    // gateway pods and matches every one of their listeners.
    assert!(
        gateway["spec"].get("match").is_none(),
        "{}",
        gateway["spec"]
    );
    assert_eq!(
        gateway["spec"]["selector"]["matchLabels"],
        json!({"istio": "ingressgateway"})
    );
    for plugin in [&sidecar, &gateway] {
        let spec = &plugin["spec"];
        assert_eq!(
            spec["pluginConfig"]["capture"]["jwt"]["payload_key"],
            "payload"
        );
        assert_eq!(
            spec["pluginConfig"]["sink"],
            sidecar["spec"]["pluginConfig"]["sink"]
        );
        assert_eq!(
            (&spec["phase"], &spec["failStrategy"]),
            (&json!("STATS"), &json!("FAIL_OPEN"))
        );
    }
    let path = istio("wasmplugin-gateway.yaml");
    let out = run(&["check-config", path.to_str().unwrap()], &KEYS);
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("WasmPlugin istio-system/mesh-audit-gateway: ok\n", Some(0))
    );
}
