//! The lhttp door (`--lhttp`): a WebSocket on any path outside `/msgbus/` speaks lhttp's text
//! protocol (`LHTTP/1.0 COMMAND`, `subscribe:` / `publish:` / `unsubscribe:` headers, a body),
//! and `POST /publish` takes a whole lhttp message. The codec (`codec.rs`) parses frames as
//! lhttp did and decides what each asks; channels are msgbus channels, so messages cross doors:
//! native subscribers get the lhttp body, lhttp subscribers the lhttp frame. A command with a
//! processor (`--lhttp-processor chat=URL`) has its messages POSTed to that URL through the
//! upstream client, and the answer comes back to the client as an lhttp frame. The protocol as
//! lhttp had it: `PROTOCOL.md`.

pub mod codec;

use std::collections::HashMap;

use self::codec as lhttp;
use crate::bus::{Subscriber, SubscriptionId};
use crate::conn::{
    Conn, Ctx, Door, DoorRequest, DoorState, Next, Publish, PublishOutcome, PublishRequest,
    Publisher, Reply,
};
use crate::http::request::Method;
use crate::http::response::{self, Head, Status};
use crate::message::Message;
use crate::transport::websocket::{self as ws, encode_frame, Opcode};
use crate::transport::{Wire, Wires};
use crate::upstream::{CallError, OnAnswer};

/// The most body a processor's answer may have; past it the client gets an error frame.
pub const MAX_PROCESSOR_ANSWER: usize = 64 * 1024;

/// The lhttp door: its wire (a WebSocket text frame with the lhttp message).
pub struct LhttpDoor {
    wire: Wire,
}

/// What an lhttp socket keeps besides its WebSocket state.
#[derive(Default)]
struct Socket {
    /// channel -> its subscription, so `unsubscribe:` can end it.
    channels: HashMap<String, SubscriptionId>,
}

/// How a publish of this door is answered.
enum Answer {
    /// On a socket: nothing when published (as lhttp), an error frame when refused.
    Frame,
    /// `POST /publish`: an empty 200 (as lhttp), or the refusal.
    Http,
}

/// The frame an lhttp subscriber gets for a message made elsewhere (`LHTTP/1.0 publish`); a
/// message published through this door carries the publisher's own frame (preset).
fn encode_lhttp_frame(msg: &Message) -> Vec<u8> {
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
fn error_frame(why: &str) -> Vec<u8> {
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

impl LhttpDoor {
    /// Opens the door, registering its wire format.
    pub fn open(wires: &mut Wires) -> LhttpDoor {
        LhttpDoor {
            wire: wires
                .register("lhttp", encode_lhttp_frame)
                .expect("a frame slot for lhttp"),
        }
    }

    /// A WebSocket upgrade on a path outside `/msgbus/`: an lhttp socket.
    fn handshake(&mut self, session: &mut Conn, req: &DoorRequest, ctx: &mut Ctx) -> Option<Next> {
        let (request, reply) = (req.request, req.reply);
        let who = match session.identify_door_request(req, ctx) {
            Ok(who) => who,
            Err(refused) => return refused,
        };
        let is_get = request.method == Method::Get;
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
                    return session.refuse(request, reply, status, &e.to_string(), &version);
                }
            };
        // The native handshake's origin policy: without it any page a browser visits could
        // open an lhttp socket with the user's cookies (cross-site WebSocket hijacking).
        if !ctx.cfg.websocket_origin_ok(request.header("origin")) {
            let why = "origin not allowed";
            return session.refuse(request, reply, Status::FORBIDDEN, why, &[]);
        }
        let socket: DoorState = Box::<Socket>::default();
        session.start_door_socket(&accept, who, (ctx.door_id, socket), ctx);
        Some(Next::Wait)
    }

    /// `POST /publish`: reads the body, a whole lhttp message.
    fn post(&mut self, session: &mut Conn, req: &DoorRequest, ctx: &mut Ctx) -> Option<Next> {
        let who = match session.identify_door_request(req, ctx) {
            Ok(who) => who,
            Err(refused) => return refused,
        };
        session.read_door_body(req, Publisher::Client(who), Box::new(()), ctx)
    }
}

