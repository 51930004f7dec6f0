//! `--data-dir` and the doors: what a door registered outlives a restart (Simple-Comet's
//! channels, and their deletion), what a door keeps as bus channel attributes does too (martd's
//! one2one and key), and a compaction writes back only the doors' latest registrations.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use msgbus::store::record::{DoorRecord, Record};

fn start(dir: &TempDir, extra: &[&str]) -> Server {
    let args = [&["--data-dir", dir.arg()], extra].concat();
    Server::start(&args)
}

/// Kills the server once the log has everything noted so far: a publish is acknowledged only
/// once its record is on disk, and the records noted before it went in that write or an
/// earlier one (registrations, like channel attributes, are not held).
fn kill_once_logged(server: Server) {
    let barrier = server.publish("barrier", "text/plain", b"-");
    assert!(barrier.starts_with("HTTP/1.1 204"), "{barrier}");
    server.signal(libc::SIGKILL);
    drop(server);
}

fn get(server: &Server, target: &str) -> String {
    server.exchange(
        format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn delete(server: &Server, target: &str) -> String {
    server.exchange(
        format!("DELETE {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn status_channels(server: &Server) -> String {
    body(&get(server, "/status.json")).to_string()
}

const COMET: [&str; 4] = ["--simple-comet", "--enable-status", "--http-timeout", "1"];

#[test]
fn simple_comet_channels_and_their_deletion_outlive_a_sigkill() {
    let dir = TempDir::new("comet-restart");
    let server = start(&dir, &COMET);
    for form in [
        "channel_id=chat",
        "channel_id=few&max_messages=2",
        "channel_id=gone",
        "channel_id=sess&use_sessions=1",
    ] {
        let created = server.post_form("/channels.json", form);
        assert!(body(&created).contains("\"return_code\": 1"), "{created}");
    }
    let hello: u64 = json_number(
        body(&server.post_form("/channels/chat.json", "content=hello")),
        "message_id",
    );
    for content in ["1", "2", "3"] {
        server.post_form("/channels/few.json", &format!("content={content}"));
    }
    server.post_form("/channels/sess.json", "content=s1");
    assert_eq!(
        body(&server.post_form("/clients.json", "client_id=c0")),
        r#"{"client_id": "c0", "return_code": 1, "error_message": ""}"#
    );
    assert_eq!(
        body(&delete(&server, "/channels/gone.json")),
        r#"{"channel_id": "gone", "removed": true, "return_code": 2, "error_message": ""}"#
    );
    kill_once_logged(server);

    let server = start(&dir, &COMET);
    // The channel is there, with its message.
    let read = get(&server, "/channels/chat.json?since=0");
    let text = body(&read);
    let ts = json_number(text, "ts");
    let last = json_number(text, "last_id");
    assert_eq!(
        text,
        format!(
            r#"{{"messages": {{"chat": [{{"id": {hello}, "ts": {ts}, "content": "hello"}}]}}, "since": 0, "last_id": {last}, "return_code": 1, "error_message": ""}}"#
        )
    );
    assert_eq!(
        body(&server.post_form("/channels.json", "channel_id=chat")),
        r#"{"return_code": -2, "error_message": "Channel already exists"}"#
    );
    // Deleted stays deleted.
    assert_eq!(
        body(&server.post_form("/channels/gone.json", "content=x")),
        r#"{"return_code": -2, "error_message": "Nonexistent channel"}"#
    );
    // In the order they were registered; clients are sessions, not kept.
    assert_eq!(
        status_channels(&server),
        r#"{"status": {"channels": ["chat", "few", "sess"], "clients": [], "held_connections_count": 0}, "return_code": 1, "error_message": ""}"#
    );
    assert_eq!(
        body(&get(&server, "/channels/chat.json?client_id=c0")),
        r#"{"return_code": -3, "error_message": "Unregistered client_id"}"#
    );
    // max_messages still holds: two kept.
    server.post_form("/channels/few.json", "content=4");
    let few = get(&server, "/channels/few.json?since=0");
    let contents: Vec<&str> = body(&few)
        .split("\"content\": \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(contents, ["3", "4"], "{few}");
    // use_sessions still holds: for registered clients only.
    assert_eq!(
        body(&get(&server, "/channels/sess.json?since=0")),
        r#"{"return_code": -2, "error_message": "No valid channels"}"#
    );
    server.post_form("/clients.json", "client_id=c1");
    let sess = get(&server, "/channels/sess.json?since=0&client_id=c1");
    assert!(
        body(&sess).starts_with(r#"{"messages": {"sess": [{"id": "#)
            && body(&sess).contains(r#""content": "s1"}]}"#),
        "{sess}"
    );
    assert!(server.terminate().success());
}

/// A session channel nobody read is removed after `--inactive-channel-timeout`, and that is
/// kept too: it does not come back with a restart.
#[test]
fn a_session_channel_removed_unclaimed_stays_removed() {
    let dir = TempDir::new("comet-unclaimed");
    let args = [&COMET[..], &["--inactive-channel-timeout", "1"]].concat();
    let server = start(&dir, &args);
    server.post_form("/channels.json", "channel_id=open");
    server.post_form("/channels.json", "channel_id=sess&use_sessions=1");
    let gone = r#"{"status": {"channels": ["open"], "clients": [], "held_connections_count": 0}, "return_code": 1, "error_message": ""}"#;
    // A held read of one second (--http-timeout) is the clock; bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_channels(&server) != gone {
        assert!(Instant::now() < deadline, "{}", status_channels(&server));
        get(&server, "/channels/open.json?since=0");
    }
    kill_once_logged(server);
    // A long timeout now: had the removal not been kept, the channel would be listed.
    let args = [&COMET[..], &["--inactive-channel-timeout", "600"]].concat();
    let server = start(&dir, &args);
    assert_eq!(status_channels(&server), gone);
    assert!(server.terminate().success());
}

/// Every door record in the data directory's segments, in order.
fn door_records(dir: &TempDir) -> Vec<DoorRecord> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let mut doors = Vec::new();
    for path in segments {
        let bytes = std::fs::read(&path).unwrap();
        let mut at = 0;
        while at < bytes.len() {
            let (record, len) = Record::decode(&bytes[at..]).unwrap();
            if let Record::Door(d) = record {
                doors.push(d);
            }
            at += len;
        }
    }
    doors
}

#[test]
fn compaction_keeps_only_the_latest_registrations() {
    let dir = TempDir::new("comet-compact");
    let args = [&COMET[..], &["--segment-size", "65536", "--history", "2"]].concat();
    let server = start(&dir, &args);
    for name in ["a", "b", "c"] {
        server.post_form("/channels.json", &format!("channel_id={name}"));
    }
    delete(&server, "/channels/b.json");
    let body_bytes = vec![b'x'; 1000];
    for _ in 0..1000 {
        server.publish_id("bulk", &body_bytes);
    }
    server.wait_for_log("log compacted", 1);
    // A clean stop lets the writer finish a compaction it has begun.
    assert!(server.terminate().success());
    let registered = |name: &str| DoorRecord {
        door: "simple-comet".into(),
        key: name.as_bytes().to_vec(),
        value: Some([&[0][..], &100u64.to_le_bytes()].concat()),
    };
    assert_eq!(door_records(&dir), [registered("a"), registered("c")]);

    let server = start(&dir, &args);
    assert_eq!(
        status_channels(&server),
        r#"{"status": {"channels": ["a", "c"], "clients": [], "held_connections_count": 0}, "return_code": 1, "error_message": ""}"#
    );
    assert_eq!(
        body(&server.post_form("/channels.json", "channel_id=b")),
        r#"{"channel_id": "b", "return_code": 1, "error_message": ""}"#
    );
    assert!(server.terminate().success());
}

fn martd_answer(status: &str, body: &str, close: bool) -> String {
    format!(
        "HTTP/1.1 {status}\r\nServer: msgbus\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: text/plain; charset=utf-8\r\n{}Content-Length: {}\r\n{}\r\n{body}",
        if status.starts_with("400") { "X-Content-Type-Options: nosniff\r\n" } else { "" },
        body.len(),
        if close { "Connection: close\r\n" } else { "" },
    )
}

fn martd_payload(etag: u64, payload: &str) -> String {
    format!("{{\"channels\":{{\"job\":{{\"etag\":\"{etag}\",\"payload\":[{payload}]}}}}}}")
}

/// martd's channel attributes are the bus's, kept with them: a one2one channel with a key is
/// still both after a restart, and what a reader consumed stays consumed.
#[test]
fn martd_one2one_and_key_outlive_a_sigkill() {
    let dir = TempDir::new("martd-restart");
    let server = start(&dir, &["--martd"]);
    let a = json_number(
        &server.post("/pub?channel=job&one2one=true&key=k", "", b"a"),
        "etag",
    );
    kill_once_logged(server);

    let server = start(&dir, &["--martd"]);
    assert_eq!(
        server.post("/pub?channel=job", "", b"no key"),
        martd_answer("400 Bad Request", "{\"error\":\"invalid key\"}\n", true)
    );
    let b = json_number(&server.post("/pub?channel=job&key=k", "", b"b"), "etag");
    assert!(a < b);
    let read = get(&server, "/sub?cid=w1&job=0");
    assert_eq!(
        read,
        martd_answer("200 OK", &martd_payload(b, "\"a\",\"b\""), true)
    );
    kill_once_logged(server);

    // Consumed before the restart: a reader from the start waits for what comes next.
    let server = start(&dir, &["--martd"]);
    let mut worker = server.connect();
    worker
        .write_all(b"GET /sub?cid=w2&job=0 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    server.wait_for_counter("subscribers", |n| n == 1, "sub never held");
    let c = json_number(&server.post("/pub?channel=job&key=k", "", b"c"), "etag");
    let want = martd_answer("200 OK", &martd_payload(c, "\"c\""), false);
    assert_eq!(read_same_len(&mut worker, &want), want);
    assert!(server.terminate().success());
}
