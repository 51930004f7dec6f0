//! Channels, their retained messages, and their subscribers. The bus knows subscribers only as
//! (connection key, wire, filter); it never touches a socket. Publishing returns the message;
//! the reactor walks `for_each_recipient` and queues the shared frame on each connection.

pub mod filter;
mod message;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use slab::Slab;

pub use filter::Filter;
pub use message::Message;

use crate::transport::json::Missed;
use crate::transport::Wire;

/// One subscription of one connection.
#[derive(Debug)]
pub struct Subscriber {
    pub conn: usize,
    pub wire: Wire,
    /// None when it takes everything; boxed so the common case stays small.
    pub filter: Option<Box<Filter>>,
}

/// Where a subscription is held, so that unsubscribing is O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionId {
    subtree: bool,
    index: usize,
    slot: usize,
}

/// What a channel keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Messages kept for resuming clients; 0 keeps none (live only, as the original).
    pub size: usize,
    pub lifetime: Duration,
}

#[derive(Debug)]
struct Retained {
    expires: Instant,
    msg: Rc<Message>,
}

#[derive(Debug)]
struct Channel {
    name: Rc<str>,
    retention: Retention,
    history: VecDeque<Retained>,
    /// The highest id that left the history (evicted or expired): a client resuming from
    /// before it has missed something.
    forgotten_upto: u64,
    /// SHA-256 of the publish key, when the channel has one. Never shown anywhere.
    key: Option<[u8; 32]>,
    subscribers: Slab<Subscriber>,
    /// When it last had a subscriber or a publish; idle channels are freed by `sweep`.
    last_used: Instant,
}

impl Channel {
    fn expire(&mut self, now: Instant) {
        while let Some(front) = self.history.front() {
            if front.expires > now && self.history.len() <= self.retention.size {
                break;
            }
            self.forgotten_upto = self.forgotten_upto.max(front.msg.id);
            self.history.pop_front();
        }
    }

    /// Takes a message in: kept in id order (once: a message from the cluster may come back),
    /// or, when the channel keeps nothing, noted as gone; then expires what is due.
    fn keep(&mut self, msg: &Rc<Message>, now: Instant) {
        self.last_used = now;
        if self.retention.size > 0 && !self.retention.lifetime.is_zero() {
            // A local message has the newest id: this is the end of the history.
            let at = self.history.partition_point(|r| r.msg.id < msg.id);
            let duplicate = self.history.get(at).is_some_and(|r| r.msg.id == msg.id);
            if !duplicate {
                let retained = Retained {
                    expires: now + self.retention.lifetime,
                    msg: msg.clone(),
                };
                self.history.insert(at, retained);
            }
        } else {
            self.forgotten_upto = self.forgotten_upto.max(msg.id);
        }
        self.expire(now);
    }

    fn is_idle(&self) -> bool {
        self.subscribers.is_empty() && self.history.is_empty()
    }
}

/// Subscribers of every channel under a prefix ("" for all of them).
#[derive(Debug)]
struct Subtree {
    prefix: Box<str>,
    subscribers: Slab<Subscriber>,
}

/// A publish, as the connection hands it over.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    pub channel: String,
    pub content_type: String,
    pub sender: Option<String>,
    /// The SSE event name.
    pub event: Option<String>,
    pub body: Vec<u8>,
    /// The publish key given, if any.
    pub key: Option<String>,
    /// The whole lhttp message, when it came through the lhttp door: what lhttp subscribers get.
    pub lhttp_frame: Option<Vec<u8>>,
    /// Per-channel retention overrides (`?size=`, `?life=`).
    pub size: Option<usize>,
    pub lifetime: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusError {
    /// The channel has a publish key and it was not given.
    WrongKey,
    NoSuchChannel,
    /// Creating the channel would pass `--max-channels`.
    ChannelLimit,
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BusError::WrongKey => "wrong or missing channel key",
            BusError::NoSuchChannel => "no such channel",
            BusError::ChannelLimit => "too many channels",
        })
    }
}

/// Retained messages after a client's cursor, and whether some it should have had are gone.
#[derive(Debug, Default)]
pub struct Replay {
    pub messages: Vec<Rc<Message>>,
    pub missed: Option<Missed>,
}

