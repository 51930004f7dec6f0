//! Long-poll answers: `{"messages":[...],"cursor":N[,"missed":{...}]}`, or the same wrapped in
//! a JSONP callback. Each message is the shared JSON frame of `json::encode_message`, so an
//! answer is a head, the frames by reference, and a few bytes of glue between them.

use std::rc::Rc;

use crate::http::response::{Head, Status};
use crate::message::Missed;
use crate::transport::json;

/// One piece of an answer, in order.
#[derive(Debug)]
pub enum Piece {
    Own(Vec<u8>),
    Shared(Rc<[u8]>),
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

impl PollAnswer<'_> {
    /// The answer with `frames` (JSON objects, oldest first); `cursor` is what the client sends
    /// as `since` next time.
    pub fn encode(&self, frames: &[Rc<[u8]>], cursor: u64, missed: Option<Missed>) -> Vec<Piece> {
        let (open, close) = match self.callback {
            Some(callback) => (format!("{callback}({{\"messages\":["), ");\n"),
            None => ("{\"messages\":[".to_string(), "\n"),
        };
        let mut tail = format!("],\"cursor\":{cursor}");
        if let Some(missed) = missed {
            tail.push_str(",\"missed\":");
            tail.push_str(&json::encode_missed(missed));
        }
        tail.push('}');
        tail.push_str(close);
        let commas = frames.len().saturating_sub(1);
        let length =
            open.len() + frames.iter().map(|f| f.len()).sum::<usize>() + commas + tail.len();
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
            return vec![Piece::Own(first)];
        }
        first.extend_from_slice(open.as_bytes());
        let mut pieces = vec![Piece::Own(first)];
        for (i, frame) in frames.iter().enumerate() {
            if i > 0 {
                pieces.push(Piece::Own(b",".to_vec()));
            }
            pieces.push(Piece::Shared(frame.clone()));
        }
        pieces.push(Piece::Own(tail.into_bytes()));
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(pieces: Vec<Piece>) -> String {
        let bytes: Vec<u8> = pieces
            .into_iter()
            .flat_map(|p| match p {
                Piece::Own(v) => v,
                Piece::Shared(f) => f.to_vec(),
            })
            .collect();
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
        assert_eq!(flatten(answer(None).encode(&frames, 6, None)), want);

        let missed = Some(Missed {
            after: 1,
            oldest: 5,
        });
        let got = flatten(answer(Some("cb")).encode(&[], 9, missed));
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
