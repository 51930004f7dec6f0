//! The Simple-Comet door (`--simple-comet`): `/clients.json`, `/channels.json`,
//! `/channels/NAME.json` and `/channels/A|B.json(p)?since=&client_id=`, answered as
//! Simple-Comet-Server answered them (HTTP 200, `return_code`, `error_message`), on msgbus
//! channels of the same names. The codec (`codec.rs`) writes every reply; the protocol as the
//! original had it: `PROTOCOL.md`.

pub mod codec;

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use self::codec as sc;
use crate::bus::history::DoorRecord;
use crate::bus::Bus;
use crate::config::CometOptions;
use crate::conn::{
    Conn, Ctx, Door, DoorId, DoorRequest, DoorState, Hold, HoldNext, Next, Publish, PublishOutcome,
    PublishRequest, Publisher, Refused, Reply,
};
use crate::gate::Identity;
use crate::http::response::{Head, Status};
use crate::message::Message;
use crate::outq::OutQueue;
use crate::stats::Transport;
use crate::transport::{Wire, Wires};

/// Its name, in the logs and on its records in the durable log.
const NAME: &str = "simple-comet";

/// Channels created and clients registered through the door. Channels are registrations the
/// durable log keeps (`--data-dir`: `poll_records`, `restore`); clients are not: a client is a
/// session of `--session-timeout` (60 s) that a restart outlasts anyway, and its client asks
/// again (`-3 Unregistered client_id`, then `POST /clients.json`).
pub struct CometDoor {
    /// Its wire: a read's entry for one message, under its channel's name.
    wire: Wire,
    options: CometOptions,
    style: sc::Style,
    channels: HashMap<String, CometChannel>,
    clients: HashMap<String, CometClient>,
    /// Creation order, so /status.json lists channels and clients as the original did.
    next_seq: u64,
    /// Reads held open now, for /status.json.
    held: usize,
    /// Channels registered, changed or removed since the reactor last took them.
    changed: Vec<String>,
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
    /// Opens the door, registering its wire format.
    pub fn open(options: CometOptions, wires: &mut Wires) -> CometDoor {
        let wire = wires
            .register("simple_comet", encode_message_entry)
            .expect("a frame slot for Simple-Comet");
        // `?cb=` is honoured: the original meant to, and only a str/bytes slip stopped it.
        let style = sc::Style {
            quote_json: options.quote_json,
            honor_cb: true,
        };
        CometDoor {
            wire,
            options,
            style,
            channels: HashMap::new(),
            clients: HashMap::new(),
            next_seq: 0,
            held: 0,
            changed: Vec::new(),
        }
    }

    /// Channel `name` was registered or removed: the log is told at the end of the turn.
    fn note_changed(&mut self, name: &str) {
        if !self.changed.iter().any(|n| n == name) {
            self.changed.push(name.to_string());
        }
    }

