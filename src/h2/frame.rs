//! HTTP/2 frames (RFC 9113 section 4 and 6), without I/O: the 9-byte header, each frame type's
//! payload checked as its section says, and the encoders for what a server sends. A rule broken
//! in a frame is either a connection error (the connection ends with GOAWAY) or a stream error
//! (that stream alone is reset); `FrameError` says which, as the RFC assigns it.

use std::fmt;

/// What a client sends first, before its SETTINGS (section 3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const HEADER_LEN: usize = 9;
/// The frame size every peer must accept, and the largest we allow ourselves to be sent.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest flow-control window (section 6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// The initial window of every stream and of the connection until SETTINGS change it.
pub const DEFAULT_WINDOW: u32 = 65_535;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_ACK: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const FLAG_PADDED: u8 = 0x8;
pub const FLAG_PRIORITY: u8 = 0x20;

pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;
/// RFC 8441: the server accepts extended CONNECT (WebSocket over a stream).
pub const SETTINGS_ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// An error code of RST_STREAM and GOAWAY (section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 14] = [
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
        ];
        match NAMES.get(self.0 as usize) {
            Some(name) => f.write_str(name),
            None => write!(f, "error 0x{:x}", self.0),
        }
    }
}

/// A rule broken, and how far the damage goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The whole connection: GOAWAY with this code, then close.
    Connection(ErrorCode, &'static str),
    /// One stream: RST_STREAM with this code; the connection goes on.
    Stream(u32, ErrorCode, &'static str),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Connection(code, why) => write!(f, "{code}: {why}"),
            FrameError::Stream(id, code, why) => write!(f, "stream {id}: {code}: {why}"),
        }
    }
}

fn conn_err(code: ErrorCode, why: &'static str) -> FrameError {
    FrameError::Connection(code, why)
}

/// The 9-byte frame header (section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    /// The reserved bit is dropped on reading, as section 4.1 says.
    pub stream: u32,
}

impl Head {
    pub fn parse(bytes: &[u8]) -> Option<Head> {
        let b: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Head {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_WINDOW,
        })
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let l = (self.len as u32).to_be_bytes();
        let s = self.stream.to_be_bytes();
        [
            l[1], l[2], l[3], self.kind, self.flags, s[0], s[1], s[2], s[3],
        ]
    }
}

/// A frame parsed and checked; payloads borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    Data {
        stream: u32,
        end_stream: bool,
        data: &'a [u8],
        /// The whole payload, padding included: what flow control counts.
        flow_len: usize,
    },
    Headers {
        stream: u32,
        end_stream: bool,
        end_headers: bool,
        /// The header block fragment, without padding and priority.
        block: &'a [u8],
    },
    /// Priority signals are deprecated (RFC 9113 section 5.3.2): checked, then ignored.
    Priority {
        stream: u32,
    },
    RstStream {
        stream: u32,
        code: ErrorCode,
    },
    Settings {
        ack: bool,
        /// Whole 6-byte parameters, each value already checked: read them with `settings`.
        params: &'a [u8],
    },
    Ping {
        ack: bool,
        payload: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        code: ErrorCode,
        debug: &'a [u8],
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Continuation {
        stream: u32,
        end_headers: bool,
        block: &'a [u8],
    },
    /// A frame type this server does not know: ignored (section 5.5).
    Unknown {
        kind: u8,
    },
}

/// The (identifier, value) pairs of a checked SETTINGS payload.
pub fn settings(params: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    params.chunks_exact(6).map(|p| {
        (
            u16::from_be_bytes([p[0], p[1]]),
            u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
        )
    })
}

