#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mio::net::UnixStream;
use msgbus::bus::Bus;
use msgbus::config::Config;
use msgbus::conn::{Conn, Ctx, Next, Published, Refused};
use msgbus::gate::{is_clean_line, Gate};
use msgbus::io::{Socket, Stream};
use msgbus::listener::Peer;
use msgbus::stats::Stats;
use msgbus::transport::Wires;

const MAX_HEAD: usize = 512;
const MAX_BODY: usize = 2048;
const MAX_QUEUE: usize = 8192;
const MAX_WS: usize = 1024;
/// A chunked body's size or trailer line may wait whole in the input, up to this.
const CHUNK_LINE: usize = msgbus::http::chunked::MAX_LINE;

// Arbitrary bytes, in arbitrary pieces, through one connection's state machine as the reactor
// drives it (no network: the socket is one end of a pair nobody reads): it never panics, keeps
// no more input than its limits allow, and queues no more output than its limit and one answer.
fuzz_target!(|input: (u8, &[u8])| {
    let (step, data) = input;
    let cfg = Config {
        max_head: MAX_HEAD,
        max_body: MAX_BODY,
        max_queue: MAX_QUEUE,
        max_ws_message: Some(MAX_WS),
        // Every door open, so their parsers and state are driven too.
        martd: true,
        simple_comet: true,
        lhttp: true,
        ..Config::default()
    };
    let (sock, _peer_end) = UnixStream::pair().expect("socketpair");
    let now = Instant::now();
    let mut conn = Conn::new(Socket::new(Stream::Unix(sock)), Peer::Unix, now, &cfg);
    let mut bus = Bus::new(1, cfg.retention(), Duration::from_secs(60));
    let mut stats = Stats::default();
    let mut wires = Wires::default();
    let mut doors = msgbus::doors::open(&cfg, Some("key:secret\n"), &mut wires);
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
                    assert!(req.body.len() <= MAX_BODY.max(MAX_WS));
                    let outcome = match req.admit(&publish.who, &gate) {
                        Err(refusal) => Err(Refused::Gate(refusal)),
                        Ok(admitted) => admitted
                            .into_iter()
                            .map(|p| bus.publish(p, now).map_err(Refused::Bus))
                            .last()
                            .expect("one channel at least"),
                    };
                    // Whatever a client sent, no line break reaches a value that becomes a
                    // header line on a subscriber's stream.
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
                        local_only: false,
                    });
                    conn.answer_publish(&mut publish, outcome, &mut doors);
                }
                Next::Status(reply, _) => conn.answer_status(reply, "application/json", "{}"),
                Next::Delete(delete) => conn.answer_delete(delete.reply, Ok(0)),
            }
        }
        assert!(
            conn.buffered_input() <= MAX_HEAD.max(MAX_WS + 14).max(CHUNK_LINE) + piece.len(),
            "{} bytes of input kept",
            conn.buffered_input()
        );
        assert!(conn.outq.queued_bytes() <= MAX_QUEUE + 64 * 1024);
    }
});
