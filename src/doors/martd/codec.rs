//! martd (amitu, Go) wire protocol: request decoding and reply encoding, byte for byte as the
//! original (src/martd/http.go, channels.go) answers. No I/O, no clock. See SPEC.md.

use std::fmt::Write as _;

use crate::http::query::percent_decode;
use crate::transport::json;

/// The request as the transport parsed it: raw path (no query), query pairs and form pairs
/// decoded with [`parse_query`] (Go's `url.ParseQuery`), and the raw body.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub form: &'a [(String, String)],
    pub body: &'a [u8],
}

pub const DEFAULT_SIZE: u64 = 10;
pub const DEFAULT_LIFE_NS: i64 = 3_600_000_000_000;
pub const EXPIRY_TICK_SECS: u64 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `/pub?channel=C&size=N&life=NS&one2one=true&key=K` with the message as the raw body.
    /// The attributes count only on the request that first initialises the channel. An empty
    /// body publishes nothing and answers etag "0".
    Publish {
        channel: String,
        size: u64,
        life_ns: i64,
        one2one: bool,
        key: String,
        body: Vec<u8>,
    },
    /// `/sub?cid=ID&CHAN=ETAG&CHAN2=ETAG`: every form key but `cid` is a channel.
    Subscribe {
        cid: Option<String>,
        channels: Vec<(String, i64)>,
    },
    /// `/list`: the original dumps its store to its log and answers "ok\n".
    List,
    /// `/debug/vars` (registered by importing expvar).
    DebugVars,
    /// Static files of the embedded FileServer.
    ClientJs,
    Index,
    NotFound,
}

/// A 400 `{"error":"..."}` answer, with the original's message text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject(pub String);

/// `r.Form` as Go builds it for `/sub`: form-body pairs first, then query pairs.
fn form_values(req: &Request) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in req.form.iter().chain(req.query.iter()) {
        match out.iter_mut().find(|(key, _)| key == k) {
            Some((_, vals)) => vals.push(v.clone()),
            None => out.push((k.clone(), vec![v.clone()])),
        }
    }
    out
}

/// `r.FormValue(name)` in `/pub`: the body was already read, so only the query counts.
fn query_value<'a>(req: &'a Request, name: &str) -> &'a str {
    req.query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Decode one request the way the Go ServeMux + handlers do. Any method is accepted.
pub fn parse(req: &Request) -> Result<Op, Reject> {
    match req.path {
        "/pub" => parse_pub(req),
        "/sub" => parse_sub(req),
        "/list" => Ok(Op::List),
        "/debug/vars" => Ok(Op::DebugVars),
        "/client.js" => Ok(Op::ClientJs),
        "/" => Ok(Op::Index),
        _ => Ok(Op::NotFound),
    }
}

fn parse_pub(req: &Request) -> Result<Op, Reject> {
    let channel = query_value(req, "channel");
    let size_s = query_value(req, "size");
    let life_s = query_value(req, "life");
    let one2one = query_value(req, "one2one") == "true";
    let key = query_value(req, "key");
    if channel.is_empty() {
        return Err(Reject("channel is required".into()));
    }
    let mut size = DEFAULT_SIZE;
    if !size_s.is_empty() {
        size = sscan_uint(size_s).map_err(|e| Reject(format!("invalid size: {e}")))?;
    }
    let mut life_ns = DEFAULT_LIFE_NS;
    if !life_s.is_empty() {
        life_ns = sscan_int(life_s).map_err(|e| Reject(format!("invalid life: {e}")))?;
    }
    Ok(Op::Publish {
        channel: channel.into(),
        size,
        life_ns,
        one2one,
        key: key.into(),
        body: req.body.to_vec(),
    })
}

fn parse_sub(req: &Request) -> Result<Op, Reject> {
    let mut cid = None;
    let mut channels = Vec::new();
    // Go ranges over a map: with several bad keys the original reports a random one; this
    // reports the first in request order.
    for (k, vals) in form_values(req) {
        if k == "cid" {
            cid = Some(vals[0].clone());
            continue;
        }
        let v = &vals[0];
        if v.is_empty() {
            return Err(Reject(format!("{k} has no etag")));
        }
        let etag = sscan_int(v).map_err(|e| Reject(format!("invalid etag: {e}")))?;
        channels.push((k, etag));
    }
    Ok(Op::Subscribe { cid, channels })
}