/// Strips padding (section 6.1): the pad length byte and that many bytes at the end.
fn unpad(head: &Head, payload: &[u8]) -> Result<(usize, usize), FrameError> {
    if head.flags & FLAG_PADDED == 0 {
        return Ok((0, payload.len()));
    }
    let Some(&pad) = payload.first() else {
        return Err(conn_err(
            ErrorCode::FRAME_SIZE_ERROR,
            "padded frame without a pad length",
        ));
    };
    let pad = usize::from(pad);
    if pad >= payload.len() {
        return Err(conn_err(
            ErrorCode::PROTOCOL_ERROR,
            "padding as long as the payload",
        ));
    }
    Ok((1, payload.len() - pad))
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

/// Checks a frame whose header is `head` and whose payload is exactly `payload`. The caller has
/// already refused a length over the frame size it advertised.
pub fn parse<'a>(head: &Head, payload: &'a [u8]) -> Result<Frame<'a>, FrameError> {
    debug_assert_eq!(head.len, payload.len());
    let stream = head.stream;
    let on_stream = |what: &'static str| {
        if stream == 0 {
            Err(conn_err(ErrorCode::PROTOCOL_ERROR, what))
        } else {
            Ok(())
        }
    };
    let on_connection = |what: &'static str| {
        if stream != 0 {
            Err(conn_err(ErrorCode::PROTOCOL_ERROR, what))
        } else {
            Ok(())
        }
    };
    match head.kind {
        DATA => {
            on_stream("DATA on stream 0")?;
            let (start, end) = unpad(head, payload)?;
            Ok(Frame::Data {
                stream,
                end_stream: head.flags & FLAG_END_STREAM != 0,
                data: &payload[start..end],
                flow_len: payload.len(),
            })
        }
        HEADERS => {
            on_stream("HEADERS on stream 0")?;
            let (mut start, end) = unpad(head, payload)?;
            if head.flags & FLAG_PRIORITY != 0 {
                if end - start < 5 {
                    return Err(conn_err(
                        ErrorCode::FRAME_SIZE_ERROR,
                        "HEADERS too short for its priority",
                    ));
                }
                if u32_at(payload, start) & MAX_WINDOW == stream {
                    return Err(FrameError::Stream(
                        stream,
                        ErrorCode::PROTOCOL_ERROR,
                        "stream depends on itself",
                    ));
                }
                start += 5;
            }
            Ok(Frame::Headers {
                stream,
                end_stream: head.flags & FLAG_END_STREAM != 0,
                end_headers: head.flags & FLAG_END_HEADERS != 0,
                block: &payload[start..end],
            })
        }
        PRIORITY => {
            on_stream("PRIORITY on stream 0")?;
            if payload.len() != 5 {
                return Err(FrameError::Stream(
                    stream,
                    ErrorCode::FRAME_SIZE_ERROR,
                    "PRIORITY is not 5 bytes",
                ));
            }
            if u32_at(payload, 0) & MAX_WINDOW == stream {
                return Err(FrameError::Stream(
                    stream,
                    ErrorCode::PROTOCOL_ERROR,
                    "stream depends on itself",
                ));
            }
            Ok(Frame::Priority { stream })
        }
        RST_STREAM => {
            on_stream("RST_STREAM on stream 0")?;
            if payload.len() != 4 {
                return Err(conn_err(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "RST_STREAM is not 4 bytes",
                ));
            }
            Ok(Frame::RstStream {
                stream,
                code: ErrorCode(u32_at(payload, 0)),
            })
        }
        SETTINGS => {
            on_connection("SETTINGS on a stream")?;
            let ack = head.flags & FLAG_ACK != 0;
            if ack && !payload.is_empty() {
                return Err(conn_err(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "SETTINGS ack with a payload",
                ));
            }
            if payload.len() % 6 != 0 {
                return Err(conn_err(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "SETTINGS not a multiple of 6 bytes",
                ));
            }
            for (id, value) in settings(payload) {
                check_setting(id, value)?;
            }
            Ok(Frame::Settings {
                ack,
                params: payload,
            })
        }
        PUSH_PROMISE => Err(conn_err(ErrorCode::PROTOCOL_ERROR, "a client cannot push")),
        PING => {
            on_connection("PING on a stream")?;
            let payload: [u8; 8] = payload
                .try_into()
                .map_err(|_| conn_err(ErrorCode::FRAME_SIZE_ERROR, "PING is not 8 bytes"))?;
            Ok(Frame::Ping {
                ack: head.flags & FLAG_ACK != 0,
                payload,
            })
        }
        GOAWAY => {
            on_connection("GOAWAY on a stream")?;
            if payload.len() < 8 {
                return Err(conn_err(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "GOAWAY shorter than 8 bytes",
                ));
            }
            Ok(Frame::GoAway {
                last_stream: u32_at(payload, 0) & MAX_WINDOW,
                code: ErrorCode(u32_at(payload, 4)),
                debug: &payload[8..],
            })
        }
        WINDOW_UPDATE => {
            if payload.len() != 4 {
                return Err(conn_err(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "WINDOW_UPDATE is not 4 bytes",
                ));
            }
            let increment = u32_at(payload, 0) & MAX_WINDOW;
            if increment == 0 {
                let why = "WINDOW_UPDATE of 0";
                return Err(if stream == 0 {
                    conn_err(ErrorCode::PROTOCOL_ERROR, why)
                } else {
                    FrameError::Stream(stream, ErrorCode::PROTOCOL_ERROR, why)
                });
            }
            Ok(Frame::WindowUpdate { stream, increment })
        }
        CONTINUATION => {
            on_stream("CONTINUATION on stream 0")?;
            Ok(Frame::Continuation {
                stream,
                end_headers: head.flags & FLAG_END_HEADERS != 0,
                block: payload,
            })
        }
        kind => Ok(Frame::Unknown { kind }),
    }
}

