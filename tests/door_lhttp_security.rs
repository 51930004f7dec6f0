//! The lhttp door against hostile clients: its WebSocket handshake obeys `--allow-origin` as
//! the native one does, `upstream:` paths cannot climb out of an allowed prefix however they
//! are spelled, and one connection cannot take the whole upstream queue. One regression test
//! per finding of issue 13. Processors (`--lhttp-processor`) against hostile clients and
//! endpoints: no call for a command spelled with CR or LF, none outside the allow-list, and an
//! endpoint that hangs, fails or answers too much gives a one-line error frame.

mod common;
mod door_lhttp_endpoint;

use std::io::Write;
use std::net::{TcpListener, TcpStream};

use common::*;
use door_lhttp_endpoint::{chat, Endpoint};

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

/// A server with the `chat` processor at `endpoint`, and more options.
fn with_chat(endpoint: &Endpoint, more: &[&str]) -> Server {
    let prefix = endpoint.url("/");
    let chat_url = format!("chat={}", endpoint.url("/chat"));
    let mut args = vec![
        "--lhttp",
        "--lhttp-upstream",
        &prefix,
        "--lhttp-processor",
        &chat_url,
    ];
    args.extend_from_slice(more);
    Server::start(&args)
}

/// Commands are matched whole and exactly: one spelled with CR or LF (or a prefix of `chat`)
/// calls nothing, and a chat message with a line break in a header value is refused before the
/// call, as the gate refuses such values everywhere.
#[test]
fn no_processor_call_for_commands_or_headers_with_line_breaks() {
    let endpoint = Endpoint::start(1, chat);
    let server = with_chat(&endpoint, &[]);
    let mut ws = open(&server);
    for message in [
        "LHTTP/1.0 chat\n\r\nk:v\r\n\r\nlf",
        "LHTTP/1.0 chat\rx\r\nk:v\r\n\r\ncr",
        "LHTTP/1.0 cha\r\nk:v\r\n\r\nprefix",
        "LHTTP/1.0 Chat\r\nk:v\r\n\r\ncase",
    ] {
        send_text(&mut ws, message);
    }
    send_text(&mut ws, "LHTTP/1.0 chat\r\nk:a\nb\r\n\r\nsplit");
    assert_eq!(
        receive_text(&mut ws),
        error_frame("processor chat: a header may not hold CR, LF or NUL")
    );
    send_text(&mut ws, "LHTTP/1.0 chat\r\nk:v\r\n\r\ngood");
    assert_eq!(
        receive_text(&mut ws),
        "LHTTP/1.0 auth\r\ncontent-type:image/png\r\n\r\ngood"
    );
    // The only call the endpoint saw was the good one.
    assert_eq!(
        endpoint.next_call().body,
        b"LHTTP/1.0 chat\r\nk:v\r\n\r\ngood"
    );
}

