//! `--access-log` shows the request line with the values of credential-like query parameters
//! replaced by REDACTED.

mod common;

use common::*;

#[test]
fn tokens_and_keys_are_redacted_in_the_access_log() {
    let server = Server::start(&["--access-log", "--status-token", "peek"]);
    let metrics = server
        .exchange(b"GET /metrics?token=peek HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    let published = server.post(
        "/msgbus/news?key=chan-k3y&size=5&access_token=acc3ss&api_key=ap1&Client_Secret=s3cret&password=pa55",
        "Content-Type: text/plain\r\n",
        b"hi",
    );
    assert!(published.starts_with("HTTP/1.1 204"), "{published}");
    server.wait_for_log("\"GET /metrics?token=REDACTED HTTP/1.1\" 200", 1);
    server.wait_for_log(
        "\"POST /msgbus/news?key=REDACTED&size=5&access_token=REDACTED&api_key=REDACTED&Client_Secret=REDACTED&password=REDACTED HTTP/1.1\" 204",
        1,
    );
    let log = server.log();
    for secret in ["peek", "chan-k3y", "acc3ss", "ap1", "s3cret", "pa55"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}
