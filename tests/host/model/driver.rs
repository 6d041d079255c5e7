//! One HTTP request through the filter, in Envoy's order: context create,
//! request headers, response headers, access log, done, delete.

use super::props::Props;
use super::state::{buffer, map, LocalReply, Pairs};
use super::{Call, Host, ROOT_ID};
use std::collections::BTreeMap;

/// A request as the proxy would see it. Build with [`Host::request`].
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub headers: Pairs,
    pub response_headers: Pairs,
    pub props: Props,
    /// Bodies, when there are any: headers then arrive without end_of_stream
    /// and the body callbacks run.
    pub body: Option<Vec<u8>>,
    pub response_body: Option<Vec<u8>>,
}

impl Request {
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    /// Replaces every value of request header `name` with this one.
    pub fn set_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers.retain(|(k, _)| k != name);
        self.header(name, value)
    }

    /// Replaces the response headers with a `:status` alone.
    pub fn status(mut self, code: &str) -> Request {
        self.response_headers = vec![(":status".into(), code.as_bytes().to_vec())];
        self
    }

    pub fn response_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.response_headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    pub fn property(mut self, dotted: &str, value: impl AsRef<[u8]>) -> Request {
        self.props = self.props.set(dotted, value);
        self
    }

    pub fn property_at(mut self, segments: &[&str], value: impl AsRef<[u8]>) -> Request {
        self.props = self.props.set_at(segments, value);
        self
    }

    pub fn without_property(mut self, dotted: &str) -> Request {
        self.props = self.props.remove(dotted);
        self
    }

    /// Adds a set of properties; later values win.
    pub fn props(mut self, props: Props) -> Request {
        self.props = self.props.merge(props);
        self
    }

    pub fn body(mut self, bytes: impl AsRef<[u8]>) -> Request {
        self.body = Some(bytes.as_ref().to_vec());
        self
    }

    pub fn response_body(mut self, bytes: impl AsRef<[u8]>) -> Request {
        self.response_body = Some(bytes.as_ref().to_vec());
        self
    }
}

/// What happened while one request was driven.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub context: u32,
    /// `proxy_on_request_headers` / `proxy_on_response_headers` actions
    /// (0 = Continue, 1 = Pause).
    pub request_action: i32,
    pub response_action: i32,
    /// The body callbacks' actions, when the request had bodies.
    pub request_body_action: Option<i32>,
    pub response_body_action: Option<i32>,
    /// What `proxy_on_done` returned.
    pub done: bool,
    /// `env.proxy_*` calls made while this request's context was driven.
    pub host_calls: u64,
    /// WASI calls made meanwhile (not proxy-wasm host calls).
    pub wasi_calls: u64,
    pub calls_by_phase: BTreeMap<&'static str, u64>,
    /// Import name → calls during this request.
    pub calls_by_import: BTreeMap<String, u64>,
    pub local_reply: Option<LocalReply>,
}

impl Host {
    /// A new request with no headers and no properties.
    pub fn request(&self) -> Request {
        Request::default()
    }

    /// Drives `req` through a fresh HTTP context from creation to deletion.
    pub fn run(&mut self, req: Request) -> Outcome {
        assert!(
            self.vm_started.is_some(),
            "configure the host before running requests"
        );
        let ctx = self.next_context;
        self.next_context += 1;
        let before = self.state().calls_by_import.clone();
        let replies_before = self.state().local_replies.len();
        self.state_mut().live_contexts.insert(ctx);
        self.apply_props(&req.props);

        let create = Call::ContextCreate {
            context: ctx,
            parent: ROOT_ID,
        };
        self.call(ctx, "context_create", create);
        let nreq = req.headers.len();
        self.state_mut()
            .maps
            .insert(map::REQUEST_HEADERS, req.headers.clone());
        let headers = Call::RequestHeaders {
            context: ctx,
            headers: nreq,
            end_of_stream: req.body.is_none(),
        };
        let request_action = self.call(ctx, "request_headers", headers);
        let request_body_action = req.body.as_ref().map(|body| {
            let (kind, phase) = (buffer::REQUEST_BODY, "request_body");
            self.body_phase(ctx, kind, phase, body)
        });

        // A local reply sent at request headers is what the response filters see.
        let local = self.state().local_replies[replies_before..]
            .iter()
            .find(|r| r.context == ctx)
            .cloned();
        let response = match &local {
            Some(r) => {
                let mut h = vec![(":status".to_string(), r.status.to_string().into_bytes())];
                h.extend(r.headers.iter().cloned());
                h
            }
            None => req.response_headers.clone(),
        };
        let nresp = response.len();
        self.state_mut()
            .maps
            .insert(map::RESPONSE_HEADERS, response);
        let headers = Call::ResponseHeaders {
            context: ctx,
            headers: nresp,
            end_of_stream: req.response_body.is_none(),
        };
        let response_action = self.call(ctx, "response_headers", headers);
        let response_body_action = req.response_body.as_ref().map(|body| {
            let (kind, phase) = (buffer::RESPONSE_BODY, "response_body");
            self.body_phase(ctx, kind, phase, body)
        });
        self.call(ctx, "log", Call::Log { context: ctx });
        let done = self.call(ctx, "done", Call::Done { context: ctx }) != 0;
        self.call(ctx, "delete", Call::Delete { context: ctx });

        let s = self.state_mut();
        for m in [
            map::REQUEST_HEADERS,
            map::REQUEST_TRAILERS,
            map::RESPONSE_HEADERS,
            map::RESPONSE_TRAILERS,
        ] {
            s.maps.remove(&m);
        }
        s.live_contexts.remove(&ctx);
        self.apply_props(&Props::new());

        let s = self.state();
        let calls_by_phase = s
            .proxy_calls_by_phase
            .iter()
            .filter(|((c, _), _)| *c == ctx)
            .map(|((_, phase), n)| (*phase, *n))
            .collect();
        let calls_by_import = s
            .calls_by_import
            .iter()
            .filter_map(|(k, n)| {
                let delta = n - before.get(k).copied().unwrap_or(0);
                (delta > 0).then(|| (k.clone(), delta))
            })
            .collect();
        Outcome {
            context: ctx,
            request_action,
            response_action,
            request_body_action,
            response_body_action,
            done,
            host_calls: s.proxy_calls_by_context.get(&ctx).copied().unwrap_or(0),
            wasi_calls: s.wasi_calls_by_context.get(&ctx).copied().unwrap_or(0),
            calls_by_phase,
            calls_by_import,
            local_reply: local,
        }
    }

    /// The whole body in one callback, with end of stream; the body buffer
    /// is readable during that callback only.
    fn body_phase(&mut self, ctx: u32, kind: i32, phase: &'static str, body: &[u8]) -> i32 {
        self.state_mut().buffers.insert(kind, body.to_vec());
        let (context, size) = (ctx, body.len());
        let call = if kind == buffer::REQUEST_BODY {
            Call::RequestBody {
                context,
                size,
                end_of_stream: true,
            }
        } else {
            Call::ResponseBody {
                context,
                size,
                end_of_stream: true,
            }
        };
        let action = self.call(ctx, phase, call);
        self.state_mut().buffers.remove(&kind);
        action
    }
}
