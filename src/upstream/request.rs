//! The parts of an lhttp `upstream:` call that need no socket: reading its `http://` URL,
//! matching it against the allow-list, writing the request, and reading the answer's status.
//! A call is only ever made to a URL an operator allowed; nothing here follows redirects.

use std::fmt;

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
}
