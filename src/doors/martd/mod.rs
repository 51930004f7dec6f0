//! The martd door (`--martd`): `/pub?channel=&size=&life=&key=` with the message as the body,
//! answered `{"etag": "ID"}`, and `/sub?cid=&CHANNEL=ETAG...`, answered at once with what
//! follows each etag or held until the next publish. The codec (`codec.rs`) writes every reply
//! as martd did; etags are msgbus message ids. The protocol as martd had it: `PROTOCOL.md`.

pub mod codec;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use self::codec as martd;
use crate::bus::history::DoorRecord;
use crate::bus::{Bus, BusError};
use crate::conn::{
    Conn, Ctx, Door, DoorRequest, DoorState, Hold, HoldNext, Next, Publish, PublishOutcome,
    PublishRequest, Publisher, Refused, Reply,
};
use crate::http::response::{self, Head, Status};
use crate::message::Message;
use crate::outq::OutQueue;
use crate::stats::Transport;
use crate::transport::{Wire, Wires};

/// The martd-compatible browser client, served at `/client.js` as martd served its own.
const MARTD_CLIENT_JS: &str = include_str!("../../../static/martd-client.js");

/// What the first `/pub` of each channel fixed: martd ignores the attributes of later ones.
pub struct MartdDoor {
    /// Its wire: a whole `/sub` answer carrying one message.
    wire: Wire,
    channels: HashMap<String, MartdChannel>,
    /// Channels fixed or forgotten since the reactor last took them (`--data-dir` keeps them:
    /// without, a restart would let a keyless `/pub` fix a keyed channel as keyless).
    changed: Vec<String>,
}

/// The attributes of the first `/pub` (one2one is kept by the bus, set only when the channel
/// is created).
struct MartdChannel {
    size: usize,
    lifetime: Duration,
    one2one: bool,
    /// Later publishes must give the same key.
    keyed: bool,
}

impl MartdChannel {
    /// As the durable log keeps it: size and lifetime (ns) as u64 little-endian, then one2one
    /// and keyed as 0 or 1.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18);
        out.extend_from_slice(&(self.size as u64).to_le_bytes());
        let lifetime = u64::try_from(self.lifetime.as_nanos()).unwrap_or(u64::MAX);
        out.extend_from_slice(&lifetime.to_le_bytes());
        out.push(u8::from(self.one2one));
        out.push(u8::from(self.keyed));
        out
    }

    fn decode(bytes: &[u8]) -> Option<MartdChannel> {
        let flag = |b: u8| match b {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        };
        let bytes: &[u8; 18] = bytes.try_into().ok()?;
        let (size, rest) = bytes.split_at(8);
        let (lifetime, flags) = rest.split_at(8);
        Some(MartdChannel {
            size: usize::try_from(u64::from_le_bytes(size.try_into().ok()?)).ok()?,
            lifetime: Duration::from_nanos(u64::from_le_bytes(lifetime.try_into().ok()?)),
            one2one: flag(flags[0])?,
            keyed: flag(flags[1])?,
        })
    }
}

/// One message as a whole martd `/sub` answer body: the one message that woke a held request.
fn encode_held_answer(msg: &Message) -> Vec<u8> {
    let data = martd::ChannelData {
        name: &msg.channel,
        etag: msg.id as i64,
        payload: vec![&msg.body],
    };
    martd::encode_channels(&[data]).body
}

impl MartdDoor {
    /// Opens the door, registering its wire format.
    pub fn open(wires: &mut Wires) -> MartdDoor {
        MartdDoor {
            wire: wires
                .register("martd", encode_held_answer)
                .expect("a frame slot for martd"),
            channels: HashMap::new(),
            changed: Vec::new(),
        }
    }

