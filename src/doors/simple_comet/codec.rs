//! Simple-Comet-Server (jedisct1, Python/Twisted) wire protocol: request decoding and reply
//! encoding, byte for byte as the original answers its clients. No I/O, no clock: callers pass
//! `now` (unix seconds) where a reply carries a date. See SPEC.md beside this crate.
//!
//! The original keeps its state (channels, clients, held requests) in the server; this module only
//! turns a request into an [`Op`] or a [`Reject`], and encodes every reply the original can send.

use std::fmt::Write as _;

use crate::http::query::percent_decode_lenient;
use crate::transport::json;

/// `.json` or `.jsonp`: the suffix of every resource decides the reply's wrapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Jsonp,
}

/// The request as the transport parsed it. `path` is the raw request path (percent-encoded,
/// without `?query`); `query` and `form` are already split pairs (see [`parse_qs`]).
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a [u8],
    pub query: &'a [(Vec<u8>, Vec<u8>)],
    pub form: &'a [(Vec<u8>, Vec<u8>)],
}

/// What a request asks of the server. The server still has to check state (channel exists,
/// client registered, ...) and answer with [`ErrorKind`]s for what fails there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `POST /clients.json` `client_id=ID` (an empty id is accepted, as in the original).
    RegisterClient { format: Format, client_id: String },
    /// `POST /channels.json` `channel_id=ID [use_sessions=X] [max_messages=N]`;
    /// `max_messages: None` means the server's default (100).
    CreateChannel {
        format: Format,
        channel_id: String,
        use_sessions: bool,
        max_messages: Option<u64>,
    },
    /// `POST /channels/ID.json` `content=TEXT`. `content: None` is answered with
    /// [`ErrorKind::MissingContent`], but only after the server found the channel (the original
    /// checks [`ErrorKind::NonexistentChannel`] first).
    Publish {
        format: Format,
        channel_id: String,
        content: Option<String>,
    },
    /// `GET /channels/A|B.json?since=N&client_id=C`. `since` is not yet clamped: the server
    /// answers with `min(since, last_id)` (see [`clamp_since`]).
    Subscribe {
        format: Format,
        channels: Vec<String>,
        since: i64,
        client_id: Option<String>,
    },
    /// `DELETE /channels/ID.json`; `None` for `DELETE /channels.json`.
    Delete {
        format: Format,
        channel_id: Option<String>,
    },
    /// `GET /status.json`, only when the server runs with `--enable-status`.
    Status { format: Format },
}

/// Every error reply of the protocol proper: HTTP 200 with `return_code` < 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// -1 "Missing '/channels' prefix"
    MissingPrefix,
    /// -1 "Unknown output format"
    UnknownFormat,
    /// -1 "Missing channel id"
    MissingChannelId,
    /// -1 "Invalid max messages value"
    InvalidMaxMessages,
    /// -1 "Missing content"
    MissingContent,
    /// -1 "Missing client id" (register)
    MissingClientIdRegister,
    /// -1 "Missing client_id" (subscribe with `client_id=`)
    MissingClientIdRead,
    /// -2 "Channel already exists"
    ChannelExists,
    /// -2 "Client already exists"
    ClientExists,
    /// -2 "Nonexistent channel" (publish)
    NonexistentChannel,
    /// -2 "No channels" (subscribe to `/channels.json` or `/channels/.json`)
    NoChannels,
    /// -2 "No valid channels" (none of the names exists or may be read anonymously)
    NoValidChannels,
    /// -3 "Unregistered client_id"
    UnregisteredClient,
}

impl ErrorKind {
    pub fn code(&self) -> i32 {
        use ErrorKind::*;
        match self {
            MissingPrefix
            | UnknownFormat
            | MissingChannelId
            | InvalidMaxMessages
            | MissingContent
            | MissingClientIdRegister
            | MissingClientIdRead => -1,
            ChannelExists | ClientExists | NonexistentChannel | NoChannels | NoValidChannels => -2,
            UnregisteredClient => -3,
        }
    }

