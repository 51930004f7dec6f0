//! The gate: the one way onto the bus. Every request, from every door and every transport (an
//! HTTP request, a WebSocket message, an lhttp frame, a message from the cluster), becomes a bus
//! operation only through here:
//! - identity: HTTP Basic against `-s`, a signed token (`--jwt-secret`), the sender's name;
//! - grants, checked against every channel the operation can touch (a subtree or all-channels
//!   subscription only where the grant covers the whole of it);
//! - limits: channels per subscription and per connection, channels per publish;
//! - values: nothing that becomes a header-like line (a channel name, `From`, `Content-Type`, an
//!   event name, an lhttp header) may hold CR, LF or NUL.
//!
//! What passes comes out as an admitted value (`Topic`, `Publish`, `Delete`, `Forget`,
//! `Remote`) whose fields only this module can set; the bus takes nothing else, so a door cannot
//! skip a check, even by mistake. Channel keys are carried in the admitted values and compared by
//! the bus, which alone knows each channel's key.
//!
//! This module imports neither the bus nor the transports: it is the layer below them.

use std::borrow::Cow;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::auth::{Grant, JwtKey};
use crate::http::base64;

/// The most channels one publish may name (lhttp's `publish:` header, `POST /publish`).
pub const DEFAULT_MAX_PUBLISH_CHANNELS: usize = 64;

/// The limits and secrets the gate enforces; rebuilt on reload.
pub struct Gate {
    secret: Option<String>,
    jwt: Option<JwtKey>,
    max_subscriptions: usize,
    max_publish_channels: usize,
}

/// What a request says about who sends it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// A token given as `?token=` (EventSource and WebSocket clients cannot set headers).
    pub token: Option<&'a str>,
}

/// Who is asking: established once per request (or per WebSocket) by `Gate::identify`, the
/// only way to make one, and asked of every operation.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Shown to subscribers as `From`: the Basic user, else the token's subject.
    sender: Option<Box<str>>,
    /// The token's grant, when tokens are required and one was valid. Boxed: an identity is
    /// kept by every WebSocket subscriber, and most have no grant.
    grant: Option<Box<Grant>>,
    /// Tokens are required and none was valid: why, for the 401.
    token_problem: Option<Box<str>>,
}

impl Identity {
    pub fn sender(&self) -> Option<&str> {
        self.sender.as_deref()
    }
}

/// Which limit a refusal is for, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Channels in one subscription, or held by one connection.
    Subscriptions,
    /// Channels named by one publish.
    PublishChannels,
}

/// Why a request may not reach the bus: an HTTP status, a one-line reason, and for 401 the
/// challenge to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: Cow<'static, str>,
    /// `WWW-Authenticate` for a 401.
    pub challenge: Option<&'static str>,
    pub limited: Option<Limited>,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<Cow<'static, str>>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
            challenge: None,
            limited: None,
        }
    }

    fn bad_value(what: &str) -> Refusal {
        Refusal::new(400, format!("{what} may not hold CR, LF or NUL"))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

const BASIC_CHALLENGE: &str = "Basic realm=\"msgbus\"";
const BEARER_CHALLENGE: &str = "Bearer realm=\"msgbus\"";

/// A channel (or with `subtree`, every channel under a prefix) that a subscriber may read: its
/// live messages and its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    name: Box<str>,
    subtree: bool,
}

impl Topic {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_subtree(&self) -> bool {
        self.subtree
    }
}

/// A message that may be published, its values checked.
#[derive(Debug, Clone)]
pub struct Publish {
    channel: Box<str>,
    content_type: Box<str>,
    sender: Option<Box<str>>,
    event: Option<Box<str>>,
    body: Rc<[u8]>,
    key: Option<Box<str>>,
    attributes: Attributes,
    /// A frame the publishing door already made in its own wire format (frame slot, bytes):
    /// its subscribers get the message as it came. Its header lines are checked (`lines`).
    preset: Option<(usize, Rc<[u8]>)>,
}

/// What a publish asks a channel to keep. Applied by the bus only when the channel is new or
/// the right key was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attributes {
    pub size: Option<usize>,
    pub lifetime: Option<Duration>,
    /// Each message is consumed by its first delivery (martd's `one2one`).
    pub one2one: bool,
}

/// The parts of an admitted publish, for the bus to take apart.
pub struct PublishParts {
    pub channel: Box<str>,
    pub content_type: Box<str>,
    pub sender: Option<Box<str>>,
    pub event: Option<Box<str>>,
    pub body: Rc<[u8]>,
    pub key: Option<Box<str>>,
    pub attributes: Attributes,
    pub preset: Option<(usize, Rc<[u8]>)>,
}

