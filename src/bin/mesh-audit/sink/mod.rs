//! `mesh-audit sink`: an HTTP(S) receiver for the filter's batches. It answers
//! 2xx only once a batch is on disk (fsynced), so the filter's retry-until-ack
//! delivery loses nothing; it stores only what an authenticated identity may
//! write, never lets a record shadow a stored one, and survives any input:
//! bodies are size- and time-limited, connections are capped, every failure
//! is an HTTP answer, never a crash.

pub mod auth;
pub mod batch;
mod commit;
pub mod digest;
pub mod emitters;
mod http;
pub mod ingest;
pub mod metrics;
pub mod storage;
pub mod store;

use crate::escape::text as escape;
use auth::{Auth, Peer};
use metrics::Metrics;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::Store;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Options {
    pub listen: String,
    pub store: store::Options,
    pub auth: auth::Options,
    pub max_body_bytes: usize,
    pub progress_secs: u64,
    pub max_connections: usize,
    pub allow_unauthenticated: bool,
    pub digest: Option<digest::Options>,
}

pub struct State {
    pub store: Mutex<Store>,
    pub commits: commit::Commits,
    pub metrics: Metrics,
    pub auth: Auth,
    pub max_body_bytes: usize,
    pub digester: Mutex<Option<digest::Digester>>,
}

impl State {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns once the trail is durable up to `end` (see [`commit`]).
    pub fn durable(&self, end: u64) -> Result<(), String> {
        let ran = self.commits.wait(
            end,
            || self.lock().storage().unsynced(),
            |e| self.lock().storage().fail(e),
        )?;
        if ran {
            self.metrics.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn is_loopback(listen: &str) -> bool {
    listen
        .parse::<SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or_else(|_| listen.starts_with("localhost:"))
}

pub fn run(options: Options) -> Result<(), String> {
    let auth = Auth::new(options.auth)?;
    if auth.is_open() {
        if !is_loopback(&options.listen) && !options.allow_unauthenticated {
            return Err(format!(
                "refusing to listen on {} without authentication: anyone who reaches it could store records. \
                 Give --client-ca/--allow-principal (mTLS) or --token-env, or --allow-unauthenticated to accept that",
                options.listen
            ));
        }
        eprintln!("mesh-audit sink: no authentication configured: anyone who can reach the port can store records");
    } else if auth.tls.is_none() && !is_loopback(&options.listen) {
        eprintln!("mesh-audit sink: bearer tokens without --tls-cert travel in plaintext");
    }
    let path = options.store.storage.path.clone();
    let digester = match options.digest {
        Some(o) => Some(digest::Digester::open(&path, o)?),
        None => None,
    };
    let (store, loaded) = Store::open(options.store, digester.is_some())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if loaded.opened.truncated_bytes > 0 {
        eprintln!(
            "mesh-audit sink: removed an incomplete last line ({} bytes) from {}: it was never acknowledged",
            loaded.opened.truncated_bytes,
            path.display()
        );
    }
    if loaded.unreadable > 0 {
        eprintln!(
            "mesh-audit sink: {} lines of {} are not records; kept as they are",
            loaded.unreadable,
            path.display()
        );
    }
    if loaded.unclaimed > 0 {
        eprintln!(
            "mesh-audit sink: {} stored emitters have no recorded owner (written before owners were kept); the first identity that writes one owns it",
            loaded.unclaimed
        );
    }
    match store.keys() {
        Some(n) => eprintln!("mesh-audit sink: verifying every batch's seal at ingest with {n} keys from --keys"),
        None => eprintln!("mesh-audit sink: no --keys: records are checked for format, continuity and loss consistency, but cannot be authenticated (seals are not checked)"),
    }
    let metrics = Metrics::default();
    metrics
        .emitters
        .store(store.emitters() as u64, Ordering::Relaxed);
    let state = Arc::new(State {
        store: Mutex::new(store),
        commits: commit::Commits::default(),
        metrics,
        auth,
        max_body_bytes: options.max_body_bytes,
        digester: Mutex::new(digester),
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
        if let Some(d) = state.digester.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            eprintln!("mesh-audit sink: signing digests with key {}", d.key_id());
        }
        if state.auth.tls.is_some() {
            eprintln!("mesh-audit sink: serving TLS on {addr}");
        }
        eprintln!(
            "mesh-audit sink: listening on {addr}, appending to {} ({} records from {} emitters already stored)",
            path.display(),
            loaded.records,
            state.metrics.emitters.load(Ordering::Relaxed)
        );
        tokio::spawn(progress(state.clone(), Duration::from_secs(options.progress_secs)));
        tokio::spawn(housekeeping(state.clone()));
        accept(listener, state, options.max_connections.max(1)).await;
        Ok(())
    })
}

async fn accept(listener: tokio::net::TcpListener, state: Arc<State>, max_connections: usize) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let acceptor = state.auth.tls.clone().map(tokio_rustls::TlsAcceptor::from);
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
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Closing at once keeps the sink serving those already connected;
            // the proxy sees a connect failure and retries later.
            state
                .metrics
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            state.metrics.connections.fetch_add(1, Ordering::Relaxed);
            match acceptor {
                None => serve(stream, Peer::Anonymous, state.clone()).await,
                Some(acceptor) => {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        let peer =
                            auth::peer(tls.get_ref().1.peer_certificates().and_then(|c| c.first()));
                        serve(tls, peer, state.clone()).await;
                    }
                }
            }
            state.metrics.connections.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

async fn serve<IO>(io: IO, peer: Peer, state: Arc<State>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = Arc::new(peer);
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(http::handle(req, state, &peer).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(http::READ_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

/// Once a second: time-based rotation, and a signed digest when one is due.
async fn housekeeping(state: Arc<State>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut store = state.lock();
            if let Err(e) = store.storage().tick() {
                eprintln!(
                    "mesh-audit sink: cannot rotate the segment: {}",
                    escape(&e.to_string())
                );
            }
            let mut digester = state.digester.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = digester.as_mut().filter(|d| d.due()) {
                // A digest lists only what is on disk.
                match store.storage().sync().and_then(|()| d.write(&mut store)) {
                    Ok(_) => {
                        state.metrics.digests.fetch_add(1, Ordering::Relaxed);
                        state
                            .metrics
                            .last_digest_ms
                            .store(store::now_nanos() / 1_000_000, Ordering::Relaxed);
                    }
                    Err(e) => eprintln!(
                        "mesh-audit sink: error: cannot write a digest: {}",
                        escape(&e.to_string())
                    ),
                }
            }
        })
        .await;
    }
}

async fn progress(state: Arc<State>, every: Duration) {
    let m = &state.metrics;
    let snapshot = || {
        (
            m.stored.load(Ordering::Relaxed),
            m.duplicates.load(Ordering::Relaxed),
            m.rejected_total(),
            m.emitters.load(Ordering::Relaxed),
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
