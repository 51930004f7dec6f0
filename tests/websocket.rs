//! WebSocket subscribers on `GET /msgbus/CHANNEL` with `Upgrade: websocket`: the handshake,
//! frames as the server sends them, publishing from the socket, ping/pong, the close
//! handshake, and every refusal with its code.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;
use msgbus::transport::websocket::{accept_key, encode_client_frame as client_frame, Opcode};

/// A masked client frame (fin, opcode number, payload, mask), as the tests write them.
fn encode_client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let opcode = match opcode {
        0 => Opcode::Continuation,
        1 => Opcode::Text,
        2 => Opcode::Binary,
        8 => Opcode::Close,
        9 => Opcode::Ping,
        10 => Opcode::Pong,
        _ => unreachable!("the tests write raw bytes for other opcodes"),
    };
    client_frame(opcode, fin, payload, mask)
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const MASK: [u8; 4] = [1, 2, 3, 4];

fn handshake(target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n")
}

fn switched() -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(KEY)
    )
}

fn open(server: &Server, target: &str) -> TcpStream {
    subscribe(server, &handshake(target, ""), &switched())
}

/// A server frame: FIN, opcode, short length, no mask.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    [&[0x80 | opcode, payload.len() as u8][..], payload].concat()
}

fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    frame(8, &[&code.to_be_bytes()[..], reason.as_bytes()].concat())
}

fn expect(stream: &mut TcpStream, want: &[u8]) {
    assert_eq!(read_exact(stream, want.len()), want);
}

#[test]
fn messages_arrive_as_text_or_binary_frames() {
    let server = Server::start(&[]);
    let mut raw = open(&server, "/msgbus/w");
    let mut json = open(&server, "/msgbus/w?format=json");
    server.publish("w", "text/plain", b"hello");
    expect(&mut raw, &frame(1, b"hello"));
    server.publish("w", "application/octet-stream", b"\x00\x01");
    expect(&mut raw, &frame(2, b"\x00\x01"));
    // A textual type with a body that is not UTF-8 goes as binary.
    server.publish("w", "text/plain", b"\xff");
    expect(&mut raw, &frame(2, b"\xff"));
    let header = read_exact(&mut json, 2);
    assert_eq!(header[0], 0x81);
    let text = String::from_utf8(read_exact(&mut json, usize::from(header[1]))).unwrap();
    assert!(
        text.ends_with(",\"channel\":\"w\",\"type\":\"text/plain\",\"data\":\"hello\"}"),
        "{text}"
    );
    // 256 bytes: a 16-bit length.
    let body = vec![b'a'; 256];
    server.publish("w", "text/plain", &body);
    expect(&mut raw, &[&[0x81, 126, 1, 0][..], &body].concat());
}

#[test]
fn a_client_publishes_pings_and_closes() {
    let server = Server::start(&[]);
    let mut ws = open(&server, "/msgbus/talk");
    let mut sse = subscribe(
        &server,
        "GET /msgbus/talk HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n",
    );
    // Fragmented, with a ping between the fragments.
    ws.write_all(&encode_client_frame(false, 1, b"from ", MASK))
        .unwrap();
    ws.write_all(&encode_client_frame(true, 9, b"are you there", MASK))
        .unwrap();
    ws.write_all(&encode_client_frame(true, 0, b"the socket", MASK))
        .unwrap();
    expect(&mut ws, &frame(10, b"are you there"));
    expect(&mut ws, &frame(1, b"from the socket"));
    let event = String::from_utf8(read_until(&mut sse, b"\n\n")).unwrap();
    assert!(event.ends_with("\ndata: from the socket\n\n"), "{event}");
    ws.write_all(&encode_client_frame(
        true,
        8,
        &[0x03, 0xe8, b'b', b'y', b'e'],
        MASK,
    ))
    .unwrap();
    expect(&mut ws, &close_frame(1000, ""));
    assert!(read_to_end(&mut ws).is_empty());
}