    /// `/sub`: kept messages after each etag answer at once; otherwise the request waits.
    fn subscribe(
        &mut self,
        session: &mut Conn,
        req: &DoorRequest,
        who: &crate::gate::Identity,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        let reply = req.reply;
        let query = martd::parse_query(req.raw_query);
        let parsed = martd::parse(&martd::Request {
            method: req.request.method.as_str(),
            path: "/sub",
            query: &query,
            form: &[],
            body: &[],
        });
        let channels = match parsed {
            Ok(martd::Op::Subscribe { channels, .. }) => channels,
            Ok(_) => return answer(session, reply, &martd::encode_not_found()),
            Err(reject) => return answer(session, reply, &martd::encode_reject(&reject)),
        };
        let names = channels.iter().map(|(name, _)| (name.as_str(), false));
        let held = session.subscription_count();
        let topics = match ctx.gate.admit_subscribe(who, names, held) {
            Ok(topics) => topics,
            Err(refusal) => return session.refuse_gate(req.request, reply, &refusal),
        };
        let mut ready: Vec<(String, i64, Vec<Rc<Message>>)> = Vec::new();
        for ((name, etag), topic) in channels.iter().zip(&topics) {
            let after = u64::try_from(*etag).unwrap_or(0);
            let mut replay = ctx.bus.replay(topic, after, ctx.now);
            replay.bound(after, ctx.cfg.max_queue);
            if let Some(last) = replay.messages.last() {
                ready.push((name.clone(), last.id as i64, replay.messages));
            }
        }
        if !ready.is_empty() {
            let data: Vec<martd::ChannelData> = ready
                .iter()
                .map(|(name, etag, messages)| martd::ChannelData {
                    name,
                    etag: *etag,
                    payload: messages.iter().map(|m| &*m.body).collect(),
                })
                .collect();
            let answer_now = martd::encode_channels(&data);
            // A one2one channel is consumed by the first delivery.
            for (_, _, messages) in &ready {
                if let Some(last) = messages.last() {
                    ctx.bus.delivered(last);
                }
            }
            return answer(session, reply, &answer_now);
        }
        session.subscribe_door(&topics, self.wire, ctx);
        // martd holds a /sub until something arrives, with no timeout of its own.
        session.hold(Box::new(HeldSub { reply }));
        Some(Next::Wait)
    }
}

impl Door for MartdDoor {
    fn name(&self) -> &'static str {
        "martd"
    }

    fn on_request(
        &mut self,
        session: &mut Conn,
        req: &DoorRequest,
        ctx: &mut Ctx,
    ) -> Option<Option<Next>> {
        if !matches!(req.raw_path, "/pub" | "/sub" | "/list" | "/client.js") {
            return None;
        }
        let reply = req.reply;
        if req.raw_path == "/client.js" {
            let js = response::with_body(
                reply.minor_version,
                Status::OK,
                "text/javascript; charset=utf-8",
                MARTD_CLIENT_JS.as_bytes(),
                reply.keep_alive,
                reply.head_only,
            );
            session.answer(js, reply.keep_alive);
            return Some(None);
        }
        let who = match session.identify_door_request(req, ctx) {
            Ok(who) => who,
            Err(refused) => return Some(refused),
        };
        Some(match req.raw_path {
            // martd dumped its store to its own log; its client saw only this.
            "/list" => answer(session, reply, &martd::encode_list()),
            "/pub" => {
                let query: DoorState = Box::new(req.raw_query.to_string());
                session.read_door_body(req, Publisher::Client(who), query, ctx)
            }
            _ => self.subscribe(session, req, &who, ctx),
        })
    }

    /// The `/pub` body has arrived.
    fn on_body(
        &mut self,
        session: &mut Conn,
        state: DoorState,
        mut publish: Publish,
        ctx: &mut Ctx,
    ) -> Next {
        let query = state.downcast::<String>().map(|q| *q).unwrap_or_default();
        let pairs = martd::parse_query(&query);
        let body = std::mem::take(&mut publish.req.body);
        let parsed = martd::parse(&martd::Request {
            method: "POST",
            path: "/pub",
            query: &pairs,
            form: &[],
            body: &body,
        });
        let reply = publish.reply;
        let (channel, size, life_ns, one2one, key, body) = match parsed {
            Ok(martd::Op::Publish {
                channel,
                size,
                life_ns,
                one2one,
                key,
                body,
            }) => (channel, size, life_ns, one2one, key, body),
            Ok(_) => {
                return answer(session, reply, &martd::encode_not_found()).unwrap_or(Next::Wait)
            }
            Err(reject) => {
                return answer(session, reply, &martd::encode_reject(&reject)).unwrap_or(Next::Wait)
            }
        };
        if body.is_empty() {
            // martd keeps nothing for an empty body and answers etag 0.
            return answer(session, reply, &martd::encode_published(0)).unwrap_or(Next::Wait);
        }
        let content_type = if std::str::from_utf8(&body).is_ok() {
            "text/plain; charset=utf-8"
        } else {
            "application/octet-stream"
        };
        // The first publish fixes the channel's attributes; martd's ring is bounded only by
        // memory, here by the largest history allowed.
        let max_history = ctx.cfg.max_history;
        if !self.channels.contains_key(&channel) {
            self.changed.push(channel.clone());
        }
        let attributes = self
            .channels
            .entry(channel.clone())
            .or_insert_with(|| MartdChannel {
                size: usize::try_from(size).unwrap_or(usize::MAX).min(max_history),
                lifetime: Duration::from_nanos(
                    u64::try_from(life_ns).unwrap_or(0).max(1_000_000_000),
                ),
                one2one,
                keyed: !key.is_empty(),
            });
        publish.req = PublishRequest {
            channel,
            content_type: content_type.into(),
            body,
            // Without a key at first, the channel never needs one (martd ignored later keys).
            key: attributes.keyed.then_some(key),
            attributes: crate::gate::Attributes {
                size: Some(attributes.size),
                lifetime: Some(attributes.lifetime),
                one2one: attributes.one2one,
            },
            ..PublishRequest::default()
        };
        publish.door_answer = Some((ctx.door_id, Box::new(())));
        Next::Publish(Box::new(publish))
    }

    fn answer_publish(
        &mut self,
        session: &mut Conn,
        _state: DoorState,
        reply: Reply,
        outcome: PublishOutcome,
    ) {
        let text = |status, why: String| martd::Reply {
            status,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
            body: format!("{why}\n").into_bytes(),
        };
        let reply_body = match outcome {
            Ok(done) => martd::encode_published(done.id as i64),
            Err(Refused::Bus(BusError::WrongKey)) => {
                martd::encode_reject(&martd::Reject("invalid key".into()))
            }
            Err(Refused::Gate(refusal)) if refusal.status < 500 => {
                text(refusal.status, refusal.to_string())
            }
            Err(e) => text(503, e.to_string()),
        };
        answer(session, reply, &reply_body);
    }

    /// Forgets the attributes of channels the bus has freed (no messages, no subscribers): the
    /// next `/pub` initialises them afresh, as a new martd channel.
    fn sweep(&mut self, _now: Instant, bus: &Bus) {
        let changed = &mut self.changed;
        self.channels.retain(|name, _| {
            let kept = bus.has_channel(name);
            if !kept {
                changed.push(name.clone());
            }
            kept
        });
    }

    /// Each channel whose attributes were fixed (or forgotten) since the last call.
    fn poll_records(&mut self, out: &mut Vec<DoorRecord>) {
        let door = self.name();
        for name in self.changed.drain(..) {
            let value = self.channels.get(&name).map(MartdChannel::encode);
            out.push(DoorRecord {
                door: door.to_string(),
                key: name.into_bytes(),
                value,
            });
        }
    }

    /// The attributes the first `/pub` of each channel fixed before a restart; the sweep
    /// forgets those of channels the bus no longer has.
    fn restore(&mut self, records: Vec<DoorRecord>, _now: Instant) {
        for record in records {
            let channel = record.value.as_deref().and_then(MartdChannel::decode);
            let (Ok(name), Some(channel)) = (String::from_utf8(record.key), channel) else {
                log::warn!("martd: a channel's attributes in the log are unreadable: skipped");
                continue;
            };
            self.channels.insert(name, channel);
        }
    }
}

