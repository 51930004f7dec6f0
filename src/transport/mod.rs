//! The wire formats a message is sent in. Each is encoded at most once per message (see
//! `Wires::frame`) and the bytes are shared by every subscriber that uses it.

pub mod json;
pub mod longpoll;
pub mod multipart;
pub mod sse;
pub mod websocket;

use std::rc::Rc;

use crate::message::Message;

/// One encoding of a message. Subscribers of the same wire share one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// multipart/x-mixed-replace part for an HTTP/1.0 (close-delimited) stream.
    Multipart,
    /// The same part wrapped in one HTTP/1.1 chunk, without Content-Length (as the original).
    MultipartChunked,
    /// A part for an all-channels or subtree subscriber: carries Content-Location.
    MultipartLocated,
    /// The located part wrapped in one chunk.
    MultipartLocatedChunked,
    /// A server-sent event carrying the body.
    Sse,
    /// A server-sent event carrying the message as a JSON object.
    SseJson,
    /// The message as a JSON object: an element of a long-poll answer.
    Json,
    /// A WebSocket frame with the body: text for a textual type with a UTF-8 body, else binary.
    Ws,
    /// A WebSocket text frame with the message as a JSON object.
    WsJson,
    /// A format a door registered (see `Wires::register`).
    Door(u8),
}

/// The transports' own wires, in slot order.
const CORE: [Wire; 9] = [
    Wire::Multipart,
    Wire::MultipartChunked,
    Wire::MultipartLocated,
    Wire::MultipartLocatedChunked,
    Wire::Sse,
    Wire::SseJson,
    Wire::Json,
    Wire::Ws,
    Wire::WsJson,
];

impl Wire {
    /// Frame slots in all: the transports' and the doors'.
    pub const COUNT: usize = crate::message::FRAME_SLOTS;

    /// The message frame slot this wire's frame is kept in.
    pub fn index(self) -> usize {
        // A direct mapping: this is on every delivery's path (the frame cache's slot).
        match self {
            Wire::Multipart => 0,
            Wire::MultipartChunked => 1,
            Wire::MultipartLocated => 2,
            Wire::MultipartLocatedChunked => 3,
            Wire::Sse => 4,
            Wire::SseJson => 5,
            Wire::Json => 6,
            Wire::Ws => 7,
            Wire::WsJson => 8,
            Wire::Door(n) => CORE.len() + usize::from(n),
        }
    }

    /// The name used in status output (a door's wire is named by its registration).
    pub fn name(self) -> &'static str {
        match self {
            Wire::Multipart => "multipart",
            Wire::MultipartChunked => "multipart_chunked",
            Wire::MultipartLocated => "multipart_located",
            Wire::MultipartLocatedChunked => "multipart_located_chunked",
            Wire::Sse => "sse",
            Wire::SseJson => "sse_json",
            Wire::Json => "json",
            Wire::Ws => "websocket",
            Wire::WsJson => "websocket_json",
            Wire::Door(_) => "door",
        }
    }

    /// The multipart wire for a subscriber: chunked on HTTP/1.1, located for several channels.
    pub fn multipart(chunked: bool, located: bool) -> Wire {
        match (chunked, located) {
            (false, false) => Wire::Multipart,
            (true, false) => Wire::MultipartChunked,
            (false, true) => Wire::MultipartLocated,
            (true, true) => Wire::MultipartLocatedChunked,
        }
    }
}

/// How a door writes a message in its own format.
pub type DoorEncoder = fn(&Message) -> Vec<u8>;

/// The wires in use: the transports' own, and those the doors registered at start-up.
#[derive(Debug, Default)]
pub struct Wires {
    doors: Vec<(&'static str, DoorEncoder)>,
}

impl Wires {
    /// A new wire for a door's format, with its name for the status output. None when every
    /// frame slot is taken.
    pub fn register(&mut self, name: &'static str, encode: DoorEncoder) -> Option<Wire> {
        let n = u8::try_from(self.doors.len()).ok()?;
        if Wire::Door(n).index() >= Wire::COUNT {
            return None;
        }
        self.doors.push((name, encode));
        Some(Wire::Door(n))
    }

    /// Every wire's name, by frame slot.
    pub fn names(&self) -> [&'static str; Wire::COUNT] {
        let mut names = ["unused"; Wire::COUNT];
        for wire in CORE {
            names[wire.index()] = wire.name();
        }
        for (n, (name, _)) in self.doors.iter().enumerate() {
            names[CORE.len() + n] = name;
        }
        names
    }

    /// `msg` in `wire`'s format: encoded once per message and shared; `encodings` counts the
    /// encodings per slot.
    pub fn frame(&self, msg: &Message, wire: Wire, encodings: &mut [u64; Wire::COUNT]) -> Rc<[u8]> {
        msg.frame(wire.index(), |msg| {
            encodings[wire.index()] += 1;
            self.encode(wire, msg)
        })
    }

    /// Encodes `msg` for `wire`.
    pub fn encode(&self, wire: Wire, msg: &Message) -> Vec<u8> {
        match wire {
            Wire::Door(n) => (self.doors[usize::from(n)].1)(msg),
            core => encode(core, msg),
        }
    }
}

/// Encodes `msg` for one of the transports' wires (a door's wire encodes to nothing here: its
/// encoder is in `Wires`).
pub fn encode(wire: Wire, msg: &Message) -> Vec<u8> {
    match wire {
        Wire::Multipart => multipart::encode_part(msg, false, false),
        Wire::MultipartChunked => multipart::encode_part(msg, false, true),
        Wire::MultipartLocated => multipart::encode_part(msg, true, false),
        Wire::MultipartLocatedChunked => multipart::encode_part(msg, true, true),
        Wire::Sse => sse::encode_event(msg, false),
        Wire::SseJson => sse::encode_event(msg, true),
        Wire::Json => json::encode_message(msg),
        Wire::Ws => {
            let text = is_textual(&msg.content_type) && std::str::from_utf8(&msg.body).is_ok();
            let opcode = if text {
                websocket::Opcode::Text
            } else {
                websocket::Opcode::Binary
            };
            websocket::encode_frame(opcode, &msg.body)
        }
        Wire::WsJson => {
            websocket::encode_frame(websocket::Opcode::Text, &json::encode_message(msg))
        }
        Wire::Door(_) => Vec::new(),
    }
}

/// Types whose bodies are text: sent as WebSocket text frames (when they are UTF-8).
pub fn is_textual(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media.as_str(),
            "application/json" | "application/javascript" | "application/xml"
        )
}

#[cfg(test)]
mod slot_tests {
    use super::*;

    #[test]
    fn each_wire_has_its_own_slot() {
        for (at, wire) in CORE.iter().enumerate() {
            assert_eq!(wire.index(), at, "{wire:?}");
        }
        assert_eq!(Wire::Door(0).index(), CORE.len());
    }
}
