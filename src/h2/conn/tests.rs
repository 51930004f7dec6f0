use std::time::{Duration, Instant};

use super::*;
use crate::h2::frame::*;

/// A frame the server wrote, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl Out {
    fn goaway_code(&self) -> Option<ErrorCode> {
        (self.kind == GOAWAY)
            .then(|| ErrorCode(u32::from_be_bytes(self.payload[4..8].try_into().unwrap())))
    }

    fn rst_code(&self) -> Option<ErrorCode> {
        (self.kind == RST_STREAM)
            .then(|| ErrorCode(u32::from_be_bytes(self.payload[..4].try_into().unwrap())))
    }
}

fn frames(bytes: &[u8]) -> Vec<Out> {
    let mut at = 0;
    let mut list = Vec::new();
    while at < bytes.len() {
        let h = Head::parse(&bytes[at..]).expect("whole frames");
        list.push(Out {
            kind: h.kind,
            flags: h.flags,
            stream: h.stream,
            payload: bytes[at + 9..at + 9 + h.len].to_vec(),
        });
        at += 9 + h.len;
    }
    list
}

/// A server connection driven by a test client that encodes with our own encoders.
struct Peer {
    conn: Connection,
    enc: hpack::Encoder,
    now: Instant,
}

const GET: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/msgbus/a"),
    (":authority", "x"),
];

fn head_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Head {
        len: payload.len(),
        kind,
        flags,
        stream,
    }
    .encode()
    .to_vec();
    out.extend_from_slice(payload);
    out
}

impl Peer {
    fn with(limits: Limits) -> Peer {
        let mut p = Peer {
            conn: Connection::new(limits),
            enc: hpack::Encoder::new(),
            now: Instant::now(),
        };
        let mut hello = PREFACE.to_vec();
        encode_settings(&mut hello, &[]);
        p.feed(&hello);
        p
    }

    fn new() -> Peer {
        Peer::with(Limits::default())
    }

    /// Feeds bytes and checks all were used (tests feed whole frames).
    fn feed(&mut self, bytes: &[u8]) {
        let used = self.conn.receive(bytes, self.now);
        assert_eq!(used, bytes.len());
    }

    fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        self.enc.encode(
            fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &mut block,
        );
        block
    }

    fn headers(&mut self, stream: u32, fields: &[(&str, &str)], end_stream: bool) {
        let block = self.block(fields);
        let mut out = Vec::new();
        encode_headers(&mut out, stream, &block, end_stream, 16_384);
        self.feed(&out);
    }

    fn data(&mut self, stream: u32, data: &[u8], end_stream: bool) {
        let mut out = Vec::new();
        encode_data(&mut out, stream, data, end_stream);
        self.feed(&out);
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    fn out(&mut self) -> Vec<Out> {
        frames(&self.conn.take_output())
    }

    /// The GOAWAY code in the output, if any.
    fn goaway(&mut self) -> Option<ErrorCode> {
        self.out().iter().find_map(Out::goaway_code)
    }

    fn rst(&mut self, stream: u32) -> Option<ErrorCode> {
        self.out()
            .iter()
            .filter(|f| f.stream == stream)
            .find_map(Out::rst_code)
    }

    /// Opens stream `id` with a GET and takes its request event and output.
    fn open(&mut self, id: u32) {
        self.headers(id, GET, true);
        assert!(
            matches!(self.events()[..], [Event::Request(Request { stream, .. })] if stream == id)
        );
        self.conn.take_output();
    }
}

