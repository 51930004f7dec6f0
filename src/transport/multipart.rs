//! The original msgbus stream: `multipart/x-mixed-replace`, byte for byte as its clients expect.
//! Part headers end in a bare LF, the body is followed directly by the next boundary line, and
//! on HTTP/1.1 each part is one chunk without Content-Length; on HTTP/1.0 the stream is
//! close-delimited and each part carries Content-Length.

use std::io::Write;

use crate::http::query::percent_encode_path;
use crate::message::Message;

pub const BOUNDARY: &str = "00MsgBus00";
pub const CONTENT_TYPE: &str = "multipart/x-mixed-replace;boundary=00MsgBus00";
/// The first line of the stream, sent with the response head.
const OPENING: &[u8] = b"--00MsgBus00\n";

/// The response head of a subscription and, unless `head_only`, the opening boundary.
pub fn encode_stream_head(minor_version: u8, head_only: bool, extra: &[(&str, &str)]) -> Vec<u8> {
    let chunked = minor_version >= 1;
    let mut out = Vec::with_capacity(192);
    out.extend_from_slice(if chunked {
        b"HTTP/1.1 200 OK\r\n"
    } else {
        b"HTTP/1.0 200 OK\r\n"
    });
    crate::http::response::write_server_and_date(&mut out);
    out.extend_from_slice(b"Content-Type: ");
    out.extend_from_slice(CONTENT_TYPE.as_bytes());
    out.extend_from_slice(b"\r\nCache-Control: no-cache\r\n");
    for (name, value) in extra {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
    } else {
        out.extend_from_slice(b"Connection: close\r\n\r\n");
    }
    if !head_only {
        wrap(&mut out, OPENING, chunked);
    }
    out
}

/// One message as a part: its headers, its body, and the boundary that closes it.
pub fn encode_part(msg: &Message, located: bool, chunked: bool) -> Vec<u8> {
    let mut part = Vec::with_capacity(msg.body.len() + 128);
    if let Some(sender) = &msg.sender {
        let _ = writeln!(part, "From: {sender}");
    }
    if located {
        let _ = writeln!(
            part,
            "Content-Location: /msgbus/{}",
            percent_encode_path(&msg.channel)
        );
    }
    let _ = writeln!(part, "Content-Type: {}", msg.content_type);
    if !chunked {
        let _ = writeln!(part, "Content-Length: {}", msg.body.len());
    }
    part.push(b'\n');
    part.extend_from_slice(&msg.body);
    part.extend_from_slice(OPENING);
    if !chunked {
        return part;
    }
    let mut out = Vec::with_capacity(part.len() + 12);
    wrap(&mut out, &part, true);
    out
}

/// The header line that tells a slow subscriber `count` messages were dropped before the part
/// it precedes: queued on its own just before that part's shared frame, it becomes the part's
/// first header (a part's frame starts with its headers; the boundary ends the part before).
pub fn encode_missed_notice(count: u32, chunked: bool) -> Vec<u8> {
    let line = format!("Msgbus-Dropped: {count}\n");
    let mut out = Vec::with_capacity(line.len() + 8);
    wrap(&mut out, line.as_bytes(), chunked);
    out
}

/// Appends `bytes`, as one HTTP/1.1 chunk when `chunked`.
fn wrap(out: &mut Vec<u8>, bytes: &[u8], chunked: bool) {
    if chunked {
        let _ = write!(out, "{:x}\r\n", bytes.len());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(bytes);
    }
}

/// One part read back from a close-delimited (HTTP/1.0) stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartError {
    /// The stream did not open or continue with the boundary line.
    NoBoundary,
    /// A part header line without a colon, or not UTF-8.
    BadHeader,
    /// A part without a usable Content-Length.
    NoContentLength,
    /// A part over the reader's size limit.
    TooLarge,
}

impl std::fmt::Display for PartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PartError::NoBoundary => "missing multipart boundary",
            PartError::BadHeader => "bad part header",
            PartError::NoContentLength => "part without Content-Length",
            PartError::TooLarge => "part too large",
        })
    }
}

/// Reads parts back from the bytes of an HTTP/1.0 subscription (after the response head), as
/// `msgbus sub` does. Resumable: push bytes as they come, then take parts until None.
pub struct PartDecoder {
    buf: Vec<u8>,
    opened: bool,
    max_part: usize,
}

