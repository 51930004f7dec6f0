//! The martd door (`--martd`): `/pub?channel=&size=&life=&key=` with the message as the body,
//! answered `{"etag": "ID"}`, and `/sub?cid=&CHANNEL=ETAG...`, answered at once with what
//! follows each etag or held until the next publish. The codec in `compat::martd` writes every
//! reply as martd did; etags are msgbus message ids.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use super::{
    Conn, Ctx, DoorAnswer, DoorPost, Next, Phase, Publish, PublishRequest, Publisher, Refused,
    Reply, Stream,
};
use crate::bus::{BusError, Subscriber};
use crate::compat::martd;
use crate::http::request::Request;
use crate::http::response::{Head, Status};
use crate::server::Published;
use crate::transport::Wire;

/// The martd-compatible browser client, served at `/client.js` as martd served its own.
const MARTD_CLIENT_JS: &str = include_str!("../../static/martd-client.js");

/// What the first `/pub` of each channel fixed: martd ignores the attributes of later ones.
#[derive(Default)]
pub struct MartdDoor {
    channels: HashMap<String, MartdChannel>,
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

impl MartdDoor {
    /// Forgets the attributes of channels the bus has freed (no messages, no subscribers): the
    /// next `/pub` initialises them afresh, as a new martd channel.
    pub fn sweep(&mut self, bus: &crate::bus::Bus) {
        self.channels.retain(|name, _| bus.has_channel(name));
    }
}

/// One message as a whole martd `/sub` answer body: the one message that woke a held request.
pub fn encode_held_answer(msg: &crate::bus::Message) -> Vec<u8> {
    let data = martd::ChannelData {
        name: &msg.channel,
        etag: msg.id as i64,
        payload: vec![&msg.body],
    };
    martd::encode_channels(&[data]).body
}

impl Conn {
    /// `/pub` and `/sub` when the door is open. None: not the door's.
    pub(super) fn martd_request(
        &mut self,
        request: &Request,
        raw_path: &str,
        raw_query: &str,
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Option<Next>> {
        if !ctx.cfg.martd || !matches!(raw_path, "/pub" | "/sub" | "/list" | "/client.js") {
            return None;
        }
        if raw_path == "/client.js" {
            let answer = crate::http::response::with_body(
                reply.minor_version,
                Status::OK,
                "text/javascript; charset=utf-8",
                MARTD_CLIENT_JS.as_bytes(),
                reply.keep_alive,
                reply.head_only,
            );
            self.answer(answer, reply.keep_alive);
            return Some(None);
        }
        let query = crate::http::query::Query::parse(raw_query).unwrap_or_default();
        let who = match self.identify(request, &query, ctx) {
            Ok(who) => who,
            Err(refusal) => return Some(self.refuse_gate(request, reply, &refusal)),
        };
        if raw_path == "/list" {
            // martd dumped its store to its own log; its client saw only this.
            return Some(self.answer_martd(reply, &martd::encode_list()));
        }
        if raw_path == "/pub" {
            let publish = Publish {
                req: PublishRequest::default(),
                who: Publisher::Client(who),
                reply,
                json_answer: false,
                via_websocket: false,
                door: Some(Box::new(DoorPost::Martd {
                    query: raw_query.to_string(),
                })),
                door_answer: None,
            };
            return Some(self.read_body(request, publish, ctx));
        }
        let query = martd::parse_query(raw_query);
        let parsed = martd::parse(&martd::Request {
            method: request.method.as_str(),
            path: "/sub",
            query: &query,
            form: &[],
            body: &[],
        });
        let channels = match parsed {
            Ok(martd::Op::Subscribe { channels, .. }) => channels,
            Ok(_) => return Some(self.answer_martd(reply, &martd::encode_not_found())),
            Err(reject) => return Some(self.answer_martd(reply, &martd::encode_reject(&reject))),
        };
        let names = channels.iter().map(|(name, _)| (name.as_str(), false));
        let topics = match ctx
            .gate
            .admit_subscribe(&who, names, self.subscriptions.len())
        {
            Ok(topics) => topics,
            Err(refusal) => return Some(self.refuse_gate(request, reply, &refusal)),
        };
        // Kept messages after each etag answer at once; otherwise the request waits.
        let mut ready: Vec<(String, i64, Vec<Rc<crate::bus::Message>>)> = Vec::new();
        for ((name, etag), topic) in channels.iter().zip(&topics) {
            let after = u64::try_from(*etag).unwrap_or(0);
            let mut replay = ctx.bus.replay(topic, after, ctx.now);
            replay.bound(after, ctx.cfg.max_queue);
            let messages = replay.messages;
            if let Some(last) = messages.last() {
                ready.push((name.clone(), last.id as i64, messages));
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
            let answer = martd::encode_channels(&data);
            // A one2one channel is consumed by the first delivery.
            for (_, _, messages) in &ready {
                if let Some(last) = messages.last() {
                    ctx.bus.delivered(last);
                }
            }
            return Some(self.answer_martd(reply, &answer));
        }
        for topic in &topics {
            let subscriber = Subscriber {
                conn: ctx.key,
                wire: Wire::Martd,
                filter: None,
            };
            if let Ok(id) = ctx.bus.subscribe(topic, subscriber, ctx.now) {
                self.subscriptions.push(id);
            }
        }
        // martd holds a /sub until something arrives, with no timeout of its own.
        self.phase = Phase::Streaming(Stream::Martd { reply });
        Some(Some(Next::Wait))
    }

    /// The `/pub` body has arrived.
    pub(super) fn finish_martd_pub(
        &mut self,
        mut publish: Publish,
        query: &str,
        ctx: &mut Ctx,
    ) -> Next {
        let pairs = martd::parse_query(query);
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
                return self
                    .answer_martd(reply, &martd::encode_not_found())
                    .unwrap_or(Next::Wait)
            }
            Err(reject) => {
                return self
                    .answer_martd(reply, &martd::encode_reject(&reject))
                    .unwrap_or(Next::Wait)
            }
        };
        if body.is_empty() {
            // martd keeps nothing for an empty body and answers etag 0.
            return self
                .answer_martd(reply, &martd::encode_published(0))
                .unwrap_or(Next::Wait);
        }
        let content_type = if std::str::from_utf8(&body).is_ok() {
            "text/plain; charset=utf-8"
        } else {
            "application/octet-stream"
        };
        // The first publish fixes the channel's attributes; martd's ring is bounded only by
        // memory, here by the largest history allowed.
        let max_history = ctx.cfg.max_history;
        let door = ctx.martd.as_deref_mut().expect("the door is open");
        let attributes = door
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
        publish.door_answer = Some(Box::new(DoorAnswer::Martd));
        Next::Publish(Box::new(publish))
    }

