//! lhttp's `upstream:` calls: HTTP requests made from inside the reactor, non-blocking like
//! every other socket, and only to URLs under a prefix the operator allowed
//! (`--lhttp-upstream`), so the door is never an open proxy. Each call has a deadline; at most
//! `--upstream-connections` run at once and `--upstream-queue` wait or run, of which one client
//! connection may have only its share ([`UpstreamOptions::per_connection`]). As in lhttp, an
//! `upstream:` call's answer is logged and nothing goes back to the client; a call made with
//! [`Upstream::submit_for_answer`] (an lhttp processor) reads the whole answer, bounded, and
//! its caller's function turns it (or why there is none) into bytes for the client, which the
//! reactor collects with [`Upstream::take_deliveries`].

pub mod request;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use slab::Slab;

use request::{Answer, AnswerError, AnswerProgress, AnswerReader, HttpUrl, UrlError};

/// How much of an answer is read before the call is ended anyway: only its status is used.
const MAX_ANSWER: usize = 1 << 20;

/// What the operator allowed, with the address each prefix's host resolved to at start.
struct Allowed {
    prefix: HttpUrl,
    addr: SocketAddr,
}

/// The limits and allow-list, from the command line.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// URL prefixes calls may go to; empty: no calls at all.
    pub allow: Vec<String>,
    pub timeout: Duration,
    /// Calls running at once.
    pub connections: usize,
    /// Calls waiting or running; past it a call is refused.
    pub queue: usize,
}

impl UpstreamOptions {
    /// Calls one client connection may have waiting or running: half of `connections` (at
    /// least one), so a single client can neither fill the queue nor hold every running slot
    /// while others wait behind it.
    pub fn per_connection(&self) -> usize {
        (self.connections / 2).max(1)
    }
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            allow: Vec::new(),
            timeout: Duration::from_secs(10),
            connections: 16,
            queue: 256,
        }
    }
}

/// Why a call was not made; the client is told in an lhttp error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Disabled,
    BadMethod,
    BadUrl(UrlError),
    NotAllowed,
    QueueFull,
    /// The connection has its share of calls waiting or running.
    ConnectionShareFull,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Disabled => f.write_str("upstream forwarding is not enabled on this server"),
            Refusal::BadMethod => f.write_str("upstream method is not an HTTP method"),
            Refusal::BadUrl(e) => write!(f, "bad upstream URL: {e}"),
            Refusal::NotAllowed => f.write_str("upstream URL is not allowed on this server"),
            Refusal::QueueFull => f.write_str("too many upstream calls waiting; try again later"),
            Refusal::ConnectionShareFull => {
                f.write_str("too many upstream calls from this connection; wait for one to end")
            }
        }
    }
}

/// Why a call that was to be answered has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Not answered within `--upstream-timeout` (queueing included).
    TimedOut(Duration),
    /// The connection failed (refused, reset, ...).
    Failed(String),
    /// The answer could not be read, or was too large.
    Answer(AnswerError),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::TimedOut(after) => write!(f, "no answer within {} s", after.as_secs_f64()),
            CallError::Failed(why) => write!(f, "call failed: {why}"),
            CallError::Answer(e) => e.fmt(f),
        }
    }
}

/// Turns a call's answer, or why there is none, into bytes for the client that asked (None:
/// nothing to send).
pub type OnAnswer = Box<dyn FnOnce(Result<Answer, CallError>) -> Option<Vec<u8>>>;

/// Bytes for connection `owner` (its slab key), from an answered call.
pub struct Delivery {
    pub owner: usize,
    pub bytes: Vec<u8>,
}

/// A call whose answer goes back: the reader and what to make of it.
struct Wanted {
    reader: AnswerReader,
    on_answer: OnAnswer,
}

struct Call {
    /// The connection (its slab key) that asked for the call, whose share it counts against.
    owner: usize,
    /// Set when the answer goes back to the owner; else it is only logged.
    wanted: Option<Wanted>,
    addr: SocketAddr,
    request: Vec<u8>,
    /// `METHOD URL`, for the log.
    label: String,
    /// The deadline runs from when the call was accepted, queueing included.
    deadline: Instant,
    started: Instant,
}

