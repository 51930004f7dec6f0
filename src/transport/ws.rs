//! WebSocket (RFC 6455, version 13), server side, without I/O: the opening handshake, frames
//! the server sends (never masked), and an incremental decoder for what clients send.
//!
//! The decoder takes bytes as they arrive, in any split, and yields whole messages (fragments
//! reassembled, text checked as UTF-8 as it arrives so a bad byte fails at once) and control
//! frames (which may come between fragments). Anything RFC 6455 forbids ends in a close code
//! for the caller to send: 1002 protocol error, 1007 bad UTF-8, 1009 too big.

use std::fmt;

use crate::http::base64;

const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a client's key.
pub fn accept_key(client_key: &str) -> String {
    let mut input = client_key.trim().as_bytes().to_vec();
    input.extend_from_slice(ACCEPT_GUID.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64::encode(digest.as_ref())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    NotGet,
    NotHttp11,
    NoUpgrade,
    NoConnectionUpgrade,
    BadKey,
    /// Missing or not 13: answered 426 with `Sec-WebSocket-Version: 13`.
    Version,
}

impl HandshakeError {
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::Version => 426,
            _ => 400,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::NotGet => "a WebSocket handshake must be a GET",
            HandshakeError::NotHttp11 => "a WebSocket handshake needs HTTP/1.1",
            HandshakeError::NoUpgrade => "Upgrade must name websocket",
            HandshakeError::NoConnectionUpgrade => "Connection must include upgrade",
            HandshakeError::BadKey => "missing or bad Sec-WebSocket-Key",
            HandshakeError::Version => "Sec-WebSocket-Version must be 13",
        })
    }
}

/// Whether a request asks to upgrade to WebSocket at all (then `check_handshake` decides).
pub fn wants_upgrade(upgrade: Option<&str>) -> bool {
    upgrade.is_some_and(|value| has_token(value, "websocket"))
}

/// Checks an upgrade request; `header(name)` gives a header's value by lowercase name.
/// Returns the `Sec-WebSocket-Accept` value.
pub fn check_handshake<'a>(
    is_get: bool,
    minor_version: u8,
    header: impl Fn(&str) -> Option<&'a str>,
) -> Result<String, HandshakeError> {
    if !is_get {
        return Err(HandshakeError::NotGet);
    }
    if minor_version < 1 {
        return Err(HandshakeError::NotHttp11);
    }
    if !wants_upgrade(header("upgrade")) {
        return Err(HandshakeError::NoUpgrade);
    }
    if !header("connection").is_some_and(|v| has_token(v, "upgrade")) {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    if header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(HandshakeError::Version);
    }
    let key = header("sec-websocket-key")
        .ok_or(HandshakeError::BadKey)?
        .trim();
    match base64::decode(key.as_bytes()) {
        Some(nonce) if nonce.len() == 16 => Ok(accept_key(key)),
        _ => Err(HandshakeError::BadKey),
    }
}

fn has_token(list: &str, token: &str) -> bool {
    list.split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The 101 answer.
pub fn handshake_response(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation = 0,
    Text = 1,
    Binary = 2,
    Close = 8,
    Ping = 9,
    Pong = 10,
}

impl Opcode {
    fn from_u8(b: u8) -> Option<Opcode> {
        Some(match b {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            10 => Opcode::Pong,
            _ => return None,
        })
    }

    fn is_control(self) -> bool {
        self as u8 >= 8
    }
}

/// One unmasked frame with FIN set.
pub fn encode_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode as u8);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A close frame; the reason is cut to fit 125 bytes, on a character boundary.
pub fn encode_close(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(Opcode::Close, &payload)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
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

/// Why the connection must be closed, as a close frame says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

const fn protocol(reason: &'static str) -> CloseReason {
    CloseReason { code: 1002, reason }
}

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_POLICY: u16 = 1008;

/// A frame header being read.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    opcode: Opcode,
    len: u64,
    mask: [u8; 4],
}

#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    /// A data message being reassembled: (text?, bytes so far).
    message: Option<(bool, Vec<u8>)>,
    /// UTF-8 validation state across fragments: bytes of an incomplete character.
    utf8_pending: Vec<u8>,
}

