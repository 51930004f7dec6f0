//! The lhttp wire protocol (github.com/fanux/lhttp), as its server really speaks it.
//!
//! A message is one WebSocket frame: `LHTTP/1.0 COMMAND\r\nkey:value\r\n...\r\n\r\nbody`.
//! This module parses and encodes such frames and says what a frame asks the server to do
//! (subscribe, publish, unsubscribe, call an upstream, split a multipart body). It does no I/O.
//!
//! `parse` reproduces the original Go parser (`buildMessage` in wsHandler.go) exactly on every
//! input the original accepted, including its quirks, and returns an error where the original
//! ignored the frame or panicked (a panic there drops the TCP connection without a close
//! frame). `parse_lenient` is the same except that frames the original panicked on are read
//! with the plain grammar instead, so msgbus can choose to be kinder than the original.
//! SPEC.md beside this crate quotes the Go source for each rule.

use std::fmt;

/// The protocol name and version every client frame starts with.
pub const PROTOCOL: &[u8] = b"LHTTP/1.0";
/// `protocolLength` in lhttpDefine.go; the command starts one byte after it.
const PROTOCOL_LEN: usize = 9;
const CRLF: &[u8] = b"\r\n";

/// The built-in header names (lhttpDefine.go). Matching is exact and case-sensitive.
pub const HEADER_SUBSCRIBE: &[u8] = b"subscribe";
pub const HEADER_PUBLISH: &[u8] = b"publish";
pub const HEADER_UNSUBSCRIBE: &[u8] = b"unsubscribe";
pub const HEADER_UPSTREAM: &[u8] = b"upstream";
pub const HEADER_MULTIPART: &[u8] = b"multipart";

/// One lhttp frame. Headers keep the order and duplicates they had on the wire; the original
/// kept them in a Go map, so a repeated key means its last value (see `header`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LhttpMessage {
    pub command: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl LhttpMessage {
    /// The value of header `name` as the original saw it: exact case, last occurrence wins.
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k.as_slice() == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The headers as the original's map held them: each key once, with its last value, in the
    /// order keys first appeared (the original iterated its map in random order, so any order
    /// is what its clients already accept).
    pub fn header_map(&self) -> Vec<(&[u8], &[u8])> {
        let mut out: Vec<(&[u8], &[u8])> = Vec::with_capacity(self.headers.len());
        for (k, v) in &self.headers {
            match out.iter_mut().find(|(ok, _)| *ok == k.as_slice()) {
                Some(slot) => slot.1 = v.as_slice(),
                None => out.push((k.as_slice(), v.as_slice())),
            }
        }
        out
    }
}

/// Why a frame was not parsed, and what the original did with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LhttpError {
    /// 9 bytes or fewer. Original: logged "TODO provide other protocol", frame ignored.
    TooShort,
    /// Does not start with `LHTTP/1.0`. Original: logged, frame ignored.
    NotLhttp,
    /// No `\r\n` anywhere. Original: slice panic, connection dropped.
    NoLineEnd,
    /// The first `\r\n` is before byte 10 (`LHTTP/1.0\r\n`). Original: slice panic.
    StartLineTooShort,
    /// The header scan ran off the end (e.g. no headers but a blank line). Original: panic.
    TruncatedHeaders,
    /// `multipart:` offsets outside the body or decreasing. Original: panic.
    MultipartOutOfRange,
    /// A multipart block whose header scan runs off its end. Original: panic.
    MultipartTruncatedBlock,
    /// `upstream:` value without a space (no URL). Original: index panic.
    UpstreamMissingUrl,
}

/// What the original server did when it met an `LhttpError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginalAction {
    /// The frame was dropped; the connection carried on.
    IgnoreFrame,
    /// The handler goroutine panicked: the TCP connection was closed with no close frame,
    /// OnClose never ran and the connection's subscriptions stayed registered.
    DropConnection,
}

impl LhttpError {
    pub fn original_action(self) -> OriginalAction {
        match self {
            LhttpError::TooShort | LhttpError::NotLhttp => OriginalAction::IgnoreFrame,
            _ => OriginalAction::DropConnection,
        }
    }
}

impl fmt::Display for LhttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            LhttpError::TooShort => "frame of 9 bytes or fewer",
            LhttpError::NotLhttp => "frame does not start with LHTTP/1.0",
            LhttpError::NoLineEnd => "no CRLF after the start line",
            LhttpError::StartLineTooShort => "start line ends before the command",
            LhttpError::TruncatedHeaders => "header block runs off the end of the frame",
            LhttpError::MultipartOutOfRange => "multipart offset outside the body",
            LhttpError::MultipartTruncatedBlock => "multipart block header runs off its end",
            LhttpError::UpstreamMissingUrl => "upstream header has no URL",
        };
        f.write_str(s)
    }
}

impl std::error::Error for LhttpError {}

