//! HTTP/1.x behaviour: keep-alive, pipelining, bodies by length and chunks, 100-continue, and a
//! clear status with a one-line reason for every kind of bad input.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

fn error(status: &str, reason: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{reason}\n",
        reason.len() + 1
    )
}

#[test]
fn bad_input_gets_a_status_and_a_reason() {
    let server = Server::start(&["--max-head", "1024", "--max-body", "100"]);
    let long_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let big_body = "POST /msgbus/x HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n";
    let cases: &[(&str, String)] = &[
        ("GARBAGE\r\n\r\n", error("400 Bad Request", "malformed request: bad request line or header name", "")),
        ("GET / HTTP/1.1\r\n\r\n", error("400 Bad Request", "malformed request: missing Host header", "")),
        ("GET / HTTP/3.0\r\nHost: x\r\n\r\n", error("400 Bad Request", "malformed request: unsupported HTTP version", "")),
        (&long_header, error("431 Request Header Fields Too Large", "request head too large", "")),
        (big_body, error("413 Payload Too Large", "request body too large", "")),
        ("BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", error("501 Not Implemented", "method not implemented", "")),
        ("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", error("501 Not Implemented", "transfer coding not implemented (only chunked)", "")),
        ("POST /msgbus/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", error("400 Bad Request", "malformed request: both Content-Length and Transfer-Encoding", "")),
        ("GET /msgbus/x%zz HTTP/1.1\r\nHost: x\r\n\r\n", error("400 Bad Request", "bad percent-encoding in path", "")),
        ("GET /msgbus/a%0Ab HTTP/1.1\r\nHost: x\r\n\r\n", error("400 Bad Request", "bad channel name", "")),
        ("POST /msgbus/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", error("400 Bad Request", "bad chunked body: bad chunk size", "")),
        ("DELETE /status.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", error("405 Method Not Allowed", "method not allowed", "Allow: GET, HEAD, OPTIONS\r\n")),
        ("PUT /msgbus/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", error("405 Method Not Allowed", "method not allowed", "Allow: GET, HEAD, POST, DELETE, OPTIONS\r\n")),
        ("GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", error("404 Not Found", "not found", "")),
    ];
    for (raw, want) in cases {
        assert_eq!(server.exchange(raw.as_bytes()), *want, "{raw:?}");
    }
    // And the server goes on.
    assert!(server.status().starts_with("HTTP/1.0 200 OK\r\n"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[]);
    let mut sub = subscribe(&server, "GET /msgbus/p HTTP/1.0\r\n\r\n", HEAD_10);
    let mut raw = String::new();
    for i in 0..50 {
        raw += &format!("POST /msgbus/p HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{i}", i.to_string().len());
        if i == 25 {
            raw += "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
        }
    }
    raw += "GET /status.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let got = server.exchange(raw.as_bytes());
    let statuses: Vec<&str> = got
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &got[i + 9..i + 12])
        .collect();
    let mut want = vec!["204"; 51];
    want[26] = "404";
    want.push("200");
    assert_eq!(statuses, want);
    for i in 0..50 {
        let want = format!(
            "Content-Type: text/plain\nContent-Length: {}\n\n{i}--00MsgBus00\n",
            i.to_string().len()
        );
        assert_eq!(read_same_len(&mut sub, &want), want);
    }
}

#[test]
fn chunked_bodies_and_100_continue() {
    let server = Server::start(&[]);
    let mut sub = subscribe(&server, "GET /msgbus/c HTTP/1.0\r\n\r\n", HEAD_10);
    let mut stream = server.connect();
    stream.write_all(b"POST /msgbus/c HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n").unwrap();
    let answer = String::from_utf8(read_until(&mut stream, b"\r\n\r\n")).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
    stream.write_all(b"POST /msgbus/c HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(
        read_same_len(&mut stream, "HTTP/1.1 100 Continue\r\n\r\n"),
        "HTTP/1.1 100 Continue\r\n\r\n"
    );
    stream.write_all(b"abc").unwrap();
    let answer = String::from_utf8(read_to_end(&mut stream)).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
    let want = "Content-Type: text/plain\nContent-Length: 12\n\nhello, world--00MsgBus00\nContent-Type: text/plain\nContent-Length: 3\n\nabc--00MsgBus00\n";
    assert_eq!(read_same_len(&mut sub, want), want);
}

