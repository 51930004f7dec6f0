//! Counters kept by the reactor, and their rendering as JSON for `GET /status.json`, as
//! Prometheus text for `GET /metrics`, and the channel documents of `/msgbus-status/`.
//! Counters only grow (u64, saturating); gauges are read from their owners when rendering.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bus::{ChannelInfo, ChannelSummary};
use crate::transport::json::push_string;
use crate::transport::Wire;

/// Why a connection ended; logged at debug and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The peer closed or reset the connection.
    PeerClosed,
    /// The response was sent and the connection is not kept alive.
    Done,
    /// A request was malformed or over a limit and answered with a 4xx/5xx.
    BadRequest,
    /// A deadline passed (head, body, keep-alive, send).
    Timeout,
    /// A subscriber over its queue limit under the close policy.
    SlowSubscriber,
    /// A read or write failed.
    IoError,
    /// The server is shutting down.
    Shutdown,
    /// Output was queued and the peer took none of it for `--write-timeout`.
    WriteStalled,
}

impl Reason {
    pub const COUNT: usize = 8;
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::PeerClosed,
        Reason::Done,
        Reason::BadRequest,
        Reason::Timeout,
        Reason::SlowSubscriber,
        Reason::IoError,
        Reason::Shutdown,
        Reason::WriteStalled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::PeerClosed => "peer_closed",
            Reason::Done => "done",
            Reason::BadRequest => "bad_request",
            Reason::Timeout => "timeout",
            Reason::SlowSubscriber => "slow_subscriber",
            Reason::IoError => "io_error",
            Reason::Shutdown => "shutdown",
            Reason::WriteStalled => "write_stalled",
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub accepted: u64,
    pub requests: u64,
    pub published: u64,
    /// Message frames queued to subscribers.
    pub delivered: u64,
    /// Message frames dropped from slow subscribers' queues.
    pub dropped: u64,
    pub bytes_out: u64,
    /// How many times each wire format was encoded (once per message that some subscriber of
    /// that format received).
    pub encodings: [u64; Wire::COUNT],
    /// Each frame slot's wire name (`Wires::names`); slots without one are not shown.
    pub wire_names: [&'static str; Wire::COUNT],
    pub closed: [u64; Reason::COUNT],
    /// Times accepting paused: out of file descriptors, or a turn's worth of refusals at the
    /// connection limit.
    pub accept_paused: u64,
    /// Requests answered with an error, by status.
    pub refused: [u64; REFUSAL_STATUSES.len()],
    /// Requests and connections refused for a limit, by limit.
    pub limited: [u64; Limit::COUNT],
    /// Bytes read from clients (after TLS).
    pub bytes_in: u64,
    /// Times a resuming client was told it missed messages (a header, an SSE comment, a
    /// long-poll answer's `missed`).
    pub missed_notices: u64,
    /// Time from a message's making to the last byte of its frame written to a subscriber.
    pub latency: Latency,
    /// Descriptors open when the loop started (listeners, the poll, the log...): with the
    /// connections held, the open-descriptor gauge.
    pub fds_at_start: usize,
}

/// Upper bounds of the latency histogram's buckets, in nanoseconds (100 µs to 10 s); above
/// the last is `+Inf`.
pub const LATENCY_BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// One message in this many is timed from publish to written, chosen by its id
/// (`is_timed`). Timing every frame cost about 75 instructions per delivery in a pipelined
/// burst (a clock read per write, a stamp per queued frame, a bucket per written one): some
/// 10% of a delivery's CPU there. One in 16 brings it under 1%, and a busy server still
/// gets thousands of observations a second.
pub const LATENCY_SAMPLE: u64 = 16;

/// Whether message `id`'s deliveries are timed: the top four bits of a multiplicative hash of
/// the id are zero. A hash rather than `id % 16`, so that a publisher cycling over 16
/// channels does not have only one of them timed.
pub fn is_timed(id: u64) -> bool {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60 == 0
}

/// A histogram with fixed buckets: an observation is a binary search of 16 bounds and two
/// additions, no allocation, so it can sit in the flush path (once per frame written).
#[derive(Debug, Default, Clone)]
pub struct Latency {
    /// Observations per bucket (not cumulative); the last is above every bound.
    buckets: [u64; LATENCY_BOUNDS_NS.len() + 1],
    /// In nanoseconds: a u64 would wrap within days at millions of deliveries a second.
    sum_ns: u128,
}

impl Latency {
    pub fn observe(&mut self, ns: u64) {
        let bucket = LATENCY_BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.buckets[bucket] += 1;
        self.sum_ns += u128::from(ns);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// The error statuses counted in `refused`; anything else counts as the last, 500.
pub const REFUSAL_STATUSES: [u16; 14] = [
    400, 401, 403, 404, 405, 408, 410, 413, 426, 429, 431, 501, 503, 500,
];

/// What a connection reports for the reactor to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatEvent {
    Refused(u16),
    Limited(Limit),
    /// A resuming client was told it missed messages.
    MissedNotice,
}

/// Limits a request or connection can be refused for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `--max-connections`: connections held at once (answered 503 as they are accepted).
    Connections,
    /// `--max-per-address`: connections from one client address.
    PerAddress,
    /// `--max-subscriptions`: channels named in one subscription.
    Subscriptions,
    /// `--max-channels`: channels in existence.
    Channels,
}

impl Limit {
    pub const COUNT: usize = 4;
    pub const ALL: [Limit; Limit::COUNT] = [
        Limit::Connections,
        Limit::PerAddress,
        Limit::Subscriptions,
        Limit::Channels,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Limit::Connections => "connection_limit",
            Limit::PerAddress => "per_address",
            Limit::Subscriptions => "subscriptions",
            Limit::Channels => "channels",
        }
    }
}

