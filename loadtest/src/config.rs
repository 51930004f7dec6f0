//! The command line: every default as a named constant, parsed with lexopt and validated before
//! any socket is opened.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::longpoll;

pub const DEFAULT_TARGET: &str = "127.0.0.1:8888";
pub const DEFAULT_CHANNEL: &str = "load";
pub const DEFAULT_SUBS: usize = 1000;
pub const DEFAULT_MESSAGES: usize = 1000;
pub const DEFAULT_SIZE: usize = 128;
pub const DEFAULT_PIPELINE: usize = 64;
pub const DEFAULT_DURATION: Duration = Duration::from_secs(120);
pub const DEFAULT_IDLE: Duration = Duration::from_secs(1);
/// With everything published (or, with --no-publish, after the first delivery), the run ends
/// after this long with no delivery.
pub const DEFAULT_QUIET: Duration = Duration::from_secs(2);
/// The receive buffer of a stalled subscriber. Small, so that the server's queue, not the
/// kernel's socket buffers (megabytes on loopback), holds what the subscriber does not read.
pub const DEFAULT_STALL_RCVBUF: usize = 4096;
/// Bounds that keep a typo from asking for a terabyte of bitsets.
pub const MAX_SUBS: usize = 1_000_000;
pub const MAX_MESSAGES: usize = 10_000_000;
pub const MAX_SIZE: usize = 1024 * 1024;
pub const MAX_PIPELINE: usize = 4096;
pub const MAX_SOURCE_ADDRS: usize = 254;
pub const MAX_SERVER_PIDS: usize = 64;
pub const MAX_PUBLISHERS: usize = 256;

pub const USAGE: &str = "\
usage: msgbus-load [OPTIONS]

Opens --subs subscribers on one channel, then publishes --messages messages and checks that every
subscriber got every message exactly once; reports latency and, with --server-pid, the server's CPU
and memory.

  --target HOST:PORT      server address (default 127.0.0.1:8888)
  --publish-target HOST:PORT  where the publisher connects (default --target), e.g. another node
  --flavor msgbus|nchan   URL layout: /msgbus/CH, or Nchan's /sub/CH and /pub/CH (default msgbus)
  --transport multipart|sse|ws|longpoll   subscriber wire format (default multipart); longpoll
                          re-polls on the same keep-alive connection from the last answer
                          (msgbus: ?transport=longpoll&since=CURSOR; Nchan: If-Modified-Since
                          and If-None-Match from the answer's Last-Modified and Etag)
  --channel NAME          channel (default load)
  --subs N                subscribers (default 1000; 0 = a publisher only)
  --messages M            messages to publish (default 1000)
  --no-publish            subscribers only: another process publishes
  --expect N              with --no-publish: messages each subscriber waits for; the run ends when
                          all arrived, --quiet-secs after the last delivery, or at --duration
  --ready-file PATH       written once the subscribers are connected and idled: a line
                          READY <ready subscribers>; with --no-publish it also goes to stderr
  --size BYTES            message body size (default 128)
  --rate PER_SEC          publish rate, 0 = as fast as possible (default 0)
  --one-at-a-time         publish the next message only after every subscriber has the previous one
  --pipeline W            publishes in flight on each publisher connection (default 64)
  --publishers N          publisher connections, messages spread evenly over them (default 1;
                          --one-at-a-time needs 1)
  --source-addrs K        spread subscribers over source addresses 127.0.0.1..127.0.0.K (default 1)
  --server-pid PID        read the server's CPU and RSS from /proc/PID (Nchan: the worker pid,
                          `pgrep -P MASTERPID`); repeat for several servers (CPU summed)
  --stall-fraction F      this fraction of the subscribers connects and then never reads
                          (default 0); readers and stalled ones are reported apart
  --stall-rcvbuf BYTES    a stalled subscriber's SO_RCVBUF (default 4096)
  --duration SECS         hard bound on the whole run (default 120)
  --idle-secs S           wait this long with all subscribers connected before measuring RSS
                          and publishing (default 1)
  --quiet-secs S          end the drain this long after the last delivery (default 2)
  --json                  print one JSON object instead of the report
  --plot FILE.svg         draw latency percentiles (p50, p90, p99) and deliveries per second,
                          one point a second, into FILE.svg
  --per-message FILE      one line per message into FILE: its seq, the time to its last
                          subscriber in ms, and how many subscribers had it
  -h, --help              this text

While stderr is a terminal, a progress line is redrawn there each second.

Exit status: 0 nothing lost or duplicated, 1 otherwise, 2 usage error.
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Msgbus,
    Nchan,
}

