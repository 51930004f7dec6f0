//! Channels: publish keys, retention set at publish time, several channels per subscription,
//! one message reaching every transport, ids across restarts, CORS.

mod common;

use std::io::Write;

use common::*;

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n";

#[test]
fn a_key_set_by_the_first_publish_guards_the_channel() {
    let server = Server::start(&[]);
    let first = server.post("/msgbus/k?key=s3cret", "", b"1");
    assert!(first.starts_with("HTTP/1.1 204 No Content\r\n"), "{first}");
    let refused = server.post("/msgbus/k", "", b"2");
    assert!(
        refused.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{refused}"
    );
    assert!(
        refused.ends_with("\r\n\r\nwrong or missing channel key\n"),
        "{refused}"
    );
    let wrong = server.post("/msgbus/k", "Msgbus-Key: guess\r\n", b"2");
    assert!(wrong.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{wrong}");
    let header = server.post("/msgbus/k", "Msgbus-Key: s3cret\r\n", b"2");
    assert!(
        header.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{header}"
    );
    let delete = b"DELETE /msgbus/k HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    assert!(server
        .exchange(delete)
        .starts_with("HTTP/1.1 403 Forbidden\r\n"));
    let delete = b"DELETE /msgbus/k?key=s3cret HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    assert!(server
        .exchange(delete)
        .starts_with("HTTP/1.1 204 No Content\r\n"));
    // The key is shown nowhere.
    assert!(!server.status().contains("s3cret"));
    assert!(!server.log().contains("s3cret"));
}

#[test]
fn retention_can_be_set_per_channel_at_publish_time() {
    let server = Server::start(&[]);
    let first = server.post("/msgbus/small?size=1", "Content-Type: text/plain\r\n", b"a");
    let first: u64 = header_value(&first, "Msgbus-Id").parse().unwrap();
    let second = server.publish_id("small", b"b");
    let request = format!("GET /msgbus/small?transport=longpoll&since={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", first - 1);
    let got = server.exchange(request.as_bytes());
    let want = format!(
        "{{\"messages\":[{{\"id\":{second},\"channel\":\"small\",\"type\":\"text/plain\",\"data\":\"b\"}}],\"cursor\":{second},\"missed\":{{\"after\":{},\"oldest\":{second}}}}}\n",
        first - 1
    );
    assert!(got.ends_with(&want), "{got}");
    for (target, why) in [
        (
            "/msgbus/x?size=abc",
            "size must be a whole number up to --max-history",
        ),
        (
            "/msgbus/x?size=99999999",
            "size must be a whole number up to --max-history",
        ),
        (
            "/msgbus/x?life=0",
            "life must be a number of seconds from 1 to 31536000",
        ),
        (
            "/msgbus/x?event=a%0Ab",
            "event name must be 1 to 128 bytes on one line",
        ),
        ("/msgbus/a,b", "publish to one channel at a time"),
    ] {
        let refused = server.post(target, "", b"x");
        assert!(
            refused.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{target}: {refused}"
        );
        assert!(
            refused.ends_with(&format!("\r\n\r\n{why}\n")),
            "{target}: {refused}"
        );
    }
}

#[test]
fn one_subscription_to_several_channels_gets_each_message_once() {
    let server = Server::start(&[]);
    // a,b plus the subtree s/ and (overlapping) the channel s/x.
    let request = "GET /msgbus/a,b,s/,s/x HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n";
    let mut sub = subscribe(&server, request, SSE_HEAD);
    let mut want = String::new();
    for channel in ["a", "b", "s/x", "c", "s/y"] {
        let id = server.publish_id(channel, b"m");
        if channel != "c" {
            want.push_str(&format!(
                "id: {id}\ndata: {{\"id\":{id},\"channel\":\"{channel}\",\"type\":\"text/plain\",\"data\":\"m\"}}\n\n"
            ));
        }
    }
    // Nothing twice: the next event after those is the one published next.
    let marker = server.publish_id("b", b"next");
    want.push_str(&format!(
        "id: {marker}\ndata: {{\"id\":{marker},\"channel\":\"b\",\"type\":\"text/plain\",\"data\":\"next\"}}\n\n"
    ));
    assert_eq!(read_same_len(&mut sub, &want), want);
}

