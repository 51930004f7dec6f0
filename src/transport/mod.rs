//! The wire formats a message is sent in. Each is encoded at most once per message (see
//! `bus::Message::frame`) and the bytes are shared by every subscriber that uses it.

pub mod json;
pub mod longpoll;
pub mod multipart;
pub mod sse;
pub mod websocket;

use crate::bus::Message;

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
    /// An event as eventsource-broker's clients read it.
    Esb,
    /// A whole martd `/sub` answer carrying this one message.
    Martd,
    /// A Simple-Comet read's entry for this message, under its channel's name.
    Comet,
    /// A WebSocket text frame with the lhttp message.
    Lhttp,
}

impl Wire {
    pub const COUNT: usize = 13;
    pub const ALL: [Wire; Wire::COUNT] = [
        Wire::Multipart,
        Wire::MultipartChunked,
        Wire::MultipartLocated,
        Wire::MultipartLocatedChunked,
        Wire::Sse,
        Wire::SseJson,
        Wire::Json,
        Wire::Ws,
        Wire::WsJson,
        Wire::Esb,
        Wire::Martd,
        Wire::Comet,
        Wire::Lhttp,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The name used in status output.
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
            Wire::Esb => "eventsource_broker",
            Wire::Martd => "martd",
            Wire::Comet => "simple_comet",
            Wire::Lhttp => "lhttp",
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

/// Encodes `msg` for `wire`. Called once per (message, wire) by the frame cache.
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
        Wire::Esb => crate::compat::encode_esb_event(msg),
        Wire::Martd => crate::conn::encode_martd_answer(msg),
        Wire::Comet => crate::conn::encode_comet_entry(msg),
        Wire::Lhttp => crate::conn::encode_lhttp_frame(msg),
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
