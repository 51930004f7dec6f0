//! The JetStream API as far as msgbus speaks it, without I/O: the JSON of the requests a node
//! makes (stream info, create and update; an ephemeral push consumer), the answers it reads
//! (account info, stream info, consumer created, PubAck, errors), the status line of a header
//! block (no responders, heartbeats, flow control) and the ack reply subject a delivery carries,
//! which holds its stream sequence.
//!
//! Everything from NATS is checked as client input is: sequences in 1..2^63 (so `seq + 1`
//! cannot wrap), names without control bytes or spaces and of bounded length, and answers of
//! bounded size. An answer that fails a check is an error, never a panic.

use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};

/// The largest API answer read; stream info with a few subjects is well under 4 KiB.
pub const MAX_ANSWER: usize = 256 * 1024;
/// The longest stream or consumer name taken from NATS (its own limit is 255 bytes or less).
const MAX_NAME: usize = 255;
/// How long JetStream remembers a `Nats-Msg-Id`, so a resend is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Sequences and counts at or above this are refused: `seq + 1` never wraps.
const MAX_SEQ: u64 = 1 << 63;

/// What a stream must look like for msgbus: made from the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: String,
    /// Subjects are `PREFIX.>`.
    pub prefix: String,
    /// Messages kept per channel (`--history`, at least 1: 0 would mean no limit to NATS).
    pub per_subject: u64,
    /// `--message-lifetime`, at least 1 s (0 would mean forever to NATS).
    pub max_age: Duration,
    pub replicas: u8,
}

impl StreamSpec {
    fn subjects(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// The stream configuration, as `$JS.API.STREAM.CREATE` and `UPDATE` take it.
    pub fn encode_config(&self) -> String {
        json!({
            "name": self.name,
            "subjects": [self.subjects()],
            "retention": "limits",
            "max_consumers": -1,
            "max_msgs": -1,
            "max_bytes": -1,
            "max_age": self.max_age.as_nanos().min(i64::MAX as u128) as i64,
            "max_msgs_per_subject": self.per_subject.min(i64::MAX as u64) as i64,
            "max_msg_size": -1,
            "storage": "file",
            "discard": "old",
            "num_replicas": self.replicas,
            // JetStream wants it no longer than the maximum age.
            "duplicate_window": self.max_age.min(DUPLICATE_WINDOW).as_nanos() as i64,
            "allow_direct": true,
        })
        .to_string()
    }

    /// Whether a stream's limits are what they should be (what `UPDATE` can change).
    pub fn matches(&self, info: &StreamInfo) -> bool {
        info.per_subject == self.per_subject as i64
            && info.max_age_ns == self.max_age.as_nanos().min(i64::MAX as u128) as i64
            && info.replicas == u64::from(self.replicas)
            && info.allow_direct
            && info.subjects.iter().any(|s| *s == self.subjects())
    }
}

/// Where an ephemeral consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Everything the stream holds: a node starting rebuilds its window.
    All,
    /// From this sequence on: a node rejoining goes on where it stopped.
    At(u64),
}

/// `$JS.API.CONSUMER.CREATE.<stream>`: an ephemeral push consumer, no acks, in stream order,
/// with heartbeats (so a consumer lost with its server is noticed) and flow control (so a
/// node catching up is not cut off as a slow consumer).
pub fn encode_consumer(stream: &str, deliver_subject: &str, filter: &str, start: Start) -> String {
    let mut config = json!({
        "deliver_subject": deliver_subject,
        "ack_policy": "none",
        "replay_policy": "instant",
        "filter_subject": filter,
        "flow_control": true,
        "idle_heartbeat": 1_000_000_000_i64,
        "inactive_threshold": 5_000_000_000_i64,
        "mem_storage": true,
        "num_replicas": 1,
    });
    match start {
        Start::All => config["deliver_policy"] = "all".into(),
        Start::At(seq) => {
            config["deliver_policy"] = "by_start_sequence".into();
            config["opt_start_seq"] = seq.into();
        }
    }
    json!({"stream_name": stream, "config": config}).to_string()
}

/// An error JetStream answered with (`{"error":{"code":..,"err_code":..,"description":..}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP-like: 404 not found, 503 unavailable, 400 bad request...
    pub code: u16,
    /// JetStream's own number (10059: stream not found).
    pub err_code: u32,
    pub description: String,
}