/// What a connection is doing, for counting connections by transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Requests and answers (or idle between them).
    Http,
    Multipart,
    Sse,
    LongPoll,
    WebSocket,
}

impl Transport {
    pub const COUNT: usize = 5;
    pub const ALL: [Transport; Transport::COUNT] = [
        Transport::Http,
        Transport::Multipart,
        Transport::Sse,
        Transport::LongPoll,
        Transport::WebSocket,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Multipart => "multipart",
            Transport::Sse => "sse",
            Transport::LongPoll => "longpoll",
            Transport::WebSocket => "websocket",
        }
    }
}

/// The NATS link's state and counters, when the node is in a cluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterGauges {
    pub connected: bool,
    pub forwarded: u64,
    pub received: u64,
    pub not_forwarded: u64,
    pub disconnects: u64,
}

/// Values owned elsewhere, read when rendering.
pub struct Gauges {
    pub cluster: Option<ClusterGauges>,
    pub by_transport: [usize; Transport::COUNT],
    pub uptime: Duration,
    pub connections: usize,
    pub max_connections: usize,
    pub subscribers: usize,
    pub channels: usize,
    /// Messages kept in channel histories.
    pub retained: usize,
    pub queued_bytes: usize,
    /// Messages the bus dropped for `--max-retained-bytes`, and pushed out of a full history.
    pub evicted: u64,
    pub displaced: u64,
    /// Messages that left a history at the end of their lifetime.
    pub expired: u64,
}

/// What the process uses, read from the kernel when `/metrics` is rendered. Each reading is one
/// small read or system call: none walks the connections or the descriptor table.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessGauges {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    /// Descriptors open at start plus connections held: a running count, because counting
    /// `/proc/self/fd` walks every descriptor (about 100 ms at 20,000).
    pub open_fds: u64,
    /// The descriptor limit (`RLIMIT_NOFILE`).
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

impl ProcessGauges {
    /// Reads CPU time (`getrusage`), resident memory (`/proc/self/statm`) and the descriptor
    /// limit; the start time is now less `uptime`.
    pub fn read(uptime: Duration, open_fds: usize) -> ProcessGauges {
        // SAFETY: getrusage and getrlimit fill the zeroed structs they are given.
        let (usage, limit) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            let mut limit: libc::rlimit = std::mem::zeroed();
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            (usage, limit)
        };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64;
        let resident_pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        ProcessGauges {
            cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            resident_bytes: resident_pages * page,
            open_fds: open_fds as u64,
            max_fds: limit.rlim_cur,
            start_time_seconds: now.saturating_sub(uptime).as_secs_f64(),
        }
    }
}

/// Counts the descriptors open now by listing `/proc/self/fd`: O(descriptors), so only for
/// start-up (0 where there is no /proc).
pub fn count_open_fds() -> usize {
    // The listing's own descriptor is in it.
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count().saturating_sub(1))
}

