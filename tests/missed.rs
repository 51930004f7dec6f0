//! The README's promise that a client resuming past what is kept is told so "in one shape
//! everywhere": every transport's response head carries `Msgbus-Missed: after=ID, oldest=ID`.

mod common;

use std::io::Write;

use common::*;

/// A channel whose history (2) no longer holds the message after `seen`; returns
/// (server, seen, oldest kept).
fn rolled_over() -> (Server, u64, u64) {
    let server = Server::start(&["--history", "2"]);
    let first = server.publish_id("m", b"1");
    let second = server.publish_id("m", b"2");
    server.publish_id("m", b"3");
    (server, first - 1, second)
}

/// The response head (up to the blank line) for `request`.
fn head_of(server: &Server, request: &str) -> String {
    let mut stream = server.connect();
    stream.write_all(request.as_bytes()).unwrap();
    let got = String::from_utf8_lossy(&read_until(&mut stream, b"\r\n\r\n")).into_owned();
    got[..got.find("\r\n\r\n").unwrap() + 4].to_string()
}

fn assert_missed(transport: &str, head: &str, seen: u64, oldest: u64) {
    let line = format!("\r\nMsgbus-Missed: after={seen}, oldest={oldest}\r\n");
    assert!(head.contains(&line), "{transport}: no {line:?} in {head}");
}

#[test]
fn multipart_heads_carry_msgbus_missed() {
    let (server, seen, oldest) = rolled_over();
    for version in ["1.0", "1.1"] {
        let head = head_of(
            &server,
            &format!("GET /msgbus/m?since={seen} HTTP/{version}\r\nHost: t\r\n\r\n"),
        );
        assert!(head.contains("multipart/x-mixed-replace"), "{head}");
        assert_missed(
            &format!("multipart over HTTP/{version}"),
            &head,
            seen,
            oldest,
        );
    }
}

#[test]
fn sse_heads_carry_msgbus_missed() {
    let (server, seen, oldest) = rolled_over();
    let head = head_of(
        &server,
        &format!("GET /msgbus/m HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nLast-Event-ID: {seen}\r\n\r\n"),
    );
    assert_missed("sse", &head, seen, oldest);
}

#[test]
fn long_poll_heads_carry_msgbus_missed() {
    let (server, seen, oldest) = rolled_over();
    let head = head_of(
        &server,
        &format!("GET /msgbus/m?transport=longpoll&since={seen} HTTP/1.1\r\nHost: t\r\n\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_missed("long-poll", &head, seen, oldest);
}

#[test]
fn websocket_handshakes_carry_msgbus_missed() {
    let (server, seen, oldest) = rolled_over();
    let head = head_of(
        &server,
        &format!("GET /msgbus/m?since={seen} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_missed("websocket", &head, seen, oldest);
}
