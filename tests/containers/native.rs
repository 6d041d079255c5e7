//! The native build in the recipe's containers: the same Envoy container
//! and configuration, with mesh-audit as the Envoy dynamic module (in the
//! local Envoy image) instead of the `.wasm`. Its bootstrap extension
//! flushes what is buffered when Envoy shuts down, so a plain SIGTERM
//! (`docker stop`) loses nothing and closes every emitter with a signed
//! `close` record — where the Wasm filter's emitters stay open
//! (faults.rs).

use crate::faults::{answered, burst};
use crate::stack::{docker_ok, recipe_dir, repo_root, Stack};
use crate::{assert_verify_clean, engine_or_notice, records_of_kind, slot, SETTLE};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The recipe's envoy.yaml with its Wasm filter turned into the module's
/// bootstrap extension and access logger (as examples/native/envoy.yaml
/// attaches it), with the filter's own plugin configuration, but batches
/// flushed only every 60 s: whatever is sent before the SIGTERM is still
/// buffered when it comes.
fn native_config(out: &Path) -> PathBuf {
    let recipe = std::fs::read_to_string(recipe_dir().join("envoy.yaml")).unwrap();
    let lines: Vec<&str> = recipe.lines().collect();
    let item = "          - name: ";
    let start = lines
        .iter()
        .position(|l| *l == "          - name: envoy.filters.http.wasm")
        .unwrap_or_else(|| panic!("the recipe's envoy.yaml has no mesh-audit Wasm filter"));
    let end = start
        + 1
        + lines[start + 1..]
            .iter()
            .position(|l| l.starts_with(item))
            .unwrap_or_else(|| panic!("nothing after the mesh-audit filter"));
    let value = start
        + lines[start..end]
            .iter()
            .position(|l| l.trim() == "value: |")
            .unwrap_or_else(|| panic!("the filter has no inline configuration"));
    let json_end = value
        + lines[value..end]
            .iter()
            .position(|l| l.trim() == "vm_config:")
            .unwrap_or_else(|| panic!("the filter has no vm_config"));
    let mut plugin: Value = serde_json::from_str(&lines[value + 1..json_end].join("\n"))
        .unwrap_or_else(|e| panic!("the filter's configuration: {e}"));
    plugin["batch"]["flush_interval_ms"] = 60_000.into();
    let routes = lines
        .iter()
        .position(|l| *l == "          route_config:")
        .unwrap_or_else(|| panic!("the recipe's envoy.yaml has no route_config"));
    assert!(routes < start, "the recipe's envoy.yaml: unexpected layout");
    let scalar = Value::String(plugin.to_string()).to_string();
    let access_log = [
        "          access_log:",
        "          - name: envoy.access_loggers.dynamic_modules",
        "            typed_config:",
        "              \"@type\": type.googleapis.com/envoy.extensions.access_loggers.dynamic_modules.v3.DynamicModuleAccessLog",
        "              dynamic_module_config: {name: mesh_audit, do_not_close: true}",
        "              logger_name: mesh-audit",
        "              logger_config:",
        "                \"@type\": type.googleapis.com/google.protobuf.StringValue",
    ]
    .map(str::to_string)
    .into_iter()
    .chain([format!("                value: {scalar}")]);
    let bootstrap = [
        "bootstrap_extensions:",
        "- name: envoy.bootstrap.dynamic_modules",
        "  typed_config:",
        "    \"@type\": type.googleapis.com/envoy.extensions.bootstrap.dynamic_modules.v3.DynamicModuleBootstrapExtension",
        "    dynamic_module_config: {name: mesh_audit, do_not_close: true}",
        "    extension_name: mesh-audit",
    ];
    let mut config: Vec<String> = bootstrap.map(str::to_string).to_vec();
    config.extend(lines[..routes].iter().map(|l| l.to_string()));
    config.extend(access_log);
    config.extend(lines[routes..start].iter().map(|l| l.to_string()));
    config.extend(lines[end..].iter().map(|l| l.to_string()));
    std::fs::write(out, config.join("\n") + "\n").unwrap();
    out.to_path_buf()
}

/// The recipe with tests/containers/native.yaml over it, up and healthy.
fn native_recipe(label: &str) -> Stack {
    let recipe = recipe_dir().join("docker-compose.yaml");
    let mut stack = Stack::new(label, &recipe);
    stack.add_file(&repo_root().join("tests/containers/native.yaml"));
    let config = native_config(&stack.scratch.join("envoy-native.yaml"));
    stack.set_env("MESH_AUDIT_NATIVE_CONFIG", config.to_str().unwrap());
    stack.up(&["sink", "envoy"]);
    stack
}

#[test]
fn the_native_module_stopped_by_sigterm_delivers_what_it_buffered_and_closes() {
    if !engine_or_notice(
        "the_native_module_stopped_by_sigterm_delivers_what_it_buffered_and_closes",
    ) {
        return;
    }
    let _one = slot();
    let fault = "native envoy SIGTERM";
    let stack = native_recipe("native-sigterm");
    let envoy = stack.container("envoy");
    let sent = answered(&burst(&stack, 20));
    assert_eq!(sent, 20, "{fault}: every request answered");
    // Every record is admitted and still buffered (nothing is due before
    // the 60 s flush).
    let deadline = Instant::now() + SETTLE;
    let last_scrape = loop {
        let stats = stack.stats();
        let get = |n: &str| stats.get(n).copied().unwrap_or(0);
        if get("records_admitted") >= sent as u64 {
            break stats;
        }
        assert!(
            Instant::now() < deadline,
            "{fault}: records never admitted: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let get = |n: &str| last_scrape.get(n).copied().unwrap_or(0);
    assert_eq!(get("records_delivered"), 0, "{fault}: {last_scrape:?}");
    assert_eq!(
        get("records_buffered"),
        sent as u64,
        "{fault}: {last_scrape:?}"
    );
    eprintln!("{fault}: counters at the last scrape {last_scrape:?}");
    docker_ok(&["stop", "-t", "10", &envoy]);

    // Nothing lost: every answered request is in the trail, and every
    // emitter ends with its close record, sealed and signed.
    let trail = stack.trail();
    assert_eq!(records_of_kind(&trail, "request").len(), sent, "{fault}");
    let outcome = assert_verify_clean(&stack, fault);
    assert_eq!(outcome["records"], trail.len(), "{fault}");
    let emitters = outcome["emitters"].as_array().unwrap();
    let closes = records_of_kind(&trail, "close");
    assert_eq!(closes.len(), emitters.len(), "{fault}: {closes:?}");
    for e in emitters {
        assert_eq!(e["closed"], true, "{fault}: {e}");
        assert_eq!(e["close_reason"], "shutdown", "{fault}: {e}");
        assert!(e.get("open_since").is_none(), "{fault}: {e}");
    }
    let (_, _, human) = stack.verify();
    assert!(human.contains("closed (shutdown)"), "{human}");
    eprintln!(
        "{fault}: {sent} answered, {} records ({} closes), nothing lost; verify says:\n{human}",
        trail.len(),
        closes.len()
    );
}
