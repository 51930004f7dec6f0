//! One run, on one thread and one mio loop: connect the subscribers (a bounded number at a time),
//! let them idle, then publish on --publishers keep-alive connections (or, with --no-publish,
//! wait for another process to) while the same loop reads every subscriber, and stop when every
//! message has reached every subscriber, when deliveries stop coming, or at --duration.
//!
//! Markers carry CLOCK_REALTIME nanoseconds, so a subscriber in one process can time a message
//! published by another.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Config, Transport};
use crate::hist::Histogram;
use crate::http::{self, Parsed};
use crate::longpoll::{self, Cursor};
use crate::marker::{self, Order, Tail};
use crate::procfs;
use crate::timeline::{Progress, Sample, Timeline};

/// Connects (and handshakes) in flight at once, so a listen backlog is never flooded.
const MAX_PENDING: usize = 512;
/// A subscriber that has not had its response head this long after connect() is given up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads per subscriber per readiness event before it yields to the others.
const READS_PER_EVENT: usize = 64;
const READ_BUF: usize = 256 * 1024;
/// --one-at-a-time publishes the next message anyway if the previous one has not reached every
/// subscriber within this time (it is then counted as a stall; the loss shows in the totals).
const ONE_AT_A_TIME_WAIT: Duration = Duration::from_secs(2);
/// The longest poll; the loop re-checks its deadlines at least this often.
const MAX_POLL: Duration = Duration::from_millis(50);
/// Publisher connection k has token `usize::MAX - 1 - k`, far above any subscriber's index.
const TOKEN_PUBLISHER_TOP: usize = usize::MAX - 1;
/// A long-poll answer longer than this is refused (one answer holds at most a history's worth
/// of messages).
const ANSWER_MAX: usize = 64 * 1024 * 1024;

fn publisher_token(k: usize) -> Token {
    Token(TOKEN_PUBLISHER_TOP - k)
}

enum Phase {
    Unstarted,   // next: Connecting | Failed
    Connecting,  // next: Requesting | Failed
    Requesting,  // request partly written; next: ReadingHead | Failed
    ReadingHead, // next: Streaming | Failed
    Streaming,   // a long-poll: its poll is out; next: Closed | Repolling (long-poll)
    Repolling,   // a long-poll's next request partly written; next: Streaming | Closed
    Failed,      // connect or handshake failed; counted once
    Closed,      // the server ended the stream during the run
}

struct Sub {
    stream: Option<TcpStream>,
    phase: Phase,
    /// Connects, reads its response head, and then never reads again (--stall-fraction).
    stalled: bool,
    written: usize,
    /// The response head so far; empty once streaming.
    head: Vec<u8>,
    /// A long-poll: the answer so far, and the next request while it is being written.
    answer: Vec<u8>,
    repoll: Vec<u8>,
    /// A long-poll: where its next poll resumes.
    cursor: Cursor,
    tail: Tail,
    /// One bit per message seq.
    seen: Vec<u64>,
    order: Order,
}

/// What every subscriber saw, summed.
#[derive(Default)]
pub struct Deliveries {
    /// Markers of published messages, duplicates included.
    pub received: u64,
    pub unique: u64,
    pub duplicates: u64,
    /// New markers with a seq below one the same subscriber already had (see `Order`).
    pub out_of_order: u64,
    /// Markers that are not from this run's publishing (before it began, unknown seq).
    pub stale: u64,
    /// Unique deliveries per seq, for --one-at-a-time.
    per_seq: Vec<u32>,
    /// Per seq, the longest latency of its deliveries so far: the time to its last subscriber.
    to_last: Vec<u64>,
    last: Option<Instant>,
    /// The earliest publish stamp among delivered markers (wall clock, ns): where a --no-publish
    /// run's publish phase began.
    pub first_stamp_ns: Option<u64>,
    /// The wall clock of the last unique delivery, ns.
    pub last_ns: Option<u64>,
}

#[derive(Default)]
pub struct SubCounts {
    /// Readers that got their response head.
    pub ready: usize,
    /// Stalled subscribers that got their response head.
    pub stalled_ready: usize,
    /// Stalled subscribers whose connection the server ended (as far as this side can tell
    /// without reading: a reset, or a FIN that got through).
    pub stalled_closed: usize,
    pub connect_failed: usize,
    pub bad_response: usize,
    pub timed_out: usize,
    pub not_started: usize,
    pub closed_during_run: usize,
    /// Readers currently streaming.
    streaming: usize,
    in_flight: usize,
}

