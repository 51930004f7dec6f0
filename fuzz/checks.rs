//! The property each fuzz target asserts, as plain functions over typed inputs. The targets in
//! fuzz_targets/ call them, and tests/fuzz_corpus.rs replays every seed in corpus/ through them
//! under `cargo test`, so a property that stops holding on a seed fails the test suite too.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use msgbus::bus::filter::Filter;
use msgbus::bus::Bus;
use msgbus::config::Config;
use msgbus::conn::{Conn, Ctx, Next, Published, Refused};
use msgbus::gate::{is_clean_line, Gate};
use msgbus::glob::glob_match;
use msgbus::http::chunked::{ChunkedDecoder, Progress};
use msgbus::listener::Peer;
use msgbus::message::Message;
use msgbus::stats::Stats;
use msgbus::transport::websocket::{encode_client_frame, CloseReason, Event, FrameDecoder, Opcode};
use msgbus::transport::Wires;

/// encode/decode round-trip; decoding arbitrary bytes never panics, and what decodes
/// re-encodes to text that decodes the same (decoding tolerates missing padding and stray
/// trailing bits).
pub fn base64(data: &[u8]) {
    use msgbus::http::base64::{decode, encode};
    assert_eq!(decode(encode(data).as_bytes()).as_deref(), Some(data));
    if let Some(bytes) = decode(data) {
        assert_eq!(decode(encode(&bytes).as_bytes()), Some(bytes));
    }
}

const MAX_CHUNKED_BODY: usize = 1 << 16;

/// Feeds `input` in pieces of `step` bytes, as the reactor would, keeping unused bytes.
fn decode_chunked_in_steps(input: &[u8], step: usize) -> Option<(usize, Progress, Vec<u8>)> {
    let mut decoder = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut consumed = 0;
    let mut end = 0;
    loop {
        end = (end + step).min(input.len());
        let (used, progress) = decoder
            .decode(&input[consumed..end], &mut body, MAX_CHUNKED_BODY)
            .ok()?;
        consumed += used;
        assert!(body.len() <= MAX_CHUNKED_BODY);
        if progress == Progress::Done || end == input.len() {
            return Some((consumed, progress, body));
        }
    }
}

/// However the input is split, the chunked decoder reaches the same verdict, the same body
/// and stops at the same byte.
pub fn chunked_body(step: u8, data: &[u8]) {
    let whole = decode_chunked_in_steps(data, data.len().max(1));
    let split = decode_chunked_in_steps(data, usize::from(step).max(1));
    if let (Some(whole), Some(split)) = (&whole, &split) {
        assert_eq!(whole, split);
    } else if whole.is_some() {
        // An error seen only when split would mean the split changed the meaning.
        panic!("split input failed where whole input did not");
    }
}

const CONN_MAX_HEAD: usize = 512;
const CONN_MAX_BODY: usize = 2048;
const CONN_MAX_QUEUE: usize = 8192;
const CONN_MAX_WS: usize = 1024;
/// A chunked body's size or trailer line may wait whole in the input, up to this.
const CHUNK_LINE: usize = msgbus::http::chunked::MAX_LINE;

