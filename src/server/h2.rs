//! HTTP/2 in the reactor. A connection that opens with the HTTP/2 preface (cleartext prior
//! knowledge, or TLS after ALPN chose `h2`) keeps its slab entry, socket and output queue, and
//! gains an `h2::Connection`. Each stream it opens gets a slab entry of its own without a
//! socket: an ordinary session, handed the stream's request as HTTP/1.0 (`h2::bridge`), so
//! every transport, door, gate check and limit applies per stream unchanged, and the bus
//! delivers to a stream as to any subscriber.
//!
//! Flushing a stream's entry moves its queued bytes, as far as the windows allow, into the
//! connection's queue: its response head as HEADERS, then DATA frames whose payload is the
//! session's own queue entry, a shared message frame queued by reference behind a 9-byte
//! header of the stream's own. A shut window holds back only its stream; what waits stays in
//! the stream's queue, where `--max-queue`, the slow-subscriber policy and `--write-timeout`
//! apply as they do to any subscriber. The connection's queue itself takes no more than
//! `--max-queue` before its socket drains, so a peer that opens its windows wide but does
//! not read cannot make the server hold more.

use log::debug;

use super::{schedule_flush, Server, Tracked};
use crate::conn::{AfterDrain, Conn};
use crate::h2::streams::StreamMap;
use crate::h2::{self, bridge, ErrorCode, Event, PREFACE};
use crate::outq::Front;
use crate::stats::{Limit, Reason, Transport};

/// What a slab key is to HTTP/2.
pub(super) enum Link {
    /// A connection whose first bytes were not the preface: HTTP/1 for good.
    Http1,
    /// A connection speaking HTTP/2.
    Conn(Box<H2Conn>),
    /// A stream's session: its connection's key and the stream id.
    Stream { parent: usize, id: u32 },
}

pub(super) struct H2Conn {
    proto: h2::Connection,
    /// Unread input: less than one frame.
    input: Vec<u8>,
    streams: StreamMap<StreamState>,
    /// A stream stopped because the connection's queue was full: flush the streams again
    /// once it drains.
    blocked: bool,
}

/// A stream as the reactor knows it: 16 bytes once it is a subscriber whose head went out,
/// as a push server holds many of those; what a stream needs on its way there is boxed.
struct StreamState {
    /// The session's slab key.
    key: u32,
    /// The request went to the session before its body (a declared length): the stream's
    /// DATA is the session's input as it comes, under the session's body timeout.
    feed: bool,
    /// A WebSocket (extended CONNECT): after the request, the stream's DATA is the session's
    /// input, as a socket's bytes would be, and its end the socket's half-close.
    tunnel: bool,
    /// None once the request is handed over, the head is out and nothing is carried.
    setup: Option<Box<Setup>>,
}

/// What a stream holds until it settles.
#[derive(Default)]
struct Setup {
    /// The request and its body so far, until the body is whole and the session has it.
    request: Option<(h2::Request, Vec<u8>)>,
    /// The session's response bytes while its head is not whole; None once HEADERS is out.
    head: Option<Vec<u8>>,
    /// Body bytes that came with the head, sent before the rest of the queue.
    carry: Vec<u8>,
    /// The static file being sent (a stream has no `ConnIo` to keep it in).
    file: Option<std::fs::File>,
}

impl StreamState {
    fn key(&self) -> usize {
        self.key as usize
    }

    fn request_mut(&mut self) -> Option<&mut (h2::Request, Vec<u8>)> {
        self.setup.as_mut().and_then(|setup| setup.request.as_mut())
    }

    fn has_request(&self) -> bool {
        self.setup
            .as_ref()
            .is_some_and(|setup| setup.request.is_some())
    }

    fn head_pending(&self) -> bool {
        self.setup
            .as_ref()
            .is_some_and(|setup| setup.head.is_some())
    }

    fn carrying(&self) -> bool {
        self.setup
            .as_ref()
            .is_some_and(|setup| !setup.carry.is_empty())
    }

    /// Gives back the boxed part once nothing in it is needed.
    fn settle(&mut self) {
        if self.setup.as_ref().is_some_and(|setup| {
            setup.request.is_none()
                && setup.head.is_none()
                && setup.carry.is_empty()
                && setup.file.is_none()
        }) {
            self.setup = None;
        }
    }
}

