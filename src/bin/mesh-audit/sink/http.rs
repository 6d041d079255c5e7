//! One request to the sink: route, authenticate, read and parse the body,
//! store, answer. Every outcome is an HTTP status the filter acts on: 2xx
//! acknowledged; 408/429/5xx retried; any other 4xx a rejection it reports.

use super::auth::{Peer, Verdict};
use super::batch::{parse_jsonl, parse_otlp, BadBatch};
use super::metrics::Rejection;
use super::State;
use crate::escape::text as escape;
use crate::sink::store::{now_nanos, unavailable, Refusal, Refused};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming as Body};
use hyper::header::{
    HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const OTLP_CONTENT_TYPE: &str = "application/x-protobuf";
/// How long a client may take to send its headers, and then its body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// What a 503 asks the proxy to wait before retrying.
const RETRY_AFTER_SECS: &str = "5";

type Reply = Response<Full<Bytes>>;

pub async fn handle(req: Request<Body>, state: Arc<State>, peer: &Peer) -> Reply {
    let path = req.uri().path().to_string();
    let otlp = match path.as_str() {
        "/v1/audit" => false,
        "/v1/logs" => true,
        "/healthz" if req.method() == Method::GET => return text(StatusCode::OK, "ok"),
        "/metrics" if req.method() == Method::GET => {
            return reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                Bytes::from(state.metrics.render()),
            )
        }
        "/healthz" | "/metrics" => return not_allowed("GET"),
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                &format!(
                    "no such endpoint {}; use /v1/audit or /v1/logs",
                    escape(&path)
                ),
            )
        }
    };
    if req.method() != Method::POST {
        return not_allowed("POST");
    }
    let identity = match state.auth.check(
        peer,
        req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes),
    ) {
        Verdict::Allowed(identity) => identity,
        Verdict::Unauthenticated(why) => {
            state.metrics.reject(Rejection::Unauthenticated);
            let mut r = text(StatusCode::UNAUTHORIZED, why);
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mesh-audit\""),
            );
            return r;
        }
        Verdict::Forbidden(why) => {
            state.metrics.reject(Rejection::Forbidden);
            return text(StatusCode::FORBIDDEN, &escape(&why));
        }
    };
    let gzipped = match header(&req, CONTENT_ENCODING).map(str::trim) {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(encoding) => {
            let why = format!(
                "content-encoding {} is not supported (gzip is)",
                escape(encoding)
            );
            return refuse(
                &state,
                Rejection::Malformed,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &why,
            );
        }
    };
    if otlp && !header(&req, CONTENT_TYPE).is_some_and(|t| t.starts_with(OTLP_CONTENT_TYPE)) {
        let why = format!("/v1/logs takes content-type {OTLP_CONTENT_TYPE} (OTLP/HTTP protobuf)");
        return refuse(
            &state,
            Rejection::Malformed,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &why,
        );
    }
    let body = match read_body(req, state.max_body_bytes).await {
        Ok(body) if gzipped => match gunzip(&body, state.max_body_bytes) {
            Ok(plain) => plain,
            Err((status, why)) => {
                let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    Rejection::TooLarge
                } else {
                    Rejection::Malformed
                };
                return refuse(&state, kind, status, &why);
            }
        },
        Ok(body) => body,
        Err((status, why)) => {
            let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
                Rejection::TooLarge
            } else {
                Rejection::Malformed
            };
            return refuse(&state, kind, status, &why);
        }
    };
    let parsed = if otlp {
        parse_otlp(&body)
    } else {
        parse_jsonl(&body)
    };
    let batch = match parsed {
        Ok(batch) => batch,
        Err(BadBatch::Malformed(why)) => {
            return refuse(
                &state,
                Rejection::Malformed,
                StatusCode::BAD_REQUEST,
                &format!("malformed batch: {why}"),
            )
        }
        Err(BadBatch::Invalid(why)) => {
            let records = if otlp {
                mesh_audit::deliver::encode_otlp::record_lines(&body).unwrap_or_default()
            } else {
                body.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect()
            };
            return invalid(state, identity, why, records).await;
        }
    };
    let stored = {
        let state = state.clone();
        let identity = identity.clone();
        tokio::task::spawn_blocking(move || {
            let appended = {
                let mut store = state.lock();
                let result = store.append(&batch, &identity);
                state
                    .metrics
                    .emitters
                    .store(store.emitters() as u64, Ordering::Relaxed);
                result?
            };
            // Outside the store's lock: batches of other writers are written
            // meanwhile and share the sync.
            state.durable(appended.durable_at).map_err(unavailable)?;
            Ok(appended)
        })
        .await
    };
    match stored {
        Ok(Ok(appended)) => {
            let m = &state.metrics;
            m.stored.fetch_add(appended.stored, Ordering::Relaxed);
            m.duplicates
                .fetch_add(appended.duplicates, Ordering::Relaxed);
            m.batches.fetch_add(1, Ordering::Relaxed);
            if appended.stored > 0 {
                m.bytes.fetch_add(appended.bytes, Ordering::Relaxed);
                m.last_write_ms
                    .store(now_nanos() / 1_000_000, Ordering::Relaxed);
            }
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
        Ok(Err(refusal)) => refused(&state, &identity, refusal),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("could not store the batch: {e}"),
        ),
    }
}

/// A batch that parsed but is not a valid part of the trail: 422, quarantined.
async fn invalid(state: Arc<State>, identity: String, why: String, records: Vec<Vec<u8>>) -> Reply {
    let refusal = {
        let state = state.clone();
        let identity = identity.clone();
        tokio::task::spawn_blocking(move || {
            let lines: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            let reason = format!("does not verify: {why}");
            state
                .lock()
                .refuse(Refused::Invalid, 422, reason, &lines, &identity)
        })
        .await
    };
    match refusal {
        Ok(refusal) => refused(&state, &identity, refusal),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

fn refused(state: &State, identity: &str, refusal: Refusal) -> Reply {
    let (status, kind) = match refusal.kind {
        Refused::Forbidden => (StatusCode::FORBIDDEN, Rejection::Owner),
        Refused::Conflict => (StatusCode::CONFLICT, Rejection::Conflict),
        Refused::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, Rejection::Invalid),
        Refused::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, Rejection::Unavailable),
    };
    state.metrics.reject(kind);
    let reason = escape(&refusal.reason);
    let kept = if refusal.quarantined {
        state.metrics.quarantined.fetch_add(1, Ordering::Relaxed);
        let store = state.lock();
        format!(" (quarantined in {})", store.quarantine_path().display())
    } else {
        String::new()
    };
    eprintln!(
        "mesh-audit sink: error: refused a batch from {} with {}: {reason}{kept}",
        escape(identity),
        status.as_u16()
    );
    let mut r = text(status, &reason);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    r
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

fn header<B>(req: &Request<B>, name: HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn refuse(state: &State, kind: Rejection, status: StatusCode, why: &str) -> Reply {
    state.metrics.reject(kind);
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
