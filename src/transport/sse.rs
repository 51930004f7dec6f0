//! Server-sent events (the HTML EventSource wire format).
//!
//! The stream is close-delimited, on HTTP/1.0 and 1.1 alike: an event stream never ends on its
//! own, so there is nothing to gain from chunking it, and each event stays one shared frame for
//! every subscriber. A body is split into `data:` lines at CR, LF and CRLF, so the browser
//! joins it back with LF. The stream must be UTF-8: a body that is not has each invalid
//! sequence replaced by U+FFFD, which is what the browser's decoder would have done to the raw
//! bytes; publishers of binary data should use `format=json` (base64) or another transport.

use std::io::Write;

use crate::message::Message;
use crate::message::Missed;
use crate::transport::json;

pub const CONTENT_TYPE: &str = "text/event-stream";
/// How long the browser waits before reconnecting, sent once at the start.
pub const RETRY_MS: u32 = 2000;
/// A comment line: ignored by EventSource, keeps proxies from timing the stream out.
pub const PING: &[u8] = b": ping\n\n";
/// The event name of the missed-messages notice.
pub const MISSED_EVENT: &str = "msgbus-missed";
/// The event name telling subscribers their channel was deleted.
pub const DELETED_EVENT: &str = "msgbus-deleted";

/// The event for one message: `id:`, `event:` when the publisher named one, then its data.
pub fn encode_event(msg: &Message, as_json: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.body.len() + 64);
    let _ = writeln!(out, "id: {}", msg.id);
    if let Some(event) = &msg.event {
        let _ = writeln!(out, "event: {event}");
    }
    if as_json {
        push_data(&mut out, &json::encode_message(msg));
    } else {
        push_data(&mut out, String::from_utf8_lossy(&msg.body).as_bytes());
    }
    out.push(b'\n');
    out
}

/// What starts every stream: the reconnection hint and, for a client resuming too late, the
/// missed-messages notice.
pub fn encode_opening(missed: Option<Missed>) -> Vec<u8> {
    let mut out = format!("retry: {RETRY_MS}\n\n").into_bytes();
    if let Some(missed) = missed {
        out.extend_from_slice(&encode_notice(MISSED_EVENT, &json::encode_missed(missed)));
    }
    out
}

/// A named event with a one-line data field.
pub fn encode_notice(event: &str, data: &str) -> Vec<u8> {
    format!("event: {event}\ndata: {data}\n\n").into_bytes()
}

/// `data: ` lines for `text`, split at CR, LF or CRLF. An empty body is one empty data line,
/// so the event is still dispatched.
fn push_data(out: &mut Vec<u8>, text: &[u8]) {
    for line in split_lines(text) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

fn split_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr2(b'\r', b'\n', current) {
            Some(i) => {
                let skip = if current[i] == b'\r' && current.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = Some(&current[i + skip..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Whether `name` can follow `event:` (one short line): the gate's rule for every event name.
pub use crate::gate::valid_event_name;

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(event: Option<&str>, body: &[u8]) -> Message {
        let mut m = Message::new(42, "c".into(), "text/plain".into(), None, body.into());
        m.event = event.map(Into::into);
        m
    }

    #[test]
    fn events() {
        let cases: &[(Option<&str>, &[u8], &str)] = &[
            (None, b"hello", "id: 42\ndata: hello\n\n"),
            (Some("greet"), b"hi", "id: 42\nevent: greet\ndata: hi\n\n"),
            (None, b"", "id: 42\ndata: \n\n"),
            (
                None,
                b"a\nb\rc\r\nd",
                "id: 42\ndata: a\ndata: b\ndata: c\ndata: d\n\n",
            ),
            (None, b"end\n", "id: 42\ndata: end\ndata: \n\n"),
            (None, b"\r\n", "id: 42\ndata: \ndata: \n\n"),
            (
                None,
                b"bad \xff byte",
                "id: 42\ndata: bad \u{fffd} byte\n\n",
            ),
        ];
        for (event, body, want) in cases {
            let got = encode_event(&msg(*event, body), false);
            assert_eq!(String::from_utf8(got).unwrap(), *want, "{body:?}");
        }
    }

    #[test]
    fn json_envelope() {
        let got = String::from_utf8(encode_event(&msg(None, b"a\nb"), true)).unwrap();
        assert_eq!(
            got,
            "id: 42\ndata: {\"id\":42,\"channel\":\"c\",\"type\":\"text/plain\",\"data\":\"a\\nb\"}\n\n"
        );
    }

    #[test]
    fn opening_and_notices() {
        assert_eq!(encode_opening(None), b"retry: 2000\n\n");
        let missed = Missed {
            after: 1,
            oldest: 5,
        };
        assert_eq!(
            String::from_utf8(encode_opening(Some(missed))).unwrap(),
            "retry: 2000\n\nevent: msgbus-missed\ndata: {\"after\":1,\"oldest\":5}\n\n"
        );
    }

    #[test]
    fn event_names() {
        assert!(valid_event_name("update"));
        assert!(!valid_event_name(""));
        assert!(!valid_event_name("a\nb"));
    }
}