impl Stats {
    pub fn count_close(&mut self, reason: Reason) {
        self.closed[reason as usize] += 1;
    }

    pub fn count_refusal(&mut self, status: u16) {
        let last = REFUSAL_STATUSES.len() - 1;
        let index = REFUSAL_STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(last);
        self.refused[index] = self.refused[index].saturating_add(1);
    }

    pub fn count(&mut self, event: StatEvent) {
        match event {
            StatEvent::Refused(status) => self.count_refusal(status),
            StatEvent::Limited(limit) => self.count_limit(limit),
            StatEvent::MissedNotice => self.missed_notices += 1,
        }
    }

    pub fn count_limit(&mut self, limit: Limit) {
        self.limited[limit as usize] = self.limited[limit as usize].saturating_add(1);
    }

    /// (wire name, encodings) for each frame slot in use.
    fn named_encodings(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.wire_names
            .iter()
            .zip(self.encodings)
            .filter(|(name, _)| !name.is_empty() && **name != "unused")
            .map(|(name, count)| (*name, count))
    }

    pub fn render_json(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(1024);
        let _ = write!(
            out,
            "{{\"server\":\"msgbus\",\"version\":\"{}\",\"uptime\":{},\"connections\":{},\
             \"max_connections\":{},\"subscribers\":{},\"channels\":{},\"retained\":{},\
             \"queued_bytes\":{},\
             \"accepted\":{},\"requests\":{},\"published\":{},\"delivered\":{},\"dropped\":{},\
             \"bytes_out\":{},\"bytes_in\":{},\"missed_notices\":{},\"accept_paused\":{},\
             \"encodings\":{{",
            env!("CARGO_PKG_VERSION"),
            gauges.uptime.as_secs(),
            gauges.connections,
            gauges.max_connections,
            gauges.subscribers,
            gauges.channels,
            gauges.retained,
            gauges.queued_bytes,
            self.accepted,
            self.requests,
            self.published,
            self.delivered,
            self.dropped,
            self.bytes_out,
            self.bytes_in,
            self.missed_notices,
            self.accept_paused,
        );
        for (i, (name, count)) in self.named_encodings().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(out, "{comma}\"{name}\":{count}");
        }
        out.push_str("},\"closed\":{");
        for (i, reason) in Reason::ALL.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(
                out,
                "{comma}\"{}\":{}",
                reason.name(),
                self.closed[*reason as usize]
            );
        }
        out.push_str("},\"connections_by_transport\":{");
        for (i, transport) in Transport::ALL.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(
                out,
                "{comma}\"{}\":{}",
                transport.name(),
                gauges.by_transport[i]
            );
        }
        if let Some(c) = gauges.cluster {
            let _ = write!(
                out,
                "}},\"cluster\":{{\"connected\":{},\"forwarded\":{},\"received\":{},\
                 \"not_forwarded\":{},\"disconnects\":{}",
                c.connected, c.forwarded, c.received, c.not_forwarded, c.disconnects
            );
        }
        out.push_str("},\"refused\":{");
        for (i, status) in REFUSAL_STATUSES.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(out, "{comma}\"{status}\":{}", self.refused[i]);
        }
        out.push_str("},\"limited\":{");
        for (i, limit) in Limit::ALL.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(out, "{comma}\"{}\":{}", limit.name(), self.limited[i]);
        }
        out.push_str("}}\n");
        out
    }
}