#[test]
fn a_message_published_once_reaches_every_transport_each_encoded_once() {
    let server = Server::start(&[]);
    let mut multipart = subscribe(
        &server,
        "GET /msgbus/all HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    let mut sse = subscribe(
        &server,
        "GET /msgbus/all HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        SSE_HEAD,
    );
    let mut poll = server.connect();
    poll.write_all(b"GET /msgbus/all?transport=longpoll HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut ws = subscribe(
        &server,
        "GET /msgbus/all HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nServer: msgbus\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    );
    server.wait_for_counter("subscribers", |n| n >= 4, "subscribers never arrived");
    let id = server.publish_id("all", b"to everyone");
    let part = chunk("Content-Type: text/plain\n\nto everyone--00MsgBus00\n");
    assert_eq!(read_same_len(&mut multipart, &part), part);
    let event = format!("id: {id}\ndata: to everyone\n\n");
    assert_eq!(read_same_len(&mut sse, &event), event);
    let body = format!("{{\"messages\":[{{\"id\":{id},\"channel\":\"all\",\"type\":\"text/plain\",\"data\":\"to everyone\"}}],\"cursor\":{id}}}\n");
    let answer = String::from_utf8(read_until(&mut poll, b"}\n")).unwrap();
    assert!(answer.ends_with(&body), "{answer}");
    assert_eq!(read_exact(&mut ws, 13), b"\x81\x0bto everyone");
    // One encoding per wire format, shared by whoever uses it.
    let status = server.status();
    for wire in ["multipart_chunked", "sse", "json", "websocket"] {
        assert_eq!(json_number(&status, wire), 1, "{wire}: {status}");
    }
}

#[test]
fn ids_keep_growing_across_a_restart() {
    let server = Server::start(&[]);
    let before = server.publish_id("r", b"x");
    assert_eq!(server.publish_id("r", b"y"), before + 1);
    server.terminate();
    let server = Server::start(&[]);
    let after = server.publish_id("r", b"z");
    assert!(after > before + 1, "{after} after {before}");
    // A client resuming with an id from before the restart is told it may have missed some.
    let request = format!("GET /msgbus/r?transport=longpoll&since={before} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let got = server.exchange(request.as_bytes());
    assert!(
        got.contains(&format!(
            "\"missed\":{{\"after\":{before},\"oldest\":{after}}}"
        )),
        "{got}"
    );
}

#[test]
fn publish_answers_with_json_when_asked() {
    let server = Server::start(&[]);
    let got = server.post("/msgbus/j", "Accept: application/json\r\n", b"x");
    let id = header_value(&got, "Msgbus-Id");
    let body = format!("{{\"id\":{id},\"subscribers\":0}}\n");
    let want = format!("HTTP/1.1 200 OK\r\nServer: msgbus\r\nMsgbus-Id: {id}\r\nMsgbus-Subscribers: 0\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    assert_eq!(got, want);
}

#[test]
fn cors_preflight_and_headers_follow_the_allow_list() {
    let server = Server::start(&["--allow-origin", "https://app.example"]);
    let preflight = server.exchange(b"OPTIONS /msgbus/c HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n");
    assert_eq!(preflight, "HTTP/1.1 204 No Content\r\nServer: msgbus\r\nAllow: GET, HEAD, POST, DELETE, OPTIONS\r\nAccess-Control-Allow-Origin: https://app.example\r\nVary: Origin\r\nAccess-Control-Expose-Headers: Msgbus-Id, Msgbus-Subscribers, Msgbus-Missed\r\nAccess-Control-Allow-Methods: GET, HEAD, POST, DELETE, OPTIONS\r\nAccess-Control-Allow-Headers: Authorization, Content-Type, Last-Event-ID, Msgbus-Key, Msgbus-Event\r\nAccess-Control-Max-Age: 86400\r\nConnection: close\r\n\r\n");
    let other = server.exchange(b"OPTIONS /msgbus/c HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n");
    assert_eq!(other, "HTTP/1.1 204 No Content\r\nServer: msgbus\r\nAllow: GET, HEAD, POST, DELETE, OPTIONS\r\nConnection: close\r\n\r\n");
    let published = server.post("/msgbus/c", "Origin: https://app.example\r\n", b"x");
    assert_eq!(
        header_value(&published, "Access-Control-Allow-Origin"),
        "https://app.example"
    );
    let request = "GET /msgbus/c HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\nAccept: text/event-stream\r\n\r\n";
    let head = SSE_HEAD.replace("X-Accel-Buffering: no\r\n", "X-Accel-Buffering: no\r\nAccess-Control-Allow-Origin: https://app.example\r\nVary: Origin\r\nAccess-Control-Expose-Headers: Msgbus-Id, Msgbus-Subscribers, Msgbus-Missed\r\n");
    subscribe(&server, request, &head);
}
