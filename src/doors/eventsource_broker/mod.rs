//! The eventsource-broker door (`--esb-users FILE`): `POST /socket`, `POST /event`,
//! `POST /socket/ID` and `GET /eventsource?socket=ID`, as eventsource-broker's clients send
//! them. The codec (`codec.rs`) decides every reply; this module keeps the
//! sockets and connects them to the bus. Each api key has channels of its own, as in the
//! original: the bus channel behind key K's `chat` is `names.bus_channel(K, "chat")`
//! (`esb::ChannelNames`), a name no other key can use; by default no native client can
//! either, and with `--esb-native-channels` it is the public `esb/K/chat`, which native
//! clients read and write with a token whose grant covers it.
//!
//! With `--amqp`, the door's events also travel on the original's AMQP exchange, both ways
//! (`crate::amqp`): the reactor sends each publish on these channels there, and delivers what
//! other brokers published through the gate to the same channels.

pub mod client;
pub mod codec;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};

use self::codec as esb;
use crate::bus::Subscriber;
use crate::conn::{
    Conn, Ctx, Door, DoorRequest, DoorState, Hold, HoldNext, Next, Publish, PublishOutcome,
    PublishRequest, Publisher, Reply,
};
use crate::http::response::{Head, Status};
use crate::message::Message;
use crate::outq::OutQueue;
use crate::stats::Transport;
use crate::transport::{Wire, Wires};

/// Sockets kept at most; the oldest is forgotten first.
const MAX_SOCKETS: usize = 100_000;

/// The door's state: who may publish, and the sockets handed out.
pub struct EsbDoor {
    /// Its wire: an event as eventsource-broker's clients read it.
    wire: Wire,
    users: HashMap<String, String>,
    /// How a key's channel is named on the bus (`--esb-native-channels`); fixed until restart.
    names: esb::ChannelNames,
    /// socket id -> the bus channel of its key and channel (`names.bus_channel`)
    sockets: HashMap<String, String>,
    order: VecDeque<String>,
    /// Socket ids are capabilities (whoever has one reads and publishes on its channel), so
    /// they come from the operating system's CSPRNG.
    rng: SystemRandom,
}

impl EsbDoor {
    /// Reads `key:secret` lines (`#` starts a comment), checked by `read_users` when they
    /// come from a file.
    pub fn open(text: &str, cfg: &crate::config::Config, wires: &mut Wires) -> EsbDoor {
        let users = parse_users(text);
        EsbDoor {
            wire: wires
                .register("eventsource_broker", encode_event)
                .expect("a frame slot for eventsource-broker"),
            users,
            names: esb::ChannelNames::new(cfg.esb_native_channels),
            sockets: HashMap::new(),
            order: VecDeque::new(),
            rng: SystemRandom::new(),
        }
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

/// `key:secret` lines (`#` starts a comment).
fn parse_users(text: &str) -> HashMap<String, String> {
    user_lines(text)
        .map(|(_, key, secret)| (key.to_string(), secret.to_string()))
        .collect()
}

/// Each user's line number (from 1), key and secret.
fn user_lines(text: &str) -> impl Iterator<Item = (usize, &str, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|(n, line)| line.split_once(':').map(|(k, s)| (n, k.trim(), s.trim())))
}

/// The users file's text, refused when one of its keys would make two keys' channels one bus
/// channel under the naming `cfg` asks for: with `--esb-native-channels`, a key holding `/`
/// (`a/b`'s channel `c` and `a`'s channel `b/c` would both be `esb/a/b/c`). The error names
/// the file and the line. Read at start and on SIGHUP.
pub fn read_users(path: &Path, cfg: &crate::config::Config) -> io::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let names = esb::ChannelNames::new(cfg.esb_native_channels);
    check_users(&text, names).map_err(|why| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}:{why}", path.display()),
        )
    })?;
    Ok(text)
}

/// The first key `names` cannot keep apart from the others, as `LINE: why`.
fn check_users(text: &str, names: esb::ChannelNames) -> Result<(), String> {
    match user_lines(text).find(|(_, key, _)| !names.key_fits(key)) {
        None => Ok(()),
        Some((line, key, _)) => Err(format!(
            "{line}: api key {key:?} holds '/', which --esb-native-channels reads as the end \
             of the key (esb/KEY/CHANNEL): rename the key or drop the option"
        )),
    }
}

/// A message as eventsource-broker's clients read it (see `codec::encode_message_event`).
fn encode_event(msg: &Message) -> Vec<u8> {
    esb::encode_message_event(msg.event.as_deref(), msg.id, &msg.body)
}

/// The paths this door answers.
fn is_door_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(first, "event" | "socket" | "eventsource")
}

