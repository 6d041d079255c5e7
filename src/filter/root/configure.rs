//! `on_configure` (SPEC §2.7): a valid configuration takes over, with its
//! degradations logged and listed in records; an invalid one logs its one
//! error line and leaves the last valid configuration of this plugin in
//! force, or the filter inert.

use super::{Active, Auditor, Lost};
use crate::audit::{redact::Redactor, sample::Sampler};
use crate::config::{degraded_line, error_line, Config};
use crate::deliver::buffer::{Buffer, Limits};
use crate::deliver::chain::Sequencer;
use crate::filter::conn::ConnCache;
use crate::filter::events::{ConfigProblem, Configured, LastValidStays};
use crate::filter::facts::Needs;
use crate::filter::naming::Naming;
use crate::filter::problems::{switch, Problems, FAIL_CLOSED_ENV, INERT_TICK_MS, STRICT_ENV};
use crate::filter::stats::Flag;
use crate::host::Host;

/// Longest pause between two ticks: size-triggered flushes wait at most this.
const MAX_TICK_MS: u64 = 100;

impl Auditor {
    /// `on_configure`: applies the plugin configuration, falling back to the
    /// last valid one when it is invalid; false only in strict mode, where a
    /// degradation refuses too. The last valid one is kept in Envoy's shared
    /// data, which outlives a VM: under Istio every ECDS update of a
    /// WasmPlugin starts new VMs (its resource version is in their
    /// environment), so an invalid update can only fall back to what an
    /// earlier VM left there, per plugin name.
    pub fn configure(&mut self, host: &dyn Host) -> bool {
        let plugin = host.property(&["plugin_name"]).unwrap_or_default();
        let key = format!(
            "mesh-audit.last_valid_config.{}",
            String::from_utf8_lossy(&plugin)
        );
        let remembered = || host.shared_data(&key).filter(|b| !b.is_empty());
        if self.last_valid.is_none() {
            self.last_valid = remembered();
        }
        let ok = self.apply_config(host);
        if let Some(valid) = self.last_valid.as_deref() {
            if remembered().as_deref() != Some(valid) {
                // Best effort: without it, a later invalid update leaves the filter inert.
                let _ = host.set_shared_data(&key, valid);
            }
        }
        ok
    }

    fn apply_config(&mut self, host: &dyn Host) -> bool {
        let bytes = host.plugin_config().unwrap_or_default();
        let strict = switch(host, STRICT_ENV);
        self.fail_closed = switch(host, FAIL_CLOSED_ENV);
        let now_ms = host.now_nanos() / 1_000_000;
        let env = |name: &str| host.env_var(name);
        let config = match Config::from_json(&bytes, &env) {
            Ok(c) => c,
            Err(e) => {
                let line = error_line(&e);
                self.events
                    .emit(host, &mut self.stats, ConfigProblem(&line));
                return !strict && self.keep_last_valid(host, line, now_ms);
            }
        };
        if strict {
            if let Some(d) = config.degraded.first() {
                let line = error_line(&d.problem);
                self.events
                    .emit(host, &mut self.stats, ConfigProblem(&line));
                return false;
            }
        }
        self.stats.define(host);
        let lines: Vec<String> = config.degraded.iter().map(degraded_line).collect();
        for line in &lines {
            self.events.emit(host, &mut self.stats, ConfigProblem(line));
        }
        self.problems = Problems::new(lines, now_ms);
        self.stats.set_flag(Flag::ConfigInvalid, false);
        self.activate(host, config);
        self.last_valid = Some(bytes);
        self.publish(host);
        true
    }

    /// After an invalid configuration: the one running stays, else the last
    /// valid one of this plugin starts, else the filter is inert.
    fn keep_last_valid(&mut self, host: &dyn Host, line: String, now_ms: u64) -> bool {
        self.stats.define(host);
        self.stats.set_flag(Flag::ConfigInvalid, true);
        if self.active.is_none() {
            let env = |name: &str| host.env_var(name);
            let previous = self
                .last_valid
                .as_deref()
                .map(|b| Config::from_json(b, &env));
            if let Some(Ok(config)) = previous {
                self.activate(host, config);
            }
        }
        let mut lines = vec![line];
        match &self.active {
            Some(a) => {
                let digest = &a.config.digest;
                self.events
                    .emit(host, &mut self.stats, LastValidStays { digest });
                lines.extend(a.config.degraded.iter().map(degraded_line));
            }
            None => host.set_tick_period_ms(INERT_TICK_MS),
        }
        self.problems = Problems::new(lines, now_ms);
        self.publish(host);
        true
    }

    /// Starts auditing with `config`.
    fn activate(&mut self, host: &dyn Host, config: Config) {
        self.stats
            .set_flag(Flag::Degraded, !config.degraded.is_empty());
        let tick = config.batch.flush_interval_ms.min(MAX_TICK_MS);
        host.set_tick_period_ms(tick);
        let limits = Limits::from_config(&config);
        // A reconfigured worker keeps what it already admitted, and its chain.
        let (seq, buffer, node_id, last_seal) = match self.active.take() {
            Some(old) => (old.seq, old.buffer, old.node_id, old.last_seal),
            None => (
                Sequencer::new(
                    self.emitter.clone(),
                    config.integrity.chain,
                    config.integrity.key.as_deref(),
                ),
                Buffer::new(limits.clone()),
                node_id(host),
                0,
            ),
        };
        let mut buffer = buffer;
        buffer.set_limits(limits);
        if config.integrity.seal_every_batch {
            buffer.seal_batches();
        }
        let emitter = &self.emitter;
        let configured = Configured {
            emitter,
            config: &config,
        };
        self.events.emit(host, &mut self.stats, configured);
        self.active = Some(Active {
            needs: Needs::of(&config),
            maps: Default::default(),
            redactor: Redactor::new(&config.redact),
            sampler: Sampler::new(&config.sampling),
            config,
            conns: ConnCache::default(),
            naming: Naming::default(),
            seq,
            buffer,
            not_admitted: Lost::default(),
            rate_limited: Lost::default(),
            last_flush_ms: host.now_nanos() / 1_000_000,
            node_id,
            last_seal,
            closed: false,
        });
    }
}

/// The Envoy node id (`service.instance.id`), read once per VM. Envoy 1.40
/// exposes the bootstrap's `Node` only as the `xds.node` attribute (a bare
/// `node` is not found); `node` is what older Envoys answered.
fn node_id(host: &dyn Host) -> Option<String> {
    [&["xds", "node", "id"][..], &["node", "id"][..]]
        .iter()
        .find_map(|path| {
            host.property(path)
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|s| !s.is_empty())
        })
}
