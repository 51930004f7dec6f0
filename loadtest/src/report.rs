//! The figures derived from an Outcome, rendered as a short report or one JSON object.

use std::fmt::Write;

use crate::config::{Config, Flavor, Transport};
use crate::run::Outcome;

pub struct Report<'a> {
    cfg: &'a Config,
    o: &'a Outcome,
    pub expected: u64,
    pub lost: u64,
    pub duplicates: u64,
    wall_s: f64,
    per_sec: f64,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
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

impl<'a> Report<'a> {
    pub fn new(cfg: &'a Config, o: &'a Outcome) -> Self {
        let expected = cfg.subs as u64 * cfg.messages as u64;
        let d = &o.deliveries;
        let wall_s = o.wall.as_secs_f64();
        // /proc counts in clock ticks (10 ms): a zero is below resolution, not free.
        let cpu = o.server_cpu.filter(|&c| d.unique > 0 && c > 0.0);
        let rss_per_sub = match (o.rss_before, o.rss_idle, o.subs.ready) {
            (Some(a), Some(b), n) if n > 0 => Some((b as f64 - a as f64) / n as f64),
            _ => None,
        };
        Report {
            cfg,
            o,
            expected,
            lost: expected.saturating_sub(d.unique),
            duplicates: d.duplicates,
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
        let transport = match c.transport {
            Transport::Multipart => "multipart",
            Transport::Sse => "sse",
        };
        let mut r = String::new();
        let _ = writeln!(
            r,
            "target        {flavor} {transport} at {}, channel {}",
            c.target, c.channel
        );
        let _ = writeln!(
            r,
            "subscribers   ready {} of {} (connect failed {}, bad response {}, timed out {}, not started {}, closed during run {})",
            s.ready, c.subs, s.connect_failed, s.bad_response, s.timed_out, s.not_started, s.closed_during_run
        );
        let _ = writeln!(
            r,
            "messages      published {} of {}, {} bytes, {}; answered {}, errors {}{}",
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
        let _ = writeln!(
            r,
            "deliveries    expected {}, received {}, lost {}, duplicates {}, stale {}",
            self.expected, d.received, self.lost, self.duplicates, d.stale
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
        if let Some(cpu) = o.server_cpu {
            let _ = writeln!(
                r,
                "server cpu    {:.2} s, {} µs/delivery, {} deliveries/cpu-s",
                cpu,
                self.cpu_us_per_delivery
                    .map_or("-".into(), |v| format!("{v:.3}")),
                self.deliveries_per_cpu_s
                    .map_or("-".into(), |v| format!("{v:.0}"))
            );
        }
        if let (Some(a), Some(b)) = (o.rss_before, o.rss_idle) {
            let _ = writeln!(
                r,
                "server rss    before {}, idle with subscribers {}, {} bytes per subscriber",
                mb(a),
                mb(b),
                self.rss_per_sub.map_or("-".into(), |v| format!("{v:.0}"))
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
        format!(
            concat!(
                "{{\"target\":{},\"flavor\":\"{}\",\"transport\":\"{}\",\"channel\":{},",
                "\"mode\":{},\"subs\":{},\"ready\":{},\"connect_failed\":{},\"bad_response\":{},",
                "\"timed_out\":{},\"not_started\":{},\"closed_during_run\":{},",
                "\"messages\":{},\"size\":{},\"published\":{},\"answered\":{},\"publish_errors\":{},",
                "\"stalls\":{},\"expected\":{},\"received\":{},\"unique\":{},\"lost\":{},",
                "\"duplicates\":{},\"stale\":{},\"wall_s\":{:.6},\"deliveries_per_s\":{:.1},",
                "\"latency_ns\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"max\":{}}},",
                "\"server_cpu_s\":{},\"server_cpu_us_per_delivery\":{},",
                "\"deliveries_per_server_cpu_s\":{},\"rss_before\":{},\"rss_idle\":{},",
                "\"rss_per_sub\":{},\"tool_cpu_s\":{:.3},\"hit_duration\":{},\"notes\":[{}]}}"
            ),
            json_str(&c.host),
            match c.flavor {
                Flavor::Msgbus => "msgbus",
                Flavor::Nchan => "nchan",
            },
            match c.transport {
                Transport::Multipart => "multipart",
                Transport::Sse => "sse",
            },
            json_str(&c.channel),
            json_str(&self.mode()),
            c.subs,
            s.ready,
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
            d.stale,
            self.wall_s,
            self.per_sec,
            self.p50,
            self.p90,
            self.p99,
            self.max,
            f(o.server_cpu),
            f(self.cpu_us_per_delivery),
            f(self.deliveries_per_cpu_s),
            opt(o.rss_before),
            opt(o.rss_idle),
            f(self.rss_per_sub),
            o.tool_cpu,
            o.hit_duration,
            notes.join(",")
        )
    }
}