struct Running {
    call: Call,
    stream: TcpStream,
    connected: bool,
    written: usize,
    /// The start of the answer, up to its status line.
    head: Vec<u8>,
    received: usize,
}

pub struct Upstream {
    allowed: Vec<Allowed>,
    options: UpstreamOptions,
    waiting: VecDeque<Call>,
    running: Slab<Running>,
    /// Calls waiting or running per owner; owners with none are not kept.
    per_owner: HashMap<usize, usize>,
    /// Answers for their connections, collected by the reactor each turn.
    deliveries: Vec<Delivery>,
}

enum Progress {
    Pending,
    /// The peer closed (a call whose answer is only logged).
    Done,
    /// A wanted answer is whole.
    Answered(Answer),
    Failed(CallError),
}

impl Upstream {
    /// Reads the allow-list, resolving each prefix's host once, here at start-up: the reactor
    /// never waits on DNS.
    pub fn new(options: UpstreamOptions) -> Result<Upstream, String> {
        let mut allowed = Vec::new();
        for text in &options.allow {
            let prefix =
                HttpUrl::parse(text).map_err(|e| format!("--lhttp-upstream {text}: {e}"))?;
            let host = prefix.host.trim_start_matches('[').trim_end_matches(']');
            let addr = (host, prefix.port)
                .to_socket_addrs()
                .map_err(|e| format!("--lhttp-upstream {text}: {e}"))?
                .next()
                .ok_or_else(|| format!("--lhttp-upstream {text}: host has no address"))?;
            allowed.push(Allowed { prefix, addr });
        }
        Ok(Upstream {
            allowed,
            options,
            waiting: VecDeque::new(),
            running: Slab::new(),
            per_owner: HashMap::new(),
            deliveries: Vec::new(),
        })
    }

    /// Accepts a call from connection `owner` (its slab key), to be started by
    /// [`Upstream::start`]. A connection that closes leaves its calls to finish or time out;
    /// until they do, they still count against its slot's share, so a new connection in that
    /// slot may briefly get less than a full share (never more).
    pub fn submit(
        &mut self,
        owner: usize,
        method: &[u8],
        url: &[u8],
        headers: &[(Vec<u8>, Vec<u8>)],
        body: Option<&[u8]>,
        now: Instant,
    ) -> Result<(), Refusal> {
        self.accept(owner, method, url, headers, body, None, now)
    }

    /// Accepts a call whose answer goes back to connection `owner`: read whole, up to
    /// `max_answer` bytes of body, then given to `on_answer`, whose bytes (if any) are
    /// delivered to `owner`; so is what it makes of a failure or a timeout. The calls of a
    /// connection that closes are dropped ([`Upstream::forget_owner`]).
    #[allow(clippy::too_many_arguments)]
    pub fn submit_for_answer(
        &mut self,
        owner: usize,
        url: &[u8],
        headers: &[(Vec<u8>, Vec<u8>)],
        body: &[u8],
        max_answer: usize,
        on_answer: OnAnswer,
        now: Instant,
    ) -> Result<(), Refusal> {
        let wanted = Wanted {
            reader: AnswerReader::new(max_answer),
            on_answer,
        };
        self.accept(owner, b"POST", url, headers, Some(body), Some(wanted), now)
    }

