//! The NATS link never blocks the reactor and trusts nothing NATS sends: a host name is looked
//! up off the reactor thread (here `localhost`), a burst from the stream larger than one turn's
//! read is taken over several turns with nothing left behind, and sequences out of range, from
//! another consumer or gone back are ignored. A fake NATS server with JetStream plays the other
//! side.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use common::*;

/// The fake server's side of one node's connection.
struct Fake {
    from_node: BufReader<TcpStream>,
    to_node: TcpStream,
    /// The consumer's delivery subject, once asked for.
    deliver: String,
}

impl Fake {
    /// Accepts the node and plays JetStream until the node has its consumer.
    fn accept(nats: &TcpListener) -> Fake {
        let (sock, _) = nats.accept().unwrap();
        sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut fake = Fake {
            to_node: sock.try_clone().unwrap(),
            from_node: BufReader::new(sock),
            deliver: String::new(),
        };
        fake.send(b"INFO {\"headers\":true}\r\n");
        // CONNECT, SUBs, then the PING whose PONG completes the handshake.
        for _ in 0..10 {
            if fake.op().0 == "PING" {
                break;
            }
        }
        fake.send(b"PONG\r\n");
        let answers: [(&str, &str); 4] = [
            ("$JS.API.INFO", "{}"),
            (
                "$JS.API.STREAM.INFO.MSGBUS",
                r#"{"error":{"code":404,"err_code":10059,"description":"stream not found"}}"#,
            ),
            (
                "$JS.API.STREAM.CREATE.MSGBUS",
                r#"{"config":{"subjects":["msgbus.>"]},"state":{"first_seq":0,"last_seq":0}}"#,
            ),
            (
                "$JS.API.CONSUMER.CREATE.MSGBUS",
                r#"{"name":"c1","num_pending":0}"#,
            ),
        ];
        for (subject, answer) in answers {
            let reply = loop {
                let (line, _) = fake.op();
                let words: Vec<&str> = line.split(' ').collect();
                if words[0] == "SUB" && words[2] == "3" {
                    fake.deliver = words[1].to_string();
                }
                if words[0] == "PUB" {
                    assert_eq!(words[1], subject, "{line}");
                    break words[2].to_string();
                }
            };
            let msg = format!("MSG {reply} 1 {}\r\n{answer}\r\n", answer.len());
            fake.send(msg.as_bytes());
        }
        assert!(fake.deliver.contains(".d."), "{}", fake.deliver);
        fake
    }

    fn send(&mut self, bytes: &[u8]) {
        self.to_node.write_all(bytes).unwrap();
    }

    /// The next operation from the node: its line, and its payload if it has one.
    fn op(&mut self) -> (String, Vec<u8>) {
        let mut line = String::new();
        self.from_node.read_line(&mut line).unwrap();
        let line = line.trim_end().to_string();
        let mut payload = Vec::new();
        if line.starts_with("PUB ") {
            let size: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
            payload = vec![0; size + 2];
            self.from_node.read_exact(&mut payload).unwrap();
            payload.truncate(size);
        }
        (line, payload)
    }
}

/// A delivery of stream sequence `seq` as JetStream sends it, its ack subject naming
/// `consumer`.
fn delivery(channel: &str, consumer: &str, seq: &str, body: &str) -> Vec<u8> {
    let headers = "NATS/1.0\r\nMsgbus-Type: text/plain\r\n\r\n";
    format!(
        "HMSG msgbus.{channel} 3 $JS.ACK.MSGBUS.{consumer}.1.{seq}.{seq}.0.0 {} {}\r\n{headers}{body}\r\n",
        headers.len(),
        headers.len() + body.len()
    )
    .into_bytes()
}

#[test]
fn a_named_nats_host_and_a_burst_larger_than_a_turn() {
    let nats = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nats.local_addr().unwrap().port();
    let url = format!("nats://localhost:{port}");
    let server = Server::start(&["--nats", &url, "--max-queue", "67108864"]);
    let fake = Fake::accept(&nats);
    server.wait_for_log("caught up with the stream", 1);

    let mut sub = subscribe(
        &server,
        "GET /msgbus/flood HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    // Ten times what the node reads in one turn, in one write.
    let count = 2500;
    let mut burst = Vec::new();
    for i in 1..=count {
        let payload = format!("{:0>1000}", format!("m{i}."));
        burst.extend_from_slice(&delivery("flood", "c1", &i.to_string(), &payload));
    }
    assert!(burst.len() > 2 * 1024 * 1024);
    let mut to_node = fake.to_node.try_clone().unwrap();
    let writer = std::thread::spawn(move || to_node.write_all(&burst).map(|_| to_node));
    // The last message arrives: the reads the per-turn cap left for later were made.
    read_past(&mut sub, format!("m{count}.--00MsgBus00\n").as_bytes());
    let _to_node = writer.join().unwrap().unwrap();
    assert_eq!(json_number(&server.status(), "received"), count);
}

/// Sequences from NATS are checked as client input is: one at or past 2^63 (so `+ 1` could
/// wrap), one not a number, one from a consumer that is not this node's, one already taken:
/// all ignored. A sequence skipped is a hole the stream made: live subscribers and a cursor
/// before it are told.
#[test]
fn sequences_from_nats_are_checked() {
    let nats = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://127.0.0.1:{}", nats.local_addr().unwrap().port());
    let server = Server::start(&["--nats", &url]);
    let mut fake = Fake::accept(&nats);
    server.wait_for_log("caught up with the stream", 1);
    let sse_head = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n";
    let mut sub = subscribe(
        &server,
        "GET /msgbus/c HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        sse_head,
    );
    let hostile = [
        delivery("c", "c1", "1", "one"),
        delivery("c", "c1", "18446744073709551614", "wraps"),
        delivery("c", "c1", "9223372036854775808", "too far"),
        delivery("c", "c1", "2x", "not a number"),
        delivery("c", "other", "2", "another consumer's"),
        delivery("c", "c1", "1", "again"),
        delivery("c", "c1", "4", "four"),
    ]
    .concat();
    fake.send(&hostile);
    // The live subscriber is told of the hole just before what follows it.
    let want = "id: 1\ndata: one\n\nevent: msgbus-missed\ndata: {\"after\":1,\"oldest\":4}\n\nid: 4\ndata: four\n\n";
    assert_eq!(read_same_len(&mut sub, want), want);
    // 2 and 3 never came: a cursor before them may have missed them; one after, nothing.
    let poll = |since: u64| {
        let request = format!("GET /msgbus/c?transport=longpoll&since={since} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        server.exchange(request.as_bytes())
    };
    let behind = poll(1);
    assert!(
        behind.contains("\"missed\":{\"after\":1,\"oldest\":4}"),
        "{behind}"
    );
    assert!(!poll(3).contains("missed"));
    assert_eq!(json_number(&server.status(), "received"), 2);
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
