//! A real HTTP endpoint on 127.0.0.1 for lhttp processor tests: a thread that takes a given
//! number of calls, hands each request (head and body) to the test, and answers with the bytes
//! the test's function makes of it. lhttp's demo `chat` processor is one such function.

#![allow(dead_code)] // each test file uses its part of it

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;

use crate::common::{read_until, READ_TIMEOUT};

/// One call as the endpoint received it.
pub struct Call {
    pub head: String,
    pub body: Vec<u8>,
    /// The connection, for answers the test writes itself (or never).
    pub stream: TcpStream,
}

pub struct Endpoint {
    pub port: u16,
    calls: Receiver<Call>,
}

impl Endpoint {
    /// Takes `calls` calls; `answer` gives each one's raw HTTP answer, or None to leave it to the
    /// test (the connection is then handed over unanswered).
    pub fn start(calls: usize, answer: fn(&str, &[u8]) -> Option<Vec<u8>>) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for _ in 0..calls {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                let mut got = read_until(&mut stream, b"\r\n\r\n");
                let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let mut body = got.split_off(end);
                let head = String::from_utf8(got).unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |n| n.trim().parse().unwrap());
                let have = body.len();
                body.resize(length.max(have), 0);
                stream.read_exact(&mut body[have..]).unwrap();
                if let Some(bytes) = answer(&head, &body) {
                    let _ = stream.write_all(&bytes);
                }
                if tx.send(Call { head, body, stream }).is_err() {
                    return;
                }
            }
        });
        Endpoint { port, calls: rx }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next call the endpoint received (within the read timeout).
    pub fn next_call(&self) -> Call {
        self.calls
            .recv_timeout(READ_TIMEOUT)
            .expect("the endpoint was not called")
    }

    /// Whether a call arrived (without waiting).
    pub fn called(&self) -> bool {
        self.calls.try_recv().is_ok()
    }
}

/// A whole `HTTP/1.1 200` answer with `body`, closing.
pub fn ok(content_type: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

/// lhttp's demo `chat` processor (websocketServer/test.go): the message's body back, as command
/// `auth` with the header `content-type:image/png`.
pub fn chat(_head: &str, message: &[u8]) -> Option<Vec<u8>> {
    let at = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |i| i + 4);
    let reply = [
        &b"LHTTP/1.0 auth\r\ncontent-type:image/png\r\n\r\n"[..],
        &message[at..],
    ]
    .concat();
    Some(ok("text/plain", &reply))
}