/// Arbitrary bytes, in arbitrary pieces, through one connection's session as the reactor
/// drives it (the session does no I/O, so no socket is needed): it never panics, keeps no more
/// input than its limits allow, queues no more output than its limit and one answer, and lets
/// no line break from the client into a value that becomes a header line.
pub fn connection(step: u8, data: &[u8]) {
    let cfg = Config {
        max_head: CONN_MAX_HEAD,
        max_body: CONN_MAX_BODY,
        max_queue: CONN_MAX_QUEUE,
        max_ws_message: Some(CONN_MAX_WS),
        // Every door open, so their parsers and state are driven too.
        martd: true,
        simple_comet: true,
        lhttp: true,
        ..Config::default()
    };
    let now = Instant::now();
    // The same session the server drives, with no socket at all: it does no I/O.
    let mut conn = Conn::new(Peer::Unix, now, &cfg);
    let mut bus = Bus::new(1, cfg.retention(), Duration::from_secs(60));
    let mut stats = Stats::default();
    let mut wires = Wires::default();
    let mut doors = msgbus::doors::open_with(&cfg, Some("key:secret\n"), &mut wires);
    let gate = Gate::new(None, None, cfg.max_subscriptions, cfg.max_publish_channels);
    for piece in data.chunks(usize::from(step).max(1)) {
        if !conn.wants_input(&cfg) {
            // The client reads what was answered: the queue empties.
            let _ = conn
                .outq
                .flush(usize::MAX, |iov| Ok(iov.iter().map(|s| s.len()).sum()));
            let _ = conn.on_drained(now);
        }
        conn.on_input(piece);
        for _ in 0..10_000 {
            let mut ctx = Ctx {
                key: 0,
                now,
                cfg: &cfg,
                bus: &mut bus,
                stats: &mut stats,
                gate: &gate,
                wires: &wires,
                doors: &mut doors,
                door_id: 0,
                upstream: None,
            };
            match conn.advance(&mut ctx) {
                Next::Wait => break,
                Next::Close(_) => return,
                Next::Publish(mut publish) => {
                    let req = std::mem::take(&mut publish.req);
                    assert!(req.body.len() <= CONN_MAX_BODY.max(CONN_MAX_WS));
                    let outcome = match req.admit(&publish.who, &gate) {
                        Err(refusal) => Err(Refused::Gate(refusal)),
                        Ok(admitted) => admitted
                            .into_iter()
                            .map(|p| bus.publish(p, now).map_err(Refused::Bus))
                            .last()
                            .expect("one channel at least"),
                    };
                    // Whatever a client sent, no line break reaches a value that becomes a
                    // header line on a subscriber's stream: the gate refused it.
                    if let Ok(msg) = &outcome {
                        let lines = [
                            Some(&*msg.content_type),
                            msg.sender.as_deref(),
                            msg.event.as_deref(),
                        ];
                        assert!(lines.iter().flatten().all(|v| is_clean_line(v.as_bytes())));
                    }
                    let outcome = outcome.map(|msg| Published {
                        id: msg.id,
                        recipients: 0,
                    });
                    conn.answer_publish(&mut publish, outcome, &mut doors);
                }
                Next::Status(reply, _) => conn.answer_status(reply, "application/json", "{}"),
                Next::Delete(delete) => conn.answer_delete(delete.reply, Ok(0)),
                // Only a node joined to a cluster reads back from its stream.
                Next::Fetch(_) => unreachable!("no cluster here"),
                Next::OpenFile(ask) => {
                    conn.answer_file(&ask, None);
                }
            }
        }
        assert!(
            conn.buffered_input()
                <= CONN_MAX_HEAD.max(CONN_MAX_WS + 14).max(CHUNK_LINE) + piece.len(),
            "{} bytes of input kept",
            conn.buffered_input()
        );
        assert!(conn.outq.queued_bytes() <= CONN_MAX_QUEUE + 64 * 1024);
    }
}

