//! Limits hold on every door: channels per connection, channels per publish, retained bytes
//! across channels, replay size; and long-poll's cursor semantics.

mod common;

use std::io::Write;

use common::*;

fn status_line(answer: &str) -> &str {
    answer.split("\r\n").next().unwrap_or("")
}

fn get(server: &Server, target: &str) -> String {
    server.exchange(
        format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn post(server: &Server, target: &str, body: &str) -> String {
    server.exchange(
        format!(
            "POST {target} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

#[test]
fn subscriptions_are_bounded_on_every_door() {
    let server = Server::start(&[
        "--max-subscriptions",
        "2",
        "--martd",
        "--simple-comet",
        "--lhttp",
    ]);
    let native = get(&server, "/msgbus/a,b,c");
    assert_eq!(status_line(&native), "HTTP/1.1 400 Bad Request", "{native}");
    let martd = get(&server, "/sub?cid=x&a=0&b=0&c=0");
    assert_eq!(status_line(&martd), "HTTP/1.1 400 Bad Request", "{martd}");
    assert!(
        martd.ends_with("too many channels in one subscription\n"),
        "{martd}"
    );
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    for channel in ["a", "b", "c"] {
        let created = server.exchange(
            format!("POST /channels.json HTTP/1.1\r\nHost: t\r\n{form}Content-Length: {}\r\nConnection: close\r\n\r\nchannel_id={channel}", 11 + channel.len()).as_bytes(),
        );
        assert_eq!(status_line(&created), "HTTP/1.1 200 OK", "{created}");
    }
    let comet = get(&server, "/channels/a|b|c.json?since=0");
    assert_eq!(status_line(&comet), "HTTP/1.1 400 Bad Request", "{comet}");
    // An lhttp socket subscribes one channel at a time: the third is refused in lhttp's shape.
    let mut ws = server.connect();
    ws.write_all(b"GET /chat HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    read_until(&mut ws, b"\r\n\r\n");
    let frame = msgbus::transport::websocket::encode_client_frame(
        msgbus::transport::websocket::Opcode::Text,
        true,
        b"LHTTP/1.0 chat\r\nsubscribe:a b c\r\n\r\n",
        [1, 2, 3, 4],
    );
    ws.write_all(&frame).unwrap();
    let refusal = read_until(&mut ws, b"subscription");
    assert!(
        String::from_utf8_lossy(&refusal).contains("too many channels"),
        "{refusal:?}"
    );
    assert_eq!(server.counter("subscribers"), 2);
}

#[test]
fn one_publish_names_a_bounded_number_of_channels() {
    let server = Server::start(&["--lhttp", "--max-publish-channels", "3"]);
    let four = "LHTTP/1.0 publish\r\npublish:a b c d\r\n\r\nbody";
    let answer = post(&server, "/publish", four);
    assert_eq!(status_line(&answer), "HTTP/1.1 400 Bad Request", "{answer}");
    assert!(
        answer.ends_with("too many channels in one publish\n"),
        "{answer}"
    );
    assert_eq!(server.counter("published"), 0);
    let three = "LHTTP/1.0 publish\r\npublish:a b c\r\n\r\nbody";
    assert_eq!(
        status_line(&post(&server, "/publish", three)),
        "HTTP/1.1 200 OK"
    );
    assert_eq!(server.counter("published"), 3);
}

#[test]
fn retained_bytes_are_bounded_across_channels_oldest_first() {
    // Each 744-byte body costs about 1,000 bytes with its type and the 256 of overhead: two
    // fit in 2,100, a third does not.
    let server = Server::start(&["--max-retained-bytes", "2100"]);
    let body = "x".repeat(744);
    let first = server.publish_id("a", body.as_bytes());
    let second = server.publish_id("b", body.as_bytes());
    let third = server.publish_id("a", body.as_bytes());
    let a = get(
        &server,
        &format!("/msgbus/a?transport=longpoll&since={}", first - 1),
    );
    assert!(
        a.contains(&format!("\"id\":{third}")) && !a.contains(&format!("\"id\":{first},")),
        "{a}"
    );
    assert!(
        header_value(&a, "Msgbus-Missed").starts_with(&format!("after={}", first - 1)),
        "{a}"
    );
    let b = get(
        &server,
        &format!("/msgbus/b?transport=longpoll&since={}", second - 1),
    );
    assert!(b.contains(&format!("\"id\":{second}")), "{b}");
}

#[test]
fn a_replay_is_cut_to_the_queue_limit_and_says_so() {
    let server = Server::start(&["--max-queue", "4096"]);
    let body = "y".repeat(1000);
    let ids: Vec<u64> = (0..10)
        .map(|_| server.publish_id("r", body.as_bytes()))
        .collect();
    let since = ids[0] - 1;
    let answer = get(
        &server,
        &format!("/msgbus/r?transport=longpoll&since={since}"),
    );
    let missed = header_value(&answer, "Msgbus-Missed");
    let oldest: u64 = missed.rsplit('=').next().unwrap().trim().parse().unwrap();
    assert!(oldest > ids[5] && oldest <= ids[9], "{missed}");
    assert!(answer.len() < 4096 + 1024, "{} bytes", answer.len());
    assert!(
        answer.contains(&format!("\"id\":{}", ids[9])),
        "the newest is kept"
    );
}

#[test]
fn since_zero_on_an_empty_channel_waits_for_the_first_message() {
    let server = Server::start(&[]);
    let mut poll = server.connect();
    poll.write_all(b"GET /msgbus/empty?transport=longpoll&since=0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while server.counter("subscribers") < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the poll was answered, not held"
        );
    }
    let id = server.publish_id("empty", b"first");
    let answer = String::from_utf8(read_to_end(&mut poll)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        !answer.contains("Msgbus-Missed") && !answer.contains("\"missed\""),
        "{answer}"
    );
    assert!(
        answer.contains(&format!("\"id\":{id}")) && answer.contains("first"),
        "{answer}"
    );
}
