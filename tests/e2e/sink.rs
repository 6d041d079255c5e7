//! The audit sink Envoy's `audit_sink` cluster points at: a small HTTP/1.1
//! server over std::net that records every request (the filter's batches)
//! and answers with a status the test chooses (200 by default).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One request the sink received, and the status it answered with.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub method: String,
    pub path: String,
    /// Lower-cased names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub answered: u16,
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

struct State {
    deliveries: Mutex<Vec<Delivery>>,
    status: AtomicU16,
    stop: AtomicBool,
}

pub struct Sink {
    port: u16,
    state: Arc<State>,
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
            status: AtomicU16::new(200),
            stop: AtomicBool::new(false),
        });
        let shared = Arc::clone(&state);
        thread::spawn(move || {
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let state = Arc::clone(&shared);
                    // A connection ends when Envoy closes it or is killed.
                    thread::spawn(move || serve(stream, &state));
                }
            }
        });
        Sink { port, state }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The status every following request is answered with.
    pub fn answer_with(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records of the batches the sink acknowledged, in arrival order.
    pub fn records(&self) -> Vec<Record> {
        self.deliveries()
            .iter()
            .filter(|d| d.accepted())
            .flat_map(Delivery::records)
            .collect()
    }

    /// Waits (bounded) until acknowledged batches hold at least `n` records.
    pub fn wait_for_records(&self, n: usize, timeout: Duration) -> Vec<Record> {
        super::wait_for(timeout, || Some(self.records()).filter(|r| r.len() >= n)).unwrap_or_else(|| {
            panic!(
                "sink holds {} acknowledged records after {timeout:?}, wanted {n}; deliveries: {:#?}",
                self.records().len(),
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
        self.state.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(mut delivery) = read_request(&mut reader) {
        let status = state.status.load(Ordering::SeqCst);
        delivery.answered = status;
        state
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(delivery);
        let reply = format!(
            "HTTP/1.1 {status} {}\r\ncontent-length: 0\r\n\r\n",
            reason(status)
        );
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// One HTTP/1.1 request; `None` at end of stream or on anything malformed.
fn read_request(reader: &mut impl BufRead) -> Option<Delivery> {
    let request_line = read_line(reader)?;
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(reader)?
    } else {
        let len: usize = header("content-length").map_or(Some(0), |v| v.parse().ok())?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
        body
    };
    Some(Delivery {
        method,
        path,
        headers,
        body,
        answered: 0,
    })
}

fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = read_line(reader)?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            while !read_line(reader)?.is_empty() {}
            return Some(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        read_line(reader)?;
    }
}

fn read_line(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The record of the request Envoy gave this x-request-id.
pub fn record_of<'a>(records: &'a [Record], request_id: &str) -> &'a Record {
    records
        .iter()
        .find(|r| r.str("/request_id") == Some(request_id))
        .unwrap_or_else(|| panic!("no record with request_id {request_id} among {records:#?}"))
}
