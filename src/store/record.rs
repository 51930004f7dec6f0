//! The log's records, encoded and decoded without I/O. On disk a record is
//! `length (u32 LE) | CRC32C of the payload (u32 LE) | payload`; the payload starts with its
//! kind. Integers are little-endian, strings and bytes are a u32 length then the bytes, an
//! optional value is a 0 or 1 byte then the value.
//!
//! Wall-clock times (a message's expiry, its publish time) are kept as such: a restart may come
//! long after, and what expired meanwhile is gone when the log is read back.

use std::fmt;

pub use crate::bus::history::DoorRecord;

/// Bytes before the payload: its length and checksum.
pub const HEADER: usize = 8;
/// No payload is larger: a length beyond it is damage, not a record (a message body is at most
/// `--max-body`, far below).
pub const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

const KIND_START: u8 = 1;
const KIND_MESSAGE: u8 = 2;
const KIND_CHANNEL: u8 = 3;
const KIND_FORGET: u8 = 4;
const KIND_DELETE: u8 = 5;
const KIND_DOOR: u8 = 6;

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Opens each segment: ids from `next_id` on are new; ids before `first_id` were never
    /// known here (a cursor before it may have missed something).
    Start {
        first_id: u64,
        next_id: u64,
    },
    Message(MessageRecord),
    /// A channel's attributes, as they are from now on.
    Channel(ChannelRecord),
    /// A channel's messages up to `upto` are gone (a door reset it, or one-to-one delivery).
    Forget {
        channel: String,
        upto: u64,
    },
    /// A channel and its messages are gone.
    Delete {
        channel: String,
    },
    /// A door's registration, as it is from now on (a door's own bytes: the log only keeps
    /// the latest value per door and key).
    Door(DoorRecord),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: u64,
    pub channel: String,
    pub content_type: String,
    pub sender: Option<String>,
    pub event: Option<String>,
    /// Seconds since 1970.
    pub published: u64,
    /// Milliseconds since 1970 after which it is no longer kept.
    pub expires_ms: u64,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    pub name: String,
    pub size: u64,
    pub lifetime_ms: u64,
    /// SHA-256 of the publish key, never the key.
    pub key: Option<[u8; 32]>,
    pub one2one: bool,
    /// The highest id of it that is gone: a cursor before it has missed something.
    pub forgotten_upto: u64,
}

/// Why bytes are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end inside the record (a torn write at the tail, or not yet written).
    Short,
    /// The length is beyond any record.
    Length,
    /// The checksum does not match.
    Checksum,
    /// The checksum matches but the payload does not parse: written by something else.
    Payload,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Short => "record cut short",
            DecodeError::Length => "impossible record length",
            DecodeError::Checksum => "checksum mismatch",
            DecodeError::Payload => "unreadable record",
        })
    }
}

impl Record {
    /// Appends the record, header and all, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER]);
        match self {
            Record::Start { first_id, next_id } => {
                out.push(KIND_START);
                put_u64(out, *first_id);
                put_u64(out, *next_id);
            }
            Record::Message(m) => {
                out.push(KIND_MESSAGE);
                put_u64(out, m.id);
                put_u64(out, m.published);
                put_u64(out, m.expires_ms);
                put_str(out, &m.channel);
                put_str(out, &m.content_type);
                put_opt(out, m.sender.as_deref());
                put_opt(out, m.event.as_deref());
                put_bytes(out, &m.body);
            }
            Record::Channel(c) => {
                out.push(KIND_CHANNEL);
                put_str(out, &c.name);
                put_u64(out, c.size);
                put_u64(out, c.lifetime_ms);
                match &c.key {
                    Some(key) => {
                        out.push(1);
                        out.extend_from_slice(key);
                    }
                    None => out.push(0),
                }
                out.push(u8::from(c.one2one));
                put_u64(out, c.forgotten_upto);
            }
            Record::Forget { channel, upto } => {
                out.push(KIND_FORGET);
                put_str(out, channel);
                put_u64(out, *upto);
            }
            Record::Delete { channel } => {
                out.push(KIND_DELETE);
                put_str(out, channel);
            }
            Record::Door(d) => {
                out.push(KIND_DOOR);
                put_str(out, &d.door);
                put_bytes(out, &d.key);
                match &d.value {
                    Some(value) => {
                        out.push(1);
                        put_bytes(out, value);
                    }
                    None => out.push(0),
                }
            }
        }
        let payload = &out[start + HEADER..];
        let len = payload.len() as u32;
        let crc = crc32c(payload);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    }

    /// The record at the start of `bytes`, and its length on disk.
    pub fn decode(bytes: &[u8]) -> Result<(Record, usize), DecodeError> {
        let header = bytes.get(..HEADER).ok_or(DecodeError::Short)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if len == 0 || len > MAX_PAYLOAD {
            return Err(DecodeError::Length);
        }
        let payload = bytes.get(HEADER..HEADER + len).ok_or(DecodeError::Short)?;
        if crc32c(payload) != crc {
            return Err(DecodeError::Checksum);
        }
        let record = parse(payload).ok_or(DecodeError::Payload)?;
        Ok((record, HEADER + len))
    }
}

