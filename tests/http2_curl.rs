//! HTTP/2 with curl: cleartext with prior knowledge (`--http2-prior-knowledge`) and TLS with
//! ALPN (`--http2`), each transport wired so far: SSE, publish, long-poll, multipart, static
//! files, status; HTTP/1.1 on the same port; `--http2 off`. curl prints the response head
//! with `-i`; its `date` line is taken out before comparing.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// Takes out the `date: ...` line of each HTTP/2 head curl printed, checking it is there.
fn h2undate(text: &str) -> String {
    let mut out = String::new();
    let mut seen = 0;
    for line in text.split_inclusive("\r\n") {
        if let Some(date) = line.strip_prefix("date: ") {
            assert!(date.ends_with(" GMT\r\n"), "{line:?}");
            seen += 1;
            continue;
        }
        out.push_str(line);
    }
    assert!(
        seen > 0 || !text.contains("HTTP/2"),
        "no date line in {text:?}"
    );
    out
}

fn curl_command(args: &[&str]) -> Command {
    let mut command = Command::new("curl");
    command
        .args(["-s", "-S", "-i", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs curl to its end; returns its output with dates out.
fn curl(args: &[&str]) -> String {
    let out = Guarded::spawn(&mut curl_command(args), "curl")
        .wait_with_output(READ_TIMEOUT + Duration::from_secs(5));
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    h2undate(&String::from_utf8_lossy(&out.stdout))
}

/// A curl left running (a subscriber), its output read as it comes.
struct Streaming {
    _curl: Guarded,
    chunks: mpsc::Receiver<Vec<u8>>,
    got: Vec<u8>,
}

impl Streaming {
    fn start(args: &[&str]) -> Streaming {
        let mut curl = Guarded::spawn(&mut curl_command(&[&["-N"], args].concat()), "curl");
        let mut stdout = curl.child.stdout.take().unwrap();
        let (tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Streaming {
            _curl: curl,
            chunks,
            got: Vec::new(),
        }
    }

    /// Everything printed until `needle` (included), dates out; fails after the read timeout.
    fn until(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + READ_TIMEOUT;
        while !String::from_utf8_lossy(&self.got).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.got.extend_from_slice(&chunk),
                Err(_) => panic!(
                    "{needle:?} not printed; got {:?}",
                    String::from_utf8_lossy(&self.got)
                ),
            }
        }
        h2undate(&String::from_utf8_lossy(&self.got))
    }
}

fn url(server: &Server, target: &str) -> String {
    format!("http://{}{target}", server.addr)
}

/// Publishes over h2c; returns the message id from the answer, after checking all of it.
fn publish_h2c(server: &Server, channel: &str, body: &str, subscribers: u64) -> u64 {
    let answer = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        body,
        &url(server, &format!("/msgbus/{channel}")),
    ]);
    let id: u64 = header_value(&answer, "msgbus-id").parse().unwrap();
    assert_eq!(
        answer,
        format!("HTTP/2 204 \r\nserver: msgbus\r\nmsgbus-id: {id}\r\nmsgbus-subscribers: {subscribers}\r\n\r\n")
    );
    id
}

#[test]
fn http2_and_http1_share_a_port() {
    let server = Server::start(&[]);
    let h2 = curl(&["--http2-prior-knowledge", &url(&server, "/status.json")]);
    assert!(
        h2.starts_with("HTTP/2 200 \r\nserver: msgbus\r\ncontent-type: application/json\r\n"),
        "{h2}"
    );
    let h1 = curl(&["--http1.1", &url(&server, "/status.json")]);
    assert!(
        h1.starts_with("HTTP/1.1 200 OK\r\nServer: msgbus\r\n"),
        "{h1}"
    );
    // And raw HTTP/1.0, byte for byte as always.
    let raw = server.exchange(b"GET /nothing-here HTTP/1.0\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.0 404 Not Found\r\n"), "{raw}");
}

