//! Response heads and the short error responses, as bytes ready to queue.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`: an IMF-fixdate always has 29 characters.
pub const DATE_LINE_LEN: usize = 37;

thread_local! {
    /// The `Date` line every response head carries (RFC 9110 section 6.6.1), formatted once a
    /// second: the reactor sets the clock each turn, and heads copy the line. Until the clock
    /// is set there is none, so protocol code and its tests stay without a clock.
    static DATE_LINE: Cell<(u64, [u8; DATE_LINE_LEN])> = const { Cell::new((0, [0; DATE_LINE_LEN])) };
}

/// Sets the time heads are dated with; the line is formatted again only when the second
/// changes.
pub fn set_clock(now: SystemTime) {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().max(1));
    DATE_LINE.with(|cell| {
        if cell.get().0 != secs {
            let text = format!("Date: {}\r\n", super::date::format_http_date(secs));
            let mut line = [0; DATE_LINE_LEN];
            if text.len() == DATE_LINE_LEN {
                line.copy_from_slice(text.as_bytes());
                cell.set((secs, line));
            }
        }
    });
}

/// `Server: msgbus`, and the `Date` line once the clock is set: the first header lines of
/// every response.
pub fn write_server_and_date(out: &mut Vec<u8>) {
    out.extend_from_slice(b"Server: msgbus\r\n");
    let (secs, line) = DATE_LINE.with(Cell::get);
    if secs != 0 {
        out.extend_from_slice(&line);
    }
}

/// A status code with its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u16, pub &'static str);

impl Status {
    pub const CONTINUE: Status = Status(100, "Continue");
    pub const OK: Status = Status(200, "OK");
    pub const NO_CONTENT: Status = Status(204, "No Content");
    pub const NOT_MODIFIED: Status = Status(304, "Not Modified");
    pub const BAD_REQUEST: Status = Status(400, "Bad Request");
    pub const SWITCHING_PROTOCOLS: Status = Status(101, "Switching Protocols");
    pub const UNAUTHORIZED: Status = Status(401, "Unauthorized");
    pub const FORBIDDEN: Status = Status(403, "Forbidden");
    pub const NOT_FOUND: Status = Status(404, "Not Found");
    pub const METHOD_NOT_ALLOWED: Status = Status(405, "Method Not Allowed");
    pub const REQUEST_TIMEOUT: Status = Status(408, "Request Timeout");
    pub const GONE: Status = Status(410, "Gone");
    pub const PAYLOAD_TOO_LARGE: Status = Status(413, "Payload Too Large");
    pub const EXPECTATION_FAILED: Status = Status(417, "Expectation Failed");
    pub const UPGRADE_REQUIRED: Status = Status(426, "Upgrade Required");
    pub const HEADERS_TOO_LARGE: Status = Status(431, "Request Header Fields Too Large");
    pub const INTERNAL_ERROR: Status = Status(500, "Internal Server Error");
    pub const NOT_IMPLEMENTED: Status = Status(501, "Not Implemented");
    pub const SERVICE_UNAVAILABLE: Status = Status(503, "Service Unavailable");

    /// The status for `code` with its phrase, "Unknown" for a code not listed here (a door
    /// answering with its original's codes).
    pub fn from_code(code: u16) -> Status {
        [
            Status::CONTINUE,
            Status::OK,
            Status::NO_CONTENT,
            Status::NOT_MODIFIED,
            Status::BAD_REQUEST,
            Status::SWITCHING_PROTOCOLS,
            Status::UNAUTHORIZED,
            Status::FORBIDDEN,
            Status::NOT_FOUND,
            Status::METHOD_NOT_ALLOWED,
            Status::REQUEST_TIMEOUT,
            Status::GONE,
            Status::PAYLOAD_TOO_LARGE,
            Status::EXPECTATION_FAILED,
            Status::UPGRADE_REQUIRED,
            Status::HEADERS_TOO_LARGE,
            Status::INTERNAL_ERROR,
            Status::NOT_IMPLEMENTED,
            Status::SERVICE_UNAVAILABLE,
        ]
        .into_iter()
        .find(|status| status.0 == code)
        .unwrap_or(Status(code, "Unknown"))
    }
}

/// Builds a response head line by line. Written byte by byte, not through `fmt`: a long-poll
/// builds one head per message delivered, and formatting was most of that work.
pub struct Head {
    buf: Vec<u8>,
}

impl Head {
    /// The status line in the client's HTTP version, `Server: msgbus` and `Date`.
    pub fn new(minor_version: u8, status: Status) -> Head {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(if minor_version >= 1 {
            b"HTTP/1.1 "
        } else {
            b"HTTP/1.0 "
        });
        write_decimal(&mut buf, u64::from(status.0));
        buf.push(b' ');
        buf.extend_from_slice(status.1.as_bytes());
        buf.extend_from_slice(b"\r\n");
        write_server_and_date(&mut buf);
        Head { buf }
    }

