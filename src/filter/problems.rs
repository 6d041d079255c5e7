//! Configuration problems (SPEC §2.7): the switches in the VM's environment
//! that change what a problem does, and the reminder that keeps a problem
//! still in force visible in the log.

use crate::host::{Host, Level};

/// In the VM's environment, `1` (or `true`) makes a configuration problem
/// fail `on_configure`, as in v1.
pub const STRICT_ENV: &str = "MESH_AUDIT_STRICT_CONFIG";
/// In the VM's environment, `1` (or `true`) makes an inert filter answer
/// `503 audit unavailable` instead of passing requests unaudited.
pub const FAIL_CLOSED_ENV: &str = "MESH_AUDIT_FAIL_CLOSED";
/// How often a configuration problem still in force is logged again.
const REMIND_MS: u64 = 60_000;
/// The tick of an inert filter: publishes its counters and the reminder.
pub const INERT_TICK_MS: u64 = 1_000;

/// Whether the switch `name` is on in the VM's environment.
pub fn switch(host: &dyn Host, name: &str) -> bool {
    host.env_var(name)
        .is_some_and(|v| matches!(v.trim(), "1" | "true"))
}

/// Configuration problems still in force: their log lines, written at once
/// by the caller and again every minute by [`Problems::remind`].
#[derive(Default)]
pub struct Problems {
    lines: Vec<String>,
    last_logged_ms: u64,
}

impl Problems {
    /// Problems whose lines were just logged, at `now_ms`.
    pub fn new(lines: Vec<String>, now_ms: u64) -> Problems {
        Problems {
            lines,
            last_logged_ms: now_ms,
        }
    }

    /// On tick: logs every line again once a minute has passed.
    pub fn remind(&mut self, host: &dyn Host, now_ms: u64) {
        if now_ms.saturating_sub(self.last_logged_ms) >= REMIND_MS {
            for line in &self.lines {
                host.log(Level::Error, line);
            }
            self.last_logged_ms = now_ms;
        }
    }
}
