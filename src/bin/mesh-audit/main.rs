//! `mesh-audit`: the native companion of the mesh-audit Envoy filter. It
//! receives record batches (`sink`), proves a stored trail intact (`verify`),
//! summarises who accessed what (`report`) and validates configurations the
//! way the filter does (`check-config`).
//!
//! Exit status: 0 success, 1 the check failed (verification, configuration),
//! 2 usage or I/O error.

mod check_config;
mod digests;
mod escape;
mod graph;
mod html;
mod keys;
mod lines;
mod report;
mod sink;
mod store;
mod verify;
mod verify_text;

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
    Sink(Box<SinkArgs>),
    /// Check a stored trail: sequence gaps, duplicates and the hash chain, per emitter.
    #[command(long_about = VERIFY_HELP)]
    Verify {
        /// The file a sink wrote (one record per line, any order).
        file: PathBuf,
        /// Environment variable holding the chain key (the proxies' integrity.key_env).
        #[arg(long, value_name = "VAR")]
        key_env: Option<String>,
        /// Print the result as one JSON document.
        #[arg(long)]
        json: bool,
        /// The sink's signed digests (PATH.digests): also check that nothing
        /// they cover was edited, truncated or deleted.
        #[arg(long, value_name = "DIR", requires = "sink_key")]
        digests: Option<PathBuf>,
        /// The sink's digest public key (hex, base64 or a PEM file).
        #[arg(long, value_name = "PUB", requires = "digests")]
        sink_key: Option<String>,
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

#[derive(clap::Args)]
struct SinkArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is
    /// printed on stderr). Anything but loopback needs authentication, or
    /// --allow-unauthenticated.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// The trail: a file (one exact JSON line per record), or with
    /// --rotate-bytes/--rotate-secs a directory of segment files.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Largest accepted request body in bytes; larger batches get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Seconds between progress lines on stderr (printed only when something changed).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    progress_secs: u64,
    /// Serve TLS with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM, PKCS#8 or PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Accept client certificates issued by this CA (PEM); writers are then
    /// identified by their SPIFFE ID (URI SAN).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// A SPIFFE ID allowed to write, exact or a prefix ending in `*`
    /// (repeatable), e.g. spiffe://cluster.local/ns/shop/*.
    #[arg(long = "allow-principal", value_name = "PATTERN")]
    allow_principals: Vec<String>,
    /// Accept `authorization: Bearer <token>` with the token held in this
    /// environment variable (repeatable; each variable is its own identity).
    #[arg(long = "token-env", value_name = "VAR")]
    token_envs: Vec<String>,
    /// Listen beyond loopback with no authentication at all.
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Most client connections open at once; more are closed at accept.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_connections: usize,
    /// Most emitters the sink keeps state for; a batch that would add more gets 503.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    max_emitters: usize,
    /// Recent seqs per emitter compared byte for byte against retries.
    #[arg(long, value_name = "SEQS", default_value_t = 4096)]
    window: u64,
    /// Below this much free disk space, batches get 503 (proxies retry).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024 * 1024)]
    min_free_bytes: u64,
    /// Start a new segment when the current one would exceed this size.
    #[arg(long, value_name = "BYTES")]
    rotate_bytes: Option<u64>,
    /// Start a new segment when the current one is this old.
    #[arg(long, value_name = "SECONDS")]
    rotate_secs: Option<u64>,
    /// Gzip segments once they are closed.
    #[arg(long)]
    gzip: bool,
    /// The keyring (KEY_ID PUBKEY [PATTERN...]): every batch must end in a
    /// seal signed by one of its keys, or it gets 422 and is quarantined.
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// Sign digests of the trail with this Ed25519 private key (PKCS#8 PEM
    /// or base64 seed) into PATH.digests/.
    #[arg(long, value_name = "FILE")]
    digest_key: Option<PathBuf>,
    /// Seconds between digests.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        requires = "digest_key"
    )]
    digest_secs: u64,
    /// Delete closed segments older than this many days, once a signed digest lists them.
    #[arg(long, value_name = "DAYS", requires = "digest_key")]
    retain_days: Option<f64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Html,
}