    pub fn message(&self) -> &'static str {
        use ErrorKind::*;
        match self {
            MissingPrefix => "Missing '/channels' prefix",
            UnknownFormat => "Unknown output format",
            MissingChannelId => "Missing channel id",
            InvalidMaxMessages => "Invalid max messages value",
            MissingContent => "Missing content",
            MissingClientIdRegister => "Missing client id",
            MissingClientIdRead => "Missing client_id",
            ChannelExists => "Channel already exists",
            ClientExists => "Client already exists",
            NonexistentChannel => "Nonexistent channel",
            NoChannels => "No channels",
            NoValidChannels => "No valid channels",
            UnregisteredClient => "Unregistered client_id",
        }
    }
}

/// Why a request gets no [`Op`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reject {
    /// A protocol error, answered by [`encode_error`]. Before the suffix is known the original
    /// answers in JSON.
    Protocol(Format, ErrorKind),
    /// The original raised (duplicate single-valued field, invalid UTF-8, `/channelsX.json`):
    /// Twisted answers 500 "Processing Failed", see [`encode_processing_failed`].
    ProcessingFailed,
    /// A method other than GET, HEAD, POST, DELETE: Twisted answers 501, see
    /// [`encode_not_implemented`].
    NotImplemented,
}

/// Configuration constants of the original (`config.py`).
pub const DEFAULT_MAX_MESSAGES_PER_CHANNEL: u64 = 100;
pub const DEFAULT_JSONP_CB: &str = "_JSONP_comet_cb";
pub const JSONP_REQUIRED_SUBSTR: &str = "_JSONP_";
pub const HTTP_CACHE_AGE: u64 = 1;
pub const HTTP_TIMEOUT_SECS: u64 = 30;
pub const SESSION_TIMEOUT_SECS: u64 = 60;
pub const INACTIVE_CHANNEL_TIMEOUT_SECS: u64 = 90;
pub const MAX_MESSAGES_PER_SECOND: u64 = 100_000;

/// The first message id: `int(time.time() * 100000)` at start; each publish adds one.
pub fn initial_message_id(now_secs_f64: f64) -> u64 {
    (now_secs_f64 * MAX_MESSAGES_PER_SECOND as f64) as u64
}

/// `since = min(since, current_message_id)`, as `handle_channels_read` does before replying.
pub fn clamp_since(since: i64, last_id: u64) -> i64 {
    since.min(i64::try_from(last_id).unwrap_or(i64::MAX))
}

/// Twisted's `parse_qs(qs, keep_blank_values=1)`: split on `&` and `;`, drop items without `=`,
/// `+` is a space, then percent-decoding (invalid escapes stay as they are).
pub fn parse_qs(qs: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for item in qs.split(|&b| b == b'&' || b == b';') {
        let Some(eq) = memchr_eq(item) else { continue };
        let (k, v) = (&item[..eq], &item[eq + 1..]);
        out.push((unquote_plus(k), unquote_plus(v)));
    }
    out
}

fn memchr_eq(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'=')
}

fn unquote_plus(s: &[u8]) -> Vec<u8> {
    percent_decode_lenient(s, true)
}

/// Percent-decoding as `urllib.parse.unquote_to_bytes`: a `%` not followed by two hex digits is
/// kept literally.
pub fn unquote(s: &[u8]) -> Vec<u8> {
    percent_decode_lenient(s, false)
}

/// Whether Twisted merges the body into the arguments: POST, a non-empty body and
/// `Content-Type: application/x-www-form-urlencoded` (parameters after `;` ignored).
/// (multipart/form-data is merged too by Twisted; callers decode it into `form` themselves.)
pub fn form_applies(method: &str, content_type: Option<&[u8]>, body_len: usize) -> bool {
    let Some(ct) = content_type else { return false };
    let base = ct.split(|&b| b == b';').next().unwrap_or(b"");
    method == "POST"
        && body_len > 0
        && base
            .trim_ascii()
            .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
}

/// `request.args`: query pairs, then each form key replaces the query's values for that key
/// (Twisted does `args.update(parse_qs(body))`).
fn args<'a>(req: &'a Request<'a>) -> Vec<(&'a [u8], Vec<&'a [u8]>)> {
    let mut out: Vec<(&[u8], Vec<&[u8]>)> = Vec::new();
    let push = |list: &mut Vec<(&'a [u8], Vec<&'a [u8]>)>, k: &'a [u8], v: &'a [u8]| match list
        .iter_mut()
        .find(|(key, _)| *key == k)
    {
        Some((_, vals)) => vals.push(v),
        None => list.push((k, vec![v])),
    };
    for (k, v) in req.query {
        push(&mut out, k, v);
    }
    let mut body: Vec<(&[u8], Vec<&[u8]>)> = Vec::new();
    for (k, v) in req.form {
        push(&mut body, k, v);
    }
    for (k, vals) in body {
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = vals,
            None => out.push((k, vals)),
        }
    }
    out
}

