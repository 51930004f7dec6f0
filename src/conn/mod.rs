//! One client connection without its socket: its phase in the protocol, its input and its
//! output queue. The reactor owns the socket (and any file being sent), feeds the session the
//! bytes and events, and carries out what it answers with (`Next`, `AfterDrain`): the session
//! does no I/O, so the fuzz target drives the same code the server does. It never touches
//! another connection: a publish is handed back to the reactor as `Next::Publish`.

use std::borrow::Cow;
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{debug, info};

pub mod door;
mod subscribe;
pub use subscribe::{FetchAsk, Prefetched};
mod websocket;

pub use door::{Door, DoorId, DoorRequest, DoorState, Doors, Hold, HoldNext, PublishOutcome};
use websocket::WsState;

use crate::bus::{constant_time_eq, Bus, BusError, SubscriptionId};
use crate::config::{Config, SlowPolicy};
use crate::gate::{self, Credentials, Gate, Identity, Refusal};
use crate::http::chunked::{ChunkedDecoder, Progress};
use crate::http::date;
use crate::http::proxy::{self, ProxyError, ProxyHeader};
use crate::http::query::{percent_decode, split_target, Query};
use crate::http::request::{parse_head, redacted_target, BodyFraming, Method, Parsed, Request};
use crate::http::response::{self, Head, Status};
use crate::http::route::{route, Resource, RouteError, Topic};
use crate::listener::Peer;
use crate::outq::OutQueue;
use crate::stats::{Limit, Reason, StatEvent, Stats, Transport};
use crate::timer::TimerSlot;
use crate::transport::{longpoll, multipart, sse, Wire};

/// The browser client, served at /msgbus.js whatever the document root.
const CLIENT_JS: &str = include_str!("../../static/msgbus.js");
/// The same as an ES module (it imports ./msgbus.js), at /msgbus.mjs.
const CLIENT_MODULE: &str = include_str!("../../static/msgbus.mjs");
/// At shutdown SSE clients are asked to reconnect after this long, plus a spread so they do
/// not all come back in the same instant.
const SHUTDOWN_RETRY_MS: u64 = 1000;
const SHUTDOWN_RETRY_SPREAD_MS: u64 = 4000;
/// How long a half-closed connection may keep sending before it is closed outright.
const LINGER: Duration = Duration::from_secs(2);
/// File bytes kept queued while serving a file; refilled as the socket drains.
const FILE_QUEUE_BYTES: usize = 256 * 1024;
const FILE_READ_BYTES: usize = 64 * 1024;

/// What the reactor lends a connection while it handles an event.
pub struct Ctx<'a> {
    pub key: usize,
    pub now: Instant,
    pub cfg: &'a Config,
    pub bus: &'a mut Bus,
    pub stats: &'a mut Stats,
    /// Every operation on a channel passes it.
    pub gate: &'a Gate,
    /// The wire formats: the transports' and the doors'.
    pub wires: &'a crate::transport::Wires,
    /// The open doors, each asked in turn whether a request is its own.
    pub doors: &'a mut Doors,
    /// The door being called, while one is (so it can name itself in what it leaves behind).
    pub door_id: DoorId,
    /// Outbound HTTP calls (lhttp's `upstream:`), when some URL is allowed.
    pub upstream: Option<&'a mut crate::upstream::Upstream>,
}

/// An answer with its status, headers, `Content-Length` and body, as the doors write theirs. A
/// HEAD answer has no body, whichever door writes it: one would desync keep-alive.
pub fn framed<'h>(
    reply: Reply,
    code: u16,
    headers: impl IntoIterator<Item = (&'h str, &'h str)>,
    body: &[u8],
) -> Vec<u8> {
    let mut head = Head::new(reply.minor_version, Status::from_code(code));
    for (name, value) in headers {
        head = head.header(name, value);
    }
    let mut out = head
        .header("Content-Length", body.len())
        .finish(reply.minor_version, reply.keep_alive);
    if !reply.head_only {
        out.extend_from_slice(body);
    }
    out
}

/// What a publish the reactor carried out came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub id: u64,
    /// Subscribers it was queued for (in a cluster: this node's subscribers it matches).
    pub recipients: usize,
}

/// What the reactor should do next for this connection.
#[derive(Debug)]
pub enum Next {
    /// Nothing until more input arrives or the output drains.
    Wait,
    /// Publish this; then call `answer_publish` and `advance` again.
    Publish(Box<Publish>),
    /// Render the status document (JSON, or with `true` Prometheus text); then call
    /// `answer_status` and `advance` again.
    Status(Reply, bool),
    /// Delete a channel; then call `answer_delete` and `advance` again.
    Delete(Delete),
    /// Open the static file asked for (the reactor owns files); then call `answer_file` and
    /// `advance` again.
    OpenFile(Box<FileAsk>),
    /// Read older messages back from the cluster's stream for a resuming subscriber; then
    /// call `resume_after_fetch`.
    Fetch(Box<subscribe::FetchAsk>),
    /// Close at the end of the turn.
    Close(Reason),
}

/// A static file a request asks for, and how to answer it.
#[derive(Debug)]
pub struct FileAsk {
    /// The decoded URL path, under the document root.
    pub path: String,
    pub reply: Reply,
    /// `If-Modified-Since`, seconds since 1970.
    pub since: Option<u64>,
}

/// What the reactor found for a `FileAsk`.
#[derive(Debug, Clone, Copy)]
pub struct FileFound {
    pub len: u64,
    /// Seconds since 1970.
    pub modified: u64,
    pub content_type: &'static str,
}

/// How to answer the request being handled.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub minor_version: u8,
    pub keep_alive: bool,
    pub head_only: bool,
}

/// A publish as a door or transport proposes it, before the gate has looked at it.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    pub channel: String,
    /// More channels the same message goes to (lhttp's `publish: a b c`); one body for all.
    pub more_channels: Vec<String>,
    pub content_type: String,
    /// The SSE event name.
    pub event: Option<String>,
    pub body: Vec<u8>,
    /// The publish key given, if any.
    pub key: Option<String>,
    /// A frame the door made in its own wire format (slot, bytes): its subscribers get the
    /// message as it came.
    pub preset: Option<(usize, Vec<u8>)>,
    /// Values besides these that the door will write as header-like lines.
    pub lines: Vec<Vec<u8>>,
    pub attributes: gate::Attributes,
}

/// Who proposes a publish.
#[derive(Debug, Clone)]
pub enum Publisher {
    /// A client the gate identified.
    Client(Identity),
    /// A client a door identified by its own credentials (eventsource-broker's signed sockets),
    /// with the sender name it shows.
    Door(Option<String>),
}

/// Why a publish was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Gate(Refusal),
    Bus(BusError),
    /// The history store cannot keep it (the disk is full or failing): why, in one line.
    Store(String),
    /// The cluster could not store it (NATS away): 503 with `Retry-After`.
    Unavailable(String),
}

/// The store could not keep a publish: nothing was acknowledged, the client may try again.
pub const INSUFFICIENT_STORAGE: Status = Status(507, "Insufficient Storage");

impl Refused {
    pub fn status(&self) -> Status {
        match self {
            Refused::Gate(refusal) => Status::from_code(refusal.status),
            Refused::Bus(e) => bus_error_status(*e),
            Refused::Store(_) => INSUFFICIENT_STORAGE,
            Refused::Unavailable(_) => Status::from_code(503),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Gate(refusal) => refusal.fmt(f),
            Refused::Bus(e) => e.fmt(f),
            Refused::Store(why) => f.write_str(why),
            Refused::Unavailable(why) => f.write_str(why),
        }
    }
}

impl PublishRequest {
    /// Submits it to the gate: one admitted publish per channel, sharing one body.
    pub fn admit(self, who: &Publisher, gate: &Gate) -> Result<Vec<gate::Publish>, Refusal> {
        let body: std::rc::Rc<[u8]> = self.body.into();
        let preset = self
            .preset
            .map(|(slot, frame)| (slot, std::rc::Rc::from(frame)));
        let draft = gate::Draft {
            channel: &self.channel,
            content_type: &self.content_type,
            event: self.event.as_deref(),
            body,
            key: self.key.as_deref(),
            attributes: self.attributes,
            preset,
            lines: self.lines.iter().map(Vec::as_slice).collect(),
        };
        match who {
            Publisher::Client(identity) => {
                let mut channels = vec![self.channel.as_str()];
                channels.extend(self.more_channels.iter().map(String::as_str));
                gate.admit_publish_many(identity, &channels, draft)
            }
            Publisher::Door(sender) => Ok(vec![gate.admit_door_publish(draft, sender.as_deref())?]),
        }
    }
}