/// Parses a WebSocket frame exactly as the original did (wsHandler.go `StartServer` checks,
/// then `buildMessage`). Never panics.
pub fn parse(data: &[u8]) -> Result<LhttpMessage, LhttpError> {
    if data.len() <= PROTOCOL_LEN {
        return Err(LhttpError::TooShort);
    }
    if &data[..PROTOCOL_LEN] != PROTOCOL {
        return Err(LhttpError::NotLhttp);
    }
    build_message(data)
}

/// Like `parse`, but a frame on which the original panicked is read with the plain grammar
/// (start line; `key:value` lines split at the first `:`; a blank line; the body). Frames the
/// original accepted give the same result as `parse`.
pub fn parse_lenient(data: &[u8]) -> Result<LhttpMessage, LhttpError> {
    match parse(data) {
        Err(e) if e.original_action() == OriginalAction::DropConnection => {
            plain_grammar(data).ok_or(e)
        }
        other => other,
    }
}

/// `buildMessage` of wsHandler.go: no prefix check (the HTTP publisher calls it on raw bodies).
fn build_message(data: &[u8]) -> Result<LhttpMessage, LhttpError> {
    let i = memchr::memmem::find(data, CRLF).ok_or(LhttpError::NoLineEnd)?;
    // `s[protocolLength+1 : i]`: byte 9 is skipped whatever it is.
    if i < PROTOCOL_LEN + 1 {
        return Err(LhttpError::StartLineTooShort);
    }
    let command = data[PROTOCOL_LEN + 1..i].to_vec();
    let rest = &data[i + 2..];
    let (headers, body_at) = scan_headers(rest).ok_or(LhttpError::TruncatedHeaders)?;
    Ok(LhttpMessage {
        command,
        headers,
        body: rest[body_at..].to_vec(),
    })
}

type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// The header loop shared by `buildMessage` and multipart `initBlock`, step for step: it walks
/// rune starts (Go `range` over a string), takes the key at the first `:` of a line, ends a line
/// at CRLF, and stops as soon as the unread part starts with CRLF. It returns the headers and
/// where the body starts, or None where the Go code slices past the end and panics.
fn scan_headers(h: &[u8]) -> Option<(Headers, usize)> {
    let mut headers = Vec::new();
    let mut k = 0usize;
    let mut key = (0usize, 0usize); // Go's `key == ""` is "this range is empty"
    let mut j = 0usize;
    while j < h.len() {
        if h[j] == b':' && key.0 == key.1 {
            key = (k, j);
            k = j + 1;
        } else {
            if j + 2 > h.len() {
                return None;
            }
            if &h[j..j + 2] == CRLF {
                if k > j {
                    return None; // cannot happen; Go would panic on the slice too
                }
                headers.push((h[key.0..key.1].to_vec(), h[k..j].to_vec()));
                k = j + 2;
                key = (0, 0);
            }
        }
        if k + 2 > h.len() {
            return None;
        }
        if &h[k..k + 2] == CRLF {
            return Some((headers, k + 2));
        }
        j += go_rune_width(h, j);
    }
    Some((headers, k))
}

/// The width Go's `range` gives the rune starting at `at`: its UTF-8 length when valid, else 1.
fn go_rune_width(s: &[u8], at: usize) -> usize {
    if s[at] < 0x80 {
        return 1;
    }
    let end = s.len().min(at + 4);
    match std::str::from_utf8(&s[at..end]) {
        Ok(t) => t.chars().next().map_or(1, char::len_utf8),
        Err(e) if e.valid_up_to() > 0 => std::str::from_utf8(&s[at..at + e.valid_up_to()])
            .ok()
            .and_then(|t| t.chars().next())
            .map_or(1, char::len_utf8),
        Err(_) => 1,
    }
}

/// The grammar the README describes, used only where the original panicked.
fn plain_grammar(data: &[u8]) -> Option<LhttpMessage> {
    if data.len() <= PROTOCOL_LEN || &data[..PROTOCOL_LEN] != PROTOCOL {
        return None;
    }
    let line_end = memchr::memmem::find(data, CRLF)?;
    let command = data.get(PROTOCOL_LEN + 1..line_end).unwrap_or(&[]).to_vec();
    let mut at = line_end + 2;
    let mut headers = Vec::new();
    loop {
        let rest = &data[at..];
        if rest.is_empty() {
            return Some(LhttpMessage {
                command,
                headers,
                body: Vec::new(),
            });
        }
        if rest.starts_with(CRLF) {
            return Some(LhttpMessage {
                command,
                headers,
                body: rest[2..].to_vec(),
            });
        }
        let len = memchr::memmem::find(rest, CRLF).unwrap_or(rest.len());
        let line = &rest[..len];
        let (k, v) = match memchr::memchr(b':', line) {
            Some(c) => (&line[..c], &line[c + 1..]),
            None => (&line[..0], line),
        };
        headers.push((k.to_vec(), v.to_vec()));
        at += (len + 2).min(rest.len());
    }
}