#[test]
fn sse_subscriber_gets_a_message_published_over_h2c() {
    let server = Server::start(&[]);
    let mut sse = Streaming::start(&[
        "--http2-prior-knowledge",
        "-H",
        "Accept: text/event-stream",
        &url(&server, "/msgbus/h2sse"),
    ]);
    let head = "HTTP/2 200 \r\nserver: msgbus\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nx-accel-buffering: no\r\n\r\nretry: 2000\n\n";
    assert_eq!(sse.until("retry: 2000\n\n"), head);
    let id = publish_h2c(&server, "h2sse", "hello h2", 1);
    assert_eq!(
        sse.until("hello h2\n\n"),
        format!("{head}id: {id}\ndata: hello h2\n\n")
    );
    // A second message on the same stream.
    let id2 = publish_h2c(&server, "h2sse", "again", 1);
    assert_eq!(
        sse.until("again\n\n"),
        format!("{head}id: {id}\ndata: hello h2\n\nid: {id2}\ndata: again\n\n")
    );
}

#[test]
fn long_poll_is_answered_by_the_next_message() {
    let server = Server::start(&[]);
    let mut poll = Streaming::start(&[
        "--http2-prior-knowledge",
        &url(&server, "/msgbus/h2lp?transport=longpoll"),
    ]);
    server.wait_for_counter("subscribers", |n| n == 1, "poll never held");
    let id = publish_h2c(&server, "h2lp", "polled", 1);
    let body = format!(
        "{{\"messages\":[{{\"id\":{id},\"channel\":\"h2lp\",\"type\":\"text/plain\",\"data\":\"polled\"}}],\"cursor\":{id}}}\n"
    );
    let want = format!(
        "HTTP/2 200 \r\nserver: msgbus\r\ncontent-type: application/json\r\ncontent-length: {}\r\ncache-control: no-cache\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(poll.until(&format!("\"cursor\":{id}}}\n")), want);
}

#[test]
fn multipart_parts_arrive_unchunked_in_data_frames() {
    let server = Server::start(&[]);
    let mut parts = Streaming::start(&["--http2-prior-knowledge", &url(&server, "/msgbus/h2mp")]);
    let head = "HTTP/2 200 \r\nserver: msgbus\r\ncontent-type: multipart/x-mixed-replace;boundary=00MsgBus00\r\ncache-control: no-cache\r\n\r\n--00MsgBus00\n";
    assert_eq!(parts.until("--00MsgBus00\n"), head);
    publish_h2c(&server, "h2mp", "part one", 1);
    assert_eq!(
        parts.until("part one--00MsgBus00\n"),
        format!("{head}Content-Type: text/plain\nContent-Length: 8\n\npart one--00MsgBus00\n")
    );
}

struct Docroot(PathBuf);

impl Drop for Docroot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn static_files_larger_than_the_windows() {
    let root =
        Docroot(std::env::temp_dir().join(format!("msgbus-h2-docroot-{}", std::process::id())));
    std::fs::create_dir_all(&root.0).unwrap();
    // 300 KB: several times the 64 KiB initial windows, so sending waits on WINDOW_UPDATEs.
    let big: String = (0..30_000)
        .map(|i| format!("line {i:04}\n"))
        .collect::<String>();
    std::fs::write(root.0.join("big.txt"), &big).unwrap();
    std::fs::write(root.0.join("small.html"), "<p>h2</p>\n").unwrap();
    let server = Server::start(&["-d", root.0.to_str().unwrap()]);
    let small = curl(&["--http2-prior-knowledge", &url(&server, "/small.html")]);
    let last_modified = header_value(&small, "last-modified").to_string();
    assert_eq!(
        small,
        format!("HTTP/2 200 \r\nserver: msgbus\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: 10\r\nlast-modified: {last_modified}\r\n\r\n<p>h2</p>\n")
    );
    let out = Guarded::spawn(
        &mut curl_command(&["--http2-prior-knowledge", &url(&server, "/big.txt")]),
        "curl",
    )
    .wait_with_output(READ_TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout);
    let body = text.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(body.len(), big.len());
    assert!(body == big, "the file came back changed");
}

#[test]
fn http2_off_keeps_http1_only() {
    let server = Server::start(&["--http2", "off"]);
    let out = Guarded::spawn(
        &mut curl_command(&["--http2-prior-knowledge", &url(&server, "/status.json")]),
        "curl",
    )
    .wait_with_output(READ_TIMEOUT + Duration::from_secs(5));
    assert!(!out.status.success(), "HTTP/2 answered with --http2 off");
    let h1 = curl(&["--http1.1", &url(&server, "/status.json")]);
    assert!(h1.starts_with("HTTP/1.1 200 OK\r\n"), "{h1}");
}

