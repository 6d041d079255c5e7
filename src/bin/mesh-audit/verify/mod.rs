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

use crate::keys::{parse_public_key, Keyring};
use crate::{digests, escape, lines};
use std::process::ExitCode;
use verifier::Verifier;

pub fn run(
    file: &std::path::Path,
    key_env: Option<&str>,
    keys: Option<&std::path::Path>,
    json: bool,
    digests: Option<(&std::path::Path, &str)>,
) -> ExitCode {
    let digest_check = match digests {
        None => None,
        Some((dir, key)) => {
            let key = match parse_public_key(key, std::path::Path::new(".")) {
                Ok(k) => k,
                Err(e) => return crate::fail(2, &format!("mesh-audit verify: --sink-key: {e}")),
            };
            match digests::verify(file, dir, &key) {
                Ok(o) => Some(o),
                Err(e) => {
                    return crate::fail(2, &format!("mesh-audit verify: {}", escape::text(&e)))
                }
            }
        }
    };
    let key = match key_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v.into_bytes()),
            _ => {
                return crate::fail(
                    2,
                    &format!("mesh-audit verify: environment variable {var} is not set"),
                )
            }
        },
    };
    let keyring = match keys.map(Keyring::load).transpose() {
        Ok(k) => k,
        Err(e) => return crate::fail(2, &format!("mesh-audit verify: keyring {e}")),
    };
    let mut verifier = Verifier::new(key, keyring);
    if let Err(e) = lines::for_each_line(file, |number, bytes| verifier.add_line(number, bytes)) {
        return crate::fail(2, &format!("mesh-audit verify: {}: {e}", file.display()));
    }
    let outcome = verifier.finish();
    let ok = outcome.ok && digest_check.as_ref().is_none_or(|d| d.ok);
    let text = if json {
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
    print!("{text}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