impl Door for LhttpDoor {
    fn name(&self) -> &'static str {
        "lhttp"
    }

    fn on_request(
        &mut self,
        session: &mut Conn,
        req: &DoorRequest,
        ctx: &mut Ctx,
    ) -> Option<Option<Next>> {
        if req.raw_path.starts_with(crate::http::route::MSGBUS_PREFIX) {
            return None;
        }
        if req.raw_path == "/publish" && req.request.method == Method::Post {
            return Some(self.post(session, req, ctx));
        }
        if ws::wants_upgrade(req.request.header("upgrade")) {
            return Some(self.handshake(session, req, ctx));
        }
        None
    }

    /// `POST /publish`'s body: each channel of its `publish` header gets it.
    fn on_body(
        &mut self,
        session: &mut Conn,
        _state: DoorState,
        publish: Publish,
        ctx: &mut Ctx,
    ) -> Next {
        let reply = publish.reply;
        let body = publish.req.body;
        let parsed = lhttp::parse_http_publish(&body);
        let first = parsed.as_ref().ok().and_then(|p| p.channels.first());
        let (Ok(parsed), Some(first)) = (&parsed, first) else {
            // Nothing to publish: lhttp answered such a request 200 all the same.
            answer_post(session, reply, Ok(()));
            return Next::Wait;
        };
        let inner = lhttp::parse_lenient(&body);
        let lines = inner.as_ref().map(header_lines).unwrap_or_default();
        let frame = encode_frame(Opcode::Text, parsed.frame);
        // Answered once the gate and the bus have taken it (200 as lhttp, or why not).
        let answer: DoorState = Box::new(Answer::Http);
        Next::Publish(Box::new(Publish {
            req: PublishRequest {
                channel: text(first),
                more_channels: parsed.channels[1..].iter().map(|c| text(c)).collect(),
                content_type: "text/plain; charset=utf-8".into(),
                body: inner.map(|m| m.body).unwrap_or_default(),
                preset: Some((self.wire.index(), frame)),
                lines,
                ..PublishRequest::default()
            },
            who: publish.who,
            reply,
            json_answer: false,
            via_websocket: false,
            door: None,
            door_answer: Some((ctx.door_id, answer)),
        }))
    }

    fn answer_publish(
        &mut self,
        session: &mut Conn,
        state: DoorState,
        reply: Reply,
        outcome: PublishOutcome,
    ) {
        match state.downcast::<Answer>().map(|a| *a) {
            Ok(Answer::Http) => answer_post(session, reply, outcome.map(|_| ())),
            Ok(Answer::Frame) => {
                if let Err(e) = outcome {
                    session.outq.push_own(error_frame(&e.to_string()));
                }
            }
            Err(_) => {}
        }
    }

    /// One lhttp message from a socket: subscribe, publish (queued for the reactor), then
    /// unsubscribe, in lhttp's order.
    fn on_socket_message(
        &mut self,
        session: &mut Conn,
        state: &mut DoorState,
        payload: &[u8],
        ctx: &mut Ctx,
    ) {
        let msg = match lhttp::parse(payload).or_else(|_| lhttp::parse_lenient(payload)) {
            Ok(msg) => msg,
            Err(e) => {
                session.outq.push_own(error_frame(&e.to_string()));
                return;
            }
        };
        let plan = lhttp::plan(&msg);
        if let Some(e) = plan.close {
            session.outq.push_own(error_frame(&e.to_string()));
            return;
        }
        // lhttp ran the command's processor first, then the headers' operations.
        if let Some(refused) = call_processor(&msg, payload, ctx) {
            session.outq.push_own(error_frame(&refused));
        }
        let frame = lhttp::publish_frame(&msg);
        let content_type = msg
            .header(b"content-type")
            .map_or("text/plain; charset=utf-8".to_string(), text);
        let who = session.websocket_identity().expect("a WebSocket").clone();
        let Some(socket) = state.downcast_mut::<Socket>() else {
            return;
        };
        // Every channel the message is published to goes as one request: one body, one check.
        let mut publish = PublishRequest {
            content_type: content_type.clone(),
            body: msg.body.clone(),
            preset: Some((self.wire.index(), encode_frame(Opcode::Text, &frame))),
            lines: header_lines(&msg),
            ..PublishRequest::default()
        };
        for op in plan.ops {
            match op {
                lhttp::Op::Subscribe(channel) => {
                    let channel = text(channel);
                    if socket.channels.contains_key(&channel) {
                        continue; // lhttp delivered twice to a double subscription: a bug
                    }
                    let held = session.subscription_count();
                    let topic = match ctx.gate.admit_subscribe(&who, [(&*channel, false)], held) {
                        Ok(mut topics) => topics.remove(0),
                        Err(refusal) => {
                            session.count_refusal(&refusal);
                            session.outq.push_own(error_frame(&refusal.reason));
                            continue;
                        }
                    };
                    let subscriber = Subscriber {
                        conn: ctx.key,
                        wire: self.wire,
                        filter: None,
                    };
                    if let Ok(id) = ctx.bus.subscribe(&topic, subscriber, ctx.now) {
                        socket.channels.insert(channel, id);
                        session.add_subscription(id);
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
                    if let Some(id) = socket.channels.remove(&text(channel)) {
                        ctx.bus.unsubscribe(id, ctx.now);
                        session.remove_subscription(id);
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
                        session.outq.push_own(error_frame(&refusal.to_string()));
                    }
                }
            }
        }
        if !publish.channel.is_empty() {
            // lhttp answered no publish; a refused one gets an error frame.
            let answer: DoorState = Box::new(Answer::Frame);
            let answer = Some((ctx.door_id, answer));
            session.queue_publish(Publish::over_websocket(publish, who, answer));
        }
    }
}

