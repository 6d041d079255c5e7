//! What the emulated proxy holds (inputs the test sets) and what it saw the
//! guest do (records the test asserts on). Tests look at state, not at an
//! ordered list of host calls, so refactoring the filter's call order does
//! not break them.
//! The proxy's behaviour over this state is in ops.rs.

use std::collections::{BTreeMap, HashMap, HashSet};

/// proxy-wasm status codes (`WasmResult` in the ABI).
pub mod status {
    pub const OK: i32 = 0;
    pub const NOT_FOUND: i32 = 1;
    pub const BAD_ARGUMENT: i32 = 2;
    pub const SERIALIZATION_FAILURE: i32 = 3;
    pub const INVALID_MEMORY_ACCESS: i32 = 6;
    pub const EMPTY: i32 = 7;
    pub const INTERNAL_FAILURE: i32 = 10;
}

/// Header map types of the ABI.
pub mod map {
    pub const REQUEST_HEADERS: i32 = 0;
    pub const REQUEST_TRAILERS: i32 = 1;
    pub const RESPONSE_HEADERS: i32 = 2;
    pub const RESPONSE_TRAILERS: i32 = 3;
    pub const CALL_RESPONSE_HEADERS: i32 = 6;
    pub const CALL_RESPONSE_TRAILERS: i32 = 7;
}

/// Buffer types of the ABI.
pub mod buffer {
    pub const REQUEST_BODY: i32 = 0;
    pub const RESPONSE_BODY: i32 = 1;
    pub const CALL_RESPONSE_BODY: i32 = 4;
    pub const VM_CONFIGURATION: i32 = 6;
    pub const PLUGIN_CONFIGURATION: i32 = 7;
}

pub type Pairs = Vec<(String, Vec<u8>)>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: u32,
    pub message: String,
}

/// One `proxy_http_call` the module made, accepted or refused.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// `None` when the host refused the call.
    pub token: Option<u32>,
    /// The status `proxy_http_call` returned.
    pub status: i32,
    pub cluster: String,
    pub headers: Pairs,
    pub body: Vec<u8>,
    pub trailers: Pairs,
    pub timeout_ms: u32,
    /// Virtual time of the call, milliseconds.
    pub at_ms: u64,
    pub answer: Answer,
}

/// How the emulated proxy answered a dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Pending,
    /// The sink replied with this `:status`.
    Status(u32),
    /// The call failed without any reply (stream reset).
    Failed,
    /// `timeout_ms` passed: answered with a local 504, as Envoy does.
    TimedOut,
}

impl Dispatch {
    pub fn answered(&self) -> bool {
        self.answer != Answer::Pending
    }

    /// Accepted by the proxy (a token was returned).
    pub fn accepted(&self) -> bool {
        self.token.is_some()
    }

    /// The first value of header `name` (exact, lower-case), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    pub context: u32,
    pub status: u32,
    pub details: String,
    pub body: Vec<u8>,
    pub headers: Pairs,
    pub grpc_status: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Clone, Debug)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
    pub value: i64,
}

/// Property answers for robustness runs: each path maps, by its hash, to
/// one pool entry, to "absent" or to "not serialisable", so every attribute
/// the filter reads gets arbitrary bytes.
#[derive(Clone, Debug, Default)]
pub struct Arbitrary {
    pub pool: Vec<Vec<u8>>,
    /// Mixed into the path hash, so the same pool lands differently.
    pub salt: u64,
}

impl Arbitrary {
    /// FNV-1a of the dotted path: stable and dependency-free.
    pub(super) fn answer(&self, dotted: &str) -> Result<Vec<u8>, i32> {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ self.salt;
        for b in dotted.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let n = self.pool.len() as u64;
        match h % (n + 2) {
            i if i == n => Err(status::NOT_FOUND),
            i if i == n + 1 => Err(status::SERIALIZATION_FAILURE),
            i => Ok(self.pool[i as usize].clone()),
        }
    }
}

/// Everything the emulator knows. The guest being driven holds it.
pub struct State {
    // --- inputs
    pub env: Vec<(String, String)>,
    pub rng: u64,
    pub now_nanos: u64,
    pub log_level: u32,
    pub buffers: HashMap<i32, Vec<u8>>,
    /// Header maps currently visible to the module, by map type.
    pub maps: HashMap<i32, Pairs>,
    /// Properties keyed by their NUL-separated path, as the module asks.
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
    pub unknown_clusters: HashSet<String>,
    /// Contexts the module may switch to with `proxy_set_effective_context`.
    pub live_contexts: HashSet<u32>,
    /// Properties the proxy has but cannot serialise (SerializationFailure).
    pub unserializable: HashSet<Vec<u8>>,
    /// When set, every property the test did not set is answered with
    /// arbitrary data (see [`Arbitrary`]).
    pub arbitrary: Option<Arbitrary>,
    /// Envoy's shared data (`proxy_{get,set}_shared_data`), which outlives
    /// a VM: copy it into a new host to stand for the next VM.
    pub shared_data: HashMap<String, Vec<u8>>,

