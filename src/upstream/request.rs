//! The parts of an lhttp `upstream:` call that need no socket: reading its `http://` URL,
//! matching it against the allow-list, writing the request, and reading the answer's status.
//! A call is only ever made to a URL an operator allowed; nothing here follows redirects.

use std::fmt;

use crate::http::chunked::{ChunkError, ChunkedDecoder, Progress as ChunkProgress};

/// An `http://host[:port]/path?query` URL, as the call will use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Lower-cased host name or address (an IPv6 address keeps its brackets).
    pub host: String,
    pub port: u16,
    /// Starts with `/`; the fragment is dropped.
    pub target: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    NotHttp,
    BadHost,
    BadPort,
    /// `user@host`: credentials have no place in a forwarded URL.
    UserInfo,
    /// Control characters, spaces or bytes outside ASCII.
    BadCharacter,
    /// A `.` or `..` path segment (also as `..;params`, the form Java servers read as `..`),
    /// which could climb out of an allowed prefix.
    DotSegment,
    /// A `\`, or a `/` or `\` percent-encoded in the path: backends that decode or swap them
    /// before routing would see segments the prefix check did not.
    Separator,
    /// A `%` not followed by two hex digits.
    BadEscape,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::NotHttp => "only http:// URLs are supported",
            UrlError::BadHost => "bad host",
            UrlError::BadPort => "bad port",
            UrlError::UserInfo => "user information is not allowed",
            UrlError::BadCharacter => "a character needs escaping",
            UrlError::DotSegment => "a . or .. path segment",
            UrlError::Separator => "a \\ or an encoded / or \\ in the path",
            UrlError::BadEscape => "a % not followed by two hex digits",
        })
    }
}

impl HttpUrl {
    pub fn parse(text: &str) -> Result<HttpUrl, UrlError> {
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(UrlError::BadCharacter);
        }
        let scheme_len = "http://".len();
        if text.len() < scheme_len || !text[..scheme_len].eq_ignore_ascii_case("http://") {
            return Err(UrlError::NotHttp);
        }
        let rest = &text[scheme_len..];
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = split_host_port(authority)?;
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let mut target = normalise_path(if path.is_empty() { "/" } else { path })?;
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        Ok(HttpUrl {
            host: host.to_ascii_lowercase(),
            port,
            target,
        })
    }

    /// The `Host` header's value.
    pub fn authority(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether this URL lies under `prefix`: same host and port, and a path that continues the
    /// prefix's at a segment boundary (`/api` allows `/api`, `/api/x` and `/api?q`, not `/apix`).
    pub fn is_under(&self, prefix: &HttpUrl) -> bool {
        if self.host != prefix.host || self.port != prefix.port {
            return false;
        }
        let Some(rest) = self.target.strip_prefix(prefix.target.as_str()) else {
            return false;
        };
        prefix.target.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?'])
    }
}

fn split_host_port(authority: &str) -> Result<(&str, u16), UrlError> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(UrlError::BadHost)?;
        let (host, after) = authority.split_at(end + 1);
        if host[1..end].parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UrlError::BadHost);
        }
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or(UrlError::BadPort)?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let name_ok = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    if !host.starts_with('[') && !name_ok(host) {
        return Err(UrlError::BadHost);
    }
    let port = match port {
        None => 80,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().ok().filter(|&n| n > 0).ok_or(UrlError::BadPort)?
        }
        Some(_) => return Err(UrlError::BadPort),
    };
    Ok((host, port))
}

/// The path as the call sends it and the allow-list compares it (RFC 3986 section 6.2.2):
/// escapes of unreserved characters decoded (`%41` is `A`, `%2e` is `.`), other escapes in
/// upper case. Then refused: a `\` or an escaped `/` or `\` (a backend that decodes `..%2f`
/// or swaps `\` for `/` would route to segments the prefix check never saw), and a `.` or `..`
/// segment, also with `;parameters` after it (`..;/` is `../` to Tomcat and Jetty). Refusing
/// dot segments rather than resolving them keeps a URL meaning one thing to every server.
fn normalise_path(path: &str) -> Result<String, UrlError> {
    let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err(UrlError::Separator),
            b'%' => {
                let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) else {
                    return Err(UrlError::BadEscape);
                };
                let byte = (hi * 16 + lo) as u8;
                if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                    out.push(byte as char);
                } else if matches!(byte, b'/' | b'\\') {
                    return Err(UrlError::Separator);
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
                i += 3;
            }
            b => {
                out.push(b as char);
                i += 1;
            }
        }
    }
    let is_dot = |segment: &str| matches!(segment.split(';').next(), Some("." | ".."));
    if out.split('/').any(is_dot) {
        return Err(UrlError::DotSegment);
    }
    Ok(out)
}