/// Encodes a frame as the original's `serializeMessage` / `Send` did: no space after `:`,
/// CRLF line ends, a blank line, then the body as is.
pub fn encode(msg: &LhttpMessage) -> Vec<u8> {
    let size = PROTOCOL_LEN
        + 3
        + msg.command.len()
        + msg
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 3)
            .sum::<usize>()
        + 2
        + msg.body.len();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(PROTOCOL);
    out.push(b' ');
    out.extend_from_slice(&msg.command);
    out.extend_from_slice(CRLF);
    for (k, v) in &msg.headers {
        out.extend_from_slice(k);
        out.push(b':');
        out.extend_from_slice(v);
        out.extend_from_slice(CRLF);
    }
    out.extend_from_slice(CRLF);
    out.extend_from_slice(&msg.body);
    out
}

/// What goes back to the client when the HTTP endpoint of a processor (`--lhttp-processor`)
/// answered a message with `command`: nothing for an empty 2xx answer (a processor that
/// `Send`s nothing); a body that is an lhttp message (read as the door reads clients' messages),
/// as it is (the demo's `chat` answers `LHTTP/1.0 auth...`); any other body as the body of a message with the request's command and
/// the answer's `content-type`. A status outside 2xx, or a body that starts like an lhttp
/// message but is not one, is an error with a one-line reason.
pub fn processor_reply(
    command: &[u8],
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Option<Vec<u8>>, String> {
    if !(200..300).contains(&status) {
        return Err(format!("the processor answered HTTP {status}"));
    }
    if body.is_empty() {
        return Ok(None);
    }
    if body.starts_with(PROTOCOL) {
        return match parse_lenient(body) {
            Ok(_) => Ok(Some(body.to_vec())),
            Err(e) => Err(format!(
                "the processor's answer is not an lhttp message: {e}"
            )),
        };
    }
    let headers = content_type
        .filter(|t| crate::gate::is_clean_line(t.as_bytes()))
        .map(|t| vec![(b"content-type".to_vec(), t.as_bytes().to_vec())])
        .unwrap_or_default();
    Ok(Some(encode(&LhttpMessage {
        command: command.to_vec(),
        headers,
        body: body.to_vec(),
    })))
}

/// The bytes every subscriber receives (as one text frame) when `msg` arrives over WebSocket
/// with a `publish:` header: the message re-serialized from the parsed map (mqFilter.go
/// `setResponse` + `serializeMessage`), every header kept, `publish:` included.
pub fn publish_frame(msg: &LhttpMessage) -> Vec<u8> {
    let headers = msg
        .header_map()
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    encode(&LhttpMessage {
        command: msg.command.clone(),
        headers,
        body: msg.body.clone(),
    })
}

/// Splits a `subscribe` / `publish` / `unsubscribe` value into channels: `strings.Split(value,
/// " ")`. Empty names (from doubled or edge spaces) are dropped: the original handed them to
/// NATS, which refuses an empty subject.
pub fn split_channels(value: &[u8]) -> Vec<&[u8]> {
    value
        .split(|&b| b == b' ')
        .filter(|c| !c.is_empty())
        .collect()
}

/// An `upstream:` header: `METHOD URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream<'a> {
    pub method: &'a [u8],
    pub url: &'a [u8],
    /// Only the exact method `GET` goes without a body; any other method string is sent with
    /// the message *body* (not the whole message, whatever the README says).
    pub sends_body: bool,
}

/// Parses an `upstream` value as upstreamFilter.go does: split on single spaces, the first
/// field is the method, the second the URL, further fields are ignored.
pub fn parse_upstream(value: &[u8]) -> Result<Upstream<'_>, LhttpError> {
    let mut fields = value.split(|&b| b == b' ');
    let method = fields.next().unwrap_or(&[]);
    let url = fields.next().ok_or(LhttpError::UpstreamMissingUrl)?;
    Ok(Upstream {
        method,
        url,
        sends_body: method != b"GET",
    })
}

/// One part of a `multipart:` body, parsed like a header block (multipartFilter.go `initBlock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: &'a [u8],
}

/// What a `multipart:` header amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Multipart<'a> {
    /// No header, or an empty value.
    Absent,
    /// A field that `strconv.Atoi` refuses: the original logged it and kept whatever parts the
    /// previous frame on the connection had (a bug; msgbus should treat it as no parts).
    BadNumber,
    Parts(Vec<Part<'a>>),
}