/// The obvious recursive definition, exponential but fine on short inputs.
fn glob_reference(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, _) => text.is_empty(),
        (Some(b'*'), _) => {
            glob_reference(&pattern[1..], text)
                || (!text.is_empty() && glob_reference(pattern, &text[1..]))
        }
        (Some(&p), Some(&t)) if p == b'?' || p == t => glob_reference(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// The iterative matcher agrees with the recursive definition; filters never panic.
pub fn glob_filter(pattern: &[u8], text: &[u8], list: &str, value: &str) {
    if pattern.len() <= 12 && text.len() <= 16 {
        assert_eq!(glob_match(pattern, text), glob_reference(pattern, text));
    }
    let filter = Filter::new(Some(list), Some(list));
    let _ = filter.accepts(value, Some(value));
    let _ = filter.accepts(value, None);
}

/// Parsing arbitrary text never panics; a parsed date formats and parses back to itself.
pub fn http_date(data: &str) {
    use msgbus::http::date::{format_http_date, parse_http_date};
    if let Some(secs) = parse_http_date(data) {
        assert_eq!(parse_http_date(&format_http_date(secs)), Some(secs));
    }
}

/// A head is never longer than its input or the limit, and a complete head parses the same
/// from exactly its own bytes.
pub fn http_head(data: &[u8]) {
    use msgbus::http::request::{parse_head, Parsed};
    if let Ok(Parsed::Complete(request, len)) = parse_head(data, 4096, 1 << 20) {
        assert!(len <= data.len() && len <= 4096);
        assert_eq!(
            parse_head(&data[..len], 4096, 1 << 20),
            Ok(Parsed::Complete(request, len))
        );
    }
}

/// Verifying arbitrary text never panics and never grants anything without the key; a token
/// signed with the key over any claims object verifies, or fails only on its claims' content.
pub fn jwt_token(token: &str, claims: &str) {
    let key = msgbus::auth::JwtKey::new(b"fuzz");
    if let Ok(grant) = key.verify(token, 1_800_000_000) {
        // Only a token with our signature gets here: the fuzzer cannot forge HMAC-SHA256.
        assert!(token.split('.').count() == 3);
        let _ = grant.may_publish("x");
    }
    let signed = key.sign(claims);
    if let Err(e) = key.verify(&signed, 1_800_000_000) {
        let why = e.to_string();
        assert!(
            why != "bad token signature" && why != "token algorithm must be HS256",
            "{why}"
        );
    }
}

/// Nothing a client sends panics the lhttp parser or the multipart offsets; the lenient
/// parser agrees with the strict one wherever that succeeds; a well-formed message survives
/// encode → parse unchanged (`fuzz_check`, the codec's own invariant); parts never leave the
/// body.
pub fn lhttp_message(data: &[u8]) {
    use msgbus::doors::lhttp::codec::{
        fuzz_check, parse, parse_lenient, parse_multipart, parse_offsets, split_parts,
    };
    fuzz_check(data);
    for parsed in [parse(data), parse_lenient(data)] {
        let Ok(msg) = parsed else { continue };
        if let Some(value) = msg.header(b"multipart") {
            let _ = parse_multipart(value, &msg.body);
            if let Some(offsets) = parse_offsets(value) {
                if let Ok(parts) = split_parts(&offsets, &msg.body) {
                    let total: usize = parts.iter().map(|p| p.len()).sum();
                    assert!(total <= msg.body.len());
                }
            }
        }
    }
}

/// decode(encode(message)) == message, for any body and sender, split at any point.
pub fn multipart_parts(body: Vec<u8>, sender: Option<String>, split: u8) {
    use msgbus::transport::multipart::{encode_part, PartDecoder};
    let sender = sender.filter(|s| !s.contains(['\n', '\r']) && s.trim() == s && !s.is_empty());
    let msg = Message::new(
        1,
        "c".into(),
        "text/plain".into(),
        sender.as_deref().map(Into::into),
        body.into(),
    );
    let stream = [b"--00MsgBus00\n".to_vec(), encode_part(&msg, true, false)].concat();
    let mut decoder = PartDecoder::new(1 << 20);
    let split = usize::from(split).min(stream.len());
    decoder.push(&stream[..split]);
    let early = decoder.next_part().unwrap();
    decoder.push(&stream[split..]);
    let part = early.or_else(|| decoder.next_part().unwrap()).unwrap();
    assert_eq!(part.body, &*msg.body);
    assert_eq!(part.header("From"), msg.sender.as_deref());
}

/// Parsing never panics; what is encoded for a path decodes back to itself.
pub fn query_string(data: &str) {
    use msgbus::http::query::{percent_decode, percent_encode_path, split_target, Query};
    let (path, query) = split_target(data);
    assert!(path.len() + query.len() <= data.len());
    if let Ok(q) = Query::parse(query) {
        for (key, _) in q.pairs() {
            assert!(q.get(key).is_some());
        }
    }
    let _ = percent_decode(data.as_bytes(), true);
    let encoded = percent_encode_path(data);
    assert!(!encoded.contains(['?', '#', ' ']));
    assert_eq!(
        percent_decode(encoded.as_bytes(), false).unwrap(),
        data.as_bytes()
    );
}

/// What an EventSource makes of one event: its fields, with `data` lines joined by LF.
fn parse_sse_event(text: &str) -> (Option<String>, Option<String>, String) {
    let (mut id, mut event, mut data) = (None, None, Vec::new());
    let body = text
        .strip_suffix("\n\n")
        .expect("an event ends with a blank line");
    for line in body.split('\n') {
        let (field, value) = line.split_once(": ").expect("field: value");
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = Some(value.to_string()),
            "data" => data.push(value),
            other => panic!("unexpected field {other}"),
        }
    }
    (id, event, data.join("\n"))
}

