//! How a connection to another service (NATS, AMQP) waits before it tries again: from a tenth
//! of a second, doubling up to five, each wait lengthened by up to half at random, so that
//! nodes cut off together do not all come back in the same instant.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    rng: u64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: FIRST,
            rng: seed(),
        }
    }
}

impl Backoff {
    /// The wait before the next attempt, at least `base()`; the one after it doubles.
    pub fn next_wait(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let spread = self.base.as_millis() as u64 / 2 + 1;
        let wait = self.base + Duration::from_millis(self.rng % spread);
        self.base = (self.base * 2).min(MAX);
        wait
    }

    /// The shortest the next wait can be.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// A connection came up: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.base = FIRST;
    }
}

/// 64 bits that differ between processes and runs (for jitter and names, not secrets).
pub fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}