/// The values section 6.5.2 and RFC 8441 bound; unknown identifiers are ignored.
fn check_setting(id: u16, value: u32) -> Result<(), FrameError> {
    match id {
        SETTINGS_ENABLE_PUSH if value > 1 => Err(conn_err(
            ErrorCode::PROTOCOL_ERROR,
            "ENABLE_PUSH not 0 or 1",
        )),
        SETTINGS_INITIAL_WINDOW_SIZE if value > MAX_WINDOW => Err(conn_err(
            ErrorCode::FLOW_CONTROL_ERROR,
            "INITIAL_WINDOW_SIZE over 2^31-1",
        )),
        SETTINGS_MAX_FRAME_SIZE if !(DEFAULT_MAX_FRAME_SIZE..=(1 << 24) - 1).contains(&value) => {
            Err(conn_err(
                ErrorCode::PROTOCOL_ERROR,
                "MAX_FRAME_SIZE out of range",
            ))
        }
        SETTINGS_ENABLE_CONNECT_PROTOCOL if value > 1 => Err(conn_err(
            ErrorCode::PROTOCOL_ERROR,
            "ENABLE_CONNECT_PROTOCOL not 0 or 1",
        )),
        _ => Ok(()),
    }
}

fn put_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(
        &Head {
            len,
            kind,
            flags,
            stream,
        }
        .encode(),
    );
}

/// The header of a DATA frame whose payload the caller sends from its own (shared) bytes: the
/// only bytes of a delivery that are this stream's own.
pub fn data_head(stream: u32, len: usize, end_stream: bool) -> [u8; HEADER_LEN] {
    let flags = if end_stream { FLAG_END_STREAM } else { 0 };
    Head {
        len,
        kind: DATA,
        flags,
        stream,
    }
    .encode()
}

pub fn encode_data(out: &mut Vec<u8>, stream: u32, data: &[u8], end_stream: bool) {
    out.extend_from_slice(&data_head(stream, data.len(), end_stream));
    out.extend_from_slice(data);
}

/// A header block as HEADERS then as many CONTINUATION frames as `max_frame` requires.
pub fn encode_headers(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let mut chunks = block.chunks(max_frame.max(1));
    let first = chunks.next().unwrap_or(&[]);
    let mut rest = chunks.peekable();
    let mut flags = if end_stream { FLAG_END_STREAM } else { 0 };
    if rest.peek().is_none() {
        flags |= FLAG_END_HEADERS;
    }
    put_head(out, first.len(), HEADERS, flags, stream);
    out.extend_from_slice(first);
    while let Some(chunk) = rest.next() {
        let flags = if rest.peek().is_none() {
            FLAG_END_HEADERS
        } else {
            0
        };
        put_head(out, chunk.len(), CONTINUATION, flags, stream);
        out.extend_from_slice(chunk);
    }
}

