//! The log's helper thread: it alone writes and syncs, so the reactor never waits on the disk.
//! Jobs arrive in order; appends queued together are written together and made durable by one
//! `fdatasync` (group commit). Each result goes back through a channel, and the reactor is
//! woken (`mio::Waker`) to act on it.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Instant;

use log::{info, warn};

use super::record::{ChannelRecord, DoorRecord, Record};
use super::segment;
use crate::bus::Ticket;
use crate::config::Fsync;

pub enum Job {
    /// Records of one reactor turn; `next_id` is past every id in them.
    Append {
        ticket: Ticket,
        bytes: Vec<u8>,
        next_id: u64,
    },
    /// After a failure: records that must still be written. Success ends the failure.
    Retry { ticket: Ticket, bytes: Vec<u8> },
    /// Rewrites every segment so far as one that holds only what is named.
    Compact(Box<Compaction>),
}

pub struct Compaction {
    pub first_id: u64,
    pub next_id: u64,
    pub channels: Vec<ChannelRecord>,
    /// The doors' registrations, removed ones left out.
    pub doors: Vec<DoorRecord>,
    pub live: HashSet<u64>,
    pub keep_from: u64,
}

#[derive(Debug)]
pub enum Done {
    /// Written (and synced, if the policy says so) up to this ticket.
    Committed {
        ticket: Ticket,
        disk_bytes: u64,
    },
    /// Up to this ticket, not written: nothing more is until a retry succeeds.
    Failed {
        ticket: Ticket,
        reason: String,
    },
    /// A retry went through: writing goes on.
    Recovered {
        ticket: Ticket,
    },
    Compacted {
        disk_bytes: u64,
    },
    /// A compaction was not done (the disk failed it, or writing had failed before it): the
    /// log is as it was, and a later one may try again.
    NotCompacted,
}

pub struct Writer {
    pub dir: PathBuf,
    pub fsync: Fsync,
    pub segment_size: u64,
    /// The segment being appended to.
    pub seq: u64,
    pub file: File,
    pub len: u64,
    /// Bytes of the segments before it.
    pub older_bytes: u64,
    pub first_id: u64,
    pub next_id: u64,
    /// A write or sync failed: appends are refused until a retry succeeds.
    pub failed: bool,
    /// Written but not yet synced (`--fsync batch`).
    pub dirty: bool,
    pub last_sync: Instant,
}

