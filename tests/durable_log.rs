//! `--data-dir`: what the log keeps across restarts, how it treats damage, its lock, what each
//! `--fsync` policy promises, compaction, and a full disk.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{history, run_to_exit, Server, TempDir};
use msgbus::store::record::Record;

fn start(dir: &TempDir, extra: &[&str]) -> Server {
    let args = [&["--data-dir", dir.arg(), "--poll-timeout", "1"], extra].concat();
    Server::start(&args)
}

fn bodies(history: &[(u64, String)]) -> Vec<&str> {
    history.iter().map(|(_, b)| b.as_str()).collect()
}

/// The only segment file in `dir`.
fn segment(dir: &TempDir) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    segments.pop().unwrap()
}

/// Where each record of a segment starts, and where the file ends.
fn record_offsets(path: &Path) -> (Vec<usize>, usize) {
    let bytes = std::fs::read(path).unwrap();
    let mut offsets = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        offsets.push(at);
        at += Record::decode(&bytes[at..]).unwrap().1;
    }
    (offsets, bytes.len())
}

fn publish_abc(dir: &TempDir) {
    let server = start(dir, &[]);
    for body in ["a", "b", "c"] {
        assert!(server
            .publish("t", "text/plain", body.as_bytes())
            .starts_with("HTTP/1.1 204"));
    }
    assert!(server.terminate().success());
}

#[test]
fn history_ids_and_attributes_survive_a_restart() {
    let dir = TempDir::new("attributes");
    let server = start(&dir, &["--martd"]);
    let first = server.publish_id("plain", b"one");
    let keyed = server.post("/msgbus/keyed?size=2&life=100&key=s3cret", "", b"k1");
    assert!(keyed.starts_with("HTTP/1.1 204"), "{keyed}");
    server.post("/msgbus/keyed?key=s3cret", "", b"k2");
    server.post("/msgbus/keyed?key=s3cret", "", b"k3");
    let one2one = server.post("/pub?channel=o2o&one2one=true", "", b"x");
    assert!(one2one.starts_with("HTTP/1.1 200"), "{one2one}");
    let last = server.publish_id("plain", b"two");
    server.signal(libc::SIGKILL);
    drop(server);

    let server = start(&dir, &["--martd"]);
    assert_eq!(bodies(&history(&server, "plain", 0)), ["one", "two"]);
    assert_eq!(
        history(&server, "plain", first),
        [(last, "two".to_string())]
    );
    assert_eq!(bodies(&history(&server, "keyed", 0)), ["k2", "k3"]);
    let info = server.exchange(b"GET /msgbus-status/channels/keyed.json HTTP/1.0\r\n\r\n");
    for want in ["\"size\":2", "\"lifetime\":100", "\"keyed\":true"] {
        assert!(info.contains(want), "{want} in {info}");
    }
    let info = server.exchange(b"GET /msgbus-status/channels/o2o.json HTTP/1.0\r\n\r\n");
    assert!(info.contains("\"one2one\":true"), "{info}");
    // The key still guards the channel.
    let refused = server.post("/msgbus/keyed", "", b"no key");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    // Ids go on after the last one logged, not from the clock.
    assert_eq!(server.publish_id("plain", b"three"), last + 1);
}

#[test]
fn a_torn_record_at_the_tail_is_cut_and_logged() {
    let dir = TempDir::new("torn");
    publish_abc(&dir);
    let path = segment(&dir);
    let (offsets, len) = record_offsets(&path);
    let last = *offsets.last().unwrap();
    // Half of the last record, as a crash in the middle of a write leaves it.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(((last + len) / 2) as u64).unwrap();
    let server = start(&dir, &[]);
    server.wait_for_log(&format!("torn record at offset {last}: cut there"), 1);
    assert!(server.log().contains(path.to_str().unwrap()));
    assert_eq!(bodies(&history(&server, "t", 0)), ["a", "b"]);
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, last);
}

#[test]
fn a_damaged_record_in_the_middle_stops_the_start_unless_repair() {
    let dir = TempDir::new("damaged");
    publish_abc(&dir);
    let path = segment(&dir);
    let (offsets, _) = record_offsets(&path);
    // Records: Start, channel t, a, b, c. Flip a byte in b's payload.
    let b_at = offsets[offsets.len() - 2];
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[b_at + 12] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let args = ["-l", "127.0.0.1", "-p", "0", "--data-dir", dir.arg()];
    let refused = run_to_exit(&args, "msgbus on a damaged log");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let want = format!(
        "msgbus: {}: checksum mismatch at offset {b_at}; the log is damaged there (start with --repair to cut it at that point)\n",
        path.display()
    );
    assert!(stderr.ends_with(&want), "{stderr}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "nothing changed without --repair"
    );

    let server = start(&dir, &["--repair"]);
    server.wait_for_log(
        &format!("--repair: checksum mismatch at offset {b_at}: cut there"),
        1,
    );
    assert_eq!(bodies(&history(&server, "t", 0)), ["a"]);
    assert!(server
        .publish("t", "text/plain", b"d")
        .starts_with("HTTP/1.1 204"));
    assert_eq!(bodies(&history(&server, "t", 0)), ["a", "d"]);
}

