//! Where the bus keeps its histories safe. Every history is read from the bus's rings (a
//! resume, the missed notice and the status pages read only those); a `Store` is told each
//! change to them, and says when that change is safe. Two stores today: `Memory` (nothing to
//! keep, every change is safe at once) and the durable log (`crate::store::Log`: a change is
//! safe once its record is written, or on disk). A cluster's stream fits the same interface:
//! its ticket is the publish's acknowledgement.
//!
//! A publish the store has not yet made safe is *held*: the bus numbers it but keeps it out of
//! the ring, the reactor holds its answer and its deliveries, and both go out once
//! `Store::poll_commits` reports its ticket (or the publish is refused if the store failed).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::message::Message;

/// A change's place in the store's order: once the store reports ticket `t` committed, every
/// change with a ticket up to `t` is.
pub type Ticket = u64;

/// What a channel keeps beyond its messages: what the log records so that a restart keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAttributes {
    pub name: String,
    pub size: usize,
    pub lifetime: Duration,
    /// SHA-256 of its publish key.
    pub key: Option<[u8; 32]>,
    pub one2one: bool,
    /// The highest id of it that is gone.
    pub forgotten_upto: u64,
}

/// A door's registration (a Simple-Comet channel, say) as a store keeps it: the door's name, a
/// key of the door's choosing, and its value now; None: removed. Only the latest value per door
/// and key is kept, so a door writes the whole of a registration each time it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorRecord {
    pub door: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// A kept message as a store gives it back at start.
#[derive(Debug)]
pub struct Restored {
    pub message: Message,
    /// Milliseconds since 1970 after which it is no longer kept.
    pub expires_ms: u64,
}

/// A channel and its messages, oldest first, as a store gives them back at start.
#[derive(Debug)]
pub struct RestoredChannel {
    pub attributes: ChannelAttributes,
    pub messages: Vec<Restored>,
}

/// What a store had kept, to rebuild the bus from.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Cursors before this come from before anything the store holds.
    pub first_id: u64,
    /// The id the next message gets: after every id the store ever gave out.
    pub next_id: u64,
    pub channels: Vec<RestoredChannel>,
}

/// What the store keeps of the bus at a compaction: everything else it may drop.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub first_id: u64,
    pub next_id: u64,
    pub channels: Vec<ChannelAttributes>,
    /// Ids of the messages the histories hold.
    pub live: HashSet<u64>,
    /// Messages from this id on are kept whatever `live` says: published, not yet committed.
    pub keep_from: u64,
}

/// What became of the changes up to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    /// Safe: held publishes up to it are answered and delivered.
    Done(Ticket),
    /// Not kept: held publishes up to it are refused with this reason.
    Failed(Ticket, String),
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// The write side of the histories' keeping. Each call that changes something returns the
/// ticket at which the change is safe, or None when it already is.
pub trait Store {
    /// A message the bus numbered, to keep for `lifetime`.
    fn append(&mut self, msg: &Message, lifetime: Duration) -> Option<Ticket>;

    /// A channel's attributes changed (or it was first published on). Goes with the next
    /// appends: nothing waits for it.
    fn attributes(&mut self, attributes: &ChannelAttributes);

    /// A channel's messages up to `upto` are gone.
    fn forget(&mut self, channel: &str, upto: u64);

    /// A channel is gone.
    fn delete(&mut self, channel: &str);

    /// A door's registration changed. Goes with the next appends, like `attributes`; a store
    /// that keeps nothing across a restart (memory, a cluster's stream) has nothing to do.
    fn door(&mut self, _record: &DoorRecord) {}

    /// The end of a reactor turn: what this turn appended goes to be made safe, together.
    fn submit(&mut self, _next_id: u64) {}

    /// What became of submitted changes since the last call.
    fn poll_commits(&mut self) -> Vec<Commit> {
        Vec::new()
    }

    /// Why publishes are refused now (the disk is full or failing), if they are.
    fn refusal(&self) -> Option<&str> {
        None
    }

    /// When `on_timer` is next due.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// Retries what failed, when it is time.
    fn on_timer(&mut self, _now: Instant) {}

    /// Whether what the store holds is so far beyond `live_bytes` (what the histories count)
    /// that it should be compacted.
    fn wants_compaction(&self, _live_bytes: usize) -> bool {
        false
    }

    /// Keeps only what `snapshot` names, dropping the rest.
    fn compact(&mut self, _snapshot: Snapshot) {}
}

/// The memory-only store: nothing outlives the process, and every change is safe at once.
#[derive(Debug, Default)]
pub struct Memory;

impl Store for Memory {
    fn append(&mut self, _msg: &Message, _lifetime: Duration) -> Option<Ticket> {
        None
    }

    fn attributes(&mut self, _attributes: &ChannelAttributes) {}

    fn forget(&mut self, _channel: &str, _upto: u64) {}

    fn delete(&mut self, _channel: &str) {}
}
