//! `mesh-audit verify`: per emitter, sorts records by `seq` and checks the
//! chain (gaps, duplicates, each `prev`), the seals (signatures, ranges,
//! what each key may vouch for), loss records, and whether the emitter was
//! closed. With `--keys` or `--key-env` the check is strict (SPEC §7):
//! whatever no valid seal or key vouches for fails.
//!
//! Only each record's link (32 bytes) and a few facts are kept, never its
//! text, so files far larger than memory verify.

mod chain;
mod emitter;
mod entry;
mod outcome;
mod seals;
mod text;
mod verifier;

use crate::args::VerifyArgs;
use crate::digests::{self, DigestsError};
use crate::keys::{parse_public_key, Keyring, KeyringError, PublicKeyError};
use crate::lines::{for_each_line, TrailError};
use crate::status::{self, OutputError, Verdict};
use std::path::Path;
use verifier::Verifier;

/// Why `verify` could not check the trail (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("--sink-key: {0}")]
    SinkKey(PublicKeyError),
    #[error(transparent)]
    Digests(#[from] DigestsError),
    #[error("environment variable {0} is not set (or empty): export the proxies' chain key (their integrity.key_env) in it, or leave out --key-env")]
    KeyEnvUnset(String),
    #[error("--keys {0}")]
    Keyring(#[from] KeyringError),
    #[error(transparent)]
    Trail(#[from] TrailError),
    #[error(transparent)]
    Output(#[from] OutputError),
}

pub fn run(args: &VerifyArgs) -> Result<Verdict, VerifyError> {
    let digest_check = match args.digests.as_deref().zip(args.sink_key.as_deref()) {
        None => None,
        Some((dir, key)) => {
            let key = parse_public_key(key, Path::new(".")).map_err(VerifyError::SinkKey)?;
            Some(digests::verify(&args.file, dir, &key)?)
        }
    };
    let key = match &args.key_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v.into_bytes()),
            _ => return Err(VerifyError::KeyEnvUnset(var.clone())),
        },
    };
    let keyring = args.keys.as_deref().map(Keyring::load).transpose()?;
    let mut verifier = Verifier::new(key, keyring);
    for_each_line(&args.file, |number, bytes| verifier.add_line(number, bytes))?;
    let outcome = verifier.finish();
    let ok = outcome.ok && digest_check.as_ref().is_none_or(|d| d.ok);
    let text = if args.json {
        let mut value = serde_json::to_value(&outcome).unwrap_or_default();
        if let (Some(d), Some(map)) = (&digest_check, value.as_object_mut()) {
            map.insert(
                "digests".into(),
                serde_json::to_value(d).unwrap_or_default(),
            );
            map.insert("ok".into(), ok.into());
        }
        serde_json::to_string_pretty(&value)
            .map(|s| s + "\n")
            .unwrap_or_default()
    } else {
        let mut text = text::render(&outcome);
        if let Some(d) = &digest_check {
            text.push_str(&digests::render(d));
        }
        text
    };
    status::write(&text, None)?;
    Ok(Verdict::of(ok))
}