impl Decoder {
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            max_message,
            message: None,
            utf8_pending: Vec::new(),
        }
    }

    /// Decodes the next event from the front of `input`. Returns the bytes used and the event
    /// (None: the input holds no whole frame yet, or a fragment was absorbed; call again
    /// with the rest while bytes were used).
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Event>), CloseReason> {
        let Some((header, header_len)) = parse_header(input)? else {
            return Ok((0, None));
        };
        if header.opcode.is_control() {
            if !header.fin {
                return Err(protocol("fragmented control frame"));
            }
            if header.len > 125 {
                return Err(protocol("control frame too long"));
            }
        }
        let len = header.len as usize;
        // A data frame is refused as soon as its header shows the message is too big.
        if !header.opcode.is_control() {
            let so_far = self.message.as_ref().map_or(0, |(_, m)| m.len());
            if header.len > (self.max_message - so_far.min(self.max_message)) as u64 {
                return Err(CloseReason {
                    code: 1009,
                    reason: "message too big",
                });
            }
        }
        if input.len() - header_len < len {
            return Ok((0, None));
        }
        let mut payload = input[header_len..header_len + len].to_vec();
        unmask(&mut payload, header.mask);
        let used = header_len + len;
        let event = match header.opcode {
            Opcode::Ping => Some(Event::Ping(payload)),
            Opcode::Pong => Some(Event::Pong(payload)),
            Opcode::Close => Some(close_event(&payload)?),
            Opcode::Text | Opcode::Binary => {
                if self.message.is_some() {
                    return Err(protocol("new message before the last one ended"));
                }
                let text = header.opcode == Opcode::Text;
                self.message = Some((text, Vec::new()));
                self.utf8_pending.clear();
                self.append(payload, header.fin)?
            }
            Opcode::Continuation => {
                if self.message.is_none() {
                    return Err(protocol("continuation without a message"));
                }
                self.append(payload, header.fin)?
            }
        };
        Ok((used, event))
    }

    fn append(&mut self, payload: Vec<u8>, fin: bool) -> Result<Option<Event>, CloseReason> {
        let (text, message) = self.message.as_mut().expect("a message is open");
        if *text {
            check_utf8(&mut self.utf8_pending, &payload, fin)?;
        }
        message.extend_from_slice(&payload);
        if !fin {
            return Ok(None);
        }
        let (text, payload) = self.message.take().expect("a message is open");
        Ok(Some(Event::Message { text, payload }))
    }
}

/// Validates UTF-8 incrementally: `pending` holds the start of a character cut by a fragment
/// boundary. Fails as soon as a sequence cannot be valid.
fn check_utf8(pending: &mut Vec<u8>, chunk: &[u8], fin: bool) -> Result<(), CloseReason> {
    let bad = CloseReason {
        code: 1007,
        reason: "text is not UTF-8",
    };
    let mut data = std::mem::take(pending);
    data.extend_from_slice(chunk);
    match std::str::from_utf8(&data) {
        Ok(_) => Ok(()),
        Err(e) if e.error_len().is_none() && !fin => {
            // Incomplete at the end: keep the start of the character for the next fragment.
            *pending = data[e.valid_up_to()..].to_vec();
            Ok(())
        }
        Err(_) => Err(bad),
    }
}

fn close_event(payload: &[u8]) -> Result<Event, CloseReason> {
    match payload {
        [] => Ok(Event::Close {
            code: None,
            reason: String::new(),
        }),
        [_] => Err(protocol("close frame with a one-byte payload")),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !valid_close_code(code) {
                return Err(protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| CloseReason {
                code: 1007,
                reason: "close reason is not UTF-8",
            })?;
            Ok(Event::Close {
                code: Some(code),
                reason: reason.to_string(),
            })
        }
    }
}

