//! The NATS client protocol, as far as msgbus speaks it: server operations parsed incrementally
//! from the bytes that arrived (INFO, MSG, HMSG, PING, PONG, +OK, -ERR), client operations
//! encoded (CONNECT, SUB, HPUB, PING, PONG). No I/O here.

use std::fmt;

/// Control lines longer than this are a protocol error (NATS's own default is 4 KiB).
const MAX_CONTROL_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// The server's INFO JSON, unparsed.
    Info(String),
    Msg {
        subject: String,
        sid: u64,
        /// Where an answer goes (a JetStream delivery's `$JS.ACK...` subject says its sequence).
        reply: Option<String>,
        /// Header block (`NATS/1.0\r\nKey: value\r\n...\r\n\r\n`), empty for MSG.
        headers: Vec<u8>,
        payload: Vec<u8>,
    },
    Ping,
    Pong,
    Ok,
    Err(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    UnknownOp(String),
    BadLine(String),
    LineTooLong,
    PayloadTooLarge,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::UnknownOp(op) => write!(f, "unknown NATS operation {op:?}"),
            ProtoError::BadLine(line) => write!(f, "bad NATS line {line:?}"),
            ProtoError::LineTooLong => f.write_str("NATS control line too long"),
            ProtoError::PayloadTooLarge => f.write_str("NATS message too large"),
        }
    }
}

