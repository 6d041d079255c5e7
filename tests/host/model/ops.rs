//! The proxy's behaviour, shared by both guests: the compiled `.wasm`
//! reaches these operations through the ABI (tests/host/proxy_*.rs only move
//! bytes in and out of its memory), the native core through the host traits
//! (native.rs). Statuses are the ABI's numbers ([`status`]).

use super::state::{
    find, status, Answer, Dispatch, LocalReply, LogLine, Metric, MetricKind, Pairs, State,
};

impl State {
    /// `proxy_get_property`: records the read, answers the value or a status.
    pub fn get_property(&mut self, path: &[u8]) -> Result<Vec<u8>, i32> {
        let dotted = String::from_utf8_lossy(path).replace('\0', ".");
        let ctx = self.driving.map(|(ctx, _)| ctx);
        self.property_reads.push((ctx, dotted.clone()));
        if self.unserializable.contains(path) {
            return Err(status::SERIALIZATION_FAILURE);
        }
        if let Some(value) = self.properties.get(path) {
            return Ok(value.clone());
        }
        match &self.arbitrary {
            Some(arbitrary) => arbitrary.answer(&dotted),
            None => Err(status::NOT_FOUND),
        }
    }

    /// A header map the proxy has now; BadArgument for one it has not, as Envoy.
    pub fn header_map(&self, map: i32) -> Result<&Pairs, i32> {
        self.maps.get(&map).ok_or(status::BAD_ARGUMENT)
    }

    /// `proxy_get_buffer_bytes`: `max` bytes from `start`.
    pub fn buffer_bytes(&self, kind: i32, start: usize, max: usize) -> Result<Vec<u8>, i32> {
        let buf = self.buffers.get(&kind).ok_or(status::NOT_FOUND)?;
        if start > buf.len() {
            return Err(status::BAD_ARGUMENT);
        }
        let end = start.saturating_add(max).min(buf.len());
        Ok(buf[start..end].to_vec())
    }

    pub fn log(&mut self, level: u32, message: String) {
        self.logs.push(LogLine { level, message });
    }

    pub fn set_tick_period(&mut self, ms: u32) {
        self.tick_period_ms = Some(ms);
    }

    /// `proxy_define_metric`: the id (1-based) of the metric `name`; a name
    /// defined again with another kind is a BadArgument.
    pub fn define_metric(&mut self, kind: i32, name: String) -> Result<u32, i32> {
        let kind = match kind {
            0 => MetricKind::Counter,
            1 => MetricKind::Gauge,
            2 => MetricKind::Histogram,
            _ => return Err(status::BAD_ARGUMENT),
        };
        let index = match self.metric_ids.iter().position(|m| m.name == name) {
            Some(i) if self.metric_ids[i].kind == kind => i,
            Some(_) => return Err(status::BAD_ARGUMENT),
            None => {
                self.metric_ids.push(Metric {
                    name,
                    kind,
                    value: 0,
                });
                self.metric_ids.len() - 1
            }
        };
        Ok(index as u32 + 1)
    }

    pub fn metric_mut(&mut self, id: i32) -> Option<&mut Metric> {
        let index = (id as u32 as usize).checked_sub(1)?;
        self.metric_ids.get_mut(index)
    }

    /// `proxy_increment_metric`: a counter only goes up.
    pub fn increment_metric(&mut self, id: i32, delta: i64) -> Result<(), i32> {
        let m = self.metric_mut(id).ok_or(status::NOT_FOUND)?;
        if m.kind == MetricKind::Counter && delta < 0 {
            return Err(status::BAD_ARGUMENT);
        }
        m.value += delta;
        Ok(())
    }

    /// `proxy_http_call`, after decoding: refused (BadArgument) for an
    /// unknown cluster, undecodable pairs, or a call without `:method`,
    /// `:path` and `:authority`, as Envoy does; recorded either way.
    pub fn http_call(
        &mut self,
        cluster: String,
        headers: Option<Pairs>,
        body: Vec<u8>,
        trailers: Option<Pairs>,
        timeout_ms: u32,
    ) -> Result<u32, i32> {
        let required = [":method", ":path", ":authority"];
        let refused = match (&headers, &trailers) {
            (Some(hs), Some(_)) => {
                self.unknown_clusters.contains(&cluster)
                    || required.iter().any(|r| find(hs, r).is_none())
            }
            _ => true,
        };
        let mut dispatch = Dispatch {
            token: None,
            status: status::BAD_ARGUMENT,
            cluster,
            headers: headers.unwrap_or_default(),
            body,
            trailers: trailers.unwrap_or_default(),
            timeout_ms,
            at_ms: self.now_ms(),
            answer: Answer::Pending,
        };
        if refused {
            self.dispatches.push(dispatch);
            return Err(status::BAD_ARGUMENT);
        }
        let token = self.next_token;
        self.next_token += 1;
        dispatch.token = Some(token);
        dispatch.status = status::OK;
        self.dispatches.push(dispatch);
        Ok(token)
    }

    /// `proxy_send_local_response`, for the effective context.
    pub fn local_reply(
        &mut self,
        status: u32,
        details: String,
        body: Vec<u8>,
        headers: Pairs,
        grpc_status: i32,
    ) {
        let context = self
            .effective_context
            .or(self.driving.map(|(ctx, _)| ctx))
            .unwrap_or(0);
        self.local_replies.push(LocalReply {
            context,
            status,
            details,
            body,
            headers,
            grpc_status,
        });
    }

    pub fn done(&mut self) {
        self.done_calls += 1;
    }

    /// A VM environment variable (the first definition wins, as getenv).
    pub fn env_var(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}
