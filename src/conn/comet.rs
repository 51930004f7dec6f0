//! The Simple-Comet door (`--simple-comet`): `/clients.json`, `/channels.json`,
//! `/channels/NAME.json` and `/channels/A|B.json(p)?since=&client_id=`, answered as
//! Simple-Comet-Server answered them (HTTP 200, `return_code`, `error_message`), on msgbus
//! channels of the same names. The codec in `compat::simple_comet` writes every reply.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{
    Conn, Ctx, DoorAnswer, DoorPost, Next, Phase, Publish, PublishRequest, Publisher, Refused,
    Reply, Stream,
};
use crate::bus::Subscriber;
use crate::compat::simple_comet as sc;
use crate::config::CometOptions;
use crate::gate::Identity;
use crate::http::request::Request;
use crate::http::response::{Head, Status};
use crate::server::Published;
use crate::transport::Wire;

/// Channels created and clients registered through the door.
pub struct CometDoor {
    options: CometOptions,
    style: sc::Style,
    channels: HashMap<String, CometChannel>,
    clients: HashMap<String, CometClient>,
    /// Creation order, so /status.json lists channels and clients as the original did.
    next_seq: u64,
    /// Reads held open now, for /status.json.
    held: usize,
}

struct CometChannel {
    seq: u64,
    use_sessions: bool,
    max_messages: u64,
    /// Registered clients that have read it.
    members: HashSet<String>,
    /// A session channel without members is removed at this time.
    unclaimed_until: Option<Instant>,
}

impl CometChannel {
    /// A session channel no member has read since its time ran out.
    fn is_unclaimed(&self, now: Instant) -> bool {
        self.unclaimed_until
            .is_some_and(|at| at <= now && self.members.is_empty())
    }
}

struct CometClient {
    seq: u64,
    /// Forgotten at this time unless it reads again.
    expires: Instant,
    /// The channels it has read, to leave when it expires.
    channels: HashSet<String>,
}

impl CometDoor {
    pub fn new(options: CometOptions) -> CometDoor {
        // `?cb=` is honoured: the original meant to, and only a str/bytes slip stopped it.
        let style = sc::Style {
            quote_json: options.quote_json,
            honor_cb: true,
        };
        CometDoor {
            options,
            style,
            channels: HashMap::new(),
            clients: HashMap::new(),
            next_seq: 0,
            held: 0,
        }
    }

    /// New settings (SIGHUP): they apply to the next request and the next sweep.
    pub fn set_options(&mut self, options: CometOptions) {
        self.style.quote_json = options.quote_json;
        self.options = options;
    }

    /// Forgets clients whose session ran out and session channels nobody has read for the
    /// inactive-channel timeout. The reactor calls it about once a second; reads check their
    /// client themselves, so nothing depends on when it runs.
    pub fn sweep(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .clients
            .iter()
            .filter(|(_, client)| client.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.expire_client(&id, now);
        }
        self.channels
            .retain(|_, channel| !channel.is_unclaimed(now));
    }

    /// Removes channel `name` now if nobody has claimed it in time.
    fn sweep_channel(&mut self, name: &str, now: Instant) {
        if self.channels.get(name).is_some_and(|c| c.is_unclaimed(now)) {
            self.channels.remove(name);
        }
    }

    fn expire_client(&mut self, id: &str, now: Instant) {
        let Some(client) = self.clients.remove(id) else {
            return;
        };
        let timeout = self.options.inactive_channel_timeout;
        for name in client.channels {
            if let Some(channel) = self.channels.get_mut(&name) {
                channel.members.remove(id);
                if channel.members.is_empty() && channel.use_sessions {
                    channel.unclaimed_until = Some(now + timeout);
                }
            }
        }
    }

