//! The durable log (`--data-dir`): every kept message and every channel attribute goes to an
//! append-only log of segments, each record with a checksum, and is read back at start. The
//! reactor only encodes records into this turn's batch; a helper thread (`writer`) writes and
//! syncs, and the reactor learns of it through its waker. See `bus::history` for how a publish
//! is held until its ticket is committed.

pub mod record;
mod segment;
mod writer;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{info, warn};

use crate::bus::history::{
    ChannelAttributes, Commit, DoorRecord, Recovered, Restored, RestoredChannel, Snapshot, Store,
    Ticket,
};
use crate::bus::Retention;
use crate::config::Fsync;
use crate::message::Message;
use record::{ChannelRecord, MessageRecord, Record};
use writer::{Compaction, Done, Job, Writer};

/// After the disk failed, a write is tried again this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// After a compaction was not done, the next is not tried before this: one that failed for
/// want of space would otherwise be tried again every turn.
const COMPACT_RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// The log is compacted once it holds more than this many times what the histories keep
/// (plus a segment): so the directory stays within a small factor of what is kept.
const COMPACT_FACTOR: u64 = 3;

/// How the log is opened.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub fsync: Fsync,
    pub repair: bool,
    pub segment_size: usize,
    /// What a channel without recorded attributes keeps.
    pub retention: Retention,
    /// The first id of a log made new.
    pub first_id: u64,
}

/// Why the log cannot be opened; one line each.
#[derive(Debug)]
pub enum OpenError {
    Locked(PathBuf),
    Io(PathBuf, io::Error),
    /// Damage in the middle of the log: the file, the offset and what is wrong.
    Damaged(PathBuf, usize, record::DecodeError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Locked(dir) => write!(
                f,
                "data directory {} is in use by another msgbus process",
                dir.display()
            ),
            OpenError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            OpenError::Damaged(path, offset, why) => write!(
                f,
                "{}: {why} at offset {offset}; the log is damaged there (start with --repair to cut it at that point)",
                path.display()
            ),
        }
    }
}

pub struct Log {
    fsync: Fsync,
    segment_size: u64,
    /// This turn's records, not yet handed to the writer.
    batch: Vec<u8>,
    /// Those of them to write again if the batch fails: the ones already in effect (channel
    /// attributes, forgets, deletes; and every record under `--fsync never`, whose publishes
    /// were acknowledged at once).
    batch_retry: Vec<u8>,
    /// The ticket of the batch being filled.
    ticket: Ticket,
    /// Batches handed over and not yet reported, with what to write again if they fail.
    inflight: VecDeque<(Ticket, Vec<u8>)>,
    /// Why publishes are refused, while the disk fails.
    failed: Option<String>,
    /// Records to write again once the disk takes writes.
    retry: Vec<u8>,
    retry_at: Option<Instant>,
    /// A retry is with the writer.
    retrying: bool,
    last_next_id: u64,
    /// The doors' registrations now, for a compaction to write back.
    doors: segment::DoorTable,
    disk_bytes: u64,
    compacting: bool,
    /// No compaction before this, after one was not done.
    compact_after: Option<Instant>,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
    /// Held for the process's life: its lock keeps other processes out of the directory.
    _lock: File,
}

