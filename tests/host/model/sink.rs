//! The far side of the module's calls: the sink answering dispatches, and
//! virtual time passing (which is when Envoy's own call timeouts fire).

use super::state::{self, Answer, Pairs};
use super::{Call, Host, ROOT_ID};

impl Host {
    /// Moves the virtual clock. Dispatches whose `timeout_ms` has passed
    /// are answered as Envoy's async client does on timeout: a local 504
    /// `upstream request timeout` reply.
    pub fn advance_ms(&mut self, ms: u64) {
        self.state_mut().now_nanos += ms * 1_000_000;
        let now = self.now_ms();
        let expired: Vec<u32> = self
            .state()
            .dispatches
            .iter()
            .filter(|d| d.answer == Answer::Pending && d.at_ms + u64::from(d.timeout_ms) <= now)
            .filter_map(|d| d.token)
            .collect();
        for token in expired {
            let headers = vec![(":status".to_string(), b"504".to_vec())];
            self.answer(
                token,
                Answer::TimedOut,
                headers,
                b"upstream request timeout".to_vec(),
            );
        }
    }

    /// Advances by `ms` and then ticks once.
    pub fn advance_and_tick(&mut self, ms: u64) {
        self.advance_ms(ms);
        self.tick();
    }

    /// Lets `ms` pass in steps of the tick period, ticking after each step.
    pub fn elapse_ms(&mut self, ms: u64) {
        let step = u64::from(self.tick_period_ms().unwrap_or(0)).max(1);
        let mut left = ms;
        while left > 0 {
            let d = step.min(left);
            self.advance_and_tick(d);
            left -= d;
        }
    }

    /// The sink answers dispatch `token` with `:status` = `code` and `body`.
    pub fn reply(&mut self, token: u32, code: u32, body: &[u8]) {
        let headers = vec![(":status".to_string(), code.to_string().into_bytes())];
        self.answer(token, Answer::Status(code), headers, body.to_vec());
    }

    /// Like [`Host::reply`] with full control of the reply headers.
    pub fn reply_with(&mut self, token: u32, headers: &[(&str, &str)], body: &[u8]) {
        let headers: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        let code = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0);
        self.answer(token, Answer::Status(code), headers, body.to_vec());
    }

    /// Dispatch `token` fails without any reply (the stream was reset): the
    /// module is called with no headers, no body, and no maps to read.
    pub fn fail_call(&mut self, token: u32) {
        self.answer(token, Answer::Failed, Vec::new(), Vec::new());
    }

    /// The sink answers dispatch `token` with these headers (`:status`
    /// among them, or not) and `body`.
    pub fn reply_pairs(&mut self, token: u32, headers: Pairs, body: &[u8]) {
        let code = headers
            .iter()
            .find(|(k, _)| k == ":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .unwrap_or(0);
        self.answer(token, Answer::Status(code), headers, body.to_vec());
    }

    fn answer(&mut self, token: u32, answer: Answer, headers: Pairs, body: Vec<u8>) {
        let s = self.state_mut();
        let pending: Vec<u32> = s
            .dispatches
            .iter()
            .filter(|d| d.answer == Answer::Pending)
            .filter_map(|d| d.token)
            .collect();
        let Some(d) = s
            .dispatches
            .iter_mut()
            .find(|d| d.token == Some(token) && d.answer == Answer::Pending)
        else {
            panic!("token {token} is not a pending dispatch (pending: {pending:?})");
        };
        d.answer = answer;
        let reply = (answer != Answer::Failed).then_some((headers, body));
        self.deliver(token, reply);
    }

    /// A reply for a token the guest never dispatched. Envoy never sends
    /// one, and the proxy-wasm SDK traps on it before the filter sees it:
    /// this is for the native core's own guard.
    pub fn stray_reply(&mut self, token: u32, code: u32) {
        let headers = vec![(":status".to_string(), code.to_string().into_bytes())];
        self.deliver(token, Some((headers, Vec::new())));
    }

    /// `proxy_on_http_call_response` for `token`, with the reply's maps
    /// readable during the call (none for a call that failed).
    fn deliver(&mut self, token: u32, reply: Option<(Pairs, Vec<u8>)>) {
        let (nheaders, nbody) = reply.as_ref().map_or((0, 0), |(h, b)| (h.len(), b.len()));
        if let Some((headers, body)) = reply {
            let s = self.state_mut();
            s.maps.insert(state::map::CALL_RESPONSE_HEADERS, headers);
            s.maps
                .insert(state::map::CALL_RESPONSE_TRAILERS, Vec::new());
            s.buffers.insert(state::buffer::CALL_RESPONSE_BODY, body);
        }
        let call = Call::HttpCallResponse {
            token,
            headers: nheaders,
            body: nbody,
            trailers: 0,
        };
        self.call(ROOT_ID, "http_call_response", call);
        let s = self.state_mut();
        s.maps.remove(&state::map::CALL_RESPONSE_HEADERS);
        s.maps.remove(&state::map::CALL_RESPONSE_TRAILERS);
        s.buffers.remove(&state::buffer::CALL_RESPONSE_BODY);
    }
}
