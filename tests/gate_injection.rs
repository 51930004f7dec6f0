//! No client value becomes a forged line: CR, LF and NUL in any field that ends up in a
//! header-like line (Content-Type, From, event name, channel name, lhttp headers) are refused at
//! the gate, through every door. Each case is followed by a clean publish; an all-channels
//! multipart subscriber and an SSE subscriber must see the clean message as their very next
//! part, so nothing the refused request carried reached any stream.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;
use msgbus::auth::JwtKey;
use msgbus::transport::websocket::{encode_client_frame, Opcode};

const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

fn status_line(answer: &str) -> &str {
    answer.split("\r\n").next().unwrap_or("")
}

fn post(server: &Server, target: &str, extra: &str, body: &[u8]) -> String {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: t\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    server.exchange(&request)
}

struct Watchers {
    multipart: TcpStream,
    sse: TcpStream,
}

impl Watchers {
    fn open(server: &Server) -> Watchers {
        let multipart = subscribe(server, "GET /msgbus/ HTTP/1.1\r\nHost: t\r\n\r\n", HEAD_11);
        let mut sse = server.connect();
        sse.write_all(b"GET /msgbus/c HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
            .unwrap();
        read_until(&mut sse, b"retry: 2000\n\n");
        let deadline = std::time::Instant::now() + READ_TIMEOUT;
        while server.counter("subscribers") < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "watchers never subscribed"
            );
        }
        Watchers { multipart, sse }
    }

    /// After a refused attempt: a clean message is the next thing each stream carries.
    fn next_is_clean(&mut self, server: &Server, case: &str) {
        let body = format!("clean after {case}");
        let answer = post(
            server,
            "/msgbus/c",
            "Content-Type: text/plain\r\n",
            body.as_bytes(),
        );
        assert_eq!(status_line(&answer), "HTTP/1.1 204 No Content", "{case}");
        let part = format!(
            "Content-Location: /msgbus/c\nContent-Type: text/plain\n\n{body}--00MsgBus00\n"
        );
        assert_eq!(
            read_same_len(&mut self.multipart, &chunk(&part)),
            chunk(&part),
            "{case}"
        );
        let event = String::from_utf8(read_until(&mut self.sse, b"\n\n")).unwrap();
        assert!(
            event.starts_with("id: ") && event.ends_with(&format!("data: {body}\n\n")),
            "{case}: {event:?}"
        );
        assert_eq!(event.matches('\n').count(), 3, "{case}: {event:?}");
    }
}

#[test]
fn line_breaks_are_refused_in_every_door_and_field() {
    let server = Server::start(&["--martd", "--simple-comet", "--lhttp"]);
    let mut watchers = Watchers::open(&server);
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "lhttp content-type with a bare LF",
            post(
                &server,
                "/publish",
                "",
                b"LHTTP/1.0 publish\r\npublish:c\r\ncontent-type:text/plain\nFrom: evil\r\n\r\nx",
            ),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "lhttp header with a bare CR",
            post(
                &server,
                "/publish",
                "",
                b"LHTTP/1.0 publish\r\npublish:c\r\nx-note:a\rb\r\n\r\nx",
            ),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "native event name with CR",
            post(&server, "/msgbus/c?event=a%0Db", "", b"x"),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "native channel name with LF",
            post(&server, "/msgbus/c%0AFrom:%20x", "", b"x"),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "martd channel with LF",
            post(&server, "/pub?channel=c%0AFrom:%20x", "", b"x"),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "simple-comet channel with NUL",
            post(&server, "/channels.json", form, b"channel_id=c%00x"),
            "HTTP/1.1 400 Bad Request",
        ),
    ];
    for (case, answer, want) in &cases {
        assert_eq!(status_line(answer), *want, "{case}: {answer}");
        watchers.next_is_clean(&server, case);
    }
    // Over lhttp's WebSocket the refusal is an error frame, and nothing is published.
    let mut ws = server.connect();
    ws.write_all(format!("GET /chat HTTP/1.1\r\nHost: t\r\n{UPGRADE}\r\n").as_bytes())
        .unwrap();
    read_until(&mut ws, b"\r\n\r\n");
    let forged = b"LHTTP/1.0 publish\r\npublish:c\r\ncontent-type:a\nFrom: evil\r\n\r\nx";
    ws.write_all(&encode_client_frame(
        Opcode::Text,
        true,
        forged,
        [1, 2, 3, 4],
    ))
    .unwrap();
    let frame = read_until(&mut ws, b"NUL");
    assert!(String::from_utf8_lossy(&frame).contains("may not hold CR, LF or NUL"));
    watchers.next_is_clean(&server, "lhttp over WebSocket");
}

#[test]
fn a_token_subject_with_a_line_break_is_refused() {
    let server = Server::start(&["--jwt-secret", "k"]);
    let token = JwtKey::new(b"k").sign(r#"{"sub":"al\r\nFrom: admin","publish":["*"]}"#);
    let answer = post(&server, &format!("/msgbus/c?token={token}"), "", b"x");
    assert_eq!(status_line(&answer), "HTTP/1.1 400 Bad Request", "{answer}");
    assert!(
        answer.ends_with("the token's subject may not hold CR, LF or NUL\n"),
        "{answer}"
    );
    assert_eq!(server.counter("published"), 0);
}
