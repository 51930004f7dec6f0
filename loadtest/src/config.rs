//! The command line: every default as a named constant, parsed with lexopt and validated before
//! any socket is opened.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub const DEFAULT_TARGET: &str = "127.0.0.1:8888";
pub const DEFAULT_CHANNEL: &str = "load";
pub const DEFAULT_SUBS: usize = 1000;
pub const DEFAULT_MESSAGES: usize = 1000;
pub const DEFAULT_SIZE: usize = 128;
pub const DEFAULT_PIPELINE: usize = 64;
pub const DEFAULT_DURATION: Duration = Duration::from_secs(120);
pub const DEFAULT_IDLE: Duration = Duration::from_secs(1);
/// Bounds that keep a typo from asking for a terabyte of bitsets.
pub const MAX_SUBS: usize = 1_000_000;
pub const MAX_MESSAGES: usize = 10_000_000;
pub const MAX_SIZE: usize = 1024 * 1024;
pub const MAX_PIPELINE: usize = 4096;
pub const MAX_SOURCE_ADDRS: usize = 254;

pub const USAGE: &str = "\
usage: msgbus-load [OPTIONS]

Opens --subs subscribers on one channel, then publishes --messages messages and checks that every
subscriber got every message exactly once; reports latency and, with --server-pid, the server's CPU
and memory.

  --target HOST:PORT      server address (default 127.0.0.1:8888)
  --flavor msgbus|nchan   URL layout: /msgbus/CH, or Nchan's /sub/CH and /pub/CH (default msgbus)
  --transport multipart|sse   subscriber wire format (default multipart)
  --channel NAME          channel (default load)
  --subs N                subscribers (default 1000)
  --messages M            messages to publish (default 1000)
  --size BYTES            message body size (default 128)
  --rate PER_SEC          publish rate, 0 = as fast as possible (default 0)
  --one-at-a-time         publish the next message only after every subscriber has the previous one
  --pipeline W            publishes in flight on the one keep-alive connection (default 64)
  --source-addrs K        spread subscribers over source addresses 127.0.0.1..127.0.0.K (default 1)
  --server-pid PID        read the server's CPU and RSS from /proc/PID (Nchan: the worker pid,
                          `pgrep -P MASTERPID`)
  --duration SECS         hard bound on the whole run (default 120)
  --idle-secs S           wait this long with all subscribers connected before measuring RSS
                          and publishing (default 1)
  --json                  print one JSON object instead of the report
  -h, --help              this text

Exit status: 0 nothing lost or duplicated, 1 otherwise, 2 usage error.
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Msgbus,
    Nchan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Multipart,
    Sse,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub target: SocketAddr,
    /// What the user typed, for the Host header.
    pub host: String,
    pub flavor: Flavor,
    pub transport: Transport,
    pub channel: String,
    pub subs: usize,
    pub messages: usize,
    pub size: usize,
    /// Messages per second; 0.0 means as fast as the pipeline allows.
    pub rate: f64,
    pub one_at_a_time: bool,
    pub pipeline: usize,
    pub source_addrs: usize,
    pub server_pid: Option<u32>,
    pub duration: Duration,
    pub idle: Duration,
    pub json: bool,
}

pub enum Command {
    Run(Box<Config>),
    Help,
}

#[derive(Debug)]
pub struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError(e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

fn number<T>(p: &mut lexopt::Parser, flag: &str, lo: T, hi: T) -> Result<T, UsageError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let raw = p
        .value()?
        .into_string()
        .map_err(|_| bad(format!("{flag}: not UTF-8")))?;
    let v: T = raw
        .parse()
        .map_err(|_| bad(format!("{flag}: not a number: {raw:?}")))?;
    if v < lo || v > hi {
        return Err(bad(format!("{flag}: {raw} is outside {lo}..={hi}")));
    }
    Ok(v)
}

fn text(p: &mut lexopt::Parser, flag: &str) -> Result<String, UsageError> {
    p.value()?
        .into_string()
        .map_err(|_| bad(format!("{flag}: not UTF-8")))
}

