//! What a door is to a session: the one small trait the server and the session call, and the
//! registry that holds the open doors. A door (in `crate::doors`) owns its routes, its codec and
//! its state; the session and the reactor name no door, they only pass requests, bodies,
//! publish outcomes and WebSocket messages to whichever door asked for them.
//!
//! A door keeps whatever it needs between a request and what follows (a POST body, a publish's
//! answer, a WebSocket taken over) as a `DoorState`, given back to it with the event.

use std::any::Any;
use std::rc::Rc;
use std::time::Instant;

use super::{Conn, Ctx, Next, Publish, Refused, Reply};
use crate::bus::history::DoorRecord;
use crate::bus::Bus;
use crate::config::Config;
use crate::http::request::Request;
use crate::outq::OutQueue;
use crate::stats::Transport;

/// A door's place in the registry.
pub type DoorId = usize;

/// What a door keeps for one request or socket, handed back to it later.
pub type DoorState = Box<dyn Any>;

/// A request as a door sees it: the parsed head and the target split and still encoded, as
/// the older servers read them.
pub struct DoorRequest<'r> {
    pub request: &'r Request,
    pub raw_path: &'r str,
    pub raw_query: &'r str,
    pub reply: Reply,
}

/// How a publish turned out, as the door that took it answers it.
pub type PublishOutcome = Result<crate::conn::Published, Refused>;

/// One of the older servers' protocols. Each method is called on the door that asked for the
/// event; a door that does not use an event keeps the default.
pub trait Door {
    /// For the logs.
    fn name(&self) -> &'static str;

    /// A request, before native routing: None when it is not the door's.
    fn on_request(
        &mut self,
        session: &mut Conn,
        request: &DoorRequest,
        ctx: &mut Ctx,
    ) -> Option<Option<Next>>;

    /// The body of a POST the door asked for (`Conn::read_door_body`) has arrived.
    fn on_body(
        &mut self,
        _session: &mut Conn,
        _state: DoorState,
        _publish: Publish,
        _ctx: &mut Ctx,
    ) -> Next {
        Next::Wait
    }

    /// A publish the door handed over was carried out, or refused: its answer.
    fn answer_publish(
        &mut self,
        _session: &mut Conn,
        _state: DoorState,
        _reply: Reply,
        _outcome: PublishOutcome,
    ) {
    }

    /// A message on a WebSocket the door took over (`Conn::start_door_socket`).
    fn on_socket_message(
        &mut self,
        _session: &mut Conn,
        _state: &mut DoorState,
        _payload: &[u8],
        _ctx: &mut Ctx,
    ) {
    }

    /// One of its holds ended (answered, timed out or closed).
    fn on_hold_ended(&mut self) {}

    /// About once a second: forget what has expired.
    fn sweep(&mut self, _now: Instant, _bus: &Bus) {}

    /// SIGHUP, first half: reads what the new configuration needs (files) without changing
    /// anything, so that an error keeps the old configuration everywhere.
    fn prepare_reload(&self, _cfg: &Config) -> Result<DoorState, String> {
        Ok(Box::new(()))
    }

    /// SIGHUP, second half: takes the new settings (what `prepare_reload` read included).
    fn apply_reload(&mut self, _cfg: &Config, _prepared: DoorState) {}

    /// Its registrations that changed since the last call, each as a whole, named for the door
    /// (`name`): the reactor takes them at the end of every turn and gives them to the history
    /// store, which keeps the latest of each key across restarts (`--data-dir`). What is not
    /// handed over here is forgotten at a restart.
    fn poll_records(&mut self, _out: &mut Vec<DoorRecord>) {}

    /// At start, before any request: the registrations the store kept for this door, oldest
    /// first, to take up again. `now` is when the server starts.
    fn restore(&mut self, _records: Vec<DoorRecord>, _now: Instant) {}
}

/// A request a door holds open, or a stream it keeps, inside a session: it decides what each
/// message, deadline, shutdown or channel deletion writes, and what follows.
pub trait Hold {
    /// What it counts as in the status output.
    fn transport(&self) -> Transport;

    /// When `on_timeout` is due, if ever.
    fn deadline(&self) -> Option<Instant>;

    /// A message for it, as its door's wire encoded it.
    fn on_message(&mut self, frame: Rc<[u8]>, id: u64, out: &mut OutQueue) -> HoldNext;

    /// Its deadline passed.
    fn on_timeout(&mut self, _now: Instant, _out: &mut OutQueue) -> HoldNext {
        HoldNext::Stay
    }

    /// The server is stopping.
    fn on_shutdown(&mut self, _out: &mut OutQueue) -> HoldNext {
        HoldNext::Close
    }

    /// A channel it reads was deleted.
    fn on_deleted(&mut self, _out: &mut OutQueue) -> HoldNext {
        HoldNext::Close
    }

    /// The door to tell when it ends, if its door counts its holds.
    fn door(&self) -> Option<DoorId> {
        None
    }
}

/// What follows an event on a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldNext {
    /// Still held.
    Stay,
    /// Answered: the connection takes its next request, or closes.
    Answered { keep_alive: bool },
    /// Ends once what is queued is sent.
    Close,
}

/// The open doors, in the order they see requests. A door is taken out while it handles an
/// event, so it can be handed the context (which holds the registry) without aliasing.
#[derive(Default)]
pub struct Doors {
    slots: Vec<Option<Box<dyn Door>>>,
}

impl Doors {
    pub fn add(&mut self, door: Box<dyn Door>) -> DoorId {
        self.slots.push(Some(door));
        self.slots.len() - 1
    }

    /// The id the next door added will get (a door's holds name it).
    pub fn next_id(&self) -> DoorId {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Takes door `id` out for the length of a call.
    pub fn take(&mut self, id: DoorId) -> Option<Box<dyn Door>> {
        self.slots.get_mut(id).and_then(Option::take)
    }

    pub fn put_back(&mut self, id: DoorId, door: Box<dyn Door>) {
        self.slots[id] = Some(door);
    }

    /// Every door, for the sweep and for hold endings.
    pub fn each(&mut self) -> impl Iterator<Item = &mut Box<dyn Door>> {
        self.slots.iter_mut().flatten()
    }

    pub fn get_mut(&mut self, id: DoorId) -> Option<&mut Box<dyn Door>> {
        self.slots.get_mut(id).and_then(Option::as_mut)
    }
}
