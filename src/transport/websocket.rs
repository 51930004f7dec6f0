//! WebSocket (RFC 6455, version 13), server side, without I/O: the opening handshake, the frames
//! the server sends (never masked), and an incremental decoder for the frames clients send.
//!
//! The decoder takes bytes as they arrive, in any split, and never waits for a whole frame: a
//! payload is unmasked into the message as it comes, text is checked as UTF-8 as it comes, and a
//! message is refused as soon as its headers show it is too big. So an error is found at the
//! same byte whether the input came whole or a byte at a time. Anything RFC 6455 forbids ends
//! in a `CloseReason` whose code the caller sends before closing.

use std::fmt;

use crate::http::base64;

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Appended to the client's key before hashing (RFC 6455 section 1.3), so the answer proves the
/// server understood the handshake rather than echoing it.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
pub fn accept_key(client_key: &str) -> String {
    let mut sha1 = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    sha1.update(client_key.as_bytes());
    sha1.update(ACCEPT_GUID.as_bytes());
    base64::encode(sha1.finish().as_ref())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeOk {
    /// The value for `Sec-WebSocket-Accept`.
    pub accept: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    NotGet,
    NotHttp11,
    NoUpgradeWebsocket,
    NoConnectionUpgrade,
    MissingVersion,
    UnsupportedVersion,
    MissingKey,
    /// Not base64, or not 16 bytes once decoded.
    BadKey,
}

impl HandshakeError {
    /// The answer's status. A version problem gets 426, to which the caller adds
    /// `Sec-WebSocket-Version: 13` so the client can retry with the version we speak.
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::MissingVersion | HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::NotGet => "a WebSocket handshake must be a GET",
            HandshakeError::NotHttp11 => "a WebSocket handshake needs HTTP/1.1",
            HandshakeError::NoUpgradeWebsocket => "Upgrade does not name websocket",
            HandshakeError::NoConnectionUpgrade => "Connection does not include upgrade",
            HandshakeError::MissingVersion => "missing Sec-WebSocket-Version",
            HandshakeError::UnsupportedVersion => "Sec-WebSocket-Version is not 13",
            HandshakeError::MissingKey => "missing Sec-WebSocket-Key",
            HandshakeError::BadKey => "Sec-WebSocket-Key is not 16 bytes in base64",
        })
    }
}