/// decode(encode(x)) == x: the browser gets the body back with its line ends as LF, the id
/// and the event name; no line break in the body can start a field of its own.
pub fn sse_event(id: u64, event: Option<String>, body: String) {
    use msgbus::transport::sse::{encode_event, valid_event_name};
    let event = event.filter(|e| valid_event_name(e));
    let mut msg = Message::new(
        id,
        "c".into(),
        "text/plain".into(),
        None,
        body.as_bytes().into(),
    );
    msg.event = event.as_deref().map(Into::into);
    let encoded = String::from_utf8(encode_event(&msg, false)).expect("an event is UTF-8");
    let (got_id, got_event, got_data) = parse_sse_event(&encoded);
    assert_eq!(got_id, Some(id.to_string()));
    assert_eq!(got_event, event);
    assert_eq!(got_data, body.replace("\r\n", "\n").replace('\r', "\n"));
}

/// An lhttp `upstream:` URL, headers and answer: parsing never panics; a URL that parses has
/// a target starting with '/' and no way out of its allowed prefix; whatever the message
/// headers hold, the request written has exactly the header lines it should and no line break
/// of theirs.
pub fn upstream_url(url: &str, prefix: &str, headers: &[(Vec<u8>, Vec<u8>)], answer: &[u8]) {
    use msgbus::upstream::request::{encode_request, response_status, HttpUrl};
    let _ = response_status(answer);
    let Ok(url) = HttpUrl::parse(url) else {
        return;
    };
    assert!(url.target.starts_with('/'));
    assert!(!url.target.contains(['\r', '\n', ' ', '#']));
    let path = url.target.split('?').next().unwrap_or("");
    for segment in path.split('/') {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        assert!(decoded != "." && decoded != "..", "{path}");
    }
    if let Ok(prefix) = HttpUrl::parse(prefix) {
        if url.is_under(&prefix) {
            assert_eq!((&url.host, url.port), (&prefix.host, prefix.port));
            assert!(url.target.starts_with(&prefix.target));
        }
    }
    let request = encode_request(b"POST", &url, headers, Some(b"body"));
    let head_end = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = &request[..head_end + 2];
    // Every line ends in CRLF and nothing else breaks a line.
    let crlf = head.windows(2).filter(|w| w == b"\r\n").count();
    let lf = head.iter().filter(|&&b| b == b'\n').count();
    let cr = head.iter().filter(|&&b| b == b'\r').count();
    assert_eq!((crlf, crlf), (lf, cr));
    assert_eq!(&request[head_end + 4..], b"body");
    let host_lines = head
        .split(|&b| b == b'\n')
        .filter(|l| l.len() >= 5 && l[..5].eq_ignore_ascii_case(b"host:"))
        .count();
    assert_eq!(host_lines, 1);
}

const MAX_WS_MESSAGE: usize = 1 << 16;

/// Feeds the pieces in turn, as the reactor would, collecting events until the first error.
fn decode_ws(pieces: &[&[u8]]) -> (Vec<Event>, Option<CloseReason>) {
    let mut decoder = FrameDecoder::new(MAX_WS_MESSAGE);
    let mut events = Vec::new();
    for &piece in pieces {
        let mut rest = piece;
        loop {
            let (used, outcome) = decoder.decode(rest);
            rest = &rest[used..];
            match outcome {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(reason) => return (events, Some(reason)),
            }
        }
        assert!(rest.is_empty(), "Ok(None) must mean every byte was used");
    }
    (events, None)
}

