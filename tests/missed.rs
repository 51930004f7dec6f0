//! The README's promise that a client resuming past what is kept is told so "in one shape
//! everywhere": every transport's response head carries `Msgbus-Missed: after=ID, oldest=ID`.
//! And a multipart subscriber whose oldest parts were dropped for slowness is told how many in
//! the next part it gets: `Msgbus-Missed: N` as that part's first header.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use common::*;

/// A channel whose history (2) no longer holds the message after `seen`; returns
/// (server, seen, oldest kept).
fn rolled_over() -> (Server, u64, u64) {
    let server = Server::start(&["--history", "2"]);
    let first = server.publish_id("m", b"1");
    let second = server.publish_id("m", b"2");
    server.publish_id("m", b"3");
    (server, first - 1, second)
}

/// The response head (up to the blank line) for `request`.
fn head_of(server: &Server, request: &str) -> String {
    let mut stream = server.connect();
    stream.write_all(request.as_bytes()).unwrap();
    let got = String::from_utf8_lossy(&read_until(&mut stream, b"\r\n\r\n")).into_owned();
    got[..got.find("\r\n\r\n").unwrap() + 4].to_string()
}

fn assert_missed(transport: &str, head: &str, seen: u64, oldest: u64) {
    let line = format!("\r\nMsgbus-Missed: after={seen}, oldest={oldest}\r\n");
    assert!(head.contains(&line), "{transport}: no {line:?} in {head}");
}

#[test]
fn multipart_heads_carry_msgbus_missed() {
    let (server, seen, oldest) = rolled_over();
    for version in ["1.0", "1.1"] {
        let head = head_of(
            &server,
            &format!("GET /msgbus/m?since={seen} HTTP/{version}\r\nHost: t\r\n\r\n"),
        );
        assert!(head.contains("multipart/x-mixed-replace"), "{head}");
        assert_missed(
            &format!("multipart over HTTP/{version}"),
            &head,
            seen,
            oldest,
        );
    }
}

#[test]
fn sse_heads_carry_msgbus_missed() {
    let (server, seen, oldest) = rolled_over();
    let head = head_of(
        &server,
        &format!("GET /msgbus/m HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nLast-Event-ID: {seen}\r\n\r\n"),
    );
    assert_missed("sse", &head, seen, oldest);
}

#[test]
fn long_poll_heads_carry_msgbus_missed() {
    let (server, seen, oldest) = rolled_over();
    let head = head_of(
        &server,
        &format!("GET /msgbus/m?transport=longpoll&since={seen} HTTP/1.1\r\nHost: t\r\n\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_missed("long-poll", &head, seen, oldest);
}

#[test]
fn websocket_handshakes_carry_msgbus_missed() {
    let (server, seen, oldest) = rolled_over();
    let head = head_of(
        &server,
        &format!("GET /msgbus/m?since={seen} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_missed("websocket", &head, seen, oldest);
}

const GAP_BODY: usize = 8 * 1024;

fn gap_body(seq: usize) -> Vec<u8> {
    let mut body = format!("<{seq:06}>").into_bytes();
    body.resize(GAP_BODY, b'.');
    body
}

/// A subscriber that reads nothing and whose socket takes little: its receive buffer is set
/// small before it connects, so the server's queue fills after a few messages.
fn stalled_subscriber(server: &Server, request: &str, head: &str) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    assert_eq!(read_same_len(&mut stream, head), head);
    stream
}

/// The HTTP/1.1 chunks of a stream, as (payload) strings, until the part with `last` is in.
fn read_chunks_until(stream: &mut TcpStream, last: usize) -> Vec<String> {
    let needle = format!("<{last:06}>");
    let mut raw = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let chunks = split_chunks(&raw);
        if chunks.last().is_some_and(|c| c.contains(&needle)) {
            return chunks;
        }
        assert!(Instant::now() < deadline, "no part {last} in time");
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed before part {last}");
        raw.extend_from_slice(&buf[..n]);
    }
}

/// Whole chunks at the front of `raw`; checks their framing on the way.
fn split_chunks(raw: &[u8]) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut rest = raw;
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap(), 16).unwrap();
        let end = eol + 2 + size + 2;
        if rest.len() < end {
            break;
        }
        assert_eq!(&rest[end - 2..end], b"\r\n");
        chunks.push(String::from_utf8(rest[eol + 2..end - 2].to_vec()).unwrap());
        rest = &rest[end..];
    }
    chunks
}

#[test]
fn a_multipart_subscriber_is_told_how_many_parts_were_dropped_before_the_next() {
    let server = Server::start(&["--max-queue", "32768", "--slow-policy", "drop"]);
    let mut stalled = stalled_subscriber(
        &server,
        "GET /msgbus/gap HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    // Publish until the queue has dropped a good many (bounded by count, each a round trip).
    let mut last = 0;
    for seq in 0..5000 {
        let answer = server.publish("gap", "text/plain", &gap_body(seq));
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
        last = seq;
        if seq % 16 == 15 && server.counter("dropped") >= 40 {
            break;
        }
    }
    let dropped = server.counter("dropped");
    assert!(
        dropped >= 40,
        "only {dropped} dropped after {last} messages"
    );
    // What arrives is every part kept, each after a gap with one notice chunk before it that
    // counts the whole gap, byte for byte.
    let chunks = read_chunks_until(&mut stalled, last);
    let mut want = Vec::new();
    let mut next = 0;
    let mut noted = 0;
    for chunk in chunks.iter().filter(|c| c.starts_with("Content-Type:")) {
        let seq: usize = chunk[chunk.find('<').unwrap() + 1..][..6].parse().unwrap();
        assert!(seq >= next, "{seq} after {next}");
        if seq > next {
            want.push(format!("Msgbus-Dropped: {}\n", seq - next));
            noted += seq - next;
        }
        let body = String::from_utf8(gap_body(seq)).unwrap();
        want.push(format!("Content-Type: text/plain\n\n{body}--00MsgBus00\n"));
        next = seq + 1;
    }
    if let Some(at) = (0..chunks.len().max(want.len())).find(|&i| chunks.get(i) != want.get(i)) {
        let show = |c: Option<&String>| c.map(|c| c[..c.len().min(48)].to_string());
        let tail: Vec<_> = chunks[at.saturating_sub(2)..]
            .iter()
            .map(|c| show(Some(c)))
            .collect();
        panic!(
            "chunk {at} of {}: got {:?}, want {:?}; from two before: {tail:?}",
            chunks.len(),
            show(chunks.get(at)),
            show(want.get(at))
        );
    }
    assert_eq!(noted as u64, dropped);
    assert!(chunks.iter().filter(|c| c.starts_with("Msgbus-")).count() >= 1);
}