#[derive(Debug)]
pub struct Bus {
    channels: Slab<Channel>,
    by_name: HashMap<Rc<str>, usize>,
    subtrees: Slab<Subtree>,
    by_prefix: HashMap<Box<str>, usize>,
    default_retention: Retention,
    /// Channels idle this long are freed.
    idle_timeout: Duration,
    /// The lowest id this process knows about (its own first, or the lowest received from the
    /// cluster): a cursor below it comes from before a restart, or before this node joined.
    first_id: u64,
    next_id: u64,
    subscribers: usize,
    retained: usize,
    max_channels: usize,
    /// Cursors before this may have missed messages published while this node was cut off.
    gap_upto: u64,
}

impl Bus {
    /// `first_id` should grow across restarts (the clock at start-up) so ids are never reused.
    pub fn new(first_id: u64, default_retention: Retention, idle_timeout: Duration) -> Bus {
        Bus {
            channels: Slab::new(),
            by_name: HashMap::new(),
            subtrees: Slab::new(),
            by_prefix: HashMap::new(),
            default_retention,
            idle_timeout,
            first_id,
            next_id: first_id,
            subscribers: 0,
            retained: 0,
            max_channels: usize::MAX,
            gap_upto: 0,
        }
    }

    fn channel_index(&mut self, name: &str, now: Instant) -> Result<usize, BusError> {
        if let Some(&index) = self.by_name.get(name) {
            return Ok(index);
        }
        if self.channels.len() >= self.max_channels {
            return Err(BusError::ChannelLimit);
        }
        let name: Rc<str> = name.into();
        let index = self.channels.insert(Channel {
            name: name.clone(),
            retention: self.default_retention,
            history: VecDeque::new(),
            forgotten_upto: 0,
            key: None,
            subscribers: Slab::new(),
            last_used: now,
        });
        self.by_name.insert(name, index);
        Ok(index)
    }

    /// Channels beyond this many are not created (publish and subscribe get `ChannelLimit`).
    pub fn set_max_channels(&mut self, max: usize) {
        self.max_channels = max;
    }

    /// Subscribes to channel `name`, or with `subtree` to every channel whose name starts with
    /// `name` (which is then "" or ends in '/').
    pub fn subscribe(
        &mut self,
        name: &str,
        subtree: bool,
        sub: Subscriber,
        now: Instant,
    ) -> Result<SubscriptionId, BusError> {
        if subtree {
            self.subscribers += 1;
            let index = match self.by_prefix.get(name) {
                Some(&index) => index,
                None => {
                    let index = self.subtrees.insert(Subtree {
                        prefix: name.into(),
                        subscribers: Slab::new(),
                    });
                    self.by_prefix.insert(name.into(), index);
                    index
                }
            };
            let slot = self.subtrees[index].subscribers.insert(sub);
            return Ok(SubscriptionId {
                subtree,
                index,
                slot,
            });
        }
        let index = self.channel_index(name, now)?;
        let channel = &mut self.channels[index];
        channel.last_used = now;
        let slot = channel.subscribers.insert(sub);
        self.subscribers += 1;
        Ok(SubscriptionId {
            subtree,
            index,
            slot,
        })
    }

    pub fn unsubscribe(&mut self, id: SubscriptionId, now: Instant) {
        let removed = if id.subtree {
            let Some(subtree) = self.subtrees.get_mut(id.index) else {
                return;
            };
            let removed = subtree.subscribers.try_remove(id.slot).is_some();
            if subtree.subscribers.is_empty() {
                let subtree = self.subtrees.remove(id.index);
                self.by_prefix.remove(&subtree.prefix);
            }
            removed
        } else {
            let Some(channel) = self.channels.get_mut(id.index) else {
                return;
            };
            channel.last_used = now;
            channel.subscribers.try_remove(id.slot).is_some()
        };
        if removed {
            self.subscribers -= 1;
        }
    }