/// A held `/sub`: the first message is its whole answer, shared as one frame.
struct HeldSub {
    reply: Reply,
}

impl Hold for HeldSub {
    fn transport(&self) -> Transport {
        Transport::LongPoll
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn on_message(&mut self, frame: Rc<[u8]>, _id: u64, out: &mut OutQueue) -> HoldNext {
        let reply = self.reply;
        let head = Head::new(reply.minor_version, Status::OK)
            .header("Access-Control-Allow-Origin", "*")
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Length", frame.len())
            .finish(reply.minor_version, reply.keep_alive);
        out.push_own(head);
        if !reply.head_only {
            out.push_pinned(frame);
        }
        HoldNext::Answered {
            keep_alive: reply.keep_alive,
        }
    }
}

/// Writes one of the codec's replies.
fn answer(session: &mut Conn, reply: Reply, answer: &martd::Reply) -> Option<Next> {
    let headers = answer.headers.iter().map(|(n, v)| (*n, v.as_str()));
    session.answer_framed(reply, answer.status, headers, &answer.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the durable log keeps of a channel reads back as it was; other bytes do not.
    #[test]
    fn channel_attributes_round_trip_and_strangers_are_refused() {
        let channel = |size, secs, one2one, keyed| MartdChannel {
            size,
            lifetime: Duration::from_secs(secs),
            one2one,
            keyed,
        };
        for c in [channel(10, 3600, false, false), channel(1, 1, true, true)] {
            let back = MartdChannel::decode(&c.encode()).expect("decodes");
            let fields = |c: &MartdChannel| (c.size, c.lifetime, c.one2one, c.keyed);
            assert_eq!(fields(&back), fields(&c));
        }
        let mut bad_flag = channel(1, 1, true, true).encode();
        bad_flag[17] = 2;
        for bad in [&[][..], &[0; 17], &[0; 19], &bad_flag] {
            assert!(MartdChannel::decode(bad).is_none(), "{bad:?}");
        }
    }
}
