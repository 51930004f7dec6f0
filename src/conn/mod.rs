//! One client connection: its socket, its phase in the protocol, its input and its output
//! queue. The reactor feeds it input and events; the connection answers with `Next`. It never
//! touches another connection: a publish is handed back to the reactor as `Next::Publish`.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{debug, info};

use crate::bus::{Bus, Filter, Subscriber, SubscriptionId};
use crate::config::{Config, SlowPolicy};
use crate::http::chunked::{ChunkedDecoder, Progress};
use crate::http::query::{percent_decode, split_target, Query};
use crate::http::request::{parse_head, BodyFraming, Method, Parsed, Request};
use crate::http::response::{self, Head, Status};
use crate::http::route::{route, Resource};
use crate::http::{base64, date, static_files};
use crate::io::Socket;
use crate::outq::OutQueue;
use crate::stats::{Reason, Stats};
use crate::timer::TimerSlot;
use crate::transport::{multipart, Wire};

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
}

/// What the reactor should do next for this connection.
#[derive(Debug)]
pub enum Next {
    /// Nothing until more input arrives or the output drains.
    Wait,
    /// Publish this; then call `answer_publish` and `advance` again.
    Publish(Publish),
    /// Render the status document; then call `answer_status` and `advance` again.
    Status(Reply),
    /// Close at the end of the turn.
    Close(Reason),
}

/// How to answer the request being handled.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    pub minor_version: u8,
    pub keep_alive: bool,
    pub head_only: bool,
}

#[derive(Debug)]
pub struct Publish {
    pub channel: String,
    pub content_type: String,
    pub sender: Option<String>,
    pub body: Vec<u8>,
    pub reply: Reply,
}

/// What a drained output queue means for the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterDrain {
    Nothing,
    /// More output was queued (the next piece of a file): flush again.
    Refilled,
    /// Requests may be waiting in the input: read and advance.
    ReadMore,
}

enum Phase {
    /// Between requests, or inside a head; `deadline` runs from the head's first byte.
    /// next: Body | Head (answered) | File | Streaming | Closing
    Head { deadline: Option<Instant> },
    /// Reading a published body. next: Head (after the reactor publishes it) | Closing
    Body(Box<BodyState>),
    /// Answering with a file, read as the socket drains. next: Head | Closing
    File(Box<FileState>),
    /// A subscriber: frames go out, input is discarded. next: (closed)
    Streaming,
    /// The last response is queued; once it is sent, half-close. next: Lingering
    Closing,
    /// Half-closed: input is discarded until the peer closes or the deadline. next: (closed)
    Lingering { deadline: Instant },
}

struct BodyState {
    publish: Publish,
    framing: BodyFraming,
    decoder: ChunkedDecoder,
    deadline: Instant,
}

struct FileState {
    file: File,
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
    pub sock: Socket,
    pub peer: SocketAddr,
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
    subscription: Option<SubscriptionId>,
    /// Dropping frames for slowness; logged once per episode.
    dropping: bool,
}

impl Conn {
    pub fn new(sock: Socket, peer: SocketAddr, now: Instant, cfg: &Config) -> Conn {
        Conn {
            sock,
            peer,
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
            subscription: None,
            dropping: false,
        }
    }

    pub fn subscription(&self) -> Option<SubscriptionId> {
        self.subscription
    }

    pub fn is_subscriber(&self) -> bool {
        matches!(self.phase, Phase::Streaming)
    }

    /// Whether the reactor should read more now. A client that pipelines requests but does not
    /// read the answers is not read from until they drain; a file being sent holds requests back.
    pub fn wants_input(&self, cfg: &Config) -> bool {
        match self.phase {
            Phase::Head { .. } | Phase::Body(_) => self.outq.queued_bytes() < cfg.max_queue,
            Phase::File(_) => false,
            Phase::Streaming | Phase::Closing | Phase::Lingering { .. } => true,
        }
    }