pub struct Publish {
    pub req: PublishRequest,
    pub who: Publisher,
    pub reply: Reply,
    /// The client accepts JSON: answer with a body, not only headers.
    pub json_answer: bool,
    /// Sent as a WebSocket message: no HTTP answer, a close frame if refused.
    pub via_websocket: bool,
    /// A door's POST whose body is still to be read and handed to it.
    pub door: Option<(DoorId, DoorState)>,
    /// The door that answers the publish once it is carried out, with what it kept.
    pub door_answer: Option<(DoorId, DoorState)>,
}

impl std::fmt::Debug for Publish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publish")
            .field("req", &self.req)
            .field("reply", &self.reply)
            .field("door", &self.door.as_ref().map(|(id, _)| id))
            .field("door_answer", &self.door_answer.as_ref().map(|(id, _)| id))
            .finish()
    }
}

impl Publish {
    /// A message a WebSocket client sent: no HTTP answer goes back for it.
    pub fn over_websocket(
        req: PublishRequest,
        who: Identity,
        door_answer: Option<(DoorId, DoorState)>,
    ) -> Publish {
        Publish {
            req,
            who: Publisher::Client(who),
            reply: Reply {
                minor_version: 1,
                keep_alive: true,
                head_only: false,
            },
            json_answer: false,
            via_websocket: true,
            door: None,
            door_answer,
        }
    }
}

#[derive(Debug)]
pub struct Delete {
    pub admitted: gate::Delete,
    pub reply: Reply,
}

/// What a drained output queue means for the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterDrain {
    Nothing,
    /// A file is being sent: give it the next pieces (`file_wanted`, `on_file_data`), then
    /// flush again (or read, if the file is done).
    NeedFile,
    /// Requests may be waiting in the input: read and advance.
    ReadMore,
    /// All is said: shut the socket's write side, then read (until the peer closes).
    HalfClose,
}

enum Phase {
    /// Between requests, or inside a head; `deadline` runs from the head's first byte.
    /// next: Body | Head (answered) | File | Streaming | Closing
    Head { deadline: Option<Instant> },
    /// Reading a published body. next: Head (after the reactor publishes it) | Closing
    Body(Box<BodyState>),
    /// Answering with a file, read as the socket drains. next: Head | Closing
    File(Box<FileState>),
    /// A subscriber: frames go out, input is discarded. next: (closed), or Head after a
    /// long-poll is answered
    Streaming(Stream),
    /// The last response is queued; once it is sent, half-close. next: Lingering
    Closing,
    /// Half-closed: input is discarded until the peer closes or the deadline. next: (closed)
    Lingering { deadline: Instant },
}

/// How a subscriber is sent its messages.
enum Stream {
    /// The original protocol; `chunked` on HTTP/1.1.
    Multipart { chunked: bool },
    /// Server-sent events, with a comment every ping interval.
    Sse { next_ping: Instant },
    /// A held long-poll, answered by the first message or at `deadline`.
    LongPoll(Box<PollState>),
    /// WebSocket frames; the client may publish and ping.
    WebSocket(Box<WsState>),
    /// A door's held request or stream: the door's `Hold` says what each event writes.
    Door(Box<dyn Hold>),
}

struct PollState {
    reply: Reply,
    deadline: Instant,
    /// The cursor the client polled with, given back if nothing arrives.
    cursor: u64,
    callback: Option<String>,
}

struct BodyState {
    publish: Publish,
    framing: BodyFraming,
    decoder: ChunkedDecoder,
    deadline: Instant,
}

struct FileState {
    /// Bytes of the file still to come from the reactor.
    remaining: u64,
    keep_alive: bool,
}

/// Bytes read but not yet parsed. Consumed bytes are skipped with `pos` and compacted only
/// when the connection waits, so a pipelined burst is not memmoved once per request.
#[derive(Default)]
struct Input {
    buf: Vec<u8>,
    pos: usize,
}

impl Input {
    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }

    /// Drops consumed bytes; releases the buffer when nothing is left, so an idle
    /// connection holds no input memory.
    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf = Vec::new();
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
        }
        self.pos = 0;
    }
}

pub struct Conn {
    /// The connection's client: the socket's peer, or the one its PROXY header named.
    pub peer: Peer,
    /// The request's client: `peer`, or the one a trusted proxy's forwarding headers named.
    /// This is what status access and the logs go by.
    pub client: Peer,
    /// A PROXY protocol header is expected before the first request.
    pub awaiting_proxy: bool,
    /// The address this connection is counted under for `--max-per-address`.
    pub counted_as: Option<std::net::IpAddr>,
    phase: Phase,
    input: Input,
    pub outq: OutQueue,
    pub timer: TimerSlot,
    /// Edge-triggered readiness kept in user space: the socket may have bytes to read.
    pub readable: bool,
    /// The socket took everything last time (or signalled writable since).
    pub writable: bool,
    /// On the reactor's list of connections to flush this turn.
    pub pending_flush: bool,
    /// A close is scheduled for the end of the turn.
    pub closing: bool,
    subscriptions: Vec<SubscriptionId>,
    /// The id of the last message queued, so a connection subscribed to a channel and to a
    /// subtree holding it gets each message once.
    pub last_delivered: u64,
    /// The `Access-Control-Allow-Origin` value for the request being answered.
    cors: Option<Box<str>>,
    /// A long-poll was answered: its subscriptions are to be released.
    pub poll_done: bool,
    /// Holds (or held, until the reactor notes its end) a request for this door, which counts
    /// its holds.
    pub held_for: Option<DoorId>,
    /// Refusals and limits hit, for the reactor to count.
    pub stat_events: Vec<StatEvent>,
    /// Refused as it was accepted (a limit): answered, then closed.
    pub refused_at_once: bool,
    /// Publishes a door asked for, handed to the reactor one by one.
    pending_publishes: Vec<Publish>,
    /// The request being answered, kept for the access log when it is on.
    request_line: Option<Box<str>>,
    /// Dropping frames for slowness; logged once per episode.
    dropping: bool,
    /// A subscription waits for older messages from the cluster's stream (the reactor's
    /// tag): nothing more is read or handled until they are here.
    pub awaiting_fetch: Option<u64>,
    /// What the stream gave, for the subscription asked again.
    prefetched: Option<Box<subscribe::Prefetched>>,
    /// Publishes of this connection held until the store commits them, and the answers to
    /// requests after them, in order (`Deferred`): an answer leaves only after those before it.
    after_commit: std::collections::VecDeque<Deferred>,
}

/// What waits behind a held publish.
enum Deferred {
    /// A publish the store holds: answered by `on_committed`; whether the connection stays
    /// open after it.
    Held(bool),
    /// An answer to a later request (and whether the connection stays open after it).
    Answer(Vec<u8>, bool),
}

impl Conn {
    pub fn new(peer: Peer, now: Instant, cfg: &Config) -> Conn {
        Conn {
            peer,
            client: peer,
            awaiting_proxy: false,
            counted_as: None,
            phase: Phase::Head {
                deadline: Some(now + cfg.head_timeout),
            },
            input: Input::default(),
            outq: OutQueue::new(),
            timer: TimerSlot::default(),
            readable: false,
            writable: true,
            pending_flush: false,
            closing: false,
            subscriptions: Vec::new(),
            last_delivered: 0,
            cors: None,
            poll_done: false,
            held_for: None,
            stat_events: Vec::new(),
            refused_at_once: false,
            request_line: None,
            pending_publishes: Vec::new(),
            dropping: false,
            after_commit: std::collections::VecDeque::new(),
            awaiting_fetch: None,
            prefetched: None,
        }
    }

    /// Sends `response` and closes, reading nothing from the client.
    pub fn refuse_at_once(&mut self, response: Vec<u8>) {
        self.refused_at_once = true;
        self.outq.push_own(response);
        self.phase = Phase::Closing;
    }

    /// Takes the PROXY protocol header that opens the input once it is whole (None: not yet).
    /// The address it names becomes the connection's peer.
    pub fn take_proxy_header(&mut self) -> Result<Option<ProxyHeader>, ProxyError> {
        match proxy::parse_proxy_header(self.input.unread())? {
            proxy::Parsed::Partial => Ok(None),
            proxy::Parsed::Complete(header, len) => {
                self.input.consume(len);
                self.awaiting_proxy = false;
                if let ProxyHeader::Proxied { source, .. } = header {
                    self.peer = Peer::Tcp(source);
                    self.client = self.peer;
                }
                Ok(Some(header))
            }
        }
    }

