//! `--trusted-proxy`: the forwarding headers of a trusted proxy give the client's address to
//! `--status-allow` and the access log; from anyone else they change nothing.

mod common;

use std::io::{Read, Write};

use common::*;

const STATUS: &str = "GET /status.json HTTP/1.1\r\nHost: t\r\n";

/// Sends one status request with `headers` on a new connection; returns the status code and
/// the address the connection came from.
fn status_with(server: &Server, headers: &str) -> (String, std::net::SocketAddr) {
    let mut stream = server.connect();
    let from = stream.local_addr().unwrap();
    let request = format!("{STATUS}{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let answer = String::from_utf8_lossy(&read_to_end(&mut stream)).into_owned();
    let code = answer.get(9..12).unwrap_or("").to_string();
    (code, from)
}

#[test]
fn spoofed_forwarding_headers_from_an_untrusted_peer_change_nothing() {
    let spoof = "X-Forwarded-For: 203.0.113.9\r\nForwarded: for=203.0.113.9\r\n";
    for trusted in [&[][..], &["--trusted-proxy", "10.0.0.1,unix"][..]] {
        let server = Server::start(&[&["--access-log"], trusted].concat());
        let (code, from) = status_with(&server, spoof);
        assert_eq!(code, "200", "{trusted:?}: loopback may read the status");
        server.wait_for_log(&format!("{from} \"GET /status.json HTTP/1.1\" 200"), 1);
        assert!(!server.log().contains("203.0.113.9"), "{}", server.log());
    }
}

#[test]
fn a_trusted_proxy_names_the_client_to_status_access_and_the_log() {
    let server = Server::start(&["--access-log", "--trusted-proxy", "127.0.0.1"]);
    let cases = [
        // The rightmost hop the proxy does not vouch for is the client.
        (
            "X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n",
            "403",
            "203.0.113.9",
        ),
        (
            "X-Forwarded-For: 198.51.100.1, 203.0.113.9, 127.0.0.1\r\n",
            "403",
            "203.0.113.9",
        ),
        // A loopback client other than the proxy itself may read the status.
        ("X-Forwarded-For: 127.0.0.5\r\n", "200", "127.0.0.5"),
        (
            "Forwarded: for=\"[2001:db8::7]:4711\";proto=https\r\n",
            "403",
            "[2001:db8::7]:4711",
        ),
        // A hop that is no address: the proxy's own address stands.
        ("X-Forwarded-For: unknown\r\n", "200", ""),
    ];
    for (headers, want, client) in cases {
        let (code, from) = status_with(&server, headers);
        assert_eq!(code, want, "{headers}");
        let client = if client.is_empty() {
            from.to_string()
        } else {
            client.to_string()
        };
        server.wait_for_log(
            &format!("] {client} \"GET /status.json HTTP/1.1\" {want}"),
            1,
        );
    }
}

#[test]
fn each_request_on_a_kept_connection_has_its_own_client() {
    let server = Server::start(&["--access-log", "--trusted-proxy", "127.0.0.0/8"]);
    let mut stream = server.connect();
    let from = stream.local_addr().unwrap();
    let requests = format!(
        "{STATUS}X-Forwarded-For: 203.0.113.9\r\n\r\n{STATUS}\r\n{STATUS}X-Forwarded-For: 198.51.100.4\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(requests.as_bytes()).unwrap();
    let mut answers = String::new();
    stream.read_to_string(&mut answers).unwrap();
    let codes: Vec<&str> = answers
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &answers[at + 9..at + 12])
        .collect();
    assert_eq!(codes, ["403", "200", "403"], "{answers}");
    for (client, code) in [
        ("203.0.113.9".to_string(), 403),
        (from.to_string(), 200),
        ("198.51.100.4".to_string(), 403),
    ] {
        server.wait_for_log(
            &format!("] {client} \"GET /status.json HTTP/1.1\" {code}"),
            1,
        );
    }
}
