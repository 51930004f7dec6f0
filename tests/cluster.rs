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
