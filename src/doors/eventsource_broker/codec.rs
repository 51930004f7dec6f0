//! The HTTP protocol of eventsource-broker (github.com/eshq/eventsource-broker, the Haskell/Snap
//! EventSource bridge behind ESHQ), as its last known `src/Main.hs` speaks it.
//!
//! `route` turns a request into a typed operation or the exact error reply the original sent;
//! `verify_token` checks `key`/`token`/`timestamp` against a users table and a caller-given
//! `now`; the `encode_*` functions produce the bytes of the event stream. No I/O, no clock, no
//! database: where the original looked something up in MongoDB (a socket id), the operation
//! carries the id and the caller answers with the reply constants given here.
//! `eventsource_broker.md` beside this file quotes the Haskell source for each rule; its §12
//! says where this door departs from it to be safe.

use std::fmt::Write as _;

use crate::gate::is_clean_line;

/// The caller's clock reading, seconds and nanoseconds since 1970 (`getPOSIXTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub secs: i64,
    pub nanos: u32,
}

/// `validTime`: `abs (t1 - t2) < 5 * 60`, t2 the floor of the server time.
pub const TIMESTAMP_WINDOW_SECS: i128 = 5 * 60;
/// `timeout 9000000 source`: a ping is sent after 9 s without an event.
pub const KEEPALIVE_MS: u64 = 9_000;
/// `Event.since`: `limit = 50`.
pub const REPLAY_LIMIT: usize = 50;
/// `Conn.disconnectAt = Just 10`: a socket not streaming is forgotten 10 s after it was
/// created or after its stream ended, at the next sweep (every 15 s).
pub const SOCKET_GRACE_SECS: u64 = 10;
pub const SWEEP_INTERVAL_SECS: u64 = 15;

/// The keep-alive, also sent first on a stream that has nothing to replay
/// (EventStream.hs: `pingEvent = ServerEvent (Just $ fromString "ping") Nothing [fromString "{}"]`).
pub const PING: &[u8] = b"event:ping\ndata:{}\n\n";
/// The keep-alive of older revisions (`pingEvent = CommentEvent (fromString "ping")`).
pub const PING_LEGACY_COMMENT: &[u8] = b":ping\n";

/// Response headers of the stream and of the one-event answer (`eventSourceStream`,
/// `eventSourceResponse`).
pub const SSE_HEADERS: &[(&str, &str)] = &[
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
];

/// A reply the original sent, status and body exactly; `content_type` is None where the
/// original set none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

impl Reply {
    fn text(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type: None,
            body: body.into(),
        }
    }

    /// `withParam`: `showError 400 $ BS.concat ["Missing param: ", name]`.
    pub fn missing_param(name: &str) -> Reply {
        Reply::text(400, format!("Missing param: {name}"))
    }

    /// A value that would become (part of) a line of the event stream, or of another door's
    /// header, holds a line break or NUL (or, for a channel, any control character). Not in
    /// the original, which wrote such values out raw; same shape as its other 400s.
    pub fn invalid_param(name: &str) -> Reply {
        Reply::text(400, format!("Invalid param: {name}"))
    }

    /// `withConnection`: `showError 404 "Socket Not Found"`.
    pub fn socket_not_found() -> Reply {
        Reply::text(404, "Socket Not Found")
    }

    /// `withDBResult` on a database failure.
    pub fn database_error() -> Reply {
        Reply::text(500, "Database Connection Error")
    }

    /// Where the original threw an uncaught exception (invalid UTF-8 in a parameter that it
    /// decodes). Snap answered 500; the body of that page is not known from the source.
    pub fn uncaught_exception() -> Reply {
        Reply::text(500, "")
    }

    /// `postEvent`: `writeBS "{}"` (older revisions wrote `Ok`).
    pub fn event_published() -> Reply {
        Reply::text(200, "{}")
    }

    /// `postEventFromSocket`: `writeBS "Ok"`.
    pub fn socket_event_published() -> Reply {
        Reply::text(200, "Ok")
    }

    /// `createSocket`: `sendJSON conn`, the `ToJSON Connection` instance of Models/Connection.hs.
    /// The original's key order came from a hash map; this one is fixed.
    pub fn socket_created(socket: &str, channel: &str, presence_id: Option<&str>) -> Reply {
        let body = serde_json::json!({
            "socket": socket,
            "channel": channel,
            "presence_id": presence_id,
        });
        Reply {
            status: 200,
            content_type: Some("application/json"),
            body: body.to_string().into_bytes(),
        }
    }
}

/// The request as far as the original looked at it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// `GET`, `POST`, `HEAD`, ...
    pub method: &'a str,
    /// The path without the query, still percent-encoded, e.g. `/socket/abc`.
    pub path: &'a [u8],
    /// The query string without `?`.
    pub query: &'a [u8],
    /// The body when the Content-Type is `application/x-www-form-urlencoded` (Snap decodes
    /// only those into parameters), else None.
    pub form_body: Option<&'a [u8]>,
    /// The `Last-Event-ID` header.
    pub last_event_id: Option<&'a [u8]>,
    /// The `X-Requested-With` header.
    pub x_requested_with: Option<&'a [u8]>,
}

/// How events go out on `GET /eventsource` (`getTransport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `text/event-stream`, kept open, pings every 9 s.
    Stream,
    /// `X-Requested-With: XMLHttpRequest`: one event (or the replay) as `text/event-stream`,
    /// then the response ends.
    OneShot,
    /// `transport=iframe`: an HTML page of `<script>parent.ESHQ(...)</script>` lines, kept open.
    Iframe,
    /// `transport=script.js`: one `parent.ESHQ(...);` line as `text/javascript`, then the end.
    Script,
}

