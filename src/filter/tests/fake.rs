//! Test code only: its parent declares it under #[cfg(test)].
//! A native test double of the proxy: state you set (properties, headers,
//! clock) and state the filter leaves (logs, calls, metrics, done).

use crate::host::{DispatchError, Headers, Host, Level, Map, MetricKind, Unserializable};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Call {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

#[derive(Default)]
pub struct FakeHost {
    pub config: RefCell<Vec<u8>>,
    pub env: RefCell<HashMap<String, String>>,
    pub props: RefCell<HashMap<String, Vec<u8>>>,
    pub req_headers: RefCell<Headers>,
    pub resp_headers: RefCell<Headers>,
    pub call_headers: RefCell<Headers>,
    pub now_ms: Cell<u64>,
    pub logs: RefCell<Vec<(Level, String)>>,
    pub calls: RefCell<Vec<Call>>,
    pub refuse_dispatch: Cell<bool>,
    pub metrics: RefCell<HashMap<String, i64>>,
    metric_names: RefCell<Vec<String>>,
    pub local_replies: RefCell<Vec<(u32, Vec<u8>)>>,
    pub done: Cell<bool>,
    pub tick_ms: Cell<u64>,
    pub property_reads: Cell<usize>,
    /// Properties the proxy has but cannot serialize.
    pub unserializable: RefCell<Vec<String>>,
}

impl FakeHost {
    pub fn new(config: &str) -> FakeHost {
        let h = FakeHost::default();
        *h.config.borrow_mut() = config.as_bytes().to_vec();
        h.now_ms.set(1_795_269_785_000);
        h
    }
    pub fn prop(&self, path: &str, value: impl Into<Vec<u8>>) {
        self.props
            .borrow_mut()
            .insert(path.to_string(), value.into());
    }
    pub fn int(&self, path: &str, v: u64) {
        self.prop(path, v.to_le_bytes().to_vec());
    }
    pub fn request(&self, headers: &[(&str, &str)]) {
        *self.req_headers.borrow_mut() = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
    }
    pub fn response(&self, headers: &[(&str, &str)]) {
        *self.resp_headers.borrow_mut() = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
    }
    pub fn advance(&self, ms: u64) {
        self.now_ms.set(self.now_ms.get() + ms);
    }
    pub fn metric(&self, name: &str) -> i64 {
        self.metrics.borrow().get(name).copied().unwrap_or(0)
    }
    pub fn records_in(&self, call: usize) -> Vec<serde_json::Value> {
        let calls = self.calls.borrow();
        String::from_utf8(calls[call].body.clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    /// A typical mTLS connection `id` from the frontend workload.
    pub fn mtls_connection(&self, id: u64) {
        self.int("connection.id", id);
        self.prop("connection.mtls", vec![1u8]);
        self.prop(
            "connection.uri_san_peer_certificate",
            "spiffe://cluster.local/ns/shop/sa/frontend",
        );
        self.prop("connection.subject_peer_certificate", "O=acme,CN=frontend");
        self.prop("connection.sha256_peer_certificate_digest", "9502d3aa");
        self.prop("connection.tls_version", "TLSv1.3");
        self.prop("connection.requested_server_name", "backend.default.svc");
        self.prop(
            "connection.uri_san_local_certificate",
            "spiffe://cluster.local/ns/default/sa/backend",
        );
        self.prop("source.address", "10.0.0.7:51234");
        self.prop("destination.address", "10.0.0.9:8443");
        self.prop("request.protocol", "HTTP/1.1");
    }
    /// A finished GET /orders/42 answered 200 by the backend.
    pub fn finished_request(&self, request_id: &str) {
        self.request(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "backend"),
            (":path", "/orders/42?page=2&token=s3cr3t"),
            ("x-request-id", request_id),
            ("user-agent", "curl/8.5.0"),
            ("authorization", "Bearer abc.def.ghi"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ]);
        self.response(&[(":status", "200"), ("content-type", "application/json")]);
        self.int("request.time", 1_795_269_785_123_456_000);
        self.int("request.duration", 1_234_000);
        self.int("request.size", 0);
        self.int("response.size", 94);
        self.prop("response.code_details", "via_upstream");
        self.int("response.flags", 0);
        self.prop("xds.route_name", "orders");
        self.prop("xds.cluster_name", "backend");
        self.prop("xds.virtual_host_name", "backend");
    }
}

impl Host for FakeHost {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.property_or_error(path).ok().flatten()
    }
    fn property_or_error(&self, path: &[&str]) -> Result<Option<Vec<u8>>, Unserializable> {
        self.property_reads.set(self.property_reads.get() + 1);
        let key = path.join(".");
        if self.unserializable.borrow().contains(&key) {
            return Err(Unserializable);
        }
        Ok(self.props.borrow().get(&key).cloned())
    }
    fn headers(&self, map: Map) -> Headers {
        match map {
            Map::RequestHeaders => self.req_headers.borrow().clone(),
            Map::ResponseHeaders => self.resp_headers.borrow().clone(),
            Map::CallResponseHeaders => self.call_headers.borrow().clone(),
        }
    }
    fn plugin_config(&self) -> Option<Vec<u8>> {
        Some(self.config.borrow().clone())
    }
    fn now_nanos(&self) -> u64 {
        self.now_ms.get() * 1_000_000
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
    fn set_tick_period_ms(&self, ms: u64) {
        self.tick_ms.set(ms);
    }
    fn dispatch(
        &self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u32, DispatchError> {
        if self.refuse_dispatch.get() {
            return Err(DispatchError::BadArgument);
        }
        let mut calls = self.calls.borrow_mut();
        let token = calls.len() as u32 + 1;
        calls.push(Call {
            cluster: cluster.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            timeout_ms,
        });
        Ok(token)
    }
    fn define_metric(&self, _: MetricKind, name: &str) -> Option<u32> {
        let mut names = self.metric_names.borrow_mut();
        names.push(name.to_string());
        Some(names.len() as u32 - 1)
    }
    fn increment_metric(&self, id: u32, delta: i64) {
        let name = self.metric_names.borrow()[id as usize].clone();
        *self.metrics.borrow_mut().entry(name).or_default() += delta;
    }
    fn record_metric(&self, id: u32, value: u64) {
        let name = self.metric_names.borrow()[id as usize].clone();
        self.metrics.borrow_mut().insert(name, value as i64);
    }
    fn send_local_reply(&self, status: u32, body: &[u8], _: &[(&str, &str)]) {
        self.local_replies
            .borrow_mut()
            .push((status, body.to_vec()));
    }
    fn done(&self) {
        self.done.set(true);
    }
    fn env_var(&self, name: &str) -> Option<String> {
        self.env.borrow().get(name).cloned()
    }
    fn fill_random(&self, buf: &mut [u8]) -> bool {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = i as u8 ^ 0x5a;
        }
        true
    }
}