/// Which kept messages a subscriber with `etag` gets at once (`Channel.HasNew`): `Some(i)` = from
/// index `i` (oldest first) to the end; `None` = hold the request. `created` are the kept
/// messages' etags, oldest first.
pub fn has_new(created: &[i64], etag: i64) -> Option<usize> {
    let oldest = *created.first()?;
    if oldest > etag {
        return Some(0);
    }
    // The loop stops before the newest: an etag equal to the newest holds.
    (0..created.len() - 1)
        .find(|&i| created[i] == etag)
        .map(|i| i + 1)
}

/// Whether a message created at `created_ns` is dropped by the expiry tick at `now_ns`.
pub fn expired(created_ns: i64, life_ns: i64, now_ns: i64) -> bool {
    created_ns.wrapping_add(life_ns) <= now_ns
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

const TEXT: &str = "text/plain; charset=utf-8";

/// `/pub` answer: `json.MarshalIndent({"etag": "N"}, " ", "    ")`; `etag` 0 for an empty body.
pub fn encode_published(etag: i64) -> Reply {
    Reply {
        status: 200,
        headers: vec![
            ("Access-Control-Allow-Origin", "*".into()),
            ("Content-Type", TEXT.into()),
        ],
        body: format!("{{\n     \"etag\": \"{etag}\"\n }}").into_bytes(),
    }
}

/// One channel of a `/sub` answer: its name, the etag of its last payload, the payloads.
pub struct ChannelData<'a> {
    pub name: &'a str,
    pub etag: i64,
    pub payload: Vec<&'a [u8]>,
}

/// `/sub` answer `{"channels":{"C":{"etag":"N","payload":["..."]}}}`, channels sorted by name
/// as Go sorts map keys. Content-Type is what Go sniffs from the body.
pub fn encode_channels(channels: &[ChannelData]) -> Reply {
    let mut sorted: Vec<&ChannelData> = channels.iter().collect();
    sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    sorted.dedup_by(|a, b| a.name == b.name);
    let mut j = String::from("{");
    if !sorted.is_empty() {
        j.push_str("\"channels\":{");
        for (i, c) in sorted.iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            go_json_str(&mut j, c.name.as_bytes());
            let _ = write!(j, ":{{\"etag\":\"{}\",\"payload\":[", c.etag);
            for (k, p) in c.payload.iter().enumerate() {
                if k > 0 {
                    j.push(',');
                }
                go_json_str(&mut j, p);
            }
            j.push_str("]}");
        }
        j.push('}');
    }
    j.push('}');
    Reply {
        status: 200,
        headers: vec![
            ("Access-Control-Allow-Origin", "*".into()),
            ("Content-Type", TEXT.into()),
        ],
        body: j.into_bytes(),
    }
}

