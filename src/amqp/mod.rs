//! eventsource-broker's AMQP side (`--amqp URL`): one AMQP 0-9-1 client connection inside the
//! reactor, consuming the broker's fanout exchange (`eventsource.fanout` by default) through a
//! queue of this node's own, and publishing the eventsource-broker door's events to it, as the
//! original's brokers did (`AMQPEvents.hs`).
//!
//! Both directions:
//! - a message on the exchange (`event.rs`: JSON `{"channel", "user", "data", "id"?, "name"?}`)
//!   goes through the gate to the door's bus channel of that api key and channel (named as the
//!   door names it, `Settings::names`), and is acknowledged only once the bus took it; a bad
//!   one is acknowledged, counted and logged; one RabbitMQ delivers again after the bus took it
//!   (the connection broke before the acknowledgement arrived) is acknowledged and skipped
//!   (`recent.rs`), so subscribers see each message once;
//! - a door publish (`POST /event`, `POST /socket/ID`) reaches this node's subscribers at once,
//!   as without AMQP, and is also sent to the exchange, marked with this process's node id in
//!   the `app_id` property; when it comes back through this node's queue it is acknowledged
//!   and not delivered again. Other nodes deliver it from their own queues.
//!
//! The queue is server-named, exclusive and auto-deleted (what the exchange routes while the
//! node is away is lost to it, as in the original), or with `--amqp-queue NAME` durable and
//! named, so that RabbitMQ keeps what arrives while the node is away or restarting (messages
//! published persistent survive a RabbitMQ restart too). `basic.qos` bounds the unacknowledged
//! messages in flight (`--amqp-prefetch`).
//!
//! Nothing here blocks the reactor: a host name is looked up on a short-lived helper thread
//! whose answer comes back through a `mio::Waker`, reading stops after `READ_BYTES_PER_TURN`,
//! the connection is retried with capped, jittered backoff, and a broker silent for two
//! heartbeat intervals is given up.

pub mod codec;
pub mod event;
pub mod recent;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::link::{self, Link, ReadEnd};
use crate::lookup::Resolver;
use log::{info, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token, Waker};
use rustls::ClientConfig;

use crate::doors::eventsource_broker::codec::ChannelNames;
use codec::{Close, DeclareFlags, FrameType, Method, Properties};
use recent::{Decision, Recent};

/// The exchange the original's brokers use.
pub const DEFAULT_EXCHANGE: &str = "eventsource.fanout";
pub const DEFAULT_PREFETCH: u16 = 256;
/// The one channel msgbus opens.
const CHANNEL: u16 = 1;
/// The largest frame msgbus asks for (the broker may ask for less).
const FRAME_MAX: u32 = 128 * 1024;
/// Bytes waiting to go to the broker before the connection is given up as stuck.
const MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// A connection that has not finished its handshake by then is given up; so is a name lookup.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The heartbeat asked for when the broker proposes none or a longer one.
const MAX_HEARTBEAT: u16 = 60;
/// Bytes read from the broker per turn, as for every client connection.
const READ_BYTES_PER_TURN: usize = 256 * 1024;
/// Bad messages are logged at most this often (the rest are counted, and the count logged).
const WARN_INTERVAL: Duration = Duration::from_secs(1);
/// A broker address with its credentials:
/// `amqp[s]://[user[:pass]@]host[:port][/vhost]` (user and password default to guest, the
/// vhost to `/`; the vhost, user and password percent-encoded, so `/%2f` is `/`).
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: String,
    pub vhost: String,
}

/// Never the password (a reload names changed options by comparing these).
impl std::fmt::Debug for AmqpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        let digest = self
            .pass
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        write!(
            f,
            "{scheme}://{}:<{digest:x}>@{}:{}/{:?}",
            self.user, self.host, self.port, self.vhost
        )
    }
}

