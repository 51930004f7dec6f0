//! Long-poll and JSONP on `GET /msgbus/CHANNEL?transport=longpoll`: immediate answers from the
//! history, held polls answered by the next message or the timeout, cursors, keep-alive.

mod common;

use std::io::Write;

use common::*;

fn answer(body: &str, content_type: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n\r\n{body}",
        body.len()
    )
}

fn item(id: u64, channel: &str, data: &str) -> String {
    format!("{{\"id\":{id},\"channel\":\"{channel}\",\"type\":\"text/plain\",\"data\":\"{data}\"}}")
}

#[test]
fn a_held_poll_is_answered_by_the_next_message_and_the_connection_goes_on() {
    let server = Server::start(&[]);
    let mut poll = server.connect();
    poll.write_all(b"GET /msgbus/lp?transport=longpoll HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // The poll is held: wait until the server counts it before publishing.
    server.wait_for_counter("subscribers", |n| n != 0, "poll never held");
    let id = server.publish_id("lp", b"hello");
    let body = format!(
        "{{\"messages\":[{}],\"cursor\":{id}}}\n",
        item(id, "lp", "hello")
    );
    let want = answer(&body, "application/json");
    assert_eq!(read_same_len(&mut poll, &want), want);
    assert_eq!(server.counter("subscribers"), 0);
    // Messages published between polls wait in the history for the next poll's cursor.
    let next = server.publish_id("lp", b"a");
    let after = server.publish_id("lp", b"b");
    poll.write_all(
        format!("GET /msgbus/lp?transport=longpoll&since={id} HTTP/1.1\r\nHost: t\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let body = format!(
        "{{\"messages\":[{},{}],\"cursor\":{after}}}\n",
        item(next, "lp", "a"),
        item(after, "lp", "b")
    );
    let want = answer(&body, "application/json");
    assert_eq!(read_same_len(&mut poll, &want), want);
}

#[test]
fn a_poll_times_out_with_no_messages_and_the_same_cursor() {
    let server = Server::start(&["--poll-timeout", "0.2"]);
    let id = server.publish_id("quiet", b"old");
    let mut poll = server.connect();
    let request =
        format!("GET /msgbus/quiet?transport=longpoll&since={id} HTTP/1.1\r\nHost: t\r\n\r\n");
    poll.write_all(request.as_bytes()).unwrap();
    let want = answer(
        &format!("{{\"messages\":[],\"cursor\":{id}}}\n"),
        "application/json",
    );
    assert_eq!(read_same_len(&mut poll, &want), want);
    assert_eq!(server.counter("subscribers"), 0);
}

#[test]
fn jsonp_wraps_the_answer_and_refuses_bad_callbacks() {
    let server = Server::start(&[]);
    let id = server.publish_id("j", b"x");
    let request = format!(
        "GET /msgbus/j?callback=app.got&since={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        id - 1
    );
    let got = server.exchange(request.as_bytes());
    let body = format!(
        "app.got({{\"messages\":[{}],\"cursor\":{id}}});\n",
        item(id, "j", "x")
    );
    let want = answer(&body, "application/javascript").replace(
        "Cache-Control: no-cache\r\n",
        "Cache-Control: no-cache\r\nConnection: close\r\n",
    );
    assert_eq!(got, want);
    let bad = server.exchange(
        b"GET /msgbus/j?callback=alert(1) HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");
    assert!(
        bad.ends_with("\r\n\r\ncallback must be a JavaScript identifier\n"),
        "{bad}"
    );
}

#[test]
fn a_deleted_channel_answers_its_held_polls_with_410() {
    let server = Server::start(&[]);
    let mut poll = server.connect();
    poll.write_all(b"GET /msgbus/bye?transport=longpoll HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    server.wait_for_counter("subscribers", |n| n != 0, "poll never held");
    server.exchange(b"DELETE /msgbus/bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let want = "HTTP/1.1 410 Gone\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 16\r\n\r\nchannel deleted\n";
    assert_eq!(read_same_len(&mut poll, want), want);
    // Nothing more for that poll: the next bytes answer the next request on the connection.
    poll.write_all(b"GET /nothing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let rest = String::from_utf8(read_to_end(&mut poll)).unwrap();
    assert!(rest.starts_with("HTTP/1.1 404 Not Found\r\n"), "{rest}");
}

#[test]
fn a_request_pipelined_behind_a_held_poll_is_answered_after_it() {
    let server = Server::start(&[]);
    let mut poll = server.connect();
    poll.write_all(b"GET /msgbus/pp?transport=longpoll HTTP/1.1\r\nHost: t\r\n\r\nGET /status.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    server.wait_for_counter("subscribers", |n| n != 0, "poll never held");
    let id = server.publish_id("pp", b"first");
    let rest = String::from_utf8(read_to_end(&mut poll)).unwrap();
    let (poll_answer, status) = rest
        .split_once("}\nHTTP/1.1 200 OK\r\n")
        .expect("two answers");
    assert!(
        poll_answer.ends_with(&format!("\"cursor\":{id}")),
        "{poll_answer}"
    );
    assert!(status.contains("\"server\":\"msgbus\""), "{status}");
}
