//! The lhttp door against hostile clients: its WebSocket handshake obeys `--allow-origin` as
//! the native one does, `upstream:` paths cannot climb out of an allowed prefix however they
//! are spelled, and one connection cannot take the whole upstream queue. One regression test
//! per finding of issue 13.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};

use common::*;

const SWITCHED: &str = "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

fn handshake(method: &str, path: &str, origin: Option<&str>) -> String {
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    format!("{method} {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n")
}

fn open(server: &Server) -> TcpStream {
    subscribe(server, &handshake("GET", "/", None), SWITCHED)
}

fn error_frame(why: &str) -> String {
    format!("LHTTP/1.0 error\r\nerror:{why}\r\n\r\n")
}

/// Sends one upstream call and the frame `garbage` after it: the first frame back says what
/// became of the call (an error), or, if the call was taken, is the answer to `garbage`.
fn call(ws: &mut TcpStream, value: &str) -> String {
    send_text(ws, &format!("LHTTP/1.0 go\r\nupstream:{value}\r\n\r\nbody"));
    send_text(ws, "garbage");
    let first = receive_text(ws);
    if first.contains("upstream") {
        let garbage = receive_text(ws);
        assert!(garbage.starts_with("LHTTP/1.0 error\r\n"), "{garbage}");
    }
    first
}

const TAKEN: &str = "taken";

fn outcome(first: String) -> String {
    if first.contains("upstream") {
        first
    } else {
        TAKEN.to_string()
    }
}

/// Sends a request that must be refused with 403; returns the whole answer.
fn refused(server: &Server, request: &str) -> String {
    let mut stream = server.connect();
    stream.write_all(request.as_bytes()).unwrap();
    let head = String::from_utf8(read_until(&mut stream, b"\r\n\r\n")).unwrap();
    assert!(
        head.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "let in: {request}\n{head}"
    );
    let length: usize = header_value(&head, "Content-Length").parse().unwrap();
    let already = head.split_once("\r\n\r\n").unwrap().1.len();
    head + &String::from_utf8(read_exact(&mut stream, length - already)).unwrap()
}

/// A cross-site page could open an lhttp WebSocket whatever `--allow-origin` said (cross-site
/// WebSocket hijacking). The lhttp handshake now answers exactly as the native one does.
#[test]
fn lhttp_handshake_obeys_allow_origin() {
    let server = Server::start(&["--lhttp", "--allow-origin", "http://good.example"]);
    let evil = Some("http://evil.example");
    let lhttp = refused(&server, &handshake("GET", "/chat", evil));
    let native = refused(&server, &handshake("GET", "/msgbus/chat", evil));
    assert!(lhttp.ends_with("\r\n\r\norigin not allowed\n"), "{lhttp}");
    assert_eq!(lhttp, native, "the two handshakes differ");
    // The allowed origin, and a client that sends none (not a browser), get in.
    for origin in [
        Some("http://good.example"),
        Some("http://GOOD.example/"),
        None,
    ] {
        subscribe(&server, &handshake("GET", "/chat", origin), SWITCHED);
    }
    // HEAD is refused, with a head only.
    let request =
        handshake("HEAD", "/chat", evil).replace("Upgrade\r\nSec", "Upgrade, close\r\nSec");
    let answer = server.exchange(request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "HEAD has a body: {answer:?}");
}

/// `..%2f`, `..;` and `%5c` went to the backend as they were, and a backend that decodes
/// `%2f`, strips `;` parameters or reads `\` as `/` climbed out of the allowed prefix. Paths are
/// now normalised (unreserved characters decoded) and such spellings refused.
#[test]
fn upstream_paths_cannot_leave_the_allowed_prefix() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = backend.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let allowed = format!("{base}/api/");
    let server = Server::start(&["--lhttp", "--lhttp-upstream", &allowed]);
    let mut ws = open(&server);
    for path in [
        "/api/..%2fadmin",
        "/api/..%2Fadmin",
        "/api/%2e%2e%2fadmin",
        "/api/..;/admin",
        "/api/..;x=1/admin",
        "/api/.;/x",
        "/api/%2e%2e;/admin",
        "/api/..%5cadmin",
        "/api/%5c..%5cadmin",
        "/api/a\\..\\admin",
        "/api/x%zz",
        "/api/x%2",
    ] {
        let got = outcome(call(&mut ws, &format!("POST {base}{path}")));
        assert!(
            got.starts_with("LHTTP/1.0 error\r\nerror:bad upstream URL: "),
            "{path}: {got}"
        );
    }
    backend.set_nonblocking(true).unwrap();
    assert!(backend.accept().is_err(), "a refused call went out");
    backend.set_nonblocking(false).unwrap();
    // Unreserved characters are decoded before the prefix is matched and the call is made.
    assert_eq!(
        outcome(call(
            &mut ws,
            &format!("GET {base}/%61pi/%7Euser/a%2Db?q=%41")
        )),
        TAKEN
    );
    let (mut upstream, _) = backend.accept().unwrap();
    upstream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let request = String::from_utf8(read_until(&mut upstream, b"\r\n\r\n")).unwrap();
    assert!(
        request.starts_with("GET /api/~user/a-b?q=%41 HTTP/1.1\r\n"),
        "{request}"
    );
}

/// One client could fill the whole upstream queue (256 calls by default) and starve every
/// other. Each connection now has a share: half of `--upstream-connections` (at least one)
/// calls waiting or running; past it, its calls are refused in lhttp's error shape.
#[test]
fn one_connection_cannot_take_the_whole_upstream_queue() {
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = backend.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}/api");
    let server = Server::start(&[
        "--lhttp",
        "--lhttp-upstream",
        &base,
        "--upstream-connections",
        "4",
    ]);
    let mut greedy = open(&server);
    let mut held = Vec::new();
    for _ in 0..2 {
        assert_eq!(outcome(call(&mut greedy, &format!("GET {base}"))), TAKEN);
        // The backend holds each call open: it stays running.
        held.push(backend.accept().unwrap().0);
    }
    assert_eq!(
        outcome(call(&mut greedy, &format!("GET {base}"))),
        error_frame("too many upstream calls from this connection; wait for one to end")
    );
    // Another connection still gets its calls through.
    let mut polite = open(&server);
    assert_eq!(outcome(call(&mut polite, &format!("GET {base}"))), TAKEN);
    held.push(backend.accept().unwrap().0);
    // Once one of the greedy connection's calls ends, it may make another.
    let first = held.remove(0);
    drop(first);
    server.wait_for_log("upstream GET", 1);
    assert_eq!(outcome(call(&mut greedy, &format!("GET {base}"))), TAKEN);
    held.push(backend.accept().unwrap().0);
}