    /// Bytes read from the socket. Subscribers and closing connections discard theirs.
    pub fn on_input(&mut self, data: &[u8]) {
        if matches!(self.phase, Phase::Head { .. } | Phase::Body(_)) {
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
                    let body = &mut state.publish.body;
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
                    return Next::Publish(state.publish);
                }
                Phase::File(_) | Phase::Streaming | Phase::Closing | Phase::Lingering { .. } => {
                    return Next::Wait
                }
            }
        }
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
        let (raw_path, raw_query) = split_target(&request.target);
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
        let user = match basic_auth(&request) {
            Ok(user) => user,
            Err(why) => return Some(self.fail(minor, Status::BAD_REQUEST, why, &[])),
        };
        if let Some(secret) = &ctx.cfg.secret {
            let password = user.as_ref().map(|(_, p)| p.as_str());
            if !password.is_some_and(|p| constant_time_eq(p.as_bytes(), secret.as_bytes())) {
                let challenge = [("WWW-Authenticate", "Basic realm=\"msgbus\"")];
                return self.refuse(
                    &request,
                    reply,
                    Status::UNAUTHORIZED,
                    "unauthorized",
                    &challenge,
                );
            }
        }
        let sender = user.map(|(name, _)| name).filter(|name| !name.is_empty());
        let resource = match route(&path) {
            Ok(resource) => resource,
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
        let query = match Query::parse(raw_query) {
            Ok(query) => query,
            Err(e) => return Some(self.fail(minor, Status::BAD_REQUEST, &e.to_string(), &[])),
        };
        match (resource, request.method) {
            (Resource::Channel(channel) | Resource::Subtree(channel), Method::Post) => {
                Some(self.start_publish(&request, reply, channel, sender, ctx))
            }
            (Resource::Channel(channel), _) => self.subscribe(&channel, false, &query, reply, ctx),
            (Resource::Subtree(prefix), _) => self.subscribe(&prefix, true, &query, reply, ctx),
            (Resource::Status, _) => Some(Next::Status(reply)),
            (Resource::Static, _) => self.serve_file(&path, &request, reply, ctx),
        }
    }

    fn start_publish(
        &mut self,
        request: &Request,
        reply: Reply,
        channel: String,
        sender: Option<String>,
        ctx: &mut Ctx,
    ) -> Next {
        let content_type = request
            .header("content-type")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or("application/octet-stream")
            .to_string();
        let body_len = match request.body {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        let publish = Publish {
            channel,
            content_type,
            sender,
            body: Vec::with_capacity(body_len),
            reply,
        };
        if !request.has_body() {
            return Next::Publish(publish);
        }
        if request.expect_continue {
            self.outq
                .push_own(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec());
        }
        self.phase = Phase::Body(Box::new(BodyState {
            publish,
            framing: request.body,
            decoder: ChunkedDecoder::new(),
            deadline: ctx.now + ctx.cfg.body_timeout,
        }));
        self.advance(ctx)
    }

    /// Queues the answer to a publish the reactor has carried out.
    pub fn answer_publish(&mut self, reply: Reply, id: u64, recipients: usize) {
        let head = Head::new(reply.minor_version, Status::NO_CONTENT)
            .header("Msgbus-Id", id)
            .header("Msgbus-Subscribers", recipients)
            .finish(reply.minor_version, reply.keep_alive);
        self.answer(head, reply.keep_alive);
    }

    pub fn answer_status(&mut self, reply: Reply, json: &str) {
        let response = response::with_body(
            reply.minor_version,
            Status::OK,
            "application/json",
            json.as_bytes(),
            reply.keep_alive,
            reply.head_only,
        );
        self.answer(response, reply.keep_alive);
    }

    fn answer(&mut self, response: Vec<u8>, keep_alive: bool) {
        self.outq.push_own(response);
        if !keep_alive {
            self.phase = Phase::Closing;
        }
    }

    fn subscribe(
        &mut self,
        channel: &str,
        subtree: bool,
        query: &Query,
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        let minor = reply.minor_version;
        if reply.head_only {
            // A chunked HEAD answer has no body, so HTTP/1.1 keeps the connection.
            let keep_alive = reply.keep_alive && minor >= 1;
            self.answer(multipart::encode_stream_head(minor, true), keep_alive);
            return None;
        }
        let filter = Filter::new(query.get("type"), query.get("sender"));
        let filter = (!filter.is_empty()).then(|| Box::new(filter));
        let wire = Wire::multipart(minor >= 1, subtree);
        let id = ctx.bus.subscribe(
            channel,
            subtree,
            Subscriber {
                conn: ctx.key,
                wire,
                filter,
            },
        );
        debug!("SUB {} /msgbus/{channel} {}", self.peer, query_text(query));
        self.subscription = Some(id);
        self.phase = Phase::Streaming;
        self.outq
            .push_own(multipart::encode_stream_head(minor, false));
        Some(Next::Wait)
    }

    fn serve_file(
        &mut self,
        path: &str,
        request: &Request,
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        let minor = reply.minor_version;
        let found = ctx
            .cfg
            .docroot
            .as_deref()
            .map(|root| static_files::resolve(root, path.as_bytes()));
        let Some(Ok(file)) = found else {
            return self.refuse(request, reply, Status::NOT_FOUND, "not found", &[]);
        };
        let last_modified = date::format_http_date(file.modified);
        let since = request
            .header("if-modified-since")
            .and_then(date::parse_http_date);
        if since.is_some_and(|since| file.modified <= since) {
            let head = Head::new(minor, Status::NOT_MODIFIED)
                .header("Last-Modified", &last_modified)
                .finish(minor, reply.keep_alive);
            self.answer(head, reply.keep_alive);
            return None;
        }
        let head = Head::new(minor, Status::OK)
            .header("Content-Type", file.content_type)
            .header("Content-Length", file.len)
            .header("Last-Modified", &last_modified)
            .finish(minor, reply.keep_alive);
        if reply.head_only || file.len == 0 {
            self.answer(head, reply.keep_alive);
            return None;
        }
        debug!("DOC {} {path} ({})", self.peer, file.len);
        self.outq.push_own(head);
        self.phase = Phase::File(Box::new(FileState {
            file: file.file,
            remaining: file.len,
            keep_alive: reply.keep_alive,
        }));
        match self.refill_file() {
            Ok(()) => Some(Next::Wait),
            Err(reason) => Some(Next::Close(reason)),
        }
    }

    /// Reads the next pieces of the file being sent into the queue.
    fn refill_file(&mut self) -> Result<(), Reason> {
        let Phase::File(state) = &mut self.phase else {
            return Ok(());
        };
        while state.remaining > 0 && self.outq.queued_bytes() < FILE_QUEUE_BYTES {
            let want = state.remaining.min(FILE_READ_BYTES as u64) as usize;
            let mut piece = vec![0; want];
            match state.file.read(&mut piece) {
                // The file shrank under us: the promised length cannot be kept.
                Ok(0) | Err(_) => return Err(Reason::IoError),
                Ok(n) => {
                    piece.truncate(n);
                    state.remaining -= n as u64;
                    self.outq.push_own(piece);
                }
            }
        }
        if state.remaining == 0 {
            self.phase = if state.keep_alive {
                Phase::Head { deadline: None }
            } else {
                Phase::Closing
            };
        }
        Ok(())
    }

    /// Answers a request that is refused after its head. If it has a body we did not read,
    /// the connection closes after the answer.
    fn refuse(
        &mut self,
        request: &Request,
        reply: Reply,
        status: Status,
        reason: &str,
        extra: &[(&str, &str)],
    ) -> Option<Next> {
        let keep_alive = reply.keep_alive && !request.has_body();
        let minor = reply.minor_version;
        self.answer(
            response::plain(minor, status, reason, extra, keep_alive, reply.head_only),
            keep_alive,
        );
        None
    }

    /// Answers with an error and closes: after bad input the stream cannot be trusted.
    fn fail(&mut self, minor: u8, status: Status, reason: &str, extra: &[(&str, &str)]) -> Next {
        debug!("{} {} {}: {reason}", self.peer, status.0, status.1);
        self.input = Input::default();
        self.answer(
            response::plain(minor, status, reason, extra, false, false),
            false,
        );
        Next::Wait
    }

    /// Queues one message frame, applying the slow-subscriber policy.
    pub fn enqueue_frame(
        &mut self,
        frame: Rc<[u8]>,
        cfg: &Config,
        stats: &mut Stats,
    ) -> Result<(), Reason> {
        let incoming = frame.len();
        let queued = self.outq.queued_bytes();
        if queued > 0 && queued + incoming > cfg.max_queue {
            if cfg.slow_policy == SlowPolicy::Close {
                info!(
                    "closing slow subscriber {} ({queued} bytes queued)",
                    self.peer
                );
                return Err(Reason::SlowSubscriber);
            }
            let mut dropped = self.outq.drop_oldest_frames(incoming, cfg.max_queue);
            let fits = self.outq.queued_bytes() + incoming <= cfg.max_queue;
            if !fits {
                dropped += 1; // nothing left to drop but the frame in flight: drop the new one
            }
            stats.dropped += dropped as u64;
            if !self.dropping {
                self.dropping = true;
                info!(
                    "dropping messages for slow subscriber {} ({queued} bytes queued)",
                    self.peer
                );
            }
            if !fits {
                return Ok(());
            }
        }
        self.outq.push_frame(frame);
        stats.delivered += 1;
        Ok(())
    }

    /// The output queue emptied.
    pub fn on_drained(&mut self, now: Instant) -> Result<AfterDrain, Reason> {
        self.dropping = false;
        match self.phase {
            Phase::File(_) => {
                self.refill_file()?;
                Ok(if self.outq.is_empty() {
                    AfterDrain::ReadMore
                } else {
                    AfterDrain::Refilled
                })
            }
            Phase::Closing => {
                self.sock.shutdown_write();
                self.phase = Phase::Lingering {
                    deadline: now + LINGER,
                };
                Ok(AfterDrain::ReadMore)
            }
            Phase::Head { .. } | Phase::Body(_) => {
                self.outq.shrink_if_empty();
                Ok(AfterDrain::ReadMore)
            }
            Phase::Streaming | Phase::Lingering { .. } => {
                self.outq.shrink_if_empty();
                Ok(AfterDrain::Nothing)
            }
        }
    }

    /// The deadline this connection's phase calls for.
    pub fn deadline(&self, now: Instant, cfg: &Config) -> Option<Instant> {
        match &self.phase {
            Phase::Streaming => None,
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

    /// The deadline passed. Returns a reason to close now, or None after queueing a 408.
    pub fn on_timeout(&mut self) -> Option<Reason> {
        let receiving = match &self.phase {
            Phase::Head { deadline: Some(_) } => !self.input.unread().is_empty(),
            Phase::Body(_) => true,
            _ => false,
        };
        match self.phase {
            _ if receiving => {
                self.fail(1, Status::REQUEST_TIMEOUT, "request timed out", &[]);
                None
            }
            Phase::Lingering { .. } => Some(Reason::Done),
            Phase::Streaming => None,
            _ => Some(Reason::Timeout),
        }
    }
}

/// The user and password of an `Authorization: Basic` header, if any.
fn basic_auth(request: &Request) -> Result<Option<(String, String)>, &'static str> {
    let Some(value) = request.header("authorization") else {
        return Ok(None);
    };
    let value = value.trim();
    let Some((scheme, credentials)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::decode(credentials.trim().as_bytes()).ok_or("bad Basic credentials")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "bad Basic credentials")?;
    let (user, password) = decoded.split_once(':').ok_or("bad Basic credentials")?;
    if user.chars().any(char::is_control) {
        return Err("bad Basic user name");
    }
    Ok(Some((user.to_string(), password.to_string())))
}

/// Compares secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn query_text(query: &Query) -> String {
    let parts: Vec<String> = query
        .pairs()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(auth: &str) -> Request {
        Request {
            method: Method::Post,
            target: "/".into(),
            minor_version: 1,
            headers: vec![("authorization".into(), auth.into())],
            keep_alive: true,
            body: BodyFraming::None,
            expect_continue: false,
        }
    }

    #[test]
    fn basic_credentials() {
        let cases: &[(&str, Result<Option<(&str, &str)>, &str>)] = &[
            (
                "Basic ZHVnc29uZzpzZWNyZXQ=",
                Ok(Some(("dugsong", "secret"))),
            ),
            (
                "basic ZHVnc29uZzpzZWNyZXQ=",
                Ok(Some(("dugsong", "secret"))),
            ),
            ("Basic OnB3", Ok(Some(("", "pw")))),
            ("Bearer abc", Ok(None)),
            ("Basic !!!", Err("bad Basic credentials")),
            ("Basic bm9jb2xvbg==", Err("bad Basic credentials")),
            ("Basic YQpiOmM=", Err("bad Basic user name")),
        ];
        for (header, want) in cases {
            let got = basic_auth(&request_with(header));
            let want = want.map(|o| o.map(|(u, p)| (u.to_string(), p.to_string())));
            assert_eq!(got, want, "{header}");
        }
    }

    #[test]
    fn secrets_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