    pub fn header(mut self, name: &str, value: impl HeaderValue) -> Head {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        value.write_to(&mut self.buf);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Ends the head. `keep_alive` says whether the connection stays open after this response;
    /// HTTP/1.0 clients are told when it does, HTTP/1.1 clients when it does not.
    pub fn finish(mut self, minor_version: u8, keep_alive: bool) -> Vec<u8> {
        match (minor_version >= 1, keep_alive) {
            (true, false) => self.buf.extend_from_slice(b"Connection: close\r\n"),
            (false, true) => self.buf.extend_from_slice(b"Connection: keep-alive\r\n"),
            _ => {}
        }
        self.buf.extend_from_slice(b"\r\n");
        self.buf
    }
}

/// A header's value: text as it is, a number in decimal.
pub trait HeaderValue {
    fn write_to(&self, out: &mut Vec<u8>);
}

impl HeaderValue for &str {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl HeaderValue for &&str {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl HeaderValue for String {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl HeaderValue for &String {
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

macro_rules! decimal_header_values {
    ($($t:ty),*) => {$(
        impl HeaderValue for $t {
            fn write_to(&self, out: &mut Vec<u8>) {
                write_decimal(out, *self as u64);
            }
        }
    )*};
}

// Unsigned only: no header value here is negative.
decimal_header_values!(u16, u32, u64, usize);

/// Appends `n` in decimal, two digits a step: a message id has 16 or more digits, and a
/// long-poll answer writes one per message delivered.
pub fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[at..]);
}

/// A whole response whose body is `reason` on one line of plain text.
pub fn plain(
    minor_version: u8,
    status: Status,
    reason: &str,
    extra: &[(&str, &str)],
    keep_alive: bool,
    head_only: bool,
) -> Vec<u8> {
    let body_len = reason.len() + 1;
    let mut head = Head::new(minor_version, status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", body_len);
    for (name, value) in extra {
        head = head.header(name, value);
    }
    let mut out = head.finish(minor_version, keep_alive);
    if !head_only {
        out.extend_from_slice(reason.as_bytes());
        out.push(b'\n');
    }
    out
}

/// A whole response with a body of the given type.
pub fn with_body(
    minor_version: u8,
    status: Status,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) -> Vec<u8> {
    let mut out = Head::new(minor_version, status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .header("Cache-Control", "no-cache")
        .finish(minor_version, keep_alive);
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses() {
        let cases: &[(u8, Status, bool, bool, &str)] = &[
            (1, Status::NOT_FOUND, true, false, "HTTP/1.1 404 Not Found\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\r\nnot found\n"),
            (1, Status::NOT_FOUND, false, true, "HTTP/1.1 404 Not Found\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"),
            (0, Status::NOT_FOUND, true, false, "HTTP/1.0 404 Not Found\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\nnot found\n"),
        ];
        for (minor, status, keep_alive, head_only, want) in cases {
            let got = plain(*minor, *status, "not found", &[], *keep_alive, *head_only);
            assert_eq!(String::from_utf8(got).unwrap(), *want);
        }
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        let powers = (0..20).flat_map(|p| {
            let power = 10u64.pow(p);
            [power - 1, power, power + 1]
        });
        let some = [1_796_100_440_183_155_611, u64::MAX - 1, u64::MAX];
        for n in (0..20_000).chain(powers).chain(some) {
            let mut out = b"x".to_vec();
            write_decimal(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), format!("x{n}"));
        }
        let head = Head::new(0, Status(599, "Odd"))
            .header("A", 0usize)
            .header("B", u16::MAX)
            .header("C", "text")
            .header("D", String::from("owned"))
            .finish(0, false);
        let want =
            "HTTP/1.0 599 Odd\r\nServer: msgbus\r\nA: 0\r\nB: 65535\r\nC: text\r\nD: owned\r\n\r\n";
        assert_eq!(String::from_utf8(head).unwrap(), want);
    }

    #[test]
    fn heads_are_dated_once_the_clock_is_set() {
        // Tests run on threads of their own: this clock is this test's.
        set_clock(UNIX_EPOCH + std::time::Duration::from_secs(784_111_777));
        let got = plain(1, Status::NOT_FOUND, "x", &[], true, true);
        let want =
            "HTTP/1.1 404 Not Found\r\nServer: msgbus\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
        assert!(String::from_utf8(got).unwrap().starts_with(want));
        set_clock(UNIX_EPOCH + std::time::Duration::from_secs(784_111_778));
        let mut out = Vec::new();
        write_server_and_date(&mut out);
        assert_eq!(
            out,
            b"Server: msgbus\r\nDate: Sun, 06 Nov 1994 08:49:38 GMT\r\n"
        );
    }
}
