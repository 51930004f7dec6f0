//! The older servers' protocols, each a pure codec; `conn` routes their paths to them and maps
//! their operations onto the one bus, so a message published through any door reaches every
//! other door and every native subscriber.

pub mod eventsource_broker;
pub mod lhttp;
pub mod martd;
pub mod simple_comet;

use crate::bus::Message;

/// A message as eventsource-broker's clients read it (see
/// `eventsource_broker::encode_message_event`).
pub fn encode_esb_event(msg: &Message) -> Vec<u8> {
    eventsource_broker::encode_message_event(msg.event.as_deref(), msg.id, &msg.body)
}
