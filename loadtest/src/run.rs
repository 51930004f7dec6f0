//! One run, on one thread and one mio loop: connect the subscribers (a bounded number at a time),
//! let them idle, then publish on one keep-alive connection while the same loop reads every
//! subscriber, and stop when every message has reached every subscriber, when deliveries stop
//! coming, or at --duration.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::hist::Histogram;
use crate::http::{self, Parsed};
use crate::marker::{self, Tail};
use crate::procfs;

/// Connects (and handshakes) in flight at once, so a listen backlog is never flooded.
const MAX_PENDING: usize = 512;
/// A subscriber that has not had its response head this long after connect() is given up.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads per subscriber per readiness event before it yields to the others.
const READS_PER_EVENT: usize = 64;
const READ_BUF: usize = 256 * 1024;
/// With everything published and answered, the run ends after this long with no delivery.
const DRAIN_QUIET: Duration = Duration::from_secs(2);
/// --one-at-a-time publishes the next message anyway if the previous one has not reached every
/// subscriber within this time (it is then counted as a stall; the loss shows in the totals).
const ONE_AT_A_TIME_WAIT: Duration = Duration::from_secs(2);
/// The longest poll; the loop re-checks its deadlines at least this often.
const MAX_POLL: Duration = Duration::from_millis(50);
const TOKEN_PUBLISHER: Token = Token(usize::MAX - 1);

enum Phase {
    Unstarted,   // next: Connecting | Failed
    Connecting,  // next: Requesting | Failed
    Requesting,  // request partly written; next: ReadingHead | Failed
    ReadingHead, // next: Streaming | Failed
    Streaming,   // next: Closed
    Failed,      // connect or handshake failed; counted once
    Closed,      // the server ended the stream during the run
}

struct Sub {
    stream: Option<TcpStream>,
    phase: Phase,
    written: usize,
    /// The response head so far; empty once streaming.
    head: Vec<u8>,
    tail: Tail,
    /// One bit per message seq.
    seen: Vec<u64>,
}

/// What every subscriber saw, summed.
#[derive(Default)]
pub struct Deliveries {
    /// Markers of published messages, duplicates included.
    pub received: u64,
    pub unique: u64,
    pub duplicates: u64,
    /// Markers that are not from this run's publishing (before it began, unknown seq).
    pub stale: u64,
    /// Unique deliveries per seq, for --one-at-a-time.
    per_seq: Vec<u32>,
    last: Option<Instant>,
}

#[derive(Default)]
pub struct SubCounts {
    pub ready: usize,
    pub connect_failed: usize,
    pub bad_response: usize,
    pub timed_out: usize,
    pub not_started: usize,
    pub closed_during_run: usize,
    /// Subscribers currently streaming.
    streaming: usize,
    in_flight: usize,
}

pub struct Outcome {
    pub subs: SubCounts,
    pub deliveries: Deliveries,
    pub latency: Histogram,
    pub published: usize,
    pub answered: usize,
    pub publish_errors: usize,
    pub stalls: usize,
    /// First publish to last delivery.
    pub wall: Duration,
    pub hit_duration: bool,
    pub server_cpu: Option<f64>,
    pub rss_before: Option<u64>,
    pub rss_idle: Option<u64>,
    pub tool_cpu: f64,
    /// One line each: the first error of each kind.
    pub notes: Vec<String>,
}

struct Publisher {
    stream: TcpStream,
    writable: bool,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    next_seq: usize,
    in_flight: usize,
    answered: usize,
    errors: usize,
    stalls: usize,
    failed: bool,
    started: Instant,
    first_sent: Option<Instant>,
    last_sent: Instant,
    last_answer: Instant,
}

