//! A WebSocket subscriber: after the handshake, the connection decodes the client's frames
//! (pings answered, messages published to the channel when it may publish, the close handshake
//! answered) and sends each message as one shared frame.

use std::time::Instant;

use super::PublishRequest;
use super::{Conn, Ctx, DoorId, DoorState, Next, Phase, Publish, Stream};
use crate::gate::Identity;
use crate::transport::websocket::{self as ws, Event, Opcode};

/// What a WebSocket subscriber carries.
pub(super) struct WsState {
    /// Only while a frame or a fragmented message is in flight (most subscribers never send
    /// one after the handshake).
    pub(super) decoder: Option<Box<ws::FrameDecoder>>,
    pub(super) next_ping: Instant,
    /// The channel the client's own messages go to: set when it subscribed to exactly one
    /// channel; the key it gave, checked by the bus like any publisher's.
    pub(super) publish_to: Option<String>,
    pub(super) key: Option<String>,
    /// Who opened it: each message it sends is admitted against this identity's grants.
    pub(super) who: Identity,
    /// Set when a door took the socket over (lhttp's protocol instead of msgbus's), with what
    /// the door keeps for it.
    pub(super) door: Option<(DoorId, DoorState)>,
}

impl Conn {
    /// Handles the frames that arrived. Returns what the reactor should do next.
    pub(super) fn advance_websocket(&mut self, ctx: &mut Ctx) -> Next {
        loop {
            if !self.pending_publishes.is_empty() {
                return Next::Publish(Box::new(self.pending_publishes.remove(0)));
            }
            let Phase::Streaming(Stream::WebSocket(state)) = &mut self.phase else {
                return Next::Wait;
            };
            // The decoder takes what it is given (a partial frame's payload goes straight into
            // the message), so the input never holds more than one call's bytes.
            if self.input.unread().is_empty() {
                self.input.compact();
                return Next::Wait;
            }
            let max_message = ctx.cfg.max_ws_message();
            let decoder = state
                .decoder
                .get_or_insert_with(|| Box::new(ws::FrameDecoder::new(max_message)));
            let (used, decoded) = decoder.decode(self.input.unread());
            if decoder.is_idle() {
                state.decoder = None;
            }
            self.input.consume(used);
            let event = match decoded {
                Ok(Some(event)) => event,
                Ok(None) => {
                    self.input.compact();
                    return Next::Wait;
                }
                Err(reason) => {
                    self.close_websocket(reason.code, reason.reason);
                    return Next::Wait;
                }
            };
            match event {
                Event::Ping(payload) => {
                    self.outq.push_own(ws::encode_frame(Opcode::Pong, &payload));
                }
                Event::Pong(_) => {}
                Event::Close { code, .. } => {
                    // Echo the client's code (RFC 6455 section 5.5.1), then close.
                    self.close_websocket(code.unwrap_or(ws::CLOSE_NORMAL), "");
                    return Next::Wait;
                }
                Event::Message { payload, .. } if state.door.is_some() => {
                    let (id, mut door_state) = state.door.take().expect("checked");
                    if let Some(mut door) = ctx.doors.take(id) {
                        ctx.door_id = id;
                        door.on_socket_message(self, &mut door_state, &payload, ctx);
                        ctx.doors.put_back(id, door);
                    }
                    if let Phase::Streaming(Stream::WebSocket(state)) = &mut self.phase {
                        state.door = Some((id, door_state));
                    }
                }
                Event::Message { text, payload } => {
                    let Some(channel) = state.publish_to.clone() else {
                        self.close_websocket(
                            ws::CLOSE_POLICY,
                            "publishing needs a subscription to one channel",
                        );
                        return Next::Wait;
                    };
                    let content_type = if text {
                        "text/plain; charset=utf-8"
                    } else {
                        "application/octet-stream"
                    };
                    ctx.stats.requests += 1;
                    let req = PublishRequest {
                        channel,
                        content_type: content_type.into(),
                        body: payload,
                        key: state.key.clone(),
                        ..PublishRequest::default()
                    };
                    let who = state.who.clone();
                    return Next::Publish(Box::new(Publish::over_websocket(req, who, None)));
                }
            }
        }
    }

    /// A WebSocket with frames read but not yet decoded: what arrived in the same segment as
    /// the upgrade request, which no further readiness event will announce.
    pub fn websocket_input_waiting(&self) -> bool {
        matches!(self.phase, Phase::Streaming(Stream::WebSocket(_)))
            && !self.input.unread().is_empty()
    }

    /// Sends a close frame and ends the connection once it is out.
    pub fn close_websocket(&mut self, code: u16, reason: &str) {
        self.outq.push_own(ws::encode_close(code, reason));
        self.input = super::Input::default();
        self.phase = Phase::Closing;
    }
}

impl Conn {
    /// Answers a WebSocket handshake (already checked) and hands the socket to a door: each
    /// message it sends goes to the door, with `state`.
    pub fn start_door_socket(
        &mut self,
        accept: &str,
        who: crate::gate::Identity,
        door: (DoorId, DoorState),
        ctx: &mut Ctx,
    ) {
        self.log_access(101, 0);
        self.outq.push_own(ws::handshake_response(accept, None));
        self.phase = Phase::Streaming(Stream::WebSocket(Box::new(WsState {
            decoder: None,
            next_ping: ctx.now + ctx.cfg.ping_interval,
            publish_to: None,
            key: None,
            who,
            door: Some(door),
        })));
    }
}

impl Conn {
    /// Who opened this WebSocket, when the connection is one.
    pub fn websocket_identity(&self) -> Option<&crate::gate::Identity> {
        match &self.phase {
            Phase::Streaming(Stream::WebSocket(state)) => Some(&state.who),
            _ => None,
        }
    }
}
#[cfg(test)]
mod tests {
    /// Every WebSocket subscriber keeps one: its decoder and its identity's grant live on the
    /// heap only when there is one.
    #[test]
    fn an_idle_websocket_keeps_little() {
        assert!(std::mem::size_of::<super::WsState>() <= 136);
    }
}
