//! What the emulated proxy saw the module do, for assertions.

use super::state::{Dispatch, LocalReply, LogLine, State};
use super::Host;
use std::collections::BTreeMap;

impl Host {
    pub fn state(&self) -> &State {
        self.guest.state()
    }

    pub fn now_ms(&self) -> u64 {
        self.state().now_ms()
    }

    pub fn logs(&self) -> Vec<LogLine> {
        self.state().logs.clone()
    }

    /// Messages logged at `level` or above.
    pub fn logs_at_least(&self, level: u32) -> Vec<String> {
        self.state()
            .logs
            .iter()
            .filter(|l| l.level >= level)
            .map(|l| l.message.clone())
            .collect()
    }

    pub fn log_dump(&self) -> String {
        self.state().log_dump()
    }

    /// Every `proxy_http_call` the proxy accepted, in order.
    pub fn dispatched(&self) -> Vec<Dispatch> {
        self.state()
            .dispatches
            .iter()
            .filter(|d| d.accepted())
            .cloned()
            .collect()
    }

    /// Every `proxy_http_call`, refused ones included.
    pub fn dispatch_attempts(&self) -> Vec<Dispatch> {
        self.state().dispatches.clone()
    }

    /// The token of the `index`-th accepted dispatch.
    pub fn token(&self, index: usize) -> u32 {
        let sent = self.dispatched();
        match sent.get(index).and_then(|d| d.token) {
            Some(t) => t,
            None => panic!(
                "no dispatch #{index}; {} accepted\n{}",
                sent.len(),
                self.log_dump()
            ),
        }
    }

    /// Accepted dispatches not answered yet.
    pub fn pending(&self) -> Vec<Dispatch> {
        self.dispatched()
            .into_iter()
            .filter(|d| !d.answered())
            .collect()
    }

    /// A metric's value; fails the test, listing what exists, if undefined.
    pub fn metric(&self, name: &str) -> i64 {
        self.metric_opt(name).unwrap_or_else(|| {
            let names: Vec<&str> = self
                .state()
                .metric_ids
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            panic!("metric {name} is not defined; defined: {names:?}")
        })
    }

    pub fn metric_opt(&self, name: &str) -> Option<i64> {
        self.state()
            .metric_ids
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    pub fn metrics(&self) -> BTreeMap<String, i64> {
        self.state()
            .metric_ids
            .iter()
            .map(|m| (m.name.clone(), m.value))
            .collect()
    }

    pub fn local_replies(&self) -> Vec<LocalReply> {
        self.state().local_replies.clone()
    }

    pub fn done_called(&self) -> bool {
        self.state().done_calls > 0
    }

    pub fn tick_period_ms(&self) -> Option<u32> {
        self.state().tick_period_ms
    }

    pub fn calls_by_import(&self) -> BTreeMap<String, u64> {
        self.state().calls_by_import.clone()
    }

    /// Imports answered by a generic stub, with call counts.
    pub fn stub_calls(&self) -> BTreeMap<String, u64> {
        self.state().stub_calls.clone()
    }

    /// Property paths (dotted) read while `context` was driven.
    pub fn property_reads(&self, context: u32) -> Vec<String> {
        self.state()
            .property_reads
            .iter()
            .filter(|(c, _)| *c == Some(context))
            .map(|(_, p)| p.clone())
            .collect()
    }
}
