//! A steady load on Envoy's plaintext listener: requests at a fixed rate,
//! spread over a few kept-alive HTTP/1.1 connections, each outcome recorded
//! as the client saw it. Runs until stopped (or a hard cap), so a test can
//! change the world underneath it.

use super::http1::read_message;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// No load runs longer than this, whatever the test forgets.
const MAX_RUN: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One request as the client saw it.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub index: usize,
    /// 0 when no response arrived.
    pub status: u16,
    pub request_id: Option<String>,
    pub body: Vec<u8>,
    pub latency: Duration,
    /// Why no response arrived (connect, write or read failure).
    pub error: Option<String>,
}

impl Outcome {
    /// A client-visible error: anything but a 200.
    pub fn failed(&self) -> bool {
        self.status != 200
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `rate` requests per second (GET `{path}/{index}`) over
    /// `connections` kept-alive connections to 127.0.0.1:`port`.
    pub fn start(port: u16, path: &str, rate: u32, connections: usize) -> Load {
        assert!(rate > 0 && connections > 0);
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let interval = Duration::from_secs(1) / rate;
        let started = Instant::now();
        let workers = (0..connections)
            .map(|first| {
                let (stop, outcomes) = (Arc::clone(&stop), Arc::clone(&outcomes));
                let path = path.to_string();
                thread::spawn(move || {
                    let mut conn = None;
                    for index in (first..).step_by(connections) {
                        let due = started + interval * index as u32;
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            thread::sleep(wait);
                        }
                        if stop.load(Ordering::SeqCst) || started.elapsed() > MAX_RUN {
                            return;
                        }
                        let outcome = request(&mut conn, port, &format!("{path}/{index}"), index);
                        lock(&outcomes).push(outcome);
                    }
                })
            })
            .collect();
        Load {
            stop,
            outcomes,
            workers,
        }
    }

    /// Requests answered (or failed) so far.
    pub fn sent(&self) -> usize {
        lock(&self.outcomes).len()
    }

    /// Stops the load and returns every outcome, by request index.
    pub fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            let _ = worker.join();
        }
        let mut outcomes = lock(&self.outcomes).clone();
        outcomes.sort_by_key(|o| o.index);
        outcomes
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

type Conn = (TcpStream, BufReader<TcpStream>);

fn connect(port: u16) -> std::io::Result<Conn> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let reader = BufReader::new(stream.try_clone()?);
    Ok((stream, reader))
}

/// One request on the kept-alive connection (opened first if needed). A
/// failure is recorded, not retried: the client sees it.
fn request(conn: &mut Option<Conn>, port: u16, path: &str, index: usize) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        index,
        status: 0,
        request_id: None,
        body: Vec::new(),
        latency: Duration::ZERO,
        error: None,
    };
    if conn.is_none() {
        match connect(port) {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                outcome.error = Some(format!("connect: {e}"));
                outcome.latency = started.elapsed();
                return outcome;
            }
        }
    }
    let Some((stream, reader)) = conn.as_mut() else {
        return outcome;
    };
    let sent = write!(stream, "GET {path} HTTP/1.1\r\nhost: backend\r\n\r\n");
    let reply = match sent {
        Ok(()) => read_message(reader),
        Err(e) => {
            outcome.error = Some(format!("write: {e}"));
            None
        }
    };
    outcome.latency = started.elapsed();
    let Some(reply) = reply else {
        outcome
            .error
            .get_or_insert_with(|| "no response".to_string());
        *conn = None;
        return outcome;
    };
    outcome.status = reply
        .start_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    outcome.request_id = reply.header("x-request-id").map(str::to_string);
    if reply
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    {
        *conn = None;
    }
    outcome.body = reply.body;
    outcome
}

/// Latency percentile (0.0..=1.0) of the given outcomes.
pub fn percentile(outcomes: &[&Outcome], p: f64) -> Duration {
    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    latencies.sort();
    let at = ((latencies.len() as f64 - 1.0) * p).round() as usize;
    latencies.get(at).copied().unwrap_or_default()
}