#[test]
fn handshake_and_a_request() {
    let mut conn = Connection::new(Limits::default());
    let first = frames(&conn.take_output());
    assert_eq!(first[0].kind, SETTINGS);
    let params: Vec<_> = settings(&first[0].payload).collect();
    assert!(params.contains(&(SETTINGS_ENABLE_CONNECT_PROTOCOL, 1)));
    assert!(params.contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 128)));
    assert_eq!(first[1].kind, WINDOW_UPDATE);

    let mut p = Peer {
        conn,
        enc: hpack::Encoder::new(),
        now: Instant::now(),
    };
    let mut hello = PREFACE.to_vec();
    encode_settings(&mut hello, &[(SETTINGS_INITIAL_WINDOW_SIZE, 1000)]);
    p.feed(&hello);
    assert_eq!(
        p.out(),
        [Out {
            kind: SETTINGS,
            flags: FLAG_ACK,
            stream: 0,
            payload: vec![]
        }]
    );
    p.headers(
        1,
        &[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/x?y"),
            (":authority", "h"),
            ("accept", "text/event-stream"),
        ],
        true,
    );
    let Event::Request(req) = &p.events()[0] else {
        panic!()
    };
    assert_eq!(
        (
            req.stream,
            &req.method[..],
            &req.scheme[..],
            &req.path[..],
            req.authority.as_deref(),
            req.end_stream
        ),
        (
            1,
            &b"GET"[..],
            &b"https"[..],
            &b"/x?y"[..],
            Some(&b"h"[..]),
            true
        )
    );
    assert_eq!(
        req.fields,
        [Field {
            name: b"accept".to_vec(),
            value: b"text/event-stream".to_vec()
        }]
    );
    assert_eq!(p.conn.send_window(1), 1000);
}

#[test]
fn input_split_anywhere_gives_the_same_events() {
    let mut input = PREFACE.to_vec();
    encode_settings(&mut input, &[]);
    let mut enc = hpack::Encoder::new();
    let mut block = Vec::new();
    enc.encode(
        GET.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        &mut block,
    );
    encode_headers(&mut input, 1, &block, false, 5);
    encode_data(&mut input, 1, b"body", true);
    encode_ping(&mut input, false, *b"pingpong");
    let now = Instant::now();
    let whole = {
        let mut c = Connection::new(Limits::default());
        assert_eq!(c.receive(&input, now), input.len());
        (
            std::iter::from_fn(|| c.poll_event()).collect::<Vec<_>>(),
            c.take_output(),
        )
    };
    assert_eq!(whole.0.len(), 2);
    for step in [1, 2, 7, 9, 10, 33] {
        let mut c = Connection::new(Limits::default());
        let mut held = Vec::new();
        for piece in input.chunks(step) {
            held.extend_from_slice(piece);
            let used = c.receive(&held, now);
            held.drain(..used);
        }
        assert!(held.is_empty(), "step {step}");
        let events: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
        assert_eq!((events, c.take_output()), whole, "step {step}");
    }
}

#[test]
fn preface_and_first_frame_rules() {
    let now = Instant::now();
    let mut c = Connection::new(Limits::default());
    c.take_output();
    assert_eq!(c.receive(b"PRI * HTTP/2.0\r\n", now), 0);
    assert!(!c.is_failed());
    c.receive(b"PRI * HTTP/2.0\r\n\r\nXX", now);
    assert!(c.is_failed());
    assert_eq!(
        frames(&c.take_output())[0].goaway_code(),
        Some(ErrorCode::PROTOCOL_ERROR)
    );

    let mut c = Connection::new(Limits::default());
    c.take_output();
    let mut input = PREFACE.to_vec();
    encode_ping(&mut input, false, [0; 8]);
    c.receive(&input, now);
    assert_eq!(
        frames(&c.take_output())[0].goaway_code(),
        Some(ErrorCode::PROTOCOL_ERROR)
    );
}