    /// Checks the key, applies retention overrides, assigns the next id and retains the
    /// message.
    pub fn publish(&mut self, req: PublishRequest, now: Instant) -> Result<Rc<Message>, BusError> {
        let index = self.channel_index(&req.channel, now)?;
        let channel = &mut self.channels[index];
        let given = req.key.as_deref().map(digest);
        match (&channel.key, given) {
            (Some(key), Some(given)) if constant_time_eq(key, &given) => {}
            (Some(_), _) => return Err(BusError::WrongKey),
            (None, given) => channel.key = given,
        }
        if let Some(size) = req.size {
            channel.retention.size = size;
        }
        if let Some(lifetime) = req.lifetime {
            channel.retention.lifetime = lifetime;
        }
        let mut msg = Message::new(
            self.next_id,
            channel.name.clone(),
            req.content_type.into_boxed_str(),
            req.sender.map(String::into_boxed_str),
            req.body.into_boxed_slice(),
        );
        msg.event = req.event.map(String::into_boxed_str);
        msg.lhttp_frame = req.lhttp_frame.map(Vec::into_boxed_slice);
        let msg = Rc::new(msg);
        self.next_id += 1;
        let before = channel.history.len();
        channel.keep(&msg, now);
        self.retained = self.retained + channel.history.len() - before;
        Ok(msg)
    }

    /// Takes in a message another node published, under the id it was given there. It is kept
    /// in id order (messages from several nodes arrive interleaved), and this node's next id
    /// moves past it so ids stay ordered across the cluster. Keys were checked at the origin.
    pub fn publish_remote(
        &mut self,
        remote: crate::cluster::Remote,
        now: Instant,
    ) -> Result<Rc<Message>, BusError> {
        let index = self.channel_index(&remote.channel, now)?;
        let channel = &mut self.channels[index];
        let mut msg = Message::new(
            remote.id,
            channel.name.clone(),
            remote.content_type.into_boxed_str(),
            remote.sender.map(String::into_boxed_str),
            remote.body.into_boxed_slice(),
        );
        msg.event = remote.event.map(String::into_boxed_str);
        let msg = Rc::new(msg);
        self.next_id = self.next_id.max(remote.id + 1);
        // Other nodes' ids may run behind ours: what this node has seen since it joined starts
        // at the lowest id it received, not at its own first id. (A cursor from a node whose ids
        // run far behind may then pass as known: ids order messages per node, not globally.)
        self.first_id = self.first_id.min(remote.id);
        let before = channel.history.len();
        channel.keep(&msg, now);
        self.retained = self.retained + channel.history.len() - before;
        Ok(msg)
    }

    /// Messages up to the next id may have been published elsewhere and never reached this
    /// node (it was cut off from the cluster): a cursor before now is told it may have missed
    /// some.
    pub fn mark_gap(&mut self) {
        self.gap_upto = self.next_id.saturating_sub(1);
    }

    /// Drops a channel: its history and its subscriptions. Returns the connections that were
    /// subscribed to it with their (now void) subscription ids, for the reactor to end them.
    pub fn delete(
        &mut self,
        name: &str,
        key: Option<&str>,
    ) -> Result<Vec<(usize, SubscriptionId)>, BusError> {
        let &index = self.by_name.get(name).ok_or(BusError::NoSuchChannel)?;
        if let Some(expected) = &self.channels[index].key {
            if !key.is_some_and(|k| constant_time_eq(expected, &digest(k))) {
                return Err(BusError::WrongKey);
            }
        }
        let channel = self.channels.remove(index);
        self.by_name.remove(&channel.name);
        self.retained -= channel.history.len();
        self.subscribers -= channel.subscribers.len();
        let gone = channel.subscribers.iter().map(|(slot, sub)| {
            let id = SubscriptionId {
                subtree: false,
                index,
                slot,
            };
            (sub.conn, id)
        });
        Ok(gone.collect())
    }

    /// Drops retained messages of channel `name` with ids up to `upto` (all of them with
    /// `u64::MAX`), keeping its subscribers: a door whose protocol consumes or deletes messages
    /// without ending anyone. A cursor from before them is then told it missed something.
    /// Returns how many were dropped.
    pub fn forget(&mut self, name: &str, upto: u64) -> usize {
        let Some(&index) = self.by_name.get(name) else {
            return 0;
        };
        let channel = &mut self.channels[index];
        let count = channel.history.partition_point(|r| r.msg.id <= upto);
        if let Some(last) = channel.history.get(count.wrapping_sub(1)) {
            channel.forgotten_upto = channel.forgotten_upto.max(last.msg.id);
        }
        channel.history.drain(..count);
        self.retained -= count;
        count
    }