pub fn encode_settings(out: &mut Vec<u8>, params: &[(u16, u32)]) {
    put_head(out, params.len() * 6, SETTINGS, 0, 0);
    for (id, value) in params {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

pub fn encode_settings_ack(out: &mut Vec<u8>) {
    put_head(out, 0, SETTINGS, FLAG_ACK, 0);
}

pub fn encode_ping(out: &mut Vec<u8>, ack: bool, payload: [u8; 8]) {
    put_head(out, 8, PING, if ack { FLAG_ACK } else { 0 }, 0);
    out.extend_from_slice(&payload);
}

pub fn encode_goaway(out: &mut Vec<u8>, last_stream: u32, code: ErrorCode, debug: &[u8]) {
    put_head(out, 8 + debug.len(), GOAWAY, 0, 0);
    out.extend_from_slice(&last_stream.to_be_bytes());
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(debug);
}

pub fn encode_rst_stream(out: &mut Vec<u8>, stream: u32, code: ErrorCode) {
    put_head(out, 4, RST_STREAM, 0, stream);
    out.extend_from_slice(&code.0.to_be_bytes());
}

pub fn encode_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    put_head(out, 4, WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

impl Frame<'_> {
    /// The frame as this module writes it: padding and priority, which carry no meaning here,
    /// are not written back. Parsing what this writes gives the same frame (the fuzz property).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Frame::Data {
                stream,
                end_stream,
                data,
                ..
            } => encode_data(out, stream, data, end_stream),
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block,
            } => {
                let mut flags = if end_headers { FLAG_END_HEADERS } else { 0 };
                if end_stream {
                    flags |= FLAG_END_STREAM;
                }
                put_head(out, block.len(), HEADERS, flags, stream);
                out.extend_from_slice(block);
            }
            Frame::Priority { stream } => {
                put_head(out, 5, PRIORITY, 0, stream);
                out.extend_from_slice(&[0, 0, 0, 0, 15]);
            }
            Frame::RstStream { stream, code } => encode_rst_stream(out, stream, code),
            Frame::Settings { ack, params } => {
                put_head(
                    out,
                    params.len(),
                    SETTINGS,
                    if ack { FLAG_ACK } else { 0 },
                    0,
                );
                out.extend_from_slice(params);
            }
            Frame::Ping { ack, payload } => encode_ping(out, ack, payload),
            Frame::GoAway {
                last_stream,
                code,
                debug,
            } => encode_goaway(out, last_stream, code, debug),
            Frame::WindowUpdate { stream, increment } => {
                encode_window_update(out, stream, increment)
            }
            Frame::Continuation {
                stream,
                end_headers,
                block,
            } => {
                put_head(
                    out,
                    block.len(),
                    CONTINUATION,
                    if end_headers { FLAG_END_HEADERS } else { 0 },
                    stream,
                );
                out.extend_from_slice(block);
            }
            Frame::Unknown { kind } => put_head(out, 0, kind, 0, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: u8, flags: u8, stream: u32, len: usize) -> Head {
        Head {
            len,
            kind,
            flags,
            stream,
        }
    }

    /// Parses and reduces the outcome to what the tests compare: the error code and whether
    /// it is a stream error.
    fn verdict(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Result<(), (bool, ErrorCode)> {
        match parse(&head(kind, flags, stream, payload.len()), payload) {
            Ok(_) => Ok(()),
            Err(FrameError::Connection(code, _)) => Err((false, code)),
            Err(FrameError::Stream(id, code, _)) => {
                assert_eq!(id, stream);
                Err((true, code))
            }
        }
    }

    #[test]
    fn header_round_trip_and_reserved_bit() {
        let h = head(HEADERS, FLAG_END_HEADERS, 5, 0x012345);
        assert_eq!(Head::parse(&h.encode()), Some(h));
        let mut raw = h.encode();
        raw[5] |= 0x80;
        assert_eq!(Head::parse(&raw).unwrap().stream, 5);
        assert_eq!(Head::parse(&raw[..8]), None);
    }

    #[test]
    fn rules_per_frame_type() {
        use ErrorCode as E;
        let p = E::PROTOCOL_ERROR;
        let fs = E::FRAME_SIZE_ERROR;
        for (kind, flags, stream, payload, want) in [
            // DATA
            (DATA, 0, 1, &b"abc"[..], Ok(())),
            (DATA, 0, 0, &b"abc"[..], Err((false, p))),
            (DATA, FLAG_PADDED, 1, &[2, b'a', 0, 0][..], Ok(())),
            (DATA, FLAG_PADDED, 1, &[3, b'a', 0, 0][..], Ok(())),
            (DATA, FLAG_PADDED, 1, &[4, b'a', 0, 0][..], Err((false, p))),
            (DATA, FLAG_PADDED, 1, &[][..], Err((false, fs))),
            // HEADERS
            (HEADERS, FLAG_END_HEADERS, 0, &[0x82][..], Err((false, p))),
            (
                HEADERS,
                FLAG_PRIORITY,
                3,
                &[0, 0, 0, 1, 16, 0x82][..],
                Ok(()),
            ),
            (
                HEADERS,
                FLAG_PRIORITY,
                3,
                &[0, 0, 0, 3, 16, 0x82][..],
                Err((true, p)),
            ),
            (
                HEADERS,
                FLAG_PRIORITY,
                3,
                &[0, 0, 0, 1][..],
                Err((false, fs)),
            ),
            (HEADERS, FLAG_PADDED, 3, &[5, 0x82][..], Err((false, p))),
            // PRIORITY
            (PRIORITY, 0, 3, &[0, 0, 0, 1, 16][..], Ok(())),
            (PRIORITY, 0, 3, &[0, 0, 0, 3, 16][..], Err((true, p))),
            (PRIORITY, 0, 3, &[0, 0, 0, 1][..], Err((true, fs))),
            (PRIORITY, 0, 0, &[0, 0, 0, 1, 16][..], Err((false, p))),
            // RST_STREAM
            (RST_STREAM, 0, 1, &[0, 0, 0, 8][..], Ok(())),
            (RST_STREAM, 0, 0, &[0, 0, 0, 8][..], Err((false, p))),
            (RST_STREAM, 0, 1, &[0, 0, 8][..], Err((false, fs))),
            // SETTINGS
            (SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100][..], Ok(())),
            (SETTINGS, 0, 1, &[0, 3, 0, 0, 0, 100][..], Err((false, p))),
            (SETTINGS, 0, 0, &[0, 3, 0, 0, 0][..], Err((false, fs))),
            (
                SETTINGS,
                FLAG_ACK,
                0,
                &[0, 3, 0, 0, 0, 100][..],
                Err((false, fs)),
            ),
            (SETTINGS, FLAG_ACK, 0, &[][..], Ok(())),
            (SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 2][..], Err((false, p))),
            (
                SETTINGS,
                0,
                0,
                &[0, 4, 0x80, 0, 0, 0][..],
                Err((false, E::FLOW_CONTROL_ERROR)),
            ),
            (
                SETTINGS,
                0,
                0,
                &[0, 5, 0, 0, 0x3f, 0xff][..],
                Err((false, p)),
            ),
            (SETTINGS, 0, 0, &[0, 5, 1, 0, 0, 0][..], Err((false, p))),
            (SETTINGS, 0, 0, &[0, 5, 0, 0xff, 0xff, 0xff][..], Ok(())),
            (SETTINGS, 0, 0, &[0, 8, 0, 0, 0, 2][..], Err((false, p))),
            (
                SETTINGS,
                0,
                0,
                &[0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff][..],
                Ok(()),
            ),
            // PUSH_PROMISE from a client
            (
                PUSH_PROMISE,
                FLAG_END_HEADERS,
                1,
                &[0, 0, 0, 2][..],
                Err((false, p)),
            ),
            // PING
            (PING, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8][..], Ok(())),
            (PING, 0, 1, &[1, 2, 3, 4, 5, 6, 7, 8][..], Err((false, p))),
            (PING, 0, 0, &[1, 2, 3, 4, 5, 6, 7][..], Err((false, fs))),
            // GOAWAY
            (GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0, b'x'][..], Ok(())),
            (GOAWAY, 0, 1, &[0, 0, 0, 1, 0, 0, 0, 0][..], Err((false, p))),
            (GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0][..], Err((false, fs))),
            // WINDOW_UPDATE
            (WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0][..], Ok(())),
            (WINDOW_UPDATE, 0, 0, &[0, 0, 0, 0][..], Err((false, p))),
            (WINDOW_UPDATE, 0, 1, &[0, 0, 0, 0][..], Err((true, p))),
            (WINDOW_UPDATE, 0, 1, &[0x80, 0, 0, 0][..], Err((true, p))),
            (WINDOW_UPDATE, 0, 1, &[0, 0, 1][..], Err((false, fs))),
            // CONTINUATION
            (CONTINUATION, FLAG_END_HEADERS, 1, &[0x82][..], Ok(())),
            (
                CONTINUATION,
                FLAG_END_HEADERS,
                0,
                &[0x82][..],
                Err((false, p)),
            ),
            // Unknown types are ignored, whatever their stream or payload.
            (0x42, 0xff, 7, &b"anything"[..], Ok(())),
        ] {
            assert_eq!(
                verdict(kind, flags, stream, payload),
                want,
                "type {kind} flags {flags:#x} stream {stream} {payload:?}"
            );
        }
    }

    #[test]
    fn padding_is_stripped_and_counted() {
        let payload = [2, b'h', b'i', 0, 0];
        let frame = parse(&head(DATA, FLAG_PADDED | FLAG_END_STREAM, 1, 5), &payload).unwrap();
        assert_eq!(
            frame,
            Frame::Data {
                stream: 1,
                end_stream: true,
                data: b"hi",
                flow_len: 5
            }
        );
        let payload = [1, 0, 0, 0, 1, 16, 0x82, 0];
        let frame = parse(&head(HEADERS, FLAG_PADDED | FLAG_PRIORITY, 3, 8), &payload).unwrap();
        assert_eq!(
            frame,
            Frame::Headers {
                stream: 3,
                end_stream: false,
                end_headers: false,
                block: &[0x82]
            }
        );
    }

    #[test]
    fn headers_split_into_continuations() {
        let block: Vec<u8> = (0..40).collect();
        let mut out = Vec::new();
        encode_headers(&mut out, 1, &block, true, 16);
        let mut at = 0;
        let mut seen = Vec::new();
        let mut kinds = Vec::new();
        while at < out.len() {
            let h = Head::parse(&out[at..]).unwrap();
            let f = parse(&h, &out[at + 9..at + 9 + h.len]).unwrap();
            kinds.push((h.kind, h.flags));
            match f {
                Frame::Headers { block, .. } | Frame::Continuation { block, .. } => {
                    seen.extend_from_slice(block)
                }
                other => panic!("{other:?}"),
            }
            at += 9 + h.len;
        }
        assert_eq!(seen, block);
        assert_eq!(
            kinds,
            [
                (HEADERS, FLAG_END_STREAM),
                (CONTINUATION, 0),
                (CONTINUATION, FLAG_END_HEADERS)
            ]
        );
    }

    #[test]
    fn encoders_parse_back() {
        let mut out = Vec::new();
        encode_settings(&mut out, &[(SETTINGS_MAX_CONCURRENT_STREAMS, 100)]);
        encode_settings_ack(&mut out);
        encode_ping(&mut out, true, *b"12345678");
        encode_goaway(&mut out, 7, ErrorCode::ENHANCE_YOUR_CALM, b"calm");
        encode_rst_stream(&mut out, 3, ErrorCode::CANCEL);
        encode_window_update(&mut out, 0, 1 << 20);
        encode_data(&mut out, 5, b"payload", true);
        let mut frames = Vec::new();
        let mut at = 0;
        while at < out.len() {
            let h = Head::parse(&out[at..]).unwrap();
            frames.push(parse(&h, &out[at + 9..at + 9 + h.len]).unwrap());
            at += 9 + h.len;
        }
        assert_eq!(
            frames,
            [
                Frame::Settings {
                    ack: false,
                    params: &[0, 3, 0, 0, 0, 100]
                },
                Frame::Settings {
                    ack: true,
                    params: &[]
                },
                Frame::Ping {
                    ack: true,
                    payload: *b"12345678"
                },
                Frame::GoAway {
                    last_stream: 7,
                    code: ErrorCode::ENHANCE_YOUR_CALM,
                    debug: b"calm"
                },
                Frame::RstStream {
                    stream: 3,
                    code: ErrorCode::CANCEL
                },
                Frame::WindowUpdate {
                    stream: 0,
                    increment: 1 << 20
                },
                Frame::Data {
                    stream: 5,
                    end_stream: true,
                    data: b"payload",
                    flow_len: 7
                },
            ]
        );
        assert_eq!(
            ErrorCode::ENHANCE_YOUR_CALM.to_string(),
            "ENHANCE_YOUR_CALM"
        );
        assert_eq!(ErrorCode(0x42).to_string(), "error 0x42");
    }
}
