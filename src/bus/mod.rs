//! Channels and their subscribers. The bus knows subscribers only as (connection key, wire,
//! filter); it never touches a socket. Publishing returns the message; the reactor walks
//! `for_each_recipient` and queues the shared frame on each connection.

pub mod filter;
mod message;

use std::collections::HashMap;
use std::rc::Rc;

use slab::Slab;

pub use filter::Filter;
pub use message::Message;

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
    topic: usize,
    slot: usize,
}

/// Subscribers of one channel name, or of every channel under a prefix.
#[derive(Debug)]
struct Topic {
    name: Box<str>,
    subtree: bool,
    subscribers: Slab<Subscriber>,
}

#[derive(Debug)]
pub struct Bus {
    topics: Slab<Topic>,
    /// Exact channel name -> topic.
    channels: HashMap<Box<str>, usize>,
    /// Prefix ("" for every channel, "sensors/" for a subtree) -> topic.
    subtrees: HashMap<Box<str>, usize>,
    next_id: u64,
    subscribers: usize,
}

impl Bus {
    /// `first_id` should grow across restarts (the clock at start-up) so ids are never reused.
    pub fn new(first_id: u64) -> Bus {
        Bus {
            topics: Slab::new(),
            channels: HashMap::new(),
            subtrees: HashMap::new(),
            next_id: first_id,
            subscribers: 0,
        }
    }

    /// Subscribes to channel `name`, or with `subtree` to every channel whose name starts with
    /// `name` (which is then "" or ends in '/').
    pub fn subscribe(&mut self, name: &str, subtree: bool, sub: Subscriber) -> SubscriptionId {
        let index = if subtree {
            &mut self.subtrees
        } else {
            &mut self.channels
        };
        let topic = match index.get(name) {
            Some(&topic) => topic,
            None => {
                let topic = self.topics.insert(Topic {
                    name: name.into(),
                    subtree,
                    subscribers: Slab::new(),
                });
                index.insert(name.into(), topic);
                topic
            }
        };
        self.subscribers += 1;
        let slot = self.topics[topic].subscribers.insert(sub);
        SubscriptionId { topic, slot }
    }

    pub fn unsubscribe(&mut self, id: SubscriptionId) {
        let Some(topic) = self.topics.get_mut(id.topic) else {
            return;
        };
        if topic.subscribers.try_remove(id.slot).is_none() {
            return;
        }
        self.subscribers -= 1;
        if topic.subscribers.is_empty() {
            let topic = self.topics.remove(id.topic);
            let index = if topic.subtree {
                &mut self.subtrees
            } else {
                &mut self.channels
            };
            index.remove(&topic.name);
        }
    }

    /// Assigns the next id to a new message on `channel`.
    pub fn publish(
        &mut self,
        channel: &str,
        content_type: &str,
        sender: Option<&str>,
        body: Vec<u8>,
    ) -> Rc<Message> {
        let id = self.next_id;
        self.next_id += 1;
        Rc::new(Message::new(
            id,
            channel.into(),
            content_type.into(),
            sender.map(Into::into),
            body.into_boxed_slice(),
        ))
    }

    /// Calls `deliver` once for each subscriber that should get `msg`: those of its channel and
    /// of every subtree containing it, whose filters accept it.
    pub fn for_each_recipient(&self, msg: &Message, mut deliver: impl FnMut(&Subscriber)) {
        let mut visit = |topic: usize| {
            for (_, sub) in &self.topics[topic].subscribers {
                let accepted = sub
                    .filter
                    .as_ref()
                    .is_none_or(|f| f.accepts(&msg.content_type, msg.sender.as_deref()));
                if accepted {
                    deliver(sub);
                }
            }
        };
        if let Some(&topic) = self.channels.get(&*msg.channel) {
            visit(topic);
        }
        if self.subtrees.is_empty() {
            return;
        }
        for prefix in subtree_prefixes(&msg.channel) {
            if let Some(&topic) = self.subtrees.get(prefix) {
                visit(topic);
            }
        }
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers
    }
}

/// The subtree prefixes containing `channel`: "", then each prefix ending in '/'.
fn subtree_prefixes(channel: &str) -> impl Iterator<Item = &str> {
    std::iter::once("").chain(channel.match_indices('/').map(move |(i, _)| &channel[..=i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(conn: usize, filter: Option<Filter>) -> Subscriber {
        Subscriber {
            conn,
            wire: Wire::Multipart,
            filter: filter.map(Box::new),
        }
    }

    fn recipients(bus: &Bus, msg: &Message) -> Vec<usize> {
        let mut got = Vec::new();
        bus.for_each_recipient(msg, |s| got.push(s.conn));
        got.sort();
        got
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
        let mut bus = Bus::new(1);
        bus.subscribe("foo", false, sub(1, None));
        bus.subscribe("", true, sub(2, None));
        bus.subscribe("sensors/", true, sub(3, None));
        bus.subscribe("sensors/t1", false, sub(4, None));
        bus.subscribe("bar", false, sub(5, None));
        let cases: &[(&str, &[usize])] = &[
            ("foo", &[1, 2]),
            ("sensors/t1", &[2, 3, 4]),
            ("sensors/t2/x", &[2, 3]),
            ("sensorsX", &[2]),
            ("", &[2]), // a publish to /msgbus/ reaches each all-channels subscriber once
        ];
        for (channel, want) in cases {
            let msg = bus.publish(channel, "text/plain", None, vec![]);
            assert_eq!(recipients(&bus, &msg), *want, "{channel}");
        }
    }

    #[test]
    fn filters_apply() {
        let mut bus = Bus::new(1);
        bus.subscribe("c", false, sub(1, Some(Filter::new(Some("text/*"), None))));
        bus.subscribe("c", false, sub(2, Some(Filter::new(None, Some("alice")))));
        bus.subscribe("c", false, sub(3, None));
        let text = bus.publish("c", "text/plain", Some("bob"), vec![]);
        assert_eq!(recipients(&bus, &text), [1, 3]);
        let jpeg = bus.publish("c", "image/jpeg", Some("alice"), vec![]);
        assert_eq!(recipients(&bus, &jpeg), [2, 3]);
    }

    #[test]
    fn ids_increase_and_empty_channels_are_freed() {
        let mut bus = Bus::new(100);
        let a = bus.subscribe("x", false, sub(1, None));
        let b = bus.subscribe("x", false, sub(2, None));
        assert_eq!((bus.channel_count(), bus.subscriber_count()), (1, 2));
        bus.unsubscribe(a);
        bus.unsubscribe(a); // twice is harmless
        assert_eq!((bus.channel_count(), bus.subscriber_count()), (1, 1));
        bus.unsubscribe(b);
        assert_eq!((bus.channel_count(), bus.subscriber_count()), (0, 0));
        let ids: Vec<u64> = (0..3)
            .map(|_| bus.publish("x", "t", None, vec![]).id)
            .collect();
        assert_eq!(ids, [100, 101, 102]);
    }
}
