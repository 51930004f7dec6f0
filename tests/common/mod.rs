//! Starts the real msgbus binary on 127.0.0.1 with a free port and speaks raw bytes to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long any single read in a test may wait before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The server binary the tests start: this build's, or `MSGBUS_TEST_BIN` when set (to check that
/// the suite fails, by name and within its deadlines, against a server that does not answer).
pub fn server_bin() -> String {
    std::env::var("MSGBUS_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_msgbus").to_string())
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
pub struct Guarded {
    pub child: Child,
    what: String,
    /// The child leads a process group of its own, ended with it.
    group: bool,
}

impl Guarded {
    pub fn spawn(command: &mut Command, what: &str) -> Guarded {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Guarded {
            child,
            what: what.to_string(),
            group: false,
        }
    }

    /// As `spawn`, the child leading a new process group: when it is ended, its group gets
    /// SIGTERM, and SIGKILL if the leader has not gone 5 s later (for a runner whose own
    /// children hold servers and browsers).
    pub fn spawn_group(command: &mut Command, what: &str) -> Guarded {
        use std::os::unix::process::CommandExt;
        let mut guarded = Guarded::spawn(command.process_group(0), what);
        guarded.group = true;
        guarded
    }

    /// Ends the child (and its group) and reaps it.
    fn end(&mut self) {
        if !self.group {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        }
        let pgid = self.child.id() as i32;
        // SAFETY: signalling the group this test started; its leader is not yet reaped, so the
        // group id cannot have been reused.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let grace = Instant::now() + Duration::from_secs(5);
        while Instant::now() < grace {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; the leader is still unreaped.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// Waits for the exit, at most `limit`; past it, kills the child and fails the test.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                self.end();
                panic!("{} did not exit within {limit:?}", self.what);
            }
            // A process gives no readiness to block on: look again every 10 ms, bounded above.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (at most `limit`) for the exit and for everything the child wrote on its piped
    /// stdout and stderr.
    pub fn wait_with_output(mut self, limit: Duration) -> Output {
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut out);
                }
                let _ = tx.send(out);
            });
            rx
        };
        let stdout = drain(
            self.child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            self.child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let status = self.wait(limit);
        // The pipes close with the child (or with whatever it left holding them: bounded too).
        let collect = |rx: mpsc::Receiver<Vec<u8>>| {
            rx.recv_timeout(READ_TIMEOUT)
                .unwrap_or_else(|_| panic!("{}: output pipe still open after exit", self.what))
        };
        Output {
            status,
            stdout: collect(stdout),
            stderr: collect(stderr),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.end();
        }
    }
}

/// Runs a server command that is expected to refuse to start; returns its exit and output, or
/// fails the test if it is still running after the read timeout.
pub fn run_to_exit(args: &[&str], what: &str) -> Output {
    let mut command = Command::new(server_bin());
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Guarded::spawn(&mut command, what).wait_with_output(READ_TIMEOUT)
}

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// The first TLS listener, when one was asked for.
    pub tls_addr: Option<SocketAddr>,
    log: Arc<(Mutex<String>, Condvar)>,
}

impl Server {
    /// Starts `msgbus -l 127.0.0.1 -p 0 ARGS` and waits until it has said where it listens.
    pub fn start(args: &[&str]) -> Server {
        Server::start_raw(&[&["-l", "127.0.0.1", "-p", "0"], args].concat())
    }

    /// Starts `msgbus ARGS` and waits for the line that follows the listeners.
    pub fn start_raw(args: &[&str]) -> Server {
        let mut command = Command::new(server_bin());
        command.args(args).env("RUST_LOG", "info");
        Server::start_command(command)
    }

