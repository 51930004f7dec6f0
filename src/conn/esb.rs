//! The eventsource-broker door (`--esb-users FILE`): `POST /socket`, `POST /event`,
//! `POST /socket/ID` and `GET /eventsource?socket=ID`, as eventsource-broker's clients send
//! them. The codec in `compat::eventsource_broker` decides every reply; this module keeps the
//! sockets and connects them to the bus. Each api key has channels of its own, as in the
//! original: the bus channel behind key K's `chat` is `esb::bus_channel(K, "chat")`, a name no
//! other key and no native client can use.

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};

use super::{Conn, Ctx, Next, Phase, Publish, Reply, Stream};
use super::{PublishRequest, Publisher};
use crate::bus::Subscriber;
use crate::compat::eventsource_broker as esb;
use crate::http::request::Request;
use crate::http::response::{Head, Status};
use crate::transport::Wire;

/// Sockets kept at most; the oldest is forgotten first.
const MAX_SOCKETS: usize = 100_000;

/// The door's state: who may publish, and the sockets handed out.
pub struct EsbDoor {
    users: HashMap<String, String>,
    /// socket id -> the bus channel of its key and channel (`esb::bus_channel`)
    sockets: HashMap<String, String>,
    order: VecDeque<String>,
    /// Socket ids are capabilities (whoever has one reads and publishes on its channel), so
    /// they come from the operating system's CSPRNG.
    rng: SystemRandom,
}

impl EsbDoor {
    /// Reads `key:secret` lines (`#` starts a comment).
    pub fn from_users_file(text: &str) -> EsbDoor {
        let users = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_once(':'))
            .map(|(key, secret)| (key.trim().to_string(), secret.trim().to_string()))
            .collect();
        EsbDoor {
            users,
            sockets: HashMap::new(),
            order: VecDeque::new(),
            rng: SystemRandom::new(),
        }
    }

    /// The users from a new reading of the file (SIGHUP); sockets already made stay.
    pub fn replace_users(&mut self, text: &str) {
        self.users = EsbDoor::from_users_file(text).users;
    }

    /// A new socket on `bus_channel`: 128 random bits, or None if the system has no randomness
    /// to give (then no socket is made).
    fn new_socket(&mut self, bus_channel: String) -> Option<String> {
        let mut random = [0u8; 16];
        self.rng.fill(&mut random).ok()?;
        let id = esb::format_socket_id(&random);
        if self.order.len() >= MAX_SOCKETS {
            if let Some(old) = self.order.pop_front() {
                self.sockets.remove(&old);
            }
        }
        self.sockets.insert(id.clone(), bus_channel);
        self.order.push_back(id.clone());
        Some(id)
    }
}

/// The paths this door answers.
pub(super) fn is_door_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(first, "event" | "socket" | "eventsource")
}

/// What a door POST carries until its body has arrived.
#[derive(Debug)]
pub struct EsbPost {
    path: String,
    query: String,
    form: bool,
}

fn now_for_codec() -> esb::Now {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    esb::Now {
        secs: since.as_secs() as i64,
        nanos: since.subsec_nanos(),
    }
}

