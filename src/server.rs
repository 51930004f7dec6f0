//! The reactor: one thread, one `mio::Poll`, a slab of connections. Each turn polls (timeout =
//! next deadline), dispatches events, expires timers, flushes the connections that gained
//! output, and only then closes connections, so a slab key is never reused while an event for
//! it may still be pending.

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::net::IpAddr;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{debug, info, trace, warn};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::amqp::Amqp;
use crate::auth::JwtKey;
use crate::bus::{Bus, BusError, BusLimits, Message};
use crate::cluster::Cluster;
use crate::config::{Changes, Config, RESERVED_FDS};
use crate::conn::{AfterDrain, Conn, Ctx, Doors, Next, Published};
use crate::conn::{PublishRequest, Publisher, Refused};
use crate::gate::Gate;
use crate::io::{Socket, Stream};
use crate::listener::{Listener, Peer};
use crate::logfile::LogFile;
use crate::notify::Notifier;
use crate::signals::{Signal, Signals};
use crate::stats::{ClusterGauges, Gauges, Limit, ProcessGauges, Reason, Stats, Transport};
use crate::timer::Timers;
use crate::transport::Wires;
use crate::upstream::Upstream;
use crate::{activation, privileges, tls};

mod h2;

/// Tokens above every slab key: the signal fd, then the listeners.
const SIGNAL_TOKEN: Token = Token(usize::MAX);
/// The NATS connection, below the listeners' tokens.
const CLUSTER_TOKEN: Token = Token(usize::MAX - 1 - MAX_LISTENERS);
/// The reactor's one waker (mio allows one per poll): a helper thread has something for it,
/// a name lookup's answer (NATS, AMQP) or the log writer's results (`--data-dir`).
const WAKE_TOKEN: Token = Token(usize::MAX - 2 - MAX_LISTENERS - MAX_UPSTREAM_TOKENS);
/// The AMQP connection (`--amqp`), below the waker's token.
const AMQP_TOKEN: Token = Token(WAKE_TOKEN.0 - 1);
const LISTENER_TOKEN_BASE: usize = usize::MAX - 1;
/// Outbound HTTP calls a door makes: `UPSTREAM_TOKEN_TOP - slot`, below the cluster's token.
const UPSTREAM_TOKEN_TOP: usize = CLUSTER_TOKEN.0 - 1;
const MAX_UPSTREAM_TOKENS: usize = 1 << 20;
const MAX_LISTENERS: usize = 64;
/// Bytes read from one connection per turn before others get their go.
const READ_BYTES_PER_TURN: usize = 256 * 1024;
/// Bytes written to one connection per turn, so one fat subscriber cannot starve the rest.
const FLUSH_BYTES_PER_TURN: usize = 1024 * 1024;
/// One read buffer for every connection: data is parsed where it lands or copied into the
/// connection only when a request is incomplete.
const SCRATCH_BYTES: usize = 64 * 1024;
/// After running out of file descriptors, accepting waits this long before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Connections answered 503 at the connection limit in one turn; past that a flood waits in
/// the listen backlog for `REFUSAL_PAUSE`, so refusing cannot take the whole loop.
const REFUSALS_PER_TURN: usize = 64;
const REFUSAL_PAUSE: Duration = Duration::from_millis(10);
/// What a connection over `--max-connections` is told, written straight to the new socket.
const CONNECTION_LIMIT_REFUSAL: &str = "server busy: too many connections";
const PER_ADDRESS_REFUSAL: &str = "too many connections from your address";
/// Closes at the end of a turn stop after this long; the rest wait for the next turn. A close
/// frees the connection's queue and its socket, and hundreds at once (a mass slow-subscriber
/// close) would otherwise hold up every other connection for that whole time.
/// (Measured: closing a subscriber with 4 MB unsent in an autotuned send buffer took ~1.5 ms.)
const CLOSE_BUDGET: Duration = Duration::from_millis(2);
/// How often expired messages and idle channels are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Channel slots one sweep visits: a million channels are swept in about a minute, and no
/// sweep holds the loop for more than a fraction of a millisecond.
const SWEEP_BUDGET: usize = 16 * 1024;

pub struct Server {
    poll: Poll,
    events: Option<Events>,
    listeners: Vec<Listener>,
    /// The TLS configuration new connections on TLS listeners start with.
    tls: Option<Arc<rustls::ServerConfig>>,
    signals: Signals,
    conns: Slab<Conn>,
    bus: Bus,
    timers: Timers,
    stats: Stats,
    cfg: Config,
    max_connections: usize,
    /// False once shutting down.
    accepting: bool,
    /// Accepting waits until then: out of descriptors, or a flood being refused.
    accept_retry_at: Option<Instant>,
    /// Connections answered 503 at the limit this turn.
    refused_this_turn: usize,
    /// NATS input stopped at the per-turn cap: read on next turn.
    cluster_again: bool,
    /// The same for AMQP input.
    amqp_again: bool,
    /// What the gauges need of each connection, by slab key, kept as it changes so that
    /// rendering them is O(1), and when its output stopped moving.
    tracked: Vec<Tracked>,
    /// Each connection's socket and file, by slab key (the sessions in `conns` do no I/O).
    io: Vec<Option<ConnIo>>,
    /// Connections by transport, and bytes queued on all of them: the sums of `tracked`.
    by_transport: [usize; Transport::COUNT],
    queued_bytes: usize,
    flush_list: Vec<usize>,
    flush_next: Vec<usize>,
    read_again: Vec<usize>,
    close_list: Vec<(usize, Reason)>,
    /// Connections whose long-poll was answered during a publish.
    polls_done: Vec<usize>,
    /// When idle channels and expired messages are next swept away.
    next_sweep: Instant,
    scratch: Vec<u8>,
    started: Instant,
    now: Instant,
    /// Set on SIGTERM/SIGINT: exit when every connection is done or at this instant.
    shutdown_deadline: Option<Instant>,
    log_file: Option<LogFile>,
    /// The key tokens are checked with, when channels need tokens.
    /// Every operation on a channel passes it; it holds the secrets and limits it checks.
    gate: Gate,
    /// Connections held per client address, when `--max-per-address` is set.
    per_address: AddressCounts,
    /// The NATS connection joining this node to others, with `--nats`.
    cluster: Option<Cluster>,
    /// The eventsource-broker door's AMQP connection, with `--amqp`.
    amqp: Option<Amqp>,
    /// Publishes waiting for the cluster to store them, by ticket.
    stream_waits: HashMap<u64, StreamWait>,
    /// Each connection's publishes waiting for the stream, oldest first: answered in that order.
    stream_order: HashMap<usize, VecDeque<u64>>,
    next_stream_ticket: u64,
    /// Subscriptions waiting for older messages from the stream, by tag: the connection and
    /// what it asked.
    fetch_waits: HashMap<u64, (usize, Box<crate::conn::FetchAsk>)>,
    /// Why the cluster cannot start: `run` ends with it.
    fatal: Option<String>,
    /// The doors the configuration opened (`crate::doors`), each behind the `Door` trait.
    doors: Doors,
    /// The wire formats: the transports' and those the doors registered.
    wires: Wires,
    /// Outbound HTTP calls a door makes (lhttp's `upstream:`), when configured.
    upstream: Option<Upstream>,
    /// The service manager's notification socket, when there is one.
    notify: Option<Notifier>,
    /// HTTP/2 connections and their streams' sessions, by slab key (`server/h2.rs`).
    h2: h2::Links,
    /// When the manager's watchdog is next told that the loop turns.
    next_watchdog: Option<Instant>,
    /// Publishes waiting for the history store to commit them, in ticket order.
    held: VecDeque<Held>,
    /// Messages of the publish being carried out that the store holds, and their ticket.
    holding: Vec<Rc<Message>>,
    /// Deliveries from the AMQP exchange the log failed to keep, to give back to the broker.
    exchange_requeue: Vec<crate::amqp::Taken>,
    holding_ticket: crate::bus::Ticket,
}

/// A publish held until the store commits `ticket`: its messages are delivered, and its
/// answer given, only then (`bus::history`).
struct Held {
    ticket: crate::bus::Ticket,
    msgs: Vec<Rc<Message>>,
    /// The connection that asked (slab key), the publish and how it went so far; None once
    /// the connection is gone.
    answer: Option<(usize, Box<crate::conn::Publish>, Result<Published, Refused>)>,
    /// A message from the AMQP exchange, acknowledged to the broker once safe.
    from_exchange: Option<crate::amqp::Taken>,
}

/// A publish held until the cluster has stored it in every channel it names.
struct StreamWait {
    key: usize,
    publish: Box<crate::conn::Publish>,
    /// Channels not yet confirmed.
    left: usize,
    /// The last id the stream gave.
    id: u64,
    /// Why not all of it was stored, if so.
    refused: Option<Refused>,
    /// One stand-in per channel, to count this node's subscribers when it is answered.
    probes: Vec<Message>,
    /// Settled, waiting for the connection's earlier publishes to be answered first.
    done: Option<Result<Published, Refused>>,
}

/// What the reactor owns of a connection besides its session: the socket, and the file being
/// sent, if any. Kept beside the slab entry under the same key.
struct ConnIo {
    sock: Socket,
    file: Option<std::fs::File>,
}

/// The reactor's record of one connection, kept beside the slab entry.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    transport: Transport,
    queued: usize,
    /// Output has been waiting since then with none of it taken by the peer.
    stalled_since: Option<Instant>,
    /// Its socket's send buffer was capped, once it first became a subscriber.
    send_buffer_capped: bool,
    /// An event said the peer hung up or the socket failed: read until the end, not only
    /// until a short read.
    hangup_seen: bool,
}

impl Tracked {
    const NEW: Tracked = Tracked {
        transport: Transport::Http,
        queued: 0,
        stalled_since: None,
        send_buffer_capped: false,
        hangup_seen: false,
    };
}