impl Publish {
    pub fn channel(&self) -> &str {
        &self.channel
    }

    pub fn into_parts(self) -> PublishParts {
        PublishParts {
            channel: self.channel,
            content_type: self.content_type,
            sender: self.sender,
            event: self.event,
            body: self.body,
            key: self.key,
            attributes: self.attributes,
            preset: self.preset,
        }
    }
}

/// What a door or transport proposes to publish; the gate checks it against the identity.
#[derive(Debug, Clone, Default)]
pub struct Draft<'a> {
    pub channel: &'a str,
    pub content_type: &'a str,
    pub event: Option<&'a str>,
    pub body: Rc<[u8]>,
    pub key: Option<&'a str>,
    pub attributes: Attributes,
    /// A frame the door made in its own format, for its frame slot.
    pub preset: Option<(usize, Rc<[u8]>)>,
    /// Other values the door will write as header-like lines (lhttp's headers).
    pub lines: Vec<&'a [u8]>,
}

/// A channel that may be deleted (its history and subscriptions dropped), given the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    channel: Box<str>,
    key: Option<Box<str>>,
}

/// A channel whose retained messages may be dropped (subscribers kept), given the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forget {
    channel: Box<str>,
    key: Option<Box<str>>,
}

/// The channel and key of a `Delete` or `Forget`, for the bus.
pub trait KeyedChannel {
    fn channel(&self) -> &str;
    fn key(&self) -> Option<&str>;
}

