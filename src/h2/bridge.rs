//! Between an HTTP/2 stream and the HTTP/1 session that answers it: a stream's request becomes
//! the HTTP/1.0 request a session reads (one request, no keep-alive, so the end of its answer
//! is the end of the stream, and streaming bodies come unchunked: the session's shared frames
//! are the DATA payloads as they are); the session's response head becomes the fields of a
//! HEADERS frame. An extended CONNECT for WebSocket (RFC 8441) becomes the HTTP/1.1 upgrade
//! request the session knows, and its 101 becomes 200; the stream then carries the WebSocket
//! frames both ways, as the socket would. No I/O.

use super::conn::Request;

/// Response fields HTTP/2 forbids (RFC 9113 section 8.2.2): dropped from a session's head.
const CONNECTION_SPECIFIC: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Stands in for the `Sec-WebSocket-Key` an HTTP/2 client does not send (RFC 8441 section 5):
/// any valid key will do, since the accept value made from it is not sent back.
const STAND_IN_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Whether a request is a WebSocket over an HTTP/2 stream (extended CONNECT).
pub fn is_websocket(req: &Request) -> bool {
    req.method == b"CONNECT" && req.protocol.as_deref() == Some(&b"websocket"[..])
}

/// A request's body as the session is handed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// All of it, here.
    Whole(&'a [u8]),
    /// This many bytes, to come as the stream's DATA arrives.
    Follows(u64),
}

