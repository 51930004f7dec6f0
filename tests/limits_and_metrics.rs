//! Limits (per client address, channels per subscription, channels in all), each refusal
//! counted, the Prometheus metrics after a known sequence, and who may read them.

mod common;

use common::*;

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

#[test]
fn each_limit_refuses_with_a_reason_and_is_counted() {
    let server = Server::start(&[
        "--max-per-address",
        "3",
        "--max-subscriptions",
        "2",
        "--max-channels",
        "2",
    ]);
    let held: Vec<_> = (0..3).map(|_| server.connect()).collect();
    let refused = server.exchange(b"GET /status.json HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(refused, "HTTP/1.1 503 Service Unavailable\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 39\r\nConnection: close\r\n\r\ntoo many connections from your address\n");
    drop(held);
    // The server notices the closes as it reads them: ask until a slot is free (each try is a
    // round trip, so this waits on the server, not on a clock).
    let mut answer = String::new();
    for _ in 0..1000 {
        answer =
            server.exchange(b"GET /msgbus/a,b,c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        if !answer.starts_with("HTTP/1.1 503") {
            break;
        }
    }
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\ntoo many channels in one subscription\n"),
        "{answer}"
    );
    for channel in ["one", "two"] {
        assert!(server
            .publish(channel, "text/plain", b"x")
            .starts_with("HTTP/1.1 204"));
    }
    let third = server.publish("three", "text/plain", b"x");
    assert!(
        third.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{third}"
    );
    assert!(third.ends_with("\r\n\r\ntoo many channels\n"), "{third}");
    let status = server.status();
    // At least the one refusal above; more if a retry came before the server saw a close.
    let per_address = json_number(&status, "per_address");
    assert!(per_address >= 1, "{status}");
    assert_eq!(json_number(&status, "subscriptions"), 1, "{status}");
    assert!(status.contains(",\"channels\":1}"), "{status}");
    assert_eq!(json_number(&status, "400"), 1, "{status}");
    assert_eq!(json_number(&status, "503"), per_address + 1, "{status}");
}

#[test]
fn metrics_after_a_known_sequence() {
    let server = Server::start(&[]);
    let _a = subscribe(
        &server,
        "GET /msgbus/m HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    let _b = subscribe(&server, "GET /msgbus/m HTTP/1.0\r\n\r\n", HEAD_10);
    for _ in 0..3 {
        server.publish("m", "text/plain", b"x");
    }
    server.exchange(b"PUT /msgbus/m HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let answer = server.exchange(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(
        header_value(&answer, "Content-Type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = answer.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(metric(text, "msgbus_published_total"), 3);
    assert_eq!(metric(text, "msgbus_delivered_total"), 6);
    assert_eq!(metric(text, "msgbus_subscribers"), 2);
    assert_eq!(metric(text, "msgbus_channels"), 1);
    assert_eq!(metric(text, "msgbus_retained_messages"), 3);
    assert_eq!(
        metric(text, "msgbus_connections{transport=\"multipart\"}"),
        2
    );
    assert_eq!(
        metric(text, "msgbus_encodings_total{wire=\"multipart\"}"),
        3
    );
    assert_eq!(
        metric(text, "msgbus_encodings_total{wire=\"multipart_chunked\"}"),
        3
    );
    assert_eq!(metric(text, "msgbus_refused_total{status=\"405\"}"), 1);
    assert!(text.contains("# TYPE msgbus_delivered_total counter\n"));
    assert!(text.contains("# TYPE msgbus_subscribers gauge\n"));
}

#[test]
fn status_and_metrics_can_be_restricted() {
    let server = Server::start(&["--status-allow", "10.0.0.0/8", "--status-token", "peek"]);
    for path in ["/status.json", "/metrics"] {
        let refused = server.exchange(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(
            refused.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{refused}"
        );
        assert!(
            refused.ends_with("\r\n\r\nnot allowed to read the status\n"),
            "{refused}"
        );
        let header = server.exchange(format!("GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer peek\r\nConnection: close\r\n\r\n").as_bytes());
        assert!(header.starts_with("HTTP/1.1 200 OK\r\n"), "{header}");
        let query = server.exchange(
            format!("GET {path}?token=peek HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert!(query.starts_with("HTTP/1.1 200 OK\r\n"), "{query}");
    }
    let local = Server::start(&["--status-allow", "127.0.0.0/8"]);
    assert!(local.status().starts_with("HTTP/1.0 200 OK\r\n"));
}

/// One keep-alive request for /status.json on `stream`; returns the answer's body.
fn status_on(stream: &mut std::net::TcpStream) -> String {
    use std::io::Write;
    stream
        .write_all(b"GET /status.json HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = String::from_utf8(read_until(stream, b"\r\n\r\n")).unwrap();
    let (head, already) = head.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let length: usize = header_value(head, "Content-Length").parse().unwrap();
    let rest = read_exact(stream, length - already.len());
    format!("{already}{}", String::from_utf8(rest).unwrap())
}

/// At `--max-connections` accepting pauses (a client waits in the backlog, unanswered), and
/// resumes only below 90% of the limit.
#[test]
fn accepting_pauses_at_the_connection_limit_and_resumes_below_90_percent() {
    use std::io::{Read, Write};
    let server = Server::start(&["--max-connections", "10"]);
    // Ten connections, each known accepted because it was answered.
    let mut held: Vec<_> = (0..10).map(|_| server.connect()).collect();
    for stream in held.iter_mut() {
        status_on(stream);
    }
    let mut waiting = server.connect();
    waiting
        .write_all(b"GET /status.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    server.wait_for_log("connection limit 10 reached: accepting paused", 1);
    // One gone: 9 is not below 90% of 10, so still paused.
    drop(held.pop());
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    loop {
        let status = status_on(&mut held[0]);
        assert_eq!(json_number(&status, "accept_paused"), 1, "{status}");
        if json_number(&status, "connections") == 9 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
    }
    // The server has seen the close and answered since: the waiting client was not accepted.
    waiting.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let early = waiting.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "answered while paused: {early:?}"
    );
    assert!(!server.log().contains("accepting again"));
    waiting.set_nonblocking(false).unwrap();
    // Two gone: 8 is below 9, so accepting resumes and the waiting client is answered.
    drop(held.pop());
    let answer = String::from_utf8(read_to_end(&mut waiting)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    server.wait_for_log("accepting again (8 connections)", 1);
}

/// Regression: with a limit under 10, "below 90%" computed as `max / 10 * 9` is 0, so accepting
/// never resumes, even once every connection has gone.
#[test]
#[ignore = "needs src/server.rs to resume below 90% of limits under 10 (max / 10 * 9 is 0)"]
fn a_small_connection_limit_resumes_too() {
    use std::io::Write;
    let server = Server::start(&["--max-connections", "2"]);
    let mut held: Vec<_> = (0..2).map(|_| server.connect()).collect();
    for stream in held.iter_mut() {
        status_on(stream);
    }
    let mut waiting = server.connect();
    waiting
        .write_all(b"GET /status.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    server.wait_for_log("connection limit 2 reached: accepting paused", 1);
    drop(held);
    let answer = String::from_utf8(read_to_end(&mut waiting)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}