impl Log {
    /// Opens (or makes) the log in `opts.dir`, takes its lock, reads it back, and starts its
    /// writer, which wakes the reactor through `waker`. Blocking: it runs before the reactor.
    pub fn open(
        opts: &Options,
        waker: std::sync::Arc<mio::Waker>,
    ) -> Result<(Log, Recovered), OpenError> {
        let dir = &opts.dir;
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |e| OpenError::Io(path, e)
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        // SAFETY: flock takes a descriptor this process holds open.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(OpenError::Locked(dir.clone()));
        }
        let started = Instant::now();
        let mut segments = segment::list(dir).map_err(io_err(dir))?;
        let mut rebuild = segment::Rebuild::default();
        let mut bytes = Vec::new();
        let mut i = 0;
        while i < segments.len() {
            let path = segments[i].1.clone();
            bytes.clear();
            let read =
                File::open(&path).and_then(|mut f| io::Read::read_to_end(&mut f, &mut bytes));
            read.map_err(io_err(&path))?;
            let last = i + 1 == segments.len();
            match segment::read(&bytes, last, &mut rebuild) {
                segment::Ended::Whole => {}
                segment::Ended::Torn { offset } => {
                    segment::cut(&path, offset, "torn record").map_err(io_err(&path))?;
                }
                segment::Ended::Damaged { offset, why } => {
                    if !opts.repair {
                        return Err(OpenError::Damaged(path, offset, why));
                    }
                    let why = format!("--repair: {why}");
                    segment::cut(&path, offset, &why).map_err(io_err(&path))?;
                    for (_, later) in segments.drain(i + 1..) {
                        warn!(
                            "--repair: {} removed (it came after the damage)",
                            later.display()
                        );
                        fs::remove_file(&later).map_err(io_err(&later))?;
                    }
                }
            }
            i += 1;
        }
        let fresh = segments.is_empty();
        let first_id = rebuild.first_id.unwrap_or(opts.first_id);
        let next_id = rebuild.next_id.max(first_id);
        let (seq, path) = match segments.last() {
            Some((seq, path)) => (*seq, path.clone()),
            None => (1, segment::path(dir, 1)),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if fresh {
            let mut start = Vec::new();
            Record::Start { first_id, next_id }.encode(&mut start);
            io::Write::write_all(&mut file, &start)
                .and_then(|()| file.sync_data())
                .and_then(|()| segment::sync_dir(dir))
                .map_err(io_err(&path))?;
        }
        let len = file.metadata().map_err(io_err(&path))?.len();
        let mut older_bytes = 0;
        for (_, older) in &segments[..segments.len().saturating_sub(1)] {
            older_bytes += fs::metadata(older).map_or(0, |m| m.len());
        }
        let records = rebuild.records;
        let doors = std::mem::take(&mut rebuild.doors);
        let recovered = recovered(rebuild, first_id, next_id, opts.retention);
        let kept: usize = recovered.channels.iter().map(|c| c.messages.len()).sum();
        info!(
            "data directory {}: {records} records, {kept} messages in {} channels read in {:?}; next id {next_id}",
            dir.display(),
            recovered.channels.len(),
            started.elapsed()
        );
        let writer = Writer {
            dir: dir.clone(),
            fsync: opts.fsync,
            segment_size: opts.segment_size as u64,
            seq,
            file,
            len,
            older_bytes,
            first_id,
            next_id,
            failed: false,
            dirty: false,
            last_sync: Instant::now(),
        };
        let (jobs, jobs_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("msgbus-log".into())
            .spawn(move || writer.run(jobs_rx, done_tx, waker))
            .map_err(io_err(dir))?;
        let log = Log {
            fsync: opts.fsync,
            segment_size: opts.segment_size as u64,
            batch: Vec::new(),
            batch_retry: Vec::new(),
            ticket: 1,
            inflight: VecDeque::new(),
            failed: None,
            retry: Vec::new(),
            retry_at: None,
            retrying: false,
            last_next_id: next_id,
            doors,
            disk_bytes: older_bytes + len,
            compacting: false,
            compact_after: None,
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            _lock: lock,
        };
        Ok((log, recovered))
    }

    /// The doors' registrations as the log holds them, oldest first: at start, what was read
    /// back, for each door to take up again (`conn::Door::restore`).
    pub fn door_records(&self) -> Vec<DoorRecord> {
        self.doors.records()
    }

    /// Adds a record that is in effect already (not a held publish) to what is written next.
    fn control(&mut self, record: Record) {
        if self.failed.is_some() {
            record.encode(&mut self.retry);
            return;
        }
        let start = self.batch.len();
        record.encode(&mut self.batch);
        self.batch_retry.extend_from_slice(&self.batch[start..]);
    }

    fn send(&mut self, job: Job) {
        if let Some(jobs) = &self.jobs {
            if jobs.send(job).is_err() {
                warn!("the log's writer has stopped");
            }
        }
    }
}

impl Store for Log {
    fn append(&mut self, msg: &Message, lifetime: Duration) -> Option<Ticket> {
        let record = Record::Message(MessageRecord {
            id: msg.id,
            channel: msg.channel.to_string(),
            content_type: msg.content_type.to_string(),
            sender: msg.sender.as_deref().map(str::to_string),
            event: msg.event.as_deref().map(str::to_string),
            published: msg.published,
            expires_ms: if lifetime.is_zero() {
                0
            } else {
                wall_ms().saturating_add(lifetime.as_millis() as u64)
            },
            body: msg.body.to_vec(),
        });
        if self.fsync == Fsync::Never {
            self.control(record);
            return None;
        }
        record.encode(&mut self.batch);
        Some(self.ticket)
    }

    fn attributes(&mut self, attributes: &ChannelAttributes) {
        self.control(Record::Channel(channel_record(attributes)));
    }

    fn forget(&mut self, channel: &str, upto: u64) {
        self.control(Record::Forget {
            channel: channel.to_string(),
            upto,
        });
    }

    fn delete(&mut self, channel: &str) {
        self.control(Record::Delete {
            channel: channel.to_string(),
        });
    }

    fn door(&mut self, record: &DoorRecord) {
        self.doors.apply(record.clone());
        self.control(Record::Door(record.clone()));
    }

    fn submit(&mut self, next_id: u64) {
        self.last_next_id = next_id;
        if self.batch.is_empty() {
            return;
        }
        let ticket = self.ticket;
        self.ticket += 1;
        let bytes = std::mem::take(&mut self.batch);
        self.inflight
            .push_back((ticket, std::mem::take(&mut self.batch_retry)));
        self.send(Job::Append {
            ticket,
            bytes,
            next_id,
        });
    }