/// Checks an upgrade request (RFC 6455 section 4.2.1); `headers(name)` gives the value of a
/// header by lowercase name, repeated headers joined by commas. The version is checked before
/// the key so that a client speaking another version learns which one we speak.
pub fn check_handshake<'a>(
    method_is_get: bool,
    http_minor: u8,
    headers: impl Fn(&str) -> Option<&'a str>,
) -> Result<HandshakeOk, HandshakeError> {
    if !method_is_get {
        return Err(HandshakeError::NotGet);
    }
    if http_minor < 1 {
        return Err(HandshakeError::NotHttp11);
    }
    if !wants_upgrade(headers("upgrade")) {
        return Err(HandshakeError::NoUpgradeWebsocket);
    }
    if !headers("connection").is_some_and(|list| has_token(list, "upgrade")) {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    match headers("sec-websocket-version").map(str::trim) {
        None => return Err(HandshakeError::MissingVersion),
        Some("13") => {}
        Some(_) => return Err(HandshakeError::UnsupportedVersion),
    }
    let key = headers("sec-websocket-key")
        .ok_or(HandshakeError::MissingKey)?
        .trim();
    match base64::decode(key.as_bytes()) {
        Some(nonce) if nonce.len() == 16 => Ok(HandshakeOk {
            accept: accept_key(key),
        }),
        _ => Err(HandshakeError::BadKey),
    }
}

/// Whether a request asks for WebSocket at all (then `check_handshake` says if it may have it),
/// given its `Upgrade` header.
pub fn wants_upgrade(upgrade: Option<&str>) -> bool {
    upgrade.is_some_and(|list| has_token(list, "websocket"))
}

/// Whether a comma-separated header value holds `token`, ignoring case.
fn has_token(list: &str, token: &str) -> bool {
    list.split(',')
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// The 101 answer, with the subprotocol the caller chose from the client's list, if any.
pub fn handshake_response(accept: &str, protocol: Option<&str>) -> Vec<u8> {
    let mut head = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
    crate::http::response::write_server_and_date(&mut head);
    head.extend_from_slice(
        format!("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n")
            .as_bytes(),
    );
    if let Some(protocol) = protocol {
        head.extend_from_slice(format!("Sec-WebSocket-Protocol: {protocol}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xa,
}

impl Opcode {
    /// None for the opcodes RFC 6455 reserves.
    pub fn from_u8(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xa => Opcode::Pong,
            _ => return None,
        })
    }

    pub fn to_u8(self) -> u8 {
        self as u8
    }

    /// Close, ping and pong: short, never fragmented, allowed between a message's fragments.
    pub fn is_control(self) -> bool {
        self.to_u8() & 0x8 != 0
    }
}

const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
const MASKED: u8 = 0x80;
const MAX_CONTROL_PAYLOAD: usize = 125;
/// The longest header the server writes: two bytes and a 64-bit length (never a mask).
pub const MAX_SERVER_HEADER: usize = 10;
/// The longest header a client writes: two bytes, a 64-bit length and the mask.
const MAX_CLIENT_HEADER: usize = 14;

/// The header of an unmasked final frame carrying `payload_len` bytes, and how many of the ten
/// bytes it uses: lets the caller write a large payload after it without copying.
pub fn frame_header(opcode: Opcode, payload_len: usize) -> ([u8; MAX_SERVER_HEADER], usize) {
    let mut header = [0; MAX_SERVER_HEADER];
    header[0] = FIN | opcode.to_u8();
    let used = match payload_len {
        len if len <= 125 => {
            header[1] = len as u8;
            2
        }
        len if len <= 0xffff => {
            header[1] = 126;
            header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        len => {
            header[1] = 127;
            header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    };
    (header, used)
}

/// One unmasked final frame.
pub fn encode_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let (header, used) = frame_header(opcode, payload.len());
    let mut frame = Vec::with_capacity(used + payload.len());
    frame.extend_from_slice(&header[..used]);
    frame.extend_from_slice(payload);
    frame
}

/// A close frame. The reason is cut to fit a control frame's 125 bytes, on a character
/// boundary so that it stays UTF-8 (a client must fail on a close reason that is not).
pub fn encode_close(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(Opcode::Close, &payload)
}

/// A frame as a client sends it, masked. The server never sends one; tests, fuzzing and load
/// generators do.
pub fn encode_client_frame(opcode: Opcode, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let (header, used) = frame_header(opcode, payload.len());
    let mut frame = header[..used].to_vec();
    if !fin {
        frame[0] &= !FIN;
    }
    frame[1] |= MASKED;
    frame.extend_from_slice(&mask);
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], mask, 0);
    frame
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole message, its fragments joined; text is valid UTF-8.
    Message {
        text: bool,
        payload: Vec<u8>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The client's close: its code (None when it gave none) and reason.
    Close {
        code: Option<u16>,
        reason: String,
    },
}

/// Why the connection must be closed, as the close frame the caller sends will say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

const fn protocol_error(reason: &'static str) -> CloseReason {
    CloseReason {
        code: CLOSE_PROTOCOL_ERROR,
        reason,
    }
}

const NOT_UTF8: CloseReason = CloseReason {
    code: CLOSE_INVALID_PAYLOAD,
    reason: "text is not UTF-8",
};

/// A frame header once all of it has arrived.
#[derive(Debug, Clone, Copy)]
struct FrameHead {
    fin: bool,
    opcode: Opcode,
    len: usize,
    mask: [u8; 4],
}

#[derive(Debug)]
enum Phase {
    /// Collecting a header, which may come a byte at a time.
    /// next: Payload, or Header again after a frame with no payload
    Header {
        bytes: [u8; MAX_CLIENT_HEADER],
        have: usize,
    },
    /// `read` of the frame's `head.len` (> 0) payload bytes have arrived. next: Header
    Payload { head: FrameHead, read: usize },
    /// An error was returned; every later call returns it again. next: nothing
    Failed(CloseReason),
}

impl Phase {
    const NEXT_HEADER: Phase = Phase::Header {
        bytes: [0; MAX_CLIENT_HEADER],
        have: 0,
    };
}

/// A data message being reassembled from its fragments.
#[derive(Debug)]
struct Partial {
    text: bool,
    payload: Vec<u8>,
    /// For text, how much of `payload` is known to be whole UTF-8 characters; the rest (at
    /// most three bytes) is the start of a character the next bytes may complete.
    utf8_checked: usize,
}

/// Decodes what a client sends into events, incrementally.
#[derive(Debug)]
pub struct FrameDecoder {
    max_message: usize,
    phase: Phase,
    message: Option<Partial>,
    /// The payload of the control frame being read: at most 125 bytes.
    control: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder refusing (1009) any message over `max_message` bytes, fragments included.
    pub fn new(max_message: usize) -> FrameDecoder {
        FrameDecoder {
            max_message,
            phase: Phase::NEXT_HEADER,
            message: None,
            control: Vec::new(),
        }
    }

    /// Decodes from the front of `input` up to the first event, returning the bytes used and
    /// the event. `Ok(None)` means every byte was used and more are needed; after an event,
    /// call again with the rest. After an error the decoder is done and repeats it.
    /// Between frames, with no fragmented message begun: a new decoder would go on the same,
    /// so an idle connection need not keep this one.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Header { have: 0, .. }) && self.message.is_none()
    }

    pub fn decode(&mut self, input: &[u8]) -> (usize, Result<Option<Event>, CloseReason>) {
        if let Phase::Failed(reason) = self.phase {
            return (0, Err(reason));
        }
        let mut used = 0;
        while used < input.len() {
            let (n, outcome) = match self.phase {
                Phase::Payload { .. } => self.read_payload(&input[used..]),
                _ => self.read_header(&input[used..]),
            };
            used += n;
            match outcome {
                Ok(None) => {}
                Ok(Some(event)) => return (used, Ok(Some(event))),
                Err(reason) => {
                    self.phase = Phase::Failed(reason);
                    return (used, Err(reason));
                }
            }
        }
        (used, Ok(None))
    }

    /// Takes header bytes, only as many as the header needs: each check is made as soon as
    /// the byte it looks at has arrived, so an error is found at the same point in any split.
    fn read_header(&mut self, input: &[u8]) -> (usize, Result<Option<Event>, CloseReason>) {
        let Phase::Header {
            mut bytes,
            mut have,
        } = self.phase
        else {
            unreachable!("read_header outside a header");
        };
        let needed = if have < 2 {
            2
        } else {
            client_header_len(bytes[1])
        };
        let take = (needed - have).min(input.len());
        bytes[have..have + take].copy_from_slice(&input[..take]);
        have += take;
        self.phase = Phase::Header { bytes, have };
        let outcome = match self.check_header(&bytes[..have]) {
            Ok(Some(head)) => self.start_frame(head),
            Ok(None) => Ok(None),
            Err(reason) => Err(reason),
        };
        (take, outcome)
    }

    /// Checks the header bytes so far in the order they come; the header once all is there.
    fn check_header(&self, bytes: &[u8]) -> Result<Option<FrameHead>, CloseReason> {
        let Some(&first) = bytes.first() else {
            return Ok(None);
        };
        if first & RSV != 0 {
            return Err(protocol_error("reserved bits set without an extension"));
        }
        let opcode = Opcode::from_u8(first & 0x0f).ok_or(protocol_error("reserved opcode"))?;
        let fin = first & FIN != 0;
        match opcode {
            _ if opcode.is_control() && !fin => {
                return Err(protocol_error("fragmented control frame"))
            }
            Opcode::Continuation if self.message.is_none() => {
                return Err(protocol_error("continuation without a message"))
            }
            Opcode::Text | Opcode::Binary if self.message.is_some() => {
                return Err(protocol_error("new message before the last one ended"))
            }
            _ => {}
        }
        let Some(&second) = bytes.get(1) else {
            return Ok(None);
        };
        if second & MASKED == 0 {
            return Err(protocol_error("client frame not masked"));
        }
        if opcode.is_control() && usize::from(second & 0x7f) > MAX_CONTROL_PAYLOAD {
            return Err(protocol_error("control frame over 125 bytes"));
        }
        let mask_at = client_header_len(second) - 4;
        let Some(extended) = bytes.get(2..mask_at) else {
            return Ok(None);
        };
        let len = match *extended {
            [] => u64::from(second & 0x7f),
            [high, low] => u64::from(u16::from_be_bytes([high, low])),
            _ => u64::from_be_bytes(extended.try_into().expect("8 length bytes")),
        };
        if len >> 63 != 0 {
            return Err(protocol_error("length with the top bit set"));
        }
        // Refused from the header, before any of the payload is buffered.
        let so_far = self.message.as_ref().map_or(0, |m| m.payload.len());
        let room = self.max_message.saturating_sub(so_far);
        if !opcode.is_control() && len > room as u64 {
            return Err(CloseReason {
                code: CLOSE_TOO_BIG,
                reason: "message too big",
            });
        }
        let Some(mask) = bytes.get(mask_at..mask_at + 4) else {
            return Ok(None);
        };
        Ok(Some(FrameHead {
            fin,
            opcode,
            len: len as usize, // fits: at most 125 or `max_message`
            mask: mask.try_into().expect("4 mask bytes"),
        }))
    }

    fn start_frame(&mut self, head: FrameHead) -> Result<Option<Event>, CloseReason> {
        if matches!(head.opcode, Opcode::Text | Opcode::Binary) {
            self.message = Some(Partial {
                text: head.opcode == Opcode::Text,
                payload: Vec::new(),
                utf8_checked: 0,
            });
        }
        if head.len == 0 {
            self.phase = Phase::NEXT_HEADER;
            return self.finish_frame(head);
        }
        self.phase = Phase::Payload { head, read: 0 };
        Ok(None)
    }

    /// Unmasks payload bytes straight into the message (or the control payload), checking
    /// text as it comes so that a bad byte fails before the rest of the message arrives.
    fn read_payload(&mut self, input: &[u8]) -> (usize, Result<Option<Event>, CloseReason>) {
        let Phase::Payload { head, read } = self.phase else {
            unreachable!("read_payload outside a payload");
        };
        let take = (head.len - read).min(input.len());
        let masked = &input[..take];
        if head.opcode.is_control() {
            append_unmasked(&mut self.control, masked, head.mask, read);
        } else {
            let message = self.message.as_mut().expect("a data frame has a message");
            append_unmasked(&mut message.payload, masked, head.mask, read);
            if message.text {
                if let Err(reason) = check_utf8(message) {
                    return (take, Err(reason));
                }
            }
        }
        if read + take < head.len {
            self.phase = Phase::Payload {
                head,
                read: read + take,
            };
            return (take, Ok(None));
        }
        self.phase = Phase::NEXT_HEADER;
        (take, self.finish_frame(head))
    }

    fn finish_frame(&mut self, head: FrameHead) -> Result<Option<Event>, CloseReason> {
        let control = std::mem::take(&mut self.control);
        Ok(Some(match head.opcode {
            Opcode::Ping => Event::Ping(control),
            Opcode::Pong => Event::Pong(control),
            Opcode::Close => close_event(&control)?,
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                if !head.fin {
                    return Ok(None);
                }
                let message = self.message.take().expect("a data frame has a message");
                if message.text && message.utf8_checked != message.payload.len() {
                    return Err(NOT_UTF8); // ends inside a character
                }
                Event::Message {
                    text: message.text,
                    payload: message.payload,
                }
            }
        }))
    }
}

/// The header length a client frame has, given its second byte.
fn client_header_len(second: u8) -> usize {
    match second & 0x7f {
        126 => 2 + 2 + 4,
        127 => MAX_CLIENT_HEADER,
        _ => 2 + 4,
    }
}

/// Checks the text appended since the last call. A character cut at the end may be finished
/// by later bytes, so only a sequence that can no longer become valid fails; std's validator
/// rejects a bad second byte (overlong, surrogate, beyond U+10FFFF) at once.
fn check_utf8(message: &mut Partial) -> Result<(), CloseReason> {
    let unchecked = &message.payload[message.utf8_checked..];
    match std::str::from_utf8(unchecked) {
        Ok(_) => message.utf8_checked = message.payload.len(),
        Err(e) if e.error_len().is_none() => message.utf8_checked += e.valid_up_to(),
        Err(_) => return Err(NOT_UTF8),
    }
    Ok(())
}

fn close_event(payload: &[u8]) -> Result<Event, CloseReason> {
    match payload {
        [] => Ok(Event::Close {
            code: None,
            reason: String::new(),
        }),
        [_] => Err(protocol_error("close frame with a one-byte payload")),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !close_code_allowed_on_wire(code) {
                return Err(protocol_error("close code not allowed"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| CloseReason {
                code: CLOSE_INVALID_PAYLOAD,
                reason: "close reason is not UTF-8",
            })?;
            Ok(Event::Close {
                code: Some(code),
                reason: reason.to_string(),
            })
        }
    }
}

/// Codes a peer may send (RFC 6455 section 7.4 and the IANA registry): 1004 is reserved,
/// 1005, 1006 and 1015 only report locally, and the rest below 3000 are unassigned.
fn close_code_allowed_on_wire(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn append_unmasked(target: &mut Vec<u8>, masked: &[u8], mask: [u8; 4], offset: usize) {
    let start = target.len();
    target.extend_from_slice(masked);
    apply_mask(&mut target[start..], mask, offset);
}

/// XORs `data` with the mask, eight bytes at a time. `offset` is how much of the payload came
/// before `data`, so a payload unmasked in pieces comes out as if unmasked whole.
fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut mask = mask;
    mask.rotate_left(offset % 4);
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = data.chunks_exact_mut(8);
    for word in &mut words {
        let masked = u64::from_ne_bytes((&*word).try_into().expect("8 bytes")) ^ wide;
        word.copy_from_slice(&masked.to_ne_bytes());
    }
    // The tail starts at a multiple of 8, hence of 4: the mask lines up from its first byte.
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::Opcode::{Binary, Close, Continuation, Ping, Pong, Text};
    use super::*;

    /// The mask of RFC 6455 section 5.7.
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    type Outcome = (Vec<Event>, Option<CloseReason>);

    /// Feeds `input` in pieces of `step` bytes, collecting events until the first error.
    fn decode_in_steps(input: &[u8], step: usize, max_message: usize) -> Outcome {
        let mut decoder = FrameDecoder::new(max_message);
        let mut events = Vec::new();
        for mut piece in input.chunks(step) {
            loop {
                let (used, outcome) = decoder.decode(piece);
                piece = &piece[used..];
                match outcome {
                    Ok(Some(event)) => events.push(event),
                    Ok(None) => break,
                    Err(reason) => return (events, Some(reason)),
                }
            }
            assert!(piece.is_empty(), "Ok(None) leaves no byte unused");
        }
        (events, None)
    }

    /// Decodes whole and a byte at a time, asserting both agree.
    fn decode(input: &[u8], max_message: usize) -> Outcome {
        let whole = decode_in_steps(input, input.len().max(1), max_message);
        assert_eq!(
            whole,
            decode_in_steps(input, 1, max_message),
            "{input:02x?}"
        );
        whole
    }

    fn error_code(input: &[u8], max_message: usize) -> Option<u16> {
        decode(input, max_message).1.map(|reason| reason.code)
    }

    fn frame(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
        encode_client_frame(opcode, fin, payload, MASK)
    }

    fn close(code: u16, reason: &[u8]) -> Vec<u8> {
        frame(Close, true, &[&code.to_be_bytes()[..], reason].concat())
    }

    fn message(text: bool, payload: &[u8]) -> Event {
        let payload = payload.to_vec();
        Event::Message { text, payload }
    }

    #[test]
    fn rfc_section_1_3_accept_key() {
        let accept = accept_key("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn rfc_section_5_7_examples() {
        let hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            decode(&hello, 1 << 20),
            (vec![message(true, b"Hello")], None)
        );
        assert_eq!(frame(Text, true, b"Hello"), hello);
        let ping = [
            0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(decode(&ping, 1 << 20).0, [Event::Ping(b"Hello".to_vec())]);
        // What a server may send; from a client, unmasked fragments are refused.
        let fragmented = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
        assert_eq!(error_code(&fragmented, 1 << 20), Some(1002));
        let server_frames: [(Opcode, usize, &[u8]); 4] = [
            (Text, 5, &[0x81, 0x05]),
            (Ping, 5, &[0x89, 0x05]),
            (Binary, 256, &[0x82, 0x7e, 0x01, 0x00]),
            (Binary, 65536, &[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]),
        ];
        for (opcode, len, header) in server_frames {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert_eq!(encode_frame(opcode, &payload), [header, &payload].concat());
            if opcode == Binary {
                let input = frame(opcode, true, &payload);
                assert_eq!(
                    decode(&input, 1 << 20),
                    (vec![message(false, &payload)], None)
                );
            }
        }
    }

    #[test]
    fn every_error_has_its_code() {
        let top_bit = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let in_text = |next: Vec<u8>| [frame(Text, false, b"a"), next].concat();
        let cases: &[(&str, Vec<u8>, u16)] = &[
            ("RSV1", vec![0xc1, 0x80, 0, 0, 0, 0], 1002),
            ("RSV3", vec![0x91, 0x80, 0, 0, 0, 0], 1002),
            ("opcode 3", vec![0x83, 0x80, 0, 0, 0, 0], 1002),
            ("opcode 11", vec![0x8b, 0x80, 0, 0, 0, 0], 1002),
            ("unmasked", vec![0x82, 0x00], 1002),
            ("fragmented ping", frame(Ping, false, b""), 1002),
            ("ping of 126", frame(Ping, true, &[0; 126]), 1002),
            ("lone continuation", frame(Continuation, true, b"x"), 1002),
            ("text in text", in_text(frame(Text, true, b"b")), 1002),
            ("binary in text", in_text(frame(Binary, true, b"")), 1002),
            ("top length bit", top_bit.to_vec(), 1002),
            ("one-byte close", frame(Close, true, &[3]), 1002),
            ("close 999", close(999, b""), 1002),
            ("close 1004", close(1004, b""), 1002),
            ("close 1005", close(1005, b""), 1002),
            ("close 1006", close(1006, b""), 1002),
            ("close 1015", close(1015, b""), 1002),
            ("close 2999", close(2999, b""), 1002),
            ("close 5000", close(5000, b""), 1002),
            ("close reason not UTF-8", close(1000, &[0xff]), 1007),
            ("bad UTF-8", frame(Text, true, &[0xce, 0xba, 0xff]), 1007),
            ("bad fragment", frame(Text, false, &[b'a', 0xff]), 1007),
            ("cut character", frame(Text, true, &[b'a', 0xe2]), 1007),
            ("surrogate", frame(Text, true, &[0xed, 0xa0, 0x80]), 1007),
            ("over 16 bytes", frame(Binary, true, &[0; 17]), 1009),
        ];
        for (name, input, code) in cases {
            assert_eq!(error_code(input, 16), Some(*code), "{name}");
        }
    }

    #[test]
    fn allowed_close_codes_come_through() {
        for code in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            let (code, reason) = (Some(code), "bye ✓".to_string());
            let input = close(code.unwrap(), reason.as_bytes());
            assert_eq!(
                decode(&input, 16),
                (vec![Event::Close { code, reason }], None)
            );
        }
        let reason = String::new();
        let want = Event::Close { code: None, reason };
        assert_eq!(decode(&frame(Close, true, b""), 16), (vec![want], None));
    }

    #[test]
    fn fragments_with_controls_between_in_any_split() {
        let word = "wörld".as_bytes();
        let stream = [
            frame(Text, false, "héllo ".as_bytes()),
            frame(Ping, true, b"ping!"),
            frame(Continuation, false, &word[..2]), // cuts the ö in two
            frame(Continuation, false, b""),
            frame(Pong, true, b""),
            frame(Continuation, true, &word[2..]),
            frame(Binary, true, &[0, 255]),
            frame(Binary, false, b""),
            frame(Continuation, true, b""),
        ]
        .concat();
        let want = vec![
            Event::Ping(b"ping!".to_vec()),
            Event::Pong(Vec::new()),
            message(true, "héllo wörld".as_bytes()),
            message(false, &[0, 255]),
            message(false, b""),
        ];
        for step in [1, 2, 3, 7, 13, stream.len()] {
            let got = decode_in_steps(&stream, step, 64);
            assert_eq!(got, (want.clone(), None), "step {step}");
        }
    }

    #[test]
    fn invalid_utf8_fails_at_once_in_the_first_fragment() {
        // F0 80 can never start a character: refused at the 80, before the frame is done.
        let first = frame(Text, false, &[b'o', b'k', 0xf0, 0x80, b'x', b'y']);
        let mut decoder = FrameDecoder::new(64);
        assert_eq!(decoder.decode(&first[..9]), (9, Ok(None)));
        for rest in [&first[9..10], &first[10..]] {
            assert_eq!(decoder.decode(rest).1.map_err(|r| r.code), Err(1007));
        }
    }

    #[test]
    fn size_limit_counts_every_fragment() {
        let fragments = [
            frame(Binary, false, &[1; 6]),
            frame(Continuation, false, &[2; 4]),
            frame(Continuation, true, &[3; 1]),
        ]
        .concat();
        assert_eq!(error_code(&fragments, 10), Some(1009));
        let whole = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3];
        assert_eq!(decode(&fragments, 11), (vec![message(false, &whole)], None));
        // Refused from the header alone: the payload is neither awaited nor buffered.
        let big = frame(Binary, true, &[1; 100]);
        let mut decoder = FrameDecoder::new(10);
        assert_eq!(decoder.decode(&big[..2]).1.map_err(|r| r.code), Err(1009));
    }

    #[test]
    fn server_frames_and_handshake_response() {
        for (len, used) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            assert_eq!(frame_header(Binary, len).1, used, "{len}");
        }
        // 61 é are 122 bytes; a 62nd would not fit in 123.
        let close = encode_close(1000, &"é".repeat(100));
        assert_eq!(close[..4], [0x88, 124, 0x03, 0xe8]);
        assert!(std::str::from_utf8(&close[4..]).is_ok());
        for bits in 0..16 {
            let round_trip = Opcode::from_u8(bits).map(Opcode::to_u8);
            assert_eq!(round_trip.unwrap_or(bits), bits);
        }
        let head =
            "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
        let with =
            format!("{head}Sec-WebSocket-Accept: a=\r\nSec-WebSocket-Protocol: chat\r\n\r\n");
        assert_eq!(handshake_response("a=", Some("chat")), with.as_bytes());
        let without = format!("{head}Sec-WebSocket-Accept: a=\r\n\r\n");
        assert_eq!(handshake_response("a=", None), without.as_bytes());
    }

    #[test]
    fn handshakes() {
        use HandshakeError::*;
        let good = [
            ("upgrade", "WebSocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-key", " dGhlIHNhbXBsZSBub25jZQ== "),
            ("sec-websocket-version", "13"),
        ];
        // (header changed, its new value or None to drop it, verdict)
        let cases: &[(&str, Option<&str>, Result<(), HandshakeError>)] = &[
            ("", None, Ok(())),
            ("upgrade", None, Err(NoUpgradeWebsocket)),
            ("upgrade", Some("websocket2, h2c"), Err(NoUpgradeWebsocket)),
            ("upgrade", Some("h2c, websocket"), Ok(())),
            ("connection", None, Err(NoConnectionUpgrade)),
            ("connection", Some("close"), Err(NoConnectionUpgrade)),
            ("sec-websocket-version", None, Err(MissingVersion)),
            ("sec-websocket-version", Some("8"), Err(UnsupportedVersion)),
            ("sec-websocket-key", None, Err(MissingKey)),
            ("sec-websocket-key", Some("c2hvcnQ="), Err(BadKey)),
            ("sec-websocket-key", Some("not base64"), Err(BadKey)),
        ];
        for &(changed, value, want) in cases {
            let headers = |name: &str| match good.iter().find(|(n, _)| *n == name) {
                Some(_) if name == changed => value,
                found => found.map(|(_, v)| *v),
            };
            let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_string();
            let want = want.map(|()| HandshakeOk { accept });
            let got = check_handshake(true, 1, headers);
            assert_eq!(got, want, "{changed} {value:?}");
            if changed.is_empty() {
                assert_eq!(check_handshake(false, 1, headers), Err(NotGet));
                assert_eq!(check_handshake(true, 0, headers), Err(NotHttp11));
            }
        }
        for (error, status) in [
            (MissingVersion, 426),
            (UnsupportedVersion, 426),
            (BadKey, 400),
        ] {
            assert_eq!(error.status(), status);
        }
        assert_eq!(MissingKey.to_string(), "missing Sec-WebSocket-Key");
        assert!(wants_upgrade(Some("h2c, WebSocket")) && !wants_upgrade(None));
    }

    #[test]
    fn unmasking_in_pieces_matches_whole() {
        let payload: Vec<u8> = (0..=255).collect();
        let naive: Vec<u8> = payload
            .iter()
            .zip(MASK.iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect();
        for cut in [0, 1, 3, 5, 8, 13, 100] {
            let mut pieces = payload.clone();
            let (front, back) = pieces.split_at_mut(cut);
            apply_mask(front, MASK, 0);
            apply_mask(back, MASK, cut);
            assert_eq!(pieces, naive, "cut at {cut}");
        }
    }
}
