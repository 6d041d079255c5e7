//! The audit sink Envoy's `audit_sink` cluster points at: a small HTTP/1.1
//! server over std::net that records every request (the filter's batches)
//! and answers as the test chooses: a status (200 by default), late, a
//! scripted sequence, or not at all (down: connection refused).

use super::http1::{read_message, reason};
use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// One request the sink received, and the status it answered with.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub method: String,
    pub path: String,
    /// Lower-cased names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub answered: u16,
    /// How long the sink waited before answering.
    pub delay_ms: u64,
    /// When the sink answered.
    pub at: Instant,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }

    /// The body's JSON lines, each kept with its exact bytes (the chain
    /// hashes those, not a re-serialisation).
    pub fn records(&self) -> Vec<Record> {
        let text = String::from_utf8(self.body.clone())
            .unwrap_or_else(|e| panic!("batch body is not UTF-8: {e}"));
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|line| Record {
                json: serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("batch line is not JSON ({e}): {line}")),
                line: line.to_string(),
            })
            .collect()
    }
}

/// A delivered record: its exact line and its parsed form.
#[derive(Clone, Debug)]
pub struct Record {
    pub line: String,
    pub json: serde_json::Value,
}

impl Record {
    /// The string at a `/`-separated JSON pointer, if any.
    pub fn str(&self, pointer: &str) -> Option<&str> {
        self.json.pointer(pointer).and_then(|v| v.as_str())
    }

    pub fn u64(&self, pointer: &str) -> Option<u64> {
        self.json.pointer(pointer).and_then(|v| v.as_u64())
    }

    pub fn flags(&self) -> Vec<String> {
        self.json
            .pointer("/response/flags")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// How the sink answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// At once, with this status.
    Status(u16),
    /// After `delay_ms`, with `status`: a sink slower than the filter's
    /// `sink.timeout_ms` is still sent the batch but its answer comes too late.
    After { delay_ms: u64, status: u16 },
}

struct State {
    deliveries: Mutex<Vec<Delivery>>,
    /// Answers for the next requests, one each, before `default` applies again.
    script: Mutex<VecDeque<Answer>>,
    default: Mutex<Answer>,
    up: AtomicBool,
    /// Open connections, so going down can cut them.
    conns: Mutex<Vec<TcpStream>>,
}

impl State {
    fn next_answer(&self) -> Answer {
        lock(&self.script)
            .pop_front()
            .unwrap_or_else(|| *lock(&self.default))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The audit sink. Its behaviour can be switched while Envoy runs: status,
/// slowness, a script of answers, or down altogether (connection refused).
pub struct Sink {
    port: u16,
    state: Arc<State>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("sink bind: {e}"));
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("sink: {e}"));
        let state = Arc::new(State {
            deliveries: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Answer::Status(200)),
            up: AtomicBool::new(true),
            conns: Mutex::new(Vec::new()),
        });
        let acceptor = accept_loop(listener, Arc::clone(&state));
        Sink {
            port,
            state,
            acceptor: Mutex::new(Some(acceptor)),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The status every following request is answered with.
    pub fn answer_with(&self, status: u16) {
        *lock(&self.state.default) = Answer::Status(status);
    }

    /// Every following request is answered 200, `delay_ms` late.
    pub fn answer_slowly(&self, delay_ms: u64) {
        *lock(&self.state.default) = Answer::After {
            delay_ms,
            status: 200,
        };
    }

    /// The next requests are answered as scripted, one answer each, in
    /// order; then the default answer applies again.
    pub fn script(&self, answers: &[Answer]) {
        lock(&self.state.script).extend(answers.iter().copied());
    }

    /// Goes down: stops listening (new connections are refused) and cuts
    /// the open ones. A request already read is left unanswered and is not
    /// recorded. Returns once the port is closed.
    pub fn go_down(&self) {
        self.state.up.store(false, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag and closes the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = lock(&self.acceptor).take() {
            let _ = acceptor.join();
        }
        for conn in lock(&self.state.conns).drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    pub fn come_back(&self) {
        let listener = super::wait_for(Duration::from_secs(5), || {
            TcpListener::bind(("127.0.0.1", self.port)).ok()
        })
        .unwrap_or_else(|| panic!("sink cannot listen on port {} again", self.port));
        self.state.up.store(true, Ordering::SeqCst);
        *lock(&self.acceptor) = Some(accept_loop(listener, Arc::clone(&self.state)));
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.state.deliveries).clone()
    }

    /// Records of the batches the sink acknowledged, in arrival order.
    pub fn records(&self) -> Vec<Record> {
        self.deliveries()
            .iter()
            .filter(|d| d.accepted())
            .flat_map(Delivery::records)
            .collect()
    }

    /// Acknowledged `request` and `loss` records, in arrival order: what
    /// was audited, without the seals and close records that vouch for it.
    pub fn audit_records(&self) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|r| !matches!(r.str("/kind"), Some("seal" | "close")))
            .collect()
    }