    fn poll_commits(&mut self) -> Vec<Commit> {
        let mut commits = Vec::new();
        while let Ok(done) = self.done.try_recv() {
            match done {
                Done::Committed { ticket, disk_bytes } => {
                    self.disk_bytes = disk_bytes;
                    self.inflight.retain(|(t, _)| *t > ticket);
                    commits.push(Commit::Done(ticket));
                }
                Done::Failed { ticket, reason } => {
                    while self.inflight.front().is_some_and(|(t, _)| *t <= ticket) {
                        let (_, bytes) = self.inflight.pop_front().expect("checked");
                        // Ahead of anything noted since, to keep the order they happened in.
                        let later = std::mem::replace(&mut self.retry, bytes);
                        self.retry.extend_from_slice(&later);
                    }
                    if self.failed.is_none() {
                        warn!("publishes refused: {reason}");
                    }
                    self.failed = Some(reason.clone());
                    self.retrying = false;
                    self.retry_at = Some(Instant::now() + RETRY_INTERVAL);
                    commits.push(Commit::Failed(ticket, reason));
                }
                Done::Recovered { ticket } => {
                    self.inflight.retain(|(t, _)| *t > ticket);
                    self.retrying = false;
                    self.retry_at = None;
                    if self.failed.take().is_some() {
                        info!("the log takes writes again: publishes accepted");
                    }
                    commits.push(Commit::Done(ticket));
                }
                Done::Compacted { disk_bytes } => {
                    self.disk_bytes = disk_bytes;
                    self.compacting = false;
                    self.compact_after = None;
                }
                Done::NotCompacted => {
                    self.compacting = false;
                    self.compact_after = Some(Instant::now() + COMPACT_RETRY_INTERVAL);
                }
            }
        }
        commits
    }

    fn refusal(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn deadline(&self) -> Option<Instant> {
        self.retry_at.filter(|_| !self.retrying)
    }

    fn on_timer(&mut self, now: Instant) {
        if self.retrying || self.retry_at.is_none_or(|at| now < at) {
            return;
        }
        // Records noted this turn while failing are in `retry` already.
        let ticket = self.ticket;
        self.ticket += 1;
        let bytes = std::mem::take(&mut self.retry);
        self.inflight.push_back((ticket, bytes.clone()));
        self.retrying = true;
        self.send(Job::Retry { ticket, bytes });
    }

    fn wants_compaction(&self, live_bytes: usize) -> bool {
        !self.compacting
            && self.failed.is_none()
            && self.compact_after.is_none_or(|at| Instant::now() >= at)
            && self.disk_bytes > COMPACT_FACTOR * live_bytes as u64 + self.segment_size
    }

    fn compact(&mut self, snapshot: Snapshot) {
        self.compacting = true;
        // What this turn noted goes first: the snapshot already counts it.
        self.submit(self.last_next_id.max(snapshot.next_id));
        self.send(Job::Compact(Box::new(Compaction {
            first_id: snapshot.first_id,
            next_id: snapshot.next_id,
            channels: snapshot.channels.iter().map(channel_record).collect(),
            doors: self.doors.records(),
            live: snapshot.live,
            keep_from: snapshot.keep_from,
        })));
    }
}

impl Drop for Log {
    /// Lets the writer finish what it has (and sync it) before the process exits.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn channel_record(a: &ChannelAttributes) -> ChannelRecord {
    ChannelRecord {
        name: a.name.clone(),
        size: a.size as u64,
        lifetime_ms: a.lifetime.as_millis() as u64,
        key: a.key,
        one2one: a.one2one,
        forgotten_upto: a.forgotten_upto,
    }
}

/// The bus's view of what the log held.
fn recovered(
    rebuild: segment::Rebuild,
    first_id: u64,
    next_id: u64,
    retention: Retention,
) -> Recovered {
    let mut channels: Vec<RestoredChannel> = rebuild
        .channels
        .into_iter()
        .map(|(name, (attributes, messages))| {
            let attributes = match attributes {
                Some(c) => ChannelAttributes {
                    name,
                    size: c.size as usize,
                    lifetime: Duration::from_millis(c.lifetime_ms),
                    key: c.key,
                    one2one: c.one2one,
                    forgotten_upto: c.forgotten_upto,
                },
                None => ChannelAttributes {
                    name,
                    size: retention.size,
                    lifetime: retention.lifetime,
                    key: None,
                    one2one: false,
                    forgotten_upto: 0,
                },
            };
            let channel: Rc<str> = attributes.name.as_str().into();
            let messages = messages
                .into_iter()
                .map(|m| {
                    let mut message = Message::new(
                        m.id,
                        channel.clone(),
                        m.content_type.into(),
                        m.sender.map(Into::into),
                        m.body.into(),
                    );
                    message.event = m.event.map(Into::into);
                    message.published = m.published;
                    Restored {
                        message,
                        expires_ms: m.expires_ms,
                    }
                })
                .collect();
            RestoredChannel {
                attributes,
                messages,
            }
        })
        .collect();
    // In a stable order, so that restores are alike.
    channels.sort_by(|a, b| a.attributes.name.cmp(&b.attributes.name));
    Recovered {
        first_id,
        next_id,
        channels,
    }
}

/// Milliseconds since 1970: expiries are kept on the wall clock, which outlives the process.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