/// The files the original served from disk, before any method check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaticFile {
    Index,
    Iframe,
    IframeJs,
    EsJs,
    /// `dir "static" (serveDirectory "static")`: the rest of the path.
    Static(Vec<u8>),
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    StaticFile(StaticFile),
    /// `HEAD /status`: `OK`, or 500 when AMQP or the database is down.
    Status,
    /// `GET /broker`: JSON `{"broker_id":..,"connections":..,"master":..}`.
    BrokerInfo,
    /// `GET /channel/:channel/users` (authenticated): JSON array of the user's presence ids.
    ChannelUsers {
        key: String,
        channel: String,
    },
    /// `POST /socket` (authenticated): make a socket, answer `Reply::socket_created`.
    CreateSocket {
        key: String,
        channel: String,
        presence_id: Option<String>,
    },
    /// `POST /event` (authenticated): publish, answer `Reply::event_published`.
    Publish {
        key: String,
        channel: String,
        data: String,
        name: Option<String>,
    },
    /// `POST /socket/:socket` (no authentication). The caller looks the socket up first
    /// (`Reply::socket_not_found`), then, if `data` is None, answers
    /// `Reply::missing_param("data")`; else publishes on the socket's user and channel and
    /// answers `Reply::socket_event_published`.
    PublishFromSocket {
        socket: String,
        data: Option<String>,
        name: Option<String>,
    },
    /// `GET /eventsource[/:transport]?socket=ID`. The caller looks the socket up
    /// (`Reply::socket_not_found`); the channel and user come from the socket, never from the
    /// query. `last_event_id` is the `Last-Event-ID` header only (the `last-event-id` query
    /// parameter is never read: `<|>` on a computation that cannot fail).
    Subscribe {
        socket: String,
        transport: Transport,
        last_event_id: Option<LastEventId>,
    },
}

/// A `Last-Event-ID` header as the original read it (`read` into a BSON ObjectId).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastEventId {
    /// Exactly 24 hex digits (either case), then optional whitespace.
    ObjectId([u8; 12]),
    /// Anything else: `read` fails. The original then threw; the exact reply is not known.
    Invalid(Vec<u8>),
}

/// The user table: api key → secret (MongoDB collection `users`, `{key, secret}`).
pub trait Users {
    fn secret(&self, key: &str) -> Option<&str>;
}

impl Users for std::collections::HashMap<String, String> {
    fn secret(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// Routes a request as `main`'s `quickHttpServe` handler did and checks what can be checked
/// without the database. Err is the exact reply the original sent.
pub fn route(req: &Request<'_>, users: &dyn Users, now: Now) -> Result<Operation, Reply> {
    let segments = path_segments(req.path);
    let seg = |i: usize| segments.get(i).map(Vec::as_slice);
    let mut params = parse_params(req.query, req.form_body);

    // ifTop / path "iframe" / path "iframe.js" / path "es.js" / dir "static", any method
    match (segments.len(), seg(0)) {
        (0, _) => return Ok(Operation::StaticFile(StaticFile::Index)),
        (1, Some(b"iframe")) => return Ok(Operation::StaticFile(StaticFile::Iframe)),
        (1, Some(b"iframe.js")) => return Ok(Operation::StaticFile(StaticFile::IframeJs)),
        (1, Some(b"es.js")) => return Ok(Operation::StaticFile(StaticFile::EsJs)),
        (_, Some(b"static")) => {
            return Ok(Operation::StaticFile(StaticFile::Static(
                segments[1..].join(&b'/'),
            )))
        }
        _ => {}
    }
    let not_found = || Reply::text(404, "");
    match (req.method, seg(0)) {
        ("HEAD", Some(b"status")) => Ok(Operation::Status),
        ("POST", Some(b"event")) => {
            let key = authenticate(&params, users, now)?;
            let channel = channel_param(&params)?;
            let data = required(&params, "data")?;
            let name = event_name(&params)?;
            Ok(Operation::Publish {
                key,
                channel,
                data,
                name,
            })
        }
        ("POST", Some(b"socket")) if segments.len() >= 2 => {
            // route captures come before the query and body values of the same name
            params.insert(0, (b"socket".to_vec(), segments[1].clone()));
            let socket = required(&params, "socket")?;
            let data = match get_param(&params, "data") {
                Some(d) => Some(utf8(d)?),
                None => None,
            };
            let name = event_name(&params)?;
            Ok(Operation::PublishFromSocket { socket, data, name })
        }
        ("POST", Some(b"socket")) => {
            let key = authenticate(&params, users, now)?;
            let channel = channel_param(&params)?;
            let presence_id = optional(&params, "presence_id");
            Ok(Operation::CreateSocket {
                key,
                channel,
                presence_id,
            })
        }
        ("GET", Some(b"broker")) => Ok(Operation::BrokerInfo),
        ("GET", Some(b"channel")) if segments.len() >= 3 && seg(2) == Some(b"users") => {
            params.insert(0, (b"channel".to_vec(), segments[1].clone()));
            let key = authenticate(&params, users, now)?;
            let channel = channel_param(&params)?;
            Ok(Operation::ChannelUsers { key, channel })
        }
        ("GET", Some(b"eventsource")) => {
            if let Some(t) = seg(1) {
                params.insert(0, (b"transport".to_vec(), t.to_vec()));
            }
            let socket = required(&params, "socket")?;
            let transport = match (
                get_param(&params, "transport").as_deref(),
                req.x_requested_with,
            ) {
                (Some(b"iframe"), _) => Transport::Iframe,
                (Some(b"script.js"), _) => Transport::Script,
                (_, Some(b"XMLHttpRequest")) => Transport::OneShot,
                _ => Transport::Stream,
            };
            Ok(Operation::Subscribe {
                socket,
                transport,
                last_event_id: req.last_event_id.map(parse_last_event_id),
            })
        }
        _ => Err(not_found()),
    }
}

fn utf8(v: Vec<u8>) -> Result<String, Reply> {
    String::from_utf8(v).map_err(|_| Reply::uncaught_exception())
}

/// `withParam`: present (even empty) or `400 Missing param: NAME`; decoded as UTF-8.
fn required(params: &Params, name: &str) -> Result<String, Reply> {
    utf8(get_param(params, name).ok_or_else(|| Reply::missing_param(name))?)
}

/// `getParam` for the optional `name` / `presence_id`: kept as bytes by the original; lossy
/// here only for bytes that are not UTF-8.
fn optional(params: &Params, name: &str) -> Option<String> {
    get_param(params, name).map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// The required `channel`: no control character, as in a native channel name (it becomes part
/// of a bus channel name, which other doors write into header lines).
fn channel_param(params: &Params) -> Result<String, Reply> {
    let channel = required(params, "channel")?;
    if channel.chars().any(char::is_control) {
        return Err(Reply::invalid_param("channel"));
    }
    Ok(channel)
}

/// The optional event `name`: it becomes an `event:` line, so CR, LF and NUL are refused
/// (one would end the line and let the publisher write its own `id:` or `data:`).
fn event_name(params: &Params) -> Result<Option<String>, Reply> {
    let name = optional(params, "name");
    if name
        .as_deref()
        .is_some_and(|n| !is_clean_line(n.as_bytes()))
    {
        return Err(Reply::invalid_param("name"));
    }
    Ok(name)
}

/// Splits a path into percent-decoded segments, ignoring empty ones.
fn path_segments(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|s| !s.is_empty())
        .map(|s| url_decode(s).unwrap_or_else(|| s.to_vec()))
        .collect()
}

/// Request parameters in order: (name, value) pairs, query first, then the form body.
pub type Params = Vec<(Vec<u8>, Vec<u8>)>;

/// Snap's `parseUrlEncoded` over the query and the form body: pairs split on `&` and `;`,
/// name and value at the first `=` (none: empty value), `+` is a space, `%XX` a byte, and a
/// pair with a bad escape is dropped.
pub fn parse_params(query: &[u8], form_body: Option<&[u8]>) -> Params {
    let mut out = Vec::new();
    for src in std::iter::once(query).chain(form_body) {
        for pair in src.split(|&b| b == b'&' || b == b';') {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[..0]),
            };
            if let (Some(k), Some(v)) = (url_decode(k), url_decode(v)) {
                out.push((k, v));
            }
        }
    }
    out
}