impl ApiError {
    pub const STREAM_NOT_FOUND: u32 = 10059;

    /// Whether trying again later may succeed (no leader yet, a server away).
    pub fn is_transient(&self) -> bool {
        self.code == 503 || self.code == 408 || self.code == 0
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "JetStream error {} ({}): {}",
            self.code, self.err_code, self.description
        )
    }
}

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// JetStream said no.
    Api(ApiError),
    /// Not the JSON expected, or a value out of range.
    Bad(&'static str),
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::Api(e) => e.fmt(f),
            AnswerError::Bad(why) => write!(f, "bad JetStream answer: {why}"),
        }
    }
}

/// What msgbus reads of a stream's info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub subjects: Vec<String>,
    /// -1 (no limit) or more.
    pub per_subject: i64,
    pub max_age_ns: i64,
    pub replicas: u64,
    /// The oldest sequence held (the next to come when it holds none).
    pub first_seq: u64,
    pub last_seq: u64,
    /// Messages can be read back by sequence (`$JS.API.DIRECT.GET`).
    pub allow_direct: bool,
}

/// A PubAck: the message is stored under `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubAck {
    pub stream: String,
    pub seq: u64,
    /// Stored before under the same `Nats-Msg-Id`: `seq` is that first copy's.
    pub duplicate: bool,
}

/// A consumer was made: its name, and how many messages wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerCreated {
    pub name: String,
    pub pending: u64,
}

/// Parses an answer's JSON, bounded in size; a JetStream error comes back as `Api`.
fn parse_answer(payload: &[u8]) -> Result<Value, AnswerError> {
    if payload.len() > MAX_ANSWER {
        return Err(AnswerError::Bad("too large"));
    }
    let value: Value = serde_json::from_slice(payload).map_err(|_| AnswerError::Bad("not JSON"))?;
    if !value.is_object() {
        return Err(AnswerError::Bad("not an object"));
    }
    if let Some(error) = value.get("error") {
        let code = error.get("code").and_then(Value::as_u64).unwrap_or(0);
        let err_code = error.get("err_code").and_then(Value::as_u64).unwrap_or(0);
        let description = error
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        return Err(AnswerError::Api(ApiError {
            code: u16::try_from(code).unwrap_or(0),
            err_code: u32::try_from(err_code).unwrap_or(0),
            description,
        }));
    }
    Ok(value)
}

fn seq_at(value: &Value, field: &str) -> Result<u64, AnswerError> {
    value
        .get(field)
        .and_then(Value::as_u64)
        .filter(|n| *n < MAX_SEQ)
        .ok_or(AnswerError::Bad("sequence missing or out of range"))
}

/// A stream or consumer name: printable, no spaces or subject wildcards, bounded.
pub fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>'))
}

fn name_at(value: &Value, field: &str) -> Result<String, AnswerError> {
    value
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| is_name(s))
        .map(str::to_string)
        .ok_or(AnswerError::Bad("name missing or not a name"))
}

/// `$JS.API.INFO`: any answer but an error says JetStream is there.
pub fn parse_account_info(payload: &[u8]) -> Result<(), AnswerError> {
    parse_answer(payload).map(|_| ())
}