    /// Forgets clients whose session ran out and session channels nobody has read for the
    /// inactive-channel timeout. The reactor calls it about once a second; reads check their
    /// client themselves, so nothing depends on when it runs.
    fn forget_expired(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .clients
            .iter()
            .filter(|(_, client)| client.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.expire_client(&id, now);
        }
        let unclaimed: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, channel)| channel.is_unclaimed(now))
            .map(|(name, _)| name.clone())
            .collect();
        for name in unclaimed {
            self.channels.remove(&name);
            self.note_changed(&name);
        }
    }

    /// Removes channel `name` now if nobody has claimed it in time.
    fn sweep_channel(&mut self, name: &str, now: Instant) {
        if self.channels.get(name).is_some_and(|c| c.is_unclaimed(now)) {
            self.channels.remove(name);
            self.note_changed(name);
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
struct CometPoll {
    reply: Reply,
    format: sc::Format,
    since: i64,
    style: sc::Style,
    /// `?cb=`, for JSON-P.
    callback: Option<String>,
    /// The channels it waits on, listed empty if the timeout answers it.
    channels: Vec<String>,
    deadline: Instant,
    /// The door, which counts its held reads.
    door: DoorId,
}

/// One message as a Simple-Comet read lists it under its channel:
/// `"CHANNEL": [{"id": N, "ts": T, "content": "..."}]`, shared by every held read it wakes.
fn encode_message_entry(msg: &Message) -> Vec<u8> {
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn is_door_path(path: &str, enable_status: bool) -> bool {
    path.starts_with("/channels")
        || path.starts_with("/clients")
        || (enable_status && path.starts_with("/status"))
}

/// A path the original answered with `-1 "Missing '/channels' prefix"` and msgbus has no other
/// meaning for: it names a door format (`.json` / `.jsonp`, what a Simple-Comet client asks
/// for, say with a wrong base URL), it is not under msgbus's own names (`/msgbus...`), the
/// native router has nothing there (`/status.json` is its) and there is no document root (with
/// one, every other path is the static server's: the session does no I/O, so it cannot ask
/// whether a file is there). Pages and assets (`/`, `/favicon.ico`) stay the static server's:
/// the original answered them with the same JSON, which no browser wants. The doors before this
/// one have had their turn.
fn is_stray_door_path(raw_path: &str, docroot: Option<&std::path::Path>) -> bool {
    if !(raw_path.ends_with(".json") || raw_path.ends_with(".jsonp")) {
        return false;
    }
    let Some(path) = crate::http::query::percent_decode(raw_path.as_bytes(), false)
        .and_then(|p| String::from_utf8(p).ok())
    else {
        return false;
    };
    if path.starts_with("/msgbus")
        || !matches!(
            crate::http::route::route(&path, usize::MAX),
            Ok(crate::http::route::Resource::Static)
        )
    {
        return false;
    }
    docroot.is_none()
}

impl CometDoor {
    /// Carries out one request once its body (if any) has arrived.
    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        session: &mut Conn,
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
        let door = &mut *self;
        let style = door.style;
        let op = match sc::parse(&request, ctx.cfg.comet.enable_status) {
            Ok(op) => op,
            Err(sc::Reject::Protocol(format, kind)) => {
                return send(session, reply, &sc::encode_error(format, &kind, style, cb))
            }
            Err(sc::Reject::ProcessingFailed) => {
                return send(session, reply, &sc::encode_processing_failed())
            }
            Err(sc::Reject::NotImplemented) => {
                return send(session, reply, &sc::encode_not_implemented(method))
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
                    session.stat_events.push(crate::stats::StatEvent::Limited(
                        crate::stats::Limit::Channels,
                    ));
                    sc::encode_processing_failed()
                } else if let Err(refused) = forget {
                    return refuse(session, reply, &refused);
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
                    door.note_changed(&channel_id);
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
                        return refuse(session, reply, &refused);
                    }
                }
                let removed = channel_id
                    .as_ref()
                    .is_some_and(|id| door.channels.remove(id).is_some());
                if let (true, Some(id)) = (removed, &channel_id) {
                    door.note_changed(id);
                }
                // Held reads stay held, as in the original, until --http-timeout answers them.
                sc::encode_deleted(format, channel_id.as_deref(), removed, style, cb)
            }
            sc::Op::Status { format } => {
                door.forget_expired(now);
                door.status(format, cb)
            }
            sc::Op::Publish {
                format,
                channel_id,
                content,
            } => {
                let Some(channel) = door.channels.get(&channel_id) else {
                    return send(
                        session,
                        reply,
                        &error(format, sc::ErrorKind::NonexistentChannel),
                    );
                };
                let Some(content) = content else {
                    let answer = error(format, sc::ErrorKind::MissingContent);
                    return send(session, reply, &answer);
                };
                let size = usize::try_from(channel.max_messages).unwrap_or(usize::MAX);
                let state: DoorState = Box::new((format, style, callback));
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
                    door_answer: Some((ctx.door_id, state)),
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
                return door.subscribe(session, who, read, &channels, reply, ctx);
            }
        };
        send(session, reply, &answer)
    }

    fn subscribe(
        &mut self,
        session: &mut Conn,
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
        let held = session.subscription_count();
        let asked = asked.iter().map(|name| (*name, false));
        let admitted = match ctx.gate.admit_subscribe(who, asked, held) {
            Ok(topics) => topics,
            Err(refusal) => return refuse(session, reply, &Refused::Gate(refusal)),
        };
        let now = ctx.now;
        let door = &mut *self;
        let error = |kind: sc::ErrorKind| {
            sc::encode_error(read.format, &kind, read.style, read.callback.as_deref())
        };
        let registered = match &read.client_id {
            Some(id) if !door.client_alive(id, now) => {
                return send(session, reply, &error(sc::ErrorKind::UnregisteredClient))
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
            return send(session, reply, &error(sc::ErrorKind::NoValidChannels));
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
            return send(session, reply, &answer);
        }
        session.subscribe_door(&topics, door.wire, ctx);
        door.held += 1;
        session.hold(Box::new(CometPoll {
            reply,
            format: read.format,
            since,
            style: read.style,
            callback: read.callback,
            channels: valid,
            deadline: now + door.options.http_timeout,
            door: ctx.door_id,
        }));
        Some(Next::Wait)
    }
}

impl Door for CometDoor {
    fn name(&self) -> &'static str {
        NAME
    }

    /// A request on the door's paths. None: not the door's.
    fn on_request(
        &mut self,
        session: &mut Conn,
        req: &DoorRequest,
        ctx: &mut Ctx,
    ) -> Option<Option<Next>> {
        let (request, reply) = (req.request, req.reply);
        if !is_door_path(req.raw_path, self.options.enable_status)
            && !is_stray_door_path(req.raw_path, ctx.cfg.docroot.as_deref())
        {
            return None;
        }
        let who = match session.identify_door_request(req, ctx) {
            Ok(who) => who,
            Err(refused) => return Some(refused),
        };
        let query = crate::http::query::Query::parse(req.raw_query).unwrap_or_default();
        // The door's status lists clients and channels: it answers only whom /status.json does.
        if req.raw_path.starts_with("/status") && !session.may_read_status(request, &query, ctx.cfg)
        {
            let why = "not allowed to read the status";
            return Some(session.refuse(request, reply, Status::FORBIDDEN, why, &[]));
        }
        if request.method == crate::http::request::Method::Post {
            let post = Post {
                path: req.raw_path.to_string(),
                query: req.raw_query.to_string(),
                content_type: request.header("content-type").unwrap_or("").to_string(),
                who: who.clone(),
            };
            return Some(session.read_door_body(req, Publisher::Client(who), Box::new(post), ctx));
        }
        let method = request.method.as_str();
        let (path, query) = (req.raw_path, req.raw_query);
        Some(self.op(session, &who, method, path, query, "", &[], reply, ctx))
    }

    /// A POST's body has arrived: its form may hold the parameters.
    fn on_body(
        &mut self,
        session: &mut Conn,
        state: DoorState,
        mut publish: Publish,
        ctx: &mut Ctx,
    ) -> Next {
        let Ok(post) = state.downcast::<Post>() else {
            return Next::Wait;
        };
        let body = std::mem::take(&mut publish.req.body);
        let (path, query, content_type) = (&post.path, &post.query, &post.content_type);
        let reply = publish.reply;
        let next = self.op(
            session,
            &post.who,
            "POST",
            path,
            query,
            content_type,
            &body,
            reply,
            ctx,
        );
        next.unwrap_or(Next::Wait)
    }

    fn answer_publish(
        &mut self,
        session: &mut Conn,
        state: DoorState,
        reply: Reply,
        outcome: PublishOutcome,
    ) {
        let Ok(how) = state.downcast::<(sc::Format, sc::Style, Option<String>)>() else {
            return;
        };
        let (format, style, callback) = *how;
        let answer_body = match outcome {
            Ok(done) => sc::encode_published(format, done.id, style, callback.as_deref()),
            Err(_) => sc::encode_processing_failed(),
        };
        send(session, reply, &answer_body);
    }

    fn on_hold_ended(&mut self) {
        self.held = self.held.saturating_sub(1);
    }

    fn sweep(&mut self, now: Instant, _bus: &Bus) {
        self.forget_expired(now);
    }

    /// Each channel registered, changed or removed since the last call: its name as the key,
    /// its `Registration` as the value (None once removed).
    fn poll_records(&mut self, out: &mut Vec<DoorRecord>) {
        for name in self.changed.drain(..) {
            let value = self.channels.get(&name).map(|c| {
                let registration = sc::Registration {
                    use_sessions: c.use_sessions,
                    max_messages: c.max_messages,
                };
                registration.encode()
            });
            out.push(DoorRecord {
                door: NAME.to_string(),
                key: name.into_bytes(),
                value,
            });
        }
    }

    /// The channels registered before a restart, in the order they were, without members: a
    /// session channel is removed after `--inactive-channel-timeout` unless a client reads it.
    fn restore(&mut self, records: Vec<DoorRecord>, now: Instant) {
        for record in records {
            let registration = record.value.as_deref().and_then(sc::Registration::decode);
            let (Ok(name), Some(registration)) = (String::from_utf8(record.key), registration)
            else {
                log::warn!("{NAME}: a channel registration in the log is unreadable: skipped");
                continue;
            };
            let use_sessions = registration.use_sessions;
            let channel = CometChannel {
                seq: self.seq(),
                use_sessions,
                max_messages: registration.max_messages,
                members: HashSet::new(),
                unclaimed_until: use_sessions.then(|| now + self.options.inactive_channel_timeout),
            };
            self.channels.insert(name, channel);
        }
    }

    /// New settings (SIGHUP): they apply to the next request and the next sweep.
    fn apply_reload(&mut self, cfg: &crate::config::Config, _prepared: DoorState) {
        self.style.quote_json = cfg.comet.quote_json;
        self.options = cfg.comet.clone();
    }
}