impl Stats {
    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self, gauges: &Gauges, process: &ProcessGauges) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP msgbus_{name} {help}");
            let _ = writeln!(out, "# TYPE msgbus_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "msgbus_{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v)];
        let labelled = |label: &str, pairs: Vec<(&str, u64)>| -> Vec<(String, u64)> {
            pairs
                .into_iter()
                .map(|(k, v)| (format!("{{{label}=\"{k}\"}}"), v))
                .collect()
        };
        metric(
            "uptime_seconds",
            "gauge",
            "Seconds since start.",
            &one(gauges.uptime.as_secs()),
        );
        let by_transport = Transport::ALL
            .iter()
            .map(|t| (t.name(), gauges.by_transport[*t as usize] as u64))
            .collect();
        metric(
            "connections",
            "gauge",
            "Open connections by what they are doing.",
            &labelled("transport", by_transport),
        );
        metric(
            "max_connections",
            "gauge",
            "The connection limit.",
            &one(gauges.max_connections as u64),
        );
        metric(
            "subscribers",
            "gauge",
            "Subscriptions held.",
            &one(gauges.subscribers as u64),
        );
        metric(
            "channels",
            "gauge",
            "Channels in existence.",
            &one(gauges.channels as u64),
        );
        metric(
            "retained_messages",
            "gauge",
            "Messages kept in histories.",
            &one(gauges.retained as u64),
        );
        metric(
            "queued_bytes",
            "gauge",
            "Bytes waiting in output queues.",
            &one(gauges.queued_bytes as u64),
        );
        metric(
            "accepted_total",
            "counter",
            "Connections accepted.",
            &one(self.accepted),
        );
        metric(
            "requests_total",
            "counter",
            "Requests read.",
            &one(self.requests),
        );
        metric(
            "published_total",
            "counter",
            "Messages published.",
            &one(self.published),
        );
        metric(
            "delivered_total",
            "counter",
            "Messages queued to subscribers.",
            &one(self.delivered),
        );
        metric(
            "dropped_total",
            "counter",
            "Messages dropped from slow subscribers.",
            &one(self.dropped),
        );
        metric(
            "bytes_out_total",
            "counter",
            "Bytes written to clients.",
            &one(self.bytes_out),
        );
        let encodings = self.named_encodings().collect();
        metric(
            "encodings_total",
            "counter",
            "Messages encoded, by wire format.",
            &labelled("wire", encodings),
        );
        let closed = Reason::ALL
            .iter()
            .map(|r| (r.name(), self.closed[*r as usize]))
            .collect();
        metric(
            "closed_total",
            "counter",
            "Connections closed, by reason.",
            &labelled("reason", closed),
        );
        let refused = REFUSAL_STATUSES
            .iter()
            .zip(self.refused)
            .map(|(status, n)| (status.to_string(), n))
            .collect::<Vec<_>>();
        let refused = refused.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        metric(
            "refused_total",
            "counter",
            "Requests answered with an error, by status.",
            &labelled("status", refused),
        );
        let limited = Limit::ALL
            .iter()
            .map(|l| (l.name(), self.limited[*l as usize]))
            .collect();
        metric(
            "limited_total",
            "counter",
            "Refusals for a limit, by limit.",
            &labelled("limit", limited),
        );
        if let Some(c) = gauges.cluster {
            let rows = [
                (
                    "cluster_connected",
                    "gauge",
                    "1 while joined to NATS.",
                    u64::from(c.connected),
                ),
                (
                    "cluster_forwarded_total",
                    "counter",
                    "Messages sent to other nodes.",
                    c.forwarded,
                ),
                (
                    "cluster_received_total",
                    "counter",
                    "Messages from other nodes.",
                    c.received,
                ),
                (
                    "cluster_not_forwarded_total",
                    "counter",
                    "Messages published while cut off from NATS.",
                    c.not_forwarded,
                ),
                (
                    "cluster_disconnects_total",
                    "counter",
                    "Times the NATS link was lost.",
                    c.disconnects,
                ),
            ];
            for (name, kind, help, value) in rows {
                metric(name, kind, help, &one(value));
            }
        }
        metric(
            "accept_paused_total",
            "counter",
            "Times accepting paused (out of descriptors, or refusals at the limit).",
            &one(self.accept_paused),
        );
        metric(
            "bytes_in_total",
            "counter",
            "Bytes read from clients (after TLS).",
            &one(self.bytes_in),
        );
        metric(
            "missed_notices_total",
            "counter",
            "Times a resuming client was told it missed messages.",
            &one(self.missed_notices),
        );
        let evicted = vec![
            ("retained_bytes", gauges.evicted),
            ("size", gauges.displaced),
        ];
        metric(
            "history_evicted_total",
            "counter",
            "Messages pushed out of histories, by limit (--max-retained-bytes, a history's size).",
            &labelled("cause", evicted),
        );
        metric(
            "history_expired_total",
            "counter",
            "Messages that left histories at the end of their lifetime.",
            &one(gauges.expired),
        );
        self.render_latency(&mut out);
        render_process(&mut out, process);
        out
    }

    fn render_latency(&self, out: &mut String) {
        let name = "msgbus_publish_to_written_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From a message's publish to the last byte of its frame written to a \
             subscriber, for one message in 16 (streams and long-poll answers; not replays).\n\
             # TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BOUNDS_NS.iter().zip(self.latency.buckets) {
            cumulative += n;
            let le = *bound as f64 / 1e9;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.latency.count();
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {}\n{name}_count {count}",
            self.latency.sum_ns as f64 / 1e9,
        );
    }
}

