//! The log's files: segments named by their sequence number, read back at start. A torn record
//! at the very end is what a crash leaves and is cut; damage anywhere else stops the start,
//! unless the operator asked for the log to be cut there (`--repair`).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use log::warn;

use super::record::{ChannelRecord, DecodeError, DoorRecord, MessageRecord, Record};

const SUFFIX: &str = ".seg";
/// A compaction writes its segment under this suffix, and renames it once it is whole.
pub const TMP_SUFFIX: &str = ".tmp";

pub fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SUFFIX}"))
}

pub fn tmp_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{TMP_SUFFIX}"))
}

/// The segments in `dir`, oldest first. Half-written compactions are removed.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = name.strip_suffix(TMP_SUFFIX) {
            if seq.parse::<u64>().is_ok() {
                fs::remove_file(entry.path())?;
            }
        } else if let Some(seq) = name.strip_suffix(SUFFIX).and_then(|s| s.parse().ok()) {
            segments.push((seq, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Flushes a directory's entries (a file made, renamed or removed) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// What the records read so far add up to.
#[derive(Debug, Default)]
pub struct Rebuild {
    pub first_id: Option<u64>,
    pub next_id: u64,
    /// By channel name: its last attributes, and its messages in id order.
    pub channels: HashMap<String, (Option<ChannelRecord>, Vec<MessageRecord>)>,
    pub doors: DoorTable,
    pub records: u64,
}

/// The doors' registrations as they are now: the latest value per (door, key), removed ones
/// gone, in the order they were first registered (a door may list them in that order, as
/// Simple-Comet's status does). The log keeps one from its start on, so that a compaction
/// writes back exactly these.
#[derive(Debug, Default)]
pub struct DoorTable {
    next: u64,
    /// By (door, key): when it was registered, and its value.
    entries: HashMap<(String, Vec<u8>), (u64, Vec<u8>)>,
}

impl DoorTable {
    pub fn apply(&mut self, record: DoorRecord) {
        let key = (record.door, record.key);
        match record.value {
            None => {
                self.entries.remove(&key);
            }
            Some(value) => match self.entries.get_mut(&key) {
                Some(entry) => entry.1 = value,
                None => {
                    self.next += 1;
                    self.entries.insert(key, (self.next, value));
                }
            },
        }
    }

    /// Every registration, oldest first.
    pub fn records(&self) -> Vec<DoorRecord> {
        let mut kept: Vec<(&u64, DoorRecord)> = self
            .entries
            .iter()
            .map(|((door, key), (seq, value))| {
                let record = DoorRecord {
                    door: door.clone(),
                    key: key.clone(),
                    value: Some(value.clone()),
                };
                (seq, record)
            })
            .collect();
        kept.sort_by_key(|(seq, _)| **seq);
        kept.into_iter().map(|(_, record)| record).collect()
    }
}

impl Rebuild {
    pub fn apply(&mut self, record: Record) {
        self.records += 1;
        match record {
            Record::Start { first_id, next_id } => {
                self.first_id.get_or_insert(first_id);
                self.next_id = self.next_id.max(next_id);
            }
            Record::Message(m) => {
                self.next_id = self.next_id.max(m.id + 1);
                let (_, messages) = self.channels.entry(m.channel.clone()).or_default();
                // In order, once: a compaction cut short by a crash leaves copies behind.
                match messages.last() {
                    Some(last) if last.id >= m.id => {
                        if let Err(at) = messages.binary_search_by_key(&m.id, |k| k.id) {
                            messages.insert(at, m);
                        }
                    }
                    _ => messages.push(m),
                }
            }
            Record::Channel(c) => {
                let entry = self.channels.entry(c.name.clone()).or_default();
                entry.0 = Some(c);
            }
            Record::Forget { channel, upto } => {
                if let Some((attributes, messages)) = self.channels.get_mut(&channel) {
                    messages.retain(|m| m.id > upto);
                    if let Some(a) = attributes {
                        a.forgotten_upto = a.forgotten_upto.max(upto);
                    }
                }
            }
            Record::Delete { channel } => {
                self.channels.remove(&channel);
            }
            Record::Door(d) => self.doors.apply(d),
        }
    }
}

/// How reading a segment ended.
pub enum Ended {
    /// At its end.
    Whole,
    /// At a torn record, the segment's last: cut at `offset`.
    Torn { offset: usize },
    /// At damage: `offset` and why.
    Damaged { offset: usize, why: DecodeError },
}

/// Applies a segment's records to `rebuild`; says how reading ended. `last`: it is the newest
/// segment, where a crash can leave a record half-written.
pub fn read(bytes: &[u8], last: bool, rebuild: &mut Rebuild) -> Ended {
    let mut offset = 0;
    while offset < bytes.len() {
        match Record::decode(&bytes[offset..]) {
            Ok((record, len)) => {
                rebuild.apply(record);
                offset += len;
            }
            Err(why) => {
                // An append cut short leaves a short record, or zeros the file system
                // allocated but the data never reached.
                let rest = &bytes[offset..];
                let torn = why == DecodeError::Short || rest.iter().all(|b| *b == 0);
                if last && torn {
                    return Ended::Torn { offset };
                }
                return Ended::Damaged { offset, why };
            }
        }
    }
    Ended::Whole
}

/// Cuts `file` at `offset`, and says so.
pub fn cut(file: &Path, offset: usize, why: &str) -> io::Result<()> {
    let f = fs::OpenOptions::new().write(true).open(file)?;
    let len = f.metadata()?.len();
    f.set_len(offset as u64)?;
    f.sync_all()?;
    warn!(
        "{}: {why} at offset {offset}: cut there ({} bytes dropped)",
        file.display(),
        len - offset as u64
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(door: &str, key: &str, value: Option<&str>) -> DoorRecord {
        DoorRecord {
            door: door.into(),
            key: key.as_bytes().to_vec(),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    /// The latest value per door and key, removed ones gone, in the order first registered.
    #[test]
    fn the_door_table_keeps_the_latest_registrations_in_their_order() {
        let cases: &[(&[DoorRecord], &[DoorRecord])] = &[
            (&[], &[]),
            (&[door("d", "a", Some("1"))], &[door("d", "a", Some("1"))]),
            (
                &[door("d", "a", Some("1")), door("d", "a", Some("2"))],
                &[door("d", "a", Some("2"))],
            ),
            (&[door("d", "a", Some("1")), door("d", "a", None)], &[]),
            (&[door("d", "a", None)], &[]),
            (
                &[
                    door("d", "b", Some("1")),
                    door("e", "b", Some("2")),
                    door("d", "a", Some("3")),
                    door("d", "b", None),
                    door("d", "b", Some("4")),
                ],
                &[
                    door("e", "b", Some("2")),
                    door("d", "a", Some("3")),
                    door("d", "b", Some("4")),
                ],
            ),
        ];
        for (applied, want) in cases {
            let mut table = DoorTable::default();
            for record in applied.iter() {
                table.apply(record.clone());
            }
            assert_eq!(table.records(), *want, "{applied:?}");
        }
    }
}
