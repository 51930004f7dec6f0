//! AMQP 0-9-1, as eventsource-broker's AMQP side needs it.

pub mod codec;
