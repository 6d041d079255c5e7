//! An emulated Envoy for the compiled mesh-audit `.wasm`: the proxy-wasm
//! ABI 0.2.1 host side and the WASI calls the module makes, on wasmtime.
//!
//! The host records what the module did (logs, dispatched calls, metrics,
//! local replies, done, host calls per request) and tests assert on that
//! state. Time is virtual: it moves only when the test says so.
//!
//! ```ignore
//! let mut h = Host::new();
//! h.env("MESH_AUDIT_HASH_KEY", "k");
//! assert!(h.configure(r#"{"sink":{"cluster":"audit_sink"}}"#));
//! let out = h.run(h.request().header(":method", "GET").props(mtls_connection(7)));
//! h.advance_ms(1000);
//! h.tick();
//! let token = h.pending()[0].token.unwrap();
//! h.reply(token, 200, b"");
//! h.tick();
//! assert_eq!(h.metric("mesh_audit.records_delivered"), 1);
//! ```
// Each test binary includes this module and uses a different part of it.
#![allow(dead_code, unused_imports)]

pub mod artifact;
mod driver;
pub mod fixtures;
pub mod guest;
pub mod props;
mod proxy_abi;
mod proxy_maps;
mod records;
mod sink;
pub mod state;
mod wasi;

pub use driver::{Outcome, Request};
pub use props::{
    boolean, duration_nanos, i64_le, mtls_connection, plaintext_connection, time_nanos, typical,
    typical_request, u64_le, Props,
};
pub use state::{status, Answer, Dispatch, LocalReply, LogLine, Metric, MetricKind, State};

use std::collections::HashMap;
use wasmtime::{Engine, ExternType, Instance, Linker, Module, Store, WasmParams, WasmResults};

/// Log levels as proxy-wasm numbers them.
pub mod level {
    pub const TRACE: u32 = 0;
    pub const DEBUG: u32 = 1;
    pub const INFO: u32 = 2;
    pub const WARN: u32 = 3;
    pub const ERROR: u32 = 4;
    pub const CRITICAL: u32 = 5;
}

pub const ROOT_ID: u32 = 1;

/// Builds the import set for `module`. Fails naming every import the
/// emulator cannot provide (anything in `env` that is not `proxy_*`, any
/// other module than `env` and WASI preview 1, non-function imports).
pub fn linker_for(engine: &Engine, module: &Module) -> Result<Linker<State>, String> {
    let mut linker = Linker::new(engine);
    let mut unknown = Vec::new();
    for import in module.imports() {
        let (m, name) = (import.module(), import.name());
        let ExternType::Func(ty) = import.ty() else {
            unknown.push(format!("{m}.{name} (not a function)"));
            continue;
        };
        let defined = match m {
            "env" => proxy_abi::define(&mut linker, name, &ty),
            wasi::MODULE => wasi::define(&mut linker, name, &ty).map(|()| true),
            _ => Ok(false),
        };
        match defined {
            Ok(true) => {}
            Ok(false) => unknown.push(format!("{m}.{name}")),
            Err(e) => return Err(format!("cannot define {m}.{name}: {e:?}")),
        }
    }
    if unknown.is_empty() {
        Ok(linker)
    } else {
        Err(format!(
            "the module imports what the emulated proxy does not provide: {}",
            unknown.join(", ")
        ))
    }
}

pub struct Host {
    store: Store<State>,
    instance: Option<Instance>,
    next_context: u32,
    /// Properties visible in every context (requests add their own).
    base_props: Props,
    vm_config: Vec<u8>,
    pub vm_started: Option<bool>,
}

impl Default for Host {
    fn default() -> Self {
        Host::new()
    }
}

impl Host {
    pub fn new() -> Host {
        let compiled = artifact::compiled();
        Host {
            store: Store::new(&compiled.engine, State::new()),
            instance: None,
            next_context: ROOT_ID + 1,
            base_props: Props::new(),
            vm_config: Vec::new(),
            vm_started: None,
        }
    }

    // ------------------------------------------------------------ inputs ---

    fn before_start(&self, what: &str) {
        assert!(
            self.instance.is_none(),
            "{what} must be set before the VM starts"
        );
    }

    /// An environment variable of the VM (`vm_config.environment_variables`).
    pub fn env(&mut self, name: &str, value: &str) -> &mut Self {
        self.before_start("env");
        self.store
            .data_mut()
            .env
            .push((name.to_string(), value.to_string()));
        self
    }

    /// Envoy's shared data as an earlier VM left it (it outlives VMs).
    pub fn shared_data(&mut self, data: &HashMap<String, Vec<u8>>) -> &mut Self {
        self.store.data_mut().shared_data.clone_from(data);
        self
    }

    /// Seeds the deterministic `random_get` bytes.
    pub fn seed(&mut self, seed: u64) -> &mut Self {
        self.store.data_mut().rng = seed;
        self
    }

    pub fn vm_config(&mut self, bytes: &[u8]) -> &mut Self {
        self.before_start("vm_config");
        self.vm_config = bytes.to_vec();
        self
    }

    /// A property visible to every context from now on.
    pub fn property(&mut self, dotted: &str, value: impl AsRef<[u8]>) -> &mut Self {
        self.base_props = std::mem::take(&mut self.base_props).set(dotted, value);
        self.apply_props(&Props::new());
        self
    }

    /// `proxy_http_call` to this cluster fails with BadArgument, as Envoy
    /// does for a cluster it does not know.
    pub fn unknown_cluster(&mut self, name: &str) -> &mut Self {
        self.store
            .data_mut()
            .unknown_clusters
            .insert(name.to_string());
        self
    }