impl Server {
    pub fn new(cfg: Config) -> io::Result<Server> {
        let open_files = raise_open_files_limit();
        // Outbound calls a door makes need sockets of their own.
        let outbound = crate::doors::makes_outbound_calls(&cfg);
        let upstream_fds = if outbound {
            cfg.upstream.connections
        } else {
            0
        };
        let capacity = open_files
            .saturating_sub(RESERVED_FDS.saturating_add(upstream_fds))
            .max(1);
        let max_connections = match cfg.max_connections {
            Some(n) if n > capacity => {
                warn!("--max-connections {n} is over what {open_files} open files allow; using {capacity}");
                capacity
            }
            Some(n) => n,
            None => capacity,
        };
        let notify = Notifier::from_env();
        let inherited = activation::take_inherited();
        let poll = Poll::new()?;
        let mut signals = Signals::new()?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(cert), Some(key)) => Some(
                tls::load(cert, key, cfg.http2)
                    .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e.to_string()))?,
            ),
            _ => None,
        };
        let jwt = load_jwt_key(&cfg)?;
        let gate = Gate::new(
            cfg.secret.clone(),
            jwt,
            cfg.max_subscriptions,
            cfg.max_publish_channels,
        );
        let upstream = if outbound {
            let upstream = Upstream::new(cfg.upstream.clone())
                .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
            Some(upstream)
        } else {
            None
        };
        let mut wires = Wires::default();
        let mut doors = crate::doors::open(&cfg, &mut wires)?;
        let stats = Stats {
            wire_names: wires.names(),
            ..Stats::default()
        };
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKE_TOKEN)?);
        let cluster = if cfg.nats.is_empty() {
            None
        } else {
            let name = cfg.node_name.clone().unwrap_or_else(default_node_name);
            let waker = Arc::clone(&waker);
            let spec = crate::cluster::StreamSpec {
                name: cfg.nats_stream.clone(),
                prefix: crate::cluster::SUBJECT_PREFIX.to_string(),
                per_subject: cfg.history.max(1) as u64,
                max_age: cfg.message_lifetime.max(Duration::from_secs(1)),
                replicas: cfg.nats_replicas,
            };
            Some(Cluster::new(
                cfg.nats.clone(),
                name,
                spec,
                Instant::now(),
                waker,
            ))
        };
        // In a cluster ids are the stream's sequences; alone, they start from the clock.
        let first_id = if cluster.is_some() {
            1
        } else {
            first_message_id()
        };
        let amqp = match crate::amqp::Settings::from_config(&cfg) {
            None => None,
            Some(settings) => {
                let waker = Arc::clone(&waker);
                let amqp = Amqp::new(settings, cfg.max_body, Instant::now(), waker)
                    .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
                Some(amqp)
            }
        };
        let listeners = bind_all(&cfg, &poll, inherited)?;
        if let Some(path) = &cfg.pid_file {
            std::fs::write(path, format!("{}\n", std::process::id())).map_err(|e| {
                io::Error::new(e.kind(), format!("pid file {}: {e}", path.display()))
            })?;
        }
        match &cfg.user {
            Some(user) => {
                privileges::switch_to(user)
                    .map_err(|e| io::Error::new(e.kind(), format!("-u {user}: {e}")))?;
                info!("running as {user}");
            }
            None if privileges::is_root() => warn!("running as root; -u USER drops privileges"),
            None => {}
        }
        if let Some(root) = &cfg.docroot {
            info!("document root {}", root.display());
        }
        let mut bus = Bus::new(first_id, cfg.retention(), cfg.channel_timeout);
        bus.set_limits(BusLimits {
            max_channels: cfg.max_channels,
            max_retained_bytes: cfg.max_retained_bytes,
        });
        if let Some(dir) = &cfg.data_dir {
            let kept = open_log(&mut bus, dir, &cfg, Arc::clone(&waker))?;
            restore_doors(&mut doors, kept, Instant::now());
        }
        announce(&listeners, &cfg);
        info!("up to {max_connections} connections (open-files limit {open_files})");
        let now = Instant::now();
        Ok(Server {
            poll,
            events: Some(Events::with_capacity(1024)),
            listeners,
            tls,
            signals,
            conns: Slab::with_capacity(1024),
            bus,
            timers: Timers::new(),
            stats,
            cfg,
            max_connections,
            accepting: true,
            accept_retry_at: None,
            refused_this_turn: 0,
            cluster_again: false,
            amqp_again: false,
            tracked: Vec::with_capacity(1024),
            io: Vec::with_capacity(1024),
            by_transport: [0; Transport::COUNT],
            queued_bytes: 0,
            flush_list: Vec::new(),
            flush_next: Vec::new(),
            read_again: Vec::new(),
            close_list: Vec::new(),
            polls_done: Vec::new(),
            next_sweep: now + SWEEP_INTERVAL,
            scratch: vec![0; SCRATCH_BYTES],
            started: now,
            now,
            shutdown_deadline: None,
            log_file: None,
            gate,
            per_address: AddressCounts::default(),
            cluster,
            amqp,
            stream_waits: HashMap::new(),
            stream_order: HashMap::new(),
            next_stream_ticket: 1,
            fetch_waits: HashMap::new(),
            fatal: None,
            doors,
            wires,
            upstream,
            next_watchdog: notify
                .as_ref()
                .and_then(Notifier::watchdog_interval)
                .map(|every| now + every),
            notify,
            held: VecDeque::new(),
            holding: Vec::new(),
            exchange_requeue: Vec::new(),
            holding_ticket: 0,
            h2: h2::Links::default(),
        })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(Listener::local_addr)
            .collect()
    }

    /// Runs until SIGINT or SIGTERM.
    pub fn run(&mut self) -> io::Result<()> {
        self.stats.fds_at_start = crate::stats::count_open_fds();
        if let Some(notify) = &self.notify {
            notify.ready();
        }
        loop {
            self.poll_events()?;
            self.expire_timers();
            if let Some(why) = self.fatal.take() {
                return Err(io::Error::other(why));
            }
            self.tell_watchdog();
            if let Some(upstream) = self.upstream.as_mut() {
                upstream.start(self.poll.registry(), |slot| {
                    Token(UPSTREAM_TOKEN_TOP - slot)
                });
            }
            self.deliver_upstream_answers();
            self.flush_pending();
            self.submit_to_store();
            if let Some(deadline) = self.shutdown_deadline {
                self.reap_finished();
                if self.conns.is_empty() || self.now >= deadline {
                    self.close_deferred();
                    break;
                }
            }
            self.close_deferred();
        }
        info!(
            "stopped: {} published, {} delivered, {} dropped, {} connections cut at exit",
            self.stats.published,
            self.stats.delivered,
            self.stats.dropped,
            self.conns.len()
        );
        self.remove_pid_file();
        Ok(())
    }

    /// After `-u`, removing the pid file needs its directory to be writable by the user: when
    /// it is not, the log says so rather than leaving a stale file unmentioned.
    fn remove_pid_file(&self) {
        let Some(path) = &self.cfg.pid_file else {
            return;
        };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => warn!(
                "pid file {} not removed: {e}{}",
                path.display(),
                match &self.cfg.user {
                    Some(user) => format!(" (its directory is not writable by {user}; use one that is, such as /run/msgbus)"),
                    None => String::new(),
                }
            ),
        }
    }

    /// Tells the service manager's watchdog that the loop still turns, at half its timeout.
    fn tell_watchdog(&mut self) {
        let (Some(notify), Some(at)) = (&self.notify, self.next_watchdog) else {
            return;
        };
        if self.now >= at {
            notify.watchdog();
            let every = notify.watchdog_interval().unwrap_or(Duration::from_secs(1));
            self.next_watchdog = Some(self.now + every);
        }
    }

    /// Uses a log file handle, so SIGUSR1 can reopen it.
    pub fn set_log_file(&mut self, log: LogFile) {
        self.log_file = Some(log);
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.flush_next.is_empty()
            || !self.read_again.is_empty()
            || !self.close_list.is_empty()
            || self.cluster_again
            || self.amqp_again
        {
            return Some(Duration::ZERO);
        }
        let sweep = self.next_sweep.saturating_duration_since(self.now);
        let mut timer = self
            .timers
            .next_timeout(self.now)
            .map_or(sweep, |t| t.min(sweep));
        let links = [
            self.cluster.as_ref().and_then(Cluster::deadline),
            self.amqp.as_ref().and_then(Amqp::deadline),
            self.upstream.as_ref().and_then(Upstream::next_deadline),
        ];
        for deadline in links.into_iter().flatten() {
            timer = timer.min(deadline.saturating_duration_since(self.now));
        }
        if let Some(at) = self.next_watchdog {
            timer = timer.min(at.saturating_duration_since(self.now));
        }
        if let Some(at) = self.bus.store().deadline() {
            timer = timer.min(at.saturating_duration_since(self.now));
        }
        if let Some(deadline) = self.shutdown_deadline {
            // While draining, look at the connections often: each turn may finish some.
            let drain_tick = Duration::from_millis(50);
            timer = timer
                .min(deadline.saturating_duration_since(self.now))
                .min(drain_tick);
        }
        let timer = Some(timer);
        let accept = self
            .accept_retry_at
            .map(|at| at.saturating_duration_since(self.now));
        match (timer, accept) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_events(&mut self) -> io::Result<()> {
        let mut events = self.events.take().expect("events are put back every turn");
        let timeout = self.poll_timeout();
        let polled = self.poll.poll(&mut events, timeout);
        self.now = Instant::now();
        self.refused_this_turn = 0;
        crate::http::response::set_clock(SystemTime::now());
        if let Err(e) = polled {
            self.events = Some(events);
            return if e.kind() == ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        std::mem::swap(&mut self.flush_list, &mut self.flush_next);
        if std::mem::take(&mut self.cluster_again) {
            self.on_cluster(false);
        }
        if std::mem::take(&mut self.amqp_again) {
            self.on_amqp(false);
        }
        for key in std::mem::take(&mut self.read_again) {
            // Input may already be buffered (a request pipelined behind a long-poll).
            self.drive(key);
            self.on_readable(key);
        }
        for event in events.iter() {
            match event.token() {
                SIGNAL_TOKEN => self.on_signal(),
                CLUSTER_TOKEN => self.on_cluster(false),
                AMQP_TOKEN => self.on_amqp(false),
                WAKE_TOKEN => self.on_wake(),
                Token(t) if t > LISTENER_TOKEN_BASE - MAX_LISTENERS => {
                    self.accept_all();
                }
                Token(t)
                    if t <= UPSTREAM_TOKEN_TOP && t > UPSTREAM_TOKEN_TOP - MAX_UPSTREAM_TOKENS =>
                {
                    if let Some(upstream) = self.upstream.as_mut() {
                        upstream.on_event(UPSTREAM_TOKEN_TOP - t, self.poll.registry(), self.now);
                    }
                }
                Token(key) => {
                    let Some(conn) = self.conns.get_mut(key) else {
                        continue;
                    };
                    if event.is_writable() {
                        conn.writable = true;
                        let unsent = self.io[key]
                            .as_ref()
                            .is_some_and(|io| io.sock.has_pending_output());
                        if !conn.outq.is_empty() || unsent {
                            schedule_flush(&mut self.flush_list, conn, key);
                        }
                    }
                    if event.is_read_closed() || event.is_error() {
                        self.tracked[key].hangup_seen = true;
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        conn.readable = true;
                        self.on_readable(key);
                    }
                }
            }
        }
        self.events = Some(events);
        Ok(())
    }

    /// Accepts until the listeners are drained. At the connection limit, new connections are
    /// still accepted but only to be told 503 and closed, so a client learns at once to come
    /// back later instead of waiting in the backlog; only running out of descriptors pauses
    /// accepting.
    fn accept_all(&mut self) {
        // In a cluster, clients wait until the node has read what the stream held when it
        // joined: its window is then whole, and a resume finds what it should.
        if self.cluster.as_ref().is_some_and(|c| !c.has_caught_up()) {
            return;
        }
        if let Some(at) = self.accept_retry_at {
            if self.now < at {
                return;
            }
            self.accept_retry_at = None;
        }
        for i in 0..self.listeners.len() {
            while self.accepting {
                match self.listeners[i].accept() {
                    Ok((stream, peer)) => {
                        let tls = self.listeners[i].is_tls();
                        if self.conns.len() - self.h2.streams() < self.max_connections {
                            let proxied = self.cfg.proxy_protocol && !tls;
                            self.on_accept(stream, peer, tls, proxied);
                            continue;
                        }
                        self.refuse_over_limit(stream, peer, tls);
                        if self.refused_this_turn >= REFUSALS_PER_TURN {
                            self.stats.accept_paused += 1;
                            self.accept_retry_at = Some(self.now + REFUSAL_PAUSE);
                            return;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if is_out_of_descriptors(&e) => {
                        warn!("accept: {e}: pausing accepts");
                        self.stats.accept_paused += 1;
                        self.accept_retry_at = Some(self.now + ACCEPT_BACKOFF);
                        return;
                    }
                    Err(e) => debug!("accept: {e}"),
                }
            }
        }
    }

    /// A connection over `--max-connections`: answered 503 and closed without a slab entry or
    /// a buffer. A TLS client cannot read a plain answer, so it is only closed.
    fn refuse_over_limit(&mut self, stream: Stream, peer: Peer, tls: bool) {
        if self.refused_this_turn == 0 {
            debug!(
                "connection limit {} reached: refusing {peer}",
                self.max_connections
            );
        }
        self.refused_this_turn += 1;
        self.stats.count_limit(Limit::Connections);
        self.stats.count_refusal(503);
        if tls {
            drop(stream);
        } else {
            stream.answer_and_close(&refusal(CONNECTION_LIMIT_REFUSAL, &[("Retry-After", "5")]));
        }
    }

    /// Takes a new connection into the slab. Its address is counted against
    /// `--max-per-address` only once nothing can fail any more, so every failure path leaves
    /// the count as it was. A connection that is to open with a PROXY header (`proxied`) is
    /// counted under the address the header names, once it has come; from a peer that
    /// `--trusted-proxy` does not name, it is closed at once.
    fn on_accept(&mut self, mut stream: Stream, peer: Peer, tls: bool, proxied: bool) {
        if proxied {
            if let Some(trusted) = &self.cfg.trusted_proxy {
                if !peer.is_trusted_proxy(trusted) {
                    debug!("{peer}: not a trusted proxy: closed");
                    stream.answer_and_close(b"");
                    return;
                }
            }
        }
        let over_limit = match (self.cfg.max_per_address, peer) {
            (Some(max), Peer::Tcp(addr)) if !proxied => self.per_address.is_full(addr.ip(), max),
            _ => false,
        };
        if over_limit {
            self.stats.count_limit(Limit::PerAddress);
            self.stats.count_refusal(503);
            debug!("{peer}: over --max-per-address");
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), interest)
        {
            warn!("register {peer}: {e}");
            return;
        }
        trace!("accepted {peer} as {key}");
        let sock = match (&self.tls, tls) {
            (Some(config), true) => match Socket::with_tls(stream, config.clone()) {
                Ok(sock) => sock,
                Err(e) => {
                    // The stream was dropped (and so closed and deregistered) on the way.
                    warn!("TLS for {peer}: {e}");
                    return;
                }
            },
            _ => Socket::new(stream),
        };
        let mut conn = Conn::new(peer, self.now, &self.cfg);
        conn.awaiting_proxy = proxied;
        if over_limit {
            // Answered and half-closed like any refusal, so the client reads why rather than
            // a reset; it is not counted against its address.
            conn.refuse_at_once(refusal(PER_ADDRESS_REFUSAL, &[]));
        } else if let (Some(_), Peer::Tcp(addr), false) = (self.cfg.max_per_address, peer, proxied)
        {
            self.per_address.take(addr.ip());
            conn.counted_as = Some(addr.ip());
        }
        let conn = entry.insert(conn);
        schedule_flush(&mut self.flush_list, conn, key);
        self.stats.accepted += 1;
        if self.tracked.len() <= key {
            self.tracked.resize(key + 1, Tracked::NEW);
            self.io.resize_with(key + 1, || None);
        }
        self.tracked[key] = Tracked::NEW;
        self.io[key] = Some(ConnIo { sock, file: None });
        self.by_transport[Transport::Http as usize] += 1;
        self.rearm(key);
    }

    /// Reads what the socket has (up to the per-turn cap) and handles it.
    fn on_readable(&mut self, key: usize) {
        let mut taken = 0;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.closing || !conn.readable || !conn.wants_input(&self.cfg) {
                break;
            }
            if taken >= READ_BYTES_PER_TURN {
                self.read_again.push(key);
                break;
            }
            let Some(io) = self.io[key].as_mut() else {
                break;
            };
            match io.sock.read(&mut self.scratch) {
                Ok(0) => {
                    conn.readable = false;
                    match conn.on_peer_closed() {
                        Some(reason) => self.close_later(key, reason),
                        None => schedule_flush(&mut self.flush_list, conn, key),
                    }
                    break;
                }
                Ok(n) => {
                    taken += n;
                    self.stats.bytes_in += n as u64;
                    // A short read from a plain socket took all there was, and edge-triggered
                    // readiness comes back with the next bytes or the peer's FIN: the read that
                    // would only say EAGAIN is saved (one of a long-poll's three system calls
                    // per message). TLS may hold decrypted bytes back, so it reads to the end.
                    if n < self.scratch.len() && !io.sock.is_tls() && !self.tracked[key].hangup_seen
                    {
                        conn.readable = false;
                    }
                    if !self.h2_on_input(key, n) {
                        self.conns[key].on_input(&self.scratch[..n]);
                        self.drive(key);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    conn.readable = false;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("read {}: {e}", conn.peer);
                    self.close_later(key, Reason::IoError);
                    break;
                }
            }
        }
        let unsent = self.io[key]
            .as_ref()
            .is_some_and(|io| io.sock.has_pending_output());
        if let Some(conn) = self.conns.get_mut(key) {
            if unsent {
                schedule_flush(&mut self.flush_list, conn, key);
            }
        }
        self.rearm(key);
    }

    /// Lets a connection handle its buffered input, carrying out what it hands back.
    fn drive(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(|c| c.awaiting_proxy) && !self.on_proxy_header(key) {
            return;
        }
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.closing {
                return;
            }
            let was_websocket = conn.transport() == Transport::WebSocket;
            let mut ctx = Ctx {
                key,
                now: self.now,
                cfg: &self.cfg,
                bus: &mut self.bus,
                stats: &mut self.stats,
                gate: &self.gate,
                wires: &self.wires,
                doors: &mut self.doors,
                door_id: 0,
                upstream: self.upstream.as_mut(),
            };
            let next = conn.advance(&mut ctx);
            for event in conn.stat_events.drain(..) {
                self.stats.count(event);
            }
            match next {
                // Frames the client sent in the same segment as its upgrade request are
                // already here: no more bytes may come to wake the connection for them.
                Next::Wait if !was_websocket && conn.websocket_input_waiting() => continue,
                Next::Wait => break,
                Next::Publish(publish) if self.cluster.is_some() => {
                    self.hold_for_stream(key, publish)
                }
                Next::Publish(mut publish) => {
                    let req = std::mem::take(&mut publish.req);
                    let outcome = self.publish(req, &publish.who);
                    let msgs = std::mem::take(&mut self.holding);
                    if msgs.is_empty() {
                        self.conns[key].answer_publish(&mut publish, outcome, &mut self.doors);
                    } else {
                        self.conns[key].hold_for_commit(publish.reply.keep_alive);
                        self.held.push_back(Held {
                            ticket: self.holding_ticket,
                            msgs,
                            answer: Some((key, publish, outcome)),
                            from_exchange: None,
                        });
                    }
                }
                Next::Delete(delete) => {
                    let outcome = self.delete_channel(&delete.admitted);
                    self.conns[key].answer_delete(delete.reply, outcome);
                }
                Next::Status(reply, prometheus) => {
                    if prometheus {
                        let process = ProcessGauges::read(
                            self.now.duration_since(self.started),
                            self.stats.fds_at_start + self.conns.len() - self.h2.streams(),
                        );
                        let mut text = self.stats.render_prometheus(&self.gauges(), &process);
                        if let Some(amqp) = &self.amqp {
                            text += &amqp.render_prometheus();
                        }
                        let content_type = "text/plain; version=0.0.4; charset=utf-8";
                        self.conns[key].answer_status(reply, content_type, &text);
                    } else {
                        let json = self.stats.render_json(&self.gauges());
                        self.conns[key].answer_status(reply, "application/json", &json);
                    }
                }
                Next::OpenFile(ask) => self.open_file(key, &ask),
                Next::Fetch(ask) => {
                    self.fetch_from_stream(key, ask);
                    break;
                }
                Next::Close(reason) => {
                    self.close_later(key, reason);
                    return;
                }
            }
        }
        let conn = &mut self.conns[key];
        if !conn.outq.is_empty() {
            schedule_flush(&mut self.flush_list, conn, key);
        }
    }

    /// Reads the PROXY header a connection opens with: whether its requests may be handled
    /// now. A bad header closes the connection unanswered (the peer is a proxy, not an HTTP
    /// client); a good one gives the client's address, which is then counted against
    /// `--max-per-address`.
    fn on_proxy_header(&mut self, key: usize) -> bool {
        let conn = &mut self.conns[key];
        match conn.take_proxy_header() {
            Ok(None) => false,
            Err(e) => {
                debug!("{}: {e}", conn.peer);
                self.close_later(key, Reason::BadRequest);
                false
            }
            Ok(Some(_)) => {
                trace!("{key} is a proxied connection from {}", conn.peer);
                if let (Some(max), Some(ip)) = (self.cfg.max_per_address, conn.peer.ip()) {
                    if self.per_address.is_full(ip, max) {
                        self.stats.count_limit(Limit::PerAddress);
                        self.stats.count_refusal(503);
                        debug!("{}: over --max-per-address", conn.peer);
                        conn.refuse_at_once(refusal(PER_ADDRESS_REFUSAL, &[]));
                        schedule_flush(&mut self.flush_list, conn, key);
                        return false;
                    }
                    self.per_address.take(ip);
                    conn.counted_as = Some(ip);
                }
                true
            }
        }
    }

    /// Hands a message to every subscriber it matches: one shared frame per wire format,
    /// queued by reference. Nothing is written here; the flush comes at the end of the turn.
    /// A publish passes the gate here (one admitted publish per channel it names, sharing one
    /// body), then reaches the bus. The answer is the last channel's.
    fn publish(&mut self, req: PublishRequest, who: &Publisher) -> Result<Published, Refused> {
        let admitted = req.admit(who, &self.gate).map_err(Refused::Gate)?;
        let mut outcome = Err(Refused::Bus(BusError::NoSuchChannel));
        for publish in admitted {
            outcome = self.publish_admitted(publish);
        }
        outcome
    }

    fn publish_admitted(&mut self, publish: crate::gate::Publish) -> Result<Published, Refused> {
        if let Some(why) = self.bus.store().refusal() {
            return Err(Refused::Store(why.to_string()));
        }
        let msg = self.bus.publish(publish, self.now).map_err(Refused::Bus)?;
        self.stats.published += 1;
        if let Some(ticket) = self.bus.take_ticket() {
            // Delivered, sent on and answered once the store has it (`on_commits`).
            self.holding.push(msg.clone());
            self.holding_ticket = ticket;
            return Ok(Published {
                id: msg.id,
                recipients: 0,
            });
        }
        self.send_onward(&msg);
        let recipients = self.deliver(&msg);
        Ok(Published {
            id: msg.id,
            recipients,
        })
    }

    /// The end of a turn: what the turn's publishes gave the store goes to be made safe,
    /// together (group commit).
    fn submit_to_store(&mut self) {
        let mut records = Vec::new();
        for door in self.doors.each() {
            door.poll_records(&mut records);
        }
        for record in &records {
            self.bus.store_mut().door(record);
        }
        let next_id = self.bus.next_id();
        self.bus.store_mut().submit(next_id);
    }

    /// A helper thread woke the loop: each source takes what it has, if anything.
    fn on_wake(&mut self) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.on_resolved(self.poll.registry(), CLUSTER_TOKEN, self.now);
        }
        if let Some(amqp) = self.amqp.as_mut() {
            amqp.on_resolved(self.poll.registry(), AMQP_TOKEN, self.now);
        }
        self.on_commits();
    }

    /// The store has made publishes safe, or failed to: the held ones up to its ticket are
    /// delivered and answered (or refused), and their connections go on with what follows.
    fn on_commits(&mut self) {
        for commit in self.bus.store_mut().poll_commits() {
            let (upto, failure) = match commit {
                crate::bus::Commit::Done(ticket) => (ticket, None),
                crate::bus::Commit::Failed(ticket, why) => (ticket, Some(why)),
            };
            while self.held.front().is_some_and(|held| held.ticket <= upto) {
                let held = self.held.pop_front().expect("checked");
                self.release_held(held, failure.as_deref());
            }
        }
    }

    /// Sends a message published here to the eventsource-broker door's AMQP exchange, which
    /// reaches every broker attached to it, other msgbus nodes included; other messages, and
    /// every message while the broker is away, stay here (counted by the AMQP side). In a
    /// cluster publishes go to the stream instead (`hold_for_stream`).
    fn send_onward(&mut self, msg: &Rc<Message>) {
        if let Some(amqp) = self.amqp.as_mut() {
            if let Some(json) = amqp.encode(&msg.channel, msg.id, msg.event.as_deref(), &msg.body) {
                amqp.publish(&json, self.poll.registry(), self.now);
            }
        }
    }

    fn release_held(&mut self, held: Held, failure: Option<&str>) {
        let mut recipients = 0;
        for msg in &held.msgs {
            if failure.is_some() {
                self.bus.abandon(msg);
                continue;
            }
            self.bus.commit(msg, self.now);
            // What came from the exchange is already everywhere the exchange reaches.
            if held.from_exchange.is_none() {
                self.send_onward(msg);
            }
            recipients += self.deliver(msg);
        }
        if let Some(taken) = held.from_exchange {
            match failure {
                None => {
                    if let Some(amqp) = self.amqp.as_mut() {
                        amqp.ack_taken(taken, self.poll.registry(), self.now);
                    }
                }
                // Given back at the next housekeeping tick, not at once: while the disk is
                // failing, the broker would hand it straight back again and again.
                Some(_) => self.exchange_requeue.push(taken),
            }
        }
        let Some((key, mut publish, outcome)) = held.answer else {
            return;
        };
        let outcome = match (failure, outcome) {
            (Some(why), _) => Err(Refused::Store(why.to_string())),
            (None, Ok(done)) => Ok(Published { recipients, ..done }),
            (None, Err(e)) => Err(e),
        };
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.on_committed(&mut publish, outcome, &mut self.doors);
        self.drive(key);
        self.on_readable(key);
    }

    /// In a cluster a publish goes to the stream, one message per channel it names, and the
    /// connection waits (reading nothing more) until JetStream has confirmed each: only then
    /// is it answered, with the stream's sequence as the id. Delivery, here as on every node,
    /// comes from the consumer. What is refused before anything is sent is answered at once.
    fn hold_for_stream(&mut self, key: usize, mut publish: Box<crate::conn::Publish>) {
        let req = std::mem::take(&mut publish.req);
        let admitted = match req.admit(&publish.who, &self.gate) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let outcome = Err(Refused::Gate(refusal));
                self.conns[key].answer_publish(&mut publish, outcome, &mut self.doors);
                return;
            }
        };
        let ticket = self.next_stream_ticket;
        self.next_stream_ticket += 1;
        let mut probes = Vec::new();
        let mut refused = None;
        for admitted in admitted {
            let parts = match self.bus.prepare(admitted, self.now) {
                Ok(parts) => parts,
                Err(e) => {
                    refused = Some(Refused::Bus(e));
                    break;
                }
            };
            let cluster = self.cluster.as_mut().expect("held only in a cluster");
            let sent = cluster.publish(
                ticket,
                &parts.channel,
                &parts.content_type,
                parts.sender.as_deref(),
                parts.event.as_deref(),
                &parts.body,
                self.poll.registry(),
                self.now,
            );
            if let Err(e) = sent {
                refused = Some(Refused::Unavailable(e.to_string()));
                break;
            }
            let channel: Rc<str> = parts.channel.into();
            probes.push(Message::new(
                0,
                channel,
                parts.content_type,
                parts.sender,
                parts.body,
            ));
        }
        if probes.is_empty() {
            let outcome = Err(refused.unwrap_or(Refused::Bus(BusError::NoSuchChannel)));
            if let Some(Refused::Bus(BusError::ChannelLimit)) = outcome.as_ref().err() {
                self.stats.count_limit(Limit::Channels);
            }
            self.conns[key].answer_publish(&mut publish, outcome, &mut self.doors);
            return;
        }
        // Answered when stored, in order; meanwhile the connection's next native publishes go
        // on to the stream behind this one (a pipelining client is not held to one round trip
        // to JetStream per message).
        self.conns[key].hold_for_commit(publish.reply.keep_alive);
        self.stream_order.entry(key).or_default().push_back(ticket);
        let wait = StreamWait {
            key,
            publish,
            left: probes.len(),
            id: 0,
            refused,
            probes,
            done: None,
        };
        self.stream_waits.insert(ticket, wait);
    }

    /// The cluster stored one channel's message of a held publish (or gave up on it): once all
    /// are settled, the connection is answered and goes on with what it has buffered.
    fn on_stored(&mut self, ticket: u64, stored: Result<u64, crate::cluster::Unavailable>) {
        let Some(held) = self.stream_waits.get_mut(&ticket) else {
            return;
        };
        held.left -= 1;
        match stored {
            Ok(id) => held.id = held.id.max(id),
            Err(e) => held.refused = Some(Refused::Unavailable(e.to_string())),
        }
        if held.left > 0 {
            return;
        }
        let refused = held.refused.take();
        let outcome = match refused {
            Some(refused) => Err(refused),
            None => {
                let mut recipients = 0;
                for probe in &held.probes {
                    self.bus.for_each_recipient(probe, |_| recipients += 1);
                }
                Ok(Published {
                    id: held.id,
                    recipients,
                })
            }
        };
        if outcome.is_ok() {
            self.stats.published += held.probes.len() as u64;
        }
        held.done = Some(outcome);
        let key = held.key;
        self.answer_stored(key);
    }

    /// Answers the connection's settled publishes from the oldest, up to the first still
    /// waiting: JetStream may confirm a later one first, the client reads them in order.
    fn answer_stored(&mut self, key: usize) {
        let mut answered = false;
        while let Some(&ticket) = self.stream_order.get(&key).and_then(VecDeque::front) {
            if self
                .stream_waits
                .get(&ticket)
                .is_none_or(|w| w.done.is_none())
            {
                break;
            }
            self.stream_order.get_mut(&key).map(VecDeque::pop_front);
            let mut wait = self.stream_waits.remove(&ticket).expect("looked up above");
            let outcome = wait.done.take().expect("settled");
            let Some(conn) = self.conns.get_mut(key) else {
                break;
            };
            conn.on_committed(&mut wait.publish, outcome, &mut self.doors);
            answered = true;
        }
        if self.stream_order.get(&key).is_some_and(VecDeque::is_empty) {
            self.stream_order.remove(&key);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !answered {
            return;
        }
        for event in conn.stat_events.drain(..) {
            self.stats.count(event);
        }
        schedule_flush(&mut self.flush_list, conn, key);
        self.read_again.push(key);
        self.rearm(key);
    }

    /// A client resumes from before this node's window: the channel's older messages are
    /// read back from the stream (without blocking the loop) while the connection waits.
    fn fetch_from_stream(&mut self, key: usize, ask: Box<crate::conn::FetchAsk>) {
        let tag = self.next_stream_ticket;
        self.next_stream_ticket += 1;
        let cluster = self.cluster.as_mut().expect("asked only in a cluster");
        let started = cluster.fetch(
            tag,
            &ask.channel,
            ask.after,
            ask.upto,
            self.cfg.max_queue,
            self.poll.registry(),
            self.now,
        );
        self.conns[key].awaiting_fetch = Some(tag);
        self.fetch_waits.insert(tag, (key, ask));
        if let Err(fetched) = started {
            self.on_fetched(fetched);
        }
    }

    /// The stream's older messages for a waiting subscription (or none: the window's own
    /// replay and notice then hold): its request is handled again with them.
    fn on_fetched(&mut self, fetched: crate::cluster::Fetched) {
        let Some((key, ask)) = self.fetch_waits.remove(&fetched.tag) else {
            return;
        };
        let messages = (fetched.messages.into_iter())
            .filter_map(|remote| {
                let admitted = self.gate.admit_remote(
                    remote.id,
                    &remote.channel,
                    &remote.content_type,
                    remote.sender.as_deref(),
                    remote.event.as_deref(),
                    remote.body.into(),
                );
                let (id, parts) = admitted.ok()?.into_parts();
                let channel: Rc<str> = parts.channel.into();
                let mut msg =
                    Message::new(id, channel, parts.content_type, parts.sender, parts.body);
                msg.event = parts.event;
                Some(Rc::new(msg))
            })
            .collect();
        let prefetched = crate::conn::Prefetched {
            messages,
            upto: fetched.upto,
            missed: fetched.missed,
        };
        // The connection may have gone meanwhile, its slot taken by another.
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.awaiting_fetch != Some(fetched.tag) {
            return;
        }
        let mut ctx = Ctx {
            key,
            now: self.now,
            cfg: &self.cfg,
            bus: &mut self.bus,
            stats: &mut self.stats,
            gate: &self.gate,
            wires: &self.wires,
            doors: &mut self.doors,
            door_id: 0,
            upstream: self.upstream.as_mut(),
        };
        let next = conn.resume_after_fetch(ask.request, prefetched, &mut ctx);
        for event in conn.stat_events.drain(..) {
            self.stats.count(event);
        }
        if let Some(Next::Close(reason)) = next {
            self.close_later(key, reason);
            return;
        }
        schedule_flush(&mut self.flush_list, conn, key);
        self.read_again.push(key);
        self.rearm(key);
    }

    /// A message published on another node, to this node's subscribers.
    fn deliver_remote(&mut self, remote: crate::cluster::Remote) {
        let age = remote.age.min(self.cfg.message_lifetime);
        let admitted = self.gate.admit_remote(
            remote.id,
            &remote.channel,
            &remote.content_type,
            remote.sender.as_deref(),
            remote.event.as_deref(),
            remote.body.into(),
        );
        let remote = match admitted {
            Ok(remote) => remote,
            Err(refusal) => {
                warn!("message from the cluster refused: {refusal}");
                return;
            }
        };
        // Kept as from when the stream stored it, so it expires when the stream drops it.
        let stored = self.now.checked_sub(age).unwrap_or(self.now);
        match self.bus.publish_remote(remote, stored) {
            Ok(msg) => {
                self.deliver(&msg);
            }
            Err(e) => debug!("message from the cluster not taken: {e}"),
        }
    }

    /// Handles the AMQP connection's readiness or deadline.
    fn on_amqp(&mut self, timer: bool) {
        let Some(amqp) = &mut self.amqp else {
            return;
        };
        let registry = self.poll.registry();
        let outcome = if timer {
            amqp.on_timer(registry, AMQP_TOKEN, self.now);
            crate::amqp::Outcome::default()
        } else {
            amqp.on_ready(registry, self.now)
        };
        self.amqp_again |= outcome.more;
        for delivery in outcome.deliveries {
            self.deliver_from_exchange(delivery);
        }
    }

    /// A message from the AMQP exchange: through the gate to the bus as a door publish, then
    /// acknowledged. This node's own and bad messages are acknowledged without delivery (the
    /// bad ones counted and logged), so none comes back again and again.
    fn deliver_from_exchange(&mut self, delivery: crate::amqp::Delivery) {
        let Some(amqp) = self.amqp.as_mut() else {
            return;
        };
        let registry = self.poll.registry();
        if delivery.own {
            amqp.counters.own += 1;
            amqp.ack(delivery.tag, registry, self.now);
            return;
        }
        // A body over the limit was not kept, only counted.
        let decoded = amqp.decode(&delivery, self.cfg.max_body);
        let taken = decoded.map_err(|bad| bad.to_string()).and_then(|ev| {
            let draft = crate::gate::Draft {
                channel: &ev.bus_channel,
                content_type: "text/plain; charset=utf-8",
                event: ev.name.as_deref(),
                body: ev.data.into_bytes().into(),
                ..crate::gate::Draft::default()
            };
            let publish = self
                .gate
                .admit_door_publish(draft, None)
                .map_err(|refusal| format!("refused: {refusal}"))?;
            self.bus
                .publish(publish, self.now)
                .map_err(|e| format!("not taken: {e}"))
        });
        let Some(amqp) = self.amqp.as_mut() else {
            return;
        };
        match taken {
            Ok(msg) => {
                if let Some(ticket) = self.bus.take_ticket() {
                    // Acknowledged once the log has it, as a client's publish is answered.
                    self.held.push_back(Held {
                        ticket,
                        msgs: vec![msg],
                        answer: None,
                        from_exchange: Some(delivery.taken()),
                    });
                    return;
                }
                amqp.ack_taken(delivery.taken(), registry, self.now);
                self.deliver(&msg);
            }
            Err(why) => {
                amqp.count_bad(&why, self.now);
                amqp.ack(delivery.tag, registry, self.now);
            }
        }
    }

    /// Queues `msg` on every subscriber it matches; returns how many.
    fn deliver(&mut self, msg: &Rc<Message>) -> usize {
        let mut recipients = 0;
        // Deliveries of one message in `LATENCY_SAMPLE` are timed: their frames carry a stamp.
        let stamp = if crate::stats::is_timed(msg.id) {
            stamp_of(self.started, msg.made_at)
        } else {
            0
        };
        let (conns, stats, cfg, wires) = (&mut self.conns, &mut self.stats, &self.cfg, &self.wires);
        let (flush_list, close_list) = (&mut self.flush_list, &mut self.close_list);
        let polls_done = &mut self.polls_done;
        self.bus.for_each_recipient(msg, |sub| {
            let conn = &mut conns[sub.conn];
            // Ids only grow: one already queued here (through another subscription, or a
            // replay up to a cursor) is not sent again.
            if conn.closing || conn.last_delivered >= msg.id {
                return;
            }
            recipients += 1;
            let frame = wires.frame(msg, sub.wire, &mut stats.encodings);
            let queued = Rc::as_ptr(&frame);
            match conn.enqueue_frame(frame, msg.id, cfg, stats) {
                Ok(()) => {
                    if stamp != 0 {
                        conn.outq.stamp_frame(queued, stamp);
                    }
                    schedule_flush(flush_list, conn, sub.conn);
                }
                Err(reason) => {
                    conn.closing = true;
                    close_list.push((sub.conn, reason));
                }
            }
            if conn.poll_done {
                polls_done.push(sub.conn);
            }
        });
        trace!(
            "PUB /msgbus/{} {} ({} bytes) to {recipients}",
            msg.channel,
            msg.content_type,
            msg.body.len()
        );
        for key in std::mem::take(&mut self.polls_done) {
            self.release_poll(key);
        }
        // A one-to-one channel's message someone received is consumed.
        if recipients > 0 {
            self.bus.delivered(msg);
        }
        recipients
    }

    /// Handles the cluster connection's readiness or deadline.
    fn on_cluster(&mut self, timer: bool) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let registry = self.poll.registry();
        if timer {
            cluster.on_timer(registry, CLUSTER_TOKEN, self.now);
        } else {
            cluster.on_ready(registry, self.now);
        }
        let outcome = cluster.take_outcome();
        if let Some(first) = outcome.first_seq {
            self.bus.begin_at(first);
        }
        self.cluster_again |= outcome.more;
        // A hole is told to live subscribers just before the message after it.
        let mut holes = outcome.holes.into_iter().peekable();
        for remote in outcome.deliveries {
            while let Some((first, last)) = holes.next_if(|h| h.1 < remote.id) {
                self.on_hole(first, last);
            }
            self.deliver_remote(remote);
        }
        for (first, last) in holes {
            self.on_hole(first, last);
        }
        for (first, last) in outcome.skipped {
            self.bus.note_hole(first, last);
        }
        for (ticket, stored) in outcome.acks {
            self.on_stored(ticket, stored);
        }
        for fetched in outcome.fetched {
            self.on_fetched(fetched);
        }
        if outcome.caught_up {
            // Connections waited in the backlog while the window was rebuilt.
            self.accept_all();
        }
        if let Some(why) = outcome.fatal {
            self.fatal = Some(why);
        }
    }

    /// The stream dropped sequences `first..=last` before this node read them (it was away):
    /// which channels they were on is not known, so every live subscriber is told it may have
    /// missed them, exactly from where, as a resuming client would be.
    fn on_hole(&mut self, first: u64, last: u64) {
        self.bus.note_hole(first, last);
        let missed = crate::message::Missed {
            after: first - 1,
            oldest: last + 1,
        };
        let mut polls_done = Vec::new();
        for (key, conn) in self.conns.iter_mut() {
            if conn.closing || !conn.is_subscriber() {
                continue;
            }
            conn.notify_missed(missed);
            for event in conn.stat_events.drain(..) {
                self.stats.count(event);
            }
            if !conn.outq.is_empty() {
                schedule_flush(&mut self.flush_list, conn, key);
            }
            if conn.poll_done {
                polls_done.push(key);
            }
        }
        for key in polls_done {
            self.release_poll(key);
        }
    }

    /// A long-poll was answered: its subscriptions go, and pipelined requests may follow.
    fn release_poll(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(id) = conn.held_for.take() {
            if let Some(door) = self.doors.get_mut(id) {
                door.on_hold_ended();
            }
        }
        for id in conn.take_subscriptions() {
            self.bus.unsubscribe(id, self.now);
        }
        self.read_again.push(key);
        self.rearm(key);
    }

    /// Deletes a channel and ends the streams of its subscribers.
    fn delete_channel(&mut self, delete: &crate::gate::Delete) -> Result<usize, BusError> {
        use crate::gate::KeyedChannel;
        let name = delete.channel();
        let gone = self.bus.delete(delete)?;
        for &(conn_key, id) in &gone {
            let Some(conn) = self.conns.get_mut(conn_key) else {
                continue;
            };
            conn.forget_subscriptions(&[id]);
            for other in conn.take_subscriptions() {
                self.bus.unsubscribe(other, self.now);
            }
            conn.end_stream();
            schedule_flush(&mut self.flush_list, conn, conn_key);
            if !conn.is_subscriber() {
                self.read_again.push(conn_key);
            }
            self.rearm(conn_key);
        }
        info!("channel {name} deleted ({} subscribers)", gone.len());
        Ok(gone.len())
    }

    /// The gauges, from running counts: rendering them costs the same for ten connections as
    /// for a million.
    fn gauges(&self) -> Gauges {
        let cluster = self.cluster.as_ref().map(|c| ClusterGauges {
            connected: c.is_connected(),
            forwarded: c.forwarded,
            received: c.received,
            not_forwarded: c.not_forwarded,
            disconnects: c.disconnects,
        });
        Gauges {
            cluster,
            by_transport: self.by_transport,
            uptime: self.now.duration_since(self.started),
            connections: self.conns.len() - self.h2.streams(),
            max_connections: self.max_connections,
            subscribers: self.bus.subscriber_count(),
            channels: self.bus.channel_count(),
            retained: self.bus.retained_count(),
            queued_bytes: self.queued_bytes,
            evicted: self.bus.evicted,
            displaced: self.bus.displaced,
            expired: self.bus.expired,
        }
    }

    fn expire_timers(&mut self) {
        if let Some(deadline) = self.cluster.as_ref().and_then(Cluster::deadline) {
            if self.now >= deadline {
                self.on_cluster(true);
            }
        }
        if let Some(deadline) = self.amqp.as_ref().and_then(Amqp::deadline) {
            if self.now >= deadline {
                self.on_amqp(true);
            }
        }
        if self.bus.store().deadline().is_some_and(|at| self.now >= at) {
            self.bus.store_mut().on_timer(self.now);
        }
        if let Some(upstream) = self.upstream.as_mut() {
            if upstream.next_deadline().is_some_and(|at| self.now >= at) {
                upstream.expire(self.poll.registry(), self.now);
            }
        }
        if self.now >= self.next_sweep {
            let freed = self.bus.sweep(self.now, SWEEP_BUDGET);
            self.bus.reclaim();
            for door in self.doors.each() {
                door.sweep(self.now, &self.bus);
            }
            if let Some(upstream) = self.upstream.as_mut() {
                upstream.expire(self.poll.registry(), self.now);
            }
            if let Some(amqp) = self.amqp.as_mut() {
                for taken in std::mem::take(&mut self.exchange_requeue) {
                    amqp.requeue(taken, self.poll.registry(), self.now);
                }
            }
            if freed > 0 {
                debug!("freed {freed} idle channels");
            }
            self.next_sweep = self.now + SWEEP_INTERVAL;
        }
        while let Some(entry) = self.timers.pop_due(self.now) {
            let key = entry.1;
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if !self.timers.fire(entry, &mut conn.timer, self.now) || conn.closing {
                continue;
            }
            if self.write_stalled(key) {
                info!(
                    "closing {}: none of its output taken for {:?}",
                    self.conns[key].peer, self.cfg.write_timeout
                );
                self.close_later(key, Reason::WriteStalled);
                continue;
            }
            if self.h2.is_conn(key) {
                self.h2_on_timeout(key);
                continue;
            }
            let conn = &mut self.conns[key];
            match conn.on_timeout(self.now, &self.cfg) {
                Some(reason) => self.close_later(key, reason),
                None => {
                    schedule_flush(&mut self.flush_list, conn, key);
                    if conn.poll_done {
                        self.release_poll(key);
                    }
                    self.rearm(key);
                }
            }
        }
        if self.accept_retry_at.is_some_and(|at| at <= self.now) {
            self.accept_all();
        }
    }

    /// Writes out every connection that gained output this turn: one vectored write each.
    fn flush_pending(&mut self) {
        let mut list = std::mem::take(&mut self.flush_list);
        for &key in &list {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.pending_flush = false;
            if !conn.closing {
                self.flush(key);
            }
        }
        list.clear();
        // Connections scheduled while flushing go out next turn (poll will not wait).
        self.flush_next.append(&mut self.flush_list);
        self.flush_list = list;
    }

    fn flush(&mut self, key: usize) {
        use crate::outq::Flushed;
        if self.h2.is_stream(key) {
            return self.h2_flush_stream(key);
        }
        let mut budget = FLUSH_BYTES_PER_TURN;
        loop {
            let conn = &mut self.conns[key];
            if !conn.writable {
                break;
            }
            let Some(io) = self.io[key].as_mut() else {
                break;
            };
            let pending_tls = io.sock.has_pending_output();
            if conn.outq.is_empty() && !pending_tls {
                // Nothing to write, but a stream ended with nothing to say (a deleted channel's
                // HTTP/1.0 multipart) still has to be half-closed.
                if conn.awaiting_close() {
                    if let Err(reason) = conn.on_drained(self.now) {
                        self.close_later(key, reason);
                    }
                }
                break;
            }
            let result = if conn.outq.is_empty() {
                // Only TLS records the socket did not take last time.
                io.sock.flush_pending().map(|_| (Flushed::Drained, 0))
            } else {
                let (sock, latency, started) =
                    (&mut io.sock, &mut self.stats.latency, self.started);
                // Each stamped frame whose last byte went out is timed from its message's making:
                // one clock read per write that finished one, and a bucket increment per frame.
                let mut written_at = 0;
                let observe = |stamp: u64| {
                    if written_at == 0 {
                        written_at = stamp_of(started, Instant::now());
                    }
                    latency.observe(written_at.saturating_sub(stamp));
                };
                conn.outq
                    .flush_observed(budget, |iov| sock.writev(iov), observe)
            };
            let (outcome, written) = match result {
                Ok(done) => done,
                Err(e) => {
                    debug!("write {}: {e}", conn.peer);
                    let reason = if is_peer_gone(&e) {
                        Reason::PeerClosed
                    } else {
                        Reason::IoError
                    };
                    self.close_later(key, reason);
                    return;
                }
            };
            self.stats.bytes_out += written as u64;
            budget = budget.saturating_sub(written);
            if written > 0 || outcome == Flushed::Drained {
                // Progress: the write-progress deadline starts again from now.
                self.tracked[key].stalled_since = None;
            }
            // The queue is empty but TLS still holds records: the socket blocked.
            let outcome = match outcome {
                Flushed::Drained if io.sock.has_pending_output() => Flushed::Blocked,
                other => other,
            };
            match outcome {
                Flushed::Blocked => conn.writable = false,
                Flushed::Capped => {
                    conn.pending_flush = true;
                    self.flush_next.push(key);
                }
                Flushed::Drained => match conn.on_drained(self.now) {
                    Ok(AfterDrain::NeedFile) => {
                        if let Err(reason) = self.feed_file(key) {
                            self.close_later(key, reason);
                        } else if self.conns[key].outq.is_empty() {
                            self.drive(key);
                            self.on_readable(key);
                        } else if budget > 0 {
                            continue;
                        } else {
                            self.conns[key].pending_flush = true;
                            self.flush_next.push(key);
                        }
                    }
                    Ok(AfterDrain::HalfClose) => {
                        io.sock.shutdown_write();
                        self.drive(key);
                        self.on_readable(key);
                    }
                    Ok(AfterDrain::ReadMore) => {
                        self.drive(key);
                        self.on_readable(key);
                    }
                    Ok(AfterDrain::Nothing) => {}
                    Err(reason) => self.close_later(key, reason),
                },
            }
            break;
        }
        self.h2_after_flush(key);
        self.rearm(key);
    }

    fn close_later(&mut self, key: usize, reason: Reason) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.closing {
                conn.closing = true;
                self.close_list.push((key, reason));
            }
        }
    }

    /// Answers of outbound calls made for a connection (lhttp processors) are queued on it, if
    /// it is still the WebSocket that asked (a closed one's calls were dropped with it).
    fn deliver_upstream_answers(&mut self) {
        let Some(upstream) = self.upstream.as_mut() else {
            return;
        };
        for delivery in upstream.take_deliveries() {
            let key = delivery.owner;
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.closing || conn.transport() != Transport::WebSocket {
                continue;
            }
            conn.outq.push_own(delivery.bytes);
            schedule_flush(&mut self.flush_list, conn, key);
            self.rearm(key);
        }
    }

    /// Removes connections marked closing, oldest first, within `CLOSE_BUDGET`; those left stay
    /// marked (inert: not read, flushed or delivered to) and keep their slab key until a later
    /// turn closes them, which polls without waiting.
    fn close_deferred(&mut self) {
        let mut list = std::mem::take(&mut self.close_list);
        let started = Instant::now();
        let mut closed = 0;
        for (key, reason) in list.iter().copied() {
            if closed > 0 && started.elapsed() >= CLOSE_BUDGET {
                break;
            }
            closed += 1;
            self.close_one(key, reason);
        }
        // An HTTP/2 connection's streams, listed as it closed, go with it in this turn whatever
        // the budget: by the next its key may be a new connection's.
        for (key, reason) in std::mem::take(&mut self.close_list) {
            self.close_one(key, reason);
        }
        if closed < list.len() {
            self.close_list = list.split_off(closed);
        }
    }

    fn close_one(&mut self, key: usize, reason: Reason) {
        self.h2_on_close(key, reason);
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        if let Some(id) = conn.held_for.take() {
            if let Some(door) = self.doors.get_mut(id) {
                door.on_hold_ended();
            }
        }
        for id in conn.take_subscriptions() {
            self.bus.unsubscribe(id, self.now);
        }
        if let Some(upstream) = self.upstream.as_mut() {
            upstream.forget_owner(key, self.poll.registry());
        }
        if let Some(tickets) = self.stream_order.remove(&key) {
            // Stored or not, nobody is left to answer (the stream delivers what it has).
            for ticket in tickets {
                self.stream_waits.remove(&ticket);
            }
        }
        if conn.awaiting_commit() {
            // Its messages still go out once committed; the answer has nobody to go to.
            for held in &mut self.held {
                if held.answer.as_ref().is_some_and(|(k, _, _)| *k == key) {
                    held.answer = None;
                }
            }
        }
        if let Some(mut io) = self.io.get_mut(key).and_then(Option::take) {
            let _ = self.poll.registry().deregister(io.sock.source());
        }
        self.stats.count_close(reason);
        if let Some(ip) = conn.counted_as {
            self.per_address.release(ip);
        }
        let tracked = std::mem::replace(&mut self.tracked[key], Tracked::NEW);
        self.by_transport[tracked.transport as usize] -= 1;
        self.queued_bytes -= tracked.queued;
        trace!("closed {} ({})", conn.peer, reason.name());
    }

    /// Brings the connection's record up to date and sets its timer: the earlier of what its
    /// phase asks for and its write-progress deadline. Called after every event a connection
    /// handles, so the record is current at the end of each turn.
    fn rearm(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let tracked = &mut self.tracked[key];
        let transport = conn.transport();
        if transport != tracked.transport {
            self.by_transport[tracked.transport as usize] -= 1;
            self.by_transport[transport as usize] += 1;
            tracked.transport = transport;
            let send_buffer = self.cfg.subscriber_send_buffer();
            if transport != Transport::Http && !tracked.send_buffer_capped && send_buffer > 0 {
                // The kernel's share of what a subscriber holds, counted in --max-queue.
                tracked.send_buffer_capped = true;
                if let Some(io) = &self.io[key] {
                    if let Err(e) = io.sock.cap_send_buffer(send_buffer) {
                        debug!("SO_SNDBUF {}: {e}", conn.peer);
                    }
                }
            }
        }
        let queued = conn.outq.queued_bytes();
        self.queued_bytes = self.queued_bytes - tracked.queued + queued;
        tracked.queued = queued;
        let unsent = self.io[key]
            .as_ref()
            .is_some_and(|io| io.sock.has_pending_output());
        let waiting = !conn.outq.is_empty() || unsent;
        tracked.stalled_since = match tracked.stalled_since {
            _ if !waiting => None,
            None => Some(self.now),
            since => since,
        };
        let deadline = if conn.closing {
            None
        } else {
            let stall = tracked.stalled_since.map(|at| at + self.cfg.write_timeout);
            let phase = match self.h2.deadline(key, self.now, &self.cfg) {
                Some(deadline) => deadline,
                None => conn.deadline(self.now, &self.cfg),
            };
            match (phase, stall) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        self.timers.set(key, &mut conn.timer, deadline);
    }

    /// Whether the connection's queued output has not moved for `--write-timeout`.
    fn write_stalled(&self, key: usize) -> bool {
        self.tracked[key]
            .stalled_since
            .is_some_and(|since| self.now >= since + self.cfg.write_timeout)
    }

    fn on_signal(&mut self) {
        for signal in self.signals.drain() {
            match signal {
                Signal::Terminate(name) => {
                    if self.shutdown_deadline.is_none() {
                        info!("{name}: shutting down");
                        self.begin_shutdown();
                    }
                }
                Signal::Reload => self.reload(),
                Signal::ReopenLog => match &self.log_file {
                    Some(log) => match log.reopen() {
                        Ok(()) => info!("SIGUSR1: log file reopened"),
                        Err(e) => warn!("SIGUSR1: cannot reopen the log file: {e}"),
                    },
                    None => info!("SIGUSR1: logging to stderr, nothing to reopen"),
                },
                Signal::Other(number) => debug!("signal {number} ignored"),
            }
        }
    }

    /// Stops accepting, tells every subscriber to come back later in its transport's way, and
    /// lets queued output drain until `--shutdown-timeout`.
    fn begin_shutdown(&mut self) {
        if let Some(notify) = &self.notify {
            notify.stopping();
        }
        for listener in &mut self.listeners {
            let _ = self.poll.registry().deregister(listener);
        }
        self.listeners.clear(); // a UNIX socket file goes with its listener
        self.accepting = false;
        self.shutdown_deadline = Some(self.now + self.cfg.shutdown_timeout);
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            if self.h2_go_away(key) {
                continue;
            }
            let unsent = self.unsent(key);
            let conn = &mut self.conns[key];
            match conn.begin_shutdown(key, unsent) {
                Some(reason) => self.close_later(key, reason),
                None => schedule_flush(&mut self.flush_list, conn, key),
            }
            let conn = &mut self.conns[key];
            for id in conn.take_subscriptions() {
                self.bus.unsubscribe(id, self.now);
            }
            self.rearm(key);
        }
    }

    /// Whether connection `key`'s socket still holds bytes of its own (TLS records).
    fn unsent(&self, key: usize) -> bool {
        let io = self.io.get(key).and_then(Option::as_ref);
        io.is_some_and(|io| io.sock.has_pending_output())
    }

    /// Gives the session the next pieces of the file it is sending, as much as it takes now.
    /// The file is closed once the session has all of it.
    fn feed_file(&mut self, key: usize) -> Result<(), Reason> {
        use std::io::Read;
        let (Some(conn), Some(Some(io))) = (self.conns.get_mut(key), self.io.get_mut(key)) else {
            return Ok(());
        };
        loop {
            let want = conn.file_wanted();
            let Some(file) = io.file.as_mut().filter(|_| want > 0) else {
                break;
            };
            let mut piece = vec![0; want];
            let n = match file.read(&mut piece) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            piece.truncate(n);
            // An empty read: the file shrank under us and the promised length cannot be kept.
            if !conn.on_file_data(piece) {
                return Err(Reason::IoError);
            }
        }
        if !conn.sending_file() {
            io.file = None;
        }
        Ok(())
    }

    /// A request for a static file: the reactor opens it (regular files only, without
    /// blocking), the session answers, and the file's bytes follow as the socket drains.
    fn open_file(&mut self, key: usize, ask: &crate::conn::FileAsk) {
        let found =
            self.cfg.docroot.as_deref().and_then(|root| {
                crate::http::static_files::resolve(root, ask.path.as_bytes()).ok()
            });
        let meta = found.as_ref().map(|file| crate::conn::FileFound {
            len: file.len,
            modified: file.modified,
            content_type: file.content_type,
        });
        if self.conns[key].answer_file(ask, meta) {
            if self.h2.is_stream(key) {
                if let Some(file) = found {
                    if let Err(reason) = self.h2_keep_file(key, file.file) {
                        self.close_later(key, reason);
                    }
                }
                return;
            }
            if let (Some(file), Some(Some(io))) = (found, self.io.get_mut(key)) {
                io.file = Some(file.file);
            }
            if let Err(reason) = self.feed_file(key) {
                self.close_later(key, reason);
            }
        }
    }

    /// While shutting down: closes connections with nothing left to send.
    fn reap_finished(&mut self) {
        let done: Vec<usize> = self
            .conns
            .iter()
            .filter(|(key, conn)| {
                !conn.closing && conn.is_finished(self.unsent(*key)) && !self.h2.has_streams(*key)
            })
            .map(|(key, _)| key)
            .collect();
        for key in done {
            self.close_later(key, Reason::Shutdown);
        }
    }

    /// SIGHUP: makes the configuration again from its file (`-c`) and command line, re-reads
    /// the files it names (certificate and key, token key, the doors' files), and
    /// applies what can change while connections stay open. Nothing is applied unless all of
    /// it loads: a bad file keeps the old configuration, and the log says why. What only a
    /// restart can change is named and keeps its running value.
    fn reload(&mut self) {
        if let Some(notify) = &self.notify {
            notify.reloading();
        }
        if let Err(why) = self.reconfigure() {
            warn!("SIGHUP: {why}");
        }
        // HTTP/2 clients open their next streams on a new connection, under the new settings.
        self.h2_go_away_all();
        if let Some(notify) = &self.notify {
            notify.ready();
        }
    }

    fn reconfigure(&mut self) -> Result<(), String> {
        let mut new = self
            .cfg
            .reread()
            .map_err(|e| format!("keeping the old configuration: {e}"))?;
        let changes = Changes::between(&self.cfg, &mut new);
        let tls = match (&new.tls_cert, &new.tls_key) {
            (Some(cert), Some(key)) => Some(
                tls::load(cert, key, new.http2)
                    .map_err(|e| format!("keeping the old certificate and configuration: {e}"))?,
            ),
            _ => None,
        };
        let jwt = load_jwt_key(&new)
            .map_err(|e| format!("keeping the old token key and configuration: {e}"))?;
        let mut prepared = Vec::new();
        for door in self.doors.each() {
            let ready = door.prepare_reload(&new);
            prepared.push(ready.map_err(|e| format!("keeping the old configuration: {e}"))?);
        }
        self.gate = Gate::new(
            new.secret.clone(),
            jwt,
            new.max_subscriptions,
            new.max_publish_channels,
        );
        self.bus.set_limits(BusLimits {
            max_channels: new.max_channels,
            max_retained_bytes: new.max_retained_bytes,
        });
        self.bus.set_defaults(new.retention(), new.channel_timeout);
        for (door, ready) in self.doors.each().zip(prepared) {
            door.apply_reload(&new, ready);
        }
        if !crate::logfile::set_verbosity(new.verbosity) && changes.live.contains(&"verbose") {
            info!("SIGHUP: RUST_LOG decides the log level, not verbose");
        }
        if let (Some(config), Some(cert)) = (tls, &new.tls_cert) {
            self.tls = Some(config);
            info!("SIGHUP: certificate reloaded from {}", cert.display());
        }
        if new.jwt_secret_file.is_some() {
            info!("SIGHUP: token key reloaded");
        }
        self.cfg = new;

        if !changes.fixed.is_empty() {
            warn!(
                "SIGHUP: {} cannot change without a restart; keeping the running values",
                changes.fixed.join(", ")
            );
        }
        if changes.live.is_empty() {
            info!("SIGHUP: configuration unchanged");
        } else {
            info!("SIGHUP: changed {}", changes.live.join(", "));
        }
        Ok(())
    }
}

