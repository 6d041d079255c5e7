//! The emulated proxy without any wasm runtime: its state, its behaviour,
//! the driver that runs a lifecycle in Envoy's order, and the native guest
//! (the core through the host traits). The compiled-`.wasm` guest lives
//! beside it (tests/host/wasm_guest.rs); both are driven the same way and
//! leave the same kind of record in the same [`State`].
//!
//! This half needs nothing but the crate: the fuzz targets include it alone.

// Each user (a test binary, a fuzz target) uses a different part of it.
#![allow(dead_code, unused_imports)]

pub mod driver;
pub mod native;
mod ops;
pub mod props;
mod records;
mod sink;
pub mod state;

pub use driver::{Outcome, Request};
pub use props::{
    boolean, duration_nanos, i64_le, mtls_connection, plaintext_connection, time_nanos, typical,
    typical_request, u64_le, Props,
};
pub use state::{
    status, Answer, Arbitrary, Dispatch, LocalReply, LogLine, Metric, MetricKind, State,
};

use std::any::Any;
use std::collections::HashMap;
use std::fmt;

pub const ROOT_ID: u32 = 1;

/// Which code runs inside the emulated proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guest {
    /// The crate's core, natively, through the host traits.
    Native,
    /// The compiled release `.wasm`, on wasmtime, through the ABI.
    Wasm,
}

impl Guest {
    pub const ALL: [Guest; 2] = [Guest::Native, Guest::Wasm];
}

impl fmt::Display for Guest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Guest::Native => "native",
            Guest::Wasm => "wasm",
        })
    }
}

/// A proxy-wasm entry point, with the arguments the proxy passes.
#[derive(Clone, Copy, Debug)]
pub enum Call {
    /// The module's initialisers (`_initialize`, `_start`).
    Init,
    ContextCreate {
        context: u32,
        parent: u32,
    },
    VmStart {
        size: usize,
    },
    Configure {
        size: usize,
    },
    Tick,
    RequestHeaders {
        context: u32,
        headers: usize,
        end_of_stream: bool,
    },
    RequestBody {
        context: u32,
        size: usize,
        end_of_stream: bool,
    },
    ResponseHeaders {
        context: u32,
        headers: usize,
        end_of_stream: bool,
    },
    ResponseBody {
        context: u32,
        size: usize,
        end_of_stream: bool,
    },
    Log {
        context: u32,
    },
    Done {
        context: u32,
    },
    Delete {
        context: u32,
    },
    HttpCallResponse {
        token: u32,
        headers: usize,
        body: usize,
        trailers: usize,
    },
}

/// What a guest offers the driver: the entry points, and the state it holds.
pub trait GuestCode: Any {
    fn kind(&self) -> Guest;
    fn state(&self) -> &State;
    fn state_mut(&mut self) -> &mut State;
    /// Makes the code ready to be called (instantiates a module).
    fn load(&mut self);
    /// Runs one entry point; returns what it returned (0 for none). A trap
    /// or panic fails the test, showing the logs.
    fn call(&mut self, call: Call) -> i32;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

pub struct Host {
    guest: Box<dyn GuestCode>,
    loaded: bool,
    next_context: u32,
    /// Properties visible in every context (requests add their own).
    base_props: Props,
    vm_config: Vec<u8>,
    pub vm_started: Option<bool>,
}

impl Host {
    pub fn with_guest(guest: Box<dyn GuestCode>) -> Host {
        Host {
            guest,
            loaded: false,
            next_context: ROOT_ID + 1,
            base_props: Props::new(),
            vm_config: Vec::new(),
            vm_started: None,
        }
    }

    /// A host running the native core.
    pub fn native() -> Host {
        Host::with_guest(Box::new(native::NativeGuest::default()))
    }

    pub fn guest(&self) -> Guest {
        self.guest.kind()
    }

    /// The guest's code itself, for what only one kind of guest can do.
    pub fn guest_code(&mut self) -> &mut dyn Any {
        self.guest.as_any_mut()
    }

    // ------------------------------------------------------------ inputs ---

    fn before_start(&self, what: &str) {
        assert!(!self.loaded, "{what} must be set before the VM starts");
    }

    /// An environment variable of the VM (`vm_config.environment_variables`).
    pub fn env(&mut self, name: &str, value: &str) -> &mut Self {
        self.before_start("env");
        self.state_mut()
            .env
            .push((name.to_string(), value.to_string()));
        self
    }

