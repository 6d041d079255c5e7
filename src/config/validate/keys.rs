//! Keys from the environment (SPEC §2.7): the sink token, the hash key,
//! the chain key and the signing key. A key variable that is named but
//! absent degrades the filter instead of failing it, except the token.

use super::super::model::{Degradation, Integrity, Scope};
use super::super::raw::RawIntegrity;
use super::super::{ConfigError, Env};
use super::checks::non_empty;
use crate::secret::Secret;
use crate::signing::Signer;

/// The degradations a missing key causes: (code, what happens instead, scope).
pub const HASH_KEY_MISSING: (&str, &str, Scope) =
    ("hash_key_missing", "hash becomes mask", Scope::Requests);
const CHAIN_KEY_MISSING: (&str, &str, Scope) = (
    "chain_key_missing",
    "the chain is unkeyed (plain SHA-256)",
    Scope::Records,
);
const SIGNING_KEY_MISSING: (&str, &str, Scope) =
    ("signing_key_missing", "seals are unsigned", Scope::Records);

/// `authorization: Bearer <token>`, the token read from variable `name`.
pub fn bearer(env: &dyn Env, name: &str) -> Result<Secret, ConfigError> {
    let token = env_key("sink.token_env", env, name)?;
    let token = std::str::from_utf8(&token)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ConfigError::at(
                "sink.token_env",
                format!(
                    "environment variable {name} must hold a token of visible ASCII characters"
                ),
            )
        })?;
    Ok(Secret::new(format!("Bearer {token}").into_bytes()))
}

fn env_key(path: &str, env: &dyn Env, name: &str) -> Result<Secret, ConfigError> {
    non_empty(path, name)?;
    match env.var(name) {
        Some(v) if !v.is_empty() => Ok(Secret::new(v.into_bytes())),
        _ => Err(ConfigError::at(
            path,
            format!("environment variable {name} is not set (pass it in vm_config.environment_variables)"),
        )),
    }
}

/// A key named by `path` (an environment variable name, if configured):
/// `Ok(None)` when not configured; when the variable is absent, the
/// degradation `code` is noted and the filter runs without the key.
pub fn key_or_degrade(
    degraded: &mut Vec<Degradation>,
    path: &str,
    env: &dyn Env,
    name: Option<&str>,
    (code, instead, scope): (&'static str, &'static str, Scope),
) -> Result<Option<Secret>, ConfigError> {
    let Some(name) = name else {
        return Ok(None);
    };
    match env_key(path, env, name) {
        Ok(key) => Ok(Some(key)),
        Err(problem) if !name.trim().is_empty() => {
            degraded.push(Degradation {
                code,
                problem,
                instead,
                scope,
            });
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

pub fn validate_integrity(
    i: RawIntegrity,
    env: &dyn Env,
    degraded: &mut Vec<Degradation>,
) -> Result<Integrity, ConfigError> {
    let chain = i.chain.unwrap_or(true);
    let signing_path = "integrity.signing_key_env";
    if i.signing_key_env.is_some() && !chain {
        // A seal vouches for earlier records only through `prev`.
        return Err(ConfigError::at(
            signing_path,
            "needs integrity.chain: a seal vouches for the records before it only through the chain",
        ));
    }
    let signing_key = key_or_degrade(
        degraded,
        signing_path,
        env,
        i.signing_key_env.as_deref(),
        SIGNING_KEY_MISSING,
    )?;
    let signer = match (signing_key, i.signing_key_env.as_deref()) {
        (Some(text), Some(name)) => {
            let text = std::str::from_utf8(&text).unwrap_or("");
            Some(Signer::parse(text).map_err(|e| {
                ConfigError::at(signing_path, format!("environment variable {name} {e}"))
            })?)
        }
        _ => None,
    };
    Ok(Integrity {
        chain,
        key: key_or_degrade(
            degraded,
            "integrity.key_env",
            env,
            i.key_env.as_deref(),
            CHAIN_KEY_MISSING,
        )?,
        signer,
        seal_every_batch: i.seal_every_batch.unwrap_or(true),
    })
}
