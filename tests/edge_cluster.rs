//! The NATS link never blocks the reactor: a host name is looked up off the reactor thread
//! (here `localhost`), and a burst from NATS larger than one turn's read is taken over several
//! turns with nothing left behind. A fake NATS server plays the other side.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use common::*;

#[test]
fn a_named_nats_host_and_a_burst_larger_than_a_turn() {
    let nats = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nats.local_addr().unwrap().port();
    let url = format!("nats://localhost:{port}");
    let server = Server::start(&["--nats", &url, "--max-queue", "67108864"]);
    let (sock, _) = nats.accept().unwrap();
    sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut to_node = sock.try_clone().unwrap();
    to_node.write_all(b"INFO {\"headers\":true}\r\n").unwrap();
    // CONNECT, SUB, then the PING whose PONG completes the handshake.
    let mut from_node = BufReader::new(sock);
    let mut line = String::new();
    for _ in 0..10 {
        line.clear();
        from_node.read_line(&mut line).unwrap();
        if line == "PING\r\n" {
            break;
        }
    }
    assert_eq!(line, "PING\r\n");
    to_node.write_all(b"PONG\r\n").unwrap();
    server.wait_for_log("joined the cluster", 1);

    let mut sub = subscribe(
        &server,
        "GET /msgbus/flood HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    // Ten times what the node reads in one turn, in one write.
    let count = 2500;
    let mut burst = Vec::new();
    for i in 1..=count {
        let headers = format!("NATS/1.0\r\nMsgbus-Id: {i}\r\nMsgbus-Type: text/plain\r\n\r\n");
        let payload = format!("{:0>1000}", format!("m{i}."));
        burst.extend_from_slice(
            format!(
                "HMSG msgbus.flood 1 {} {}\r\n",
                headers.len(),
                headers.len() + payload.len()
            )
            .as_bytes(),
        );
        burst.extend_from_slice(headers.as_bytes());
        burst.extend_from_slice(payload.as_bytes());
        burst.extend_from_slice(b"\r\n");
    }
    assert!(burst.len() > 2 * 1024 * 1024);
    let writer = std::thread::spawn(move || to_node.write_all(&burst).map(|_| to_node));
    // The last message arrives: the reads the per-turn cap left for later were made.
    read_past(&mut sub, format!("m{count}.--00MsgBus00\n").as_bytes());
    let _to_node = writer.join().unwrap().unwrap();
    assert_eq!(json_number(&server.status(), "received"), count);
}

/// Reads until `needle` has gone by, keeping only as much as could hold the start of it.
fn read_past(stream: &mut TcpStream, needle: &[u8]) {
    let mut window = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed before {:?}", String::from_utf8_lossy(needle));
        window.extend_from_slice(&buf[..n]);
        if window.windows(needle.len()).any(|w| w == needle) {
            return;
        }
        let keep = needle.len().min(window.len());
        window.drain(..window.len() - keep);
    }
}
