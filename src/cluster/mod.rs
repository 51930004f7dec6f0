//! Joining other msgbus processes through NATS JetStream: one client connection inside the
//! reactor.
//!
//! A publish on any node goes into one stream (subjects `msgbus.<channel>`, the message's type,
//! sender and event name in headers, `Nats-Msg-Id` so a resend is stored once) and is
//! acknowledged to its client only after JetStream's PubAck, whose sequence is the message's
//! id. Every node, the publishing one too, delivers from its own consumer in sequence order, so
//! all subscribers on all nodes see one order. While NATS is away publishes are refused (503);
//! on rejoining, the consumer goes on from the last sequence this node took in: nothing is
//! lost or repeated. A sequence skipped is one the stream's limits dropped (a hole).
//!
//! On connecting, the node asks for JetStream (`$JS.API.INFO`; none is fatal at start-up),
//! makes the stream if it is missing or sets its limits if they differ, then makes an
//! ephemeral push consumer (heartbeats, flow control) from where it stands.
//!
//! Nothing here blocks the reactor: a host name is looked up on a short-lived helper thread
//! whose answer comes back through a `mio::Waker` (an address given as an IP is used as is),
//! and reading from NATS stops after `READ_BYTES_PER_TURN` so a flood of remote messages
//! cannot hold the loop; the reactor calls again next turn.

mod fetch;
pub mod jetstream;
pub mod proto;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::link::{self, Link, ReadEnd};
use crate::lookup::Resolver;
use log::{info, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token, Waker};

pub use fetch::Fetched;
use fetch::{Answer, Fetch, Fetches, Step as FetchStep};
pub use jetstream::StreamSpec;
use jetstream::{AckInfo, AnswerError, Start};
use proto::ServerOp;

/// The subject prefix of the stream: `msgbus.<channel>`.
pub const SUBJECT_PREFIX: &str = "msgbus";
/// The stream's name unless `--nats-stream` says otherwise.
pub const DEFAULT_STREAM: &str = "MSGBUS";
/// Bytes waiting to go to NATS before the connection is given up as stuck.
const MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// The largest message accepted from NATS.
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// A connection that has not finished its handshake by then is given up; so is a name lookup.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read from NATS per turn, as for every client connection.
const READ_BYTES_PER_TURN: usize = 256 * 1024;
/// Subscription ids: API answers, PubAcks, the consumer's deliveries.
const SID_ANSWERS: u64 = 1;
const SID_ACKS: u64 = 2;
const SID_DELIVERIES: u64 = 3;
/// Messages read back from the stream for clients resuming from before the window.
const SID_FETCHES: u64 = 4;
/// A JetStream API request not answered by then is tried again on a new connection (a
/// clustered JetStream answers nothing while it elects a leader).
const API_TIMEOUT: Duration = Duration::from_secs(2);
/// A publish not confirmed by then is refused (503): the client may try again.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The consumer sends a heartbeat every second; silent this long, it is made anew.
const SILENCE: Duration = Duration::from_secs(4);

/// A NATS server address with its credentials: `nats://[user:pass@|token@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsUrl {
    pub host_port: String,
    /// `tls://`: TLS from the start, checked against the system's CAs (or `$SSL_CERT_FILE`).
    pub tls: bool,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub token: Option<String>,
}

impl NatsUrl {
    /// The host alone (an IPv6 address without its brackets), as TLS checks it.
    pub fn host(&self) -> &str {
        let host = self
            .host_port
            .rsplit_once(':')
            .map_or(self.host_port.as_str(), |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }

    pub fn parse(text: &str) -> Option<NatsUrl> {
        let (tls, rest) = match text.strip_prefix("tls://") {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix("nats://").unwrap_or(text)),
        };
        let (auth, host) = match rest.rsplit_once('@') {
            Some((auth, host)) => (Some(auth), host),
            None => (None, rest),
        };
        let host = host.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return None;
        }
        let host_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_string()
        } else {
            format!("{host}:4222")
        };
        let (user, pass, token) = match auth.map(|a| a.split_once(':')) {
            None => (None, None, None),
            Some(Some((user, pass))) => (Some(user.to_string()), Some(pass.to_string()), None),
            Some(None) => (None, None, auth.map(str::to_string)),
        };
        Some(NatsUrl {
            host_port,
            tls,
            user,
            pass,
            token,
        })
    }
}

/// A message from the stream, under its stream sequence: every node, the publishing one too,
/// delivers these in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub channel: String,
    pub id: u64,
    pub content_type: String,
    pub sender: Option<String>,
    pub event: Option<String>,
    pub body: Vec<u8>,
    /// How long ago the stream stored it (by the NATS server's clock and this host's, never
    /// negative): a node rebuilding its window lets messages expire when the stream does.
    pub age: Duration,
}

/// Why a publish was not stored: NATS is away, or did not confirm in time. Nothing was
/// acknowledged; the client may try again (`Retry-After`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cluster unavailable: {}", self.0)
    }
}