/// Whatever the bytes and wherever they are split, the events and the verdict are the same;
/// and a payload masked into client frames, cut in two fragments, decodes back to itself.
pub fn websocket_frames(split: u8, mask: [u8; 4], payload: Vec<u8>, stream: &[u8]) {
    let at = stream.len() * usize::from(split) / 255;
    assert_eq!(
        decode_ws(&[stream]),
        decode_ws(&[&stream[..at], &stream[at..]])
    );

    if payload.len() > MAX_WS_MESSAGE {
        return;
    }
    let text = std::str::from_utf8(&payload).is_ok();
    let opcode = if text { Opcode::Text } else { Opcode::Binary };
    // Cut anywhere, even inside a character, with a ping between the fragments.
    let cut = payload.len() * usize::from(split) / 255;
    let frames = [
        encode_client_frame(opcode, false, &payload[..cut], mask),
        encode_client_frame(Opcode::Ping, true, &mask, mask),
        encode_client_frame(Opcode::Continuation, true, &payload[cut..], mask),
    ]
    .concat();
    let want = vec![Event::Ping(mask.to_vec()), Event::Message { text, payload }];
    assert_eq!(decode_ws(&[&frames]), (want, None));
}

/// Bytes from a NATS server, in any shape: parsing never panics; an operation found takes no
/// more bytes than it was given, and the same operation is found in exactly those bytes (so
/// incremental reads agree with whole ones). Any channel name maps to a subject and back. The
/// same bytes as a JetStream API answer, and the text as a delivery's ack subject, give only
/// values in range: sequences in 1..2^63 (so `+ 1` never wraps), names without control bytes;
/// an ack subject parsed and written again parses the same.
pub fn nats_proto(bytes: &[u8], channel: &str) {
    use msgbus::cluster::jetstream::{self as js, is_name};
    use msgbus::cluster::proto::{channel_for, parse, subject_for};
    if let Ok(Some((op, used))) = parse(bytes, 4096) {
        assert!(used > 0 && used <= bytes.len());
        assert_eq!(parse(&bytes[..used], 4096), Ok(Some((op, used))));
    }
    let mapped = channel_for("msgbus", &subject_for("msgbus", channel));
    assert_eq!(mapped.as_deref(), Some(channel));
    if let Ok(ack) = js::parse_pub_ack(bytes) {
        assert!(ack.seq > 0 && ack.seq < 1 << 63 && is_name(&ack.stream));
    }
    if let Ok(info) = js::parse_stream_info(bytes) {
        assert!(info.first_seq < 1 << 63 && info.last_seq < 1 << 63);
    }
    if let Ok(created) = js::parse_consumer_created(bytes) {
        assert!(is_name(&created.name) && created.pending < 1 << 63);
    }
    let _ = js::parse_account_info(bytes);
    if let Some(code) = js::status(bytes) {
        assert!((100..600).contains(&code));
    }
    if let Some(ack) = js::parse_ack_reply(channel) {
        assert!(ack.stream_seq > 0 && ack.stream_seq < 1 << 63);
        assert!(is_name(ack.stream) && is_name(ack.consumer));
        let again = format!(
            "$JS.ACK.{}.{}.{}.{}.{}.{}.{}",
            ack.stream,
            ack.consumer,
            ack.delivered,
            ack.stream_seq,
            ack.consumer_seq,
            ack.timestamp,
            ack.pending
        );
        assert_eq!(js::parse_ack_reply(&again), Some(ack));
    }
}

