//! Many streams on one HTTP/2 connection, with Debian's nghttp2-client: `nghttp` holding twenty
//! long-polls on one connection, all answered by one publish; `h2load` sending hundreds of
//! requests and publishes with up to fifty streams at a time.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn run(program: &str, args: &[&str]) -> String {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = Guarded::spawn(&mut command, program).wait_with_output(READ_TIMEOUT * 2);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn twenty_long_polls_on_one_connection_all_get_the_message() {
    let server = Server::start(&[]);
    let urls: Vec<String> = (0..20)
        .map(|i| {
            format!(
                "http://{}/msgbus/many?transport=longpoll&n={i}",
                server.addr
            )
        })
        .collect();
    let mut args = vec!["--timeout=15"];
    args.extend(urls.iter().map(String::as_str));
    let mut command = Command::new("nghttp");
    command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let nghttp = Guarded::spawn(&mut command, "nghttp");
    server.wait_for_counter("subscribers", |n| n == 20, "twenty polls never held");
    // One connection carries them all (the status request is the second).
    assert_eq!(server.counter("connections"), 2);
    let answer = server.publish("many", "text/plain", b"to all");
    assert!(answer.contains("Msgbus-Subscribers: 20\r\n"), "{answer}");
    let out = nghttp.wait_with_output(READ_TIMEOUT);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("\"data\":\"to all\"").count(), 20, "{text}");
}

#[test]
fn h2load_many_streams_of_status_and_publish() {
    let server = Server::start(&[]);
    let status = format!("http://{}/status.json", server.addr);
    let out = run("h2load", &["-n", "500", "-c", "1", "-m", "50", &status]);
    assert!(out.contains("500 succeeded, 0 failed, 0 errored"), "{out}");
    assert!(out.contains("status codes: 500 2xx"), "{out}");

    let dir = std::env::temp_dir().join(format!("msgbus-h2load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = dir.join("body");
    std::fs::write(&body, "a message").unwrap();
    let publish = format!("http://{}/msgbus/load", server.addr);
    let out = run(
        "h2load",
        &[
            "-n",
            "300",
            "-c",
            "2",
            "-m",
            "20",
            "-d",
            body.to_str().unwrap(),
            "-H",
            "Content-Type: text/plain",
            &publish,
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.contains("300 succeeded, 0 failed, 0 errored"), "{out}");
    assert!(out.contains("status codes: 300 2xx"), "{out}");
    assert_eq!(server.counter("published"), 300);
    // Every stream's session is gone once its answer is: only the status request's is open.
    server.wait_for_counter("connections", |n| n == 1, "streams left open");
}