pub struct Outcome {
    pub subs: SubCounts,
    pub deliveries: Deliveries,
    pub latency: Histogram,
    /// Per message that reached anyone: publish stamp to its last delivery.
    pub to_last: Histogram,
    /// One sample a second, for --plot.
    pub samples: Vec<Sample>,
    /// When publishing (with --no-publish: waiting) began, seconds into the run.
    pub publish_at: Option<f64>,
    pub published: usize,
    pub answered: usize,
    pub publish_errors: usize,
    /// Per answered publish: queued on its connection to its answer read.
    pub ack_latency: Histogram,
    /// 2xx answers per second, from the first publish queued to the last answer read.
    pub acked_per_s: f64,
    pub stalls: usize,
    /// First publish (with --no-publish: the earliest stamp seen) to last delivery.
    pub wall: Duration,
    /// The same two ends, wall clock ns, for scripts that combine several processes.
    pub first_ns: Option<u64>,
    pub last_ns: Option<u64>,
    pub hit_duration: bool,
    /// utime + stime of every --server-pid, summed, over the publish (or wait) phase.
    pub server_cpu: Option<f64>,
    pub servers: Vec<ServerFigures>,
    /// The kernel's TCP buffer memory (the whole machine) with every subscriber connected after
    /// the idle, and at the end of the drain: what the servers' RSS does not show.
    pub tcp_mem_idle: Option<u64>,
    pub tcp_mem_end: Option<u64>,
    pub tool_cpu: f64,
    /// One line each: the first error of each kind.
    pub notes: Vec<String>,
}

/// One --server-pid's memory and descriptors; None where /proc could not be read.
pub struct ServerFigures {
    pub pid: u32,
    /// Before the subscribers connect.
    pub rss_before: Option<u64>,
    /// With every subscriber connected, after --idle-secs.
    pub rss_idle: Option<u64>,
    /// At the end of the drain, subscribers still connected.
    pub rss_end: Option<u64>,
    /// VmHWM at the end: the highest RSS of the server's life.
    pub rss_peak: Option<u64>,
    pub fds_end: Option<usize>,
}

/// One publisher connection.
struct Publisher {
    stream: TcpStream,
    writable: bool,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    in_flight: usize,
    /// When each request in flight was queued, oldest first: answers come in request order.
    queued: VecDeque<Instant>,
    answered: usize,
    errors: usize,
    failed: bool,
    last_answer: Instant,
}

/// Every publisher connection and the pacing they share.
struct Publishing {
    conns: Vec<Publisher>,
    next_seq: usize,
    /// The connection the next message tries first (round robin).
    next_conn: usize,
    stalls: usize,
    started: Instant,
    first_sent_ns: Option<u64>,
    last_sent: Instant,
    /// Publish-to-acknowledge latency of every answer.
    acks: Histogram,
}

impl Publishing {
    fn answered(&self) -> usize {
        self.conns.iter().map(|c| c.answered).sum()
    }

    fn errors(&self) -> usize {
        self.conns.iter().map(|c| c.errors).sum()
    }

    /// Every connection has failed: nothing more can be published.
    fn all_failed(&self) -> bool {
        self.conns.iter().all(|c| c.failed)
    }

    /// Messages sent and not yet answered, on connections that still work.
    fn in_flight(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| !c.failed)
            .map(|c| c.in_flight)
            .sum()
    }

    /// 2xx answers per second from the start of publishing to the last answer.
    fn acked_per_s(&self) -> f64 {
        let span = self.last_answer().saturating_duration_since(self.started);
        per_second(self.answered() - self.errors(), span)
    }

    fn last_answer(&self) -> Instant {
        self.conns
            .iter()
            .map(|c| c.last_answer)
            .max()
            .unwrap_or(self.started)
    }
}

pub struct Runner<'a> {
    cfg: &'a Config,
    poll: Poll,
    events: Events,
    subs: Vec<Sub>,
    request: Vec<u8>,
    origin: Instant,
    deadline: Instant,
    /// Wall clock at start: a marker stamped earlier is from another run.
    not_before_ns: u64,
    buf: Vec<u8>,
    /// Subscribers left with unread data by READS_PER_EVENT.
    again: Vec<usize>,
    /// (connect time, index) of handshakes in flight, oldest first; entries of finished ones
    /// are skipped when reached.
    pending: VecDeque<(Instant, usize)>,
    next_connect: usize,
    publisher: Option<Publishing>,
    /// Messages stamped so far (with --no-publish: --expect); a marker with a higher seq is
    /// stale.
    published: usize,
    /// Markers count from here on (with --no-publish: from the start).
    publishing: bool,
    counts: SubCounts,
    deliveries: Deliveries,
    latency: Histogram,
    timeline: Timeline,
    notes: Vec<String>,
}

/// The `MarkerCtx` of subscriber `sub` over the runner's totals, read at `now`: a macro, so
/// that the subscriber and the totals are borrowed from the runner apart.
macro_rules! marker_ctx {
    ($runner:expr, $sub:expr, $now:expr) => {
        MarkerCtx {
            seen: &mut $sub.seen,
            order: &mut $sub.order,
            d: &mut $runner.deliveries,
            latency: &mut $runner.latency,
            window: &mut $runner.timeline.window,
            publishing: $runner.publishing,
            published: $runner.published,
            not_before_ns: $runner.not_before_ns,
            now: $now,
            now_ns: wall_ns(),
        }
    };
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// CLOCK_REALTIME in ns: the one clock every process on the machine shares.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `count` events over `span`, per second; none (or no time) is 0.
fn per_second(count: usize, span: Duration) -> f64 {
    if count == 0 || span.is_zero() {
        0.0
    } else {
        count as f64 / span.as_secs_f64()
    }
}

/// The sum of every pid's CPU seconds, or None if one cannot be read.
fn cpu_sum(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| procfs::cpu_seconds(p).ok()).sum()
}