pub struct Runner<'a> {
    cfg: &'a Config,
    poll: Poll,
    events: Events,
    subs: Vec<Sub>,
    request: Vec<u8>,
    origin: Instant,
    deadline: Instant,
    buf: Vec<u8>,
    /// Subscribers left with unread data by READS_PER_EVENT.
    again: Vec<usize>,
    /// (connect time, index) of handshakes in flight, oldest first; entries of finished ones
    /// are skipped when reached.
    pending: VecDeque<(Instant, usize)>,
    next_connect: usize,
    publisher: Option<Publisher>,
    /// Messages stamped so far; a marker with a higher seq is stale.
    published: usize,
    publishing: bool,
    counts: SubCounts,
    deliveries: Deliveries,
    latency: Histogram,
    notes: Vec<String>,
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl<'a> Runner<'a> {
    pub fn new(cfg: &'a Config, origin: Instant) -> io::Result<Self> {
        let subs = (0..cfg.subs)
            .map(|_| Sub {
                stream: None,
                phase: Phase::Unstarted,
                written: 0,
                head: Vec::new(),
                tail: Tail::default(),
                seen: Vec::new(),
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
            buf: vec![0; marker::MARKER_MAX + READ_BUF],
            again: Vec::new(),
            pending: VecDeque::new(),
            next_connect: 0,
            publisher: None,
            published: 0,
            publishing: false,
            counts: SubCounts::default(),
            deliveries: Deliveries {
                per_seq: vec![0; cfg.messages],
                ..Deliveries::default()
            },
            latency: Histogram::new(),
            notes: Vec::new(),
        })
    }

    /// The whole run; never takes longer than --duration (plus one poll).
    pub fn run(mut self) -> Outcome {
        let pid = self.cfg.server_pid;
        let rss_before = pid.and_then(|p| procfs::rss_bytes(p).ok());
        self.connect_all();
        let idle_end = (Instant::now() + self.cfg.idle).min(self.deadline);
        while Instant::now() < idle_end {
            self.turn(idle_end.saturating_duration_since(Instant::now()));
        }
        let rss_idle = pid.and_then(|p| procfs::rss_bytes(p).ok());
        let cpu0 = pid.and_then(|p| procfs::cpu_seconds(p).ok());
        let tool0 = procfs::self_cpu_seconds();
        let hit_duration = self.publish_all();
        let cpu1 = pid.and_then(|p| procfs::cpu_seconds(p).ok());
        let tool_cpu = procfs::self_cpu_seconds() - tool0;
        let p = self.publisher.as_ref();
        let first = p.and_then(|p| p.first_sent);
        let wall = match (first, self.deliveries.last) {
            (Some(f), Some(l)) => l.saturating_duration_since(f),
            _ => Duration::ZERO,
        };
        Outcome {
            published: self.published,
            answered: p.map_or(0, |p| p.answered),
            publish_errors: p.map_or(0, |p| p.errors),
            stalls: p.map_or(0, |p| p.stalls),
            wall,
            hit_duration,
            server_cpu: cpu0.zip(cpu1).map(|(a, b)| b - a),
            rss_before,
            rss_idle,
            tool_cpu,
            subs: self.counts,
            deliveries: self.deliveries,
            latency: self.latency,
            notes: self.notes,
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
        let timeout = if self.again.is_empty() {
            timeout
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
            self.on_subscriber(i);
        }
        let ready: Vec<(Token, bool)> = self
            .events
            .iter()
            .map(|e| (e.token(), e.is_writable() || e.is_error()))
            .collect();
        for (token, writable) in ready {
            if token == TOKEN_PUBLISHER {
                self.on_publisher(writable);
            } else if token.0 < self.subs.len() {
                self.on_subscriber(token.0);
            }
        }
    }

    fn on_subscriber(&mut self, i: usize) {
        match self.subs[i].phase {
            Phase::Connecting => self.on_connected(i),
            Phase::Requesting => self.send_request(i),
            Phase::ReadingHead | Phase::Streaming => self.read_subscriber(i),
            Phase::Unstarted | Phase::Failed | Phase::Closed => {}
        }
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

    fn send_request(&mut self, i: usize) {
        let sub = &mut self.subs[i];
        let Some(stream) = sub.stream.as_mut() else {
            return;
        };
        while sub.written < self.request.len() {
            match stream.write(&self.request[sub.written..]) {
                Ok(n) => sub.written += n,
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(i, |c| &mut c.connect_failed, format!("send request: {e}"));
                    return;
                }
            }
        }
        sub.phase = Phase::ReadingHead;
        self.read_subscriber(i);
    }

    /// Reads until WouldBlock (or READS_PER_EVENT); each read is prefixed with the previous
    /// read's unfinished marker and scanned for markers.
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
            let now = Instant::now();
            if matches!(sub.phase, Phase::ReadingHead) {
                sub.head.extend_from_slice(&self.buf[tl..tl + n]);
                self.on_head(i, now);
            } else {
                let keep = {
                    let data = &self.buf[..tl + n];
                    let mut ctx = MarkerCtx {
                        seen: &mut sub.seen,
                        d: &mut self.deliveries,
                        latency: &mut self.latency,
                        publishing: self.publishing,
                        published: self.published,
                        now,
                        now_ns: now.saturating_duration_since(self.origin).as_nanos() as u64,
                    };
                    marker::scan(data, |seq, t| ctx.on_marker(seq, t))
                };
                sub.tail.set(&self.buf[keep..tl + n]);
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
        if head.status != 200 {
            let msg = format!("bad response: status {} (want 200)", head.status);
            self.fail(i, |c| &mut c.bad_response, msg);
            return;
        }
        let rest = sub.head.split_off(head.len);
        sub.head = Vec::new();
        sub.phase = Phase::Streaming;
        sub.seen = vec![0; self.cfg.messages.div_ceil(64)];
        self.counts.in_flight -= 1;
        self.counts.ready += 1;
        self.counts.streaming += 1;
        let mut ctx = MarkerCtx {
            seen: &mut sub.seen,
            d: &mut self.deliveries,
            latency: &mut self.latency,
            publishing: self.publishing,
            published: self.published,
            now,
            now_ns: now.saturating_duration_since(self.origin).as_nanos() as u64,
        };
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

    /// Publishes every message, paced by --rate / --one-at-a-time / --pipeline, and drains the
    /// deliveries. Returns whether --duration cut it short.
    fn publish_all(&mut self) -> bool {
        let stream =
            match std::net::TcpStream::connect_timeout(&self.cfg.target, Duration::from_secs(5))
                .and_then(|s| {
                    s.set_nodelay(true)?;
                    s.set_nonblocking(true)?;
                    Ok(TcpStream::from_std(s))
                }) {
                Ok(s) => s,
                Err(e) => {
                    self.note(format!("publisher: connect: {e}"));
                    return false;
                }
            };
        let now = Instant::now();
        let mut p = Publisher {
            stream,
            writable: true,
            out: Vec::new(),
            out_pos: 0,
            inbuf: Vec::new(),
            next_seq: 0,
            in_flight: 0,
            answered: 0,
            errors: 0,
            stalls: 0,
            failed: false,
            started: now,
            first_sent: None,
            last_sent: now,
            last_answer: now,
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut p.stream, TOKEN_PUBLISHER, interest)
        {
            self.note(format!("publisher: register: {e}"));
            return false;
        }
        self.publisher = Some(p);
        self.publishing = true;
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                self.note(format!("stopped at --duration {:?}", self.cfg.duration));
                return true;
            }
            let wait = self.feed_publisher(now);
            let p = self.publisher.as_ref().expect("publisher");
            let all_sent = p.failed || (p.next_seq == self.cfg.messages && p.in_flight == 0);
            if all_sent {
                let expected = self.counts.ready as u64 * self.published as u64;
                let last = self.deliveries.last.unwrap_or(p.started).max(p.last_answer);
                if self.deliveries.unique >= expected
                    || now.saturating_duration_since(last) >= DRAIN_QUIET
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

    /// Queues and writes what the pacing allows; returns how long until it may allow more.
    fn feed_publisher(&mut self, now: Instant) -> Duration {
        let cfg = self.cfg;
        let Some(p) = self.publisher.as_mut() else {
            return MAX_POLL;
        };
        if p.failed {
            return MAX_POLL;
        }
        let mut wait = MAX_POLL;
        let mut body = Vec::with_capacity(cfg.size + marker::MARKER_MAX);
        let mut added = 0;
        while p.next_seq < cfg.messages && p.in_flight < cfg.pipeline && added < cfg.pipeline {
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
            let t_ns = stamp.saturating_duration_since(self.origin).as_nanos() as u64;
            body.clear();
            marker::encode_body(p.next_seq as u64, t_ns, cfg.size, &mut body);
            p.out.extend_from_slice(&cfg.publish_head(body.len()));
            p.out.extend_from_slice(&body);
            p.next_seq += 1;
            p.in_flight += 1;
            p.last_sent = stamp;
            p.first_sent.get_or_insert(stamp);
            added += 1;
        }
        self.published = p.next_seq;
        if let Err(e) = p.flush() {
            p.failed = true;
            self.note(format!("publisher: write: {e}"));
        }
        wait
    }

    fn on_publisher(&mut self, writable: bool) {
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        if p.failed {
            return;
        }
        if writable {
            p.writable = true;
        }
        let result = p.read_answers().and_then(|()| p.flush());
        if let Err(e) = result {
            p.failed = true;
            let pending = p.next_seq < self.cfg.messages || p.in_flight > 0;
            if pending {
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

    /// Reads and counts whole answers; a non-2xx answer is a publish error.
    fn read_answers(&mut self) -> io::Result<()> {
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
    d: &'s mut Deliveries,
    latency: &'s mut Histogram,
    publishing: bool,
    published: usize,
    now: Instant,
    now_ns: u64,
}

impl MarkerCtx<'_> {
    fn on_marker(&mut self, seq: u64, t_ns: u64) {
        if !self.publishing || seq >= self.published as u64 || t_ns > self.now_ns {
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
        self.d.per_seq[seq as usize] += 1;
        self.d.last = Some(self.now);
        self.latency.record(self.now_ns - t_ns);
    }
}
