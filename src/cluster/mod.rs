//! Joining other msgbus processes through NATS: one client connection inside the reactor.
//!
//! Every node subscribes to `msgbus.>`; a local publish goes out once as HPUB with the message's
//! id, type, sender and event name in headers, and each other node delivers it to its own
//! subscribers and keeps it in its history under the same id. CONNECT asks the server not to
//! echo a node's own messages back. While NATS is away, publishes still reach local
//! subscribers (and are answered as usual, with `Msgbus-Cluster: local-only`); what other nodes
//! published meanwhile is lost to this node, so when it reconnects, clients resuming from before
//! the outage are told they missed messages.
//!
//! Nothing here blocks the reactor: a host name is looked up on a short-lived helper thread
//! whose answer comes back through a `mio::Waker` (an address given as an IP is used as is),
//! and reading from NATS stops after `READ_BYTES_PER_TURN` so a flood of remote messages
//! cannot hold the loop; the reactor calls again next turn.

pub mod proto;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token, Waker};

use crate::message::Message;
use proto::ServerOp;

/// The subject prefix every node publishes under and subscribes to.
pub const SUBJECT_PREFIX: &str = "msgbus";
/// Bytes waiting to go to NATS before the connection is given up as stuck.
const MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// The largest message accepted from NATS.
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// A connection that has not finished its handshake by then is given up; so is a name lookup.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read from NATS per turn, as for every client connection.
const READ_BYTES_PER_TURN: usize = 256 * 1024;

/// A NATS server address with its credentials: `nats://[user:pass@|token@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsUrl {
    pub host_port: String,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub token: Option<String>,
}

impl NatsUrl {
    pub fn parse(text: &str) -> Option<NatsUrl> {
        let rest = text.strip_prefix("nats://").unwrap_or(text);
        let (auth, host) = match rest.rsplit_once('@') {
            Some((auth, host)) => (Some(auth), host),
            None => (None, rest),
        };
        let host = host.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return None;
        }
        let host_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_string()
        } else {
            format!("{host}:4222")
        };
        let (user, pass, token) = match auth.map(|a| a.split_once(':')) {
            None => (None, None, None),
            Some(Some((user, pass))) => (Some(user.to_string()), Some(pass.to_string()), None),
            Some(None) => (None, None, auth.map(str::to_string)),
        };
        Some(NatsUrl {
            host_port,
            user,
            pass,
            token,
        })
    }
}

/// A message another node published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub channel: String,
    pub id: u64,
    pub content_type: String,
    pub sender: Option<String>,
    pub event: Option<String>,
    pub body: Vec<u8>,
}

enum State {
    /// Waiting to try again.
    Down {
        retry_at: Instant,
    },
    /// The host name is being looked up on a helper thread (answer number `lookup`).
    Resolving {
        lookup: u64,
        since: Instant,
    },
    /// TCP connect in progress, or waiting for INFO and the first PONG.
    Connecting {
        sock: TcpStream,
        since: Instant,
    },
    Ready {
        sock: TcpStream,
    },
}

/// What the reactor should know after the cluster connection handled an event.
#[derive(Debug, Default)]
pub struct Outcome {
    pub remotes: Vec<Remote>,
    /// The connection came up after being down: earlier cursors may have missed messages.
    pub rejoined: bool,
    /// Reading stopped at the per-turn cap: call `on_ready` again next turn.
    pub more: bool,
}

/// A name lookup's answer from its helper thread: which lookup, and the addresses.
type Lookup = (u64, io::Result<Vec<SocketAddr>>);

/// Looks host names up off the reactor thread, one at a time.
struct Resolver {
    waker: Arc<Waker>,
    answers: Receiver<Lookup>,
    sender: Sender<Lookup>,
    /// Numbers the lookups, so a late answer to one given up is recognised and dropped.
    last: u64,
    /// Lookups started and not yet answered (a stuck one holds back the next).
    running: usize,
}

pub struct Cluster {
    urls: Vec<NatsUrl>,
    next_url: usize,
    node_name: String,
    state: State,
    input: Vec<u8>,
    output: Vec<u8>,
    retry: Duration,
    ever_connected: bool,
    /// xorshift state for the reconnect jitter.
    rng: u64,
    resolver: Resolver,
    /// Turns through the addresses a name has, one per connection attempt.
    attempts: usize,
    /// Counted for /status.json and /metrics.
    pub forwarded: u64,
    pub received: u64,
    pub not_forwarded: u64,
    pub disconnects: u64,
}