    // --- records
    pub logs: Vec<LogLine>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub dispatches: Vec<Dispatch>,
    pub next_token: u32,
    pub metric_ids: Vec<Metric>,
    pub local_replies: Vec<LocalReply>,
    pub done_calls: u32,
    pub tick_period_ms: Option<u32>,
    pub effective_context: Option<u32>,
    pub exit_code: Option<i32>,
    /// Calls by import name (`env.proxy_log`, `wasi_snapshot_preview1.fd_write`, …).
    pub calls_by_import: BTreeMap<String, u64>,
    /// Imports answered by a generic stub (no real emulation), with counts.
    pub stub_calls: BTreeMap<String, u64>,
    /// The context the driver is currently running, and the phase.
    pub driving: Option<(u32, &'static str)>,
    /// `env.proxy_*` calls per context, and per (context, phase).
    pub proxy_calls_by_context: HashMap<u32, u64>,
    pub proxy_calls_by_phase: HashMap<(u32, &'static str), u64>,
    /// WASI calls per context (not proxy-wasm host calls, counted apart).
    pub wasi_calls_by_context: HashMap<u32, u64>,
    /// Property paths read, with the context that read them (dotted form).
    pub property_reads: Vec<(Option<u32>, String)>,
    /// Header map writes (`add`/`replace`/`remove`/`set`): (map, operation, key).
    pub header_writes: Vec<(i32, &'static str, String)>,
}

impl State {
    pub fn new() -> State {
        State {
            env: Vec::new(),
            rng: 0x5eed_0fa0_d170_0000,
            // 2026-11-21T14:03:05Z, a fixed and readable instant.
            now_nanos: 1_795_269_785_000_000_000,
            log_level: 0,
            buffers: HashMap::new(),
            maps: HashMap::new(),
            properties: HashMap::new(),
            unknown_clusters: HashSet::new(),
            live_contexts: HashSet::new(),
            unserializable: HashSet::new(),
            arbitrary: None,
            shared_data: HashMap::new(),
            logs: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            dispatches: Vec::new(),
            next_token: 1,
            metric_ids: Vec::new(),
            local_replies: Vec::new(),
            done_calls: 0,
            tick_period_ms: None,
            effective_context: None,
            exit_code: None,
            calls_by_import: BTreeMap::new(),
            stub_calls: BTreeMap::new(),
            driving: None,
            proxy_calls_by_context: HashMap::new(),
            proxy_calls_by_phase: HashMap::new(),
            wasi_calls_by_context: HashMap::new(),
            property_reads: Vec::new(),
            header_writes: Vec::new(),
        }
    }

    /// Counts one call of `module.name` against the context being driven.
    pub fn count(&mut self, module: &str, name: &str) {
        *self
            .calls_by_import
            .entry(format!("{module}.{name}"))
            .or_default() += 1;
        let Some((ctx, phase)) = self.driving else {
            return;
        };
        if module == "env" {
            *self.proxy_calls_by_context.entry(ctx).or_default() += 1;
            *self.proxy_calls_by_phase.entry((ctx, phase)).or_default() += 1;
        } else {
            *self.wasi_calls_by_context.entry(ctx).or_default() += 1;
        }
    }

    /// Deterministic random bytes (splitmix64), so tests are reproducible.
    pub fn random_bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            out.extend_from_slice(&z.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    pub fn now_ms(&self) -> u64 {
        self.now_nanos / 1_000_000
    }

    /// All log lines as text, one per line, for failure messages.
    pub fn log_dump(&self) -> String {
        let mut s = String::new();
        for l in &self.logs {
            s.push_str(&format!("  [{}] {}\n", level_name(l.level), l.message));
        }
        if !self.stdout.is_empty() {
            s.push_str(&format!(
                "  stdout: {}\n",
                String::from_utf8_lossy(&self.stdout)
            ));
        }
        if !self.stderr.is_empty() {
            s.push_str(&format!(
                "  stderr: {}\n",
                String::from_utf8_lossy(&self.stderr)
            ));
        }
        if s.is_empty() {
            s.push_str("  (no logs)\n");
        }
        s
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// A header by name, as Envoy matches them (case-insensitively).
pub fn find<'a>(pairs: &'a [(String, Vec<u8>)], key: &str) -> Option<&'a Vec<u8>> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

pub fn level_name(level: u32) -> &'static str {
    match level {
        0 => "trace",
        1 => "debug",
        2 => "info",
        3 => "warn",
        4 => "error",
        5 => "critical",
        _ => "?",
    }
}