/// HTTP/2 state by slab key, beside `conns` like `io` and `tracked`.
#[derive(Default)]
pub(super) struct Links {
    by_key: Vec<Option<Link>>,
    /// Stream sessions: slab entries that hold no socket, so count as no connection.
    streams: usize,
}

impl Links {
    fn get(&self, key: usize) -> Option<&Link> {
        self.by_key.get(key).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, key: usize) -> Option<&mut Link> {
        self.by_key.get_mut(key).and_then(Option::as_mut)
    }

    /// Slab entries that are streams, not connections.
    pub(super) fn streams(&self) -> usize {
        self.streams
    }

    fn take(&mut self, key: usize) -> Option<Link> {
        let link = self.by_key.get_mut(key).and_then(Option::take);
        if matches!(link, Some(Link::Stream { .. })) {
            self.streams -= 1;
        }
        link
    }

    fn conn_mut(&mut self, key: usize) -> Option<&mut H2Conn> {
        match self.get_mut(key) {
            Some(Link::Conn(hc)) => Some(hc),
            _ => None,
        }
    }

    fn set(&mut self, key: usize, link: Link) {
        if self.by_key.len() <= key {
            self.by_key.resize_with(key + 1, || None);
        }
        if matches!(link, Link::Stream { .. }) {
            self.streams += 1;
        }
        self.take(key);
        self.by_key[key] = Some(link);
    }

    pub(super) fn is_conn(&self, key: usize) -> bool {
        matches!(self.get(key), Some(Link::Conn(_)))
    }

    pub(super) fn is_stream(&self, key: usize) -> bool {
        matches!(self.get(key), Some(Link::Stream { .. }))
    }

    /// An HTTP/2 connection with streams still open: not finished, whatever its own queue.
    pub(super) fn has_streams(&self, key: usize) -> bool {
        matches!(self.get(key), Some(Link::Conn(hc)) if !hc.streams.is_empty())
    }

    /// An HTTP/2 connection's deadline: the keep-alive timeout while it has no stream.
    pub(super) fn deadline(
        &self,
        key: usize,
        now: std::time::Instant,
        cfg: &crate::config::Config,
    ) -> Option<Option<std::time::Instant>> {
        match self.get(key) {
            Some(Link::Conn(hc)) if hc.streams.is_empty() => {
                Some(Some(now + cfg.keepalive_timeout))
            }
            Some(Link::Conn(_)) => Some(None),
            _ => None,
        }
    }
}

impl Server {
    /// What a new connection advertises and holds its client to, from the options as they
    /// are now (so a reload applies to connections opened after it).
    fn h2_limits(&self) -> h2::Limits {
        let defaults = h2::Limits::default();
        h2::Limits {
            max_concurrent_streams: self.cfg.http2_max_streams,
            max_header_list_size: self.cfg.max_head.min(u32::MAX as usize) as u32,
            header_table_size: self.cfg.http2_hpack_table,
            stream_window: self.cfg.http2_window,
            // One stream may use its whole window however many others are open.
            connection_window: defaults.connection_window.max(self.cfg.http2_window),
            // WebSocket over a stream (RFC 8441).
            enable_connect_protocol: true,
            ..defaults
        }
    }

    /// The bytes just read into `scratch[..n]` for connection `key`: whether HTTP/2 took them.
    /// The first read decides: the preface (at least its first three bytes) means HTTP/2.
    pub(super) fn h2_on_input(&mut self, key: usize, n: usize) -> bool {
        if self.h2.get(key).is_none() {
            let data = &self.scratch[..n];
            let m = n.min(PREFACE.len());
            let conn = &self.conns[key];
            let link =
                if self.cfg.http2 && !conn.awaiting_proxy && n >= 3 && data[..m] == PREFACE[..m] {
                    debug!("{}: HTTP/2", conn.peer);
                    let proto = h2::Connection::new(self.h2_limits());
                    Link::Conn(Box::new(H2Conn {
                        proto,
                        input: Vec::new(),
                        streams: StreamMap::new(),
                        blocked: false,
                    }))
                } else {
                    Link::Http1
                };
            self.h2.set(key, link);
        }
        let Some(hc) = self.h2.conn_mut(key) else {
            return false;
        };
        // Input is read from the scratch buffer in place; only a frame's unread part is kept.
        if hc.input.is_empty() {
            let used = hc.proto.receive(&self.scratch[..n], self.now);
            hc.input.extend_from_slice(&self.scratch[used..n]);
        } else {
            hc.input.extend_from_slice(&self.scratch[..n]);
            let used = hc.proto.receive(&hc.input, self.now);
            hc.input.drain(..used);
            if hc.input.is_empty() {
                hc.input = Vec::new();
            }
        }
        self.h2_events(key);
        if let Some(hc) = self.h2.conn_mut(key) {
            hc.proto.shrink_idle();
        }
        true
    }