/// Go's `strconv.Atoi` on a 64-bit platform: optional sign, decimal digits, no spaces.
fn go_atoi(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        n = if neg {
            n.checked_mul(10)?.checked_sub(d)?
        } else {
            n.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(n)
}

/// Parses the offsets of a `multipart:` value: byte offsets into the body, separated by single
/// spaces. Returns None where the original gave up (`BadNumber`).
pub fn parse_offsets(value: &[u8]) -> Option<Vec<i64>> {
    value.split(|&b| b == b' ').map(go_atoi).collect()
}

/// Cuts `body` at `offsets` (multipartFilter.go `splitsString`): part i is
/// `body[offsets[i]..offsets[i+1]]`, the last runs to the end; bytes before the first offset
/// belong to no part. Offsets must not decrease and must lie within the body.
pub fn split_parts<'a>(offsets: &[i64], body: &'a [u8]) -> Result<Vec<&'a [u8]>, LhttpError> {
    let mut parts = Vec::with_capacity(offsets.len());
    for (i, &lo) in offsets.iter().enumerate() {
        let hi = offsets.get(i + 1).copied().unwrap_or(body.len() as i64);
        if lo < 0 || hi < lo || hi > body.len() as i64 {
            return Err(LhttpError::MultipartOutOfRange);
        }
        parts.push(&body[lo as usize..hi as usize]);
    }
    Ok(parts)
}

/// The whole multipart step for one frame's `multipart` value and body.
pub fn parse_multipart<'a>(value: &[u8], body: &'a [u8]) -> Result<Multipart<'a>, LhttpError> {
    if value.is_empty() {
        return Ok(Multipart::Absent);
    }
    let Some(offsets) = parse_offsets(value) else {
        return Ok(Multipart::BadNumber);
    };
    let mut parts = Vec::with_capacity(offsets.len());
    for block in split_parts(&offsets, body)? {
        let (headers, at) = scan_headers(block).ok_or(LhttpError::MultipartTruncatedBlock)?;
        parts.push(Part {
            headers,
            body: &block[at..],
        });
    }
    Ok(Multipart::Parts(parts))
}

/// One thing a frame asks of the server, in the order the original did them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    Subscribe(&'a [u8]),
    /// Send `publish_frame(msg)` to every subscriber of the channel, the sender included if it
    /// is subscribed.
    Publish(&'a [u8]),
    Unsubscribe(&'a [u8]),
    /// An HTTP request whose reply the original only logged; nothing goes back to the client.
    Upstream(Upstream<'a>),
}

/// Everything one parsed frame asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<'a> {
    /// Parsed before the command's processor ran (a BeforeRequest filter).
    pub multipart: Multipart<'a>,
    /// After the processor: all subscribes, then all publishes, then all unsubscribes, then
    /// the upstream call.
    pub ops: Vec<Op<'a>>,
    /// Where the original panicked: the connection is dropped after `ops` (or, for a multipart
    /// panic, before any of them, in which case `ops` is empty).
    pub close: Option<LhttpError>,
}

/// Decides what `msg` asks for, as the header filters of headerFilter.go / mqFilter.go /
/// upstreamFilter.go / multipartFilter.go would. An empty header value means "absent".
pub fn plan(msg: &LhttpMessage) -> Plan<'_> {
    let multipart = match parse_multipart(msg.header(HEADER_MULTIPART).unwrap_or(&[]), &msg.body) {
        Ok(m) => m,
        Err(e) => {
            return Plan {
                multipart: Multipart::Absent,
                ops: Vec::new(),
                close: Some(e),
            }
        }
    };
    let mut ops = Vec::new();
    let channels = |name| split_channels(msg.header(name).unwrap_or(&[]));
    ops.extend(channels(HEADER_SUBSCRIBE).into_iter().map(Op::Subscribe));
    ops.extend(channels(HEADER_PUBLISH).into_iter().map(Op::Publish));
    ops.extend(
        channels(HEADER_UNSUBSCRIBE)
            .into_iter()
            .map(Op::Unsubscribe),
    );
    let mut close = None;
    match msg.header(HEADER_UPSTREAM) {
        None | Some([]) => {}
        Some(v) => match parse_upstream(v) {
            Ok(u) => ops.push(Op::Upstream(u)),
            Err(e) => close = Some(e),
        },
    }
    Plan {
        multipart,
        ops,
        close,
    }
}

/// `POST /publish` (mq.go `httpPublisher`): the body is an lhttp message, parsed with no
/// length or prefix check; each channel of its `publish` header gets the body verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPublish<'a> {
    pub channels: Vec<Vec<u8>>,
    /// What subscribers receive: the request body byte for byte, not re-serialized.
    pub frame: &'a [u8],
}

/// Reads a `POST /publish` body. The reply is `200` with an empty body whether or not there
/// was a `publish` header; an error here is where the original panicked and closed the
/// connection without any reply.
pub fn parse_http_publish(body: &[u8]) -> Result<HttpPublish<'_>, LhttpError> {
    let msg = build_message(body)?;
    let channels = split_channels(msg.header(HEADER_PUBLISH).unwrap_or(&[]))
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    Ok(HttpPublish {
        channels,
        frame: body,
    })
}

