//! proxy-wasm wiring: the SDK's contexts delegate to [`Auditor`] with the
//! real host. Nothing here decides anything.

use super::facts::Seen;
use super::http;
use super::root::Auditor;
use crate::host::{Level, Proxy, ProxyHost};
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
        with(&self.auditor, false, |a| a.configure(&ProxyHost))
    }

    fn on_tick(&mut self) {
        with(&self.auditor, (), |a| a.tick(&ProxyHost));
    }

    /// Configured as `envoy.access_loggers.wasm`, Envoy calls the root
    /// context once per finished request, with the request's properties and
    /// header maps in scope: the same record as the HTTP filter's `on_log`.
    fn on_log(&mut self) {
        with(&self.auditor, (), |a| {
            http::on_log(a, &ProxyHost, Seen::default())
        });
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            auditor: Rc::clone(&self.auditor),
            rejected: false,
            seen: Seen::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    auditor: Rc<RefCell<Auditor>>,
    rejected: bool,
    seen: Seen,
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        self.seen.request_without_body = end_of_stream;
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
            let seen = self.seen;
            with(&self.auditor, (), |a| http::on_log(a, &ProxyHost, seen));
        }
    }
}