/// The transport a core wire belongs to; a door's wire is shown under the door's name.
fn wire_transport(slot: usize) -> Option<&'static str> {
    const CORE: [(Wire, &str); 9] = [
        (Wire::Multipart, "multipart"),
        (Wire::MultipartChunked, "multipart"),
        (Wire::MultipartLocated, "multipart"),
        (Wire::MultipartLocatedChunked, "multipart"),
        (Wire::Sse, "sse"),
        (Wire::SseJson, "sse"),
        (Wire::Json, "longpoll"),
        (Wire::Ws, "websocket"),
        (Wire::WsJson, "websocket"),
    ];
    CORE.iter()
        .find(|(wire, _)| wire.index() == slot)
        .map(|(_, name)| *name)
}

/// `/msgbus-status/channels/NAME.json`: one channel. Subscribers are counted by transport
/// (every transport appears; a door only when it has some), then the subtree subscriptions
/// that also reach it. `wire_names` names the doors' slots (`Wires::names`).
pub fn render_channel(info: &ChannelInfo, wire_names: &[&'static str; Wire::COUNT]) -> String {
    let mut by_transport: Vec<(&str, usize)> = ["multipart", "sse", "longpoll", "websocket"]
        .iter()
        .map(|name| (*name, 0))
        .collect();
    for (slot, &n) in info.by_wire.iter().enumerate() {
        let name = wire_transport(slot).unwrap_or(wire_names[slot]);
        match by_transport.iter_mut().find(|(t, _)| *t == name) {
            Some(entry) => entry.1 += n,
            None if n > 0 => by_transport.push((name, n)),
            None => {}
        }
    }
    let mut out = String::with_capacity(512);
    out.push_str("{\"channel\":");
    push_string(&mut out, &info.name);
    out.push_str(",\"subscribers\":{");
    for (i, (name, n)) in by_transport.iter().enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(out, "{comma}\"{name}\":{n}");
    }
    let total: usize = info.by_wire.iter().sum();
    let id = |id: Option<u64>| id.map_or("null".to_string(), |id| id.to_string());
    let _ = writeln!(
        out,
        "}},\"subscribers_total\":{total},\"subtree_subscribers\":{},\"messages\":{},\
         \"bytes\":{},\"oldest_id\":{},\"last_id\":{},\"size\":{},\"lifetime\":{},\
         \"keyed\":{},\"one2one\":{}}}",
        info.subtree_subscribers,
        info.messages,
        info.bytes,
        id(info.oldest_id),
        id(info.last_id),
        info.retention.size,
        info.retention.lifetime.as_secs(),
        info.keyed,
        info.one2one,
    );
    out
}

/// `/msgbus-status/channels.json`: a page of channels in name order; `next` is the `after=`
/// of the next page, null on the last.
pub fn render_channel_page(page: &[ChannelSummary], more: bool) -> String {
    let mut out = String::with_capacity(64 + 96 * page.len());
    out.push_str("{\"channels\":[");
    for (i, c) in page.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"channel\":");
        push_string(&mut out, &c.name);
        let last_id = c.last_id.map_or("null".to_string(), |id| id.to_string());
        let _ = write!(
            out,
            ",\"subscribers\":{},\"messages\":{},\"last_id\":{last_id}}}",
            c.subscribers, c.messages
        );
    }
    out.push_str("],\"next\":");
    match page.last() {
        Some(last) if more => push_string(&mut out, &last.name),
        _ => out.push_str("null"),
    }
    out.push_str("}\n");
    out
}

