//! The daemon's manners: every response is dated, and with `-u` the log file can still be
//! reopened after rotation and the pid file is removed at exit (or the log says why not).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// The `Date` header of a raw response, as seconds since 1970.
fn date_of(head: &str) -> u64 {
    let line = head
        .split("\r\n")
        .find(|l| l.starts_with("Date: "))
        .unwrap_or_else(|| panic!("no Date in {head:?}"));
    assert!(is_date_line(&format!("{line}\r\n")), "{line:?}");
    msgbus::http::date::parse_http_date(&line["Date: ".len()..]).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn raw_head(server: &Server, request: &[u8]) -> String {
    let mut stream = server.connect();
    stream.write_all(request).unwrap();
    String::from_utf8_lossy(&read_until(&mut stream, b"\r\n\r\n")).into_owned()
}

#[test]
fn every_kind_of_response_carries_the_date() {
    let server = Server::start(&["--max-per-address", "3"]);
    let before = now();
    let heads = [
        raw_head(&server, b"GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n"),
        raw_head(&server, b"GET /msgbus/d HTTP/1.1\r\nHost: t\r\n\r\n"),
        raw_head(&server, b"GET /msgbus/d HTTP/1.0\r\n\r\n"),
        raw_head(&server, b"GET /msgbus/d HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"),
        raw_head(&server, b"GET /msgbus/d HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
        raw_head(&server, b"POST /msgbus/d HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx"),
        raw_head(&server, b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n"),
    ];
    let after = now();
    for head in &heads {
        let date = date_of(head);
        assert!((before..=after).contains(&date), "{head:?}");
        // Right after the server line, as nginx puts it.
        assert!(head.contains("\r\nServer: msgbus\r\nDate: "), "{head:?}");
    }
    // Even the refusal of a connection over --max-per-address.
    let held: Vec<_> = (0..3).map(|_| server.connect()).collect();
    let refused = raw_head(&server, b"GET /status.json HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        refused.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{refused}"
    );
    let date = date_of(&refused);
    assert!(date >= before && date <= now(), "{refused:?}");
    drop(held);
}

/// Waits (bounded) until the file at `path` holds `needle`; returns its text.
fn wait_for_file(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never in {}: {text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn uid_of(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name))
            .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
            .flatten()
    })
}

#[test]
fn with_u_the_log_reopens_after_rotation_and_the_pid_file_goes_or_is_explained() {
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: -u needs the tests to run as root");
        return;
    }
    let Some((uid, gid)) = uid_of("nobody") else {
        eprintln!("skipped: no user nobody");
        return;
    };
    let base = std::env::temp_dir().join(format!("msgbus-ops-user-{}", std::process::id()));
    let (logs, root_only) = (base.join("logs"), base.join("root-only"));
    for dir in [&logs, &root_only] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::os::unix::fs::chown(&logs, Some(uid), Some(gid)).unwrap();
    let log = logs.join("msgbus.log");
    let run = |pid_file: &Path| {
        let _ = std::fs::remove_file(&log);
        let mut child = Command::new(env!("CARGO_BIN_EXE_msgbus"))
            .args(["-l", "127.0.0.1", "-p", "0", "-u", "nobody", "--log"])
            .arg(&log)
            .arg("--pid-file")
            .arg(pid_file)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_file(&log, "connections (open-files limit");
        assert!(pid_file.exists());
        {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                std::fs::metadata(&log).unwrap().uid(),
                uid,
                "the log is the user's"
            );
        }
        // Rotated away: SIGUSR1 makes a new file, as the user, in the user's directory.
        std::fs::rename(&log, logs.join("msgbus.log.1")).unwrap();
        // SAFETY: signalling the child this test started, by its pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
        wait_for_file(&log, "SIGUSR1: log file reopened");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert!(child.wait().unwrap().success());
        std::fs::read_to_string(&log).unwrap()
    };

    let pid_file = logs.join("msgbus.pid");
    run(&pid_file);
    let rotated = std::fs::read_to_string(logs.join("msgbus.log.1")).unwrap();
    assert!(rotated.contains("running as nobody"), "{rotated}");
    assert!(!pid_file.exists(), "the pid file is removed at exit");

    // A pid file where the user may not remove it: the log says why it stays.
    let pid_file = root_only.join("msgbus.pid");
    let text = run(&pid_file);
    let why = format!(
        "pid file {} not removed: Permission denied (os error 13) (its directory is not writable by nobody",
        pid_file.display()
    );
    assert!(text.contains(&why), "{text}");
    let _ = std::fs::remove_dir_all(&base);
}