#[test]
fn refusals_have_their_codes() {
    let server = Server::start(&["--max-ws-message", "16"]);
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "/msgbus/e",
            vec![0x81, 0x02, b'h', b'i'],
            close_frame(1002, "client frame not masked"),
        ),
        (
            "/msgbus/e",
            encode_client_frame(true, 1, b"\xce\xba\xff", MASK),
            close_frame(1007, "text is not UTF-8"),
        ),
        (
            "/msgbus/e",
            encode_client_frame(true, 2, &[0; 17], MASK),
            close_frame(1009, "message too big"),
        ),
        (
            "/msgbus/e",
            vec![0x83, 0x80, 1, 2, 3, 4],
            close_frame(1002, "reserved opcode"),
        ),
        (
            "/msgbus/a,b",
            encode_client_frame(true, 1, b"x", MASK),
            close_frame(1008, "publishing needs a subscription to one channel"),
        ),
    ];
    for (target, input, want) in cases {
        let mut ws = open(&server, target);
        ws.write_all(&input).unwrap();
        expect(&mut ws, &want);
        assert!(read_to_end(&mut ws).is_empty(), "{target}");
    }
    // A channel key guards publishing from a socket too.
    server.post("/msgbus/locked?key=k", "", b"first");
    let mut ws = open(&server, "/msgbus/locked");
    ws.write_all(&encode_client_frame(true, 1, b"x", MASK))
        .unwrap();
    expect(&mut ws, &close_frame(1008, "wrong or missing channel key"));
    let mut ws = open(&server, "/msgbus/locked?key=k");
    ws.write_all(&encode_client_frame(true, 1, b"ok", MASK))
        .unwrap();
    expect(&mut ws, &frame(1, b"ok"));
}

#[test]
fn bad_handshakes_are_answered_in_http() {
    let server = Server::start(&["--allow-origin", "https://good.example"]);
    let no_version = handshake("/msgbus/h", "").replace("Sec-WebSocket-Version: 13\r\n", "");
    let mut stream = server.connect();
    stream.write_all(no_version.as_bytes()).unwrap();
    let got =
        String::from_utf8(read_until(&mut stream, b"missing Sec-WebSocket-Version\n")).unwrap();
    assert!(
        got.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{got}"
    );
    assert!(got.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{got}");
    let bad_key = handshake("/msgbus/h", "").replace(KEY, "c2hvcnQ=");
    let mut stream = server.connect();
    stream.write_all(bad_key.as_bytes()).unwrap();
    let got = String::from_utf8(read_until(&mut stream, b"in base64\n")).unwrap();
    assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
    assert!(
        got.ends_with("Sec-WebSocket-Key is not 16 bytes in base64\n"),
        "{got}"
    );
    let evil = handshake("/msgbus/h", "Origin: https://evil.example\r\n");
    let mut stream = server.connect();
    stream.write_all(evil.as_bytes()).unwrap();
    let got = String::from_utf8(read_until(&mut stream, b"allowed\n")).unwrap();
    assert!(got.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{got}");
    subscribe(
        &server,
        &handshake("/msgbus/h", "Origin: https://good.example\r\n"),
        &switched(),
    );
}

#[test]
fn resume_pings_delete_and_shutdown() {
    let server = Server::start(&["--history", "2", "--ping-interval", "0.2"]);
    let first = server.publish_id("r", b"1");
    let second = server.publish_id("r", b"2");
    let third = server.publish_id("r", b"3");
    // The client saw the message before `first`: `first` is no longer kept.
    let seen = first - 1;
    // The 101 says it too, as every transport's head does.
    let mut ws = subscribe(
        &server,
        &handshake(&format!("/msgbus/r?since={seen}"), ""),
        &switched().replace(
            "\r\n\r\n",
            &format!("\r\nMsgbus-Missed: after={seen}, oldest={second}\r\n\r\n"),
        ),
    );
    let notice = format!("{{\"missed\":{{\"after\":{seen},\"oldest\":{second}}}}}");
    expect(&mut ws, &frame(1, notice.as_bytes()));
    expect(&mut ws, &frame(1, b"2"));
    expect(&mut ws, &frame(1, b"3"));
    assert!(third > second);
    expect(&mut ws, &frame(9, b""));
    let deleted =
        server.exchange(b"DELETE /msgbus/r HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(deleted.starts_with("HTTP/1.1 204"), "{deleted}");
    let rest = read_to_end(&mut ws);
    assert!(
        rest.ends_with(&close_frame(1000, "channel deleted")),
        "{rest:?}"
    );
    let mut other = open(&server, "/msgbus/s");
    server.terminate();
    let rest = read_to_end(&mut other);
    assert!(
        rest.ends_with(&close_frame(1001, "server shutting down")),
        "{rest:?}"
    );
}
