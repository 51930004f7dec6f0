//! Deadlines keyed by slab index. Each connection has at most one deadline that matters; the heap
//! holds at most one entry per connection that is earlier than or equal to it, so re-arming a
//! keep-alive deadline on every request costs nothing but a store. Every call takes `now`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// One connection's view of the timer: the deadline it wants and the earliest one it has queued.
#[derive(Debug, Default, Clone, Copy)]
pub struct TimerSlot {
    deadline: Option<Instant>,
    queued: Option<Instant>,
}

impl TimerSlot {
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Timers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or clears, with None) `key`'s deadline.
    pub fn set(&mut self, key: usize, slot: &mut TimerSlot, deadline: Option<Instant>) {
        slot.deadline = deadline;
        if let Some(at) = deadline {
            // A queued entry at or before `at` will fire and re-queue lazily; only an earlier
            // deadline needs a new heap entry.
            if slot.queued.is_none_or(|queued| at < queued) {
                slot.queued = Some(at);
                self.heap.push(Reverse((at, key)));
            }
        }
    }

    /// Time until the earliest queued entry, for poll's timeout.
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(now))
    }

    /// Pops the next entry due at `now`. The caller looks up the slot (the key may have been
    /// closed and reused) and passes it to `fire`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, usize)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Decides what a popped entry means for its slot: true when the slot's deadline has
    /// passed (the connection times out); otherwise a later deadline is re-queued.
    pub fn fire(&mut self, entry: (Instant, usize), slot: &mut TimerSlot, now: Instant) -> bool {
        let (at, key) = entry;
        if slot.queued != Some(at) {
            return false; // a stale entry from an earlier connection at this key
        }
        slot.queued = None;
        match slot.deadline {
            Some(deadline) if deadline <= now => {
                slot.deadline = None;
                true
            }
            Some(later) => {
                slot.queued = Some(later);
                self.heap.push(Reverse((later, key)));
                false
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expire(timers: &mut Timers, slots: &mut [TimerSlot], now: Instant) -> Vec<usize> {
        let mut fired = Vec::new();
        while let Some(entry) = timers.pop_due(now) {
            if timers.fire(entry, &mut slots[entry.1], now) {
                fired.push(entry.1);
            }
        }
        fired
    }

    #[test]
    fn fires_only_what_is_due() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut timers = Timers::new();
        let mut slots = [TimerSlot::default(); 3];
        timers.set(0, &mut slots[0], Some(t0 + s));
        timers.set(1, &mut slots[1], Some(t0 + 3 * s));
        timers.set(2, &mut slots[2], Some(t0 + 2 * s));
        assert_eq!(timers.next_timeout(t0), Some(s));
        assert_eq!(expire(&mut timers, &mut slots, t0 + 2 * s), vec![0, 2]);
        assert_eq!(expire(&mut timers, &mut slots, t0 + 3 * s), vec![1]);
        assert!(timers.is_empty());
    }

    #[test]
    fn rearming_later_adds_no_entry_and_fires_at_the_new_deadline() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut timers = Timers::new();
        let mut slots = [TimerSlot::default()];
        for i in 1..=1000 {
            timers.set(0, &mut slots[0], Some(t0 + i * s / 100));
        }
        assert_eq!(timers.len(), 1);
        assert_eq!(
            expire(&mut timers, &mut slots, t0 + 5 * s),
            Vec::<usize>::new()
        );
        assert_eq!(expire(&mut timers, &mut slots, t0 + 10 * s), vec![0]);
    }

    #[test]
    fn cleared_and_reused_slots_do_not_fire() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut timers = Timers::new();
        let mut slots = [TimerSlot::default()];
        timers.set(0, &mut slots[0], Some(t0 + s));
        timers.set(0, &mut slots[0], None);
        assert_eq!(
            expire(&mut timers, &mut slots, t0 + 2 * s),
            Vec::<usize>::new()
        );
        // A new connection at the same key with a fresh slot ignores the old entry.
        timers.set(0, &mut slots[0], Some(t0 + 3 * s));
        slots[0] = TimerSlot::default();
        timers.set(0, &mut slots[0], Some(t0 + 5 * s));
        assert_eq!(
            expire(&mut timers, &mut slots, t0 + 4 * s),
            Vec::<usize>::new()
        );
        assert_eq!(expire(&mut timers, &mut slots, t0 + 5 * s), vec![0]);
    }

    #[test]
    fn earlier_deadline_is_queued() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut timers = Timers::new();
        let mut slots = [TimerSlot::default()];
        timers.set(0, &mut slots[0], Some(t0 + 10 * s));
        timers.set(0, &mut slots[0], Some(t0 + s));
        assert_eq!(expire(&mut timers, &mut slots, t0 + s), vec![0]);
    }
}
