//! Starting a subscription: choosing the transport from the request, replaying what a resuming
//! client missed, and queueing the stream's head.
//!
//! `GET /msgbus/NAMES` answers with WebSocket when the request upgrades, SSE when it accepts
//! `text/event-stream` (or asks `?transport=sse`), long-poll with `?transport=longpoll` or a
//! JSONP `?callback=`, and otherwise the original multipart stream.

use std::rc::Rc;

use log::debug;

use super::WsState;
use super::{query_text, Conn, Ctx, Next, Phase, PollState, Reply, Stream};
use crate::bus::{Filter, Message, Replay, Subscriber};
use crate::gate::{self, Identity};
use crate::http::query::Query;
use crate::http::request::Method;
use crate::http::request::Request;
use crate::http::response::{Head, Status};
use crate::http::route::Topic;
use crate::stats::{Limit, StatEvent};
use crate::transport::json::{self, Missed};
use crate::transport::websocket as ws;
use crate::transport::{multipart, sse, Wire};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Multipart,
    Sse,
    LongPoll,
    WebSocket,
}

impl Conn {
    pub(super) fn subscribe(
        &mut self,
        topics: Vec<Topic>,
        request: &Request,
        query: &Query,
        reply: Reply,
        who: Identity,
        ctx: &mut Ctx,
    ) -> Option<Next> {
        let names = topics.iter().map(|t| (t.name.as_str(), t.subtree));
        let topics = match ctx
            .gate
            .admit_subscribe(&who, names, self.subscriptions.len())
        {
            Ok(topics) => topics,
            Err(refusal) => return self.refuse_gate(request, reply, &refusal),
        };
        let mut accept_key = None;
        let transport = if ws::wants_upgrade(request.header("upgrade")) {
            let is_get = request.method == Method::Get;
            match ws::check_handshake(is_get, reply.minor_version, |name| request.header(name)) {
                Ok(ok) => accept_key = Some(ok.accept),
                Err(e) if e.status() == 426 => {
                    let status = Status::UPGRADE_REQUIRED;
                    let version = [("Sec-WebSocket-Version", "13")];
                    return self.refuse(request, reply, status, &e.to_string(), &version);
                }
                Err(e) => {
                    return self.refuse(request, reply, Status::BAD_REQUEST, &e.to_string(), &[])
                }
            }
            if !ctx.cfg.websocket_origin_ok(request.header("origin")) {
                let why = "origin not allowed";
                return self.refuse(request, reply, Status::FORBIDDEN, why, &[]);
            }
            Transport::WebSocket
        } else {
            match choose_transport(request, query) {
                Ok(transport) => transport,
                Err(why) => return self.refuse(request, reply, Status::BAD_REQUEST, why, &[]),
            }
        };
        let several = topics.len() > 1 || topics[0].is_subtree();
        let as_json = match query.get("format") {
            None => several,
            Some("json") => true,
            Some("raw") => false,
            Some(_) => {
                let why = "format must be json or raw";
                return self.refuse(request, reply, Status::BAD_REQUEST, why, &[]);
            }
        };
        let cursor = match resume_cursor(request, query) {
            Ok(cursor) => cursor,
            Err(why) => return self.refuse(request, reply, Status::BAD_REQUEST, why, &[]),
        };
        let callback = query.get("callback");
        if callback.is_some_and(|name| !json::valid_callback(name)) {
            let why = "callback must be a JavaScript identifier";
            return self.refuse(request, reply, Status::BAD_REQUEST, why, &[]);
        }
        let filter = Filter::new(query.get("type"), query.get("sender"));
        let filter = (!filter.is_empty()).then(|| Box::new(filter));
        let wire = match transport {
            Transport::Multipart => Wire::multipart(reply.minor_version >= 1, several),
            Transport::Sse if as_json => Wire::SseJson,
            Transport::Sse => Wire::Sse,
            Transport::LongPoll => Wire::Json,
            Transport::WebSocket if as_json => Wire::WsJson,
            Transport::WebSocket => Wire::Ws,
        };
        // A long-poll without a cursor waits for the next message; streams replay only when
        // asked to.
        let cursor = match (transport, cursor) {
            (Transport::LongPoll, None) => Some(ctx.bus.next_id() - 1),
            (_, cursor) => cursor,
        };
        let replay = match cursor {
            Some(after) => {
                let prefetched = self.prefetched.take();
                // With the stream's older messages in hand, the window is read from where
                // they end.
                let local_after = prefetched.as_ref().map_or(after, |p| after.max(p.upto - 1));
                let mut replay = replay_topics(&topics, local_after, filter.as_deref(), ctx);
                match (prefetched, replay.missed) {
                    (Some(pre), _) => replay = pre.before(after, replay, filter.as_deref()),
                    // In a cluster, what the window no longer holds may still be in the stream.
                    (None, Some(missed))
                        if !ctx.cfg.nats.is_empty()
                            && !reply.head_only
                            && missed.oldest > after + 1
                            && topics.len() == 1
                            && !topics[0].is_subtree() =>
                    {
                        return Some(Next::Fetch(Box::new(FetchAsk {
                            request: request.clone(),
                            channel: topics[0].name().to_string(),
                            after,
                            upto: missed.oldest,
                        })));
                    }
                    _ => {}
                }
                // A replay is bounded like any queue: what does not fit is reported missed.
                replay.bound(after, ctx.cfg.max_queue);
                replay
            }
            None => Replay::default(),
        };
        if replay.missed.is_some() {
            self.stat_events.push(StatEvent::MissedNotice);
        }
        if reply.head_only && !matches!(transport, Transport::LongPoll | Transport::WebSocket) {
            let head = self.stream_head(transport, reply, replay.missed);
            let keep_alive = reply.keep_alive && transport == Transport::Multipart;
            self.answer(head, keep_alive && reply.minor_version >= 1);
            return None;
        }
        let frames: Vec<Rc<[u8]>> = replay
            .messages
            .iter()
            .map(|msg| ctx.wires.frame(msg, wire, &mut ctx.stats.encodings))
            .collect();
        let answer_now = !frames.is_empty() || replay.missed.is_some() || reply.head_only;
        if transport == Transport::LongPoll && answer_now {
            let poll = PollState {
                reply,
                deadline: ctx.now,
                cursor: cursor.unwrap_or(0),
                callback: callback.map(Into::into),
            };
            let last = replay.messages.last().map_or(poll.cursor, |m| m.id);
            ctx.stats.delivered += frames.len() as u64;
            self.answer_poll(&poll, &frames, last, replay.missed);
            self.poll_done = false; // nothing was subscribed
            return None;
        }
        // Exactly as many slots as channels: a vector's first growth holds four, three of
        // them idle for the usual one-channel subscriber.
        self.subscriptions.reserve_exact(topics.len());
        for topic in &topics {
            let subscriber = Subscriber {
                conn: ctx.key,
                wire,
                filter: filter.clone(),
            };
            match ctx.bus.subscribe(topic, subscriber, ctx.now) {
                Ok(id) => self.subscriptions.push(id),
                Err(e) => {
                    for id in self.take_subscriptions() {
                        ctx.bus.unsubscribe(id, ctx.now);
                    }
                    self.stat_events.push(StatEvent::Limited(Limit::Channels));
                    let why = e.to_string();
                    let status = Status::SERVICE_UNAVAILABLE;
                    return self.refuse(request, reply, status, &why, &[]);
                }
            }
        }
        debug!(
            "SUB {} {:?} /msgbus/{} {}",
            self.peer,
            transport,
            topics
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(","),
            query_text(query)
        );
        match (transport, &accept_key) {
            (Transport::WebSocket, Some(key)) => {
                self.log_access(101, 0);
                let mut response = ws::handshake_response(key, None);
                if let Some(missed) = replay.missed {
                    insert_missed_header(&mut response, missed);
                }
                self.outq.push_own(response);
                if let Some(missed) = replay.missed {
                    let notice = format!("{{\"missed\":{}}}", json::encode_missed(missed));
                    self.outq
                        .push_own(ws::encode_frame(ws::Opcode::Text, notice.as_bytes()));
                }
            }
            (Transport::LongPoll, _) => {}
            _ => {
                self.log_access(200, 0);
                let head = self.stream_head(transport, reply, replay.missed);
                self.outq.push_own(head);
            }
        }
        self.phase = Phase::Streaming(match transport {
            Transport::Multipart => Stream::Multipart {
                chunked: reply.minor_version >= 1,
            },
            Transport::Sse => Stream::Sse {
                next_ping: ctx.now + ctx.cfg.ping_interval,
            },
            Transport::LongPoll => Stream::LongPoll(Box::new(PollState {
                reply,
                deadline: ctx.now + ctx.cfg.poll_timeout,
                cursor: cursor.unwrap_or(0),
                callback: callback.map(Into::into),
            })),
            Transport::WebSocket => Stream::WebSocket(Box::new(WsState {
                decoder: None,
                next_ping: ctx.now + ctx.cfg.ping_interval,
                publish_to: match topics.as_slice() {
                    [only] if !only.is_subtree() => Some(only.name().to_string()),
                    _ => None,
                },
                key: query.get("key").map(Into::into),
                who,
                door: None,
            })),
        });
        // Live messages at or before the cursor are not sent again: in a cluster a node may
        // still be behind the node that handed the cursor out.
        self.last_delivered = self.last_delivered.max(cursor.unwrap_or(0));
        for (frame, msg) in frames.into_iter().zip(&replay.messages) {
            self.outq.push_frame(frame);
            self.last_delivered = msg.id;
            ctx.stats.delivered += 1;
        }
        Some(Next::Wait)
    }