/// Codes a peer may send (RFC 6455 section 7.4 and the IANA registry).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn parse_header(input: &[u8]) -> Result<Option<(Header, usize)>, CloseReason> {
    let [first, second, ..] = *input else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(protocol("reserved bits set"));
    }
    let opcode = Opcode::from_u8(first & 0x0f).ok_or(protocol("unknown opcode"))?;
    if second & 0x80 == 0 {
        return Err(protocol("client frames must be masked"));
    }
    let (len, mut at) = match second & 0x7f {
        126 => {
            let Some(bytes) = input.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
        }
        127 => {
            let Some(bytes) = input.get(2..10) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
            if len >> 63 != 0 {
                return Err(protocol("length with the top bit set"));
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    let Some(mask) = input.get(at..at + 4) else {
        return Ok(None);
    };
    let mask = mask.try_into().expect("4 bytes");
    at += 4;
    Ok(Some((
        Header {
            fin: first & 0x80 != 0,
            opcode,
            len,
            mask,
        },
        at,
    )))
}

/// XORs with the mask, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// A client frame, masked: for tests and fuzzing.
pub fn encode_client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    let mut body = payload.to_vec();
    unmask(&mut body, mask);
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// Decodes everything, returning the events and the error that ended it, if any.
    fn decode_all(input: &[u8], step: usize) -> (Vec<Event>, Option<CloseReason>) {
        let mut decoder = Decoder::new(1 << 20);
        let mut events = Vec::new();
        let mut buf = Vec::new();
        for piece in input.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&buf) {
                    Ok((0, _)) => break,
                    Ok((used, event)) => {
                        buf.drain(..used);
                        events.extend(event);
                    }
                    Err(e) => return (events, Some(e)),
                }
            }
        }
        (events, None)
    }

    fn text(s: &str) -> Event {
        Event::Message {
            text: true,
            payload: s.as_bytes().to_vec(),
        }
    }

    #[test]
    fn rfc_examples() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        // RFC 6455 section 5.7: a masked "Hello".
        let hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(decode_all(&hello, 100), (vec![text("Hello")], None));
        // Unmasked frames, which clients must not send.
        let (_, err) = decode_all(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], 100);
        assert_eq!(err.unwrap().code, 1002);
        assert_eq!(
            encode_frame(Opcode::Text, b"Hello"),
            [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(
            &encode_frame(Opcode::Binary, &[0; 256])[..4],
            [0x82, 0x7e, 0x01, 0x00]
        );
        assert_eq!(
            &encode_frame(Opcode::Binary, &[0; 65536])[..10],
            [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn fragments_controls_and_splits() {
        let mut stream = encode_client_frame(false, 1, "héllo ".as_bytes(), MASK);
        stream.extend(encode_client_frame(true, 9, b"ping!", MASK));
        // "wörld": the ö cut between two fragments.
        let word = "wörld".as_bytes();
        stream.extend(encode_client_frame(false, 0, &word[..2], MASK));
        stream.extend(encode_client_frame(true, 0, &word[2..], MASK));
        stream.extend(encode_client_frame(true, 2, &[0, 255], MASK));
        stream.extend(encode_client_frame(
            true,
            8,
            &[0x03, 0xe8, b'o', b'k'],
            MASK,
        ));
        let want = vec![
            Event::Ping(b"ping!".to_vec()),
            text("héllo wörld"),
            Event::Message {
                text: false,
                payload: vec![0, 255],
            },
            Event::Close {
                code: Some(1000),
                reason: "ok".into(),
            },
        ];
        for step in [1, 2, 3, 7, stream.len()] {
            assert_eq!(
                decode_all(&stream, step),
                (want.clone(), None),
                "step {step}"
            );
        }
    }

    #[test]
    fn errors_have_their_codes() {
        let frame = |fin, op, payload: &[u8]| encode_client_frame(fin, op, payload, MASK);
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (vec![0xc1, 0x80, 0, 0, 0, 0], 1002), // RSV1
            (vec![0x83, 0x80, 0, 0, 0, 0], 1002), // opcode 3
            (frame(false, 9, b""), 1002),         // fragmented ping
            (frame(true, 9, &[0; 126]), 1002),    // long ping
            (frame(true, 0, b"x"), 1002),         // continuation alone
            ([frame(false, 1, b"a"), frame(true, 1, b"b")].concat(), 1002),
            (frame(true, 8, &[3]), 1002),          // one-byte close
            (frame(true, 8, &[0x03, 0xed]), 1002), // 1005 on the wire
            (frame(true, 8, &[0x03, 0xe8, 0xff]), 1007), // close reason not UTF-8
            (frame(true, 1, &[0xce, 0xba, 0xff]), 1007), // bad UTF-8
            (frame(false, 1, &[0xff]), 1007),      // fails before the end
            (
                vec![0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                1002,
            ), // top bit
        ];
        for (input, code) in cases {
            let (_, err) = decode_all(&input, input.len());
            assert_eq!(err.map(|e| e.code), Some(code), "{input:?}");
        }
    }

    #[test]
    fn size_limit_counts_every_fragment() {
        let mut decoder = Decoder::new(10);
        let first = encode_client_frame(false, 2, &[1; 6], MASK);
        assert_eq!(decoder.decode(&first).unwrap().0, first.len());
        let second = encode_client_frame(true, 0, &[1; 6], MASK);
        assert_eq!(decoder.decode(&second).unwrap_err().code, 1009);
        // Refused from the header alone, before the payload arrives.
        let big = encode_client_frame(true, 2, &[1; 100], MASK);
        assert_eq!(Decoder::new(10).decode(&big[..8]).unwrap_err().code, 1009);
    }

    #[test]
    fn handshakes() {
        let ok = |name: &str| -> Option<&'static str> {
            match name {
                "upgrade" => Some("WebSocket"),
                "connection" => Some("keep-alive, Upgrade"),
                "sec-websocket-key" => Some("dGhlIHNhbXBsZSBub25jZQ=="),
                "sec-websocket-version" => Some("13"),
                _ => None,
            }
        };
        assert_eq!(
            check_handshake(true, 1, ok).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(check_handshake(false, 1, ok), Err(HandshakeError::NotGet));
        assert_eq!(check_handshake(true, 0, ok), Err(HandshakeError::NotHttp11));
        let without =
            |missing: &'static str| move |name: &str| if name == missing { None } else { ok(name) };
        assert_eq!(
            check_handshake(true, 1, without("upgrade")),
            Err(HandshakeError::NoUpgrade)
        );
        assert_eq!(
            check_handshake(true, 1, without("connection")),
            Err(HandshakeError::NoConnectionUpgrade)
        );
        assert_eq!(
            check_handshake(true, 1, without("sec-websocket-key")),
            Err(HandshakeError::BadKey)
        );
        let version = check_handshake(true, 1, without("sec-websocket-version")).unwrap_err();
        assert_eq!((version, version.status()), (HandshakeError::Version, 426));
        let short_key = |name: &str| {
            if name == "sec-websocket-key" {
                Some("c2hvcnQ=")
            } else {
                ok(name)
            }
        };
        assert_eq!(
            check_handshake(true, 1, short_key),
            Err(HandshakeError::BadKey)
        );
    }

    #[test]
    fn close_reasons_are_cut_on_a_character() {
        let frame = encode_close(1000, &"é".repeat(100));
        assert!(frame.len() <= 127);
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
    }
}
