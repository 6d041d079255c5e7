//! The command line: every command's arguments and long help, as clap
//! parses them. What each command does with them is in its own module.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "mesh-audit",
    version,
    about = "Receive, verify and report on mesh-audit records; validate mesh-audit configurations"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Receive record batches over HTTP and append them to FILE.
    #[command(long_about = SINK_HELP)]
    Sink(Box<SinkArgs>),
    /// Check a stored trail: sequence gaps, duplicates and the hash chain, per emitter.
    #[command(long_about = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Make an Ed25519 signing key pair for integrity.signing_key_env, and its keyring line.
    #[command(long_about = KEYGEN_HELP)]
    Keygen(KeygenArgs),
    /// Summarise who accessed what: per source principal and route, by decision.
    Report(ReportArgs),
    /// Validate a plugin configuration, every mesh-audit filter of an Envoy
    /// bootstrap, or an Istio WasmPlugin, with the filter's own error text.
    #[command(long_about = CHECK_CONFIG_HELP)]
    CheckConfig(CheckConfigArgs),
}

#[derive(clap::Args)]
pub struct SinkArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is
    /// printed on stderr). Anything but loopback needs authentication, or
    /// --allow-unauthenticated.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The trail: a file (one exact JSON line per record), or with
    /// --rotate-bytes/--rotate-secs a directory of segment files.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// Largest accepted request body in bytes; larger batches get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds between progress lines on stderr (printed only when something changed).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub progress_secs: u64,
    /// Serve TLS with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM, PKCS#8 or PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Accept client certificates issued by this CA (PEM); writers are then
    /// identified by their SPIFFE ID (URI SAN).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,
    /// A SPIFFE ID allowed to write, exact or a prefix ending in `*`
    /// (repeatable), e.g. spiffe://cluster.local/ns/shop/*.
    #[arg(long = "allow-principal", value_name = "PATTERN")]
    pub allow_principals: Vec<String>,
    /// Accept `authorization: Bearer <token>` with the token held in this
    /// environment variable (repeatable; each variable is its own identity).
    #[arg(long = "token-env", value_name = "VAR")]
    pub token_envs: Vec<String>,
    /// Listen beyond loopback with no authentication at all.
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// Most client connections open at once; more are closed at accept.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// Most emitters the sink keeps state for; a batch that would add more gets 503.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub max_emitters: usize,
    /// Recent seqs per emitter compared byte for byte against retries.
    #[arg(long, value_name = "SEQS", default_value_t = 4096)]
    pub window: u64,
    /// Below this much free disk space, batches get 503 (proxies retry).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024 * 1024)]
    pub min_free_bytes: u64,
    /// Start a new segment when the current one would exceed this size.
    #[arg(long, value_name = "BYTES")]
    pub rotate_bytes: Option<u64>,
    /// Start a new segment when the current one is this old.
    #[arg(long, value_name = "SECONDS")]
    pub rotate_secs: Option<u64>,
    /// Gzip segments once they are closed.
    #[arg(long)]
    pub gzip: bool,
    /// The keyring (KEY_ID PUBKEY [PATTERN...]): every batch must end in a
    /// seal signed by one of its keys, or it gets 422 and is quarantined.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// Sign digests of the trail with this Ed25519 private key (PKCS#8 PEM
    /// or base64 seed) into PATH.digests/.
    #[arg(long, value_name = "FILE")]
    pub digest_key: Option<PathBuf>,
    /// Seconds between digests.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        requires = "digest_key"
    )]
    pub digest_secs: u64,
    /// Delete closed segments older than this many days, once a signed digest lists them.
    #[arg(long, value_name = "DAYS", requires = "digest_key")]
    pub retain_days: Option<f64>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Text,
    Html,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The file a sink wrote (one record per line, any order).
    pub file: PathBuf,
    /// Environment variable holding the chain key (the proxies' integrity.key_env).
    #[arg(long, value_name = "VAR")]
    pub key_env: Option<String>,
    /// Keyring of the proxies' public signing keys: `KEY_ID PUBKEY [PATTERN...]` per line.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// Print the result as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// The sink's signed digests (PATH.digests): also check that nothing
    /// they cover was edited, truncated or deleted.
    #[arg(long, value_name = "DIR", requires = "sink_key")]
    pub digests: Option<PathBuf>,
    /// The sink's digest public key (hex, base64 or a PEM file).
    #[arg(long, value_name = "PUB", requires = "digests")]
    pub sink_key: Option<String>,
}

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Path prefix of the files written: PREFIX.key.pem (private) and PREFIX.pub.pem.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// destination.principal patterns this key may vouch for (exact, or ending in `*`).
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The file a sink wrote.
    pub file: PathBuf,
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Write the report to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct CheckConfigArgs {
    /// JSON plugin configuration, Envoy bootstrap (YAML or JSON) or WasmPlugin YAML.
    pub file: PathBuf,
}

pub const SINK_HELP: &str = "\
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

pub const VERIFY_HELP: &str = "\
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

pub const KEYGEN_HELP: &str = "\
Make an Ed25519 key pair for seals: PREFIX.key.pem (PKCS#8, mode 0600; give
it to the proxies as the variable integrity.signing_key_env names) and
PREFIX.pub.pem (SPKI), and print the keyring line for `verify --keys`:
KEY_ID PUBKEY [PATTERN...]. Give each namespace (or workload) its own key and
list the principals it serves as PATTERNs, e.g.
spiffe://cluster.local/ns/shop/*: a stolen key then forges nothing outside
them. Existing files are never overwritten.";

pub const CHECK_CONFIG_HELP: &str = "\
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