    /// Tells a live subscriber of the stream that messages after its last one may be gone
    /// (the cluster's stream dropped `missed.after + 1 .. missed.oldest` before this node read
    /// them), in the form a resuming client is told: an SSE event, a WebSocket text message,
    /// a `Msgbus-Missed` header on the next multipart part, a long-poll's `missed`. A door's
    /// stream, and a subscriber whose cursor is past the gap, are told nothing.
    pub fn notify_missed(&mut self, missed: Missed) {
        if self.last_delivered > missed.after {
            return;
        }
        let Phase::Streaming(stream) = &self.phase else {
            return;
        };
        let notice = match stream {
            Stream::Sse { .. } => {
                sse::encode_notice(sse::MISSED_EVENT, &json::encode_missed(missed))
            }
            Stream::WebSocket(ws) if ws.door.is_none() => {
                let text = format!("{{\"missed\":{}}}", json::encode_missed(missed));
                ws::encode_frame(ws::Opcode::Text, text.as_bytes())
            }
            Stream::Multipart { chunked } => {
                let line = format!(
                    "Msgbus-Missed: after={}, oldest={}\n",
                    missed.after, missed.oldest
                );
                match chunked {
                    true => format!("{:x}\r\n{line}\r\n", line.len()).into_bytes(),
                    false => line.into_bytes(),
                }
            }
            Stream::LongPoll(_) => {
                if let Some(poll) = self.take_poll() {
                    self.answer_poll(&poll, &[], missed.oldest - 1, Some(missed));
                    self.stat_events.push(StatEvent::MissedNotice);
                }
                return;
            }
            _ => return,
        };
        self.stat_events.push(StatEvent::MissedNotice);
        self.outq.push_own(notice);
    }