    /// Bytes read and kept but not yet handled (bounded by the head, body and message limits).
    pub fn buffered_input(&self) -> usize {
        self.input.buf.len()
    }

    /// Hands over the connection's subscriptions, for the reactor to release.
    pub fn take_subscriptions(&mut self) -> Vec<SubscriptionId> {
        self.poll_done = false;
        std::mem::take(&mut self.subscriptions)
    }

    /// Forgets subscriptions the bus already dropped (a deleted channel's).
    pub fn forget_subscriptions(&mut self, gone: &[SubscriptionId]) {
        self.subscriptions.retain(|id| !gone.contains(id));
    }

    /// What the connection is doing, for the status counters.
    pub fn transport(&self) -> Transport {
        match &self.phase {
            Phase::Streaming(Stream::Multipart { .. }) => Transport::Multipart,
            Phase::Streaming(Stream::Sse { .. }) => Transport::Sse,
            Phase::Streaming(Stream::LongPoll(_)) => Transport::LongPoll,
            Phase::Streaming(Stream::Door(hold)) => hold.transport(),
            Phase::Streaming(Stream::WebSocket(_)) => Transport::WebSocket,
            _ => Transport::Http,
        }
    }

    pub fn is_subscriber(&self) -> bool {
        matches!(self.phase, Phase::Streaming(_))
    }

    /// Whether the reactor should read more now. A client that pipelines requests but does not
    /// read the answers is not read from until they drain; a file being sent holds requests back.
    pub fn wants_input(&self, cfg: &Config) -> bool {
        if self.awaiting_fetch.is_some() {
            return false;
        }
        if self.awaiting_commit() {
            // Pipelined publishes behind a held one are read, up to a head's worth.
            return self.input.unread().len() < cfg.max_head;
        }
        match self.phase {
            Phase::Head { .. } | Phase::Body(_) => self.outq.queued_bytes() < cfg.max_queue,
            Phase::File(_) => false,
            Phase::Streaming(Stream::WebSocket(_)) => self.outq.queued_bytes() < cfg.max_queue,
            // A request sent behind a held poll waits for the answer, up to one head's worth.
            Phase::Streaming(Stream::LongPoll(_)) => self.input.buf.len() < cfg.max_head,
            Phase::Streaming(_) | Phase::Closing | Phase::Lingering { .. } => true,
        }
    }

    /// Bytes read from the socket. Subscribers and closing connections discard theirs.
    pub fn on_input(&mut self, data: &[u8]) {
        if matches!(
            self.phase,
            Phase::Head { .. }
                | Phase::Body(_)
                | Phase::Streaming(Stream::WebSocket(_) | Stream::LongPoll(_))
        ) {
            self.input.buf.extend_from_slice(data);
        }
    }

    /// The peer closed its side. Returns a reason to close now, or None to finish sending.
    pub fn on_peer_closed(&mut self) -> Option<Reason> {
        match self.phase {
            Phase::Head { .. } if !self.outq.is_empty() && self.input.unread().is_empty() => {
                // Answer what was asked, then close: `printf 'GET ...' | nc` clients half-close.
                self.phase = Phase::Closing;
                None
            }
            Phase::Closing => None,
            Phase::Lingering { .. } => Some(Reason::Done),
            _ => Some(Reason::PeerClosed),
        }
    }

    /// Handles as much buffered input as possible.
    pub fn advance(&mut self, ctx: &mut Ctx) -> Next {
        if self.awaiting_fetch.is_some() {
            return Next::Wait;
        }
        if self.awaiting_commit() && !self.next_is_plain_publish(ctx.cfg) {
            return Next::Wait;
        }
        if !self.pending_publishes.is_empty() {
            return Next::Publish(Box::new(self.pending_publishes.remove(0)));
        }
        loop {
            match &mut self.phase {
                Phase::Head { deadline } => {
                    if self.outq.queued_bytes() >= ctx.cfg.max_queue {
                        self.input.compact();
                        return Next::Wait;
                    }
                    let buf = self.input.unread();
                    if buf.is_empty() {
                        self.input.compact();
                        return Next::Wait;
                    }
                    match parse_head(buf, ctx.cfg.max_head, ctx.cfg.max_body) {
                        Ok(Parsed::Partial) => {
                            deadline.get_or_insert(ctx.now + ctx.cfg.head_timeout);
                            self.input.compact();
                            return Next::Wait;
                        }
                        Ok(Parsed::Complete(request, len)) => {
                            *deadline = None;
                            self.input.consume(len);
                            if self.input.unread().is_empty() {
                                // Released before the request is handled: a request that
                                // becomes a stream (a WebSocket's handshake) would otherwise
                                // keep its buffer for as long as the stream is idle.
                                self.input.compact();
                            }
                            ctx.stats.requests += 1;
                            if let Some(next) = self.on_request(request, ctx) {
                                return next;
                            }
                        }
                        Err(e) => return self.fail(1, e.status(), &e.to_string(), &[]),
                    }
                }
                Phase::Body(state) => {
                    let buf = self.input.unread();
                    let body = &mut state.publish.req.body;
                    let (used, done) = match state.framing {
                        BodyFraming::Length(total) => {
                            let used = buf.len().min(total - body.len());
                            body.extend_from_slice(&buf[..used]);
                            (used, body.len() == total)
                        }
                        _ => match state.decoder.decode(buf, body, ctx.cfg.max_body) {
                            Ok((used, progress)) => (used, progress == Progress::Done),
                            Err(e) => {
                                let reason = format!("bad chunked body: {e}");
                                return self.fail(1, Status::BAD_REQUEST, &reason, &[]);
                            }
                        },
                    };
                    self.input.consume(used);
                    if !done {
                        self.input.compact();
                        return Next::Wait;
                    }
                    let Phase::Body(state) =
                        std::mem::replace(&mut self.phase, Phase::Head { deadline: None })
                    else {
                        unreachable!("matched above")
                    };
                    if state.publish.door.is_some() {
                        return self.finish_door_post(state.publish, ctx);
                    }
                    return Next::Publish(Box::new(state.publish));
                }
                Phase::Streaming(Stream::WebSocket(_)) => return self.advance_websocket(ctx),
                Phase::File(_) | Phase::Streaming(_) | Phase::Closing | Phase::Lingering { .. } => {
                    return Next::Wait
                }
            }
        }
    }

    /// The stream's older messages for a subscription that waited for them: the request is
    /// handled again, now with them in front of the window's replay.
    pub fn resume_after_fetch(
        &mut self,
        request: Request,
        prefetched: subscribe::Prefetched,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        self.awaiting_fetch = None;
        self.prefetched = Some(Box::new(prefetched));
        let next = self.on_request(request, ctx);
        self.prefetched = None;
        next
    }

