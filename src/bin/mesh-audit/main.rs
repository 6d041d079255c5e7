//! `mesh-audit`: the native companion of the mesh-audit Envoy filter. It
//! receives record batches (`sink`), proves a stored trail intact (`verify`),
//! summarises who accessed what (`report`), validates configurations the way
//! the filter does (`check-config`) and makes signing keys (`keygen`).
//!
//! Exit status: 0 success, 1 the check failed (verification, configuration),
//! 2 usage or I/O error.

mod args;
mod check_config;
mod digests;
mod escape;
mod keygen;
mod keys;
mod lines;
mod report;
mod sink;
mod store;
mod verify;
mod wasmplugin;

use args::{Cli, Command, SinkArgs};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sink(args) => run_sink(*args),
        Command::Verify {
            file,
            key_env,
            keys,
            json,
            digests,
            sink_key,
        } => {
            let digests = digests.as_deref().zip(sink_key.as_deref());
            verify::run(&file, key_env.as_deref(), keys.as_deref(), json, digests)
        }
        Command::Keygen { out, patterns } => keygen::run(&out, &patterns),
        Command::Report {
            file,
            format,
            output,
        } => report::run(&file, format, output.as_deref()),
        Command::CheckConfig { file } => check_config::run(&file),
    }
}

fn run_sink(a: SinkArgs) -> ExitCode {
    if a.retain_days.is_some() && a.rotate_bytes.is_none() && a.rotate_secs.is_none() {
        return fail(2, "mesh-audit sink: --retain-days deletes closed segments: give --rotate-bytes or --rotate-secs");
    }
    if a.rotate_bytes == Some(0) || a.rotate_secs == Some(0) {
        return fail(
            2,
            "mesh-audit sink: --rotate-bytes and --rotate-secs must be positive",
        );
    }
    let options = sink::Options {
        listen: a.listen,
        store: store::Options {
            storage: sink::storage::Options {
                path: a.out,
                rotate_bytes: a.rotate_bytes,
                rotate_secs: a.rotate_secs,
                gzip: a.gzip,
                min_free_bytes: a.min_free_bytes,
            },
            window: a.window,
            max_emitters: a.max_emitters,
            keys: match a.keys.as_deref().map(keys::Keyring::load) {
                None => None,
                Some(Ok(k)) => Some(k),
                Some(Err(e)) => {
                    return fail(2, &format!("mesh-audit sink: --keys {}", escape::text(&e)))
                }
            },
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
    match sink::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(2, &format!("mesh-audit sink: {}", escape::text(&e))),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(code)
}