/// Snap's `getParam`: every value of the name, joined with a space.
pub fn get_param(params: &Params, name: &str) -> Option<Vec<u8>> {
    let mut values = params.iter().filter(|(k, _)| k == name.as_bytes());
    let mut joined = values.next()?.1.clone();
    for (_, v) in values {
        joined.push(b' ');
        joined.extend_from_slice(v);
    }
    Some(joined)
}

fn url_decode(s: &[u8]) -> Option<Vec<u8>> {
    crate::http::query::percent_decode(s, true)
}

/// `withAuth` of the last known Main.hs: the three parameters, then the user, then the
/// timestamp window, then the token. Returns the api key.
pub fn authenticate(params: &Params, users: &dyn Users, now: Now) -> Result<String, Reply> {
    let (Some(key), Some(token), Some(timestamp)) = (
        get_param(params, "key"),
        get_param(params, "token"),
        get_param(params, "timestamp"),
    ) else {
        return Err(Reply::text(401, "Access Denied - Missing Credentials"));
    };
    let key = utf8(key)?;
    verify_token(users, &key, &token, &timestamp, now)?;
    Ok(key)
}

/// Checks a token: the user must exist, `timestamp` must parse as a Haskell `Integer` within
/// 300 s (exclusive) of `now`, and `token` must equal the lowercase hex SHA-1 of
/// `key:secret:timestamp` (timestamp as sent, byte for byte).
pub fn verify_token(
    users: &dyn Users,
    key: &str,
    token: &[u8],
    timestamp: &[u8],
    now: Now,
) -> Result<(), Reply> {
    let secret = users
        .secret(key)
        .ok_or_else(|| Reply::text(404, "User not found"))?;
    let in_window = read_integer(timestamp)
        .is_some_and(|t| (t - i128::from(now.secs)).abs() < TIMESTAMP_WINDOW_SECS);
    if !in_window {
        let body = format!(
            "Access Denied - Timestamp invalid, timestamp: {} server time: {}",
            haskell_show_bytes(timestamp),
            show_posix_time(now)
        );
        return Err(Reply::text(401, body));
    }
    // Constant time: an early exit at the first differing byte would let a client find a
    // valid token byte by byte from the answer's timing.
    let expected = expected_token(key, secret, timestamp);
    if !crate::bus::constant_time_eq(token, expected.as_bytes()) {
        return Err(Reply::text(401, "Access Denied - Bad Credentials"));
    }
    Ok(())
}

