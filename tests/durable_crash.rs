//! `--data-dir` with `--fsync always` under SIGKILL: publishers pipeline on several connections
//! while the server is killed at random moments, 50 times. After each restart every
//! acknowledged message is in history exactly once, ids only increase, a subscriber that saw a
//! message before the kill finds it again (it was durable before anyone saw it), and resuming
//! from any id gives exactly the rest.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{history, Server, TempDir};

const CYCLES: usize = 50;
const PUBLISHERS: usize = 4;
/// Requests each publisher pipelines per cycle.
const PIPELINE: usize = 40;

fn start(dir: &Path) -> Server {
    let dir = dir.to_str().unwrap();
    Server::start(&[
        "--data-dir",
        dir,
        "--history",
        "100000",
        "--max-queue",
        "67108864",
        "--poll-timeout",
        "1",
        "--segment-size",
        "65536",
    ])
}

/// Pipelines `PIPELINE` publishes to `channel` and reads answers until the server goes;
/// returns the acknowledged (id, body) pairs, in order.
fn publisher(
    server_addr: std::net::SocketAddr,
    channel: String,
    tag: String,
) -> Vec<(u64, String)> {
    let Ok(mut stream) = std::net::TcpStream::connect(server_addr) else {
        return Vec::new();
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let bodies: Vec<String> = (0..PIPELINE).map(|n| format!("{tag}-{n}")).collect();
    let mut requests = Vec::new();
    for body in &bodies {
        let head = format!(
            "POST /msgbus/{channel} HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        requests.extend_from_slice(head.as_bytes());
    }
    if stream.write_all(&requests).is_err() {
        return Vec::new();
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    let mut acked = Vec::new();
    // Only whole heads count: an answer cut by the kill was not given.
    let heads: Vec<&str> = text.split("\r\n\r\n").collect();
    for (n, head) in heads[..heads.len().saturating_sub(1)].iter().enumerate() {
        assert!(head.starts_with("HTTP/1.1 204"), "{head}");
        let id = common::header_value(head, "Msgbus-Id").parse().unwrap();
        acked.push((id, bodies[n].clone()));
    }
    acked
}

/// Reads an SSE stream until the server goes; returns the ids seen in whole events.
fn watcher(mut stream: std::net::TcpStream) -> Vec<u64> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    let events: Vec<&str> = text.split("\n\n").collect();
    events[..events.len().saturating_sub(1)]
        .iter()
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("id: ")))
        .map(|id| id.parse().unwrap())
        .collect()
}

/// A small deterministic generator, seeded from the clock and printed, for the kill moments.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_message() {
    let dir = TempDir::new("crash");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = XorShift(seed);
    let channels: Vec<String> = (0..PUBLISHERS).map(|p| format!("crash/{p}")).collect();
    // Every acknowledged message, and the highest id seen anywhere.
    let mut acked: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    let mut highest = 0u64;
    let mut seen_by_watcher: Vec<(String, u64)> = Vec::new();
    let started = Instant::now();
    for cycle in 0..CYCLES {
        let server = start(&dir.0);
        // After a restart: everything acknowledged is there, once, in order; ids go on.
        for channel in &channels {
            let kept = history(&server, channel, 0);
            let ids: Vec<u64> = kept.iter().map(|(id, _)| *id).collect();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "cycle {cycle}: ids out of order or twice in {channel}"
            );
            let kept_map: HashMap<u64, &String> = kept.iter().map(|(id, b)| (*id, b)).collect();
            for (id, body) in acked.get(channel).into_iter().flatten() {
                assert_eq!(
                    kept_map.get(id).map(|b| b.as_str()),
                    Some(body.as_str()),
                    "cycle {cycle}: acknowledged {id} {body} lost in {channel}"
                );
            }
            // A resume from any id gets exactly what follows it.
            if !kept.is_empty() {
                let cut = (rng.next() as usize) % kept.len();
                let rest = history(&server, channel, kept[cut].0);
                assert_eq!(
                    rest,
                    kept[cut + 1..].to_vec(),
                    "cycle {cycle}: resume after {}",
                    kept[cut].0
                );
            }
        }
        for (channel, id) in seen_by_watcher.drain(..) {
            let kept = history(&server, &channel, id - 1);
            assert_eq!(
                kept.first().map(|k| k.0),
                Some(id),
                "cycle {cycle}: {id} was delivered before the kill, then lost"
            );
        }
        // A watcher on the first channel, from the start of its history.
        let mut watch = server.connect();
        let request = format!(
            "GET /msgbus/{}?since={} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
            channels[0], highest
        );
        watch.write_all(request.as_bytes()).unwrap();
        common::read_until(&mut watch, b"\r\n\r\n");
        let watching = thread::spawn(move || watcher(watch));
        let publishers: Vec<_> = channels
            .iter()
            .enumerate()
            .map(|(p, channel)| {
                let (addr, channel) = (server.addr, channel.clone());
                let tag = format!("c{cycle}p{p}");
                thread::spawn(move || publisher(addr, channel, tag))
            })
            .collect();
        thread::sleep(Duration::from_micros(rng.next() % 30_000));
        server.signal(libc::SIGKILL);
        for (p, handle) in publishers.into_iter().enumerate() {
            let got = handle.join().unwrap();
            for (id, _) in &got {
                assert!(*id > highest, "cycle {cycle}: id {id} not above {highest}");
            }
            acked.entry(channels[p].clone()).or_default().extend(got);
        }
        let seen = watching.join().unwrap();
        if let Some(last) = seen.last() {
            seen_by_watcher.push((channels[0].clone(), *last));
        }
        highest = acked
            .values()
            .flatten()
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(highest)
            .max(seen.last().copied().unwrap_or(0));
        drop(server);
    }
    let total: usize = acked.values().map(Vec::len).sum();
    println!(
        "{CYCLES} kills, {total} acknowledged messages, {:?}",
        started.elapsed()
    );
    assert!(total > 0, "no publish was ever acknowledged");
    let server = start(&dir.0);
    for channel in &channels {
        let kept = history(&server, channel, 0);
        assert_eq!(
            kept.len(),
            kept.iter()
                .map(|k| k.0)
                .collect::<std::collections::HashSet<_>>()
                .len()
        );
        for (id, body) in &acked[channel] {
            assert!(
                kept.contains(&(*id, body.clone())),
                "{id} {body} lost at the end"
            );
        }
    }
}
