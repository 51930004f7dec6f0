//! Channels, their retained messages, and their subscribers. The bus knows subscribers only as
//! (connection key, wire, filter); it never touches a socket. Publishing returns the message;
//! the reactor walks `for_each_recipient` and queues the shared frame on each connection.
//!
//! The bus takes only what the gate admitted (`gate::Topic`, `gate::Publish`, ...): a door or
//! transport cannot reach a channel without passing the gate's checks. What only the bus knows,
//! each channel's key, is compared here.

pub mod filter;
pub mod history;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::rc::Rc;
use std::time::{Duration, Instant};

use slab::Slab;

pub use crate::message::Message;
pub use filter::Filter;
pub use history::{Commit, Store, Ticket};

use history::{ChannelAttributes, Recovered, Restored, Snapshot};

pub use crate::gate::constant_time_eq;
use crate::gate::{self, KeyedChannel};
use crate::message::Missed;
use crate::transport::Wire;

/// What a retained message costs besides its body and type: the message, its history slot and
/// a frame or two, roughly. Counted against `--max-retained-bytes`.
const RETAINED_OVERHEAD: usize = 256;
/// What a replayed message costs besides its body, counted against a replay's byte budget (the
/// frame's headers).
const REPLAY_OVERHEAD: usize = 128;
/// Holes in the stream's sequence remembered; past it the oldest merge.
const MAX_HOLES: usize = 4096;

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
    /// Bytes the history holds (`retained_cost` of each message).
    bytes: usize,
    /// The highest id that left the history (evicted or expired): a client resuming from
    /// before it has missed something.
    forgotten_upto: u64,
    /// SHA-256 of the publish key, when the channel has one. Never shown anywhere.
    key: Option<[u8; 32]>,
    /// Each message is consumed by its first delivery (martd's `one2one`).
    one2one: bool,
    /// Something was published on it: its attributes are fixed now, save with its key.
    published: bool,
    subscribers: Slab<Subscriber>,
    /// When it last had a subscriber or a publish; idle channels are freed by `sweep`.
    last_used: Instant,
}

/// What one retained message counts against `--max-retained-bytes`.
fn retained_cost(msg: &Message) -> usize {
    msg.body.len() + msg.content_type.len() + RETAINED_OVERHEAD
}

impl Channel {
    fn new(name: Rc<str>, retention: Retention, now: Instant) -> Channel {
        Channel {
            name,
            retention,
            history: VecDeque::new(),
            bytes: 0,
            forgotten_upto: 0,
            key: None,
            one2one: false,
            published: false,
            subscribers: Slab::new(),
            last_used: now,
        }
    }

    fn pop_front(&mut self) -> Option<Retained> {
        let front = self.history.pop_front()?;
        self.forgotten_upto = self.forgotten_upto.max(front.msg.id);
        self.bytes -= retained_cost(&front.msg);
        Some(front)
    }

    /// Drops what is past its lifetime, and what is beyond the history's size; says how many
    /// of each.
    fn expire(&mut self, now: Instant) -> Left {
        let mut left = Left::default();
        while let Some(front) = self.history.front() {
            let over_size = self.history.len() > self.retention.size;
            if front.expires > now && !over_size {
                break;
            }
            if over_size {
                left.displaced += 1;
            } else {
                left.expired += 1;
            }
            self.pop_front();
        }
        left
    }

    /// The id of the last message published on it, if any: the newest kept, or the newest
    /// that left.
    fn last_id(&self) -> Option<u64> {
        let newest = self.history.back().map_or(0, |r| r.msg.id);
        Some(newest.max(self.forgotten_upto)).filter(|id| *id > 0)
    }

    /// Takes a message in: kept in id order (once: a message from the cluster may come back),
    /// or, when the channel keeps nothing, noted as gone; then expires what is due. Returns
    /// whether it was kept, and what left.
    fn keep(&mut self, msg: &Rc<Message>, now: Instant, left: Option<Duration>) -> (bool, Left) {
        self.last_used = now;
        let mut kept = false;
        if self.retention.size > 0 && !self.retention.lifetime.is_zero() {
            // A local message has the newest id: this is the end of the history.
            let at = self.history.partition_point(|r| r.msg.id < msg.id);
            let duplicate = self.history.get(at).is_some_and(|r| r.msg.id == msg.id);
            if !duplicate {
                let lifetime = left.map_or(self.retention.lifetime, |left| {
                    left.min(self.retention.lifetime)
                });
                let retained = Retained {
                    expires: now + lifetime,
                    msg: msg.clone(),
                };
                self.bytes += retained_cost(msg);
                self.history.insert(at, retained);
                kept = true;
            }
        } else {
            self.forgotten_upto = self.forgotten_upto.max(msg.id);
        }
        (kept, self.expire(now))
    }

    /// What the store records of it.
    fn attributes(&self) -> ChannelAttributes {
        ChannelAttributes {
            name: self.name.to_string(),
            size: self.retention.size,
            lifetime: self.retention.lifetime,
            key: self.key,
            one2one: self.one2one,
            forgotten_upto: self.forgotten_upto,
        }
    }

    /// Drops retained messages with ids up to `upto`; returns how many.
    fn forget_upto(&mut self, upto: u64) -> usize {
        let count = self.history.partition_point(|r| r.msg.id <= upto);
        for _ in 0..count {
            self.pop_front();
        }
        count
    }

    fn key_matches(&self, given: Option<&str>) -> bool {
        match &self.key {
            None => true,
            Some(key) => given.is_some_and(|k| constant_time_eq(key, &digest(k))),
        }
    }

    fn is_idle(&self) -> bool {
        self.subscribers.is_empty() && self.history.is_empty()
    }
}

/// Messages that left a history by themselves, counted for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
struct Left {
    /// Past their lifetime.
    expired: u64,
    /// Pushed out by newer ones beyond the history's size.
    displaced: u64,
}

/// One channel as the status pages show it. Its key is never part of it: only whether it has
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub name: Rc<str>,
    /// Subscriptions to the channel itself, by wire slot (`Wire::index`).
    pub by_wire: [usize; Wire::COUNT],
    /// Subscriptions to subtrees containing it (all channels, or a prefix of its name).
    pub subtree_subscribers: usize,
    /// Messages kept, and the bytes they count against `--max-retained-bytes`.
    pub messages: usize,
    pub bytes: usize,
    pub oldest_id: Option<u64>,
    pub last_id: Option<u64>,
    pub retention: Retention,
    pub keyed: bool,
    pub one2one: bool,
}

