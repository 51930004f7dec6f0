//! The channel pages (`/msgbus-status/channels.json`, `/msgbus-status/channels/NAME.json`)
//! after known sequences, who may read them, and the /metrics families added for operators:
//! process figures, the build, publish-to-written latency, history evictions and expiries,
//! missed notices and bytes in.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n";

/// A 200 answer of `application/json` on a closed connection, as `exchange` returns it.
fn json_answer(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn get(server: &Server, target: &str, headers: &str) -> String {
    server.exchange(
        format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// A sample's value in Prometheus text, by its name and labels.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

/// Sends `raw` on a new connection and returns it with the bytes sent counted into `sent`.
fn send(server: &Server, raw: &str, sent: &mut usize) -> TcpStream {
    let mut stream = server.connect();
    stream.write_all(raw.as_bytes()).unwrap();
    *sent += raw.len();
    stream
}

#[test]
fn one_channel_after_a_known_sequence() {
    let server = Server::start(&[]);
    let _multipart = subscribe(
        &server,
        "GET /msgbus/room/1 HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    let _sse = subscribe(
        &server,
        "GET /msgbus/room/1 HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        SSE_HEAD,
    );
    let _sse_json = subscribe(
        &server,
        "GET /msgbus/room/1?format=json HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        SSE_HEAD,
    );
    // A subtree subscription reaches the channel too; it is counted apart.
    let _subtree = subscribe(
        &server,
        "GET /msgbus/room/ HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    let mut ids = Vec::new();
    for body in ["m1", "m2", "m3", "m4"] {
        let answer = server.post(
            "/msgbus/room/1?size=3&life=600",
            "Content-Type: text/plain\r\nMsgbus-Key: s3cret\r\n",
            body.as_bytes(),
        );
        ids.push(
            header_value(&answer, "Msgbus-Id")
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{answer}")),
        );
    }
    // Three kept of four; each costs its body, its type and 256 bytes of overhead.
    let want = format!(
        "{{\"channel\":\"room/1\",\"subscribers\":{{\"multipart\":1,\"sse\":2,\"longpoll\":0,\
         \"websocket\":0}},\"subscribers_total\":3,\"subtree_subscribers\":1,\"messages\":3,\
         \"bytes\":{},\"oldest_id\":{},\"last_id\":{},\"size\":3,\"lifetime\":600,\
         \"keyed\":true,\"one2one\":false}}\n",
        3 * (2 + "text/plain".len() + 256),
        ids[1],
        ids[3]
    );
    let answer = get(&server, "/msgbus-status/channels/room/1.json", "");
    assert_eq!(answer, json_answer(&want));
    assert!(!answer.contains("s3cret"));
    // Percent-encoded names are decoded like /msgbus/ paths.
    assert_eq!(
        get(&server, "/msgbus-status/channels/room%2F1.json", ""),
        json_answer(&want)
    );
    let missing = get(&server, "/msgbus-status/channels/nope.json", "");
    assert!(
        missing.starts_with("HTTP/1.1 404 Not Found\r\n") && missing.ends_with("no such channel\n"),
        "{missing}"
    );
    let bad = get(&server, "/msgbus-status/channels/a%0Ab.json", "");
    assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");
    let posted = server.post("/msgbus-status/channels/room/1.json", "", b"x");
    assert!(
        posted.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{posted}"
    );
}

#[test]
fn the_channel_list_pages_in_name_order() {
    let server = Server::start(&[]);
    let mut last_ids = Vec::new();
    // Made out of order; listed by name.
    for name in ["p4", "p1", "p6", "p0", "p3", "p5", "p2"] {
        last_ids.push((name, server.publish_id(name, b"x")));
    }
    last_ids.sort();
    let _sub = subscribe(
        &server,
        "GET /msgbus/p3 HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    let entry = |i: usize| {
        let (name, id) = last_ids[i];
        let subscribers = usize::from(name == "p3");
        format!("{{\"channel\":\"{name}\",\"subscribers\":{subscribers},\"messages\":1,\"last_id\":{id}}}")
    };
    let pages = [
        ("", "0,1,2", "\"p2\""),
        ("p2", "3,4,5", "\"p5\""),
        ("p5", "6", "null"),
    ];
    for (after, indices, next) in pages {
        let listed: Vec<String> = indices
            .split(',')
            .map(|i| entry(i.parse().unwrap()))
            .collect();
        let want = format!("{{\"channels\":[{}],\"next\":{next}}}\n", listed.join(","));
        let answer = get(
            &server,
            &format!("/msgbus-status/channels.json?limit=3&after={after}"),
            "",
        );
        assert_eq!(answer, json_answer(&want), "after {after:?}");
    }
    // The default page holds them all; past the end is empty.
    let all = get(&server, "/msgbus-status/channels.json", "");
    assert!(
        body(&all).ends_with(&format!("{}],\"next\":null}}\n", entry(6))),
        "{all}"
    );
    assert_eq!(
        get(&server, "/msgbus-status/channels.json?after=z", ""),
        json_answer("{\"channels\":[],\"next\":null}\n")
    );
    for limit in ["0", "1001", "x"] {
        let refused = get(
            &server,
            &format!("/msgbus-status/channels.json?limit={limit}"),
            "",
        );
        assert!(
            refused.starts_with("HTTP/1.1 400 Bad Request\r\n")
                && refused.ends_with("limit must be a number from 1 to 1000\n"),
            "{refused}"
        );
    }
}

#[test]
fn channel_pages_follow_the_status_access_rules() {
    // Loopback is outside the allowed network, and there is no token: refused.
    let server = Server::start(&["--status-allow", "10.0.0.0/8"]);
    server.publish_id("c", b"x");
    for target in [
        "/msgbus-status/channels.json",
        "/msgbus-status/channels/c.json",
    ] {
        let refused = get(&server, target, "");
        assert!(
            refused.starts_with("HTTP/1.1 403 Forbidden\r\n")
                && refused.ends_with("not allowed to read the status\n"),
            "{refused}"
        );
    }
    drop(server);
    let server = Server::start(&["--status-allow", "10.0.0.0/8", "--status-token", "peek"]);
    server.publish_id("c", b"x");
    for target in [
        "/msgbus-status/channels.json",
        "/msgbus-status/channels/c.json",
    ] {
        let refused = get(&server, target, "Authorization: Bearer nope\r\n");
        assert!(
            refused.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{refused}"
        );
        let allowed = get(&server, target, "Authorization: Bearer peek\r\n");
        assert!(allowed.starts_with("HTTP/1.1 200 OK\r\n"), "{allowed}");
        let allowed = get(&server, &format!("{target}?token=peek"), "");
        assert!(allowed.starts_with("HTTP/1.1 200 OK\r\n"), "{allowed}");
    }
}

#[test]
fn the_pages_do_not_collide_with_simple_comet() {
    let server = Server::start(&["--simple-comet", "--enable-status"]);
    server.publish_id("c", b"x");
    let page = get(&server, "/msgbus-status/channels/c.json", "");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(body(&page).starts_with("{\"channel\":\"c\","), "{page}");
}

#[test]
fn new_metrics_after_a_known_sequence() {
    let server = Server::start(&[]);
    let mut sent = 0;
    let mut multipart = send(
        &server,
        "GET /msgbus/m HTTP/1.1\r\nHost: t\r\n\r\n",
        &mut sent,
    );
    assert_eq!(read_same_len(&mut multipart, HEAD_11), HEAD_11);
    let mut sse = send(
        &server,
        "GET /msgbus/m HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        &mut sent,
    );
    assert_eq!(read_same_len(&mut sse, SSE_HEAD), SSE_HEAD);
    // Two live frames per message; those of one message in 16, chosen by id, are timed once
    // their last byte is written. Publish until two messages were timed (ids are consecutive,
    // and the hash leaves no gap of more than about 20 between timed ones).
    let (mut published, mut timed_messages) = (0, 0);
    while timed_messages < 2 {
        assert!(published < 200, "no timed message in {published}");
        let body = format!("body{published}");
        let publish = format!(
            "POST /msgbus/m HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut publisher = send(&server, &publish, &mut sent);
        let answer = String::from_utf8_lossy(&read_to_end(&mut publisher)).into_owned();
        let id: u64 = header_value(&answer, "Msgbus-Id").parse().unwrap();
        timed_messages += u64::from(msgbus::stats::is_timed(id));
        published += 1;
        read_until(&mut multipart, format!("\n{body}--").as_bytes());
        read_until(&mut sse, format!("data: {body}\n").as_bytes());
    }
    // A history of 1 pushes one message out for each later one (3 messages: 2 displaced).
    for _ in 0..3 {
        let publish = "POST /msgbus/small?size=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx";
        read_to_end(&mut send(&server, publish, &mut sent));
    }
    // A cursor from before the server started is told it may have missed messages, once per
    // subscription, on a stream and in a long-poll answer.
    let kept =
        "POST /msgbus/r HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nConnection: close\r\n\r\nkept";
    read_to_end(&mut send(&server, kept, &mut sent));
    let resume = "GET /msgbus/r?since=1 HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n";
    let mut resumed = send(&server, resume, &mut sent);
    read_until(&mut resumed, b"kept");
    let poll =
        "GET /msgbus/r?transport=longpoll&since=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    read_to_end(&mut send(&server, poll, &mut sent));
    // A message living one second expires; asking for the channel notices it.
    let short = "POST /msgbus/brief?life=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx";
    read_to_end(&mut send(&server, short, &mut sent));
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let target = "GET /msgbus-status/channels/brief.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        let page = String::from_utf8_lossy(&read_to_end(&mut send(&server, target, &mut sent)))
            .into_owned();
        if page.contains("\"messages\":0,") {
            break;
        }
        assert!(Instant::now() < deadline, "never expired: {page}");
        std::thread::sleep(Duration::from_millis(50)); // waiting on the message's lifetime
    }
    let request = "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let answer =
        String::from_utf8_lossy(&read_to_end(&mut send(&server, request, &mut sent))).into_owned();
    let text = body(&answer);
    let delivered = sample(text, "msgbus_delivered_total");
    // The live messages to 2 subscribers, then the replays (1 to the resumed stream, 1 in the
    // poll).
    assert_eq!(delivered, (2 * published + 2) as f64, "{text}");
    // Replays are not timed: only the timed messages' live frames.
    let timed = sample(text, "msgbus_publish_to_written_seconds_count");
    assert_eq!(timed, (2 * timed_messages) as f64, "{text}");
    assert_eq!(
        sample(
            text,
            "msgbus_publish_to_written_seconds_bucket{le=\"+Inf\"}"
        ),
        timed
    );
    let sum = sample(text, "msgbus_publish_to_written_seconds_sum");
    assert!(
        sum > 0.0 && sum < timed * READ_TIMEOUT.as_secs_f64(),
        "{sum}"
    );
    // Every byte sent so far was read, the metrics request included.
    assert_eq!(sample(text, "msgbus_bytes_in_total"), sent as f64, "{text}");
    assert_eq!(sample(text, "msgbus_missed_notices_total"), 2.0, "{text}");
    assert_eq!(
        sample(text, "msgbus_history_evicted_total{cause=\"size\"}"),
        2.0
    );
    assert_eq!(
        sample(
            text,
            "msgbus_history_evicted_total{cause=\"retained_bytes\"}"
        ),
        0.0
    );
    assert_eq!(sample(text, "msgbus_history_expired_total"), 1.0);
    assert!(text.contains("# TYPE msgbus_publish_to_written_seconds histogram\n"));
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!("\nmsgbus_build_info{{version=\"{version}\"}} 1\n")),
        "{text}"
    );
    let cpu = sample(text, "process_cpu_seconds_total");
    assert!((0.0..60.0).contains(&cpu), "{cpu}");
    let resident = sample(text, "process_resident_memory_bytes");
    assert!(resident > 1e6 && resident < 1e9, "{resident}");
    // At least the three streams held, the listener and the standard descriptors.
    let fds = sample(text, "process_open_fds");
    assert!((7.0..100.0).contains(&fds), "{fds}");
    assert!(sample(text, "process_max_fds") >= fds);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let started = sample(text, "process_start_time_seconds");
    assert!(
        started <= now.as_secs_f64() + 1.0 && started > now.as_secs_f64() - 120.0,
        "{started}"
    );
}