impl KeyedChannel for Delete {
    fn channel(&self) -> &str {
        &self.channel
    }
    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl KeyedChannel for Forget {
    fn channel(&self) -> &str {
        &self.channel
    }
    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

/// A message another node published, its values checked like any publish (a node may run
/// another version, or the cluster's subjects may be shared).
#[derive(Debug, Clone)]
pub struct Remote {
    pub id: u64,
    publish: Publish,
}

impl Remote {
    pub fn into_parts(self) -> (u64, PublishParts) {
        (self.id, self.publish.into_parts())
    }
}

impl Gate {
    pub fn new(
        secret: Option<String>,
        jwt: Option<JwtKey>,
        max_subscriptions: usize,
        max_publish_channels: usize,
    ) -> Gate {
        Gate {
            secret,
            jwt,
            max_subscriptions,
            max_publish_channels,
        }
    }

    /// A new token key (SIGHUP re-reads its file); None turns tokens off.
    pub fn set_jwt(&mut self, jwt: Option<JwtKey>) {
        self.jwt = jwt;
    }

    pub fn requires_token(&self) -> bool {
        self.jwt.is_some()
    }

    /// Who sends the request. With `-s`, the Basic password must be the secret (401
    /// otherwise). With tokens required, a missing or bad token is noted, and refused by every
    /// operation on a channel (a static file needs none). `now` is seconds since 1970.
    pub fn identify(&self, credentials: Credentials, now: u64) -> Result<Identity, Refusal> {
        let authorization = credentials.authorization.map(str::trim).unwrap_or("");
        let (scheme, value) = authorization.split_once(' ').unwrap_or((authorization, ""));
        let basic = if scheme.eq_ignore_ascii_case("basic") {
            Some(decode_basic(value.trim())?)
        } else {
            None
        };
        if let Some(secret) = &self.secret {
            let password = basic.as_ref().map(|(_, p)| p.as_bytes());
            if !password.is_some_and(|p| constant_time_eq(p, secret.as_bytes())) {
                let mut refusal = Refusal::new(401, "unauthorized");
                refusal.challenge = Some(BASIC_CHALLENGE);
                return Err(refusal);
            }
        }
        let mut identity = Identity {
            sender: basic
                .map(|(user, _)| user)
                .filter(|user| !user.is_empty())
                .map(Into::into),
            grant: None,
            token_problem: None,
        };
        if let Some(key) = &self.jwt {
            let bearer = scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| value.trim())
                .filter(|t| !t.is_empty());
            match bearer.or(credentials.token) {
                None => identity.token_problem = Some("a token is required".into()),
                Some(token) => match key.verify(token, now) {
                    Ok(grant) => {
                        if let Some(subject) = &grant.subject {
                            if !is_clean_line(subject.as_bytes()) {
                                return Err(Refusal::bad_value("the token's subject"));
                            }
                        }
                        if identity.sender.is_none() {
                            identity.sender = grant.subject.as_deref().map(Into::into);
                        }
                        identity.grant = Some(Box::new(grant));
                    }
                    Err(e) => identity.token_problem = Some(e.to_string().into()),
                },
            }
        }
        Ok(identity)
    }

    /// The grant to check channels against: Ok(None) when tokens are not required.
    fn grant<'i>(&self, who: &'i Identity) -> Result<Option<&'i Grant>, Refusal> {
        if self.jwt.is_none() {
            return Ok(None);
        }
        match (&who.grant, &who.token_problem) {
            (Some(grant), _) => Ok(Some(&**grant)),
            (None, problem) => {
                let why = problem
                    .as_deref()
                    .unwrap_or("a token is required")
                    .to_string();
                let mut refusal = Refusal::new(401, why);
                refusal.challenge = Some(BEARER_CHALLENGE);
                Err(refusal)
            }
        }
    }

    /// Channels (and subtrees: a name ending in '/', or "" for all) one connection may read,
    /// `held` being how many it reads already. Refused whole when any one is not allowed.
    pub fn admit_subscribe<'n>(
        &self,
        who: &Identity,
        names: impl IntoIterator<Item = (&'n str, bool)>,
        held: usize,
    ) -> Result<Vec<Topic>, Refusal> {
        let grant = self.grant(who)?;
        let mut topics = Vec::new();
        for (name, subtree) in names {
            if held + topics.len() >= self.max_subscriptions {
                let mut refusal = Refusal::new(400, "too many channels in one subscription");
                refusal.limited = Some(Limited::Subscriptions);
                return Err(refusal);
            }
            check_channel(name)?;
            let allowed = match (grant, subtree) {
                (None, _) => true,
                (Some(grant), true) => grant.may_subscribe_under(name),
                (Some(grant), false) => grant.may_subscribe(name),
            };
            if !allowed {
                let name = if subtree && name.is_empty() {
                    "every channel"
                } else {
                    name
                };
                let why = format!("token does not allow you to subscribe to {name}");
                return Err(Refusal::new(403, why));
            }
            topics.push(Topic {
                name: name.into(),
                subtree,
            });
        }
        Ok(topics)
    }

    /// One message to one channel.
    pub fn admit_publish(&self, who: &Identity, draft: Draft) -> Result<Publish, Refusal> {
        let grant = self.grant(who)?;
        check_channel(draft.channel)?;
        if grant.is_some_and(|g| !g.may_publish(draft.channel)) {
            let why = format!("token does not allow you to publish to {}", draft.channel);
            return Err(Refusal::new(403, why));
        }
        admit_values(draft, who.sender.clone())
    }

    /// The same message to several channels (lhttp's `publish: a b c`): one body shared by all,
    /// the number of channels bounded so one request costs a bounded amount.
    pub fn admit_publish_many(
        &self,
        who: &Identity,
        channels: &[&str],
        draft: Draft,
    ) -> Result<Vec<Publish>, Refusal> {
        if channels.len() > self.max_publish_channels {
            let mut refusal = Refusal::new(400, "too many channels in one publish");
            refusal.limited = Some(Limited::PublishChannels);
            return Err(refusal);
        }
        channels
            .iter()
            .map(|channel| {
                let one = Draft {
                    channel,
                    lines: draft.lines.clone(),
                    ..draft.clone()
                };
                self.admit_publish(who, one)
            })
            .collect()
    }

    /// Deleting a channel asks what publishing does: the grant to publish on it; the bus then
    /// checks its key.
    pub fn admit_delete(
        &self,
        who: &Identity,
        channel: &str,
        key: Option<&str>,
    ) -> Result<Delete, Refusal> {
        self.may_change(who, channel, key)?;
        Ok(Delete {
            channel: channel.into(),
            key: key.map(Into::into),
        })
    }

    /// Dropping a channel's retained messages (Simple-Comet's channel reset): as deleting.
    pub fn admit_forget(
        &self,
        who: &Identity,
        channel: &str,
        key: Option<&str>,
    ) -> Result<Forget, Refusal> {
        self.may_change(who, channel, key)?;
        Ok(Forget {
            channel: channel.into(),
            key: key.map(Into::into),
        })
    }

    fn may_change(&self, who: &Identity, channel: &str, key: Option<&str>) -> Result<(), Refusal> {
        let grant = self.grant(who)?;
        check_channel(channel)?;
        if grant.is_some_and(|g| !g.may_publish(channel)) {
            let why = format!("token does not allow you to publish to {channel}");
            return Err(Refusal::new(403, why));
        }
        if key.is_some_and(|k| !is_clean_line(k.as_bytes())) {
            return Err(Refusal::bad_value("channel key"));
        }
        Ok(())
    }

    /// A message from the cluster: its origin node checked who sent it; here its values are
    /// checked again, since they will become header lines on this node's streams.
    pub fn admit_remote(
        &self,
        id: u64,
        channel: &str,
        content_type: &str,
        sender: Option<&str>,
        event: Option<&str>,
        body: Rc<[u8]>,
    ) -> Result<Remote, Refusal> {
        check_channel(channel)?;
        let values = [Some(content_type), sender, event];
        if values
            .iter()
            .flatten()
            .any(|v| !is_clean_line(v.as_bytes()))
        {
            return Err(Refusal::bad_value("a header"));
        }
        Ok(Remote {
            id,
            publish: Publish {
                channel: channel.into(),
                content_type: content_type.into(),
                sender: sender.map(Into::into),
                event: event.map(Into::into),
                body,
                key: None,
                attributes: Attributes::default(),
                preset: None,
            },
        })
    }

    /// A publish a door makes for a client it identified itself (eventsource-broker's signed
    /// sockets carry their own credentials): its values are checked like any other.
    pub fn admit_door_publish(
        &self,
        draft: Draft,
        sender: Option<&str>,
    ) -> Result<Publish, Refusal> {
        if sender.is_some_and(|s| !is_clean_line(s.as_bytes())) {
            return Err(Refusal::bad_value("sender"));
        }
        check_door_channel(draft.channel)?;
        admit_values(draft, sender.map(Into::into))
    }

    /// Channels a door that is its own identity provider subscribes a client to (see
    /// `admit_door_publish`): its own private channels, or public ones.
    pub fn admit_door_subscribe(&self, channel: &str) -> Result<Topic, Refusal> {
        check_door_channel(channel)?;
        Ok(Topic {
            name: channel.into(),
            subtree: false,
        })
    }
}