fn arg<'a>(args: &[(&'a [u8], Vec<&'a [u8]>)], name: &str) -> Option<Vec<&'a [u8]>> {
    args.iter()
        .find(|(k, _)| *k == name.as_bytes())
        .map(|(_, v)| v.clone())
}

/// `(x,) = request.args[name]` then `.decode("utf-8")`: more than one value or bad UTF-8 raises.
fn single(vals: Vec<&[u8]>) -> Result<String, Reject> {
    if vals.len() != 1 {
        return Err(Reject::ProcessingFailed);
    }
    String::from_utf8(vals[0].to_vec()).map_err(|_| Reject::ProcessingFailed)
}

/// Python's `int(bytes)` on ASCII: surrounding whitespace, a sign, digits with single `_`
/// between them. Values beyond i64 saturate (the original has big integers).
pub fn py_int(s: &[u8]) -> Option<i64> {
    let t = s.trim_ascii();
    let (neg, digits) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || digits[0] == b'_' || digits[digits.len() - 1] == b'_' {
        return None;
    }
    let mut v: i128 = 0;
    let mut prev_us = false;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                v = (v * 10 + (b - b'0') as i128).min(i64::MAX as i128 + 1);
                prev_us = false;
            }
            b'_' if !prev_us => prev_us = true,
            _ => return None,
        }
    }
    let v = if neg { -v } else { v };
    Some(v.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

/// `Connection.get_format(wanted)` on the raw path: `Ok(None)` when the path does not start with
/// `wanted`.
fn exact_format(path: &[u8], wanted: &[u8]) -> Result<Option<Format>, Reject> {
    if path.len() == wanted.len() + 5 && path.starts_with(wanted) && path.ends_with(b".json") {
        Ok(Some(Format::Json))
    } else if path.len() == wanted.len() + 6
        && path.starts_with(wanted)
        && path.ends_with(b".jsonp")
    {
        Ok(Some(Format::Jsonp))
    } else if path.starts_with(wanted) {
        Err(Reject::Protocol(Format::Json, ErrorKind::UnknownFormat))
    } else {
        Ok(None)
    }
}

/// `Connection.get_channel_id_and_format`: percent-decoded path (invalid UTF-8 becomes U+FFFD),
/// `/channels` prefix, `.json`/`.jsonp` suffix, then `/NAME` or nothing.
fn channel_and_format(path: &[u8]) -> Result<(Option<String>, Format), Reject> {
    let decoded = String::from_utf8_lossy(&unquote(path)).into_owned();
    let Some(rest) = decoded.strip_prefix("/channels") else {
        return Err(Reject::Protocol(Format::Json, ErrorKind::MissingPrefix));
    };
    let (name, format) = if let Some(n) = rest.strip_suffix(".json") {
        (n, Format::Json)
    } else if let Some(n) = rest.strip_suffix(".jsonp") {
        (n, Format::Jsonp)
    } else {
        return Err(Reject::Protocol(Format::Json, ErrorKind::UnknownFormat));
    };
    if name.is_empty() {
        return Ok((None, format));
    }
    match name.strip_prefix('/') {
        Some(n) => Ok((Some(n.to_string()), format)),
        None => Err(Reject::ProcessingFailed), // assert channel_id[0:1] == "/"
    }
}

/// Decode one request the way `CometServer.render_*` does, up to where server state matters.
pub fn parse(req: &Request, enable_status: bool) -> Result<Op, Reject> {
    let args = args(req);
    match req.method {
        "POST" => parse_post(req, &args),
        "GET" | "HEAD" => parse_get(req, &args, enable_status),
        "DELETE" => {
            let (channel_id, format) = channel_and_format(req.path)?;
            Ok(Op::Delete { format, channel_id })
        }
        _ => Err(Reject::NotImplemented),
    }
}

fn parse_post(req: &Request, args: &[(&[u8], Vec<&[u8]>)]) -> Result<Op, Reject> {
    if let Some(format) = exact_format(req.path, b"/clients")? {
        let Some(vals) = arg(args, "client_id") else {
            return Err(Reject::Protocol(format, ErrorKind::MissingClientIdRegister));
        };
        return Ok(Op::RegisterClient {
            format,
            client_id: single(vals)?,
        });
    }
    let (channel_id, format) = channel_and_format(req.path)?;
    match channel_id.filter(|c| !c.is_empty()) {
        None => {
            let Some(vals) = arg(args, "channel_id") else {
                return Err(Reject::Protocol(format, ErrorKind::MissingChannelId));
            };
            let channel_id = single(vals)?;
            // bool(b"0") is True: any non-empty value turns sessions on.
            let use_sessions = arg(args, "use_sessions").is_some_and(|v| !v[0].is_empty());
            let max_messages = match arg(args, "max_messages") {
                None => None,
                Some(v) => match py_int(v[0]) {
                    Some(n) if n >= 1 => Some(n as u64),
                    _ => return Err(Reject::Protocol(format, ErrorKind::InvalidMaxMessages)),
                },
            };
            Ok(Op::CreateChannel {
                format,
                channel_id,
                use_sessions,
                max_messages,
            })
        }
        Some(channel_id) => {
            let content = arg(args, "content").map(single).transpose()?;
            Ok(Op::Publish {
                format,
                channel_id,
                content,
            })
        }
    }
}

fn parse_get(
    req: &Request,
    args: &[(&[u8], Vec<&[u8]>)],
    enable_status: bool,
) -> Result<Op, Reject> {
    if enable_status {
        if let Some(format) = exact_format(req.path, b"/status")? {
            return Ok(Op::Status { format });
        }
    }
    let (names, format) = channel_and_format(req.path)?;
    let names = match names {
        Some(n) if !n.is_empty() => n,
        _ => return Err(Reject::Protocol(format, ErrorKind::NoChannels)),
    };
    let since = arg(args, "since").and_then(|v| py_int(v[0])).unwrap_or(0);
    let client_id = match arg(args, "client_id") {
        None => None,
        Some(vals) => {
            let id = single(vals)?;
            if id.is_empty() {
                return Err(Reject::Protocol(format, ErrorKind::MissingClientIdRead));
            }
            Some(id)
        }
    };
    Ok(Op::Subscribe {
        format,
        channels: names.split('|').map(str::to_string).collect(),
        since,
        client_id,
    })
}

/// The JSON-P callback asked for with `cb=NAME` (a form field wins over the query, as for every
/// argument); None when absent or not UTF-8. [`Style::honor_cb`] decides whether it is used.
pub fn callback(req: &Request) -> Option<String> {
    let args = args(req);
    arg(&args, "cb").and_then(|v| String::from_utf8(v[0].to_vec()).ok())
}

/// A kept message: `{"id": ID, "ts": UNIX_SECONDS, "content": TEXT}` in that key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
    pub ts: u64,
    pub content: String,
}