#[test]
fn request_heads_checked_as_rfc_9113_section_8() {
    let ok = |fields: &[(&str, &str)], connect: bool| {
        let mut list: Vec<Field> = fields
            .iter()
            .map(|(n, v)| Field {
                name: n.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
            })
            .collect();
        check_request(1, &mut list, true, connect).map(|_| ())
    };
    let base = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        base.iter().chain(extra).copied().collect()
    };
    for (fields, connect, want) in [
        (with(&[]), false, Ok(())),
        (
            with(&[("accept", "*/*"), ("te", "trailers")]),
            false,
            Ok(()),
        ),
        (
            with(&[("Accept", "x")]),
            false,
            Err("field name not a lowercase token"),
        ),
        (
            with(&[("connection", "close")]),
            false,
            Err("connection-specific field"),
        ),
        (
            with(&[("transfer-encoding", "chunked")]),
            false,
            Err("connection-specific field"),
        ),
        (
            with(&[("upgrade", "websocket")]),
            false,
            Err("connection-specific field"),
        ),
        (
            with(&[("te", "gzip")]),
            false,
            Err("te other than trailers"),
        ),
        (
            with(&[("x", "a\r\nb: c")]),
            false,
            Err("field value with CR, LF, NUL or edge whitespace"),
        ),
        (
            with(&[("x", " padded")]),
            false,
            Err("field value with CR, LF, NUL or edge whitespace"),
        ),
        (
            with(&[("x", "nul\0")]),
            false,
            Err("field value with CR, LF, NUL or edge whitespace"),
        ),
        (
            with(&[("content-length", "5"), ("content-length", "6")]),
            false,
            Err("content-length values differ"),
        ),
        (
            with(&[("content-length", "-1")]),
            false,
            Err("content-length not a number"),
        ),
        (
            with(&[("x", "1"), (":authority", "h")]),
            false,
            Err("pseudo-header after a regular field"),
        ),
        (
            with(&[(":status", "200")]),
            false,
            Err("unknown pseudo-header"),
        ),
        (
            with(&[(":path", "/again")]),
            false,
            Err("repeated pseudo-header"),
        ),
        (
            vec![(":method", "GET"), (":scheme", "http")],
            false,
            Err("no :scheme or :path"),
        ),
        (
            vec![(":method", "GET"), (":scheme", "http"), (":path", "")],
            false,
            Err("no :scheme or :path"),
        ),
        (
            vec![(":scheme", "http"), (":path", "/")],
            false,
            Err("no :method"),
        ),
        (
            vec![(":method", "CONNECT"), (":authority", "h:443")],
            false,
            Ok(()),
        ),
        (
            vec![(":method", "CONNECT"), (":authority", "h"), (":path", "/")],
            false,
            Err("CONNECT takes :authority alone"),
        ),
        (
            vec![
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "https"),
                (":path", "/msgbus/a"),
                (":authority", "h"),
            ],
            true,
            Ok(()),
        ),
        (
            vec![
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "https"),
                (":path", "/msgbus/a"),
                (":authority", "h"),
            ],
            false,
            Err(":protocol without extended CONNECT"),
        ),
        (
            with(&[(":protocol", "websocket")]),
            true,
            Err(":protocol without extended CONNECT"),
        ),
        (
            vec![
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "https"),
                (":path", "/"),
            ],
            true,
            Err("extended CONNECT without :authority"),
        ),
    ] {
        assert_eq!(ok(&fields, connect), want, "{fields:?}");
    }
}

#[test]
fn malformed_request_resets_only_its_stream() {
    let mut p = Peer::new();
    p.conn.take_output();
    p.headers(1, &[(":method", "GET"), (":path", "/")], true);
    assert_eq!(p.rst(1), Some(ErrorCode::PROTOCOL_ERROR));
    assert!(p.events().is_empty());
    p.open(3);
}

#[test]
fn stream_ids_must_be_odd_and_increase() {
    // A lower id than one before, or one that was used and has ended.
    for (first, second) in [(5, 3), (1, 1)] {
        let mut p = Peer::new();
        p.open(first);
        p.conn
            .send_headers(first, [(&b":status"[..], &b"204"[..])], true)
            .unwrap();
        p.headers(second, GET, true);
        assert_eq!(
            p.goaway(),
            Some(ErrorCode::PROTOCOL_ERROR),
            "{first} then {second}"
        );
        assert!(p.conn.is_failed());
    }
    let mut p = Peer::new();
    p.conn.take_output();
    p.headers(2, GET, true);
    assert_eq!(p.goaway(), Some(ErrorCode::PROTOCOL_ERROR));
    // HEADERS again on a stream still open (half-closed remote): only that stream ends.
    let mut p = Peer::new();
    p.open(3);
    p.headers(3, GET, true);
    assert_eq!(p.rst(3), Some(ErrorCode::STREAM_CLOSED));
    assert!(!p.conn.is_failed());
}