    /// Answers collected since the last call, for the reactor to hand to their connections.
    pub fn take_deliveries(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.deliveries)
    }

    /// Connection `owner` closed: its calls whose answer would go back to it are dropped (its
    /// slot may soon be another connection's). Its other calls go on.
    pub fn forget_owner(&mut self, owner: usize, registry: &Registry) {
        let mut dropped = 0;
        self.waiting.retain(|call| {
            let keep = call.owner != owner || call.wanted.is_none();
            dropped += usize::from(!keep);
            keep
        });
        let slots: Vec<usize> = self
            .running
            .iter()
            .filter(|(_, r)| r.call.owner == owner && r.call.wanted.is_some())
            .map(|(slot, _)| slot)
            .collect();
        for slot in slots {
            finish(self.running.remove(slot), registry);
            dropped += 1;
        }
        for _ in 0..dropped {
            self.release(owner);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn accept(
        &mut self,
        owner: usize,
        method: &[u8],
        url: &[u8],
        headers: &[(Vec<u8>, Vec<u8>)],
        body: Option<&[u8]>,
        wanted: Option<Wanted>,
        now: Instant,
    ) -> Result<(), Refusal> {
        if self.allowed.is_empty() {
            return Err(Refusal::Disabled);
        }
        if !request::is_token(method) {
            return Err(Refusal::BadMethod);
        }
        let text = std::str::from_utf8(url).map_err(|_| Refusal::BadUrl(UrlError::BadCharacter))?;
        let url = HttpUrl::parse(text).map_err(Refusal::BadUrl)?;
        let allowed = self
            .allowed
            .iter()
            .find(|a| url.is_under(&a.prefix))
            .ok_or(Refusal::NotAllowed)?;
        let owned = self.per_owner.get(&owner).copied().unwrap_or(0);
        if owned >= self.options.per_connection() {
            return Err(Refusal::ConnectionShareFull);
        }
        if self.waiting.len() + self.running.len() >= self.options.queue {
            return Err(Refusal::QueueFull);
        }
        *self.per_owner.entry(owner).or_insert(0) += 1;
        self.waiting.push_back(Call {
            owner,
            wanted,
            addr: allowed.addr,
            request: request::encode_request(method, &url, headers, body),
            label: format!("{} {text}", String::from_utf8_lossy(method)),
            deadline: now + self.options.timeout,
            started: now,
        });
        Ok(())
    }

    /// Starts waiting calls while fewer than the limit run. `token` names a call's socket.
    pub fn start(&mut self, registry: &Registry, token: impl Fn(usize) -> Token) {
        while self.running.len() < self.options.connections {
            let Some(call) = self.waiting.pop_front() else {
                return;
            };
            let mut stream = match TcpStream::connect(call.addr) {
                Ok(stream) => stream,
                Err(e) => {
                    warn!("upstream {}: {e}", call.label);
                    self.end(call, Err(CallError::Failed(e.to_string())));
                    continue;
                }
            };
            let entry = self.running.vacant_entry();
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = registry.register(&mut stream, token(entry.key()), interest) {
                warn!("upstream {}: {e}", call.label);
                self.end(call, Err(CallError::Failed(e.to_string())));
                continue;
            }
            entry.insert(Running {
                call,
                stream,
                connected: false,
                written: 0,
                head: Vec::new(),
                received: 0,
            });
        }
    }

    /// The socket of call `slot` is ready.
    pub fn on_event(&mut self, slot: usize, registry: &Registry, now: Instant) {
        let Some(running) = self.running.get_mut(slot) else {
            return;
        };
        match running.advance() {
            Progress::Pending => {}
            Progress::Done => {
                let running = self.running.remove(slot);
                self.release(running.call.owner);
                let elapsed = now.duration_since(running.call.started);
                match request::response_status(&running.head) {
                    request::AnswerHead::Status(status) => info!(
                        "upstream {} answered {status} ({} bytes) in {} ms",
                        running.call.label,
                        running.received,
                        elapsed.as_millis()
                    ),
                    _ => warn!("upstream {}: no HTTP answer", running.call.label),
                }
                finish(running, registry);
            }
            Progress::Answered(answer) => {
                let mut running = self.running.remove(slot);
                let elapsed = now.duration_since(running.call.started);
                info!(
                    "upstream {} answered {} ({} bytes) in {} ms",
                    running.call.label,
                    answer.status,
                    running.received,
                    elapsed.as_millis()
                );
                let _ = registry.deregister(&mut running.stream);
                self.end(running.call, Ok(answer));
            }
            Progress::Failed(why) => {
                let mut running = self.running.remove(slot);
                warn!("upstream {}: {why}", running.call.label);
                let _ = registry.deregister(&mut running.stream);
                self.end(running.call, Err(why));
            }
        }
    }

    /// The earliest deadline of a call, waiting or running: the reactor wakes for it, so a
    /// call ends at its timeout, not at the once-a-second sweep after it.
    pub fn next_deadline(&self) -> Option<Instant> {
        // Waiting calls queue in the order they came, all with the same timeout.
        let waiting = self.waiting.front().map(|call| call.deadline);
        let running = self.running.iter().map(|(_, r)| r.call.deadline).min();
        waiting.into_iter().chain(running).min()
    }

    /// Ends the calls whose deadline passed, waiting or running.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let timeout = self.options.timeout.as_secs_f64();
        let (late, waiting): (VecDeque<Call>, VecDeque<Call>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|call| call.deadline <= now);
        self.waiting = waiting;
        for call in late {
            warn!(
                "upstream {}: timed out after {timeout} s (queued)",
                call.label
            );
            self.end(call, Err(CallError::TimedOut(self.options.timeout)));
        }
        let late: Vec<usize> = self
            .running
            .iter()
            .filter(|(_, r)| r.call.deadline <= now)
            .map(|(slot, _)| slot)
            .collect();
        for slot in late {
            let mut running = self.running.remove(slot);
            if running.call.wanted.is_some() {
                warn!(
                    "upstream {}: timed out after {timeout} s",
                    running.call.label
                );
                let _ = registry.deregister(&mut running.stream);
                self.end(running.call, Err(CallError::TimedOut(self.options.timeout)));
                continue;
            }
            self.release(running.call.owner);
            match request::response_status(&running.head) {
                // Answered, but the server kept the connection open past the deadline.
                request::AnswerHead::Status(status) => info!(
                    "upstream {} answered {status} ({} bytes, connection held open)",
                    running.call.label, running.received
                ),
                _ => warn!(
                    "upstream {}: timed out after {timeout} s",
                    running.call.label
                ),
            }
            finish(running, registry);
        }
    }
}