impl AmqpUrl {
    pub fn parse(text: &str) -> Option<AmqpUrl> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("amqps://") {
            (true, rest)
        } else {
            (false, text.strip_prefix("amqp://")?)
        };
        let decode = |s: &str| {
            let bytes = crate::http::query::percent_decode(s.as_bytes(), false)?;
            String::from_utf8(bytes).ok()
        };
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, Some(path)),
            None => (rest, None),
        };
        let (auth, host_port) = match authority.rsplit_once('@') {
            Some((auth, host_port)) => (Some(auth), host_port),
            None => (None, authority),
        };
        let (user, pass) = match auth.map(|a| a.split_once(':').unwrap_or((a, ""))) {
            Some((user, pass)) => (decode(user)?, decode(pass)?),
            None => ("guest".to_string(), "guest".to_string()),
        };
        let default_port = if tls { 5671 } else { 5672 };
        let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => default_port,
                None => return None,
            };
            (host.to_string(), port)
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host.to_string(), port.parse().ok()?),
                None => (host_port.to_string(), default_port),
            }
        };
        // As pika and the original read it: no path, or `/` alone, is the default vhost.
        let vhost = match path {
            None | Some("") => "/".to_string(),
            Some(path) => decode(path)?,
        };
        if host.is_empty() || host.contains(['/', '?', '#']) || vhost.len() > 255 {
            return None;
        }
        Some(AmqpUrl {
            tls,
            host,
            port,
            user,
            pass,
            vhost,
        })
    }

    fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What `--amqp` and its companions ask for.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: AmqpUrl,
    pub exchange: String,
    /// A durable queue of this name, else a server-named exclusive one.
    pub queue: Option<String>,
    pub prefetch: u16,
    /// How the door names a key's channel on the bus (`--esb-native-channels`).
    pub names: ChannelNames,
}

impl Settings {
    /// What the configuration asks for, or None without `--amqp`.
    pub fn from_config(cfg: &crate::config::Config) -> Option<Settings> {
        Some(Settings {
            url: cfg.amqp.clone()?,
            exchange: cfg.amqp_exchange.clone(),
            queue: cfg.amqp_queue.clone(),
            prefetch: cfg.amqp_prefetch,
            names: ChannelNames::new(cfg.esb_native_channels),
        })
    }
}

/// A message from the exchange, whole.
#[derive(Debug)]
pub struct Delivery {
    pub tag: u64,
    pub body: Vec<u8>,
    /// This node published it (its `app_id` is ours): delivered here already.
    pub own: bool,
    /// Its body was larger than the limit, and was not kept.
    pub too_large: bool,
    /// Its `message_id`, else its body, hashed (`Recent::digest`).
    pub digest: u64,
    /// The connection it came on (a tag means nothing on another one).
    pub connection: u64,
}

/// What is needed to acknowledge a delivery once its body is gone: when the bus takes a message
/// only once the log has it, the acknowledgement waits for that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub tag: u64,
    pub digest: u64,
    pub connection: u64,
}

impl Delivery {
    pub fn taken(&self) -> Taken {
        Taken {
            tag: self.tag,
            digest: self.digest,
            connection: self.connection,
        }
    }
}

/// What the reactor should know after the connection handled an event.
#[derive(Debug, Default)]
pub struct Outcome {
    pub deliveries: Vec<Delivery>,
    /// Reading stopped at the per-turn cap: call `on_ready` again next turn.
    pub more: bool,
}

/// Counted for /metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Messages from the exchange delivered to the bus.
    pub received: u64,
    /// This node's own messages come back, acknowledged and not delivered again.
    pub own: u64,
    /// Messages acknowledged and dropped: not JSON, missing fields, bad values, too large,
    /// or refused by the gate or the bus.
    pub bad: u64,
    /// Door publishes sent to the exchange.
    pub published: u64,
    /// Door publishes made while the broker was away: local subscribers only.
    pub not_published: u64,
    pub disconnects: u64,
    /// Messages delivered again by the broker that the bus had taken: acknowledged, skipped.
    pub redelivered_skipped: u64,
}

/// Where the handshake is; each step waits for the broker's answer to what the last one sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Protocol header sent; next: connection.start.
    Start,
    /// start-ok sent; next: connection.tune.
    Tune,
    /// tune-ok and connection.open sent; next: open-ok.
    Open,
    /// channel.open sent; next: its open-ok.
    Channel,
    /// exchange.declare sent.
    Exchange,
    /// queue.declare sent; next: declare-ok with the queue's name.
    Queue,
    /// queue.bind sent.
    Bind,
    /// basic.qos sent.
    Qos,
    /// basic.consume sent; next: consume-ok, and then deliveries.
    Consume,
    /// Consuming and publishing.
    Ready,
}

enum State {
    /// Waiting to try again.
    Down { retry_at: Instant },
    /// The host name is being looked up on a helper thread (answer number `lookup`).
    Resolving { lookup: u64, since: Instant },
    /// Connected, or connecting, at handshake `step`.
    Up {
        pipe: Link,
        step: Step,
        since: Instant,
    },
}

/// A message being put together from its deliver, header and body frames.
struct Incoming {
    tag: u64,
    /// The broker delivered it before, on a connection that closed before it was acknowledged.
    redelivered: bool,
    /// From the content header: the publisher's id for it, if any.
    message_id: Option<String>,
    /// From the content header: the body's size, and whether it is this node's own.
    size: Option<u64>,
    own: bool,
    body: Vec<u8>,
    received: u64,
    too_large: bool,
}

