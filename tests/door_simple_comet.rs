//! The Simple-Comet door: the requests its JS client and test suite send, with its replies
//! (HTTP 200, return_code, error_message), and messages crossing from the native door.

mod common;

use std::io::Write;
use std::time::Instant;

use common::*;

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
    let created = server.post_form("/channels.json", "channel_id=chat");
    assert!(created.starts_with("HTTP/1.1 200 OK\r\n"), "{created}");
    assert_eq!(header_value(&created, "Content-Type"), "application/json");
    assert_eq!(
        body(&created),
        r#"{"channel_id": "chat", "return_code": 1, "error_message": ""}"#
    );
    assert_eq!(
        body(&server.post_form("/channels.json", "channel_id=chat")),
        r#"{"return_code": -2, "error_message": "Channel already exists"}"#
    );
    let published = server.post_form("/channels/chat.json", "content=hello+%C3%A9");
    let id: u64 = json_number(body(&published), "message_id");
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
    let ts = json_number(text, "ts");
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
            server.post_form("/channels/nope.json", "content=x"),
            r#"{"return_code": -2, "error_message": "Nonexistent channel"}"#,
        ),
        (
            server.post_form("/channels/chat.json", ""),
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
            server.post_form("/clients.json", "client_id=c1"),
            r#"{"client_id": "c1", "return_code": 1, "error_message": ""}"#,
        ),
        (
            server.post_form("/clients.json", "client_id=c1"),
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
    server.post_form("/channels.json", "channel_id=live");
    let first = server.post_form("/channels/live.json", "content=one");
    let since: u64 = json_number(body(&first), "message_id");
    let mut read = server.connect();
    read.write_all(
        format!("GET /channels/live.json?since={since} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    )
    .unwrap();
    server.wait_for_counter("subscribers", |n| n != 0, "read never held");
    let id = server.publish_id("live", b"from msgbus");
    let answer = String::from_utf8(read_until(&mut read, b"\"error_message\": \"\"}")).unwrap();
    let text = body(&answer);
    let ts = json_number(text, "ts");
    assert_eq!(
        text,
        format!(
            r#"{{"messages": {{"live": [{{"id": {id}, "ts": {ts}, "content": "from msgbus"}}]}}, "since": {since}, "last_id": {id}, "return_code": 1, "error_message": ""}}"#
        )
    );
    assert_eq!(header_value(&answer, "Content-Type"), "application/json");
    assert_eq!(server.counter("subscribers"), 0);
}

/// The `cb=` callback, `--quote-json`, `--enable-status` and `--max-messages-per-channel`.
#[test]
fn callbacks_quoting_status_and_kept_messages() {
    let server = Server::start(&[
        "--simple-comet",
        "--quote-json",
        "--enable-status",
        "--max-messages-per-channel",
        "2",
    ]);
    let quoted = |json: &str| format!("/*-secure- {json} */");
    assert_eq!(
        body(&server.post_form("/channels.json", "channel_id=a")),
        quoted(r#"{"channel_id": "a", "return_code": 1, "error_message": ""}"#)
    );
    server.post_form("/channels.json", "channel_id=b");
    server.post_form("/clients.json", "client_id=c1");
    let status = get(&server, "/status.json");
    assert_eq!(header_value(&status, "Content-Type"), "application/json");
    assert_eq!(
        body(&status),
        quoted(
            r#"{"status": {"channels": ["a", "b"], "clients": ["c1"], "held_connections_count": 0}, "return_code": 1, "error_message": ""}"#
        )
    );
    assert_eq!(
        body(&get(&server, "/status.xml")),
        quoted(r#"{"return_code": -1, "error_message": "Unknown output format"}"#)
    );
    for content in ["one", "two", "three"] {
        server.post_form("/channels/a.json", &format!("content={content}"));
    }
    // JSON-P is never quoted; the callback named with cb= wraps it; only two messages are kept.
    let read = body(&get(
        &server,
        "/channels/a%7Cb.jsonp?since=0&cb=_JSONP_mine",
    ))
    .to_string();
    assert!(
        read.starts_with(r#"_JSONP_mine({"messages": {"a": [{"id": "#),
        "{read}"
    );
    assert!(
        read.contains(r#"}], "b": []}, "since": 0, "last_id": "#),
        "{read}"
    );
    assert!(
        read.ends_with(r#", "return_code": 1, "error_message": ""});"#),
        "{read}"
    );
    let contents: Vec<&str> = read
        .split("\"content\": \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(contents, ["two", "three"]);
    assert_eq!(
        body(&get(&server, "/channels/a.jsonp?cb=mine")),
        "/* incomplete JSONP callback name */"
    );
    assert_eq!(
        body(&get(&server, "/channels/a.jsonp?cb=_JSONP_a-b")),
        "/* invalid JSONP callback name */"
    );
    // A held read is counted while it waits.
    let last: u64 = json_number(&read, "last_id");
    let mut held = server.connect();
    held.write_all(
        format!("GET /channels/b.json?since={last} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let deadline = Instant::now() + READ_TIMEOUT;
    while !body(&get(&server, "/status.json")).contains("\"held_connections_count\": 1}") {
        assert!(Instant::now() < deadline, "read never held");
    }
    server.post_form("/channels/b.json", "content=wake");
    let answer = String::from_utf8(read_until(&mut held, b"\"error_message\": \"\"} */")).unwrap();
    assert!(
        body(&answer).starts_with(r#"/*-secure- {"messages": {"b": [{"id": "#),
        "{answer}"
    );
    assert!(body(&get(&server, "/status.json")).contains("\"held_connections_count\": 0}"));
}

/// `--http-timeout` answers a held read with its channels empty; `--session-timeout` forgets a
/// client that stops reading; `--inactive-channel-timeout` removes the session channels it
/// leaves unread; a deleted channel takes its messages with it. A held read of one second
/// serves as the test's clock.
#[test]
fn timeouts_sessions_and_deletion() {
    let server = Server::start(&[
        "--simple-comet",
        "--enable-status",
        "--http-timeout",
        "1",
        "--session-timeout",
        "1",
        "--inactive-channel-timeout",
        "1",
    ]);
    server.post_form("/channels.json", "channel_id=open");
    server.post_form("/channels.json", "channel_id=sess&use_sessions=1");
    server.post_form("/clients.json", "client_id=c1");
    let wait_one_timeout = |target: &str| {
        let started = Instant::now();
        let answer = get(&server, target);
        assert!(
            started.elapsed().as_millis() >= 900,
            "answered early: {answer}"
        );
        answer
    };
    let answer = wait_one_timeout("/channels/open%7Csess.json?since=0&client_id=c1");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(
        body(&answer),
        r#"{"messages": {"open": [], "sess": []}, "since": 0, "last_id": 0, "return_code": 1, "error_message": ""}"#
    );
    // The session ran out while the read was held (it was the client's last).
    assert_eq!(
        body(&get(&server, "/channels/sess.json?client_id=c1")),
        r#"{"return_code": -3, "error_message": "Unregistered client_id"}"#
    );
    assert_eq!(
        body(&get(&server, "/status.json")),
        r#"{"status": {"channels": ["open", "sess"], "clients": [], "held_connections_count": 0}, "return_code": 1, "error_message": ""}"#
    );
    wait_one_timeout("/channels/open.json?since=0");
    assert_eq!(
        body(&get(&server, "/status.json")),
        r#"{"status": {"channels": ["open"], "clients": [], "held_connections_count": 0}, "return_code": 1, "error_message": ""}"#
    );
    // The client may register again.
    assert_eq!(
        body(&server.post_form("/clients.json", "client_id=c1")),
        r#"{"client_id": "c1", "return_code": 1, "error_message": ""}"#
    );
    server.post_form("/channels/open.json", "content=old");
    assert_eq!(
        body(&http_delete(&server, "/channels/open.json")),
        r#"{"channel_id": "open", "removed": true, "return_code": 2, "error_message": ""}"#
    );
    server.post_form("/channels.json", "channel_id=open");
    let answer = wait_one_timeout("/channels/open.json?since=0");
    assert_eq!(
        body(&answer),
        r#"{"messages": {"open": []}, "since": 0, "last_id": 0, "return_code": 1, "error_message": ""}"#
    );
}

fn http_delete(server: &Server, target: &str) -> String {
    server.exchange(
        format!("DELETE {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// SIGTERM answers a held read (its channels empty) instead of cutting it off.
#[test]
fn shutdown_answers_held_reads() {
    let server = Server::start(&["--simple-comet"]);
    server.post_form("/channels.json", "channel_id=c");
    let mut read = server.connect();
    read.write_all(b"GET /channels/c.jsonp?since=0&cb=_JSONP_x HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    server.wait_for_counter("subscribers", |n| n != 0, "read never held");
    assert!(server.terminate().success());
    let answer = String::from_utf8(read_to_end(&mut read)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(header_value(&answer, "Connection"), "close");
    assert_eq!(
        body(&answer),
        r#"_JSONP_x({"messages": {"c": []}, "since": 0, "last_id": 0, "return_code": 1, "error_message": ""});"#
    );
}

/// The original answered every path outside `/channels` (and `/clients`, `/status`) with
/// `-1 "Missing '/channels' prefix"`, HTTP 200. So does the door, without a document root, for
/// the paths naming its formats that msgbus has no other meaning for; native paths stay
/// msgbus's, and with a document root every other path is the static server's.
#[test]
fn paths_outside_channels_answer_as_the_original() {
    let server = Server::start(&["--simple-comet"]);
    let missing = r#"{"return_code": -1, "error_message": "Missing '/channels' prefix"}"#;
    for target in ["/foo.json", "/a/b.jsonp", "/status.jsonp"] {
        let answer = get(&server, target);
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{target}: {answer}"
        );
        assert_eq!(body(&answer), missing, "{target}");
    }
    let posted = server.post_form("/foo.json", "content=x");
    assert_eq!(body(&posted), missing);
    let deleted =
        server.exchange(b"DELETE /x.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(body(&deleted), missing);
    // The original unquoted the path before looking for the prefix.
    assert_eq!(
        body(&get(&server, "/%63hannels.json")),
        r#"{"return_code": -2, "error_message": "No channels"}"#
    );
    // msgbus's own: the status, the introspection pages, other paths.
    for target in [
        "/status.json",
        "/msgbus-status/foo.json",
        "/msgbus.json",
        "/nothing-here",
    ] {
        assert!(!get(&server, target).contains("return_code"), "{target}");
    }
    // With a document root, its files (and its 404s) are the static server's.
    let root = std::env::temp_dir().join(format!("msgbus-test-comet-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("data.json"), "{}\n").unwrap();
    let with_files = Server::start(&["--simple-comet", "-d", root.to_str().unwrap()]);
    assert_eq!(body(&get(&with_files, "/data.json")), "{}\n");
    assert!(!get(&with_files, "/foo.json").contains("return_code"));
    std::fs::remove_dir_all(&root).unwrap();
}
