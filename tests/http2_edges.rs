//! HTTP/2 abuse and edge cases, each driven by tests/http2_edges.py (raw frames, with the
//! `hpack` encoder of Python's `h2` package): floods end the connection with GOAWAY
//! ENHANCE_YOUR_CALM, rule breaks with GOAWAY PROTOCOL_ERROR, one stream over a limit is
//! refused alone, and a shut window holds back only its own stream until the write timeout;
//! WebSocket over a stream (RFC 8441 extended CONNECT).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::*;

fn script_command(server: &Server, name: &str) -> Command {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http2_edges.py");
    let mut command = Command::new("python3");
    command
        .args([script, name, &server.addr.port().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs one case of the script against `server`; returns the line it printed.
fn case(server: &Server, name: &str) -> String {
    let out = Guarded::spawn(&mut script_command(server, name), "http2_edges.py")
        .wait_with_output(READ_TIMEOUT * 3);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn rapid_reset_is_cut_off() {
    let server = Server::start(&[]);
    assert_eq!(
        case(&server, "rapid_reset"),
        "GOAWAY 11 too many streams reset"
    );
    // No subscriber is left behind by the streams opened and reset.
    server.wait_for_counter("subscribers", |n| n == 0, "reset streams left subscribers");
}

#[test]
fn ping_flood_is_cut_off() {
    let server = Server::start(&[]);
    assert_eq!(case(&server, "ping_flood"), "GOAWAY 11 PING flood");
}

#[test]
fn settings_flood_is_cut_off() {
    let server = Server::start(&[]);
    assert_eq!(case(&server, "settings_flood"), "GOAWAY 11 SETTINGS flood");
}

#[test]
fn continuation_flood_is_cut_off() {
    let server = Server::start(&[]);
    assert_eq!(
        case(&server, "continuation_flood"),
        "GOAWAY 11 CONTINUATION flood"
    );
}

#[test]
fn a_stream_id_used_again_ends_the_connection() {
    let server = Server::start(&[]);
    assert_eq!(
        case(&server, "stream_id_reuse"),
        "GOAWAY 1 stream id reused or lower than one before"
    );
}

#[test]
fn streams_over_the_concurrency_limit_are_refused_alone() {
    let server = Server::start(&[]);
    // 128 held, the 129th (stream 257) refused with REFUSED_STREAM.
    assert_eq!(case(&server, "too_many_streams"), "RST_STREAM 7 on 257");
}

#[test]
fn streams_count_against_the_connection_limit() {
    let server = Server::start(&["--max-connections", "5"]);
    // Two connections, then five streams across them; the sixth stream (the second
    // connection's third, stream 5) is refused alone.
    assert_eq!(
        case(&server, "streams_past_the_connection_limit"),
        "RST_STREAM 7 on 5"
    );
    // Counted where a connection over the limit is.
    assert_eq!(server.counter("connection_limit"), 1);
}

#[test]
fn a_header_list_over_max_head_gets_431() {
    let server = Server::start(&["--max-head", "8192"]);
    assert_eq!(
        case(&server, "header_list_too_large"),
        "[(':status', '431')]"
    );
}

#[test]
fn a_shut_window_holds_back_only_its_stream_until_the_write_timeout() {
    let server = Server::start(&["--write-timeout", "2"]);
    assert_eq!(
        case(&server, "zero_window"),
        "heads [1, 3], stream 3 got data: held back, then RST_STREAM 8 on 1, ping stillok!"
    );
    // The script has closed its connection: its streams' subscriptions went with it.
    server.wait_for_counter(
        "subscribers",
        |n| n == 0,
        "a closed connection's streams stayed",
    );
}

/// Runs the signal case: once the script's stream is open, sends `signal`; returns the line
/// the script printed about what followed.
fn after_signal(server: &Server, signal: i32) -> String {
    let mut script = Guarded::spawn(
        &mut script_command(server, "goaway_on_signal"),
        "http2_edges.py",
    );
    let stdout = script.child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(lines.recv_timeout(READ_TIMEOUT).expect("ready"), "ready");
    server.signal(signal);
    let line = lines.recv_timeout(READ_TIMEOUT).expect("an outcome");
    script.wait(READ_TIMEOUT);
    line
}

#[test]
fn reload_sends_goaway_and_open_streams_go_on() {
    let server = Server::start(&[]);
    assert_eq!(
        after_signal(&server, libc::SIGHUP),
        "GOAWAY 0 last 1, stream 1 open, ping still on"
    );
}

#[test]
fn shutdown_sends_goaway_and_ends_streams_with_a_reconnection_delay() {
    let server = Server::start(&[]);
    assert_eq!(
        after_signal(&server, libc::SIGTERM),
        "GOAWAY 0 last 1, stream 1 ended after retry"
    );
}

#[test]
fn websocket_over_an_http2_stream() {
    let server = Server::start(&[]);
    assert_eq!(
        case(&server, "websocket"),
        "ENABLE_CONNECT_PROTOCOL 1, status 200, got 81 over h2, then 81 from ws, close and end"
    );
    server.wait_for_counter("subscribers", |n| n == 0, "the WebSocket stream stayed");
}

#[test]
fn a_slow_stream_alone_meets_the_slow_subscriber_policy() {
    let server = Server::start(&["--max-queue", "8192", "--slow-policy", "close"]);
    assert_eq!(
        case(&server, "slow_stream"),
        "stream 3 got 50, RST_STREAM 8 on 1"
    );
}

#[test]
fn a_body_of_declared_length_may_be_slower_than_the_head_timeout() {
    let server = Server::start(&["--head-timeout", "0.5"]);
    assert_eq!(case(&server, "slow_upload"), "statuses 204 408");
    assert_eq!(server.counter("published"), 1);
}

#[test]
fn the_settings_we_advertise_follow_the_flags() {
    // Sent in this order: MAX_CONCURRENT_STREAMS (3), INITIAL_WINDOW_SIZE (4),
    // MAX_HEADER_LIST_SIZE (6), ENABLE_PUSH (2), HEADER_TABLE_SIZE (1, only when not the
    // default 4,096), ENABLE_CONNECT_PROTOCOL (8); then the connection window's raise.
    let server = Server::start(&[]);
    assert_eq!(
        case(&server, "settings"),
        "SETTINGS 3=128 4=262144 6=16384 2=0 8=1, WINDOW_UPDATE 983041"
    );
    let server = Server::start(&[
        "--http2-max-streams",
        "5",
        "--http2-window",
        "4194304",
        "--http2-hpack-table",
        "256",
        "--max-head",
        "8192",
    ]);
    // A stream window over the connection's default raises the connection's to match.
    assert_eq!(
        case(&server, "settings"),
        "SETTINGS 3=5 4=4194304 6=8192 2=0 1=256 8=1, WINDOW_UPDATE 4128769"
    );
}

#[test]
fn streams_over_http2_max_streams_are_refused_alone() {
    let server = Server::start(&["--http2-max-streams", "5"]);
    let out = Guarded::spawn(
        script_command(&server, "too_many_streams").arg("5"),
        "http2_edges.py",
    )
    .wait_with_output(READ_TIMEOUT * 3);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Five held, the sixth (stream 11) refused with REFUSED_STREAM.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        "RST_STREAM 7 on 11"
    );
}

#[test]
fn http2_window_is_granted_back_at_half() {
    let server = Server::start(&["--http2-window", "16384"]);
    assert_eq!(
        case(&server, "stream_window"),
        "window 16384, granted 8192 after 8192"
    );
}

#[test]
fn http2_hpack_table_binds_once_acknowledged() {
    let server = Server::start(&["--http2-hpack-table", "256"]);
    // No size update after the acknowledgement, then one to 256, then one to 4,096.
    assert_eq!(
        case(&server, "hpack_table"),
        "GOAWAY 9, status 200, GOAWAY 9"
    );
    // At the default size, all three are answered.
    let server = Server::start(&[]);
    assert_eq!(
        case(&server, "hpack_table"),
        "status 200, status 200, status 200"
    );
}
