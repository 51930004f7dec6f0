//! Several msgbus nodes joined through a real nats-server started by the test: publish on
//! each, receive on all; resume on another node; NATS going away and coming back; a node
//! restarted.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::*;

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n";

struct Nats {
    child: Guarded,
    port: u16,
}

impl Nats {
    /// Starts nats-server on a port it picks and reports.
    fn start() -> Nats {
        Nats::try_start("-1").expect("nats-server did not start")
    }

    /// Starts nats-server again on `port`, where a stopped one listened: a few tries, in case
    /// the port is not free again yet.
    fn restart_on(port: u16) -> Nats {
        let mut last = String::new();
        for _ in 0..5 {
            match Nats::try_start(&port.to_string()) {
                Ok(nats) => return nats,
                Err(why) => last = why,
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("nats-server did not start again on {port}: {last}");
    }

    /// Waits until it says where it listens and that it is ready, or exits, or the read timeout.
    fn try_start(port: &str) -> Result<Nats, String> {
        let mut command = Command::new("nats-server");
        command
            .args(["-a", "127.0.0.1", "-p", port])
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
            Ok(Ok(port)) => Ok(Nats { child, port }),
            Ok(Err(log)) => Err(log),
            Err(_) => Err(format!("not ready within {READ_TIMEOUT:?}")),
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(self) {
        // Guarded kills and reaps it.
        drop(self.child);
    }
}

fn node(nats: &Nats, name: &str) -> Server {
    let server = Server::start(&["--nats", &nats.url(), "--node-name", name]);
    server.wait_for_log("joined the cluster", 1);
    server
}

fn sse(server: &Server, extra: &str) -> std::net::TcpStream {
    let request =
        format!("GET /msgbus/room HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{extra}\r\n");
    subscribe(server, &request, SSE_HEAD)
}

#[test]
fn a_publish_on_any_node_reaches_subscribers_on_every_node_once() {
    let nats = Nats::start();
    let nodes: Vec<Server> = ["a", "b", "c"].iter().map(|n| node(&nats, n)).collect();
    let mut subs: Vec<_> = nodes.iter().map(|n| sse(n, "")).collect();
    for (i, publisher) in nodes.iter().enumerate() {
        let body = format!("from node {i}");
        let answer = publisher.publish("room", "text/plain", body.as_bytes());
        assert!(!answer.contains("Msgbus-Cluster"), "{answer}");
        let id = header_value(&answer, "Msgbus-Id");
        let want = format!("id: {id}\ndata: {body}\n\n");
        for sub in subs.iter_mut() {
            assert_eq!(read_same_len(sub, &want), want);
        }
    }
    // Nothing twice: a marker from the first node comes next everywhere. Through NATS it
    // follows any echo of the messages before it (NATS keeps order per connection), so an echo
    // of the last node's own message would show up before it on that node.
    let id = nodes[0].publish_id("room", b"marker");
    let want = format!("id: {id}\ndata: marker\n\n");
    for sub in subs.iter_mut() {
        assert_eq!(read_same_len(sub, &want), want);
    }
    let status = nodes[1].status();
    assert!(
        status.contains("\"cluster\":{\"connected\":true,\"forwarded\":1,\"received\":3,"),
        "{status}"
    );
}

#[test]
fn a_client_resumes_on_another_node() {
    let nats = Nats::start();
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    let mut watcher = sse(&b, "");
    let ids: Vec<u64> = (0..3)
        .map(|i| a.publish_id("room", format!("m{i}").as_bytes()))
        .collect();
    // Once b has them all, a client that saw only the first resumes on b.
    let last = format!("id: {}\ndata: m2\n\n", ids[2]);
    let seen = String::from_utf8(read_until(&mut watcher, last.as_bytes())).unwrap();
    assert!(seen.ends_with(&last), "{seen}");
    let mut resumed = sse(&b, &format!("Last-Event-ID: {}\r\n", ids[0]));
    let want = format!("id: {}\ndata: m1\n\nid: {}\ndata: m2\n\n", ids[1], ids[2]);
    assert_eq!(read_same_len(&mut resumed, &want), want);
    // Ids stay ordered across nodes: b's next local id comes after what it received.
    assert!(b.publish_id("room", b"local") > ids[2]);
}

#[test]
fn nats_going_away_keeps_local_delivery_and_reports_the_gap() {
    let nats = Nats::start();
    let port = nats.port;
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    let mut on_a = sse(&a, "");
    let mut on_b = sse(&b, "");
    let before = a.publish_id("room", b"before");
    let want = format!("id: {before}\ndata: before\n\n");
    assert_eq!(read_same_len(&mut on_b, &want), want);
    assert_eq!(read_same_len(&mut on_a, &want), want);
    nats.stop();
    a.wait_for_log("cut off from NATS", 1);
    let answer = a.publish("room", "text/plain", b"during");
    assert_eq!(header_value(&answer, "Msgbus-Cluster"), "local-only");
    let during = header_value(&answer, "Msgbus-Id");
    let want = format!("id: {during}\ndata: during\n\n");
    assert_eq!(read_same_len(&mut on_a, &want), want);
    // Back on the same port: both nodes rejoin with backoff.
    let _nats = Nats::restart_on(port);
    a.wait_for_log("joined the cluster", 2);
    b.wait_for_log("joined the cluster", 2);
    let after = a.publish_id("room", b"after");
    let want = format!("id: {after}\ndata: after\n\n");
    assert_eq!(read_same_len(&mut on_b, &want), want);
    // b never got "during": a client resuming on b from before the outage is told so.
    let request = format!("GET /msgbus/room?transport=longpoll&since={before} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let resumed = b.exchange(request.as_bytes());
    assert!(
        resumed.contains(&format!("\"missed\":{{\"after\":{before},")),
        "{resumed}"
    );
    assert!(resumed.contains("\"data\":\"after\""), "{resumed}");
    assert!(b.status().contains("\"disconnects\":1"));
}

#[test]
fn a_restarted_node_rejoins() {
    let nats = Nats::start();
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    assert!(b.terminate().success());
    let b = node(&nats, "b");
    let mut on_b = sse(&b, "");
    let id = a.publish_id("room", b"welcome back");
    let want = format!("id: {id}\ndata: welcome back\n\n");
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
        server.wait_for_log("joined the cluster", 1);
        server
    };
    // The first picks a free port; the second shares it.
    let a = shared("a", "0");
    let b = shared("b", &a.addr.port().to_string());
    assert_eq!(a.addr, b.addr);
    // Whichever process the kernel hands each connection to, every subscriber gets the message.
    let mut subs: Vec<_> = (0..8).map(|_| sse(&a, "")).collect();
    let id = b.publish_id("room", b"shared");
    let want = format!("id: {id}\ndata: shared\n\n");
    for sub in subs.iter_mut() {
        assert_eq!(read_same_len(sub, &want), want);
    }
}

/// `--nats` given twice: the first server is not there, so the node joins through the second,
/// and its messages cross to a node attached to that one.
#[test]
fn a_second_nats_url_is_tried_when_the_first_is_away() {
    let nats = Nats::start();
    // A port that held a listener a moment ago and holds none now: nothing answers there.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let away = format!("nats://127.0.0.1:{}", gone.local_addr().unwrap().port());
    drop(gone);
    let a = Server::start(&["--nats", &away, "--nats", &nats.url(), "--node-name", "a"]);
    a.wait_for_log("joined the cluster", 1);
    let b = node(&nats, "b");
    let mut on_b = sse(&b, "");
    let id = a.publish_id("room", b"through the second");
    let want = format!("id: {id}\ndata: through the second\n\n");
    assert_eq!(read_same_len(&mut on_b, &want), want);
}

/// Starts nats-server with `extra` arguments (credentials) on a port it picks and reports.
fn nats_with(extra: &[&str]) -> Nats {
    let mut command = Command::new("nats-server");
    command
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = Guarded::spawn(&mut command, "nats-server (apt-get install nats-server)");
    let stderr = child.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut port = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("Listening for client connections on ").nth(1) {
                port = addr.trim().rsplit(':').next().and_then(|p| p.parse().ok());
            }
            if line.contains("Server is ready") {
                let _ = tx.send(port);
            }
        }
    });
    match rx.recv_timeout(READ_TIMEOUT) {
        Ok(Some(port)) => Nats { child, port },
        _ => panic!("nats-server {extra:?} did not start"),
    }
}

