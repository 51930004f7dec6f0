//! A subscriber that stops reading never delays the others and never holds more than its
//! queue limit: its oldest unsent messages are dropped, or it is closed, as the policy says.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;

use common::*;
use msgbus::transport::multipart::PartDecoder;

const MESSAGES: usize = 600;
const SIZE: usize = 32 * 1024;
const QUEUE_LIMIT: usize = 128 * 1024;

fn body(seq: usize) -> Vec<u8> {
    let mut body = format!("{seq:06}").into_bytes();
    body.resize(SIZE, b'.');
    body
}

/// Reads parts from an HTTP/1.0 subscription (past its head) until `last` arrives or the
/// stream ends; returns the sequence numbers seen, and reports each on `seen_tx` if given.
fn read_sequence(stream: &mut TcpStream, last: usize) -> Vec<usize> {
    read_sequence_reporting(stream, last, None)
}

fn read_sequence_reporting(
    stream: &mut TcpStream,
    last: usize,
    seen_tx: Option<mpsc::Sender<usize>>,
) -> Vec<usize> {
    let mut decoder = PartDecoder::new(1 << 20);
    decoder.push(b"--00MsgBus00\n"); // already read by `subscribe`
    let mut buf = vec![0; 64 * 1024];
    let mut seen = Vec::new();
    loop {
        let n = stream.read(&mut buf).expect("read");
        if n == 0 {
            return seen;
        }
        decoder.push(&buf[..n]);
        while let Some(part) = decoder.next_part().expect("intact parts") {
            let seq: usize = String::from_utf8_lossy(&part.body[..6]).parse().unwrap();
            assert_eq!(part.body, body(seq));
            seen.push(seq);
            if let Some(tx) = &seen_tx {
                let _ = tx.send(seq);
            }
            if seq == last {
                return seen;
            }
        }
    }
}

/// Publishes every message, each once the reading subscriber has the one before: so the
/// reader never has a backlog of its own, and whatever piles up is the stalled one's alone.
fn publish_all(server: &Server, reader_seen: &mpsc::Receiver<usize>) {
    for seq in 0..MESSAGES {
        let answer = server.publish("slow", "application/octet-stream", &body(seq));
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
        let got = reader_seen
            .recv_timeout(READ_TIMEOUT)
            .expect("the reader keeps up");
        assert_eq!(got, seq);
    }
}

#[test]
fn drop_policy_keeps_the_stalled_subscriber_bounded_and_the_others_whole() {
    let queue_limit = QUEUE_LIMIT.to_string();
    let server = Server::start(&["--max-queue", &queue_limit, "--slow-policy", "drop"]);
    let stalled = subscribe(&server, "GET /msgbus/slow HTTP/1.0\r\n\r\n", HEAD_10);
    let fast = subscribe(&server, "GET /msgbus/slow HTTP/1.0\r\n\r\n", HEAD_10);
    let (tx, rx) = mpsc::channel();
    let reader =
        thread::spawn(move || read_sequence_reporting(&mut { fast }, MESSAGES - 1, Some(tx)));
    publish_all(&server, &rx);
    let fast_seen = reader.join().unwrap();
    assert_eq!(
        fast_seen,
        (0..MESSAGES).collect::<Vec<_>>(),
        "the reading subscriber lost nothing"
    );
    let status = server.status();
    assert!(json_number(&status, "dropped") > 0, "{status}");
    assert!(
        json_number(&status, "queued_bytes") <= QUEUE_LIMIT as u64,
        "{status}"
    );
    // The stalled one now reads: whole parts, in order, and the newest message at the end.
    let stalled_seen = read_sequence(&mut { stalled }, MESSAGES - 1);
    assert!(
        stalled_seen.windows(2).all(|w| w[0] < w[1]),
        "{stalled_seen:?}"
    );
    assert_eq!(stalled_seen.last(), Some(&(MESSAGES - 1)));
    assert!(stalled_seen.len() < MESSAGES);
    assert!(server
        .log()
        .contains("dropping messages for slow subscriber"));
}

#[test]
fn close_policy_disconnects_the_stalled_subscriber() {
    let queue_limit = QUEUE_LIMIT.to_string();
    let server = Server::start(&["--max-queue", &queue_limit, "--slow-policy", "close"]);
    let stalled = subscribe(&server, "GET /msgbus/slow HTTP/1.0\r\n\r\n", HEAD_10);
    let fast = subscribe(&server, "GET /msgbus/slow HTTP/1.0\r\n\r\n", HEAD_10);
    // The reader hands its stream back, so the fast subscriber is still connected below.
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut fast = fast;
        (
            read_sequence_reporting(&mut fast, MESSAGES - 1, Some(tx)),
            fast,
        )
    });
    publish_all(&server, &rx);
    let (fast_seen, _fast) = reader.join().unwrap();
    assert_eq!(fast_seen, (0..MESSAGES).collect::<Vec<_>>());
    let status = server.status();
    assert_eq!(json_number(&status, "slow_subscriber"), 1, "{status}");
    assert_eq!(json_number(&status, "subscribers"), 1, "{status}");
    // What it had in its socket buffers arrives in order, then the stream ends.
    let seen = read_sequence(&mut { stalled }, usize::MAX);
    assert!(
        seen.len() < MESSAGES && seen.iter().enumerate().all(|(i, s)| i == *s),
        "{seen:?}"
    );
}

/// A subscriber that never reads, with a small receive buffer set before it connects.
fn never_reading(server: &Server) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /msgbus/capped HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_same_len(&mut stream, HEAD_11), HEAD_11);
    stream
}

/// With the socket's send buffer capped, a reader that stops is caught by the policy after
/// about `--max-queue` bytes, not after the megabytes an autotuned kernel buffer would take
/// first; a reading subscriber next to it gets every part, byte for byte, meanwhile.
#[test]
fn a_capped_send_buffer_brings_the_policy_in_early_and_the_reader_loses_nothing() {
    const SIZE: usize = 4096;
    // Kernel share 2 x 8 KiB, queue share 48 KiB: the policy acts within ~20 messages; an
    // autotuned send buffer (4 MiB on loopback) would take ~1,000 first.
    const WITHIN: usize = 60;
    for (policy, counter) in [("close", "slow_subscriber"), ("drop", "dropped")] {
        let server = Server::start(&[
            "--max-queue",
            "65536",
            "--socket-send-buffer",
            "8192",
            "--slow-policy",
            policy,
        ]);
        let _stalled = never_reading(&server);
        let request = "GET /msgbus/capped HTTP/1.1\r\nHost: t\r\n\r\n";
        let mut reader = subscribe(&server, request, HEAD_11);
        let mut acted_at = None;
        for seq in 0..WITHIN {
            let mut body = format!("{seq:06}").into_bytes();
            body.resize(SIZE, b'.');
            let answer = server.publish("capped", "text/plain", &body);
            assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
            let part = format!(
                "Content-Type: text/plain\n\n{}--00MsgBus00\n",
                String::from_utf8(body).unwrap()
            );
            let want = chunk(&part);
            assert_eq!(
                read_same_len(&mut reader, &want),
                want,
                "{policy}: part {seq}"
            );
            if server.counter(counter) > 0 {
                acted_at = Some(seq);
                break;
            }
        }
        assert!(
            acted_at.is_some(),
            "{policy}: the stalled reader was still whole after {WITHIN} messages of {SIZE} B"
        );
        if policy == "close" {
            server.wait_for_counter("subscribers", |n| n == 1, "the stalled one is closed");
        }
    }
}