/// Connections held per client address, for `--max-per-address`.
#[derive(Debug, Default)]
pub struct AddressCounts {
    held: HashMap<IpAddr, u32>,
}

impl AddressCounts {
    pub fn is_full(&self, ip: IpAddr, max: usize) -> bool {
        self.held.get(&ip).is_some_and(|n| *n as usize >= max)
    }

    /// Counts a connection that is now held (and will be released when it closes).
    pub fn take(&mut self, ip: IpAddr) {
        *self.held.entry(ip).or_insert(0) += 1;
    }

    pub fn release(&mut self, ip: IpAddr) {
        if let Some(held) = self.held.get_mut(&ip) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(&ip);
            }
        }
    }

    /// Addresses holding at least one connection.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Connections held by `ip`.
    pub fn held(&self, ip: IpAddr) -> u32 {
        self.held.get(&ip).copied().unwrap_or(0)
    }
}

/// A 503 answered as a connection is accepted, and the connection closed after it.
fn refusal(reason: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    use crate::http::response::{plain, Status};
    plain(1, Status::SERVICE_UNAVAILABLE, reason, extra, false, false)
}

/// An instant as the output queue's frame stamp: nanoseconds since the server started, plus one
/// so that no stamp is 0 ("not a live frame").
fn stamp_of(started: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(started).as_nanos() as u64 + 1
}