/// One reply: status code, headers in the original's order (Twisted adds `Server`, `Date`,
/// `Content-Length` or chunking itself), body bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Output options of the original: `--quote-json` wraps JSON (not JSON-P) in `/*-secure- ... */`.
/// `honor_cb` applies the documented `?cb=` (the original never reads it: a bug, see SPEC.md).
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    pub quote_json: bool,
    pub honor_cb: bool,
}

/// `Connection.render`: JSON, or JSON-P with the callback checked.
fn render(
    format: Format,
    json: String,
    style: Style,
    cb: Option<&str>,
) -> (Vec<(&'static str, String)>, Vec<u8>) {
    match format {
        Format::Json => {
            let body = if style.quote_json {
                format!("/*-secure- {json} */")
            } else {
                json
            };
            (
                vec![("Content-Type", "application/json".into())],
                body.into_bytes(),
            )
        }
        Format::Jsonp => {
            let headers = vec![("Content-Type", "application/javascript".into())];
            let cb = if style.honor_cb {
                cb.unwrap_or(DEFAULT_JSONP_CB)
            } else {
                DEFAULT_JSONP_CB
            };
            if !cb.contains(JSONP_REQUIRED_SUBSTR) {
                return (headers, b"/* incomplete JSONP callback name */".to_vec());
            }
            if !valid_callback(cb) {
                return (headers, b"/* invalid JSONP callback name */".to_vec());
            }
            (headers, format!("{cb}({json});").into_bytes())
        }
    }
}

/// `re.search("^[a-z_]+[a-z0-9_.]*$", cb, re.IGNORECASE)`; Python's `$` also matches before a
/// final newline.
pub fn valid_callback(cb: &str) -> bool {
    let cb = cb.strip_suffix('\n').unwrap_or(cb);
    let b = cb.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
}

/// `json.dumps` of a string with `ensure_ascii=True`.
pub fn py_json_str(out: &mut String, s: &str) {
    json::push_string_as(out, s.as_bytes(), json::Escapes::PythonAscii);
}

fn tail(out: &mut String, return_code: i32) {
    let _ = write!(
        out,
        "\"return_code\": {return_code}, \"error_message\": \"\"}}"
    );
}

fn reply(format: Format, json: String, style: Style, cb: Option<&str>) -> Reply {
    let (headers, body) = render(format, json, style, cb);
    Reply {
        status: 200,
        headers,
        body,
    }
}

/// `{"return_code": CODE, "error_message": "TEXT"}`.
pub fn encode_error(format: Format, kind: &ErrorKind, style: Style, cb: Option<&str>) -> Reply {
    let mut j = format!("{{\"return_code\": {}, \"error_message\": ", kind.code());
    py_json_str(&mut j, kind.message());
    j.push('}');
    reply(format, j, style, cb)
}

/// `{"channel_id": ID, "return_code": 1, "error_message": ""}`.
pub fn encode_channel_created(
    format: Format,
    channel_id: &str,
    style: Style,
    cb: Option<&str>,
) -> Reply {
    let mut j = String::from("{\"channel_id\": ");
    py_json_str(&mut j, channel_id);
    j.push_str(", ");
    tail(&mut j, 1);
    reply(format, j, style, cb)
}

/// `{"client_id": ID, "return_code": 1, "error_message": ""}`.
pub fn encode_client_registered(
    format: Format,
    client_id: &str,
    style: Style,
    cb: Option<&str>,
) -> Reply {
    let mut j = String::from("{\"client_id\": ");
    py_json_str(&mut j, client_id);
    j.push_str(", ");
    tail(&mut j, 1);
    reply(format, j, style, cb)
}

/// `{"message_id": ID, "return_code": 1, "error_message": ""}`.
pub fn encode_published(format: Format, message_id: u64, style: Style, cb: Option<&str>) -> Reply {
    let mut j = format!("{{\"message_id\": {message_id}, ");
    tail(&mut j, 1);
    reply(format, j, style, cb)
}

/// `{"channel_id": ID|null, "removed": BOOL, "return_code": 2|1, "error_message": ""}`.
pub fn encode_deleted(
    format: Format,
    channel_id: Option<&str>,
    removed: bool,
    style: Style,
    cb: Option<&str>,
) -> Reply {
    let mut j = String::from("{\"channel_id\": ");
    match channel_id {
        Some(id) => py_json_str(&mut j, id),
        None => j.push_str("null"),
    }
    let _ = write!(
        j,
        ", \"removed\": {}, ",
        if removed { "true" } else { "false" }
    );
    tail(&mut j, if removed { 2 } else { 1 });
    reply(format, j, style, cb)
}

/// `{"status": {"channels": [...], "clients": [...], "held_connections_count": N}, ...}`.
pub fn encode_status(
    format: Format,
    channels: &[&str],
    clients: &[&str],
    held: u64,
    style: Style,
    cb: Option<&str>,
) -> Reply {
    let list = |names: &[&str]| {
        let mut s = String::from("[");
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            py_json_str(&mut s, n);
        }
        s.push(']');
        s
    };
    let mut j = format!(
        "{{\"status\": {{\"channels\": {}, \"clients\": {}, \"held_connections_count\": {held}}}, ",
        list(channels),
        list(clients)
    );
    tail(&mut j, 1);
    reply(format, j, style, cb)
}

