//! The figures derived from an Outcome, rendered as a short report or one JSON object.

use std::fmt::Write;

use crate::config::{Config, Flavor};
use crate::run::{Outcome, ServerFigures};

pub struct Report<'a> {
    cfg: &'a Config,
    o: &'a Outcome,
    pub expected: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    wall_s: f64,
    per_sec: f64,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
    /// Per message, publish to its last delivery: comparable with the floor's wall time per
    /// message when messages go one at a time.
    to_last: [u64; 3],
    /// Server figures, only with --server-pid.
    cpu_us_per_delivery: Option<f64>,
    deliveries_per_cpu_s: Option<f64>,
    rss_per_sub: Option<f64>,
}

fn ms(ns: u64) -> String {
    if ns >= 10_000_000 {
        format!("{:.0} ms", ns as f64 / 1e6)
    } else if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.0} µs", ns as f64 / 1e3)
    }
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / (1024.0 * 1024.0))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The sum of one figure over every server, or None if one of them is missing.
fn total<T: std::iter::Sum<T>>(
    o: &Outcome,
    figure: impl Fn(&ServerFigures) -> Option<T>,
) -> Option<T> {
    if o.servers.is_empty() {
        return None;
    }
    o.servers.iter().map(figure).sum()
}

impl<'a> Report<'a> {
    pub fn new(cfg: &'a Config, o: &'a Outcome) -> Self {
        // Stalled subscribers are not expected to receive anything: loss is the readers'.
        let expected = cfg.readers() as u64 * cfg.messages as u64;
        let d = &o.deliveries;
        let wall_s = o.wall.as_secs_f64();
        // /proc counts in clock ticks (10 ms): a zero is below resolution, not free.
        let cpu = o.server_cpu.filter(|&c| d.unique > 0 && c > 0.0);
        let connected = o.subs.ready + o.subs.stalled_ready;
        let rss_per_sub = match (total(o, |s| s.rss_before), total(o, |s| s.rss_idle)) {
            (Some(a), Some(b)) if connected > 0 => Some((b as f64 - a as f64) / connected as f64),
            _ => None,
        };
        Report {
            cfg,
            o,
            expected,
            lost: expected.saturating_sub(d.unique),
            duplicates: d.duplicates,
            out_of_order: d.out_of_order,
            wall_s,
            per_sec: if wall_s > 0.0 {
                d.unique as f64 / wall_s
            } else {
                0.0
            },
            p50: o.latency.quantile(0.50),
            p90: o.latency.quantile(0.90),
            p99: o.latency.quantile(0.99),
            max: o.latency.max(),
            to_last: [
                o.to_last.quantile(0.50),
                o.to_last.quantile(0.99),
                o.to_last.max(),
            ],
            cpu_us_per_delivery: cpu.map(|c| c * 1e6 / d.unique as f64),
            deliveries_per_cpu_s: cpu.map(|c| d.unique as f64 / c),
            rss_per_sub,
        }
    }

    fn mode(&self) -> String {
        let c = self.cfg;
        if c.one_at_a_time {
            "one-at-a-time".into()
        } else if c.rate > 0.0 {
            format!("{} msg/s", c.rate)
        } else if c.publishers > 1 {
            format!("pipeline {} x {} publishers", c.pipeline, c.publishers)
        } else {
            format!("pipeline {}", c.pipeline)
        }
    }