/// A node whose NATS URL carries `auth` (`user:pass` or a token) before the address.
fn node_with(nats: &Nats, auth: &str, name: &str) -> Server {
    let url = format!("nats://{auth}@127.0.0.1:{}", nats.port);
    Server::start(&["--nats", &url, "--node-name", name])
}

/// A node with the right credentials joins and its messages cross; one with wrong ones is
/// refused by NATS (the node logs that NATS is not reachable and tries again) and answers
/// publishes as a cut-off node does (`local-only`, delivered to its own subscribers).
fn credentials_are_sent(nats: &Nats, right: &str, wrong: &str) {
    let a = node_with(nats, right, "a");
    a.wait_for_log("joined the cluster", 1);
    let b = node_with(nats, right, "b");
    b.wait_for_log("joined the cluster", 1);
    let mut on_b = sse(&b, "");
    let id = a.publish_id("room", b"with credentials");
    let want = format!("id: {id}\ndata: with credentials\n\n");
    assert_eq!(read_same_len(&mut on_b, &want), want);

    let c = node_with(nats, wrong, "c");
    // Refused twice. NATS says why (`-ERR 'Authorization Violation'`) and closes at once; the
    // node reads what came before the close, so it logs the reason.
    c.wait_for_log("NATS not reachable: ", 2);
    c.wait_for_log("Authorization Violation", 2);
    assert!(!c.log().contains("joined the cluster"), "{}", c.log());
    let mut on_c = sse(&c, "");
    let answer = c.publish("room", "text/plain", b"refused");
    assert!(answer.starts_with("HTTP/1.1 204 "), "{answer}");
    assert_eq!(header_value(&answer, "Msgbus-Cluster"), "local-only");
    let id = header_value(&answer, "Msgbus-Id");
    let want = format!("id: {id}\ndata: refused\n\n");
    assert_eq!(read_same_len(&mut on_c, &want), want);
    let status = c.status();
    assert!(
        status.contains("\"cluster\":{\"connected\":false,\"forwarded\":0,\"received\":0,\"not_forwarded\":1,\"disconnects\":0}"),
        "{status}"
    );
}