impl<'a> Runner<'a> {
    pub fn new(cfg: &'a Config, origin: Instant) -> io::Result<Self> {
        let subs = (0..cfg.subs)
            .map(|i| Sub {
                stream: None,
                phase: Phase::Unstarted,
                stalled: cfg.is_stalled(i),
                written: 0,
                head: Vec::new(),
                answer: Vec::new(),
                repoll: Vec::new(),
                cursor: Cursor::Start,
                tail: Tail::default(),
                seen: Vec::new(),
                order: Order::default(),
            })
            .collect();
        Ok(Runner {
            cfg,
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            subs,
            request: cfg.subscribe_request(),
            origin,
            deadline: origin + cfg.duration,
            not_before_ns: wall_ns(),
            buf: vec![0; marker::MARKER_MAX + READ_BUF],
            again: Vec::new(),
            pending: VecDeque::new(),
            next_connect: 0,
            publisher: None,
            published: if cfg.publish { 0 } else { cfg.messages },
            publishing: !cfg.publish,
            counts: SubCounts::default(),
            deliveries: Deliveries {
                per_seq: vec![0; cfg.messages],
                to_last: vec![0; cfg.messages],
                ..Deliveries::default()
            },
            latency: Histogram::new(),
            timeline: Timeline::new(origin),
            notes: Vec::new(),
        })
    }

    /// The whole run; never takes longer than --duration (plus one poll).
    pub fn run(mut self) -> Outcome {
        let pids = &self.cfg.server_pids;
        let mut servers: Vec<ServerFigures> = pids
            .iter()
            .map(|&pid| ServerFigures {
                pid,
                rss_before: procfs::rss_bytes(pid).ok(),
                rss_idle: None,
                rss_end: None,
                rss_peak: None,
                fds_end: None,
            })
            .collect();
        self.connect_all();
        let idle_end = (Instant::now() + self.cfg.idle).min(self.deadline);
        while Instant::now() < idle_end {
            self.turn(idle_end.saturating_duration_since(Instant::now()));
        }
        for s in &mut servers {
            s.rss_idle = procfs::rss_bytes(s.pid).ok();
        }
        let tcp_mem_idle = procfs::tcp_mem_bytes().ok();
        let cpu0 = cpu_sum(pids);
        let tool0 = procfs::self_cpu_seconds();
        self.announce_ready();
        self.timeline.mark_publish(Instant::now());
        let hit_duration = if self.cfg.publish {
            self.publish_all()
        } else {
            self.wait_for_all()
        };
        let cpu1 = cpu_sum(pids);
        self.timeline.finish(Instant::now(), self.deliveries.unique);
        let tcp_mem_end = procfs::tcp_mem_bytes().ok();
        let tool_cpu = procfs::self_cpu_seconds() - tool0;
        for s in &mut servers {
            s.rss_end = procfs::rss_bytes(s.pid).ok();
            s.rss_peak = procfs::peak_rss_bytes(s.pid).ok();
            s.fds_end = procfs::fd_count(s.pid).ok();
        }
        let p = self.publisher.as_ref();
        let first_ns = match p {
            Some(p) => p.first_sent_ns,
            None => self.deliveries.first_stamp_ns,
        };
        let mut to_last = Histogram::new();
        let d = &self.deliveries;
        for (&n, &t) in d.per_seq.iter().zip(&d.to_last) {
            if n > 0 {
                to_last.record(t);
            }
        }
        let last_ns = self.deliveries.last_ns;
        let wall = match (first_ns, last_ns) {
            (Some(f), Some(l)) => Duration::from_nanos(l.saturating_sub(f)),
            _ => Duration::ZERO,
        };
        Outcome {
            published: self.published,
            answered: p.map_or(0, Publishing::answered),
            publish_errors: p.map_or(0, Publishing::errors),
            acked_per_s: p.map_or(0.0, Publishing::acked_per_s),
            stalls: p.map_or(0, |p| p.stalls),
            wall,
            first_ns,
            last_ns,
            hit_duration,
            server_cpu: cpu0.zip(cpu1).map(|(a, b)| b - a),
            servers,
            tcp_mem_idle,
            tcp_mem_end,
            tool_cpu,
            subs: self.counts,
            deliveries: self.deliveries,
            latency: self.latency,
            to_last,
            samples: std::mem::take(&mut self.timeline.samples),
            publish_at: self.timeline.publish_at,
            notes: self.notes,
            // Last: `p` borrows the publisher until here.
            ack_latency: self
                .publisher
                .take()
                .map_or_else(Histogram::new, |p| p.acks),
        }
    }