    /// Envoy's shared data as an earlier VM left it (it outlives VMs).
    pub fn shared_data(&mut self, data: &HashMap<String, Vec<u8>>) -> &mut Self {
        self.state_mut().shared_data.clone_from(data);
        self
    }

    /// Seeds the deterministic `random_get` bytes.
    pub fn seed(&mut self, seed: u64) -> &mut Self {
        self.state_mut().rng = seed;
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

    /// From now on, the property at `segments` exists but cannot be
    /// serialised: reading it fails with SerializationFailure, as Envoy
    /// answers for a metadata `Struct` holding a null.
    pub fn unserializable(&mut self, segments: &[&str]) -> &mut Self {
        let path = segments.join("\0").into_bytes();
        self.state_mut().unserializable.insert(path);
        self
    }

    /// Every property not set by the test answers with arbitrary data.
    pub fn arbitrary_properties(&mut self, arbitrary: Arbitrary) -> &mut Self {
        self.state_mut().arbitrary = Some(arbitrary);
        self
    }

    /// `proxy_http_call` to this cluster fails with BadArgument, as Envoy
    /// does for a cluster it does not know.
    pub fn unknown_cluster(&mut self, name: &str) -> &mut Self {
        self.state_mut().unknown_clusters.insert(name.to_string());
        self
    }

    pub fn known_cluster(&mut self, name: &str) -> &mut Self {
        self.state_mut().unknown_clusters.remove(name);
        self
    }

    pub fn log_level(&mut self, level: u32) -> &mut Self {
        self.state_mut().log_level = level;
        self
    }

    fn apply_props(&mut self, extra: &Props) {
        let merged = self.base_props.clone().merge(extra.clone());
        let s = self.state_mut();
        s.properties.clear();
        s.properties.extend(merged.wire());
    }

    pub fn state_mut(&mut self) -> &mut State {
        self.guest.state_mut()
    }

    // ------------------------------------------------------------ driving ---

    /// Runs entry point `call` while `context` is being driven, so host
    /// calls are counted against it.
    fn call(&mut self, context: u32, phase: &'static str, call: Call) -> i32 {
        let s = self.state_mut();
        s.driving = Some((context, phase));
        s.effective_context = Some(context);
        let result = self.guest.call(call);
        self.state_mut().driving = None;
        result
    }

    /// Runs the module's initialisers, creates the root context and starts
    /// the VM. Returns what `proxy_on_vm_start` returned.
    pub fn start(&mut self) -> bool {
        if let Some(started) = self.vm_started {
            return started;
        }
        self.guest.load();
        self.loaded = true;
        self.call(0, "init", Call::Init);
        self.state_mut().live_contexts.insert(ROOT_ID);
        self.apply_props(&Props::new());
        let root = Call::ContextCreate {
            context: ROOT_ID,
            parent: 0,
        };
        self.call(ROOT_ID, "context_create", root);
        let vm_config = self.vm_config.clone();
        let size = vm_config.len();
        let s = self.state_mut();
        s.buffers.insert(state::buffer::VM_CONFIGURATION, vm_config);
        let ok = self.call(ROOT_ID, "vm_start", Call::VmStart { size }) != 0;
        self.state_mut()
            .buffers
            .remove(&state::buffer::VM_CONFIGURATION);
        self.vm_started = Some(ok);
        ok
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
        self.state_mut()
            .buffers
            .insert(state::buffer::PLUGIN_CONFIGURATION, config.to_vec());
        let size = config.len();
        let ok = self.call(ROOT_ID, "configure", Call::Configure { size });
        self.state_mut()
            .buffers
            .remove(&state::buffer::PLUGIN_CONFIGURATION);
        ok != 0
    }

    /// `proxy_on_tick` on the root context, if the module asked for ticks
    /// (as in Envoy: no tick period, no ticks).
    pub fn tick(&mut self) {
        if self.tick_period_ms().unwrap_or(0) > 0 {
            self.call(ROOT_ID, "tick", Call::Tick);
        }
    }

    /// `proxy_on_done` on the root context (the VM is draining). False
    /// means the module will call `proxy_done` later.
    pub fn shutdown(&mut self) -> bool {
        let done = Call::Done { context: ROOT_ID };
        self.call(ROOT_ID, "done", done) != 0
    }

    /// `proxy_on_delete` on the root context, after done.
    pub fn delete_root(&mut self) {
        self.call(ROOT_ID, "delete", Call::Delete { context: ROOT_ID });
        self.state_mut().live_contexts.remove(&ROOT_ID);
    }
}