#[test]
fn concurrent_streams_over_the_limit_are_refused() {
    let mut p = Peer::with(Limits {
        max_concurrent_streams: 2,
        ..Limits::default()
    });
    p.conn.take_output();
    p.open(1);
    p.open(3);
    p.headers(5, GET, true);
    assert_eq!(p.rst(5), Some(ErrorCode::REFUSED_STREAM));
    assert!(p.events().is_empty());
    // One ends (its response sent whole): a new one fits.
    p.conn
        .send_headers(1, [(&b":status"[..], &b"204"[..])], true)
        .unwrap();
    p.conn.take_output();
    p.open(7);
}

#[test]
fn header_list_over_the_limit_gets_431() {
    let mut p = Peer::with(Limits {
        max_header_list_size: 200,
        ..Limits::default()
    });
    p.conn.take_output();
    let big = "v".repeat(300);
    p.headers(
        1,
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("x-big", &big),
        ],
        false,
    );
    let out = p.out();
    assert_eq!(out[0].kind, HEADERS);
    assert_eq!(out[0].flags & FLAG_END_STREAM, FLAG_END_STREAM);
    let mut fields = Vec::new();
    hpack::Decoder::new(4096)
        .decode(&out[0].payload, 1000, &mut fields)
        .unwrap();
    assert_eq!(
        fields,
        [Field {
            name: b":status".to_vec(),
            value: b"431".to_vec()
        }]
    );
    assert_eq!(out[1].rst_code(), Some(ErrorCode::NO_ERROR));
    assert!(p.events().is_empty());
    // HPACK is still in step: the next request decodes.
    p.open(3);
}

#[test]
fn continuation_rules_and_flood() {
    // Interrupted by another frame.
    let mut p = Peer::new();
    p.conn.take_output();
    let block = p.block(GET);
    p.feed(&head_frame(HEADERS, 0, 1, &block[..2]));
    p.feed(&head_frame(PING, 0, 0, &[0; 8]));
    assert_eq!(p.goaway(), Some(ErrorCode::PROTOCOL_ERROR));

    // On another stream.
    let mut p = Peer::new();
    p.conn.take_output();
    let block = p.block(GET);
    p.feed(&head_frame(HEADERS, 0, 1, &block[..2]));
    p.feed(&head_frame(CONTINUATION, FLAG_END_HEADERS, 3, &block[2..]));
    assert_eq!(p.goaway(), Some(ErrorCode::PROTOCOL_ERROR));

    // Without HEADERS.
    let mut p = Peer::new();
    p.conn.take_output();
    p.feed(&head_frame(CONTINUATION, FLAG_END_HEADERS, 1, &[0x82]));
    assert_eq!(p.goaway(), Some(ErrorCode::PROTOCOL_ERROR));

    // A flood of empty CONTINUATIONs never ending the block.
    let mut p = Peer::new();
    p.conn.take_output();
    let block = p.block(GET);
    p.feed(&head_frame(HEADERS, 0, 1, &block));
    let mut flood = Vec::new();
    for _ in 0..1000 {
        flood.extend_from_slice(&head_frame(CONTINUATION, 0, 1, &[]));
    }
    assert_eq!(p.conn.receive(&flood, p.now), flood.len());
    assert_eq!(p.goaway(), Some(ErrorCode::ENHANCE_YOUR_CALM));
    assert!(matches!(
        p.events()[..],
        [Event::Failed {
            code: ErrorCode::ENHANCE_YOUR_CALM,
            why: "CONTINUATION flood"
        }]
    ));

    // A block growing past what any list within the limit needs.
    let mut p = Peer::with(Limits {
        max_header_list_size: 1000,
        ..Limits::default()
    });
    p.conn.take_output();
    p.feed(&head_frame(HEADERS, 0, 1, &[0; 2000]));
    p.feed(&head_frame(CONTINUATION, 0, 1, &[0; 2000]));
    assert_eq!(p.goaway(), Some(ErrorCode::ENHANCE_YOUR_CALM));

    // Split across CONTINUATIONs within the limits: fine.
    let mut p = Peer::new();
    p.conn.take_output();
    let block = p.block(GET);
    p.feed(&head_frame(HEADERS, FLAG_END_STREAM, 1, &block[..1]));
    p.feed(&head_frame(CONTINUATION, 0, 1, &block[1..3]));
    p.feed(&head_frame(CONTINUATION, FLAG_END_HEADERS, 1, &block[3..]));
    assert!(matches!(
        p.events()[..],
        [Event::Request(Request {
            stream: 1,
            end_stream: true,
            ..
        })]
    ));
}

