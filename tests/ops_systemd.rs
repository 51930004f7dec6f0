//! Manners under a service manager: the notifications (`$NOTIFY_SOCKET`), listening sockets
//! passed as descriptors (`LISTEN_FDS`), and the journal's priority prefixes
//! (`$JOURNAL_STREAM`). Each test plays the manager's part itself.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_msgbus");

/// Receives notices until one starts with `prefix` (others, such as the watchdog's, are
/// skipped); returns it.
fn notice(socket: &UnixDatagram, prefix: &str) -> String {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut buf = [0u8; 512];
    loop {
        assert!(Instant::now() < deadline, "no {prefix:?} notice");
        let n = socket.recv(&mut buf).expect("a notice before the timeout");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with(prefix) {
            return text;
        }
    }
}

#[test]
fn notices_ready_reloading_stopping_and_the_watchdog() {
    let dir = std::env::temp_dir().join(format!("msgbus-ops-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["-l", "127.0.0.1", "-p", "0"])
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "200000");
    let server = Server::start_command(command);
    assert_eq!(notice(&socket, "READY=1"), "READY=1");
    // Half of WATCHDOG_USEC: two within a second, however busy the machine.
    let started = Instant::now();
    notice(&socket, "WATCHDOG=1");
    notice(&socket, "WATCHDOG=1");
    assert!(started.elapsed() < Duration::from_secs(2));

    server.signal(libc::SIGHUP);
    let reloading = notice(&socket, "RELOADING=1");
    let usec = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("{reloading:?}"));
    assert!(usec.parse::<u64>().unwrap() > 0, "{reloading:?}");
    assert_eq!(notice(&socket, "READY=1"), "READY=1");
    server.wait_for_log("SIGHUP: configuration unchanged", 1);

    let status = server.terminate();
    assert!(status.success());
    assert_eq!(notice(&socket, "STOPPING=1"), "STOPPING=1");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn an_abstract_notify_socket_is_reached() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("msgbus-ops-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["-l", "127.0.0.1", "-p", "0"])
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", format!("@{name}"));
    let _server = Server::start_command(command);
    assert_eq!(notice(&socket, "READY=1"), "READY=1");
}

/// msgbus started as a socket-activated service is: `listener` as descriptor 3, and
/// `LISTEN_FDS=1` with `LISTEN_PID` its own pid (the shell's, which `exec` keeps).
fn activated(listener: &TcpListener, args: &[&str]) -> Command {
    let fd = listener.as_raw_fd();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args)
        .env("RUST_LOG", "info");
    // SAFETY: dup2 and fcntl are async-signal-safe; the child owns its copy of descriptor 3.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

#[test]
fn a_passed_socket_is_served_and_a_restart_refuses_no_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let first = Server::start_command(activated(&listener, &[]));
    // The passed socket takes the default listener's place: nothing else is bound.
    assert_eq!(first.addr, addr);
    assert!(first
        .log()
        .contains(&format!("{addr} passed by the service manager")));
    assert_eq!(
        first.log().matches("listening on").count(),
        1,
        "{}",
        first.log()
    );
    let answer = first.publish("act", "text/plain", b"one");
    assert!(
        answer.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{answer}"
    );
    assert!(first.terminate().success());

    // Between the two processes the socket still listens (the manager holds it): the
    // connection waits in the backlog, and the next process answers it.
    let mut waiting = std::net::TcpStream::connect(addr).unwrap();
    waiting.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    waiting
        .write_all(b"GET /status.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let second = Server::start_command(activated(&listener, &[]));
    let answer = undate(&String::from_utf8_lossy(&read_to_end(&mut waiting)));
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    drop(second);
}

#[test]
fn a_passed_socket_on_a_tls_address_speaks_tls_and_others_are_still_bound() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("msgbus-ops-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let args = [
        "--tls-listen",
        &addr,
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
        "-l",
        "127.0.0.1",
        "-p",
        "0",
    ];
    let server = Server::start_command(activated(&listener, &args));
    assert_eq!(server.tls_addr.map(|a| a.to_string()), Some(addr.clone()));
    assert_ne!(
        server.addr.to_string(),
        addr,
        "the plain listener is bound anew"
    );
    assert!(server.status().starts_with("HTTP/1.0 200 OK\r\n"));
    // A plain request on the TLS listener is not answered in plain HTTP.
    let mut plain = std::net::TcpStream::connect(&addr).unwrap();
    plain.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    plain
        .write_all(b"GET /status.json HTTP/1.0\r\n\r\n")
        .unwrap();
    let got = read_to_end(&mut plain);
    assert!(
        !got.starts_with(b"HTTP/1."),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

/// A pipe whose write end becomes msgbus's stderr, and `JOURNAL_STREAM` naming it.
fn journal_pipe() -> (OwnedFd, OwnedFd, String) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors this test then owns.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read, write) = unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    };
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::fstat(write.as_raw_fd(), &mut stat) }, 0);
    let stream = format!("{}:{}", stat.st_dev, stat.st_ino);
    (read, write, stream)
}

#[test]
fn under_the_journal_lines_carry_a_priority_and_no_timestamp() {
    let (read, write, stream) = journal_pipe();
    let mut child = Command::new(BIN)
        .args([
            "-l",
            "127.0.0.1",
            "-p",
            "0",
            "--lhttp-upstream",
            "http://127.0.0.1/",
        ])
        .env_remove("RUST_LOG")
        .env("JOURNAL_STREAM", &stream)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(write))
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(std::fs::File::from(read)).lines() {
        let line = line.unwrap();
        let done = line.contains("connections (open-files limit");
        lines.push(line);
        if done || lines.len() > 100 {
            break;
        }
    }
    // SAFETY: signalling the child this test started, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(
        lines.contains(&"<4>--lhttp-upstream has no effect without --lhttp".to_string()),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<6>listening on 127.0.0.1:")),
        "{lines:?}"
    );
    for line in &lines {
        let level = line.get(..3).unwrap_or("");
        assert!(["<3>", "<4>", "<6>", "<7>"].contains(&level), "{line:?}");
    }

    // A JOURNAL_STREAM that is not stderr (inherited from a parent) changes nothing.
    let (read, write, _) = journal_pipe();
    let mut child = Command::new(BIN)
        .args(["-l", "127.0.0.1", "-p", "0"])
        .env_remove("RUST_LOG")
        .env("JOURNAL_STREAM", "1:2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(write))
        .spawn()
        .unwrap();
    let first = BufReader::new(std::fs::File::from(read))
        .lines()
        .next()
        .unwrap()
        .unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(first.starts_with('['), "{first:?}");
}
