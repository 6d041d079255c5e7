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
mod graph;
mod html;
mod keygen;
mod keys;
mod lines;
mod report;
mod sink;
mod store;
mod verify;
mod wasmplugin;

use args::{Cli, Command, ReportFormat, SinkArgs};
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
            run_verify(&file, key_env.as_deref(), keys.as_deref(), json, digests)
        }
        Command::Keygen { out, patterns } => keygen::run(&out, &patterns),
        Command::Report {
            file,
            format,
            output,
        } => run_report(&file, format, output.as_deref()),
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

fn run_verify(
    file: &std::path::Path,
    key_env: Option<&str>,
    keys: Option<&std::path::Path>,
    json: bool,
    digests: Option<(&std::path::Path, &str)>,
) -> ExitCode {
    let digest_check = match digests {
        None => None,
        Some((dir, key)) => {
            let key = match keys::parse_public_key(key, std::path::Path::new(".")) {
                Ok(k) => k,
                Err(e) => return fail(2, &format!("mesh-audit verify: --sink-key: {e}")),
            };
            match digests::verify(file, dir, &key) {
                Ok(o) => Some(o),
                Err(e) => return fail(2, &format!("mesh-audit verify: {}", escape::text(&e))),
            }
        }
    };
    let key = match key_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v.into_bytes()),
            _ => {
                return fail(
                    2,
                    &format!("mesh-audit verify: environment variable {var} is not set"),
                )
            }
        },
    };
    let keyring = match keys.map(keys::Keyring::load).transpose() {
        Ok(k) => k,
        Err(e) => return fail(2, &format!("mesh-audit verify: keyring {e}")),
    };
    let mut verifier = verify::Verifier::new(key, keyring);
    if let Err(e) = lines::for_each_line(file, |number, bytes| verifier.add_line(number, bytes)) {
        return fail(2, &format!("mesh-audit verify: {}: {e}", file.display()));
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
        let mut text = verify::text::render(&outcome);
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

fn run_report(
    file: &std::path::Path,
    format: ReportFormat,
    output: Option<&std::path::Path>,
) -> ExitCode {
    let mut summary = report::Summary::default();
    if let Err(e) = lines::for_each_line(file, |_, bytes| summary.add_line(bytes)) {
        return fail(2, &format!("mesh-audit report: {}: {e}", file.display()));
    }
    summary.finish();
    let name = file.display().to_string();
    let text = match format {
        ReportFormat::Text => report::render_text(&summary),
        ReportFormat::Html => html::render(&summary, &name),
    };
    match output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(2, &format!("mesh-audit report: {}: {e}", path.display())),
        },
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(code)
}
