//! Reading a channel's older messages back from the stream, for a client that resumes from
//! before what this node keeps in memory. No I/O: the connection asks `$JS.API.DIRECT.GET`
//! for what `Fetch::ask` says and hands each answer to `Fetch::on_answer`.
//!
//! One message per request (`{"seq":N,"next_by_subj":"msgbus.<channel>"}`: the first message
//! of the channel at or after N), one request in flight per client, at most `MAX_ACTIVE`
//! clients fetching at once and `MAX_WAITING` more queued; past that, or after `MAX_ASKS`
//! requests, or on any error, the client gets what the node's window holds and the missed
//! notice, as without a stream.
//!
//! The stream drops a channel's messages oldest first (per-subject limit, age), so it holds
//! every message of the channel from the oldest it still has. The first request asks from the
//! client's cursor itself: if that message is still there, nothing after it was dropped.
//! Otherwise the client is told it may have missed messages before the first one found.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use super::Remote;

/// Clients whose fetch has a request in flight.
const MAX_ACTIVE: usize = 64;
/// Clients waiting for their turn to fetch.
const MAX_WAITING: usize = 16 * 1024;
/// Requests one fetch may make: a channel with more than this between the cursor and the
/// window is told what it missed rather than read one message at a time.
const MAX_ASKS: usize = 20_000;
/// What one message costs besides its body, as a replay counts it.
const OVERHEAD: usize = 64;

/// What the stream gave for one client: the reactor then replays `messages`, then what the
/// window holds after `upto - 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The reactor's tag for the client.
    pub tag: u64,
    /// Oldest first, all after the cursor and before `upto`.
    pub messages: Vec<Remote>,
    /// Everything of the channel before this was asked of the stream; the cursor plus one
    /// when the stream could not be read (the window's own notice then holds).
    pub upto: u64,
    /// The stream no longer holds some messages after the cursor: the oldest it (or the
    /// budget) kept.
    pub missed: Option<u64>,
}

/// What the stream answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The channel's first message at or after the sequence asked.
    Message(Remote),
    /// None there (404).
    NoMore,
    /// An error, or not what was asked.
    Bad,
}

/// What to do after an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Ask for the channel's first message at or after this sequence.
    Ask(u64),
    /// Done (or given up): hand this to the reactor.
    Done(Fetched),
}

/// One client's fetch.
#[derive(Debug)]
pub struct Fetch {
    pub tag: u64,
    pub channel: String,
    after: u64,
    upto: u64,
    /// The sequence asked for last.
    next: u64,
    got: VecDeque<Remote>,
    bytes: usize,
    budget: usize,
    missed: Option<u64>,
    asks: usize,
    /// When the request in flight went.
    pub asked_at: Instant,
}

impl Fetch {
    /// Messages of `channel` after `after` and before `upto`, at most `budget` bytes of them
    /// (the newest).
    pub fn new(tag: u64, channel: String, after: u64, upto: u64, budget: usize) -> Fetch {
        Fetch {
            tag,
            channel,
            after,
            upto,
            next: after.max(1),
            got: VecDeque::new(),
            bytes: 0,
            budget,
            missed: None,
            asks: 0,
            asked_at: Instant::now(),
        }
    }

    /// The first request: from the cursor itself, to learn whether the stream still has it.
    pub fn start(&mut self, now: Instant) -> u64 {
        self.asks = 1;
        self.asked_at = now;
        self.next
    }

    pub fn on_answer(&mut self, answer: Answer, now: Instant) -> Step {
        let first = self.asks == 1;
        let remote = match answer {
            Answer::Bad => return Step::Done(self.give_up()),
            Answer::NoMore => {
                if first {
                    self.missed = Some(self.upto);
                }
                return Step::Done(self.finish());
            }
            Answer::Message(remote) => remote,
        };
        if remote.id < self.next || remote.channel != self.channel {
            return Step::Done(self.give_up());
        }
        if first && remote.id != self.after {
            // The cursor's own message is gone (or, from the start, the window had dropped
            // some): what came between it and this may be gone too.
            self.missed = Some(remote.id.min(self.upto));
        }
        if remote.id >= self.upto {
            return Step::Done(self.finish());
        }
        self.next = remote.id + 1;
        if remote.id > self.after {
            self.bytes += remote.body.len() + OVERHEAD;
            self.got.push_back(remote);
            // Over the budget the oldest go, and the client is told, as a replay does.
            while self.bytes > self.budget && self.got.len() > 1 {
                let dropped = self.got.pop_front().expect("more than one");
                self.bytes -= dropped.body.len() + OVERHEAD;
                let oldest = self.got.front().map_or(self.upto, |m| m.id);
                self.missed = Some(self.missed.map_or(oldest, |m| m.max(oldest)));
            }
        }
        if self.asks >= MAX_ASKS {
            return Step::Done(self.give_up());
        }
        self.asks += 1;
        self.asked_at = now;
        Step::Ask(self.next)
    }

    fn finish(&mut self) -> Fetched {
        Fetched {
            tag: self.tag,
            messages: std::mem::take(&mut self.got).into(),
            upto: self.upto,
            missed: self.missed,
        }
    }

    /// Nothing from the stream: the window's own replay and notice.
    pub fn give_up(&mut self) -> Fetched {
        Fetched {
            tag: self.tag,
            messages: Vec::new(),
            upto: self.after + 1,
            missed: None,
        }
    }
}

