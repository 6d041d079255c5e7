//! A proxy whose every answer is arbitrary data, and a whole filter
//! lifecycle run against it: configure, audit requests, flush, take the
//! sink's reply, drain. Shared by tests/robustness.rs (proptest, under
//! `make test`) and the cargo-fuzz targets in fuzz/ (via `#[path]`).
//!
//! Nothing here checks the records' content: only that the filter never
//! panics and that what it sends is well-formed.

// Each user (a test, a fuzz target) needs a different part of it.
#![allow(dead_code)]

use mesh_audit::filter::http::on_log;
use mesh_audit::filter::root::Auditor;
use mesh_audit::host::{DispatchError, Headers, Host, Level, Map, MetricKind, Unserializable};
use std::cell::{Cell, RefCell};

/// Everything the proxy will answer.
#[derive(Clone, Debug, Default)]
pub struct Scenario {
    /// The plugin configuration bytes.
    pub config: Vec<u8>,
    /// Values property reads are answered with: each property path maps to
    /// one of these (or to "absent", or to "not serializable") by its hash,
    /// so every attribute the filter reads gets arbitrary bytes.
    pub pool: Vec<Vec<u8>>,
    /// Mixed into the path hash, so the same pool lands differently.
    pub salt: u64,
    pub request: Headers,
    pub response: Headers,
    /// The sink's reply headers.
    pub reply: Headers,
    /// How many requests go through `on_log`.
    pub requests: usize,
    pub env: Vec<(String, String)>,
}

/// What the filter did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub configured: bool,
    /// Bodies of the calls dispatched to the sink.
    pub bodies: Vec<Vec<u8>>,
}

pub struct ArbitraryHost {
    scenario: Scenario,
    now_nanos: Cell<u64>,
    bodies: RefCell<Vec<Vec<u8>>>,
    tokens: Cell<u32>,
}

/// FNV-1a: a stable, dependency-free hash of a property path.
fn fnv(bytes: &[u8], salt: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ salt;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl ArbitraryHost {
    pub fn new(scenario: Scenario) -> ArbitraryHost {
        ArbitraryHost {
            scenario,
            // 2026-11-21T14:03:05Z: a realistic clock, far from overflow.
            now_nanos: Cell::new(1_795_269_785_000_000_000),
            bodies: RefCell::new(Vec::new()),
            tokens: Cell::new(0),
        }
    }

    fn advance_ms(&self, ms: u64) {
        self.now_nanos.set(self.now_nanos.get() + ms * 1_000_000);
    }

    /// Which pool entry answers `path`: `Some(i)`, or `None` for absent;
    /// `Err` for "present but not serializable".
    fn pick(&self, path: &[&str]) -> Result<Option<usize>, Unserializable> {
        let pool = &self.scenario.pool;
        let h = fnv(path.join(".").as_bytes(), self.scenario.salt);
        match h % (pool.len() as u64 + 2) {
            n if n == pool.len() as u64 => Ok(None),
            n if n == pool.len() as u64 + 1 => Err(Unserializable),
            n => Ok(Some(n as usize)),
        }
    }
}

impl Host for ArbitraryHost {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.property_or_error(path).ok().flatten()
    }

    fn property_or_error(&self, path: &[&str]) -> Result<Option<Vec<u8>>, Unserializable> {
        Ok(self
            .pick(path)?
            .and_then(|i| self.scenario.pool.get(i).cloned()))
    }

    fn headers(&self, map: Map) -> Headers {
        match map {
            Map::RequestHeaders => self.scenario.request.clone(),
            Map::ResponseHeaders => self.scenario.response.clone(),
            Map::CallResponseHeaders => self.scenario.reply.clone(),
        }
    }

    fn plugin_config(&self) -> Option<Vec<u8>> {
        Some(self.scenario.config.clone())
    }

    fn now_nanos(&self) -> u64 {
        self.now_nanos.get()
    }

    fn log(&self, _: Level, _: &str) {}

    fn set_tick_period_ms(&self, _: u64) {}

    fn dispatch(
        &self,
        _: &str,
        _: &[(&str, &str)],
        body: &[u8],
        _: u64,
    ) -> Result<u32, DispatchError> {
        self.bodies.borrow_mut().push(body.to_vec());
        self.tokens.set(self.tokens.get() + 1);
        Ok(self.tokens.get())
    }

    fn define_metric(&self, _: MetricKind, _: &str) -> Option<u32> {
        Some(self.tokens.get())
    }

    fn increment_metric(&self, _: u32, _: i64) {}

    fn record_metric(&self, _: u32, _: u64) {}

    fn send_local_reply(&self, _: u32, _: &[u8], _: &[(&str, &str)]) {}

    fn done(&self) {}

    fn env_var(&self, name: &str) -> Option<String> {
        self.scenario
            .env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn fill_random(&self, buf: &mut [u8]) -> bool {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (self.scenario.salt as u8).wrapping_add(i as u8);
        }
        true
    }
}