/// Whether `s` is an HTTP token (a method or a header name).
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers the call sets itself, or that would change how the request is framed.
const RESERVED: [&str; 9] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "expect",
];

/// Go's `CanonicalMIMEHeaderKey`, as lhttp's `req.Header.Set` spelled the names.
fn canonical(name: &[u8]) -> String {
    let mut upper = true;
    name.iter()
        .map(|&b| {
            let c = if upper {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            };
            upper = b == b'-';
            c as char
        })
        .collect()
}

/// The whole request: lhttp sent every message header as an HTTP header and, for any method
/// but `GET`, the message body. Headers whose name is not a token or whose value holds a
/// line break are left out (they would split the request), as are the framing headers.
pub fn encode_request(
    method: &[u8],
    url: &HttpUrl,
    headers: &[(Vec<u8>, Vec<u8>)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.map_or(0, <[u8]>::len));
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(url.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(url.authority().as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut sent: Vec<String> = Vec::new();
    // The last of a repeated header wins, as in lhttp's header map.
    for (name, value) in headers.iter().rev() {
        let name_lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        let safe_value = !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0);
        if !is_token(name)
            || !safe_value
            || RESERVED.contains(&name_lower.as_str())
            || sent.contains(&name_lower)
        {
            continue;
        }
        sent.push(name_lower);
        out.extend_from_slice(canonical(name).as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
    out
}

/// What the start of an answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerHead {
    /// The status line has not all arrived.
    Incomplete,
    Status(u16),
    NotHttp,
}

/// Reads the status code once the status line has arrived.
pub fn response_status(head: &[u8]) -> AnswerHead {
    let Some(line_end) = memchr::memchr(b'\n', head) else {
        return if head.len() > 1024 {
            AnswerHead::NotHttp
        } else {
            AnswerHead::Incomplete
        };
    };
    let line = &head[..line_end];
    let ok_prefix = line.starts_with(b"HTTP/1.1 ") || line.starts_with(b"HTTP/1.0 ");
    let code = line
        .get(9..12)
        .filter(|c| c.iter().all(u8::is_ascii_digit))
        .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok());
    match (ok_prefix, code) {
        (true, Some(code)) => AnswerHead::Status(code),
        _ => AnswerHead::NotHttp,
    }
}

/// The largest answer head read; past it the answer is refused.
const MAX_ANSWER_HEAD: usize = 16 * 1024;

/// A whole answer, for calls whose answer goes back to a client (lhttp processors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// The body is longer than the caller takes (its limit).
    TooLarge(usize),
    /// Not an HTTP/1 answer, or framed in a way that cannot be trusted.
    Malformed(&'static str),
    /// The connection ended before the answer did.
    Truncated,
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::TooLarge(limit) => write!(f, "answer larger than {limit} bytes"),
            AnswerError::Malformed(why) => write!(f, "bad HTTP answer: {why}"),
            AnswerError::Truncated => f.write_str("answer cut short"),
        }
    }
}

/// How the answer's body ends.
#[derive(Debug)]
enum Framing {
    Length(usize),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// Reads an answer from whatever bytes have arrived: the head (interim 1xx answers skipped),
/// then a body framed by `Content-Length`, chunked, or the end of the connection, never more
/// than `max_body` bytes of it. No I/O: the caller feeds it and tells it when the peer closed.
#[derive(Debug)]
pub struct AnswerReader {
    max_body: usize,
    /// Bytes of the head until it is whole; then chunked framing not yet decoded.
    head: Vec<u8>,
    /// Status, Content-Type and framing once the head is read.
    read: Option<(u16, Option<String>, Framing)>,
    body: Vec<u8>,
}

/// What a feed came to.
#[derive(Debug, PartialEq, Eq)]
pub enum AnswerProgress {
    More,
    Done(Answer),
}

impl AnswerReader {
    pub fn new(max_body: usize) -> AnswerReader {
        AnswerReader {
            max_body,
            head: Vec::new(),
            read: None,
            body: Vec::new(),
        }
    }

