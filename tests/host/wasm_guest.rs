//! The wasm guest: the compiled release `.wasm` on wasmtime, its entry
//! points called as Envoy calls them, its imports answered by the ABI
//! emulation (proxy_abi.rs, proxy_maps.rs, wasi.rs) over the same state.

use super::artifact;
use super::linker_for;
use super::model::{Call, Guest, GuestCode, State};
use std::any::Any;
use wasmtime::{Instance, Store, WasmParams, WasmResults};

pub struct WasmGuest {
    store: Store<State>,
    instance: Option<Instance>,
}

impl Default for WasmGuest {
    fn default() -> Self {
        WasmGuest::new()
    }
}

impl WasmGuest {
    pub fn new() -> WasmGuest {
        let compiled = artifact::compiled();
        WasmGuest {
            store: Store::new(&compiled.engine, State::new()),
            instance: None,
        }
    }

    /// Calls export `name`. A trap fails the test, showing the logs.
    pub fn export<P: WasmParams, R: WasmResults>(&mut self, name: &str, params: P) -> R {
        let instance = self
            .instance
            .unwrap_or_else(|| panic!("{name} called before start"));
        let func = match instance.get_typed_func::<P, R>(&mut self.store, name) {
            Ok(f) => f,
            Err(e) => panic!("the module has no usable export {name}: {e:?}"),
        };
        let context = self.store.data().driving.map_or(0, |(c, _)| c);
        match func.call(&mut self.store, params) {
            Ok(r) => r,
            Err(e) => panic!(
                "the module trapped in {name} (context {context}): {e:?}\ncaptured logs:\n{}",
                self.store.data().log_dump()
            ),
        }
    }
}

fn flag(b: bool) -> i32 {
    i32::from(b)
}

impl GuestCode for WasmGuest {
    fn kind(&self) -> Guest {
        Guest::Wasm
    }

    fn state(&self) -> &State {
        self.store.data()
    }

    fn state_mut(&mut self) -> &mut State {
        self.store.data_mut()
    }

    /// Instantiates the module; fails the test when it is not proxy-wasm.
    fn load(&mut self) {
        if self.instance.is_some() {
            return;
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
        match linker.instantiate(&mut self.store, &compiled.module) {
            Ok(i) => self.instance = Some(i),
            Err(e) => panic!(
                "instantiation failed: {e:?}\n{}",
                self.store.data().log_dump()
            ),
        }
    }

    fn call(&mut self, call: Call) -> i32 {
        let root = super::model::ROOT_ID as i32;
        match call {
            Call::Init => {
                let instance = self.instance.expect("loaded");
                for init in ["_initialize", "_start"] {
                    if instance.get_func(&mut self.store, init).is_some() {
                        self.export::<(), ()>(init, ());
                    }
                }
                0
            }
            Call::ContextCreate { context, parent } => {
                let args = (context as i32, parent as i32);
                self.export::<(i32, i32), ()>("proxy_on_context_create", args);
                0
            }
            Call::VmStart { size } => {
                self.export::<(i32, i32), i32>("proxy_on_vm_start", (root, size as i32))
            }
            Call::Configure { size } => {
                self.export::<(i32, i32), i32>("proxy_on_configure", (root, size as i32))
            }
            Call::Tick => {
                self.export::<(i32,), ()>("proxy_on_tick", (root,));
                0
            }
            Call::RequestHeaders {
                context,
                headers,
                end_of_stream,
            } => {
                let args = (context as i32, headers as i32, flag(end_of_stream));
                self.export::<(i32, i32, i32), i32>("proxy_on_request_headers", args)
            }
            Call::RequestBody {
                context,
                size,
                end_of_stream,
            } => {
                let args = (context as i32, size as i32, flag(end_of_stream));
                self.export::<(i32, i32, i32), i32>("proxy_on_request_body", args)
            }
            Call::ResponseHeaders {
                context,
                headers,
                end_of_stream,
            } => {
                let args = (context as i32, headers as i32, flag(end_of_stream));
                self.export::<(i32, i32, i32), i32>("proxy_on_response_headers", args)
            }
            Call::ResponseBody {
                context,
                size,
                end_of_stream,
            } => {
                let args = (context as i32, size as i32, flag(end_of_stream));
                self.export::<(i32, i32, i32), i32>("proxy_on_response_body", args)
            }
            Call::Log { context } => {
                self.export::<(i32,), ()>("proxy_on_log", (context as i32,));
                0
            }
            Call::Done { context } => {
                self.export::<(i32,), i32>("proxy_on_done", (context as i32,))
            }
            Call::Delete { context } => {
                self.export::<(i32,), ()>("proxy_on_delete", (context as i32,));
                0
            }
            Call::HttpCallResponse {
                token,
                headers,
                body,
                trailers,
            } => {
                let args = (
                    root,
                    token as i32,
                    headers as i32,
                    body as i32,
                    trailers as i32,
                );
                self.export::<(i32, i32, i32, i32, i32), ()>("proxy_on_http_call_response", args);
                0
            }
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