/// `show (sha1 (key ++ ":" ++ secret ++ ":" ++ timestamp))`: 40 lowercase hex digits.
pub fn expected_token(key: &str, secret: &str, timestamp: &[u8]) -> String {
    let mut input = Vec::with_capacity(key.len() + secret.len() + timestamp.len() + 2);
    input.extend_from_slice(key.as_bytes());
    input.push(b':');
    input.extend_from_slice(secret.as_bytes());
    input.push(b':');
    input.extend_from_slice(timestamp);
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    hex(digest.as_ref())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// GHC's `read :: String -> Integer` (via `readMay`): surrounding whitespace, any number of
/// balanced parentheses, an optional `-` (spaces may follow it), then decimal digits or
/// `0x`/`0X` hex or `0o`/`0O` octal. No `+`, no fraction, no exponent. Values beyond i128 are
/// None, which fails the window check exactly as such a huge Integer would.
pub fn read_integer(s: &[u8]) -> Option<i128> {
    let ws = |s: &[u8], mut i: usize| {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut i = ws(s, 0);
    let mut parens = 0;
    while i < s.len() && s[i] == b'(' {
        parens += 1;
        i = ws(s, i + 1);
    }
    let neg = s.get(i) == Some(&b'-');
    if neg {
        i = ws(s, i + 1);
    }
    let (radix, start) = match (s.get(i), s.get(i + 1)) {
        (Some(b'0'), Some(b'x' | b'X')) if s.get(i + 2).is_some_and(u8::is_ascii_hexdigit) => {
            (16, i + 2)
        }
        (Some(b'0'), Some(b'o' | b'O'))
            if s.get(i + 2).is_some_and(|c| (b'0'..=b'7').contains(c)) =>
        {
            (8, i + 2)
        }
        _ => (10, i),
    };
    let mut end = start;
    let mut n: i128 = 0;
    while let Some(d) = s.get(end).and_then(|&c| (c as char).to_digit(radix)) {
        n = n
            .checked_mul(i128::from(radix))?
            .checked_add(i128::from(d))?;
        end += 1;
    }
    if end == start {
        return None;
    }
    // a letter, digit or '.' / '_' run-on makes a different lexeme: no parse
    if s.get(end)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'_')
    {
        return None;
    }
    i = ws(s, end);
    for _ in 0..parens {
        if s.get(i) != Some(&b')') {
            return None;
        }
        i = ws(s, i + 1);
    }
    (i == s.len()).then_some(if neg { -n } else { n })
}

/// Haskell `show` of a Char8 ByteString: a string literal with Haskell escapes.
pub fn haskell_show_bytes(s: &[u8]) -> String {
    const NAMES: [&str; 32] = [
        "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "a", "b", "t", "n", "v", "f", "r", "SO",
        "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC",
        "FS", "GS", "RS", "US",
    ];
    let mut out = String::from("\"");
    for (i, &c) in s.iter().enumerate() {
        let next = s.get(i + 1).copied();
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(c as char),
            0x7f => out.push_str("\\DEL"),
            0..=0x1f => {
                out.push('\\');
                out.push_str(NAMES[c as usize]);
                if c == 14 && next == Some(b'H') {
                    out.push_str("\\&");
                }
            }
            _ => {
                let _ = write!(out, "\\{c}");
                if next.is_some_and(|n| n.is_ascii_digit()) {
                    out.push_str("\\&");
                }
            }
        }
    }
    out.push('"');
    out
}

/// Haskell `show` of a POSIXTime: seconds with up to 12 decimals, trailing zeros dropped, `s`.
pub fn show_posix_time(now: Now) -> String {
    let picos = u64::from(now.nanos) * 1000;
    if picos == 0 {
        return format!("{}s", now.secs);
    }
    let frac = format!("{picos:012}");
    format!("{}.{}s", now.secs, frac.trim_end_matches('0'))
}

/// Reads a `Last-Event-ID` as the original's `read :: String -> ObjectId` did.
pub fn parse_last_event_id(v: &[u8]) -> LastEventId {
    let ok = v.len() >= 24
        && v[..24].iter().all(u8::is_ascii_hexdigit)
        && v[24..].iter().all(u8::is_ascii_whitespace);
    if !ok {
        return LastEventId::Invalid(v.to_vec());
    }
    let mut id = [0u8; 12];
    for (i, b) in id.iter_mut().enumerate() {
        let d = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        *b = d(v[2 * i]) << 4 | d(v[2 * i + 1]);
    }
    LastEventId::ObjectId(id)
}

/// `show :: ObjectId -> String`: 24 lowercase hex digits, the form of every event id.
pub fn format_object_id(id: &[u8; 12]) -> String {
    hex(id)
}

/// One `text/event-stream` event as `eventSourceBuilder` writes it: `event:` then `id:` then
/// `data:`, no space after the colons, then a blank line. Unlike the original (which wrote the
/// data on one line whatever it held, so a publisher could forge whole events), the data gets
/// one `data:` line per line, lines ending at CR, LF or CRLF as an EventSource parser reads
/// them. A name or id that could not stay on its line is left out (the door refuses them).
pub fn encode_event(name: Option<&[u8]>, id: Option<&[u8]>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    if let Some(n) = name.filter(|n| is_clean_line(n)) {
        out.extend_from_slice(b"event:");
        out.extend_from_slice(n);
        out.push(b'\n');
    }
    if let Some(i) = id.filter(|i| is_clean_line(i)) {
        out.extend_from_slice(b"id:");
        out.extend_from_slice(i);
        out.push(b'\n');
    }
    for line in data_lines(data) {
        out.extend_from_slice(b"data:");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// The lines of an event's data, split where an EventSource parser ends a line: at CRLF, at a
/// lone CR and at a lone LF. Data ending in a line break has an empty last line, so the
/// subscriber gets back exactly what was published.
pub fn data_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => {
                rest = None;
                Some(text)
            }
            Some(at) => {
                let crlf = text[at] == b'\r' && text.get(at + 1) == Some(&b'\n');
                rest = Some(&text[at + if crlf { 2 } else { 1 }..]);
                Some(&text[..at])
            }
        }
    })
}

/// A bus message as this door's subscribers read it: its SSE event name when it has one, its
/// id as 24 hex digits (the width of the original's ids, so a `Last-Event-ID` reads back),
/// then its body as UTF-8 text (invalid bytes replaced), line by line.
pub fn encode_message_event(name: Option<&str>, id: u64, body: &[u8]) -> Vec<u8> {
    let id = format!("{id:024x}");
    let text = String::from_utf8_lossy(body);
    encode_event(
        name.map(str::as_bytes),
        Some(id.as_bytes()),
        text.as_bytes(),
    )
}

/// Where api key K's channel C lives on the bus. The original kept one channel namespace per
/// user, and delivered an event only where both user and channel matched; so each key's
/// channels are bus channels of their own, under one of two naming schemes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChannelNames {
    /// `"\u{1f}esb:K:C"` (the default). The name starts with U+001F, a control character,
    /// which no native channel name may hold (`http::route` refuses them), and the key (which
    /// cannot hold `:`, the users file's separator) ends at the first `:`; so no native name
    /// and no other key's channel can be the same.
    #[default]
    Private,
    /// `"esb/K/C"` (`--esb-native-channels`): a public name that native transports read and
    /// write under the token rules (a grant covering `esb/K/...`). The key ends at the first
    /// `/`, so keys holding `/` are refused (`key_fits`).
    Native,
}

