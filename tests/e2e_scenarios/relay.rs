//! A recording relay between Envoy's `audit_sink` cluster and the real
//! `mesh-audit sink`: it forwards each batch unchanged, reads the sink's
//! answer, and then relays it, or drops the connection instead, so that a
//! batch reaches the sink while its acknowledgement never reaches the
//! filter. Every exchange is kept for the test to assert on.

use crate::http::{read_message, Message};
use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sink's answer went back to Envoy.
    Relayed,
    /// The sink answered; Envoy got a closed connection instead.
    ReplyDropped,
    /// No sink to forward to (or it did not answer): the connection was closed.
    NoSink,
}

/// One batch Envoy sent, what the sink answered, and what Envoy got.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub request: Message,
    pub reply: Option<Message>,
    pub outcome: Outcome,
}

impl Exchange {
    /// The batch's `x-mesh-audit-seq` range, e.g. `1-3`.
    pub fn seq_range(&self) -> &str {
        self.request.header("x-mesh-audit-seq").unwrap_or_default()
    }

    pub fn reply_body(&self) -> String {
        self.reply
            .as_ref()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Plan {
    sink: Option<SocketAddr>,
    /// Answers still to drop.
    drop_replies: usize,
    /// After dropping an answer, forget the sink until `forward_to` names one.
    hold_after_drop: bool,
    exchanges: Vec<Exchange>,
}

pub struct Relay {
    port: u16,
    plan: Arc<Mutex<Plan>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    pub fn start(sink: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("relay: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("relay: {e}"))
            .port();
        let plan = Arc::new(Mutex::new(Plan {
            sink: Some(sink),
            ..Plan::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopping) = (Arc::clone(&plan), Arc::clone(&stop));
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    let plan = Arc::clone(&shared);
                    thread::spawn(move || serve(stream, &plan));
                }
            }
        });
        Relay { port, plan, stop }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the next `n` answers of the sink; with `hold`, the relay has no
    /// sink after the first drop until [`Relay::forward_to`] gives one.
    pub fn drop_replies(&self, n: usize, hold: bool) {
        let mut plan = self.plan();
        plan.drop_replies = n;
        plan.hold_after_drop = hold;
    }

    pub fn forward_to(&self, sink: SocketAddr) {
        self.plan().sink = Some(sink);
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.plan().exchanges.clone()
    }

    /// Waits (bounded) until an exchange satisfies `probe`.
    pub fn wait_for(&self, what: &str, probe: impl Fn(&[Exchange]) -> bool) -> Vec<Exchange> {
        crate::e2e::wait_for(Duration::from_secs(15), || {
            Some(self.exchanges()).filter(|x| probe(x))
        })
        .unwrap_or_else(|| panic!("relay never saw {what}: {:#?}", self.summary()))
    }

    /// One line per exchange: seq range, outcome, the sink's answer.
    pub fn summary(&self) -> Vec<String> {
        self.exchanges()
            .iter()
            .map(|x| {
                format!(
                    "{} {:?} {} {}",
                    x.seq_range(),
                    x.outcome,
                    x.reply.as_ref().map_or(0, Message::status),
                    x.reply_body().trim()
                )
            })
            .collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "\n===== relay exchanges =====\n{}",
                self.summary().join("\n")
            );
        }
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(downstream: TcpStream, plan: &Mutex<Plan>) {
    let _ = downstream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = downstream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(downstream);
    while let Some(request) = read_message(&mut reader) {
        let sink = plan.lock().unwrap_or_else(|p| p.into_inner()).sink;
        let reply = sink.and_then(|addr| exchange(addr, &request));
        let mut plan = plan.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = match &reply {
            None => Outcome::NoSink,
            Some(_) if plan.drop_replies > 0 => {
                plan.drop_replies -= 1;
                if plan.hold_after_drop {
                    plan.sink = None;
                }
                Outcome::ReplyDropped
            }
            Some(_) => Outcome::Relayed,
        };
        plan.exchanges.push(Exchange {
            request,
            reply: reply.clone(),
            outcome,
        });
        drop(plan);
        match (outcome, reply) {
            (Outcome::Relayed, Some(reply)) if writer.write_all(&reply.raw).is_ok() => {}
            _ => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Forwards one request on a fresh connection and reads the answer.
fn exchange(sink: SocketAddr, request: &Message) -> Option<Message> {
    let mut upstream = TcpStream::connect_timeout(&sink, Duration::from_secs(2)).ok()?;
    upstream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    upstream.write_all(&request.raw).ok()?;
    read_message(&mut BufReader::new(upstream))
}