impl Upstream {
    /// A call has ended: its owner's share is freed, and a wanted answer (or why there is
    /// none) is made into a delivery.
    fn end(&mut self, mut call: Call, outcome: Result<Answer, CallError>) {
        self.release(call.owner);
        if let Some(wanted) = call.wanted.take() {
            if let Some(bytes) = (wanted.on_answer)(outcome) {
                self.deliveries.push(Delivery {
                    owner: call.owner,
                    bytes,
                });
            }
        }
    }

    /// One of `owner`'s calls has ended (or was never started).
    fn release(&mut self, owner: usize) {
        if let Some(count) = self.per_owner.get_mut(&owner) {
            *count -= 1;
            if *count == 0 {
                self.per_owner.remove(&owner);
            }
        }
    }
}

fn finish(mut running: Running, registry: &Registry) {
    let _ = registry.deregister(&mut running.stream);
}

impl Running {
    /// Connects, writes what is left of the request, reads what has arrived. Edge-triggered:
    /// goes until the socket would block.
    fn advance(&mut self) -> Progress {
        if !self.connected {
            match self.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return failed(e.to_string()),
            }
            match self.stream.peer_addr() {
                Ok(_) => self.connected = true,
                Err(e) if e.kind() == ErrorKind::NotConnected => return Progress::Pending,
                Err(e) => return failed(e.to_string()),
            }
        }
        while self.written < self.call.request.len() {
            match self.stream.write(&self.call.request[self.written..]) {
                Ok(0) => return failed("connection closed".into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return failed(e.to_string()),
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return match self.call.wanted.as_mut() {
                        Some(wanted) => match wanted.reader.finish() {
                            Ok(answer) => Progress::Answered(answer),
                            Err(e) => Progress::Failed(CallError::Answer(e)),
                        },
                        None => Progress::Done,
                    };
                }
                Ok(n) if self.call.wanted.is_some() => {
                    self.received += n;
                    let wanted = self.call.wanted.as_mut().expect("checked");
                    match wanted.reader.feed(&buf[..n]) {
                        Ok(AnswerProgress::More) => {}
                        Ok(AnswerProgress::Done(answer)) => return Progress::Answered(answer),
                        Err(e) => return Progress::Failed(CallError::Answer(e)),
                    }
                }
                Ok(n) => {
                    self.received += n;
                    if self.head.len() < 1024 {
                        let keep = n.min(1024 - self.head.len());
                        self.head.extend_from_slice(&buf[..keep]);
                    }
                    if self.received >= MAX_ANSWER {
                        return Progress::Done;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return failed(e.to_string()),
            }
        }
    }
}

fn failed(why: String) -> Progress {
    Progress::Failed(CallError::Failed(why))
}
