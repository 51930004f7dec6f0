//! eventsource-broker's AMQP side against a real RabbitMQ that the test starts on 127.0.0.1
//! (Debian's rabbitmq-server, its own epmd, node name, ports and data directory; no plugins),
//! with a publisher and a consumer written with pika, a standard AMQP client library: exchange
//! messages reach the door's subscribers on every node once, door publishes reach the exchange,
//! bad messages are acknowledged and counted, and a RabbitMQ restart loses nothing it holds.
//! With `--esb-native-channels`, exchange messages reach native subscribers holding a token for
//! `esb/K/C` too; and a message RabbitMQ delivers again after the bus took it is not delivered
//! twice.
//!
//! If rabbitmq-server or pika cannot be started at all, each test says so and passes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use msgbus::auth::JwtKey;

const HEAD: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
const PING: &str = "event:ping\ndata:{}\n\n";
const EXCHANGE: &str = "eventsource.fanout";
/// RabbitMQ boots in a few seconds; on a loaded machine it may take longer.
const RABBIT_START: Duration = Duration::from_secs(90);

/// Publishes each argument after the URL as one persistent message on the exchange, declared
/// as eventsource-broker declares it (fanout, not durable).
const PUBLISHER: &str = r#"
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = c.channel()
ch.exchange_declare(exchange=sys.argv[2], exchange_type="fanout", durable=False)
for body in sys.argv[3:]:
    ch.basic_publish(exchange=sys.argv[2], routing_key="", body=body.encode(),
                     properties=pika.BasicProperties(delivery_mode=2))
c.close()
"#;

/// Binds a queue of its own, says `ready`, then prints each message's app_id and body.
const CONSUMER: &str = r#"
import sys, pika
c = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = c.channel()
ch.exchange_declare(exchange=sys.argv[2], exchange_type="fanout", durable=False)
q = ch.queue_declare(queue="", exclusive=True).method.queue
ch.queue_bind(queue=q, exchange=sys.argv[2])
print("ready", flush=True)
for method, props, body in ch.consume(q, auto_ack=True):
    print(props.app_id, body.decode(), flush=True)
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A RabbitMQ node of the test's own, and the epmd it registers with.
struct Rabbit {
    dir: PathBuf,
    name: String,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    /// Ended (and so RabbitMQ's registration with it) when the test is done.
    _epmd: Guarded,
    server: Option<Guarded>,
}

impl Rabbit {
    /// Starts a node, or says why it cannot and returns None (the test then passes).
    fn start(test: &str) -> Option<Rabbit> {
        Rabbit::start_with(test, "")
    }