#[test]
fn rapid_reset_ends_the_connection_and_the_budget_refills() {
    let mut p = Peer::with(Limits {
        reset_burst: 10,
        reset_rate: 5,
        ..Limits::default()
    });
    p.conn.take_output();
    let mut id = 1;
    for _ in 0..10 {
        p.headers(id, GET, false);
        p.feed(&head_frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
        id += 2;
    }
    assert!(!p.conn.is_failed());
    let events = p.events();
    assert_eq!(events.len(), 20);
    assert_eq!(
        events[1],
        Event::Reset {
            stream: 1,
            code: ErrorCode::CANCEL
        }
    );
    // One second later, five more are fine; the sixth is not.
    p.now += Duration::from_secs(1);
    for _ in 0..5 {
        p.headers(id, GET, false);
        p.feed(&head_frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
        id += 2;
    }
    assert!(!p.conn.is_failed());
    p.headers(id, GET, false);
    p.feed(&head_frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    assert_eq!(p.goaway(), Some(ErrorCode::ENHANCE_YOUR_CALM));
}

#[test]
fn ping_and_settings_floods() {
    let mut p = Peer::with(Limits {
        control_burst: 5,
        control_rate: 1,
        ..Limits::default()
    });
    p.conn.take_output();
    for i in 0..5u8 {
        p.feed(&head_frame(PING, 0, 0, &[i; 8]));
    }
    let acks = p.out();
    assert_eq!(acks.len(), 5);
    assert_eq!(
        acks[4],
        Out {
            kind: PING,
            flags: FLAG_ACK,
            stream: 0,
            payload: vec![4; 8]
        }
    );
    // PING acks from the peer cost nothing.
    p.feed(&head_frame(PING, FLAG_ACK, 0, &[9; 8]));
    assert!(p.out().is_empty());
    p.feed(&head_frame(PING, 0, 0, &[5; 8]));
    assert_eq!(p.goaway(), Some(ErrorCode::ENHANCE_YOUR_CALM));

    let mut p = Peer::with(Limits {
        control_burst: 5,
        control_rate: 1,
        ..Limits::default()
    });
    // The client's first SETTINGS counted one.
    for _ in 0..4 {
        p.feed(&head_frame(SETTINGS, 0, 0, &[]));
    }
    assert!(!p.conn.is_failed());
    p.feed(&head_frame(SETTINGS, 0, 0, &[]));
    assert_eq!(p.goaway(), Some(ErrorCode::ENHANCE_YOUR_CALM));
}

#[test]
fn peer_that_does_not_read_its_acks_is_cut_off() {
    let mut p = Peer::with(Limits {
        control_burst: 1000,
        max_pending_output: 1000,
        ..Limits::default()
    });
    p.conn.take_output();
    let mut flood = Vec::new();
    for _ in 0..100 {
        flood.extend_from_slice(&head_frame(PING, 0, 0, &[0; 8]));
    }
    p.feed(&flood);
    assert!(p.conn.is_failed());
    assert_eq!(p.goaway(), Some(ErrorCode::ENHANCE_YOUR_CALM));
}

#[test]
fn empty_data_flood() {
    let mut p = Peer::with(Limits {
        control_burst: 3,
        ..Limits::default()
    });
    p.conn.take_output();
    p.headers(1, GET, false);
    for _ in 0..3 {
        p.data(1, b"", false);
    }
    assert!(!p.conn.is_failed());
    p.data(1, b"", false);
    assert_eq!(p.goaway(), Some(ErrorCode::ENHANCE_YOUR_CALM));
}

#[test]
fn send_windows_bound_data_and_grow_with_updates() {
    let mut p = Peer::new();
    p.open(1);
    p.open(3);
    assert_eq!(p.conn.send_window(1), 65_535);
    assert_eq!(
        p.conn.data_head(1, 65_536, false),
        Err(SendError::OverWindow)
    );
    // Frame size caps a single head too.
    assert_eq!(
        p.conn.data_head(1, 16_385, false),
        Err(SendError::OverWindow)
    );
    for _ in 0..3 {
        p.conn.data_head(1, 16_384, false).unwrap();
    }
    assert_eq!(p.conn.send_window(1), 65_535 - 49_152);
    // Stream 3 shares the connection window.
    assert_eq!(p.conn.send_window(3), 65_535 - 49_152);
    p.feed(&head_frame(WINDOW_UPDATE, 0, 3, &100_000u32.to_be_bytes()));
    assert_eq!(p.conn.send_window(3), 65_535 - 49_152);
    p.feed(&head_frame(WINDOW_UPDATE, 0, 0, &100_000u32.to_be_bytes()));
    // The connection's 16,383 left plus 100,000.
    assert_eq!(p.conn.send_window(3), 116_383);
    assert_eq!(p.conn.send_window(1), 65_535 - 49_152);
    assert_eq!(
        p.events(),
        [
            Event::WindowOpened { stream: 3 },
            Event::WindowOpened { stream: 0 }
        ]
    );
    // A shut stream window holds back only that stream.
    p.conn.data_head(1, 65_535 - 49_152, false).unwrap();
    assert_eq!(p.conn.send_window(1), 0);
    assert!(p.conn.send_window(3) > 0);
    // SETTINGS_INITIAL_WINDOW_SIZE moves every stream's window by the difference.
    p.feed(&head_frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0x27, 0x10]));
    assert_eq!(p.conn.send_window(1), 0);
    let head = p.conn.data_head(3, 10, true).unwrap();
    assert_eq!(head, [0, 0, 10, DATA, FLAG_END_STREAM, 0, 0, 0, 3]);
    assert!(!p.conn.can_send(3));
    assert_eq!(p.conn.data_head(3, 1, false), Err(SendError::NoStream));
}

#[test]
fn window_overflow_and_zero_increment() {
    let mut p = Peer::new();
    p.open(1);
    p.feed(&head_frame(WINDOW_UPDATE, 0, 1, &MAX_WINDOW.to_be_bytes()));
    assert_eq!(p.rst(1), Some(ErrorCode::FLOW_CONTROL_ERROR));
    assert_eq!(
        p.events(),
        [Event::Reset {
            stream: 1,
            code: ErrorCode::FLOW_CONTROL_ERROR
        }]
    );
    assert!(!p.conn.is_failed());

    let mut p = Peer::new();
    p.open(1);
    p.feed(&head_frame(WINDOW_UPDATE, 0, 1, &0u32.to_be_bytes()));
    assert_eq!(p.rst(1), Some(ErrorCode::PROTOCOL_ERROR));

    let mut p = Peer::new();
    p.feed(&head_frame(WINDOW_UPDATE, 0, 0, &MAX_WINDOW.to_be_bytes()));
    assert_eq!(p.goaway(), Some(ErrorCode::FLOW_CONTROL_ERROR));

    let mut p = Peer::new();
    p.conn.take_output();
    p.feed(&head_frame(WINDOW_UPDATE, 0, 9, &1u32.to_be_bytes()));
    assert_eq!(p.goaway(), Some(ErrorCode::PROTOCOL_ERROR));
}

#[test]
fn receive_windows_are_enforced_and_granted_back() {
    let limits = Limits {
        stream_window: 1000,
        connection_window: 65_535,
        ..Limits::default()
    };
    let mut p = Peer::with(limits.clone());
    p.conn.take_output();
    p.headers(
        1,
        &[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/msgbus/a"),
        ],
        false,
    );
    p.events();
    p.data(1, &[b'x'; 600], false);
    // Past half of the stream window: granted back.
    assert!(p.out().contains(&Out {
        kind: WINDOW_UPDATE,
        flags: 0,
        stream: 1,
        payload: 600u32.to_be_bytes().to_vec()
    }));
    // Granted back, the window is whole again: one byte more than it is too much.
    p.data(1, &[b'x'; 1001], false);
    assert_eq!(p.rst(1), Some(ErrorCode::FLOW_CONTROL_ERROR));

    // The connection's window is granted back at half too, so a peer within its windows
    // never runs dry.
    let mut p = Peer::with(Limits {
        stream_window: 1 << 20,
        ..limits
    });
    p.conn.take_output();
    p.headers(
        1,
        &[(":method", "POST"), (":scheme", "http"), (":path", "/")],
        false,
    );
    let chunk = vec![0u8; 16_384];
    p.data(1, &chunk, false);
    assert!(p.out().is_empty());
    p.data(1, &chunk, false);
    assert_eq!(
        p.out(),
        [Out {
            kind: WINDOW_UPDATE,
            flags: 0,
            stream: 0,
            payload: 32_768u32.to_be_bytes().to_vec()
        }]
    );
    for _ in 0..10 {
        p.data(1, &chunk, false);
    }
    assert!(!p.conn.is_failed());
}

#[test]
fn content_length_must_match_the_body() {
    let post = |len: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/"),
            ("content-length", len),
        ]
    };
    let mut p = Peer::new();
    p.conn.take_output();
    p.headers(1, &post("3"), false);
    p.data(1, b"abcd", true);
    assert_eq!(p.rst(1), Some(ErrorCode::PROTOCOL_ERROR));

    let mut p = Peer::new();
    p.conn.take_output();
    p.headers(1, &post("5"), false);
    p.data(1, b"abc", true);
    assert_eq!(p.rst(1), Some(ErrorCode::PROTOCOL_ERROR));

    let mut p = Peer::new();
    p.conn.take_output();
    p.headers(1, &post("3"), false);
    p.data(1, b"abc", true);
    assert!(p.rst(1).is_none());
    let events = p.events();
    assert_eq!(
        events[1],
        Event::Data {
            stream: 1,
            data: b"abc".to_vec(),
            end_stream: true
        }
    );
}

