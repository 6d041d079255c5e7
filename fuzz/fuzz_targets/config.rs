//! The configuration parser on arbitrary bytes: it answers Ok or one error
//! line, never panics; whatever it accepts then runs a whole filter
//! lifecycle and sends only well-formed JSON lines.
#![no_main]

// The emulated proxy without a wasm runtime, and the lifecycle run in it.
#[path = "../../tests/host/model/mod.rs"]
mod host;
#[path = "../../tests/wasm/robustness/scenario.rs"]
mod scenario;

use libfuzzer_sys::fuzz_target;
use mesh_audit::config::{error_line, Config, Format};
use scenario::{check_jsonl, env, run, Scenario};

fuzz_target!(|data: &[u8]| {
    let vars = env();
    let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let config = match Config::from_json(data, &lookup) {
        Ok(config) => config,
        Err(e) => {
            let line = error_line(&e);
            assert!(
                line.starts_with("mesh-audit: invalid configuration: ") && !line.contains('\n')
            );
            return;
        }
    };
    let request = [
        (":method", "GET"),
        (":path", "/admin/x?token=t"),
        ("x-request-id", "r-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    let outcome = run(Scenario {
        config: data.to_vec(),
        request,
        reply: vec![(":status".into(), b"503".to_vec())],
        requests: 3,
        env: vars,
        ..Scenario::default()
    });
    assert!(outcome.configured);
    if config.sink.format == Format::Jsonl {
        for body in &outcome.bodies {
            if let Err(e) = check_jsonl(body) {
                panic!("{e}");
            }
        }
    }
});
