//! Request heads: parsed with httparse into a caller-owned header array, then checked and copied
//! into an owned `Request` that says how the body is framed and whether to keep the connection.

use std::borrow::Cow;
use std::fmt;

use crate::http::query::percent_decode;
use crate::http::response::Status;

/// Headers a request may carry; more is a 431.
pub const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
}

impl Method {
    pub fn parse(token: &str) -> Option<Method> {
        Some(match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(usize),
    Chunked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub target: String,
    pub minor_version: u8,
    /// The header fields, names lowercased and values as sent (non-UTF-8 bytes replaced), end
    /// to end in one string: a request costs the same few allocations whatever its fields
    /// (a long-poll sends one request per message it receives).
    fields: String,
    /// Where each field's name ends, then its value; a name starts where the previous value
    /// ends.
    spans: Vec<(usize, usize)>,
    pub keep_alive: bool,
    pub body: BodyFraming,
    pub expect_continue: bool,
}

impl Request {
    /// The header fields in order, as (lowercase name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + Clone + '_ {
        let mut start = 0;
        self.spans.iter().map(move |&(name_end, value_end)| {
            let field = (
                &self.fields[start..name_end],
                &self.fields[name_end..value_end],
            );
            start = value_end;
            field
        })
    }

    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Whether a comma-separated header contains `token` (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers()
            .filter(|(n, _)| *n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn has_body(&self) -> bool {
        self.body != BodyFraming::None && self.body != BodyFraming::Length(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole head, and how many bytes of the input it took.
    Complete(Request, usize),
    /// More bytes are needed.
    Partial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    Malformed(&'static str),
    HeadTooLarge,
    UnknownMethod,
    UnsupportedTransferCoding,
    UnsupportedExpectation,
    BodyTooLarge,
}

impl RequestError {
    pub fn status(self) -> Status {
        match self {
            RequestError::Malformed(_) => Status::BAD_REQUEST,
            RequestError::HeadTooLarge => Status::HEADERS_TOO_LARGE,
            RequestError::UnknownMethod | RequestError::UnsupportedTransferCoding => {
                Status::NOT_IMPLEMENTED
            }
            RequestError::UnsupportedExpectation => Status::EXPECTATION_FAILED,
            RequestError::BodyTooLarge => Status::PAYLOAD_TOO_LARGE,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Malformed(why) => write!(f, "malformed request: {why}"),
            RequestError::HeadTooLarge => f.write_str("request head too large"),
            RequestError::UnknownMethod => f.write_str("method not implemented"),
            RequestError::UnsupportedTransferCoding => {
                f.write_str("transfer coding not implemented (only chunked)")
            }
            RequestError::UnsupportedExpectation => f.write_str("only 100-continue is expected"),
            RequestError::BodyTooLarge => f.write_str("request body too large"),
        }
    }
}

/// Parses one request head from the front of `buf`. Empty lines before the request line are
/// skipped (clients may send a stray CRLF after a body).
pub fn parse_head(buf: &[u8], max_head: usize, max_body: usize) -> Result<Parsed, RequestError> {
    let skipped = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    // Left uninitialised for httparse to fill: 64 empty headers are 2 KiB to zero on every
    // request, and a long-poll makes one request per message.
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut raw = httparse::Request::new(&mut []);
    let parsed = raw.parse_with_uninit_headers(&buf[skipped..], &mut headers);
    let status = parsed.map_err(|e| match e {
        httparse::Error::TooManyHeaders => RequestError::HeadTooLarge,
        httparse::Error::Version => RequestError::Malformed("unsupported HTTP version"),
        httparse::Error::HeaderName => RequestError::Malformed("bad header name"),
        httparse::Error::Token => RequestError::Malformed("bad request line or header name"),
        _ => RequestError::Malformed("bad request line or header"),
    })?;
    let len = match status {
        httparse::Status::Partial if buf.len() >= max_head => {
            return Err(RequestError::HeadTooLarge)
        }
        httparse::Status::Partial => return Ok(Parsed::Partial),
        httparse::Status::Complete(len) => skipped + len,
    };
    if len > max_head {
        return Err(RequestError::HeadTooLarge);
    }
    let method = Method::parse(raw.method.unwrap_or("")).ok_or(RequestError::UnknownMethod)?;
    let target = raw.path.unwrap_or("");
    if !(target.starts_with('/') || target == "*" || target.starts_with("http")) {
        return Err(RequestError::Malformed("bad request target"));
    }
    let minor_version = raw.version.unwrap_or(0);
    let size: usize = raw
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len())
        .sum();
    let mut fields = String::with_capacity(size);
    let mut spans = Vec::with_capacity(raw.headers.len());
    for h in raw.headers.iter() {
        fields.extend(h.name.chars().map(|c| c.to_ascii_lowercase()));
        let name_end = fields.len();
        fields.push_str(&String::from_utf8_lossy(h.value));
        spans.push((name_end, fields.len()));
    }
    let mut request = Request {
        method,
        target: absolute_path(target).to_string(),
        minor_version,
        fields,
        spans,
        keep_alive: false,
        body: BodyFraming::None,
        expect_continue: false,
    };
    if minor_version >= 1 && request.header("host").is_none() {
        return Err(RequestError::Malformed("missing Host header"));
    }
    // Two Hosts let a proxy and this server route one request differently (RFC 9112 3.2).
    if request.headers().filter(|(n, _)| *n == "host").count() > 1 {
        return Err(RequestError::Malformed("duplicate Host header"));
    }
    request.body = body_framing(&request, max_body)?;
    request.keep_alive = if minor_version >= 1 {
        !request.header_has_token("connection", "close")
    } else {
        request.header_has_token("connection", "keep-alive")
    };
    if let Some(expect) = request.header("expect") {
        if !expect.trim().eq_ignore_ascii_case("100-continue") {
            return Err(RequestError::UnsupportedExpectation);
        }
        request.expect_continue = minor_version >= 1;
    }
    Ok(Parsed::Complete(request, len))
}

/// Query parameters whose names contain one of these (case-insensitive) have their values
/// hidden from the access log: `token`, `access_token`, `key`, `api_key`, `secret`, ...
const SECRET_NAME_PARTS: [&str; 5] = ["token", "key", "secret", "password", "passwd"];

/// The request target as the access log shows it: the value of every query parameter whose
/// name suggests a credential is replaced by `REDACTED`, so a log file holds no token.
pub fn redacted_target(target: &str) -> Cow<'_, str> {
    let Some((path, query)) = target.split_once('?') else {
        return Cow::Borrowed(target);
    };
    let secret = |part: &str| part.split_once('=').is_some_and(|(n, _)| is_secret_name(n));
    if !query.split('&').any(secret) {
        return Cow::Borrowed(target);
    }
    let parts: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((name, _)) if is_secret_name(name) => Cow::Owned(format!("{name}=REDACTED")),
            _ => Cow::Borrowed(part),
        })
        .collect();
    Cow::Owned(format!("{path}?{}", parts.join("&")))
}

/// Whether a (still percent-encoded) query parameter name names a credential.
fn is_secret_name(raw: &str) -> bool {
    let decoded = percent_decode(raw.as_bytes(), true).unwrap_or_else(|| raw.as_bytes().to_vec());
    let name = String::from_utf8_lossy(&decoded).to_ascii_lowercase();
    SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
}

/// An absolute-form target ("http://host/path") is reduced to its path.
fn absolute_path(target: &str) -> &str {
    match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    }
}

fn body_framing(request: &Request, max_body: usize) -> Result<BodyFraming, RequestError> {
    // HTTP/1.0 has no transfer codings: a 1.0 proxy in front would frame the body by its
    // Content-Length or by the close, and we by chunks (RFC 9112 6.1).
    if request.minor_version == 0 && request.header("transfer-encoding").is_some() {
        return Err(RequestError::Malformed("Transfer-Encoding on HTTP/1.0"));
    }
    let transfer_codings: Vec<&str> = request
        .headers()
        .filter(|(n, _)| *n == "transfer-encoding")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let mut lengths = request.headers().filter(|(n, _)| *n == "content-length");
    if !transfer_codings.is_empty() {
        if lengths.next().is_some() {
            // Both framings at once is how requests get smuggled past proxies: refuse.
            return Err(RequestError::Malformed(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        return match transfer_codings.as_slice() {
            [only] if only.eq_ignore_ascii_case("chunked") => Ok(BodyFraming::Chunked),
            _ => Err(RequestError::UnsupportedTransferCoding),
        };
    }
    let mut length = None;
    for (_, value) in lengths {
        for item in value.split(',') {
            let item = item.trim();
            if item.is_empty() || item.len() > 19 || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RequestError::Malformed("bad Content-Length"));
            }
            let n: u64 = item
                .parse()
                .map_err(|_| RequestError::Malformed("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(RequestError::Malformed("conflicting Content-Length"));
            }
            length = Some(n);
        }
    }
    match length {
        None => Ok(BodyFraming::None),
        Some(n) if n > max_body as u64 => Err(RequestError::BodyTooLarge),
        Some(n) => Ok(BodyFraming::Length(n as usize)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Parsed, RequestError> {
        parse_head(raw.as_bytes(), 1024, 100)
    }

    fn complete(raw: &str) -> (Request, usize) {
        match parse(raw) {
            Ok(Parsed::Complete(r, n)) => (r, n),
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn framing_and_keep_alive() {
        let cases: &[(&str, BodyFraming, bool, bool)] = &[
            (
                "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                BodyFraming::None,
                true,
                false,
            ),
            ("GET / HTTP/1.0\r\n\r\n", BodyFraming::None, false, false),
            (
                "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                BodyFraming::None,
                true,
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n",
                BodyFraming::None,
                false,
                false,
            ),
            (
                "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
                BodyFraming::Length(5),
                true,
                false,
            ),
            (
                "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                BodyFraming::Length(0),
                true,
                false,
            ),
            (
                "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
                BodyFraming::Length(5),
                true,
                false,
            ),
            (
                "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
                BodyFraming::Chunked,
                true,
                false,
            ),
            (
                "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
                BodyFraming::Length(3),
                true,
                true,
            ),
            (
                "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
                BodyFraming::None,
                true,
                false,
            ),
        ];
        for (raw, body, keep_alive, expect) in cases {
            let (r, n) = complete(raw);
            assert_eq!(
                (r.body, r.keep_alive, r.expect_continue),
                (*body, *keep_alive, *expect),
                "{raw:?}"
            );
            assert_eq!(n, raw.len(), "{raw:?}");
        }
    }

    #[test]
    fn errors() {
        let cases: &[(&str, RequestError)] = &[
            ("GET / HTTP/1.1\r\n\r\n", RequestError::Malformed("missing Host header")),
            ("BREW / HTTP/1.1\r\nHost: a\r\n\r\n", RequestError::UnknownMethod),
            ("GET / HTTP/2.0\r\n\r\n", RequestError::Malformed("unsupported HTTP version")),
            ("GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", RequestError::Malformed("bad header name")),
            ("GET nopath HTTP/1.1\r\nHost: a\r\n\r\n", RequestError::Malformed("bad request target")),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", RequestError::BodyTooLarge),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", RequestError::Malformed("bad Content-Length")),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", RequestError::Malformed("conflicting Content-Length")),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", RequestError::Malformed("both Content-Length and Transfer-Encoding")),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", RequestError::UnsupportedTransferCoding),
            ("POST / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", RequestError::UnsupportedExpectation),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", RequestError::Malformed("duplicate Host header")),
            ("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", RequestError::Malformed("duplicate Host header")),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", RequestError::Malformed("Transfer-Encoding on HTTP/1.0")),
            ("POST / HTTP/1.0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", RequestError::Malformed("Transfer-Encoding on HTTP/1.0")),
        ];
        for (raw, want) in cases {
            assert_eq!(parse(raw), Err(*want), "{raw:?}");
        }
    }

    #[test]
    fn partial_and_too_large() {
        assert_eq!(parse("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(Parsed::Partial));
        let long = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "y".repeat(2000));
        assert_eq!(parse(&long), Err(RequestError::HeadTooLarge));
        let many: String = (0..70).map(|i| format!("X{i}: y\r\n")).collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            Err(RequestError::HeadTooLarge)
        );
    }

    #[test]
    fn credentials_are_redacted_for_the_log() {
        let cases = [
            ("/msgbus/a", "/msgbus/a"),
            (
                "/msgbus/a?since=3&type=text/*",
                "/msgbus/a?since=3&type=text/*",
            ),
            ("/metrics?token=abc", "/metrics?token=REDACTED"),
            (
                "/msgbus/a?since=1&access_token=x&key=k&b=2",
                "/msgbus/a?since=1&access_token=REDACTED&key=REDACTED&b=2",
            ),
            (
                "/x?API_KEY=1&Client_Secret=2",
                "/x?API_KEY=REDACTED&Client_Secret=REDACTED",
            ),
            (
                "/x?password=p&user_passwd=q",
                "/x?password=REDACTED&user_passwd=REDACTED",
            ),
            (
                "/x?%74oken=t&to%6Ben=u",
                "/x?%74oken=REDACTED&to%6Ben=REDACTED",
            ),
            ("/x?token&tokens=", "/x?token&tokens=REDACTED"),
            ("/x?token=a=b&c=d", "/x?token=REDACTED&c=d"),
        ];
        for (target, want) in cases {
            assert_eq!(redacted_target(target), want, "{target}");
        }
    }

    #[test]
    fn target_forms() {
        let cases: &[(&str, &str)] = &[
            (
                "GET /msgbus/foo?type=text/* HTTP/1.0\r\n\r\n",
                "/msgbus/foo?type=text/*",
            ),
            (
                "GET http://example.com/msgbus/x HTTP/1.0\r\n\r\n",
                "/msgbus/x",
            ),
            ("GET http://example.com HTTP/1.0\r\n\r\n", "/"),
        ];
        for (raw, want) in cases {
            assert_eq!(complete(raw).0.target, *want);
        }
    }
}
