//! Signals: SIGTERM drains and says goodbye on each transport, SIGHUP reloads the certificate
//! without dropping anyone, SIGUSR1 reopens the log; the pid file.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

const SSE_HEAD: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 2000\n\n";

#[test]
fn sigterm_tells_each_subscriber_to_come_back_and_exits_once_drained() {
    let dir = std::env::temp_dir().join(format!("msgbus-life-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("msgbus.pid");
    let server = Server::start(&["--pid-file", &pid_file.display().to_string()]);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(pid, format!("{}\n", server.pid()));
    let mut multipart = subscribe(
        &server,
        "GET /msgbus/bye HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    let mut sse = subscribe(
        &server,
        "GET /msgbus/bye HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
        SSE_HEAD,
    );
    let mut poll = server.connect();
    poll.write_all(b"GET /msgbus/bye?transport=longpoll HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut idle = server.connect();
    server.wait_for_counter("subscribers", |n| n >= 3, "three subscribers");
    let id = server.publish_id("bye", b"last");
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    // Everything queued went out, then each transport's goodbye, then the end.
    let multipart_rest = String::from_utf8(read_to_end(&mut multipart)).unwrap();
    assert_eq!(
        multipart_rest,
        chunk("Content-Type: text/plain\n\nlast--00MsgBus00\n") + "0\r\n\r\n"
    );
    let sse_rest = String::from_utf8(read_to_end(&mut sse)).unwrap();
    assert!(
        sse_rest.starts_with(&format!("id: {id}\ndata: last\n\nretry: ")),
        "{sse_rest}"
    );
    let delay: u64 = sse_rest
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1000..5000).contains(&delay), "{delay}");
    let poll_answer = String::from_utf8(read_to_end(&mut poll)).unwrap();
    assert!(
        poll_answer.ends_with(&format!("\"cursor\":{id}}}\n")),
        "{poll_answer}"
    );
    assert!(read_to_end(&mut idle).is_empty());
    assert!(!pid_file.exists(), "the pid file is removed at exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_subscriber_that_never_reads_does_not_hold_the_exit_past_the_timeout() {
    let server = Server::start(&["--shutdown-timeout", "0.5", "--max-queue", "33554432"]);
    let _stuck = subscribe(
        &server,
        "GET /msgbus/big HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    let body = vec![b'x'; 1 << 20];
    for _ in 0..16 {
        server.publish("big", "application/octet-stream", &body);
    }
    let started = Instant::now();
    assert!(server.terminate().success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn sigusr1_reopens_the_log_file() {
    let dir = std::env::temp_dir().join(format!("msgbus-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("msgbus.log");
    let mut child = Guarded::spawn(
        std::process::Command::new(server_bin()).args([
            "-l",
            "127.0.0.1",
            "-p",
            "0",
            "--log",
            &log.display().to_string(),
        ]),
        "msgbus --log",
    );
    let wait_for = |path: &std::path::Path, needle: &str| {
        // The log is a file, not a pipe we can block on: look again every 10 ms, 10 s at most.
        for _ in 0..1000 {
            if std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{needle:?} never appeared in {}", path.display());
    };
    wait_for(&log, "listening on");
    std::fs::rename(&log, dir.join("msgbus.log.1")).unwrap();
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
    wait_for(&log, "SIGUSR1: log file reopened");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait(READ_TIMEOUT).success());
    let rotated = std::fs::read_to_string(dir.join("msgbus.log.1")).unwrap();
    assert!(!rotated.contains("reopened"));
    let _ = std::fs::remove_dir_all(&dir);
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A TLS client that trusts only `cert`, subscribed to channel `hup`; the handshake is done and
/// the stream's head read before this returns.
fn tls_subscriber(server: &Server, cert: rustls::pki_types::CertificateDer<'static>) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let sock = std::net::TcpStream::connect(server.tls_addr.unwrap()).unwrap();
    sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    sock.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET /msgbus/hup HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_same_len(&mut tls, HEAD_11), HEAD_11);
    tls
}

fn read_tls(stream: &mut Tls, n: usize) -> String {
    let mut got = vec![0; n];
    stream.read_exact(&mut got).unwrap();
    String::from_utf8(got).unwrap()
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_every_subscriber() {
    let dir = std::env::temp_dir().join(format!("msgbus-hup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let write_cert = || {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        cert.der().clone()
    };
    let first = write_cert();
    let cert = dir.join("cert.pem").display().to_string();
    let key = dir.join("key.pem").display().to_string();
    let server = Server::start(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let mut plain = subscribe(
        &server,
        "GET /msgbus/hup HTTP/1.1\r\nHost: t\r\n\r\n",
        HEAD_11,
    );
    // A TLS session made under the first certificate, crossing the reload.
    let mut crossing = tls_subscriber(&server, first);
    let second = write_cert();
    server.signal(libc::SIGHUP);
    server.wait_for_log("SIGHUP: certificate reloaded", 1);
    // A new client that trusts only the new certificate gets in.
    let mut after = tls_subscriber(&server, second.clone());
    // Every subscriber from before the reload gets what is published after it.
    server.publish("hup", "text/plain", b"still here");
    let part = chunk("Content-Type: text/plain\n\nstill here--00MsgBus00\n");
    assert_eq!(read_same_len(&mut plain, &part), part);
    assert_eq!(read_tls(&mut crossing, part.len()), part);
    assert_eq!(read_tls(&mut after, part.len()), part);
    // A file that does not load leaves the working certificate in place: a handshake after it
    // still succeeds with the second certificate, and the sessions go on.
    std::fs::write(dir.join("cert.pem"), "garbage").unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log("SIGHUP: keeping the old certificate", 1);
    let mut late = tls_subscriber(&server, second);
    server.publish("hup", "text/plain", b"after the bad file");
    let part = chunk("Content-Type: text/plain\n\nafter the bad file--00MsgBus00\n");
    assert_eq!(read_tls(&mut crossing, part.len()), part);
    assert_eq!(read_tls(&mut after, part.len()), part);
    assert_eq!(read_tls(&mut late, part.len()), part);
    let _ = std::fs::remove_dir_all(&dir);
}
