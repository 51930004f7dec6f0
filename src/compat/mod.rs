//! The older servers' protocols, each a pure codec; `conn` routes their paths to them and maps
//! their operations onto the one bus, so a message published through any door reaches every
//! other door and every native subscriber.

pub mod eventsource_broker;
pub mod lhttp;
pub mod martd;
pub mod simple_comet;

use crate::bus::Message;

/// A message as eventsource-broker's clients read it: `event:` when named, `id:` as 24 hex
/// digits (the width of the original's ids, so a `Last-Event-ID` reads back), then `data:`.
/// A body with line breaks gets one `data:` line per line; the original wrote them raw, which
/// cut the event short (a plain bug).
pub fn encode_esb_event(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.body.len() + 48);
    if let Some(name) = &msg.event {
        out.extend_from_slice(format!("event:{name}\n").as_bytes());
    }
    out.extend_from_slice(format!("id:{:024x}\n", msg.id).as_bytes());
    let text = String::from_utf8_lossy(&msg.body);
    for line in text.split('\n') {
        out.extend_from_slice(b"data:");
        out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}