#[test]
fn data_on_idle_or_half_closed_streams() {
    let mut p = Peer::new();
    p.conn.take_output();
    p.data(1, b"x", false);
    assert_eq!(p.goaway(), Some(ErrorCode::PROTOCOL_ERROR));

    let mut p = Peer::new();
    p.open(1);
    p.data(1, b"x", false);
    assert_eq!(p.rst(1), Some(ErrorCode::STREAM_CLOSED));
    assert_eq!(
        p.events(),
        [Event::Reset {
            stream: 1,
            code: ErrorCode::STREAM_CLOSED
        }]
    );
    // A closed stream's late DATA is ignored, but counted for the connection.
    p.data(1, b"x", false);
    assert!(p.out().is_empty());
    assert!(!p.conn.is_failed());
}

#[test]
fn trailers_end_the_body() {
    let mut p = Peer::new();
    p.conn.take_output();
    p.headers(
        1,
        &[(":method", "POST"), (":scheme", "http"), (":path", "/")],
        false,
    );
    p.data(1, b"abc", false);
    p.headers(1, &[("x-checksum", "1")], true);
    let events = p.events();
    assert_eq!(
        events[2],
        Event::Data {
            stream: 1,
            data: vec![],
            end_stream: true
        }
    );

    let mut p = Peer::new();
    p.conn.take_output();
    p.headers(
        1,
        &[(":method", "POST"), (":scheme", "http"), (":path", "/")],
        false,
    );
    p.headers(1, &[("x-checksum", "1")], false);
    assert_eq!(p.rst(1), Some(ErrorCode::PROTOCOL_ERROR));
}