/// The fuzz invariant: `parse` and `parse_lenient` never panic, lenient agrees with strict
/// wherever strict succeeds, and a well-formed message survives encode → parse unchanged.
pub fn fuzz_check(data: &[u8]) {
    let strict = parse(data);
    let lenient = parse_lenient(data);
    if let Ok(m) = &strict {
        assert_eq!(lenient.as_ref(), Ok(m));
        let _ = plan(m);
        let _ = publish_frame(m);
    }
    let _ = parse_http_publish(data);
    if let Ok(m) = lenient {
        if is_well_formed(&m) {
            assert_eq!(parse(&encode(&m)), Ok(m));
        }
    }
}

/// Messages that `encode` → `parse` reproduces exactly: at least one header, a command and
/// header names and values free of CR and LF, names free of `:`, non-empty values, and no
/// `:` in the value of an empty name (the parser would take the name from the value).
pub fn is_well_formed(m: &LhttpMessage) -> bool {
    let clean = |s: &[u8]| !s.iter().any(|&b| b == b'\r' || b == b'\n');
    !m.headers.is_empty()
        && clean(&m.command)
        && m.headers.iter().all(|(k, v)| {
            clean(k)
                && clean(v)
                && !k.contains(&b':')
                && !v.is_empty()
                && (!k.is_empty() || !v.contains(&b':'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(command: &str, headers: &[(&str, &str)], body: &str) -> LhttpMessage {
        LhttpMessage {
            command: command.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
            body: body.into(),
        }
    }

    #[test]
    fn parse_vectors() {
        use LhttpError::*;
        type Want = Result<
            (
                &'static str,
                &'static [(&'static str, &'static str)],
                &'static str,
            ),
            LhttpError,
        >;
        let cases: &[(&[u8], Want)] = &[
            // websocketClient/test.go
            (b"LHTTP/1.0 subpub\r\nsubscribe:mike\r\n\r\n", Ok(("subpub", &[("subscribe", "mike")], ""))),
            (b"LHTTP/1.0 subpub\r\npublish:mike\r\n\r\nhello world", Ok(("subpub", &[("publish", "mike")], "hello world"))),
            (b"LHTTP/1.0 chat\r\ncontent-type:json\r\ncontent-length:10\r\n\r\njsonbody",
                Ok(("chat", &[("content-type", "json"), ("content-length", "10")], "jsonbody"))),
            (b"LHTTP/1.0 upstream\r\nupstream:GET http://h:8080/v1/user/10000/reports?AlgID=1\r\n\r\n",
                Ok(("upstream", &[("upstream", "GET http://h:8080/v1/user/10000/reports?AlgID=1")], ""))),
            // the body may hold anything, CRLFs and colons included
            (b"LHTTP/1.0 c\r\nk:v\r\n\r\na:b\r\n\r\nc", Ok(("c", &[("k", "v")], "a:b\r\n\r\nc"))),
            // a value may hold ':'; the key ends at the first one
            (b"LHTTP/1.0 c\r\nupstream:POST http://x/r\r\n\r\n", Ok(("c", &[("upstream", "POST http://x/r")], ""))),
            (b"LHTTP/1.0 c\r\nk:a:b\r\n\r\n", Ok(("c", &[("k", "a:b")], ""))),
            // no trimming, exact case
            (b"LHTTP/1.0  c \r\n Subscribe : a \r\n\r\n", Ok((" c ", &[(" Subscribe ", " a ")], ""))),
            // a line without ':' is stored under the empty key
            (b"LHTTP/1.0 c\r\nnocolon\r\n\r\n", Ok(("c", &[("", "nocolon")], ""))),
            (b"LHTTP/1.0 c\r\n:v\r\n\r\n", Ok(("c", &[("", "v")], ""))),
            (b"LHTTP/1.0 c\r\n:k:v\r\n\r\n", Ok(("c", &[("k", "v")], ""))),
            // an empty value ends the header block: the rest becomes the body
            (b"LHTTP/1.0 c\r\nfoo:\r\nbar:1\r\n\r\nbody", Ok(("c", &[], "bar:1\r\n\r\nbody"))),
            // byte 9 is not checked
            (b"LHTTP/1.0Xchat\r\nk:v\r\n\r\n", Ok(("chat", &[("k", "v")], ""))),
            (b"LHTTP/1.0 \r\nk:v\r\n\r\n", Ok(("", &[("k", "v")], ""))),
            // a start line alone is accepted, with no blank line
            (b"LHTTP/1.0 c\r\n", Ok(("c", &[], ""))),
            // duplicates are kept in order
            (b"LHTTP/1.0 c\r\nk:1\r\nk:2\r\n\r\n", Ok(("c", &[("k", "1"), ("k", "2")], ""))),
            // LF-only line ends are not line ends
            (b"LHTTP/1.0 c\r\nk:v\n\nbody\r\n\r\n", Ok(("c", &[("k", "v\n\nbody")], ""))),
            // the scan stops early only by luck: the last rune is multi-byte
            ("LHTTP/1.0 c\r\n\r\nbodé".as_bytes(), Ok(("c", &[("", "")], "bodé"))),
            (b"LHTTP/1.0", Err(TooShort)),
            (b"", Err(TooShort)),
            (b"HTTP/1.1 200 OK\r\n\r\n", Err(NotLhttp)),
            (b"lhttp/1.0 c\r\nk:v\r\n\r\n", Err(NotLhttp)),
            (b"LHTTP/1.0 chat", Err(NoLineEnd)),
            (b"LHTTP/1.0\r\nk:v\r\n\r\n", Err(StartLineTooShort)),
            // no headers: the scan runs off the end (the JS SDK sends these)
            (b"LHTTP/1.0 c\r\n\r\n", Err(TruncatedHeaders)),
            (b"LHTTP/1.0 chat\r\n\r\nhello", Err(TruncatedHeaders)),
            // a header line not ended by CRLF
            (b"LHTTP/1.0 c\r\nk:v", Err(TruncatedHeaders)),
            (b"LHTTP/1.0 c\r\nk:v\r\n", Err(TruncatedHeaders)),
        ];
        for (input, want) in cases {
            let got = parse(input);
            let want = want.map(|(c, h, b)| msg(c, h, b));
            assert_eq!(got, want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn lenient_reads_what_the_original_dropped() {
        let cases: &[(&[u8], Option<LhttpMessage>)] = &[
            (b"LHTTP/1.0 c\r\n\r\n", Some(msg("c", &[], ""))),
            (
                b"LHTTP/1.0 chat\r\n\r\nhello",
                Some(msg("chat", &[], "hello")),
            ),
            (b"LHTTP/1.0 c\r\nk:v", Some(msg("c", &[("k", "v")], ""))),
            (
                b"LHTTP/1.0\r\nk:v\r\n\r\nb",
                Some(msg("", &[("k", "v")], "b")),
            ),
            (b"LHTTP/1.0 chat", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_lenient(input).ok(),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(parse_lenient(b"XX"), Err(LhttpError::TooShort));
    }

    #[test]
    fn errors_say_what_the_original_did() {
        assert_eq!(
            LhttpError::TooShort.original_action(),
            OriginalAction::IgnoreFrame
        );
        assert_eq!(
            LhttpError::NotLhttp.original_action(),
            OriginalAction::IgnoreFrame
        );
        assert_eq!(
            LhttpError::TruncatedHeaders.original_action(),
            OriginalAction::DropConnection
        );
    }

    #[test]
    fn encode_vectors() {
        let cases: &[(LhttpMessage, &[u8])] = &[
            (
                msg("chat", &[("publish", "a b")], "hi"),
                b"LHTTP/1.0 chat\r\npublish:a b\r\n\r\nhi",
            ),
            (msg("c", &[], ""), b"LHTTP/1.0 c\r\n\r\n"),
            (
                msg("auth", &[("content-type", "image/png")], "x"),
                b"LHTTP/1.0 auth\r\ncontent-type:image/png\r\n\r\nx",
            ),
        ];
        for (m, want) in cases {
            assert_eq!(encode(m), *want);
        }
    }

    #[test]
    fn publish_frame_forwards_every_header_once() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"LHTTP/1.0 subpub\r\npublish:mike\r\n\r\nhello world", b"LHTTP/1.0 subpub\r\npublish:mike\r\n\r\nhello world"),
            (b"LHTTP/1.0 chat\r\nupstream:POST http://x/record\r\npublish:channel_mike\r\n\r\nhello mike,I am jack",
                b"LHTTP/1.0 chat\r\nupstream:POST http://x/record\r\npublish:channel_mike\r\n\r\nhello mike,I am jack"),
            (b"LHTTP/1.0 c\r\nk:1\r\npublish:a\r\nk:2\r\n\r\nb", b"LHTTP/1.0 c\r\nk:2\r\npublish:a\r\n\r\nb"),
        ];
        for (input, want) in cases {
            assert_eq!(publish_frame(&parse(input).unwrap()), *want);
        }
    }

    #[test]
    fn plan_vectors() {
        let cases: &[(&[u8], &[Op<'static>], Option<LhttpError>)] = &[
            (
                b"LHTTP/1.0 c\r\nsubscribe:a b  c\r\n\r\n",
                &[
                    Op::Subscribe(b"a"),
                    Op::Subscribe(b"b"),
                    Op::Subscribe(b"c"),
                ],
                None,
            ),
            (
                b"LHTTP/1.0 c\r\nsubscribe: a\r\n\r\n",
                &[Op::Subscribe(b"a")],
                None,
            ),
            (
                b"LHTTP/1.0 c\r\nunsubscribe:a\r\npublish:b\r\nsubscribe:b\r\n\r\nx",
                &[
                    Op::Subscribe(b"b"),
                    Op::Publish(b"b"),
                    Op::Unsubscribe(b"a"),
                ],
                None,
            ),
            (
                b"LHTTP/1.0 c\r\nSubscribe:a\r\nPUBLISH:b\r\n\r\n",
                &[],
                None,
            ),
            (
                b"LHTTP/1.0 c\r\nsubscribe:a\r\nsubscribe:b\r\n\r\n",
                &[Op::Subscribe(b"b")],
                None,
            ),
            (
                b"LHTTP/1.0 c\r\npublish:a\r\nupstream:POST http://x/r extra\r\n\r\nb",
                &[
                    Op::Publish(b"a"),
                    Op::Upstream(Upstream {
                        method: b"POST",
                        url: b"http://x/r",
                        sends_body: true,
                    }),
                ],
                None,
            ),
            (
                b"LHTTP/1.0 c\r\nupstream:GET http://x/?a=1\r\n\r\nb",
                &[Op::Upstream(Upstream {
                    method: b"GET",
                    url: b"http://x/?a=1",
                    sends_body: false,
                })],
                None,
            ),
            (
                b"LHTTP/1.0 c\r\nupstream:get http://x/\r\n\r\n",
                &[Op::Upstream(Upstream {
                    method: b"get",
                    url: b"http://x/",
                    sends_body: true,
                })],
                None,
            ),
            (
                b"LHTTP/1.0 c\r\npublish:a\r\nupstream:GET\r\n\r\n",
                &[Op::Publish(b"a")],
                Some(LhttpError::UpstreamMissingUrl),
            ),
            (
                b"LHTTP/1.0 c\r\nsubscribe:a\r\nmultipart:0 99\r\n\r\nshort",
                &[],
                Some(LhttpError::MultipartOutOfRange),
            ),
        ];
        for (input, ops, close) in cases {
            let m = parse(input).unwrap();
            let p = plan(&m);
            assert_eq!(p.ops, *ops, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(p.close, *close, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn multipart_vectors() {
        // README and websocketClient/test.go
        let m = parse(
            b"LHTTP/1.0 upload\r\nmultipart:0 14\r\n\r\nk1:v1\r\n\r\nbody1k2:v2\r\n\r\nbody2",
        )
        .unwrap();
        let want = Multipart::Parts(vec![
            Part {
                headers: vec![(b"k1".to_vec(), b"v1".to_vec())],
                body: b"body1",
            },
            Part {
                headers: vec![(b"k2".to_vec(), b"v2".to_vec())],
                body: b"body2",
            },
        ]);
        assert_eq!(plan(&m).multipart, want);

        let body: &[u8] = b"content-type:text/json\r\n\r\n{filename:file.txt,fileLen:5}content-type:text/plain\r\n\r\nhello";
        // the README says 56; the first part is 55 bytes long, so 56 moves a 'c' across
        let parts = split_parts(&[0, 55], body).unwrap();
        assert!(parts[1].starts_with(b"content-type:text/plain"));
        let Ok(Multipart::Parts(p)) = parse_multipart(b"0 56", body) else {
            panic!()
        };
        assert_eq!(p[0].body, b"{filename:file.txt,fileLen:5}c");
        assert_eq!(
            p[1].headers,
            vec![(b"ontent-type".to_vec(), b"text/plain".to_vec())]
        );

        type Case<'a> = (&'a [u8], &'a [u8], Result<usize, LhttpError>);
        let cases: &[Case] = &[
            (b"0", b"a:b\r\n\r\nc", Ok(1)),
            (b"+0 +7", b"a:b\r\n\r\na:b\r\n\r\n", Ok(2)),
            (b"3", b"xxxa:b\r\n\r\n", Ok(1)),
            (b"0 0", b"a:b\r\n\r\n", Ok(2)),
            (b"", b"anything", Ok(0)),
            (
                b"0 99",
                b"a:b\r\n\r\n",
                Err(LhttpError::MultipartOutOfRange),
            ),
            (
                b"5 2",
                b"a:b\r\n\r\nccc",
                Err(LhttpError::MultipartOutOfRange),
            ),
            (b"-1", b"a:b\r\n\r\n", Err(LhttpError::MultipartOutOfRange)),
            (b"99999999999999999999", b"", Ok(usize::MAX)),
            (b"0 x", b"a:b\r\n\r\n", Ok(usize::MAX)),
            (b"0  7", b"a:b\r\n\r\n", Ok(usize::MAX)),
            (
                b"0",
                b"no headers here",
                Err(LhttpError::MultipartTruncatedBlock),
            ),
        ];
        for (value, body, want) in cases {
            let got = parse_multipart(value, body).map(|m| match m {
                Multipart::Absent => 0,
                Multipart::BadNumber => usize::MAX,
                Multipart::Parts(p) => p.len(),
            });
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn http_publish_vectors() {
        let body: &[u8] = b"LHTTP/1.0 chat\r\npublish:channel_test\r\n\r\nhello channel_test guys!";
        let p = parse_http_publish(body).unwrap();
        assert_eq!(p.channels, vec![b"channel_test".to_vec()]);
        assert_eq!(p.frame, body);
        // tools.go Publish: two channels
        let p = parse_http_publish(b"LHTTP/1.0 cmd\r\npublish:mike jack\r\nk:v\r\n\r\nhello mike!")
            .unwrap();
        assert_eq!(p.channels, vec![b"mike".to_vec(), b"jack".to_vec()]);
        // no prefix check over HTTP
        let p = parse_http_publish(b"XXXXXXXXX c\r\npublish:a\r\n\r\nb").unwrap();
        assert_eq!(p.channels, vec![b"a".to_vec()]);
        assert_eq!(
            parse_http_publish(b"LHTTP/1.0 c\r\nk:v\r\n\r\n")
                .unwrap()
                .channels
                .len(),
            0
        );
        assert_eq!(parse_http_publish(b"short"), Err(LhttpError::NoLineEnd));
        assert_eq!(parse_http_publish(b""), Err(LhttpError::NoLineEnd));
        assert_eq!(
            parse_http_publish(b"a\r\n"),
            Err(LhttpError::StartLineTooShort)
        );
    }

    #[test]
    fn go_rune_widths() {
        let cases: &[(&[u8], usize)] = &[
            (b"a", 1),
            ("é".as_bytes(), 2),
            ("€".as_bytes(), 3),
            ("😀".as_bytes(), 4),
            (b"\xff", 1),
            (b"\xe2\x82", 1),
            (b"\xc3\r", 1),
            (b"\xed\xa0\x80", 1), // surrogate: invalid in Go too
        ];
        for (s, w) in cases {
            assert_eq!(go_rune_width(s, 0), *w, "{s:?}");
        }
    }

    /// A small deterministic fuzzer: mutations of the vectors plus random bytes.
    #[test]
    fn fuzz_never_panics_and_roundtrips() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let seeds: &[&[u8]] = &[
            b"LHTTP/1.0 subpub\r\nsubscribe:mike\r\n\r\n",
            b"LHTTP/1.0 upload\r\nmultipart:0 14\r\n\r\nk1:v1\r\n\r\nbody1k2:v2\r\n\r\nbody2",
            b"LHTTP/1.0 c\r\nupstream:POST http://x/r\r\npublish:a b\r\n\r\nbody",
            "LHTTP/1.0 c\r\n\r\nbodé".as_bytes(),
        ];
        let alphabet = b"\r\n: abLHTP/.10\xc3\xa9\xff";
        for round in 0..20_000 {
            let mut data = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 6) {
                let pos = (next() as usize) % (data.len() + 1);
                match next() % 3 {
                    0 => data.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
                    1 if pos < data.len() => {
                        data.remove(pos);
                    }
                    _ => data.truncate(pos),
                }
            }
            fuzz_check(&data);
        }
        for _ in 0..5_000 {
            let len = (next() % 40) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() as usize) % alphabet.len()])
                .collect();
            fuzz_check(&data);
        }
    }

    #[test]
    fn generated_messages_roundtrip() {
        let mut seed: u64 = 42;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let alphabet = "ab: é€\r\n/x".as_bytes();
        let field = |next: &mut dyn FnMut() -> usize, min: usize| -> Vec<u8> {
            let len = min + next() % 6;
            (0..len)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect()
        };
        let mut checked = 0;
        for _ in 0..20_000 {
            let m = LhttpMessage {
                command: field(&mut next, 0),
                headers: (0..next() % 4)
                    .map(|_| (field(&mut next, 0), field(&mut next, 1)))
                    .collect(),
                body: field(&mut next, 0),
            };
            if is_well_formed(&m) {
                checked += 1;
                assert_eq!(parse(&encode(&m)), Ok(m.clone()));
            }
        }
        assert!(checked > 100);
    }

    #[test]
    fn processor_answers_become_frames_or_reasons() {
        let chat = b"LHTTP/1.0 auth\r\ncontent-type:image/png\r\n\r\njsonbody";
        let cases: &[(u16, Option<&str>, &[u8], Result<Option<&[u8]>, &str>)] = &[
            (200, Some("text/x-lhttp"), chat, Ok(Some(chat))),
            (204, None, b"", Ok(None)),
            (200, Some("text/plain"), b"", Ok(None)),
            (
                200,
                Some("application/json"),
                b"{\"ok\":true}",
                Ok(Some(
                    b"LHTTP/1.0 chat\r\ncontent-type:application/json\r\n\r\n{\"ok\":true}",
                )),
            ),
            (201, None, b"x", Ok(Some(b"LHTTP/1.0 chat\r\n\r\nx"))),
            (500, None, b"oops", Err("the processor answered HTTP 500")),
            (302, None, b"", Err("the processor answered HTTP 302")),
            (
                200,
                None,
                b"LHTTP/1.0 auth",
                Err("the processor's answer is not an lhttp message: "),
            ),
        ];
        for (status, content_type, body, want) in cases {
            let got = processor_reply(b"chat", *status, *content_type, body);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got.as_deref(), *want, "{status}"),
                (Err(got), Err(want)) => assert!(got.starts_with(want), "{got}"),
                (got, want) => panic!("{status}: {got:?} vs {want:?}"),
            }
        }
    }
}
