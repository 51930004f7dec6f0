//! A published message and its encoded frames. Each wire format is encoded the first time a
//! subscriber of that format needs it; every later subscriber gets the same `Rc` frame. The
//! message knows slots, not formats: the transports and the doors say what goes in each.

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::Instant;

/// Frame slots a message has: the transports' wire formats and those the doors register.
pub const FRAME_SLOTS: usize = 16;

#[derive(Debug)]
pub struct Message {
    pub id: u64,
    pub channel: Rc<str>,
    pub content_type: Box<str>,
    /// The publisher's name (HTTP Basic user or token subject), shown to subscribers as `From`.
    pub sender: Option<Box<str>>,
    /// Shared by the same message published to several channels.
    pub body: Rc<[u8]>,
    /// The SSE event name given at publish time.
    pub event: Option<Box<str>>,
    /// When it was published here, seconds since 1970.
    pub published: u64,
    /// When it was made here (published, or taken in from the cluster): where its
    /// publish-to-written latency starts.
    pub made_at: Instant,
    frames: [OnceCell<Rc<[u8]>>; FRAME_SLOTS],
}

impl Message {
    pub fn new(
        id: u64,
        channel: Rc<str>,
        content_type: Box<str>,
        sender: Option<Box<str>>,
        body: Rc<[u8]>,
    ) -> Message {
        Message {
            id,
            channel,
            content_type,
            sender,
            body,
            event: None,
            published: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            made_at: Instant::now(),
            frames: Default::default(),
        }
    }

    /// The frame in `slot`, made by `encode` the first time it is asked for.
    pub fn frame(&self, slot: usize, encode: impl FnOnce(&Message) -> Vec<u8>) -> Rc<[u8]> {
        self.frames[slot]
            .get_or_init(|| Rc::from(encode(self)))
            .clone()
    }

    /// Fills `slot` with a frame made before the message was (a door that received it already
    /// in its own format). A slot already filled keeps its frame.
    pub fn preset_frame(&self, slot: usize, frame: Rc<[u8]>) {
        let _ = self.frames[slot].set(frame);
    }
}

/// What a resuming client is told when messages after its cursor are no longer retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// The id the client resumed after.
    pub after: u64,
    /// The oldest id still retained (the next id to be published when none is).
    pub oldest: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_slot_is_encoded_once_and_shared() {
        let msg = Message::new(
            1,
            "c".into(),
            "text/plain".into(),
            None,
            b"x".as_slice().into(),
        );
        let mut encoded = 0;
        let frames: Vec<Rc<[u8]>> = (0..100)
            .map(|_| {
                msg.frame(3, |_| {
                    encoded += 1;
                    b"frame".to_vec()
                })
            })
            .collect();
        assert!(frames.iter().all(|f| Rc::ptr_eq(f, &frames[0])));
        assert_eq!(encoded, 1);
        msg.preset_frame(4, Rc::from(&b"preset"[..]));
        assert_eq!(&*msg.frame(4, |_| unreachable!("preset")), b"preset");
    }
}