    /// The response head of a stream, and what opens its body.
    fn stream_head(&self, transport: Transport, reply: Reply, missed: Option<Missed>) -> Vec<u8> {
        let mut extra = self.cors_headers();
        if let Some(missed) = missed {
            let value = format!("after={}, oldest={}", missed.after, missed.oldest);
            extra.push(("Msgbus-Missed", value));
        }
        let extra: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
        match transport {
            Transport::Multipart => {
                multipart::encode_stream_head(reply.minor_version, reply.head_only, &extra)
            }
            Transport::Sse => {
                let mut head = Head::new(reply.minor_version, Status::OK)
                    .header("Content-Type", sse::CONTENT_TYPE)
                    .header("Cache-Control", "no-cache")
                    // Tells nginx-like proxies not to buffer the stream.
                    .header("X-Accel-Buffering", "no");
                for (name, value) in &extra {
                    head = head.header(name, value);
                }
                let mut out = head.finish(reply.minor_version, false);
                if !reply.head_only {
                    out.extend_from_slice(&sse::encode_opening(missed));
                }
                out
            }
            // A poll's head goes with its answer; a WebSocket's is the 101.
            Transport::LongPoll | Transport::WebSocket => Vec::new(),
        }
    }
}

fn choose_transport(request: &Request, query: &Query) -> Result<Transport, &'static str> {
    match query.get("transport") {
        Some("sse") => return Ok(Transport::Sse),
        Some("longpoll") => return Ok(Transport::LongPoll),
        Some("multipart") => return Ok(Transport::Multipart),
        Some(_) => return Err("transport must be sse, longpoll or multipart"),
        None => {}
    }
    if query.get("callback").is_some() {
        return Ok(Transport::LongPoll);
    }
    if super::accepts(request, sse::CONTENT_TYPE) {
        return Ok(Transport::Sse);
    }
    Ok(Transport::Multipart)
}