/// One line of the paged channel list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSummary {
    pub name: Rc<str>,
    /// Subscriptions to the channel itself.
    pub subscribers: usize,
    pub messages: usize,
    pub last_id: Option<u64>,
}

/// Subscribers of every channel under a prefix ("" for all of them).
#[derive(Debug)]
struct Subtree {
    prefix: Box<str>,
    subscribers: Slab<Subscriber>,
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

impl Replay {
    /// Keeps the newest messages that fit in `budget` bytes; when older ones are cut, the client
    /// is told it missed them, as for any other gap.
    pub fn bound(&mut self, after: u64, budget: usize) {
        let mut used = 0;
        let keep_from = self
            .messages
            .iter()
            .rposition(|m| {
                used += m.body.len() + REPLAY_OVERHEAD;
                used > budget
            })
            .map_or(0, |cut| cut + 1);
        if keep_from == 0 {
            return;
        }
        let oldest = match self.messages.get(keep_from) {
            Some(first_kept) => first_kept.id,
            None => self.messages[keep_from - 1].id + 1,
        };
        self.messages.drain(..keep_from);
        let oldest = self.missed.map_or(oldest, |m| m.oldest.max(oldest));
        self.missed = Some(Missed { after, oldest });
    }
}

/// Limits on what the bus holds, counted as it goes.
#[derive(Debug, Clone, Copy)]
pub struct BusLimits {
    pub max_channels: usize,
    /// Bytes all histories together may hold; past it the oldest messages go first.
    pub max_retained_bytes: usize,
}

impl Default for BusLimits {
    fn default() -> BusLimits {
        BusLimits {
            max_channels: usize::MAX,
            max_retained_bytes: usize::MAX,
        }
    }
}

#[derive(Debug)]
pub struct Bus {
    channels: Slab<Channel>,
    by_name: HashMap<Rc<str>, usize>,
    /// The public channels' names in order, for the paged list: O(log n) more per channel
    /// made or freed, so that a page costs O(log n + page) rather than a walk of every name.
    names: BTreeSet<Rc<str>>,
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
    retained_bytes: usize,
    limits: BusLimits,
    /// Retained messages in the order they were kept, for evicting the oldest when the bytes
    /// limit is reached. Entries whose message already left are skipped, and dropped in bulk
    /// when they outnumber the live ones.
    kept_order: VecDeque<(Rc<str>, u64)>,
    /// Messages dropped for `--max-retained-bytes`.
    pub evicted: u64,
    /// Messages pushed out of a history beyond its size.
    pub displaced: u64,
    /// Messages that left a history at the end of their lifetime.
    pub expired: u64,
    /// Where the incremental sweep goes on from.
    sweep_cursor: usize,
    /// Cursors before this may have missed messages published while this node was cut off.
    gap_upto: u64,
    /// Where the histories are kept safe (`history::Memory` unless `--data-dir`).
    store: Box<dyn Store>,
    /// Ids of messages published but not yet committed by the store, oldest first: they are
    /// kept (and delivered) once it says they are safe.
    uncommitted: VecDeque<u64>,
    /// The ticket the last publish waits for, until the reactor takes it.
    ticket: Option<Ticket>,
    /// In a cluster: sequences the stream dropped before this node read them, in order.
    holes: Vec<(u64, u64)>,
}

impl Bus {
    /// `first_id` should grow across restarts (the clock at start-up) so ids are never reused.
    pub fn new(first_id: u64, default_retention: Retention, idle_timeout: Duration) -> Bus {
        Bus {
            channels: Slab::new(),
            by_name: HashMap::new(),
            names: BTreeSet::new(),
            subtrees: Slab::new(),
            by_prefix: HashMap::new(),
            default_retention,
            idle_timeout,
            first_id,
            next_id: first_id,
            subscribers: 0,
            retained: 0,
            retained_bytes: 0,
            limits: BusLimits::default(),
            kept_order: VecDeque::new(),
            evicted: 0,
            displaced: 0,
            expired: 0,
            sweep_cursor: 0,
            gap_upto: 0,
            store: Box::new(history::Memory),
            uncommitted: VecDeque::new(),
            ticket: None,
            holes: Vec::new(),
        }
    }

