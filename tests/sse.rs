//! Server-sent events on `GET /msgbus/CHANNEL`: the head, `id:`/`event:`/`data:` lines, resume
//! with `Last-Event-ID`, the missed-messages notice, pings, and non-UTF-8 bodies.

mod common;

use std::io::Write;

use common::*;

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n";

fn sse_request(target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{extra}\r\n")
}

#[test]
fn events_carry_ids_names_and_every_line() {
    let server = Server::start(&[]);
    let mut sub = subscribe(&server, &sse_request("/msgbus/news", ""), SSE_HEAD);
    let id = server.publish_id("news", b"line one\nline two\r\nthree\rfour");
    let want = format!("id: {id}\ndata: line one\ndata: line two\ndata: three\ndata: four\n\n");
    assert_eq!(read_same_len(&mut sub, &want), want);
    let answer = server.post(
        "/msgbus/news?event=alert",
        "Content-Type: text/plain\r\n",
        b"fire",
    );
    let id = header_value(&answer, "Msgbus-Id");
    let want = format!("id: {id}\nevent: alert\ndata: fire\n\n");
    assert_eq!(read_same_len(&mut sub, &want), want);
    // A body that is not UTF-8 has each bad sequence replaced, as a browser would.
    let id = server.publish_id("news", b"caf\xe9!");
    let want = format!("id: {id}\ndata: caf\u{fffd}!\n\n");
    assert_eq!(read_same_len(&mut sub, &want), want);
    // ?transport=sse works without the Accept header; ?format=json sends the envelope.
    let plain = "GET /msgbus/news?transport=sse&format=json HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut json_sub = subscribe(&server, plain, SSE_HEAD);
    let id = server.publish_id("news", b"x");
    let want = format!(
        "id: {id}\ndata: {{\"id\":{id},\"channel\":\"news\",\"type\":\"text/plain\",\"data\":\"x\"}}\n\n"
    );
    assert_eq!(read_same_len(&mut json_sub, &want), want);
}

#[test]
fn last_event_id_resumes_with_nothing_lost_or_repeated() {
    let server = Server::start(&[]);
    let first = server.publish_id("r", b"one");
    let second = server.publish_id("r", b"two");
    let third = server.publish_id("r", b"three");
    let request = sse_request("/msgbus/r", &format!("Last-Event-ID: {first}\r\n"));
    let mut sub = subscribe(&server, &request, SSE_HEAD);
    let want = format!("id: {second}\ndata: two\n\nid: {third}\ndata: three\n\n");
    assert_eq!(read_same_len(&mut sub, &want), want);
    let fourth = server.publish_id("r", b"four");
    let want = format!("id: {fourth}\ndata: four\n\n");
    assert_eq!(read_same_len(&mut sub, &want), want);
    // The same through the query string.
    let mut again = subscribe(
        &server,
        &sse_request(&format!("/msgbus/r?last_event_id={third}"), ""),
        SSE_HEAD,
    );
    assert_eq!(read_same_len(&mut again, &want), want);
}

#[test]
fn a_client_resuming_past_the_history_is_told_what_it_missed() {
    let server = Server::start(&["--history", "2"]);
    let first = server.publish_id("m", b"1");
    let _second = server.publish_id("m", b"2");
    let third = server.publish_id("m", b"3");
    let fourth = server.publish_id("m", b"4");
    let request = sse_request("/msgbus/m", &format!("Last-Event-ID: {first}\r\n"));
    let head = SSE_HEAD.replace(
        "Connection: close",
        &format!("Msgbus-Missed: after={first}, oldest={third}\r\nConnection: close"),
    );
    let mut sub = subscribe(&server, &request, &head);
    let want = format!(
        "event: msgbus-missed\ndata: {{\"after\":{first},\"oldest\":{third}}}\n\nid: {third}\ndata: 3\n\nid: {fourth}\ndata: 4\n\n"
    );
    assert_eq!(read_same_len(&mut sub, &want), want);
}

#[test]
fn idle_streams_get_pings() {
    let server = Server::start(&["--ping-interval", "0.2"]);
    let mut sub = subscribe(&server, &sse_request("/msgbus/quiet", ""), SSE_HEAD);
    for _ in 0..2 {
        assert_eq!(read_same_len(&mut sub, ": ping\n\n"), ": ping\n\n");
    }
}

#[test]
fn deleting_the_channel_says_so_and_ends_the_stream() {
    let server = Server::start(&[]);
    let mut sub = subscribe(&server, &sse_request("/msgbus/doomed", ""), SSE_HEAD);
    let answer =
        server.exchange(b"DELETE /msgbus/doomed HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
    assert_eq!(header_value(&answer, "Msgbus-Subscribers"), "1");
    let rest = String::from_utf8(read_to_end(&mut sub)).unwrap();
    assert_eq!(rest, "event: msgbus-deleted\ndata: {}\n\n");
    let again =
        server.exchange(b"DELETE /msgbus/doomed HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(again.starts_with("HTTP/1.1 404 Not Found\r\n"), "{again}");
}

#[test]
fn http10_clients_get_the_same_stream() {
    let server = Server::start(&[]);
    let mut sub = server.connect();
    sub.write_all(b"GET /msgbus/old HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let head = "HTTP/1.0 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\nretry: 2000\n\n";
    assert_eq!(read_same_len(&mut sub, head), head);
    let id = server.publish_id("old", b"hi");
    let want = format!("id: {id}\ndata: hi\n\n");
    assert_eq!(read_same_len(&mut sub, &want), want);
    // Once: the next event is the next message.
    let id = server.publish_id("old", b"again");
    let want = format!("id: {id}\ndata: again\n\n");
    assert_eq!(read_same_len(&mut sub, &want), want);
}

/// `?format=json` sends the message as a JSON object, a body that is not UTF-8 as
/// `"data_base64"`; several channels get JSON by default and `?format=raw` the body alone.
#[test]
fn json_and_raw_formats() {
    let server = Server::start(&[]);
    let mut json = subscribe(
        &server,
        &sse_request("/msgbus/bin?format=json", ""),
        SSE_HEAD,
    );
    let mut raw = subscribe(
        &server,
        &sse_request("/msgbus/bin,other?format=raw", ""),
        SSE_HEAD,
    );
    let id = server.publish_id("bin", b"\xff\x00ok");
    let want = format!("id: {id}\ndata: {{\"id\":{id},\"channel\":\"bin\",\"type\":\"text/plain\",\"data_base64\":\"/wBvaw==\"}}\n\n");
    assert_eq!(read_same_len(&mut json, &want), want);
    let want = format!("id: {id}\ndata: \u{fffd}\u{0}ok\n\n");
    assert_eq!(read_same_len(&mut raw, &want), want);
}