    /// Retained messages of channel `name` (or of every channel under prefix `name` with
    /// `subtree`) with ids after `after`, oldest first, and whether any are already gone.
    pub fn replay(&mut self, name: &str, subtree: bool, after: u64, now: Instant) -> Replay {
        let mut replay = Replay::default();
        let mut forgotten_upto = 0;
        let mut oldest_retained = None::<u64>;
        let mut visit = |channel: &mut Channel, retained: &mut usize| {
            let before = channel.history.len();
            channel.expire(now);
            *retained -= before - channel.history.len();
            forgotten_upto = forgotten_upto.max(channel.forgotten_upto);
            if let Some(front) = channel.history.front() {
                let id = front.msg.id;
                oldest_retained = Some(oldest_retained.map_or(id, |o| o.min(id)));
            }
            let start = channel.history.partition_point(|r| r.msg.id <= after);
            replay
                .messages
                .extend(channel.history.range(start..).map(|r| r.msg.clone()));
        };
        if subtree {
            for (_, channel) in self.channels.iter_mut() {
                if channel.name.starts_with(name) {
                    visit(channel, &mut self.retained);
                }
            }
            replay.messages.sort_by_key(|m| m.id);
        } else if let Some(&index) = self.by_name.get(name) {
            visit(&mut self.channels[index], &mut self.retained);
        }
        // Before this process started nothing is known, so a cursor from then may have missed
        // messages; otherwise only if something after the cursor has been forgotten.
        let unknown_before = self.gap_upto.max(self.first_id.saturating_sub(1));
        if after < forgotten_upto || after < unknown_before {
            replay.missed = Some(Missed {
                after,
                oldest: oldest_retained.unwrap_or(self.next_id),
            });
        }
        replay
    }

    /// The id the next message will get; a new subscriber's cursor.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Calls `deliver` for each subscriber that should get `msg`: those of its channel and of
    /// every subtree containing it, whose filters accept it. A connection holding several of
    /// these subscriptions is called for each; the reactor delivers once.
    pub fn for_each_recipient(&self, msg: &Message, mut deliver: impl FnMut(&Subscriber)) {
        let mut visit = |subscribers: &Slab<Subscriber>| {
            for (_, sub) in subscribers {
                let accepted = sub
                    .filter
                    .as_ref()
                    .is_none_or(|f| f.accepts(&msg.content_type, msg.sender.as_deref()));
                if accepted {
                    deliver(sub);
                }
            }
        };
        if let Some(&index) = self.by_name.get(&*msg.channel) {
            visit(&self.channels[index].subscribers);
        }
        if self.by_prefix.is_empty() {
            return;
        }
        for prefix in subtree_prefixes(&msg.channel) {
            if let Some(&index) = self.by_prefix.get(prefix) {
                visit(&self.subtrees[index].subscribers);
            }
        }
    }

    /// Expires messages and frees channels with no subscribers and no messages that have been
    /// idle for the idle timeout. Called every second or so; returns how many were freed.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let mut idle = Vec::new();
        let mut expired = 0;
        for (index, channel) in self.channels.iter_mut() {
            let before = channel.history.len();
            channel.expire(now);
            expired += before - channel.history.len();
            if channel.is_idle() && now.duration_since(channel.last_used) >= self.idle_timeout {
                idle.push(index);
            }
        }
        self.retained -= expired;
        for &index in &idle {
            let channel = self.channels.remove(index);
            self.by_name.remove(&channel.name);
        }
        idle.len()
    }

    pub fn has_channel(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers
    }

    /// Messages held in histories.
    pub fn retained_count(&self) -> usize {
        self.retained
    }
}