fn parse(payload: &[u8]) -> Option<Record> {
    let mut r = Reader(payload);
    let record = match r.u8()? {
        KIND_START => Record::Start {
            first_id: r.u64()?,
            next_id: r.u64()?,
        },
        KIND_MESSAGE => Record::Message(MessageRecord {
            id: r.u64()?,
            published: r.u64()?,
            expires_ms: r.u64()?,
            channel: r.string()?,
            content_type: r.string()?,
            sender: r.opt()?,
            event: r.opt()?,
            body: r.bytes()?.to_vec(),
        }),
        KIND_CHANNEL => Record::Channel(ChannelRecord {
            name: r.string()?,
            size: r.u64()?,
            lifetime_ms: r.u64()?,
            key: match r.u8()? {
                0 => None,
                1 => Some(r.take(32)?.try_into().ok()?),
                _ => return None,
            },
            one2one: match r.u8()? {
                0 => false,
                1 => true,
                _ => return None,
            },
            forgotten_upto: r.u64()?,
        }),
        KIND_FORGET => Record::Forget {
            channel: r.string()?,
            upto: r.u64()?,
        },
        KIND_DELETE => Record::Delete {
            channel: r.string()?,
        },
        KIND_DOOR => Record::Door(DoorRecord {
            door: r.string()?,
            key: r.bytes()?.to_vec(),
            value: match r.u8()? {
                0 => None,
                1 => Some(r.bytes()?.to_vec()),
                _ => return None,
            },
        }),
        _ => return None,
    };
    // Trailing bytes mean a payload this code did not write.
    r.0.is_empty().then_some(record)
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(len)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.string()?)),
            _ => None,
        }
    }
}

/// CRC-32C (Castagnoli), as iSCSI, ext4 and most logs use: its polynomial catches more of the
/// errors disks make than CRC-32's. A byte-at-a-time table is enough here (the disk is slower);
/// forty lines are not worth a dependency.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    // The reflected Castagnoli polynomial.
    const POLY: u32 = 0x82f6_3b78;
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record> {
        vec![
            Record::Start {
                first_id: 7,
                next_id: 42,
            },
            Record::Message(MessageRecord {
                id: 42,
                channel: "a/b".into(),
                content_type: "text/plain".into(),
                sender: Some("alice".into()),
                event: None,
                published: 1_700_000_000,
                expires_ms: 1_700_000_060_000,
                body: b"hello".to_vec(),
            }),
            Record::Channel(ChannelRecord {
                name: "k".into(),
                size: 5,
                lifetime_ms: 60_000,
                key: Some([9; 32]),
                one2one: true,
                forgotten_upto: 3,
            }),
            Record::Forget {
                channel: "k".into(),
                upto: 40,
            },
            Record::Delete {
                channel: "k".into(),
            },
            Record::Door(DoorRecord {
                door: "simple-comet".into(),
                key: b"chat".to_vec(),
                value: Some(vec![1, 0, 0xff]),
            }),
            Record::Door(DoorRecord {
                door: "simple-comet".into(),
                key: b"chat".to_vec(),
                value: None,
            }),
            Record::Door(DoorRecord {
                door: "d".into(),
                key: Vec::new(),
                value: Some(Vec::new()),
            }),
        ]
    }

    #[test]
    fn crc32c_check_value() {
        // The check value every CRC-32C implementation agrees on.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn records_round_trip() {
        for record in samples() {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            assert_eq!(Record::decode(&bytes), Ok((record, bytes.len())));
        }
    }

    /// A door record's value flag is 0 or 1: anything else, checksum or not, is not one.
    #[test]
    fn a_door_record_with_another_value_flag_is_unreadable() {
        let mut bytes = Vec::new();
        samples()[6].encode(&mut bytes);
        let flag = bytes.len() - 1;
        assert_eq!(bytes[flag], 0);
        bytes[flag] = 2;
        let crc = crc32c(&bytes[HEADER..]);
        bytes[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Record::decode(&bytes).unwrap_err(), DecodeError::Payload);
    }

    #[test]
    fn damage_is_told_apart() {
        let mut bytes = Vec::new();
        samples()[1].encode(&mut bytes);
        let cases: &[(&dyn Fn(&mut Vec<u8>), DecodeError)] = &[
            (&|b| b.truncate(5), DecodeError::Short),
            (&|b| b.truncate(b.len() - 1), DecodeError::Short),
            (&|b| b[HEADER + 3] ^= 1, DecodeError::Checksum),
            (
                &|b| b[..4].copy_from_slice(&0u32.to_le_bytes()),
                DecodeError::Length,
            ),
            (
                &|b| b[..4].copy_from_slice(&u32::MAX.to_le_bytes()),
                DecodeError::Length,
            ),
        ];
        for (damage, want) in cases {
            let mut damaged = bytes.clone();
            damage(&mut damaged);
            assert_eq!(Record::decode(&damaged).unwrap_err(), *want);
        }
    }
}