/// The upgrade request headers of a WebSocket subscriber (RFC 6455's sample key).
const WS_UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

impl Transport {
    /// The status of a subscription that worked.
    pub fn ready_status(self) -> u16 {
        match self {
            Transport::Ws => 101,
            _ => 200,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Transport::Multipart => "multipart",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
            Transport::LongPoll => "longpoll",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Multipart,
    Sse,
    /// WebSocket: the server's frames are unmasked, so markers show in the byte stream.
    Ws,
    /// One request per answer: each answer is read whole, then the next poll goes out on the
    /// same connection from where the answer left off.
    LongPoll,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub target: SocketAddr,
    /// What the user typed, for the subscribers' Host header.
    pub host: String,
    pub publish_target: SocketAddr,
    /// The publisher's Host header.
    pub publish_host: String,
    /// False with --no-publish: another process publishes, this one only counts.
    pub publish: bool,
    pub ready_file: Option<PathBuf>,
    pub flavor: Flavor,
    pub transport: Transport,
    pub channel: String,
    pub subs: usize,
    /// Messages to publish, or with --no-publish (--expect) to wait for.
    pub messages: usize,
    pub size: usize,
    /// Messages per second; 0.0 means as fast as the pipeline allows.
    pub rate: f64,
    pub one_at_a_time: bool,
    pub pipeline: usize,
    /// Publisher connections; message seq k goes out on connection k mod publishers.
    pub publishers: usize,
    pub source_addrs: usize,
    pub server_pids: Vec<u32>,
    /// Subscribers that connect and never read: `subs × stall_fraction`, rounded.
    pub stalled: usize,
    pub stall_rcvbuf: usize,
    pub duration: Duration,
    pub idle: Duration,
    pub quiet: Duration,
    pub json: bool,
    /// --plot: where the SVG goes.
    pub plot: Option<PathBuf>,
    /// --per-message: where each message's time to its last subscriber goes.
    pub per_message: Option<PathBuf>,
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
        let mut publish_host: Option<String> = None;
        let mut expect: Option<usize> = None;
        let mut stall_fraction = 0.0;
        let mut cfg = Config {
            target: DEFAULT_TARGET.parse().expect("default target"),
            host: String::new(),
            publish_target: DEFAULT_TARGET.parse().expect("default target"),
            publish_host: String::new(),
            publish: true,
            ready_file: None,
            flavor: Flavor::Msgbus,
            transport: Transport::Multipart,
            channel: DEFAULT_CHANNEL.to_string(),
            subs: DEFAULT_SUBS,
            messages: DEFAULT_MESSAGES,
            size: DEFAULT_SIZE,
            rate: 0.0,
            one_at_a_time: false,
            pipeline: DEFAULT_PIPELINE,
            publishers: 1,
            source_addrs: 1,
            server_pids: Vec::new(),
            stalled: 0,
            stall_rcvbuf: DEFAULT_STALL_RCVBUF,
            duration: DEFAULT_DURATION,
            idle: DEFAULT_IDLE,
            quiet: DEFAULT_QUIET,
            json: false,
            plot: None,
            per_message: None,
        };
        while let Some(arg) = p.next()? {
            match arg {
                Long("target") => host = text(&mut p, "--target")?,
                Long("publish-target") => {
                    publish_host = Some(text(&mut p, "--publish-target")?);
                }
                Long("no-publish") => cfg.publish = false,
                Long("expect") => expect = Some(number(&mut p, "--expect", 1, MAX_MESSAGES)?),
                Long("ready-file") => {
                    cfg.ready_file = Some(PathBuf::from(p.value()?));
                }
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
                        "ws" => Transport::Ws,
                        "longpoll" => Transport::LongPoll,
                        other => {
                            return Err(bad(format!(
                                "--transport: multipart, sse, ws or longpoll, not {other:?}"
                            )))
                        }
                    }
                }
                Long("channel") => cfg.channel = text(&mut p, "--channel")?,
                Long("subs") => cfg.subs = number(&mut p, "--subs", 0, MAX_SUBS)?,
                Long("messages") => cfg.messages = number(&mut p, "--messages", 1, MAX_MESSAGES)?,
                Long("size") => cfg.size = number(&mut p, "--size", 1, MAX_SIZE)?,
                Long("rate") => cfg.rate = number(&mut p, "--rate", 0.0, 1e9)?,
                Long("one-at-a-time") => cfg.one_at_a_time = true,
                Long("pipeline") => cfg.pipeline = number(&mut p, "--pipeline", 1, MAX_PIPELINE)?,
                Long("publishers") => {
                    cfg.publishers = number(&mut p, "--publishers", 1, MAX_PUBLISHERS)?
                }
                Long("source-addrs") => {
                    cfg.source_addrs = number(&mut p, "--source-addrs", 1, MAX_SOURCE_ADDRS)?
                }
                Long("server-pid") => {
                    let pid = number(&mut p, "--server-pid", 1, u32::MAX)?;
                    if cfg.server_pids.len() == MAX_SERVER_PIDS {
                        return Err(bad(format!("--server-pid: at most {MAX_SERVER_PIDS}")));
                    }
                    cfg.server_pids.push(pid);
                }
                Long("stall-fraction") => {
                    stall_fraction = number(&mut p, "--stall-fraction", 0.0, 1.0)?;
                }
                Long("stall-rcvbuf") => {
                    cfg.stall_rcvbuf = number(&mut p, "--stall-rcvbuf", 1, 64 * 1024 * 1024)?;
                }
                Long("duration") => {
                    cfg.duration = Duration::from_secs(number(&mut p, "--duration", 1, 86_400)?)
                }
                Long("idle-secs") => {
                    cfg.idle = Duration::from_secs_f64(number(&mut p, "--idle-secs", 0.0, 3600.0)?)
                }
                Long("quiet-secs") => {
                    cfg.quiet =
                        Duration::from_secs_f64(number(&mut p, "--quiet-secs", 0.1, 3600.0)?)
                }
                Long("json") => cfg.json = true,
                Long("plot") => cfg.plot = Some(p.value()?.into()),
                Long("per-message") => cfg.per_message = Some(p.value()?.into()),
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
        match (cfg.publish, expect) {
            (true, Some(_)) => return Err(bad("--expect goes with --no-publish")),
            (false, None) => return Err(bad("--no-publish needs --expect N")),
            (false, Some(n)) => cfg.messages = n,
            (true, None) => {}
        }
        if cfg.one_at_a_time && cfg.publishers > 1 {
            return Err(bad(
                "--one-at-a-time publishes on one connection (--publishers 1)",
            ));
        }
        if !cfg.publish && cfg.subs == 0 {
            return Err(bad("--no-publish needs subscribers (--subs 0)"));
        }
        cfg.stalled = (cfg.subs as f64 * stall_fraction).round() as usize;
        cfg.target = resolve("--target", &host)?;
        if cfg.source_addrs > 1 && !cfg.target.ip().is_loopback() {
            return Err(bad("--source-addrs needs a loopback --target"));
        }
        let publish_host = publish_host.unwrap_or_else(|| host.clone());
        cfg.publish_target = resolve("--publish-target", &publish_host)?;
        cfg.host = host;
        cfg.publish_host = publish_host;
        Ok(Command::Run(Box::new(cfg)))
    }

    /// Readers: the subscribers that read (and are counted for loss and latency).
    pub fn readers(&self) -> usize {
        self.subs - self.stalled
    }

    /// Whether subscriber `i` is one of the `stalled`, spread evenly over the indices (and so
    /// over source addresses).
    pub fn is_stalled(&self, i: usize) -> bool {
        let (k, n) = (self.stalled, self.subs);
        (i + 1) * k / n > i * k / n
    }

    /// The subscriber's request, sent once per connection (a long-poll's first poll).
    pub fn subscribe_request(&self) -> Vec<u8> {
        if self.transport == Transport::LongPoll {
            return self.poll_request(&longpoll::Cursor::Start);
        }
        let (path, accept) = match (self.flavor, self.transport) {
            (Flavor::Msgbus, Transport::Multipart) => ("msgbus", ""),
            (Flavor::Msgbus, Transport::Sse) => ("msgbus", "Accept: text/event-stream\r\n"),
            (Flavor::Nchan, Transport::Multipart) => ("sub", "Accept: multipart/mixed\r\n"),
            (Flavor::Nchan, Transport::Sse) => ("sub", "Accept: text/event-stream\r\n"),
            (Flavor::Msgbus, Transport::Ws) => ("msgbus", WS_UPGRADE),
            (Flavor::Nchan, Transport::Ws) => ("sub", WS_UPGRADE),
            (_, Transport::LongPoll) => unreachable!("answered above"),
        };
        format!(
            "GET /{path}/{} HTTP/1.1\r\nHost: {}\r\n{accept}\r\n",
            self.channel, self.host
        )
        .into_bytes()
    }

    /// A long-poll request that resumes from `cursor`.
    pub fn poll_request(&self, cursor: &longpoll::Cursor) -> Vec<u8> {
        longpoll::request(self.flavor, &self.channel, &self.host, cursor)
    }

    /// The head of every publish request; the body follows.
    pub fn publish_head(&self, body_len: usize) -> Vec<u8> {
        let path = match self.flavor {
            Flavor::Msgbus => "msgbus",
            Flavor::Nchan => "pub",
        };
        format!(
            "POST /{path}/{} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {body_len}\r\n\r\n",
            self.channel, self.publish_host
        )
        .into_bytes()
    }
}

fn resolve(flag: &str, host: &str) -> Result<SocketAddr, UsageError> {
    host.to_socket_addrs()
        .map_err(|e| bad(format!("{flag} {host}: {e}")))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| bad(format!("{flag} {host}: no IPv4 address")))
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
            (&["--target", "127.0.0.1:9201"], |c| {
                c.publish_target.port() == 9201 && c.publish_host == "127.0.0.1:9201"
            }),
            (
                &["--publish-target", "127.0.0.1:9301", "--subs", "0"],
                |c| c.target.port() == 8888 && c.publish_target.port() == 9301 && c.subs == 0,
            ),
            (&["--no-publish", "--expect", "200"], |c| {
                !c.publish && c.messages == 200
            }),
            (&["--server-pid", "7", "--server-pid", "9"], |c| {
                c.server_pids == [7, 9]
            }),
            (&["--subs", "1000", "--stall-fraction", "0.1"], |c| {
                c.stalled == 100 && c.readers() == 900
            }),
            (&["--transport", "longpoll"], |c| {
                c.transport == Transport::LongPoll
            }),
            (&["--publishers", "16", "--pipeline", "8"], |c| {
                c.publishers == 16 && c.pipeline == 8
            }),
            (&["--per-message", "/tmp/m.txt"], |c| {
                c.per_message.as_deref() == Some(std::path::Path::new("/tmp/m.txt"))
            }),
            (&["--plot", "/tmp/p.svg"], |c| {
                c.plot.as_deref() == Some(std::path::Path::new("/tmp/p.svg"))
            }),
            (&["--ready-file", "/tmp/r", "--quiet-secs", "30"], |c| {
                c.ready_file.as_deref() == Some(std::path::Path::new("/tmp/r"))
                    && c.quiet == Duration::from_secs(30)
            }),
        ];
        for (args, check) in ok {
            let c = parse(args).unwrap();
            assert!(check(&c), "{args:?}");
        }
        let bad: &[&[&str]] = &[
            &["--subs", "-1"],
            &["--subs", "x"],
            &["--flavor", "redis"],
            &["--channel", "a/b"],
            &["--bogus"],
            &["--duration", "1", "--idle-secs", "2"],
            &["--target", "nowhere"],
            &["--no-publish"],
            &["--expect", "5"],
            &["--no-publish", "--expect", "5", "--subs", "0"],
            &["--stall-fraction", "1.5"],
            &["--transport", "poll"],
            &["--publishers", "0"],
            &["--publishers", "257"],
            &["--one-at-a-time", "--publishers", "2"],
        ];
        for args in bad {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    /// Exactly `stalled` subscribers stall, spread over the indices.
    #[test]
    fn stalled_spread() {
        for (subs, frac, want) in [
            (1000, "0.1", 100),
            (7, "0.5", 4),
            (10, "1", 10),
            (10, "0", 0),
        ] {
            let n = subs.to_string();
            let c = parse(&["--subs", &n, "--stall-fraction", frac]).unwrap();
            let got: Vec<usize> = (0..subs).filter(|&i| c.is_stalled(i)).collect();
            assert_eq!(got.len(), want, "{subs} {frac}");
            if want == 100 {
                assert!(got.windows(2).all(|w| w[1] - w[0] == 10), "{got:?}");
            }
        }
    }

    #[test]
    fn requests() {
        let c = parse(&["--flavor", "nchan", "--channel", "c1"]).unwrap();
        let r = String::from_utf8(c.subscribe_request()).unwrap();
        assert!(r.starts_with("GET /sub/c1 HTTP/1.1\r\n") && r.contains("multipart/mixed"));
        let h = String::from_utf8(c.publish_head(5)).unwrap();
        assert!(h.starts_with("POST /pub/c1 ") && h.ends_with("Content-Length: 5\r\n\r\n"));
        let c = parse(&["--transport", "longpoll", "--channel", "c2"]).unwrap();
        let r = String::from_utf8(c.subscribe_request()).unwrap();
        assert_eq!(
            r,
            "GET /msgbus/c2?transport=longpoll&since=0 HTTP/1.1\r\nHost: 127.0.0.1:8888\r\n\r\n"
        );
    }
}
