//! One HTTP/2 connection, server side, without I/O and without a clock of its own: bytes in
//! (`receive`), events out (`poll_event`), and an output buffer of the frames the connection
//! itself writes (`take_output`). DATA for a response is not copied here: the caller asks how
//! much a stream may send (`send_window`), takes the 9-byte header (`data_head`) and sends it
//! before its own, possibly shared, payload bytes.
//!
//! It keeps the rules that are the connection's: the preface, stream states and ids, HPACK in
//! step, flow control both ways, and the abuse limits (concurrent streams, header list and
//! block size, CONTINUATION floods, rapid reset, PING and SETTINGS floods, empty frames).
//! What a request means is the caller's: it gets the checked pseudo-headers and fields.

use std::collections::VecDeque;
use std::time::Instant;

use super::frame::{self, ErrorCode, Frame, FrameError, Head, HEADER_LEN, MAX_WINDOW, PREFACE};
use super::hpack::{self, Decoded, Field};
use super::streams::StreamMap;

/// What the connection allows its peer; each is advertised in our SETTINGS where one exists.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_concurrent_streams: u32,
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`: past it a request gets 431.
    pub max_header_list_size: u32,
    /// `SETTINGS_HEADER_TABLE_SIZE`: the HPACK dynamic table the peer may make us keep.
    pub header_table_size: u32,
    /// `SETTINGS_INITIAL_WINDOW_SIZE`: what a client may send on a stream before we grant more.
    pub stream_window: u32,
    /// The connection's receive window (raised from 65,535 by a WINDOW_UPDATE at the start).
    pub connection_window: u32,
    /// Frames of a header block (HEADERS and its CONTINUATIONs) before the connection is
    /// taken for a CONTINUATION flood.
    pub max_header_frames: u32,
    /// RST_STREAMs from the peer: this many at once, then this many per second.
    pub reset_burst: u32,
    pub reset_rate: u32,
    /// PINGs, SETTINGS and empty DATA frames from the peer, each counted on its own: this
    /// many at once, then this many per second.
    pub control_burst: u32,
    pub control_rate: u32,
    /// Our own frames not yet taken by the caller: past this the peer is sending faster than
    /// it reads what it asks for (PING and SETTINGS acks).
    pub max_pending_output: usize,
    /// Offer extended CONNECT (RFC 8441), for WebSocket over a stream.
    pub enable_connect_protocol: bool,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_concurrent_streams: 128,
            max_header_list_size: 16 * 1024,
            header_table_size: 4096,
            stream_window: 256 * 1024,
            connection_window: 1024 * 1024,
            max_header_frames: 16,
            reset_burst: 100,
            reset_rate: 20,
            control_burst: 50,
            control_rate: 10,
            max_pending_output: 64 * 1024,
            enable_connect_protocol: true,
        }
    }
}

impl Limits {
    /// Header block bytes accepted before decoding: the list limit with room for literal
    /// framing, since a compressed field can be a little longer than its text.
    fn max_header_block(&self) -> usize {
        self.max_header_list_size as usize * 2 + 1024
    }
}

/// A request's head, checked as RFC 9113 section 8.2 and 8.3 say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub stream: u32,
    pub method: Vec<u8>,
    /// Empty for a plain CONNECT (which has none).
    pub scheme: Vec<u8>,
    pub authority: Option<Vec<u8>>,
    /// Empty for a plain CONNECT.
    pub path: Vec<u8>,
    /// Extended CONNECT's protocol (RFC 8441), e.g. `websocket`.
    pub protocol: Option<Vec<u8>>,
    /// The regular fields, in order; names lowercase, values without CR, LF or NUL.
    pub fields: Vec<Field>,
    pub content_length: Option<u64>,
    /// The request has no body.
    pub end_stream: bool,
}

/// What happened on the connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new stream's request head.
    Request(Request),
    /// Body bytes of a stream; `end_stream` ends the body (trailers end it with no bytes).
    Data {
        stream: u32,
        data: Vec<u8>,
        end_stream: bool,
    },
    /// A stream the caller knows was reset, by the peer or for a stream error: drop it.
    Reset { stream: u32, code: ErrorCode },
    /// A send window grew (stream 0: the connection's, or all streams' initial window):
    /// output waiting on it may go on.
    WindowOpened { stream: u32 },
    /// The peer is going away: it opens no new streams.
    GoAway { last_stream: u32, code: ErrorCode },
    /// A connection error: GOAWAY is in the output; flush it and close.
    Failed { code: ErrorCode, why: &'static str },
}

/// Why a send was refused: the caller's mistake, never the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No such stream open for sending (reset, finished, never opened).
    NoStream,
    /// More than the window allows.
    OverWindow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// next: Settings. Reading the 24-byte client preface.
    Preface,
    /// next: Open. The preface is read; the first frame must be SETTINGS.
    Settings,
    /// next: Closed.
    Open,
    /// A connection error was sent: input is discarded.
    Closed,
}

/// What the connection keeps of an open stream: 32 bytes, as a push server holds many.
#[derive(Debug)]
struct Stream {
    send_window: i64,
    recv_window: i64,
    /// Body bytes still to come by the request's content-length (when `has_length`).
    body_left: u64,
    /// Bytes received and passed on but not yet granted back.
    recv_unacked: u32,
    /// The client may still send DATA.
    recv_open: bool,
    /// We may still send.
    send_open: bool,
    /// The request declared a content-length: the body must be exactly that long.
    has_length: bool,
}

/// A header block not yet ended by END_HEADERS.
#[derive(Debug)]
struct Partial {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
    frames: u32,
}

/// A token bucket on the caller's clock: `burst` at once, refilled at `rate` per second.
#[derive(Debug, Default)]
struct Budget {
    /// Thousandths of a token spent beyond a full bucket.
    spent_milli: u64,
    last: Option<Instant>,
}

impl Budget {
    fn take(&mut self, now: Instant, burst: u32, rate: u32) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_millis() as u64 * u64::from(rate);
            self.spent_milli = self.spent_milli.saturating_sub(refill);
        }
        self.last = Some(now);
        if self.spent_milli + 1000 > u64::from(burst) * 1000 {
            return false;
        }
        self.spent_milli += 1000;
        true
    }
}

pub struct Connection {
    limits: Limits,
    phase: Phase,
    streams: StreamMap<Stream>,
    /// The highest stream id the peer opened (or tried to): ids must increase.
    last_stream: u32,
    /// GOAWAY sent with this last stream: newer streams are ignored.
    going_away: Option<u32>,
    partial: Option<Partial>,
    decoder: hpack::Decoder,
    encoder: hpack::Encoder,
    fields: Vec<Field>,
    /// Peer's settings that shape what we send.
    peer_initial_window: u32,
    peer_max_frame: usize,
    conn_send_window: i64,
    conn_recv_window: i64,
    conn_recv_unacked: u32,
    resets: Budget,
    pings: Budget,
    settings: Budget,
    empty_frames: Budget,
    out: Vec<u8>,
    events: VecDeque<Event>,
}

impl Connection {
    /// A server connection; our SETTINGS (and the connection window's raise) are already in
    /// the output, as section 3.4 allows before the client's preface arrives.
    pub fn new(limits: Limits) -> Connection {
        let mut out = Vec::with_capacity(64);
        let mut params = vec![
            (
                frame::SETTINGS_MAX_CONCURRENT_STREAMS,
                limits.max_concurrent_streams,
            ),
            (frame::SETTINGS_INITIAL_WINDOW_SIZE, limits.stream_window),
            (
                frame::SETTINGS_MAX_HEADER_LIST_SIZE,
                limits.max_header_list_size,
            ),
            (frame::SETTINGS_ENABLE_PUSH, 0),
        ];
        if limits.header_table_size as usize != hpack::DEFAULT_TABLE_SIZE {
            params.push((frame::SETTINGS_HEADER_TABLE_SIZE, limits.header_table_size));
        }
        if limits.enable_connect_protocol {
            params.push((frame::SETTINGS_ENABLE_CONNECT_PROTOCOL, 1));
        }
        frame::encode_settings(&mut out, &params);
        let raise = limits
            .connection_window
            .saturating_sub(frame::DEFAULT_WINDOW);
        if raise > 0 {
            frame::encode_window_update(&mut out, 0, raise);
        }
        Connection {
            phase: Phase::Preface,
            streams: StreamMap::new(),
            last_stream: 0,
            going_away: None,
            partial: None,
            decoder: hpack::Decoder::advertising(limits.header_table_size as usize),
            encoder: hpack::Encoder::new(),
            fields: Vec::new(),
            peer_initial_window: frame::DEFAULT_WINDOW,
            peer_max_frame: frame::DEFAULT_MAX_FRAME_SIZE as usize,
            conn_send_window: i64::from(frame::DEFAULT_WINDOW),
            conn_recv_window: i64::from(limits.connection_window.max(frame::DEFAULT_WINDOW)),
            conn_recv_unacked: 0,
            resets: Budget::default(),
            pings: Budget::default(),
            settings: Budget::default(),
            empty_frames: Budget::default(),
            out,
            events: VecDeque::new(),
            limits,
        }
    }

    /// Reads as many whole frames from `input` as it holds and returns how many bytes were
    /// used; the caller keeps the rest and presents it again with more. So the caller never
    /// holds more than one frame (9 bytes plus our frame size limit) of unread input.
    pub fn receive(&mut self, input: &[u8], now: Instant) -> usize {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            match self.phase {
                Phase::Closed => return input.len(),
                Phase::Preface => {
                    let n = rest.len().min(PREFACE.len());
                    if rest[..n] != PREFACE[..n] {
                        self.fail(ErrorCode::PROTOCOL_ERROR, "not the HTTP/2 preface");
                        continue;
                    }
                    if n < PREFACE.len() {
                        return at;
                    }
                    at += PREFACE.len();
                    self.phase = Phase::Settings;
                    continue;
                }
                Phase::Settings | Phase::Open => {}
            }
            let Some(head) = Head::parse(rest) else {
                return at;
            };
            if head.len > frame::DEFAULT_MAX_FRAME_SIZE as usize {
                self.fail(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "frame larger than our SETTINGS_MAX_FRAME_SIZE",
                );
                continue;
            }
            if rest.len() < HEADER_LEN + head.len {
                return at;
            }
            at += HEADER_LEN + head.len;
            self.on_frame(&head, &rest[HEADER_LEN..HEADER_LEN + head.len], now);
            if self.out.len() > self.limits.max_pending_output && self.phase != Phase::Closed {
                self.fail(
                    ErrorCode::ENHANCE_YOUR_CALM,
                    "peer asks for more than it reads",
                );
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The frames the connection wrote since the last call, to be sent before any DATA whose
    /// header `data_head` gives after this call.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Gives back what a burst of input made room for (queued events, decoded fields), so
    /// an idle connection keeps little: call once its events are taken.
    pub fn shrink_idle(&mut self) {
        if self.events.is_empty() {
            self.events.shrink_to(4);
        }
        self.fields.clear();
        self.fields.shrink_to(16);
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// A connection error was sent: nothing more will be read or accepted.
    pub fn is_failed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// We sent GOAWAY and no stream is left: the connection can close once output is out.
    pub fn is_done(&self) -> bool {
        self.is_failed() || (self.going_away.is_some() && self.streams.is_empty())
    }

    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// The largest DATA payload the peer accepts in one frame.
    pub fn max_frame(&self) -> usize {
        self.peer_max_frame
    }

    /// How many bytes `stream` may send now: the lesser of its window and the connection's.
    pub fn send_window(&self, stream: u32) -> usize {
        match self.streams.get(stream) {
            Some(s) if s.send_open => s.send_window.min(self.conn_send_window).max(0) as usize,
            _ => 0,
        }
    }

    /// Whether `stream` is open for sending.
    pub fn can_send(&self, stream: u32) -> bool {
        self.streams.get(stream).is_some_and(|s| s.send_open)
    }

    /// A response head (`:status` first, names lowercase), as HEADERS and CONTINUATIONs.
    pub fn send_headers<'a>(
        &mut self,
        stream: u32,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        end_stream: bool,
    ) -> Result<(), SendError> {
        if !self.can_send(stream) {
            return Err(SendError::NoStream);
        }
        let mut block = Vec::with_capacity(64);
        self.encoder.encode(fields, &mut block);
        frame::encode_headers(
            &mut self.out,
            stream,
            &block,
            end_stream,
            self.peer_max_frame,
        );
        if end_stream {
            self.end_send(stream);
        }
        Ok(())
    }

    /// The header of a DATA frame of `len` bytes on `stream`, its windows debited. The caller
    /// sends it, then the payload, after whatever `take_output` gave before this call.
    pub fn data_head(
        &mut self,
        stream: u32,
        len: usize,
        end_stream: bool,
    ) -> Result<[u8; HEADER_LEN], SendError> {
        if !self.can_send(stream) {
            return Err(SendError::NoStream);
        }
        if len > self.send_window(stream) || len > self.peer_max_frame {
            return Err(SendError::OverWindow);
        }
        let s = self.streams.get_mut(stream).expect("checked above");
        s.send_window -= len as i64;
        self.conn_send_window -= len as i64;
        if end_stream {
            self.end_send(stream);
        }
        Ok(frame::data_head(stream, len, end_stream))
    }

    /// Copies up to the window of `data` into the output as DATA frames; returns how much was
    /// taken. For the connection's own small bodies; shared frames go through `data_head`.
    pub fn send_data(
        &mut self,
        stream: u32,
        data: &[u8],
        end_stream: bool,
    ) -> Result<usize, SendError> {
        if !self.can_send(stream) {
            return Err(SendError::NoStream);
        }
        let mut sent = 0;
        loop {
            let room = self.send_window(stream).min(self.peer_max_frame);
            let n = room.min(data.len() - sent);
            let last = sent + n == data.len();
            if n == 0 && !(last && end_stream) {
                return Ok(sent);
            }
            let head = self.data_head(stream, n, last && end_stream)?;
            self.out.extend_from_slice(&head);
            self.out.extend_from_slice(&data[sent..sent + n]);
            sent += n;
            if last {
                return Ok(sent);
            }
        }
    }

    /// Ends a stream from our side with RST_STREAM (e.g. a slow subscriber); no event follows.
    pub fn reset(&mut self, stream: u32, code: ErrorCode) {
        if self.streams.remove(stream).is_some() {
            frame::encode_rst_stream(&mut self.out, stream, code);
        }
    }

    /// A graceful GOAWAY (shutdown, reload): streams opened so far go on, newer ones are
    /// ignored, and the connection is done when the last stream ends.
    pub fn go_away(&mut self, code: ErrorCode) {
        if self.going_away.is_none() && self.phase != Phase::Closed {
            self.going_away = Some(self.last_stream);
            frame::encode_goaway(&mut self.out, self.last_stream, code, b"");
        }
    }

    fn end_send(&mut self, stream: u32) {
        if let Some(s) = self.streams.get_mut(stream) {
            s.send_open = false;
            if !s.recv_open {
                self.streams.remove(stream);
            }
        }
    }

    /// A connection error: GOAWAY with the last stream we processed, then nothing more.
    fn fail(&mut self, code: ErrorCode, why: &'static str) {
        frame::encode_goaway(&mut self.out, self.last_stream, code, why.as_bytes());
        self.phase = Phase::Closed;
        self.partial = None;
        self.streams.clear();
        self.events.push_back(Event::Failed { code, why });
    }

    /// A stream error: RST_STREAM; the caller hears of it if it knew the stream.
    fn reset_stream(&mut self, stream: u32, code: ErrorCode) {
        frame::encode_rst_stream(&mut self.out, stream, code);
        if self.streams.remove(stream).is_some() {
            self.events.push_back(Event::Reset { stream, code });
        }
    }

    fn on_frame(&mut self, head: &Head, payload: &[u8], now: Instant) {
        if let Some(p) = &self.partial {
            if head.kind != frame::CONTINUATION || head.stream != p.stream {
                return self.fail(ErrorCode::PROTOCOL_ERROR, "a header block interrupted");
            }
        }
        if self.phase == Phase::Settings {
            if head.kind != frame::SETTINGS || head.flags & frame::FLAG_ACK != 0 {
                return self.fail(ErrorCode::PROTOCOL_ERROR, "first frame is not SETTINGS");
            }
            self.phase = Phase::Open;
        }
        let frame = match frame::parse(head, payload) {
            Ok(frame) => frame,
            Err(FrameError::Connection(code, why)) => return self.fail(code, why),
            // A HEADERS frame's block is lost with it, so HPACK would fall out of step.
            Err(FrameError::Stream(_, code, why)) if head.kind == frame::HEADERS => {
                return self.fail(code, why)
            }
            Err(FrameError::Stream(stream, code, _)) => {
                if stream > self.last_stream && head.kind != frame::PRIORITY {
                    return self.fail(ErrorCode::PROTOCOL_ERROR, "frame on an idle stream");
                }
                return self.reset_stream(stream, code);
            }
        };
        match frame {
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.on_data(stream, end_stream, data, flow_len, now),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block,
            } => {
                if stream % 2 == 0 {
                    return self.fail(ErrorCode::PROTOCOL_ERROR, "a client stream id must be odd");
                }
                self.partial = Some(Partial {
                    stream,
                    end_stream,
                    block: block.to_vec(),
                    frames: 1,
                });
                if end_headers {
                    self.end_headers();
                } else {
                    self.check_partial();
                }
            }
            Frame::Continuation {
                stream: _,
                end_headers,
                block,
            } => {
                let Some(p) = &mut self.partial else {
                    return self.fail(ErrorCode::PROTOCOL_ERROR, "CONTINUATION without HEADERS");
                };
                p.block.extend_from_slice(block);
                p.frames += 1;
                if !self.check_partial() {
                    return;
                }
                if end_headers {
                    self.end_headers();
                }
            }
            Frame::Priority { .. } | Frame::Unknown { .. } => {}
            Frame::RstStream { stream, code } => {
                if stream > self.last_stream {
                    return self.fail(ErrorCode::PROTOCOL_ERROR, "RST_STREAM on an idle stream");
                }
                if self.streams.remove(stream).is_some() {
                    self.events.push_back(Event::Reset { stream, code });
                }
                if !self
                    .resets
                    .take(now, self.limits.reset_burst, self.limits.reset_rate)
                {
                    self.fail(ErrorCode::ENHANCE_YOUR_CALM, "too many streams reset");
                }
            }
            // We send SETTINGS once: this acknowledges our table size.
            Frame::Settings { ack: true, .. } => self.decoder.on_settings_acked(),
            Frame::Settings { ack: false, params } => {
                if !self
                    .settings
                    .take(now, self.limits.control_burst, self.limits.control_rate)
                {
                    return self.fail(ErrorCode::ENHANCE_YOUR_CALM, "SETTINGS flood");
                }
                self.on_settings(params);
            }
            Frame::Ping { ack: true, .. } => {}
            Frame::Ping {
                ack: false,
                payload,
            } => {
                if !self
                    .pings
                    .take(now, self.limits.control_burst, self.limits.control_rate)
                {
                    return self.fail(ErrorCode::ENHANCE_YOUR_CALM, "PING flood");
                }
                frame::encode_ping(&mut self.out, true, payload);
            }
            Frame::GoAway {
                last_stream, code, ..
            } => self.events.push_back(Event::GoAway { last_stream, code }),
            Frame::WindowUpdate {
                stream: 0,
                increment,
            } => {
                self.conn_send_window += i64::from(increment);
                if self.conn_send_window > i64::from(MAX_WINDOW) {
                    return self.fail(
                        ErrorCode::FLOW_CONTROL_ERROR,
                        "connection window over 2^31-1",
                    );
                }
                self.events.push_back(Event::WindowOpened { stream: 0 });
            }
            Frame::WindowUpdate { stream, increment } => {
                if stream > self.last_stream {
                    return self.fail(ErrorCode::PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
                }
                let Some(s) = self.streams.get_mut(stream) else {
                    return;
                };
                s.send_window += i64::from(increment);
                if s.send_window > i64::from(MAX_WINDOW) {
                    return self.reset_stream(stream, ErrorCode::FLOW_CONTROL_ERROR);
                }
                self.events.push_back(Event::WindowOpened { stream });
            }
        }
    }

    /// Bounds a header block still being received: its bytes and its frame count (an endless
    /// run of CONTINUATION frames, empty or not, is a known way to exhaust a server).
    fn check_partial(&mut self) -> bool {
        let Some(p) = &self.partial else {
            return true;
        };
        if p.block.len() > self.limits.max_header_block() {
            self.fail(ErrorCode::ENHANCE_YOUR_CALM, "header block too large");
            return false;
        }
        if p.frames > self.limits.max_header_frames {
            self.fail(ErrorCode::ENHANCE_YOUR_CALM, "CONTINUATION flood");
            return false;
        }
        true
    }

    fn on_settings(&mut self, params: &[u8]) {
        for (id, value) in frame::settings(params) {
            match id {
                frame::SETTINGS_HEADER_TABLE_SIZE => self.encoder.on_peer_table_size(),
                frame::SETTINGS_MAX_FRAME_SIZE => self.peer_max_frame = value as usize,
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    let delta = i64::from(value) - i64::from(self.peer_initial_window);
                    self.peer_initial_window = value;
                    let mut over = false;
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                        over |= s.send_window > i64::from(MAX_WINDOW);
                    }
                    if over {
                        return self
                            .fail(ErrorCode::FLOW_CONTROL_ERROR, "a stream window over 2^31-1");
                    }
                    if delta > 0 {
                        self.events.push_back(Event::WindowOpened { stream: 0 });
                    }
                }
                _ => {}
            }
        }
        frame::encode_settings_ack(&mut self.out);
    }

    fn on_data(
        &mut self,
        stream: u32,
        end_stream: bool,
        data: &[u8],
        flow_len: usize,
        now: Instant,
    ) {
        // The connection window counts every DATA frame, whatever becomes of its stream.
        if flow_len as i64 > self.conn_recv_window {
            return self.fail(
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA past the connection window",
            );
        }
        self.conn_recv_window -= flow_len as i64;
        self.conn_recv_unacked += flow_len as u32;
        if self.conn_recv_unacked >= self.limits.connection_window / 2 {
            frame::encode_window_update(&mut self.out, 0, self.conn_recv_unacked);
            self.conn_recv_window += i64::from(self.conn_recv_unacked);
            self.conn_recv_unacked = 0;
        }
        if flow_len == 0
            && !end_stream
            && !self
                .empty_frames
                .take(now, self.limits.control_burst, self.limits.control_rate)
        {
            return self.fail(ErrorCode::ENHANCE_YOUR_CALM, "empty DATA flood");
        }
        if stream > self.last_stream {
            return self.fail(ErrorCode::PROTOCOL_ERROR, "DATA on an idle stream");
        }
        let Some(s) = self.streams.get_mut(stream) else {
            // Closed: the peer may have sent it before our RST_STREAM arrived (section 5.1).
            return;
        };
        if !s.recv_open {
            return self.reset_stream(stream, ErrorCode::STREAM_CLOSED);
        }
        if flow_len as i64 > s.recv_window {
            return self.reset_stream(stream, ErrorCode::FLOW_CONTROL_ERROR);
        }
        s.recv_window -= flow_len as i64;
        if s.has_length {
            let len = data.len() as u64;
            if len > s.body_left || (end_stream && len != s.body_left) {
                return self.reset_stream(stream, ErrorCode::PROTOCOL_ERROR);
            }
            s.body_left -= len;
        }
        if end_stream {
            s.recv_open = false;
        } else {
            s.recv_unacked += flow_len as u32;
            if s.recv_unacked >= self.limits.stream_window / 2 {
                frame::encode_window_update(&mut self.out, stream, s.recv_unacked);
                s.recv_window += i64::from(s.recv_unacked);
                s.recv_unacked = 0;
            }
        }
        if end_stream && !s.send_open {
            self.streams.remove(stream);
        }
        self.events.push_back(Event::Data {
            stream,
            data: data.to_vec(),
            end_stream,
        });
    }

    /// A whole header block: decode it (always, to keep HPACK in step), then open a stream,
    /// end a body with trailers, or refuse.
    fn end_headers(&mut self) {
        let Some(Partial {
            stream,
            end_stream,
            block,
            ..
        }) = self.partial.take()
        else {
            return;
        };
        let mut fields = std::mem::take(&mut self.fields);
        let decoded = self.decoder.decode(
            &block,
            self.limits.max_header_list_size as usize,
            &mut fields,
        );
        let decoded = match decoded {
            Ok(d) => d,
            Err(_) => {
                return self.fail(ErrorCode::COMPRESSION_ERROR, "header block does not decode")
            }
        };
        if let Some(s) = self.streams.get_mut(stream) {
            self.fields = fields;
            // Trailers: they must end the stream; their fields are not used.
            if !s.recv_open {
                return self.reset_stream(stream, ErrorCode::STREAM_CLOSED);
            }
            if !end_stream || self.fields.iter().any(|f| f.name.first() == Some(&b':')) {
                return self.reset_stream(stream, ErrorCode::PROTOCOL_ERROR);
            }
            if s.has_length && s.body_left != 0 {
                return self.reset_stream(stream, ErrorCode::PROTOCOL_ERROR);
            }
            s.recv_open = false;
            if !s.send_open {
                self.streams.remove(stream);
            }
            self.events.push_back(Event::Data {
                stream,
                data: Vec::new(),
                end_stream: true,
            });
            return;
        }
        if stream <= self.last_stream {
            self.fields = fields;
            return self.fail(
                ErrorCode::PROTOCOL_ERROR,
                "stream id reused or lower than one before",
            );
        }
        self.last_stream = stream;
        if self.going_away.is_some_and(|last| stream > last) {
            // After our GOAWAY, new streams are ignored (section 6.8).
            self.fields = fields;
            return;
        }
        if decoded == Decoded::TooLarge {
            self.fields = fields;
            self.refuse_too_large(stream, end_stream);
            return;
        }
        if self.streams.len() >= self.limits.max_concurrent_streams as usize {
            self.fields = fields;
            frame::encode_rst_stream(&mut self.out, stream, ErrorCode::REFUSED_STREAM);
            return;
        }
        let request = check_request(
            stream,
            &mut fields,
            end_stream,
            self.limits.enable_connect_protocol,
        );
        self.fields = fields;
        match request {
            Ok(request) => {
                let window = i64::from(self.peer_initial_window);
                self.streams.insert(
                    stream,
                    Stream {
                        send_window: window,
                        recv_window: i64::from(self.limits.stream_window),
                        body_left: request.content_length.unwrap_or(0),
                        recv_unacked: 0,
                        recv_open: !end_stream,
                        send_open: true,
                        has_length: request.content_length.is_some(),
                    },
                );
                if end_stream && request.content_length.is_some_and(|n| n != 0) {
                    return self.reset_stream(stream, ErrorCode::PROTOCOL_ERROR);
                }
                self.events.push_back(Event::Request(request));
            }
            Err(_) => frame::encode_rst_stream(&mut self.out, stream, ErrorCode::PROTOCOL_ERROR),
        }
    }

    /// A request whose header list is over our limit gets 431 (RFC 9113 section 10.5.1) and
    /// its stream ends; the caller never hears of it.
    fn refuse_too_large(&mut self, stream: u32, end_stream: bool) {
        let mut block = Vec::new();
        self.encoder
            .encode([(&b":status"[..], &b"431"[..])], &mut block);
        frame::encode_headers(&mut self.out, stream, &block, true, self.peer_max_frame);
        if !end_stream {
            frame::encode_rst_stream(&mut self.out, stream, ErrorCode::NO_ERROR);
        }
    }
}

/// Characters of a field name (a token, lowercase: RFC 9113 section 8.2.1).
fn is_name_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

fn is_clean_value(v: &[u8]) -> bool {
    crate::gate::is_clean_line(v)
        && !v.first().is_some_and(|&b| b == b' ' || b == b'\t')
        && !v.last().is_some_and(|&b| b == b' ' || b == b'\t')
}

/// Checks a request head (RFC 9113 sections 8.2, 8.3 and RFC 8441) and takes the pseudo-header
/// fields out of `fields`; a malformed one is a stream error PROTOCOL_ERROR.
pub fn check_request(
    stream: u32,
    fields: &mut Vec<Field>,
    end_stream: bool,
    connect_protocol: bool,
) -> Result<Request, &'static str> {
    let mut method = None;
    let mut scheme = None;
    let mut authority = None;
    let mut path = None;
    let mut protocol = None;
    let mut content_length: Option<u64> = None;
    let mut regular = Vec::with_capacity(fields.len());
    for field in fields.drain(..) {
        if field.name.is_empty() {
            return Err("empty field name");
        }
        if !is_clean_value(&field.value) {
            return Err("field value with CR, LF, NUL or edge whitespace");
        }
        if field.name[0] == b':' {
            if !regular.is_empty() {
                return Err("pseudo-header after a regular field");
            }
            let slot = match &field.name[..] {
                b":method" => &mut method,
                b":scheme" => &mut scheme,
                b":authority" => &mut authority,
                b":path" => &mut path,
                b":protocol" => &mut protocol,
                _ => return Err("unknown pseudo-header"),
            };
            if slot.replace(field.value).is_some() {
                return Err("repeated pseudo-header");
            }
            continue;
        }
        if !field.name.iter().all(|&b| is_name_byte(b)) {
            return Err("field name not a lowercase token");
        }
        match &field.name[..] {
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding"
            | b"upgrade" => return Err("connection-specific field"),
            b"te" if field.value != b"trailers" => return Err("te other than trailers"),
            b"content-length" => {
                let n = std::str::from_utf8(&field.value)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or("content-length not a number")?;
                if content_length.is_some_and(|m| m != n) {
                    return Err("content-length values differ");
                }
                content_length = Some(n);
            }
            _ => {}
        }
        regular.push(field);
    }
    let method = method.ok_or("no :method")?;
    let is_connect = method == b"CONNECT";
    if protocol.is_some() && !(is_connect && connect_protocol) {
        return Err(":protocol without extended CONNECT");
    }
    if is_connect && protocol.is_none() {
        if scheme.is_some() || path.is_some() || authority.is_none() {
            return Err("CONNECT takes :authority alone");
        }
    } else if scheme.is_none() || path.as_ref().is_none_or(|p| p.is_empty()) {
        return Err("no :scheme or :path");
    } else if is_connect && authority.is_none() {
        return Err("extended CONNECT without :authority");
    }
    Ok(Request {
        stream,
        method,
        scheme: scheme.unwrap_or_default(),
        authority,
        path: path.unwrap_or_default(),
        protocol,
        fields: regular,
        content_length,
        end_stream,
    })
}

#[cfg(test)]
mod tests;
