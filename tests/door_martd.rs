//! The martd door: /pub and /sub as martd's client.js sends them, with martd's replies, and
//! messages crossing to the native doors.

mod common;

use std::io::Write;

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
    let etag: u64 = etag_of(&got);
    assert_eq!(
        got,
        answer("200 OK", &format!("{{\n     \"etag\": \"{etag}\"\n }}"))
    );
    let second = server.post("/pub?channel=room&key=k", "", b"again");
    let etag2: u64 = etag_of(&second);
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
    server.wait_for_counter("subscribers", |n| n >= 2, "sub never held");
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

fn etag_of(answer: &str) -> u64 {
    json_number(answer, "etag")
}

fn sub(server: &Server, query: &str) -> String {
    server.exchange(
        format!("GET /sub?{query} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// `one2one=true`: the first delivery, at once or to a held /sub, empties the channel.
#[test]
fn one2one_messages_are_consumed_once() {
    let server = Server::start(&["--martd"]);
    let first = etag_of(&server.post("/pub?channel=job&one2one=true", "", b"a"));
    let second = etag_of(&server.post("/pub?channel=job&one2one=true", "", b"b"));
    let body =
        format!("{{\"channels\":{{\"job\":{{\"etag\":\"{second}\",\"payload\":[\"a\",\"b\"]}}}}}}");
    assert_eq!(sub(&server, "cid=w1&job=0"), answer("200 OK", &body));
    assert!(first < second);
    // Consumed: a second worker from the start waits, and gets only what comes next.
    let mut worker = server.connect();
    worker
        .write_all(b"GET /sub?cid=w2&job=0 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    server.wait_for_counter("subscribers", |n| n != 0, "sub never held");
    let third = etag_of(&server.post("/pub?channel=job", "", b"c"));
    let body = format!("{{\"channels\":{{\"job\":{{\"etag\":\"{third}\",\"payload\":[\"c\"]}}}}}}");
    let want = answer("200 OK", &body).replace("Connection: close\r\n", "");
    assert_eq!(read_same_len(&mut worker, &want), want);
    // Delivered to the held worker, so consumed too: nothing left for the next one.
    let mut late = server.connect();
    late.write_all(b"GET /sub?cid=w3&job=0 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // Positive evidence: the server holds the request (it would have answered at once had
    // anything been left), and its answer is the next message alone.
    server.wait_for_counter("subscribers", |n| n == 1, "the late sub never held");
    let fourth = etag_of(&server.post("/pub?channel=job", "", b"d"));
    let body =
        format!("{{\"channels\":{{\"job\":{{\"etag\":\"{fourth}\",\"payload\":[\"d\"]}}}}}}");
    let want = answer("200 OK", &body).replace("Connection: close\r\n", "");
    assert_eq!(read_same_len(&mut late, &want), want);
    // A channel without one2one keeps its messages for every reader.
    server.post("/pub?channel=feed", "", b"x");
    for cid in ["r1", "r2"] {
        assert!(sub(&server, &format!("cid={cid}&feed=0")).ends_with("\"payload\":[\"x\"]}}}"));
    }
}

/// The first /pub fixes size and key; later ones' attributes are ignored, and a channel first
/// published without a key never needs one.
#[test]
fn the_first_publish_fixes_the_attributes() {
    let server = Server::start(&["--martd"]);
    server.post("/pub?channel=small&size=2", "", b"1");
    server.post("/pub?channel=small&size=10", "", b"2");
    let last = etag_of(&server.post("/pub?channel=small&size=10", "", b"3"));
    let body =
        format!("{{\"channels\":{{\"small\":{{\"etag\":\"{last}\",\"payload\":[\"2\",\"3\"]}}}}}}");
    assert_eq!(sub(&server, "cid=c&small=0"), answer("200 OK", &body));
    server.post("/pub?channel=open", "", b"1");
    let got = server.post("/pub?channel=open&key=late", "", b"2");
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(server
        .post("/pub?channel=open", "", b"3")
        .starts_with("HTTP/1.1 200 OK\r\n"));
    server.post("/pub?channel=locked&key=k1", "", b"1");
    assert_eq!(
        server.post("/pub?channel=locked", "", b"2"),
        answer("400 Bad Request", "{\"error\":\"invalid key\"}\n")
    );
}

/// `/client.js`: the martd-compatible browser client, served as martd served its own. (That it
/// works is shown in Chromium by tests/browser/martd.test.mjs; here: what goes on the wire.)
#[test]
fn the_client_script_is_served() {
    let server = Server::start(&["--martd"]);
    let got = server.exchange(b"GET /client.js HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let (head, served) = got.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        header_value(head, "Content-Type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header_value(head, "Content-Length"),
        served.len().to_string()
    );
    // The served body, not the test's own copy, carries martd's API.
    for api in [
        "martd.sub = function",
        "martd.pub = function",
        "cancel: function",
    ] {
        assert!(served.contains(api), "{api} not in what was served");
    }
    assert_eq!(served, include_str!("../static/martd-client.js"));
}

/// A one2one channel's message received by a native subscriber is consumed too: a later martd
/// `/sub` from the start finds nothing and is held.
#[test]
fn one2one_messages_are_consumed_by_native_subscribers_too() {
    let server = Server::start(&["--martd"]);
    let first = server.post("/pub?channel=solo&one2one=true", "", b"first");
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    // The channel exists (the first publish made it one2one); a native subscriber joins.
    let mut native = subscribe(
        &server,
        "GET /msgbus/solo HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n",
    );
    server.wait_for_counter(
        "subscribers",
        |n| n >= 1,
        "the native subscriber never joined",
    );
    server.post("/pub?channel=solo", "", b"second");
    let event = String::from_utf8(read_until(&mut native, b"\n\n")).unwrap();
    assert!(event.ends_with("data: second\n\n"), "{event}");
    // Its delivery consumed it, and what came before it: a read from the start is held, and
    // answered by the next message alone.
    let mut held = server.connect();
    held.write_all(b"GET /sub?cid=x&solo=0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    server.wait_for_counter("subscribers", |n| n >= 2, "the /sub was answered, not held");
    server.post("/pub?channel=solo", "", b"third");
    let answer = undate(&String::from_utf8(read_to_end(&mut held)).unwrap());
    assert!(answer.ends_with("\"payload\":[\"third\"]}}}"), "{answer}");
}

/// `life` is in nanoseconds, as martd read it: a message published with `life=1000000000` is
/// gone after that second while one with an hour's life stays. A life under a second (here
/// 1 ns) is taken as one second: the message is there right after it is published.
#[test]
fn life_is_in_nanoseconds() {
    let server = Server::start(&["--martd"]);
    let hour = etag_of(&server.post("/pub?channel=hour&life=3600000000000", "", b"stays"));
    let second = etag_of(&server.post("/pub?channel=second&life=1000000000", "", b"goes"));
    let tiny = etag_of(&server.post("/pub?channel=tiny&life=1", "", b"also goes"));
    let published = std::time::Instant::now();
    let query = "cid=x&hour=0&second=0&tiny=0";
    assert_eq!(
        sub(&server, query),
        answer(
            "200 OK",
            &format!("{{\"channels\":{{\"hour\":{{\"etag\":\"{hour}\",\"payload\":[\"stays\"]}},\"second\":{{\"etag\":\"{second}\",\"payload\":[\"goes\"]}},\"tiny\":{{\"etag\":\"{tiny}\",\"payload\":[\"also goes\"]}}}}}}")
        )
    );
    // Expiry is the behaviour under test, so this waits for it: a look every 50 ms, for at
    // most 5 s.
    let hour_only = answer(
        "200 OK",
        &format!("{{\"channels\":{{\"hour\":{{\"etag\":\"{hour}\",\"payload\":[\"stays\"]}}}}}}"),
    );
    let deadline = published + std::time::Duration::from_secs(5);
    let mut last = String::new();
    while last != hour_only {
        assert!(
            std::time::Instant::now() < deadline,
            "not expired within 5 s: {last}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
        last = sub(&server, query);
    }
    let after = published.elapsed();
    assert!(
        after >= std::time::Duration::from_millis(900),
        "gone {after:?} after publishing"
    );
}
