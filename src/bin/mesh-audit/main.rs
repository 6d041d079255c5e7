//! `mesh-audit`: the native companion of the mesh-audit Envoy filter. It
//! receives record batches (`sink`), proves a stored trail intact (`verify`),
//! summarises who accessed what (`report`), validates configurations the way
//! the filter does (`check-config`) and makes signing keys (`keygen`).
//!
//! Exit status: 0 success, 1 the check failed (verification, configuration),
//! 2 usage or I/O error.

mod check_config;
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

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mesh-audit",
    version,
    about = "Receive, verify and report on mesh-audit records; validate mesh-audit configurations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive record batches over HTTP and append them to FILE.
    #[command(long_about = SINK_HELP)]
    Sink {
        /// Address to listen on, e.g. 0.0.0.0:8080 (port 0 picks a free port; the
        /// bound address is printed on stderr).
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// File the records are appended to, one exact JSON line per record.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Largest accepted request body in bytes; larger batches get 413.
        #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
        max_body_bytes: usize,
        /// Seconds between progress lines on stderr (printed only when something changed).
        #[arg(long, value_name = "SECONDS", default_value_t = 5)]
        progress_secs: u64,
    },
    /// Check a stored trail: sequence gaps, duplicates and the hash chain, per emitter.
    #[command(long_about = VERIFY_HELP)]
    Verify {
        /// The file a sink wrote (one record per line, any order).
        file: PathBuf,
        /// Environment variable holding the chain key (the proxies' integrity.key_env).
        #[arg(long, value_name = "VAR")]
        key_env: Option<String>,
        /// Keyring of the proxies' public signing keys: `KEY_ID PUBKEY [PATTERN...]` per line.
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Make an Ed25519 signing key pair for integrity.signing_key_env, and its keyring line.
    #[command(long_about = KEYGEN_HELP)]
    Keygen {
        /// Path prefix of the files written: PREFIX.key.pem (private) and PREFIX.pub.pem.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        /// destination.principal patterns this key may vouch for (exact, or ending in `*`).
        #[arg(value_name = "PATTERN")]
        patterns: Vec<String>,
    },
    /// Summarise who accessed what: per source principal and route, by decision.
    Report {
        /// The file a sink wrote.
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
        /// Write the report to this file instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Validate a plugin configuration, every mesh-audit filter of an Envoy
    /// bootstrap, or an Istio WasmPlugin, with the filter's own error text.
    #[command(long_about = CHECK_CONFIG_HELP)]
    CheckConfig {
        /// JSON plugin configuration, Envoy bootstrap (YAML or JSON) or WasmPlugin YAML.
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Html,
}

const SINK_HELP: &str = "\
Receive record batches over HTTP and append them to FILE.

POST /v1/audit takes JSON lines (the filter's `jsonl` format); POST /v1/logs
takes an OTLP/HTTP protobuf ExportLogsServiceRequest (the `otlp` format) whose
log bodies are the records' JSON lines. GET /healthz answers 200.

Every record is stored as its exact original JSON line, so the hash chain still
verifies. A batch is appended and fsynced before the 2xx answer; records whose
(emitter, seq) is already stored are dropped, also across restarts (the set is
rebuilt from FILE at start). A malformed batch is refused whole with 400 and a
reason; a body above --max-body-bytes gets 413; a failed write gets 503 so the
filter retries. An incomplete last line left by a crash mid-write (never
acknowledged) is cut off at start.";

const VERIFY_HELP: &str = "\
Check a stored trail, per emitter: sequence gaps explained by `loss` records
(reason `rejected` names the missing seq range), unexplained gaps,
duplicates, hash-chain mismatches, seals (ranges, signatures, what each key
may vouch for), loss records, and whether the emitter was closed.

Records may be in any order in FILE; each emitter's records are sorted by seq.
A seq stored twice with identical bytes (a retried batch stored twice) is
reported but is not a failure; two different records with the same seq are.
An emitter without a `close` record is reported open since its last seal
(the proxy stopped without a drain: compare with its records_buffered gauge);
that alone is not a failure.

With --keys (the proxies' public keys) or --key-env (their chain key) the
check is strict: every record must carry `prev` and be vouched for by a valid
seal, seals must be signed by a listed key (--keys) whose patterns allow the
destinations it vouches for, seq 1 must start at the keyed genesis
(--key-env), and only a vouched-for loss record explains a gap.

What each mode proves:
  - no key: only that the trail has no accidental damage; whoever can write
    FILE can rewrite it and recompute every prev and seal;
  - --key-env: nothing was edited, inserted, deleted, reordered or forged by
    anyone without the chain key; every proxy holding it can forge;
  - --keys: the same against anyone without a listed signing key, and a key
    vouches only for destinations its patterns allow.
  In every mode, deleting an emitter's newest batches or a whole emitter is
  not visible from the trail alone: the sink's signed digests cover that.

Exit status 0 only when every check holds, 1 otherwise, 2 when FILE or the
keyring cannot be read or the key variable is unset.";

const KEYGEN_HELP: &str = "\
Make an Ed25519 key pair for seals: PREFIX.key.pem (PKCS#8, mode 0600; give
it to the proxies as the variable integrity.signing_key_env names) and
PREFIX.pub.pem (SPKI), and print the keyring line for `verify --keys`:
KEY_ID PUBKEY [PATTERN...]. Give each namespace (or workload) its own key and
list the principals it serves as PATTERNs, e.g.
spiffe://cluster.local/ns/shop/*: a stolen key then forges nothing outside
them. Existing files are never overwritten.";

const CHECK_CONFIG_HELP: &str = "\
Validate mesh-audit configuration with exactly the filter's checks and error
text (`mesh-audit: invalid configuration: <path>: <what>`).

FILE may be:
  - a plugin configuration (JSON);
  - an Envoy bootstrap (YAML or JSON): every envoy.filters.http.wasm filter whose
    config.root_id is \"mesh-audit\" or whose vm_config code ends in
    mesh_audit.wasm is checked, reported by its location;
  - Istio WasmPlugin YAML (one or more documents): each spec.pluginConfig.

Keys named by redact.hash_key_env, integrity.key_env and
integrity.signing_key_env must be present (and a signing key must be an
Ed25519 PKCS#8 PEM or base64 seed), as the filter requires: a missing key makes Envoy refuse the filter. For an Envoy
bootstrap they are looked up in the filter's vm_config.environment_variables
(key_values, and host_env_keys read from this process's environment); for a
WasmPlugin in spec.vmConfig.env (inline values, and valueFrom: HOST read from
this process's environment); for a plain JSON configuration in this process's
environment.

Exit status 0 when every configuration is valid, 1 when one is invalid or none
is found, 2 when FILE cannot be read.";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sink {
            listen,
            out,
            max_body_bytes,
            progress_secs,
        } => {
            let options = sink::Options {
                listen,
                out,
                max_body_bytes,
                progress_secs: progress_secs.max(1),
            };
            match sink::run(options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(2, &format!("mesh-audit sink: {e}")),
            }
        }
        Command::Verify {
            file,
            key_env,
            keys,
            json,
        } => run_verify(&file, key_env.as_deref(), keys.as_deref(), json),
        Command::Keygen { out, patterns } => keygen::run(&out, &patterns),
        Command::Report {
            file,
            format,
            output,
        } => run_report(&file, format, output.as_deref()),
        Command::CheckConfig { file } => check_config::run(&file),
    }
}

fn run_verify(
    file: &std::path::Path,
    key_env: Option<&str>,
    keys: Option<&std::path::Path>,
    json: bool,
) -> ExitCode {
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
    let text = if json {
        serde_json::to_string_pretty(&outcome)
            .map(|s| s + "\n")
            .unwrap_or_default()
    } else {
        verify::text::render(&outcome)
    };
    print!("{text}");
    if outcome.ok {
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
