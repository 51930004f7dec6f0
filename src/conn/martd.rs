//! The martd door (`--martd`): `/pub?channel=&size=&life=&key=` with the message as the body,
//! answered `{"etag": "ID"}`, and `/sub?cid=&CHANNEL=ETAG...`, answered at once with what
//! follows each etag or held until the next publish. The codec in `compat::martd` writes every
//! reply as martd did; etags are msgbus message ids.

use std::rc::Rc;
use std::time::Duration;

use super::{Conn, Ctx, DoorAnswer, DoorPost, Next, Phase, Publish, Reply, Stream};
use crate::bus::{BusError, PublishRequest, Subscriber};
use crate::compat::martd;
use crate::http::request::Request;
use crate::http::response::{Head, Status};
use crate::server::Published;
use crate::transport::Wire;

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
        if !ctx.cfg.martd || !matches!(raw_path, "/pub" | "/sub" | "/list") {
            return None;
        }
        if raw_path == "/list" {
            // martd dumped its store to its own log; its client saw only this.
            return Some(self.answer_martd(reply, &martd::encode_list()));
        }
        if raw_path == "/pub" {
            let publish = Publish {
                req: PublishRequest::default(),
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
        // Kept messages after each etag answer at once; otherwise the request waits.
        let mut ready: Vec<(String, i64, Vec<Rc<crate::bus::Message>>)> = Vec::new();
        for (name, etag) in &channels {
            let after = u64::try_from(*etag).unwrap_or(0);
            let messages = ctx.bus.replay(name, false, after, ctx.now).messages;
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
            return Some(self.answer_martd(reply, &martd::encode_channels(&data)));
        }
        for (name, _) in &channels {
            let subscriber = Subscriber {
                conn: ctx.key,
                wire: Wire::Martd,
                filter: None,
            };
            if let Ok(id) = ctx.bus.subscribe(name, false, subscriber, ctx.now) {
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
        let (channel, size, life_ns, key, body) = match parsed {
            Ok(martd::Op::Publish {
                channel,
                size,
                life_ns,
                key,
                body,
                ..
            }) => (channel, size, life_ns, key, body),
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
        // martd's ring is bounded only by memory; here by the largest history allowed.
        let max_history = ctx.cfg.max_history;
        publish.req = PublishRequest {
            channel,
            content_type: content_type.into(),
            body,
            key: (!key.is_empty()).then_some(key),
            size: Some(usize::try_from(size).unwrap_or(usize::MAX).min(max_history)),
            lifetime: Some(Duration::from_nanos(
                u64::try_from(life_ns).unwrap_or(0).max(1_000_000_000),
            )),
            ..PublishRequest::default()
        };
        publish.door_answer = Some(Box::new(DoorAnswer::Martd));
        Next::Publish(publish)
    }

    pub(super) fn answer_martd_publish(
        &mut self,
        reply: Reply,
        outcome: Result<Published, BusError>,
    ) {
        let answer = match outcome {
            Ok(done) => martd::encode_published(done.id as i64),
            Err(BusError::WrongKey) => martd::encode_reject(&martd::Reject("invalid key".into())),
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
        let phrase = match answer.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            _ => "Service Unavailable",
        };
        let mut head = Head::new(reply.minor_version, Status(answer.status, phrase));
        for (name, value) in &answer.headers {
            head = head.header(name, value);
        }
        let mut out = head
            .header("Content-Length", answer.body.len())
            .finish(reply.minor_version, reply.keep_alive);
        out.extend_from_slice(&answer.body);
        self.answer(out, reply.keep_alive);
        None
    }
}