    /// Carries out what the connection's input came to, then queues its own frames.
    fn h2_events(&mut self, key: usize) {
        loop {
            let Some(hc) = self.h2.conn_mut(key) else {
                return;
            };
            let Some(event) = hc.proto.poll_event() else {
                break;
            };
            match event {
                Event::Request(req) => self.h2_open_stream(key, req),
                Event::Data {
                    stream,
                    data,
                    end_stream,
                } => {
                    let max_body = self.cfg.max_body;
                    let Some(st) = hc.streams.get_mut(stream) else {
                        continue;
                    };
                    let Some((_, body)) = st.request_mut() else {
                        if st.tunnel || st.feed {
                            let (s, closes) = (st.key(), end_stream && st.tunnel);
                            self.h2_tunnel_input(s, &data, closes);
                        }
                        continue;
                    };
                    body.extend_from_slice(&data);
                    // Past the limit the session is handed what came, and answers 413.
                    if end_stream || body.len() > max_body {
                        self.h2_hand_over(key, stream, false);
                    }
                }
                Event::Reset { stream, .. } => {
                    if let Some(st) = hc.streams.get(stream) {
                        let s = st.key();
                        self.close_later(s, Reason::PeerClosed);
                    }
                }
                Event::WindowOpened { stream } => {
                    let keys: Vec<usize> = hc
                        .streams
                        .iter()
                        .filter(|&(id, _)| stream == 0 || id == stream)
                        .map(|(_, st)| st.key())
                        .collect();
                    for s in keys {
                        if let Some(conn) = self.conns.get_mut(s) {
                            schedule_flush(&mut self.flush_list, conn, s);
                        }
                    }
                }
                Event::GoAway { .. } => {}
                Event::Failed { code, why } => {
                    debug!(
                        "{}: HTTP/2 connection error {code}: {why}",
                        self.conns[key].peer
                    );
                    self.stats.count_refusal(400);
                }
            }
        }
        self.h2_push_output(key);
    }

    /// Moves the connection's own frames into its queue; a connection that failed or is done
    /// closes once they are out, and its streams with it.
    fn h2_push_output(&mut self, key: usize) {
        let Some(hc) = self.h2.conn_mut(key) else {
            return;
        };
        let finished = hc.proto.is_done();
        let streams: Vec<usize> = if hc.proto.is_failed() {
            hc.streams.values().map(StreamState::key).collect()
        } else {
            Vec::new()
        };
        let out = hc.proto.take_output();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.outq.push_own(out);
        if finished {
            conn.close_after_output();
        }
        schedule_flush(&mut self.flush_list, conn, key);
        for s in streams {
            self.close_later(s, Reason::BadRequest);
        }
    }

    /// A new stream: a session of its own, without a socket, under a new slab key.
    fn h2_open_stream(&mut self, key: usize, req: h2::Request) {
        // A stream holds a session as a connection does: streams together stay within the
        // connection limit too, so `--http2-max-streams` on every allowed connection cannot
        // multiply what the limit was set to bound.
        if self.h2.streams() >= self.max_connections {
            if let Some(hc) = self.h2.conn_mut(key) {
                hc.proto.reset(req.stream, ErrorCode::REFUSED_STREAM);
            }
            self.stats.count_limit(Limit::Connections);
            return;
        }
        let (peer, client) = (self.conns[key].peer, self.conns[key].client);
        let mut conn = Conn::new(peer, self.now, &self.cfg);
        conn.client = client;
        let s = self.conns.insert(conn);
        if self.tracked.len() <= s {
            self.tracked.resize(s + 1, Tracked::NEW);
            self.io.resize_with(s + 1, || None);
        }
        self.tracked[s] = Tracked::NEW;
        self.io[s] = None;
        self.by_transport[Transport::Http as usize] += 1;
        let id = req.stream;
        let tunnel = bridge::is_websocket(&req);
        // A WebSocket's request has no body: its DATA is the socket's bytes. A body of declared
        // length goes to the session as it comes, so its time is the session's body timeout.
        let feed = !req.end_stream && !tunnel && req.content_length.is_some();
        let hand_over = req.end_stream || tunnel || feed;
        self.h2.set(s, Link::Stream { parent: key, id });
        let Some(hc) = self.h2.conn_mut(key) else {
            return;
        };
        hc.streams.insert(
            id,
            StreamState {
                key: s as u32,
                feed,
                tunnel,
                setup: Some(Box::new(Setup {
                    request: Some((req, Vec::new())),
                    head: Some(Vec::new()),
                    ..Setup::default()
                })),
            },
        );
        if hand_over {
            self.h2_hand_over(key, id, feed);
        } else {
            // A body of no declared length is gathered whole within the head timeout; past it
            // the session answers 408, so a stream cannot be held open by never ending it.
            self.rearm(s);
        }
    }