impl Cluster {
    /// `waker` wakes the reactor when a name lookup is answered; the reactor then calls
    /// `on_resolved`.
    pub fn new(urls: Vec<NatsUrl>, node_name: String, now: Instant, waker: Arc<Waker>) -> Cluster {
        let (sender, answers) = channel();
        Cluster {
            resolver: Resolver {
                waker,
                answers,
                sender,
                last: 0,
                running: 0,
            },
            attempts: 0,
            urls,
            next_url: 0,
            node_name,
            state: State::Down { retry_at: now },
            input: Vec::new(),
            output: Vec::new(),
            retry: FIRST_RETRY,
            ever_connected: false,
            rng: jitter_seed(),
            forwarded: 0,
            received: 0,
            not_forwarded: 0,
            disconnects: 0,
        }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Ready { .. })
    }

    /// When the reactor should call `on_timer` next.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Down { retry_at } => Some(*retry_at),
            State::Resolving { since, .. } | State::Connecting { since, .. } => {
                Some(*since + HANDSHAKE_TIMEOUT)
            }
            State::Ready { .. } => None,
        }
    }

    /// Tries to connect when it is time; gives up a handshake that takes too long.
    pub fn on_timer(&mut self, registry: &Registry, token: Token, now: Instant) {
        match &self.state {
            State::Down { retry_at } if now >= *retry_at => self.connect(registry, token, now),
            State::Connecting { since, .. } if now >= *since + HANDSHAKE_TIMEOUT => {
                self.cut("handshake timed out", registry, now);
            }
            State::Resolving { since, .. } if now >= *since + HANDSHAKE_TIMEOUT => {
                self.cut("name lookup timed out", registry, now);
            }
            _ => {}
        }
    }

    /// Starts the next attempt: at once for an IP address, else after a lookup off-thread.
    fn connect(&mut self, registry: &Registry, token: Token, now: Instant) {
        let url = self.urls[self.next_url % self.urls.len()].clone();
        self.next_url += 1;
        self.attempts += 1;
        if let Ok(addr) = url.host_port.parse::<SocketAddr>() {
            self.open(addr, registry, token, now);
            return;
        }
        if self.resolver.running > 0 {
            warn!("NATS {}: still looking up an earlier name", url.host_port);
            self.schedule_retry(now);
            return;
        }
        self.resolver.last += 1;
        let lookup = self.resolver.last;
        let sender = self.resolver.sender.clone();
        let waker = Arc::clone(&self.resolver.waker);
        let host_port = url.host_port.clone();
        let started = std::thread::Builder::new()
            .name("msgbus-resolve".into())
            .spawn(move || {
                let addrs = host_port.to_socket_addrs().map(Iterator::collect);
                let _ = sender.send((lookup, addrs));
                let _ = waker.wake();
            });
        match started {
            Ok(_) => {
                self.resolver.running += 1;
                self.state = State::Resolving { lookup, since: now };
            }
            Err(e) => {
                warn!("NATS {}: cannot start a name lookup: {e}", url.host_port);
                self.schedule_retry(now);
            }
        }
    }

    /// A name lookup was answered (the reactor's waker fired): connect to one of the
    /// addresses, a different one on each attempt, or try again later.
    pub fn on_resolved(&mut self, registry: &Registry, token: Token, now: Instant) {
        while let Ok((lookup, answer)) = self.resolver.answers.try_recv() {
            self.resolver.running = self.resolver.running.saturating_sub(1);
            if !matches!(self.state, State::Resolving { lookup: l, .. } if l == lookup) {
                continue; // given up on already
            }
            let url = &self.urls[(self.next_url + self.urls.len() - 1) % self.urls.len()];
            match answer {
                Ok(addrs) if !addrs.is_empty() => {
                    let addr = addrs[self.attempts % addrs.len()];
                    self.open(addr, registry, token, now);
                }
                Ok(_) => {
                    warn!("NATS {}: no address", url.host_port);
                    self.schedule_retry(now);
                }
                Err(e) => {
                    warn!("NATS {}: cannot resolve: {e}", url.host_port);
                    self.schedule_retry(now);
                }
            }
        }
    }

    fn open(&mut self, addr: SocketAddr, registry: &Registry, token: Token, now: Instant) {
        match TcpStream::connect(addr) {
            Ok(mut sock) => {
                let _ = sock.set_nodelay(true);
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = registry.register(&mut sock, token, interest) {
                    warn!("NATS {addr}: {e}");
                    self.schedule_retry(now);
                    return;
                }
                self.input.clear();
                self.output.clear();
                self.state = State::Connecting { sock, since: now };
            }
            Err(e) => {
                warn!("NATS {addr}: {e}");
                self.schedule_retry(now);
            }
        }
    }

    /// Backoff doubling up to five seconds, plus up to half as much again at random, so nodes
    /// cut off together do not all come back in the same instant.
    fn schedule_retry(&mut self, now: Instant) {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let spread = self.retry.as_millis() as u64 / 2 + 1;
        let jitter = Duration::from_millis(self.rng % spread);
        self.state = State::Down {
            retry_at: now + self.retry + jitter,
        };
        self.retry = (self.retry * 2).min(MAX_RETRY);
    }

    fn cut(&mut self, why: &str, registry: &Registry, now: Instant) {
        if let State::Connecting { sock, .. } | State::Ready { sock } = &mut self.state {
            let _ = registry.deregister(sock);
        }
        if self.is_connected() {
            self.disconnects += 1;
            warn!("cut off from NATS: {why}; publishes reach local subscribers only");
        } else {
            info!("NATS not reachable: {why}");
        }
        self.schedule_retry(now);
    }

    /// The socket is readable or writable.
    pub fn on_ready(&mut self, registry: &Registry, now: Instant) -> Outcome {
        let mut outcome = Outcome::default();
        if let Err(why) = self.pump(&mut outcome) {
            self.cut(&why, registry, now);
        }
        outcome
    }

    fn pump(&mut self, outcome: &mut Outcome) -> Result<(), String> {
        let sock = match &mut self.state {
            State::Connecting { sock, .. } | State::Ready { sock } => sock,
            State::Down { .. } | State::Resolving { .. } => return Ok(()),
        };
        if let Ok(Some(e)) | Err(e) = sock.take_error() {
            return Err(e.to_string());
        }
        let mut buf = [0u8; 64 * 1024];
        let mut taken = 0;
        let mut closed = false;
        loop {
            if taken >= READ_BYTES_PER_TURN {
                outcome.more = true;
                break;
            }
            match sock.read(&mut buf) {
                // What came before the close is read first: a server that refuses a node says
                // why (`-ERR 'Authorization Violation'`) and then hangs up.
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    taken += n;
                    self.input.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::NotConnected => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        self.handle_input(outcome)?;
        if closed {
            return Err("connection closed".into());
        }
        self.flush().map_err(|e| e.to_string())
    }

    fn handle_input(&mut self, outcome: &mut Outcome) -> Result<(), String> {
        let mut used = 0;
        while let Some((op, n)) =
            proto::parse(&self.input[used..], MAX_PAYLOAD).map_err(|e| e.to_string())?
        {
            used += n;
            match op {
                ServerOp::Info(_) if matches!(self.state, State::Connecting { .. }) => {
                    let url = &self.urls[(self.next_url + self.urls.len() - 1) % self.urls.len()];
                    let connect = proto::encode_connect(
                        &self.node_name,
                        url.user.as_deref(),
                        url.pass.as_deref(),
                        url.token.as_deref(),
                    );
                    self.output.extend_from_slice(&connect);
                    let sub = proto::encode_sub(&format!("{SUBJECT_PREFIX}.>"), 1);
                    self.output.extend_from_slice(&sub);
                    // The answering PONG says CONNECT and SUB were accepted.
                    self.output.extend_from_slice(proto::PING);
                }
                ServerOp::Info(_) | ServerOp::Ok => {}
                ServerOp::Ping => self.output.extend_from_slice(proto::PONG),
                ServerOp::Pong => {
                    if let State::Connecting { .. } = self.state {
                        let State::Connecting { sock, .. } = std::mem::replace(
                            &mut self.state,
                            State::Down {
                                retry_at: Instant::now(),
                            },
                        ) else {
                            unreachable!("matched above")
                        };
                        self.state = State::Ready { sock };
                        self.retry = FIRST_RETRY;
                        info!("joined the cluster through NATS as {}", self.node_name);
                        outcome.rejoined = self.ever_connected;
                        self.ever_connected = true;
                    }
                }
                ServerOp::Err(text) => return Err(format!("NATS says: {text}")),
                ServerOp::Msg {
                    subject,
                    headers,
                    payload,
                    ..
                } => {
                    if let Some(remote) = self.decode(&subject, &headers, payload) {
                        self.received += 1;
                        outcome.remotes.push(remote);
                    }
                }
            }
        }
        self.input.drain(..used);
        Ok(())
    }

    fn decode(&self, subject: &str, headers: &[u8], body: Vec<u8>) -> Option<Remote> {
        let origin = proto::header(headers, "Msgbus-Node");
        if origin == Some(self.node_name.as_str()) {
            return None; // our own, should the server echo it anyway
        }
        let channel = proto::channel_for(SUBJECT_PREFIX, subject)?;
        let id = proto::header(headers, "Msgbus-Id")?.parse().ok()?;
        let content_type = proto::header(headers, "Msgbus-Type")
            .unwrap_or("application/octet-stream")
            .to_string();
        Some(Remote {
            channel,
            id,
            content_type,
            sender: proto::header(headers, "Msgbus-From").map(Into::into),
            event: proto::header(headers, "Msgbus-Event").map(Into::into),
            body,
        })
    }

    /// Sends a message published here to the other nodes. False when it could not be (NATS is
    /// away): it reached local subscribers only.
    pub fn forward(&mut self, msg: &Message, registry: &Registry, now: Instant) -> bool {
        if !self.is_connected() {
            self.not_forwarded += 1;
            return false;
        }
        let id = msg.id.to_string();
        let mut headers = vec![
            ("Msgbus-Node", self.node_name.as_str()),
            ("Msgbus-Id", id.as_str()),
            ("Msgbus-Type", &*msg.content_type),
        ];
        if let Some(sender) = &msg.sender {
            headers.push(("Msgbus-From", sender));
        }
        if let Some(event) = &msg.event {
            headers.push(("Msgbus-Event", event));
        }
        let subject = proto::subject_for(SUBJECT_PREFIX, &msg.channel);
        let hpub = proto::encode_hpub(&subject, &headers, &msg.body);
        if self.output.len() + hpub.len() > MAX_OUTPUT {
            self.not_forwarded += 1;
            self.cut("NATS is not taking messages fast enough", registry, now);
            return false;
        }
        self.output.extend_from_slice(&hpub);
        self.forwarded += 1;
        if let Err(e) = self.flush() {
            self.cut(&e.to_string(), registry, now);
        }
        true
    }

    fn flush(&mut self) -> io::Result<()> {
        let sock = match &mut self.state {
            State::Connecting { sock, .. } | State::Ready { sock } => sock,
            State::Down { .. } | State::Resolving { .. } => return Ok(()),
        };
        while !self.output.is_empty() {
            match sock.write(&self.output) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A seed for the reconnect jitter that differs between processes and runs.
fn jitter_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let cases = [
            ("nats://127.0.0.1:4222", "127.0.0.1:4222", None, None, None),
            ("127.0.0.1", "127.0.0.1:4222", None, None, None),
            ("nats://u:p@h:5000", "h:5000", Some("u"), Some("p"), None),
            ("nats://s3cret@h", "h:4222", None, None, Some("s3cret")),
        ];
        for (text, host_port, user, pass, token) in cases {
            let url = NatsUrl::parse(text).unwrap();
            assert_eq!(url.host_port, host_port, "{text}");
            assert_eq!(url.user.as_deref(), user, "{text}");
            assert_eq!(url.pass.as_deref(), pass, "{text}");
            assert_eq!(url.token.as_deref(), token, "{text}");
        }
        assert_eq!(NatsUrl::parse("nats://"), None);
        assert_eq!(NatsUrl::parse("nats://h/x"), None);
    }
}
