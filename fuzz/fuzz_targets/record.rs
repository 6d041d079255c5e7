//! The record builder on arbitrary proxy answers: every property, both
//! header maps and the sink's reply are fuzzer data. It never panics and
//! every record it sends parses as JSON.
#![no_main]

// The emulated proxy without a wasm runtime, and the lifecycle run in it.
#[path = "../../tests/host/model/mod.rs"]
mod host;
#[path = "../../tests/wasm/robustness/scenario.rs"]
mod scenario;

use libfuzzer_sys::fuzz_target;
use scenario::{check_jsonl, env, full_config, run, Scenario};

type Headers = Vec<(String, Vec<u8>)>;

fuzz_target!(
    |input: (bool, u64, Vec<Vec<u8>>, Headers, Headers, Headers, u8)| {
        let (otlp, salt, pool, request, response, reply, requests) = input;
        let outcome = run(Scenario {
            config: full_config(if otlp { "otlp" } else { "jsonl" }),
            pool,
            salt,
            request,
            response,
            reply,
            requests: usize::from(requests % 8) + 1,
            env: env(),
        });
        assert!(outcome.configured);
        if !otlp {
            let records: usize = outcome
                .bodies
                .iter()
                .map(|body| check_jsonl(body).unwrap_or_else(|e| panic!("{e}")))
                .sum();
            assert!(records >= 1, "no record sent");
        }
    }
);