/// A POST whose body is still to come.
struct Post {
    path: String,
    query: String,
    content_type: String,
    who: Identity,
}

impl CometPoll {
    /// The answer once nothing came in time (or the server stops): every channel it waited
    /// on, empty, and the cursor it came with. (The original never answered; its own client
    /// gave up after 30 s and asked again.)
    fn answer_empty(&self, keep_alive: bool, out: &mut OutQueue) -> HoldNext {
        let channels: Vec<(&str, &[sc::Message])> = self
            .channels
            .iter()
            .map(|n| (n.as_str(), &[][..]))
            .collect();
        let cursor = u64::try_from(self.since).unwrap_or(0);
        let empty = self.encode(&channels, cursor, sc::Delivery::Immediate);
        let reply = Reply {
            keep_alive,
            ..self.reply
        };
        out.push_own(framed(reply, &empty));
        HoldNext::Answered { keep_alive }
    }
}

impl Hold for CometPoll {
    fn transport(&self) -> Transport {
        Transport::LongPoll
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.deadline)
    }

    /// Woken by a message: the codec's answer with the shared entry inside.
    fn on_message(&mut self, entry: Rc<[u8]>, id: u64, out: &mut OutQueue) -> HoldNext {
        // The codec's own answer with no messages gives the exact glue around the entry.
        let empty = self.encode(&[], id, sc::Delivery::Woken);
        let reply = self.reply;
        let marker = b"{\"messages\": {";
        let Some(at) = empty
            .body
            .windows(marker.len())
            .position(|w| w == marker)
            .map(|i| i + marker.len())
        else {
            // No JSON to put it in: the callback name was refused, and that is the answer.
            out.push_own(framed(reply, &empty));
            return HoldNext::Answered {
                keep_alive: reply.keep_alive,
            };
        };
        let (prefix, suffix) = empty.body.split_at(at);
        let mut head = Head::new(reply.minor_version, Status::OK);
        for (name, value) in &empty.headers {
            head = head.header(name, value);
        }
        let mut first = head
            .header("Content-Length", prefix.len() + entry.len() + suffix.len())
            .finish(reply.minor_version, reply.keep_alive);
        if !reply.head_only {
            first.extend_from_slice(prefix);
            out.push_own(first);
            out.push_pinned(entry);
            out.push_own(suffix.to_vec());
        } else {
            out.push_own(first);
        }
        HoldNext::Answered {
            keep_alive: reply.keep_alive,
        }
    }

    fn on_timeout(&mut self, _now: Instant, out: &mut OutQueue) -> HoldNext {
        self.answer_empty(self.reply.keep_alive, out)
    }

    /// Answered as at `--http-timeout`: its client asks again, elsewhere or later.
    fn on_shutdown(&mut self, out: &mut OutQueue) -> HoldNext {
        self.answer_empty(false, out)
    }

    fn door(&self) -> Option<DoorId> {
        Some(self.door)
    }
}