/// The start of every private bus channel name of this door (see [`ChannelNames::Private`]).
pub const BUS_CHANNEL_PREFIX: &str = "\u{1f}esb:"; // gate::PRIVATE_PREFIX, then the door
/// The start of every native bus channel name of this door (see [`ChannelNames::Native`]).
pub const NATIVE_CHANNEL_PREFIX: &str = "esb/";

impl ChannelNames {
    pub fn new(native: bool) -> ChannelNames {
        if native {
            ChannelNames::Native
        } else {
            ChannelNames::Private
        }
    }

    /// The bus channel behind `channel` of api key `key`.
    pub fn bus_channel(self, key: &str, channel: &str) -> String {
        match self {
            ChannelNames::Private => format!("{BUS_CHANNEL_PREFIX}{key}:{channel}"),
            ChannelNames::Native => format!("{NATIVE_CHANNEL_PREFIX}{key}/{channel}"),
        }
    }

    /// The api key and channel behind one of the door's bus channels; None for any other.
    pub fn key_and_channel(self, bus_channel: &str) -> Option<(&str, &str)> {
        match self {
            ChannelNames::Private => bus_channel
                .strip_prefix(BUS_CHANNEL_PREFIX)?
                .split_once(':'),
            ChannelNames::Native => bus_channel
                .strip_prefix(NATIVE_CHANNEL_PREFIX)?
                .split_once('/'),
        }
    }

    /// Whether `key` ends where `key_and_channel` says it does: no `:` (nor, for native names,
    /// `/`), so that one key's channel is never another key's.
    pub fn key_fits(self, key: &str) -> bool {
        match self {
            ChannelNames::Private => !key.contains(':'),
            ChannelNames::Native => !key.contains([':', '/']),
        }
    }
}

/// A socket id as the original's were shaped (a UUID's 8-4-4-4-12 lowercase hex digits), made
/// of 128 random bits: all of them random, version and variant digits too, so the id is not
/// a valid version-4 UUID, only its shape (the original's clients never read it as one).
pub fn format_socket_id(random: &[u8; 16]) -> String {
    let h = hex(random);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A stored or live event as the stream sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: Option<Vec<u8>>,
    pub id: Option<Vec<u8>>,
    pub data: Vec<u8>,
}

impl Event {
    pub fn encode(&self) -> Vec<u8> {
        encode_event(self.name.as_deref(), self.id.as_deref(), &self.data)
    }
}

/// The first bytes of a `Stream` response: the replayed events, or one ping when there are
/// none (`bufferEvents`). Replayed events came from the database without their id (the
/// original read `_id` back as text and got nothing), so pass `id: None` to be exact.
pub fn encode_stream_start(replay: &[Event]) -> Vec<u8> {
    if replay.is_empty() {
        return PING.to_vec();
    }
    replay.iter().flat_map(Event::encode).collect()
}

/// `parent.ESHQ(<json>);` (`eventToScript`), the JSON being `ToJSON ServerEvent`:
/// `{"type":"message","name":..,"id":..,"data":[..]}` with nulls for absent fields.
pub fn encode_script_call(ev: &Event) -> Vec<u8> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let json = serde_json::json!({
        "type": "message",
        "name": ev.name.as_deref().map(text),
        "id": ev.id.as_deref().map(text),
        "data": [text(&ev.data)],
    });
    format!("parent.ESHQ({json});").into_bytes()
}

/// One `Script` answer line (`scriptBuilder`).
pub fn encode_script_line(ev: &Event) -> Vec<u8> {
    let mut out = encode_script_call(ev);
    out.push(b'\n');
    out
}

/// One `Iframe` event (`scriptTagBuilder`).
pub fn encode_iframe_event(ev: &Event) -> Vec<u8> {
    let mut out = b"<script>".to_vec();
    out.extend(encode_script_call(ev));
    out.extend_from_slice(b"</script>\n");
    out
}

/// The start of an `Iframe` response (`iframeHead`, 4000 spaces, the replayed events).
pub fn encode_iframe_start(replay: &[Event]) -> Vec<u8> {
    let mut out = b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"><script>window.onError = null;document.domain = \"ws.webpop.local\";</script></head><body><script>parent.ESHQ({type: \"open\"});</script>".to_vec();
    out.extend(std::iter::repeat_n(b' ', 4000));
    for ev in replay {
        out.extend(encode_iframe_event(ev));
    }
    out
}

/// The ping of the iframe transport (`scriptTagBuilder pingEvent`).
pub fn iframe_ping() -> Vec<u8> {
    encode_iframe_event(&Event {
        name: Some(b"ping".to_vec()),
        id: None,
        data: b"{}".to_vec(),
    })
}

/// A message on the `eventsource.fanout` AMQP exchange (AMQPEvents.hs `AMQPEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpEvent {
    pub channel: String,
    pub user: String,
    pub data: String,
    pub id: Option<String>,
    pub name: Option<String>,
    /// An event is not delivered to the socket named here (no publisher in the broker sets it).
    pub socket: Option<String>,
}

/// Parses a bus message: `channel`, `user` and `data` must be strings; `id`, `name` and
/// `socket` may be strings, null or absent. Anything else is dropped (None), as the original did.
pub fn parse_amqp_event(body: &[u8]) -> Option<AmqpEvent> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let req = |k: &str| obj.get(k)?.as_str().map(str::to_owned);
    let opt = |k: &str| -> Option<Option<String>> {
        match obj.get(k) {
            None | Some(serde_json::Value::Null) => Some(None),
            Some(serde_json::Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        }
    };
    Some(AmqpEvent {
        channel: req("channel")?,
        user: req("user")?,
        data: req("data")?,
        id: opt("id")?,
        name: opt("name")?,
        socket: opt("socket")?,
    })
}