impl Conn {
    /// A request on one of the door's paths. None: not the door's (or the door is off).
    pub(super) fn door_request(
        &mut self,
        request: &Request,
        raw_path: &str,
        raw_query: &str,
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Option<Next>> {
        if ctx.esb.is_none() || !is_door_path(raw_path) {
            return None;
        }
        if request.method == crate::http::request::Method::Post {
            let form = request.header("content-type").is_some_and(|t| {
                t.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
            // The door's own signed tokens identify the publisher (checked by its codec).
            let publish = Publish {
                req: PublishRequest::default(),
                who: Publisher::Door(None),
                reply,
                json_answer: false,
                via_websocket: false,
                door_answer: None,
                door: Some(Box::new(super::DoorPost::Esb(EsbPost {
                    path: raw_path.to_string(),
                    query: raw_query.to_string(),
                    form,
                }))),
            };
            return Some(self.read_body(request, publish, ctx));
        }
        let codec_request = esb::Request {
            method: request.method.as_str(),
            path: raw_path.as_bytes(),
            query: raw_query.as_bytes(),
            form_body: None,
            last_event_id: request.header("last-event-id").map(str::as_bytes),
            x_requested_with: request.header("x-requested-with").map(str::as_bytes),
        };
        let door = ctx.esb.as_deref_mut().expect("checked above");
        let operation = match esb::route(&codec_request, &door.users, now_for_codec()) {
            Ok(operation) => operation,
            Err(answer) => return Some(self.answer_door(reply, &answer)),
        };
        let esb::Operation::Subscribe {
            socket,
            transport,
            last_event_id,
        } = operation
        else {
            return Some(self.answer_door(
                reply,
                &esb::Reply {
                    status: 404,
                    content_type: None,
                    body: Vec::new(),
                },
            ));
        };
        let Some(channel) = door.sockets.get(&socket).cloned() else {
            return Some(self.answer_door(reply, &esb::Reply::socket_not_found()));
        };
        let one_shot = match transport {
            esb::Transport::Stream => false,
            esb::Transport::OneShot => true,
            esb::Transport::Iframe | esb::Transport::Script => {
                let answer = esb::Reply {
                    status: 501,
                    content_type: Some("text/plain"),
                    body: b"iframe and script transports are not supported\n".to_vec(),
                };
                return Some(self.answer_door(reply, &answer));
            }
        };
        Some(self.door_subscribe(&channel, one_shot, last_event_id, reply, ctx))
    }

    fn door_subscribe(
        &mut self,
        channel: &str,
        one_shot: bool,
        last_event_id: Option<esb::LastEventId>,
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        // Ids are msgbus ids written as 24 hex digits; an id from elsewhere replays nothing.
        let after = match last_event_id {
            Some(esb::LastEventId::ObjectId(bytes)) if bytes[..4] == [0; 4] => {
                Some(u64::from_be_bytes(bytes[4..].try_into().expect("8 bytes")))
            }
            _ => None,
        };
        // The socket's signature (checked by the codec) is what admits it to its channel.
        let topic = match ctx.gate.admit_door_subscribe(channel) {
            Ok(topic) => topic,
            Err(refusal) => {
                let answer = esb::Reply {
                    status: refusal.status,
                    content_type: None,
                    body: refusal.reason.as_bytes().to_vec(),
                };
                return self.answer_door(reply, &answer);
            }
        };
        let mut replay = match after {
            Some(after) => ctx.bus.replay(&topic, after, ctx.now).messages,
            None => Vec::new(),
        };
        if replay.len() > esb::REPLAY_LIMIT {
            replay.drain(..replay.len() - esb::REPLAY_LIMIT);
        }
        let mut head = Head::new(reply.minor_version, Status::OK);
        for (name, value) in esb::SSE_HEADERS {
            head = head.header(name, value);
        }
        self.log_access(200, 0);
        self.outq.push_own(head.finish(reply.minor_version, false));
        if replay.is_empty() {
            if !one_shot {
                self.outq.push_own(esb::PING.to_vec());
            }
        } else {
            for msg in &replay {
                self.outq.push_frame(msg.frame(Wire::Esb, ctx.stats));
                self.last_delivered = msg.id;
            }
            if one_shot {
                self.phase = Phase::Closing;
                return None;
            }
        }
        let subscriber = Subscriber {
            conn: ctx.key,
            wire: Wire::Esb,
            filter: None,
        };
        match ctx.bus.subscribe(&topic, subscriber, ctx.now) {
            Ok(id) => self.subscriptions.push(id),
            Err(_) => {
                self.phase = Phase::Closing;
                return None;
            }
        }
        self.phase = Phase::Streaming(Stream::Esb {
            next_ping: ctx.now + std::time::Duration::from_millis(esb::KEEPALIVE_MS),
            one_shot,
        });
        Some(Next::Wait)
    }

    /// The door's POST body has arrived: carry out what it asks.
    pub(super) fn finish_any_door_post(&mut self, mut publish: Publish, ctx: &mut Ctx) -> Next {
        let post = match *publish.door.take().expect("a door POST") {
            super::DoorPost::Esb(post) => post,
            super::DoorPost::Martd { query } => return self.finish_martd_pub(publish, &query, ctx),
            super::DoorPost::Lhttp => return self.finish_lhttp_publish(publish),
            super::DoorPost::Comet {
                path,
                query,
                content_type,
            } => {
                let body = std::mem::take(&mut publish.req.body);
                let reply = publish.reply;
                let Publisher::Client(who) = publish.who.clone() else {
                    unreachable!("a Simple-Comet POST comes from a client the gate identified")
                };
                let next = self.comet_op(
                    &who,
                    "POST",
                    &path,
                    &query,
                    &content_type,
                    &body,
                    reply,
                    ctx,
                );
                return next.unwrap_or(Next::Wait);
            }
        };
        let body = std::mem::take(&mut publish.req.body);
        let codec_request = esb::Request {
            method: "POST",
            path: post.path.as_bytes(),
            query: post.query.as_bytes(),
            form_body: post.form.then_some(body.as_slice()),
            last_event_id: None,
            x_requested_with: None,
        };
        let reply = publish.reply;
        let Some(door) = ctx.esb.as_deref_mut() else {
            return self
                .answer_door(
                    reply,
                    &esb::Reply {
                        status: 404,
                        content_type: None,
                        body: Vec::new(),
                    },
                )
                .unwrap_or(Next::Wait);
        };
        let operation = match esb::route(&codec_request, &door.users, now_for_codec()) {
            Ok(operation) => operation,
            Err(answer) => return self.answer_door(reply, &answer).unwrap_or(Next::Wait),
        };
        let (channel, data, name, answer) = match operation {
            esb::Operation::Publish {
                key,
                channel,
                data,
                name,
            } => (
                esb::bus_channel(&key, &channel),
                data,
                name,
                esb::Reply::event_published(),
            ),
            esb::Operation::PublishFromSocket { socket, data, name } => {
                let Some(channel) = door.sockets.get(&socket).cloned() else {
                    return self
                        .answer_door(reply, &esb::Reply::socket_not_found())
                        .unwrap_or(Next::Wait);
                };
                let Some(data) = data else {
                    return self
                        .answer_door(reply, &esb::Reply::missing_param("data"))
                        .unwrap_or(Next::Wait);
                };
                (channel, data, name, esb::Reply::socket_event_published())
            }
            esb::Operation::CreateSocket {
                key,
                channel,
                presence_id,
            } => {
                let Some(socket) = door.new_socket(esb::bus_channel(&key, &channel)) else {
                    let answer = esb::Reply {
                        status: 503,
                        content_type: None,
                        body: b"No randomness for a socket id".to_vec(),
                    };
                    return self.answer_door(reply, &answer).unwrap_or(Next::Wait);
                };
                let answer = esb::Reply::socket_created(&socket, &channel, presence_id.as_deref());
                return self.answer_door(reply, &answer).unwrap_or(Next::Wait);
            }
            _ => {
                let answer = esb::Reply {
                    status: 404,
                    content_type: None,
                    body: Vec::new(),
                };
                return self.answer_door(reply, &answer).unwrap_or(Next::Wait);
            }
        };
        publish.req = PublishRequest {
            channel,
            content_type: "text/plain; charset=utf-8".into(),
            event: name.filter(|n| crate::transport::sse::valid_event_name(n)),
            body: data.into_bytes(),
            ..PublishRequest::default()
        };
        publish.door_answer = Some(Box::new(super::DoorAnswer::Esb(answer)));
        Next::Publish(Box::new(publish))
    }

    /// Writes one of the codec's replies: its status, its Content-Type if it set one, its body
    /// (none for HEAD, whose Content-Length still says what GET would have had).
    pub(super) fn answer_door(&mut self, reply: Reply, answer: &esb::Reply) -> Option<Next> {
        let content_type = answer.content_type.map(|value| ("Content-Type", value));
        if !reply.head_only {
            return self.answer_framed(reply, answer.status, content_type, &answer.body);
        }
        let mut head = Head::new(reply.minor_version, Status::from_code(answer.status));
        if let Some((name, value)) = content_type {
            head = head.header(name, value);
        }
        let head = head
            .header("Content-Length", answer.body.len())
            .finish(reply.minor_version, reply.keep_alive);
        self.answer(head, reply.keep_alive);
        None
    }
}