    /// The request is whole (or its body over the limit, or to follow as `feed` says): the
    /// stream's session gets it.
    fn h2_hand_over(&mut self, key: usize, id: u32, feed: bool) {
        let Some(hc) = self.h2.conn_mut(key) else {
            return;
        };
        let Some(st) = hc.streams.get_mut(id) else {
            return;
        };
        let s = st.key();
        let Some((req, body)) = st.setup.as_mut().and_then(|setup| setup.request.take()) else {
            return;
        };
        let body = match req.content_length {
            Some(length) if feed => bridge::Body::Follows(length),
            _ => bridge::Body::Whole(&body),
        };
        match bridge::request_bytes(&req, body) {
            Ok(bytes) => {
                self.conns[s].on_input(&bytes);
                self.drive(s);
                self.rearm(s);
            }
            Err(why) => {
                let status: &[u8] = b"400";
                let fields = [
                    (&b":status"[..], status),
                    (&b"content-type"[..], &b"text/plain"[..]),
                ];
                if hc.proto.send_headers(id, fields, false).is_ok() {
                    let _ = hc.proto.send_data(id, format!("{why}\n").as_bytes(), true);
                }
                st.setup = None;
                self.stats.count_refusal(400);
                self.close_later(s, Reason::BadRequest);
                self.h2_push_output(key);
            }
        }
    }

    /// Bytes of a WebSocket over a stream, or of a body that follows its request: the
    /// session's input. A WebSocket stream's end is the peer closing its side.
    fn h2_tunnel_input(&mut self, s: usize, data: &[u8], end_stream: bool) {
        let Some(conn) = self.conns.get_mut(s) else {
            return;
        };
        if conn.closing {
            return;
        }
        conn.on_input(data);
        self.drive(s);
        if end_stream {
            if let Some(conn) = self.conns.get_mut(s) {
                match conn.on_peer_closed() {
                    Some(reason) => self.close_later(s, reason),
                    None => schedule_flush(&mut self.flush_list, conn, s),
                }
            }
        }
        self.rearm(s);
    }

