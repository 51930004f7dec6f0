//! README claims that no other test file holds: which deadline gives up a response the client
//! does not take (`--send-timeout`, `--write-timeout`), and lhttp's upstream host names
//! resolved once, at start-up.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use msgbus::transport::websocket::{encode_client_frame, Opcode};

/// A document root holding `big.bin`, 64 MiB of zeros (sparse: nothing is written to disk).
struct Docroot(PathBuf);

impl Docroot {
    const BIG: u64 = 64 << 20;

    fn new(name: &str) -> Docroot {
        let dir = std::env::temp_dir().join(format!("msgbus-claims-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::File::create(dir.join("big.bin"))
            .unwrap()
            .set_len(Docroot::BIG)
            .unwrap();
        Docroot(dir)
    }

    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for Docroot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asks for `big.bin` on a socket with a small receive buffer, so that the server's writes
/// stop soon after the client stops reading; returns the socket once the head has arrived.
fn request_big_file(server: &Server) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = String::from_utf8_lossy(&read_until(&mut stream, b"\r\n\r\n")).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        header_value(&head, "Content-Length"),
        Docroot::BIG.to_string()
    );
    stream
}

/// `--send-timeout` is not a time limit on the whole response: a client that keeps taking a
/// file keeps it for longer than that; one that stops taking it is closed (counted as
/// `timeout`) once the server has written nothing for that long, though `--write-timeout`
/// would allow more.
#[test]
fn a_response_the_client_stops_taking_is_given_up_after_the_send_timeout() {
    let root = Docroot::new("send");
    let server = Server::start(&[
        "-d",
        &root.path(),
        "--send-timeout",
        "1",
        "--write-timeout",
        "30",
    ]);
    let mut stream = request_big_file(&server);
    // 2.5 s of reading 1 MiB every 100 ms: over twice the send timeout, never closed.
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..25 {
        std::thread::sleep(Duration::from_millis(100));
        stream
            .read_exact(&mut chunk)
            .expect("the file while it is taken");
    }
    // 25 MiB of 64 taken; from here on the client reads nothing.
    let stopped = Instant::now();
    let status = server.status();
    assert_eq!(json_number(&status, "timeout"), 0, "{status}");
    server.wait_for_counter("timeout", |n| n == 1, "the response was never given up");
    // The server wrote last at about the client's last read (it may have been a little
    // earlier: it writes when enough room has opened), so about a second from then, not the
    // 30 of the write timeout.
    let waited = stopped.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "closed {waited:?} after the client stopped taking"
    );
    let status = server.status();
    assert_eq!(json_number(&status, "write_stalled"), 0, "{status}");
}

/// Whichever is shorter applies: with `--write-timeout` under `--send-timeout`, a response the
/// client takes nothing of is closed by the former, and counted as `write_stalled`.
#[test]
fn a_shorter_write_timeout_gives_a_response_up_first() {
    let root = Docroot::new("write");
    let server = Server::start(&[
        "-d",
        &root.path(),
        "--send-timeout",
        "30",
        "--write-timeout",
        "1",
    ]);
    let _stream = request_big_file(&server);
    server.wait_for_log("none of its output taken", 1);
    let status = server.status();
    assert_eq!(json_number(&status, "write_stalled"), 1, "{status}");
    assert_eq!(json_number(&status, "timeout"), 0, "{status}");
}

const SWITCHED: &str = "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// Accepts the server's next upstream call, waiting at most the read timeout.
fn accept_call(backend: &TcpListener) -> TcpStream {
    backend.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        match backend.accept() {
            Ok((call, _)) => {
                call.set_nonblocking(false).unwrap();
                call.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                return call;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no upstream call came");
                // A listener has no read timeout: look again every 10 ms, bounded above.
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A prefix naming `localhost` is resolved when the server starts, and its calls go to that
/// address (here 127.0.0.1, where the test listens), with the name as the `Host`.
#[test]
fn an_upstream_host_name_is_resolved_at_start_up() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = backend.local_addr().unwrap().port();
    let server = Server::start(&[
        "--lhttp",
        "--lhttp-upstream",
        &format!("http://localhost:{port}/api"),
    ]);
    let request = "GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let mut ws = subscribe(&server, request, SWITCHED);
    let message = format!("LHTTP/1.0 go\r\nupstream:POST http://localhost:{port}/api/x\r\n\r\nhi");
    ws.write_all(&encode_client_frame(
        Opcode::Text,
        true,
        message.as_bytes(),
        [1, 2, 3, 4],
    ))
    .unwrap();
    let mut call = accept_call(&backend);
    let want = format!("POST /api/x HTTP/1.1\r\nHost: localhost:{port}\r\nUpstream: POST http://localhost:{port}/api/x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
    let got = read_exact(&mut call, want.len());
    assert_eq!(String::from_utf8_lossy(&got), want);
    call.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
    drop(call);
    server.wait_for_log(
        &format!("upstream POST http://localhost:{port}/api/x answered 204"),
        1,
    );
}

/// A name that does not resolve stops the server at start-up, before it serves anything:
/// the lookup is made there, not when a call comes.
#[test]
fn an_upstream_host_name_that_does_not_resolve_stops_the_start() {
    // `.invalid` never resolves (RFC 6761).
    let prefix = "http://no-such-host.invalid/api";
    let out = run_to_exit(
        &[
            "-l",
            "127.0.0.1",
            "-p",
            "0",
            "--lhttp",
            "--lhttp-upstream",
            prefix,
        ],
        "msgbus with an unresolvable upstream",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("msgbus: --lhttp-upstream {prefix}: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
}