/// Checks every value of a publish that will become a header-like line.
fn admit_values(draft: Draft, sender: Option<Box<str>>) -> Result<Publish, Refusal> {
    if !is_clean_line(draft.content_type.as_bytes()) {
        return Err(Refusal::bad_value("content type"));
    }
    if draft.event.is_some_and(|event| !valid_event_name(event)) {
        let why = "event name must be 1 to 128 bytes on one line";
        return Err(Refusal::new(400, why));
    }
    if draft.key.is_some_and(|k| !is_clean_line(k.as_bytes())) {
        return Err(Refusal::bad_value("channel key"));
    }
    if draft.lines.iter().any(|line| !is_clean_line(line)) {
        return Err(Refusal::bad_value("a header"));
    }
    Ok(Publish {
        channel: draft.channel.into(),
        content_type: draft.content_type.into(),
        sender,
        event: draft.event.map(Into::into),
        body: draft.body,
        key: draft.key.map(Into::into),
        attributes: draft.attributes,
        preset: draft.preset,
    })
}

/// Whether `name` can follow SSE's `event:` (one short line).
pub fn valid_event_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && is_clean_line(name.as_bytes())
}

/// Whether `value` may stand in a header-like line: no CR, LF or NUL.
pub fn is_clean_line(value: &[u8]) -> bool {
    !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

/// Channels a door keeps to itself (eventsource-broker's per-key channels) start with this
/// control character, which no client-given name may hold: no client names one, and subtree and
/// all-channels subscriptions do not reach them.
pub const PRIVATE_PREFIX: char = '\u{1f}';

/// Whether `name` is a door's private channel.
pub fn is_private(name: &str) -> bool {
    name.starts_with(PRIVATE_PREFIX)
}

/// A name a door gives: a private one (the prefix, then no other control character) or a
/// public one.
fn check_door_channel(name: &str) -> Result<(), Refusal> {
    check_channel(name.strip_prefix(PRIVATE_PREFIX).unwrap_or(name))
}

/// Channel names appear in `Content-Location`, lhttp headers, JSON keys and NATS subjects: no
/// control characters at all.
fn check_channel(name: &str) -> Result<(), Refusal> {
    if name.chars().any(char::is_control) {
        return Err(Refusal::new(
            400,
            "channel name may not hold control characters",
        ));
    }
    Ok(())
}

/// `user:password` from Basic credentials. The original msgbus took credentials it could not
/// decode, or without the `:`, as no credentials at all (the request went on without `From`);
/// here they are a 400 with the reason, so a publisher learns its `From` is missing.
fn decode_basic(credentials: &str) -> Result<(String, String), Refusal> {
    let bad = || Refusal::new(400, "bad Basic credentials");
    let decoded = base64::decode(credentials.as_bytes()).ok_or_else(bad)?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| Refusal::new(400, "bad Basic credentials: no ':' after the user name"))?;
    if user.chars().any(char::is_control) {
        return Err(Refusal::new(400, "bad Basic user name"));
    }
    Ok((user.to_string(), password.to_string()))
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