fn schedule_flush(list: &mut Vec<usize>, conn: &mut Conn, key: usize) {
    if !conn.pending_flush {
        conn.pending_flush = true;
        list.push(key);
    }
}

/// `msgbus-HOSTNAME-PID`: unique among the nodes of a cluster.
fn default_node_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let host = unsafe {
        if libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) == 0 {
            let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..len]).into_owned()
        } else {
            "host".to_string()
        }
    };
    format!("msgbus-{host}-{}", std::process::id())
}

/// The token key from `--jwt-secret` or the first line of `--jwt-secret-file`.
fn load_jwt_key(cfg: &Config) -> io::Result<Option<JwtKey>> {
    if let Some(secret) = &cfg.jwt_secret {
        return Ok(Some(JwtKey::new(secret.as_bytes())));
    }
    let Some(path) = &cfg.jwt_secret_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let secret = text.lines().next().unwrap_or("").trim();
    if secret.is_empty() {
        let why = format!("{}: no key on the first line", path.display());
        return Err(io::Error::new(ErrorKind::InvalidData, why));
    }
    Ok(Some(JwtKey::new(secret.as_bytes())))
}

/// Binds every listener the configuration asks for and registers it with the poll. A socket
/// the service manager passed (`LISTEN_FDS`) stands for the configured address it is bound to:
/// on a `--tls-listen` address it is a TLS listener, at the `--unix` path the UNIX one. Passed
/// sockets no option names are plain listeners, and take the place of the default one.
fn bind_all(
    cfg: &Config,
    poll: &Poll,
    mut inherited: Vec<activation::Inherited>,
) -> io::Result<Vec<Listener>> {
    use activation::Inherited;
    let mut listeners = Vec::new();
    let default_replaced = cfg.implicit_listen && !inherited.is_empty();
    let plain = cfg.listen.iter().filter(|_| !default_replaced);
    let tcp = plain
        .map(|addr| (*addr, false))
        .chain(cfg.tls_listen.iter().map(|addr| (*addr, true)));
    for (addr, tls) in tcp {
        let passed = inherited
            .iter()
            .position(|s| matches!(s, Inherited::Tcp(_, at) if *at == addr));
        let listener = match passed {
            Some(i) => adopt(inherited.remove(i), tls),
            None => Listener::bind_tcp(addr, tls, cfg.reuse_port)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?,
        };
        listeners.push(listener);
    }
    if let Some(path) = &cfg.unix {
        let passed = inherited
            .iter()
            .position(|s| matches!(s, Inherited::Unix(_, Some(at)) if at == path));
        let listener = match passed {
            Some(i) => adopt(inherited.remove(i), false),
            None => Listener::bind_unix(path, cfg.unix_mode).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on {}: {e}", path.display()),
                )
            })?,
        };
        listeners.push(listener);
    }
    listeners.extend(inherited.into_iter().map(|socket| adopt(socket, false)));
    if listeners.len() > MAX_LISTENERS {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            "too many listeners",
        ));
    }
    for (i, listener) in listeners.iter_mut().enumerate() {
        poll.registry()
            .register(listener, Token(LISTENER_TOKEN_BASE - i), Interest::READABLE)?;
    }
    Ok(listeners)
}