    pub fn known_cluster(&mut self, name: &str) -> &mut Self {
        self.store.data_mut().unknown_clusters.remove(name);
        self
    }

    pub fn log_level(&mut self, level: u32) -> &mut Self {
        self.store.data_mut().log_level = level;
        self
    }

    fn apply_props(&mut self, extra: &Props) {
        let merged = self.base_props.clone().merge(extra.clone());
        let s = self.store.data_mut();
        s.properties.clear();
        s.properties.extend(merged.wire());
    }

    // ------------------------------------------------------------ driving ---

    /// Instantiates the module, runs its initialisers, creates the root
    /// context and starts the VM. Returns what `proxy_on_vm_start` returned.
    pub fn start(&mut self) -> bool {
        if let Some(started) = self.vm_started {
            return started;
        }
        let compiled = artifact::compiled();
        let linker =
            linker_for(&compiled.engine, &compiled.module).unwrap_or_else(|e| panic!("{e}"));
        let abi = compiled.module.exports().any(|e| {
            matches!(
                e.name(),
                "proxy_abi_version_0_2_1" | "proxy_abi_version_0_2_0"
            )
        });
        assert!(
            abi,
            "the module exports no proxy_abi_version_0_2_1 / _0_2_0 marker"
        );
        let instance = match linker.instantiate(&mut self.store, &compiled.module) {
            Ok(i) => i,
            Err(e) => panic!(
                "instantiation failed: {e:?}\n{}",
                self.store.data().log_dump()
            ),
        };
        self.instance = Some(instance);
        for init in ["_initialize", "_start"] {
            if instance.get_func(&mut self.store, init).is_some() {
                self.call::<(), ()>(0, "init", init, ());
            }
        }
        self.store.data_mut().live_contexts.insert(ROOT_ID);
        self.apply_props(&Props::new());
        self.call::<(i32, i32), ()>(
            ROOT_ID,
            "context_create",
            "proxy_on_context_create",
            (ROOT_ID as i32, 0),
        );
        let vm_config = self.vm_config.clone();
        self.store
            .data_mut()
            .buffers
            .insert(state::buffer::VM_CONFIGURATION, vm_config.clone());
        let ok = self.call::<(i32, i32), i32>(
            ROOT_ID,
            "vm_start",
            "proxy_on_vm_start",
            (ROOT_ID as i32, vm_config.len() as i32),
        );
        self.store
            .data_mut()
            .buffers
            .remove(&state::buffer::VM_CONFIGURATION);
        self.vm_started = Some(ok != 0);
        ok != 0
    }

    /// Hands `config` to `proxy_on_configure`; returns what it returned.
    pub fn configure(&mut self, config: &str) -> bool {
        self.configure_bytes(config.as_bytes())
    }

    pub fn configure_bytes(&mut self, config: &[u8]) -> bool {
        assert!(
            self.start(),
            "proxy_on_vm_start returned false\n{}",
            self.log_dump()
        );
        self.store
            .data_mut()
            .buffers
            .insert(state::buffer::PLUGIN_CONFIGURATION, config.to_vec());
        let ok = self.call::<(i32, i32), i32>(
            ROOT_ID,
            "configure",
            "proxy_on_configure",
            (ROOT_ID as i32, config.len() as i32),
        );
        self.store
            .data_mut()
            .buffers
            .remove(&state::buffer::PLUGIN_CONFIGURATION);
        ok != 0
    }

    /// Calls export `name` while `context` is being driven, so host calls
    /// are counted against it. A trap fails the test, showing the logs.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        context: u32,
        phase: &'static str,
        name: &str,
        params: P,
    ) -> R {
        let instance = self
            .instance
            .unwrap_or_else(|| panic!("{name} called before start"));
        let func = match instance.get_typed_func::<P, R>(&mut self.store, name) {
            Ok(f) => f,
            Err(e) => panic!("the module has no usable export {name}: {e:?}"),
        };
        let s = self.store.data_mut();
        s.driving = Some((context, phase));
        s.effective_context = Some(context);
        let result = func.call(&mut self.store, params);
        self.store.data_mut().driving = None;
        match result {
            Ok(r) => r,
            Err(e) => panic!(
                "the module trapped in {name} (context {context}): {e:?}\ncaptured logs:\n{}",
                self.store.data().log_dump()
            ),
        }
    }

    /// Calls any export directly, outside a context, for edge cases the
    /// driver does not model. Traps fail the test like every other call.
    pub fn invoke<P: WasmParams, R: WasmResults>(&mut self, name: &str, params: P) -> R {
        self.call(0, "invoke", name, params)
    }

    /// `proxy_on_tick` on the root context, if the module asked for ticks
    /// (as in Envoy: no tick period, no ticks).
    pub fn tick(&mut self) {
        if self.tick_period_ms().unwrap_or(0) > 0 {
            self.call::<(i32,), ()>(ROOT_ID, "tick", "proxy_on_tick", (ROOT_ID as i32,));
        }
    }

    /// `proxy_on_done` on the root context (the VM is draining). False
    /// means the module will call `proxy_done` later.
    pub fn shutdown(&mut self) -> bool {
        self.call::<(i32,), i32>(ROOT_ID, "done", "proxy_on_done", (ROOT_ID as i32,)) != 0
    }

    /// `proxy_on_delete` on the root context, after done.
    pub fn delete_root(&mut self) {
        self.call::<(i32,), ()>(ROOT_ID, "delete", "proxy_on_delete", (ROOT_ID as i32,));
        self.store.data_mut().live_contexts.remove(&ROOT_ID);
    }
}