/// The id a client resumes after: `Last-Event-ID` (what EventSource sends on reconnecting),
/// `?last_event_id=` or `?since=`.
fn resume_cursor(request: &Request, query: &Query) -> Result<Option<u64>, &'static str> {
    let given = request
        .header("last-event-id")
        .or_else(|| query.get("last_event_id"))
        .or_else(|| query.get("since"));
    match given.map(str::trim) {
        None | Some("") => Ok(None),
        Some(id) => id
            .parse()
            .map(Some)
            .map_err(|_| "last event id must be a message id"),
    }
}

/// Retained messages after `after` on every topic, oldest first, each once, through `filter`.
fn replay_topics(
    topics: &[gate::Topic],
    after: u64,
    filter: Option<&Filter>,
    ctx: &mut Ctx,
) -> Replay {
    let mut all = Replay::default();
    for topic in topics {
        let replay = ctx.bus.replay(topic, after, ctx.now);
        all.messages.extend(replay.messages);
        all.missed = match (all.missed, replay.missed) {
            (Some(a), Some(b)) => Some(Missed {
                after,
                oldest: a.oldest.min(b.oldest),
            }),
            (a, b) => a.or(b),
        };
    }
    all.messages.sort_by_key(|m| m.id);
    all.messages.dedup_by_key(|m| m.id);
    all.messages.retain(|m: &Rc<Message>| {
        filter.is_none_or(|f| f.accepts(&m.content_type, m.sender.as_deref()))
    });
    all
}

/// A subscription that resumes from before this node's window asks the cluster's stream for
/// the channel's messages after `after` and before `upto` (the window's oldest).
#[derive(Debug)]
pub struct FetchAsk {
    /// Handled again once they are here.
    pub request: Request,
    pub channel: String,
    pub after: u64,
    pub upto: u64,
}

/// What the stream gave: `messages` (oldest first, before `upto`); `missed` when it no longer
/// holds some after the cursor (the oldest it had).
#[derive(Debug, Default)]
pub struct Prefetched {
    pub messages: Vec<Rc<Message>>,
    pub upto: u64,
    pub missed: Option<u64>,
}

impl Prefetched {
    /// The stream's messages, then the window's after them. A gap in the window after `upto`
    /// (it moved on meanwhile) outweighs them: the client is told from there.
    fn before(self, after: u64, window: Replay, filter: Option<&Filter>) -> Replay {
        if let Some(missed) = window.missed {
            return Replay {
                messages: window.messages,
                missed: Some(Missed {
                    after,
                    oldest: missed.oldest,
                }),
            };
        }
        let mut messages: Vec<Rc<Message>> = self
            .messages
            .into_iter()
            .filter(|m| m.id > after && m.id < self.upto)
            .filter(|m| filter.is_none_or(|f| f.accepts(&m.content_type, m.sender.as_deref())))
            .collect();
        messages.extend(window.messages);
        Replay {
            messages,
            missed: self.missed.map(|oldest| Missed { after, oldest }),
        }
    }
}

/// Adds `Msgbus-Missed` to a response head that is already encoded (the WebSocket 101), just
/// before the blank line that ends it.
pub(super) fn insert_missed_header(head: &mut Vec<u8>, missed: Missed) {
    let line = format!(
        "Msgbus-Missed: after={}, oldest={}\r\n",
        missed.after, missed.oldest
    );
    let at = head.len().saturating_sub(2);
    head.splice(at..at, line.into_bytes());
}
