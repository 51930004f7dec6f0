//! The lhttp door (`--lhttp`): a WebSocket on any path outside `/msgbus/` speaks lhttp's text
//! protocol (`LHTTP/1.0 COMMAND`, `subscribe:` / `publish:` / `unsubscribe:` headers, a body),
//! and `POST /publish` takes a whole lhttp message. The codec in `compat::lhttp` parses frames
//! as lhttp did and decides what each asks; channels are msgbus channels, so messages cross
//! doors: native subscribers get the lhttp body, lhttp subscribers the lhttp frame.

use std::collections::HashMap;

use super::{Conn, Ctx, DoorPost, Next, Phase, Publish, PublishRequest, Publisher, Reply, Stream};
use crate::bus::{Subscriber, SubscriptionId};
use crate::compat::lhttp;
use crate::transport::websocket::{encode_frame, Opcode};
use crate::transport::Wire;

/// What an lhttp session keeps besides its WebSocket state.
#[derive(Default)]
pub(super) struct LhttpSession {
    /// channel -> its subscription, so `unsubscribe:` can end it.
    pub(super) channels: HashMap<String, SubscriptionId>,
}

/// The frame an lhttp subscriber gets for a message: the publisher's own lhttp message when it
/// came through this door, else one made from the message (`LHTTP/1.0 publish`).
pub fn encode_lhttp_frame(msg: &crate::bus::Message) -> Vec<u8> {
    if let Some(frame) = &msg.lhttp_frame {
        return encode_frame(Opcode::Text, frame);
    }
    let made = lhttp::LhttpMessage {
        command: b"publish".to_vec(),
        headers: vec![
            (b"publish".to_vec(), msg.channel.as_bytes().to_vec()),
            (
                b"content-type".to_vec(),
                msg.content_type.as_bytes().to_vec(),
            ),
        ],
        body: msg.body.to_vec(),
    };
    encode_frame(Opcode::Text, &lhttp::encode(&made))
}