/// What a door POST carries until its body has arrived.
#[derive(Debug)]
struct EsbPost {
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

impl Door for EsbDoor {
    fn name(&self) -> &'static str {
        "eventsource-broker"
    }

    /// A request on one of the door's paths. None: not the door's.
    fn on_request(
        &mut self,
        session: &mut Conn,
        req: &DoorRequest,
        ctx: &mut Ctx,
    ) -> Option<Option<Next>> {
        if let Some(answer) = client::serve(session, req, ctx) {
            return Some(answer);
        }
        let (request, raw_path, raw_query, reply) =
            (req.request, req.raw_path, req.raw_query, req.reply);
        if !is_door_path(raw_path) {
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
            let post: DoorState = Box::new(EsbPost {
                path: raw_path.to_string(),
                query: raw_query.to_string(),
                form,
            });
            return Some(session.read_door_body(req, Publisher::Door(None), post, ctx));
        }
        let codec_request = esb::Request {
            method: request.method.as_str(),
            path: raw_path.as_bytes(),
            query: raw_query.as_bytes(),
            form_body: None,
            last_event_id: request.header("last-event-id").map(str::as_bytes),
            x_requested_with: request.header("x-requested-with").map(str::as_bytes),
        };
        let door = &mut *self;
        let operation = match esb::route(&codec_request, &door.users, now_for_codec()) {
            Ok(operation) => operation,
            Err(answer) => return Some(answer_door(session, reply, &answer)),
        };
        let esb::Operation::Subscribe {
            socket,
            transport,
            last_event_id,
        } = operation
        else {
            return Some(answer_door(
                session,
                reply,
                &esb::Reply {
                    status: 404,
                    content_type: None,
                    body: Vec::new(),
                },
            ));
        };
        let Some(channel) = door.sockets.get(&socket).cloned() else {
            return Some(answer_door(session, reply, &esb::Reply::socket_not_found()));
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
                return Some(answer_door(session, reply, &answer));
            }
        };
        Some(self.subscribe(session, &channel, one_shot, last_event_id, reply, ctx))
    }

    /// The door's POST body has arrived: carry out what it asks.
    fn on_body(
        &mut self,
        session: &mut Conn,
        state: DoorState,
        mut publish: Publish,
        _ctx: &mut Ctx,
    ) -> Next {
        let Ok(post) = state.downcast::<EsbPost>() else {
            return Next::Wait;
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
        let door = &mut *self;
        let operation = match esb::route(&codec_request, &door.users, now_for_codec()) {
            Ok(operation) => operation,
            Err(answer) => return answer_door(session, reply, &answer).unwrap_or(Next::Wait),
        };
        let (channel, data, name, answer) = match operation {
            esb::Operation::Publish {
                key,
                channel,
                data,
                name,
            } => (
                door.names.bus_channel(&key, &channel),
                data,
                name,
                esb::Reply::event_published(),
            ),
            esb::Operation::PublishFromSocket { socket, data, name } => {
                let Some(channel) = door.sockets.get(&socket).cloned() else {
                    return answer_door(session, reply, &esb::Reply::socket_not_found())
                        .unwrap_or(Next::Wait);
                };
                let Some(data) = data else {
                    return answer_door(session, reply, &esb::Reply::missing_param("data"))
                        .unwrap_or(Next::Wait);
                };
                (channel, data, name, esb::Reply::socket_event_published())
            }
            esb::Operation::CreateSocket {
                key,
                channel,
                presence_id,
            } => {
                let channel_name = door.names.bus_channel(&key, &channel);
                let Some(socket) = door.new_socket(channel_name) else {
                    let answer = esb::Reply {
                        status: 503,
                        content_type: None,
                        body: b"No randomness for a socket id".to_vec(),
                    };
                    return answer_door(session, reply, &answer).unwrap_or(Next::Wait);
                };
                let answer = esb::Reply::socket_created(&socket, &channel, presence_id.as_deref());
                return answer_door(session, reply, &answer).unwrap_or(Next::Wait);
            }
            _ => {
                let answer = esb::Reply {
                    status: 404,
                    content_type: None,
                    body: Vec::new(),
                };
                return answer_door(session, reply, &answer).unwrap_or(Next::Wait);
            }
        };
        publish.req = PublishRequest {
            channel,
            content_type: "text/plain; charset=utf-8".into(),
            event: name.filter(|n| crate::transport::sse::valid_event_name(n)),
            body: data.into_bytes(),
            ..PublishRequest::default()
        };
        publish.door_answer = Some((_ctx.door_id, Box::new(answer)));
        Next::Publish(Box::new(publish))
    }

    /// SIGHUP: the users file is read again; nothing changes if it cannot be, or if it holds
    /// a key the channel names cannot keep apart (`read_users`).
    fn prepare_reload(&self, cfg: &crate::config::Config) -> Result<DoorState, String> {
        let Some(path) = &cfg.esb_users else {
            return Ok(Box::new(None::<HashMap<String, String>>));
        };
        let text = read_users(path, cfg).map_err(|e| e.to_string())?;
        Ok(Box::new(Some(parse_users(&text))))
    }

    /// The users of the new reading take over; sockets already made stay.
    fn apply_reload(&mut self, _cfg: &crate::config::Config, prepared: DoorState) {
        if let Ok(users) = prepared.downcast::<Option<HashMap<String, String>>>() {
            if let Some(users) = *users {
                self.users = users;
            }
        }
    }

    fn answer_publish(
        &mut self,
        session: &mut Conn,
        state: DoorState,
        reply: Reply,
        outcome: PublishOutcome,
    ) {
        let Ok(answer) = state.downcast::<esb::Reply>() else {
            return;
        };
        let answer = match outcome {
            Ok(_) => *answer,
            Err(e) => esb::Reply {
                status: e.status().0,
                content_type: None,
                body: e.to_string().into_bytes(),
            },
        };
        answer_door(session, reply, &answer);
    }
}

