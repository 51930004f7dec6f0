//! Several msgbus nodes joined through a real nats-server with JetStream, started by the test:
//! one order on every node, ids that are the stream's sequences, resume on another node, NATS
//! going away (publishes refused, nothing lost), a node restarted, the stream made and its
//! limits set from the options, and a nats-server without JetStream refused at start.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::*;

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n";

/// A nats-server this test started, and its JetStream store (removed with it).
pub struct Nats {
    child: Option<Guarded>,
    port: u16,
    store: PathBuf,
    extra: Vec<String>,
}

impl Nats {
    /// nats-server with JetStream, on a port it picks, with a store of its own.
    fn start() -> Nats {
        Nats::with(&["-js"])
    }

    /// nats-server with `extra` arguments and a store of its own.
    fn with(extra: &[&str]) -> Nats {
        let store = std::env::temp_dir().join(format!(
            "msgbus-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&store);
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, port) = spawn_nats("-1", &store, &extra).expect("nats-server did not start");
        Nats {
            child: Some(child),
            port,
            store,
            extra,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// kill -9: what it stored is in its store directory.
    fn kill(&mut self) {
        self.child = None;
    }

    /// Starts it again on the same port with the same store: a few tries, in case the port is
    /// not free again yet.
    fn restart(&mut self) {
        let mut last = String::new();
        for _ in 0..10 {
            match spawn_nats(&self.port.to_string(), &self.store, &self.extra) {
                Ok((child, _)) => {
                    self.child = Some(child);
                    return;
                }
                Err(why) => last = why,
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("nats-server did not start again on {}: {last}", self.port);
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.child = None;
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Starts nats-server and waits until it says where it listens and that it is ready, or
/// exits, or the read timeout.
fn spawn_nats(
    port: &str,
    store: &std::path::Path,
    extra: &[String],
) -> Result<(Guarded, u16), String> {
    let mut command = Command::new("nats-server");
    command
        .args(["-a", "127.0.0.1", "-p", port, "-sd"])
        .arg(store)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = Guarded::spawn(&mut command, "nats-server (apt-get install nats-server)");
    let stderr = child.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut port = None;
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("Listening for client connections on ").nth(1) {
                port = addr.trim().rsplit(':').next().and_then(|p| p.parse().ok());
            }
            log += &line;
            log.push('\n');
            if line.contains("Server is ready") {
                let _ = tx.send(port.ok_or_else(|| log.clone()));
            }
        }
        // Gone before it was ready.
        let _ = tx.send(Err(log));
    });
    match rx.recv_timeout(READ_TIMEOUT) {
        Ok(Ok(port)) => Ok((child, port)),
        Ok(Err(log)) => Err(log),
        Err(_) => Err(format!("not ready within {READ_TIMEOUT:?}")),
    }
}

/// A node joined to `nats`, once it has read the stream (it takes clients from then on).
fn node(nats: &Nats, name: &str) -> Server {
    node_with(nats, name, &[])
}

fn node_with(nats: &Nats, name: &str, extra: &[&str]) -> Server {
    let url = nats.url();
    let args = [&["--nats", url.as_str(), "--node-name", name][..], extra].concat();
    let server = Server::start(&args);
    server.wait_for_log("caught up with the stream", 1);
    server
}

fn sse(server: &Server, extra: &str) -> std::net::TcpStream {
    let request =
        format!("GET /msgbus/room HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{extra}\r\n");
    subscribe(server, &request, SSE_HEAD)
}

fn event(id: u64, body: &str) -> String {
    format!("id: {id}\ndata: {body}\n\n")
}

/// A long-poll from `since` on `server`: the whole answer.
fn poll(server: &Server, since: u64) -> String {
    let request = format!("GET /msgbus/room?transport=longpoll&since={since} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    server.exchange(request.as_bytes())
}

#[test]
fn ids_are_the_stream_sequence_and_every_node_sees_one_order() {
    let nats = Nats::start();
    let nodes: Vec<Server> = ["a", "b", "c"].iter().map(|n| node(&nats, n)).collect();
    let mut subs: Vec<_> = nodes.iter().map(|n| sse(n, "")).collect();
    for (i, publisher) in nodes.iter().enumerate() {
        let body = format!("from node {i}");
        let answer = publisher.publish("room", "text/plain", body.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 204 "), "{answer}");
        // A fresh stream: the first message is sequence 1, and so on.
        assert_eq!(header_value(&answer, "Msgbus-Id"), (i + 1).to_string());
        let want = event(i as u64 + 1, &body);
        for sub in subs.iter_mut() {
            assert_eq!(read_same_len(sub, &want), want);
        }
    }
    let status = nodes[1].status();
    assert!(
        status.contains("\"cluster\":{\"connected\":true,\"forwarded\":1,\"received\":3,"),
        "{status}"
    );
}

#[test]
fn a_nats_server_without_jetstream_stops_the_start() {
    let nats = Nats::with(&[]);
    let url = nats.url();
    let out = run_to_exit(
        &["-l", "127.0.0.1", "-p", "0", "--nats", &url],
        "msgbus against NATS without JetStream",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or("");
    assert_eq!(
        last,
        "msgbus: NATS has no JetStream: start nats-server with -js (or a jetstream block in its configuration)",
        "{stderr}"
    );
}

#[test]
fn a_client_resumes_on_another_node_with_exactly_the_rest() {
    let nats = Nats::start();
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    let mut watcher = sse(&b, "");
    let ids: Vec<u64> = (0..3)
        .map(|i| a.publish_id("room", format!("m{i}").as_bytes()))
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    let want = event(1, "m0") + &event(2, "m1") + &event(3, "m2");
    assert_eq!(read_same_len(&mut watcher, &want), want);
    let mut resumed = sse(&b, "Last-Event-ID: 1\r\n");
    let want = event(2, "m1") + &event(3, "m2");
    assert_eq!(read_same_len(&mut resumed, &want), want);
    // What b publishes next comes after, on every node.
    assert_eq!(b.publish_id("room", b"local"), 4);
    let want = event(4, "local");
    assert_eq!(read_same_len(&mut resumed, &want), want);
}

/// NATS killed (kill -9) mid-stream: publishes are refused with 503 and Retry-After, nothing
/// acknowledged is lost, and when it is back (same store) both nodes go on from where they
/// were: subscribers get what follows with no gap and no missed notice.
#[test]
fn nats_going_away_refuses_publishes_and_loses_nothing() {
    let mut nats = Nats::start();
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    let mut on_a = sse(&a, "");
    let mut on_b = sse(&b, "");
    assert_eq!(a.publish_id("room", b"before"), 1);
    let want = event(1, "before");
    assert_eq!(read_same_len(&mut on_b, &want), want);
    assert_eq!(read_same_len(&mut on_a, &want), want);
    nats.kill();
    a.wait_for_log("cut off from NATS", 1);
    let answer = a.publish("room", "text/plain", b"during");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert_eq!(header_value(&answer, "Retry-After"), "1");
    nats.restart();
    a.wait_for_log("joined the cluster again", 1);
    b.wait_for_log("joined the cluster again", 1);
    assert_eq!(a.publish_id("room", b"after"), 2);
    let want = event(2, "after");
    assert_eq!(read_same_len(&mut on_b, &want), want);
    assert_eq!(read_same_len(&mut on_a, &want), want);
    // A cursor from before the outage: exactly the rest, nothing missed.
    let resumed = poll(&b, 1);
    assert!(!resumed.contains("missed"), "{resumed}");
    assert!(
        resumed.contains("\"id\":2,") && !resumed.contains("\"id\":1,"),
        "{resumed}"
    );
    assert!(b.status().contains("\"disconnects\":1"));
}

/// A node killed (kill -9) and started again rebuilds its window from the stream: a client
/// resumes there with an id from before, and gets what was published while the node was down.
#[test]
fn a_node_killed_and_restarted_loses_nothing() {
    let nats = Nats::start();
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    for body in ["one", "two"] {
        a.publish_id("room", body.as_bytes());
    }
    drop(b); // SIGKILL
    for body in ["three", "four"] {
        a.publish_id("room", body.as_bytes());
    }
    let b = node(&nats, "b");
    let mut resumed = sse(&b, "Last-Event-ID: 1\r\n");
    let want = event(2, "two") + &event(3, "three") + &event(4, "four");
    assert_eq!(read_same_len(&mut resumed, &want), want);
    assert_eq!(a.publish_id("room", b"five"), 5);
    let want = event(5, "five");
    assert_eq!(read_same_len(&mut resumed, &want), want);
}

/// The stream is made with `--history` as its messages per channel; a node joining later
/// rebuilds only what the stream kept, and a cursor before that is told it missed messages,
/// exactly from where. A node with other limits sets them on the stream.
#[test]
fn the_stream_keeps_what_the_options_say() {
    let nats = Nats::start();
    let a = node_with(&nats, "a", &["--history", "2"]);
    a.wait_for_log("creating JetStream stream MSGBUS", 1);
    for i in 1..=4 {
        assert_eq!(a.publish_id("room", format!("m{i}").as_bytes()), i);
    }
    let b = node_with(&nats, "b", &["--history", "2"]);
    assert!(!b.log().contains("setting the limits"), "{}", b.log());
    let from_start = poll(&b, 0);
    assert!(!from_start.contains("missed"), "{from_start}");
    assert!(from_start.contains("\"data\":\"m3\"") && from_start.contains("\"data\":\"m4\""));
    assert!(!from_start.contains("\"data\":\"m2\""), "{from_start}");
    let behind = poll(&b, 1);
    assert!(
        behind.contains("\"missed\":{\"after\":1,\"oldest\":3}"),
        "{behind}"
    );
    let c = node_with(&nats, "c", &["--history", "3"]);
    c.wait_for_log("setting the limits of JetStream stream MSGBUS", 1);
}

#[test]
fn a_second_nats_url_is_tried_when_the_first_is_away() {
    let nats = Nats::start();
    // A port that held a listener a moment ago and holds none now: nothing answers there.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let away = format!("nats://127.0.0.1:{}", gone.local_addr().unwrap().port());
    drop(gone);
    let a = Server::start(&["--nats", &away, "--nats", &nats.url(), "--node-name", "a"]);
    a.wait_for_log("caught up with the stream", 1);
    let b = node(&nats, "b");
    let mut on_b = sse(&b, "");
    let id = a.publish_id("room", b"through the second");
    let want = event(id, "through the second");
    assert_eq!(read_same_len(&mut on_b, &want), want);
}

#[test]
fn nodes_can_share_one_port() {
    let nats = Nats::start();
    let shared = |name: &str, port: &str| {
        let server = Server::start_raw(&[
            "-l",
            "127.0.0.1",
            "-p",
            port,
            "--reuse-port",
            "--nats",
            &nats.url(),
            "--node-name",
            name,
        ]);
        server.wait_for_log("caught up with the stream", 1);
        server
    };
    let a = shared("a", "0");
    let b = shared("b", &a.addr.port().to_string());
    assert_eq!(a.addr, b.addr);
    // Whichever process the kernel hands each connection to, every subscriber gets the message.
    let mut subs: Vec<_> = (0..8).map(|_| sse(&a, "")).collect();
    let id = b.publish_id("room", b"shared");
    let want = event(id, "shared");
    for sub in subs.iter_mut() {
        assert_eq!(read_same_len(sub, &want), want);
    }
}

/// A node with the right credentials joins and its messages cross; one with wrong ones is
/// refused by NATS, says why, and keeps trying (taking no clients meanwhile).
fn credentials_are_sent(nats: &Nats, right: &str, wrong: &str) {
    let url = |auth: &str| format!("nats://{auth}@127.0.0.1:{}", nats.port);
    let a = Server::start(&["--nats", &url(right), "--node-name", "a"]);
    a.wait_for_log("caught up with the stream", 1);
    let b = Server::start(&["--nats", &url(right), "--node-name", "b"]);
    b.wait_for_log("caught up with the stream", 1);
    let mut on_b = sse(&b, "");
    let id = a.publish_id("room", b"with credentials");
    let want = event(id, "with credentials");
    assert_eq!(read_same_len(&mut on_b, &want), want);

    let c = Server::start(&["--nats", &url(wrong), "--node-name", "c"]);
    c.wait_for_log("NATS not reachable: ", 2);
    c.wait_for_log("Authorization Violation", 2);
    assert!(!c.log().contains("joined the cluster"), "{}", c.log());
}

#[test]
fn a_user_and_password_in_the_nats_url_are_sent() {
    let nats = Nats::with(&["-js", "--user", "u", "--pass", "p"]);
    credentials_are_sent(&nats, "u:p", "u:wrong");
}

#[test]
fn a_token_in_the_nats_url_is_sent() {
    let nats = Nats::with(&["-js", "--auth", "s3cret"]);
    credentials_are_sent(&nats, "s3cret", "guess");
}

/// The `msgbus_cluster_*` lines of a node's /metrics.
fn cluster_metrics(server: &Server) -> String {
    let all = server.exchange(b"GET /metrics HTTP/1.0\r\n\r\n");
    all.lines()
        .filter(|l| l.starts_with("msgbus_cluster_"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn metrics(connected: u8, forwarded: u8, received: u8, not_forwarded: u8, lost: u8) -> String {
    format!(
        "msgbus_cluster_connected {connected}\nmsgbus_cluster_forwarded_total {forwarded}\nmsgbus_cluster_received_total {received}\nmsgbus_cluster_not_forwarded_total {not_forwarded}\nmsgbus_cluster_disconnects_total {lost}\n"
    )
}

/// After a known sequence (two messages from a, one from b, NATS gone, one refused on a), each
/// node's /metrics says exactly that: stored, delivered from the stream, refused, cut off.
#[test]
fn the_cluster_metrics_count_what_crossed() {
    let mut nats = Nats::start();
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    assert_eq!(cluster_metrics(&a), metrics(1, 0, 0, 0, 0));
    let mut on_a = sse(&a, "");
    let mut on_b = sse(&b, "");
    for (publisher, body) in [(&a, "a1"), (&a, "a2"), (&b, "b1")] {
        let id = publisher.publish_id("room", body.as_bytes());
        let want = event(id, body);
        assert_eq!(read_same_len(&mut on_a, &want), want);
        assert_eq!(read_same_len(&mut on_b, &want), want);
    }
    assert_eq!(cluster_metrics(&a), metrics(1, 2, 3, 0, 0));
    assert_eq!(cluster_metrics(&b), metrics(1, 1, 3, 0, 0));
    nats.kill();
    a.wait_for_log("cut off from NATS", 1);
    b.wait_for_log("cut off from NATS", 1);
    let answer = a.publish("room", "text/plain", b"a3");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert_eq!(cluster_metrics(&a), metrics(0, 2, 3, 1, 1));
    assert_eq!(cluster_metrics(&b), metrics(0, 1, 3, 0, 1));
}

/// After NATS goes away the node tries again after 0.1 s, then after twice as long each time,
/// each wait lengthened by up to half at random: each attempt is logged, and the test takes
/// the time it reads each line. The first five waits (about 3 s in all) are checked.
#[test]
fn reconnect_attempts_back_off_doubling_with_jitter() {
    let mut nats = Nats::start();
    let mut command = Command::new(server_bin());
    command
        .args(["-l", "127.0.0.1", "-p", "0", "--nats", &nats.url()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut node = Guarded::spawn(&mut command, "msgbus");
    let stderr = node.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send((std::time::Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    let next_line = || {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        rx.recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line within {READ_TIMEOUT:?}"))
    };
    while !next_line().1.contains("caught up with the stream") {}
    nats.kill();
    let (cut, line) = next_line();
    assert!(line.contains("cut off from NATS"), "{line}");
    // Each try is refused at once and says so; nothing else is logged meanwhile.
    let mut attempts = vec![cut];
    while attempts.len() < 6 {
        let (at, line) = next_line();
        assert!(line.contains("NATS not reachable: "), "{line}");
        attempts.push(at);
    }
    drop(node);
    let mut lengthened = 0;
    for (k, pair) in attempts.windows(2).enumerate() {
        let waited = pair[1] - pair[0];
        let base = std::time::Duration::from_millis(100 << k);
        // The reactor may run a little late, and this thread may read a line late: margins.
        let least = base - std::time::Duration::from_millis(40);
        let most = base * 3 / 2 + std::time::Duration::from_millis(250);
        assert!(
            (least..=most).contains(&waited),
            "wait {k}: {waited:?}, not within {least:?}..={most:?}"
        );
        if waited > base + std::time::Duration::from_millis(30) {
            lengthened += 1;
        }
    }
    // Random: the last three waits may each be lengthened by up to 100, 200 and 400 ms (and
    // all three by under 30 ms in about 1 run of 2500).
    assert!(lengthened > 0, "no wait lengthened: {attempts:?}");
}

/// The bodies the load test published (`n<node>p<connection>m<index>`), in the order they
/// appear in `raw`, whatever the framing around them.
fn bodies_in(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let digits = |from: usize| {
            bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        if bytes[i] == b'n' {
            let a = digits(i + 1);
            let p = i + 1 + a;
            if a > 0 && bytes.get(p) == Some(&b'p') {
                let b = digits(p + 1);
                let m = p + 1 + b;
                if b > 0 && bytes.get(m) == Some(&b'm') {
                    let c = digits(m + 1);
                    if c > 0 {
                        found.push(text[i..m + 1 + c].to_string());
                        i = m + 1 + c;
                        continue;
                    }
                }
            }
        }
        i += 1;
    }
    found
}

/// Reads `stream` until `count` load-test bodies have come (each read bounded by the read
/// timeout); returns them in order.
fn read_bodies(mut stream: std::net::TcpStream, count: usize) -> Vec<String> {
    use std::io::Read;
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // Bounded: every read brings at least a byte or fails the test.
    for _ in 0..10_000_000 {
        if bodies_in(&raw).len() >= count {
            break;
        }
        let n = stream.read(&mut buf).expect("a subscriber's read");
        assert!(n > 0, "closed after {} bodies", bodies_in(&raw).len());
        raw.extend_from_slice(&buf[..n]);
    }
    bodies_in(&raw)
}

/// Long-polls from the start until `count` load-test bodies have come.
fn poll_bodies(server: &Server, count: usize) -> Vec<String> {
    let mut got = Vec::new();
    let mut cursor = 0;
    let deadline = std::time::Instant::now() + 6 * READ_TIMEOUT;
    while got.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "long-poll got {}",
            got.len()
        );
        let request = format!("GET /msgbus/load?transport=longpoll&since={cursor} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let answer = server.exchange(request.as_bytes());
        assert!(!answer.contains("missed"), "{answer}");
        if answer.contains("\"cursor\":") {
            cursor = json_number(&answer, "cursor");
        }
        got.extend(bodies_in(answer.as_bytes()));
    }
    got
}

/// Three nodes, each with a multipart, an SSE, a WebSocket and a long-poll subscriber, and two
/// publishing connections on each node at once: every subscriber gets every message exactly
/// once, all in the same order, and the ids are the stream's sequence without a gap.
#[test]
fn thousands_published_on_three_nodes_arrive_once_in_one_order_everywhere() {
    use std::io::Write;
    const PER_CONNECTION: usize = 500;
    const CONNECTIONS: usize = 2;
    let total = 3 * CONNECTIONS * PER_CONNECTION;
    let nats = Nats::start();
    // A long-poller between two polls may fall behind by more than the default history.
    let nodes: Vec<Server> = ["a", "b", "c"]
        .iter()
        .map(|n| node_with(&nats, n, &["--history", "10000"]))
        .collect();
    let ws_key = "dGhlIHNhbXBsZSBub25jZQ==";
    let ws_head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        msgbus::transport::websocket::accept_key(ws_key)
    );
    let sse_head = SSE_HEAD.to_string();
    let mut readers = Vec::new();
    for (i, server) in nodes.iter().enumerate() {
        let streams = [
            ("multipart", "GET /msgbus/load HTTP/1.1\r\nHost: t\r\n\r\n".to_string(), HEAD_11.to_string()),
            ("sse", "GET /msgbus/load HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n".to_string(), sse_head.clone()),
            ("websocket", format!("GET /msgbus/load HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {ws_key}\r\nSec-WebSocket-Version: 13\r\n\r\n"), ws_head.clone()),
        ];
        for (what, request, head) in streams {
            let stream = subscribe(server, &request, &head);
            let name = format!("{what} on node {i}");
            readers.push((name, std::thread::spawn(move || read_bodies(stream, total))));
        }
    }
    let mut sse_ids = None;
    std::thread::scope(|scope| {
        let polls: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, server)| {
                (
                    format!("long-poll on node {i}"),
                    scope.spawn(move || poll_bodies(server, total)),
                )
            })
            .collect();
        // The SSE subscriber on node a also keeps the ids.
        let ids_reader = {
            let stream = subscribe(
                &nodes[0],
                "GET /msgbus/load HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
                SSE_HEAD,
            );
            scope.spawn(move || {
                use std::io::Read;
                let mut stream = stream;
                let mut raw = String::new();
                let mut buf = vec![0u8; 64 * 1024];
                for _ in 0..10_000_000 {
                    if raw.matches("\n\n").count() >= total {
                        break;
                    }
                    let n = stream.read(&mut buf).expect("read");
                    assert!(n > 0);
                    raw.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                raw.split("\n\n")
                    .filter_map(|e| {
                        e.strip_prefix("id: ")?
                            .split('\n')
                            .next()?
                            .parse::<u64>()
                            .ok()
                    })
                    .collect::<Vec<u64>>()
            })
        };
        let publishers: Vec<_> = nodes
            .iter()
            .enumerate()
            .flat_map(|(n, server)| (0..CONNECTIONS).map(move |p| (n, p, server)))
            .map(|(n, p, server)| {
                scope.spawn(move || {
                    let mut conn = server.connect();
                    let mut ids = Vec::new();
                    for m in 0..PER_CONNECTION {
                        let body = format!("n{n}p{p}m{m}");
                        let request = format!("POST /msgbus/load HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                        conn.write_all(request.as_bytes()).unwrap();
                        let head = String::from_utf8(read_until(&mut conn, b"\r\n\r\n")).unwrap();
                        assert!(head.starts_with("HTTP/1.1 204 "), "{head}");
                        ids.push(header_value(&head, "Msgbus-Id").parse::<u64>().unwrap());
                    }
                    ids
                })
            })
            .collect();
        let mut acknowledged: Vec<u64> = publishers
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect();
        acknowledged.sort_unstable();
        assert_eq!(acknowledged, (1..=total as u64).collect::<Vec<_>>());
        let first = readers.remove(0);
        let order = first.1.join().unwrap();
        assert_eq!(order.len(), total, "{}", first.0);
        let mut unique = order.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), total, "{}: a message twice", first.0);
        let streamed: Vec<_> = readers
            .drain(..)
            .map(|(name, r)| (name, r.join().unwrap()))
            .collect();
        let polled = polls.into_iter().map(|(name, r)| (name, r.join().unwrap()));
        for (name, got) in streamed.into_iter().chain(polled) {
            assert!(
                got == order,
                "{name}: not the same messages in the same order as {}",
                first.0
            );
        }
        sse_ids = Some(ids_reader.join().unwrap());
    });
    assert_eq!(sse_ids.unwrap(), (1..=total as u64).collect::<Vec<_>>());
}

/// A free loopback port for a nats-server's cluster routes (held by nothing once returned).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Publishes `body` on `server`, again while the cluster answers 503 (a NATS server went away
/// and the node is moving to another, or JetStream elects new leaders): the id it was
/// acknowledged with.
fn publish_until_stored(server: &Server, body: &str) -> u64 {
    let deadline = std::time::Instant::now() + 3 * READ_TIMEOUT;
    for _ in 0..1000 {
        let answer = server.publish("room", "text/plain", body.as_bytes());
        if answer.starts_with("HTTP/1.1 204 ") {
            return header_value(&answer, "Msgbus-Id").parse().unwrap();
        }
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(
            std::time::Instant::now() < deadline,
            "still 503: {answer}\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{body} never stored");
}

/// Three nats-servers in one JetStream cluster, the stream replicated on all three
/// (`--nats-replicas 3`); the server one node is attached to is killed mid-stream. The node
/// moves to another, publishing goes on, and every acknowledged message reaches a subscriber
/// on the other node once, in order.
#[test]
fn a_replicated_stream_outlives_one_of_three_nats_servers() {
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let all_routes = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut servers: Vec<Nats> = routes
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let name = format!("n{i}");
            let cluster = format!("nats://127.0.0.1:{port}");
            Nats::with(&[
                "-js",
                "-n",
                &name,
                "--cluster_name",
                "msgbus-test",
                "--cluster",
                &cluster,
                "--routes",
                &all_routes,
            ])
        })
        .collect();
    let urls: Vec<String> = servers.iter().map(Nats::url).collect();
    let start = |name: &str, order: [usize; 3]| {
        let mut args = vec!["--node-name", name, "--nats-replicas", "3"];
        for i in order {
            args.extend(["--nats", urls[i].as_str()]);
        }
        let server = Server::start(&args);
        server.wait_for_log("caught up with the stream", 1);
        server
    };
    let a = start("a", [0, 1, 2]);
    let b = start("b", [1, 2, 0]);
    let mut on_b = sse(&b, "");
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let body = format!("k{i}");
        acknowledged.push((publish_until_stored(&a, &body), body));
    }
    // The server a is attached to goes.
    let log = a.log();
    let attached = servers
        .iter()
        .position(|s| log.contains(&format!("JetStream at 127.0.0.1:{} ", s.port)))
        .expect("a says where it joined");
    servers[attached].kill();
    for i in 10..20 {
        let body = format!("k{i}");
        acknowledged.push((publish_until_stored(&a, &body), body));
    }
    assert!(a.log().contains("joined the cluster again"), "{}", a.log());
    // Everything acknowledged arrives, once each and in id order (a publish refused as the
    // server went may have been stored all the same, and arrives too).
    let mut seen = Vec::new();
    // JetStream elects new leaders and b's consumer may be made anew (4 s of silence first):
    // that can take longer than one read's timeout, so the wait is bounded as a whole.
    let raw = read_until_within(&mut on_b, b"data: k19\n\n", 4 * READ_TIMEOUT);
    let text = String::from_utf8_lossy(&raw);
    for event in text.split("\n\n") {
        let mut lines = event.lines();
        let (Some(id), Some(data)) = (lines.next(), lines.next()) else {
            continue;
        };
        let (Some(id), Some(data)) = (id.strip_prefix("id: "), data.strip_prefix("data: ")) else {
            continue;
        };
        seen.push((id.parse::<u64>().unwrap(), data.to_string()));
    }
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
    for ack in &acknowledged {
        assert!(seen.contains(ack), "{ack:?} not in {seen:?}");
    }
}

/// The doors' channel state stays per node in a cluster (documented): a martd `one2one`
/// channel is one-to-one on the node whose publish made it so, where its first delivery
/// consumes a message; other nodes keep the channel as a plain one and hand the message to
/// every reader.
#[test]
fn martd_one2one_holds_on_the_publishing_node_only() {
    let nats = Nats::start();
    let a = node_with(&nats, "a", &["--martd"]);
    let b = node_with(&nats, "b", &["--martd"]);
    let published = a.post("/pub?channel=job&one2one=true", "", b"work");
    assert!(published.starts_with("HTTP/1.1 200 "), "{published}");
    let take = |server: &Server, cid: &str| {
        let request =
            format!("GET /sub?cid={cid}&job=0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        server.exchange(request.as_bytes())
    };
    // Every worker gets it (a /sub is held until the message reaches the node), once on a.
    assert!(take(&a, "w1").contains("\"payload\":[\"work\"]"));
    assert!(take(&b, "w2").contains("\"payload\":[\"work\"]"));
    assert!(
        take(&b, "w4").contains("\"payload\":[\"work\"]"),
        "b is not one2one"
    );
    // On a, where the channel was made one2one, a second worker finds nothing left: it is held.
    let mut late = a.connect();
    std::io::Write::write_all(
        &mut late,
        b"GET /sub?cid=w3&job=0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_silent(&mut late, std::time::Duration::from_millis(300));
}

/// Publishes pipelined on one connection all go to the stream without waiting for each other's
/// PubAck, and their answers come back in request order with the ids the stream gave, one
/// more each; a subscriber on the other node gets them in that order.
#[test]
fn pipelined_publishes_are_answered_in_order_with_the_streams_ids() {
    use std::io::Write;
    const COUNT: usize = 200;
    let nats = Nats::start();
    let a = node_with(&nats, "a", &["--history", "1000"]);
    let b = node_with(&nats, "b", &["--history", "1000"]);
    let mut publisher = a.connect();
    let mut requests = Vec::new();
    for n in 0..COUNT {
        let body = format!("n0p0m{n}");
        requests.extend_from_slice(
            format!(
                "POST /msgbus/load HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    publisher.write_all(&requests).unwrap();
    // Bodiless 204s, read until all have come (each read bounded by the read timeout).
    let mut raw = Vec::new();
    for _ in 0..10_000 {
        let text = String::from_utf8_lossy(&raw);
        if text.matches("\r\n\r\n").count() >= COUNT {
            break;
        }
        let mut chunk = [0u8; 8192];
        let n = std::io::Read::read(&mut publisher, &mut chunk).expect("answers in time");
        assert!(n > 0, "closed after {text}");
        raw.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(raw).unwrap();
    let heads: Vec<&str> = text.split_terminator("\r\n\r\n").collect();
    assert_eq!(heads.len(), COUNT);
    let mut ids = Vec::new();
    for head in heads {
        assert!(head.starts_with("HTTP/1.1 204 "), "{head}");
        ids.push(
            header_value(&format!("{head}\r\n\r\n"), "Msgbus-Id")
                .parse::<u64>()
                .unwrap(),
        );
    }
    let first = ids[0];
    let want: Vec<u64> = (first..first + COUNT as u64).collect();
    assert_eq!(ids, want);
    let want_bodies: Vec<String> = (0..COUNT).map(|n| format!("n0p0m{n}")).collect();
    assert_eq!(poll_bodies(&b, COUNT), want_bodies);
}

/// Simple-Comet's channel registrations are per node (documented): a channel registered on
/// one node is unknown to the door on another, which answers as the original does for a channel
/// never registered, while the door's own node publishes to it through the stream.
#[test]
fn simple_comet_registrations_are_per_node() {
    let nats = Nats::start();
    let a = node_with(&nats, "a", &["--simple-comet"]);
    let b = node_with(&nats, "b", &["--simple-comet"]);
    let body = |answer: String| answer.split_once("\r\n\r\n").unwrap().1.to_string();
    let created = body(a.post_form("/channels.json", "channel_id=room"));
    assert!(created.contains("\"return_code\": 1"), "{created}");
    assert_eq!(
        body(b.post_form("/channels/room.json", "content=hi")),
        r#"{"return_code": -2, "error_message": "Nonexistent channel"}"#
    );
    let sent = body(a.post_form("/channels/room.json", "content=hi"));
    assert!(sent.contains("\"return_code\": 1"), "{sent}");
    // Registering it on b too is allowed: b had no such channel.
    let again = body(b.post_form("/channels.json", "channel_id=room"));
    assert!(again.contains("\"return_code\": 1"), "{again}");
}

/// A node that joins when the stream already holds megabytes reads all of it before it takes
/// clients (with flow control, JetStream may ask it to confirm as it goes): a long-poll from the
/// start gets every message.
#[test]
fn a_node_joining_late_reads_a_large_stream_whole() {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 400;
    let nats = Nats::start();
    // Room for all of it in the window, and in one answer.
    let history = ["--history", "5000", "--max-queue", "67108864"];
    let a = node_with(&nats, "a", &history);
    let filler = "x".repeat(4 * 1024);
    std::thread::scope(|scope| {
        for p in 0..PUBLISHERS {
            let (a, filler) = (&a, &filler);
            scope.spawn(move || {
                use std::io::Write;
                let mut conn = a.connect();
                for m in 0..EACH {
                    let body = format!("n0p{p}m{m} {filler}");
                    let request = format!("POST /msgbus/load HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    conn.write_all(request.as_bytes()).unwrap();
                    let head = String::from_utf8(read_until(&mut conn, b"\r\n\r\n")).unwrap();
                    assert!(head.starts_with("HTTP/1.1 204 "), "{head}");
                }
            });
        }
    });
    let total = PUBLISHERS * EACH;
    let b = node_with(&nats, "b", &history);
    let request = "GET /msgbus/load?transport=longpoll&since=0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let answer = b.exchange(request.as_bytes());
    assert!(!answer.contains("missed"), "{}", &answer[..200]);
    assert_eq!(bodies_in(answer.as_bytes()).len(), total);
    assert_eq!(json_number(&answer, "cursor"), total as u64);
}

/// A node rebuilding its window keeps each message as from when the stream stored it: it
/// expires there when the stream drops it, not a lifetime after the node read it.
#[test]
fn a_rebuilt_window_expires_with_the_stream() {
    let nats = Nats::start();
    let lifetime = ["--message-lifetime", "2"];
    let a = node_with(&nats, "a", &lifetime);
    let published = std::time::Instant::now();
    assert_eq!(a.publish_id("room", b"short-lived"), 1);
    // What is tested is time passing: b reads the message a second after it was stored.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let b = node_with(&nats, "b", &lifetime);
    assert!(poll(&b, 0).contains("short-lived"));
    std::thread::sleep(
        (published + std::time::Duration::from_millis(2300))
            .saturating_duration_since(std::time::Instant::now()),
    );
    let later = poll(&b, 0);
    assert!(!later.contains("short-lived"), "{later}");
}

/// `tls://`: the node upgrades after NATS's INFO and checks the server's certificate against
/// `$SSL_CERT_FILE` (here the test's self-signed certificate).
#[test]
fn a_tls_url_joins_through_tls() {
    let dir = std::env::temp_dir().join(format!("msgbus-nats-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let nats = Nats::with(&[
        "-js",
        "--tls",
        "--tlscert",
        cert_file.to_str().unwrap(),
        "--tlskey",
        key_file.to_str().unwrap(),
    ]);
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let start = |name: &str, ca: &std::path::Path| {
        let mut command = Command::new(server_bin());
        command
            .args([
                "-l",
                "127.0.0.1",
                "-p",
                "0",
                "--nats",
                &url,
                "--node-name",
                name,
            ])
            .env("RUST_LOG", "info")
            .env("SSL_CERT_FILE", ca);
        Server::start_command(command)
    };
    let a = start("a", &cert_file);
    a.wait_for_log("caught up with the stream", 1);
    let b = start("b", &cert_file);
    b.wait_for_log("caught up with the stream", 1);
    let mut on_b = sse(&b, "");
    assert_eq!(a.publish_id("room", b"sealed"), 1);
    let want = event(1, "sealed");
    assert_eq!(read_same_len(&mut on_b, &want), want);
    // A certificate no CA of the node vouches for: refused, and said why.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let stranger = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .self_signed(&other)
        .unwrap();
    let stranger_file = dir.join("stranger.pem");
    std::fs::write(&stranger_file, stranger.pem()).unwrap();
    let c = start("c", &stranger_file);
    c.wait_for_log("NATS not reachable: invalid peer certificate", 1);
    assert!(!c.log().contains("joined the cluster"), "{}", c.log());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node that keeps less in memory than the stream (a smaller --max-retained-bytes) reads a
/// resuming client's older messages back from the stream: exactly the rest, no missed notice.
/// Only what the stream itself dropped (its per-channel limit, from --history) is reported.
#[test]
fn a_resume_older_than_the_window_is_read_back_from_the_stream() {
    let nats = Nats::start();
    let history = ["--history", "6"];
    let a = node_with(&nats, "a", &history);
    // About two messages' worth: b's window holds the last two.
    let b = node_with(
        &nats,
        "b",
        &[&history[..], &["--max-retained-bytes", "600"]].concat(),
    );
    for i in 1..=8 {
        assert_eq!(a.publish_id("room", format!("m{i}").as_bytes()), i);
    }
    let status = b.status();
    assert!(status.contains("\"retained\":2,"), "{status}");
    // The stream holds 3..=8: a cursor there gets the rest from it and the window.
    let mut resumed = sse(&b, "Last-Event-ID: 3\r\n");
    let want: String = (4..=8).map(|i| event(i, &format!("m{i}"))).collect();
    assert_eq!(read_same_len(&mut resumed, &want), want);
    assert_eq!(b.publish_id("room", b"m9"), 9);
    let want = event(9, "m9");
    assert_eq!(read_same_len(&mut resumed, &want), want);
    // The stream dropped 1..=3 (it keeps 6 of the channel): a cursor at 1 is told from where.
    let answer = poll(&b, 1);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let ids: Vec<&str> = body.matches("\"id\":").collect();
    assert_eq!(ids.len(), 6, "{answer}");
    assert!(
        body.starts_with("{\"messages\":[{\"id\":4,")
            && body.ends_with("],\"cursor\":9,\"missed\":{\"after\":1,\"oldest\":4}}\n"),
        "{answer}"
    );
}

/// A TCP relay between one node and NATS that the test can cut and mend: the node is away
/// from the cluster while the others go on.
struct Relay {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn to(nats: &Nats) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Relay {
            port,
            cut: Default::default(),
            stop: Default::default(),
            open: Default::default(),
        };
        let (cut, stop, open) = (relay.cut.clone(), relay.stop.clone(), relay.open.clone());
        let target = format!("127.0.0.1:{}", nats.port);
        std::thread::spawn(move || {
            // Ends when the relay is dropped (which connects once to wake it).
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: refused while cut
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let mut list = open.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        relay
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Closes the node's connections and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for sock in self.open.lock().unwrap().drain(..) {
            let _ = sock.shutdown(std::net::Shutdown::Both);
        }
    }

    fn mend(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut();
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The stream drops messages (its per-channel limit, from --history) while a node is away
/// from NATS: when it is back, its live subscribers are told exactly which sequences they may
/// have missed, in each transport's form, just before the message after them.
#[test]
fn live_subscribers_are_told_of_what_the_stream_dropped_while_their_node_was_away() {
    let nats = Nats::start();
    let relay = Relay::to(&nats);
    let history = ["--history", "2"];
    let a = {
        let url = relay.url();
        let args = [&["--nats", url.as_str(), "--node-name", "a"][..], &history].concat();
        let server = Server::start(&args);
        server.wait_for_log("caught up with the stream", 1);
        server
    };
    let b = node_with(&nats, "b", &history);
    let mut on_sse = sse(&a, "");
    let multipart = "GET /msgbus/room HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut on_multipart = subscribe(&a, multipart, HEAD_11);
    let mut on_ws = subscribe(
        &a,
        "GET /msgbus/room HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    );
    let mut held_poll = a.connect();
    let request = "GET /msgbus/room?transport=longpoll&since=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    assert_eq!(b.publish_id("room", b"m1"), 1);
    let want = event(1, "m1");
    assert_eq!(read_same_len(&mut on_sse, &want), want);
    let part = |body: &str| chunk(&format!("Content-Type: text/plain\n\n{body}--00MsgBus00\n"));
    let ws_text = |text: &str| [&[0x81, text.len() as u8][..], text.as_bytes()].concat();
    let read_ws = |stream: &mut std::net::TcpStream, want: &[u8]| {
        let mut got = vec![0; want.len()];
        std::io::Read::read_exact(stream, &mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    };
    assert_eq!(read_same_len(&mut on_multipart, &part("m1")), part("m1"));
    read_ws(&mut on_ws, &ws_text("m1"));
    std::io::Write::write_all(&mut held_poll, request.as_bytes()).unwrap();

    relay.cut();
    a.wait_for_log("cut off from NATS", 1);
    for i in 2..=5 {
        assert_eq!(b.publish_id("room", format!("m{i}").as_bytes()), i);
    }
    relay.mend();
    a.wait_for_log("joined the cluster again", 1);
    // The stream kept 4 and 5 of the channel: 2 and 3 are gone.
    let notice = "{\"after\":1,\"oldest\":4}";
    let want =
        format!("event: msgbus-missed\ndata: {notice}\n\n") + &event(4, "m4") + &event(5, "m5");
    assert_eq!(read_same_len(&mut on_sse, &want), want);
    let want = chunk("Msgbus-Missed: after=1, oldest=4\n") + &part("m4") + &part("m5");
    assert_eq!(read_same_len(&mut on_multipart, &want), want);
    let want = [
        ws_text(&format!("{{\"missed\":{notice}}}")),
        ws_text("m4"),
        ws_text("m5"),
    ];
    read_ws(&mut on_ws, &want.concat());
    let answer = String::from_utf8(read_to_end(&mut held_poll)).unwrap();
    assert!(
        answer.ends_with(&format!(
            "\r\n\r\n{{\"messages\":[],\"cursor\":3,\"missed\":{notice}}}\n"
        )),
        "{answer}"
    );
}

/// Reads `stream` until `needle` has come, waiting at most `limit` in all (single reads may
/// time out on the way); fails the test past it.
fn read_until_within(
    stream: &mut std::net::TcpStream,
    needle: &[u8],
    limit: std::time::Duration,
) -> Vec<u8> {
    use std::io::Read;
    let deadline = std::time::Instant::now() + limit;
    let mut raw = Vec::new();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    while !raw.windows(needle.len()).any(|w| w == needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {:?} within {limit:?}; got {}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&raw)
        );
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk) {
            Ok(0) => panic!("closed; got {}", String::from_utf8_lossy(&raw)),
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    raw
}