#[test]
fn bad_hpack_is_a_compression_error() {
    let mut p = Peer::new();
    p.conn.take_output();
    p.feed(&head_frame(
        HEADERS,
        FLAG_END_HEADERS | FLAG_END_STREAM,
        1,
        &[0xbe],
    ));
    assert_eq!(p.goaway(), Some(ErrorCode::COMPRESSION_ERROR));
}

#[test]
fn frames_over_our_size_limit() {
    let mut p = Peer::new();
    p.conn.take_output();
    let mut big = Head {
        len: 16_385,
        kind: DATA,
        flags: 0,
        stream: 1,
    }
    .encode()
    .to_vec();
    // Refused on the header alone, without waiting for the payload.
    big.extend_from_slice(&[0; 10]);
    p.conn.receive(&big, p.now);
    assert_eq!(p.goaway(), Some(ErrorCode::FRAME_SIZE_ERROR));
}

#[test]
fn graceful_goaway_lets_open_streams_finish() {
    let mut p = Peer::new();
    p.open(1);
    p.conn.go_away(ErrorCode::NO_ERROR);
    let out = p.out();
    assert_eq!(out[0].goaway_code(), Some(ErrorCode::NO_ERROR));
    assert_eq!(&out[0].payload[..4], &1u32.to_be_bytes());
    // A newer stream is ignored; the open one goes on.
    p.headers(3, GET, true);
    assert!(p.events().is_empty());
    assert!(!p.conn.is_done());
    p.conn
        .send_headers(1, [(&b":status"[..], &b"200"[..])], false)
        .unwrap();
    assert_eq!(p.conn.send_data(1, b"bye", true), Ok(3));
    assert!(p.conn.is_done());
    let out = p.out();
    assert_eq!((out[0].kind, out[0].flags), (HEADERS, FLAG_END_HEADERS));
    assert_eq!(
        (out[1].kind, out[1].flags, &out[1].payload[..]),
        (DATA, FLAG_END_STREAM, &b"bye"[..])
    );
}