    /// Keeps the histories in `store` from now on.
    pub fn set_store(&mut self, store: Box<dyn Store>) {
        self.store = store;
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub fn store_mut(&mut self) -> &mut dyn Store {
        &mut *self.store
    }

    /// Rebuilds channels and histories from what a store kept: `now` and `wall_ms`
    /// (milliseconds since 1970) are the same instant on the two clocks. Messages past their
    /// expiry, or beyond their channel's size, are counted as gone.
    pub fn restore(&mut self, recovered: Recovered, now: Instant, wall_ms: u64) {
        self.first_id = recovered.first_id;
        // Ids go on after the last one logged, whatever the clock says.
        self.next_id = recovered.next_id;
        for restored in recovered.channels {
            let attributes = restored.attributes;
            let Ok(index) = self.channel_index(&attributes.name, now) else {
                continue;
            };
            let channel = &mut self.channels[index];
            channel.retention = Retention {
                size: attributes.size,
                lifetime: attributes.lifetime,
            };
            channel.key = attributes.key;
            channel.one2one = attributes.one2one;
            channel.forgotten_upto = attributes.forgotten_upto;
            channel.published = true;
            for Restored {
                mut message,
                expires_ms,
            } in restored.messages
            {
                let channel = &mut self.channels[index];
                if expires_ms <= wall_ms || channel.retention.size == 0 {
                    channel.forgotten_upto = channel.forgotten_upto.max(message.id);
                    continue;
                }
                message.channel = channel.name.clone();
                let left = Duration::from_millis(expires_ms - wall_ms);
                self.keep_for(index, &Rc::new(message), now, Some(left));
            }
            self.expire_in(index, now);
        }
        self.evict_over_limit();
    }

    /// The ticket the last publish waits for, if the store holds it.
    pub fn take_ticket(&mut self) -> Option<Ticket> {
        self.ticket.take()
    }

    /// A held message is safe: it is kept now (unless its channel went meanwhile).
    pub fn commit(&mut self, msg: &Rc<Message>, now: Instant) {
        self.settle(msg.id);
        if let Some(&index) = self.by_name.get(&*msg.channel) {
            self.keep(index, msg, now);
        }
    }

    /// A held message could not be made safe: it is refused, and never kept.
    pub fn abandon(&mut self, msg: &Message) {
        self.settle(msg.id);
    }

    fn settle(&mut self, id: u64) {
        if self.uncommitted.front() == Some(&id) {
            self.uncommitted.pop_front();
        } else if let Some(at) = self.uncommitted.iter().position(|u| *u == id) {
            self.uncommitted.remove(at);
        }
    }

    /// Lets the store drop what the histories no longer hold, when it holds far more: the
    /// ids of every kept message are gathered (O(kept)), so it is done only when the store's
    /// size has grown past a multiple of what is kept.
    pub fn reclaim(&mut self) {
        if !self.store.wants_compaction(self.retained_bytes) {
            return;
        }
        let mut snapshot = Snapshot {
            first_id: self.first_id,
            next_id: self.next_id,
            keep_from: self.uncommitted.front().copied().unwrap_or(self.next_id),
            ..Snapshot::default()
        };
        for (_, channel) in &self.channels {
            if channel.published {
                snapshot.channels.push(channel.attributes());
            }
            snapshot
                .live
                .extend(channel.history.iter().map(|r| r.msg.id));
        }
        self.store.compact(snapshot);
    }

    fn channel_index(&mut self, name: &str, now: Instant) -> Result<usize, BusError> {
        if let Some(&index) = self.by_name.get(name) {
            return Ok(index);
        }
        if self.channels.len() >= self.limits.max_channels {
            return Err(BusError::ChannelLimit);
        }
        let name: Rc<str> = name.into();
        let index = self
            .channels
            .insert(Channel::new(name.clone(), self.default_retention, now));
        if !gate::is_private(&name) {
            self.names.insert(name.clone());
        }
        self.by_name.insert(name, index);
        Ok(index)
    }

    /// What channels created from now on keep, and when an idle one is freed (SIGHUP).
    pub fn set_defaults(&mut self, retention: Retention, idle_timeout: Duration) {
        self.default_retention = retention;
        self.idle_timeout = idle_timeout;
    }

    pub fn set_limits(&mut self, limits: BusLimits) {
        self.limits = limits;
        self.evict_over_limit();
    }

    /// Channels beyond this many are not created (publish and subscribe get `ChannelLimit`).
    pub fn set_max_channels(&mut self, max: usize) {
        self.limits.max_channels = max;
    }

    /// Subscribes to an admitted topic: a channel, or every channel under a prefix.
    pub fn subscribe(
        &mut self,
        topic: &gate::Topic,
        sub: Subscriber,
        now: Instant,
    ) -> Result<SubscriptionId, BusError> {
        let name = topic.name();
        if topic.is_subtree() {
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
                subtree: true,
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
            subtree: false,
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

    /// Checks the key, applies the publish's attributes where it may (to a channel nothing was
    /// published on yet, or with its key), assigns the next id and retains the message.
    pub fn publish(
        &mut self,
        publish: gate::Publish,
        now: Instant,
    ) -> Result<Rc<Message>, BusError> {
        let (index, parts) = self.prepare_in(publish, now)?;
        let channel = &self.channels[index];
        let mut msg = Message::new(
            self.next_id,
            channel.name.clone(),
            parts.content_type,
            parts.sender,
            parts.body,
        );
        msg.event = parts.event;
        if let Some((slot, frame)) = parts.preset {
            msg.preset_frame(slot, frame);
        }
        let msg = Rc::new(msg);
        self.next_id += 1;
        // A channel that keeps nothing still has its message logged: the id must survive.
        let lifetime = match channel.retention {
            Retention { size: 0, .. } => Duration::ZERO,
            retention => retention.lifetime,
        };
        self.ticket = self.store.append(&msg, lifetime);
        match self.ticket {
            Some(_) => self.uncommitted.push_back(msg.id),
            None => self.keep(index, &msg, now),
        }
        Ok(msg)
    }

    /// What `publish` does before it numbers the message: the channel (within the limit), its
    /// key, its attributes. In a cluster the message then goes to the stream, and comes back
    /// numbered through `publish_remote`.
    pub fn prepare(
        &mut self,
        publish: gate::Publish,
        now: Instant,
    ) -> Result<gate::PublishParts, BusError> {
        self.prepare_in(publish, now).map(|(_, parts)| parts)
    }

    fn prepare_in(
        &mut self,
        publish: gate::Publish,
        now: Instant,
    ) -> Result<(usize, gate::PublishParts), BusError> {
        let parts = publish.into_parts();
        let index = self.channel_index(&parts.channel, now)?;
        let channel = &mut self.channels[index];
        if !channel.key_matches(parts.key.as_deref()) {
            return Err(BusError::WrongKey);
        }
        let before = (
            channel.published,
            channel.retention,
            channel.key,
            channel.one2one,
        );
        // A channel's attributes are set by its first publish, or later by its key holder.
        if !channel.published || channel.key.is_some() {
            if !channel.published {
                channel.key = parts.key.as_deref().map(digest);
                channel.one2one = parts.attributes.one2one;
            }
            if let Some(size) = parts.attributes.size {
                channel.retention.size = size;
            }
            if let Some(lifetime) = parts.attributes.lifetime {
                channel.retention.lifetime = lifetime;
            }
        }
        channel.published = true;
        if before != (true, channel.retention, channel.key, channel.one2one) {
            self.store.attributes(&channel.attributes());
        }
        Ok((index, parts))
    }

    /// Keeps `msg` in channel `index`, counting it, and evicts the oldest messages anywhere when
    /// the bytes limit is passed.
    fn keep(&mut self, index: usize, msg: &Rc<Message>, now: Instant) {
        self.keep_for(index, msg, now, None);
    }

    /// `keep`, for what is left of its lifetime when that is not all of it (a restored one).
    fn keep_for(&mut self, index: usize, msg: &Rc<Message>, now: Instant, left: Option<Duration>) {
        let channel = &mut self.channels[index];
        let (len, bytes) = (channel.history.len(), channel.bytes);
        let (kept, left) = channel.keep(msg, now, left);
        if kept {
            self.kept_order.push_back((channel.name.clone(), msg.id));
        }
        self.retained = self.retained + channel.history.len() - len;
        self.retained_bytes = self.retained_bytes + channel.bytes - bytes;
        self.count_left(left);
        self.evict_over_limit();
    }

    /// Drops the oldest retained messages, across channels, until the bytes limit holds.
    fn evict_over_limit(&mut self) {
        while self.retained_bytes > self.limits.max_retained_bytes {
            let Some((name, id)) = self.kept_order.pop_front() else {
                break;
            };
            let Some(&index) = self.by_name.get(&name) else {
                continue;
            };
            let channel = &mut self.channels[index];
            let at = channel.history.partition_point(|r| r.msg.id < id);
            if channel.history.get(at).is_none_or(|r| r.msg.id != id) {
                continue;
            }
            let (len, bytes) = (channel.history.len(), channel.bytes);
            // Everything before it in this channel is older still.
            channel.forget_upto(id);
            self.retained -= len - channel.history.len();
            self.retained_bytes -= bytes - channel.bytes;
            self.evicted += (len - channel.history.len()) as u64;
        }
        // Entries of messages that left by other ways pile up; drop them when they outnumber
        // the live ones, so the list costs O(1) amortised per message.
        if self.kept_order.len() > 2 * self.retained + 1024 {
            let (by_name, channels) = (&self.by_name, &self.channels);
            self.kept_order.retain(|(name, id)| {
                by_name.get(name).is_some_and(|&index| {
                    let history = &channels[index].history;
                    let at = history.partition_point(|r| r.msg.id < *id);
                    history.get(at).is_some_and(|r| r.msg.id == *id)
                })
            });
        }
    }

    /// Takes in a message another node published, under the id it was given there. It is kept
    /// in id order (messages from several nodes arrive interleaved), and this node's next id
    /// moves past it so ids stay ordered across the cluster. Keys were checked at the origin.
    pub fn publish_remote(
        &mut self,
        remote: gate::Remote,
        now: Instant,
    ) -> Result<Rc<Message>, BusError> {
        let (id, parts) = remote.into_parts();
        let index = self.channel_index(&parts.channel, now)?;
        let channel = &mut self.channels[index];
        channel.published = true;
        let mut msg = Message::new(
            id,
            channel.name.clone(),
            parts.content_type,
            parts.sender,
            parts.body,
        );
        msg.event = parts.event;
        let msg = Rc::new(msg);
        self.next_id = self.next_id.max(id + 1);
        // Other nodes' ids may run behind ours: what this node has seen since it joined starts
        // at the lowest id it received, not at its own first id. (A cursor from a node whose ids
        // run far behind may then pass as known: ids order messages per node, not globally.)
        self.first_id = self.first_id.min(id);
        self.keep(index, &msg, now);
        Ok(msg)
    }

    /// In a cluster: ids are the stream's sequences, and nothing before `first` (the stream's
    /// oldest when this node joined) is known here.
    pub fn begin_at(&mut self, first: u64) {
        self.first_id = first;
        self.next_id = self.next_id.max(first);
    }

    /// In a cluster: sequences `first..=last` were dropped by the stream before this node read
    /// them. Which channels they were on is not known; a client whose cursor is before them and
    /// whose next message is after them is told it may have missed some.
    pub fn note_hole(&mut self, first: u64, last: u64) {
        if let Some(prev) = self.holes.last_mut() {
            if prev.1 + 1 >= first {
                prev.1 = prev.1.max(last);
                return;
            }
        }
        self.holes.push((first, last));
        // Bounded: the oldest two merge, which can only tell more clients, never fewer.
        if self.holes.len() > MAX_HOLES {
            let (a, _) = self.holes.remove(0);
            self.holes[0].0 = a;
        }
    }

    /// Whether a hole lies after `after` and before `front` (the first message replayed, or
    /// the next id).
    fn hole_between(&self, after: u64, front: u64) -> bool {
        let at = self.holes.partition_point(|h| h.1 <= after);
        self.holes.get(at).is_some_and(|h| h.0 < front)
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
        delete: &gate::Delete,
    ) -> Result<Vec<(usize, SubscriptionId)>, BusError> {
        let index = self.keyed_channel(delete)?;
        let channel = self.channels.remove(index);
        if channel.published {
            self.store.delete(&channel.name);
        }
        self.by_name.remove(&channel.name);
        self.names.remove(&channel.name);
        self.retained -= channel.history.len();
        self.retained_bytes -= channel.bytes;
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

    /// The channel a keyed operation names, once its key is checked.
    fn keyed_channel(&self, op: &impl KeyedChannel) -> Result<usize, BusError> {
        let &index = self
            .by_name
            .get(op.channel())
            .ok_or(BusError::NoSuchChannel)?;
        if !self.channels[index].key_matches(op.key()) {
            return Err(BusError::WrongKey);
        }
        Ok(index)
    }

    /// Drops every retained message of a channel, keeping its subscribers (a door whose protocol
    /// resets a channel). A cursor from before them is then told it missed something. Returns
    /// how many were dropped; a channel that does not exist has none.
    pub fn forget(&mut self, forget: &gate::Forget) -> Result<usize, BusError> {
        match self.keyed_channel(forget) {
            Ok(index) => Ok(self.forget_in(index, u64::MAX)),
            Err(BusError::NoSuchChannel) => Ok(0),
            Err(e) => Err(e),
        }
    }

    fn forget_in(&mut self, index: usize, upto: u64) -> usize {
        let channel = &mut self.channels[index];
        let bytes = channel.bytes;
        let count = channel.forget_upto(upto);
        if count > 0 {
            self.store.forget(&channel.name, upto);
        }
        self.retained -= count;
        self.retained_bytes -= bytes - channel.bytes;
        count
    }

    /// A message was delivered: on a one-to-one channel it is consumed (with everything before
    /// it). Returns whether the channel is one-to-one.
    pub fn delivered(&mut self, msg: &Message) -> bool {
        let Some(&index) = self.by_name.get(&*msg.channel) else {
            return false;
        };
        if !self.channels[index].one2one {
            return false;
        }
        self.forget_in(index, msg.id);
        true
    }

    /// Whether messages of channel `name` are consumed by their first delivery.
    pub fn is_one2one(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|&index| self.channels[index].one2one)
    }

    /// Retained messages of an admitted topic (a channel, or every channel under a prefix) with
    /// ids after `after`, oldest first, and whether any are already gone. A cursor of 0 means
    /// "from the start": it has missed only what was dropped.
    pub fn replay(&mut self, topic: &gate::Topic, after: u64, now: Instant) -> Replay {
        let name = topic.name();
        // The channels it reads: one, or those under the prefix, found in the sorted index of
        // public names (O(log n) and the matches, not a walk of every channel).
        // One channel needs no list of them: a re-poll replays on every message.
        let under_prefix: Vec<usize>;
        let one: Option<usize>;
        let indices: &[usize] = if topic.is_subtree() {
            use std::ops::Bound;
            under_prefix = self
                .names
                .range::<str, _>((Bound::Included(name), Bound::Unbounded))
                .take_while(|n| n.starts_with(name))
                .filter_map(|n| self.by_name.get(n).copied())
                .collect();
            &under_prefix
        } else {
            one = self.by_name.get(name).copied();
            one.as_slice()
        };
        let mut replay = Replay::default();
        let mut forgotten_upto = 0;
        let mut oldest_retained = None::<u64>;
        for &index in indices {
            self.expire_in(index, now);
            let channel = &self.channels[index];
            forgotten_upto = forgotten_upto.max(channel.forgotten_upto);
            if let Some(front) = channel.history.front() {
                let id = front.msg.id;
                oldest_retained = Some(oldest_retained.map_or(id, |o| o.min(id)));
            }
            let start = channel.history.partition_point(|r| r.msg.id <= after);
            replay
                .messages
                .extend(channel.history.range(start..).map(|r| r.msg.clone()));
        }
        if topic.is_subtree() {
            replay.messages.sort_by_key(|m| m.id);
        }
        // Before this process started nothing is known, so a cursor from then may have missed
        // messages; otherwise only if something after the cursor has been forgotten.
        let unknown_before = self.gap_upto.max(self.first_id.saturating_sub(1));
        let from_the_start = after == 0;
        let oldest = oldest_retained.unwrap_or(self.next_id);
        if after < forgotten_upto || (after < unknown_before && !from_the_start) {
            replay.missed = Some(Missed { after, oldest });
        } else {
            // The stream dropped sequences between the cursor and what the client gets next:
            // they may have been on this topic.
            let next = replay.messages.first().map_or(self.next_id, |m| m.id);
            if self.hole_between(after, next) {
                replay.missed = Some(Missed {
                    after,
                    oldest: next,
                });
            }
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
        if self.by_prefix.is_empty() || gate::is_private(&msg.channel) {
            return;
        }
        for prefix in subtree_prefixes(&msg.channel) {
            if let Some(&index) = self.by_prefix.get(prefix) {
                visit(&self.subtrees[index].subscribers);
            }
        }
    }

    /// Expires messages and frees channels with no subscribers and no messages that have been
    /// idle for the idle timeout, visiting at most `budget` channel slots from where the last
    /// call stopped, so no call stalls the loop however many channels there are. Returns how
    /// many channels were freed.
    pub fn sweep(&mut self, now: Instant, budget: usize) -> usize {
        let capacity = self.channels.capacity();
        if capacity == 0 {
            return 0;
        }
        let mut freed = 0;
        for _ in 0..budget.min(capacity) {
            let index = self.sweep_cursor % capacity;
            self.sweep_cursor = (index + 1) % capacity;
            if !self.channels.contains(index) {
                continue;
            }
            self.expire_in(index, now);
            let channel = &self.channels[index];
            if channel.is_idle() && now.duration_since(channel.last_used) >= self.idle_timeout {
                let channel = self.channels.remove(index);
                self.by_name.remove(&channel.name);
                self.names.remove(&channel.name);
                freed += 1;
            }
        }
        freed
    }

    fn count_left(&mut self, left: Left) {
        self.expired += left.expired;
        self.displaced += left.displaced;
    }

    /// Expires what is due in channel `index`, keeping the counts.
    fn expire_in(&mut self, index: usize, now: Instant) {
        let channel = &mut self.channels[index];
        let (len, bytes) = (channel.history.len(), channel.bytes);
        let left = channel.expire(now);
        self.retained -= len - channel.history.len();
        self.retained_bytes -= bytes - channel.bytes;
        self.count_left(left);
    }

    /// What the status pages show of one channel, after expiring what is due in it (so the
    /// counts agree with what a resuming client would get). O(its subscribers), to count them
    /// by wire, plus one lookup per '/' in its name for the subtrees.
    pub fn channel_info(&mut self, name: &str, now: Instant) -> Option<ChannelInfo> {
        let index = *self.by_name.get(name)?;
        self.expire_in(index, now);
        let channel = &self.channels[index];
        let mut by_wire = [0; Wire::COUNT];
        for (_, sub) in &channel.subscribers {
            by_wire[sub.wire.index()] += 1;
        }
        let subtree_subscribers = if gate::is_private(name) {
            0
        } else {
            subtree_prefixes(name)
                .filter_map(|prefix| self.by_prefix.get(prefix))
                .map(|&i| self.subtrees[i].subscribers.len())
                .sum()
        };
        Some(ChannelInfo {
            name: channel.name.clone(),
            by_wire,
            subtree_subscribers,
            messages: channel.history.len(),
            bytes: channel.bytes,
            oldest_id: channel.history.front().map(|r| r.msg.id),
            last_id: channel.last_id(),
            retention: channel.retention,
            keyed: channel.key.is_some(),
            one2one: channel.one2one,
        })
    }

    /// Up to `limit` public channels whose names sort after `after` (bytewise), in order, with
    /// whether more follow. Each listed channel is expired first, like `channel_info`. Costs
    /// O(log channels + limit) through the name index; the doors' private channels are not
    /// listed.
    pub fn channels_after(
        &mut self,
        after: &str,
        limit: usize,
        now: Instant,
    ) -> (Vec<ChannelSummary>, bool) {
        let mut range = self
            .names
            .range::<str, _>((Bound::Excluded(after), Bound::Unbounded));
        let page: Vec<Rc<str>> = range.by_ref().take(limit).cloned().collect();
        let more = range.next().is_some();
        let mut summaries = Vec::with_capacity(page.len());
        for name in page {
            let index = self.by_name[&name];
            self.expire_in(index, now);
            let channel = &self.channels[index];
            summaries.push(ChannelSummary {
                subscribers: channel.subscribers.len(),
                messages: channel.history.len(),
                last_id: channel.last_id(),
                name,
            });
        }
        (summaries, more)
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

    /// Bytes held in histories, as counted against `--max-retained-bytes`.
    pub fn retained_bytes(&self) -> usize {
        self.retained_bytes
    }
}

fn digest(key: &str) -> [u8; 32] {
    let hash = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    hash.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// The subtree prefixes containing `channel`: "", then each prefix ending in '/'.
fn subtree_prefixes(channel: &str) -> impl Iterator<Item = &str> {
    std::iter::once("").chain(channel.match_indices('/').map(move |(i, _)| &channel[..=i]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{Credentials, Draft, Gate, Identity};
    use crate::http::base64;

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

    fn gate() -> Gate {
        Gate::new(None, None, 1000, 64)
    }

    fn who(sender: Option<&str>) -> Identity {
        let basic = sender.map(|s| format!("Basic {}", base64::encode(format!("{s}:").as_bytes())));
        let credentials = Credentials {
            authorization: basic.as_deref(),
            token: None,
        };
        gate().identify(credentials, 0).unwrap()
    }

    fn topic(name: &str, subtree: bool) -> gate::Topic {
        let mut topics = gate().admit_subscribe(&who(None), [(name, subtree)], 0);
        topics.as_mut().unwrap().remove(0)
    }

    fn draft<'a>(channel: &'a str, content_type: &'a str) -> Draft<'a> {
        Draft {
            channel,
            content_type,
            ..Draft::default()
        }
    }

    fn req(channel: &str, content_type: &str, sender: Option<&str>) -> gate::Publish {
        gate()
            .admit_publish(&who(sender), draft(channel, content_type))
            .unwrap()
    }

    fn with(d: Draft) -> gate::Publish {
        gate().admit_publish(&who(None), d).unwrap()
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
        bus.subscribe(&topic("foo", false), sub(1, None), now)
            .unwrap();
        bus.subscribe(&topic("", true), sub(2, None), now).unwrap();
        bus.subscribe(&topic("sensors/", true), sub(3, None), now)
            .unwrap();
        bus.subscribe(&topic("sensors/t1", false), sub(4, None), now)
            .unwrap();
        bus.subscribe(&topic("bar", false), sub(5, None), now)
            .unwrap();
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
        bus.subscribe(&topic("c", false), sub(1, Some(text_only)), now)
            .unwrap();
        let alice_only = Filter::new(None, Some("alice"));
        bus.subscribe(&topic("c", false), sub(2, Some(alice_only)), now)
            .unwrap();
        bus.subscribe(&topic("c", false), sub(3, None), now)
            .unwrap();
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
        let a = bus
            .subscribe(&topic("x", false), sub(1, None), now)
            .unwrap();
        let b = bus
            .subscribe(&topic("x", false), sub(2, None), now)
            .unwrap();
        assert_eq!((bus.channel_count(), bus.subscriber_count()), (1, 2));
        bus.unsubscribe(a, now);
        bus.unsubscribe(a, now); // twice is harmless
        bus.unsubscribe(b, now);
        assert_eq!((bus.channel_count(), bus.subscriber_count()), (1, 0));
        let ids: Vec<u64> = (0..3)
            .map(|_| bus.publish(req("x", "t", None), now).unwrap().id)
            .collect();
        assert_eq!(ids, [100, 101, 102]);
        assert_eq!(bus.sweep(now + Duration::from_secs(29), usize::MAX), 0);
        assert_eq!(bus.sweep(now + Duration::from_secs(30), usize::MAX), 1);
        assert_eq!(bus.channel_count(), 0);
    }

    #[test]
    fn history_is_bounded_by_size_and_lifetime() {
        let now = Instant::now();
        let mut bus = bus(1);
        for _ in 0..15 {
            bus.publish(req("h", "t", None), now).unwrap();
        }
        let all = bus.replay(&topic("h", false), 0, now);
        assert_eq!(ids(&all), (6..=15).collect::<Vec<_>>());
        assert_eq!(
            all.missed,
            Some(Missed {
                after: 0,
                oldest: 6
            })
        );
        let recent = bus.replay(&topic("h", false), 12, now);
        assert_eq!(ids(&recent), [13, 14, 15]);
        assert_eq!(recent.missed, None);
        assert_eq!(bus.retained_count(), 10);
        let later = now + Duration::from_secs(61);
        let gone = bus.replay(&topic("h", false), 12, later);
        assert!(gone.messages.is_empty());
        assert_eq!(
            gone.missed,
            Some(Missed {
                after: 12,
                oldest: 16
            })
        );
        assert_eq!(bus.retained_count(), 0);
        assert_eq!(bus.sweep(later + Duration::from_secs(30), usize::MAX), 1);
    }

    #[test]
    fn per_channel_retention_and_subtree_replay() {
        let now = Instant::now();
        let mut bus = bus(1);
        let small = with(Draft {
            attributes: gate::Attributes {
                size: Some(2),
                ..Default::default()
            },
            ..draft("s/a", "t")
        });
        bus.publish(small, now).unwrap(); // 1
        bus.publish(req("s/b", "t", None), now).unwrap(); // 2
        bus.publish(req("s/a", "t", None), now).unwrap(); // 3
        bus.publish(req("s/a", "t", None), now).unwrap(); // 4: evicts 1 from s/a
        bus.publish(req("other", "t", None), now).unwrap(); // 5
        let replay = bus.replay(&topic("s/", true), 0, now);
        assert_eq!(ids(&replay), [2, 3, 4]);
        assert_eq!(
            replay.missed,
            Some(Missed {
                after: 0,
                oldest: 2
            })
        );
        assert_eq!(bus.replay(&topic("s/", true), 1, now).missed, None);
    }

    #[test]
    fn a_cursor_from_before_a_restart_is_told_it_may_have_missed() {
        let now = Instant::now();
        let mut bus = bus(1000);
        bus.publish(req("c", "t", None), now).unwrap();
        let replay = bus.replay(&topic("c", false), 500, now);
        assert_eq!(ids(&replay), [1000]);
        assert_eq!(
            replay.missed,
            Some(Missed {
                after: 500,
                oldest: 1000
            })
        );
        assert_eq!(bus.replay(&topic("c", false), 999, now).missed, None);
    }

    /// In a cluster: the stream's start and its holes decide the missed notice. Channel "a"
    /// holds 5 and 9; 6..=8 were dropped by the stream; nothing before 5 is known.
    #[test]
    fn stream_holes_are_told_to_cursors_before_them() {
        let now = Instant::now();
        let mut bus = bus(1);
        bus.begin_at(5);
        let remote = |id: u64| {
            gate()
                .admit_remote(id, "a", "t", None, None, b"x".as_slice().into())
                .unwrap()
        };
        bus.publish_remote(remote(5), now).unwrap();
        bus.note_hole(6, 7);
        bus.note_hole(8, 8); // joins the one before
        bus.publish_remote(remote(9), now).unwrap();
        let cases: &[(u64, &[u64], Option<u64>)] = &[
            // (cursor, ids replayed, missed: oldest)
            (0, &[5, 9], None),
            (3, &[5, 9], Some(5)),
            (4, &[5, 9], None),
            (5, &[9], Some(9)),
            (7, &[9], Some(9)),
            (8, &[9], None),
            (9, &[], None),
        ];
        for &(after, want, oldest) in cases {
            let replay = bus.replay(&topic("a", false), after, now);
            assert_eq!(ids(&replay), want, "after {after}");
            let want_missed = oldest.map(|oldest| Missed { after, oldest });
            assert_eq!(replay.missed, want_missed, "after {after}");
        }
        assert_eq!(bus.holes, [(6, 8)]);
    }

    #[test]
    fn keys_guard_publish_and_delete() {
        let now = Instant::now();
        let mut bus = bus(1);
        let keyed = |key: Option<&str>| {
            with(Draft {
                key,
                ..draft("k", "t")
            })
        };
        let delete = |key: Option<&str>| gate().admit_delete(&who(None), "k", key).unwrap();
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
        bus.subscribe(&topic("k", false), sub(7, None), now)
            .unwrap();
        assert_eq!(bus.delete(&delete(None)), Err(BusError::WrongKey));
        let gone = bus.delete(&delete(Some("s3cret"))).unwrap();
        assert_eq!(gone.iter().map(|(conn, _)| *conn).collect::<Vec<_>>(), [7]);
        assert_eq!(
            bus.delete(&delete(Some("s3cret"))),
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
    fn forgetting_needs_the_key_and_reports_a_gap() {
        let now = Instant::now();
        let mut bus = bus(1);
        for body in ["a", "b", "c"] {
            let key = Some("k");
            let body: Rc<[u8]> = body.as_bytes().into();
            bus.publish(
                with(Draft {
                    key,
                    body,
                    ..draft("ch", "t")
                }),
                now,
            )
            .unwrap();
        }
        let forget = |key| gate().admit_forget(&who(None), "ch", key).unwrap();
        assert_eq!(bus.forget(&forget(None)), Err(BusError::WrongKey));
        assert_eq!(bus.forget(&forget(Some("k"))), Ok(3));
        assert_eq!(bus.retained_count(), 0);
        assert!(bus.replay(&topic("ch", false), 1, now).missed.is_some());
        let nothing = gate().admit_forget(&who(None), "nope", None).unwrap();
        assert_eq!(bus.forget(&nothing), Ok(0));
    }

    #[test]
    fn one2one_is_set_at_creation_only_and_consumes_on_delivery() {
        let now = Instant::now();
        let mut bus = bus(1);
        let one2one = gate::Attributes {
            one2one: true,
            ..Default::default()
        };
        let first = bus.publish(
            with(Draft {
                attributes: one2one,
                ..draft("o", "t")
            }),
            now,
        );
        assert!(bus.is_one2one("o"));
        bus.publish(req("o", "t", None), now).unwrap();
        assert!(bus.delivered(&first.unwrap()));
        assert_eq!(bus.retained_count(), 1, "only the delivered message went");
        // A channel that already had a publish cannot be made one-to-one by a later one.
        bus.publish(req("native", "t", None), now).unwrap();
        bus.publish(
            with(Draft {
                attributes: one2one,
                ..draft("native", "t")
            }),
            now,
        )
        .unwrap();
        assert!(!bus.is_one2one("native"));
    }

    #[test]
    fn a_key_is_set_by_the_first_publish_only() {
        let now = Instant::now();
        let mut bus = bus(1);
        bus.publish(req("open", "t", None), now).unwrap();
        let claim = with(Draft {
            key: Some("mine"),
            ..draft("open", "t")
        });
        bus.publish(claim, now).unwrap();
        bus.publish(req("open", "t", None), now)
            .expect("a later publish cannot lock the channel");
    }

    #[test]
    fn retained_bytes_are_bounded_oldest_first_across_channels() {
        let now = Instant::now();
        let mut bus = bus(1);
        let cost = 100 + 1 + RETAINED_OVERHEAD;
        bus.set_limits(BusLimits {
            max_channels: usize::MAX,
            max_retained_bytes: 3 * cost,
        });
        for channel in ["a", "b", "a", "c", "b"] {
            let body: Rc<[u8]> = vec![b'x'; 100].into();
            bus.publish(
                with(Draft {
                    body,
                    ..draft(channel, "t")
                }),
                now,
            )
            .unwrap();
        }
        assert_eq!(bus.retained_bytes(), 3 * cost);
        assert_eq!(bus.evicted, 2);
        assert_eq!(ids(&bus.replay(&topic("", true), 0, now)), [3, 4, 5]);
    }

    #[test]
    fn replays_are_cut_to_a_budget_and_say_so() {
        let now = Instant::now();
        let mut bus = bus(1);
        for _ in 0..5 {
            let body: Rc<[u8]> = vec![b'x'; 72].into();
            bus.publish(
                with(Draft {
                    body,
                    ..draft("r", "t")
                }),
                now,
            )
            .unwrap();
        }
        let mut replay = bus.replay(&topic("r", false), 0, now);
        assert_eq!(replay.missed, None);
        replay.bound(0, 2 * (72 + REPLAY_OVERHEAD));
        assert_eq!(ids(&replay), [4, 5]);
        assert_eq!(
            replay.missed,
            Some(Missed {
                after: 0,
                oldest: 4
            })
        );
    }

    #[test]
    fn since_zero_means_from_the_start() {
        let now = Instant::now();
        let mut bus = bus(1000);
        assert_eq!(bus.replay(&topic("empty", false), 0, now).missed, None);
        assert!(bus.replay(&topic("empty", false), 5, now).missed.is_some());
    }

    #[test]
    fn private_channels_are_out_of_every_subtree() {
        let now = Instant::now();
        let mut bus = bus(1);
        bus.subscribe(&topic("", true), sub(1, None), now).unwrap();
        let private = gate().admit_door_subscribe("\u{1f}door:k:c").unwrap();
        bus.subscribe(&private, sub(2, None), now).unwrap();
        let draft = draft("\u{1f}door:k:c", "t");
        let msg = bus.publish(gate().admit_door_publish(draft, None).unwrap(), now);
        assert_eq!(recipients(&bus, &msg.unwrap()), [2]);
        assert!(bus.replay(&topic("", true), 0, now).messages.is_empty());
        assert!(gate().admit_door_subscribe("\u{1f}door\n").is_err());
    }

    #[test]
    fn channel_info_counts_by_wire_and_never_shows_the_key() {
        let now = Instant::now();
        let mut bus = bus(1);
        let keyed = with(Draft {
            key: Some("s3cret"),
            attributes: gate::Attributes {
                size: Some(2),
                ..Default::default()
            },
            ..draft("a/b", "t")
        });
        bus.publish(keyed, now).unwrap(); // 1
        for wire in [Wire::Sse, Wire::Sse, Wire::Ws] {
            let sub = Subscriber {
                wire,
                ..sub(1, None)
            };
            bus.subscribe(&topic("a/b", false), sub, now).unwrap();
        }
        bus.subscribe(&topic("a/", true), sub(2, None), now)
            .unwrap();
        bus.subscribe(&topic("", true), sub(3, None), now).unwrap();
        for _ in 0..2 {
            let publish = with(Draft {
                key: Some("s3cret"),
                ..draft("a/b", "t")
            });
            bus.publish(publish, now).unwrap(); // 2, 3: 1 is displaced
        }
        let info = bus.channel_info("a/b", now).unwrap();
        let mut by_wire = [0; Wire::COUNT];
        by_wire[Wire::Sse.index()] = 2;
        by_wire[Wire::Ws.index()] = 1;
        assert_eq!(info.by_wire, by_wire);
        assert_eq!(info.subtree_subscribers, 2);
        assert_eq!(
            (info.messages, info.oldest_id, info.last_id),
            (2, Some(2), Some(3))
        );
        assert_eq!(info.retention.size, 2);
        assert!(info.keyed && !info.one2one);
        assert_eq!((bus.displaced, bus.expired), (1, 0));
        let later = now + Duration::from_secs(61);
        let info = bus.channel_info("a/b", later).unwrap();
        assert_eq!(
            (info.messages, info.oldest_id, info.last_id),
            (0, None, Some(3))
        );
        assert_eq!((bus.expired, bus.retained_count()), (2, 0));
        assert_eq!(bus.channel_info("nope", now), None);
    }

    #[test]
    fn channels_are_listed_in_pages_by_name() {
        let now = Instant::now();
        let mut bus = bus(1);
        for name in ["c", "a", "e", "b", "d"] {
            bus.publish(req(name, "t", None), now).unwrap();
        }
        let private = gate().admit_door_subscribe("\u{1f}door:k:c").unwrap();
        bus.subscribe(&private, sub(2, None), now).unwrap();
        let names = |page: &[ChannelSummary]| -> Vec<String> {
            page.iter().map(|c| c.name.to_string()).collect()
        };
        let (page, more) = bus.channels_after("", 2, now);
        assert_eq!((names(&page), more), (vec!["a".into(), "b".into()], true));
        assert_eq!((page[0].messages, page[0].last_id), (1, Some(2)));
        let (page, more) = bus.channels_after("b", 2, now);
        assert_eq!((names(&page), more), (vec!["c".into(), "d".into()], true));
        let (page, more) = bus.channels_after("d", 2, now);
        assert_eq!((names(&page), more), (vec!["e".into()], false));
        let (page, more) = bus.channels_after("bb", 10, now);
        assert_eq!((names(&page).len(), more), (3, false));
        // Freed channels leave the index.
        let later = now + Duration::from_secs(120);
        assert_eq!(bus.sweep(later, usize::MAX), 5); // the private one is held
        assert_eq!(bus.channels_after("", 10, later), (Vec::new(), false));
    }

    /// A store that holds every publish until told, as the log does under `--fsync always`.
    struct Holding;

    impl Store for Holding {
        fn append(&mut self, _msg: &Message, _lifetime: Duration) -> Option<Ticket> {
            Some(1)
        }
        fn attributes(&mut self, _attributes: &ChannelAttributes) {}
        fn forget(&mut self, _channel: &str, _upto: u64) {}
        fn delete(&mut self, _channel: &str) {}
    }

    #[test]
    fn a_held_publish_is_kept_only_once_committed() {
        let now = Instant::now();
        let mut bus = bus(1);
        bus.set_store(Box::new(Holding));
        let kept = bus.publish(req("h", "t", None), now).unwrap();
        assert_eq!(bus.take_ticket(), Some(1));
        let refused = bus.publish(req("h", "t", None), now).unwrap();
        assert!(bus.replay(&topic("h", false), 0, now).messages.is_empty());
        bus.commit(&kept, now);
        bus.abandon(&refused);
        assert_eq!(ids(&bus.replay(&topic("h", false), 0, now)), [1]);
        assert_eq!((bus.retained_count(), bus.next_id()), (1, 3));
    }

    #[test]
    fn the_sweep_visits_a_bounded_number_of_channels() {
        let now = Instant::now();
        let mut bus = bus(1);
        for i in 0..10 {
            let sub = bus.subscribe(&topic(&format!("c{i}"), false), sub(1, None), now);
            bus.unsubscribe(sub.unwrap(), now);
        }
        let later = now + Duration::from_secs(30);
        assert_eq!(bus.sweep(later, 4), 4);
        assert_eq!(bus.sweep(later, 4), 4);
        assert_eq!(bus.sweep(later, 4), 2);
        assert_eq!(bus.channel_count(), 0);
    }
}
