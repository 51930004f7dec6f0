//! Signed tokens: `--jwt-secret`, `Authorization: Bearer` or `?token=`, with the channels the
//! holder may subscribe to and publish on, expiry, and bad signatures.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use msgbus::auth::JwtKey;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn refusal(status: &str, reason: &str, extra: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nServer: msgbus\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{reason}\n",
        reason.len() + 1
    )
}

#[test]
fn tokens_grant_channels_and_name_the_sender() {
    let server = Server::start(&["--jwt-secret", "sekrit"]);
    let key = JwtKey::new(b"sekrit");
    let exp = now() + 600;
    let reader = key.sign(&format!(r#"{{"exp":{exp},"subscribe":["news/*"]}}"#));
    let writer = key.sign(&format!(
        r#"{{"exp":{exp},"sub":"desk","publish":["news/*"]}}"#
    ));
    let request = format!(
        "GET /msgbus/news/today HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {reader}\r\n\r\n"
    );
    let mut sub = subscribe(&server, &request, HEAD_11);
    let answer = server.post(
        &format!("/msgbus/news/today?token={writer}"),
        "Content-Type: text/plain\r\n",
        b"scoop",
    );
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
    let part = chunk("From: desk\nContent-Type: text/plain\n\nscoop--00MsgBus00\n");
    assert_eq!(read_same_len(&mut sub, &part), part);

    let bearer = "WWW-Authenticate: Bearer realm=\"msgbus\"\r\n";
    let expired = key.sign(&format!(r#"{{"exp":{},"subscribe":["*"]}}"#, now() - 1));
    let forged = JwtKey::new(b"guess").sign(r#"{"subscribe":["*"]}"#);
    let cases = [
        (
            "GET /msgbus/news/today".to_string(),
            "",
            refusal("401 Unauthorized", "a token is required", bearer),
        ),
        (
            format!("GET /msgbus/news/today?token={expired}"),
            "",
            refusal("401 Unauthorized", "token expired", bearer),
        ),
        (
            format!("GET /msgbus/news/today?token={forged}"),
            "",
            refusal("401 Unauthorized", "bad token signature", bearer),
        ),
        (
            format!("GET /msgbus/sports?token={reader}"),
            "",
            refusal(
                "403 Forbidden",
                "token does not allow you to subscribe to sports",
                "",
            ),
        ),
        (
            format!("GET /msgbus/news/a,sports?token={reader}"),
            "",
            refusal(
                "403 Forbidden",
                "token does not allow you to subscribe to sports",
                "",
            ),
        ),
        (
            format!("POST /msgbus/news/today?token={reader}"),
            "Content-Length: 0\r\n",
            refusal(
                "403 Forbidden",
                "token does not allow you to publish to news/today",
                "",
            ),
        ),
        (
            format!("DELETE /msgbus/news/today?token={reader}"),
            "",
            refusal(
                "403 Forbidden",
                "token does not allow you to publish to news/today",
                "",
            ),
        ),
    ];
    for (line, extra, want) in cases {
        let got = server.exchange(
            format!("{line} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(got, want, "{line}");
    }
    // Static files and the status document do not need a token.
    let status =
        server.exchange(b"GET /status.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(status.starts_with("HTTP/1.1 200 OK\r\n"), "{status}");
}

#[test]
fn the_key_can_come_from_a_file_and_is_reread_on_sighup() {
    let path = std::env::temp_dir().join(format!("msgbus-jwt-{}", std::process::id()));
    std::fs::write(&path, "first\n").unwrap();
    let server = Server::start(&["--jwt-secret-file", &path.display().to_string()]);
    let claims = r#"{"subscribe":["c"]}"#;
    let get = |token: &str| {
        server.exchange(
            format!(
                "HEAD /msgbus/c?token={token} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    assert!(get(&JwtKey::new(b"first").sign(claims)).starts_with("HTTP/1.1 200 OK\r\n"));
    std::fs::write(&path, "second\n").unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log("SIGHUP: token key reloaded", 1);
    assert!(get(&JwtKey::new(b"first").sign(claims)).starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    assert!(get(&JwtKey::new(b"second").sign(claims)).starts_with("HTTP/1.1 200 OK\r\n"));
    let _ = std::fs::remove_file(&path);
}