const SINK_HELP: &str = "\
Receive record batches over HTTP(S) and append them to PATH.

POST /v1/audit takes JSON lines (the filter's `jsonl` format); POST /v1/logs
takes an OTLP/HTTP protobuf ExportLogsServiceRequest (the `otlp` format) whose
log bodies are the records' JSON lines. GET /healthz answers 200; GET /metrics
gives Prometheus text.

Writers authenticate with a client certificate (--client-ca, whose SPIFFE ID
must match an --allow-principal) or a bearer token (--token-env); others get
401/403 and nothing is stored. Each emitter belongs to the identity that first
wrote it (PATH.owners); another identity gets 403.

Every record is stored as its exact original line, fsynced before the 2xx. A
byte-identical retry is acknowledged as a duplicate; different bytes for a
stored (emitter, seq) get 409; a batch that does not continue the stored chain,
has an impossible loss record or (with --keys) is not sealed by a listed key
gets 422. Refused batches are kept in PATH.quarantine.jsonl. A malformed batch
gets 400, a body above --max-body-bytes 413; below --min-free-bytes of free
disk, too many emitters or a failed write, 503 so the filter retries.

With --rotate-bytes/--rotate-secs PATH is a directory of segments; --gzip
compresses closed ones. --digest-key writes signed digests to PATH.digests/
(check them with `verify --digests`); --retain-days deletes old segments only
once a digest lists them. An incomplete last line left by a crash (never
acknowledged) is cut off at start.";

const VERIFY_HELP: &str = "\
Check a stored trail: per emitter, the records, sequence gaps explained by
`loss` records (reason `rejected` names the missing seq range), unexplained
gaps, duplicates and hash-chain mismatches, with the first bad seq.

Records may be in any order in FILE; each emitter's records are sorted by seq.
A record whose predecessor is legitimately missing cannot have its `prev`
checked: it is listed as unchecked, not as a failure. A seq stored twice with
identical bytes (a retried batch stored twice) is reported but is not a
failure; two different records with the same seq are.

Exit status 0 only when nothing is unexplained or mismatched, 1 otherwise,
2 when FILE cannot be read or the key variable is unset.

What the chain can and cannot prove:
  - Each record's `prev` covers its predecessor, never itself: the last record
    of an emitter can be altered or removed without trace, and so can any
    number of trailing records. Compare with the proxies' counters
    (mesh_audit.records_delivered) to bound what the file should hold.
  - Without a key (plain SHA-256) the chain catches accidental damage and
    naive edits, but whoever can write FILE can recompute every later `prev`.
    Only an HMAC key (integrity.key_env on the proxies, --key-env here) kept
    from the file's writers makes edits, insertions and deletions inside the
    trail detectable.";

const CHECK_CONFIG_HELP: &str = "\
Validate mesh-audit configuration with exactly the filter's checks and error
text (`mesh-audit: invalid configuration: <path>: <what>`).

FILE may be:
  - a plugin configuration (JSON);
  - an Envoy bootstrap (YAML or JSON): every envoy.filters.http.wasm filter whose
    config.root_id is \"mesh-audit\" or whose vm_config code ends in
    mesh_audit.wasm is checked, reported by its location;
  - Istio WasmPlugin YAML (one or more documents): each spec.pluginConfig.

Keys named by redact.hash_key_env and integrity.key_env must be present, as the
filter requires: a missing key makes Envoy refuse the filter. For an Envoy
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
        Command::Sink(args) => run_sink(*args),
        Command::Verify {
            file,
            key_env,
            json,
            digests,
            sink_key,
        } => {
            let digests = digests.as_deref().zip(sink_key.as_deref());
            run_verify(&file, key_env.as_deref(), json, digests)
        }
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
    let mut verifier = verify::Verifier::new(key);
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
        let mut text = verify_text::render(&outcome);
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