/// A self-signed certificate for 127.0.0.1 in a scratch directory, gone with the value.
fn make_cert(name: &str) -> Docroot {
    let dir = std::env::temp_dir().join(format!("msgbus-h2-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    Docroot(dir)
}

fn start_tls(files: &Docroot, extra: &[&str]) -> Server {
    let cert = files.0.join("cert.pem").display().to_string();
    let key = files.0.join("key.pem").display().to_string();
    Server::start(
        &[
            &[
                "--tls-listen",
                "127.0.0.1:0",
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
            ],
            extra,
        ]
        .concat(),
    )
}

#[test]
fn tls_alpn_h2_for_every_transport() {
    let files = make_cert("alpn");
    let server = start_tls(&files, &[]);
    let base = format!("https://{}", server.tls_addr.unwrap());
    let tls = |args: &[&str]| curl(&[&["--http2", "-k"], args].concat());
    let status = tls(&[&format!("{base}/status.json")]);
    assert!(status.starts_with("HTTP/2 200 \r\n"), "{status}");

    let mut sse = Streaming::start(&[
        "--http2",
        "-k",
        "-H",
        "Accept: text/event-stream",
        &format!("{base}/msgbus/tls"),
    ]);
    let head = "HTTP/2 200 \r\nserver: msgbus\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nx-accel-buffering: no\r\n\r\nretry: 2000\n\n";
    assert_eq!(sse.until("retry: 2000\n\n"), head);
    let mut parts = Streaming::start(&["--http2", "-k", &format!("{base}/msgbus/tls")]);
    parts.until("--00MsgBus00\n");
    let mut poll = Streaming::start(&[
        "--http2",
        "-k",
        &format!("{base}/msgbus/tls?transport=longpoll"),
    ]);
    server.wait_for_counter("subscribers", |n| n == 3, "subscribers never all there");

    let answer = tls(&[
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        "over tls",
        &format!("{base}/msgbus/tls"),
    ]);
    let id: u64 = header_value(&answer, "msgbus-id").parse().unwrap();
    assert_eq!(
        answer,
        format!(
            "HTTP/2 204 \r\nserver: msgbus\r\nmsgbus-id: {id}\r\nmsgbus-subscribers: 3\r\n\r\n"
        )
    );
    assert_eq!(
        sse.until("over tls\n\n"),
        format!("{head}id: {id}\ndata: over tls\n\n")
    );
    assert!(parts
        .until("over tls--00MsgBus00\n")
        .ends_with("Content-Length: 8\n\nover tls--00MsgBus00\n"));
    assert!(poll.until("\"cursor\"").contains("\"data\":\"over tls\""));

    // HTTP/1.1 clients still get HTTP/1.1 from the same TLS listener.
    let h1 = curl(&["--http1.1", "-k", &format!("{base}/status.json")]);
    assert!(h1.starts_with("HTTP/1.1 200 OK\r\n"), "{h1}");
}

#[test]
fn tls_without_http2_offers_only_http1() {
    let files = make_cert("off");
    let server = start_tls(&files, &["--http2", "off"]);
    let base = format!("https://{}", server.tls_addr.unwrap());
    let answer = curl(&["--http2", "-k", &format!("{base}/status.json")]);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

#[test]
fn the_doors_answer_over_h2c() {
    let server = Server::start(&["--martd", "--simple-comet"]);
    let h2c = |args: &[&str]| curl(&[&["--http2-prior-knowledge"], args].concat());
    let martd = h2c(&[
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        "door msg",
        &url(&server, "/pub?channel=d1"),
    ]);
    let (head, body) = martd.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/2 200 \r\n"), "{martd}");
    assert!(body.contains("\"etag\": \""), "{martd}");
    h2c(&["-d", "channel_id=c1", &url(&server, "/channels.json")]);
    let posted = h2c(&["-d", "content=hi", &url(&server, "/channels/c1.json")]);
    assert!(posted.contains("\"return_code\": 1"), "{posted}");
    let read = h2c(&[&url(&server, "/channels/c1.json?since=0")]);
    assert!(read.starts_with("HTTP/2 200 \r\n"), "{read}");
    assert!(read.contains("\"content\": \"hi\""), "{read}");
}
