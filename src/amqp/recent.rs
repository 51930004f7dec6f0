//! The messages from the exchange that the bus took lately, so that one RabbitMQ delivers
//! again is not delivered twice.
//!
//! RabbitMQ delivers a message again (`redelivered` set in basic.deliver) when the connection
//! it went out on closed before its acknowledgement arrived. When the bus had already taken it
//! (the acknowledgement was written, or about to be, when the connection broke), delivering it
//! again would show subscribers the same event twice. So each message the bus takes leaves its
//! digest here (the `message_id` property when the publisher set one, else a 64-bit hash of the
//! body), the last `capacity` of them; a redelivered message whose digest is here is
//! acknowledged and skipped. A first delivery is never skipped: two messages with the same
//! body are two events.
//!
//! What this cannot tell apart: a redelivered message whose body (and no `message_id`) equals
//! that of another message taken lately (it is skipped, as if it were that one); a redelivery
//! that comes after `capacity` other messages were taken, or to a process started since (it
//! is delivered again).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

/// Digests kept by default: far more than the deliveries that can be unacknowledged when a
/// connection breaks (at most `--amqp-prefetch`, 256 by default, in flight).
pub const DEFAULT_CAPACITY: usize = 4096;

/// What to do with a delivery before it goes near the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Deliver it: new, or redelivered but not taken lately.
    Deliver,
    /// Redelivered, and the bus took it already: acknowledge it and go on.
    Skip,
}

/// The digests of the last `capacity` messages taken, oldest first, with a count per digest
/// (the same digest may be taken more than once).
pub struct Recent {
    order: VecDeque<u64>,
    counts: HashMap<u64, u32>,
    capacity: usize,
    /// Keyed per process: nobody outside can make two bodies share a digest on purpose.
    hasher: RandomState,
}

impl Recent {
    pub fn new(capacity: usize) -> Recent {
        Recent {
            order: VecDeque::with_capacity(capacity.min(DEFAULT_CAPACITY)),
            counts: HashMap::new(),
            capacity: capacity.max(1),
            hasher: RandomState::new(),
        }
    }

    /// A message's digest: its `message_id` when it has one, else its body's.
    pub fn digest(&self, message_id: Option<&str>, body: &[u8]) -> u64 {
        match message_id {
            Some(id) => self.hasher.hash_one((0u8, id.as_bytes())),
            None => self.hasher.hash_one((1u8, body)),
        }
    }

    /// Whether a delivery goes to the bus.
    pub fn decide(&self, redelivered: bool, digest: u64) -> Decision {
        if redelivered && self.counts.contains_key(&digest) {
            Decision::Skip
        } else {
            Decision::Deliver
        }
    }

    /// The bus took the message with this digest; the oldest digest goes when full.
    pub fn taken(&mut self, digest: u64) {
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                if let Some(count) = self.counts.get_mut(&old) {
                    *count -= 1;
                    if *count == 0 {
                        self.counts.remove(&old);
                    }
                }
            }
        }
        self.order.push_back(digest);
        *self.counts.entry(digest).or_insert(0) += 1;
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::{Deliver, Skip};

    #[test]
    fn only_redeliveries_of_messages_taken_are_skipped() {
        let mut recent = Recent::new(DEFAULT_CAPACITY);
        let a = recent.digest(None, b"{\"data\":\"a\"}");
        let b = recent.digest(None, b"{\"data\":\"b\"}");
        recent.taken(a);
        // (redelivered, digest, decision)
        let cases = [
            (true, a, Skip),
            (false, a, Deliver), // the same body published again is another event
            (true, b, Deliver),  // redelivered, but never taken: lost before the bus had it
            (false, b, Deliver),
        ];
        for (redelivered, digest, want) in cases {
            assert_eq!(
                recent.decide(redelivered, digest),
                want,
                "{redelivered} {digest:x}"
            );
        }
    }

    #[test]
    fn a_message_id_stands_for_the_body() {
        let recent = Recent::new(4);
        let cases = [
            (Some("m1"), &b"x"[..], Some("m1"), &b"y"[..], true),
            (Some("m1"), b"x", Some("m2"), b"x", false),
            (None, b"x", None, b"x", true),
            (None, b"x", None, b"y", false),
            // An id and a body with the same bytes are not the same message.
            (Some("x"), b"z", None, b"x", false),
        ];
        for (id1, body1, id2, body2, same) in cases {
            let d1 = recent.digest(id1, body1);
            let d2 = recent.digest(id2, body2);
            assert_eq!(d1 == d2, same, "{id1:?} {body1:?} / {id2:?} {body2:?}");
        }
    }

    #[test]
    fn the_oldest_digest_goes_when_full() {
        let mut recent = Recent::new(3);
        for digest in [1, 1, 2, 3] {
            recent.taken(digest);
        }
        assert_eq!(recent.len(), 3);
        // The first 1 went; the second stays.
        let cases = [(1, Skip), (2, Skip), (3, Skip), (4, Deliver)];
        for (digest, want) in cases {
            assert_eq!(recent.decide(true, digest), want, "{digest}");
        }
        recent.taken(4);
        let cases = [(1, Deliver), (2, Skip), (3, Skip), (4, Skip)];
        for (digest, want) in cases {
            assert_eq!(recent.decide(true, digest), want, "{digest}");
        }
        assert_eq!(recent.len(), 3);
    }

    /// Bounded whatever comes: never more than `capacity` digests held.
    #[test]
    fn bounded() {
        let mut recent = Recent::new(DEFAULT_CAPACITY);
        for i in 0..3 * DEFAULT_CAPACITY as u64 {
            recent.taken(i % 5000);
        }
        assert_eq!(recent.len(), DEFAULT_CAPACITY);
        assert!(recent.counts.len() <= DEFAULT_CAPACITY);
        assert_eq!(
            recent.counts.values().map(|&c| c as usize).sum::<usize>(),
            DEFAULT_CAPACITY
        );
    }
}
