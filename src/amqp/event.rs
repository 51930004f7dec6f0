//! eventsource-broker's message on its AMQP exchange (its `AMQPEvents.hs`), both ways, without
//! I/O: JSON `{"channel", "user", "data", "id"?, "name"?}` (read and written by the door's codec,
//! `parse_amqp_event` / `encode_amqp_event`) to a door publish on the bus channel of that api key
//! (`user`) and channel, named as the door names it (`ChannelNames`, the same value the door
//! holds), and a door publish back to that JSON.
//!
//! A message is checked here before it goes near the gate, so that every way a message can be
//! bad has one name for the log and the counter: not a JSON object with the three strings, a
//! value that would break a line (`name` with CR, LF or NUL, a control character in `channel` or
//! `user`), a `user` the channel names cannot keep apart from other keys (a `:`, or with
//! `--esb-native-channels` a `/`, which ends the key in the bus channel's name), or larger than the
//! limit. The original dropped such messages silently; msgbus acknowledges them, counts them and
//! says so in its log.

use std::fmt;

use crate::doors::eventsource_broker::codec::{
    encode_amqp_event, parse_amqp_event, AmqpEvent, ChannelNames,
};
use crate::gate::valid_event_name;

/// A message from the exchange, checked: where it goes on the bus and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The door's bus channel for (`user`, `channel`).
    pub bus_channel: String,
    pub data: String,
    /// The SSE event name.
    pub name: Option<String>,
}

/// Why a message from the exchange was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadEvent {
    TooLarge,
    /// Not JSON, or not an object with `channel`, `user` and `data` strings (and `id`,
    /// `name`, `socket` strings or null when present).
    Shape,
    BadChannel,
    BadUser,
    BadName,
}

impl fmt::Display for BadEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadEvent::TooLarge => "too large",
            BadEvent::Shape => "not a JSON object of \"channel\", \"user\", \"data\" strings",
            BadEvent::BadChannel => "control character in channel",
            BadEvent::BadUser => {
                "user empty, or with a control character, ':' or (native names) '/'"
            }
            BadEvent::BadName => "name not one line of 1 to 128 bytes",
        })
    }
}

/// Reads one message body from the exchange.
pub fn decode(names: ChannelNames, body: &[u8], max_bytes: usize) -> Result<Event, BadEvent> {
    if body.len() > max_bytes {
        return Err(BadEvent::TooLarge);
    }
    // The id is the publisher's: msgbus gives every message its own (PROTOCOL.md, section 12).
    // The socket (not to be sent back to) is set by no publisher the original had.
    let AmqpEvent {
        channel,
        user,
        data,
        name,
        ..
    } = parse_amqp_event(body).ok_or(BadEvent::Shape)?;
    if channel.chars().any(char::is_control) {
        return Err(BadEvent::BadChannel);
    }
    if user.is_empty() || !names.key_fits(&user) || user.chars().any(char::is_control) {
        return Err(BadEvent::BadUser);
    }
    if name.as_deref().is_some_and(|n| !valid_event_name(n)) {
        return Err(BadEvent::BadName);
    }
    Ok(Event {
        bus_channel: names.bus_channel(&user, &channel),
        data,
        name,
    })
}