    /// Tells a script that every subscriber is connected: `READY <n>` on stderr (with
    /// --no-publish) and in --ready-file (written aside, then renamed, so it is whole when seen).
    fn announce_ready(&mut self) {
        let line = format!("READY {}\n", self.counts.ready + self.counts.stalled_ready);
        if !self.cfg.publish {
            eprint!("{line}");
        }
        if let Some(path) = &self.cfg.ready_file {
            let mut tmp = path.clone().into_os_string();
            tmp.push(".tmp");
            let result = std::fs::write(&tmp, &line).and_then(|()| std::fs::rename(&tmp, path));
            if let Err(e) = result {
                self.note(format!("ready file: {}: {e}", path.display()));
            }
        }
    }

    fn note(&mut self, what: String) {
        let kind = what.split(':').next().unwrap_or("");
        if !self.notes.iter().any(|n| n.split(':').next() == Some(kind)) {
            self.notes.push(what);
        }
    }

    /// Connects every subscriber, MAX_PENDING at a time, until all are streaming or failed, or
    /// half of --duration has gone.
    fn connect_all(&mut self) {
        let bound = self.origin + self.cfg.duration / 2;
        loop {
            while self.counts.in_flight < MAX_PENDING && self.next_connect < self.subs.len() {
                self.start_connect(self.next_connect);
                self.next_connect += 1;
            }
            let now = Instant::now();
            self.expire_handshakes(now);
            if self.next_connect == self.subs.len() && self.counts.in_flight == 0 {
                return;
            }
            if now >= bound {
                break;
            }
            self.turn(bound.saturating_duration_since(now).min(MAX_POLL));
        }
        for i in 0..self.subs.len() {
            match self.subs[i].phase {
                Phase::Unstarted => self.counts.not_started += 1,
                Phase::Connecting | Phase::Requesting | Phase::ReadingHead => self.fail(
                    i,
                    |c| &mut c.timed_out,
                    "timed out: connect phase bound".into(),
                ),
                _ => {}
            }
        }
    }

    fn expire_handshakes(&mut self, now: Instant) {
        while let Some(&(t, i)) = self.pending.front() {
            let in_flight = matches!(
                self.subs[i].phase,
                Phase::Connecting | Phase::Requesting | Phase::ReadingHead
            );
            if in_flight && now.saturating_duration_since(t) < HANDSHAKE_TIMEOUT {
                break;
            }
            self.pending.pop_front();
            if in_flight {
                let msg = format!("timed out: no response head within {HANDSHAKE_TIMEOUT:?}");
                self.fail(i, |c| &mut c.timed_out, msg);
            }
        }
    }

