//! Fan-out: 1,000 concurrent subscribers of four wire variants all receive every message, and
//! each message is encoded once per variant, not once per subscriber.

mod common;

use std::net::TcpStream;

use common::*;

const PER_VARIANT: usize = 250;
const MESSAGES: usize = 3;

#[test]
fn a_thousand_subscribers_share_one_encoding_per_variant() {
    let server = Server::start(&[]);
    let variants: [(&str, &str); 4] = [
        ("GET /msgbus/fan HTTP/1.0\r\n\r\n", HEAD_10),
        ("GET /msgbus/fan HTTP/1.1\r\nHost: x\r\n\r\n", HEAD_11),
        ("GET /msgbus/ HTTP/1.0\r\n\r\n", HEAD_10),
        ("GET /msgbus/ HTTP/1.1\r\nHost: x\r\n\r\n", HEAD_11),
    ];
    let mut subscribers: Vec<(usize, TcpStream)> = Vec::new();
    for i in 0..PER_VARIANT * variants.len() {
        let variant = i % variants.len();
        let (request, head) = variants[variant];
        subscribers.push((variant, subscribe(&server, request, head)));
    }
    assert_eq!(server.counter("subscribers"), 1000);
    for m in 0..MESSAGES {
        let answer = server.publish("fan", "text/plain", format!("message {m}").as_bytes());
        assert!(
            answer.contains("\r\nMsgbus-Subscribers: 1000\r\n"),
            "{answer}"
        );
    }
    let expected: Vec<String> = (0..variants.len())
        .map(|variant| {
            (0..MESSAGES)
                .map(|m| {
                    let location = if variant >= 2 {
                        "Content-Location: /msgbus/fan\n"
                    } else {
                        ""
                    };
                    let length = if variant % 2 == 0 {
                        "Content-Length: 9\n"
                    } else {
                        ""
                    };
                    let part = format!(
                        "{location}Content-Type: text/plain\n{length}\nmessage {m}--00MsgBus00\n"
                    );
                    if variant % 2 == 1 {
                        chunk(&part)
                    } else {
                        part
                    }
                })
                .collect()
        })
        .collect();
    for (variant, stream) in &mut subscribers {
        let want = &expected[*variant];
        assert_eq!(read_same_len(stream, want), *want);
    }
    let status = server.status();
    for wire in [
        "multipart",
        "multipart_chunked",
        "multipart_located",
        "multipart_located_chunked",
    ] {
        assert_eq!(
            json_number(&status, wire),
            MESSAGES as u64,
            "{wire}: {status}"
        );
    }
    assert_eq!(
        json_number(&status, "delivered"),
        (MESSAGES * 1000) as u64,
        "{status}"
    );
    assert_eq!(
        json_number(&status, "published"),
        MESSAGES as u64,
        "{status}"
    );
}