/// Which of the two read replies: answered at once (headers Cache-Control, Expires, then
/// Content-Type) or a held request woken by a publish (Content-Type first; Twisted then sends it
/// chunked on HTTP/1.1, or without length until close on HTTP/1.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Immediate,
    Woken,
}

/// `{"messages": {"CHAN": [MSG, ...], ...}, "since": N, "last_id": N, "return_code": 1,
/// "error_message": ""}` with the cache headers; `now` (unix seconds) dates `Expires`.
#[allow(clippy::too_many_arguments)]
pub fn encode_messages(
    format: Format,
    channels: &[(&str, &[Message])],
    since: i64,
    last_id: u64,
    delivery: Delivery,
    now: u64,
    style: Style,
    cb: Option<&str>,
) -> Reply {
    let mut j = String::from("{\"messages\": {");
    for (i, (name, msgs)) in channels.iter().enumerate() {
        if i > 0 {
            j.push_str(", ");
        }
        py_json_str(&mut j, name);
        j.push_str(": [");
        for (k, m) in msgs.iter().enumerate() {
            if k > 0 {
                j.push_str(", ");
            }
            let _ = write!(j, "{{\"id\": {}, \"ts\": {}, \"content\": ", m.id, m.ts);
            py_json_str(&mut j, &m.content);
            j.push('}');
        }
        j.push(']');
    }
    let _ = write!(j, "}}, \"since\": {since}, \"last_id\": {last_id}, ");
    tail(&mut j, 1);
    let (ct, body) = render(format, j, style, cb);
    let cache = cache_headers(now);
    let headers = match delivery {
        Delivery::Immediate => cache.into_iter().chain(ct).collect(),
        Delivery::Woken => ct.into_iter().chain(cache).collect(),
    };
    Reply {
        status: 200,
        headers,
        body,
    }
}