/// One of the codec's replies as HTTP.
fn framed(reply: Reply, answer: &sc::Reply) -> Vec<u8> {
    let headers = answer.headers.iter().map(|(n, v)| (*n, v.as_str()));
    crate::conn::framed(reply, answer.status, headers, &answer.body)
}

fn send(session: &mut Conn, reply: Reply, answer: &sc::Reply) -> Option<Next> {
    let headers = answer.headers.iter().map(|(n, v)| (*n, v.as_str()));
    session.answer_framed(reply, answer.status, headers, &answer.body)
}

/// The gate or the bus refused: the status and reason as plain text (the original had no
/// auth, so its clients have no shape of their own for this).
fn refuse(session: &mut Conn, reply: Reply, refused: &Refused) -> Option<Next> {
    if let Refused::Gate(refusal) = refused {
        session.count_refusal(refusal);
    }
    let body = format!("{refused}\n");
    let headers = [("Content-Type", "text/plain; charset=utf-8")];
    session.answer_framed(reply, refused.status().0, headers, body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration's defaults for this door are Simple-Comet-Server's own.
    #[test]
    fn the_defaults_are_the_originals() {
        let options = CometOptions::default();
        let secs = |d: std::time::Duration| d.as_secs();
        assert_eq!(secs(options.http_timeout), sc::HTTP_TIMEOUT_SECS);
        assert_eq!(secs(options.session_timeout), sc::SESSION_TIMEOUT_SECS);
        let inactive = secs(options.inactive_channel_timeout);
        assert_eq!(inactive, sc::INACTIVE_CHANNEL_TIMEOUT_SECS);
        let max = options.max_messages_per_channel;
        assert_eq!(max, sc::DEFAULT_MAX_MESSAGES_PER_CHANNEL);
    }
}