    /// Takes bytes that arrived.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<AnswerProgress, AnswerError> {
        if self.read.is_some() {
            return self.feed_body(bytes);
        }
        self.head.extend_from_slice(bytes);
        let Some(used) = self.read_head()? else {
            if self.head.len() > MAX_ANSWER_HEAD {
                return Err(AnswerError::Malformed("head too large"));
            }
            return Ok(AnswerProgress::More);
        };
        let rest = self.head.split_off(used);
        self.head = Vec::new();
        self.feed_body(&rest)
    }

    /// Takes bytes of the body.
    fn feed_body(&mut self, bytes: &[u8]) -> Result<AnswerProgress, AnswerError> {
        let Some((status, content_type, framing)) = &mut self.read else {
            return Ok(AnswerProgress::More);
        };
        let done = match framing {
            Framing::Length(left) => {
                let take = bytes.len().min(*left);
                self.body.extend_from_slice(&bytes[..take]);
                *left -= take;
                *left == 0
            }
            Framing::Chunked(decoder) => {
                // A size line may arrive in pieces: what the decoder leaves is kept for later.
                self.head.extend_from_slice(bytes);
                let decoded = decoder.decode(&self.head, &mut self.body, self.max_body);
                if let Ok((used, _)) = decoded {
                    self.head.drain(..used);
                }
                match decoded {
                    Ok((_, ChunkProgress::Done)) => true,
                    Ok((_, ChunkProgress::NeedMore)) => false,
                    Err(ChunkError::BodyTooLarge) => {
                        return Err(AnswerError::TooLarge(self.max_body))
                    }
                    Err(_) => return Err(AnswerError::Malformed("bad chunked framing")),
                }
            }
            Framing::UntilClose => {
                self.body.extend_from_slice(bytes);
                if self.body.len() > self.max_body {
                    return Err(AnswerError::TooLarge(self.max_body));
                }
                false
            }
        };
        if !done {
            return Ok(AnswerProgress::More);
        }
        Ok(AnswerProgress::Done(Answer {
            status: *status,
            content_type: content_type.take(),
            body: std::mem::take(&mut self.body),
        }))
    }

    /// The peer closed: the answer if it was whole (or ran to the close).
    pub fn finish(&mut self) -> Result<Answer, AnswerError> {
        match &mut self.read {
            Some((status, content_type, Framing::UntilClose)) => Ok(Answer {
                status: *status,
                content_type: content_type.take(),
                body: std::mem::take(&mut self.body),
            }),
            Some(_) => Err(AnswerError::Truncated),
            None if self.head.is_empty() => Err(AnswerError::Truncated),
            None => Err(AnswerError::Malformed("no whole head before the close")),
        }
    }