    pub fn human(&self) -> String {
        let (c, o, d, s) = (self.cfg, self.o, &self.o.deliveries, &self.o.subs);
        let flavor = match c.flavor {
            Flavor::Msgbus => "msgbus",
            Flavor::Nchan => "nchan",
        };
        let transport = c.transport.name();
        let mut r = String::new();
        let _ = writeln!(
            r,
            "target        {flavor} {transport} at {}, channel {}",
            c.target, c.channel
        );
        let _ = writeln!(
            r,
            "subscribers   ready {} of {}{} (connect failed {}, bad response {}, timed out {}, not started {}, closed during run {})",
            s.ready,
            c.readers(),
            if c.stalled > 0 { " readers" } else { "" },
            s.connect_failed,
            s.bad_response,
            s.timed_out,
            s.not_started,
            s.closed_during_run
        );
        if c.stalled > 0 {
            let _ = writeln!(
                r,
                "stalled       {} of {} connected and never read (SO_RCVBUF {}); {} seen closed by the server",
                s.stalled_ready, c.stalled, c.stall_rcvbuf, s.stalled_closed
            );
        }
        if c.publish {
            let to = if c.publish_target == c.target {
                String::new()
            } else {
                format!(" to {}", c.publish_target)
            };
            let _ = writeln!(
                r,
                "messages      published {} of {}{to}, {} bytes, {}; answered {}, errors {}{}",
                o.published,
                c.messages,
                c.size,
                self.mode(),
                o.answered,
                o.publish_errors,
                if c.one_at_a_time {
                    format!(", stalls {}", o.stalls)
                } else {
                    String::new()
                }
            );
        } else {
            let _ = writeln!(
                r,
                "messages      expected {} per subscriber from another publisher (--no-publish)",
                c.messages
            );
        }
        if c.publish && o.answered > 0 {
            let _ = writeln!(
                r,
                "acknowledged  {:.0} publishes/s; queued to answer p50 {}, p99 {}, max {}",
                o.acked_per_s,
                ms(o.ack_latency.quantile(0.50)),
                ms(o.ack_latency.quantile(0.99)),
                ms(o.ack_latency.max())
            );
        }
        let _ = writeln!(
            r,
            "deliveries    expected {}, received {}, lost {}, duplicates {}, stale {}, out of order {}",
            self.expected, d.received, self.lost, self.duplicates, d.stale, self.out_of_order
        );
        let _ = writeln!(
            r,
            "publish phase {:.3} s, {:.0} deliveries/s{}",
            self.wall_s,
            self.per_sec,
            if o.hit_duration {
                " (cut short by --duration)"
            } else {
                ""
            }
        );
        let _ = writeln!(
            r,
            "latency       p50 {}, p90 {}, p99 {}, max {}",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        );
        let _ = writeln!(
            r,
            "to the last   per message, publish to its last delivery: p50 {}, p99 {}, max {}",
            ms(self.to_last[0]),
            ms(self.to_last[1]),
            ms(self.to_last[2])
        );
        if let Some(cpu) = o.server_cpu {
            let _ = writeln!(
                r,
                "server cpu    {:.2} s{}, {} µs/delivery, {} deliveries/cpu-s",
                cpu,
                if o.servers.len() > 1 {
                    format!(" over {} servers", o.servers.len())
                } else {
                    String::new()
                },
                self.cpu_us_per_delivery
                    .map_or("-".into(), |v| format!("{v:.3}")),
                self.deliveries_per_cpu_s
                    .map_or("-".into(), |v| format!("{v:.0}"))
            );
        }
        let m = |v: Option<u64>| v.map_or("-".into(), mb);
        for sv in &o.servers {
            let _ = writeln!(
                r,
                "server rss    pid {}: before {}, idle with subscribers {}, end {}, peak {}; {} fds at end",
                sv.pid,
                m(sv.rss_before),
                m(sv.rss_idle),
                m(sv.rss_end),
                m(sv.rss_peak),
                sv.fds_end.map_or("-".into(), |n| n.to_string())
            );
        }
        if let (Some(a), Some(b)) = (o.tcp_mem_idle, o.tcp_mem_end) {
            let _ = writeln!(
                r,
                "kernel tcp    buffers {} idle, {} at end (every TCP socket of the machine)",
                mb(a),
                mb(b)
            );
        }
        if let Some(v) = self.rss_per_sub {
            let _ = writeln!(
                r,
                "server rss    {v:.0} bytes per connected subscriber (idle - before, all servers)"
            );
        }
        let _ = writeln!(
            r,
            "tool cpu      {:.2} s during the publish phase",
            o.tool_cpu
        );
        for n in &o.notes {
            let _ = writeln!(r, "note          {n}");
        }
        r
    }