    /// Waits (bounded) until acknowledged batches hold at least `n` request
    /// or loss records, and returns those ([`Sink::audit_records`]).
    pub fn wait_for_records(&self, n: usize, timeout: Duration) -> Vec<Record> {
        super::wait_for(timeout, || Some(self.audit_records()).filter(|r| r.len() >= n)).unwrap_or_else(|| {
            panic!(
                "sink holds {} acknowledged records after {timeout:?}, wanted {n}; deliveries: {:#?}",
                self.audit_records().len(),
                self.deliveries()
                    .iter()
                    .map(|d| format!("{} {} -> {}: {}", d.method, d.path, d.answered, String::from_utf8_lossy(&d.body)))
                    .collect::<Vec<_>>()
            )
        })
    }

    /// Waits (bounded) until at least `n` requests arrived, whatever the answer.
    pub fn wait_for_deliveries(&self, n: usize, timeout: Duration) -> Vec<Delivery> {
        super::wait_for(timeout, || Some(self.deliveries()).filter(|d| d.len() >= n))
            .unwrap_or_else(|| {
                panic!(
                    "sink received {} requests after {timeout:?}, wanted {n}",
                    self.deliveries().len()
                )
            })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if thread::panicking() {
            let deliveries = self.deliveries();
            eprintln!("\n===== audit sink: {} requests =====", deliveries.len());
            for d in deliveries.iter().take(20) {
                eprintln!(
                    "{} {} -> {}\n{}",
                    d.method,
                    d.path,
                    d.answered,
                    String::from_utf8_lossy(&d.body)
                );
            }
        }
        self.go_down();
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) -> JoinHandle<()> {
    thread::spawn(move || {
        for conn in listener.incoming() {
            if !state.up.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = conn else { continue };
            if let Ok(clone) = stream.try_clone() {
                lock(&state.conns).push(clone);
            }
            let state = Arc::clone(&state);
            // A connection ends when Envoy closes it, is killed, or the sink goes down.
            thread::spawn(move || serve(stream, &state));
        }
    })
}

fn serve(stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(message) = read_message(&mut reader) {
        let answer = state.next_answer();
        let (status, delay_ms) = match answer {
            Answer::Status(status) => (status, 0),
            Answer::After { delay_ms, status } => {
                thread::sleep(Duration::from_millis(delay_ms));
                (status, delay_ms)
            }
        };
        if !state.up.load(Ordering::SeqCst) {
            return;
        }
        let mut parts = message.start_line.split(' ');
        let (method, path) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        lock(&state.deliveries).push(Delivery {
            method,
            path,
            headers: message.headers,
            body: message.body,
            answered: status,
            delay_ms,
            at: Instant::now(),
        });
        let reply = format!(
            "HTTP/1.1 {status} {}\r\ncontent-length: 0\r\n\r\n",
            reason(status)
        );
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// The record of the request Envoy gave this x-request-id.
pub fn record_of<'a>(records: &'a [Record], request_id: &str) -> &'a Record {
    records
        .iter()
        .find(|r| r.str("/request_id") == Some(request_id))
        .unwrap_or_else(|| panic!("no record with request_id {request_id} among {records:#?}"))
}