#[test]
fn two_processes_never_share_a_data_directory() {
    let dir = TempDir::new("lock");
    let _first = start(&dir, &[]);
    let args = ["-l", "127.0.0.1", "-p", "0", "--data-dir", dir.arg()];
    let second = run_to_exit(&args, "a second msgbus on the same directory");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    let want = format!(
        "msgbus: data directory {} is in use by another msgbus process\n",
        dir.arg()
    );
    assert!(stderr.ends_with(&want), "{stderr}");
}

#[test]
fn fsync_batch_acknowledges_after_the_write_so_a_process_crash_loses_nothing() {
    let dir = TempDir::new("batch");
    // Syncs far apart: what survives the kill was written, not synced.
    let server = start(&dir, &["--fsync", "batch", "--fsync-interval", "60000"]);
    let ids: Vec<u64> = (0..20)
        .map(|n| server.publish_id("b", format!("m{n}").as_bytes()))
        .collect();
    server.signal(libc::SIGKILL);
    drop(server);
    let server = start(&dir, &[]);
    let kept = history(&server, "b", 0);
    assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), ids);
}

#[test]
fn fsync_never_acknowledges_at_once_and_a_clean_stop_keeps_everything() {
    let dir = TempDir::new("never");
    let server = start(&dir, &["--fsync", "never"]);
    // Subscribers get it at once too: nothing waits for the disk.
    let mut sub = server.connect();
    sub.write_all(b"GET /msgbus/n HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    common::read_until(&mut sub, b"\r\n\r\n");
    let ids: Vec<u64> = (0..20)
        .map(|n| server.publish_id("n", format!("m{n}").as_bytes()))
        .collect();
    let last = format!("id: {}\n", ids[19]);
    common::read_until(&mut sub, last.as_bytes());
    assert!(server.terminate().success());
    let server = start(&dir, &[]);
    let kept = history(&server, "n", 0);
    assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), ids);
}

#[test]
fn the_log_is_compacted_to_what_is_kept() {
    let dir = TempDir::new("compact");
    let server = start(&dir, &["--segment-size", "65536", "--history", "2"]);
    let body = vec![b'x'; 1000];
    let mut last = Vec::new();
    for n in 0..1000 {
        let mut body = body.clone();
        body.extend_from_slice(format!("-{n}").as_bytes());
        last.push(server.publish_id("c", &body));
    }
    server.wait_for_log("log compacted", 1);
    // A million bytes published, two kept: once the sweep (every second) has had its go, the
    // directory holds a few segments at most.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let du: u64 = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        if du < 4 * 65536 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{du} bytes in the data directory"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.signal(libc::SIGKILL);
    drop(server);
    let server = start(&dir, &["--history", "2"]);
    let kept = history(&server, "c", 0);
    assert_eq!(kept.iter().map(|k| k.0).collect::<Vec<_>>(), last[998..]);
}

/// Mounts a tmpfs of `size` on `dir`; false where mounting is not permitted.
fn mount_tmpfs(dir: &TempDir, size: &str) -> bool {
    std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            dir.arg(),
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A tmpfs of `size` on `dir` for the test's life, or None where mounting is not permitted
/// (the test then says it was skipped).
fn small_disk<'a>(dir: &'a TempDir, size: &str) -> Option<Unmount<'a>> {
    if !mount_tmpfs(dir, size) {
        println!("SKIPPED: cannot mount a tmpfs here (needs root): the test did not run");
        return None;
    }
    Some(Unmount(dir))
}

/// Gives the tmpfs on `dir` room again: 16 MB.
fn grow_disk(dir: &TempDir) {
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=16m", dir.arg()])
        .status()
        .unwrap();
    assert!(grown.success());
}

struct Unmount<'a>(&'a TempDir);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.arg())
            .status();
    }
}

