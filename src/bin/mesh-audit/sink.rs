//! `mesh-audit sink`: an HTTP receiver for the filter's batches. It answers
//! 2xx only once a batch is on disk (fsynced), so the filter's retry-until-ack
//! delivery loses nothing, and it survives any input: bodies are size- and
//! time-limited, every failure is an HTTP answer, never a crash.

use crate::store::{parse_jsonl, parse_record, Incoming, Store};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming as Body};
use hyper::header::{HeaderValue, ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OTLP_CONTENT_TYPE: &str = "application/x-protobuf";
/// How long a client may take to send its headers, and then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Options {
    pub listen: String,
    pub out: PathBuf,
    pub max_body_bytes: usize,
    pub progress_secs: u64,
}

#[derive(Default)]
struct Counters {
    stored: AtomicU64,
    duplicates: AtomicU64,
    rejected_batches: AtomicU64,
    emitters: AtomicUsize,
}

struct State {
    store: Mutex<Store>,
    counters: Counters,
    max_body_bytes: usize,
}

type Reply = Response<Full<Bytes>>;

pub fn run(options: Options) -> Result<(), String> {
    let (store, opened) =
        Store::open(&options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    if opened.truncated_bytes > 0 {
        eprintln!(
            "mesh-audit sink: removed an incomplete last line ({} bytes) from {}: it was never acknowledged",
            opened.truncated_bytes,
            options.out.display()
        );
    }
    if opened.unreadable > 0 {
        eprintln!(
            "mesh-audit sink: {} lines of {} are not records; kept as they are",
            opened.unreadable,
            options.out.display()
        );
    }
    let counters = Counters::default();
    counters.emitters.store(store.emitters(), Ordering::Relaxed);
    let state = Arc::new(State {
        store: Mutex::new(store),
        counters,
        max_body_bytes: options.max_body_bytes,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!(
            "mesh-audit sink: listening on {addr}, appending to {} ({} records from {} emitters already stored)",
            options.out.display(),
            opened.records,
            state.counters.emitters.load(Ordering::Relaxed)
        );
        tokio::spawn(progress(state.clone(), Duration::from_secs(options.progress_secs)));
        accept(listener, state).await;
        Ok(())
    })
}

async fn accept(listener: tokio::net::TcpListener, state: Arc<State>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                eprintln!("mesh-audit sink: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(req, state).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(req: Request<Body>, state: Arc<State>) -> Reply {
    let path = req.uri().path().to_string();
    let otlp = match path.as_str() {
        "/v1/audit" => false,
        "/v1/logs" => true,
        "/healthz" if req.method() == Method::GET => return text(StatusCode::OK, "ok"),
        "/healthz" => return not_allowed("GET"),
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint {path}; use /v1/audit or /v1/logs"),
            )
        }
    };
    if req.method() != Method::POST {
        return not_allowed("POST");
    }
    let gzipped = match header(&req, CONTENT_ENCODING).map(str::trim) {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(encoding) => {
            return reject(
                &state,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("content-encoding {encoding} is not supported (gzip is)"),
            )
        }
    };
    if otlp && !header(&req, CONTENT_TYPE).is_some_and(|t| t.starts_with(OTLP_CONTENT_TYPE)) {
        let why = format!("/v1/logs takes content-type {OTLP_CONTENT_TYPE} (OTLP/HTTP protobuf)");
        return reject(&state, StatusCode::UNSUPPORTED_MEDIA_TYPE, &why);
    }
    let body = match read_body(req, state.max_body_bytes).await {
        Ok(body) if gzipped => match gunzip(&body, state.max_body_bytes) {
            Ok(plain) => plain,
            Err((status, why)) => return reject(&state, status, &why),
        },
        Ok(body) => body,
        Err((status, why)) => return reject(&state, status, &why),
    };
    let batch = if otlp {
        parse_otlp(&body)
    } else {
        parse_jsonl(&body)
    };
    let batch = match batch {
        Ok(batch) => batch,
        Err(why) => {
            return reject(
                &state,
                StatusCode::BAD_REQUEST,
                &format!("malformed batch: {why}"),
            )
        }
    };
    let stored = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = state
                .store
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let result = store.append(batch);
            state
                .counters
                .emitters
                .store(store.emitters(), Ordering::Relaxed);
            result
        })
        .await
    };
    match stored {
        Ok(Ok(appended)) => {
            state
                .counters
                .stored
                .fetch_add(appended.stored, Ordering::Relaxed);
            state
                .counters
                .duplicates
                .fetch_add(appended.duplicates, Ordering::Relaxed);
            if otlp {
                // An empty ExportLogsServiceResponse is an empty protobuf message.
                reply(StatusCode::OK, OTLP_CONTENT_TYPE, Bytes::new())
            } else {
                let body = format!(
                    "{{\"stored\":{},\"duplicates\":{}}}\n",
                    appended.stored, appended.duplicates
                );
                reply(StatusCode::OK, "application/json", Bytes::from(body))
            }
        }
        Ok(Err(e)) => {
            eprintln!("mesh-audit sink: write failed: {e}");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("could not store the batch: {e}"),
            )
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("could not store the batch: {e}"),
        ),
    }
}

