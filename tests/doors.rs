//! One message, published through any door, reaches subscribers at every other door.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;
use msgbus::transport::websocket::{encode_client_frame, Opcode};

const CHANNEL: &str = "crossroads";

/// Publishes a body through one door.
type Publisher = dyn Fn(&Server, &str);

/// A subscriber at every door, each waiting for the next message on the channel.
fn receivers(server: &Server, esb_socket: &str) -> Vec<(&'static str, TcpStream)> {
    let before = server.counter("subscribers");
    let native = subscribe(
        server,
        &format!("GET /msgbus/{CHANNEL} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"),
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n",
    );
    let esb = subscribe(
        server,
        &format!("GET /eventsource?socket={esb_socket} HTTP/1.1\r\nHost: t\r\n\r\n"),
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\nevent:ping\ndata:{}\n\n",
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
        |n| n >= before + 5,
        "receivers never all subscribed",
    );
    vec![
        ("native", native),
        ("eventsource-broker", esb),
        ("martd", martd),
        ("simple-comet", comet),
        ("lhttp", lhttp),
    ]
}

#[test]
fn a_message_through_any_door_reaches_every_other() {
    let users = std::env::temp_dir().join(format!("msgbus-doors-users-{}", std::process::id()));
    std::fs::write(&users, "k1:s3cret\n").unwrap();
    let users_arg = users.display().to_string();
    let server = Server::start(&[
        "--esb-users",
        &users_arg,
        "--martd",
        "--simple-comet",
        "--lhttp",
    ]);
    server.post_form("/channels.json", &format!("channel_id={CHANNEL}"));
    let socket_answer = server.post_form(
        "/socket",
        &format!("{}&channel={CHANNEL}", esb_credentials("k1", "s3cret")),
    );
    let esb_socket = socket_answer
        .split("\"socket\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let publishers: [(&str, Box<Publisher>); 5] = [
        (
            "native",
            Box::new(|s, body| {
                s.publish(CHANNEL, "text/plain", body.as_bytes());
            }),
        ),
        (
            "eventsource-broker",
            Box::new({
                let socket = esb_socket.clone();
                move |s, body| {
                    s.post_form(&format!("/socket/{socket}"), &format!("data={body}"));
                }
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
        let mut at = receivers(&server, &esb_socket);
        publish(&server, &body);
        for (receiver, stream) in at.iter_mut() {
            let got = String::from_utf8_lossy(&read_until(stream, body.as_bytes())).into_owned();
            assert!(got.contains(&body), "{door} -> {receiver}: {got}");
        }
    }
    let _ = std::fs::remove_file(users);
}