    /// Handles a whole request head. None: go on with the next request.
    fn on_request(&mut self, request: Request, ctx: &mut Ctx) -> Option<Next> {
        let minor = request.minor_version;
        let mut reply = Reply {
            minor_version: minor,
            keep_alive: request.keep_alive,
            head_only: request.method == Method::Head,
        };
        // A body we will not read would be taken for the next request: close after answering.
        if request.has_body() && request.method != Method::Post {
            reply.keep_alive = false;
        }
        if ctx.cfg.access_log {
            let line = format!(
                "{} {} HTTP/1.{minor}",
                request.method.as_str(),
                redacted_target(&request.target)
            );
            self.request_line = Some(line.into());
        }
        self.client = request_client(self.peer, &request, ctx.cfg);
        self.cors = request
            .header("origin")
            .and_then(|origin| ctx.cfg.allowed_origin(origin))
            .map(Into::into);
        let (raw_path, raw_query) = split_target(&request.target);
        // A path with no escapes is used as it is: no copy.
        let path: Cow<str> = if raw_path.contains('%') {
            let Some(path) = percent_decode(raw_path.as_bytes(), false) else {
                return Some(self.fail(
                    minor,
                    Status::BAD_REQUEST,
                    "bad percent-encoding in path",
                    &[],
                ));
            };
            let Ok(path) = String::from_utf8(path) else {
                return Some(self.fail(minor, Status::BAD_REQUEST, "path is not UTF-8", &[]));
            };
            Cow::Owned(path)
        } else {
            Cow::Borrowed(raw_path)
        };
        let door_request = DoorRequest {
            request: &request,
            raw_path,
            raw_query,
            reply,
        };
        for id in 0..ctx.doors.len() {
            let Some(mut door) = ctx.doors.take(id) else {
                continue;
            };
            ctx.door_id = id;
            let taken = door.on_request(self, &door_request, ctx);
            ctx.doors.put_back(id, door);
            if let Some(next) = taken {
                return next;
            }
        }
        let resource = match route(&path, ctx.cfg.max_subscriptions) {
            Ok(resource) => resource,
            Err(RouteError::TooManyChannels) => {
                self.stat_events
                    .push(StatEvent::Limited(Limit::Subscriptions));
                let why = "too many channels in one subscription";
                return self.refuse(&request, reply, Status::BAD_REQUEST, why, &[]);
            }
            Err(_) => return Some(self.fail(minor, Status::BAD_REQUEST, "bad channel name", &[])),
        };
        if !resource.allowed().contains(&request.method) {
            let allow = resource.allow_header();
            let allow = [("Allow", allow.as_str())];
            return self.refuse(
                &request,
                reply,
                Status::METHOD_NOT_ALLOWED,
                "method not allowed",
                &allow,
            );
        }
        if request.method == Method::Options {
            // A CORS preflight: browsers send it without credentials, so it is answered
            // before authentication.
            return self.answer_preflight(&resource, reply);
        }
        let query = match Query::parse(raw_query) {
            Ok(query) => query,
            Err(e) => return Some(self.fail(minor, Status::BAD_REQUEST, &e.to_string(), &[])),
        };
        let who = match self.identify(&request, &query, ctx) {
            Ok(who) => who,
            Err(refusal) => return self.refuse_gate(&request, reply, &refusal),
        };
        match (resource, request.method) {
            (Resource::Topics(topics), Method::Post) => {
                let Some(channel) = single_channel(&topics, true) else {
                    let why = "publish to one channel at a time";
                    return self.refuse(&request, reply, Status::BAD_REQUEST, why, &[]);
                };
                self.start_publish(&request, &query, reply, channel, who, ctx)
            }
            (Resource::Topics(topics), Method::Delete) => {
                let Some(channel) = single_channel(&topics, false) else {
                    let why = "delete one channel at a time";
                    return self.refuse(&request, reply, Status::BAD_REQUEST, why, &[]);
                };
                let key = channel_key(&request, &query);
                match ctx.gate.admit_delete(&who, &channel, key.as_deref()) {
                    Ok(admitted) => Some(Next::Delete(Delete { admitted, reply })),
                    Err(refusal) => self.refuse_gate(&request, reply, &refusal),
                }
            }
            (Resource::Topics(topics), _) => {
                self.subscribe(topics, &request, &query, reply, who, ctx)
            }
            (status @ (Resource::Status | Resource::Metrics), _) => {
                if !status_allowed(&request, &query, self.client, ctx.cfg) {
                    let why = "not allowed to read the status";
                    return self.refuse(&request, reply, Status::FORBIDDEN, why, &[]);
                }
                let prometheus = status == Resource::Metrics;
                Some(Next::Status(reply, prometheus))
            }
            (page @ (Resource::ChannelList | Resource::ChannelInfo(_)), _) => {
                if !status_allowed(&request, &query, self.client, ctx.cfg) {
                    let why = "not allowed to read the status";
                    return self.refuse(&request, reply, Status::FORBIDDEN, why, &[]);
                }
                self.answer_channel_page(page, &request, &query, reply, ctx)
            }
            (Resource::Static, _) => self.serve_file(&path, &request, reply),
            (resource @ (Resource::ClientJs | Resource::ClientModule), _) => {
                let source = if resource == Resource::ClientJs {
                    CLIENT_JS
                } else {
                    CLIENT_MODULE
                };
                let answer = response::with_body(
                    reply.minor_version,
                    Status::OK,
                    "text/javascript; charset=utf-8",
                    source.as_bytes(),
                    reply.keep_alive,
                    reply.head_only,
                );
                self.answer(answer, reply.keep_alive);
                None
            }
        }
    }

    /// The CORS headers for this request's answers (none unless `--allow-origin` matched).
    fn cors_headers(&self) -> Vec<(&'static str, String)> {
        let Some(origin) = &self.cors else {
            return Vec::new();
        };
        vec![
            ("Access-Control-Allow-Origin", origin.to_string()),
            ("Vary", "Origin".to_string()),
            (
                "Access-Control-Expose-Headers",
                "Msgbus-Id, Msgbus-Subscribers, Msgbus-Missed".to_string(),
            ),
        ]
    }

    fn answer_preflight(&mut self, resource: &Resource, reply: Reply) -> Option<Next> {
        let mut head = Head::new(reply.minor_version, Status::NO_CONTENT)
            .header("Allow", resource.allow_header());
        for (name, value) in self.cors_headers() {
            head = head.header(name, value);
        }
        if self.cors.is_some() {
            head = head
                .header("Access-Control-Allow-Methods", resource.allow_header())
                .header(
                    "Access-Control-Allow-Headers",
                    "Authorization, Content-Type, Last-Event-ID, Msgbus-Key, Msgbus-Event",
                )
                .header("Access-Control-Max-Age", 86400u32);
        }
        let head = head.finish(reply.minor_version, reply.keep_alive);
        self.answer(head, reply.keep_alive);
        None
    }

