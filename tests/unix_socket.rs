//! The UNIX-domain listener: same protocol, the file's mode, a stale socket replaced, the file
//! removed at exit.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;

use common::*;

#[test]
fn subscribers_on_a_unix_socket_get_what_tcp_publishers_send() {
    let dir = std::env::temp_dir().join(format!("msgbus-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("msgbus.sock");
    // A socket file left by a run that died is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let path_arg = path.display().to_string();
    let server = Server::start(&["--unix", &path_arg, "--unix-mode", "600"]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let mut sub = UnixStream::connect(&path).unwrap();
    sub.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    sub.write_all(b"GET /msgbus/local HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_same_len(&mut sub, HEAD_11), HEAD_11);
    server.publish("local", "text/plain", b"hi");
    let part = chunk("Content-Type: text/plain\n\nhi--00MsgBus00\n");
    let mut got = vec![0; part.len()];
    sub.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), part);
    assert!(server
        .log()
        .contains(&format!("listening on unix:{path_arg}")));
    server.terminate();
    assert!(!path.exists(), "the socket file is removed at exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let path = std::env::temp_dir().join(format!("msgbus-unix-file-{}", std::process::id()));
    std::fs::write(&path, "keep me").unwrap();
    let out = run_to_exit(
        &["--unix", &path.display().to_string()],
        "msgbus on a path that is not a socket",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exists and is not a socket"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    std::fs::remove_file(&path).unwrap();
}
