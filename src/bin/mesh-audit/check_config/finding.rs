//! One configuration's verdict, exactly as the filter would give it in a VM
//! with the environment the proxy would pass it.

use mesh_audit::config::{degraded_line, error_line, Config};
use mesh_audit::filter::root::STRICT_ENV;
use std::collections::BTreeMap;

/// One configuration checked: where it is (none for a plain JSON file) and
/// the filter's error line when it is invalid.
#[derive(Debug, PartialEq)]
pub struct Finding {
    pub location: Option<String>,
    pub error: Option<String>,
}

/// How a variable is looked up in this process's environment.
pub type HostEnv<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What the filter would say about `config` in a VM with `env`: its error
/// line, or one line per degradation (the error line in strict mode, where
/// the proxy refuses it). A degradation fails the check: the proxy would
/// run, but without a key the configuration asks for.
pub fn validate(
    location: Option<String>,
    config: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<Finding> {
    let finding = |error| Finding {
        location: location.clone(),
        error,
    };
    let config = match Config::from_json(config, &|name: &str| env(name)) {
        Err(e) => return vec![finding(Some(error_line(&e)))],
        Ok(c) => c,
    };
    let strict = env(STRICT_ENV).is_some_and(|v| matches!(v.trim(), "1" | "true"));
    if config.degraded.is_empty() {
        return vec![finding(None)];
    }
    config
        .degraded
        .iter()
        .map(|d| {
            finding(Some(if strict {
                error_line(&d.problem)
            } else {
                degraded_line(d)
            }))
        })
        .collect()
}

/// A variable as the proxy's Wasm VM would see it: given inline, or passed
/// through from the proxy's own environment (here, this process's).
pub fn proxy_env(
    inline: &BTreeMap<String, String>,
    from_host: &[String],
    host: HostEnv,
    name: &str,
) -> Option<String> {
    inline.get(name).cloned().or_else(|| {
        from_host
            .iter()
            .any(|k| k == name)
            .then(|| host(name))
            .flatten()
    })
}