/// The fetches of one node: a few in flight, more waiting their turn.
#[derive(Debug, Default)]
pub struct Fetches {
    pub active: BTreeMap<u64, Fetch>,
    waiting: VecDeque<Fetch>,
}

impl Fetches {
    /// Queues a fetch; Err gives it back when too many wait already.
    pub fn add(&mut self, fetch: Fetch) -> Result<(), Box<Fetch>> {
        if self.waiting.len() >= MAX_WAITING {
            return Err(Box::new(fetch));
        }
        self.waiting.push_back(fetch);
        Ok(())
    }

    /// Fetches to start now (room was made, or they were just added).
    pub fn start_next(&mut self, now: Instant) -> Vec<(u64, String, u64)> {
        let mut started = Vec::new();
        while self.active.len() < MAX_ACTIVE {
            let Some(mut fetch) = self.waiting.pop_front() else {
                break;
            };
            let seq = fetch.start(now);
            started.push((fetch.tag, fetch.channel.clone(), seq));
            self.active.insert(fetch.tag, fetch);
        }
        started
    }

    /// Every fetch ends with nothing from the stream (the connection to NATS went).
    pub fn give_up_all(&mut self) -> Vec<Fetched> {
        let active = std::mem::take(&mut self.active).into_values();
        let waiting = std::mem::take(&mut self.waiting);
        active.chain(waiting).map(|mut f| f.give_up()).collect()
    }

    /// When the oldest request in flight is due.
    pub fn oldest_ask(&self) -> Option<Instant> {
        self.active.values().map(|f| f.asked_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn msg(id: u64, channel: &str) -> Answer {
        Answer::Message(Remote {
            channel: channel.into(),
            id,
            content_type: "text/plain".into(),
            sender: None,
            event: None,
            body: b"0123456789".to_vec(),
            age: Duration::ZERO,
        })
    }

    /// Drives a fetch of "c" after `after` and before `upto` through `answers`: the sequences
    /// asked, then the ids fetched, `upto` and the missed notice's oldest.
    fn run(after: u64, upto: u64, budget: usize, answers: Vec<Answer>) -> (Vec<u64>, Fetched) {
        let now = Instant::now();
        let mut fetch = Fetch::new(7, "c".into(), after, upto, budget);
        let mut asked = vec![fetch.start(now)];
        for answer in answers {
            match fetch.on_answer(answer, now) {
                Step::Ask(seq) => asked.push(seq),
                Step::Done(done) => return (asked, done),
            }
        }
        panic!("not done: asked {asked:?}");
    }

    fn ids(fetched: &Fetched) -> Vec<u64> {
        fetched.messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn fetches() {
        // (after, upto, budget, answers, asked, ids, upto, missed)
        type Case = (
            u64,
            u64,
            usize,
            Vec<Answer>,
            Vec<u64>,
            Vec<u64>,
            u64,
            Option<u64>,
        );
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // The cursor is still there: the rest, nothing missed, stopping at the window.
            (3, 9, 1 << 20, vec![msg(3, "c"), msg(5, "c"), msg(8, "c"), msg(9, "c")], vec![3, 4, 6, 9], vec![5, 8], 9, None),
            // The cursor is gone: missed before the first found.
            (3, 9, 1 << 20, vec![msg(6, "c"), Answer::NoMore], vec![3, 7], vec![6], 9, Some(6)),
            // Nothing at all after the cursor: missed up to the window.
            (3, 9, 1 << 20, vec![Answer::NoMore], vec![3], vec![], 9, Some(9)),
            // From the start (the window dropped some): told from the first found.
            (0, 9, 1 << 20, vec![msg(4, "c"), Answer::NoMore], vec![1, 5], vec![4], 9, Some(4)),
            // Over the budget the oldest go and are reported.
            (3, 9, 150, vec![msg(3, "c"), msg(4, "c"), msg(5, "c"), msg(6, "c"), Answer::NoMore], vec![3, 4, 5, 6, 7], vec![5, 6], 9, Some(5)),
            // An error or a wrong answer: nothing from the stream, the window decides.
            (3, 9, 1 << 20, vec![msg(3, "c"), Answer::Bad], vec![3, 4], vec![], 4, None),
            (3, 9, 1 << 20, vec![msg(2, "c")], vec![3], vec![], 4, None),
            (3, 9, 1 << 20, vec![msg(3, "other")], vec![3], vec![], 4, None),
        ];
        for (after, upto, budget, answers, asked, want, want_upto, missed) in cases {
            let (got_asked, fetched) = run(after, upto, budget, answers);
            assert_eq!(got_asked, asked, "after {after}");
            assert_eq!(ids(&fetched), want, "after {after}");
            assert_eq!(fetched.upto, want_upto, "after {after}");
            assert_eq!(fetched.missed, missed, "after {after}");
        }
    }

    #[test]
    fn a_few_at_once_the_rest_wait() {
        let now = Instant::now();
        let mut fetches = Fetches::default();
        for tag in 0..(MAX_ACTIVE as u64 + 3) {
            fetches.add(Fetch::new(tag, "c".into(), 1, 5, 100)).unwrap();
        }
        assert_eq!(fetches.start_next(now).len(), MAX_ACTIVE);
        assert!(fetches.start_next(now).is_empty());
        let mut done = fetches.active.remove(&0).unwrap();
        assert_eq!(done.give_up().upto, 2);
        assert_eq!(
            fetches.start_next(now),
            [(MAX_ACTIVE as u64, "c".to_string(), 1)]
        );
        assert_eq!(fetches.give_up_all().len(), MAX_ACTIVE + 2);
    }
}
