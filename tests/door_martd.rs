//! The martd door: /pub and /sub as martd's client.js sends them, with martd's replies, and
//! messages crossing to the native doors.

mod common;

use std::io::Write;
use std::time::Instant;

use common::*;

fn answer(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nServer: msgbus\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: text/plain; charset=utf-8\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        if status.starts_with("400") { "X-Content-Type-Options: nosniff\r\n" } else { "" },
        body.len()
    )
}

#[test]
fn publish_then_subscribe_from_an_etag() {
    let server = Server::start(&["--martd"]);
    let got = server.post("/pub?channel=room&key=k", "", b"hello");
    let etag: u64 = got
        .split("\"etag\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        got,
        answer("200 OK", &format!("{{\n     \"etag\": \"{etag}\"\n }}"))
    );
    let second = server.post("/pub?channel=room&key=k", "", b"again");
    let etag2: u64 = second
        .split("\"etag\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Everything after etag 0, then only what follows the first etag.
    let all =
        server.exchange(b"GET /sub?cid=c1&room=0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(all, answer("200 OK", &format!("{{\"channels\":{{\"room\":{{\"etag\":\"{etag2}\",\"payload\":[\"hello\",\"again\"]}}}}}}")));
    let after = server.exchange(
        format!("GET /sub?cid=c1&room={etag} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(
        after,
        answer(
            "200 OK",
            &format!(
                "{{\"channels\":{{\"room\":{{\"etag\":\"{etag2}\",\"payload\":[\"again\"]}}}}}}"
            )
        )
    );
    // The key fixed by the first publish; an empty body keeps nothing.
    assert_eq!(
        server.post("/pub?channel=room&key=nope", "", b"x"),
        answer("400 Bad Request", "{\"error\":\"invalid key\"}\n")
    );
    assert_eq!(
        server.post("/pub?channel=room&key=k", "", b""),
        answer("200 OK", "{\n     \"etag\": \"0\"\n }")
    );
}

#[test]
fn a_held_sub_is_answered_by_the_next_publish_from_any_door() {
    let server = Server::start(&["--martd"]);
    let mut sub = server.connect();
    sub.write_all(b"GET /sub?cid=c2&live=0&other=0 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + READ_TIMEOUT;
    while server.counter("subscribers") < 2 {
        assert!(Instant::now() < deadline, "sub never held");
    }
    // Published through the native door.
    let id = server.publish_id("live", b"news <b>");
    let body = format!("{{\"channels\":{{\"live\":{{\"etag\":\"{id}\",\"payload\":[\"news \\u003cb\\u003e\"]}}}}}}");
    let want = answer("200 OK", &body).replace("Connection: close\r\n", "");
    assert_eq!(read_same_len(&mut sub, &want), want);
    assert_eq!(server.counter("subscribers"), 0);
}

#[test]
fn refusals_are_martds() {
    let server = Server::start(&["--martd"]);
    let cases = [
        ("/pub?size=3", "{\"error\":\"channel is required\"}\n"),
        (
            "/pub?channel=c&size=x",
            "{\"error\":\"invalid size: expected integer\"}\n",
        ),
    ];
    for (target, body) in cases {
        assert_eq!(
            server.post(target, "", b"m"),
            answer("400 Bad Request", body),
            "{target}"
        );
    }
    let got =
        server.exchange(b"GET /sub?cid=c&room= HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(
        got,
        answer("400 Bad Request", "{\"error\":\"room has no etag\"}\n")
    );
    // Without --martd the paths are not a door.
    let plain = Server::start(&[]);
    let got = plain.exchange(b"GET /sub?room=0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 404 Not Found\r\n"), "{got}");
}

#[test]
fn list_answers_ok_as_martd_did() {
    let server = Server::start(&["--martd"]);
    let got = server.exchange(b"GET /list HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(got, "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
}
