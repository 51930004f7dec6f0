//! The config file (`-c`): a bad line stops the start naming file and line, the command line
//! overrides the file, and SIGHUP applies a changed file to a running server without dropping
//! an open stream, or keeps the old configuration when the new one is bad.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;

/// A fresh file under the temporary directory, named for the test.
fn conf(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("msgbus-ops-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `user:pass` as an HTTP Basic header line.
fn basic(user_pass: &str) -> String {
    use std::fmt::Write as _;
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = user_pass.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    let mut line = String::new();
    let _ = write!(line, "Authorization: Basic {out}\r\n");
    line
}

fn status_line(answer: &str) -> &str {
    answer.split("\r\n").next().unwrap_or("")
}

fn get(server: &Server, target: &str, headers: &str) -> String {
    server.exchange(
        format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

#[test]
fn a_bad_line_stops_the_start_naming_file_and_line() {
    let path = conf("bad.conf", "# limits\nmax-body 1000\nmax-queue 0\nmartd\n");
    let out = Command::new(env!("CARGO_BIN_EXE_msgbus"))
        .args(["-c", path.to_str().unwrap(), "-l", "127.0.0.1", "-p", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "msgbus: {}:3: invalid value \"0\" for --max-queue: must be at least 1\n",
        path.display()
    );
    assert_eq!(stderr, want);

    let path = conf("unknown.conf", "\n\nlisten-on 127.0.0.1\n");
    let out = Command::new(env!("CARGO_BIN_EXE_msgbus"))
        .args(["-c", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let want = format!(
        "msgbus: {}:3: unknown option \"listen-on\"\n",
        path.display()
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), want);
}

#[test]
fn the_command_line_overrides_the_file() {
    let path = conf(
        "override.conf",
        "listen 127.0.0.2\nport 1\nsecret from-the-file\nmax-body 5\n",
    );
    let file = path.to_str().unwrap();
    // The file's listener and port are replaced, its secret too; its max-body stays.
    let server = Server::start_raw(&["-c", file, "-l", "127.0.0.1", "-p", "0", "-s", "cli"]);
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
    let refused = get(&server, "/status.json", &basic("u:from-the-file"));
    assert_eq!(status_line(&refused), "HTTP/1.1 401 Unauthorized");
    let answer = server.post("/msgbus/c", &basic("u:cli"), b"123456");
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 413 Payload Too Large",
        "{answer}"
    );
}

#[test]
fn sighup_applies_a_new_secret_limit_and_origin_without_dropping_a_stream() {
    let path = conf(
        "live.conf",
        "secret first-s3cret\nallow-origin http://a.example\nmax-subscriptions 2\n",
    );
    let file = path.to_str().unwrap();
    let server = Server::start_raw(&["-c", file, "-l", "127.0.0.1", "-p", "0"]);
    let first = basic("u:first-s3cret");
    let second = basic("u:second-s3cret");
    let mut stream = server.connect();
    let request = format!("GET /msgbus/live HTTP/1.1\r\nHost: t\r\n{first}\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    assert_eq!(read_same_len(&mut stream, HEAD_11), HEAD_11);
    let origin = |server: &Server, auth: &str, origin: &str| {
        server.exchange(
            format!("OPTIONS /msgbus/x HTTP/1.1\r\nHost: t\r\n{auth}Origin: {origin}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    let head = |server: &Server, target: &str, auth: &str| {
        server.exchange(
            format!("HEAD {target} HTTP/1.1\r\nHost: t\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    assert!(origin(&server, &first, "http://a.example")
        .contains("Access-Control-Allow-Origin: http://a.example\r\n"));
    assert_eq!(
        status_line(&head(&server, "/msgbus/a,b", &first)),
        "HTTP/1.1 200 OK"
    );

    std::fs::write(
        &path,
        "secret second-s3cret\nallow-origin http://b.example\nmax-subscriptions 1\n",
    )
    .unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log(
        "SIGHUP: changed secret, allow-origin, max-subscriptions\n",
        1,
    );
    assert!(!server.log().contains("s3cret"), "a secret reached the log");

    assert_eq!(
        status_line(&get(&server, "/status.json", &first)),
        "HTTP/1.1 401 Unauthorized"
    );
    let b = origin(&server, &second, "http://b.example");
    assert!(
        b.contains("Access-Control-Allow-Origin: http://b.example\r\n"),
        "{b}"
    );
    let a = origin(&server, &second, "http://a.example");
    assert!(!a.contains("Access-Control-Allow-Origin"), "{a}");
    let two = head(&server, "/msgbus/a,b", &second);
    assert_eq!(status_line(&two), "HTTP/1.1 400 Bad Request", "{two}");

    // The stream opened under the old secret is still there and gets what is published now.
    server.post(
        "/msgbus/live",
        &format!("{second}Content-Type: text/plain\r\n"),
        b"after",
    );
    let part = chunk("From: u\nContent-Type: text/plain\n\nafter--00MsgBus00\n");
    assert_eq!(read_same_len(&mut stream, &part), part);
}

#[test]
fn a_bad_file_keeps_the_old_configuration_and_says_why() {
    let path = conf("keep.conf", "secret kept-s3cret\nmax-body 100\n");
    let file = path.to_str().unwrap();
    let server = Server::start_raw(&["-c", file, "-l", "127.0.0.1", "-p", "0"]);
    std::fs::write(&path, "secret new-s3cret\nmax-body lots\n").unwrap();
    server.signal(libc::SIGHUP);
    let why = format!(
        "SIGHUP: keeping the old configuration: {}:2: invalid value \"lots\" for --max-body: expected a whole number",
        path.display()
    );
    server.wait_for_log(&why, 1);
    let answer = get(&server, "/status.json", &basic("u:kept-s3cret"));
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK");

    // Unchanged, and what needs a restart, are said as such.
    std::fs::write(&path, "secret kept-s3cret\nmax-body 100\n").unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log("SIGHUP: configuration unchanged", 1);
    std::fs::write(
        &path,
        "secret kept-s3cret\nmax-body 100\nmartd\nunix /tmp/x.sock\n",
    )
    .unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log(
        "SIGHUP: unix, martd cannot change without a restart; keeping the running values",
        1,
    );
    server.wait_for_log("SIGHUP: configuration unchanged", 2);
    let martd = get(&server, "/sub?cid=x&a=0", &basic("u:kept-s3cret"));
    assert_eq!(status_line(&martd), "HTTP/1.1 404 Not Found", "{martd}");
}

#[test]
fn sighup_changes_the_log_level() {
    let path = conf("level.conf", "max-body 1000\n");
    let mut command = Command::new(env!("CARGO_BIN_EXE_msgbus"));
    command
        .args(["-c", path.to_str().unwrap(), "-l", "127.0.0.1", "-p", "0"])
        .env_remove("RUST_LOG");
    let server = Server::start_command(command);
    server.status();
    assert!(!server.log().contains("accepted"), "{}", server.log());
    std::fs::write(&path, "max-body 1000\nverbose 2\n").unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log("SIGHUP: changed verbose", 1);
    server.status();
    server.wait_for_log("accepted 127.0.0.1:", 1);
}

/// In a cluster the stream keeps the history and numbers every message: a node's own log, or an
/// AMQP exchange it would number itself, is refused before anything is bound.
#[test]
fn a_cluster_node_takes_no_log_and_no_exchange() {
    let users = conf("users.txt", "k1:s3cret\n");
    let users = users.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("msgbus-cluster-log-{}", std::process::id()));
    let dir = dir.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--nats", "nats://127.0.0.1:4222", "--data-dir", dir],
            "msgbus: --data-dir is for one node; with --nats the JetStream stream keeps the history (see msgbus --help)\n",
        ),
        (
            &["--nats", "nats://127.0.0.1:4222", "--esb-users", users, "--amqp", "amqp://127.0.0.1/"],
            "msgbus: --amqp is for nodes not joined through --nats: the stream gives every message its place, the exchange cannot (see msgbus --help)\n",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_msgbus"))
            .args(["-l", "127.0.0.1", "-p", "0"])
            .args(*args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), *want, "{args:?}");
        assert!(
            !std::path::Path::new(dir).exists(),
            "the log was not opened"
        );
    }
}