    /// A stream's flush: its response head as HEADERS, then as much of its queue as the
    /// windows and the connection's queue take, as DATA; the end of its answer ends the stream.
    pub(super) fn h2_flush_stream(&mut self, s: usize) {
        let Some(&Link::Stream { parent, id }) = self.h2.get(s) else {
            return;
        };
        let now = self.now;
        let limit = self.cfg.max_queue;
        let Some(hc) = self.h2.conn_mut(parent) else {
            return;
        };
        let Some((sc, kc)) = self.conns.get2_mut(s, parent) else {
            return;
        };
        let Some(st) = hc.streams.get_mut(id) else {
            return;
        };
        let mut moved = 0;
        let mut refused = false;
        if let Some(setup) = st.setup.as_deref_mut() {
            while let Some(head) = setup.head.as_mut() {
                match sc.outq.take_front(usize::MAX) {
                    None => break,
                    Some(Front::Shared(frame)) => head.extend_from_slice(&frame),
                    Some(Front::Bytes(bytes)) => head.extend_from_slice(&bytes),
                }
                match bridge::parse_response_head(head) {
                    Ok(None) => {}
                    Ok(Some((parsed, len))) => {
                        setup.carry = head[len..].to_vec();
                        setup.head = None;
                        let status = parsed.status.to_string();
                        let fields = std::iter::once((&b":status"[..], status.as_bytes()))
                            .chain(parsed.fields.iter().map(|(n, v)| (&n[..], &v[..])));
                        if hc.proto.send_headers(id, fields, false).is_err() {
                            refused = true;
                        }
                    }
                    Err(why) => {
                        debug!("stream {id}: {why}");
                        hc.proto.reset(id, ErrorCode::INTERNAL_ERROR);
                        setup.head = None;
                        refused = true;
                    }
                }
            }
        }
        kc.outq.push_own(hc.proto.take_output());
        while !st.head_pending() && !refused {
            if kc.outq.queued_bytes() >= limit {
                hc.blocked = true;
                break;
            }
            let room = hc.proto.send_window(id).min(hc.proto.max_frame());
            if room == 0 {
                break;
            }
            let carry = st.setup.as_deref_mut().map(|setup| &mut setup.carry);
            let piece = match carry.filter(|carry| !carry.is_empty()) {
                None => match sc.outq.take_front(room) {
                    Some(piece) => piece,
                    None => break,
                },
                Some(carry) if carry.len() <= room => Front::Bytes(std::mem::take(carry)),
                Some(carry) => Front::Bytes(carry.drain(..room).collect()),
            };
            let len = match &piece {
                Front::Shared(frame) => frame.len(),
                Front::Bytes(bytes) => bytes.len(),
            };
            let Ok(head) = hc.proto.data_head(id, len, false) else {
                refused = true;
                break;
            };
            kc.outq.push_small(&head);
            match piece {
                Front::Shared(frame) => kc.outq.push_pinned(frame),
                Front::Bytes(bytes) => kc.outq.push_own(bytes),
            }
            moved += len;
        }
        let mut ended = refused;
        if !refused && !st.head_pending() && !st.carrying() && sc.outq.is_empty() {
            match sc.on_drained(now) {
                Ok(AfterDrain::HalfClose | AfterDrain::ReadMore) => {
                    if let Ok(head) = hc.proto.data_head(id, 0, true) {
                        kc.outq.push_small(&head);
                    }
                    ended = true;
                }
                Ok(AfterDrain::NeedFile) => {
                    // More of a static file: read it into the stream's queue and go on.
                    let setup = st.setup.as_deref_mut();
                    if let Some(setup) = setup.filter(|setup| setup.file.is_some()) {
                        let file = setup.file.as_mut().expect("checked above");
                        if feed_file(sc, file).is_err() {
                            hc.proto.reset(id, ErrorCode::INTERNAL_ERROR);
                            ended = true;
                        } else if !sc.outq.is_empty() {
                            schedule_flush(&mut self.flush_next, sc, s);
                        }
                        if !sc.sending_file() {
                            setup.file = None;
                        }
                    }
                }
                Ok(AfterDrain::Nothing) => {}
                Err(_) => ended = true,
            }
        }
        st.settle();
        kc.outq.push_own(hc.proto.take_output());
        if !kc.outq.is_empty() {
            schedule_flush(&mut self.flush_list, kc, parent);
        }
        if moved > 0 {
            self.tracked[s].stalled_since = None;
        }
        if ended {
            self.close_later(s, Reason::Done);
        }
        self.rearm(s);
    }

    /// After the connection's socket took some of its queue: streams held back by a full
    /// queue may go on.
    pub(super) fn h2_after_flush(&mut self, key: usize) {
        let limit = self.cfg.max_queue;
        let queued = self.conns.get(key).map_or(0, |c| c.outq.queued_bytes());
        let Some(hc) = self.h2.conn_mut(key) else {
            return;
        };
        if !hc.blocked || queued >= limit {
            return;
        }
        hc.blocked = false;
        let keys: Vec<usize> = hc.streams.values().map(StreamState::key).collect();
        for s in keys {
            if let Some(conn) = self.conns.get_mut(s) {
                if !conn.outq.is_empty() {
                    schedule_flush(&mut self.flush_next, conn, s);
                }
            }
        }
    }

