//! Long-poll answers: `{"messages":[...],"cursor":N[,"missed":{...}]}`, or the same wrapped in
//! a JSONP callback. Each message is the shared JSON frame of `json::encode_message`, so an
//! answer is a head, the frames by reference, and a few bytes of glue between them.

use std::rc::Rc;

use crate::http::response::{write_decimal, Head, Status};
use crate::message::Missed;
use crate::transport::json;

/// One piece of an answer, in order.
#[derive(Debug)]
pub enum Piece {
    Own(Vec<u8>),
    Shared(Rc<[u8]>),
    /// The comma between two messages.
    Comma,
}

/// How to answer one poll.
pub struct PollAnswer<'a> {
    pub minor_version: u8,
    pub keep_alive: bool,
    pub head_only: bool,
    pub callback: Option<&'a str>,
    /// Headers every answer to this client carries (CORS).
    pub extra_headers: &'a [(&'a str, &'a str)],
}

const OPEN: &[u8] = b"{\"messages\":[";

impl PollAnswer<'_> {
    /// The answer with `frames` (JSON objects, oldest first), piece by piece to `push`;
    /// `cursor` is what the client sends as `since` next time. Two buffers of its own (head
    /// with the opening, and the closing), whatever the number of frames: one is written per
    /// message delivered, so nothing here goes through `fmt`.
    pub fn encode(
        &self,
        frames: &[Rc<[u8]>],
        cursor: u64,
        missed: Option<Missed>,
        mut push: impl FnMut(Piece),
    ) {
        let mut tail = Vec::with_capacity(64);
        tail.extend_from_slice(b"],\"cursor\":");
        write_decimal(&mut tail, cursor);
        if let Some(missed) = missed {
            tail.extend_from_slice(b",\"missed\":");
            tail.extend_from_slice(json::encode_missed(missed).as_bytes());
        }
        tail.push(b'}');
        tail.extend_from_slice(match self.callback {
            Some(_) => b");\n",
            None => b"\n",
        });
        let open_len = OPEN.len() + self.callback.map_or(0, |name| name.len() + 1);
        let commas = frames.len().saturating_sub(1);
        let length = open_len + frames.iter().map(|f| f.len()).sum::<usize>() + commas + tail.len();
        let content_type = if self.callback.is_some() {
            "application/javascript"
        } else {
            "application/json"
        };
        let mut head = Head::new(self.minor_version, Status::OK)
            .header("Content-Type", content_type)
            .header("Content-Length", length)
            .header("Cache-Control", "no-cache");
        for (name, value) in self.extra_headers {
            head = head.header(name, value);
        }
        let mut first = head.finish(self.minor_version, self.keep_alive);
        if self.head_only {
            return push(Piece::Own(first));
        }
        if let Some(name) = self.callback {
            first.extend_from_slice(name.as_bytes());
            first.push(b'(');
        }
        first.extend_from_slice(OPEN);
        push(Piece::Own(first));
        for (i, frame) in frames.iter().enumerate() {
            if i > 0 {
                push(Piece::Comma);
            }
            push(Piece::Shared(frame.clone()));
        }
        push(Piece::Own(tail));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(
        answer: &PollAnswer,
        frames: &[Rc<[u8]>],
        cursor: u64,
        missed: Option<Missed>,
    ) -> String {
        let mut bytes = Vec::new();
        answer.encode(frames, cursor, missed, |piece| match piece {
            Piece::Own(v) => bytes.extend_from_slice(&v),
            Piece::Shared(f) => bytes.extend_from_slice(&f),
            Piece::Comma => bytes.push(b','),
        });
        String::from_utf8(bytes).unwrap()
    }

    fn answer(callback: Option<&str>) -> PollAnswer<'_> {
        PollAnswer {
            minor_version: 1,
            keep_alive: true,
            head_only: false,
            callback,
            extra_headers: &[],
        }
    }

    #[test]
    fn answers() {
        let frames: Vec<Rc<[u8]>> =
            vec![Rc::from(&b"{\"id\":5}"[..]), Rc::from(&b"{\"id\":6}"[..])];
        let body = "{\"messages\":[{\"id\":5},{\"id\":6}],\"cursor\":6}\n";
        let want = format!(
            "HTTP/1.1 200 OK\r\nServer: msgbus\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(flatten(&answer(None), &frames, 6, None), want);

        let missed = Some(Missed {
            after: 1,
            oldest: 5,
        });
        let got = flatten(&answer(Some("cb")), &[], 9, missed);
        let body = "cb({\"messages\":[],\"cursor\":9,\"missed\":{\"after\":1,\"oldest\":5}});\n";
        assert!(
            got.ends_with(&format!(
                "Content-Length: {}\r\nCache-Control: no-cache\r\n\r\n{body}",
                body.len()
            )),
            "{got}"
        );
        assert!(got.contains("Content-Type: application/javascript\r\n"));
    }
}
