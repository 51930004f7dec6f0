//! The Simple-Comet door: the requests its JS client and test suite send, with its replies
//! (HTTP 200, return_code, error_message), and messages crossing from the native door.

mod common;

use std::io::Write;
use std::time::Instant;

use common::*;

fn form(server: &Server, path: &str, body: &str) -> String {
    server.post(
        path,
        "Content-Type: application/x-www-form-urlencoded\r\n",
        body.as_bytes(),
    )
}

fn get(server: &Server, target: &str) -> String {
    server.exchange(
        format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").unwrap().1
}

#[test]
fn channels_clients_publish_and_read() {
    let server = Server::start(&["--simple-comet"]);
    let created = form(&server, "/channels.json", "channel_id=chat");
    assert!(created.starts_with("HTTP/1.1 200 OK\r\n"), "{created}");
    assert_eq!(header_value(&created, "Content-Type"), "application/json");
    assert_eq!(
        body(&created),
        r#"{"channel_id": "chat", "return_code": 1, "error_message": ""}"#
    );
    assert_eq!(
        body(&form(&server, "/channels.json", "channel_id=chat")),
        r#"{"return_code": -2, "error_message": "Channel already exists"}"#
    );
    let published = form(&server, "/channels/chat.json", "content=hello+%C3%A9");
    let id: u64 = body(&published)
        .split("\"message_id\": ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        body(&published),
        format!(r#"{{"message_id": {id}, "return_code": 1, "error_message": ""}}"#)
    );
    let read = get(&server, "/channels/chat.json?since=0");
    assert!(
        header_value(&read, "Cache-Control").starts_with("private, must-revalidate"),
        "{read}"
    );
    let text = body(&read);
    let ts = text
        .split("\"ts\": ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert_eq!(
        text,
        format!(
            r#"{{"messages": {{"chat": [{{"id": {id}, "ts": {ts}, "content": "hello \u00e9"}}]}}, "since": 0, "last_id": {id}, "return_code": 1, "error_message": ""}}"#
        )
    );
    let jsonp = get(&server, "/channels/chat.jsonp?since=0");
    assert_eq!(
        header_value(&jsonp, "Content-Type"),
        "application/javascript"
    );
    assert_eq!(body(&jsonp), format!("_JSONP_comet_cb({text});"));
    for (request, want) in [
        (
            form(&server, "/channels/nope.json", "content=x"),
            r#"{"return_code": -2, "error_message": "Nonexistent channel"}"#,
        ),
        (
            form(&server, "/channels/chat.json", ""),
            r#"{"return_code": -1, "error_message": "Missing content"}"#,
        ),
        (
            get(&server, "/channels/nope.json"),
            r#"{"return_code": -2, "error_message": "No valid channels"}"#,
        ),
        (
            get(&server, "/channels/chat.json?client_id=who"),
            r#"{"return_code": -3, "error_message": "Unregistered client_id"}"#,
        ),
        (
            form(&server, "/clients.json", "client_id=c1"),
            r#"{"client_id": "c1", "return_code": 1, "error_message": ""}"#,
        ),
        (
            form(&server, "/clients.json", "client_id=c1"),
            r#"{"return_code": -2, "error_message": "Client already exists"}"#,
        ),
    ] {
        assert!(request.starts_with("HTTP/1.1 200 OK\r\n"), "{request}");
        assert_eq!(body(&request), want);
    }
}

#[test]
fn a_held_read_is_woken_by_a_message_from_any_door() {
    let server = Server::start(&["--simple-comet"]);
    form(&server, "/channels.json", "channel_id=live");
    let first = form(&server, "/channels/live.json", "content=one");
    let since: u64 = body(&first)
        .split("\"message_id\": ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut read = server.connect();
    read.write_all(
        format!("GET /channels/live.json?since={since} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let deadline = Instant::now() + READ_TIMEOUT;
    while server.counter("subscribers") == 0 {
        assert!(Instant::now() < deadline, "read never held");
    }
    let id = server.publish_id("live", b"from msgbus");
    let answer = String::from_utf8(read_until(&mut read, b"\"error_message\": \"\"}")).unwrap();
    let text = body(&answer);
    let ts = text
        .split("\"ts\": ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert_eq!(
        text,
        format!(
            r#"{{"messages": {{"live": [{{"id": {id}, "ts": {ts}, "content": "from msgbus"}}]}}, "since": {since}, "last_id": {id}, "return_code": 1, "error_message": ""}}"#
        )
    );
    assert_eq!(header_value(&answer, "Content-Type"), "application/json");
    assert_eq!(server.counter("subscribers"), 0);
}