/// Hands a message whose command has a processor to the upstream client: the whole message,
/// as the client sent it, is POSTed to the processor's URL with its command in
/// `Lhttp-Command`, and what comes back (or why nothing does) reaches the client as a frame
/// (`processor_frame`). Returns why the call cannot be made, if it cannot.
fn call_processor(msg: &lhttp::LhttpMessage, payload: &[u8], ctx: &mut Ctx) -> Option<String> {
    let processor = ctx
        .cfg
        .lhttp_processors
        .iter()
        .find(|p| p.command.as_bytes() == msg.command.as_slice())?;
    let name = processor.command.clone();
    // The values the gate checks on every line a message could write elsewhere.
    if !header_lines(msg)
        .iter()
        .all(|line| crate::gate::is_clean_line(line))
    {
        return Some(format!(
            "processor {name}: a header may not hold CR, LF or NUL"
        ));
    }
    let headers = [
        (
            b"content-type".to_vec(),
            b"application/octet-stream".to_vec(),
        ),
        (b"lhttp-command".to_vec(), name.as_bytes().to_vec()),
    ];
    let on_answer: OnAnswer = {
        let name = name.clone();
        Box::new(move |outcome| processor_frame(&name, outcome))
    };
    let Some(upstream) = ctx.upstream.as_deref_mut() else {
        return Some(format!("processor {name}: outbound calls are not enabled"));
    };
    let url = processor.url.as_bytes();
    let submitted = upstream.submit_for_answer(
        ctx.key,
        url,
        &headers,
        payload,
        MAX_PROCESSOR_ANSWER,
        on_answer,
        ctx.now,
    );
    submitted
        .err()
        .map(|refusal| format!("processor {name}: {refusal}"))
}

/// The frame a processor's answer makes for the client: its message, nothing, or an error
/// frame saying why there is none.
fn processor_frame(
    name: &str,
    outcome: Result<crate::upstream::request::Answer, CallError>,
) -> Option<Vec<u8>> {
    let why = match outcome {
        Ok(answer) => {
            let content_type = answer.content_type.as_deref();
            match lhttp::processor_reply(name.as_bytes(), answer.status, content_type, &answer.body)
            {
                Ok(reply) => return reply.map(|message| encode_frame(Opcode::Text, &message)),
                Err(why) => why,
            }
        }
        Err(e) => e.to_string(),
    };
    Some(error_frame(&format!("processor {name}: {why}")))
}

/// `POST /publish`'s answer: an empty 200, as lhttp gave, or the refusal.
fn answer_post(session: &mut Conn, reply: Reply, outcome: Result<(), crate::conn::Refused>) {
    let answer = match outcome {
        Ok(()) => Head::new(reply.minor_version, Status::OK)
            .header("Content-Length", 0usize)
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
    session.answer(answer, reply.keep_alive);
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