/// The JetStream API requests that make a connection ready, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// `$JS.API.INFO`: is JetStream there? next: StreamInfo
    Account,
    /// `$JS.API.STREAM.INFO.<stream>`. next: Create | Update | Consumer
    StreamInfo,
    /// The stream was missing. next: Consumer
    Create,
    /// Its limits differed from the options. next: Consumer
    Update,
    /// An ephemeral push consumer from the next sequence this node needs. next: (Ready)
    Consumer,
}

enum State {
    /// Waiting to try again.
    Down { retry_at: Instant },
    /// The host name is being looked up on a helper thread (answer number `lookup`).
    Resolving { lookup: u64, since: Instant },
    /// TCP connect in progress, or waiting for INFO and the first PONG. next: Setup
    Connecting { sock: Link, since: Instant },
    /// Connected: setting the stream and the consumer up. next: Ready
    Setup {
        sock: Link,
        step: Step,
        since: Instant,
    },
    /// Publishing into the stream and delivering from the consumer. next: Setup (the consumer
    /// fell silent) | Down
    Ready { sock: Link },
}

/// What the reactor should carry out after the cluster connection handled an event.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Messages from the stream, in sequence order.
    pub deliveries: Vec<Remote>,
    /// Sequences the stream no longer held when this node came to them (first, last): its
    /// limits dropped them. Clients resuming from before them are told they may have missed
    /// messages.
    pub holes: Vec<(u64, u64)>,
    /// Sequences skipped as not msgbus's (no channel): resuming clients are told as for a
    /// hole, live ones need not be.
    pub skipped: Vec<(u64, u64)>,
    /// Older messages read back from the stream for resuming clients, by their tag.
    pub fetched: Vec<Fetched>,
    /// Publishes confirmed (the sequence is the message's id) or given up, by their tag.
    pub acks: Vec<(u64, Result<u64, Unavailable>)>,
    /// The stream's oldest sequence when this node first read it: nothing before it is known.
    pub first_seq: Option<u64>,
    /// The node has read everything the stream held when it joined the first time.
    pub caught_up: bool,
    /// Start-up cannot go on (no JetStream, a stream that cannot be made): the reason.
    pub fatal: Option<String>,
    /// Reading stopped at the per-turn cap: call `on_ready` again next turn.
    pub more: bool,
}

pub struct Cluster {
    urls: Vec<NatsUrl>,
    next_url: usize,
    node_name: String,
    spec: StreamSpec,
    state: State,
    input: Vec<u8>,
    output: Vec<u8>,
    backoff: Backoff,
    /// Unique to this process: in inbox names and in `Nats-Msg-Id`.
    nonce: String,
    resolver: Resolver,
    /// Turns through the addresses a name has, one per connection attempt.
    attempts: usize,
    /// The TLS client configuration, made at the first TLS connection.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Connections made: each has inboxes of its own, so a consumer of an earlier one that
    /// NATS still keeps delivers to nobody.
    generation: u64,
    /// Numbers the API requests: an answer to an earlier one is ignored.
    api_serial: u64,
    /// JetStream publishes waiting for their PubAck, by ticket (in the order sent): the tag
    /// the reactor gave and when it went.
    awaiting: BTreeMap<u64, (u64, Instant)>,
    next_ticket: u64,
    /// The consumer delivering to this node, once its creation is answered.
    consumer: Option<String>,
    /// The one before it on this connection, whose deliveries may still be on the way.
    retired: Option<String>,
    /// The last stream sequence taken in (deliveries, or the stream's start).
    delivered: u64,
    /// The stream was read once: `delivered` is where this node stands.
    started: bool,
    caught_up: bool,
    ever_ready: bool,
    /// When the consumer last showed life (a message or a heartbeat).
    last_heard: Instant,
    /// Clients' reads of older messages from the stream.
    fetches: Fetches,
    out: Outcome,
    /// Counted for /status.json and /metrics.
    pub forwarded: u64,
    pub received: u64,
    pub not_forwarded: u64,
    pub disconnects: u64,
}

impl Cluster {
    /// `waker` wakes the reactor when a name lookup is answered; the reactor then calls
    /// `on_resolved`.
    pub fn new(
        urls: Vec<NatsUrl>,
        node_name: String,
        spec: StreamSpec,
        now: Instant,
        waker: Arc<Waker>,
    ) -> Cluster {
        Cluster {
            resolver: Resolver::new(waker),
            attempts: 0,
            tls: None,
            urls,
            next_url: 0,
            node_name,
            spec,
            state: State::Down { retry_at: now },
            input: Vec::new(),
            output: Vec::new(),
            backoff: Backoff::default(),
            nonce: format!("{:016x}", crate::backoff::seed()),
            generation: 0,
            api_serial: 0,
            awaiting: BTreeMap::new(),
            next_ticket: 1,
            consumer: None,
            retired: None,
            delivered: 0,
            started: false,
            caught_up: false,
            ever_ready: false,
            last_heard: now,
            fetches: Fetches::default(),
            out: Outcome::default(),
            forwarded: 0,
            received: 0,
            not_forwarded: 0,
            disconnects: 0,
        }
    }

