//! Debian's nginx in front of msgbus, configured as the manual's example (TLS and HTTP/2 to the
//! client, HTTP/1.1 with upgrades and kept connections to msgbus, no buffering): SSE,
//! multipart, long-poll and publish go through it over HTTP/2 (curl), WebSocket over an
//! HTTP/1.1 upgrade (rustls), and the client's address reaches the access log through
//! X-Forwarded-For with `--trusted-proxy 127.0.0.1`.
//!
//! Needs nginx (`apt-get install nginx`; .ci/run installs it) and curl with HTTP/2.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// The client's side of the test connects from this loopback address, nginx from 127.0.0.1:
/// so the access log shows whose address it got.
const CLIENT_IP: &str = "127.0.0.2";

/// The manual's example, but for the addresses: the map that passes a WebSocket's upgrade
/// on (and no Connection header otherwise), and the location block.
const MAP: &str = r#"
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      '';
    }
"#;
const LOCATION: &str = r#"
        location /msgbus/ {
            proxy_pass http://msgbus;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
"#;

struct Nginx {
    process: Guarded,
    addr: SocketAddr,
    dir: PathBuf,
    cert_der: CertificateDer<'static>,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Ends nginx (by its pid, through the guard) before its files go.
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> String {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nginx")
        .to_string()
}

/// A port nobody listens on now (nginx binds it a moment later).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// Starts nginx in the foreground, everything it writes under a scratch directory,
    /// listening with TLS and HTTP/2 on a free loopback port, in front of `upstream`
    /// (`127.0.0.1:PORT` or `unix:PATH`).
    fn start(name: &str, upstream: &str) -> Nginx {
        let dir = std::env::temp_dir().join(format!("msgbus-nginx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let d = dir.display();
        let config = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{MAP}
    upstream msgbus {{
        server {upstream};
        keepalive 16;
    }}
    server {{
        listen {addr} ssl http2;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
{LOCATION}
    }}
}}
"#
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let mut command = Command::new(nginx_binary());
        command
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let process = Guarded::spawn(&mut command, "nginx (apt-get install nginx)");
        let mut nginx = Nginx {
            process,
            addr,
            cert_der: cert.der().clone(),
            dir,
        };
        // nginx says nothing when it is ready: connect until it answers, or it exits.
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if TcpStream::connect(addr).is_ok() {
                return nginx;
            }
            if let Ok(Some(status)) = nginx.process.child.try_wait() {
                let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "nginx never listened on {addr}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }
}

/// curl's output as it comes, read by a thread, so a test can wait for a piece of it.
struct Curl {
    process: Guarded,
    /// What curl wrote so far, and whether its output has ended.
    out: Arc<(Mutex<(Vec<u8>, bool)>, Condvar)>,
}

impl Curl {
    /// Runs `curl -sk --http2` from the client's address with `args`, its output (response
    /// head first, `-D -`) collected as it comes.
    fn spawn(args: &[&str]) -> Curl {
        let mut command = Command::new("curl");
        command
            .args(["-sSk", "--http2", "-N", "-D", "-", "--max-time", "20"])
            .args(["--interface", CLIENT_IP])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut process = Guarded::spawn(&mut command, "curl");
        let mut stdout = process.child.stdout.take().unwrap();
        let out = Arc::new((Mutex::new((Vec::new(), false)), Condvar::new()));
        let writer = Arc::clone(&out);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let (text, grew) = &*writer;
            loop {
                match stdout.read(&mut buf) {
                    Ok(n) if n > 0 => text.lock().unwrap().0.extend_from_slice(&buf[..n]),
                    _ => break,
                }
                grew.notify_all();
            }
            text.lock().unwrap().1 = true;
            grew.notify_all();
        });
        Curl { process, out }
    }

    /// Waits (up to the read timeout) until the output has `needle`; returns it all.
    fn wait_for(&self, needle: &str) -> String {
        self.wait_until(|seen, _| seen.contains(needle), needle)
    }

    fn wait_until(&self, done: impl Fn(&str, bool) -> bool, what: &str) -> String {
        let (text, grew) = &*self.out;
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut guard = text.lock().unwrap();
        loop {
            let seen = String::from_utf8_lossy(&guard.0).into_owned();
            if done(&seen, guard.1) {
                return seen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{what:?} never came through nginx; got:\n{seen}"
            );
            guard = grew.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Waits for curl to finish; returns everything it wrote.
    fn finish(mut self) -> String {
        let status = self.process.wait(READ_TIMEOUT);
        assert!(status.success(), "curl: {status}");
        self.wait_until(|_, ended| ended, "the end of curl's output")
    }
}

/// Publishes through nginx over HTTP/2; returns curl's output (head and body).
fn publish(nginx: &Nginx, channel: &str, body: &str) -> String {
    let url = nginx.url(&format!("/msgbus/{channel}"));
    let curl = Curl::spawn(&[
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        body,
        &url,
    ]);
    curl.finish()
}

/// A TCP connection from the client's address.
fn connect_from_client(to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{CLIENT_IP}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

fn websocket(nginx: &Nginx, path: &str) -> StreamOwned<ClientConnection, TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(nginx.cert_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // WebSocket is an HTTP/1.1 upgrade (nginx does not take RFC 8441 over HTTP/2).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = connect_from_client(nginx.addr);
    sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut ws = StreamOwned::new(conn, sock);
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    ws.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ws.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
        assert!(head.len() < 4096, "{}", String::from_utf8_lossy(&head));
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 101 switching protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    ws
}

/// The configuration tested here is the one the manual shows.
#[test]
fn the_manual_shows_the_tested_configuration() {
    let manual = include_str!("../man/msgbus.8");
    for line in MAP.lines().chain(LOCATION.lines()).map(str::trim) {
        assert!(manual.contains(line), "{line:?} is not in man/msgbus.8");
    }
}

#[test]
fn every_transport_goes_through_nginx_with_tls_and_http2() {
    let server = Server::start(&["--access-log", "--trusted-proxy", "127.0.0.1"]);
    let nginx = Nginx::start("tcp", &server.addr.to_string());

    // Publish over HTTP/2, and the client's address in the access log through X-Forwarded-For.
    let answer = publish(&nginx, "news", "first");
    assert!(answer.starts_with("HTTP/2 204"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("\nmsgbus-id: "),
        "{answer}"
    );
    server.wait_for_log(
        &format!("] {CLIENT_IP} \"POST /msgbus/news HTTP/1.1\" 204"),
        1,
    );

    // SSE: the stream's opening comes through unbuffered, then the message.
    let sse = Curl::spawn(&[
        "-H",
        "Accept: text/event-stream",
        &nginx.url("/msgbus/news"),
    ]);
    let head = sse.wait_for("retry: 2000");
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    // Multipart: the head comes as soon as msgbus subscribes.
    let multipart = Curl::spawn(&[&nginx.url("/msgbus/news")]);
    let head = multipart.wait_for("\r\n\r\n");
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert!(
        head.contains("content-type: multipart/x-mixed-replace"),
        "{head}"
    );
    // WebSocket: an HTTP/1.1 upgrade through nginx.
    let mut ws = websocket(&nginx, "/msgbus/news");
    server.wait_for_counter("subscribers", |n| n == 3, "three subscribers through nginx");
    // Long-poll, held until the next message.
    let poll = Curl::spawn(&[&nginx.url("/msgbus/news?transport=longpoll")]);
    server.wait_for_counter("subscribers", |n| n == 4, "the poll held through nginx");

    let answer = publish(&nginx, "news", "second");
    assert!(answer.starts_with("HTTP/2 204"), "{answer}");
    sse.wait_for("data: second\n\n");
    multipart.wait_for("second");
    let mut frame = [0u8; 8];
    ws.read_exact(&mut frame).unwrap();
    assert_eq!(&frame, b"\x81\x06second");
    let polled = poll.finish();
    assert!(polled.starts_with("HTTP/2 200"), "{polled}");
    assert!(
        polled.contains("\"data\":\"second\"}],\"cursor\":"),
        "{polled}"
    );

    // A WebSocket client publishes too (a masked text frame), and the others get it.
    let mask = [1u8, 2, 3, 4];
    let payload: Vec<u8> = b"third"
        .iter()
        .zip(mask.iter().cycle())
        .map(|(b, m)| b ^ m)
        .collect();
    ws.write_all(&[&[0x81, 0x80 | 5][..], &mask, &payload].concat())
        .unwrap();
    sse.wait_for("data: third\n\n");
    multipart.wait_for("third");
    server.wait_for_log(
        &format!("] {CLIENT_IP} \"GET /msgbus/news HTTP/1.1\" 101"),
        1,
    );
    drop(ws);
    drop((sse, multipart));
    // Every request through nginx is logged with the client's address, none with nginx's
    // (the test's own status reads go to msgbus directly).
    let log = server.log();
    let access: Vec<&str> = log.lines().filter(|l| l.contains(" /msgbus/")).collect();
    assert!(access.len() >= 5, "{log}");
    for line in access {
        assert!(line.contains(&format!("] {CLIENT_IP} \"")), "{line}");
    }
}

/// The manual's set-up: msgbus on a UNIX socket, nginx trusted as `unix`.
#[test]
fn nginx_on_the_unix_socket_names_the_client() {
    let dir = std::env::temp_dir().join(format!("msgbus-nginx-sock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("msgbus.sock").display().to_string();
    let server = Server::start(&["--access-log", "--unix", &socket, "--trusted-proxy", "unix"]);
    let nginx = Nginx::start("unix", &format!("unix:{socket}"));
    let sse = Curl::spawn(&["-H", "Accept: text/event-stream", &nginx.url("/msgbus/u")]);
    sse.wait_for("retry: 2000");
    let answer = publish(&nginx, "u", "over the socket");
    assert!(answer.starts_with("HTTP/2 204"), "{answer}");
    sse.wait_for("data: over the socket\n\n");
    server.wait_for_log(&format!("] {CLIENT_IP} \"POST /msgbus/u HTTP/1.1\" 204"), 1);
    drop(sse);
    drop(nginx);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
