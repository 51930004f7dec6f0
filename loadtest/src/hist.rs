//! A log-linear latency histogram: exact below 32 ns, then 32 buckets per power of two (about 3%
//! resolution), fixed size whatever the number of samples.

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let shift = e - SUB_BITS;
    let m = (v >> shift) as usize & (SUB - 1);
    SUB + shift as usize * SUB + m
}

/// The smallest value and the width of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, 1);
    }
    let shift = (i - SUB) / SUB;
    let m = ((i - SUB) % SUB) as u64;
    ((SUB as u64 + m) << shift, 1 << shift)
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Forgets every sample, keeping the buckets' memory.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max = 0;
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which a fraction `q` of the samples lie (bucket midpoint, at most max).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, width) = bounds(i);
                return (lo + width / 2).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous() {
        for v in [0u64, 1, 31, 32, 33, 63, 64, 65, 1000, 123_456_789, u64::MAX] {
            let (lo, w) = bounds(index(v));
            assert!(lo <= v && v - lo < w, "{v}: {lo}+{w}");
        }
        for i in 1..BUCKETS {
            let (lo, w) = bounds(i - 1);
            assert_eq!(bounds(i).0, lo + w, "bucket {i}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let within = |got: u64, want: u64| (got as f64 - want as f64).abs() / (want as f64) < 0.04;
        assert!(within(h.quantile(0.5), 500_000), "{}", h.quantile(0.5));
        assert!(within(h.quantile(0.99), 990_000), "{}", h.quantile(0.99));
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(Histogram::new().quantile(0.5), 0);
        h.clear();
        assert_eq!((h.quantile(0.5), h.max()), (0, 0));
    }
}