/// The request as HTTP/1.0 bytes for a session, with its body when whole. `:authority` becomes `Host`;
/// cookie fields, which HTTP/2 lets a client split, are joined again (RFC 9113 section
/// 8.2.3). Field names and values were checked by the connection (no CR, LF, NUL); the path,
/// which becomes part of the request line, is checked here.
pub fn request_bytes(req: &Request, body: Body) -> Result<Vec<u8>, &'static str> {
    let (length, body) = match body {
        Body::Whole(bytes) => (bytes.len() as u64, bytes),
        Body::Follows(length) => (length, &b""[..]),
    };
    if !req.path.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return Err("path with a space or control byte");
    }
    if !req.method.iter().all(|&b| b.is_ascii_alphabetic()) || req.method.is_empty() {
        return Err("method not letters");
    }
    let websocket = is_websocket(req);
    if req.method == b"CONNECT" && !websocket {
        return Err("CONNECT is only for a WebSocket (:protocol websocket)");
    }
    let mut out = Vec::with_capacity(128 + body.len());
    if websocket {
        out.extend_from_slice(b"GET ");
        out.extend_from_slice(&req.path);
        out.extend_from_slice(
            b" HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ",
        );
        out.extend_from_slice(STAND_IN_KEY.as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(&req.method);
        out.push(b' ');
        out.extend_from_slice(&req.path);
        out.extend_from_slice(b" HTTP/1.0\r\n");
    }
    let has_host = req.fields.iter().any(|f| f.name == b"host");
    if let (Some(authority), false) = (&req.authority, has_host) {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(authority);
        out.extend_from_slice(b"\r\n");
    }
    let mut cookies: Vec<&[u8]> = Vec::new();
    for field in &req.fields {
        match &field.name[..] {
            b"cookie" => cookies.push(&field.value),
            // The length is the body's, given below; the key is ours.
            b"content-length" | b"sec-websocket-key" => {}
            name => {
                out.extend_from_slice(name);
                out.extend_from_slice(b": ");
                out.extend_from_slice(&field.value);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if !cookies.is_empty() {
        out.extend_from_slice(b"cookie: ");
        out.extend_from_slice(&cookies.join(&b"; "[..]));
        out.extend_from_slice(b"\r\n");
    }
    if !websocket && (length > 0 || !req.end_stream || req.content_length.is_some()) {
        out.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    Ok(out)
}

/// A session's response head as HTTP/2 fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Lowercase names, connection-specific ones dropped.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads a response head from the start of `bytes`: the head and its length, None while it is
/// not whole.
pub fn parse_response_head(bytes: &[u8]) -> Result<Option<(ResponseHead, usize)>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("the session's response head does not parse"),
    };
    let status = response.code.ok_or("no status")?;
    // A WebSocket accepted: over HTTP/2 that is 200, without the accept value.
    let upgraded = status == 101;
    let status = if upgraded { 200 } else { status };
    let fields = response
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value))
        .filter(|(name, _)| !CONNECTION_SPECIFIC.contains(&name.as_str()))
        .filter(|(name, _)| !(upgraded && name == "sec-websocket-accept"))
        .map(|(name, value)| (name.into_bytes(), value.to_vec()))
        .collect();
    Ok(Some((ResponseHead { status, fields }, len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::hpack::Field;

    fn request(method: &str, path: &str, fields: &[(&str, &str)], end_stream: bool) -> Request {
        Request {
            stream: 1,
            method: method.into(),
            scheme: b"https".to_vec(),
            authority: Some(b"example.org".to_vec()),
            path: path.into(),
            protocol: None,
            fields: fields
                .iter()
                .map(|(n, v)| Field {
                    name: n.as_bytes().to_vec(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
            content_length: None,
            end_stream,
        }
    }

    #[test]
    fn requests_become_http_1_0() {
        for (req, body, want) in [
            (
                request("GET", "/msgbus/a?since=3", &[("accept", "text/event-stream")], true),
                &b""[..],
                "GET /msgbus/a?since=3 HTTP/1.0\r\nHost: example.org\r\naccept: text/event-stream\r\n\r\n",
            ),
            (
                request("POST", "/msgbus/a", &[("content-type", "text/plain"), ("content-length", "2")], false),
                &b"hi"[..],
                "POST /msgbus/a HTTP/1.0\r\nHost: example.org\r\ncontent-type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
            ),
            (
                request("GET", "/", &[("cookie", "a=1"), ("host", "h"), ("cookie", "b=2")], true),
                &b""[..],
                "GET / HTTP/1.0\r\nhost: h\r\ncookie: a=1; b=2\r\n\r\n",
            ),
        ] {
            assert_eq!(
                String::from_utf8(request_bytes(&req, Body::Whole(body)).unwrap()).unwrap(),
                want
            );
        }
        let mut ws = request(
            "CONNECT",
            "/msgbus/a",
            &[("sec-websocket-version", "13"), ("origin", "https://o")],
            false,
        );
        ws.protocol = Some(b"websocket".to_vec());
        assert_eq!(
            String::from_utf8(request_bytes(&ws, Body::Whole(b"")).unwrap()).unwrap(),
            "GET /msgbus/a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nHost: example.org\r\nsec-websocket-version: 13\r\norigin: https://o\r\n\r\n"
        );
        // A body to follow: the head alone, with the length the client declared.
        let mut post = request("POST", "/msgbus/a", &[("content-length", "5")], false);
        post.content_length = Some(5);
        assert_eq!(
            String::from_utf8(request_bytes(&post, Body::Follows(5)).unwrap()).unwrap(),
            "POST /msgbus/a HTTP/1.0\r\nHost: example.org\r\nContent-Length: 5\r\n\r\n"
        );
        for (method, path, why) in [
            (
                "CONNECT",
                "/",
                "CONNECT is only for a WebSocket (:protocol websocket)",
            ),
            ("GET", "/a b", "path with a space or control byte"),
            ("GET", "/a\x7f", "path with a space or control byte"),
            ("G-T", "/", "method not letters"),
        ] {
            assert_eq!(
                request_bytes(&request(method, path, &[], true), Body::Whole(b"")),
                Err(why)
            );
        }
    }

    #[test]
    fn response_heads_lose_connection_fields() {
        let head = b"HTTP/1.0 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\ndata";
        let (parsed, len) = parse_response_head(head).unwrap().unwrap();
        assert_eq!(&head[len..], b"data");
        assert_eq!(parsed.status, 200);
        assert_eq!(
            parsed.fields,
            [
                (b"server".to_vec(), b"msgbus".to_vec()),
                (b"content-type".to_vec(), b"text/event-stream".to_vec())
            ]
        );
        assert_eq!(parse_response_head(b"HTTP/1.0 200 OK\r\nServ"), Ok(None));
        let upgraded = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
        let (parsed, _) = parse_response_head(upgraded).unwrap().unwrap();
        assert_eq!(parsed.status, 200);
        assert_eq!(
            parsed.fields,
            [(b"sec-websocket-protocol".to_vec(), b"chat".to_vec())]
        );
        assert!(parse_response_head(b"garbage\r\n\r\n").is_err());
    }
}
