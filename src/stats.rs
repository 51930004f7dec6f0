//! Counters kept by the reactor, and their rendering as JSON for `GET /status.json`.
//! Counters only grow (u64, saturating); gauges are read from their owners when rendering.

use std::fmt::Write;
use std::time::Duration;

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
             \"bytes_out\":{},\"accept_paused\":{},\"encodings\":{{",
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
    pub fn render_prometheus(&self, gauges: &Gauges) -> String {
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
        out
    }
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
}
