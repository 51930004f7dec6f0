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
    push_string_as(out, text.as_bytes(), Escapes::Json);
}

/// How a JSON string is escaped: the one escaper, in the manners the originals' encoders had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escapes {
    /// RFC 8259's minimum, and U+2028/2029, which end a line in JavaScript (JSONP).
    Json,
    /// Python's `json.dumps` with `ensure_ascii`: `\b`, `\f`, and everything outside
    /// printable ASCII as `\uXXXX` UTF-16 units.
    PythonAscii,
    /// Go's `encoding/json`: `<`, `>`, `&`, U+2028/2029 as `\u00XX`/`\u20XX` (HTML-safe), and each
    /// byte of invalid UTF-8 as `\ufffd`.
    GoHtmlSafe,
}

/// Appends `text` (UTF-8, or not quite for `GoHtmlSafe`) as a JSON string literal.
pub fn push_string_as(out: &mut String, text: &[u8], escapes: Escapes) {
    out.push('"');
    for chunk in text.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' if escapes == Escapes::PythonAscii => out.push_str("\\b"),
                '\u{c}' if escapes == Escapes::PythonAscii => out.push_str("\\f"),
                '<' | '>' | '&' if escapes == Escapes::GoHtmlSafe => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                ' '..='~' => out.push(c),
                c if escapes == Escapes::PythonAscii => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{:04x}", unit);
                    }
                }
                c if c < ' ' || c == '\u{2028}' || c == '\u{2029}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        // Only Go's manner meets invalid UTF-8 (its callers hand it bytes): U+FFFD per byte.
        for _ in chunk.invalid() {
            out.push_str("\\ufffd");
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

    #[test]
    fn one_escaper_in_each_original_manner() {
        let cases: &[(&[u8], Escapes, &str)] = &[
            (b"a\"b\\c\n", Escapes::Json, r#""a\"b\\c\n""#),
            ("é\u{2028}<".as_bytes(), Escapes::Json, "\"é\\u2028<\""),
            (b"\x08\x0c\x01", Escapes::Json, r#""\u0008\u000c\u0001""#),
            (b"\x08\x0c\x01", Escapes::PythonAscii, r#""\b\f\u0001""#),
            (
                "é😀\x7f".as_bytes(),
                Escapes::PythonAscii,
                r#""\u00e9\ud83d\ude00\u007f""#,
            ),
            (b"<a&b>", Escapes::GoHtmlSafe, r#""\u003ca\u0026b\u003e""#),
            (b"ok\xff\xfe", Escapes::GoHtmlSafe, r#""ok\ufffd\ufffd""#),
            ("\u{2029}é".as_bytes(), Escapes::GoHtmlSafe, "\"\\u2029é\""),
        ];
        for (text, escapes, want) in cases {
            let mut out = String::new();
            push_string_as(&mut out, text, *escapes);
            assert_eq!(out, *want, "{escapes:?} {text:?}");
        }
    }

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