    /// The same with `conf` as its rabbitmq.conf.
    fn start_with(test: &str, conf: &str) -> Option<Rabbit> {
        let have = |what: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {what}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let pika = Command::new("python3")
            .args(["-c", "import pika"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() || !have("epmd") || !pika {
            println!("SKIPPED: rabbitmq-server, epmd or python3-pika missing (apt-get install rabbitmq-server; pip install pika)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("msgbus-rabbit-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home")).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.join("rabbitmq.conf"), conf).unwrap();
        let epmd_port = free_port();
        let mut command = Command::new("epmd");
        command
            .args(["-port", &epmd_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let epmd = Guarded::spawn(&mut command, "epmd");
        let mut rabbit = Rabbit {
            name: format!("msgbus-{test}-{}@localhost", std::process::id()),
            port: free_port(),
            dist_port: free_port(),
            epmd_port,
            _epmd: epmd,
            server: None,
            dir,
        };
        match rabbit.boot() {
            Ok(()) => Some(rabbit),
            Err(log) => {
                println!("SKIPPED: rabbitmq-server did not start:\n{log}");
                None
            }
        }
    }

    /// Starts rabbitmq-server (again) on the same ports and data, and waits until it is ready.
    fn boot(&mut self) -> Result<(), String> {
        let mut command = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        let path = |name: &str| self.dir.join(name).display().to_string();
        command
            .env("HOME", path("home"))
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", path("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", path("advanced.config"))
            .env("RABBITMQ_PID_FILE", path("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut server = Guarded::spawn_group(&mut command, "rabbitmq-server");
        let stdout = server.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut log = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                log += &line;
                log.push('\n');
                if line.contains("Server startup complete") {
                    let _ = tx.send(Ok(()));
                }
            }
            let _ = tx.send(Err(log));
        });
        let ready = rx
            .recv_timeout(RABBIT_START)
            .unwrap_or_else(|_| Err(format!("not ready within {RABBIT_START:?}")));
        self.server = Some(server);
        ready
    }

    /// Stops the node as its service would (SIGTERM), waiting until it has written its state.
    fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        // SAFETY: signalling the process group this test started, its leader not yet reaped.
        unsafe { libc::kill(-(server.id() as i32), libc::SIGTERM) };
        server.wait(Duration::from_secs(60));
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/", self.port)
    }

    /// Publishes `bodies` with pika.
    fn publish(&self, bodies: &[&str]) {
        let mut command = Command::new("python3");
        command
            .args(["-c", PUBLISHER, &self.url(), EXCHANGE])
            .args(bodies)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out =
            Guarded::spawn(&mut command, "python3 (pika publisher)").wait_with_output(READ_TIMEOUT);
        assert!(
            out.status.success(),
            "pika publisher: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A pika consumer on a queue of its own, bound and ready.
    fn consumer(&self) -> (Guarded, mpsc::Receiver<String>) {
        let mut command = Command::new("python3");
        command
            .args(["-c", CONSUMER, &self.url(), EXCHANGE])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = Guarded::spawn(&mut command, "python3 (pika consumer)");
        let stdout = child.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        assert_eq!(rx.recv_timeout(READ_TIMEOUT).as_deref(), Ok("ready"));
        (child, rx)
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn users_file(test: &str) -> PathBuf {
    let users =
        std::env::temp_dir().join(format!("msgbus-amqp-users-{test}-{}", std::process::id()));
    std::fs::write(&users, "k1:s3cret\nk2:other\n").unwrap();
    users
}

/// A msgbus node with the eventsource-broker door attached to `rabbit`, consuming.
fn node(rabbit: &Rabbit, users: &Path, extra: &[&str]) -> Server {
    node_via(&rabbit.url(), users, extra)
}

/// The same attached to the broker at `url`.
fn node_via(url: &str, users: &Path, extra: &[&str]) -> Server {
    let users = users.display().to_string();
    let args = [&["--esb-users", users.as_str(), "--amqp", url], extra].concat();
    let server = Server::start(&args);
    server.wait_for_log("consuming AMQP exchange", 1);
    server
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").unwrap().1
}

fn create_socket(server: &Server, channel: &str) -> String {
    let answer = server.post_form(
        "/socket",
        &format!("{}&channel={channel}", esb_credentials("k1", "s3cret")),
    );
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let json = body(&answer);
    json.split("\"socket\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// An event stream on k1's `channel`, past its first ping.
fn stream(server: &Server, channel: &str) -> Events {
    let socket = create_socket(server, channel);
    Events::new(subscribe(
        server,
        &format!("GET /eventsource?socket={socket} HTTP/1.1\r\nHost: t\r\n\r\n"),
        &format!("{HEAD}{PING}"),
    ))
}

/// An event stream read event by event (several may come in one read).
struct Events {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Events {
    fn new(stream: TcpStream) -> Events {
        Events {
            stream,
            buffer: Vec::new(),
        }
    }

    /// The next event past keep-alive pings (one comes every 9 idle seconds, and a RabbitMQ
    /// restart takes longer), its id (msgbus's, 24 hex digits) replaced by `ID`.
    fn next(&mut self) -> String {
        for _ in 0..1000 {
            let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") else {
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).expect("an event in time");
                assert!(
                    n > 0,
                    "closed; got {:?}",
                    String::from_utf8_lossy(&self.buffer)
                );
                self.buffer.extend_from_slice(&chunk[..n]);
                continue;
            };
            let event: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let event = String::from_utf8(event).unwrap();
            if event == PING {
                continue;
            }
            let start = event
                .find("id:")
                .unwrap_or_else(|| panic!("no id in {event:?}"))
                + 3;
            let id = &event[start..start + 24];
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{event:?}");
            return event.replacen(id, "ID", 1);
        }
        panic!("no event in 1000 reads");
    }

    /// Nothing more comes for `wait`.
    fn assert_silent(&mut self, wait: Duration) {
        assert!(
            self.buffer.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&self.buffer)
        );
        assert_silent(&mut self.stream, wait);
    }
}

/// A `msgbus_amqp_*` value from /metrics.
fn amqp_metric(server: &Server, name: &str) -> u64 {
    let all = server.exchange(b"GET /metrics HTTP/1.0\r\n\r\n");
    let prefix = format!("msgbus_amqp_{name} ");
    all.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {all}"))
        .parse()
        .unwrap()
}

/// Waits until metric `name` satisfies `ok` (each look is one round trip; bounded by the read
/// timeout and a count).
fn wait_for_metric(server: &Server, name: &str, ok: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + READ_TIMEOUT;
    for _ in 0..10_000 {
        let value = amqp_metric(server, name);
        if ok(value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "msgbus_amqp_{name} is still {value}"
        );
    }
    panic!("msgbus_amqp_{name} never got there");
}

#[test]
fn exchange_messages_reach_every_node_once_and_door_publishes_reach_the_exchange() {
    let Some(rabbit) = Rabbit::start("both") else {
        return;
    };
    let users = users_file("both");
    let a = node(&rabbit, &users, &[]);
    let b = node(&rabbit, &users, &[]);
    let mut on_a = stream(&a, "chat");
    let mut on_b = stream(&b, "chat");
    let mut other_channel = stream(&a, "news");
    let (_consumer, consumed) = rabbit.consumer();

    // From a publisher on the exchange: once on each node, with its name and its lines.
    rabbit.publish(&[
        r#"{"channel":"chat","user":"k2","data":"for another key"}"#,
        r#"{"channel":"chat","user":"k1","data":"hello\nworld","id":"x","name":"greet"}"#,
    ]);
    let want = "event:greet\nid:ID\ndata:hello\ndata:world\n\n";
    assert_eq!(on_a.next(), want);
    assert_eq!(on_b.next(), want);
    for _ in 0..2 {
        assert_eq!(
            consumed
                .recv_timeout(READ_TIMEOUT)
                .map(|l| l.starts_with("None {")),
            Ok(true)
        );
    }

    // A door publish on A: A's subscribers at once, B's through the exchange, and the exchange's
    // other consumers see the original's JSON marked with A's node id.
    let form = format!(
        "{}&channel=chat&data=from+a",
        esb_credentials("k1", "s3cret")
    );
    assert_eq!(body(&a.post_form("/event", &form)), "{}");
    assert_eq!(on_a.next(), "id:ID\ndata:from a\n\n");
    assert_eq!(on_b.next(), "id:ID\ndata:from a\n\n");
    let line = consumed.recv_timeout(READ_TIMEOUT).unwrap();
    let (app_id, json) = line.split_once(' ').unwrap();
    assert!(app_id.starts_with("msgbus-"), "{line}");
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        (
            &json["channel"],
            &json["user"],
            &json["data"],
            &json["name"]
        ),
        (
            &"chat".into(),
            &"k1".into(),
            &"from a".into(),
            &serde_json::Value::Null
        )
    );

    // A's own message came back to A through its queue: acknowledged, not delivered twice.
    wait_for_metric(&a, "own_total", |n| n == 1);
    // k2's message, k1's, and A's publish.
    assert_eq!(amqp_metric(&b, "received_total"), 3);
    assert_eq!(amqp_metric(&a, "published_total"), 1);
    rabbit.publish(&[r#"{"channel":"chat","user":"k1","data":"last"}"#]);
    assert_eq!(on_a.next(), "id:ID\ndata:last\n\n");
    assert_eq!(on_b.next(), "id:ID\ndata:last\n\n");
    other_channel.assert_silent(Duration::from_millis(200));
    on_a.assert_silent(Duration::from_millis(200));
    let _ = std::fs::remove_file(users);
}

#[test]
fn bad_messages_are_acknowledged_counted_and_logged() {
    let Some(rabbit) = Rabbit::start("bad") else {
        return;
    };
    let users = users_file("bad");
    // One message in flight at a time: a bad one left unacknowledged would hold back the rest.
    let a = node(
        &rabbit,
        &users,
        &["--amqp-prefetch", "1", "--max-body", "200"],
    );
    let mut on_a = stream(&a, "chat");
    let big = format!(
        r#"{{"channel":"chat","user":"k1","data":"{}"}}"#,
        "x".repeat(300)
    );
    rabbit.publish(&[
        &big,
        "not json",
        r#"{"channel":"chat","data":"no user"}"#,
        r#"{"channel":"chat","user":"k1","data":5}"#,
        "{\"channel\":\"chat\",\"user\":\"k1\",\"data\":\"x\",\"name\":\"a\\r\\nid: 1\"}",
        "{\"channel\":\"ch\\nat\",\"user\":\"k1\",\"data\":\"x\"}",
        r#"{"channel":"chat","user":"k:1","data":"x"}"#,
        r#"{"channel":"chat","user":"k1","data":"good"}"#,
    ]);
    assert_eq!(on_a.next(), "id:ID\ndata:good\n\n");
    assert_eq!(amqp_metric(&a, "bad_total"), 7);
    assert_eq!(amqp_metric(&a, "received_total"), 1);
    // Said once; the rest within the second are counted, and said with the next warning.
    a.wait_for_log("AMQP message dropped: too large", 1);
    assert_eq!(a.log().matches("AMQP message dropped").count(), 1);

    // A refused login is named in the log, and the node keeps trying (and serving).
    let wrong = format!("amqp://guest:wrong@127.0.0.1:{}/", rabbit.port);
    let users_arg = users.display().to_string();
    let refused = Server::start(&["--esb-users", &users_arg, "--amqp", &wrong]);
    refused.wait_for_log(
        "the AMQP broker closed the connection: 403 ACCESS_REFUSED",
        2,
    );
    assert_eq!(amqp_metric(&refused, "connected"), 0);
    on_a.assert_silent(Duration::from_millis(200));
    let _ = std::fs::remove_file(users);
}

#[test]
fn a_rabbitmq_restart_loses_nothing_it_holds() {
    let Some(mut rabbit) = Rabbit::start("restart") else {
        return;
    };
    let users = users_file("restart");
    let queue = ["--amqp-queue", "msgbus-test-node"];
    let a = node(&rabbit, &users, &queue);
    let mut on_a = stream(&a, "chat");
    rabbit.publish(&[r#"{"channel":"chat","user":"k1","data":"one"}"#]);
    assert_eq!(on_a.next(), "id:ID\ndata:one\n\n");

    // RabbitMQ goes away mid-stream: the subscriber stays, door publishes still reach it.
    rabbit.stop();
    a.wait_for_log("cut off from AMQP", 1);
    let form = format!(
        "{}&channel=chat&data=local",
        esb_credentials("k1", "s3cret")
    );
    assert_eq!(body(&a.post_form("/event", &form)), "{}");
    assert_eq!(on_a.next(), "id:ID\ndata:local\n\n");
    assert_eq!(amqp_metric(&a, "not_published_total"), 1);
    rabbit.boot().expect("rabbitmq-server starts again");
    a.wait_for_log("consuming AMQP exchange", 2);
    rabbit.publish(&[r#"{"channel":"chat","user":"k1","data":"two"}"#]);
    assert_eq!(on_a.next(), "id:ID\ndata:two\n\n");
    assert_eq!(amqp_metric(&a, "disconnects_total"), 1);

    // What the node's durable queue holds while the node is away outlives a RabbitMQ restart
    // and is delivered when the node comes back.
    drop(on_a);
    let _ = a.terminate();
    rabbit.publish(&[
        r#"{"channel":"chat","user":"k1","data":"three"}"#,
        r#"{"channel":"chat","user":"k1","data":"four"}"#,
    ]);
    rabbit.stop();
    rabbit.boot().expect("rabbitmq-server starts again");
    let a = node(&rabbit, &users, &queue);
    wait_for_metric(&a, "received_total", |n| n == 2);
    let socket = create_socket(&a, "chat");
    let request = format!(
        "GET /eventsource?socket={socket} HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 000000000000000000000000\r\n\r\n"
    );
    let mut replay = Events::new(subscribe(&a, &request, HEAD));
    assert_eq!(replay.next(), "id:ID\ndata:three\n\n");
    assert_eq!(replay.next(), "id:ID\ndata:four\n\n");
    let _ = std::fs::remove_file(users);
}

#[test]
fn amqps_through_rustls() {
    let dir = std::env::temp_dir().join(format!("msgbus-amqps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let tls_port = free_port();
    let conf = format!(
        "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
         ssl_options.certfile = {cert}\n\
         ssl_options.keyfile = {key}\n\
         ssl_options.cacertfile = {cert}\n\
         ssl_options.verify = verify_none\n\
         ssl_options.fail_if_no_peer_cert = false\n",
        cert = cert_file.display(),
        key = key_file.display(),
    );
    let Some(rabbit) = Rabbit::start_with("tls", &conf) else {
        return;
    };
    let users = users_file("tls");
    let mut command = Command::new(server_bin());
    command
        .args(["-l", "127.0.0.1", "-p", "0", "--esb-users"])
        .arg(&users)
        .args([
            "--amqp",
            &format!("amqps://guest:guest@127.0.0.1:{tls_port}/"),
        ])
        .env("SSL_CERT_FILE", &cert_file)
        .env("RUST_LOG", "info");
    let a = Server::start_command(command);
    a.wait_for_log("consuming AMQP exchange", 1);
    let mut on_a = stream(&a, "chat");
    rabbit.publish(&[r#"{"channel":"chat","user":"k1","data":"over TLS"}"#]);
    assert_eq!(on_a.next(), "id:ID\ndata:over TLS\n\n");
    let form = format!("{}&channel=chat&data=back", esb_credentials("k1", "s3cret"));
    assert_eq!(body(&a.post_form("/event", &form)), "{}");
    assert_eq!(on_a.next(), "id:ID\ndata:back\n\n");
    wait_for_metric(&a, "own_total", |n| n == 1);
    let _ = std::fs::remove_file(users);
    let _ = std::fs::remove_dir_all(dir);
}

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n";

/// A token for `--jwt-secret sekrit` with these claims (an hour to live).
fn token(claims: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    JwtKey::new(b"sekrit").sign(&format!(r#"{{"exp":{exp},{claims}}}"#))
}

/// The next native SSE event, whole.
fn next_native(stream: &mut TcpStream) -> String {
    String::from_utf8(read_until(stream, b"\n\n")).unwrap()
}

#[test]
fn with_native_channels_exchange_messages_reach_native_subscribers_holding_a_token() {
    let Some(rabbit) = Rabbit::start("native") else {
        return;
    };
    let users = users_file("native");
    let a = node(
        &rabbit,
        &users,
        &["--esb-native-channels", "--jwt-secret", "sekrit"],
    );
    let mut door = stream(&a, "chat");
    let reader = token(r#""subscribe":["esb/k1/*"]"#);
    let request = format!(
        "GET /msgbus/esb/k1/chat?token={reader} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"
    );
    let mut native = subscribe(&a, &request, SSE_HEAD);
    let (_consumer, consumed) = rabbit.consumer();

    rabbit.publish(&[
        r#"{"channel":"chat","user":"k2","data":"for another key"}"#,
        r#"{"channel":"chat","user":"k1","data":"hello\nworld","name":"greet"}"#,
    ]);
    assert_eq!(
        door.next(),
        "event:greet\nid:ID\ndata:hello\ndata:world\n\n"
    );
    let got = next_native(&mut native);
    let id = got
        .strip_prefix("id: ")
        .and_then(|rest| rest.split('\n').next())
        .unwrap_or_else(|| panic!("no id in {got:?}"));
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{got:?}");
    assert_eq!(
        got,
        format!("id: {id}\nevent: greet\ndata: hello\ndata: world\n\n")
    );
    for _ in 0..2 {
        assert!(consumed.recv_timeout(READ_TIMEOUT).is_ok());
    }

    // Without a token, 401; with a grant for k2's channels only, 403.
    let bearer = "WWW-Authenticate: Bearer realm=\"msgbus\"\r\n";
    let k2_reader = token(r#""subscribe":["esb/k2/*"]"#);
    let cases = [
        (
            "/msgbus/esb/k1/chat".to_string(),
            "401 Unauthorized",
            "a token is required",
            bearer,
        ),
        (
            format!("/msgbus/esb/k1/chat?token={k2_reader}"),
            "403 Forbidden",
            "token does not allow you to subscribe to esb/k1/chat",
            "",
        ),
    ];
    for (target, status, reason, extra) in cases {
        let got = a.exchange(
            format!("GET {target} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let want = format!(
            "HTTP/1.1 {status}\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{reason}\n",
            reason.len() + 1
        );
        assert_eq!(got, want, "{target}");
    }

    // A native publish with a grant is k1's event: the door's subscribers and the exchange.
    let writer = token(r#""publish":["esb/k1/*"]"#);
    let answer = a.post(
        &format!("/msgbus/esb/k1/chat?token={writer}"),
        "Content-Type: text/plain\r\n",
        b"from native",
    );
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
    assert_eq!(door.next(), "id:ID\ndata:from native\n\n");
    assert!(next_native(&mut native).ends_with("\ndata: from native\n\n"));
    let line = consumed.recv_timeout(READ_TIMEOUT).unwrap();
    let json: serde_json::Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
    assert_eq!(
        (&json["user"], &json["channel"], &json["data"]),
        (&"k1".into(), &"chat".into(), &"from native".into())
    );
    // An exchange message whose user holds '/' would name another key's channel: bad.
    rabbit.publish(&[r#"{"channel":"chat","user":"k1/chat","data":"x"}"#]);
    wait_for_metric(&a, "bad_total", |n| n == 1);
    door.assert_silent(Duration::from_millis(200));
    assert_silent(&mut native, Duration::from_millis(10));
    let _ = std::fs::remove_file(users);
}

/// A TCP relay between msgbus and RabbitMQ that can drop what msgbus sends (its
/// acknowledgements) and cut every connection, as a network failure at the wrong moment would.
struct Relay {
    port: u16,
    swallow: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let swallow = Arc::new(AtomicBool::new(false));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let (swallow_, sockets_) = (Arc::clone(&swallow), Arc::clone(&sockets));
        std::thread::spawn(move || {
            // A few connections are all a test makes (one, and one after the cut).
            for _ in 0..8 {
                let Ok((client, _)) = listener.accept() else {
                    return;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let mut kept = sockets_.lock().unwrap();
                kept.push(client.try_clone().unwrap());
                kept.push(server.try_clone().unwrap());
                let up = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let swallow = Arc::clone(&swallow_);
                std::thread::spawn(move || pump(up.0, up.1, Some(swallow)));
                std::thread::spawn(move || pump(server, client, None));
            }
        });
        Relay {
            port,
            swallow,
            sockets,
        }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/", self.port)
    }

    /// Closes every connection relayed so far, both ways.
    fn cut(&self) {
        for socket in self.sockets.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` until either ends (or a bounded number of reads), dropping what it
/// reads while `swallow` is set.
fn pump(mut from: TcpStream, mut to: TcpStream, swallow: Option<Arc<AtomicBool>>) {
    let _ = from.set_read_timeout(Some(Duration::from_secs(120)));
    let mut buf = [0u8; 16 * 1024];
    for _ in 0..1_000_000 {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if swallow.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// The bus took a message and msgbus acknowledged it, but the acknowledgement was lost with the
/// connection: RabbitMQ delivers the message again, flagged redelivered, and msgbus
/// acknowledges it without delivering it a second time.
#[test]
fn a_redelivery_of_a_message_the_bus_took_is_not_delivered_twice() {
    let Some(rabbit) = Rabbit::start("redeliver") else {
        return;
    };
    let users = users_file("redeliver");
    let relay = Relay::start(rabbit.port);
    // A durable queue of its own: what is unacknowledged when the connection goes is kept
    // and delivered again (an exclusive queue would go with the connection).
    let a = node_via(
        &relay.url(),
        &users,
        &["--amqp-queue", "msgbus-test-redeliver"],
    );
    let mut on_a = stream(&a, "chat");

    relay.swallow.store(true, Ordering::SeqCst);
    rabbit.publish(&[r#"{"channel":"chat","user":"k1","data":"once"}"#]);
    assert_eq!(on_a.next(), "id:ID\ndata:once\n\n");
    // The bus took it and its acknowledgement went out (to be dropped): now the connection goes.
    relay.cut();
    relay.swallow.store(false, Ordering::SeqCst);
    a.wait_for_log("cut off from AMQP", 1);
    a.wait_for_log("consuming AMQP exchange", 2);
    wait_for_metric(&a, "redelivered_skipped_total", |n| n == 1);
    assert_eq!(amqp_metric(&a, "received_total"), 1);

    rabbit.publish(&[r#"{"channel":"chat","user":"k1","data":"next"}"#]);
    assert_eq!(on_a.next(), "id:ID\ndata:next\n\n");
    on_a.assert_silent(Duration::from_millis(200));
    assert_eq!(amqp_metric(&a, "redelivered_skipped_total"), 1);
    let _ = std::fs::remove_file(users);
}

/// With `--data-dir`, an exchange message is acknowledged only once the log has it, as a
/// client's publish is answered: killed at once after, the node replays it from its log, and
/// RabbitMQ, which had the acknowledgement, does not deliver it again.
#[test]
fn with_a_data_dir_an_exchange_message_is_acknowledged_once_logged() {
    let Some(rabbit) = Rabbit::start("durable") else {
        return;
    };
    let users = users_file("durable");
    let dir = std::env::temp_dir().join(format!("msgbus-amqp-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.display().to_string();
    let extra = [
        "--amqp-queue",
        "msgbus-durable-node",
        "--data-dir",
        &dir_arg,
    ];
    let a = node(&rabbit, &users, &extra);
    let mut on_a = stream(&a, "chat");
    rabbit.publish(&[r#"{"channel":"chat","user":"k1","data":"kept"}"#]);
    assert_eq!(on_a.next(), "id:ID\ndata:kept\n\n");
    wait_for_metric(&a, "received_total", |n| n == 1);
    drop(on_a);
    a.signal(libc::SIGKILL);
    drop(a);

    let a = node(&rabbit, &users, &extra);
    let socket = create_socket(&a, "chat");
    let request = format!(
        "GET /eventsource?socket={socket} HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 000000000000000000000000\r\n\r\n"
    );
    let mut replay = Events::new(subscribe(&a, &request, HEAD));
    assert_eq!(replay.next(), "id:ID\ndata:kept\n\n");
    // A message published now comes next: nothing was delivered again in between.
    rabbit.publish(&[r#"{"channel":"chat","user":"k1","data":"after"}"#]);
    assert_eq!(replay.next(), "id:ID\ndata:after\n\n");
    assert_eq!(amqp_metric(&a, "received_total"), 1);
    assert_eq!(amqp_metric(&a, "redelivered_skipped_total"), 0);
    let _ = std::fs::remove_file(users);
    let _ = std::fs::remove_dir_all(dir);
}
