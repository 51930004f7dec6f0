//! `msgbus pub` and `msgbus sub` against the real server.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// The clients are always this build's, even when the server is a stand-in.
const CLIENT: &str = env!("CARGO_BIN_EXE_msgbus");

#[test]
fn sub_prints_what_pub_sends() {
    let server = Server::start(&[]);
    let url = format!("http://{}/msgbus/cli", server.addr);
    // The client's own read deadline (-w) and the test's wait both bound it.
    let sub = Guarded::spawn(
        Command::new(CLIENT)
            .args(["sub", "-v", "-n", "2", "-w", "10", &url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        "msgbus sub",
    );
    // Wait for the subscription through the server's own count: one read per look.
    server.wait_for_counter("subscribers", |n| n > 0, "sub never subscribed");
    let dir = std::env::temp_dir().join(format!("msgbus-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("note.txt");
    std::fs::write(&file, "from a file\n").unwrap();
    let publish = |args: &[&str], stdin: &[u8]| {
        let mut child = Guarded::spawn(
            Command::new(CLIENT)
                .arg("pub")
                .args(args)
                .stdin(Stdio::piped()),
            "msgbus pub",
        );
        std::io::Write::write_all(&mut child.child.stdin.take().unwrap(), stdin).unwrap();
        assert!(child.wait(READ_TIMEOUT).success(), "pub {args:?}");
    };
    publish(&["-u", "carol", &url, file.to_str().unwrap()], b"");
    publish(&["-t", "application/json", &url], b"{\"n\":1}");
    let output = sub.wait_with_output(READ_TIMEOUT);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "from a file\n{\"n\":1}"
    );
    let headers = String::from_utf8_lossy(&output.stderr);
    assert!(
        headers.contains("From: carol\nContent-Type: text/plain; charset=utf-8\n"),
        "{headers}"
    );
    assert!(
        headers.contains("Content-Type: application/json\n"),
        "{headers}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pub_fails_on_a_refusal() {
    let server = Server::start(&["-s", "pw"]);
    let url = format!("http://{}/msgbus/x", server.addr);
    let mut child = Guarded::spawn(
        Command::new(CLIENT)
            .args(["pub", &url])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped()),
        "msgbus pub",
    );
    drop(child.child.stdin.take());
    let output = child.wait_with_output(READ_TIMEOUT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{stderr}"
    );
}

/// A server that takes the connection and never answers: `sub` gives up on its own, saying so.
#[test]
fn sub_gives_up_on_a_server_that_never_answers() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/msgbus/x", silent.local_addr().unwrap());
    let sub = Guarded::spawn(
        Command::new(CLIENT)
            .args(["sub", "-w", "0.5", &url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        "msgbus sub",
    );
    let output = sub.wait_with_output(READ_TIMEOUT);
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "msgbus sub: no answer within 0.5 s\n"
    );
}