/// The JSON the original's brokers publish for an event (`id` as the door writes it, `name`
/// null when absent), or None when `bus_channel` is not one of the door's. With native names,
/// that includes a native publish on `esb/K/C`: it is key K's channel C.
pub fn encode(
    names: ChannelNames,
    bus_channel: &str,
    id: u64,
    name: Option<&str>,
    data: &[u8],
) -> Option<Vec<u8>> {
    let (user, channel) = names.key_and_channel(bus_channel)?;
    Some(encode_amqp_event(&AmqpEvent {
        channel: channel.into(),
        user: user.into(),
        data: String::from_utf8_lossy(data).into_owned(),
        id: Some(format!("{id:024x}")),
        name: name.map(Into::into),
        socket: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn messages_from_the_exchange() {
        let names = ChannelNames::Private;
        let ok = |channel: &str, data: &str, name: Option<&str>| {
            Ok(Event {
                bus_channel: names.bus_channel("k1", channel),
                data: data.into(),
                name: name.map(Into::into),
            })
        };
        let cases: &[(&str, Result<Event, BadEvent>)] = &[
            (
                r#"{"channel":"c","user":"k1","data":"hi"}"#,
                ok("c", "hi", None),
            ),
            (
                r#"{"channel":"c","user":"k1","data":"a\nb","id":"x","name":"greet"}"#,
                ok("c", "a\nb", Some("greet")),
            ),
            (
                r#"{"channel":"c","user":"k1","data":"","id":null,"name":null,"socket":"s"}"#,
                ok("c", "", None),
            ),
            (r#"{"channel":"c","data":"hi"}"#, Err(BadEvent::Shape)),
            (
                r#"{"channel":"c","user":"k1","data":5}"#,
                Err(BadEvent::Shape),
            ),
            (
                r#"{"channel":"c","user":"k1","data":"x","name":7}"#,
                Err(BadEvent::Shape),
            ),
            (r#"["c","k1","x"]"#, Err(BadEvent::Shape)),
            ("hello", Err(BadEvent::Shape)),
            (
                r#"{"channel":"a\rb","user":"k1","data":"x"}"#,
                Err(BadEvent::BadChannel),
            ),
            (
                r#"{"channel":"c","user":"k:1","data":"x"}"#,
                Err(BadEvent::BadUser),
            ),
            (
                r#"{"channel":"c","user":"","data":"x"}"#,
                Err(BadEvent::BadUser),
            ),
            (
                r#"{"channel":"c","user":"k/1","data":"x"}"#,
                Ok(Event {
                    bus_channel: "\u{1f}esb:k/1:c".into(),
                    data: "x".into(),
                    name: None,
                }),
            ),
            (
                r#"{"channel":"c","user":"k1","data":"x","name":"a\r\nid: 9"}"#,
                Err(BadEvent::BadName),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(&decode(names, body.as_bytes(), 1024), want, "{body}");
        }
        let big = format!(
            r#"{{"channel":"c","user":"k1","data":"{}"}}"#,
            "x".repeat(64)
        );
        assert_eq!(decode(names, big.as_bytes(), 64), Err(BadEvent::TooLarge));
    }

    /// With `--esb-native-channels`, a `user` holding `/` would name another key's channel.
    #[test]
    fn native_names_from_the_exchange() {
        let names = ChannelNames::Native;
        let cases: &[(&str, Result<&str, BadEvent>)] = &[
            (
                r#"{"channel":"chat","user":"k1","data":"x"}"#,
                Ok("esb/k1/chat"),
            ),
            (
                r#"{"channel":"a/b","user":"k1","data":"x"}"#,
                Ok("esb/k1/a/b"),
            ),
            (
                r#"{"channel":"c","user":"k1/a","data":"x"}"#,
                Err(BadEvent::BadUser),
            ),
            (
                r#"{"channel":"c","user":"k:1","data":"x"}"#,
                Err(BadEvent::BadUser),
            ),
        ];
        for (body, want) in cases {
            let got = decode(names, body.as_bytes(), 1024).map(|e| e.bus_channel);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{body}");
        }
        let json = encode(names, "esb/k1/a/b", 7, None, b"x").unwrap();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            (&value["user"], &value["channel"]),
            (&"k1".into(), &"a/b".into())
        );
        assert_eq!(encode(names, "\u{1f}esb:k1:c", 7, None, b"x"), None);
        assert_eq!(encode(names, "news", 7, None, b"x"), None);
    }

    #[test]
    fn door_publishes_to_the_exchange_and_back() {
        let names = ChannelNames::Private;
        let channel = names.bus_channel("k1", "room:1");
        let json = encode(names, &channel, 255, Some("greet"), b"hello").unwrap();
        let value: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["id"], "0000000000000000000000ff");
        assert_eq!(value["user"], "k1");
        let event = decode(names, &json, 1024).unwrap();
        assert_eq!(event.bus_channel, channel);
        assert_eq!(
            (event.data.as_str(), event.name.as_deref()),
            ("hello", Some("greet"))
        );
        let json = encode(names, &channel, 1, None, b"x").unwrap();
        assert!(String::from_utf8(json).unwrap().contains(r#""name":null"#));
        assert_eq!(encode(names, "native", 1, None, b"x"), None);
    }
}