pub struct Amqp {
    settings: Settings,
    /// This process's mark on what it publishes (`app_id`), random per process.
    node_id: String,
    tls: Option<Arc<ClientConfig>>,
    state: State,
    input: Vec<u8>,
    output: Vec<u8>,
    incoming: Option<Incoming>,
    /// The queue consumed, as the broker named it.
    queue_name: String,
    /// The broker's frame limit, once tuned.
    frame_max: u32,
    /// The heartbeat agreed on (zero: none), when the broker was last heard and last told.
    heartbeat: Duration,
    heard_at: Instant,
    told_at: Instant,
    /// The largest body taken from the exchange.
    max_message: usize,
    backoff: Backoff,
    resolver: Resolver,
    /// Turns through the addresses a name has, one per connection attempt.
    attempts: usize,
    /// Bad messages not logged since the last warning, and when that was.
    unlogged: u64,
    warned_at: Option<Instant>,
    /// The messages the bus took lately, to skip their redeliveries.
    recent: Recent,
    pub counters: Counters,
}

impl Amqp {
    /// `waker` wakes the reactor when a name lookup is answered; the reactor then calls
    /// `on_resolved`. Fails when amqps:// is asked for and no CA certificate can be read.
    pub fn new(
        settings: Settings,
        max_message: usize,
        now: Instant,
        waker: Arc<Waker>,
    ) -> Result<Amqp, String> {
        let tls = if settings.url.tls {
            Some(link::client_config("amqps")?)
        } else {
            None
        };
        Ok(Amqp {
            node_id: node_id(),
            settings,
            tls,
            state: State::Down { retry_at: now },
            input: Vec::new(),
            output: Vec::new(),
            incoming: None,
            queue_name: String::new(),
            frame_max: codec::MIN_FRAME_MAX,
            heartbeat: Duration::ZERO,
            heard_at: now,
            told_at: now,
            max_message,
            backoff: Backoff::default(),
            resolver: Resolver::new(waker),
            attempts: 0,
            unlogged: 0,
            warned_at: None,
            recent: Recent::new(recent::DEFAULT_CAPACITY),
            counters: Counters::default(),
        })
    }

    pub fn is_ready(&self) -> bool {
        matches!(
            self.state,
            State::Up {
                step: Step::Ready,
                ..
            }
        )
    }