/// A PROXY header parses the same from exactly its own bytes, every shorter prefix of it is
/// Partial (so the reactor may feed it in any pieces), it is never longer than the limits,
/// and what it names encodes as v1 and v2 and parses back.
pub fn proxy_header(data: &[u8]) {
    use msgbus::http::proxy::{encode_v1, encode_v2, parse_proxy_header, Parsed, V2_MAX};
    let Ok(Parsed::Complete(header, len)) = parse_proxy_header(data) else {
        return;
    };
    assert!(len <= data.len() && len <= V2_MAX);
    assert_eq!(
        parse_proxy_header(&data[..len]),
        Ok(Parsed::Complete(header, len))
    );
    for end in 0..len {
        assert_eq!(
            parse_proxy_header(&data[..end]),
            Ok(Parsed::Partial),
            "{end}"
        );
    }
    // Parsed headers pair addresses of one family, which both versions carry exactly.
    let v1 = encode_v1(&header);
    assert_eq!(
        parse_proxy_header(v1.as_bytes()),
        Ok(Parsed::Complete(header, v1.len()))
    );
    let v2 = encode_v2(&header);
    assert_eq!(
        parse_proxy_header(&v2),
        Ok(Parsed::Complete(header, v2.len()))
    );
}

/// Bytes from an AMQP broker: a frame cut from the front is the same cut from exactly its own
/// bytes, none from a shorter prefix, and re-encodes to those bytes; a method or content header
/// that decodes (from a frame, or from the bytes as they are) re-encodes to one that decodes
/// the same: decode(encode(x)) == x.
pub fn amqp_frames(bytes: &[u8]) {
    use msgbus::amqp::codec::{
        decode_content_header, decode_method, encode_content_header, encode_frame, encode_method,
        parse_frame,
    };
    let round_trip = |payload: &[u8]| {
        if let Ok(method) = decode_method(payload) {
            assert_eq!(decode_method(&encode_method(&method)), Ok(method));
        }
        if let Ok(header) = decode_content_header(payload) {
            assert_eq!(
                decode_content_header(&encode_content_header(&header)),
                Ok(header)
            );
        }
    };
    round_trip(bytes);
    if let Ok(Some((frame, used))) = parse_frame(bytes, 4096) {
        assert!(used > 0 && used <= bytes.len());
        assert_eq!(
            parse_frame(&bytes[..used], 4096),
            Ok(Some((frame.clone(), used)))
        );
        assert_eq!(parse_frame(&bytes[..used - 1], 4096), Ok(None));
        let mut again = Vec::new();
        encode_frame(&mut again, frame.kind, frame.channel, frame.payload);
        assert_eq!(again, &bytes[..used]);
        round_trip(frame.payload);
    }
}

/// `log_record`: decoding arbitrary bytes never panics, and a record that decodes re-encodes to
/// exactly the bytes it was read from (one spelling per record, so nothing the checksum passes
/// can be read two ways); a record cut anywhere short is told apart as cut short. The same bytes
/// are also tried as a payload under a right checksum, so that the payload parser is reached.
/// And a door's registration made of the same bytes reads back as itself (decode(encode(x)) == x).
pub fn log_record(data: &[u8]) {
    use msgbus::store::record::{crc32c, DecodeError, DoorRecord, Record};
    let (key, value) = data.split_at(data.len() / 2);
    let door = Record::Door(DoorRecord {
        door: String::from_utf8_lossy(value).into_owned(),
        key: key.to_vec(),
        value: (value.first() != Some(&0)).then(|| value.to_vec()),
    });
    let mut bytes = Vec::new();
    door.encode(&mut bytes);
    assert_eq!(Record::decode(&bytes), Ok((door, bytes.len())));
    let mut framed = Vec::with_capacity(data.len() + 8);
    framed.extend_from_slice(&(data.len() as u32).to_le_bytes());
    framed.extend_from_slice(&crc32c(data).to_le_bytes());
    framed.extend_from_slice(data);
    for bytes in [data, &framed[..]] {
        if let Ok((record, len)) = Record::decode(bytes) {
            let mut again = Vec::new();
            record.encode(&mut again);
            assert_eq!(again, &bytes[..len]);
            for cut in [0, len / 2, len - 1] {
                assert_eq!(
                    Record::decode(&bytes[..cut]).unwrap_err(),
                    DecodeError::Short
                );
            }
        }
    }
}