    fn open_socket(&self, i: usize) -> io::Result<TcpStream> {
        let sock = Socket::new(
            Domain::IPV4,
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )?;
        if self.subs[i].stalled {
            // Before connect(), so that the window it advertises is small from the start.
            sock.set_recv_buffer_size(self.cfg.stall_rcvbuf)?;
        }
        if self.cfg.source_addrs > 1 {
            // Let connect() pick the port, so each source address has a full port range per
            // destination rather than one shared by every bind().
            let one: libc::c_int = 1;
            // SAFETY: a valid fd and a c_int option value of the right size.
            let rc = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&sock),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            let last = 1 + (i % self.cfg.source_addrs) as u8;
            let src = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, last), 0));
            sock.bind(&src.into())?;
        }
        match sock.connect(&self.cfg.target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        Ok(TcpStream::from_std(sock.into()))
    }

    fn start_connect(&mut self, i: usize) {
        let mut stream = match self.open_socket(i) {
            Ok(s) => s,
            Err(e) => {
                let hint = if e.raw_os_error() == Some(libc::EMFILE) {
                    " (raise ulimit -n)"
                } else if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
                    " (out of ports: use --source-addrs)"
                } else {
                    ""
                };
                self.counts.in_flight += 1;
                self.subs[i].phase = Phase::Connecting;
                self.fail(i, |c| &mut c.connect_failed, format!("connect: {e}{hint}"));
                return;
            }
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(i), interest)
        {
            self.counts.in_flight += 1;
            self.subs[i].phase = Phase::Connecting;
            self.fail(i, |c| &mut c.connect_failed, format!("register: {e}"));
            return;
        }
        let sub = &mut self.subs[i];
        sub.stream = Some(stream);
        sub.phase = Phase::Connecting;
        self.counts.in_flight += 1;
        self.pending.push_back((Instant::now(), i));
    }

    /// Ends a handshake that did not make it, counting it under `which`.
    fn fail(&mut self, i: usize, which: fn(&mut SubCounts) -> &mut usize, why: String) {
        let sub = &mut self.subs[i];
        sub.stream = None;
        sub.head = Vec::new();
        sub.phase = Phase::Failed;
        self.counts.in_flight -= 1;
        *which(&mut self.counts) += 1;
        self.note(why);
    }

    /// One poll and its dispatch; subscribers cut short by READS_PER_EVENT go again first.
    fn turn(&mut self, timeout: Duration) {
        // Bounded, so the progress line moves even when nothing happens.
        let timeout = if self.again.is_empty() {
            timeout.min(MAX_POLL)
        } else {
            Duration::ZERO
        };
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                self.note(format!("poll: {e}"));
            }
            return;
        }
        let again = std::mem::take(&mut self.again);
        for i in again {
            self.on_subscriber(i, false);
        }
        let ready: Vec<(Token, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                let ended = e.is_read_closed() || e.is_error();
                (e.token(), e.is_writable() || e.is_error(), ended)
            })
            .collect();
        for (token, writable, ended) in ready {
            if token.0 > TOKEN_PUBLISHER_TOP - self.cfg.publishers {
                self.on_publisher(TOKEN_PUBLISHER_TOP - token.0, writable);
            } else if token.0 < self.subs.len() {
                self.on_subscriber(token.0, ended);
            }
        }
        self.tick();
    }

    /// Closes the second's sample when one has passed (and redraws the progress line).
    fn tick(&mut self) {
        let progress = Progress {
            ready: self.counts.ready + self.counts.stalled_ready,
            subs: self.subs.len(),
            published: self.published,
            messages: self.cfg.messages,
            delivered: self.deliveries.unique,
        };
        self.timeline.tick(Instant::now(), &progress);
    }

    fn on_subscriber(&mut self, i: usize, ended: bool) {
        let sub = &self.subs[i];
        match sub.phase {
            Phase::Streaming if sub.stalled => {
                if ended {
                    self.on_stalled_closed(i);
                }
            }
            Phase::Connecting => self.on_connected(i),
            Phase::Requesting => self.send_request(i),
            Phase::Repolling => {
                self.send_request(i);
                // An answer may have come in with this event; edge-triggered, it is read now
                // or never.
                if matches!(self.subs[i].phase, Phase::Streaming) {
                    self.read_subscriber(i);
                }
            }
            Phase::ReadingHead | Phase::Streaming => self.read_subscriber(i),
            Phase::Unstarted | Phase::Failed | Phase::Closed => {}
        }
    }

    /// A stalled subscriber's connection ended without it reading: the server gave up on it.
    fn on_stalled_closed(&mut self, i: usize) {
        let sub = &mut self.subs[i];
        sub.stream = None;
        sub.phase = Phase::Closed;
        self.counts.stalled_closed += 1;
    }

    fn on_connected(&mut self, i: usize) {
        let Some(stream) = self.subs[i].stream.as_ref() else {
            return;
        };
        let result = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => stream.peer_addr(),
        };
        match result {
            Ok(_) => {
                self.subs[i].phase = Phase::Requesting;
                self.send_request(i);
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {} // not yet: a spurious wakeup
            Err(e) => self.fail(i, |c| &mut c.connect_failed, format!("connect: {e}")),
        }
    }

    /// Writes the subscribe request (a long-poll: its first poll, or with Repolling its next
    /// one) as far as the socket takes it.
    fn send_request(&mut self, i: usize) {
        let sub = &mut self.subs[i];
        let repolling = matches!(sub.phase, Phase::Repolling);
        let Some(stream) = sub.stream.as_mut() else {
            return;
        };
        let request = if repolling {
            &sub.repoll
        } else {
            &self.request
        };
        while sub.written < request.len() {
            match stream.write(&request[sub.written..]) {
                Ok(n) => sub.written += n,
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if repolling => {
                    self.on_subscriber_closed(i, format!("send poll: {e}"));
                    return;
                }
                Err(e) => {
                    self.fail(i, |c| &mut c.connect_failed, format!("send request: {e}"));
                    return;
                }
            }
        }
        if repolling {
            // Not read here: a read may find the next answer and send again (see on_answers).
            sub.phase = Phase::Streaming;
            sub.repoll.clear();
        } else if self.cfg.transport == Transport::LongPoll {
            self.on_first_poll_sent(i);
            if !self.subs[i].stalled {
                self.read_subscriber(i);
            }
        } else {
            sub.phase = Phase::ReadingHead;
            self.read_subscriber(i);
        }
    }

    /// A long-poll subscriber is ready once its first poll is out: the server answers only when
    /// there is a message, and the poll's `since=0` covers one published before it is seen.
    fn on_first_poll_sent(&mut self, i: usize) {
        let sub = &mut self.subs[i];
        sub.phase = Phase::Streaming;
        self.counts.in_flight -= 1;
        if sub.stalled {
            self.counts.stalled_ready += 1;
            return;
        }
        sub.seen = vec![0; self.cfg.messages.div_ceil(64)];
        self.counts.ready += 1;
        self.counts.streaming += 1;
    }

    /// A long-poll subscriber's whole answers, in order: each one's markers are deliveries;
    /// then the next poll goes out, from where the last answer left off.
    fn on_answers(&mut self, i: usize, now: Instant) {
        let flavor = self.cfg.flavor;
        let mut pos = 0;
        let mut answered = false;
        loop {
            let sub = &mut self.subs[i];
            let (head, len) = match http::parse_whole(&sub.answer[pos..]) {
                Parsed::Complete(whole) => whole,
                Parsed::Partial if sub.answer.len() - pos > ANSWER_MAX => {
                    self.on_subscriber_closed(i, "long-poll answer: too long".into());
                    return;
                }
                Parsed::Partial => break,
                Parsed::Invalid(why) => {
                    self.on_subscriber_closed(i, format!("long-poll answer: {why}"));
                    return;
                }
            };
            let body = &sub.answer[pos + head.len..pos + len];
            let next = longpoll::next(flavor, &head, body);
            if head.status == 200 {
                let mut ctx = marker_ctx!(self, sub, now);
                marker::scan(body, |seq, t| ctx.on_marker(seq, t));
            }
            pos += len;
            answered = true;
            match next {
                longpoll::Next::From(cursor) => sub.cursor = cursor,
                longpoll::Next::Same => {}
                longpoll::Next::Stop(status) => {
                    let why = format!("long-poll answer: status {status}");
                    self.on_subscriber_closed(i, why);
                    return;
                }
            }
        }
        let sub = &mut self.subs[i];
        sub.answer.drain(..pos);
        if answered {
            sub.repoll = self.cfg.poll_request(&sub.cursor);
            sub.written = 0;
            sub.phase = Phase::Repolling;
            self.send_request(i);
        }
    }

    /// Reads until a short read or WouldBlock (or READS_PER_EVENT); each read is prefixed with
    /// the previous read's unfinished marker and scanned for markers.
    fn read_subscriber(&mut self, i: usize) {
        for _ in 0..READS_PER_EVENT {
            let sub = &mut self.subs[i];
            let Some(stream) = sub.stream.as_mut() else {
                return;
            };
            let tl = sub.tail.bytes().len();
            self.buf[..tl].copy_from_slice(sub.tail.bytes());
            let n = match stream.read(&mut self.buf[tl..]) {
                Ok(0) => {
                    self.on_subscriber_closed(i, "closed by server".into());
                    return;
                }
                Ok(n) => n,
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.on_subscriber_closed(i, format!("read: {e}"));
                    return;
                }
            };
            // A read that did not fill the buffer drained the socket: edge-triggered readiness
            // reports whatever arrives after it (bytes or the end), so asking again would only
            // cost a second system call that says EAGAIN. The floor's reader reads once too.
            let drained = tl + n < self.buf.len();
            let now = Instant::now();
            if matches!(sub.phase, Phase::ReadingHead) {
                sub.head.extend_from_slice(&self.buf[tl..tl + n]);
                self.on_head(i, now);
                if self.subs[i].stalled {
                    return; // it reads no further, whatever the head's outcome
                }
            } else if self.cfg.transport == Transport::LongPoll {
                sub.answer.extend_from_slice(&self.buf[tl..tl + n]);
                self.on_answers(i, now);
                if !matches!(self.subs[i].phase, Phase::Streaming | Phase::Repolling) {
                    return;
                }
            } else {
                let keep = {
                    let data = &self.buf[..tl + n];
                    let mut ctx = marker_ctx!(self, sub, now);
                    marker::scan(data, |seq, t| ctx.on_marker(seq, t))
                };
                sub.tail.set(&self.buf[keep..tl + n]);
            }
            if drained {
                return;
            }
        }
        self.again.push(i);
    }

    fn on_head(&mut self, i: usize, now: Instant) {
        let sub = &mut self.subs[i];
        let head = match http::parse_head(&sub.head) {
            Parsed::Partial => return,
            Parsed::Invalid(why) => {
                self.fail(i, |c| &mut c.bad_response, format!("bad response: {why}"));
                return;
            }
            Parsed::Complete(h) => h,
        };
        let want = self.cfg.transport.ready_status();
        if head.status != want {
            let msg = format!("bad response: status {} (want {want})", head.status);
            self.fail(i, |c| &mut c.bad_response, msg);
            return;
        }
        let rest = sub.head.split_off(head.len);
        sub.head = Vec::new();
        sub.phase = Phase::Streaming;
        self.counts.in_flight -= 1;
        if sub.stalled {
            self.counts.stalled_ready += 1;
            return;
        }
        sub.seen = vec![0; self.cfg.messages.div_ceil(64)];
        self.counts.ready += 1;
        self.counts.streaming += 1;
        let mut ctx = marker_ctx!(self, sub, now);
        let keep = marker::scan(&rest, |seq, t| ctx.on_marker(seq, t));
        sub.tail.set(&rest[keep..]);
    }

    fn on_subscriber_closed(&mut self, i: usize, why: String) {
        match self.subs[i].phase {
            Phase::ReadingHead => {
                self.fail(i, |c| &mut c.bad_response, format!("bad response: {why}"));
            }
            _ => {
                let sub = &mut self.subs[i];
                sub.stream = None;
                sub.phase = Phase::Closed;
                self.counts.streaming -= 1;
                self.counts.closed_during_run += 1;
                self.note(format!("subscriber stream ended: {why}"));
            }
        }
    }

    /// With --no-publish: reads until every reader has --expect messages, --quiet-secs after
    /// the last delivery (none yet: keep waiting), or --duration. Returns whether --duration
    /// cut it short.
    fn wait_for_all(&mut self) -> bool {
        let expected = self.counts.ready as u64 * self.cfg.messages as u64;
        loop {
            let now = Instant::now();
            if self.deliveries.unique >= expected {
                return false;
            }
            if let Some(last) = self.deliveries.last {
                if now.saturating_duration_since(last) >= self.cfg.quiet {
                    return false;
                }
            }
            if now >= self.deadline {
                self.note(format!("stopped at --duration {:?}", self.cfg.duration));
                return true;
            }
            self.turn(MAX_POLL.min(self.deadline.saturating_duration_since(now)));
        }
    }

    /// Connects one publisher connection, registered under `token`.
    fn connect_publisher(&self, token: Token) -> io::Result<Publisher> {
        let target = self.cfg.publish_target;
        let s = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(s);
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut stream, token, interest)?;
        Ok(Publisher {
            stream,
            writable: true,
            out: Vec::new(),
            out_pos: 0,
            inbuf: Vec::new(),
            in_flight: 0,
            queued: VecDeque::new(),
            answered: 0,
            errors: 0,
            failed: false,
            last_answer: Instant::now(),
        })
    }

    /// Publishes every message, paced by --rate / --one-at-a-time / --pipeline and spread over
    /// --publishers connections, and drains the deliveries. Returns whether --duration cut it
    /// short.
    fn publish_all(&mut self) -> bool {
        let mut conns = Vec::with_capacity(self.cfg.publishers);
        for k in 0..self.cfg.publishers {
            match self.connect_publisher(publisher_token(k)) {
                Ok(p) => conns.push(p),
                Err(e) => {
                    self.note(format!("publisher: connect: {e}"));
                    return false;
                }
            }
        }
        let now = Instant::now();
        self.publisher = Some(Publishing {
            conns,
            next_seq: 0,
            next_conn: 0,
            stalls: 0,
            started: now,
            first_sent_ns: None,
            last_sent: now,
            acks: Histogram::new(),
        });
        self.publishing = true;
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                self.note(format!("stopped at --duration {:?}", self.cfg.duration));
                return true;
            }
            let wait = self.feed_publisher(now);
            let p = self.publisher.as_ref().expect("publisher");
            let all_sent =
                p.all_failed() || (p.next_seq == self.cfg.messages && p.in_flight() == 0);
            if all_sent {
                let expected = self.counts.ready as u64 * self.published as u64;
                let last = self
                    .deliveries
                    .last
                    .unwrap_or(p.started)
                    .max(p.last_answer());
                if self.deliveries.unique >= expected
                    || now.saturating_duration_since(last) >= self.cfg.quiet
                {
                    return false;
                }
            }
            let timeout = wait
                .min(MAX_POLL)
                .min(self.deadline.saturating_duration_since(now));
            self.turn(timeout);
        }
    }

    /// Queues and writes what the pacing allows, each message on the next connection (round
    /// robin) with room in its pipeline; returns how long until it may allow more.
    fn feed_publisher(&mut self, now: Instant) -> Duration {
        let cfg = self.cfg;
        let Some(p) = self.publisher.as_mut() else {
            return MAX_POLL;
        };
        let mut wait = MAX_POLL;
        let mut body = Vec::with_capacity(cfg.size + marker::MARKER_MAX);
        let mut added = 0;
        let n = p.conns.len();
        while p.next_seq < cfg.messages && added < cfg.pipeline * n {
            let Some(k) = (0..n)
                .map(|j| (p.next_conn + j) % n)
                .find(|&k| !p.conns[k].failed && p.conns[k].in_flight < cfg.pipeline)
            else {
                break;
            };
            if cfg.rate > 0.0 {
                let due = p.started + Duration::from_secs_f64(p.next_seq as f64 / cfg.rate);
                if now < due {
                    wait = due - now;
                    break;
                }
            }
            if cfg.one_at_a_time && p.next_seq > 0 {
                let done =
                    self.deliveries.per_seq[p.next_seq - 1] as usize >= self.counts.streaming;
                if !done {
                    let waited = now.saturating_duration_since(p.last_sent);
                    if waited < ONE_AT_A_TIME_WAIT {
                        wait = ONE_AT_A_TIME_WAIT - waited;
                        break;
                    }
                    p.stalls += 1;
                }
            }
            let stamp = Instant::now();
            let t_ns = wall_ns();
            body.clear();
            marker::encode_body(p.next_seq as u64, t_ns, cfg.size, &mut body);
            let conn = &mut p.conns[k];
            conn.out.extend_from_slice(&cfg.publish_head(body.len()));
            conn.out.extend_from_slice(&body);
            conn.in_flight += 1;
            conn.queued.push_back(stamp);
            p.next_seq += 1;
            p.next_conn = (k + 1) % n;
            p.last_sent = stamp;
            p.first_sent_ns.get_or_insert(t_ns);
            added += 1;
        }
        self.published = p.next_seq;
        let mut failures = Vec::new();
        for conn in p.conns.iter_mut().filter(|c| !c.failed) {
            if let Err(e) = conn.flush() {
                conn.failed = true;
                failures.push(format!("publisher: write: {e}"));
            }
        }
        for f in failures {
            self.note(f);
        }
        wait
    }

    fn on_publisher(&mut self, k: usize, writable: bool) {
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        let pending = p.next_seq < self.cfg.messages;
        let acks = &mut p.acks;
        let Some(conn) = p.conns.get_mut(k) else {
            return;
        };
        if conn.failed {
            return;
        }
        if writable {
            conn.writable = true;
        }
        let result = conn.read_answers(acks).and_then(|()| conn.flush());
        if let Err(e) = result {
            conn.failed = true;
            if pending || conn.in_flight > 0 {
                self.note(format!("publisher: {e}"));
            }
        }
    }
}