    /// When the reactor should call `on_timer` next.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Down { retry_at } => Some(*retry_at),
            State::Resolving { since, .. } => Some(*since + HANDSHAKE_TIMEOUT),
            State::Up { step, since, .. } if *step != Step::Ready => {
                Some(*since + HANDSHAKE_TIMEOUT)
            }
            State::Up { .. } if self.heartbeat.is_zero() => None,
            State::Up { .. } => {
                Some((self.told_at + self.heartbeat / 2).min(self.heard_at + self.heartbeat * 2))
            }
        }
    }

    /// Connects when it is time; gives up a handshake that takes too long or a broker that
    /// has gone silent; sends heartbeats.
    pub fn on_timer(&mut self, registry: &Registry, token: Token, now: Instant) {
        match &self.state {
            State::Down { retry_at } if now >= *retry_at => self.connect(registry, token, now),
            State::Resolving { since, .. } if now >= *since + HANDSHAKE_TIMEOUT => {
                self.cut("name lookup timed out", registry, now);
            }
            State::Up { step, since, .. }
                if *step != Step::Ready && now >= *since + HANDSHAKE_TIMEOUT =>
            {
                self.cut("handshake timed out", registry, now);
            }
            State::Up { step, .. } if *step == Step::Ready && !self.heartbeat.is_zero() => {
                if now >= self.heard_at + self.heartbeat * 2 {
                    self.cut("no heartbeat from the broker", registry, now);
                } else if now >= self.told_at + self.heartbeat / 2 {
                    self.output.extend_from_slice(codec::HEARTBEAT);
                    self.told_at = now;
                    self.flush_or_cut(registry, now);
                }
            }
            _ => {}
        }
    }

    /// Starts the next attempt: at once for an IP address, else after a lookup off-thread.
    fn connect(&mut self, registry: &Registry, token: Token, now: Instant) {
        let host_port = self.settings.url.host_port();
        self.attempts += 1;
        if let Ok(addr) = host_port.parse::<SocketAddr>() {
            self.open(addr, registry, token, now);
            return;
        }
        if self.resolver.is_busy() {
            warn!("AMQP {host_port}: still looking up an earlier name");
            self.schedule_retry(now);
            return;
        }
        match self.resolver.start(host_port) {
            Ok(lookup) => {
                self.state = State::Resolving { lookup, since: now };
            }
            Err(e) => {
                warn!("AMQP: cannot start a name lookup: {e}");
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
            match answer {
                Ok(addrs) if !addrs.is_empty() => {
                    let addr = addrs[self.attempts % addrs.len()];
                    self.open(addr, registry, token, now);
                }
                Ok(_) => {
                    warn!("AMQP {}: no address", self.settings.url.host);
                    self.schedule_retry(now);
                }
                Err(e) => {
                    warn!("AMQP {}: cannot resolve: {e}", self.settings.url.host);
                    self.schedule_retry(now);
                }
            }
        }
    }

    fn open(&mut self, addr: SocketAddr, registry: &Registry, token: Token, now: Instant) {
        let mut sock = match TcpStream::connect(addr) {
            Ok(sock) => sock,
            Err(e) => {
                warn!("AMQP {addr}: {e}");
                self.schedule_retry(now);
                return;
            }
        };
        let _ = sock.set_nodelay(true);
        if let Err(e) = registry.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)
        {
            warn!("AMQP {addr}: {e}");
            self.schedule_retry(now);
            return;
        }
        let mut pipe = Link::plain(sock);
        if let Some(config) = &self.tls {
            if let Err(e) = pipe.upgrade(Arc::clone(config), &self.settings.url.host) {
                let _ = registry.deregister(&mut pipe.sock);
                warn!("AMQP {}: TLS: {e}", self.settings.url.host);
                self.schedule_retry(now);
                return;
            }
        }
        self.input.clear();
        self.output.clear();
        self.incoming = None;
        self.output.extend_from_slice(codec::PROTOCOL_HEADER);
        self.frame_max = codec::MIN_FRAME_MAX;
        self.heartbeat = Duration::ZERO;
        self.state = State::Up {
            pipe,
            step: Step::Start,
            since: now,
        };
    }

    /// Backoff doubling up to five seconds, plus up to half as much again at random, so
    /// nodes cut off together do not all come back in the same instant.
    fn schedule_retry(&mut self, now: Instant) {
        self.state = State::Down {
            retry_at: now + self.backoff.next_wait(),
        };
    }

    fn cut(&mut self, why: &str, registry: &Registry, now: Instant) {
        if let State::Up { pipe, .. } = &mut self.state {
            let _ = registry.deregister(&mut pipe.sock);
        }
        if self.is_ready() {
            self.counters.disconnects += 1;
            warn!("cut off from AMQP: {why}; door publishes reach this node's subscribers only");
        } else {
            info!("AMQP not reachable: {why}");
        }
        self.incoming = None;
        self.schedule_retry(now);
    }

    fn flush_or_cut(&mut self, registry: &Registry, now: Instant) {
        let State::Up { pipe, .. } = &mut self.state else {
            return;
        };
        if let Err(e) = pipe.write_from(&mut self.output) {
            self.cut(&e.to_string(), registry, now);
        }
    }

    /// The socket is readable or writable.
    pub fn on_ready(&mut self, registry: &Registry, now: Instant) -> Outcome {
        let mut outcome = Outcome::default();
        if let Err(why) = self.pump(&mut outcome, now) {
            self.cut(&why, registry, now);
            // Not acknowledged on this connection, so the broker delivers them again.
            outcome.deliveries.clear();
        }
        outcome
    }

    fn pump(&mut self, outcome: &mut Outcome, now: Instant) -> Result<(), String> {
        let State::Up { pipe, .. } = &mut self.state else {
            return Ok(());
        };
        if let Ok(Some(e)) | Err(e) = pipe.sock.take_error() {
            return Err(e.to_string());
        }
        let (end, taken) = pipe.read_into(&mut self.input, READ_BYTES_PER_TURN);
        // Why the stream ended, if it did.
        let ended = match end {
            ReadEnd::Drained => None,
            ReadEnd::Capped => {
                outcome.more = true;
                None
            }
            ReadEnd::Closed => Some("connection closed".to_string()),
            ReadEnd::Failed(e) => Some(e.to_string()),
        };
        if taken > 0 {
            self.heard_at = now;
        }
        // What came before the end is handled first: a broker that refuses a login says why
        // (connection.close) and then hangs up, or resets the connection.
        self.handle_input(outcome, now)?;
        if let Some(why) = ended {
            return Err(why);
        }
        let State::Up { pipe, .. } = &mut self.state else {
            return Ok(());
        };
        pipe.write_from(&mut self.output).map_err(|e| e.to_string())
    }

    fn handle_input(&mut self, outcome: &mut Outcome, now: Instant) -> Result<(), String> {
        // Taken out while its frames are handled, which borrow from it.
        let mut input = std::mem::take(&mut self.input);
        let used = self.handle_frames(&input, outcome, now)?;
        input.drain(..used);
        self.input = input;
        if self.output.len() > MAX_OUTPUT {
            return Err("the broker is not taking what is sent".into());
        }
        Ok(())
    }

    /// Handles the whole frames at the front of `input`; returns how many bytes they took.
    fn handle_frames(
        &mut self,
        input: &[u8],
        outcome: &mut Outcome,
        now: Instant,
    ) -> Result<usize, String> {
        let mut used = 0;
        while let Some((frame, n)) =
            codec::parse_frame(&input[used..], FRAME_MAX).map_err(|e| e.to_string())?
        {
            used += n;
            match frame.kind {
                FrameType::Heartbeat => {}
                FrameType::Method => {
                    let method = codec::decode_method(frame.payload).map_err(|e| e.to_string())?;
                    self.on_method(frame.channel, method, now)?;
                }
                FrameType::Header => self.on_header(frame.payload, outcome)?,
                FrameType::Body => self.on_body(frame.payload, outcome)?,
            }
        }
        Ok(used)
    }

    fn send(&mut self, method: &Method) {
        let channel = match method {
            Method::ConnectionStartOk { .. }
            | Method::ConnectionTuneOk { .. }
            | Method::ConnectionOpen { .. }
            | Method::ConnectionClose(_)
            | Method::ConnectionCloseOk => 0,
            _ => CHANNEL,
        };
        codec::push_method(&mut self.output, channel, method);
    }

    fn step(&mut self) -> Option<Step> {
        match &self.state {
            State::Up { step, .. } => Some(*step),
            _ => None,
        }
    }

    fn set_step(&mut self, next: Step) {
        if let State::Up { step, .. } = &mut self.state {
            *step = next;
        }
    }

    /// One method from the broker: the next handshake step, a delivery's start, or a close.
    fn on_method(&mut self, channel: u16, method: Method, now: Instant) -> Result<(), String> {
        let step = self.step();
        let expected = |want| step == Some(want);
        let next = match method {
            Method::ConnectionStart { mechanisms, .. } if expected(Step::Start) => {
                if !mechanisms.split(|&b| b == b' ').any(|m| m == b"PLAIN") {
                    return Err("the broker does not take PLAIN logins".into());
                }
                let url = &self.settings.url;
                let start_ok = Method::ConnectionStartOk {
                    client_properties: client_properties(),
                    mechanism: "PLAIN".into(),
                    response: codec::plain_response(&url.user, &url.pass),
                    locale: "en_US".into(),
                };
                self.send(&start_ok);
                Step::Tune
            }
            Method::ConnectionTune {
                frame_max,
                heartbeat,
                ..
            } if expected(Step::Tune) => {
                let frame_max = match frame_max {
                    0 => FRAME_MAX,
                    n => n.clamp(codec::MIN_FRAME_MAX, FRAME_MAX),
                };
                let heartbeat = match heartbeat {
                    0 => MAX_HEARTBEAT,
                    n => n.min(MAX_HEARTBEAT),
                };
                self.frame_max = frame_max;
                self.heartbeat = Duration::from_secs(u64::from(heartbeat));
                let vhost = self.settings.url.vhost.clone();
                self.send(&Method::ConnectionTuneOk {
                    channel_max: 1,
                    frame_max,
                    heartbeat,
                });
                self.send(&Method::ConnectionOpen { vhost });
                Step::Open
            }
            Method::ConnectionOpenOk if expected(Step::Open) => {
                self.send(&Method::ChannelOpen);
                Step::Channel
            }
            Method::ChannelOpenOk if expected(Step::Channel) => {
                // As the original declares it: fanout, not durable, not auto-deleted.
                self.send(&Method::ExchangeDeclare {
                    exchange: self.settings.exchange.clone(),
                    kind: "fanout".into(),
                    flags: DeclareFlags::default(),
                    arguments: Vec::new(),
                });
                Step::Exchange
            }
            Method::ExchangeDeclareOk if expected(Step::Exchange) => {
                let (queue, flags) = match &self.settings.queue {
                    Some(name) => (
                        name.clone(),
                        DeclareFlags {
                            durable: true,
                            ..DeclareFlags::default()
                        },
                    ),
                    None => (
                        String::new(),
                        DeclareFlags {
                            exclusive: true,
                            auto_delete: true,
                            ..DeclareFlags::default()
                        },
                    ),
                };
                self.send(&Method::QueueDeclare {
                    queue,
                    flags,
                    arguments: Vec::new(),
                });
                Step::Queue
            }
            Method::QueueDeclareOk {
                queue,
                message_count,
                ..
            } if expected(Step::Queue) => {
                info!("AMQP queue {queue:?} holds {message_count} messages");
                self.send(&Method::QueueBind {
                    queue: queue.clone(),
                    exchange: self.settings.exchange.clone(),
                    routing_key: String::new(),
                    no_wait: false,
                    arguments: Vec::new(),
                });
                self.queue_name = queue;
                Step::Bind
            }
            Method::QueueBindOk if expected(Step::Bind) => {
                self.send(&Method::BasicQos {
                    prefetch_size: 0,
                    prefetch_count: self.settings.prefetch,
                    global: false,
                });
                Step::Qos
            }
            Method::BasicQosOk if expected(Step::Qos) => {
                let queue = self.queue_name.clone();
                self.send(&Method::BasicConsume {
                    queue,
                    consumer_tag: self.node_id.clone(),
                    no_local: false,
                    no_ack: false,
                    exclusive: false,
                    no_wait: false,
                    arguments: Vec::new(),
                });
                Step::Consume
            }
            Method::BasicConsumeOk { .. } if expected(Step::Consume) => {
                info!(
                    "consuming AMQP exchange {:?} at {} as {}",
                    self.settings.exchange, self.settings.url.host, self.node_id
                );
                self.backoff.reset();
                self.told_at = now;
                Step::Ready
            }
            Method::BasicDeliver {
                delivery_tag,
                redelivered,
                ..
            } if expected(Step::Ready) => {
                if self.incoming.is_some() {
                    return Err("a delivery began inside another".into());
                }
                self.incoming = Some(Incoming {
                    tag: delivery_tag,
                    redelivered,
                    message_id: None,
                    size: None,
                    own: false,
                    body: Vec::new(),
                    received: 0,
                    too_large: false,
                });
                Step::Ready
            }
            // Said at warn: a refused login, or a declare that does not match the exchange
            // as it exists, is a configuration to fix.
            Method::ConnectionClose(close) => {
                self.send(&Method::ConnectionCloseOk);
                warn!(
                    "the AMQP broker closed the connection: {}",
                    describe(&close)
                );
                return Err(format!(
                    "the broker closed the connection: {}",
                    describe(&close)
                ));
            }
            Method::ChannelClose(close) => {
                warn!("the AMQP broker closed the channel: {}", describe(&close));
                return Err(format!(
                    "the broker closed the channel: {}",
                    describe(&close)
                ));
            }
            Method::BasicCancel { .. } => {
                return Err("the broker cancelled the consumer (queue deleted?)".into());
            }
            Method::ConnectionBlocked { reason } => {
                warn!("the AMQP broker blocks publishing: {reason}");
                return Ok(());
            }
            Method::ConnectionUnblocked => return Ok(()),
            Method::ChannelFlow { active } => {
                self.send(&Method::ChannelFlowOk { active });
                return Ok(());
            }
            other => {
                return Err(format!("unexpected {other:?} on channel {channel}"));
            }
        };
        self.set_step(next);
        Ok(())
    }

    fn on_header(&mut self, payload: &[u8], outcome: &mut Outcome) -> Result<(), String> {
        let header = codec::decode_content_header(payload).map_err(|e| e.to_string())?;
        let Some(incoming) = self.incoming.as_mut().filter(|i| i.size.is_none()) else {
            return Err("a content header without a delivery".into());
        };
        incoming.size = Some(header.body_size);
        incoming.own = header.properties.app_id.as_deref() == Some(self.node_id.as_str());
        incoming.message_id = header.properties.message_id;
        incoming.too_large = header.body_size > self.max_message as u64;
        if header.body_size == 0 {
            self.finish_delivery(outcome);
        }
        Ok(())
    }

    fn on_body(&mut self, payload: &[u8], outcome: &mut Outcome) -> Result<(), String> {
        let Some(incoming) = self.incoming.as_mut() else {
            return Err("a body frame without a delivery".into());
        };
        let Some(size) = incoming.size else {
            return Err("a body frame before its header".into());
        };
        incoming.received += payload.len() as u64;
        if incoming.received > size {
            return Err("a body longer than its header said".into());
        }
        if !incoming.too_large {
            incoming.body.extend_from_slice(payload);
        }
        if incoming.received == size {
            self.finish_delivery(outcome);
        }
        Ok(())
    }

    /// A whole message: to the reactor, unless it is a redelivery of one the bus took, which
    /// is acknowledged here (the acknowledgement goes out with this turn's output).
    fn finish_delivery(&mut self, outcome: &mut Outcome) {
        let Some(incoming) = self.incoming.take() else {
            return;
        };
        let digest = self
            .recent
            .digest(incoming.message_id.as_deref(), &incoming.body);
        if self.recent.decide(incoming.redelivered, digest) == Decision::Skip {
            self.counters.redelivered_skipped += 1;
            self.send(&Method::BasicAck {
                delivery_tag: incoming.tag,
                multiple: false,
            });
            return;
        }
        outcome.deliveries.push(Delivery {
            tag: incoming.tag,
            body: incoming.body,
            own: incoming.own,
            too_large: incoming.too_large,
            digest,
            connection: self.counters.disconnects,
        });
    }

    /// A delivery's body read as the door's event, on the bus channel the door names;
    /// `max_bytes` is the body limit now (`--max-body` changes on reload).
    pub fn decode(
        &self,
        delivery: &Delivery,
        max_bytes: usize,
    ) -> Result<event::Event, event::BadEvent> {
        if delivery.too_large {
            return Err(event::BadEvent::TooLarge); // not kept, only counted
        }
        event::decode(self.settings.names, &delivery.body, max_bytes)
    }

    /// The exchange's JSON for a message on `bus_channel`, or None when that is not one of
    /// the door's channels.
    pub fn encode(
        &self,
        bus_channel: &str,
        id: u64,
        name: Option<&str>,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        event::encode(self.settings.names, bus_channel, id, name, data)
    }

    /// The bus took a delivery: remembered, so that a redelivery of it is skipped even when
    /// this acknowledgement never reaches the broker, and acknowledged.
    pub fn ack_taken(&mut self, delivery: Taken, registry: &Registry, now: Instant) {
        self.recent.taken(delivery.digest);
        self.counters.received += 1;
        if delivery.connection == self.counters.disconnects {
            self.ack(delivery.tag, registry, now);
        }
        // Else the connection it came on is gone, and the broker gives it again on this one,
        // where it is known as taken and skipped.
    }

    /// Gives back a delivery the bus could not keep (the log is failing), for the broker to
    /// deliver again; on another connection than its own the broker has done so already.
    pub fn requeue(&mut self, delivery: Taken, registry: &Registry, now: Instant) {
        if delivery.connection != self.counters.disconnects || !self.is_ready() {
            return;
        }
        self.send(&Method::BasicReject {
            delivery_tag: delivery.tag,
            requeue: true,
        });
        self.flush_or_cut(registry, now);
    }

    /// Acknowledges a delivery the bus took (or that was dropped as bad).
    pub fn ack(&mut self, tag: u64, registry: &Registry, now: Instant) {
        if !self.is_ready() {
            return; // the broker delivers it again on the next connection
        }
        self.send(&Method::BasicAck {
            delivery_tag: tag,
            multiple: false,
        });
        self.flush_or_cut(registry, now);
    }

    /// Sends a door publish to the exchange, marked as this node's. False when the broker is
    /// away: the message reached this node's subscribers only.
    pub fn publish(&mut self, body: &[u8], registry: &Registry, now: Instant) -> bool {
        if !self.is_ready() {
            self.counters.not_published += 1;
            return false;
        }
        let properties = Properties {
            content_type: Some("application/json".into()),
            delivery_mode: Some(2),
            app_id: Some(self.node_id.clone()),
            ..Properties::default()
        };
        codec::push_publish(
            &mut self.output,
            CHANNEL,
            &self.settings.exchange,
            properties,
            body,
            self.frame_max,
        );
        self.counters.published += 1;
        if self.output.len() > MAX_OUTPUT {
            self.cut(
                "the broker is not taking messages fast enough",
                registry,
                now,
            );
            return false;
        }
        self.flush_or_cut(registry, now);
        true
    }

    /// Counts a message acknowledged and dropped, and says why in the log, at most once a
    /// second (then with how many were dropped without a word).
    pub fn count_bad(&mut self, why: &dyn std::fmt::Display, now: Instant) {
        self.counters.bad += 1;
        if self
            .warned_at
            .is_some_and(|at| now.duration_since(at) < WARN_INTERVAL)
        {
            self.unlogged += 1;
            return;
        }
        let more = std::mem::take(&mut self.unlogged);
        if more > 0 {
            warn!("AMQP message dropped: {why} (and {more} more since the last warning)");
        } else {
            warn!("AMQP message dropped: {why}");
        }
        self.warned_at = Some(now);
    }

    /// The counters as Prometheus text, to follow the server's own.
    pub fn render_prometheus(&self) -> String {
        let c = &self.counters;
        let rows = [
            (
                "amqp_connected",
                "gauge",
                "1 while consuming the AMQP exchange.",
                u64::from(self.is_ready()),
            ),
            (
                "amqp_received_total",
                "counter",
                "Messages from the AMQP exchange delivered to the bus.",
                c.received,
            ),
            (
                "amqp_own_total",
                "counter",
                "This node's own messages back from the exchange, not delivered twice.",
                c.own,
            ),
            (
                "amqp_bad_total",
                "counter",
                "Messages from the exchange acknowledged and dropped as bad.",
                c.bad,
            ),
            (
                "amqp_published_total",
                "counter",
                "Door publishes sent to the exchange.",
                c.published,
            ),
            (
                "amqp_not_published_total",
                "counter",
                "Door publishes made while the broker was away.",
                c.not_published,
            ),
            (
                "amqp_disconnects_total",
                "counter",
                "Times the AMQP connection was lost.",
                c.disconnects,
            ),
            (
                "amqp_redelivered_skipped_total",
                "counter",
                "Messages the broker delivered again after the bus took them, not delivered twice.",
                c.redelivered_skipped,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            out += &format!(
                "# HELP msgbus_{name} {help}\n# TYPE msgbus_{name} {kind}\nmsgbus_{name} {value}\n"
            );
        }
        out
    }
}

