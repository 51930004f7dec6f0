//! `--proxy-protocol`: a plain listener takes the PROXY protocol header (v1 or v2) a load
//! balancer sends first; the address it names is the client's for `--max-per-address`,
//! `--status-allow` and the logs. Without a valid header in time the connection is closed
//! unanswered, and with `--trusted-proxy` only the proxies it names may send one.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use msgbus::http::proxy::{encode_v1, encode_v2, ProxyHeader};

const STATUS: &[u8] = b"GET /status.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

fn from(source: &str) -> ProxyHeader {
    ProxyHeader::Proxied {
        source: source.parse().unwrap(),
        destination: "127.0.0.1:80".parse().unwrap(),
    }
}

/// Sends `header` and `request` on a new connection, `split` bytes at a time, and reads the
/// whole answer. A connection closed unanswered may end in a reset rather than a FIN (the
/// request was still unread when it was closed): that is an empty answer too.
fn through(server: &Server, header: &[u8], request: &[u8], split: usize) -> String {
    let mut stream = server.connect();
    for piece in [header, request].concat().chunks(split) {
        if stream.write_all(piece).is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    if let Err(e) = stream.read_to_end(&mut answer) {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn v1_and_v2_headers_name_the_client_to_status_access_and_the_log() {
    let server = Server::start(&["--proxy-protocol", "--access-log"]);
    server.wait_for_log("plain listeners expect a PROXY protocol header first", 1);
    let cases: [(Vec<u8>, &str, &str); 5] = [
        (
            encode_v1(&from("203.0.113.7:35646")).into_bytes(),
            "403",
            "203.0.113.7:35646",
        ),
        (
            encode_v2(&from("203.0.113.8:4000")),
            "403",
            "203.0.113.8:4000",
        ),
        (
            encode_v2(&from("[2001:db8::9]:4711")),
            "403",
            "[2001:db8::9]:4711",
        ),
        // A loopback client through the balancer may read the status.
        (
            encode_v1(&from("127.0.0.9:5000")).into_bytes(),
            "200",
            "127.0.0.9:5000",
        ),
        (
            encode_v2(&from("127.0.0.10:5001")),
            "200",
            "127.0.0.10:5001",
        ),
    ];
    for (split, (header, code, client)) in [1, 7, 4096, 3, 4096].into_iter().zip(cases) {
        let answer = through(&server, &header, STATUS, split);
        assert_eq!(answer.get(9..12), Some(code), "{client}: {answer}");
        server.wait_for_log(
            &format!("] {client} \"GET /status.json HTTP/1.1\" {code}"),
            1,
        );
    }
    // The balancer's own health check (v2 LOCAL, v1 UNKNOWN): its own address stands.
    for header in [
        encode_v2(&ProxyHeader::Local),
        b"PROXY UNKNOWN\r\n".to_vec(),
    ] {
        let answer = through(&server, &header, STATUS, 4096);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }
    server.wait_for_log("] 127.0.0.1:", 2);
}

#[test]
fn a_connection_without_a_valid_header_is_closed_unanswered() {
    let server = Server::start(&["--proxy-protocol", "--head-timeout", "1"]);
    let mut bad_version = encode_v2(&from("203.0.113.7:1"));
    bad_version[12] = 0x11;
    let cases: [&[u8]; 4] = [
        STATUS,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 99999 80\r\n",
        b"PROXY TCP4 203.0.113.7 127.0.0.1 1 80 and so on and on and on and on and on and on and on and on and on and on\r\n",
        &bad_version,
    ];
    for case in cases {
        let answer = through(&server, case, STATUS, 4096);
        assert_eq!(answer, "", "{}", String::from_utf8_lossy(case));
    }
    // Half a header, or none, and then nothing: closed once --head-timeout has passed.
    for partial in [&b"PROXY TCP4 203.0.113.7"[..], b""] {
        let mut stream = server.connect();
        stream.write_all(partial).unwrap();
        let started = Instant::now();
        assert_eq!(read_to_end(&mut stream), b"");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900),
            "closed after {waited:?}"
        );
    }
}

#[test]
fn per_address_limits_count_the_client_the_header_names() {
    let server = Server::start(&["--proxy-protocol", "--max-per-address", "1"]);
    // A held connection from 127.0.0.21 (its header read: the answer came back).
    let mut held = server.connect();
    held.write_all(&encode_v1(&from("127.0.0.21:1000")).into_bytes())
        .unwrap();
    held.write_all(b"GET /status.json HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    read_until(&mut held, b"}");
    // The same client again through the same balancer: over its limit.
    let again = through(&server, &encode_v2(&from("127.0.0.21:1001")), STATUS, 4096);
    assert!(again.starts_with("HTTP/1.1 503"), "{again}");
    assert!(
        again.ends_with("too many connections from your address\n"),
        "{again}"
    );
    // Other clients through the same balancer (whose own address is not counted) are not.
    for port in 1..=3 {
        let source = format!("127.0.0.{}:2000", port + 21);
        let other = through(&server, &encode_v2(&from(&source)), STATUS, 4096);
        assert!(
            other.starts_with("HTTP/1.1 200 OK\r\n"),
            "{source}: {other}"
        );
    }
    // Once the held connection is gone, its client may come back (a try may come before the
    // server has seen the close: refused, and tried again a round trip later).
    drop(held);
    let mut answer = String::new();
    for _ in 0..1000 {
        answer = through(&server, &encode_v2(&from("127.0.0.21:1002")), STATUS, 4096);
        if !answer.starts_with("HTTP/1.1 503") {
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

#[test]
fn with_trusted_proxies_only_they_may_send_a_header() {
    let header = encode_v1(&from("203.0.113.7:35646")).into_bytes();
    let elsewhere = Server::start(&["--proxy-protocol", "--trusted-proxy", "10.0.0.1"]);
    assert_eq!(through(&elsewhere, &header, STATUS, 4096), "");
    let here = Server::start(&["--proxy-protocol", "--trusted-proxy", "127.0.0.1"]);
    let answer = through(&here, &header, STATUS, 4096);
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
}