/// Encodes a bus message as `publishEvent` did (absent fields as null).
pub fn encode_amqp_event(e: &AmqpEvent) -> Vec<u8> {
    serde_json::json!({
        "channel": e.channel, "user": e.user, "data": e.data,
        "id": e.id, "name": e.name, "socket": e.socket,
    })
    .to_string()
    .into_bytes()
}

/// `filterEvents`: a subscriber gets events of its own user and channel, unless the event
/// names its socket.
pub fn delivers(e: &AmqpEvent, user: &str, channel: &str, socket: &str) -> bool {
    e.user == user && e.channel == channel && e.socket.as_deref() != Some(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NOW: Now = Now {
        secs: 1_700_000_000,
        nanos: 123_456_000,
    };

    fn users() -> HashMap<String, String> {
        HashMap::from([("k1".to_string(), "s3cret".to_string())])
    }

    fn get(path: &str, query: &str) -> Request<'static> {
        let path: &'static str = Box::leak(path.to_string().into_boxed_str());
        let query: &'static str = Box::leak(query.to_string().into_boxed_str());
        Request {
            method: "GET",
            path: path.as_bytes(),
            query: query.as_bytes(),
            ..Request::default()
        }
    }

    fn post(path: &str, body: &str) -> Request<'static> {
        let body: &'static str = Box::leak(body.to_string().into_boxed_str());
        Request {
            method: "POST",
            form_body: Some(body.as_bytes()),
            ..get(path, "")
        }
    }

    fn creds(ts: &str) -> String {
        format!(
            "key=k1&timestamp={ts}&token={}",
            expected_token("k1", "s3cret", ts.as_bytes())
        )
    }

    #[test]
    fn token_vectors() {
        // computed independently: printf 'k1:s3cret:1700000000' | sha1sum
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "k1",
                "s3cret",
                "1700000000",
                "2c58b3cebd0128be791677364809fb1559bd11c3",
            ),
            ("", "", "", "f62e0ea6edbc4288ff84c8da24f410ecf986229d"),
        ];
        for (k, s, t, want) in cases {
            assert_eq!(expected_token(k, s, t.as_bytes()), *want);
        }
    }

    #[test]
    fn route_vectors() {
        let u = users();
        let ok_creds = creds("1700000000");
        type Case = (Request<'static>, Result<Operation, Reply>);
        let cases: Vec<Case> = vec![
            (post("/socket", &format!("channel=chat&{ok_creds}")), Ok(Operation::CreateSocket {
                key: "k1".into(), channel: "chat".into(), presence_id: None })),
            (post("/socket", &format!("channel=chat&presence_id=p%201&{ok_creds}")), Ok(Operation::CreateSocket {
                key: "k1".into(), channel: "chat".into(), presence_id: Some("p 1".into()) })),
            (post("/socket", "channel=chat"), Err(Reply::text(401, "Access Denied - Missing Credentials"))),
            (post("/socket", &ok_creds), Err(Reply::missing_param("channel"))),
            (post("/event", &format!("channel=c&data=hello+world&name=greet&{ok_creds}")), Ok(Operation::Publish {
                key: "k1".into(), channel: "c".into(), data: "hello world".into(), name: Some("greet".into()) })),
            (post("/event", &format!("channel=c&{ok_creds}")), Err(Reply::missing_param("data"))),
            (post("/event", &format!("data=x&{ok_creds}")), Err(Reply::missing_param("channel"))),
            (post("/event", "key=nobody&token=x&timestamp=1700000000"), Err(Reply::text(404, "User not found"))),
            (post("/event", "key=k1&token=bad&timestamp=1700000000"), Err(Reply::text(401, "Access Denied - Bad Credentials"))),
            (post("/event", &creds("1699999700")), Err(Reply::text(401,
                "Access Denied - Timestamp invalid, timestamp: \"1699999700\" server time: 1700000000.123456s"))),
            (post("/event", &format!("channel=c&data=x&{}", creds("1699999701"))), Ok(Operation::Publish {
                key: "k1".into(), channel: "c".into(), data: "x".into(), name: None })),
            (post("/event", "key=k1&token=t&timestamp=abc"), Err(Reply::text(401,
                "Access Denied - Timestamp invalid, timestamp: \"abc\" server time: 1700000000.123456s"))),
            (post("/socket/0b1c-uuid", "data=hi"), Ok(Operation::PublishFromSocket {
                socket: "0b1c-uuid".into(), data: Some("hi".into()), name: None })),
            (post("/socket/0b1c-uuid", ""), Ok(Operation::PublishFromSocket {
                socket: "0b1c-uuid".into(), data: None, name: None })),
            (get("/eventsource", "socket=abc"), Ok(Operation::Subscribe {
                socket: "abc".into(), transport: Transport::Stream, last_event_id: None })),
            (get("/eventsource", "channel=chat"), Err(Reply::missing_param("socket"))),
            (get("/eventsource/iframe", "socket=abc"), Ok(Operation::Subscribe {
                socket: "abc".into(), transport: Transport::Iframe, last_event_id: None })),
            (get("/eventsource/script.js", "socket=abc&t=1"), Ok(Operation::Subscribe {
                socket: "abc".into(), transport: Transport::Script, last_event_id: None })),
            (get("/eventsource", "socket=abc&transport=iframe"), Ok(Operation::Subscribe {
                socket: "abc".into(), transport: Transport::Iframe, last_event_id: None })),
            (get("/broker", ""), Ok(Operation::BrokerInfo)),
            (get("/", ""), Ok(Operation::StaticFile(StaticFile::Index))),
            (get("/iframe", "channel=c&socket=s"), Ok(Operation::StaticFile(StaticFile::Iframe))),
            (get("/es.js", ""), Ok(Operation::StaticFile(StaticFile::EsJs))),
            (get("/static/a/b.js", ""), Ok(Operation::StaticFile(StaticFile::Static(b"a/b.js".to_vec())))),
            (get("/channel/chat/users", &ok_creds), Ok(Operation::ChannelUsers { key: "k1".into(), channel: "chat".into() })),
            (Request { method: "HEAD", ..get("/status", "") }, Ok(Operation::Status)),
            (get("/event", ""), Err(Reply::text(404, ""))),
            (post("/event", &format!("channel=c&data=x&name=a%0Db&{ok_creds}")), Err(Reply::invalid_param("name"))),
            (post("/event", &format!("channel=c&data=x&name=a%00&{ok_creds}")), Err(Reply::invalid_param("name"))),
            (post("/event", &format!("channel=a%0Ab&data=x&{ok_creds}")), Err(Reply::invalid_param("channel"))),
            (post("/socket/abc", "data=x&name=a%0Ab"), Err(Reply::invalid_param("name"))),
            (post("/socket", &format!("channel=a%01b&{ok_creds}")), Err(Reply::invalid_param("channel"))),
        ];
        for (req, want) in cases {
            assert_eq!(
                route(&req, &u, NOW),
                want,
                "{} {}",
                req.method,
                String::from_utf8_lossy(req.path)
            );
        }
    }

    #[test]
    fn transport_and_last_event_id() {
        let u = users();
        let mut req = get(
            "/eventsource",
            "socket=abc&last-event-id=507f1f77bcf86cd799439011",
        );
        req.x_requested_with = Some(b"XMLHttpRequest");
        let Ok(Operation::Subscribe {
            transport,
            last_event_id,
            ..
        }) = route(&req, &u, NOW)
        else {
            panic!()
        };
        assert_eq!(transport, Transport::OneShot);
        assert_eq!(last_event_id, None, "the query parameter is never read");
        req.x_requested_with = Some(b"xmlhttprequest");
        req.last_event_id = Some(b"507F1F77BCF86CD799439011 ");
        let Ok(Operation::Subscribe {
            transport,
            last_event_id,
            ..
        }) = route(&req, &u, NOW)
        else {
            panic!()
        };
        assert_eq!(transport, Transport::Stream);
        assert_eq!(
            last_event_id,
            Some(LastEventId::ObjectId([
                0x50, 0x7f, 0x1f, 0x77, 0xbc, 0xf8, 0x6c, 0xd7, 0x99, 0x43, 0x90, 0x11
            ]))
        );
        let cases: &[(&[u8], bool)] = &[
            (b"507f1f77bcf86cd799439011", true),
            (b"507f1f77bcf86cd79943901", false),
            (b" 507f1f77bcf86cd799439011", false),
            (b"507f1f77bcf86cd799439011x", false),
            (b"42", false),
        ];
        for (v, ok) in cases {
            assert_eq!(
                matches!(parse_last_event_id(v), LastEventId::ObjectId(_)),
                *ok,
                "{v:?}"
            );
        }
        assert_eq!(
            format_object_id(&[
                0x50, 0x7f, 0x1f, 0x77, 0xbc, 0xf8, 0x6c, 0xd7, 0x99, 0x43, 0x90, 0x11
            ]),
            "507f1f77bcf86cd799439011"
        );
    }

    #[test]
    fn params_vectors() {
        let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            ("a=1", None, "a", Some("1")),
            ("a=1&a=2", None, "a", Some("1 2")),
            ("a=1", Some("a=2"), "a", Some("1 2")),
            ("a", None, "a", Some("")),
            ("a=x%zz&a=2", None, "a", Some("2")),
            ("a=1;b=2", None, "b", Some("2")),
            ("a=%2B+", None, "a", Some("+ ")),
            ("a=1", None, "b", None),
        ];
        for (q, body, name, want) in cases {
            let p = parse_params(q.as_bytes(), body.map(str::as_bytes));
            assert_eq!(
                get_param(&p, name),
                want.map(|s| s.as_bytes().to_vec()),
                "{q}"
            );
        }
    }

    #[test]
    fn read_integer_vectors() {
        let cases: &[(&str, Option<i128>)] = &[
            ("1700000000", Some(1_700_000_000)),
            (" 42 ", Some(42)),
            ("-5", Some(-5)),
            ("- 5", Some(-5)),
            ("(5)", Some(5)),
            ("((-5))", Some(-5)),
            ("0x10", Some(16)),
            ("0o10", Some(8)),
            ("007", Some(7)),
            ("+5", None),
            ("5.0", None),
            ("1e3", None),
            ("", None),
            ("12abc", None),
            ("(5", None),
            ("0x", None),
        ];
        for (s, want) in cases {
            assert_eq!(read_integer(s.as_bytes()), *want, "{s:?}");
        }
    }

    #[test]
    fn show_vectors() {
        let cases: &[(&[u8], &str)] = &[
            (b"1700000000", "\"1700000000\""),
            (b"a\"b\\c", "\"a\\\"b\\\\c\""),
            (b"\n\t\x01\x7f", "\"\\n\\t\\SOH\\DEL\""),
            (b"\x0eH", "\"\\SO\\&H\""),
            (b"\xe91", "\"\\233\\&1\""),
            (b"\xe9x", "\"\\233x\""),
        ];
        for (b, want) in cases {
            assert_eq!(haskell_show_bytes(b), *want);
        }
        assert_eq!(show_posix_time(Now { secs: 5, nanos: 0 }), "5s");
        assert_eq!(
            show_posix_time(Now {
                secs: 5,
                nanos: 500_000_000
            }),
            "5.5s"
        );
        assert_eq!(show_posix_time(Now { secs: 5, nanos: 1 }), "5.000000001s");
    }

    #[test]
    fn sse_vectors() {
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, &'a [u8], &'a [u8]);
        let cases: &[Case] = &[
            (
                Some(b"greet"),
                Some(b"507f1f77bcf86cd799439011"),
                b"hello",
                b"event:greet\nid:507f1f77bcf86cd799439011\ndata:hello\n\n",
            ),
            (
                None,
                Some(b"507f1f77bcf86cd799439011"),
                b"{\"a\":1}",
                b"id:507f1f77bcf86cd799439011\ndata:{\"a\":1}\n\n",
            ),
            (None, None, b"", b"data:\n\n"),
            (None, None, b"two\nlines", b"data:two\ndata:lines\n\n"),
            (
                None,
                None,
                b"a\rb\r\nc\n\rd",
                b"data:a\ndata:b\ndata:c\ndata:\ndata:d\n\n",
            ),
            (None, None, b"end\r", b"data:end\ndata:\n\n"),
            (Some(b"a\nb"), Some(b"1\r"), b"x", b"data:x\n\n"),
            (Some(b"a\0"), None, b"x", b"data:x\n\n"),
            (Some(b"ping"), None, b"{}", PING),
        ];
        for (name, id, data, want) in cases {
            assert_eq!(encode_event(*name, *id, data), *want);
        }
        assert_eq!(encode_stream_start(&[]), PING);
        let ev = Event {
            name: None,
            id: None,
            data: b"x".to_vec(),
        };
        assert_eq!(
            encode_stream_start(&[ev.clone(), ev.clone()]),
            b"data:x\n\ndata:x\n\n"
        );
        assert_eq!(
            encode_script_line(&ev),
            b"parent.ESHQ({\"data\":[\"x\"],\"id\":null,\"name\":null,\"type\":\"message\"});\n"
        );
        assert_eq!(iframe_ping(), b"<script>parent.ESHQ({\"data\":[\"{}\"],\"id\":null,\"name\":\"ping\",\"type\":\"message\"});</script>\n");
        let start = encode_iframe_start(&[]);
        assert!(start.starts_with(b"<html><head>") && start.ends_with(&[b' '; 4000]));
    }

    #[test]
    fn amqp_vectors() {
        let e = parse_amqp_event(br#"{"channel":"c","user":"k1","data":"{\"msg\":1}","id":null}"#)
            .unwrap();
        assert_eq!(
            (
                e.channel.as_str(),
                e.user.as_str(),
                e.data.as_str(),
                e.id.clone(),
                e.name.clone()
            ),
            ("c", "k1", "{\"msg\":1}", None, None)
        );
        assert!(delivers(&e, "k1", "c", "s1"));
        assert!(!delivers(&e, "k2", "c", "s1"));
        let mine = AmqpEvent {
            socket: Some("s1".into()),
            ..e.clone()
        };
        assert!(!delivers(&mine, "k1", "c", "s1"));
        assert_eq!(parse_amqp_event(&encode_amqp_event(&mine)), Some(mine));
        let dropped: &[&[u8]] = &[
            br#"{"channel":"c","data":"x"}"#,
            br#"{"channel":"c","user":"u","data":{"msg":1}}"#,
            br#"{"channel":"c","user":"u","data":"x","id":5}"#,
            b"not json",
        ];
        for d in dropped {
            assert_eq!(parse_amqp_event(d), None);
        }
    }

    #[test]
    fn bus_channels_are_per_key_and_apart_from_native_names() {
        let names = ChannelNames::Private;
        assert_eq!(names.bus_channel("k1", "chat"), "\u{1f}esb:k1:chat");
        assert_ne!(
            names.bus_channel("k1", "chat"),
            names.bus_channel("k2", "chat")
        );
        for (key, channel) in [("k1", "chat"), ("k", ""), ("k1", "a/b/")] {
            let path = format!("/msgbus/{}", names.bus_channel(key, channel));
            assert!(crate::http::route::route(&path, 64).is_err(), "{path:?}");
        }
    }

    #[test]
    fn channel_names_both_ways() {
        use ChannelNames::{Native, Private};
        let cases: &[(ChannelNames, &str, &str, &str)] = &[
            (Private, "k1", "chat", "\u{1f}esb:k1:chat"),
            (Private, "k1", "room:1/a", "\u{1f}esb:k1:room:1/a"),
            (Native, "k1", "chat", "esb/k1/chat"),
            (Native, "k1", "a/b:c", "esb/k1/a/b:c"),
            (Native, "k1", "", "esb/k1/"),
        ];
        for &(names, key, channel, bus) in cases {
            assert_eq!(names.bus_channel(key, channel), bus);
            assert_eq!(names.key_and_channel(bus), Some((key, channel)), "{bus:?}");
        }
        assert_eq!(Private.key_and_channel("esb/k1/chat"), None);
        assert_eq!(Native.key_and_channel("\u{1f}esb:k1:chat"), None);
        assert_eq!(Native.key_and_channel("esb/k1"), None);
        assert_eq!(Native.key_and_channel("news"), None);
        let keys: &[(ChannelNames, &str, bool)] = &[
            (Private, "k1", true),
            (Private, "a/b", true),
            (Private, "a:b", false),
            (Native, "k1", true),
            (Native, "a/b", false),
            (Native, "a:b", false),
        ];
        for &(names, key, fits) in keys {
            assert_eq!(names.key_fits(key), fits, "{names:?} {key:?}");
        }
        assert_eq!(ChannelNames::new(true), Native);
        assert_eq!(ChannelNames::default(), Private);
    }

    #[test]
    fn socket_ids_have_the_originals_shape() {
        let id = format_socket_id(&[
            0x0c, 0x4d, 0x1f, 0x77, 0xbc, 0xf8, 0x6c, 0xd7, 0x99, 0x43, 0x90, 0x11, 0xff, 0x00,
            0x01, 0x02,
        ]);
        assert_eq!(id, "0c4d1f77-bcf8-6cd7-9943-9011ff000102");
    }

    #[test]
    fn socket_created_reply() {
        let r = Reply::socket_created("abc", "chat", None);
        assert_eq!(r.content_type, Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"socket": "abc", "channel": "chat", "presence_id": null})
        );
    }
}