impl Publisher {
    fn flush(&mut self) -> io::Result<()> {
        while self.writable && self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(n) => self.out_pos += n,
                Err(e) if would_block(&e) => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        Ok(())
    }

    /// Reads and counts whole answers, timing each from when its request was queued; a non-2xx
    /// answer is a publish error.
    fn read_answers(&mut self, acks: &mut Histogram) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        for _ in 0..READS_PER_EVENT * 16 {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed by server",
                    ))
                }
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut pos = 0;
        loop {
            match http::parse_response(&self.inbuf[pos..]) {
                Parsed::Complete((status, len)) => {
                    pos += len;
                    self.answered += 1;
                    self.in_flight = self.in_flight.saturating_sub(1);
                    self.last_answer = Instant::now();
                    if let Some(queued) = self.queued.pop_front() {
                        let ns = self
                            .last_answer
                            .saturating_duration_since(queued)
                            .as_nanos();
                        acks.record(u64::try_from(ns).unwrap_or(u64::MAX));
                    }
                    if !(200..300).contains(&status) {
                        self.errors += 1;
                    }
                }
                Parsed::Partial => break,
                Parsed::Invalid(why) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, why));
                }
            }
        }
        self.inbuf.drain(..pos);
        Ok(())
    }
}

/// What one marker needs: its subscriber's bitset and the totals.
struct MarkerCtx<'s> {
    seen: &'s mut [u64],
    order: &'s mut Order,
    d: &'s mut Deliveries,
    latency: &'s mut Histogram,
    /// This second's latencies (the progress line and --plot).
    window: &'s mut Histogram,
    publishing: bool,
    published: usize,
    not_before_ns: u64,
    now: Instant,
    /// Wall clock, comparable with the stamps of another process.
    now_ns: u64,
}