/// An lhttp text frame saying why a frame was refused (the original sent nothing: its
/// clients could not tell a dropped frame from a lost one).
pub(super) fn error_frame(why: &str) -> Vec<u8> {
    let msg = lhttp::LhttpMessage {
        command: b"error".to_vec(),
        headers: vec![(b"error".to_vec(), why.as_bytes().to_vec())],
        body: Vec::new(),
    };
    encode_frame(Opcode::Text, &lhttp::encode(&msg))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Conn {
    /// One lhttp message from the socket: subscribe, publish (queued for the reactor), then
    /// unsubscribe, in lhttp's order.
    pub(super) fn on_lhttp_message(&mut self, payload: &[u8], ctx: &mut Ctx) {
        let msg = match lhttp::parse(payload).or_else(|_| lhttp::parse_lenient(payload)) {
            Ok(msg) => msg,
            Err(e) => {
                self.outq.push_own(error_frame(&e.to_string()));
                return;
            }
        };
        let plan = lhttp::plan(&msg);
        if let Some(e) = plan.close {
            self.outq.push_own(error_frame(&e.to_string()));
            return;
        }
        let frame = lhttp::publish_frame(&msg);
        let content_type = msg
            .header(b"content-type")
            .map_or("text/plain; charset=utf-8".to_string(), text);
        let Phase::Streaming(Stream::WebSocket(state)) = &self.phase else {
            return;
        };
        let who = state.who.clone();
        // Every channel the message is published to goes as one request: one body, one check.
        let mut publish = PublishRequest {
            content_type: content_type.clone(),
            body: msg.body.clone(),
            lhttp_frame: Some(frame.clone()),
            lines: header_lines(&msg),
            ..PublishRequest::default()
        };
        for op in plan.ops {
            match op {
                lhttp::Op::Subscribe(channel) => {
                    let channel = text(channel);
                    let Phase::Streaming(Stream::WebSocket(state)) = &mut self.phase else {
                        return;
                    };
                    let session = state.lhttp.get_or_insert_with(Default::default);
                    if session.channels.contains_key(&channel) {
                        continue; // lhttp delivered twice to a double subscription: a bug
                    }
                    let held = self.subscriptions.len();
                    let topic = match ctx.gate.admit_subscribe(&who, [(&*channel, false)], held) {
                        Ok(mut topics) => topics.remove(0),
                        Err(refusal) => {
                            self.count_refusal(&refusal);
                            self.outq.push_own(error_frame(&refusal.reason));
                            continue;
                        }
                    };
                    let subscriber = Subscriber {
                        conn: ctx.key,
                        wire: Wire::Lhttp,
                        filter: None,
                    };
                    if let Ok(id) = ctx.bus.subscribe(&topic, subscriber, ctx.now) {
                        session.channels.insert(channel, id);
                        self.subscriptions.push(id);
                    }
                }
                lhttp::Op::Publish(channel) => {
                    if publish.channel.is_empty() {
                        publish.channel = text(channel);
                    } else {
                        publish.more_channels.push(text(channel));
                    }
                }
                lhttp::Op::Unsubscribe(channel) => {
                    let Phase::Streaming(Stream::WebSocket(state)) = &mut self.phase else {
                        return;
                    };
                    let session = state.lhttp.get_or_insert_with(Default::default);
                    if let Some(id) = session.channels.remove(&text(channel)) {
                        ctx.bus.unsubscribe(id, ctx.now);
                        self.subscriptions.retain(|s| *s != id);
                    }
                }
                lhttp::Op::Upstream(call) => {
                    let body = call.sends_body.then_some(msg.body.as_slice());
                    let outcome = match ctx.upstream.as_deref_mut() {
                        Some(upstream) => {
                            let (method, url) = (call.method, call.url);
                            upstream.submit(ctx.key, method, url, &msg.headers, body, ctx.now)
                        }
                        None => Err(crate::upstream::Refusal::Disabled),
                    };
                    // As in lhttp, a call that goes out is not acknowledged; one that cannot
                    // is (lhttp dropped the connection).
                    if let Err(refusal) = outcome {
                        self.outq.push_own(error_frame(&refusal.to_string()));
                    }
                }
            }
        }
        if !publish.channel.is_empty() {
            // lhttp answered no publish; a refused one gets an error frame.
            let answer = Some(Box::new(super::DoorAnswer::Lhttp));
            self.pending_publishes
                .push(Publish::over_websocket(publish, who, answer));
        }
    }

    /// `POST /publish`: the body is a whole lhttp message; each channel of its `publish`
    /// header gets it. Answered 200 with an empty body, as lhttp did.
    pub(super) fn finish_lhttp_publish(&mut self, publish: Publish) -> Next {
        let reply = publish.reply;
        let body = publish.req.body;
        let parsed = lhttp::parse_http_publish(&body);
        let first = parsed.as_ref().ok().and_then(|p| p.channels.first());
        let (Ok(parsed), Some(first)) = (&parsed, first) else {
            // Nothing to publish: lhttp answered such a request 200 all the same.
            self.answer_lhttp_post(reply, Ok(()));
            return Next::Wait;
        };
        let inner = lhttp::parse_lenient(&body);
        let lines = inner.as_ref().map(header_lines).unwrap_or_default();
        // Answered once the gate and the bus have taken it (200 as lhttp, or why not).
        Next::Publish(Box::new(Publish {
            req: PublishRequest {
                channel: text(first),
                more_channels: parsed.channels[1..].iter().map(|c| text(c)).collect(),
                content_type: "text/plain; charset=utf-8".into(),
                body: inner.map(|m| m.body).unwrap_or_default(),
                lhttp_frame: Some(parsed.frame.to_vec()),
                lines,
                ..PublishRequest::default()
            },
            who: publish.who,
            reply,
            json_answer: false,
            via_websocket: false,
            door: None,
            door_answer: Some(Box::new(super::DoorAnswer::LhttpPost)),
        }))
    }

    /// `POST /publish`'s answer: an empty 200, as lhttp gave, or the refusal.
    pub(super) fn answer_lhttp_post(&mut self, reply: Reply, outcome: Result<(), super::Refused>) {
        use crate::http::response::{self, Head, Status};
        let answer = match outcome {
            Ok(()) => Head::new(reply.minor_version, Status::OK)
                .header("Content-Length", 0)
                .finish(reply.minor_version, reply.keep_alive),
            Err(e) => response::plain(
                reply.minor_version,
                e.status(),
                &e.to_string(),
                &[],
                reply.keep_alive,
                false,
            ),
        };
        self.answer(answer, reply.keep_alive);
    }

    /// Starts a POST /publish body read.
    pub(super) fn lhttp_publish_request(
        &mut self,
        request: &crate::http::request::Request,
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        let query =
            crate::http::query::Query::parse(crate::http::query::split_target(&request.target).1)
                .unwrap_or_default();
        let who = match self.identify(request, &query, ctx) {
            Ok(who) => who,
            Err(refusal) => return self.refuse_gate(request, reply, &refusal),
        };
        let publish = Publish {
            req: PublishRequest::default(),
            who: Publisher::Client(who),
            reply,
            json_answer: false,
            via_websocket: false,
            door: Some(Box::new(DoorPost::Lhttp)),
            door_answer: None,
        };
        self.read_body(request, publish, ctx)
    }
}

impl Conn {
    /// A WebSocket upgrade on a path outside `/msgbus/`: an lhttp session.
    pub(super) fn lhttp_handshake(
        &mut self,
        request: &crate::http::request::Request,
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        use crate::http::response::Status;
        use crate::transport::websocket as ws;
        let query =
            crate::http::query::Query::parse(crate::http::query::split_target(&request.target).1)
                .unwrap_or_default();
        let who = match self.identify(request, &query, ctx) {
            Ok(who) => who,
            Err(refusal) => return self.refuse_gate(request, reply, &refusal),
        };
        let is_get = request.method == crate::http::request::Method::Get;
        let accept =
            match ws::check_handshake(is_get, reply.minor_version, |name| request.header(name)) {
                Ok(ok) => ok.accept,
                Err(e) => {
                    let status = if e.status() == 426 {
                        Status::UPGRADE_REQUIRED
                    } else {
                        Status::BAD_REQUEST
                    };
                    let version = [("Sec-WebSocket-Version", "13")];
                    return self.refuse(request, reply, status, &e.to_string(), &version);
                }
            };
        // The native handshake's origin policy: without it any page a browser visits could
        // open an lhttp socket with the user's cookies (cross-site WebSocket hijacking).
        if !ctx.cfg.websocket_origin_ok(request.header("origin")) {
            let why = "origin not allowed";
            return self.refuse(request, reply, Status::FORBIDDEN, why, &[]);
        }
        self.log_access(101, 0);
        self.outq.push_own(ws::handshake_response(&accept, None));
        self.phase = Phase::Streaming(Stream::WebSocket(Box::new(super::WsState {
            decoder: ws::FrameDecoder::new(ctx.cfg.max_ws_message()),
            next_ping: ctx.now + ctx.cfg.ping_interval,
            publish_to: None,
            key: None,
            who,
            lhttp: Some(LhttpSession::default()),
        })));
        Some(Next::Wait)
    }
}

/// Every header name and value of an lhttp message: lhttp subscribers get the message as it came,
/// so none may hold a line break that would forge a header.
fn header_lines(msg: &lhttp::LhttpMessage) -> Vec<Vec<u8>> {
    let mut lines = vec![msg.command.clone()];
    for (name, value) in &msg.headers {
        lines.push(name.clone());
        lines.push(value.clone());
    }
    lines
}