#[test]
fn http10_keep_alive_and_close() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /status.json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let head = String::from_utf8(read_until(&mut stream, b"\r\n\r\n")).unwrap();
    assert!(head.contains("\r\nConnection: keep-alive\r\n"), "{head}");
    let length = header_value(&head, "Content-Length")
        .parse::<usize>()
        .unwrap();
    let already = head.len() - head.find("\r\n\r\n").unwrap() - 4;
    read_exact(&mut stream, length - already);
    stream
        .write_all(b"GET /status.json HTTP/1.0\r\n\r\n")
        .unwrap();
    let rest = String::from_utf8(read_to_end(&mut stream)).unwrap();
    assert!(
        rest.starts_with("HTTP/1.0 200 OK\r\n") && !rest.contains("keep-alive"),
        "{rest}"
    );
}

#[test]
fn a_trickling_head_times_out_without_slowing_anyone() {
    let server = Server::start(&["--head-timeout", "1"]);
    let mut slow = server.connect();
    let started = Instant::now();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    // Others are served while the slow head is pending (how fast is the load tools' business).
    for _ in 0..20 {
        assert!(server.status().starts_with("HTTP/1.0 200"));
    }
    // Keep trickling a byte per read timeout: the deadline runs from the first byte.
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    // How the trickle ended: the server's answer is what the test is about.
    let mut writes = 0;
    let ended = loop {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not timed out after {writes} bytes: {:?}",
            String::from_utf8_lossy(&got)
        );
        if slow.write_all(b"a").is_err() {
            break "write refused";
        }
        writes += 1;
        match slow.read(&mut buf) {
            Ok(0) => break "closed",
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    };
    let got = undate(&String::from_utf8_lossy(&got));
    assert_eq!(
        got,
        error("408 Request Timeout", "request timed out", ""),
        "{ended} after {writes} bytes"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn sigterm_exits_cleanly() {
    let server = Server::start(&[]);
    let _sub = subscribe(&server, "GET /msgbus/x HTTP/1.0\r\n\r\n", HEAD_10);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_access_log_has_one_line_per_request() {
    let server = Server::start(&["--access-log"]);
    server.exchange(b"GET /status.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    server.exchange(b"GET /msgbus/x?transport=bogus HTTP/1.0\r\n\r\n");
    server.publish("x", "text/plain", b"hello");
    server.wait_for_log("\"POST /msgbus/x HTTP/1.1\" 204 ", 1);
    let log = server.log();
    assert!(log.contains("\"GET /status.json HTTP/1.1\" 200 "), "{log}");
    assert!(
        log.contains("\"GET /msgbus/x?transport=bogus HTTP/1.0\" 400 "),
        "{log}"
    );
    let quiet = Server::start(&[]);
    quiet.publish("x", "text/plain", b"hello");
    assert!(!quiet.log().contains("POST /msgbus/x"));
}

/// A body that stops coming is answered 408 `--body-timeout` seconds into it; a connection
/// idle between requests is closed after `--keepalive-timeout` seconds.
#[test]
fn body_and_keep_alive_timeouts() {
    let server = Server::start(&["--body-timeout", "0.5", "--keepalive-timeout", "0.5"]);
    let mut slow = server.connect();
    slow.write_all(b"POST /msgbus/t HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let got = undate(&String::from_utf8(read_to_end(&mut slow)).unwrap());
    assert_eq!(got, error("408 Request Timeout", "request timed out", ""));
    let mut idle = server.connect();
    idle.write_all(b"GET /status.json HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let got = String::from_utf8(read_to_end(&mut idle)).unwrap();
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(!got.contains("Connection: close"), "{got}");
}

/// A read that comes back short ends a plain socket's readiness until the next event, so the
/// peer's FIN must still be seen whether it came with the request or after the answer: the
/// request is answered and the connection closed, not left open.
#[test]
fn a_request_then_the_clients_fin_is_answered_and_closed() {
    let server = Server::start(&[]);
    let want = "HTTP/1.1 404 Not Found\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\r\nnot found\n";
    for fin_after_answer in [false, true] {
        let mut stream = server.connect();
        stream
            .write_all(b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        if fin_after_answer {
            // The request was read and answered before the FIN is sent: it comes on its own.
            got = read_exact(&mut stream, 17);
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        got.extend(read_to_end(&mut stream));
        let got = undate(&String::from_utf8(got).unwrap());
        assert_eq!(got, want, "FIN after the answer: {fin_after_answer}");
    }
}
