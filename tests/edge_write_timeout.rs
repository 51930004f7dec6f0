//! A subscriber that takes none of its queued output for --write-timeout is closed and counted
//! (before, a stuck or vanished peer on a stream held its queue and its slot for ever).

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::*;

#[test]
fn a_subscriber_that_reads_nothing_is_closed_after_the_write_timeout() {
    let server = Server::start(&[
        "--write-timeout",
        "1",
        "--max-queue",
        "67108864",
        "--max-body",
        "1048576",
    ]);
    // A small receive window, so the server's writes stop soon.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stuck: TcpStream = socket.into();
    stuck.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stuck
        .write_all(b"GET /msgbus/w HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_same_len(&mut stuck, HEAD_11), HEAD_11);
    // More than the socket buffers on both sides can hold; the subscriber reads none of it.
    let body = vec![b'x'; 1 << 20];
    for _ in 0..24 {
        let answer = server.publish("w", "text/plain", &body);
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    }
    server.wait_for_log("none of its output taken", 1);
    let status = server.status();
    assert_eq!(json_number(&status, "write_stalled"), 1, "{status}");
    assert_eq!(json_number(&status, "subscribers"), 0, "{status}");
    // A subscriber that reads is left alone.
    let mut reader = subscribe(
        &server,
        "GET /msgbus/r HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    for _ in 0..3 {
        server.publish("r", "text/plain", b"y");
        read_until(&mut reader, b"\n\ny--00MsgBus00\n");
    }
    assert_eq!(server.counter("write_stalled"), 1);
}
