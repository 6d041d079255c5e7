//! proxy-wasm wiring: the SDK's contexts delegate to [`Auditor`] with the
//! real host. Nothing here decides anything.

use super::http;
use super::root::Auditor;
use crate::host::{Host, Level, ProxyHost};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::rc::Rc;

pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        ProxyHost.log(Level::Critical, &format!("mesh-audit: panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root {
            auditor: Rc::new(RefCell::new(Auditor::new(&ProxyHost))),
        })
    });
}

/// Where the last valid configuration of a plugin is kept: Envoy's shared
/// data, which outlives a VM. Under Istio every ECDS update of a WasmPlugin
/// starts new VMs (its resource version is in their environment), so an
/// invalid update can fall back only to what an earlier VM left here.
fn last_valid_key(plugin: &[u8]) -> String {
    format!(
        "mesh-audit.last_valid_config.{}",
        String::from_utf8_lossy(plugin)
    )
}

fn remembered(plugin: &[u8]) -> Option<Vec<u8>> {
    proxy_wasm::hostcalls::get_shared_data(&last_valid_key(plugin))
        .ok()
        .and_then(|(bytes, _)| bytes)
        .filter(|b| !b.is_empty())
}

fn remember(plugin: &[u8], config: &[u8]) {
    if remembered(plugin).as_deref() != Some(config) {
        // Best effort: without it, a later invalid update leaves the filter inert.
        let _ = proxy_wasm::hostcalls::set_shared_data(&last_valid_key(plugin), Some(config), None);
    }
}

struct Root {
    auditor: Rc<RefCell<Auditor>>,
}

/// Runs `f` on the auditor unless it is already in use (a re-entrant host
/// callback): auditing skips rather than risk a panic inside the proxy.
fn with<R>(auditor: &Rc<RefCell<Auditor>>, default: R, f: impl FnOnce(&mut Auditor) -> R) -> R {
    match auditor.try_borrow_mut() {
        Ok(mut a) => f(&mut a),
        Err(_) => default,
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _: usize, _: usize, _: usize) {
        with(&self.auditor, (), |a| a.call_response(&ProxyHost, token));
    }

    fn on_done(&mut self) -> bool {
        with(&self.auditor, true, |a| a.shutdown(&ProxyHost))
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _: usize) -> bool {
        true
    }

    fn on_configure(&mut self, _: usize) -> bool {
        let plugin = ProxyHost.property(&["plugin_name"]).unwrap_or_default();
        with(&self.auditor, false, |a| {
            if a.last_valid().is_none() {
                a.inherit_last_valid(remembered(&plugin));
            }
            let ok = a.configure(&ProxyHost);
            if let Some(valid) = a.last_valid() {
                remember(&plugin, valid);
            }
            ok
        })
    }

    fn on_tick(&mut self) {
        with(&self.auditor, (), |a| a.tick(&ProxyHost));
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            auditor: Rc::clone(&self.auditor),
            rejected: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    auditor: Rc<RefCell<Auditor>>,
    rejected: bool,
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        // The borrow ends before the reply: a local reply may call back into us.
        if with(&self.auditor, false, |a| a.must_reject()) {
            self.rejected = true;
            ProxyHost.send_local_reply(
                503,
                b"audit unavailable",
                &[("content-type", "text/plain")],
            );
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if !self.rejected {
            with(&self.auditor, (), |a| http::on_log(a, &ProxyHost));
        }
    }
}