#[test]
fn a_user_and_password_in_the_nats_url_are_sent() {
    let nats = nats_with(&["--user", "u", "--pass", "p"]);
    credentials_are_sent(&nats, "u:p", "u:wrong");
}

#[test]
fn a_token_in_the_nats_url_is_sent() {
    let nats = nats_with(&["--auth", "s3cret"]);
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

/// After a known sequence (two messages from a, one from b, NATS gone, one more from a), each
/// node's /metrics says exactly that.
#[test]
fn the_cluster_metrics_count_what_crossed() {
    let nats = Nats::start();
    let a = node(&nats, "a");
    let b = node(&nats, "b");
    assert_eq!(cluster_metrics(&a), metrics(1, 0, 0, 0, 0));
    let mut on_a = sse(&a, "");
    let mut on_b = sse(&b, "");
    for body in ["a1", "a2"] {
        let id = a.publish_id("room", body.as_bytes());
        let want = format!("id: {id}\ndata: {body}\n\n");
        assert_eq!(read_same_len(&mut on_a, &want), want);
        assert_eq!(read_same_len(&mut on_b, &want), want);
    }
    let id = b.publish_id("room", b"b1");
    let want = format!("id: {id}\ndata: b1\n\n");
    assert_eq!(read_same_len(&mut on_b, &want), want);
    assert_eq!(read_same_len(&mut on_a, &want), want);
    assert_eq!(cluster_metrics(&a), metrics(1, 2, 1, 0, 0));
    assert_eq!(cluster_metrics(&b), metrics(1, 1, 2, 0, 0));
    nats.stop();
    a.wait_for_log("cut off from NATS", 1);
    b.wait_for_log("cut off from NATS", 1);
    let answer = a.publish("room", "text/plain", b"a3");
    assert_eq!(header_value(&answer, "Msgbus-Cluster"), "local-only");
    assert_eq!(cluster_metrics(&a), metrics(0, 2, 1, 1, 1));
    assert_eq!(cluster_metrics(&b), metrics(0, 1, 2, 0, 1));
}

/// After NATS goes away the node tries again after 0.1 s, then after twice as long each time,
/// each wait lengthened by up to half at random: each attempt is logged, and the test takes
/// the time it reads each line. The first five waits (about 3 s in all) are checked.
#[test]
fn reconnect_attempts_back_off_doubling_with_jitter() {
    let nats = Nats::start();
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
    while !next_line().1.contains("joined the cluster") {}
    nats.stop();
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
