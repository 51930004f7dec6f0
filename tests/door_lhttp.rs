//! The lhttp door: lhttp's text protocol over WebSocket and `POST /publish`, with messages
//! crossing to and from the native doors.

mod common;
mod door_lhttp_endpoint;

use std::io::Write;
use std::net::TcpStream;

use common::*;
use door_lhttp_endpoint::{chat, ok, Endpoint};

const SWITCHED: &str = "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

fn open(server: &Server, path: &str) -> TcpStream {
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    subscribe(server, &request, SWITCHED)
}

#[test]
fn lhttp_clients_meet_each_other_and_the_native_doors() {
    let server = Server::start(&["--lhttp"]);
    let mut alice = open(&server, "/");
    let mut bob = open(&server, "/echo");
    send_text(&mut alice, "LHTTP/1.0 chat\r\nsubscribe:room\r\n\r\n");
    // Bob's publish reaches Alice as lhttp re-serialized it, and a native subscriber as a body.
    let mut native = subscribe(
        &server,
        "GET /msgbus/room HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n",
    );
    server.wait_for_counter("subscribers", |n| n >= 2, "alice never subscribed");
    send_text(
        &mut bob,
        "LHTTP/1.0 chat\r\npublish:room\r\ncontent-type:text/plain\r\n\r\nhello",
    );
    assert_eq!(
        receive_text(&mut alice),
        "LHTTP/1.0 chat\r\npublish:room\r\ncontent-type:text/plain\r\n\r\nhello"
    );
    let event = String::from_utf8(read_until(&mut native, b"\n\n")).unwrap();
    assert!(event.ends_with("\ndata: hello\n\n"), "{event}");
    // A native publish reaches Alice as an lhttp message.
    server.publish("room", "text/plain", b"native");
    assert_eq!(
        receive_text(&mut alice),
        "LHTTP/1.0 publish\r\npublish:room\r\ncontent-type:text/plain\r\n\r\nnative"
    );
    // POST /publish: the body verbatim to the channel's lhttp subscribers; 200, empty.
    let answer = server.post(
        "/publish",
        "",
        b"LHTTP/1.0 x\r\npublish:room\r\n\r\nvia http",
    );
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        receive_text(&mut alice),
        "LHTTP/1.0 x\r\npublish:room\r\n\r\nvia http"
    );
    // Refusals are said, not swallowed; unsubscribe ends delivery.
    send_text(&mut bob, "garbage");
    assert!(receive_text(&mut bob).starts_with("LHTTP/1.0 error\r\nerror:"));
    send_text(
        &mut bob,
        "LHTTP/1.0 go\r\nupstream:POST http://127.0.0.1:9/x\r\n\r\nbody",
    );
    assert_eq!(
        receive_text(&mut bob),
        "LHTTP/1.0 error\r\nerror:upstream forwarding is not enabled on this server\r\n\r\n"
    );
    send_text(&mut alice, "LHTTP/1.0 chat\r\nunsubscribe:room\r\n\r\n");
    server.wait_for_counter("subscribers", |n| n <= 1, "alice never unsubscribed");
    // What reaches her next is from a channel she joins afterwards, not the one she left.
    send_text(&mut alice, "LHTTP/1.0 chat\r\nsubscribe:other\r\n\r\n");
    server.wait_for_counter("subscribers", |n| n >= 2, "alice never joined other");
    server.publish("room", "text/plain", b"after");
    server.publish("other", "text/plain", b"marker");
    assert_eq!(
        receive_text(&mut alice),
        "LHTTP/1.0 publish\r\npublish:other\r\ncontent-type:text/plain\r\n\r\nmarker"
    );
}

