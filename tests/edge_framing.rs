//! Request framing a proxy in front could read differently (a bare LF in chunked framing,
//! Transfer-Encoding on HTTP/1.0, two Host headers) is answered 400 with a one-line reason and
//! the connection closed; and WebSocket frames that arrive with the upgrade request are handled
//! at once.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use msgbus::transport::websocket::{accept_key, encode_client_frame, Opcode};

fn bad_request(reason: &str) -> String {
    format!(
        "HTTP/1.1 400 Bad Request\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}\n",
        reason.len() + 1
    )
}

#[test]
fn smuggling_prone_framing_is_refused_and_closed() {
    let server = Server::start(&[]);
    let chunked = "POST /msgbus/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let bare = "bad chunked body: bare LF or CR in chunked framing";
    let cases: &[(String, String)] = &[
        // A bare LF ending the chunk-size line.
        (format!("{chunked}5\nhello\r\n0\r\n\r\n"), bad_request(bare)),
        // A bare LF after the chunk data.
        (format!("{chunked}5\r\nhello\n0\r\n\r\n"), bad_request(bare)),
        // A bare LF ending the last chunk or the trailers.
        (format!("{chunked}5\r\nhello\r\n0\n\r\n"), bad_request(bare)),
        (format!("{chunked}5\r\nhello\r\n0\r\n\n"), bad_request(bare)),
        // A CR inside a chunk extension.
        (format!("{chunked}5;a\rb\r\nhello\r\n0\r\n\r\n"), bad_request(bare)),
        (
            "POST /msgbus/c HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".into(),
            bad_request("malformed request: Transfer-Encoding on HTTP/1.0"),
        ),
        (
            "POST /msgbus/c HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello".into(),
            bad_request("malformed request: Transfer-Encoding on HTTP/1.0"),
        ),
        (
            "GET /status.json HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
            bad_request("malformed request: duplicate Host header"),
        ),
        (
            "GET /status.json HTTP/1.0\r\nHost: a\r\nHOST: a\r\n\r\n".into(),
            bad_request("malformed request: duplicate Host header"),
        ),
    ];
    for (request, want) in cases {
        // exchange reads until the server closes: a kept-alive connection would hang here.
        assert_eq!(&server.exchange(request.as_bytes()), want, "{request:?}");
    }
    // Nothing was published by any of them.
    assert_eq!(server.counter("published"), 0);
    // Proper framing still works.
    let good = format!("{chunked}5\r\nhello\r\n0\r\n\r\n");
    let answer = server.exchange(
        good.replace("\r\n\r\n5", "\r\nConnection: close\r\n\r\n5")
            .as_bytes(),
    );
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
}

#[test]
fn websocket_frames_sent_with_the_upgrade_are_handled_at_once() {
    let server = Server::start(&[]);
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let handshake = format!("GET /msgbus/ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n");
    let ping = encode_client_frame(Opcode::Ping, true, b"now", [1, 2, 3, 4]);
    let mut stream = server.connect();
    // Long enough for any scheduler, far shorter than the harness's 10 s.
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    // One write: the frame is in the same segment as the request head.
    stream
        .write_all(&[handshake.as_bytes(), &ping].concat())
        .unwrap();
    let switched = format!(
        "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    assert_eq!(read_same_len(&mut stream, &switched), switched);
    // The pong answers the ping without the client sending anything more.
    assert_eq!(read_exact(&mut stream, 5), [0x8A, 3, b'n', b'o', b'w']);
}