#[test]
fn a_full_disk_refuses_publishes_with_507_loses_nothing_and_recovers() {
    let dir = TempDir::new("full");
    let Some(_unmount) = small_disk(&dir, "2m") else {
        return;
    };
    let server = start(&dir, &["--history", "1000", "--max-queue", "67108864"]);
    let mut sub = server.connect();
    sub.write_all(b"GET /msgbus/full HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    common::read_until(&mut sub, b"\r\n\r\n");
    let body = vec![b'f'; 100 * 1024];
    let mut acked = Vec::new();
    let mut refusal = None;
    for _ in 0..100 {
        let answer = server.publish("full", "text/plain", &body);
        if answer.starts_with("HTTP/1.1 204") {
            acked.push(
                common::header_value(&answer, "Msgbus-Id")
                    .parse::<u64>()
                    .unwrap(),
            );
        } else {
            refusal = Some(answer);
            break;
        }
    }
    let refusal = refusal.expect("a 2 MB disk never filled");
    assert!(
        refusal.starts_with("HTTP/1.1 507 Insufficient Storage\r\n"),
        "{refusal}"
    );
    assert!(
        refusal.ends_with("no space left on the data directory's disk\n"),
        "{refusal}"
    );
    assert!(!acked.is_empty());
    // The subscriber kept its stream and had each acknowledged message.
    let last = format!("id: {}\n", acked.last().unwrap());
    common::read_until(&mut sub, last.as_bytes());
    // Nothing refused is in the history.
    let kept: Vec<u64> = history(&server, "full", 0).iter().map(|k| k.0).collect();
    assert_eq!(kept, acked);
    // Space comes back: publishing resumes by itself.
    grow_disk(&dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    let resumed = loop {
        let answer = server.publish("full", "text/plain", b"back");
        if answer.starts_with("HTTP/1.1 204") {
            break common::header_value(&answer, "Msgbus-Id")
                .parse::<u64>()
                .unwrap();
        }
        assert!(Instant::now() < deadline, "still refused: {answer}");
        std::thread::sleep(Duration::from_millis(100));
    };
    common::read_until(&mut sub, format!("id: {resumed}\n").as_bytes());
    acked.push(resumed);
    server.signal(libc::SIGKILL);
    drop(server);
    let server = start(&dir, &["--history", "1000", "--max-queue", "67108864"]);
    let kept: Vec<u64> = history(&server, "full", 0).iter().map(|k| k.0).collect();
    assert_eq!(kept, acked);
}

#[test]
fn a_compaction_the_disk_refused_is_tried_again_once_there_is_room() {
    let dir = TempDir::new("compact-full");
    let Some(_unmount) = small_disk(&dir, "2m") else {
        return;
    };
    // Five messages of 100 KiB kept: a compaction is due once the log passes about 1.6 MB,
    // and it needs about 0.5 MB more than the 2 MB disk then has.
    let server = start(&dir, &["--history", "5", "--segment-size", "65536"]);
    let body = vec![b'c'; 100 * 1024];
    for _ in 0..40 {
        if !server
            .publish("c", "text/plain", &body)
            .starts_with("HTTP/1.1 204")
        {
            break;
        }
    }
    server.wait_for_log("log compaction not done", 1);
    grow_disk(&dir);
    // Writing resumes by itself; the compaction is tried again and now goes through, so the
    // directory goes back to a small multiple of what is kept.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .publish("c", "text/plain", &body)
        .starts_with("HTTP/1.1 204")
    {
        assert!(Instant::now() < deadline, "publishes still refused");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.wait_for_log("log compacted", 1);
    let du: u64 = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(du < 4 * 6 * 100 * 1024, "{du} bytes in the data directory");
    assert_eq!(history(&server, "c", 0).len(), 5);
}

#[test]
fn pipelined_answers_leave_in_order_behind_held_publishes() {
    let dir = TempDir::new("order");
    let server = start(&dir, &[]);
    let publish = |target: &str, body: &str| {
        format!(
            "POST {target} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let requests = [
        publish("/msgbus/p?key=k", "one"),
        publish("/msgbus/p", "refused: no key"),
        publish("/msgbus/p?key=k", "two"),
        "GET /msgbus-status/channels/p.json HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
        publish("/msgbus/p?key=k", "three"),
        "GET /msgbus-status/channels/p.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            .to_string(),
    ]
    .concat();
    let answers = server.exchange(requests.as_bytes());
    let statuses: Vec<&str> = answers
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|a| &a[..3])
        .collect();
    assert_eq!(
        statuses,
        ["204", "403", "204", "200", "204", "200"],
        "{answers}"
    );
    // The status pages saw what was answered before them, and nothing after.
    let pages: Vec<&str> = answers.split("\"messages\":").skip(1).collect();
    assert!(
        pages[0].starts_with('2') && pages[1].starts_with('3'),
        "{answers}"
    );
    assert_eq!(bodies(&history(&server, "p", 0)), ["one", "two", "three"]);
    // A refusal that closes the connection (its body unread) comes after the held answer.
    let requests = [
        publish("/msgbus/p?key=k", "four"),
        publish("/msgbus/p?size=x", "never read"),
        publish("/msgbus/p?key=k", "never handled"),
    ]
    .concat();
    let answers = server.exchange(requests.as_bytes());
    let statuses: Vec<&str> = answers
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|a| &a[..3])
        .collect();
    assert_eq!(statuses, ["204", "400"], "{answers}");
    assert_eq!(
        bodies(&history(&server, "p", 0)),
        ["one", "two", "three", "four"]
    );
}