/// `$JS.API.STREAM.INFO`, `CREATE` and `UPDATE` answer with the stream's info.
pub fn parse_stream_info(payload: &[u8]) -> Result<StreamInfo, AnswerError> {
    let value = parse_answer(payload)?;
    let config = value.get("config").ok_or(AnswerError::Bad("no config"))?;
    let state = value.get("state").ok_or(AnswerError::Bad("no state"))?;
    let subjects = config
        .get("subjects")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .take(64)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let int = |field: &str| config.get(field).and_then(Value::as_i64).unwrap_or(-1);
    Ok(StreamInfo {
        subjects,
        per_subject: int("max_msgs_per_subject"),
        max_age_ns: config.get("max_age").and_then(Value::as_i64).unwrap_or(0),
        replicas: config
            .get("num_replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1),
        first_seq: seq_at(state, "first_seq")?,
        last_seq: seq_at(state, "last_seq")?,
        allow_direct: config.get("allow_direct").and_then(Value::as_bool) == Some(true),
    })
}

/// `$JS.API.CONSUMER.CREATE` answers with the consumer's info.
pub fn parse_consumer_created(payload: &[u8]) -> Result<ConsumerCreated, AnswerError> {
    let value = parse_answer(payload)?;
    Ok(ConsumerCreated {
        name: name_at(&value, "name")?,
        pending: seq_at(&value, "num_pending").unwrap_or(0),
    })
}

/// The answer to a JetStream publish.
pub fn parse_pub_ack(payload: &[u8]) -> Result<PubAck, AnswerError> {
    let value = parse_answer(payload)?;
    let seq = seq_at(&value, "seq")?;
    if seq == 0 {
        return Err(AnswerError::Bad("sequence 0"));
    }
    Ok(PubAck {
        stream: name_at(&value, "stream")?,
        seq,
        duplicate: value.get("duplicate").and_then(Value::as_bool) == Some(true),
    })
}

/// `$JS.API.DIRECT.GET.<stream>`: the first message on `subject` at or after `seq`.
pub fn encode_direct_get(seq: u64, subject: &str) -> String {
    json!({"seq": seq, "next_by_subj": subject}).to_string()
}

/// The sequence and subject of a message read back by `DIRECT.GET` (its headers say them),
/// checked as every sequence from NATS is.
pub fn direct_get_origin(headers: &[u8]) -> Option<(u64, &str)> {
    let seq = crate::cluster::proto::header(headers, "Nats-Sequence")?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq = seq.parse().ok().filter(|n| *n > 0 && *n < MAX_SEQ)?;
    let subject = crate::cluster::proto::header(headers, "Nats-Subject")?;
    Some((seq, subject))
}

/// The status a header block opens with (`NATS/1.0 503`, `NATS/1.0 100 Idle Heartbeat`), if
/// any: a status message carries no message of its own.
pub fn status(headers: &[u8]) -> Option<u16> {
    let line = headers.split(|&b| b == b'\r').next()?;
    let rest = line.strip_prefix(b"NATS/1.0")?;
    let code = std::str::from_utf8(rest).ok()?.split_whitespace().next()?;
    code.parse().ok().filter(|c| (100..600).contains(c))
}

/// What a delivery's reply subject says: `$JS.ACK.<stream>.<consumer>.<delivered>.<stream
/// seq>.<consumer seq>.<timestamp>.<pending>` (servers since 2.10 put a domain and an account
/// hash after `$JS.ACK.` and a token at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckInfo<'a> {
    pub stream: &'a str,
    pub consumer: &'a str,
    pub delivered: u64,
    pub stream_seq: u64,
    pub consumer_seq: u64,
    /// Nanoseconds since 1970 when it was stored.
    pub timestamp: u64,
    pub pending: u64,
}

