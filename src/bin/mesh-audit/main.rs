//! `mesh-audit`: the native companion of the mesh-audit Envoy filter. It
//! receives record batches (`sink`), proves a stored trail intact (`verify`),
//! summarises who accessed what (`report`), validates configurations the way
//! the filter does (`check-config`) and makes signing keys (`keygen`).
//!
//! Exit status: 0 success, 1 the check failed (verification, configuration),
//! 2 usage or I/O error; errors are typed ([`status`] says how and why).

mod args;
mod check_config;
mod digests;
mod escape;
mod keygen;
mod keys;
mod lines;
mod report;
mod sink;
mod status;
mod verify;

use args::{Cli, Command, SinkArgs};
use clap::Parser;
use status::Verdict;
use std::process::ExitCode;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Sink(args) => status::exit("sink", run_sink(*args)),
        Command::Verify(args) => status::exit("verify", verify::run(&args)),
        Command::Keygen(args) => status::exit("keygen", keygen::run(&args)),
        Command::Report(args) => status::exit("report", report::run(&args)),
        Command::CheckConfig(args) => status::exit("check-config", check_config::run(&args)),
    }
}

/// Why the sink did not start, or stopped (exit status 2).
#[derive(Debug, thiserror::Error)]
enum SinkError {
    #[error("--retain-days deletes closed segments: give --rotate-bytes or --rotate-secs")]
    RetainWithoutRotation,
    #[error("--rotate-bytes and --rotate-secs must be positive")]
    ZeroRotation,
    #[error("--keys {0}")]
    Keyring(#[from] keys::KeyringError),
    #[error("{0}")]
    Run(String),
}

fn run_sink(a: SinkArgs) -> Result<Verdict, SinkError> {
    if a.retain_days.is_some() && a.rotate_bytes.is_none() && a.rotate_secs.is_none() {
        return Err(SinkError::RetainWithoutRotation);
    }
    if a.rotate_bytes == Some(0) || a.rotate_secs == Some(0) {
        return Err(SinkError::ZeroRotation);
    }
    let options = sink::Options {
        listen: a.listen,
        store: sink::store::Options {
            storage: sink::storage::Options {
                path: a.out,
                rotate_bytes: a.rotate_bytes,
                rotate_secs: a.rotate_secs,
                gzip: a.gzip,
                min_free_bytes: a.min_free_bytes,
            },
            window: a.window,
            max_emitters: a.max_emitters,
            keys: a.keys.as_deref().map(keys::Keyring::load).transpose()?,
        },
        auth: sink::auth::Options {
            tls_cert: a.tls_cert,
            tls_key: a.tls_key,
            client_ca: a.client_ca,
            allow_principals: a.allow_principals,
            token_envs: a.token_envs,
        },
        max_body_bytes: a.max_body_bytes,
        progress_secs: a.progress_secs.max(1),
        max_connections: a.max_connections,
        allow_unauthenticated: a.allow_unauthenticated,
        digest: a.digest_key.map(|key| sink::digest::Options {
            key,
            every: std::time::Duration::from_secs(a.digest_secs.max(1)),
            retain: a
                .retain_days
                .map(|d| std::time::Duration::from_secs_f64(d.max(0.0) * 86_400.0)),
        }),
    };
    sink::run(options).map_err(SinkError::Run)?;
    Ok(Verdict::Pass)
}