impl EsbDoor {
    fn subscribe(
        &mut self,
        session: &mut Conn,
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
                return answer_door(session, reply, &answer);
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
        session.log_access(200, 0);
        session
            .outq
            .push_own(head.finish(reply.minor_version, false));
        if replay.is_empty() {
            if !one_shot {
                session.outq.push_own(esb::PING.to_vec());
            }
        } else {
            for msg in &replay {
                let frame = ctx.wires.frame(msg, self.wire, &mut ctx.stats.encodings);
                session.outq.push_frame(frame);
                session.set_last_delivered(msg.id);
            }
            if one_shot {
                session.close_after_output();
                return None;
            }
        }
        let subscriber = Subscriber {
            conn: ctx.key,
            wire: self.wire,
            filter: None,
        };
        match ctx.bus.subscribe(&topic, subscriber, ctx.now) {
            Ok(id) => session.add_subscription(id),
            Err(_) => {
                session.close_after_output();
                return None;
            }
        }
        session.hold(Box::new(EventStream {
            next_ping: ctx.now + Duration::from_millis(esb::KEEPALIVE_MS),
            one_shot,
        }));
        Some(Next::Wait)
    }
}

/// A socket's event stream (or, for an XMLHttpRequest, its one-event answer).
struct EventStream {
    next_ping: Instant,
    one_shot: bool,
}

impl Hold for EventStream {
    fn transport(&self) -> Transport {
        Transport::Sse
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.next_ping)
    }

    fn on_message(&mut self, frame: Rc<[u8]>, _id: u64, out: &mut OutQueue) -> HoldNext {
        out.push_frame(frame);
        if self.one_shot {
            // eventsource-broker's XMLHttpRequest answer: one event, then the end.
            return HoldNext::Close;
        }
        HoldNext::Stay
    }

    /// The original's `event:ping` every 9 s.
    fn on_timeout(&mut self, now: Instant, out: &mut OutQueue) -> HoldNext {
        self.next_ping = now + Duration::from_millis(esb::KEEPALIVE_MS);
        out.push_own(esb::PING.to_vec());
        HoldNext::Stay
    }
}

/// Writes one of the codec's replies: its status, its Content-Type if it set one, its body
/// (none for HEAD, whose Content-Length still says what GET would have had).
fn answer_door(session: &mut Conn, reply: Reply, answer: &esb::Reply) -> Option<Next> {
    let content_type = answer.content_type.map(|value| ("Content-Type", value));
    session.answer_framed(reply, answer.status, content_type, &answer.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_files_the_channel_names_cannot_keep_apart() {
        use esb::ChannelNames::{Native, Private};
        let cases: &[(&str, esb::ChannelNames, Result<(), &str>)] = &[
            ("k1:s\nk2:t\n", Native, Ok(())),
            ("k1:s\n# a/b:c\n\n a/b : t\n", Private, Ok(())),
            (
                "k1:s\n# a/b:c\n\n a/b : t\n",
                Native,
                Err("4: api key \"a/b\" holds '/'"),
            ),
            (
                "no separator/here\nk/1:s\n",
                Native,
                Err("2: api key \"k/1\""),
            ),
        ];
        for &(text, names, want) in cases {
            let got = check_users(text, names);
            match want {
                Ok(()) => assert_eq!(got, Ok(()), "{text:?}"),
                Err(start) => assert!(got.unwrap_err().starts_with(start), "{text:?}"),
            }
        }
        let users = parse_users("k1:s\n a/b : t\n#x:y\n");
        assert_eq!(users.get("a/b").map(String::as_str), Some("t"));
        assert_eq!(users.len(), 2);
    }
}