    /// Reads the head once it is whole: Some(its length), after which the body follows.
    fn read_head(&mut self) -> Result<Option<usize>, AnswerError> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut headers);
            let used = match response.parse(&self.head) {
                Ok(httparse::Status::Complete(used)) => used,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(_) => return Err(AnswerError::Malformed("not an HTTP/1 answer")),
            };
            let status = response.code.unwrap_or(0);
            if (100..200).contains(&status) {
                // An interim answer (100 Continue): the real one follows.
                self.head.drain(..used);
                continue;
            }
            let mut content_type = None;
            let mut length: Option<usize> = None;
            let mut chunked = false;
            for header in response.headers.iter() {
                let value = std::str::from_utf8(header.value)
                    .map_err(|_| AnswerError::Malformed("a header value is not UTF-8"))?
                    .trim();
                if header.name.eq_ignore_ascii_case("content-type") {
                    content_type = Some(value.to_string());
                } else if header.name.eq_ignore_ascii_case("content-length") {
                    let n = value
                        .parse()
                        .ok()
                        .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or(AnswerError::Malformed("bad Content-Length"))?;
                    if length.is_some_and(|before| before != n) {
                        return Err(AnswerError::Malformed("two Content-Lengths"));
                    }
                    length = Some(n);
                } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                    let last = value.rsplit(',').next().unwrap_or("").trim();
                    if !last.eq_ignore_ascii_case("chunked") {
                        return Err(AnswerError::Malformed("unknown Transfer-Encoding"));
                    }
                    chunked = true;
                }
            }
            let framing = match (status, chunked, length) {
                (204 | 304, _, _) => Framing::Length(0),
                (_, true, Some(_)) => {
                    return Err(AnswerError::Malformed(
                        "both Content-Length and Transfer-Encoding",
                    ))
                }
                (_, true, None) => Framing::Chunked(ChunkedDecoder::new()),
                (_, false, Some(n)) if n > self.max_body => {
                    return Err(AnswerError::TooLarge(self.max_body))
                }
                (_, false, Some(n)) => Framing::Length(n),
                (_, false, None) => Framing::UntilClose,
            };
            self.read = Some((status, content_type, framing));
            return Ok(Some(used));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> HttpUrl {
        HttpUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn urls_are_read_with_their_defaults() {
        let u = url("http://Example.COM/v1/user/10000/reports?AlgID=1#frag");
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, 80);
        assert_eq!(u.target, "/v1/user/10000/reports?AlgID=1");
        assert_eq!(u.authority(), "example.com");
        let u = url("HTTP://127.0.0.1:8080");
        assert_eq!((u.port, u.target.as_str()), (8080, "/"));
        assert_eq!(u.authority(), "127.0.0.1:8080");
        assert_eq!(url("http://[::1]:81?x=1").target, "/?x=1");
        assert_eq!(url("http://[::1]:81?x=1").host, "[::1]");
    }

    #[test]
    fn bad_urls_say_why() {
        for (text, why) in [
            ("https://h/", UrlError::NotHttp),
            ("ftp://h/", UrlError::NotHttp),
            ("http:/", UrlError::NotHttp),
            ("http:///x", UrlError::BadHost),
            ("http://h_x/", UrlError::BadHost),
            ("http://[nope]/", UrlError::BadHost),
            ("http://h:0/", UrlError::BadPort),
            ("http://h:99999/", UrlError::BadPort),
            ("http://h:/", UrlError::BadPort),
            ("http://h:8a/", UrlError::BadPort),
            ("http://u:p@h/", UrlError::UserInfo),
            ("http://h/a b", UrlError::BadCharacter),
            ("http://h/a\r\nX: y", UrlError::BadCharacter),
            ("http://h/é", UrlError::BadCharacter),
            ("http://h/api/../admin", UrlError::DotSegment),
            ("http://h/api/%2E%2e/admin", UrlError::DotSegment),
            ("http://h/api/./x", UrlError::DotSegment),
            ("http://h/api/..;/admin", UrlError::DotSegment),
            ("http://h/api/.;x=1/a", UrlError::DotSegment),
            ("http://h/api/%2e%2E;/admin", UrlError::DotSegment),
            ("http://h/api/..%2fadmin", UrlError::Separator),
            ("http://h/api/..%2Fadmin", UrlError::Separator),
            ("http://h/api/..%5cadmin", UrlError::Separator),
            ("http://h/api/a\\b", UrlError::Separator),
            ("http://h/api/%zz", UrlError::BadEscape),
            ("http://h/api/%2", UrlError::BadEscape),
            ("http://h/api/%", UrlError::BadEscape),
        ] {
            assert_eq!(HttpUrl::parse(text), Err(why), "{text}");
        }
    }

    #[test]
    fn paths_are_normalised_before_matching() {
        for (text, target) in [
            ("http://h/%61pi/%7Euser/a%2db", "/api/~user/a-b"),
            ("http://h/a%20b/%c3%a9", "/a%20b/%C3%A9"),
            ("http://h/a..b/...;x/a;b", "/a..b/...;x/a;b"),
            ("http://h/x?y=%2e%2e%2f&z=\\", "/x?y=%2e%2e%2f&z=\\"),
            ("http://h?q", "/?q"),
        ] {
            assert_eq!(url(text).target, target, "{text}");
        }
        assert!(url("http://h/%61pi/x").is_under(&url("http://h/api")));
        assert!(url("http://h/api/%C3%A9").is_under(&url("http://h/api/%c3%a9")));
    }

    #[test]
    fn the_allow_list_matches_whole_segments_of_one_origin() {
        let api = url("http://127.0.0.1:8080/api");
        let slash = url("http://127.0.0.1:8080/api/");
        assert!(url("http://127.0.0.1:8080/api").is_under(&api));
        assert!(url("http://127.0.0.1:8080/api/x").is_under(&api));
        assert!(url("http://127.0.0.1:8080/api?q=1").is_under(&api));
        assert!(!url("http://127.0.0.1:8080/apix").is_under(&api));
        assert!(!url("http://127.0.0.1:8081/api/x").is_under(&api));
        assert!(!url("http://localhost:8080/api/x").is_under(&api));
        assert!(url("http://127.0.0.1:8080/api/x").is_under(&slash));
        assert!(!url("http://127.0.0.1:8080/api").is_under(&slash));
        assert!(url("http://h/anything").is_under(&url("http://h")));
    }

    #[test]
    fn requests_carry_the_message_headers_but_cannot_be_split() {
        let headers = vec![
            (b"content-type".to_vec(), b"text/plain".to_vec()),
            (b"x-user-id".to_vec(), b"42".to_vec()),
            (b"host".to_vec(), b"evil".to_vec()),
            (b"content-length".to_vec(), b"0".to_vec()),
            (b"bad name".to_vec(), b"x".to_vec()),
            (b"x-split".to_vec(), b"a\nInjected: 1".to_vec()),
            (b"x-user-id".to_vec(), b"43".to_vec()),
        ];
        let u = url("http://127.0.0.1:8080/store?x=1");
        let got = encode_request(b"POST", &u, &headers, Some(b"hello"));
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "POST /store?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-User-Id: 43\r\n\
             Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        );
        let got = encode_request(b"GET", &u, &[], None);
        assert_eq!(
            got,
            b"GET /store?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn the_status_line_is_read_once_it_is_whole() {
        use AnswerHead::*;
        assert_eq!(response_status(b"HTTP/1.1 20"), Incomplete);
        assert_eq!(response_status(b"HTTP/1.1 204 No Content\r\n"), Status(204));
        assert_eq!(response_status(b"HTTP/1.0 500 x\r\n\r\n"), Status(500));
        assert_eq!(response_status(b"SSH-2.0-OpenSSH\r\n"), NotHttp);
        assert_eq!(response_status(b"HTTP/1.1 2x0 x\r\n"), NotHttp);
        assert_eq!(response_status(&[b'a'; 2000]), NotHttp);
        assert!(is_token(b"POST") && is_token(b"x-y") && !is_token(b"") && !is_token(b"a b"));
    }

    /// Feeds `bytes` in pieces of `step` and then, if still wanted, the close.
    fn read_answer(bytes: &[u8], step: usize, max: usize) -> Result<Answer, AnswerError> {
        let mut reader = AnswerReader::new(max);
        for piece in bytes.chunks(step) {
            if let AnswerProgress::Done(answer) = reader.feed(piece)? {
                return Ok(answer);
            }
        }
        reader.finish()
    }

    #[test]
    fn answers_are_read_whatever_their_framing_and_however_they_arrive() {
        let ok = |status, content_type: Option<&str>, body: &[u8]| {
            Ok(Answer {
                status,
                content_type: content_type.map(str::to_string),
                body: body.to_vec(),
            })
        };
        let cases: &[(&[u8], Result<Answer, AnswerError>)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
                ok(200, Some("text/plain"), b"hello"),
            ),
            (
                b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nto close",
                ok(200, None, b"to close"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                ok(200, None, b"abcde"),
            ),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                ok(204, None, b""),
            ),
            (b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", ok(500, None, b"")),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n",
                Err(AnswerError::TooLarge(10)),
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n0123456789A",
                Err(AnswerError::TooLarge(10)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n",
                Err(AnswerError::TooLarge(10)),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
                Err(AnswerError::Truncated),
            ),
            (b"", Err(AnswerError::Truncated)),
            (
                b"SSH-2.0-OpenSSH_9\r\n",
                Err(AnswerError::Malformed("not an HTTP/1 answer")),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
                Err(AnswerError::Malformed("two Content-Lengths")),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nab",
                Err(AnswerError::Malformed("bad Content-Length")),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Err(AnswerError::Malformed("unknown Transfer-Encoding")),
            ),
        ];
        for (bytes, want) in cases {
            for step in [1, 7, bytes.len().max(1)] {
                let got = read_answer(bytes, step, 10);
                assert_eq!(
                    &got,
                    want,
                    "{:?} in pieces of {step}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
        let endless = [b'x'; MAX_ANSWER_HEAD + 10];
        let got = read_answer(
            &[b"HTTP/1.1 200 OK\r\nX: ", &endless[..]].concat(),
            4096,
            10,
        );
        assert_eq!(got, Err(AnswerError::Malformed("head too large")));
    }
}
