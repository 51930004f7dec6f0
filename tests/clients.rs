//! `msgbus pub` and `msgbus sub` against the real server.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::*;

#[test]
fn sub_prints_what_pub_sends() {
    let server = Server::start(&[]);
    let url = format!("http://{}/msgbus/cli", server.addr);
    let sub = Command::new(env!("CARGO_BIN_EXE_msgbus"))
        .args(["sub", "-v", "-n", "2", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the subscription through the server's own count: one read per look.
    let mut looks = 0;
    while server.counter("subscribers") == 0 {
        looks += 1;
        assert!(looks < 1000, "sub never subscribed");
    }
    let dir = std::env::temp_dir().join(format!("msgbus-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("note.txt");
    std::fs::write(&file, "from a file\n").unwrap();
    let publish = |args: &[&str], stdin: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_msgbus"))
            .arg("pub")
            .args(args)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin).unwrap();
        assert!(child.wait().unwrap().success(), "pub {args:?}");
    };
    publish(&["-u", "carol", &url, file.to_str().unwrap()], b"");
    publish(&["-t", "application/json", &url], b"{\"n\":1}");
    let output = sub.wait_with_output().unwrap();
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_msgbus"))
        .args(["pub", &url])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!child.wait().unwrap().success());
    assert!(
        stderr.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{stderr}"
    );
}