fn describe(close: &Close) -> String {
    format!("{} {}", close.reply_code, close.reply_text)
}

/// What msgbus tells the broker about itself (shown in its management views), and what it
/// understands.
fn client_properties() -> codec::Table {
    use codec::Field;
    vec![
        ("product".into(), Field::LongStr(b"msgbus".to_vec())),
        (
            "version".into(),
            Field::LongStr(env!("CARGO_PKG_VERSION").as_bytes().to_vec()),
        ),
        (
            "capabilities".into(),
            // The broker says why it refuses a login (connection.close) before it hangs up.
            Field::Table(vec![
                ("consumer_cancel_notify".into(), Field::Bool(true)),
                ("authentication_failure_close".into(), Field::Bool(true)),
            ]),
        ),
    ]
}

/// `msgbus-` and 64 random bits: what marks this process's publishes.
fn node_id() -> String {
    use ring::rand::SecureRandom;
    let mut random = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut random).is_err() {
        random = crate::backoff::seed().to_be_bytes();
    }
    format!("msgbus-{:016x}", u64::from_be_bytes(random))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each wait doubles up to five seconds, lengthened by up to half at random.
    #[test]
    fn reconnects_back_off_doubling_with_jitter() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        let settings = Settings {
            url: AmqpUrl::parse("amqp://127.0.0.1").unwrap(),
            exchange: DEFAULT_EXCHANGE.into(),
            queue: None,
            prefetch: DEFAULT_PREFETCH,
            names: ChannelNames::Private,
        };
        let now = Instant::now();
        let mut amqp = Amqp::new(settings, 1024, now, waker).unwrap();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let base = amqp.backoff.base();
            amqp.schedule_retry(now);
            let wait = amqp.deadline().unwrap() - now;
            assert!(wait >= base && wait <= base + base / 2 + Duration::from_millis(1));
            waits.push(base.as_millis());
        }
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn urls() {
        let cases = [
            ("amqp://h", Some((false, "h", 5672, "guest", "guest", "/"))),
            ("amqps://h", Some((true, "h", 5671, "guest", "guest", "/"))),
            (
                "amqp://u:p@h:1234/",
                Some((false, "h", 1234, "u", "p", "/")),
            ),
            (
                "amqp://u:p%40x@h/v",
                Some((false, "h", 5672, "u", "p@x", "v")),
            ),
            (
                "amqp://h/%2f",
                Some((false, "h", 5672, "guest", "guest", "/")),
            ),
            (
                "amqp://u@[::1]:99/x%2Fy",
                Some((false, "::1", 99, "u", "", "x/y")),
            ),
            (
                "amqp://127.0.0.1:5672",
                Some((false, "127.0.0.1", 5672, "guest", "guest", "/")),
            ),
            ("http://h", None),
            ("amqp://", None),
            ("amqp://h:port", None),
            ("amqp://h/%zz", None),
        ];
        for (text, want) in cases {
            let got =
                AmqpUrl::parse(text).map(|u| (u.tls, u.host, u.port, u.user, u.pass, u.vhost));
            let want = want.map(|(t, h, p, u, pw, v)| {
                (
                    t,
                    h.to_string(),
                    p,
                    u.to_string(),
                    pw.to_string(),
                    v.to_string(),
                )
            });
            assert_eq!(got, want, "{text}");
        }
        let url = AmqpUrl::parse("amqp://u:secret@h").unwrap();
        assert!(!format!("{url:?}").contains("secret"));
    }
}