    /// Whether `id` is registered and its session still runs (an expired one is forgotten now).
    fn client_alive(&mut self, id: &str, now: Instant) -> bool {
        match self.clients.get(id) {
            Some(client) if client.expires > now => true,
            Some(_) => {
                self.expire_client(id, now);
                false
            }
            None => false,
        }
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// A held read ended (answered, timed out or its connection closed).
    pub fn release_hold(&mut self) {
        self.held = self.held.saturating_sub(1);
    }

    fn status(&self, format: sc::Format, cb: Option<&str>) -> sc::Reply {
        let mut channels: Vec<(&String, u64)> =
            self.channels.iter().map(|(n, c)| (n, c.seq)).collect();
        channels.sort_by_key(|&(_, seq)| seq);
        let mut clients: Vec<(&String, u64)> =
            self.clients.iter().map(|(n, c)| (n, c.seq)).collect();
        clients.sort_by_key(|&(_, seq)| seq);
        let channels: Vec<&str> = channels.iter().map(|(n, _)| n.as_str()).collect();
        let clients: Vec<&str> = clients.iter().map(|(n, _)| n.as_str()).collect();
        sc::encode_status(
            format,
            &channels,
            &clients,
            self.held as u64,
            self.style,
            cb,
        )
    }
}

/// A held read: what its answer needs besides the message that wakes it.
pub struct CometPoll {
    pub(super) reply: Reply,
    format: sc::Format,
    since: i64,
    style: sc::Style,
    /// `?cb=`, for JSON-P.
    callback: Option<String>,
    /// The channels it waits on, listed empty if the timeout answers it.
    channels: Vec<String>,
    pub(super) deadline: Instant,
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

impl CometPoll {
    /// Its answer with these messages, in its format, style and callback.
    fn encode(
        &self,
        channels: &[(&str, &[sc::Message])],
        last_id: u64,
        delivery: sc::Delivery,
    ) -> sc::Reply {
        sc::encode_messages(
            self.format,
            channels,
            self.since,
            last_id,
            delivery,
            unix_now(),
            self.style,
            self.callback.as_deref(),
        )
    }
}

/// A read as asked: how to answer it and from where.
struct CometRead {
    format: sc::Format,
    style: sc::Style,
    callback: Option<String>,
    since: i64,
    client_id: Option<String>,
}

impl CometRead {
    fn messages(
        &self,
        channels: &[(String, Vec<sc::Message>)],
        since: i64,
        last_id: u64,
        now: u64,
    ) -> sc::Reply {
        let channels: Vec<(&str, &[sc::Message])> = channels
            .iter()
            .map(|(n, m)| (n.as_str(), m.as_slice()))
            .collect();
        sc::encode_messages(
            self.format,
            &channels,
            since,
            last_id,
            sc::Delivery::Immediate,
            now,
            self.style,
            self.callback.as_deref(),
        )
    }
}

/// The answer to a publish the reactor carried out.
pub(super) fn published(
    format: sc::Format,
    style: sc::Style,
    callback: Option<&str>,
    outcome: Result<Published, Refused>,
) -> sc::Reply {
    match outcome {
        Ok(done) => sc::encode_published(format, done.id, style, callback),
        Err(_) => sc::encode_processing_failed(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn is_door_path(path: &str, enable_status: bool) -> bool {
    path.starts_with("/channels")
        || path.starts_with("/clients")
        || (enable_status && path.starts_with("/status"))
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
        if ctx.comet.is_none() || !is_door_path(raw_path, ctx.cfg.comet.enable_status) {
            return None;
        }
        let query = crate::http::query::Query::parse(raw_query).unwrap_or_default();
        let who = match self.identify(request, &query, ctx) {
            Ok(who) => who,
            Err(refusal) => return Some(self.refuse_gate(request, reply, &refusal)),
        };
        // The door's status lists clients and channels: it answers only whom /status.json does.
        if raw_path.starts_with("/status")
            && !super::status_allowed(request, &query, self.peer, ctx.cfg)
        {
            let why = "not allowed to read the status";
            return Some(self.refuse(request, reply, Status::FORBIDDEN, why, &[]));
        }
        let content_type = request.header("content-type").unwrap_or("").to_string();
        if request.method == crate::http::request::Method::Post {
            let publish = Publish {
                req: PublishRequest::default(),
                who: Publisher::Client(who),
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
        Some(self.comet_op(&who, method, raw_path, raw_query, "", &[], reply, ctx))
    }

    /// Carries out one request once its body (if any) has arrived.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn comet_op(
        &mut self,
        who: &Identity,
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
        let request = sc::Request {
            method,
            path: path.as_bytes(),
            query: &query_pairs,
            form: &form,
        };
        let callback = sc::callback(&request);
        let cb = callback.as_deref();
        let door = ctx.comet.as_deref_mut().expect("the door is open");
        let style = door.style;
        let op = match sc::parse(&request, ctx.cfg.comet.enable_status) {
            Ok(op) => op,
            Err(sc::Reject::Protocol(format, kind)) => {
                return self.answer_comet(reply, &sc::encode_error(format, &kind, style, cb))
            }
            Err(sc::Reject::ProcessingFailed) => {
                return self.answer_comet(reply, &sc::encode_processing_failed())
            }
            Err(sc::Reject::NotImplemented) => {
                return self.answer_comet(reply, &sc::encode_not_implemented(method))
            }
        };
        let now = ctx.now;
        let error = |format, kind: sc::ErrorKind| sc::encode_error(format, &kind, style, cb);
        let answer = match op {
            sc::Op::RegisterClient { format, client_id } => {
                if door.client_alive(&client_id, now) {
                    error(format, sc::ErrorKind::ClientExists)
                } else {
                    let client = CometClient {
                        seq: door.seq(),
                        expires: now + door.options.session_timeout,
                        channels: HashSet::new(),
                    };
                    door.clients.insert(client_id.clone(), client);
                    sc::encode_client_registered(format, &client_id, style, cb)
                }
            }
            sc::Op::CreateChannel {
                format,
                channel_id,
                use_sessions,
                max_messages,
            } => {
                door.sweep_channel(&channel_id, now);
                // A channel made anew starts empty, whatever an earlier one of that name left in
                // the bus; emptying it asks what deleting it would (grant and key).
                let forget = ctx.gate.admit_forget(who, &channel_id, None);
                let forget = forget.map_err(Refused::Gate);
                let forget = forget.and_then(|f| ctx.bus.forget(&f).map_err(Refused::Bus));
                if door.channels.contains_key(&channel_id) {
                    error(format, sc::ErrorKind::ChannelExists)
                } else if door.channels.len() >= ctx.cfg.max_channels {
                    self.stat_events.push(crate::stats::StatEvent::Limited(
                        crate::stats::Limit::Channels,
                    ));
                    sc::encode_processing_failed()
                } else if let Err(refused) = forget {
                    return self.refuse_comet(reply, &refused);
                } else {
                    let max_messages =
                        max_messages.unwrap_or(door.options.max_messages_per_channel);
                    let channel = CometChannel {
                        seq: door.seq(),
                        use_sessions,
                        max_messages,
                        members: HashSet::new(),
                        unclaimed_until: use_sessions
                            .then(|| now + door.options.inactive_channel_timeout),
                    };
                    door.channels.insert(channel_id.clone(), channel);
                    sc::encode_channel_created(format, &channel_id, style, cb)
                }
            }
            sc::Op::Delete { format, channel_id } => {
                if let Some(id) = &channel_id {
                    // Its messages go with it: only for whom may change the channel.
                    let forget = ctx.gate.admit_forget(who, id, None);
                    let forget = forget.map_err(Refused::Gate);
                    if let Err(refused) =
                        forget.and_then(|f| ctx.bus.forget(&f).map_err(Refused::Bus))
                    {
                        return self.refuse_comet(reply, &refused);
                    }
                }
                let removed = channel_id
                    .as_ref()
                    .is_some_and(|id| door.channels.remove(id).is_some());
                // Held reads stay held, as in the original, until --http-timeout answers them.
                sc::encode_deleted(format, channel_id.as_deref(), removed, style, cb)
            }
            sc::Op::Status { format } => {
                door.sweep(now);
                door.status(format, cb)
            }
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
                    let answer = error(format, sc::ErrorKind::MissingContent);
                    return self.answer_comet(reply, &answer);
                };
                let size = usize::try_from(channel.max_messages).unwrap_or(usize::MAX);
                return Some(Next::Publish(Box::new(Publish {
                    req: PublishRequest {
                        channel: channel_id,
                        content_type: "text/plain; charset=utf-8".into(),
                        body: content.into_bytes(),
                        attributes: crate::gate::Attributes {
                            size: Some(size.min(ctx.cfg.max_history)),
                            ..Default::default()
                        },
                        ..PublishRequest::default()
                    },
                    who: Publisher::Client(who.clone()),
                    reply,
                    json_answer: false,
                    via_websocket: false,
                    door: None,
                    door_answer: Some(Box::new(DoorAnswer::Comet(format, style, callback))),
                })));
            }
            sc::Op::Subscribe {
                format,
                channels,
                since,
                client_id,
            } => {
                let read = CometRead {
                    format,
                    style,
                    callback,
                    since,
                    client_id,
                };
                return self.comet_subscribe(who, read, &channels, reply, ctx);
            }
        };
        self.answer_comet(reply, &answer)
    }

    fn comet_subscribe(
        &mut self,
        who: &Identity,
        read: CometRead,
        names: &[String],
        reply: Reply,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        // The gate first: a client without the grant learns nothing, not even which exist.
        let mut asked: Vec<&str> = Vec::new();
        for name in names {
            if !asked.contains(&name.as_str()) {
                asked.push(name);
            }
        }
        let held = self.subscriptions.len();
        let asked = asked.iter().map(|name| (*name, false));
        let admitted = match ctx.gate.admit_subscribe(who, asked, held) {
            Ok(topics) => topics,
            Err(refusal) => return self.refuse_comet(reply, &Refused::Gate(refusal)),
        };
        let now = ctx.now;
        let door = ctx.comet.as_deref_mut().expect("the door is open");
        let error = |kind: sc::ErrorKind| {
            sc::encode_error(read.format, &kind, read.style, read.callback.as_deref())
        };
        let registered = match &read.client_id {
            Some(id) if !door.client_alive(id, now) => {
                return self.answer_comet(reply, &error(sc::ErrorKind::UnregisteredClient))
            }
            Some(id) => {
                let client = door.clients.get_mut(id).expect("alive");
                client.expires = now + door.options.session_timeout;
                true
            }
            None => false,
        };
        // Session channels are for registered clients only. Duplicates collapse, as the
        // original's dict keys did.
        let mut valid: Vec<String> = Vec::new();
        for name in names {
            let readable = door
                .channels
                .get(name)
                .is_some_and(|c| !c.use_sessions || registered);
            if readable && !valid.contains(name) {
                valid.push(name.clone());
            }
        }
        if valid.is_empty() {
            return self.answer_comet(reply, &error(sc::ErrorKind::NoValidChannels));
        }
        let topics: Vec<_> = admitted
            .into_iter()
            .filter(|topic| valid.iter().any(|name| name == topic.name()))
            .collect();
        if let Some(id) = &read.client_id {
            // A client is a member of every channel it reads (as in the original).
            for name in &valid {
                let channel = door.channels.get_mut(name).expect("checked");
                channel.members.insert(id.clone());
                channel.unclaimed_until = None;
            }
            let client = door.clients.get_mut(id).expect("alive");
            client.channels.extend(valid.iter().cloned());
        }
        let last_id = ctx.bus.next_id() - 1;
        let since = sc::clamp_since(read.since, last_id);
        let after = u64::try_from(since).unwrap_or(0);
        let mut found: Vec<(String, Vec<sc::Message>)> = Vec::new();
        let mut any = false;
        for (name, topic) in valid.iter().zip(&topics) {
            let mut replay = ctx.bus.replay(topic, after, ctx.now);
            replay.bound(after, ctx.cfg.max_queue);
            let messages = replay.messages;
            any |= !messages.is_empty();
            let list = messages
                .iter()
                .map(|m| sc::Message {
                    id: m.id,
                    ts: m.published,
                    content: String::from_utf8_lossy(&m.body).into_owned(),
                })
                .collect();
            found.push((name.clone(), list));
        }
        if any {
            let answer = read.messages(&found, since, last_id, unix_now());
            return self.answer_comet(reply, &answer);
        }
        for topic in &topics {
            let subscriber = Subscriber {
                conn: ctx.key,
                wire: Wire::Comet,
                filter: None,
            };
            if let Ok(id) = ctx.bus.subscribe(topic, subscriber, ctx.now) {
                self.subscriptions.push(id);
            }
        }
        door.held += 1;
        self.comet_held = true;
        self.phase = Phase::Streaming(Stream::Comet(Box::new(CometPoll {
            reply,
            format: read.format,
            since,
            style: read.style,
            callback: read.callback,
            channels: valid,
            deadline: now + door.options.http_timeout,
        })));
        Some(Next::Wait)
    }

    /// A held read woken by a message: the codec's answer with the shared entry inside.
    pub(super) fn answer_comet_held(&mut self, poll: &CometPoll, entry: Rc<[u8]>, id: u64) {
        // The codec's own answer with no messages gives the exact glue around the entry.
        let empty = poll.encode(&[], id, sc::Delivery::Woken);
        self.poll_done = true;
        let marker = b"{\"messages\": {";
        let Some(at) = empty
            .body
            .windows(marker.len())
            .position(|w| w == marker)
            .map(|i| i + marker.len())
        else {
            // No JSON to put it in: the callback name was refused, and that is the answer.
            self.phase = Phase::Head { deadline: None };
            self.answer_comet(poll.reply, &empty);
            return;
        };
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
        self.phase = if reply.keep_alive {
            Phase::Head { deadline: None }
        } else {
            Phase::Closing
        };
    }

    /// `--http-timeout` passed with nothing to say: every channel it waited on, empty, and the
    /// cursor it came with. (The original never answered; its own client gave up after 30 s and
    /// asked again.)
    pub(super) fn answer_comet_timeout(&mut self, poll: &CometPoll) {
        let channels: Vec<(&str, &[sc::Message])> = poll
            .channels
            .iter()
            .map(|n| (n.as_str(), &[][..]))
            .collect();
        let cursor = u64::try_from(poll.since).unwrap_or(0);
        let answer = poll.encode(&channels, cursor, sc::Delivery::Immediate);
        self.poll_done = true;
        self.answer_comet(poll.reply, &answer);
    }

    /// The gate or the bus refused: the status and reason as plain text (the original had no
    /// auth, so its clients have no shape of their own for this).
    fn refuse_comet(&mut self, reply: Reply, refused: &Refused) -> Option<Next> {
        if let Refused::Gate(refusal) = refused {
            self.count_refusal(refusal);
        }
        let body = format!("{refused}\n");
        let headers = [("Content-Type", "text/plain; charset=utf-8")];
        self.answer_framed(reply, refused.status().0, headers, body.as_bytes())
    }

    pub(super) fn answer_comet(&mut self, reply: Reply, answer: &sc::Reply) -> Option<Next> {
        let headers = answer.headers.iter().map(|(n, v)| (*n, v.as_str()));
        self.answer_framed(reply, answer.status, headers, &answer.body)
    }
}
