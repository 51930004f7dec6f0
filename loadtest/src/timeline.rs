//! One sample per second of the run (deliveries, and the latency percentiles of that second):
//! shown as a progress line while stderr is a terminal, and drawn by --plot afterwards.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::hist::Histogram;

const TICK: Duration = Duration::from_secs(1);
/// A last window shorter than this is left out: its rate would be noise.
const SHORTEST_LAST: Duration = Duration::from_millis(250);

/// One window of the run, usually a second long (the last one may be shorter).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The end of the window, in seconds since the run began.
    pub at: f64,
    /// Unique deliveries in the window, and per second.
    pub delivered: u64,
    pub rate: f64,
    /// Latency percentiles of the window's deliveries, ns; None with no deliveries.
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

/// Where the run stands, for the progress line.
pub struct Progress {
    pub ready: usize,
    pub subs: usize,
    pub published: usize,
    pub messages: usize,
    pub delivered: u64,
}

pub struct Timeline {
    origin: Instant,
    last: Instant,
    next: Instant,
    /// The latencies of the current window; MarkerCtx records into it.
    pub window: Histogram,
    delivered_before: u64,
    pub samples: Vec<Sample>,
    /// When publishing began (or with --no-publish, the subscribers were ready), seconds.
    pub publish_at: Option<f64>,
    /// Draw the progress line (stderr is a terminal).
    show: bool,
    shown: bool,
}

impl Timeline {
    pub fn new(origin: Instant) -> Timeline {
        Timeline {
            origin,
            last: origin,
            next: origin + TICK,
            window: Histogram::new(),
            delivered_before: 0,
            samples: Vec::new(),
            publish_at: None,
            show: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    pub fn mark_publish(&mut self, now: Instant) {
        self.publish_at = Some(now.saturating_duration_since(self.origin).as_secs_f64());
    }

    /// Closes the window if a second has passed; then redraws the progress line.
    pub fn tick(&mut self, now: Instant, p: &Progress) {
        if now < self.next {
            return;
        }
        self.close_window(now, p.delivered);
        self.next += TICK * ((now - self.next).as_secs() as u32 + 1);
        if self.show {
            let line = progress_line(self.samples.last().expect("a sample"), p);
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{line}");
            let _ = err.flush();
            self.shown = true;
        }
    }

    /// Closes the last, partial window (unless very short) and erases the progress line.
    pub fn finish(&mut self, now: Instant, delivered: u64) {
        if delivered > self.delivered_before && now - self.last >= SHORTEST_LAST {
            self.close_window(now, delivered);
        }
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }

    fn close_window(&mut self, now: Instant, delivered: u64) {
        let secs = now.saturating_duration_since(self.last).as_secs_f64();
        let n = delivered - self.delivered_before;
        let q = |q: f64| (n > 0).then(|| self.window.quantile(q));
        self.samples.push(Sample {
            at: now.saturating_duration_since(self.origin).as_secs_f64(),
            delivered: n,
            rate: if secs > 0.0 { n as f64 / secs } else { 0.0 },
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            max: (n > 0).then(|| self.window.max()),
        });
        self.window.clear();
        self.delivered_before = delivered;
        self.last = now;
    }
}

/// `  12 s  subscribers 1000/1000  published 5000/10000  delivered 4990000  498000/s  p50 1.20 ms  p99 4.10 ms`
pub fn progress_line(s: &Sample, p: &Progress) -> String {
    let mut line = format!(
        "{:4.0} s  subscribers {}/{}  published {}/{}  delivered {}  {:.0}/s",
        s.at, p.ready, p.subs, p.published, p.messages, p.delivered, s.rate
    );
    if let (Some(p50), Some(p99)) = (s.p50, s.p99) {
        line += &format!(
            "  p50 {:.2} ms  p99 {:.2} ms",
            p50 as f64 / 1e6,
            p99 as f64 / 1e6
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_per_second_with_its_own_percentiles() {
        let t0 = Instant::now();
        let mut t = Timeline::new(t0);
        t.show = false;
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let progress = |delivered| Progress {
            ready: 2,
            subs: 2,
            published: 3,
            messages: 4,
            delivered,
        };
        for v in [1_000_000, 2_000_000, 3_000_000] {
            t.window.record(v);
        }
        t.tick(at(999), &progress(3)); // not yet a second
        assert!(t.samples.is_empty());
        t.tick(at(1000), &progress(3));
        t.tick(at(3500), &progress(3)); // an empty window, then the next tick is at 4 s
        t.window.record(9_000_000);
        t.tick(at(3900), &progress(4));
        t.finish(at(4200), 4);
        let s = &t.samples;
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!((s[0].at, s[0].delivered, s[0].rate), (1.0, 3, 3.0));
        // Percentiles come from the histogram's ≈3% buckets; the max is exact.
        let p50 = s[0].p50.unwrap() as f64;
        assert!((p50 - 2e6).abs() / 2e6 < 0.03, "{p50}");
        assert_eq!(s[0].max, Some(3_000_000));
        assert_eq!((s[1].at, s[1].delivered, s[1].p99), (3.5, 0, None));
        assert_eq!((s[2].delivered, s[2].p50), (1, Some(9_000_000)));
        assert!((s[2].rate - 1.0 / 0.7).abs() < 1e-9);
    }

    #[test]
    fn the_progress_line_says_where_the_run_stands() {
        let s = Sample {
            at: 12.0,
            delivered: 498_000,
            rate: 498_000.0,
            p50: Some(1_200_000),
            p90: Some(2_000_000),
            p99: Some(4_100_000),
            max: Some(9_000_000),
        };
        let p = Progress {
            ready: 1000,
            subs: 1000,
            published: 5000,
            messages: 10000,
            delivered: 4_990_000,
        };
        assert_eq!(
            progress_line(&s, &p),
            "  12 s  subscribers 1000/1000  published 5000/10000  delivered 4990000  498000/s  p50 1.20 ms  p99 4.10 ms"
        );
        let quiet = Sample {
            p50: None,
            p99: None,
            ..s
        };
        assert!(progress_line(&quiet, &p).ends_with("498000/s"));
    }
}