pub fn parse_ack_reply(reply: &str) -> Option<AckInfo<'_>> {
    let rest = reply.strip_prefix("$JS.ACK.")?;
    let tokens: Vec<&str> = rest.split('.').collect();
    let at = match tokens.len() {
        7 => 0,
        9 | 10 => 2,
        _ => return None,
    };
    let number = |i: usize| -> Option<u64> {
        let text = tokens[at + i];
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().filter(|n| *n < MAX_SEQ)
    };
    let (stream, consumer) = (tokens[at], tokens[at + 1]);
    if !is_name(stream) || !is_name(consumer) {
        return None;
    }
    let stream_seq = number(3).filter(|n| *n > 0)?;
    Some(AckInfo {
        stream,
        consumer,
        delivered: number(2)?,
        stream_seq,
        consumer_seq: number(4)?,
        timestamp: number(5)?,
        pending: number(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> StreamSpec {
        StreamSpec {
            name: "MSGBUS".into(),
            prefix: "msgbus".into(),
            per_subject: 100,
            max_age: Duration::from_secs(3600),
            replicas: 1,
        }
    }

    #[test]
    fn stream_config_and_its_info() {
        let config: Value = serde_json::from_str(&spec().encode_config()).unwrap();
        assert_eq!(config["subjects"], json!(["msgbus.>"]));
        assert_eq!(config["max_msgs_per_subject"], 100);
        assert_eq!(config["max_age"], 3_600_000_000_000_i64);
        assert_eq!(config["storage"], "file");
        let answer = format!(
            "{{\"type\":\"io.nats.jetstream.api.v1.stream_info_response\",\"config\":{},\"state\":{{\"messages\":0,\"first_seq\":1,\"last_seq\":0}}}}",
            spec().encode_config()
        );
        let info = parse_stream_info(answer.as_bytes()).unwrap();
        assert_eq!((info.first_seq, info.last_seq), (1, 0));
        assert!(spec().matches(&info));
        let other = StreamSpec {
            per_subject: 5,
            ..spec()
        };
        assert!(!other.matches(&info));
    }

    #[test]
    fn errors_and_bad_answers() {
        let not_found = br#"{"type":"x","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#;
        let Err(AnswerError::Api(e)) = parse_stream_info(not_found) else {
            panic!()
        };
        assert_eq!((e.code, e.err_code), (404, ApiError::STREAM_NOT_FOUND));
        assert!(!e.is_transient());
        let cases: &[&[u8]] = &[
            b"",
            b"[]",
            b"{\"stream\":\"S\",\"seq\":0}",
            b"{\"stream\":\"S\",\"seq\":-1}",
            b"{\"stream\":\"S\",\"seq\":9223372036854775808}",
            b"{\"stream\":\"S\\r\\n\",\"seq\":1}",
            b"{\"stream\":\"\",\"seq\":1}",
            b"{\"seq\":1}",
        ];
        for case in cases {
            assert!(
                parse_pub_ack(case).is_err(),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
        assert_eq!(
            parse_pub_ack(b"{\"stream\":\"MSGBUS\",\"seq\":7,\"duplicate\":true}"),
            Ok(PubAck {
                stream: "MSGBUS".into(),
                seq: 7,
                duplicate: true
            })
        );
    }

    #[test]
    fn consumer_request_and_answer() {
        let request: Value =
            serde_json::from_str(&encode_consumer("S", "_INBOX.x.d.1", "m.>", Start::At(42)))
                .unwrap();
        assert_eq!(request["stream_name"], "S");
        assert_eq!(request["config"]["deliver_policy"], "by_start_sequence");
        assert_eq!(request["config"]["opt_start_seq"], 42);
        assert_eq!(request["config"]["ack_policy"], "none");
        let all: Value =
            serde_json::from_str(&encode_consumer("S", "d", "m.>", Start::All)).unwrap();
        assert_eq!(all["config"]["deliver_policy"], "all");
        let created = parse_consumer_created(br#"{"name":"abc","num_pending":3}"#).unwrap();
        assert_eq!((created.name.as_str(), created.pending), ("abc", 3));
        assert!(parse_consumer_created(br#"{"name":"a.b"}"#).is_err());
    }

    #[test]
    fn statuses() {
        let cases: &[(&[u8], Option<u16>)] = &[
            (b"NATS/1.0 503\r\n\r\n", Some(503)),
            (b"NATS/1.0 100 Idle Heartbeat\r\n\r\n", Some(100)),
            (b"NATS/1.0\r\nA: b\r\n\r\n", None),
            (b"NATS/1.0 99999\r\n\r\n", None),
            (b"", None),
        ];
        for (headers, want) in cases {
            assert_eq!(
                status(headers),
                *want,
                "{}",
                String::from_utf8_lossy(headers)
            );
        }
    }

    #[test]
    fn ack_replies() {
        let old = parse_ack_reply("$JS.ACK.MSGBUS.c1.1.42.40.1700000000000000000.3").unwrap();
        assert_eq!(
            (old.stream, old.consumer, old.stream_seq, old.pending),
            ("MSGBUS", "c1", 42, 3)
        );
        let new = parse_ack_reply("$JS.ACK.dom.hash.MSGBUS.c1.1.42.40.17.0.tok").unwrap();
        assert_eq!((new.stream, new.stream_seq, new.pending), ("MSGBUS", 42, 0));
        for bad in [
            "$JS.ACK.S.c.1.0.1.1.0",
            "$JS.ACK.S.c.1.x.1.1.0",
            "$JS.ACK.S.c.1.+4.1.1.0",
            "$JS.ACK.S.c.1.9223372036854775808.1.1.0",
            "$JS.ACK.S.c.1.2.1.1",
            "_INBOX.x",
            "$JS.ACK.S..1.2.1.1.0",
        ] {
            assert_eq!(parse_ack_reply(bad), None, "{bad}");
        }
    }
}
