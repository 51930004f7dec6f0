//! Messages as JSON objects: the long-poll answer, the `format=json` envelope on SSE and
//! WebSocket, and the notice that a resuming client missed messages. Written by hand, because the
//! shapes are fixed and small; strings are escaped per RFC 8259.

use std::fmt::Write;

use crate::http::base64;
use crate::message::Message;
pub use crate::message::Missed;

/// `{"id":N,"channel":"c","type":"t"[,"from":"u"][,"event":"e"],"data":"..."}`; a body that is
/// not UTF-8 is carried as `"data_base64"` instead of `"data"`.
pub fn encode_message(msg: &Message) -> Vec<u8> {
    let mut out = String::with_capacity(msg.body.len() + 96);
    let _ = write!(out, "{{\"id\":{},\"channel\":", msg.id);
    push_string(&mut out, &msg.channel);
    out.push_str(",\"type\":");
    push_string(&mut out, &msg.content_type);
    if let Some(sender) = &msg.sender {
        out.push_str(",\"from\":");
        push_string(&mut out, sender);
    }
    if let Some(event) = &msg.event {
        out.push_str(",\"event\":");
        push_string(&mut out, event);
    }
    match std::str::from_utf8(&msg.body) {
        Ok(text) => {
            out.push_str(",\"data\":");
            push_string(&mut out, text);
        }
        Err(_) => {
            out.push_str(",\"data_base64\":\"");
            out.push_str(&base64::encode(&msg.body));
            out.push('"');
        }
    }
    out.push('}');
    out.into_bytes()
}

/// `{"after":N,"oldest":M}`
pub fn encode_missed(missed: Missed) -> String {
    format!(
        "{{\"after\":{},\"oldest\":{}}}",
        missed.after, missed.oldest
    )
}

/// Appends `text` as a JSON string literal.
pub fn push_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // U+2028/2029 are valid JSON but end a line in JavaScript, which matters for JSONP.
            c if c < ' ' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSONP callback must be a dotted JavaScript identifier path, so that it cannot smuggle
/// script into the answer.
pub fn valid_callback(name: &str) -> bool {
    const MAX: usize = 128;
    !name.is_empty()
        && name.len() <= MAX
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(sender: Option<&str>, event: Option<&str>, body: &[u8]) -> Message {
        let mut m = Message::new(
            7,
            "a/b".into(),
            "text/plain".into(),
            sender.map(Into::into),
            body.into(),
        );
        m.event = event.map(Into::into);
        m
    }

    #[test]
    fn messages() {
        let cases: &[(Message, &str)] = &[
            (
                msg(None, None, b"hi"),
                r#"{"id":7,"channel":"a/b","type":"text/plain","data":"hi"}"#,
            ),
            (
                msg(Some("al\"ice"), Some("greet"), b"a\nb\t\x01\\"),
                r#"{"id":7,"channel":"a/b","type":"text/plain","from":"al\"ice","event":"greet","data":"a\nb\t\u0001\\"}"#,
            ),
            (
                msg(None, None, b"\xff\x00"),
                r#"{"id":7,"channel":"a/b","type":"text/plain","data_base64":"/wA="}"#,
            ),
            (
                msg(None, None, "x\u{2028}é".as_bytes()),
                "{\"id\":7,\"channel\":\"a/b\",\"type\":\"text/plain\",\"data\":\"x\\u2028é\"}",
            ),
        ];
        for (m, want) in cases {
            assert_eq!(String::from_utf8(encode_message(m)).unwrap(), *want);
        }
    }

    #[test]
    fn missed_notice() {
        let missed = Missed {
            after: 3,
            oldest: 9,
        };
        assert_eq!(encode_missed(missed), r#"{"after":3,"oldest":9}"#);
    }

    #[test]
    fn callbacks() {
        for ok in ["cb", "jQuery123_456", "a.b.c", "$", "_x"] {
            assert!(valid_callback(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "a..b",
            "a.",
            "alert(1)",
            "a b",
            "a;b",
            "é",
            &"a".repeat(200),
        ] {
            assert!(!valid_callback(bad), "{bad}");
        }
    }
}
