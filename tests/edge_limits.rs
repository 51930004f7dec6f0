//! Limits that must cost little: at --max-connections a new connection is answered 503 at once
//! instead of waiting in the listen backlog; a long channel list is refused by its count before
//! its names are looked at; --max-per-address counts come back on every path; the gauges are
//! running counts that follow connections through their transports.

mod common;

use std::io::Write;
use std::net::IpAddr;

use common::*;
use msgbus::server::AddressCounts;

const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 34\r\nRetry-After: 5\r\nConnection: close\r\n\r\nserver busy: too many connections\n";

#[test]
fn at_the_connection_limit_a_new_connection_is_answered_503_at_once() {
    let server = Server::start(&["--max-connections", "2"]);
    // The server accepts in the order connections complete: these two are held first.
    let first = server.connect();
    let _second = server.connect();
    // No request needed: the answer comes as the connection is accepted, then the close.
    let mut third = server.connect();
    assert_eq!(
        undate(&String::from_utf8_lossy(&read_to_end(&mut third))),
        BUSY
    );
    // With a request already sent, the answer is the same.
    assert_eq!(
        server.exchange(b"GET /status.json HTTP/1.1\r\nHost: t\r\n\r\n"),
        BUSY
    );
    drop(first);
    // Once the server has seen the close, a slot is free again: ask until it has (each try is
    // a round trip, so this waits on the server, not on a clock).
    let mut status = String::new();
    for _ in 0..1000 {
        status = server.status();
        if status.starts_with("HTTP/1.0 200") {
            break;
        }
        assert_eq!(status, BUSY);
    }
    assert!(status.starts_with("HTTP/1.0 200 OK\r\n"), "{status}");
    let refused = json_number(&status, "connection_limit");
    assert!(refused >= 2, "{status}");
    assert_eq!(json_number(&status, "503"), refused, "{status}");
}

#[test]
fn a_long_channel_list_is_refused_by_its_count_first() {
    let server = Server::start(&["--max-subscriptions", "64"]);
    // Repeated names: looking at the names first would call this a bad name; the count is
    // checked first and cheaply.
    let names = vec!["a"; 2000].join(",");
    let request = format!("GET /msgbus/{names} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let answer = server.exchange(request.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\ntoo many channels in one subscription\n"),
        "{answer}"
    );
    assert_eq!(server.counter("subscriptions"), 1);
    // Within the limit, a repeated name is still a bad one.
    let answer = server.exchange(b"GET /msgbus/a,b,a HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(answer.ends_with("\r\n\r\nbad channel name\n"), "{answer}");
}

#[test]
fn per_address_counts_are_taken_once_and_released_once() {
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let mut counts = AddressCounts::default();
    assert!(!counts.is_full(ip, 1));
    counts.take(ip);
    assert!(counts.is_full(ip, 1));
    assert!(!counts.is_full(ip, 2));
    counts.release(ip);
    assert!(counts.is_empty());
    // A release without a take (a connection refused at once) changes nothing.
    counts.release(ip);
    assert_eq!(counts.held(ip), 0);

    // Through the server: many connections come and go, some refused; the address is never
    // left holding a slot it does not use.
    // (A try may come before the server has seen the previous close: it is refused, and
    // the next try is a round trip later.)
    let server = Server::start(&["--max-per-address", "1"]);
    for _ in 0..20 {
        let mut answer = String::new();
        for _ in 0..1000 {
            answer = server
                .exchange(b"GET /status.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            if !answer.starts_with("HTTP/1.1 503") {
                break;
            }
        }
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }
}

#[test]
fn connection_gauges_follow_transports_and_closes() {
    let server = Server::start(&["--poll-timeout", "30"]);
    let metric = |text: &str, transport: &str| -> u64 {
        let name = format!("msgbus_connections{{transport=\"{transport}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(name.as_str())?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in {text}"))
    };
    let metrics =
        || server.exchange(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let multipart = subscribe(
        &server,
        "GET /msgbus/g HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    let mut sse = server.connect();
    sse.write_all(b"GET /msgbus/g HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    read_until(&mut sse, b"retry: 2000\n\n");
    let mut poll = server.connect();
    poll.write_all(b"GET /msgbus/g?transport=longpoll HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // The poll is held once the bus counts three subscribers.
    for _ in 0..1000 {
        if server.counter("subscribers") == 3 {
            break;
        }
    }
    let text = metrics();
    assert_eq!(metric(&text, "multipart"), 1, "{text}");
    assert_eq!(metric(&text, "sse"), 1, "{text}");
    assert_eq!(metric(&text, "longpoll"), 1, "{text}");
    // The message answers the poll: its connection goes back to plain HTTP (kept alive).
    server.publish("g", "text/plain", b"x");
    read_until(&mut poll, b"\"cursor\"");
    drop(multipart);
    // The closed subscriber is gone from the gauges once the server has seen the close.
    let mut text = String::new();
    for _ in 0..1000 {
        text = metrics();
        if metric(&text, "multipart") == 0 {
            break;
        }
    }
    assert_eq!(metric(&text, "multipart"), 0, "{text}");
    assert_eq!(metric(&text, "sse"), 1, "{text}");
    assert_eq!(metric(&text, "longpoll"), 0, "{text}");
    // This request's connection and the answered poll's.
    assert_eq!(metric(&text, "http"), 2, "{text}");
}
