//! One message, published through any door, reaches subscribers at every other door. The
//! eventsource-broker door is not among them: its channels belong to an api key, as in the
//! original, so no other door can read or write them (see tests/door_esb_security.rs).

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;
use msgbus::transport::websocket::{encode_client_frame, Opcode};

const CHANNEL: &str = "crossroads";

/// Publishes a body through one door.
type Publisher = dyn Fn(&Server, &str);

/// A subscriber at every door, each waiting for the next message on the channel.
fn receivers(server: &Server) -> Vec<(&'static str, TcpStream)> {
    let before = server.counter("subscribers");
    let native = subscribe(
        server,
        &format!("GET /msgbus/{CHANNEL} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"),
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n",
    );
    let mut martd = server.connect();
    martd
        .write_all(
            format!(
                "GET /sub?cid=x&{CHANNEL}={} HTTP/1.1\r\nHost: t\r\n\r\n",
                u64::MAX / 2
            )
            .as_bytes(),
        )
        .unwrap();
    let mut comet = server.connect();
    comet
        .write_all(
            format!(
                "GET /channels/{CHANNEL}.json?since={} HTTP/1.1\r\nHost: t\r\n\r\n",
                i64::MAX
            )
            .as_bytes(),
        )
        .unwrap();
    let mut lhttp = subscribe(
        server,
        "GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    );
    let subscribe_frame = format!("LHTTP/1.0 join\r\nsubscribe:{CHANNEL}\r\n\r\n");
    lhttp
        .write_all(&encode_client_frame(
            Opcode::Text,
            true,
            subscribe_frame.as_bytes(),
            [1, 2, 3, 4],
        ))
        .unwrap();
    server.wait_for_counter(
        "subscribers",
        |n| n >= before + 4,
        "receivers never all subscribed",
    );
    vec![
        ("native", native),
        ("martd", martd),
        ("simple-comet", comet),
        ("lhttp", lhttp),
    ]
}

#[test]
fn a_message_through_any_door_reaches_every_other() {
    let server = Server::start(&["--martd", "--simple-comet", "--lhttp"]);
    server.post_form("/channels.json", &format!("channel_id={CHANNEL}"));
    let publishers: [(&str, Box<Publisher>); 4] = [
        (
            "native",
            Box::new(|s, body| {
                s.publish(CHANNEL, "text/plain", body.as_bytes());
            }),
        ),
        (
            "martd",
            Box::new(|s, body| {
                s.post(&format!("/pub?channel={CHANNEL}"), "", body.as_bytes());
            }),
        ),
        (
            "simple-comet",
            Box::new(|s, body| {
                s.post_form(
                    &format!("/channels/{CHANNEL}.json"),
                    &format!("content={body}"),
                );
            }),
        ),
        (
            "lhttp",
            Box::new(|s, body| {
                s.post(
                    "/publish",
                    "",
                    format!("LHTTP/1.0 say\r\npublish:{CHANNEL}\r\n\r\n{body}").as_bytes(),
                );
            }),
        ),
    ];
    for (door, publish) in &publishers {
        let body = format!("sent-through-{door}");
        let mut at = receivers(&server);
        publish(&server, &body);
        // The native SSE stream says the message's id; every door then has its exact format.
        let (_, native) = &mut at[0];
        let event = String::from_utf8(read_until(native, b"\n\n")).unwrap();
        let id: u64 = event
            .strip_prefix("id: ")
            .and_then(|rest| rest.split('\n').next())
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("{door} -> native: {event:?}"));
        assert_eq!(
            event,
            format!("id: {id}\ndata: {body}\n\n"),
            "{door} -> native"
        );
        for (receiver, stream) in at.iter_mut().skip(1) {
            let got = received(receiver, stream, door, &body, id);
            assert_eq!(
                got,
                expected(receiver, &got, door, &body, id),
                "{door} -> {receiver}"
            );
        }
    }
}

/// What one receiver got for the message: a whole event, answer or frame.
fn received(receiver: &str, stream: &mut TcpStream, door: &str, body: &str, id: u64) -> String {
    let want = expected(receiver, "", door, body, id);
    match receiver {
        // Its answer holds a time and a date: read to the end of its JSON.
        "simple-comet" => {
            undate(&String::from_utf8(read_until(stream, b"\"error_message\": \"\"}")).unwrap())
        }
        // The frame's two header bytes in hex, then its text.
        "lhttp" => {
            let head = read_exact(stream, 2);
            let text = read_exact(stream, usize::from(head[1] & 0x7f));
            format!(
                "{:02x} {:02x} {}",
                head[0],
                head[1],
                String::from_utf8_lossy(&text)
            )
        }
        _ => read_same_len(stream, &want),
    }
}

/// Each door's wire format for a message `body` with id `id` published through `door`;
/// `got` lends the parts that depend on the clock (Simple-Comet's `ts` and `Expires`, and the
/// cursor it reports).
fn expected(receiver: &str, got: &str, door: &str, body: &str, id: u64) -> String {
    let plain = if door == "native" {
        "text/plain"
    } else {
        "text/plain; charset=utf-8"
    };
    match receiver {
        "eventsource-broker" => format!("id:{id:024x}\ndata:{body}\n\n"),
        "martd" => {
            let json = format!(
                "{{\"channels\":{{\"{CHANNEL}\":{{\"etag\":\"{id}\",\"payload\":[\"{body}\"]}}}}}}"
            );
            format!("HTTP/1.1 200 OK\r\nServer: msgbus\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{json}", json.len())
        }
        "simple-comet" => {
            if got.is_empty() {
                return String::new();
            }
            let (ts, since) = (json_number(got, "ts"), json_number(got, "since"));
            assert!(since < id, "{got}");
            let json = format!("{{\"messages\": {{\"{CHANNEL}\": [{{\"id\": {id}, \"ts\": {ts}, \"content\": \"{body}\"}}]}}, \"since\": {since}, \"last_id\": {id}, \"return_code\": 1, \"error_message\": \"\"}}");
            format!("HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: application/json\r\nCache-Control: private, must-revalidate, proxy-revalidate, max-age=1, s-max-age=1, stale-while-revalidate=1, stale-if-error=86400\r\nExpires: {}\r\nContent-Length: {}\r\n\r\n{json}", header_value(got, "Expires"), json.len())
        }
        "lhttp" => {
            let text = if door == "lhttp" {
                format!("LHTTP/1.0 say\r\npublish:{CHANNEL}\r\n\r\n{body}")
            } else {
                format!(
                    "LHTTP/1.0 publish\r\npublish:{CHANNEL}\r\ncontent-type:{plain}\r\n\r\n{body}"
                )
            };
            // One unmasked, final text frame (0x81) with a one-byte length.
            format!("81 {:02x} {text}", text.len())
        }
        other => panic!("no format for {other}"),
    }
}
