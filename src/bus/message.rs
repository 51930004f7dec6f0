//! A published message and its encoded frames. Each wire format is encoded the first time a
//! subscriber of that format needs it; every later subscriber gets the same `Rc` frame.

use std::cell::OnceCell;
use std::rc::Rc;

use crate::stats::Stats;
use crate::transport::{self, Wire};

#[derive(Debug)]
pub struct Message {
    pub id: u64,
    pub channel: Rc<str>,
    pub content_type: Box<str>,
    /// The publisher's HTTP Basic user name, shown to subscribers as `From`. The body (and the
    /// lhttp frame) may be shared by the same message published to several channels.
    pub sender: Option<Box<str>>,
    pub body: Rc<[u8]>,
    /// The SSE event name given at publish time.
    pub event: Option<Box<str>>,
    /// When it was published here, seconds since 1970 (Simple-Comet shows it as `ts`).
    pub published: u64,
    /// The whole lhttp message it came in, for lhttp subscribers.
    pub lhttp_frame: Option<Rc<[u8]>>,
    frames: [OnceCell<Rc<[u8]>>; Wire::COUNT],
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
            lhttp_frame: None,
            frames: Default::default(),
        }
    }

    /// The message encoded for `wire`, encoding it on first use.
    pub fn frame(&self, wire: Wire, stats: &mut Stats) -> Rc<[u8]> {
        self.frames[wire.index()]
            .get_or_init(|| {
                stats.encodings[wire.index()] += 1;
                Rc::from(transport::encode(wire, self))
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_wire_is_encoded_once_and_shared() {
        let mut stats = Stats::default();
        let msg = Message::new(
            1,
            "c".into(),
            "text/plain".into(),
            None,
            b"x".as_slice().into(),
        );
        let frames: Vec<Rc<[u8]>> = (0..100)
            .map(|_| msg.frame(Wire::MultipartChunked, &mut stats))
            .collect();
        assert!(frames.iter().all(|f| Rc::ptr_eq(f, &frames[0])));
        msg.frame(Wire::Multipart, &mut stats);
        assert_eq!(stats.encodings[Wire::MultipartChunked.index()], 1);
        assert_eq!(stats.encodings[Wire::Multipart.index()], 1);
        assert_eq!(stats.encodings[Wire::MultipartLocated.index()], 0);
    }
}
