//! The lhttp door: lhttp's text protocol over WebSocket and `POST /publish`, with messages
//! crossing to and from the native doors.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use msgbus::transport::websocket::{encode_client_frame, Opcode};

const SWITCHED: &str = "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

fn open(server: &Server, path: &str) -> TcpStream {
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    subscribe(server, &request, SWITCHED)
}

fn send(ws: &mut TcpStream, message: &str) {
    ws.write_all(&encode_client_frame(
        Opcode::Text,
        true,
        message.as_bytes(),
        [9, 8, 7, 6],
    ))
    .unwrap();
}

/// The next text frame's payload (the tests' frames are short).
fn receive(ws: &mut TcpStream) -> String {
    let head = read_exact(ws, 2);
    assert_eq!(head[0], 0x81, "a text frame");
    let len = match head[1] {
        126 => usize::from(u16::from_be_bytes(read_exact(ws, 2).try_into().unwrap())),
        n => usize::from(n),
    };
    String::from_utf8(read_exact(ws, len)).unwrap()
}

#[test]
fn lhttp_clients_meet_each_other_and_the_native_doors() {
    let server = Server::start(&["--lhttp"]);
    let mut alice = open(&server, "/");
    let mut bob = open(&server, "/echo");
    send(&mut alice, "LHTTP/1.0 chat\r\nsubscribe:room\r\n\r\n");
    // Bob's publish reaches Alice as lhttp re-serialized it, and a native subscriber as a body.
    let mut native = subscribe(
        &server,
        "GET /msgbus/room HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n",
    );
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while server.counter("subscribers") < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "alice never subscribed"
        );
    }
    send(
        &mut bob,
        "LHTTP/1.0 chat\r\npublish:room\r\ncontent-type:text/plain\r\n\r\nhello",
    );
    assert_eq!(
        receive(&mut alice),
        "LHTTP/1.0 chat\r\npublish:room\r\ncontent-type:text/plain\r\n\r\nhello"
    );
    let event = String::from_utf8(read_until(&mut native, b"\n\n")).unwrap();
    assert!(event.ends_with("\ndata: hello\n\n"), "{event}");
    // A native publish reaches Alice as an lhttp message.
    server.publish("room", "text/plain", b"native");
    assert_eq!(
        receive(&mut alice),
        "LHTTP/1.0 publish\r\npublish:room\r\ncontent-type:text/plain\r\n\r\nnative"
    );
    // POST /publish: the body verbatim to the channel's lhttp subscribers; 200, empty.
    let answer = server.post(
        "/publish",
        "",
        b"LHTTP/1.0 x\r\npublish:room\r\n\r\nvia http",
    );
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        receive(&mut alice),
        "LHTTP/1.0 x\r\npublish:room\r\n\r\nvia http"
    );
    // Refusals are said, not swallowed; unsubscribe ends delivery.
    send(&mut bob, "garbage");
    assert!(receive(&mut bob).starts_with("LHTTP/1.0 error\r\nerror:"));
    send(
        &mut bob,
        "LHTTP/1.0 go\r\nupstream:POST http://127.0.0.1:9/x\r\n\r\nbody",
    );
    assert_eq!(
        receive(&mut bob),
        "LHTTP/1.0 error\r\nerror:upstream forwarding is not enabled on this server\r\n\r\n"
    );
    send(&mut alice, "LHTTP/1.0 chat\r\nunsubscribe:room\r\n\r\n");
    while server.counter("subscribers") > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "alice never unsubscribed"
        );
    }
    server.publish("room", "text/plain", b"after");
    assert_silent(&mut alice, Duration::from_millis(100));
}