/// `Connection.send_cache_headers` with `http_cache_age = 1`.
pub fn cache_headers(now: u64) -> Vec<(&'static str, String)> {
    let age = HTTP_CACHE_AGE;
    vec![
        (
            "Cache-Control",
            format!(
                "private, must-revalidate, proxy-revalidate, max-age={age}, s-max-age={age}, \
                 stale-while-revalidate={age}, stale-if-error=86400"
            ),
        ),
        ("Expires", http_date(now + age)),
    ]
}

/// RFC 1123 date, as `wsgiref.handlers.format_date_time`.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86400;
    let rem = secs % 86400;
    // civil_from_days (Howard Hinnant), days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Twisted's 500 page when the original raised.
pub fn encode_processing_failed() -> Reply {
    Reply {
        status: 500,
        headers: vec![("Content-Type", "text/html".into())],
        body: b"<html><head><title>Processing Failed</title></head><body><b>Processing Failed</b></body></html>".to_vec(),
    }
}

/// Twisted's 501 page for a method without a `render_*` (PUT, OPTIONS, ...).
pub fn encode_not_implemented(method: &str) -> Reply {
    Reply {
        status: 501,
        headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
        body: format!(
            "\n<html>\n  <head><title>501 - Huh?</title></head>\n  <body>\n    <h1>Huh?</h1>\n    <p>I don't know how to treat a {method} request.</p>\n  </body>\n</html>\n"
        )
        .into_bytes(),
    }
}

/// A channel's registration as the durable log keeps it (`--data-dir`; not part of the
/// original's protocol, which kept nothing across a restart): what `POST /channels.json` set.
/// Its bytes: 1 or 0 for `use_sessions`, then `max_messages` (u64, little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    pub use_sessions: bool,
    pub max_messages: u64,
}

impl Registration {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9);
        out.push(u8::from(self.use_sessions));
        out.extend_from_slice(&self.max_messages.to_le_bytes());
        out
    }

    /// None for bytes this code did not write.
    pub fn decode(bytes: &[u8]) -> Option<Registration> {
        let (&flag, max) = bytes.split_first()?;
        let use_sessions = match flag {
            0 => false,
            1 => true,
            _ => return None,
        };
        let max_messages = u64::from_le_bytes(max.try_into().ok()?);
        Some(Registration {
            use_sessions,
            max_messages,
        })
    }
}

#[cfg(test)]
mod tests;
