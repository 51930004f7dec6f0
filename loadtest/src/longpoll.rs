//! Long-poll subscribers: the request that resumes from the last answer, and where the next one
//! resumes, for msgbus (`?transport=longpoll&since=CURSOR`, the cursor from the JSON answer) and
//! Nchan (`If-Modified-Since` / `If-None-Match` from the answer's `Last-Modified` / `Etag`).
//! No sockets.

use crate::config::Flavor;
use crate::http::Head;

/// Where the next poll resumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The first poll: msgbus from `since=0` (everything after the start, so a message published
    /// before the server has seen this poll is still answered); Nchan with no condition.
    Start,
    /// msgbus: the answer's `"cursor"`.
    Id(u64),
    /// Nchan: the answer's `Last-Modified` and `Etag`.
    Tag { last_modified: String, etag: String },
}

/// The request of one poll on `channel`.
pub fn request(flavor: Flavor, channel: &str, host: &str, cursor: &Cursor) -> Vec<u8> {
    let line = match flavor {
        Flavor::Msgbus => {
            let since = match cursor {
                Cursor::Id(id) => *id,
                Cursor::Start | Cursor::Tag { .. } => 0,
            };
            format!("GET /msgbus/{channel}?transport=longpoll&since={since} HTTP/1.1\r\n")
        }
        Flavor::Nchan => format!("GET /sub/{channel} HTTP/1.1\r\n"),
    };
    let mut out = format!("{line}Host: {host}\r\n");
    if let (
        Flavor::Nchan,
        Cursor::Tag {
            last_modified,
            etag,
        },
    ) = (flavor, cursor)
    {
        out.push_str(&format!(
            "If-Modified-Since: {last_modified}\r\nIf-None-Match: {etag}\r\n"
        ));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// What a poll's answer means for the next poll.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Poll again from here (the body's markers are deliveries).
    From(Cursor),
    /// Nothing new (a timeout, 304): poll again from the same place.
    Same,
    /// The server refused or ended the subscription (e.g. 410 when the channel is deleted).
    Stop(u16),
}

/// Reads where the next poll resumes from one whole answer (`head`, then `body`).
pub fn next(flavor: Flavor, head: &Head, body: &[u8]) -> Next {
    match head.status {
        200 => {}
        304 | 408 => return Next::Same,
        other => return Next::Stop(other),
    }
    match flavor {
        Flavor::Msgbus => match msgbus_cursor(body) {
            Some(id) => Next::From(Cursor::Id(id)),
            None => Next::Stop(head.status),
        },
        Flavor::Nchan => match (&head.last_modified, &head.etag) {
            (Some(lm), Some(etag)) => Next::From(Cursor::Tag {
                last_modified: lm.clone(),
                etag: etag.clone(),
            }),
            _ => Next::Same,
        },
    }
}

/// The `"cursor":N` of a msgbus answer (`{"messages":[...],"cursor":N[,"missed":{...}]}`),
/// looked for from the end: a message's data is a JSON string, in which a `"` is escaped, so the
/// last match is the answer's own.
pub fn msgbus_cursor(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"cursor\":";
    let at = body.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let digits = body[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{parse_whole, Parsed};

    #[test]
    fn cursors() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"{\"messages\":[],\"cursor\":17}\n", Some(17)),
            (
                b"{\"messages\":[{\"id\":5,\"data\":\"@@m0,1;xx\"}],\"cursor\":5,\"missed\":{\"after\":1,\"oldest\":3}}\n",
                Some(5),
            ),
            (
                b"{\"messages\":[{\"data\":\"\\\"cursor\\\":9\"}],\"cursor\":1795379691393991}",
                Some(1795379691393991),
            ),
            (b"{\"messages\":[],\"cursor\":}", None),
            (b"{\"messages\":[]}", None),
            (b"{\"cursor\":123456789012345678901}", None),
            (b"", None),
        ];
        for (body, want) in cases {
            assert_eq!(
                msgbus_cursor(body),
                *want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn requests() {
        let tag = Cursor::Tag {
            last_modified: "Thu, 01 Jan 2026 00:00:00 GMT".into(),
            etag: "0".into(),
        };
        let cases: &[(Flavor, &Cursor, &str)] = &[
            (
                Flavor::Msgbus,
                &Cursor::Start,
                "GET /msgbus/c?transport=longpoll&since=0 HTTP/1.1\r\nHost: h:1\r\n\r\n",
            ),
            (
                Flavor::Msgbus,
                &Cursor::Id(42),
                "GET /msgbus/c?transport=longpoll&since=42 HTTP/1.1\r\nHost: h:1\r\n\r\n",
            ),
            (
                Flavor::Nchan,
                &Cursor::Start,
                "GET /sub/c HTTP/1.1\r\nHost: h:1\r\n\r\n",
            ),
            (
                Flavor::Nchan,
                &tag,
                "GET /sub/c HTTP/1.1\r\nHost: h:1\r\nIf-Modified-Since: Thu, 01 Jan 2026 00:00:00 GMT\r\nIf-None-Match: 0\r\n\r\n",
            ),
        ];
        for (flavor, cursor, want) in cases {
            let got = request(*flavor, "c", "h:1", cursor);
            assert_eq!(
                String::from_utf8(got).unwrap(),
                *want,
                "{flavor:?} {cursor:?}"
            );
        }
    }

    /// Whole answers, as each server sends them, and what the next poll resumes from.
    #[test]
    fn answers() {
        let msgbus = b"HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n{\"messages\":[],\"cursor\":170}\nHTTP";
        let nchan = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nLast-Modified: Thu, 01 Jan 2026 00:00:00 GMT\r\nEtag: 3\r\nContent-Length: 4\r\n\r\n@@m1";
        let cases: &[(Flavor, &[u8], usize, Next)] = &[
            (
                Flavor::Msgbus,
                msgbus,
                msgbus.len() - 4,
                Next::From(Cursor::Id(170)),
            ),
            (
                Flavor::Nchan,
                nchan,
                nchan.len(),
                Next::From(Cursor::Tag {
                    last_modified: "Thu, 01 Jan 2026 00:00:00 GMT".into(),
                    etag: "3".into(),
                }),
            ),
            (
                Flavor::Msgbus,
                b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n",
                40,
                Next::Stop(410),
            ),
            (
                Flavor::Nchan,
                b"HTTP/1.1 304 Not Modified\r\n\r\n",
                29,
                Next::Same,
            ),
            (
                Flavor::Msgbus,
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
                40,
                Next::Stop(200),
            ),
        ];
        for (flavor, buf, want_len, want) in cases {
            let Parsed::Complete((head, len)) = parse_whole(buf) else {
                panic!("incomplete: {}", String::from_utf8_lossy(buf));
            };
            assert_eq!(len, *want_len, "{}", String::from_utf8_lossy(buf));
            assert_eq!(next(*flavor, &head, &buf[head.len..len]), *want);
        }
        assert_eq!(parse_whole(&msgbus[..msgbus.len() - 10]), Parsed::Partial);
    }
}