    pub fn json(&self) -> String {
        let (c, o, d, s) = (self.cfg, self.o, &self.o.deliveries, &self.o.subs);
        let notes: Vec<String> = o.notes.iter().map(|n| json_str(n)).collect();
        let f = |v: Option<f64>| opt(v.map(|v| format!("{v:.3}")));
        // Per server, first in the object: a greedy `sed 's/.*"NAME":...'` on the line (as in
        // compare.sh) then still finds the top-level figure of the same name.
        let servers: Vec<String> = o
            .servers
            .iter()
            .map(|sv| {
                format!(
                    "{{\"pid\":{},\"rss_before\":{},\"rss_idle\":{},\"rss_end\":{},\"rss_peak\":{},\"fds_end\":{}}}",
                    sv.pid,
                    opt(sv.rss_before),
                    opt(sv.rss_idle),
                    opt(sv.rss_end),
                    opt(sv.rss_peak),
                    opt(sv.fds_end)
                )
            })
            .collect();
        format!(
            concat!(
                "{{\"servers\":[{}],",
                "\"target\":{},\"publish_target\":{},\"publish\":{},",
                "\"flavor\":\"{}\",\"transport\":\"{}\",\"channel\":{},",
                "\"mode\":{},\"publishers\":{},\"pipeline\":{},\"subs\":{},\"readers\":{},\"ready\":{},\"stalled\":{},",
                "\"stalled_ready\":{},\"stalled_closed\":{},\"connect_failed\":{},\"bad_response\":{},",
                "\"timed_out\":{},\"not_started\":{},\"closed_during_run\":{},",
                "\"messages\":{},\"size\":{},\"published\":{},\"answered\":{},\"publish_errors\":{},",
                "\"stalls\":{},\"expected\":{},\"received\":{},\"unique\":{},\"lost\":{},",
                "\"duplicates\":{},\"out_of_order\":{},\"stale\":{},\"wall_s\":{:.6},\"first_ns\":{},\"last_ns\":{},",
                "\"deliveries_per_s\":{:.1},\"acked_per_s\":{:.1},",
                "\"ack_p50_ns\":{},\"ack_p99_ns\":{},\"ack_max_ns\":{},",
                "\"latency_ns\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"max\":{}}},",
                "\"to_last_p50_ns\":{},\"to_last_p99_ns\":{},\"to_last_max_ns\":{},",
                "\"server_cpu_s\":{},\"server_cpu_us_per_delivery\":{},",
                "\"deliveries_per_server_cpu_s\":{},\"rss_before\":{},\"rss_idle\":{},",
                "\"rss_end\":{},\"rss_peak\":{},\"fds_end\":{},\"tcp_mem_idle\":{},\"tcp_mem_end\":{},",
                "\"rss_per_sub\":{},\"tool_cpu_s\":{:.3},\"hit_duration\":{},\"notes\":[{}]}}"
            ),
            servers.join(","),
            json_str(&c.host),
            json_str(&c.publish_host),
            c.publish,
            match c.flavor {
                Flavor::Msgbus => "msgbus",
                Flavor::Nchan => "nchan",
            },
            c.transport.name(),
            json_str(&c.channel),
            json_str(&self.mode()),
            c.publishers,
            c.pipeline,
            c.subs,
            c.readers(),
            s.ready,
            c.stalled,
            s.stalled_ready,
            s.stalled_closed,
            s.connect_failed,
            s.bad_response,
            s.timed_out,
            s.not_started,
            s.closed_during_run,
            c.messages,
            c.size,
            o.published,
            o.answered,
            o.publish_errors,
            o.stalls,
            self.expected,
            d.received,
            d.unique,
            self.lost,
            self.duplicates,
            self.out_of_order,
            d.stale,
            self.wall_s,
            opt(o.first_ns),
            opt(o.last_ns),
            self.per_sec,
            o.acked_per_s,
            o.ack_latency.quantile(0.50),
            o.ack_latency.quantile(0.99),
            o.ack_latency.max(),
            self.p50,
            self.p90,
            self.p99,
            self.max,
            self.to_last[0],
            self.to_last[1],
            self.to_last[2],
            f(o.server_cpu),
            f(self.cpu_us_per_delivery),
            f(self.deliveries_per_cpu_s),
            opt(total(o, |s| s.rss_before)),
            opt(total(o, |s| s.rss_idle)),
            opt(total(o, |s| s.rss_end)),
            opt(total(o, |s| s.rss_peak)),
            opt(total(o, |s| s.fds_end)),
            opt(o.tcp_mem_idle),
            opt(o.tcp_mem_end),
            f(self.rss_per_sub),
            o.tool_cpu,
            o.hit_duration,
            notes.join(",")
        )
    }
}