    pub(super) fn answer_martd_publish(
        &mut self,
        reply: Reply,
        outcome: Result<Published, Refused>,
    ) {
        let answer = match outcome {
            Ok(done) => martd::encode_published(done.id as i64),
            Err(Refused::Bus(BusError::WrongKey)) => {
                martd::encode_reject(&martd::Reject("invalid key".into()))
            }
            Err(Refused::Gate(refusal)) if refusal.status < 500 => martd::Reply {
                status: refusal.status,
                headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
                body: format!("{refusal}\n").into_bytes(),
            },
            Err(e) => martd::Reply {
                status: 503,
                headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
                body: format!("{e}\n").into_bytes(),
            },
        };
        self.answer_martd(reply, &answer);
    }

    /// A held `/sub` woken by a message: the message is the whole answer, shared as one frame.
    pub(super) fn answer_martd_held(&mut self, reply: Reply, frame: Rc<[u8]>) {
        let head = Head::new(reply.minor_version, Status::OK)
            .header("Access-Control-Allow-Origin", "*")
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Content-Length", frame.len())
            .finish(reply.minor_version, reply.keep_alive);
        self.outq.push_own(head);
        self.outq.push_pinned(frame);
        self.poll_done = true;
        self.phase = if reply.keep_alive {
            Phase::Head { deadline: None }
        } else {
            Phase::Closing
        };
    }

    fn answer_martd(&mut self, reply: Reply, answer: &martd::Reply) -> Option<Next> {
        let headers = answer.headers.iter().map(|(n, v)| (*n, v.as_str()));
        self.answer_framed(reply, answer.status, headers, &answer.body)
    }
}