/// `reject`: `http.Error(w, {"error":"..."}, 400)`, which adds a newline.
pub fn encode_reject(r: &Reject) -> Reply {
    let mut j = String::from("{\"error\":");
    go_json_str(&mut j, r.0.as_bytes());
    j.push_str("}\n");
    Reply {
        status: 400,
        headers: vec![
            ("Access-Control-Allow-Origin", "*".into()),
            ("Content-Type", TEXT.into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body: j.into_bytes(),
    }
}

/// `/list`.
pub fn encode_list() -> Reply {
    Reply {
        status: 200,
        headers: vec![("Content-Type", TEXT.into())],
        body: b"ok\n".to_vec(),
    }
}

/// Go's `http.NotFound`.
pub fn encode_not_found() -> Reply {
    Reply {
        status: 404,
        headers: vec![
            ("Content-Type", TEXT.into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        body: b"404 page not found\n".to_vec(),
    }
}

/// `encoding/json` string encoding (Go 1.19): HTML-safe escapes for `<`, `>`, `&`, U+2028,
/// U+2029; other controls as `\u00XX` except `\n`, `\r`, `\t`; invalid UTF-8 as `\ufffd`.
pub fn go_json_str(out: &mut String, s: &[u8]) {
    json::push_string_as(out, s, json::Escapes::GoHtmlSafe);
}

/// Go's `url.ParseQuery` (Go 1.17+): split on `&`, a pair holding `;` or a bad `%` escape is
/// dropped, a key without `=` gets "", `+` is a space.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in q.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) {
            out.push((k, v));
        }
    }
    out
}

fn query_unescape(s: &str) -> Option<String> {
    let out = percent_decode(s.as_bytes(), true)?;
    // Go strings may hold any bytes; callers here need text, so invalid UTF-8 is replaced.
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `fmt.Sscan(s, &int64)`: leading space, sign, `0b`/`0o`/`0x`/`0` prefixes, `_` separators;
/// trailing garbage ignored. Errors carry Go's text.
pub fn sscan_int(s: &str) -> Result<i64, String> {
    let tok = scan_token(s, true)?;
    let (neg, digits) = match tok.as_bytes()[0] {
        b'-' => (true, &tok[1..]),
        b'+' => (false, &tok[1..]),
        _ => (false, &tok[..]),
    };
    let err = |what: &str| format!("strconv.ParseInt: parsing \"{tok}\": {what}");
    let mag = parse_uint_base0(digits).map_err(&err)?;
    if neg {
        if mag > 1u64 << 63 {
            return Err(err("value out of range"));
        }
        Ok((mag as i64).wrapping_neg())
    } else {
        i64::try_from(mag).map_err(|_| err("value out of range"))
    }
}

/// `fmt.Sscan(s, &uint)` on a 64-bit platform: as [`sscan_int`] without a sign.
pub fn sscan_uint(s: &str) -> Result<u64, String> {
    let tok = scan_token(s, false)?;
    parse_uint_base0(&tok).map_err(|e| format!("strconv.ParseUint: parsing \"{tok}\": {e}"))
}

/// The token `fmt`'s scanner collects before calling strconv.
fn scan_token(s: &str, signed: bool) -> Result<String, String> {
    let s = s.trim_start_matches(char::is_whitespace);
    let mut it = s.chars().peekable();
    let mut buf = String::new();
    if it.peek().is_none() {
        return Err("EOF".into());
    }
    if signed {
        if let Some(&c @ ('+' | '-')) = it.peek() {
            buf.push(c);
            it.next();
        }
    }
    let mut digits = "0123456789_";
    let mut have_digits = false;
    if it.peek() == Some(&'0') {
        buf.push('0');
        it.next();
        have_digits = true;
        digits = match it.peek() {
            Some(&c @ ('b' | 'B')) => {
                buf.push(c);
                it.next();
                "01_"
            }
            Some(&c @ ('o' | 'O')) => {
                buf.push(c);
                it.next();
                "01234567_"
            }
            Some(&c @ ('x' | 'X')) => {
                buf.push(c);
                it.next();
                "0123456789aAbBcCdDeEfF_"
            }
            _ => "01234567_",
        };
    }
    if !have_digits {
        match it.peek() {
            None => return Err("EOF".into()),
            Some(c) if !digits.contains(*c) => return Err("expected integer".into()),
            _ => {}
        }
    }
    while let Some(&c) = it.peek() {
        if !digits.contains(c) {
            break;
        }
        buf.push(c);
        it.next();
    }
    Ok(buf)
}

/// `strconv.ParseUint(s, 0, 64)`; the error is the text after "parsing ...: ".
fn parse_uint_base0(s: &str) -> Result<u64, &'static str> {
    const SYNTAX: &str = "invalid syntax";
    if s.is_empty() {
        return Err(SYNTAX);
    }
    let b = s.as_bytes();
    let (base, rest) = if b[0] == b'0' && b.len() >= 3 && b[1].eq_ignore_ascii_case(&b'b') {
        (2, &s[2..])
    } else if b[0] == b'0' && b.len() >= 3 && b[1].eq_ignore_ascii_case(&b'o') {
        (8, &s[2..])
    } else if b[0] == b'0' && b.len() >= 3 && b[1].eq_ignore_ascii_case(&b'x') {
        (16, &s[2..])
    } else if b[0] == b'0' && b.len() > 1 {
        (8, &s[1..])
    } else {
        (10, s)
    };
    let mut v: u64 = 0;
    let mut underscores = false;
    let mut overflow = false;
    for c in rest.chars() {
        if c == '_' {
            underscores = true;
            continue;
        }
        let d = c.to_digit(base).ok_or(SYNTAX)?;
        match v
            .checked_mul(base as u64)
            .and_then(|x| x.checked_add(d as u64))
        {
            Some(x) => v = x,
            None => overflow = true,
        }
    }
    if underscores && !underscore_ok(s) {
        return Err(SYNTAX);
    }
    if overflow {
        return Err("value out of range");
    }
    Ok(v)
}

/// strconv's `underscoreOK`: `_` only between digits or after a base prefix.
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1] | 0x20 == b'x';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && (c | 0x20).is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// What the bundled client computes for a subscription request (`bump` in client.js): channel
/// names and etags are not URL-encoded.
pub fn client_sub_target(cid: &str, channels: &[(&str, &str)]) -> String {
    let mut url = format!("/sub?cid={cid}");
    for (c, e) in channels {
        let _ = write!(url, "&{c}={e}");
    }
    url
}

#[cfg(test)]
mod tests;
