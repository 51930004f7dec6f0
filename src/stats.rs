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
}

impl Reason {
    pub const COUNT: usize = 7;
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::PeerClosed,
        Reason::Done,
        Reason::BadRequest,
        Reason::Timeout,
        Reason::SlowSubscriber,
        Reason::IoError,
        Reason::Shutdown,
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
    pub closed: [u64; Reason::COUNT],
    /// Times accepting paused at the connection limit.
    pub accept_paused: u64,
}

/// Values owned elsewhere, read when rendering.
pub struct Gauges {
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
        for (i, wire) in Wire::ALL.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            let _ = write!(
                out,
                "{comma}\"{}\":{}",
                wire.name(),
                self.encodings[wire.index()]
            );
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
        out.push_str("}}\n");
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
            ..Stats::default()
        };
        stats.encodings[Wire::MultipartChunked.index()] = 3;
        stats.count_close(Reason::SlowSubscriber);
        let gauges = Gauges {
            uptime: Duration::from_secs(5),
            connections: 2,
            max_connections: 10,
            subscribers: 1,
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