/// Each LogRecord body of an OTLP request is one record's exact JSON line.
fn parse_otlp(body: &[u8]) -> Result<Vec<Incoming>, String> {
    mesh_audit::deliver::encode_otlp::record_lines(body)?
        .into_iter()
        .enumerate()
        .map(|(i, line)| parse_record(line).map_err(|e| format!("log record {i}: {e}")))
        .collect()
}

async fn read_body(req: Request<Body>, max: usize) -> Result<Bytes, (StatusCode, String)> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("batch larger than {max} bytes"),
        )
    };
    let declared = header(&req, CONTENT_LENGTH).map(|v| v.trim().parse::<u64>());
    match declared {
        Some(Ok(n)) if n > max as u64 => return Err(too_large()),
        Some(Err(_)) => return Err((StatusCode::BAD_REQUEST, "invalid content-length".into())),
        _ => {}
    }
    let collect = Limited::new(req.into_body(), max).collect();
    match tokio::time::timeout(READ_TIMEOUT, collect).await {
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "body not received in time".into(),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err((
            StatusCode::BAD_REQUEST,
            format!("could not read the body: {e}"),
        )),
    }
}

/// A gzip body, decompressed; the size limit applies to what it expands
/// to, so a small bomb cannot fill memory.
fn gunzip(body: &[u8], max: usize) -> Result<Bytes, (StatusCode, String)> {
    use std::io::Read;
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(max as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("not a gzip body: {e}")))?;
    if plain.len() > max {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("batch larger than {max} bytes once decompressed"),
        ));
    }
    Ok(Bytes::from(plain))
}

fn header<B>(req: &Request<B>, name: hyper::header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn reject(state: &State, status: StatusCode, why: &str) -> Reply {
    state
        .counters
        .rejected_batches
        .fetch_add(1, Ordering::Relaxed);
    text(status, why)
}

fn not_allowed(allow: &'static str) -> Reply {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, &format!("use {allow}"));
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn text(status: StatusCode, message: &str) -> Reply {
    reply(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(format!("{message}\n")),
    )
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn progress(state: Arc<State>, every: Duration) {
    let c = &state.counters;
    let snapshot = || {
        (
            c.stored.load(Ordering::Relaxed),
            c.duplicates.load(Ordering::Relaxed),
            c.rejected_batches.load(Ordering::Relaxed),
            c.emitters.load(Ordering::Relaxed),
        )
    };
    let mut last = snapshot();
    let mut last_at = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let now = snapshot();
        if now == last {
            continue;
        }
        let secs = last_at.elapsed().as_secs_f64().max(0.001);
        let (stored, duplicates, rejected, emitters) = now;
        eprintln!(
            "mesh-audit sink: {stored} records stored ({:.1} records/s), {emitters} emitters, {duplicates} duplicates dropped, {rejected} batches refused",
            (stored - last.0) as f64 / secs
        );
        last = now;
        last_at = Instant::now();
    }
}