/// Frames read one after another from arbitrary bytes: parsing never panics, and a frame that
/// parses, written back by the codec, parses to a frame that writes back the same bytes.
pub fn h2_frames(data: &[u8]) {
    use msgbus::h2::frame::{self, Head, HEADER_LEN};
    let mut rest = data;
    while let Some(head) = Head::parse(rest) {
        let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + head.len) else {
            return;
        };
        rest = &rest[HEADER_LEN + head.len..];
        let Ok(parsed) = frame::parse(&head, payload) else {
            continue;
        };
        let mut once = Vec::new();
        parsed.encode(&mut once);
        let again = Head::parse(&once).expect("a whole header");
        assert_eq!(again.len, once.len() - HEADER_LEN);
        let reparsed = frame::parse(&again, &once[HEADER_LEN..]).expect("what we write parses");
        let mut twice = Vec::new();
        reparsed.encode(&mut twice);
        assert_eq!(once, twice);
    }
}

const HPACK_TABLE: usize = 4096;
const HPACK_LIST: usize = 8192;

/// A header block of arbitrary bytes: no panic, the table within its size, a list within its
/// limit; and what decodes, encoded by our encoder, decodes to the same list on a fresh decoder.
pub fn hpack(data: &[u8]) {
    use msgbus::h2::hpack::{Decoded, Decoder, Encoder};
    let mut decoder = Decoder::new(HPACK_TABLE);
    let mut fields = Vec::new();
    // Twice on one decoder, so the second block meets the table the first left.
    for _ in 0..2 {
        let Ok(decoded) = decoder.decode(data, HPACK_LIST, &mut fields) else {
            return;
        };
        assert!(decoder.table_size() <= HPACK_TABLE);
        if decoded == Decoded::TooLarge {
            assert!(fields.is_empty());
            continue;
        }
        assert!(fields.iter().map(|f| f.size()).sum::<usize>() <= HPACK_LIST);
        let mut block = Vec::new();
        Encoder::new().encode(
            fields.iter().map(|f| (&f.name[..], &f.value[..])),
            &mut block,
        );
        let mut back = Vec::new();
        let fresh = Decoder::new(0).decode(&block, usize::MAX, &mut back);
        assert_eq!(fresh, Ok(Decoded::Complete));
        assert_eq!(back, fields);
    }
}

/// Runs one HTTP/2 connection on `data` (after the preface) fed in pieces of `step` bytes,
/// keeping unread bytes as the reactor does; returns its events and output, and checks the
/// bounds: unread input within one frame, output whole frames.
fn h2_run(step: usize, data: &[u8]) -> (Vec<msgbus::h2::Event>, Vec<u8>) {
    use msgbus::h2::frame::{Head, HEADER_LEN};
    use msgbus::h2::{Connection, Limits, PREFACE};
    let mut conn = Connection::new(Limits::default());
    let mut input = PREFACE.to_vec();
    input.extend_from_slice(data);
    let now = Instant::now();
    let mut held = Vec::new();
    let mut events = Vec::new();
    // Output is taken once at the end in both runs: the bound on output the peer leaves
    // unread counts what was not taken.
    for piece in input.chunks(step) {
        held.extend_from_slice(piece);
        let used = conn.receive(&held, now);
        held.drain(..used);
        assert!(held.len() < HEADER_LEN + 16_384 + step);
        events.extend(std::iter::from_fn(|| conn.poll_event()));
    }
    // Answer the requests as a server would, after all input so the split cannot change
    // when, and so the output paths run too.
    for event in &events {
        if let msgbus::h2::Event::Request(r) = event {
            let _ = conn.send_headers(r.stream, [(&b":status"[..], &b"200"[..])], false);
            let _ = conn.send_data(r.stream, b"hello", true);
        }
    }
    let out = conn.take_output();
    let mut at = 0;
    while at < out.len() {
        let head = Head::parse(&out[at..]).expect("output is whole frames");
        at += HEADER_LEN + head.len;
    }
    assert_eq!(at, out.len());
    (events, out)
}

/// The connection state machine gives the same events and output however its input is split.
pub fn h2_connection(step: u8, data: &[u8]) {
    let whole = h2_run(data.len().max(1) + 24, data);
    let split = h2_run(usize::from(step).max(1), data);
    assert_eq!(whole, split);
}