#[test]
fn response_heads_decode_and_honour_the_peer_frame_size() {
    let mut p = Peer::new();
    p.open(1);
    let long = "v".repeat(40_000);
    p.feed(&head_frame(SETTINGS, 0, 0, &[0, 1, 0, 0, 0, 0]));
    p.conn.take_output();
    p.conn
        .send_headers(
            1,
            [
                (&b":status"[..], &b"200"[..]),
                (&b"x-long"[..], long.as_bytes()),
            ],
            false,
        )
        .unwrap();
    let out = p.out();
    assert_eq!(
        out.iter().map(|f| f.kind).collect::<Vec<_>>(),
        [HEADERS, CONTINUATION, CONTINUATION]
    );
    let block: Vec<u8> = out.iter().flat_map(|f| f.payload.clone()).collect();
    // The peer set its table size to 0: the block starts by saying so.
    assert_eq!(block[0], 0x20);
    let mut fields = Vec::new();
    hpack::Decoder::new(0)
        .decode(&block, 1 << 20, &mut fields)
        .unwrap();
    assert_eq!(fields[1].value.len(), 40_000);
}

#[test]
fn our_reset_and_peer_reset() {
    let mut p = Peer::new();
    p.open(1);
    p.open(3);
    p.conn.reset(1, ErrorCode::CANCEL);
    assert_eq!(p.rst(1), Some(ErrorCode::CANCEL));
    assert!(p.events().is_empty());
    assert_eq!(p.conn.open_streams(), 1);
    p.feed(&head_frame(
        RST_STREAM,
        0,
        3,
        &ErrorCode::CANCEL.0.to_be_bytes(),
    ));
    assert_eq!(
        p.events(),
        [Event::Reset {
            stream: 3,
            code: ErrorCode::CANCEL
        }]
    );
    assert_eq!(
        p.conn
            .send_headers(3, [(&b":status"[..], &b"200"[..])], true),
        Err(SendError::NoStream)
    );
    p.feed(&head_frame(RST_STREAM, 0, 9, &[0, 0, 0, 8]));
    assert_eq!(p.goaway(), Some(ErrorCode::PROTOCOL_ERROR));
}