fn digest(key: &str) -> [u8; 32] {
    let hash = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    hash.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The subtree prefixes containing `channel`: "", then each prefix ending in '/'.
fn subtree_prefixes(channel: &str) -> impl Iterator<Item = &str> {
    std::iter::once("").chain(channel.match_indices('/').map(move |(i, _)| &channel[..=i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP_10: Retention = Retention {
        size: 10,
        lifetime: Duration::from_secs(60),
    };

    fn bus(first_id: u64) -> Bus {
        Bus::new(first_id, KEEP_10, Duration::from_secs(30))
    }

    fn sub(conn: usize, filter: Option<Filter>) -> Subscriber {
        Subscriber {
            conn,
            wire: Wire::Multipart,
            filter: filter.map(Box::new),
        }
    }

    fn req(channel: &str, content_type: &str, sender: Option<&str>) -> PublishRequest {
        PublishRequest {
            channel: channel.into(),
            content_type: content_type.into(),
            sender: sender.map(Into::into),
            ..PublishRequest::default()
        }
    }

    fn recipients(bus: &Bus, msg: &Message) -> Vec<usize> {
        let mut got = Vec::new();
        bus.for_each_recipient(msg, |s| got.push(s.conn));
        got.sort();
        got
    }

    fn ids(replay: &Replay) -> Vec<u64> {
        replay.messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn prefixes() {
        let cases: &[(&str, &[&str])] = &[
            ("foo", &[""]),
            ("a/b/c", &["", "a/", "a/b/"]),
            ("a/", &["", "a/"]),
            ("", &[""]),
        ];
        for (channel, want) in cases {
            assert_eq!(subtree_prefixes(channel).collect::<Vec<_>>(), *want);
        }
    }

    #[test]
    fn channels_subtrees_and_everything() {
        let now = Instant::now();
        let mut bus = bus(1);
        bus.subscribe("foo", false, sub(1, None), now).unwrap();
        bus.subscribe("", true, sub(2, None), now).unwrap();
        bus.subscribe("sensors/", true, sub(3, None), now).unwrap();
        bus.subscribe("sensors/t1", false, sub(4, None), now)
            .unwrap();
        bus.subscribe("bar", false, sub(5, None), now).unwrap();
        let cases: &[(&str, &[usize])] = &[
            ("foo", &[1, 2]),
            ("sensors/t1", &[2, 3, 4]),
            ("sensors/t2/x", &[2, 3]),
            ("sensorsX", &[2]),
            ("", &[2]), // a publish to /msgbus/ reaches each all-channels subscriber once
        ];
        for (channel, want) in cases {
            let msg = bus.publish(req(channel, "text/plain", None), now).unwrap();
            assert_eq!(recipients(&bus, &msg), *want, "{channel}");
        }
    }

    #[test]
    fn filters_apply() {
        let now = Instant::now();
        let mut bus = bus(1);
        let text_only = Filter::new(Some("text/*"), None);
        bus.subscribe("c", false, sub(1, Some(text_only)), now)
            .unwrap();
        let alice_only = Filter::new(None, Some("alice"));
        bus.subscribe("c", false, sub(2, Some(alice_only)), now)
            .unwrap();
        bus.subscribe("c", false, sub(3, None), now).unwrap();
        let text = bus
            .publish(req("c", "text/plain", Some("bob")), now)
            .unwrap();
        assert_eq!(recipients(&bus, &text), [1, 3]);
        let jpeg = bus
            .publish(req("c", "image/jpeg", Some("alice")), now)
            .unwrap();
        assert_eq!(recipients(&bus, &jpeg), [2, 3]);
    }

    #[test]
    fn ids_increase_and_idle_channels_are_freed() {
        let now = Instant::now();
        let mut bus = Bus::new(
            100,
            Retention { size: 0, ..KEEP_10 },
            Duration::from_secs(30),
        );
        let a = bus.subscribe("x", false, sub(1, None), now).unwrap();
        let b = bus.subscribe("x", false, sub(2, None), now).unwrap();
        assert_eq!((bus.channel_count(), bus.subscriber_count()), (1, 2));
        bus.unsubscribe(a, now);
        bus.unsubscribe(a, now); // twice is harmless
        bus.unsubscribe(b, now);
        assert_eq!((bus.channel_count(), bus.subscriber_count()), (1, 0));
        let ids: Vec<u64> = (0..3)
            .map(|_| bus.publish(req("x", "t", None), now).unwrap().id)
            .collect();
        assert_eq!(ids, [100, 101, 102]);
        assert_eq!(bus.sweep(now + Duration::from_secs(29)), 0);
        assert_eq!(bus.sweep(now + Duration::from_secs(30)), 1);
        assert_eq!(bus.channel_count(), 0);
    }

    #[test]
    fn history_is_bounded_by_size_and_lifetime() {
        let now = Instant::now();
        let mut bus = bus(1);
        for _ in 0..15 {
            bus.publish(req("h", "t", None), now).unwrap();
        }
        let all = bus.replay("h", false, 0, now);
        assert_eq!(ids(&all), (6..=15).collect::<Vec<_>>());
        assert_eq!(
            all.missed,
            Some(Missed {
                after: 0,
                oldest: 6
            })
        );
        let recent = bus.replay("h", false, 12, now);
        assert_eq!(ids(&recent), [13, 14, 15]);
        assert_eq!(recent.missed, None);
        assert_eq!(bus.retained_count(), 10);
        let later = now + Duration::from_secs(61);
        let gone = bus.replay("h", false, 12, later);
        assert!(gone.messages.is_empty());
        assert_eq!(
            gone.missed,
            Some(Missed {
                after: 12,
                oldest: 16
            })
        );
        assert_eq!(bus.retained_count(), 0);
        assert_eq!(bus.sweep(later + Duration::from_secs(30)), 1);
    }

    #[test]
    fn per_channel_retention_and_subtree_replay() {
        let now = Instant::now();
        let mut bus = bus(1);
        let small = PublishRequest {
            size: Some(2),
            ..req("s/a", "t", None)
        };
        bus.publish(small, now).unwrap(); // 1
        bus.publish(req("s/b", "t", None), now).unwrap(); // 2
        bus.publish(req("s/a", "t", None), now).unwrap(); // 3
        bus.publish(req("s/a", "t", None), now).unwrap(); // 4: evicts 1 from s/a
        bus.publish(req("other", "t", None), now).unwrap(); // 5
        let replay = bus.replay("s/", true, 0, now);
        assert_eq!(ids(&replay), [2, 3, 4]);
        assert_eq!(
            replay.missed,
            Some(Missed {
                after: 0,
                oldest: 2
            })
        );
        assert_eq!(bus.replay("s/", true, 1, now).missed, None);
    }

    #[test]
    fn a_cursor_from_before_a_restart_is_told_it_may_have_missed() {
        let now = Instant::now();
        let mut bus = bus(1000);
        bus.publish(req("c", "t", None), now).unwrap();
        let replay = bus.replay("c", false, 500, now);
        assert_eq!(ids(&replay), [1000]);
        assert_eq!(
            replay.missed,
            Some(Missed {
                after: 500,
                oldest: 1000
            })
        );
        assert_eq!(bus.replay("c", false, 999, now).missed, None);
    }

    #[test]
    fn keys_guard_publish_and_delete() {
        let now = Instant::now();
        let mut bus = bus(1);
        let keyed = |key: Option<&str>| PublishRequest {
            key: key.map(Into::into),
            ..req("k", "t", None)
        };
        bus.publish(keyed(Some("s3cret")), now).unwrap();
        assert_eq!(
            bus.publish(keyed(None), now).unwrap_err(),
            BusError::WrongKey
        );
        assert_eq!(
            bus.publish(keyed(Some("nope")), now).unwrap_err(),
            BusError::WrongKey
        );
        bus.publish(keyed(Some("s3cret")), now).unwrap();
        bus.subscribe("k", false, sub(7, None), now).unwrap();
        assert_eq!(bus.delete("k", None), Err(BusError::WrongKey));
        let gone = bus.delete("k", Some("s3cret")).unwrap();
        assert_eq!(gone.iter().map(|(conn, _)| *conn).collect::<Vec<_>>(), [7]);
        assert_eq!(
            bus.delete("k", Some("s3cret")),
            Err(BusError::NoSuchChannel)
        );
        assert_eq!(
            (
                bus.channel_count(),
                bus.subscriber_count(),
                bus.retained_count()
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn forgetting_drops_the_front_of_the_history_and_reports_a_gap() {
        let now = Instant::now();
        let mut bus = Bus::new(
            1,
            Retention {
                size: 10,
                lifetime: Duration::from_secs(60),
            },
            Duration::from_secs(30),
        );
        for body in ["a", "b", "c"] {
            let req = PublishRequest {
                channel: "ch".into(),
                body: body.into(),
                ..PublishRequest::default()
            };
            bus.publish(req, now).unwrap();
        }
        assert_eq!(bus.forget("ch", 2), 2);
        assert_eq!(bus.retained_count(), 1);
        let replay = bus.replay("ch", false, 1, now);
        assert_eq!(replay.messages.len(), 1);
        assert_eq!(&*replay.messages[0].body, b"c");
        assert!(
            replay.missed.is_some(),
            "message 2 was forgotten after cursor 1"
        );
        assert!(bus.replay("ch", false, 2, now).missed.is_none());
        assert_eq!(bus.forget("ch", u64::MAX), 1);
        assert_eq!(bus.forget("nope", u64::MAX), 0);
        assert_eq!(bus.retained_count(), 0);
    }
}