/// Parses one operation from the front of `input`. Ok(None): incomplete, feed more.
/// Returns the operation and how many bytes it took.
pub fn parse(input: &[u8], max_payload: usize) -> Result<Option<(ServerOp, usize)>, ProtoError> {
    let Some(end) = memchr::memmem::find(input, b"\r\n") else {
        return if input.len() > MAX_CONTROL_LINE {
            Err(ProtoError::LineTooLong)
        } else {
            Ok(None)
        };
    };
    let line = String::from_utf8_lossy(&input[..end]);
    let after_line = end + 2;
    let mut words = line.split_ascii_whitespace();
    let op = words.next().unwrap_or("").to_ascii_uppercase();
    let bad = || ProtoError::BadLine(line.to_string());
    let simple = |op: ServerOp| Ok(Some((op, after_line)));
    match op.as_str() {
        "PING" => simple(ServerOp::Ping),
        "PONG" => simple(ServerOp::Pong),
        "+OK" => simple(ServerOp::Ok),
        "-ERR" => {
            let text = line[4..].trim().trim_matches('\'').to_string();
            simple(ServerOp::Err(text))
        }
        "INFO" => simple(ServerOp::Info(line[4..].trim().to_string())),
        "MSG" | "HMSG" => {
            let args: Vec<&str> = words.collect();
            let with_headers = op == "HMSG";
            // MSG subject sid [reply] size / HMSG subject sid [reply] hdr_size total_size
            let sizes = if with_headers { 2 } else { 1 };
            if args.len() != 2 + sizes && args.len() != 3 + sizes {
                return Err(bad());
            }
            let subject = args[0].to_string();
            let sid: u64 = args[1].parse().map_err(|_| bad())?;
            let reply = (args.len() == 3 + sizes).then(|| args[2].to_string());
            let numbers: Vec<usize> = args[args.len() - sizes..]
                .iter()
                .map(|n| n.parse().map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            let (header_len, total) = if with_headers {
                (numbers[0], numbers[1])
            } else {
                (0, numbers[0])
            };
            if header_len > total {
                return Err(bad());
            }
            if total > max_payload {
                return Err(ProtoError::PayloadTooLarge);
            }
            let need = after_line + total + 2;
            if input.len() < need {
                return Ok(None);
            }
            if &input[after_line + total..need] != b"\r\n" {
                return Err(bad());
            }
            let body = &input[after_line..after_line + total];
            Ok(Some((
                ServerOp::Msg {
                    subject,
                    sid,
                    reply,
                    headers: body[..header_len].to_vec(),
                    payload: body[header_len..].to_vec(),
                },
                need,
            )))
        }
        _ => Err(ProtoError::UnknownOp(op)),
    }
}

/// CONNECT with headers on, and told when a request has no responder (that is how a server
/// without JetStream shows).
pub fn encode_connect(
    name: &str,
    user: Option<&str>,
    pass: Option<&str>,
    token: Option<&str>,
) -> Vec<u8> {
    let mut fields = vec![
        "\"verbose\":false".to_string(),
        "\"pedantic\":false".to_string(),
        "\"lang\":\"rust\"".to_string(),
        format!("\"version\":\"{}\"", env!("CARGO_PKG_VERSION")),
        "\"protocol\":1".to_string(),
        "\"headers\":true".to_string(),
        "\"no_responders\":true".to_string(),
        format!("\"name\":{}", json_string(name)),
    ];
    if let Some(user) = user {
        fields.push(format!("\"user\":{}", json_string(user)));
    }
    if let Some(pass) = pass {
        fields.push(format!("\"pass\":{}", json_string(pass)));
    }
    if let Some(token) = token {
        fields.push(format!("\"auth_token\":{}", json_string(token)));
    }
    format!("CONNECT {{{}}}\r\n", fields.join(",")).into_bytes()
}

pub fn encode_sub(subject: &str, sid: u64) -> Vec<u8> {
    format!("SUB {subject} {sid}\r\n").into_bytes()
}

pub fn encode_unsub(sid: u64) -> Vec<u8> {
    format!("UNSUB {sid}\r\n").into_bytes()
}

/// PUB with a reply subject (a JetStream API request), or none when `reply` is empty.
pub fn encode_pub(subject: &str, reply: &str, payload: &[u8]) -> Vec<u8> {
    let reply = if reply.is_empty() {
        String::new()
    } else {
        format!("{reply} ")
    };
    let mut out = format!("PUB {subject} {reply}{}\r\n", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

/// HPUB with `headers` given as (name, value) pairs (values must be one line) and a reply
/// subject for the PubAck.
pub fn encode_hpub(
    subject: &str,
    reply: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> Vec<u8> {
    let mut block = String::from("NATS/1.0\r\n");
    for (name, value) in headers {
        block.push_str(name);
        block.push_str(": ");
        block.push_str(value);
        block.push_str("\r\n");
    }
    block.push_str("\r\n");
    let total = block.len() + payload.len();
    let mut out = format!("HPUB {subject} {reply} {} {total}\r\n", block.len()).into_bytes();
    out.extend_from_slice(block.as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

pub const PING: &[u8] = b"PING\r\n";
pub const PONG: &[u8] = b"PONG\r\n";

/// The value of header `name` in a header block, case-insensitively.
pub fn header<'a>(block: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(block).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn json_string(text: &str) -> String {
    let mut out = String::new();
    crate::transport::json::push_string(&mut out, text);
    out
}

/// The subject for a channel: `PREFIX.` and the channel with every byte that could mean
/// something to NATS (`.`, `*`, `>`, spaces, anything outside `[A-Za-z0-9_/-]`) written as `%XX`;
/// the empty channel is `PREFIX.%`, which no escaped name can be.
pub fn subject_for(prefix: &str, channel: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + channel.len());
    out.push_str(prefix);
    out.push('.');
    if channel.is_empty() {
        out.push('%');
        return out;
    }
    for &b in channel.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The channel a subject names, or None for a subject msgbus did not make.
pub fn channel_for(prefix: &str, subject: &str) -> Option<String> {
    let escaped = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    if escaped == "%" {
        return Some(String::new());
    }
    if escaped.is_empty() {
        return None;
    }
    let bytes = crate::http::query::percent_decode(escaped.as_bytes(), false)?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(mut input: &[u8]) -> Vec<ServerOp> {
        let mut ops = Vec::new();
        while let Some((op, used)) = parse(input, 1 << 20).unwrap() {
            ops.push(op);
            input = &input[used..];
        }
        ops
    }

    #[test]
    fn server_operations() {
        let stream = b"INFO {\"server_id\":\"x\"}\r\nPING\r\n+OK\r\nMSG a.b 7 5\r\nhello\r\nHMSG a.c 7 reply 18 21\r\nNATS/1.0\r\nK: v\r\n\r\nhi!\r\n-ERR 'Authorization Violation'\r\npong\r\n";
        let ops = parse_all(stream);
        assert_eq!(
            ops,
            [
                ServerOp::Info("{\"server_id\":\"x\"}".into()),
                ServerOp::Ping,
                ServerOp::Ok,
                ServerOp::Msg {
                    subject: "a.b".into(),
                    sid: 7,
                    reply: None,
                    headers: vec![],
                    payload: b"hello".to_vec()
                },
                ServerOp::Msg {
                    subject: "a.c".into(),
                    sid: 7,
                    reply: Some("reply".into()),
                    headers: b"NATS/1.0\r\nK: v\r\n\r\n".to_vec(),
                    payload: b"hi!".to_vec()
                },
                ServerOp::Err("Authorization Violation".into()),
                ServerOp::Pong,
            ]
        );
    }

    #[test]
    fn partial_input_waits() {
        let whole = b"MSG a 1 5\r\nhello\r\n";
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut], 1 << 20), Ok(None), "cut at {cut}");
        }
        assert!(parse(whole, 1 << 20).unwrap().is_some());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for bad in [
            &b"MSG a x 5\r\n"[..],
            b"MSG a 1\r\n",
            b"HMSG a 1 9 5\r\n",
            b"MSG a 1 5\r\nhelloXX",
            b"WHAT\r\n",
        ] {
            assert!(
                parse(bad, 1 << 20).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse(b"MSG a 1 99\r\n", 10),
            Err(ProtoError::PayloadTooLarge)
        );
        assert_eq!(
            parse(&vec![b'x'; MAX_CONTROL_LINE + 1], 10),
            Err(ProtoError::LineTooLong)
        );
    }

    #[test]
    fn client_operations() {
        let hpub = encode_hpub("msgbus.a", "r.1", &[("Msgbus-Id", "9")], b"body");
        assert_eq!(
            hpub,
            b"HPUB msgbus.a r.1 26 30\r\nNATS/1.0\r\nMsgbus-Id: 9\r\n\r\nbody\r\n"
        );
        assert_eq!(
            encode_pub("$JS.API.INFO", "r.2", b""),
            b"PUB $JS.API.INFO r.2 0\r\n\r\n"
        );
        // What the server delivers for it: the same block, as HMSG with a sid.
        let delivered = String::from_utf8(hpub).unwrap().replacen(
            "HPUB msgbus.a r.1",
            "HMSG msgbus.a 1 r.1",
            1,
        );
        let (op, _) = parse(delivered.as_bytes(), 1 << 20).unwrap().unwrap();
        let ServerOp::Msg {
            headers, payload, ..
        } = op
        else {
            panic!("{op:?}")
        };
        assert_eq!(
            (header(&headers, "Msgbus-Id"), payload.as_slice()),
            (Some("9"), &b"body"[..])
        );
        assert_eq!(
            header(b"NATS/1.0\r\nMsgbus-Id: 9\r\nA: b c\r\n\r\n", "msgbus-id"),
            Some("9")
        );
        assert_eq!(header(b"NATS/1.0\r\nA: b c\r\n\r\n", "a"), Some("b c"));
        let connect =
            String::from_utf8(encode_connect("n\"1", Some("u"), Some("p"), None)).unwrap();
        assert!(
            connect.starts_with("CONNECT {\"verbose\":false,"),
            "{connect}"
        );
        assert!(connect.contains("\"no_responders\":true") && connect.contains("\"headers\":true"));
        assert!(
            connect.contains("\"name\":\"n\\\"1\",\"user\":\"u\",\"pass\":\"p\"}\r\n"),
            "{connect}"
        );
        assert_eq!(encode_sub("msgbus.>", 1), b"SUB msgbus.> 1\r\n");
    }

    #[test]
    fn subjects_round_trip() {
        let cases = [
            ("chat/room-1", "msgbus.chat/room-1"),
            ("a.b", "msgbus.a%2Eb"),
            ("*>", "msgbus.%2A%3E"),
            ("two words", "msgbus.two%20words"),
            ("100%", "msgbus.100%25"),
            ("", "msgbus.%"),
            ("é", "msgbus.%C3%A9"),
        ];
        for (channel, subject) in cases {
            assert_eq!(subject_for("msgbus", channel), subject);
            assert_eq!(channel_for("msgbus", subject).as_deref(), Some(channel));
        }
        assert_eq!(channel_for("msgbus", "other.x"), None);
        assert_eq!(channel_for("msgbus", "msgbus."), None);
        assert_eq!(channel_for("msgbus", "msgbus.%zz"), None);
    }
}