impl Deliveries {
    /// Per message that reached anyone, in order: (seq, time to its last subscriber in ns,
    /// subscribers that had it).
    pub fn per_message(&self) -> impl Iterator<Item = (usize, u64, u32)> + '_ {
        self.per_seq
            .iter()
            .zip(&self.to_last)
            .enumerate()
            .filter(|(_, (&n, _))| n > 0)
            .map(|(seq, (&n, &t))| (seq, t, n))
    }
}

impl MarkerCtx<'_> {
    fn on_marker(&mut self, seq: u64, t_ns: u64) {
        if !self.publishing || seq >= self.published as u64 || t_ns < self.not_before_ns {
            self.d.stale += 1;
            return;
        }
        self.d.received += 1;
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.seen[word] & bit != 0 {
            self.d.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.d.unique += 1;
        if self.order.on_seq(seq) {
            self.d.out_of_order += 1;
        }
        self.d.per_seq[seq as usize] += 1;
        self.d.last = Some(self.now);
        self.d.last_ns = Some(self.now_ns);
        self.d.first_stamp_ns = Some(self.d.first_stamp_ns.map_or(t_ns, |f| f.min(t_ns)));
        // One clock, so only a step of it between stamp and read could make this negative.
        let latency = self.now_ns.saturating_sub(t_ns);
        self.latency.record(latency);
        self.window.record(latency);
        let to_last = &mut self.d.to_last[seq as usize];
        *to_last = (*to_last).max(latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        let cases: &[(usize, u64, f64)] = &[
            // (count, span ms, per second)
            (0, 1000, 0.0),
            (5, 0, 0.0),
            (1000, 1000, 1000.0),
            (300, 2000, 150.0),
            (1, 4, 250.0),
        ];
        for &(count, ms, want) in cases {
            assert_eq!(
                per_second(count, Duration::from_millis(ms)),
                want,
                "{count} in {ms} ms"
            );
        }
    }
}