/// Accepts the server's next upstream call, waiting at most the read timeout.
fn accept_call(backend: &std::net::TcpListener) -> TcpStream {
    backend.set_nonblocking(true).unwrap();
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    loop {
        match backend.accept() {
            Ok((call, _)) => {
                call.set_nonblocking(false).unwrap();
                call.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                return call;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no upstream call came"
                );
                // A listener has no read timeout: look again every 10 ms, bounded above.
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Reads one HTTP request (head and Content-Length body) from an accepted upstream socket.
fn read_request(stream: &mut TcpStream) -> String {
    let head = String::from_utf8(read_until(stream, b"\r\n\r\n")).unwrap();
    let (head_only, already) = head.split_once("\r\n\r\n").unwrap();
    let length: usize = head_only
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |n| n.parse().unwrap());
    let mut body = already.to_string();
    if body.len() < length {
        body.push_str(&String::from_utf8(read_exact(stream, length - body.len())).unwrap());
    }
    format!("{head_only}\r\n\r\n{body}")
}

/// `upstream:` calls go out from the reactor, only under an allowed prefix, with the message's
/// headers and body; nothing comes back to the client, and the answer is logged.
#[test]
fn upstream_calls_reach_allowed_urls_only() {
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = backend.local_addr().unwrap().port();
    let allowed = format!("http://127.0.0.1:{port}/api");
    let server = Server::start(&[
        "--lhttp",
        "--lhttp-upstream",
        &allowed,
        "--upstream-timeout",
        "1",
        "--upstream-queue",
        "1",
    ]);
    let mut ws = open(&server, "/");
    send_text(
        &mut ws,
        &format!(
            "LHTTP/1.0 store\r\nupstream:POST http://127.0.0.1:{port}/api/items?x=1\r\nx-user:7\r\n\r\nhello"
        ),
    );
    let mut call = accept_call(&backend);
    assert_eq!(
        read_request(&mut call),
        format!(
            "POST /api/items?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-User: 7\r\nUpstream: POST http://127.0.0.1:{port}/api/items?x=1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        )
    );
    call.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        .unwrap();
    drop(call);
    server.wait_for_log(
        &format!("upstream POST http://127.0.0.1:{port}/api/items?x=1 answered 201 (45 bytes)"),
        1,
    );
    // GET sends no body.
    send_text(
        &mut ws,
        &format!("LHTTP/1.0 q\r\nupstream:GET http://127.0.0.1:{port}/api\r\n\r\nignored"),
    );
    let mut call = accept_call(&backend);
    let request = read_request(&mut call);
    assert!(request.starts_with("GET /api HTTP/1.1\r\n"), "{request}");
    assert!(request.ends_with("Connection: close\r\n\r\n"), "{request}");
    // While it runs, the queue (of one) is full.
    send_text(
        &mut ws,
        &format!("LHTTP/1.0 q\r\nupstream:GET http://127.0.0.1:{port}/api\r\n\r\n"),
    );
    assert_eq!(
        receive_text(&mut ws),
        "LHTTP/1.0 error\r\nerror:too many upstream calls waiting; try again later\r\n\r\n"
    );
    // A backend that never answers: the call is given up at the timeout.
    server.wait_for_log("timed out after 1 s", 1);
    drop(call);
    // Refused calls are said, and the connection goes on.
    for (value, why) in [
        (
            format!("POST http://127.0.0.1:{port}/apix"),
            "upstream URL is not allowed on this server",
        ),
        (
            format!("POST http://127.0.0.1:{port}/api/../admin"),
            "bad upstream URL: a . or .. path segment",
        ),
        (
            "POST http://10.0.0.1/api".to_string(),
            "upstream URL is not allowed on this server",
        ),
        (
            format!("P(ST http://127.0.0.1:{port}/api"),
            "upstream method is not an HTTP method",
        ),
        (
            format!("POST https://127.0.0.1:{port}/api"),
            "bad upstream URL: only http:// URLs are supported",
        ),
    ] {
        send_text(
            &mut ws,
            &format!("LHTTP/1.0 go\r\nupstream:{value}\r\n\r\nb"),
        );
        assert_eq!(
            receive_text(&mut ws),
            format!("LHTTP/1.0 error\r\nerror:{why}\r\n\r\n"),
            "{value}"
        );
    }
    backend.set_nonblocking(true).unwrap();
    assert!(backend.accept().is_err(), "a refused call went out");
}

/// `--upstream-connections N`: at most N calls run at once; the next starts when one ends.
#[test]
fn upstream_calls_beyond_the_connection_limit_wait_their_turn() {
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = backend.local_addr().unwrap().port();
    let allowed = format!("http://127.0.0.1:{port}/api");
    let server = Server::start(&[
        "--lhttp",
        "--lhttp-upstream",
        &allowed,
        "--upstream-connections",
        "2",
    ]);
    // One call from each of three sockets (each connection's share is half the limit).
    let mut sockets: Vec<TcpStream> = (0..3).map(|_| open(&server, "/")).collect();
    for (n, ws) in (1..=3).zip(sockets.iter_mut()) {
        send_text(
            ws,
            &format!("LHTTP/1.0 q\r\nupstream:GET http://127.0.0.1:{port}/api/{n}\r\n\r\n"),
        );
        // A frame with a reply of its own: once it comes, the server has handled the call.
        send_text(ws, "garbage");
        assert!(receive_text(ws).starts_with("LHTTP/1.0 error\r\n"));
    }
    let mut first = accept_call(&backend);
    let mut second = accept_call(&backend);
    let mut paths: Vec<String> = [&mut first, &mut second]
        .into_iter()
        .map(|call| read_request(call).lines().next().unwrap().to_string())
        .collect();
    paths.sort();
    assert_eq!(paths, ["GET /api/1 HTTP/1.1", "GET /api/2 HTTP/1.1"]);
    // Two are running (both requests were written): the third has not been started.
    backend.set_nonblocking(true).unwrap();
    let early = backend.accept();
    assert!(early.is_err(), "a third call ran beside two: {early:?}");
    // One ends: the third goes out.
    first
        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    drop(first);
    let mut third = accept_call(&backend);
    assert!(read_request(&mut third).starts_with("GET /api/3 HTTP/1.1\r\n"));
}

/// lhttp's own test scenario (websocketClient/test.go against websocketServer/test.go) with its
/// `chat` processor as an HTTP endpoint (`--lhttp-processor chat=URL`): the chat message is
/// answered `LHTTP/1.0 auth` with its body, subscribe and publish work beside it, commands
/// without a processor (`subpub`, `upload`) call nothing.
#[test]
fn lhttps_test_scenario_with_a_chat_processor() {
    let endpoint = Endpoint::start(2, chat);
    let prefix = endpoint.url("/lhttp");
    let chat_url = format!("chat={}", endpoint.url("/lhttp/chat"));
    let server = Server::start(&[
        "--lhttp",
        "--lhttp-upstream",
        &prefix,
        "--lhttp-processor",
        &chat_url,
    ]);
    let mut ws = open(&server, "/echo");
    let message_chat = "LHTTP/1.0 chat\r\ncontent-type:json\r\ncontent-length:10\r\n\r\njsonbody";
    send_text(&mut ws, message_chat);
    assert_eq!(
        receive_text(&mut ws),
        "LHTTP/1.0 auth\r\ncontent-type:image/png\r\n\r\njsonbody"
    );
    // The endpoint got the whole message, its command named in a header.
    let call = endpoint.next_call();
    let port = endpoint.port;
    assert_eq!(
        call.head,
        format!(
            "POST /lhttp/chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nLhttp-Command: chat\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            message_chat.len()
        )
    );
    assert_eq!(call.body, message_chat.as_bytes());

    // MESSAGE_SUB, MESSAGE_PUB and the multipart upload: no processor, no call.
    send_text(
        &mut ws,
        "LHTTP/1.0 subpub\r\nsubscribe:channel_mike\r\n\r\n",
    );
    server.wait_for_counter("subscribers", |n| n >= 1, "never subscribed");
    send_text(
        &mut ws,
        "LHTTP/1.0 subpub\r\npublish:channel_mike\r\n\r\nhello mike, I am jack",
    );
    assert_eq!(
        receive_text(&mut ws),
        "LHTTP/1.0 subpub\r\npublish:channel_mike\r\n\r\nhello mike, I am jack"
    );
    send_text(
        &mut ws,
        "LHTTP/1.0 upload\r\nmultipart:0 14\r\n\r\nk1:v1\r\n\r\nbody1k2:v2\r\n\r\nbody2",
    );
    // A chat message that also publishes: the publish at once, the processor's answer after.
    send_text(
        &mut ws,
        "LHTTP/1.0 chat\r\npublish:channel_mike\r\n\r\nboth",
    );
    assert_eq!(
        receive_text(&mut ws),
        "LHTTP/1.0 chat\r\npublish:channel_mike\r\n\r\nboth"
    );
    assert_eq!(
        receive_text(&mut ws),
        "LHTTP/1.0 auth\r\ncontent-type:image/png\r\n\r\nboth"
    );
    let second = endpoint.next_call();
    assert_eq!(
        second.body,
        b"LHTTP/1.0 chat\r\npublish:channel_mike\r\n\r\nboth"
    );
    assert!(!endpoint.called(), "subpub or upload called the processor");
}

/// What an endpoint may answer besides an lhttp message: a body of another kind becomes the
/// body of a message with the request's command, an empty answer sends nothing.
#[test]
fn processor_answers_of_other_kinds() {
    fn answer(head: &str, _body: &[u8]) -> Option<Vec<u8>> {
        Some(if head.starts_with("POST /p/json ") {
            ok("application/json", b"{\"ok\":true}")
        } else {
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_vec()
        })
    }
    let endpoint = Endpoint::start(2, answer);
    let json = format!("status={}", endpoint.url("/p/json"));
    let quiet = format!("quiet={}", endpoint.url("/p/quiet"));
    let prefix = endpoint.url("/p");
    let server = Server::start(&[
        "--lhttp",
        "--lhttp-upstream",
        &prefix,
        "--lhttp-processor",
        &quiet,
        "--lhttp-processor",
        &json,
    ]);
    let mut ws = open(&server, "/");
    send_text(&mut ws, "LHTTP/1.0 quiet\r\nk:v\r\n\r\nx");
    endpoint.next_call();
    send_text(&mut ws, "LHTTP/1.0 status\r\nk:v\r\n\r\n");
    assert_eq!(
        receive_text(&mut ws),
        "LHTTP/1.0 status\r\ncontent-type:application/json\r\n\r\n{\"ok\":true}"
    );
    endpoint.next_call();
}