    fn start_publish(
        &mut self,
        request: &Request,
        query: &Query,
        reply: Reply,
        channel: String,
        who: Identity,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        let content_type = request
            .header("content-type")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or("application/octet-stream")
            .to_string();
        let options = match PublishOptions::parse(request, query, ctx.cfg) {
            Ok(options) => options,
            Err(why) => return self.refuse(request, reply, Status::BAD_REQUEST, why, &[]),
        };
        let body_len = match request.body {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        let publish = Publish {
            req: PublishRequest {
                channel,
                content_type,
                event: options.event,
                body: Vec::with_capacity(body_len),
                key: options.key,
                attributes: gate::Attributes {
                    size: options.size,
                    lifetime: options.lifetime,
                    one2one: false,
                },
                ..PublishRequest::default()
            },
            who: Publisher::Client(who),
            reply,
            json_answer: accepts(request, "application/json"),
            via_websocket: false,
            door: None,
            door_answer: None,
        };
        self.read_body(request, publish, ctx)
    }

    /// Reads the request's body into `publish`, then hands it on.
    pub fn read_body(
        &mut self,
        request: &Request,
        publish: Publish,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        let for_door = publish.door.is_some();
        if !request.has_body() && !for_door {
            return Some(Next::Publish(Box::new(publish)));
        }
        if request.expect_continue && request.has_body() {
            self.outq
                .push_own(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
        }
        let framing = if request.has_body() {
            request.body
        } else {
            BodyFraming::Length(0)
        };
        self.phase = Phase::Body(Box::new(BodyState {
            publish,
            framing,
            decoder: ChunkedDecoder::new(),
            deadline: ctx.now + ctx.cfg.body_timeout,
        }));
        if for_door {
            // The door is inside its own call now: the body is read (and handed to it) by the
            // loop in `advance` once that call has returned.
            return None;
        }
        Some(self.advance(ctx))
    }

    /// A door's POST: reads the body, then hands it to the door (`Door::on_body`) with `state`.
    pub fn read_door_body(
        &mut self,
        req: &DoorRequest,
        who: Publisher,
        state: DoorState,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        let publish = Publish {
            req: PublishRequest::default(),
            who,
            reply: req.reply,
            json_answer: false,
            via_websocket: false,
            door: Some((ctx.door_id, state)),
            door_answer: None,
        };
        self.read_body(req.request, publish, ctx)
    }

    /// Subscribes the connection to each admitted topic, in a door's wire format (a topic the
    /// bus cannot take, past `--max-channels`, is left out, as the older servers did).
    pub fn subscribe_door(&mut self, topics: &[gate::Topic], wire: Wire, ctx: &mut Ctx) {
        for topic in topics {
            let subscriber = crate::bus::Subscriber {
                conn: ctx.key,
                wire,
                filter: None,
            };
            if let Ok(id) = ctx.bus.subscribe(topic, subscriber, ctx.now) {
                self.subscriptions.push(id);
            }
        }
    }

    /// A door's POST body has arrived: the door takes it from here.
    fn finish_door_post(&mut self, mut publish: Publish, ctx: &mut Ctx) -> Next {
        let (id, state) = publish.door.take().expect("a door's POST");
        let Some(mut door) = ctx.doors.take(id) else {
            return Next::Close(Reason::BadRequest);
        };
        ctx.door_id = id;
        let next = door.on_body(self, state, publish, ctx);
        ctx.doors.put_back(id, door);
        next
    }

    /// The publish just handed over waits for the store (`bus::history`): its answer comes
    /// with `on_committed`, and every answer after it waits behind it.
    pub fn hold_for_commit(&mut self, keep_alive: bool) {
        self.after_commit.push_back(Deferred::Held(keep_alive));
    }

    /// Whether a publish of this connection waits for the store.
    pub fn awaiting_commit(&self) -> bool {
        !self.after_commit.is_empty()
    }

    /// While a publish is held, only a native publish is handled after it (so one connection
    /// can pipeline publishes into one commit): every answer it can get goes through `answer`,
    /// which keeps it in order. Anything else waits until the held answers are out.
    fn next_is_plain_publish(&self, cfg: &Config) -> bool {
        let closes = self
            .after_commit
            .iter()
            .any(|d| matches!(d, Deferred::Held(false) | Deferred::Answer(_, false)));
        if closes || !self.pending_publishes.is_empty() {
            return false;
        }
        if matches!(self.phase, Phase::Body(_)) {
            // The body of a publish let through.
            return true;
        }
        if !matches!(self.phase, Phase::Head { .. }) {
            return false;
        }
        match parse_head(self.input.unread(), cfg.max_head, cfg.max_body) {
            Ok(Parsed::Complete(request, _)) => {
                request.method == Method::Post
                    && request.target.starts_with("/msgbus/")
                    && !request.expect_continue
            }
            _ => false,
        }
    }

    /// The store committed (or failed) the oldest held publish: its answer goes out, then the
    /// answers that waited behind it, up to the next held one.
    pub fn on_committed(
        &mut self,
        publish: &mut Publish,
        outcome: Result<Published, Refused>,
        doors: &mut Doors,
    ) {
        let behind = match self
            .after_commit
            .iter()
            .position(|d| matches!(d, Deferred::Held(_)))
        {
            Some(at) => self.after_commit.split_off(at + 1),
            None => std::collections::VecDeque::new(),
        };
        self.after_commit.clear();
        self.answer_publish(publish, outcome, doors);
        self.after_commit = behind;
        while let Some(Deferred::Answer(..)) = self.after_commit.front() {
            if let Some(Deferred::Answer(response, _)) = self.after_commit.pop_front() {
                self.outq.push_own(response);
            }
        }
    }

    /// Queues the answer to a publish the reactor has carried out: the door's, when a door
    /// took it.
    pub fn answer_publish(
        &mut self,
        publish: &mut Publish,
        outcome: Result<Published, Refused>,
        doors: &mut Doors,
    ) {
        if let Some((id, state)) = publish.door_answer.take() {
            if let Some(door) = doors.get_mut(id) {
                door.answer_publish(self, state, publish.reply, outcome);
            }
            return;
        }
        if publish.via_websocket {
            if let Err(e) = outcome {
                let reason = e.to_string();
                let code = match e {
                    // 1013, Try Again Later: the client may reconnect and publish again.
                    Refused::Unavailable(_) => 1013,
                    _ => crate::transport::websocket::CLOSE_POLICY,
                };
                self.close_websocket(code, &reason);
            }
            return;
        }
        let reply = publish.reply;
        let minor = reply.minor_version;
        let done = match outcome {
            Ok(done) => done,
            Err(e) => {
                if e == Refused::Bus(BusError::ChannelLimit) {
                    self.stat_events.push(StatEvent::Limited(Limit::Channels));
                }
                let status = e.status();
                let extra = self.cors_headers();
                let mut extra: Vec<(&str, &str)> =
                    extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
                if let Refused::Unavailable(_) = e {
                    extra.push(("Retry-After", "1"));
                }
                let answer = response::plain(
                    minor,
                    status,
                    &e.to_string(),
                    &extra,
                    reply.keep_alive,
                    false,
                );
                self.answer(answer, reply.keep_alive);
                return;
            }
        };
        let status = if publish.json_answer {
            Status::OK
        } else {
            Status::NO_CONTENT
        };
        let (id, recipients) = (done.id, done.recipients);
        let mut head = Head::new(minor, status)
            .header("Msgbus-Id", id)
            .header("Msgbus-Subscribers", recipients);
        for (name, value) in self.cors_headers() {
            head = head.header(name, value);
        }
        if !publish.json_answer {
            let head = head.finish(minor, reply.keep_alive);
            self.answer(head, reply.keep_alive);
            return;
        }
        let body = format!("{{\"id\":{id},\"subscribers\":{recipients}}}\n");
        let mut response = head
            .header("Content-Type", "application/json")
            .header("Content-Length", body.len())
            .finish(minor, reply.keep_alive);
        response.extend_from_slice(body.as_bytes());
        self.answer(response, reply.keep_alive);
    }

    /// Queues the answer to a channel deletion.
    pub fn answer_delete(&mut self, reply: Reply, outcome: Result<usize, BusError>) {
        let minor = reply.minor_version;
        let extra = self.cors_headers();
        let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let answer = match outcome {
            Ok(subscribers) => {
                let mut head =
                    Head::new(minor, Status::NO_CONTENT).header("Msgbus-Subscribers", subscribers);
                for (name, value) in &extra {
                    head = head.header(name, value);
                }
                head.finish(minor, reply.keep_alive)
            }
            Err(e) => {
                let status = bus_error_status(e);
                response::plain(
                    minor,
                    status,
                    &e.to_string(),
                    &extra,
                    reply.keep_alive,
                    false,
                )
            }
        };
        self.answer(answer, reply.keep_alive);
    }

    /// Answers `/msgbus-status/channels.json` (a page: `?after=NAME&limit=N`, 100 by default,
    /// at most `CHANNEL_PAGE_MAX`) or `/msgbus-status/channels/NAME.json` from this node's bus.
    fn answer_channel_page(
        &mut self,
        page: Resource,
        request: &Request,
        query: &Query,
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        let body = match page {
            Resource::ChannelInfo(name) => match ctx.bus.channel_info(&name, ctx.now) {
                Some(info) => crate::stats::render_channel(&info, &ctx.stats.wire_names),
                None => {
                    let why = "no such channel";
                    return self.refuse(request, reply, Status::NOT_FOUND, why, &[]);
                }
            },
            _ => {
                let limit = match query.get("limit").map(str::parse::<usize>) {
                    None => CHANNEL_PAGE_DEFAULT,
                    Some(Ok(n)) if (1..=CHANNEL_PAGE_MAX).contains(&n) => n,
                    Some(_) => {
                        let why = "limit must be a number from 1 to 1000";
                        return self.refuse(request, reply, Status::BAD_REQUEST, why, &[]);
                    }
                };
                let after = query.get("after").unwrap_or("");
                let (page, more) = ctx.bus.channels_after(after, limit, ctx.now);
                crate::stats::render_channel_page(&page, more)
            }
        };
        self.answer_status(reply, "application/json", &body);
        None
    }

    pub fn answer_status(&mut self, reply: Reply, content_type: &str, body: &str) {
        let response = response::with_body(
            reply.minor_version,
            Status::OK,
            content_type,
            body.as_bytes(),
            reply.keep_alive,
            reply.head_only,
        );
        self.answer(response, reply.keep_alive);
    }

    pub fn answer(&mut self, response: Vec<u8>, keep_alive: bool) {
        // "HTTP/1.x NNN ...": errors are counted by status.
        let status = response
            .get(9..12)
            .and_then(|code| std::str::from_utf8(code).ok())
            .and_then(|code| code.parse::<u16>().ok());
        if let Some(status) = status.filter(|s| *s >= 400) {
            self.stat_events.push(StatEvent::Refused(status));
        }
        self.log_access(status.unwrap_or(0), response.len());
        if self.awaiting_commit() {
            // Closing stops the reading now; the half-close waits for the held answers
            // (`on_drained`).
            self.after_commit
                .push_back(Deferred::Answer(response, keep_alive));
            if !keep_alive {
                self.phase = Phase::Closing;
            }
            return;
        }
        self.outq.push_own(response);
        if !keep_alive {
            self.phase = Phase::Closing;
        }
    }

    /// A door's own reply: its status and headers, then Content-Length and the body.
    pub fn answer_framed<'h>(
        &mut self,
        reply: Reply,
        code: u16,
        headers: impl IntoIterator<Item = (&'h str, &'h str)>,
        body: &[u8],
    ) -> Option<Next> {
        self.answer(framed(reply, code, headers, body), reply.keep_alive);
        None
    }

    /// A static file: the reactor opens it (`Next::OpenFile`) and says what it found.
    fn serve_file(&mut self, path: &str, request: &Request, reply: Reply) -> Option<Next> {
        let since = request
            .header("if-modified-since")
            .and_then(date::parse_http_date);
        // A body we will not read would be taken for the next request.
        let reply = Reply {
            keep_alive: reply.keep_alive && !request.has_body(),
            ..reply
        };
        Some(Next::OpenFile(Box::new(FileAsk {
            path: path.to_string(),
            reply,
            since,
        })))
    }

    /// Answers a file request with what the reactor found: 404, 304, a HEAD's head, or the
    /// head and then the file's bytes as the reactor feeds them. Returns whether it wants them.
    pub fn answer_file(&mut self, ask: &FileAsk, found: Option<FileFound>) -> bool {
        let reply = ask.reply;
        let minor = reply.minor_version;
        let Some(file) = found else {
            let extra = self.cors_headers();
            let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let answer = response::plain(
                minor,
                Status::NOT_FOUND,
                "not found",
                &extra,
                reply.keep_alive,
                reply.head_only,
            );
            self.answer(answer, reply.keep_alive);
            return false;
        };
        let last_modified = date::format_http_date(file.modified);
        if ask.since.is_some_and(|since| file.modified <= since) {
            let head = Head::new(minor, Status::NOT_MODIFIED)
                .header("Last-Modified", &last_modified)
                .finish(minor, reply.keep_alive);
            self.answer(head, reply.keep_alive);
            return false;
        }
        let head = Head::new(minor, Status::OK)
            .header("Content-Type", file.content_type)
            .header("Content-Length", file.len)
            .header("Last-Modified", &last_modified)
            .finish(minor, reply.keep_alive);
        if reply.head_only || file.len == 0 {
            self.answer(head, reply.keep_alive);
            return false;
        }
        debug!("DOC {} {} ({})", self.client, ask.path, file.len);
        self.log_access(200, file.len as usize);
        self.outq.push_own(head);
        self.phase = Phase::File(Box::new(FileState {
            remaining: file.len,
            keep_alive: reply.keep_alive,
        }));
        true
    }

    /// How many bytes of the file being sent the session takes now (0: none, or no file).
    pub fn file_wanted(&self) -> usize {
        match &self.phase {
            Phase::File(state) if self.outq.queued_bytes() < FILE_QUEUE_BYTES => {
                state.remaining.min(FILE_READ_BYTES as u64) as usize
            }
            _ => 0,
        }
    }

    /// The next piece of the file being sent. Returns false when the file has ended short of
    /// its promised length (it shrank): the connection cannot be answered rightly, close it.
    pub fn on_file_data(&mut self, piece: Vec<u8>) -> bool {
        let Phase::File(state) = &mut self.phase else {
            return true;
        };
        if piece.is_empty() {
            return false;
        }
        state.remaining = state.remaining.saturating_sub(piece.len() as u64);
        let done = state.remaining == 0;
        let keep_alive = state.keep_alive;
        self.outq.push_own(piece);
        if done {
            self.phase = if keep_alive {
                Phase::Head { deadline: None }
            } else {
                Phase::Closing
            };
        }
        true
    }

    /// Whether a file is being sent (the reactor keeps it open while it is).
    pub fn sending_file(&self) -> bool {
        matches!(self.phase, Phase::File(_))
    }

    /// Answers a request that is refused after its head. If it has a body we did not read,
    /// the connection closes after the answer.
    pub fn refuse(
        &mut self,
        request: &Request,
        reply: Reply,
        status: Status,
        reason: &str,
        extra: &[(&str, &str)],
    ) -> Option<Next> {
        let keep_alive = reply.keep_alive && !request.has_body();
        let minor = reply.minor_version;
        let cors = self.cors_headers();
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        headers.extend(cors.iter().map(|(n, v)| (*n, v.as_str())));
        self.answer(
            response::plain(minor, status, reason, &headers, keep_alive, reply.head_only),
            keep_alive,
        );
        None
    }

    /// Who sends the request, as the gate sees it: Basic credentials (checked against `-s`)
    /// and a token from `Authorization: Bearer` or `?token=`.
    pub fn identify(
        &self,
        request: &Request,
        query: &Query,
        ctx: &Ctx,
    ) -> Result<Identity, Refusal> {
        let credentials = Credentials {
            authorization: request.header("authorization"),
            token: query.get("token"),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        ctx.gate.identify(credentials, now)
    }

    /// Every door's prologue: who sends the request (the gate's `identify`, with a token from
    /// the query if there is one), or the refusal already answered (`Err(next)`).
    pub fn identify_door_request(
        &mut self,
        req: &DoorRequest,
        ctx: &Ctx,
    ) -> Result<Identity, Option<Next>> {
        let query = Query::parse(req.raw_query).unwrap_or_default();
        self.identify(req.request, &query, ctx)
            .map_err(|refusal| self.refuse_gate(req.request, req.reply, &refusal))
    }

    /// Answers the gate's refusal: its status, reason and challenge.
    pub fn refuse_gate(
        &mut self,
        request: &Request,
        reply: Reply,
        refusal: &Refusal,
    ) -> Option<Next> {
        self.count_refusal(refusal);
        let challenge = refusal.challenge.map(|c| ("WWW-Authenticate", c));
        let extra: Vec<(&str, &str)> = challenge.into_iter().collect();
        let status = Status::from_code(refusal.status);
        self.refuse(request, reply, status, &refusal.reason, &extra)
    }

    pub fn count_refusal(&mut self, refusal: &Refusal) {
        if refusal.limited == Some(gate::Limited::Subscriptions) {
            self.stat_events
                .push(StatEvent::Limited(Limit::Subscriptions));
        }
    }

    /// Answers with an error and closes: after bad input the stream cannot be trusted.
    fn fail(&mut self, minor: u8, status: Status, reason: &str, extra: &[(&str, &str)]) -> Next {
        debug!("{} {} {}: {reason}", self.client, status.0, status.1);
        self.input = Input::default();
        self.answer(
            response::plain(minor, status, reason, extra, false, false),
            false,
        );
        Next::Wait
    }

    /// Queues one message for this subscriber, applying the slow-subscriber policy; a held
    /// long-poll is answered with it (and `poll_done` set).
    pub fn enqueue_frame(
        &mut self,
        frame: Rc<[u8]>,
        id: u64,
        cfg: &Config,
        stats: &mut Stats,
    ) -> Result<(), Reason> {
        let Phase::Streaming(stream) = &self.phase else {
            return Ok(()); // ended (a goodbye is queued): nothing more belongs on this stream
        };
        // Some(chunked) for a stream whose parts may be dropped (the notice's framing).
        let droppable = match stream {
            Stream::Multipart { chunked } => Some(*chunked),
            _ => None,
        };
        let door = matches!(stream, Stream::Door(_));
        self.last_delivered = id;
        if let Some(poll) = self.take_poll() {
            stats.delivered += 1;
            self.answer_poll(&poll, &[frame], id, None);
            return Ok(());
        }
        let incoming = frame.len();
        let queued = self.outq.queued_bytes();
        // What the socket's send buffer may hold counts in --max-queue (see `Config`).
        let limit = cfg.subscriber_queue_limit();
        if queued > 0 && queued + incoming > limit {
            // Only x-mixed-replace means "the newest replaces the rest"; an event stream that
            // lost messages silently would lie, so its client is closed and resumes instead.
            let chunked = match droppable {
                Some(chunked) if cfg.slow_policy != SlowPolicy::Close => chunked,
                _ => {
                    info!(
                        "closing slow subscriber {} ({queued} bytes queued)",
                        self.client
                    );
                    return Err(Reason::SlowSubscriber);
                }
            };
            let notice = move |count| multipart::encode_missed_notice(count, chunked);
            let mut dropped = self.outq.drop_oldest_frames(incoming, limit, Some(&notice));
            let fits = self.outq.queued_bytes() + incoming <= limit;
            if !fits {
                // Nothing left to drop but the frame in flight: drop the new one.
                self.outq.note_dropped(1, &notice);
                dropped += 1;
            }
            stats.dropped += dropped as u64;
            if !self.dropping {
                self.dropping = true;
                info!(
                    "dropping messages for slow subscriber {} ({queued} bytes queued)",
                    self.client
                );
            }
            if !fits {
                return Ok(());
            }
        }
        stats.delivered += 1;
        if door {
            // The door's hold says what the message writes (a held read's whole answer).
            self.on_hold(|hold, out| hold.on_message(frame, id, out));
            return Ok(());
        }
        self.outq.push_frame(frame);
        Ok(())
    }

    /// Lets the door's hold handle an event, then follows what it says: still held, answered
    /// (the connection takes its next request or closes), or closing.
    fn on_hold(&mut self, event: impl FnOnce(&mut dyn Hold, &mut OutQueue) -> HoldNext) {
        let Phase::Streaming(Stream::Door(hold)) = &mut self.phase else {
            return;
        };
        match event(hold.as_mut(), &mut self.outq) {
            HoldNext::Stay => {}
            HoldNext::Answered { keep_alive } => {
                self.poll_done = true;
                self.phase = if keep_alive {
                    Phase::Head { deadline: None }
                } else {
                    Phase::Closing
                };
            }
            HoldNext::Close => {
                self.poll_done = true;
                self.phase = Phase::Closing;
            }
        }
    }

    /// Whether this client may read the status documents (`--status-allow`, `--status-token`).
    pub fn may_read_status(&self, request: &Request, query: &Query, cfg: &Config) -> bool {
        status_allowed(request, query, self.client, cfg)
    }

    /// Counts a subscription the bus made for this connection (released when it ends).
    pub fn add_subscription(&mut self, id: SubscriptionId) {
        self.subscriptions.push(id);
    }

    /// How many channels the connection reads now.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// Ends one subscription (a door's `unsubscribe`).
    pub fn remove_subscription(&mut self, id: SubscriptionId) {
        self.subscriptions.retain(|s| *s != id);
    }

    /// A publish for the reactor, after the one being handed over (a door that publishes
    /// several messages from one request).
    pub fn queue_publish(&mut self, publish: Publish) {
        self.pending_publishes.push(publish);
    }

    /// The next queued publish, for a door to hand to the reactor now.
    pub fn next_publish(&mut self) -> Next {
        if self.pending_publishes.is_empty() {
            Next::Wait
        } else {
            Next::Publish(Box::new(self.pending_publishes.remove(0)))
        }
    }

    /// The id of the last message queued (a door's replay sets it).
    pub fn set_last_delivered(&mut self, id: u64) {
        self.last_delivered = id;
    }

    /// Everything is said: once the queue is out, the connection half-closes.
    pub fn awaiting_close(&self) -> bool {
        matches!(self.phase, Phase::Closing)
    }

    /// The connection's phase is "closing": what is queued goes out, then it ends.
    pub fn close_after_output(&mut self) {
        self.phase = Phase::Closing;
    }

    /// A door holds the request open (or keeps a stream): `hold` answers what comes.
    pub fn hold(&mut self, hold: Box<dyn Hold>) {
        self.held_for = hold.door();
        self.phase = Phase::Streaming(Stream::Door(hold));
    }

    /// The server is stopping: subscribers are told to come back (multipart ends, SSE gets a
    /// reconnection delay spread by `key` so clients do not return all at once, a held poll is
    /// answered); an idle connection is closed. Returns a reason to close now.
    pub fn begin_shutdown(&mut self, key: usize, unsent: bool) -> Option<Reason> {
        if self.is_finished(unsent) {
            return Some(Reason::Shutdown);
        }
        match &self.phase {
            Phase::Streaming(Stream::Door(_)) => {
                self.on_hold(|hold, out| match hold.on_shutdown(out) {
                    HoldNext::Stay => HoldNext::Close,
                    next => next,
                });
                if !matches!(self.phase, Phase::Closing) {
                    self.phase = Phase::Closing;
                }
                None
            }
            Phase::Streaming(Stream::Multipart { chunked }) => {
                if *chunked {
                    self.outq.push_own(b"0\r\n\r\n".to_vec());
                }
                self.phase = Phase::Closing;
                None
            }
            Phase::Streaming(Stream::Sse { .. }) => {
                let delay = SHUTDOWN_RETRY_MS + (key as u64 % SHUTDOWN_RETRY_SPREAD_MS);
                self.outq
                    .push_own(format!("retry: {delay}\n\n").into_bytes());
                self.phase = Phase::Closing;
                None
            }
            Phase::Streaming(Stream::LongPoll(_)) => {
                let mut poll = self.take_poll().expect("matched a long-poll");
                poll.reply.keep_alive = false;
                self.answer_poll(&poll, &[], poll.cursor, None);
                None
            }
            Phase::Streaming(Stream::WebSocket(_)) => {
                self.close_websocket(
                    crate::transport::websocket::CLOSE_GOING_AWAY,
                    "server shutting down",
                );
                None
            }
            Phase::Head { .. } | Phase::Body(_)
                if self.outq.is_empty() && !self.awaiting_commit() =>
            {
                Some(Reason::Shutdown)
            }
            _ => None,
        }
    }

    /// Nothing in flight: no request being read, nothing queued. While the server stops,
    /// such a connection is closed.
    /// `unsent` says whether the socket still holds bytes of its own (TLS records).
    pub fn is_finished(&self, unsent: bool) -> bool {
        // Held answers are still to come (the store answers before the shutdown deadline).
        let quiet = self.outq.is_empty() && !unsent && !self.awaiting_commit();
        match self.phase {
            Phase::Head { .. } => quiet && self.input.unread().is_empty(),
            Phase::Lingering { .. } => true,
            Phase::Closing => quiet,
            Phase::Body(_) | Phase::File(_) | Phase::Streaming(_) => false,
        }
    }

    /// One access-log line for the request being answered (once, when the log is on).
    pub fn log_access(&mut self, status: u16, bytes: usize) {
        if let Some(line) = self.request_line.take() {
            info!(target: "access", "{} \"{line}\" {status} {bytes}", self.client);
        }
    }

    /// Takes a held long-poll out of the phase, to answer it.
    fn take_poll(&mut self) -> Option<Box<PollState>> {
        if !matches!(self.phase, Phase::Streaming(Stream::LongPoll(_))) {
            return None;
        }
        match std::mem::replace(&mut self.phase, Phase::Closing) {
            Phase::Streaming(Stream::LongPoll(poll)) => Some(poll),
            _ => unreachable!("checked above"),
        }
    }

    /// Answers a long-poll and makes the connection ready for its next request.
    fn answer_poll(
        &mut self,
        poll: &PollState,
        frames: &[Rc<[u8]>],
        cursor: u64,
        missed: Option<crate::transport::json::Missed>,
    ) {
        let mut cors = self.cors_headers();
        if let Some(missed) = missed {
            let value = format!("after={}, oldest={}", missed.after, missed.oldest);
            cors.push(("Msgbus-Missed", value));
        }
        let extra: Vec<(&str, &str)> = cors.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let answer = longpoll::PollAnswer {
            minor_version: poll.reply.minor_version,
            keep_alive: poll.reply.keep_alive,
            head_only: poll.reply.head_only,
            callback: poll.callback.as_deref(),
            extra_headers: &extra,
        };
        let outq = &mut self.outq;
        answer.encode(frames, cursor, missed, |piece| match piece {
            longpoll::Piece::Own(bytes) => outq.push_own(bytes),
            longpoll::Piece::Shared(frame) => outq.push_pinned(frame),
            longpoll::Piece::Comma => outq.push_small(b","),
        });
        self.poll_done = true;
        self.log_access(200, frames.iter().map(|f| f.len()).sum());
        self.phase = if poll.reply.keep_alive {
            Phase::Head { deadline: None }
        } else {
            Phase::Closing
        };
    }

    /// The channel was deleted: says goodbye in the transport's own way and ends the stream
    /// (a long-poll gets 410 and the connection stays open).
    pub fn end_stream(&mut self) {
        let Phase::Streaming(stream) = &mut self.phase else {
            return;
        };
        match stream {
            Stream::Multipart { chunked } => {
                if *chunked {
                    self.outq.push_own(b"0\r\n\r\n".to_vec());
                }
            }
            Stream::Door(_) => {
                self.on_hold(|hold, out| hold.on_deleted(out));
                return;
            }
            Stream::Sse { .. } => {
                let notice = sse::encode_notice(sse::DELETED_EVENT, "{}");
                self.outq.push_own(notice);
            }
            Stream::WebSocket(_) => {
                self.close_websocket(crate::transport::websocket::CLOSE_NORMAL, "channel deleted");
                return;
            }
            Stream::LongPoll(poll) => {
                let reply = poll.reply;
                let cors = self.cors_headers();
                let extra: Vec<(&str, &str)> = cors.iter().map(|(n, v)| (*n, v.as_str())).collect();
                let answer = response::plain(
                    reply.minor_version,
                    Status::GONE,
                    "channel deleted",
                    &extra,
                    reply.keep_alive,
                    reply.head_only,
                );
                self.poll_done = true;
                self.answer(answer, reply.keep_alive);
                if reply.keep_alive {
                    self.phase = Phase::Head { deadline: None };
                }
                return;
            }
        }
        self.phase = Phase::Closing;
    }

    /// The output queue emptied.
    pub fn on_drained(&mut self, now: Instant) -> Result<AfterDrain, Reason> {
        self.dropping = false;
        match self.phase {
            Phase::File(_) => Ok(AfterDrain::NeedFile),
            // Answers held behind a publish the store has not committed are still to come.
            Phase::Closing if self.awaiting_commit() => Ok(AfterDrain::Nothing),
            Phase::Closing => {
                self.phase = Phase::Lingering {
                    deadline: now + LINGER,
                };
                Ok(AfterDrain::HalfClose)
            }
            Phase::Head { .. } | Phase::Body(_) => {
                self.outq.shrink_if_empty();
                Ok(AfterDrain::ReadMore)
            }
            Phase::Streaming(_) | Phase::Lingering { .. } => {
                self.outq.shrink_if_empty();
                Ok(AfterDrain::Nothing)
            }
        }
    }

    /// The deadline this connection's phase calls for.
    pub fn deadline(&self, now: Instant, cfg: &Config) -> Option<Instant> {
        match &self.phase {
            Phase::Streaming(Stream::Multipart { .. }) => None,
            Phase::Streaming(Stream::Door(hold)) => hold.deadline(),
            Phase::Streaming(Stream::Sse { next_ping }) => Some(*next_ping),
            Phase::Streaming(Stream::LongPoll(poll)) => Some(poll.deadline),
            Phase::Streaming(Stream::WebSocket(state)) => Some(state.next_ping),
            Phase::Lingering { deadline } => Some(*deadline),
            Phase::Body(state) => Some(state.deadline),
            Phase::Head {
                deadline: Some(deadline),
            } => Some(*deadline),
            Phase::Head { deadline: None } if self.outq.is_empty() => {
                Some(now + cfg.keepalive_timeout)
            }
            Phase::Head { .. } | Phase::File(_) | Phase::Closing => Some(now + cfg.send_timeout),
        }
    }

    /// The deadline passed. Returns a reason to close now, or None after queueing something
    /// (a 408, a ping, an empty long-poll answer).
    pub fn on_timeout(&mut self, now: Instant, cfg: &Config) -> Option<Reason> {
        if self.awaiting_proxy {
            // A load balancer that sends no header in time is not answered in HTTP.
            return Some(Reason::Timeout);
        }
        let receiving = match &self.phase {
            Phase::Head { deadline: Some(_) } => !self.input.unread().is_empty(),
            Phase::Body(_) => true,
            _ => false,
        };
        match &mut self.phase {
            _ if receiving => {
                self.fail(1, Status::REQUEST_TIMEOUT, "request timed out", &[]);
                None
            }
            Phase::Lingering { .. } => Some(Reason::Done),
            Phase::Streaming(Stream::Multipart { .. }) => None,
            Phase::Streaming(Stream::Door(_)) => {
                self.on_hold(|hold, out| hold.on_timeout(now, out));
                None
            }
            Phase::Streaming(Stream::Sse { next_ping }) => {
                *next_ping = now + cfg.ping_interval;
                self.outq.push_own(sse::PING.to_vec());
                None
            }
            Phase::Streaming(Stream::LongPoll(_)) => {
                let poll = self.take_poll().expect("matched a long-poll");
                self.answer_poll(&poll, &[], poll.cursor, None);
                None
            }
            Phase::Streaming(Stream::WebSocket(state)) => {
                state.next_ping = now + cfg.ping_interval;
                let ping = crate::transport::websocket::encode_frame(
                    crate::transport::websocket::Opcode::Ping,
                    b"",
                );
                self.outq.push_own(ping);
                None
            }
            _ => Some(Reason::Timeout),
        }
    }
}

/// The user and password of an `Authorization: Basic` header, if any.
fn bus_error_status(e: BusError) -> Status {
    match e {
        BusError::WrongKey => Status::FORBIDDEN,
        BusError::NoSuchChannel => Status::NOT_FOUND,
        BusError::ChannelLimit => Status::SERVICE_UNAVAILABLE,
    }
}

/// Who sent `request`: the connection's peer, or, when that is a proxy `--trusted-proxy` names,
/// the client its forwarding headers give.
fn request_client(peer: Peer, request: &Request, cfg: &Config) -> Peer {
    match &cfg.trusted_proxy {
        Some(trusted) if peer.is_trusted_proxy(trusted) => {
            proxy::forwarded_client(request.headers(), |ip| trusted.trusts_ip(ip))
                .map_or(peer, Peer::Tcp)
        }
        _ => peer,
    }
}

/// Channels in a page of `/msgbus-status/channels.json` unless `?limit=` says otherwise, and
/// the most it may ask for.
const CHANNEL_PAGE_DEFAULT: usize = 100;
const CHANNEL_PAGE_MAX: usize = 1000;

/// Whether the client may read /status.json, /metrics and the channel pages: from an allowed
/// network or with the status token; anyone when neither is configured.
pub(super) fn status_allowed(request: &Request, query: &Query, peer: Peer, cfg: &Config) -> bool {
    if cfg.status_allow.is_none() && cfg.status_token.is_none() {
        return true;
    }
    let network_ok = match (&cfg.status_allow, peer) {
        (Some(nets), Peer::Tcp(addr)) => nets.iter().any(|net| net.contains(addr.ip())),
        // A UNIX socket's clients are local by the file's permissions.
        (Some(_), Peer::Unix) => true,
        (None, _) => false,
    };
    let token_ok = cfg.status_token.as_ref().is_some_and(|want| {
        let given = request
            .header("authorization")
            .and_then(|v| v.trim().strip_prefix("Bearer "))
            .or_else(|| query.get("token"));
        given.is_some_and(|g| constant_time_eq(g.trim().as_bytes(), want.as_bytes()))
    });
    network_ok || token_ok
}

/// The one channel a publish or delete names. A subtree path publishes to the channel named
/// by its prefix (its subtree subscribers get it once); it cannot be deleted.
fn single_channel(topics: &[Topic], subtree_ok: bool) -> Option<String> {
    match topics {
        [topic] if subtree_ok || !topic.subtree => Some(topic.name.clone()),
        _ => None,
    }
}

/// The channel key from `?key=` or a `Msgbus-Key` header.
fn channel_key(request: &Request, query: &Query) -> Option<String> {
    query
        .get("key")
        .or_else(|| request.header("msgbus-key"))
        .map(Into::into)
}

/// Whether the request's `Accept` names `media_type`.
fn accepts(request: &Request, media_type: &str) -> bool {
    request.header("accept").is_some_and(|accept| {
        accept.split(',').any(|item| {
            let item = item.split(';').next().unwrap_or("").trim();
            item.eq_ignore_ascii_case(media_type)
        })
    })
}

/// What a publisher may say besides the body: `?key=`, `?size=`, `?life=`, `?event=` (or the
/// `Msgbus-Key` / `Msgbus-Event` headers).
struct PublishOptions {
    key: Option<String>,
    size: Option<usize>,
    lifetime: Option<Duration>,
    event: Option<String>,
}

impl PublishOptions {
    fn parse(request: &Request, query: &Query, cfg: &Config) -> Result<Self, &'static str> {
        let size = match query.get("size") {
            None => None,
            Some(size) => match size.parse::<usize>() {
                Ok(n) if n <= cfg.max_history => Some(n),
                _ => return Err("size must be a whole number up to --max-history"),
            },
        };
        let lifetime = match query.get("life") {
            None => None,
            Some(life) => match life.parse::<u64>() {
                Ok(secs) if (1..=MAX_LIFETIME_SECS).contains(&secs) => {
                    Some(Duration::from_secs(secs))
                }
                _ => return Err("life must be a number of seconds from 1 to 31536000"),
            },
        };
        let event = query
            .get("event")
            .or_else(|| request.header("msgbus-event"));
        if event.is_some_and(|e| !sse::valid_event_name(e)) {
            return Err("event name must be 1 to 128 bytes on one line");
        }
        Ok(PublishOptions {
            key: channel_key(request, query),
            size,
            lifetime,
            event: event.map(Into::into),
        })
    }
}

/// A year: the longest a message may be kept.
const MAX_LIFETIME_SECS: u64 = 365 * 24 * 3600;

fn query_text(query: &Query) -> String {
    let parts: Vec<String> = query
        .pairs()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.join("&")
}
