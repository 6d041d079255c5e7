//! An emulated Envoy with two guests: the compiled mesh-audit `.wasm` (the
//! proxy-wasm ABI 0.2.1 host side and the WASI calls it makes, on wasmtime)
//! and the native core (through the crate's host traits). One state model,
//! one driver: a lifecycle test body runs on both with [`each_guest`], so a
//! wasm-only bug cannot hide behind a native test, nor the reverse.
//!
//! The host records what the guest did (logs, dispatched calls, metrics,
//! local replies, done, host calls per request) and tests assert on that
//! state. Time is virtual: it moves only when the test says so.
//!
//! ```ignore
//! each_guest(|guest| {
//! let mut h = Host::on(guest);
//! h.env("MESH_AUDIT_HASH_KEY", "k");
//! assert!(h.configure(r#"{"sink":{"cluster":"audit_sink"}}"#));
//! let out = h.run(h.request().header(":method", "GET").props(mtls_connection(7)));
//! h.advance_ms(1000);
//! h.tick();
//! let token = h.pending()[0].token.unwrap();
//! h.reply(token, 200, b"");
//! h.tick();
//! assert_eq!(h.metric("mesh_audit.records_delivered"), 1);
//! });
//! ```
//!
//! `Host::new()` is the wasm guest, `Host::native()` the native one.
// Each test binary includes this module and uses a different part of it.
#![allow(dead_code, unused_imports)]

pub mod artifact;
pub mod fixtures;
pub mod guest;
pub mod model;
mod proxy_abi;
mod proxy_maps;
mod wasi;
mod wasm_guest;

pub use model::{
    boolean, driver, duration_nanos, i64_le, mtls_connection, plaintext_connection, props, state,
    status, time_nanos, typical, typical_request, u64_le, Answer, Arbitrary, Call, Dispatch, Guest,
    Host, LocalReply, LogLine, Metric, MetricKind, Outcome, Props, Request, State, ROOT_ID,
};
pub use wasm_guest::WasmGuest;

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use wasmtime::{Engine, ExternType, Linker, Module, WasmParams, WasmResults};

/// Log levels as proxy-wasm numbers them.
pub mod level {
    pub const TRACE: u32 = 0;
    pub const DEBUG: u32 = 1;
    pub const INFO: u32 = 2;
    pub const WARN: u32 = 3;
    pub const ERROR: u32 = 4;
    pub const CRITICAL: u32 = 5;
}

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

impl Default for Host {
    fn default() -> Self {
        Host::new()
    }
}

impl Host {
    /// A host running the compiled `.wasm`.
    pub fn new() -> Host {
        Host::wasm()
    }

    pub fn wasm() -> Host {
        Host::with_guest(Box::new(WasmGuest::new()))
    }

    pub fn on(guest: Guest) -> Host {
        match guest {
            Guest::Native => Host::native(),
            Guest::Wasm => Host::wasm(),
        }
    }

    /// Calls any export of the `.wasm` directly, outside a context, for edge
    /// cases the driver does not model. Traps fail the test like every other
    /// call; on the native guest there are no exports.
    pub fn invoke<P: WasmParams, R: WasmResults>(&mut self, name: &str, params: P) -> R {
        self.start();
        self.state_mut().driving = Some((0, "invoke"));
        let Some(wasm) = self.guest_code().downcast_mut::<WasmGuest>() else {
            panic!("invoke({name}) needs the wasm guest");
        };
        let result = wasm.export(name, params);
        self.state_mut().driving = None;
        result
    }
}

/// Runs a lifecycle test body once per guest, native first. A failure names
/// the guest it happened on.
pub fn each_guest(body: impl Fn(Guest)) {
    for guest in Guest::ALL {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(guest))) {
            eprintln!("failed on the {guest} guest");
            resume_unwind(panic);
        }
    }
}