impl Writer {
    /// Runs until the reactor drops its end of `jobs`; then syncs what is written.
    pub fn run(
        mut self,
        jobs: Receiver<Job>,
        done: Sender<Done>,
        waker: std::sync::Arc<mio::Waker>,
    ) {
        loop {
            let first = match self.fsync {
                Fsync::Batch(every) if self.dirty => {
                    let wait = (self.last_sync + every).saturating_duration_since(Instant::now());
                    match jobs.recv_timeout(wait) {
                        Ok(job) => Some(job),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                _ => match jobs.recv() {
                    Ok(job) => Some(job),
                    Err(_) => break,
                },
            };
            let mut results = Vec::new();
            if let Some(first) = first {
                // Everything queued meanwhile goes in the same write and the same sync.
                let mut group = vec![first];
                group.extend(jobs.try_iter());
                self.handle(group, &mut results);
            }
            if let Fsync::Batch(every) = self.fsync {
                if self.dirty && self.last_sync.elapsed() >= every {
                    if let Err(e) = self.sync() {
                        warn!("log sync: {e}");
                    }
                }
            }
            if results.is_empty() {
                continue;
            }
            for result in results {
                if done.send(result).is_err() {
                    return;
                }
            }
            let _ = waker.wake();
        }
        if self.dirty {
            let _ = self.sync();
        }
    }

    fn handle(&mut self, group: Vec<Job>, results: &mut Vec<Done>) {
        let mut appends: Vec<(Ticket, Vec<u8>)> = Vec::new();
        for job in group {
            match job {
                Job::Append {
                    ticket,
                    bytes,
                    next_id,
                } => {
                    self.next_id = self.next_id.max(next_id);
                    appends.push((ticket, bytes));
                }
                Job::Retry { ticket, bytes } => {
                    self.append_all(std::mem::take(&mut appends), results);
                    self.failed = false;
                    let mut probe = bytes;
                    if probe.is_empty() {
                        // Something must reach the disk to show that it takes writes again.
                        Record::Start {
                            first_id: self.first_id,
                            next_id: self.next_id,
                        }
                        .encode(&mut probe);
                    }
                    match self.write_durably(&[probe]) {
                        Ok(()) => results.push(Done::Recovered { ticket }),
                        Err(e) => {
                            self.failed = true;
                            let reason = describe(&e);
                            results.push(Done::Failed { ticket, reason });
                        }
                    }
                }
                Job::Compact(compaction) => {
                    self.append_all(std::mem::take(&mut appends), results);
                    if self.failed {
                        results.push(Done::NotCompacted);
                        continue;
                    }
                    match self.compact(*compaction) {
                        Ok(()) => results.push(Done::Compacted {
                            disk_bytes: self.disk_bytes(),
                        }),
                        Err(e) => {
                            warn!("log compaction not done: {e}");
                            results.push(Done::NotCompacted);
                        }
                    }
                }
            }
        }
        self.append_all(appends, results);
    }

    /// Writes a group of appends as one, and syncs once; one result for the group.
    fn append_all(&mut self, appends: Vec<(Ticket, Vec<u8>)>, results: &mut Vec<Done>) {
        let Some(ticket) = appends.last().map(|(t, _)| *t) else {
            return;
        };
        if self.failed {
            let reason = "the log could not be written (retrying)".to_string();
            results.push(Done::Failed { ticket, reason });
            return;
        }
        let pieces: Vec<Vec<u8>> = appends.into_iter().map(|(_, bytes)| bytes).collect();
        match self.write_durably(&pieces) {
            Ok(()) => results.push(Done::Committed {
                ticket,
                disk_bytes: self.disk_bytes(),
            }),
            Err(e) => {
                self.failed = true;
                let reason = describe(&e);
                warn!(
                    "log {}: {reason}: publishes refused until it can be written",
                    self.dir.display()
                );
                results.push(Done::Failed { ticket, reason });
            }
        }
    }

    /// Appends `pieces` and, under `--fsync always`, syncs them. On failure the segment is cut
    /// back to where it was, so that a record half-written cannot be read back later as one
    /// the client was told was refused.
    fn write_durably(&mut self, pieces: &[Vec<u8>]) -> io::Result<()> {
        if self.len >= self.segment_size {
            self.rotate()?;
        }
        let start = self.len;
        let result = (|| {
            for piece in pieces {
                self.file.write_all(piece)?;
                self.len += piece.len() as u64;
            }
            self.dirty = true;
            if self.fsync == Fsync::Always {
                self.sync()?;
            }
            Ok(())
        })();
        if result.is_err() {
            self.len = start;
            if let Err(e) = self.file.set_len(start) {
                warn!(
                    "log {}: cannot cut back a failed write: {e}",
                    self.dir.display()
                );
            }
        }
        result
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        self.older_bytes + self.len
    }

    /// Begins the next segment, opened by a Start record.
    fn rotate(&mut self) -> io::Result<()> {
        self.sync()?;
        let seq = self.seq + 1;
        let path = segment::path(&self.dir, seq);
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let mut start = Vec::new();
        Record::Start {
            first_id: self.first_id,
            next_id: self.next_id,
        }
        .encode(&mut start);
        let written = file.write_all(&start).and_then(|()| file.sync_data());
        let written = written.and_then(|()| segment::sync_dir(&self.dir));
        if let Err(e) = written {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.older_bytes += self.len;
        self.seq = seq;
        self.file = file;
        self.len = start.len() as u64;
        Ok(())
    }

    /// Writes what the snapshot names (the channels, the doors' registrations, then the live messages copied from every
    /// segment so far) as the next segment, under a temporary name until it is whole and on
    /// disk; then it replaces them all. A crash in between leaves the old segments, and at
    /// worst copies that reading back takes once.
    fn compact(&mut self, c: Compaction) -> io::Result<()> {
        let started = Instant::now();
        self.sync()?;
        let old = segment::list(&self.dir)?;
        let seq = self.seq + 1;
        let tmp = segment::tmp_path(&self.dir, seq);
        let mut out = Vec::new();
        Record::Start {
            first_id: c.first_id,
            next_id: c.next_id.max(self.next_id),
        }
        .encode(&mut out);
        for channel in c.channels {
            Record::Channel(channel).encode(&mut out);
        }
        for door in c.doors {
            Record::Door(door).encode(&mut out);
        }
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&tmp)?;
        let copied = (|| {
            let mut bytes = Vec::new();
            for (_, path) in &old {
                bytes.clear();
                File::open(path)?.read_to_end(&mut bytes)?;
                let mut offset = 0;
                while let Ok((record, len)) = Record::decode(&bytes[offset..]) {
                    if let Record::Message(m) = &record {
                        if m.id >= c.keep_from || c.live.contains(&m.id) {
                            out.extend_from_slice(&bytes[offset..offset + len]);
                        }
                    }
                    offset += len;
                    if out.len() >= 1 << 20 {
                        file.write_all(&out)?;
                        out.clear();
                    }
                }
            }
            file.write_all(&out)?;
            file.sync_data()?;
            fs::rename(&tmp, segment::path(&self.dir, seq))?;
            segment::sync_dir(&self.dir)
        })();
        if let Err(e) = copied {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let before = self.disk_bytes();
        self.len = file.metadata()?.len();
        self.file = file;
        self.seq = seq;
        self.older_bytes = 0;
        for (_, path) in &old {
            fs::remove_file(path)?;
        }
        segment::sync_dir(&self.dir)?;
        info!(
            "log compacted: {before} bytes in {} segments to {} in {:?}",
            old.len(),
            self.len,
            started.elapsed()
        );
        Ok(())
    }
}

/// One line on what went wrong, for the 507 and the log.
fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "no space left on the data directory's disk".into()
        }
        Some(libc::EROFS) => "the data directory is read-only".into(),
        Some(libc::EIO) => "the data directory's disk reports I/O errors".into(),
        _ => format!("cannot write the log: {e}"),
    }
}