/// The process families under the names Prometheus client libraries give them, and the build.
fn render_process(out: &mut String, p: &ProcessGauges) {
    let rows: [(&str, &str, &str, String); 5] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            format!("{}", p.cpu_seconds),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            p.resident_bytes.to_string(),
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors: those open at start plus connections held.",
            p.open_fds.to_string(),
        ),
        (
            "process_max_fds",
            "gauge",
            "The open file descriptor limit.",
            p.max_fds.to_string(),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            format!("{:.3}", p.start_time_seconds),
        ),
    ];
    for (name, kind, help, value) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP msgbus_build_info The version running, as a label.\n\
         # TYPE msgbus_build_info gauge\n\
         msgbus_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter() {
        let mut stats = Stats {
            published: 3,
            delivered: 3000,
            wire_names: crate::transport::Wires::default().names(),
            ..Stats::default()
        };
        stats.encodings[Wire::MultipartChunked.index()] = 3;
        stats.count_close(Reason::SlowSubscriber);
        let gauges = Gauges {
            uptime: Duration::from_secs(5),
            connections: 2,
            max_connections: 10,
            subscribers: 1,
            cluster: None,
            by_transport: [1, 1, 0, 0, 0],
            channels: 1,
            retained: 7,
            queued_bytes: 0,
            evicted: 1,
            displaced: 2,
            expired: 3,
        };
        let json = stats.render_json(&gauges);
        for want in [
            "\"published\":3,",
            "\"delivered\":3000,",
            "\"multipart_chunked\":3,",
            "\"slow_subscriber\":1",
            "\"uptime\":5,",
            "\"retained\":7,",
        ] {
            assert!(json.contains(want), "{want} in {json}");
        }
    }

    #[test]
    fn latency_buckets_are_cumulative_in_the_text() {
        let mut stats = Stats::default();
        for ns in [50_000, 100_000, 100_001, 3_000_000, 20_000_000_000] {
            stats.latency.observe(ns);
        }
        let mut text = String::new();
        stats.render_latency(&mut text);
        for want in [
            "msgbus_publish_to_written_seconds_bucket{le=\"0.0001\"} 2\n",
            "msgbus_publish_to_written_seconds_bucket{le=\"0.00025\"} 3\n",
            "msgbus_publish_to_written_seconds_bucket{le=\"0.005\"} 4\n",
            "msgbus_publish_to_written_seconds_bucket{le=\"10\"} 4\n",
            "msgbus_publish_to_written_seconds_bucket{le=\"+Inf\"} 5\n",
            "msgbus_publish_to_written_seconds_count 5\n",
            "msgbus_publish_to_written_seconds_sum 20.003250001\n",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
    }

    #[test]
    fn channel_documents() {
        let mut by_wire = [0; Wire::COUNT];
        by_wire[Wire::MultipartChunked.index()] = 2;
        by_wire[Wire::SseJson.index()] = 1;
        by_wire[Wire::Door(1).index()] = 4;
        let info = ChannelInfo {
            name: "a\"b".into(),
            by_wire,
            subtree_subscribers: 1,
            messages: 2,
            bytes: 600,
            oldest_id: Some(7),
            last_id: Some(8),
            retention: crate::bus::Retention {
                size: 10,
                lifetime: Duration::from_secs(60),
            },
            keyed: true,
            one2one: false,
        };
        let names = crate::transport::Wires::default().names();
        let mut names = names;
        names[Wire::Door(1).index()] = "martd";
        assert_eq!(
            render_channel(&info, &names),
            "{\"channel\":\"a\\\"b\",\"subscribers\":{\"multipart\":2,\"sse\":1,\"longpoll\":0,\
             \"websocket\":0,\"martd\":4},\"subscribers_total\":7,\"subtree_subscribers\":1,\
             \"messages\":2,\"bytes\":600,\"oldest_id\":7,\"last_id\":8,\"size\":10,\
             \"lifetime\":60,\"keyed\":true,\"one2one\":false}\n"
        );
        let page = [ChannelSummary {
            name: "x".into(),
            subscribers: 1,
            messages: 0,
            last_id: None,
        }];
        assert_eq!(
            render_channel_page(&page, true),
            "{\"channels\":[{\"channel\":\"x\",\"subscribers\":1,\"messages\":0,\
             \"last_id\":null}],\"next\":\"x\"}\n"
        );
        assert_eq!(
            render_channel_page(&[], false),
            "{\"channels\":[],\"next\":null}\n"
        );
    }
}