    /// Starts msgbus as `command` says (its environment, a wrapper), reading its stderr.
    pub fn start_command(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start msgbus");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let (tx, rx) = mpsc::channel();
        let log_writer = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut plain = None;
            let mut tls = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    plain = plain.or(addr.trim().parse::<SocketAddr>().ok());
                }
                if let Some(addr) = line.split("listening (TLS) on ").nth(1) {
                    tls = tls.or(addr.trim().parse::<SocketAddr>().ok());
                }
                // Logged once every listener is bound.
                if line.contains("connections (open-files limit") {
                    let _ = tx.send((plain, tls));
                }
                let (text, grew) = &*log_writer;
                text.lock().unwrap().push_str(&(line + "\n"));
                grew.notify_all();
            }
        });
        let (plain, tls_addr) = match rx.recv_timeout(READ_TIMEOUT) {
            Ok(found) => found,
            Err(_) => {
                // Not left running behind the failure.
                let _ = child.kill();
                let _ = child.wait();
                panic!("msgbus did not say where it listens within {READ_TIMEOUT:?}");
            }
        };
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Server {
            child,
            addr: plain.unwrap_or(unspecified),
            tls_addr,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.0.lock().unwrap().clone()
    }

    /// Waits (up to the read timeout) until the log has `needle` in it `count` times.
    pub fn wait_for_log(&self, needle: &str, count: usize) {
        let (text, grew) = &*self.log;
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut guard = text.lock().unwrap();
        while guard.matches(needle).count() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{needle:?} never logged; log:\n{guard}");
            guard = grew.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Sends a signal to the server process (this test's own child, by pid).
    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling the child this test started.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        // A server that stops reading fails the test instead of blocking a large write.
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// Sends raw bytes on a new connection and returns everything until the server closes,
    /// each response head's `Date` line checked and taken out (see `undate`).
    pub fn exchange(&self, raw: &[u8]) -> String {
        let mut stream = self.connect();
        stream.write_all(raw).unwrap();
        undate(&String::from_utf8_lossy(&read_to_end(&mut stream)))
    }

    /// Publishes `body` to `/msgbus/CHANNEL` and returns the response head.
    pub fn publish(&self, channel: &str, content_type: &str, body: &[u8]) -> String {
        let head = format!(
            "POST /msgbus/{channel} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        self.exchange(&[head.as_bytes(), body].concat())
    }

    /// POSTs `body` to `target` (path and query) with extra header lines; returns the answer.
    pub fn post(&self, target: &str, headers: &str, body: &[u8]) -> String {
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: t\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        self.exchange(&[head.as_bytes(), body].concat())
    }

    /// POSTs an `application/x-www-form-urlencoded` body to `target`; returns the answer.
    pub fn post_form(&self, target: &str, form: &str) -> String {
        self.post(
            target,
            "Content-Type: application/x-www-form-urlencoded\r\n",
            form.as_bytes(),
        )
    }

    /// Publishes and returns the new message's id.
    pub fn publish_id(&self, channel: &str, body: &[u8]) -> u64 {
        let answer = self.publish(channel, "text/plain", body);
        header_value(&answer, "Msgbus-Id")
            .parse()
            .unwrap_or_else(|_| panic!("no id in {answer}"))
    }

    pub fn status(&self) -> String {
        self.exchange(b"GET /status.json HTTP/1.0\r\n\r\n")
    }

    /// A counter from /status.json, found by its key.
    pub fn counter(&self, key: &str) -> u64 {
        json_number(&self.status(), key)
    }

    /// Waits until counter `key` satisfies `ok` (each look is one round trip; bounded by the read
    /// timeout and a count); fails the test with `what` otherwise. Returns the last value.
    pub fn wait_for_counter(&self, key: &str, ok: impl Fn(u64) -> bool, what: &str) -> u64 {
        let deadline = Instant::now() + READ_TIMEOUT;
        for _ in 0..100_000 {
            let value = self.counter(key);
            if ok(value) {
                return value;
            }
            assert!(Instant::now() < deadline, "{what}: {key} is still {value}");
        }
        panic!("{what}: {key} never got there in 100000 looks");
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling the child this test started, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "msgbus did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first number under `key` in a JSON text, compact or spaced, bare or quoted (an etag).
pub fn json_number(json: &str, key: &str) -> u64 {
    let needle = format!("\"{key}\":");
    let start = json
        .find(&needle)
        .unwrap_or_else(|| panic!("{key} not in {json}"))
        + needle.len();
    json[start..]
        .trim_start_matches([' ', '"'])
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

/// Reads until the peer closes.
pub fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read to end");
    out
}

/// Reads exactly `n` bytes.
pub fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    stream.read_exact(&mut out).expect("read exact");
    out
}

/// Reads exactly as many bytes as `want` has, and a `Date` line more for each response head
/// in it, and returns them as text for comparison, without the `Date` lines (see `undate`).
pub fn read_same_len(stream: &mut impl Read, want: &str) -> String {
    let heads = want.matches(SERVER_LINE).count();
    let mut got = vec![0; want.len() + heads * DATE_LINE_LEN];
    stream.read_exact(&mut got).expect("read exact");
    undate(&String::from_utf8_lossy(&got))
}

const SERVER_LINE: &str = "\r\nServer: msgbus\r\n";
/// `Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`
pub const DATE_LINE_LEN: usize = 37;

/// Takes the `Date` line out of every response head in `text` (it follows `Server: msgbus`),
/// after checking that it is there and is an IMF-fixdate, so that tests can compare the rest
/// of a head byte for byte.
pub fn undate(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(SERVER_LINE) {
        let end = at + SERVER_LINE.len();
        out.push_str(&rest[..end]);
        let date = rest[end..].get(..DATE_LINE_LEN).unwrap_or("");
        assert!(is_date_line(date), "no Date line after Server in {text:?}");
        rest = &rest[end + DATE_LINE_LEN..];
    }
    out.push_str(rest);
    out
}

/// `Date: Www, DD Mon YYYY HH:MM:SS GMT\r\n`
pub fn is_date_line(line: &str) -> bool {
    let pattern = b"Date: Aaa, 00 Aaa 0000 00:00:00 GMT\r\n";
    line.len() == pattern.len()
        && line.bytes().zip(pattern).all(|(b, p)| match p {
            b'A' => b.is_ascii_uppercase(),
            b'a' => b.is_ascii_lowercase(),
            b'0' => b.is_ascii_digit(),
            other => b == *other,
        })
        && line.starts_with("Date: ")
        && line.ends_with(" GMT\r\n")
}

/// Reads until `needle` has been seen; returns everything read.
pub fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut byte = [0u8; 4096];
    while !out.windows(needle.len()).any(|w| w == needle) {
        let n = stream.read(&mut byte).expect("read until");
        assert!(
            n > 0,
            "closed before {:?}; got {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&byte[..n]);
    }
    out
}

/// Subscribes with raw request `request` and returns the stream once the response head and
/// opening boundary have arrived, i.e. once the subscription is in place.
pub fn subscribe(server: &Server, request: &str, expected_head: &str) -> TcpStream {
    let mut stream = server.connect();
    stream.write_all(request.as_bytes()).unwrap();
    assert_eq!(read_same_len(&mut stream, expected_head), expected_head);
    stream
}

pub const HEAD_11: &str = "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: multipart/x-mixed-replace;boundary=00MsgBus00\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\nd\r\n--00MsgBus00\n\r\n";
pub const HEAD_10: &str = "HTTP/1.0 200 OK\r\nServer: msgbus\r\nContent-Type: multipart/x-mixed-replace;boundary=00MsgBus00\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n--00MsgBus00\n";

/// The HTTP/1.1 wire form of one part: a chunk of `part` bytes.
pub fn chunk(part: &str) -> String {
    format!("{:x}\r\n{part}\r\n", part.len())
}

/// Asserts that nothing more arrives on `stream` within `wait`.
pub fn assert_silent(stream: &mut TcpStream, wait: Duration) {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(n) => panic!(
            "unexpected {n} bytes: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
}

/// The value of a header in a response head (first match, case-insensitive name).
pub fn header_value<'a>(head: &'a str, name: &str) -> &'a str {
    head.split("\r\n")
        .find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

/// eventsource-broker's credentials as the eshq gem makes them: `key=K&token=T&timestamp=S`,
/// the token being hex(sha1("key:secret:timestamp")) at the current time.
pub fn esb_credentials(key: &str, secret: &str) -> String {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let input = format!("{key}:{secret}:{timestamp}");
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, input.as_bytes());
    let token: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("key={key}&token={token}&timestamp={timestamp}")
}

/// Sends one masked WebSocket text frame.
pub fn send_text(ws: &mut TcpStream, message: &str) {
    use msgbus::transport::websocket::{encode_client_frame, Opcode};
    let frame = encode_client_frame(Opcode::Text, true, message.as_bytes(), [9, 8, 7, 6]);
    ws.write_all(&frame).unwrap();
}

/// The next WebSocket text frame's payload (the tests' frames are short).
pub fn receive_text(ws: &mut TcpStream) -> String {
    let head = read_exact(ws, 2);
    assert_eq!(head[0], 0x81, "a text frame");
    let len = match head[1] {
        126 => usize::from(u16::from_be_bytes(read_exact(ws, 2).try_into().unwrap())),
        n => usize::from(n),
    };
    String::from_utf8(read_exact(ws, len)).unwrap()
}

/// A directory for one test (`msgbus-NAME-PID` under the temporary directory), emptied first
/// and removed at the end.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("msgbus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The path as a command-line argument.
    pub fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A channel's history as (id, body), through a long-poll from `since`.
pub fn history(server: &Server, channel: &str, since: u64) -> Vec<(u64, String)> {
    let request = format!(
        "GET /msgbus/{channel}?transport=longpoll&since={since} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    let answer = server.exchange(request.as_bytes());
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json: serde_json::Value =
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {answer}"));
    json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