impl Config {
    pub fn from_args<I>(args: I) -> Result<Command, UsageError>
    where
        I: IntoIterator,
        I::Item: Into<std::ffi::OsString>,
    {
        use lexopt::prelude::*;
        let mut p = lexopt::Parser::from_args(args);
        let mut host = DEFAULT_TARGET.to_string();
        let mut cfg = Config {
            target: DEFAULT_TARGET.parse().expect("default target"),
            host: String::new(),
            flavor: Flavor::Msgbus,
            transport: Transport::Multipart,
            channel: DEFAULT_CHANNEL.to_string(),
            subs: DEFAULT_SUBS,
            messages: DEFAULT_MESSAGES,
            size: DEFAULT_SIZE,
            rate: 0.0,
            one_at_a_time: false,
            pipeline: DEFAULT_PIPELINE,
            source_addrs: 1,
            server_pid: None,
            duration: DEFAULT_DURATION,
            idle: DEFAULT_IDLE,
            json: false,
        };
        while let Some(arg) = p.next()? {
            match arg {
                Long("target") => host = text(&mut p, "--target")?,
                Long("flavor") => {
                    cfg.flavor = match text(&mut p, "--flavor")?.as_str() {
                        "msgbus" => Flavor::Msgbus,
                        "nchan" => Flavor::Nchan,
                        other => {
                            return Err(bad(format!("--flavor: msgbus or nchan, not {other:?}")))
                        }
                    }
                }
                Long("transport") => {
                    cfg.transport = match text(&mut p, "--transport")?.as_str() {
                        "multipart" => Transport::Multipart,
                        "sse" => Transport::Sse,
                        other => {
                            return Err(bad(format!(
                                "--transport: multipart or sse, not {other:?}"
                            )))
                        }
                    }
                }
                Long("channel") => cfg.channel = text(&mut p, "--channel")?,
                Long("subs") => cfg.subs = number(&mut p, "--subs", 1, MAX_SUBS)?,
                Long("messages") => cfg.messages = number(&mut p, "--messages", 1, MAX_MESSAGES)?,
                Long("size") => cfg.size = number(&mut p, "--size", 1, MAX_SIZE)?,
                Long("rate") => cfg.rate = number(&mut p, "--rate", 0.0, 1e9)?,
                Long("one-at-a-time") => cfg.one_at_a_time = true,
                Long("pipeline") => cfg.pipeline = number(&mut p, "--pipeline", 1, MAX_PIPELINE)?,
                Long("source-addrs") => {
                    cfg.source_addrs = number(&mut p, "--source-addrs", 1, MAX_SOURCE_ADDRS)?
                }
                Long("server-pid") => {
                    cfg.server_pid = Some(number(&mut p, "--server-pid", 1, u32::MAX)?)
                }
                Long("duration") => {
                    cfg.duration = Duration::from_secs(number(&mut p, "--duration", 1, 86_400)?)
                }
                Long("idle-secs") => {
                    cfg.idle = Duration::from_secs_f64(number(&mut p, "--idle-secs", 0.0, 3600.0)?)
                }
                Long("json") => cfg.json = true,
                Short('h') | Long("help") => return Ok(Command::Help),
                _ => return Err(arg.unexpected().into()),
            }
        }
        let valid_name = |c: char| c.is_ascii_alphanumeric() || "_-.:".contains(c);
        if cfg.channel.is_empty() || cfg.channel.len() > 200 || !cfg.channel.chars().all(valid_name)
        {
            return Err(bad(format!(
                "--channel: 1-200 characters of [A-Za-z0-9_.:-], not {:?}",
                cfg.channel
            )));
        }
        if cfg.idle >= cfg.duration {
            return Err(bad("--idle-secs must be shorter than --duration"));
        }
        cfg.target = host
            .to_socket_addrs()
            .map_err(|e| bad(format!("--target {host}: {e}")))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| bad(format!("--target {host}: no IPv4 address")))?;
        if cfg.source_addrs > 1 && !cfg.target.ip().is_loopback() {
            return Err(bad("--source-addrs needs a loopback --target"));
        }
        cfg.host = host;
        Ok(Command::Run(Box::new(cfg)))
    }

    /// The subscriber's request, sent once per connection.
    pub fn subscribe_request(&self) -> Vec<u8> {
        let (path, accept) = match (self.flavor, self.transport) {
            (Flavor::Msgbus, Transport::Multipart) => ("msgbus", ""),
            (Flavor::Msgbus, Transport::Sse) => ("msgbus", "Accept: text/event-stream\r\n"),
            (Flavor::Nchan, Transport::Multipart) => ("sub", "Accept: multipart/mixed\r\n"),
            (Flavor::Nchan, Transport::Sse) => ("sub", "Accept: text/event-stream\r\n"),
        };
        format!(
            "GET /{path}/{} HTTP/1.1\r\nHost: {}\r\n{accept}\r\n",
            self.channel, self.host
        )
        .into_bytes()
    }

    /// The head of every publish request; the body follows.
    pub fn publish_head(&self, body_len: usize) -> Vec<u8> {
        let path = match self.flavor {
            Flavor::Msgbus => "msgbus",
            Flavor::Nchan => "pub",
        };
        format!(
            "POST /{path}/{} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {body_len}\r\n\r\n",
            self.channel, self.host
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        match Config::from_args(args.iter().copied()) {
            Ok(Command::Run(c)) => Ok(*c),
            Ok(Command::Help) => Err("help".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn flags() {
        let ok: &[(&[&str], fn(&Config) -> bool)] = &[
            (&[], |c| c.subs == 1000 && c.target.port() == 8888),
            (&["--subs", "5", "--messages", "7"], |c| {
                c.subs == 5 && c.messages == 7
            }),
            (&["--flavor", "nchan", "--transport", "sse"], |c| {
                c.flavor == Flavor::Nchan && c.transport == Transport::Sse
            }),
            (&["--one-at-a-time", "--json"], |c| {
                c.one_at_a_time && c.json
            }),
            (
                &["--target", "127.0.0.1:9201", "--source-addrs", "3"],
                |c| c.target.port() == 9201 && c.source_addrs == 3,
            ),
        ];
        for (args, check) in ok {
            let c = parse(args).unwrap();
            assert!(check(&c), "{args:?}");
        }
        let bad: &[&[&str]] = &[
            &["--subs", "0"],
            &["--subs", "x"],
            &["--flavor", "redis"],
            &["--channel", "a/b"],
            &["--bogus"],
            &["--duration", "1", "--idle-secs", "2"],
            &["--target", "nowhere"],
        ];
        for args in bad {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn requests() {
        let c = parse(&["--flavor", "nchan", "--channel", "c1"]).unwrap();
        let r = String::from_utf8(c.subscribe_request()).unwrap();
        assert!(r.starts_with("GET /sub/c1 HTTP/1.1\r\n") && r.contains("multipart/mixed"));
        let h = String::from_utf8(c.publish_head(5)).unwrap();
        assert!(h.starts_with("POST /pub/c1 ") && h.ends_with("Content-Length: 5\r\n\r\n"));
    }
}
