//! The Simple-Comet door (`--simple-comet`): `/clients.json`, `/channels.json`,
//! `/channels/NAME.json` and `/channels/A|B.json(p)?since=&client_id=`, answered as
//! Simple-Comet-Server answered them (HTTP 200, `return_code`, `error_message`), on msgbus
//! channels of the same names. The codec in `compat::simple_comet` writes every reply.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Conn, Ctx, DoorAnswer, DoorPost, Next, Phase, Publish, Reply, Stream};
use crate::bus::{BusError, PublishRequest, Subscriber};
use crate::compat::simple_comet as sc;
use crate::http::request::Request;
use crate::http::response::{Head, Status};
use crate::server::Published;
use crate::transport::Wire;

/// Channels created and clients registered through the door.
#[derive(Default)]
pub struct CometDoor {
    channels: HashMap<String, CometChannel>,
    clients: HashSet<String>,
}

struct CometChannel {
    use_sessions: bool,
    max_messages: u64,
}

/// A held read: what its answer needs besides the message that wakes it.
pub struct CometPoll {
    pub(super) reply: Reply,
    format: sc::Format,
    since: i64,
}

/// One message as a Simple-Comet read lists it under its channel:
/// `"CHANNEL": [{"id": N, "ts": T, "content": "..."}]`, shared by every held read it wakes.
pub fn encode_message_entry(msg: &crate::bus::Message) -> Vec<u8> {
    let mut out = String::new();
    sc::py_json_str(&mut out, &msg.channel);
    out.push_str(": [");
    let body = String::from_utf8_lossy(&msg.body);
    out.push_str(&format!(
        "{{\"id\": {}, \"ts\": {}, \"content\": ",
        msg.id, msg.published
    ));
    sc::py_json_str(&mut out, &body);
    out.push_str("}]");
    out.into_bytes()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

const STYLE: sc::Style = sc::Style {
    quote_json: false,
    honor_cb: false,
};

pub(super) fn is_door_path(path: &str) -> bool {
    path.starts_with("/channels") || path.starts_with("/clients")
}

impl Conn {
    /// A request on the door's paths. None: not the door's (or the door is closed).
    pub(super) fn comet_request(
        &mut self,
        request: &Request,
        raw_path: &str,
        raw_query: &str,
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Option<Next>> {
        if ctx.comet.is_none() || !is_door_path(raw_path) {
            return None;
        }
        let content_type = request.header("content-type").unwrap_or("").to_string();
        if request.method == crate::http::request::Method::Post {
            let publish = Publish {
                req: PublishRequest::default(),
                reply,
                json_answer: false,
                via_websocket: false,
                door: Some(Box::new(DoorPost::Comet {
                    path: raw_path.to_string(),
                    query: raw_query.to_string(),
                    content_type,
                })),
                door_answer: None,
            };
            return Some(self.read_body(request, publish, ctx));
        }
        let method = request.method.as_str();
        Some(self.comet_op(method, raw_path, raw_query, "", &[], reply, ctx))
    }

    /// Carries out one request once its body (if any) has arrived.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn comet_op(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        content_type: &str,
        body: &[u8],
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        let query_pairs = sc::parse_qs(query.as_bytes());
        let form = if sc::form_applies(method, Some(content_type.as_bytes()), body.len()) {
            sc::parse_qs(body)
        } else {
            Vec::new()
        };
        let parsed = sc::parse(
            &sc::Request {
                method,
                path: path.as_bytes(),
                query: &query_pairs,
                form: &form,
            },
            false,
        );
        let op = match parsed {
            Ok(op) => op,
            Err(sc::Reject::Protocol(format, kind)) => {
                return self.answer_comet(reply, &sc::encode_error(format, &kind, STYLE, None))
            }
            Err(sc::Reject::ProcessingFailed) => {
                return self.answer_comet(reply, &sc::encode_processing_failed())
            }
            Err(sc::Reject::NotImplemented) => {
                return self.answer_comet(reply, &sc::encode_not_implemented(method))
            }
        };
        let door = ctx.comet.as_deref_mut().expect("the door is open");
        let error = |format, kind: sc::ErrorKind| sc::encode_error(format, &kind, STYLE, None);
        let answer = match op {
            sc::Op::RegisterClient { format, client_id } => {
                if door.clients.insert(client_id.clone()) {
                    sc::encode_client_registered(format, &client_id, STYLE, None)
                } else {
                    error(format, sc::ErrorKind::ClientExists)
                }
            }
            sc::Op::CreateChannel {
                format,
                channel_id,
                use_sessions,
                max_messages,
            } => {
                if door.channels.contains_key(&channel_id) {
                    error(format, sc::ErrorKind::ChannelExists)
                } else {
                    let max_messages = max_messages.unwrap_or(sc::DEFAULT_MAX_MESSAGES_PER_CHANNEL);
                    door.channels.insert(
                        channel_id.clone(),
                        CometChannel {
                            use_sessions,
                            max_messages,
                        },
                    );
                    sc::encode_channel_created(format, &channel_id, STYLE, None)
                }
            }
            sc::Op::Delete { format, channel_id } => {
                let removed = channel_id
                    .as_ref()
                    .is_some_and(|id| door.channels.remove(id).is_some());
                sc::encode_deleted(format, channel_id.as_deref(), removed, STYLE, None)
            }
            sc::Op::Status { format } => error(format, sc::ErrorKind::UnknownFormat),
            sc::Op::Publish {
                format,
                channel_id,
                content,
            } => {
                let Some(channel) = door.channels.get(&channel_id) else {
                    return self
                        .answer_comet(reply, &error(format, sc::ErrorKind::NonexistentChannel));
                };
                let Some(content) = content else {
                    return self.answer_comet(reply, &error(format, sc::ErrorKind::MissingContent));
                };
                let size = usize::try_from(channel.max_messages).unwrap_or(usize::MAX);
                return Some(Next::Publish(Publish {
                    req: PublishRequest {
                        channel: channel_id,
                        content_type: "text/plain; charset=utf-8".into(),
                        body: content.into_bytes(),
                        size: Some(size.min(ctx.cfg.max_history)),
                        ..PublishRequest::default()
                    },
                    reply,
                    json_answer: false,
                    via_websocket: false,
                    door: None,
                    door_answer: Some(Box::new(DoorAnswer::Comet(format))),
                }));
            }
            sc::Op::Subscribe {
                format,
                channels,
                since,
                client_id,
            } => {
                return self.comet_subscribe(format, &channels, since, client_id, reply, ctx);
            }
        };
        self.answer_comet(reply, &answer)
    }

    fn comet_subscribe(
        &mut self,
        format: sc::Format,
        names: &[String],
        since: i64,
        client_id: Option<String>,
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        let door = ctx.comet.as_deref_mut().expect("the door is open");
        let error = |kind: sc::ErrorKind| sc::encode_error(format, &kind, STYLE, None);
        let registered = match &client_id {
            Some(id) if !door.clients.contains(id) => {
                return self.answer_comet(reply, &error(sc::ErrorKind::UnregisteredClient))
            }
            Some(_) => true,
            None => false,
        };
        // Session channels are for registered clients only.
        let valid: Vec<&String> = names
            .iter()
            .filter(|name| {
                door.channels
                    .get(*name)
                    .is_some_and(|c| !c.use_sessions || registered)
            })
            .collect();
        if valid.is_empty() {
            return self.answer_comet(reply, &error(sc::ErrorKind::NoValidChannels));
        }
        let last_id = ctx.bus.next_id() - 1;
        let since = sc::clamp_since(since, last_id);
        let after = u64::try_from(since).unwrap_or(0);
        let mut found: Vec<(String, Vec<sc::Message>)> = Vec::new();
        for name in &valid {
            let messages = ctx.bus.replay(name, false, after, ctx.now).messages;
            if !messages.is_empty() {
                let list = messages
                    .iter()
                    .map(|m| sc::Message {
                        id: m.id,
                        ts: m.published,
                        content: String::from_utf8_lossy(&m.body).into_owned(),
                    })
                    .collect();
                found.push(((*name).clone(), list));
            }
        }
        if !found.is_empty() {
            let channels: Vec<(&str, &[sc::Message])> = found
                .iter()
                .map(|(n, m)| (n.as_str(), m.as_slice()))
                .collect();
            let answer = sc::encode_messages(
                format,
                &channels,
                since,
                last_id,
                sc::Delivery::Immediate,
                unix_now(),
                STYLE,
                None,
            );
            return self.answer_comet(reply, &answer);
        }
        let names: Vec<String> = valid.into_iter().cloned().collect();
        for name in &names {
            let subscriber = Subscriber {
                conn: ctx.key,
                wire: Wire::Comet,
                filter: None,
            };
            if let Ok(id) = ctx.bus.subscribe(name, false, subscriber, ctx.now) {
                self.subscriptions.push(id);
            }
        }
        self.phase = Phase::Streaming(Stream::Comet(Box::new(CometPoll {
            reply,
            format,
            since,
        })));
        Some(Next::Wait)
    }

    /// A held read woken by a message: the codec's answer with the shared entry inside.
    pub(super) fn answer_comet_held(&mut self, poll: &CometPoll, entry: Rc<[u8]>, id: u64) {
        // The codec's own answer with no messages gives the exact glue around the entry.
        let empty = sc::encode_messages(
            poll.format,
            &[],
            poll.since,
            id,
            sc::Delivery::Woken,
            unix_now(),
            STYLE,
            None,
        );
        let marker = b"{\"messages\": {";
        let at = empty
            .body
            .windows(marker.len())
            .position(|w| w == marker)
            .map_or(0, |i| i + marker.len());
        let (prefix, suffix) = empty.body.split_at(at);
        let reply = poll.reply;
        let mut head = Head::new(reply.minor_version, Status::OK);
        for (name, value) in &empty.headers {
            head = head.header(name, value);
        }
        let mut out = head
            .header("Content-Length", prefix.len() + entry.len() + suffix.len())
            .finish(reply.minor_version, reply.keep_alive);
        out.extend_from_slice(prefix);
        self.outq.push_own(out);
        self.outq.push_pinned(entry);
        self.outq.push_own(suffix.to_vec());
        self.poll_done = true;
        self.phase = if reply.keep_alive {
            Phase::Head { deadline: None }
        } else {
            Phase::Closing
        };
    }

    pub(super) fn answer_comet_publish(
        &mut self,
        reply: Reply,
        format: sc::Format,
        outcome: Result<Published, BusError>,
    ) {
        let answer = match outcome {
            Ok(done) => sc::encode_published(format, done.id, STYLE, None),
            Err(_) => sc::encode_processing_failed(),
        };
        self.answer_comet(reply, &answer);
    }

    fn answer_comet(&mut self, reply: Reply, answer: &sc::Reply) -> Option<Next> {
        let phrase = match answer.status {
            200 => "OK",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            _ => "Unknown",
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
