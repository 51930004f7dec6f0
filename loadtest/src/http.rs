//! Just enough HTTP/1.1 response parsing: a subscriber's response head, and whole publish answers
//! (head plus a Content-Length or chunked body) off a pipelined connection. No sockets.

/// Response heads longer than this are refused.
pub const HEAD_MAX: usize = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    Complete(T),
    Partial,
    Invalid(&'static str),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of the head, blank line included.
    pub len: usize,
    pub content_length: Option<usize>,
    pub chunked: bool,
    /// Kept for a long-poll's next request (Nchan resumes from them).
    pub last_modified: Option<String>,
    pub etag: Option<String>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn parse_head(buf: &[u8]) -> Parsed<Head> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > HEAD_MAX {
            Parsed::Invalid("response head too long")
        } else {
            Parsed::Partial
        };
    };
    let Ok(text) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Invalid("response head not UTF-8");
    };
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Parsed::Invalid("bad status line");
    };
    let Ok(status) = code.parse::<u16>() else {
        return Parsed::Invalid("bad status code");
    };
    if !version.starts_with("HTTP/1.") {
        return Parsed::Invalid("not HTTP/1.x");
    }
    let mut head = Head {
        status,
        len: end + 4,
        content_length: None,
        chunked: false,
        last_modified: None,
        etag: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse() {
                Ok(n) => head.content_length = Some(n),
                Err(_) => return Parsed::Invalid("bad Content-Length"),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("last-modified") {
            head.last_modified = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("etag") {
            head.etag = Some(value.to_string());
        }
    }
    Parsed::Complete(head)
}

/// Length of a complete chunked body at the start of `buf` (trailers included).
fn chunked_len(buf: &[u8]) -> Parsed<usize> {
    let mut i = 0;
    for _ in 0..buf.len() + 1 {
        let Some(eol) = find(&buf[i..], b"\r\n") else {
            return Parsed::Partial;
        };
        let line = std::str::from_utf8(&buf[i..i + eol]).unwrap_or("!");
        let hex = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(hex, 16) else {
            return Parsed::Invalid("bad chunk size");
        };
        i += eol + 2;
        if size == 0 {
            // Trailers, if any, end with a blank line; usually there are none.
            if buf[i..].starts_with(b"\r\n") {
                return Parsed::Complete(i + 2);
            }
            return match find(&buf[i..], b"\r\n\r\n") {
                Some(e) => Parsed::Complete(i + e + 4),
                None => Parsed::Partial,
            };
        }
        if buf.len() < i + size + 2 {
            return Parsed::Partial;
        }
        i += size + 2;
    }
    Parsed::Invalid("chunked body does not end")
}

/// One whole response at the start of `buf`: its status and total length. A response without
/// Content-Length or chunking is taken to have no body (204, or a keep-alive answer).
pub fn parse_response(buf: &[u8]) -> Parsed<(u16, usize)> {
    match parse_whole(buf) {
        Parsed::Complete((head, len)) => Parsed::Complete((head.status, len)),
        Parsed::Partial => Parsed::Partial,
        Parsed::Invalid(e) => Parsed::Invalid(e),
    }
}

/// One whole response at the start of `buf`: its head and total length (the body is
/// `buf[head.len..len]`, still chunk-framed if it was chunked).
pub fn parse_whole(buf: &[u8]) -> Parsed<(Head, usize)> {
    let head = match parse_head(buf) {
        Parsed::Complete(h) => h,
        Parsed::Partial => return Parsed::Partial,
        Parsed::Invalid(e) => return Parsed::Invalid(e),
    };
    let body = if head.chunked {
        match chunked_len(&buf[head.len..]) {
            Parsed::Complete(n) => n,
            Parsed::Partial => return Parsed::Partial,
            Parsed::Invalid(e) => return Parsed::Invalid(e),
        }
    } else {
        let n = head.content_length.unwrap_or(0);
        if buf.len() < head.len + n {
            return Parsed::Partial;
        }
        n
    };
    let len = head.len + body;
    Parsed::Complete((head, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let cases: &[(&[u8], Parsed<(u16, usize)>)] = &[
            (
                b"HTTP/1.1 204 No Content\r\nServer: msgbus\r\n\r\n",
                Parsed::Complete((204, 43)),
            ),
            (
                b"HTTP/1.1 204 No Content\r\nServer: msgbus\r\n\r\nHTTP",
                Parsed::Complete((204, 43)),
            ),
            (b"HTTP/1.1 204 No Content\r\n", Parsed::Partial),
            (
                b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc",
                Parsed::Complete((201, 46)),
            ),
            (
                b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nab",
                Parsed::Partial,
            ),
            (
                b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                Parsed::Complete((202, 66)),
            ),
            (
                b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
                Parsed::Partial,
            ),
            (b"SMTP 220 hi\r\n\r\n", Parsed::Invalid("not HTTP/1.x")),
            (
                b"HTTP/1.1 abc x\r\n\r\n",
                Parsed::Invalid("bad status code"),
            ),
        ];
        for (buf, want) in cases {
            assert_eq!(
                &parse_response(buf),
                want,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn heads() {
        let h = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1a\r\n--00MsgBus00";
        let Parsed::Complete(head) = parse_head(h) else {
            panic!("incomplete")
        };
        assert_eq!((head.status, head.len, head.chunked), (200, 47, true));
    }
}
