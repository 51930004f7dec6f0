//! `msgbus pub` and `msgbus sub`: small blocking clients for scripts and shells, replacing the
//! original's msgsend and msgdump.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use crate::http::{base64, static_files};
use crate::transport::multipart::PartDecoder;

const PUB_USAGE: &str = "usage: msgbus pub [-t TYPE] [-u USER[:PASS]] [-v] URL [FILE]";
const SUB_USAGE: &str = "usage: msgbus sub [-u USER[:PASS]] [-n COUNT] [-w SECS] [-v] URL";
/// How long either client waits for the server's answer (for `sub`, its response head).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest part `msgbus sub` accepts.
const MAX_PART: usize = 64 * 1024 * 1024;

/// An `http://[user[:pass]@]host[:port]/path` URL.
#[derive(Debug, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub credentials: Option<String>,
}

pub fn parse_url(url: &str) -> Result<Url, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo.to_string()), host),
        None => (None, authority),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            (host, port.parse().map_err(|_| format!("{url}: bad port"))?)
        }
        _ => (host_port, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok(Url {
        host: host.to_string(),
        port,
        path: path.to_string(),
        credentials,
    })
}

struct Options {
    content_type: Option<String>,
    credentials: Option<String>,
    count: Option<u64>,
    /// `-w SECS`: give up when nothing arrives for this long (`sub` only; default: wait for
    /// messages as long as the stream stays open, once its head has come).
    wait: Option<Duration>,
    verbose: bool,
    positional: Vec<String>,
}

fn parse_options(args: &[OsString]) -> Result<Options, String> {
    use lexopt::prelude::*;
    let mut opts = Options {
        content_type: None,
        credentials: None,
        count: None,
        wait: None,
        verbose: false,
        positional: Vec::new(),
    };
    let mut parser = lexopt::Parser::from_args(args.iter().cloned());
    let text = |v: OsString| v.into_string().map_err(|v| format!("{v:?} is not UTF-8"));
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('t') => {
                opts.content_type = Some(text(parser.value().map_err(|e| e.to_string())?)?)
            }
            Short('u') => {
                opts.credentials = Some(text(parser.value().map_err(|e| e.to_string())?)?)
            }
            Short('n') => {
                let n = text(parser.value().map_err(|e| e.to_string())?)?;
                opts.count = Some(n.parse().map_err(|_| format!("-n {n}: not a number"))?);
            }
            Short('w') => {
                let secs = text(parser.value().map_err(|e| e.to_string())?)?;
                opts.wait = match secs.parse::<f64>() {
                    Ok(s) if s > 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s)),
                    _ => return Err(format!("-w {secs}: not a positive number of seconds")),
                };
            }
            Short('v') => opts.verbose = true,
            Value(v) => opts.positional.push(text(v)?),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    Ok(opts)
}

fn connect(url: &Url) -> io::Result<TcpStream> {
    let stream = TcpStream::connect((url.host.as_str(), url.port))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn request_head(method: &str, url: &Url, version: &str, credentials: Option<&str>) -> String {
    let mut head = format!(
        "{method} {} HTTP/{version}\r\nHost: {}:{}\r\n",
        url.path, url.host, url.port
    );
    if let Some(credentials) = credentials.or(url.credentials.as_deref()) {
        let with_colon = if credentials.contains(':') {
            credentials.to_string()
        } else {
            format!("{credentials}:")
        };
        head += &format!(
            "Authorization: Basic {}\r\n",
            base64::encode(with_colon.as_bytes())
        );
    }
    head
}

/// `msgbus pub URL [FILE]`: publishes FILE (or standard input) to URL.
pub fn publish_main(args: &[OsString]) -> ExitCode {
    match publish(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("msgbus pub: {e}");
            ExitCode::FAILURE
        }
    }
}