impl PartDecoder {
    pub fn new(max_part: usize) -> PartDecoder {
        PartDecoder {
            buf: Vec::new(),
            opened: false,
            max_part,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn next_part(&mut self) -> Result<Option<Part>, PartError> {
        if !self.opened {
            let seen = self.buf.len().min(OPENING.len());
            if self.buf[..seen] != OPENING[..seen] {
                return Err(PartError::NoBoundary);
            }
            if seen < OPENING.len() {
                return Ok(None);
            }
            self.buf.drain(..OPENING.len());
            self.opened = true;
        }
        let Some(head_len) = memchr::memmem::find(&self.buf, b"\n\n") else {
            return if self.buf.len() > self.max_part {
                Err(PartError::TooLarge)
            } else {
                Ok(None)
            };
        };
        let head = std::str::from_utf8(&self.buf[..head_len]).map_err(|_| PartError::BadHeader)?;
        let mut headers = Vec::new();
        for line in head.split('\n') {
            let (name, value) = line.split_once(':').ok_or(PartError::BadHeader)?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let part = Part {
            headers,
            body: Vec::new(),
        };
        let length: usize = part
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .ok_or(PartError::NoContentLength)?;
        if length > self.max_part {
            return Err(PartError::TooLarge);
        }
        let body_start = head_len + 2;
        let end = body_start + length + OPENING.len();
        if self.buf.len() < end {
            return Ok(None);
        }
        if &self.buf[body_start + length..end] != OPENING {
            return Err(PartError::NoBoundary);
        }
        let body = self.buf[body_start..body_start + length].to_vec();
        self.buf.drain(..end);
        Ok(Some(Part { body, ..part }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(channel: &str, sender: Option<&str>, ty: &str, body: &str) -> Message {
        Message::new(
            7,
            channel.into(),
            ty.into(),
            sender.map(Into::into),
            body.as_bytes().into(),
        )
    }

    #[test]
    fn parts_as_the_original_wrote_them() {
        let hello = msg("foo", Some("dugsong"), "text/plain", "hello\n");
        let anon = msg("a b", None, "image/jpeg", "JPEG");
        let cases: &[(&Message, bool, bool, &str)] = &[
            (&hello, false, false, "From: dugsong\nContent-Type: text/plain\nContent-Length: 6\n\nhello\n--00MsgBus00\n"),
            (&hello, true, false, "From: dugsong\nContent-Location: /msgbus/foo\nContent-Type: text/plain\nContent-Length: 6\n\nhello\n--00MsgBus00\n"),
            (&hello, false, true, "3b\r\nFrom: dugsong\nContent-Type: text/plain\n\nhello\n--00MsgBus00\n\r\n"),
            (&anon, true, true, "4b\r\nContent-Location: /msgbus/a%20b\nContent-Type: image/jpeg\n\nJPEG--00MsgBus00\n\r\n"),
        ];
        for (m, located, chunked, want) in cases {
            let got = encode_part(m, *located, *chunked);
            assert_eq!(
                String::from_utf8(got).unwrap(),
                *want,
                "located={located} chunked={chunked}"
            );
        }
    }

    #[test]
    fn a_dropped_notice_becomes_the_next_parts_header() {
        let m = msg("foo", None, "text/plain", "hi");
        let cases: &[(bool, &str)] = &[
            (false, "Msgbus-Dropped: 12\nContent-Type: text/plain\nContent-Length: 2\n\nhi--00MsgBus00\n"),
            (true, "13\r\nMsgbus-Dropped: 12\n\r\n29\r\nContent-Type: text/plain\n\nhi--00MsgBus00\n\r\n"),
        ];
        for (chunked, want) in cases {
            let got = [
                encode_missed_notice(12, *chunked),
                encode_part(&m, false, *chunked),
            ]
            .concat();
            assert_eq!(String::from_utf8(got).unwrap(), *want, "chunked={chunked}");
        }
        let mut decoder = PartDecoder::new(1 << 10);
        decoder.push(OPENING);
        decoder.push(cases[0].1.as_bytes());
        let part = decoder.next_part().unwrap().unwrap();
        assert_eq!(part.header("msgbus-dropped"), Some("12"));
    }

    #[test]
    fn parts_read_back_whole_or_byte_by_byte() {
        let msgs = [
            msg("foo", Some("dugsong"), "text/plain", "hello\n"),
            msg(
                "a/b",
                None,
                "application/octet-stream",
                "--00MsgBus00\n\n\n",
            ),
            msg("x", None, "text/plain", ""),
        ];
        let mut stream = OPENING.to_vec();
        for m in &msgs {
            stream.extend(encode_part(m, true, false));
        }
        for step in [1, 7, stream.len()] {
            let mut decoder = PartDecoder::new(1 << 20);
            let mut parts = Vec::new();
            for piece in stream.chunks(step) {
                decoder.push(piece);
                while let Some(part) = decoder.next_part().unwrap() {
                    parts.push(part);
                }
            }
            assert_eq!(parts.len(), msgs.len(), "step {step}");
            for (part, m) in parts.iter().zip(&msgs) {
                assert_eq!(part.body, &*m.body);
                assert_eq!(part.header("content-type"), Some(&*m.content_type));
                assert_eq!(part.header("from"), m.sender.as_deref());
            }
        }
    }

    #[test]
    fn part_errors() {
        let cases: &[(&[u8], PartError)] = &[
            (b"--XXX\n", PartError::NoBoundary),
            (b"--00MsgBus00\nno colon\n\n", PartError::BadHeader),
            (
                b"--00MsgBus00\nContent-Type: a\n\n",
                PartError::NoContentLength,
            ),
            (
                b"--00MsgBus00\nContent-Length: 1\n\nx--00MsgBusXX\n",
                PartError::NoBoundary,
            ),
            (b"--00MsgBus00\nContent-Length: 99\n\n", PartError::TooLarge),
        ];
        for (input, want) in cases {
            let mut decoder = PartDecoder::new(10);
            decoder.push(input);
            assert_eq!(
                decoder.next_part(),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn stream_heads() {
        let cases: &[(u8, bool, &str)] = &[
            (1, false, "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: multipart/x-mixed-replace;boundary=00MsgBus00\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\nd\r\n--00MsgBus00\n\r\n"),
            (0, false, "HTTP/1.0 200 OK\r\nServer: msgbus\r\nContent-Type: multipart/x-mixed-replace;boundary=00MsgBus00\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n--00MsgBus00\n"),
            (1, true, "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: multipart/x-mixed-replace;boundary=00MsgBus00\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ];
        for (minor, head_only, want) in cases {
            let got = String::from_utf8(encode_stream_head(*minor, *head_only, &[])).unwrap();
            assert_eq!(got, *want);
        }
    }
}