    /// Whether publishes can go to the stream now.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Ready { .. })
    }

    /// Whether the node has read the stream up to where it stood when the node joined: until
    /// then it does not take clients.
    pub fn has_caught_up(&self) -> bool {
        self.caught_up
    }

    /// What has happened since the last call, for the reactor to carry out.
    pub fn take_outcome(&mut self) -> Outcome {
        std::mem::take(&mut self.out)
    }

    fn inbox(&self) -> String {
        format!("_INBOX.{}{}", self.nonce, self.generation)
    }

    /// When the reactor should call `on_timer` next.
    pub fn deadline(&self) -> Option<Instant> {
        let state = match &self.state {
            State::Down { retry_at } => Some(*retry_at),
            State::Resolving { since, .. } | State::Connecting { since, .. } => {
                Some(*since + HANDSHAKE_TIMEOUT)
            }
            State::Setup { since, .. } => Some(*since + API_TIMEOUT),
            State::Ready { .. } => Some(self.last_heard + SILENCE),
        };
        let ack = self
            .awaiting
            .values()
            .next()
            .map(|(_, at)| *at + ACK_TIMEOUT);
        let fetch = self.fetches.oldest_ask().map(|at| at + API_TIMEOUT);
        [state, ack, fetch].into_iter().flatten().min()
    }

    /// Tries to connect when it is time; gives up a handshake that takes too long, publishes
    /// not confirmed in time, and a consumer that fell silent.
    pub fn on_timer(&mut self, registry: &Registry, token: Token, now: Instant) {
        while let Some((&ticket, &(tag, at))) = self.awaiting.iter().next() {
            if now < at + ACK_TIMEOUT {
                break;
            }
            self.awaiting.remove(&ticket);
            self.not_forwarded += 1;
            let why = Unavailable("no confirmation from JetStream in time".into());
            self.out.acks.push((tag, Err(why)));
        }
        let late: Vec<u64> = (self.fetches.active.iter())
            .filter(|(_, f)| now >= f.asked_at + API_TIMEOUT)
            .map(|(tag, _)| *tag)
            .collect();
        for tag in late {
            if let Some(mut fetch) = self.fetches.active.remove(&tag) {
                warn!("reading {} back from the stream timed out", fetch.channel);
                self.out.fetched.push(fetch.give_up());
            }
        }
        self.start_fetches(now);
        if let Err(e) = self.flush() {
            self.cut(&e.to_string(), registry, now);
        }
        match &self.state {
            State::Down { retry_at } if now >= *retry_at => self.connect(registry, token, now),
            State::Connecting { since, .. } if now >= *since + HANDSHAKE_TIMEOUT => {
                self.cut("handshake timed out", registry, now);
            }
            State::Setup { since, step, .. } if now >= *since + API_TIMEOUT => {
                let why = format!("JetStream did not answer ({step:?})");
                self.cut(&why, registry, now);
            }
            State::Resolving { since, .. } if now >= *since + HANDSHAKE_TIMEOUT => {
                self.cut("name lookup timed out", registry, now);
            }
            State::Ready { .. } if now >= self.last_heard + SILENCE => {
                // Its server may be gone (a JetStream cluster): a new one goes on from here.
                warn!("the JetStream consumer fell silent: making a new one");
                self.request_consumer(now);
                if let Err(e) = self.flush() {
                    self.cut(&e.to_string(), registry, now);
                }
            }
            _ => {}
        }
    }

    /// Starts the next attempt: at once for an IP address, else after a lookup off-thread.
    fn connect(&mut self, registry: &Registry, token: Token, now: Instant) {
        let url = self.urls[self.next_url % self.urls.len()].clone();
        self.next_url += 1;
        self.attempts += 1;
        if let Ok(addr) = url.host_port.parse::<SocketAddr>() {
            self.open(addr, registry, token, now);
            return;
        }
        if self.resolver.is_busy() {
            warn!("NATS {}: still looking up an earlier name", url.host_port);
            self.schedule_retry(now);
            return;
        }
        match self.resolver.start(url.host_port.clone()) {
            Ok(lookup) => {
                self.state = State::Resolving { lookup, since: now };
            }
            Err(e) => {
                warn!("NATS {}: cannot start a name lookup: {e}", url.host_port);
                self.schedule_retry(now);
            }
        }
    }

    /// A name lookup was answered (the reactor's waker fired): connect to one of the
    /// addresses, a different one on each attempt, or try again later.
    pub fn on_resolved(&mut self, registry: &Registry, token: Token, now: Instant) {
        while let Some((lookup, answer)) = self.resolver.take() {
            if !matches!(self.state, State::Resolving { lookup: l, .. } if l == lookup) {
                continue; // given up on already
            }
            let url = &self.urls[(self.next_url + self.urls.len() - 1) % self.urls.len()];
            match answer {
                Ok(addrs) if !addrs.is_empty() => {
                    let addr = addrs[self.attempts % addrs.len()];
                    self.open(addr, registry, token, now);
                }
                Ok(_) => {
                    warn!("NATS {}: no address", url.host_port);
                    self.schedule_retry(now);
                }
                Err(e) => {
                    warn!("NATS {}: cannot resolve: {e}", url.host_port);
                    self.schedule_retry(now);
                }
            }
        }
    }

    fn open(&mut self, addr: SocketAddr, registry: &Registry, token: Token, now: Instant) {
        match TcpStream::connect(addr) {
            Ok(mut sock) => {
                let _ = sock.set_nodelay(true);
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = registry.register(&mut sock, token, interest) {
                    warn!("NATS {addr}: {e}");
                    self.schedule_retry(now);
                    return;
                }
                self.input.clear();
                self.output.clear();
                self.state = State::Connecting {
                    sock: Link::plain(sock),
                    since: now,
                };
            }
            Err(e) => {
                warn!("NATS {addr}: {e}");
                self.schedule_retry(now);
            }
        }
    }

    /// Backoff doubling up to five seconds, plus up to half as much again at random, so nodes
    /// cut off together do not all come back in the same instant.
    fn schedule_retry(&mut self, now: Instant) {
        self.state = State::Down {
            retry_at: now + self.backoff.next_wait(),
        };
    }

    /// Drops the connection: every publish waiting for its PubAck is refused (the client was
    /// told nothing yet and may try again), and the consumer will go on from `delivered`.
    fn cut(&mut self, why: &str, registry: &Registry, now: Instant) {
        if let State::Connecting { sock, .. } | State::Setup { sock, .. } | State::Ready { sock } =
            &mut self.state
        {
            let _ = registry.deregister(&mut sock.sock);
        }
        if self.is_connected() {
            self.disconnects += 1;
            warn!("cut off from NATS: {why}; publishes are refused until it is back");
        } else {
            info!("NATS not reachable: {why}");
        }
        for (_, (tag, _)) in std::mem::take(&mut self.awaiting) {
            self.not_forwarded += 1;
            let refused = Unavailable(format!("cut off from NATS: {why}"));
            self.out.acks.push((tag, Err(refused)));
        }
        self.consumer = None;
        self.retired = None;
        self.out.fetched.extend(self.fetches.give_up_all());
        self.schedule_retry(now);
    }

    /// Start-up cannot go on: said once, and the connection is dropped.
    fn fail(&mut self, why: String, registry: &Registry, now: Instant) {
        self.cut(&why, registry, now);
        self.out.fatal = Some(why);
    }

    /// The socket is readable or writable.
    pub fn on_ready(&mut self, registry: &Registry, now: Instant) {
        let result = self.pump(now);
        if let Err(why) = result {
            match why {
                Failure::Cut(why) => self.cut(&why, registry, now),
                Failure::Fatal(why) => self.fail(why, registry, now),
            }
        }
    }

    fn pump(&mut self, now: Instant) -> Result<(), Failure> {
        let sock = match &mut self.state {
            State::Connecting { sock, .. } | State::Setup { sock, .. } | State::Ready { sock } => {
                sock
            }
            State::Down { .. } | State::Resolving { .. } => return Ok(()),
        };
        if let Ok(Some(e)) | Err(e) = sock.sock.take_error() {
            return Err(Failure::Cut(e.to_string()));
        }
        let (end, _) = sock.read_into(&mut self.input, READ_BYTES_PER_TURN);
        match end {
            ReadEnd::Failed(e) => return Err(Failure::Cut(e.to_string())),
            ReadEnd::Capped => self.out.more = true,
            ReadEnd::Drained | ReadEnd::Closed => {}
        }
        // What came before the close is handled first: a server that refuses a node says why
        // (`-ERR 'Authorization Violation'`) and then hangs up.
        self.handle_input(now)?;
        if matches!(end, ReadEnd::Closed) {
            return Err(Failure::Cut("connection closed".into()));
        }
        self.flush().map_err(|e| Failure::Cut(e.to_string()))
    }

    fn handle_input(&mut self, now: Instant) -> Result<(), Failure> {
        let mut used = 0;
        let result = loop {
            let parsed = match proto::parse(&self.input[used..], MAX_PAYLOAD) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => break Ok(()),
                Err(e) => break Err(Failure::Cut(e.to_string())),
            };
            used += parsed.1;
            if let Err(e) = self.on_op(parsed.0, now) {
                break Err(e);
            }
        };
        self.input.drain(..used);
        result
    }

    fn on_op(&mut self, op: ServerOp, now: Instant) -> Result<(), Failure> {
        match op {
            ServerOp::Info(info) if matches!(self.state, State::Connecting { .. }) => {
                let url = &self.urls[(self.next_url + self.urls.len() - 1) % self.urls.len()];
                // TLS when the URL says so or the server requires it: after INFO, before
                // anything else is said.
                if url.tls || info.contains("\"tls_required\":true") {
                    let host = url.host();
                    let config = match &self.tls {
                        Some(config) => Arc::clone(config),
                        None => link::client_config("TLS to NATS").map_err(Failure::Cut)?,
                    };
                    self.tls = Some(Arc::clone(&config));
                    if let State::Connecting { sock, .. } = &mut self.state {
                        sock.upgrade(config, host).map_err(Failure::Cut)?;
                    }
                }
                let url = &self.urls[(self.next_url + self.urls.len() - 1) % self.urls.len()];
                let connect = proto::encode_connect(
                    &self.node_name,
                    url.user.as_deref(),
                    url.pass.as_deref(),
                    url.token.as_deref(),
                );
                self.output.extend_from_slice(&connect);
                self.generation += 1;
                // API answers and PubAcks; deliveries get a subscription of their own, by
                // their exact subject (JetStream does not count a wildcard as interest).
                let answers = proto::encode_sub(&format!("{}.r.*", self.inbox()), SID_ANSWERS);
                let acks = proto::encode_sub(&format!("{}.a.*", self.inbox()), SID_ACKS);
                let fetches = proto::encode_sub(&format!("{}.g.*", self.inbox()), SID_FETCHES);
                self.output.extend_from_slice(&answers);
                self.output.extend_from_slice(&acks);
                self.output.extend_from_slice(&fetches);
                // The answering PONG says CONNECT and SUB were accepted.
                self.output.extend_from_slice(proto::PING);
            }
            ServerOp::Info(_) | ServerOp::Ok | ServerOp::Pong
                if !matches!(self.state, State::Connecting { .. }) => {}
            ServerOp::Info(_) | ServerOp::Ok => {}
            ServerOp::Ping => self.output.extend_from_slice(proto::PONG),
            ServerOp::Pong => {
                // Connected: JetStream is asked for next.
                self.go_to_setup(Step::Account, now);
                self.request("$JS.API.INFO", b"");
            }
            ServerOp::Err(text) => return Err(Failure::Cut(format!("NATS says: {text}"))),
            ServerOp::Msg {
                subject,
                sid,
                reply,
                headers,
                payload,
            } => self.on_msg(sid, &subject, reply.as_deref(), &headers, payload, now)?,
        }
        Ok(())
    }

    /// Moves to `step` of the set-up, keeping the socket.
    fn go_to_setup(&mut self, step: Step, now: Instant) {
        let state = std::mem::replace(&mut self.state, State::Down { retry_at: now });
        self.state = match state {
            State::Connecting { sock, .. } | State::Setup { sock, .. } | State::Ready { sock } => {
                State::Setup {
                    sock,
                    step,
                    since: now,
                }
            }
            other => other,
        };
    }

    /// Sends an API request whose answer comes to this connection's inbox.
    fn request(&mut self, subject: &str, body: &[u8]) {
        self.api_serial += 1;
        let reply = format!("{}.r.{}", self.inbox(), self.api_serial);
        self.output
            .extend_from_slice(&proto::encode_pub(subject, &reply, body));
    }

    /// Asks for a consumer from the next sequence this node needs.
    fn request_consumer(&mut self, now: Instant) {
        if let Some(old) = self.consumer.take() {
            let subject = format!("$JS.API.CONSUMER.DELETE.{}.{old}", self.spec.name);
            self.request(&subject, b"");
            self.retired = Some(old);
        }
        self.go_to_setup(Step::Consumer, now);
        let deliver = format!("{}.d.{}", self.inbox(), self.api_serial + 1);
        self.output
            .extend_from_slice(&proto::encode_unsub(SID_DELIVERIES));
        self.output
            .extend_from_slice(&proto::encode_sub(&deliver, SID_DELIVERIES));
        let start = if self.delivered == 0 {
            Start::All
        } else {
            Start::At(self.delivered + 1)
        };
        let filter = format!("{}.>", self.spec.prefix);
        let body = jetstream::encode_consumer(&self.spec.name, &deliver, &filter, start);
        let subject = format!("$JS.API.CONSUMER.CREATE.{}", self.spec.name);
        self.request(&subject, body.as_bytes());
    }

    fn on_msg(
        &mut self,
        sid: u64,
        subject: &str,
        reply: Option<&str>,
        headers: &[u8],
        payload: Vec<u8>,
        now: Instant,
    ) -> Result<(), Failure> {
        if let Some(ack) = reply.and_then(jetstream::parse_ack_reply) {
            return self.on_delivery(sid, subject, &ack, headers, payload, now);
        }
        let inbox = self.inbox();
        let Some(rest) = subject
            .strip_prefix(inbox.as_str())
            .and_then(|r| r.strip_prefix('.'))
        else {
            return Ok(()); // not for this connection
        };
        let status = jetstream::status(headers);
        if let Some(ticket) = rest.strip_prefix("a.") {
            let ticket: u64 = ticket.parse().unwrap_or(0);
            self.on_pub_ack(ticket, status, &payload);
        } else if let Some(tag) = rest.strip_prefix("g.") {
            if sid == SID_FETCHES {
                let tag: u64 = tag.parse().unwrap_or(0);
                self.on_fetch_answer(tag, status, headers, payload, now);
            }
        } else if let Some(serial) = rest.strip_prefix("r.") {
            if serial.parse() == Ok(self.api_serial) {
                return self.on_api_answer(status, &payload, now);
            }
        } else if rest.starts_with("d.") && status == Some(100) {
            // A heartbeat or a flow-control request: the consumer lives. Flow control, and a
            // heartbeat saying the consumer stalled, want an empty answer.
            self.last_heard = now;
            let stalled = proto::header(headers, "Nats-Consumer-Stalled").map(str::to_string);
            for to in reply.map(str::to_string).into_iter().chain(stalled) {
                if to.bytes().all(|b| b.is_ascii_graphic()) && !to.is_empty() && to.len() < 512 {
                    self.output
                        .extend_from_slice(&proto::encode_pub(&to, "", b""));
                }
            }
        }
        Ok(())
    }

    /// Reads a channel's messages after `after` and before `upto` back from the stream (at
    /// most `budget` bytes, the newest), for a client resuming from before this node's
    /// window. The answer comes in an outcome under `tag`; Err when it cannot start (NATS is
    /// away, too many wait): the window's own replay and notice then hold.
    #[allow(clippy::too_many_arguments)]
    pub fn fetch(
        &mut self,
        tag: u64,
        channel: &str,
        after: u64,
        upto: u64,
        budget: usize,
        registry: &Registry,
        now: Instant,
    ) -> Result<(), Fetched> {
        let mut fetch = Fetch::new(tag, channel.to_string(), after, upto, budget);
        if !self.is_connected() {
            return Err(fetch.give_up());
        }
        if let Err(mut fetch) = self.fetches.add(fetch) {
            return Err(fetch.give_up());
        }
        self.start_fetches(now);
        if let Err(e) = self.flush() {
            self.cut(&e.to_string(), registry, now);
        }
        Ok(())
    }

    /// Sends the first request of the fetches that may start now.
    fn start_fetches(&mut self, now: Instant) {
        if !self.is_connected() {
            return;
        }
        for (tag, channel, seq) in self.fetches.start_next(now) {
            self.ask_fetch(tag, &channel, seq);
        }
    }

    fn ask_fetch(&mut self, tag: u64, channel: &str, seq: u64) {
        let api = format!("$JS.API.DIRECT.GET.{}", self.spec.name);
        let subject = proto::subject_for(&self.spec.prefix, channel);
        let body = jetstream::encode_direct_get(seq, &subject);
        let reply = format!("{}.g.{tag}", self.inbox());
        self.output
            .extend_from_slice(&proto::encode_pub(&api, &reply, body.as_bytes()));
    }

    /// A message read back (or none there): the fetch goes on or is done.
    fn on_fetch_answer(
        &mut self,
        tag: u64,
        status: Option<u16>,
        headers: &[u8],
        payload: Vec<u8>,
        now: Instant,
    ) {
        let Some(fetch) = self.fetches.active.get_mut(&tag) else {
            return; // given up on already
        };
        let answer = match status {
            Some(404) => Answer::NoMore,
            Some(_) => Answer::Bad,
            None => match jetstream::direct_get_origin(headers) {
                Some((seq, subject)) => {
                    match decode(&self.spec.prefix, subject, seq, headers, payload) {
                        Some(remote) => Answer::Message(remote),
                        None => Answer::Bad,
                    }
                }
                None => Answer::Bad,
            },
        };
        match fetch.on_answer(answer, now) {
            FetchStep::Ask(seq) => {
                let channel = fetch.channel.clone();
                self.ask_fetch(tag, &channel, seq);
            }
            FetchStep::Done(fetched) => {
                self.fetches.active.remove(&tag);
                self.out.fetched.push(fetched);
                self.start_fetches(now);
            }
        }
    }

    fn on_pub_ack(&mut self, ticket: u64, status: Option<u16>, payload: &[u8]) {
        let Some((tag, _)) = self.awaiting.remove(&ticket) else {
            return; // given up on already
        };
        let answer = match status {
            Some(code) => Err(Unavailable(format!("JetStream answered {code}"))),
            None => match jetstream::parse_pub_ack(payload) {
                Ok(ack) if ack.stream == self.spec.name => Ok(ack.seq),
                Ok(ack) => Err(Unavailable(format!("stored in stream {}", ack.stream))),
                Err(e) => Err(Unavailable(e.to_string())),
            },
        };
        match &answer {
            Ok(_) => self.forwarded += 1,
            Err(e) => {
                self.not_forwarded += 1;
                warn!("publish not stored: {e}");
            }
        }
        self.out.acks.push((tag, answer));
    }

    fn on_api_answer(
        &mut self,
        status: Option<u16>,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), Failure> {
        let State::Setup { step, .. } = self.state else {
            return Ok(());
        };
        let fatal_at_start = |why: String, ever_ready: bool| {
            if ever_ready {
                Failure::Cut(why)
            } else {
                Failure::Fatal(why)
            }
        };
        if status == Some(503) {
            let why = match step {
                Step::Account => "NATS has no JetStream: start nats-server with -js (or a jetstream block in its configuration)".to_string(),
                _ => format!("JetStream did not answer {step:?} (no responders)"),
            };
            return Err(match step {
                Step::Account => fatal_at_start(why, self.ever_ready),
                _ => Failure::Cut(why),
            });
        }
        let api = |e: AnswerError, ever_ready: bool| match &e {
            AnswerError::Api(api) if api.is_transient() => Failure::Cut(e.to_string()),
            _ => fatal_at_start(e.to_string(), ever_ready),
        };
        match step {
            Step::Account => {
                jetstream::parse_account_info(payload).map_err(|e| api(e, self.ever_ready))?;
                self.go_to_setup(Step::StreamInfo, now);
                let subject = format!("$JS.API.STREAM.INFO.{}", self.spec.name);
                self.request(&subject, b"");
            }
            Step::StreamInfo | Step::Create | Step::Update => {
                let info = match jetstream::parse_stream_info(payload) {
                    Err(AnswerError::Api(e))
                        if step == Step::StreamInfo
                            && e.err_code == jetstream::ApiError::STREAM_NOT_FOUND =>
                    {
                        info!("creating JetStream stream {}", self.spec.name);
                        self.go_to_setup(Step::Create, now);
                        let subject = format!("$JS.API.STREAM.CREATE.{}", self.spec.name);
                        self.request(&subject, self.spec.encode_config().as_bytes());
                        return Ok(());
                    }
                    other => other.map_err(|e| api(e, self.ever_ready))?,
                };
                if step == Step::StreamInfo && !self.spec.matches(&info) {
                    info!("setting the limits of JetStream stream {}", self.spec.name);
                    self.go_to_setup(Step::Update, now);
                    let subject = format!("$JS.API.STREAM.UPDATE.{}", self.spec.name);
                    self.request(&subject, self.spec.encode_config().as_bytes());
                    return Ok(());
                }
                if !self.started {
                    // Nothing before the stream's oldest message is known here.
                    let first = info.first_seq.max(1);
                    self.delivered = first - 1;
                    self.started = true;
                    self.out.first_seq = Some(first);
                }
                self.request_consumer(now);
            }
            Step::Consumer => {
                let created =
                    jetstream::parse_consumer_created(payload).map_err(|e| api(e, false))?;
                let state = std::mem::replace(&mut self.state, State::Down { retry_at: now });
                let (State::Setup { sock, .. }
                | State::Ready { sock }
                | State::Connecting { sock, .. }) = state
                else {
                    self.state = state;
                    return Ok(());
                };
                self.state = State::Ready { sock };
                self.backoff.reset();
                self.last_heard = now;
                self.consumer = Some(created.name);
                let url = &self.urls[(self.next_url + self.urls.len() - 1) % self.urls.len()];
                if !self.ever_ready {
                    info!(
                        "joined the cluster through NATS JetStream at {} as {} (stream {}, from sequence {})",
                        url.host_port,
                        self.node_name,
                        self.spec.name,
                        self.delivered + 1
                    );
                } else {
                    info!(
                        "joined the cluster again at {}: from sequence {}",
                        url.host_port,
                        self.delivered + 1
                    );
                }
                self.ever_ready = true;
                if created.pending == 0 {
                    self.mark_caught_up();
                }
            }
        }
        Ok(())
    }

    fn mark_caught_up(&mut self) {
        if !self.caught_up {
            self.caught_up = true;
            self.out.caught_up = true;
            info!("caught up with the stream at sequence {}", self.delivered);
        }
    }

    /// A message from the consumer: taken if it is the consumer's and comes after what was
    /// taken; a sequence skipped is a hole the stream's limits made.
    #[allow(clippy::too_many_arguments)]
    fn on_delivery(
        &mut self,
        sid: u64,
        subject: &str,
        ack: &AckInfo,
        headers: &[u8],
        payload: Vec<u8>,
        now: Instant,
    ) -> Result<(), Failure> {
        // The consumer starts delivering before its creation is answered: until then anything
        // on the delivery subscription but the consumer just retired is the new one's.
        let ours = match &self.consumer {
            Some(name) => name == ack.consumer,
            None => self.retired.as_deref() != Some(ack.consumer),
        };
        if sid != SID_DELIVERIES || ack.stream != self.spec.name || !ours {
            return Ok(()); // an earlier consumer's
        }
        self.last_heard = now;
        let seq = ack.stream_seq;
        if seq <= self.delivered {
            return Ok(()); // had it
        }
        if seq > self.delivered + 1 {
            self.out.holes.push((self.delivered + 1, seq - 1));
        }
        self.delivered = seq;
        if ack.pending == 0 {
            self.mark_caught_up();
        }
        match decode(&self.spec.prefix, subject, seq, headers, payload) {
            Some(mut remote) => {
                // A timestamp of 0 says nothing (the age stays 0).
                if ack.timestamp > 0 {
                    let stored = std::time::UNIX_EPOCH + Duration::from_nanos(ack.timestamp);
                    remote.age = std::time::SystemTime::now()
                        .duration_since(stored)
                        .unwrap_or_default();
                }
                self.received += 1;
                self.out.deliveries.push(remote);
            }
            None => {
                // Not a message msgbus made: a hole for the channels, as good as dropped.
                warn!("message {seq} in the stream is not msgbus's: skipped");
                self.out.skipped.push((seq, seq));
            }
        }
        Ok(())
    }

    /// Puts a message into the stream; its PubAck comes back in an outcome under `tag`.
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &mut self,
        tag: u64,
        channel: &str,
        content_type: &str,
        sender: Option<&str>,
        event: Option<&str>,
        body: &[u8],
        registry: &Registry,
        now: Instant,
    ) -> Result<(), Unavailable> {
        if !self.is_connected() {
            self.not_forwarded += 1;
            return Err(Unavailable("not joined to NATS".into()));
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let msg_id = format!("{}-{ticket}", self.nonce);
        let mut headers = vec![
            ("Nats-Msg-Id", msg_id.as_str()),
            ("Nats-Expected-Stream", self.spec.name.as_str()),
            ("Msgbus-Type", content_type),
        ];
        if let Some(sender) = sender {
            headers.push(("Msgbus-From", sender));
        }
        if let Some(event) = event {
            headers.push(("Msgbus-Event", event));
        }
        let subject = proto::subject_for(&self.spec.prefix, channel);
        let reply = format!("{}.a.{ticket}", self.inbox());
        let hpub = proto::encode_hpub(&subject, &reply, &headers, body);
        if self.output.len() + hpub.len() > MAX_OUTPUT {
            self.not_forwarded += 1;
            self.cut("NATS is not taking messages fast enough", registry, now);
            return Err(Unavailable(
                "NATS is not taking messages fast enough".into(),
            ));
        }
        self.output.extend_from_slice(&hpub);
        self.awaiting.insert(ticket, (tag, now));
        if let Err(e) = self.flush() {
            self.cut(&e.to_string(), registry, now);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let sock = match &mut self.state {
            State::Connecting { sock, .. } | State::Setup { sock, .. } | State::Ready { sock } => {
                sock
            }
            State::Down { .. } | State::Resolving { .. } => return Ok(()),
        };
        sock.write_from(&mut self.output)
    }
}

/// How handling input went wrong.
enum Failure {
    /// Drop the connection and try again.
    Cut(String),
    /// Start-up cannot go on.
    Fatal(String),
}

/// A stream message as msgbus made it: its channel from the subject, its values from the
/// headers (checked again by the gate before the bus takes them).
fn decode(prefix: &str, subject: &str, seq: u64, headers: &[u8], body: Vec<u8>) -> Option<Remote> {
    let channel = proto::channel_for(prefix, subject)?;
    let content_type = proto::header(headers, "Msgbus-Type")
        .unwrap_or("application/octet-stream")
        .to_string();
    Some(Remote {
        channel,
        id: seq,
        content_type,
        sender: proto::header(headers, "Msgbus-From").map(Into::into),
        event: proto::header(headers, "Msgbus-Event").map(Into::into),
        body,
        age: Duration::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let cases = [
            ("nats://127.0.0.1:4222", "127.0.0.1:4222", None, None, None),
            ("127.0.0.1", "127.0.0.1:4222", None, None, None),
            ("nats://u:p@h:5000", "h:5000", Some("u"), Some("p"), None),
            ("nats://s3cret@h", "h:4222", None, None, Some("s3cret")),
            ("tls://u:p@h:5000", "h:5000", Some("u"), Some("p"), None),
        ];
        for (text, host_port, user, pass, token) in cases {
            let url = NatsUrl::parse(text).unwrap();
            assert_eq!(url.host_port, host_port, "{text}");
            assert_eq!(url.user.as_deref(), user, "{text}");
            assert_eq!(url.pass.as_deref(), pass, "{text}");
            assert_eq!(url.token.as_deref(), token, "{text}");
        }
        assert!(NatsUrl::parse("tls://h").unwrap().tls);
        assert!(!NatsUrl::parse("nats://h").unwrap().tls);
        assert_eq!(
            NatsUrl::parse("tls://127.0.0.1:4443").unwrap().host(),
            "127.0.0.1"
        );
        assert_eq!(NatsUrl::parse("nats://[::1]:4222").unwrap().host(), "::1");
        assert_eq!(NatsUrl::parse("nats://"), None);
        assert_eq!(NatsUrl::parse("nats://h/x"), None);
    }
}