/// Runs the lifecycle: configure; each request through the fail-closed
/// check and `on_log`; a tick a flush interval later; the sink's reply to
/// every call; the requests again; a drain with those still buffered, a
/// tick, the sink's replies.
pub fn run(scenario: Scenario) -> Outcome {
    let requests = scenario.requests;
    let host = ArbitraryHost::new(scenario);
    let mut auditor = Auditor::new(&host);
    if !auditor.configure(&host) {
        return Outcome::default();
    }
    let flush_ms = auditor
        .active
        .as_ref()
        .map_or(1000, |a| a.config.batch.flush_interval_ms.min(86_400_000));
    let audit = |auditor: &mut Auditor| {
        for _ in 0..requests {
            if !auditor.must_reject() {
                on_log(auditor, &host);
            }
            host.advance_ms(1);
        }
    };
    audit(&mut auditor);
    host.advance_ms(flush_ms);
    auditor.tick(&host);
    for token in 1..=host.tokens.get() {
        auditor.call_response(&host, token);
    }
    // More records, still buffered when the drain starts.
    audit(&mut auditor);
    if !auditor.shutdown(&host) {
        host.advance_ms(flush_ms);
        auditor.tick(&host);
        for token in 1..=host.tokens.get() {
            auditor.call_response(&host, token);
        }
    }
    Outcome {
        configured: true,
        bodies: host.bodies.take(),
    }
}

/// A configuration that turns on everything a record can carry, in the
/// given format.
pub fn full_config(format: &str) -> Vec<u8> {
    format!(
        r#"{{"sink":{{"cluster":"audit_sink","format":"{format}","headers":{{"x-audit-tenant":"t"}}}},
            "batch":{{"max_records":3,"max_buffered_records":5,"flush_interval_ms":1000}},
            "capture":{{"request_headers":["user-agent","authorization","cookie","x-forwarded-for","x-user-email"],
                        "response_headers":["content-type","set-cookie"],"query":true,
                        "jwt":{{"claims":["sub","iss","email","exp","groups"]}}}},
            "redact":{{"headers":{{"x-user-email":"hash","cookie":"drop"}},
                       "query_params":{{"token":"mask","password":"drop"}},
                       "claims":{{"email":"hash"}},"hash_key_env":"MESH_AUDIT_HASH_KEY"}},
            "sampling":{{"key":"x-request-id","rules":[
                {{"name":"denied","when":{{"status":["401","403","5xx"]}},"rate":1.0}},
                {{"name":"ops","when":{{"principal":"spiffe://cluster.local/ns/ops/*","route":"admin"}},"rate":1.0}}]}},
            "integrity":{{"chain":true,"key_env":"MESH_AUDIT_CHAIN_KEY"}},
            "access_policy":[{{"name":"admin-only","path_prefix":"/admin",
                               "allow_principals":["spiffe://cluster.local/ns/ops/sa/console"]}}]}}"#
    )
    .into_bytes()
}

/// The keys `full_config` and friends need.
pub fn env() -> Vec<(String, String)> {
    vec![
        ("MESH_AUDIT_HASH_KEY".into(), "hash-key".into()),
        ("MESH_AUDIT_CHAIN_KEY".into(), "chain-key".into()),
    ]
}

/// Every JSON-lines body holds only JSON objects with a `kind`, one per
/// line. Returns the number of records, or what is wrong.
pub fn check_jsonl(body: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
    let mut n = 0;
    for line in text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line is not JSON ({e}): {line}"))?;
        if !value.get("kind").is_some_and(|k| k.is_string()) {
            return Err(format!("record without kind: {line}"));
        }
        n += 1;
    }
    Ok(n)
}