fn publish(args: &[OsString]) -> Result<ExitCode, String> {
    let opts = parse_options(args)?;
    let (url, file) = match opts.positional.as_slice() {
        [url] => (url, None),
        [url, file] => (url, Some(file)),
        _ => return Err(PUB_USAGE.to_string()),
    };
    let url = parse_url(url)?;
    let (body, guessed_type) = match file {
        Some(path) => {
            let body = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            (
                body,
                static_files::content_type_for(std::path::Path::new(path)),
            )
        }
        None => {
            let mut body = Vec::new();
            io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| format!("stdin: {e}"))?;
            (body, "text/plain")
        }
    };
    let content_type = opts.content_type.as_deref().unwrap_or(guessed_type);
    let mut head = request_head("POST", &url, "1.1", opts.credentials.as_deref());
    head += &format!(
        "Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = connect(&url).map_err(|e| format!("{}:{}: {e}", url.host, url.port))?;
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(&body))
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let status_line = response.lines().next().unwrap_or("");
    let ok = status_line
        .split(' ')
        .nth(1)
        .is_some_and(|code| code.starts_with('2'));
    if opts.verbose || !ok {
        eprint!("{response}");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `msgbus sub URL`: prints each message's body as it arrives.
pub fn subscribe_main(args: &[OsString]) -> ExitCode {
    match subscribe(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("msgbus sub: {e}");
            ExitCode::FAILURE
        }
    }
}

fn subscribe(args: &[OsString]) -> Result<(), String> {
    let opts = parse_options(args)?;
    let [url] = opts.positional.as_slice() else {
        return Err(SUB_USAGE.to_string());
    };
    let url = parse_url(url)?;
    // HTTP/1.0: every part carries Content-Length, so parts are read back exactly.
    let head = request_head("GET", &url, "1.0", opts.credentials.as_deref()) + "\r\n";
    let mut stream = connect(&url).map_err(|e| format!("{}:{}: {e}", url.host, url.port))?;
    stream
        .write_all(head.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0; 64 * 1024];
    let mut response_head = Some(Vec::new());
    let mut decoder = PartDecoder::new(MAX_PART);
    let mut received = 0u64;
    let mut stdout = io::stdout().lock();
    // A server that accepts and never answers must not hold the client forever.
    let head_timeout = opts.wait.unwrap_or(ANSWER_TIMEOUT);
    stream
        .set_read_timeout(Some(head_timeout))
        .map_err(|e| e.to_string())?;
    while opts.count.is_none_or(|n| received < n) {
        let n = stream.read(&mut buf).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => match response_head {
                Some(_) => format!("no answer within {:.1} s", head_timeout.as_secs_f64()),
                None => format!(
                    "nothing received for {:.1} s",
                    opts.wait.unwrap_or_default().as_secs_f64()
                ),
            },
            _ => e.to_string(),
        })?;
        if n == 0 {
            break;
        }
        match &mut response_head {
            Some(head) => {
                head.extend_from_slice(&buf[..n]);
                let Some(end) = memchr::memmem::find(head, b"\r\n\r\n") else {
                    continue;
                };
                let status = String::from_utf8_lossy(&head[..end]).into_owned();
                if !status.starts_with("HTTP/1.0 200") && !status.starts_with("HTTP/1.1 200") {
                    return Err(status.lines().next().unwrap_or("").to_string());
                }
                decoder.push(&head[end + 4..]);
                response_head = None;
                stream
                    .set_read_timeout(opts.wait)
                    .map_err(|e| e.to_string())?;
            }
            None => decoder.push(&buf[..n]),
        }
        while let Some(part) = decoder.next_part().map_err(|e| e.to_string())? {
            if opts.verbose {
                for (name, value) in &part.headers {
                    eprintln!("{name}: {value}");
                }
            }
            stdout
                .write_all(&part.body)
                .and_then(|_| stdout.flush())
                .map_err(|e| e.to_string())?;
            received += 1;
            if opts.count.is_some_and(|n| received >= n) {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let cases: &[(&str, Result<(&str, u16, &str, Option<&str>), ()>)] = &[
            (
                "http://127.0.0.1:8888/msgbus/foo",
                Ok(("127.0.0.1", 8888, "/msgbus/foo", None)),
            ),
            (
                "http://localhost/msgbus/foo?type=text/*",
                Ok(("localhost", 80, "/msgbus/foo?type=text/*", None)),
            ),
            (
                "http://bob:pw@[::1]:9000",
                Ok(("::1", 9000, "/", Some("bob:pw"))),
            ),
            ("https://x/", Err(())),
            ("http://x:port/", Err(())),
            ("http:///path", Err(())),
        ];
        for (url, want) in cases {
            let got = parse_url(url)
                .map(|u| (u.host, u.port, u.path, u.credentials))
                .map_err(|_| ());
            let want = want
                .map(|(h, p, path, c)| (h.to_string(), p, path.to_string(), c.map(String::from)));
            assert_eq!(got, want, "{url}");
        }
    }
}