/// A processor's URL must lie under an `--lhttp-upstream` prefix, and the door must be open:
/// otherwise the server does not start, and says why in one line.
#[test]
fn processors_outside_the_allow_list_are_refused_at_start() {
    for (args, why) in [
        (
            &[
                "--lhttp",
                "--lhttp-upstream",
                "http://127.0.0.1:9/api",
                "--lhttp-processor",
                "chat=http://127.0.0.1:9/apix",
            ][..],
            "--lhttp-processor chat=http://127.0.0.1:9/apix: the URL is not under any --lhttp-upstream prefix",
        ),
        (
            &["--lhttp", "--lhttp-processor", "chat=http://127.0.0.1:9/x"][..],
            "the URL is not under any --lhttp-upstream prefix",
        ),
        (
            &[
                "--lhttp-upstream",
                "http://127.0.0.1:9/",
                "--lhttp-processor",
                "chat=http://127.0.0.1:9/x",
            ][..],
            "--lhttp-processor chat=http://127.0.0.1:9/x needs --lhttp",
        ),
        (
            &["--lhttp", "--lhttp-processor", "chat"][..],
            "expected COMMAND=URL",
        ),
        (
            &["--lhttp", "--lhttp-processor", "ch at=http://127.0.0.1:9/"][..],
            "the command must be a token",
        ),
        (
            &["--lhttp", "--lhttp-processor", "chat=https://127.0.0.1:9/"][..],
            "expected an http:// URL",
        ),
    ] {
        let mut all = vec!["-l", "127.0.0.1", "-p", "0"];
        all.extend_from_slice(args);
        let output = run_to_exit(&all, "msgbus with a bad processor");
        assert!(!output.status.success(), "{args:?} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

/// An endpoint that never answers holds no client forever: after `--upstream-timeout` the
/// client gets an error frame; and a connection has only its share of calls in flight.
#[test]
fn a_hanging_processor_times_out_and_calls_in_flight_are_bounded() {
    fn never(_head: &str, _body: &[u8]) -> Option<Vec<u8>> {
        None
    }
    let endpoint = Endpoint::start(2, never);
    let server = with_chat(
        &endpoint,
        &["--upstream-timeout", "1", "--upstream-connections", "2"],
    );
    let mut ws = open(&server);
    // The call starts just after the server's first once-a-second sweep: a timeout left to
    // the sweeps would come at nearly 2 s.
    std::thread::sleep(std::time::Duration::from_millis(1050));
    let sent = std::time::Instant::now();
    send_text(&mut ws, "LHTTP/1.0 chat\r\nk:v\r\n\r\none");
    let held = endpoint.next_call();
    // Its share (half of 2 calls) is taken: the next is refused at once.
    send_text(&mut ws, "LHTTP/1.0 chat\r\nk:v\r\n\r\ntwo");
    assert_eq!(
        receive_text(&mut ws),
        error_frame(
            "processor chat: too many upstream calls from this connection; wait for one to end"
        )
    );
    assert_eq!(
        receive_text(&mut ws),
        error_frame("processor chat: no answer within 1 s")
    );
    // At the timeout, not at the sweep after it.
    let waited = sent.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(1)
            && waited < std::time::Duration::from_millis(1600),
        "the timeout came after {waited:?}"
    );
    drop(held);
    // The share is free again.
    send_text(&mut ws, "LHTTP/1.0 chat\r\nk:v\r\n\r\nthree");
    assert_eq!(
        endpoint.next_call().body,
        b"LHTTP/1.0 chat\r\nk:v\r\n\r\nthree"
    );
}

/// Endpoints that answer too much, badly or with an error: one-line error frames, and the
/// connection goes on.
#[test]
fn huge_or_bad_processor_answers_are_error_frames() {
    fn bad(_head: &str, body: &[u8]) -> Option<Vec<u8>> {
        let text = String::from_utf8_lossy(body);
        Some(if text.ends_with("length") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec()
        } else if text.ends_with("stream") {
            [&b"HTTP/1.0 200 OK\r\n\r\n"[..], &vec![b'x'; 70_000]].concat()
        } else if text.ends_with("error") {
            b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".to_vec()
        } else {
            b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()
        })
    }
    let endpoint = Endpoint::start(4, bad);
    let server = with_chat(&endpoint, &[]);
    let mut ws = open(&server);
    for (ending, why) in [
        ("length", "answer larger than 65536 bytes"),
        ("stream", "answer larger than 65536 bytes"),
        ("error", "the processor answered HTTP 500"),
        ("ssh", "bad HTTP answer: not an HTTP/1 answer"),
    ] {
        send_text(&mut ws, &format!("LHTTP/1.0 chat\r\nk:v\r\n\r\n{ending}"));
        assert_eq!(
            receive_text(&mut ws),
            error_frame(&format!("processor chat: {why}")),
            "{ending}"
        );
        endpoint.next_call();
    }
}

/// A call's answer belongs to the connection that asked: one that closed before the answer
/// came has its call dropped, and the connection that takes its place gets nothing of it.
#[test]
fn an_answer_never_reaches_another_connection() {
    fn never(_head: &str, _body: &[u8]) -> Option<Vec<u8>> {
        None
    }
    let endpoint = Endpoint::start(2, never);
    let server = with_chat(&endpoint, &[]);
    let mut first = open(&server);
    send_text(&mut first, "LHTTP/1.0 chat\r\nk:v\r\n\r\nmine");
    let mut held = endpoint.next_call();
    drop(first);
    server.wait_for_counter("connections", |n| n <= 1, "the first socket never closed");
    let mut second = open(&server);
    // The endpoint answers the first connection's call late: it went nowhere.
    let _ = held.stream.write_all(&door_lhttp_endpoint::ok(
        "text/plain",
        b"LHTTP/1.0 auth\r\n\r\nmine",
    ));
    assert_silent(&mut second, std::time::Duration::from_millis(500));
    send_text(&mut second, "LHTTP/1.0 chat\r\nk:v\r\n\r\nyours");
    let mut call = endpoint.next_call();
    call.stream
        .write_all(&door_lhttp_endpoint::ok(
            "text/plain",
            b"LHTTP/1.0 auth\r\n\r\nyours",
        ))
        .unwrap();
    assert_eq!(receive_text(&mut second), "LHTTP/1.0 auth\r\n\r\nyours");
}