    /// A static file for a stream's session: kept with the stream, fed as it drains.
    pub(super) fn h2_keep_file(&mut self, s: usize, mut file: std::fs::File) -> Result<(), Reason> {
        let Some(&Link::Stream { parent, id }) = self.h2.get(s) else {
            return Ok(());
        };
        feed_file(&mut self.conns[s], &mut file)?;
        if self.conns[s].sending_file() {
            if let Some(st) = self
                .h2
                .conn_mut(parent)
                .and_then(|hc| hc.streams.get_mut(id))
            {
                st.setup.get_or_insert_with(Box::default).file = Some(file);
            }
        }
        Ok(())
    }

    /// A connection's deadline passed: one without streams is closed with GOAWAY.
    pub(super) fn h2_on_timeout(&mut self, key: usize) {
        let Some(hc) = self.h2.conn_mut(key) else {
            return;
        };
        if hc.streams.is_empty() {
            hc.proto.go_away(ErrorCode::NO_ERROR);
            self.h2_push_output(key);
            if let Some(conn) = self.conns.get_mut(key) {
                conn.close_after_output();
            }
        }
    }

    /// Shutdown or reload: GOAWAY, so the peer opens no new stream here; open streams go on
    /// (at shutdown their sessions say goodbye in their transport's way), and the connection
    /// closes when the last one ends. Returns whether `key` is an HTTP/2 connection.
    pub(super) fn h2_go_away(&mut self, key: usize) -> bool {
        let Some(hc) = self.h2.conn_mut(key) else {
            return false;
        };
        hc.proto.go_away(ErrorCode::NO_ERROR);
        let idle = hc.streams.is_empty();
        self.h2_push_output(key);
        if idle {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.close_after_output();
            }
        }
        true
    }

    pub(super) fn h2_go_away_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.h2_go_away(key);
        }
    }

    /// Slab entry `key` is being removed. A stream that ends before its answer did is reset
    /// (a subscriber's stream ended by the server ends cleanly); a connection takes its
    /// streams with it.
    pub(super) fn h2_on_close(&mut self, key: usize, reason: Reason) {
        let link = self.h2.take(key);
        match link {
            Some(Link::Stream { parent, id }) => {
                let Some(hc) = self.h2.conn_mut(parent) else {
                    return;
                };
                let Some(st) = hc.streams.remove(id) else {
                    return;
                };
                if hc.proto.can_send(id) {
                    let clean = matches!(reason, Reason::Done | Reason::Shutdown | Reason::Timeout);
                    if st.has_request() && reason == Reason::Timeout {
                        // The body never came whole: the session, which never saw the request,
                        // said nothing; the client is told why.
                        let fields = [
                            (&b":status"[..], &b"408"[..]),
                            (&b"content-type"[..], &b"text/plain"[..]),
                        ];
                        if hc.proto.send_headers(id, fields, false).is_ok() {
                            let why = b"request body not received in time\n";
                            let _ = hc.proto.send_data(id, why, true);
                        }
                        self.stats.count_refusal(408);
                    } else if !clean || st.head_pending() {
                        hc.proto.reset(id, ErrorCode::CANCEL);
                    } else if let Ok(head) = hc.proto.data_head(id, 0, true) {
                        let out = hc.proto.take_output();
                        if let Some(conn) = self.conns.get_mut(parent) {
                            conn.outq.push_own(out);
                            conn.outq.push_small(&head);
                        }
                    }
                }
                // Answered while the client was still sending: it may stop (RFC 9113 section
                // 8.1); a stream already closed both ways is not touched.
                hc.proto.reset(id, ErrorCode::NO_ERROR);
                let done = hc.proto.is_done();
                let out = hc.proto.take_output();
                if let Some(conn) = self.conns.get_mut(parent) {
                    conn.outq.push_own(out);
                    if done {
                        conn.close_after_output();
                    }
                    schedule_flush(&mut self.flush_next, conn, parent);
                }
            }
            Some(Link::Conn(hc)) => {
                for st in hc.streams.values() {
                    self.close_later(st.key(), reason);
                }
            }
            Some(Link::Http1) | None => {}
        }
    }
}

/// Reads the next pieces of a static file into a stream's session, as much as it takes now.
fn feed_file(conn: &mut Conn, file: &mut std::fs::File) -> Result<(), Reason> {
    use std::io::Read;
    loop {
        let want = conn.file_wanted();
        if want == 0 {
            return Ok(());
        }
        let mut piece = vec![0; want];
        let n = match file.read(&mut piece) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        piece.truncate(n);
        if !conn.on_file_data(piece) {
            return Err(Reason::IoError);
        }
    }
}