/// Says where the server listens: once everything it needs is in place (its log opened and
/// read back), since scripts and tests take the line as "ready".
fn announce(listeners: &[Listener], cfg: &Config) {
    for listener in listeners {
        match (listener.is_tls(), listener.local_addr()) {
            (true, Some(addr)) => info!("listening (TLS) on {addr}"),
            (false, Some(addr)) => info!("listening on {addr}"),
            (_, None) => info!("listening on {listener}"),
        }
    }
    if cfg.proxy_protocol {
        info!("plain listeners expect a PROXY protocol header first");
    }
}

fn adopt(socket: activation::Inherited, tls: bool) -> Listener {
    info!("{} passed by the service manager", socket.describe());
    socket.into_listener(tls)
}

/// Raises the soft open-files limit to the hard one; returns the limit in force.
fn raise_open_files_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    usize::try_from(limit.rlim_cur)
        .unwrap_or(usize::MAX)
        .min(1 << 24)
}

/// Opens the log in `dir` (`--data-dir`), rebuilds the bus from it, and keeps the bus's
/// histories there from now on; gives back the doors' registrations it held. Blocking: it runs
/// before the loop.
fn open_log(
    bus: &mut Bus,
    dir: &std::path::Path,
    cfg: &Config,
    waker: Arc<mio::Waker>,
) -> io::Result<Vec<crate::bus::history::DoorRecord>> {
    let opts = crate::store::Options {
        dir: dir.to_path_buf(),
        fsync: cfg.fsync,
        repair: cfg.repair,
        segment_size: cfg.segment_size,
        retention: cfg.retention(),
        first_id: first_message_id(),
    };
    let (log, recovered) =
        crate::store::Log::open(&opts, waker).map_err(|e| io::Error::other(e.to_string()))?;
    bus.restore(recovered, Instant::now(), crate::store::wall_ms());
    let kept = log.door_records();
    bus.set_store(Box::new(log));
    Ok(kept)
}

/// Hands each open door the registrations the log kept under its name. Those of a door not
/// opened this time stay in the log, untouched, for a start that opens it again.
fn restore_doors(doors: &mut Doors, kept: Vec<crate::bus::history::DoorRecord>, now: Instant) {
    for door in doors.each() {
        let name = door.name();
        let own = kept.iter().filter(|r| r.door == name).cloned().collect();
        door.restore(own, now);
    }
}

/// Message ids start from the clock (microseconds since 1970) so a restarted server never
/// reuses an id its clients have seen.
fn first_message_id() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64)
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

fn is_peer_gone(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_how_long_their_bodies_are() {
        let busy = refusal(CONNECTION_LIMIT_REFUSAL, &[("Retry-After", "5")]);
        for answer in [busy, refusal(PER_ADDRESS_REFUSAL, &[])] {
            let text = std::str::from_utf8(&answer).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap();
            assert_eq!(length.parse::<usize>().unwrap(), body.len(), "{text}");
        }
    }
}
