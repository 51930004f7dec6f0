//! AMQP 0-9-1 as far as msgbus speaks it, without I/O: frames cut from the bytes that arrived,
//! the methods of the connection, channel, exchange, queue and basic classes that a consumer
//! and publisher exchange with a broker, content headers, and field tables. One `Method` enum
//! serves both directions, so `decode_method(&encode_method(m)) == m` for every method, which
//! the fuzz target checks against whatever a broker (or an attacker in its place) may send.
//!
//! Written here rather than taken from the `amq-protocol` crate: that crate's codec brings a
//! parser-combinator stack, code generation from the protocol's JSON and a URI crate for some
//! two dozen methods, while this file is short, has no dependency, and bounds what it
//! allocates (frame size, table depth) as the reactor needs.

use std::fmt;

/// What a client sends before its first frame.
pub const PROTOCOL_HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";
/// The last byte of every frame.
const FRAME_END: u8 = 0xCE;
/// Frame type, channel, size.
const FRAME_HEAD: usize = 7;
/// The smallest frame size a peer may ask for (the specification's minimum).
pub const MIN_FRAME_MAX: u32 = 4096;
/// Tables inside tables (and arrays) deeper than this are refused, so decoding cannot
/// exhaust the stack.
const MAX_TABLE_DEPTH: usize = 16;

/// The class and method ids.
mod id {
    pub const CONNECTION: u16 = 10;
    pub const CHANNEL: u16 = 20;
    pub const EXCHANGE: u16 = 40;
    pub const QUEUE: u16 = 50;
    pub const BASIC: u16 = 60;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    Method = 1,
    Header = 2,
    Body = 3,
    Heartbeat = 8,
}

/// One frame, its payload borrowed from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: FrameType,
    pub channel: u16,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The peer answered the protocol header with its own: it speaks another version.
    ProtocolHeader([u8; 8]),
    UnknownFrameType(u8),
    FrameTooLarge(u32),
    BadFrameEnd,
    /// A method or header ended before its arguments did, or went on after them.
    Truncated,
    TrailingBytes,
    BadString,
    BadFieldType(u8),
    TooDeep,
    /// Property flags with the continuation bit (0-9-1 has no more than 15 properties).
    BadPropertyFlags,
    UnknownMethod(u16, u16),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::ProtocolHeader(h) => {
                write!(f, "the broker speaks another protocol version ({h:?})")
            }
            CodecError::UnknownFrameType(t) => write!(f, "unknown AMQP frame type {t}"),
            CodecError::FrameTooLarge(n) => write!(f, "AMQP frame of {n} bytes is too large"),
            CodecError::BadFrameEnd => f.write_str("AMQP frame does not end with 0xCE"),
            CodecError::Truncated => f.write_str("AMQP method or header cut short"),
            CodecError::TrailingBytes => f.write_str("AMQP method or header too long"),
            CodecError::BadString => f.write_str("AMQP short string is not UTF-8"),
            CodecError::BadFieldType(t) => write!(f, "unknown AMQP field type {t:#04x}"),
            CodecError::TooDeep => f.write_str("AMQP field tables nested too deep"),
            CodecError::BadPropertyFlags => f.write_str("AMQP property flags continue"),
            CodecError::UnknownMethod(c, m) => write!(f, "unknown AMQP method {c}.{m}"),
        }
    }
}

/// Cuts one frame from the front of `input`: Ok(None) when more bytes are needed. A frame
/// larger than `frame_max` (header and end octet included) is an error, as the specification
/// has it, so a peer cannot make the reader buffer without bound.
pub fn parse_frame(input: &[u8], frame_max: u32) -> Result<Option<(Frame<'_>, usize)>, CodecError> {
    if input.starts_with(b"AMQP") {
        // A broker refusing our version answers with the header it speaks, then closes.
        return match input.get(..8) {
            Some(h) => Err(CodecError::ProtocolHeader(h.try_into().expect("8 bytes"))),
            None => Ok(None),
        };
    }
    let Some(head) = input.get(..FRAME_HEAD) else {
        return Ok(None);
    };
    let kind = match head[0] {
        1 => FrameType::Method,
        2 => FrameType::Header,
        3 => FrameType::Body,
        8 => FrameType::Heartbeat,
        other => return Err(CodecError::UnknownFrameType(other)),
    };
    let channel = u16::from_be_bytes([head[1], head[2]]);
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    if u64::from(size) + FRAME_HEAD as u64 + 1 > u64::from(frame_max) {
        return Err(CodecError::FrameTooLarge(size));
    }
    let end = FRAME_HEAD + size as usize;
    let Some(&last) = input.get(end) else {
        return Ok(None);
    };
    if last != FRAME_END {
        return Err(CodecError::BadFrameEnd);
    }
    let frame = Frame {
        kind,
        channel,
        payload: &input[FRAME_HEAD..end],
    };
    Ok(Some((frame, end + 1)))
}

/// Appends one frame around `payload`.
pub fn encode_frame(out: &mut Vec<u8>, kind: FrameType, channel: u16, payload: &[u8]) {
    out.push(kind as u8);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(FRAME_END);
}

/// The heartbeat frame (always on channel 0, empty).
pub const HEARTBEAT: &[u8] = &[8, 0, 0, 0, 0, 0, 0, FRAME_END];

/// A field value in a table or array. Floats are kept as their bits so that values compare
/// exactly (NaN included) and round-trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(u32),
    F64(u64),
    Decimal(u8, u32),
    LongStr(Vec<u8>),
    Bytes(Vec<u8>),
    Array(Vec<Field>),
    Timestamp(u64),
    Table(Table),
    Void,
}

/// A field table: names and values in their order on the wire.
pub type Table = Vec<(String, Field)>;

/// The properties of a content header (basic class), each present or not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub headers: Option<Table>,
    /// 1 transient, 2 persistent.
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub expiration: Option<String>,
    pub message_id: Option<String>,
    pub timestamp: Option<u64>,
    pub kind: Option<String>,
    pub user_id: Option<String>,
    pub app_id: Option<String>,
    pub cluster_id: Option<String>,
}

/// A content header: which class, how long the body, and its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHeader {
    pub class: u16,
    pub body_size: u64,
    pub properties: Properties,
}

/// The methods msgbus sends or receives. Reserved arguments are written as zero and not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    ConnectionStart {
        version_major: u8,
        version_minor: u8,
        server_properties: Table,
        mechanisms: Vec<u8>,
        locales: Vec<u8>,
    },
    ConnectionStartOk {
        client_properties: Table,
        mechanism: String,
        response: Vec<u8>,
        locale: String,
    },
    ConnectionTune {
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    },
    ConnectionTuneOk {
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    },
    ConnectionOpen {
        vhost: String,
    },
    ConnectionOpenOk,
    ConnectionClose(Close),
    ConnectionCloseOk,
    ConnectionBlocked {
        reason: String,
    },
    ConnectionUnblocked,
    ChannelOpen,
    ChannelOpenOk,
    ChannelFlow {
        active: bool,
    },
    ChannelFlowOk {
        active: bool,
    },
    ChannelClose(Close),
    ChannelCloseOk,
    ExchangeDeclare {
        exchange: String,
        kind: String,
        flags: DeclareFlags,
        arguments: Table,
    },
    ExchangeDeclareOk,
    QueueDeclare {
        queue: String,
        flags: DeclareFlags,
        arguments: Table,
    },
    QueueDeclareOk {
        queue: String,
        message_count: u32,
        consumer_count: u32,
    },
    QueueBind {
        queue: String,
        exchange: String,
        routing_key: String,
        no_wait: bool,
        arguments: Table,
    },
    QueueBindOk,
    BasicQos {
        prefetch_size: u32,
        prefetch_count: u16,
        global: bool,
    },
    BasicQosOk,
    BasicConsume {
        queue: String,
        consumer_tag: String,
        no_local: bool,
        no_ack: bool,
        exclusive: bool,
        no_wait: bool,
        arguments: Table,
    },
    BasicConsumeOk {
        consumer_tag: String,
    },
    BasicCancel {
        consumer_tag: String,
        no_wait: bool,
    },
    BasicCancelOk {
        consumer_tag: String,
    },
    BasicPublish {
        exchange: String,
        routing_key: String,
        mandatory: bool,
        immediate: bool,
    },
    BasicReturn {
        reply_code: u16,
        reply_text: String,
        exchange: String,
        routing_key: String,
    },
    BasicDeliver {
        consumer_tag: String,
        delivery_tag: u64,
        redelivered: bool,
        exchange: String,
        routing_key: String,
    },
    BasicAck {
        delivery_tag: u64,
        multiple: bool,
    },
    BasicReject {
        delivery_tag: u64,
        requeue: bool,
    },
    BasicNack {
        delivery_tag: u64,
        multiple: bool,
        requeue: bool,
    },
}

/// connection.close and channel.close: why, and which method caused it (0 if none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub reply_code: u16,
    pub reply_text: String,
    pub class_id: u16,
    pub method_id: u16,
}

/// The bits of exchange.declare and queue.declare (`internal` only for exchanges,
/// `exclusive` only for queues; the other is written as zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeclareFlags {
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub exclusive: bool,
    pub no_wait: bool,
}

/// Reads method arguments and content headers in the order they come.
struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.input.len() < n {
            return Err(CodecError::Truncated);
        }
        let (taken, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        self.array().map(u64::from_be_bytes)
    }

    fn short_str(&mut self) -> Result<String, CodecError> {
        let n = self.u8()?;
        let bytes = self.take(usize::from(n))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::BadString)
    }

    fn long_str(&mut self) -> Result<Vec<u8>, CodecError> {
        let n = self.u32()?;
        Ok(self.take(n as usize)?.to_vec())
    }

    /// Up to eight bits packed in one octet, lowest first.
    fn bits<const N: usize>(&mut self) -> Result<[bool; N], CodecError> {
        let octet = self.u8()?;
        Ok(std::array::from_fn(|i| octet & (1 << i) != 0))
    }

    fn table(&mut self, depth: usize) -> Result<Table, CodecError> {
        if depth > MAX_TABLE_DEPTH {
            return Err(CodecError::TooDeep);
        }
        let n = self.u32()?;
        let mut inner = Reader {
            input: self.take(n as usize)?,
        };
        let mut table = Vec::new();
        while !inner.input.is_empty() {
            let name = inner.short_str()?;
            let value = inner.field(depth)?;
            table.push((name, value));
        }
        Ok(table)
    }

    fn field(&mut self, depth: usize) -> Result<Field, CodecError> {
        Ok(match self.u8()? {
            b't' => Field::Bool(self.u8()? != 0),
            b'b' => Field::I8(self.u8()? as i8),
            b'B' => Field::U8(self.u8()?),
            b's' => Field::I16(self.u16()? as i16),
            b'u' => Field::U16(self.u16()?),
            b'I' => Field::I32(self.u32()? as i32),
            b'i' => Field::U32(self.u32()?),
            b'l' => Field::I64(self.u64()? as i64),
            b'f' => Field::F32(self.u32()?),
            b'd' => Field::F64(self.u64()?),
            b'D' => Field::Decimal(self.u8()?, self.u32()?),
            b'S' => Field::LongStr(self.long_str()?),
            b'x' => Field::Bytes(self.long_str()?),
            b'A' => {
                if depth >= MAX_TABLE_DEPTH {
                    return Err(CodecError::TooDeep);
                }
                let n = self.u32()?;
                let mut inner = Reader {
                    input: self.take(n as usize)?,
                };
                let mut items = Vec::new();
                while !inner.input.is_empty() {
                    items.push(inner.field(depth + 1)?);
                }
                Field::Array(items)
            }
            b'T' => Field::Timestamp(self.u64()?),
            b'F' => Field::Table(self.table(depth + 1)?),
            b'V' => Field::Void,
            other => return Err(CodecError::BadFieldType(other)),
        })
    }

    fn close(&mut self) -> Result<Close, CodecError> {
        Ok(Close {
            reply_code: self.u16()?,
            reply_text: self.short_str()?,
            class_id: self.u16()?,
            method_id: self.u16()?,
        })
    }

    fn end(&self) -> Result<(), CodecError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes)
        }
    }
}

/// Decodes a method frame's payload.
pub fn decode_method(payload: &[u8]) -> Result<Method, CodecError> {
    let mut r = Reader { input: payload };
    let class = r.u16()?;
    let method = r.u16()?;
    let decoded = match (class, method) {
        (id::CONNECTION, 10) => Method::ConnectionStart {
            version_major: r.u8()?,
            version_minor: r.u8()?,
            server_properties: r.table(0)?,
            mechanisms: r.long_str()?,
            locales: r.long_str()?,
        },
        (id::CONNECTION, 11) => Method::ConnectionStartOk {
            client_properties: r.table(0)?,
            mechanism: r.short_str()?,
            response: r.long_str()?,
            locale: r.short_str()?,
        },
        (id::CONNECTION, 30 | 31) => {
            let (channel_max, frame_max, heartbeat) = (r.u16()?, r.u32()?, r.u16()?);
            if method == 30 {
                Method::ConnectionTune {
                    channel_max,
                    frame_max,
                    heartbeat,
                }
            } else {
                Method::ConnectionTuneOk {
                    channel_max,
                    frame_max,
                    heartbeat,
                }
            }
        }
        (id::CONNECTION, 40) => {
            let vhost = r.short_str()?;
            r.short_str()?;
            r.bits::<1>()?;
            Method::ConnectionOpen { vhost }
        }
        (id::CONNECTION, 41) => {
            r.short_str()?;
            Method::ConnectionOpenOk
        }
        (id::CONNECTION, 50) => Method::ConnectionClose(r.close()?),
        (id::CONNECTION, 51) => Method::ConnectionCloseOk,
        (id::CONNECTION, 60) => Method::ConnectionBlocked {
            reason: r.short_str()?,
        },
        (id::CONNECTION, 61) => Method::ConnectionUnblocked,
        (id::CHANNEL, 10) => {
            r.short_str()?;
            Method::ChannelOpen
        }
        (id::CHANNEL, 11) => {
            r.long_str()?;
            Method::ChannelOpenOk
        }
        (id::CHANNEL, 20) => Method::ChannelFlow {
            active: r.bits::<1>()?[0],
        },
        (id::CHANNEL, 21) => Method::ChannelFlowOk {
            active: r.bits::<1>()?[0],
        },
        (id::CHANNEL, 40) => Method::ChannelClose(r.close()?),
        (id::CHANNEL, 41) => Method::ChannelCloseOk,
        (id::EXCHANGE, 10) => {
            r.u16()?;
            let exchange = r.short_str()?;
            let kind = r.short_str()?;
            let [passive, durable, auto_delete, internal, no_wait] = r.bits()?;
            Method::ExchangeDeclare {
                exchange,
                kind,
                flags: DeclareFlags {
                    passive,
                    durable,
                    auto_delete,
                    internal,
                    exclusive: false,
                    no_wait,
                },
                arguments: r.table(0)?,
            }
        }
        (id::EXCHANGE, 11) => Method::ExchangeDeclareOk,
        (id::QUEUE, 10) => {
            r.u16()?;
            let queue = r.short_str()?;
            let [passive, durable, exclusive, auto_delete, no_wait] = r.bits()?;
            Method::QueueDeclare {
                queue,
                flags: DeclareFlags {
                    passive,
                    durable,
                    auto_delete,
                    internal: false,
                    exclusive,
                    no_wait,
                },
                arguments: r.table(0)?,
            }
        }
        (id::QUEUE, 11) => Method::QueueDeclareOk {
            queue: r.short_str()?,
            message_count: r.u32()?,
            consumer_count: r.u32()?,
        },
        (id::QUEUE, 20) => {
            r.u16()?;
            Method::QueueBind {
                queue: r.short_str()?,
                exchange: r.short_str()?,
                routing_key: r.short_str()?,
                no_wait: r.bits::<1>()?[0],
                arguments: r.table(0)?,
            }
        }
        (id::QUEUE, 21) => Method::QueueBindOk,
        (id::BASIC, 10) => Method::BasicQos {
            prefetch_size: r.u32()?,
            prefetch_count: r.u16()?,
            global: r.bits::<1>()?[0],
        },
        (id::BASIC, 11) => Method::BasicQosOk,
        (id::BASIC, 20) => {
            r.u16()?;
            let queue = r.short_str()?;
            let consumer_tag = r.short_str()?;
            let [no_local, no_ack, exclusive, no_wait] = r.bits()?;
            Method::BasicConsume {
                queue,
                consumer_tag,
                no_local,
                no_ack,
                exclusive,
                no_wait,
                arguments: r.table(0)?,
            }
        }
        (id::BASIC, 21) => Method::BasicConsumeOk {
            consumer_tag: r.short_str()?,
        },
        (id::BASIC, 30) => Method::BasicCancel {
            consumer_tag: r.short_str()?,
            no_wait: r.bits::<1>()?[0],
        },
        (id::BASIC, 31) => Method::BasicCancelOk {
            consumer_tag: r.short_str()?,
        },
        (id::BASIC, 40) => {
            r.u16()?;
            let exchange = r.short_str()?;
            let routing_key = r.short_str()?;
            let [mandatory, immediate] = r.bits()?;
            Method::BasicPublish {
                exchange,
                routing_key,
                mandatory,
                immediate,
            }
        }
        (id::BASIC, 50) => Method::BasicReturn {
            reply_code: r.u16()?,
            reply_text: r.short_str()?,
            exchange: r.short_str()?,
            routing_key: r.short_str()?,
        },
        (id::BASIC, 60) => Method::BasicDeliver {
            consumer_tag: r.short_str()?,
            delivery_tag: r.u64()?,
            redelivered: r.bits::<1>()?[0],
            exchange: r.short_str()?,
            routing_key: r.short_str()?,
        },
        (id::BASIC, 80) => Method::BasicAck {
            delivery_tag: r.u64()?,
            multiple: r.bits::<1>()?[0],
        },
        (id::BASIC, 90) => Method::BasicReject {
            delivery_tag: r.u64()?,
            requeue: r.bits::<1>()?[0],
        },
        (id::BASIC, 120) => {
            let delivery_tag = r.u64()?;
            let [multiple, requeue] = r.bits()?;
            Method::BasicNack {
                delivery_tag,
                multiple,
                requeue,
            }
        }
        (class, method) => return Err(CodecError::UnknownMethod(class, method)),
    };
    r.end()?;
    Ok(decoded)
}

/// Writes method arguments and content headers.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }

    fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A short string; longer than 255 bytes it is cut at a character boundary (the names
    /// msgbus sends are far shorter; a cut one is still valid UTF-8).
    fn short_str(&mut self, s: &str) -> &mut Self {
        let mut end = s.len().min(255);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u8(end as u8);
        self.out.extend_from_slice(&s.as_bytes()[..end]);
        self
    }

    fn long_str(&mut self, s: &[u8]) -> &mut Self {
        self.u32(s.len() as u32);
        self.out.extend_from_slice(s);
        self
    }

    fn bits(&mut self, bits: &[bool]) -> &mut Self {
        let octet = bits
            .iter()
            .enumerate()
            .fold(0u8, |acc, (i, &b)| acc | (u8::from(b) << i));
        self.u8(octet)
    }

    /// Writes a length-prefixed block whose length is known only after `fill`.
    fn sized(&mut self, fill: impl FnOnce(&mut Writer)) -> &mut Self {
        let at = self.out.len();
        self.u32(0);
        fill(self);
        let n = (self.out.len() - at - 4) as u32;
        self.out[at..at + 4].copy_from_slice(&n.to_be_bytes());
        self
    }

    fn table(&mut self, table: &Table) -> &mut Self {
        self.sized(|w| {
            for (name, value) in table {
                w.short_str(name);
                w.field(value);
            }
        })
    }

    fn field(&mut self, value: &Field) -> &mut Self {
        match value {
            Field::Bool(v) => self.u8(b't').u8(u8::from(*v)),
            Field::I8(v) => self.u8(b'b').u8(*v as u8),
            Field::U8(v) => self.u8(b'B').u8(*v),
            Field::I16(v) => self.u8(b's').u16(*v as u16),
            Field::U16(v) => self.u8(b'u').u16(*v),
            Field::I32(v) => self.u8(b'I').u32(*v as u32),
            Field::U32(v) => self.u8(b'i').u32(*v),
            Field::I64(v) => self.u8(b'l').u64(*v as u64),
            Field::F32(v) => self.u8(b'f').u32(*v),
            Field::F64(v) => self.u8(b'd').u64(*v),
            Field::Decimal(scale, v) => self.u8(b'D').u8(*scale).u32(*v),
            Field::LongStr(v) => self.u8(b'S').long_str(v),
            Field::Bytes(v) => self.u8(b'x').long_str(v),
            Field::Array(items) => self.u8(b'A').sized(|w| {
                for item in items {
                    w.field(item);
                }
            }),
            Field::Timestamp(v) => self.u8(b'T').u64(*v),
            Field::Table(t) => self.u8(b'F').table(t),
            Field::Void => self.u8(b'V'),
        }
    }

    fn close(&mut self, close: &Close) -> &mut Self {
        self.u16(close.reply_code)
            .short_str(&close.reply_text)
            .u16(close.class_id)
            .u16(close.method_id)
    }
}

/// A method frame's payload.
pub fn encode_method(method: &Method) -> Vec<u8> {
    let mut w = Writer::default();
    match method {
        Method::ConnectionStart {
            version_major,
            version_minor,
            server_properties,
            mechanisms,
            locales,
        } => w
            .u16(id::CONNECTION)
            .u16(10)
            .u8(*version_major)
            .u8(*version_minor)
            .table(server_properties)
            .long_str(mechanisms)
            .long_str(locales),
        Method::ConnectionStartOk {
            client_properties,
            mechanism,
            response,
            locale,
        } => w
            .u16(id::CONNECTION)
            .u16(11)
            .table(client_properties)
            .short_str(mechanism)
            .long_str(response)
            .short_str(locale),
        Method::ConnectionTune {
            channel_max,
            frame_max,
            heartbeat,
        } => w
            .u16(id::CONNECTION)
            .u16(30)
            .u16(*channel_max)
            .u32(*frame_max)
            .u16(*heartbeat),
        Method::ConnectionTuneOk {
            channel_max,
            frame_max,
            heartbeat,
        } => w
            .u16(id::CONNECTION)
            .u16(31)
            .u16(*channel_max)
            .u32(*frame_max)
            .u16(*heartbeat),
        Method::ConnectionOpen { vhost } => w
            .u16(id::CONNECTION)
            .u16(40)
            .short_str(vhost)
            .short_str("")
            .bits(&[false]),
        Method::ConnectionOpenOk => w.u16(id::CONNECTION).u16(41).short_str(""),
        Method::ConnectionClose(close) => w.u16(id::CONNECTION).u16(50).close(close),
        Method::ConnectionCloseOk => w.u16(id::CONNECTION).u16(51),
        Method::ConnectionBlocked { reason } => w.u16(id::CONNECTION).u16(60).short_str(reason),
        Method::ConnectionUnblocked => w.u16(id::CONNECTION).u16(61),
        Method::ChannelOpen => w.u16(id::CHANNEL).u16(10).short_str(""),
        Method::ChannelOpenOk => w.u16(id::CHANNEL).u16(11).long_str(b""),
        Method::ChannelFlow { active } => w.u16(id::CHANNEL).u16(20).bits(&[*active]),
        Method::ChannelFlowOk { active } => w.u16(id::CHANNEL).u16(21).bits(&[*active]),
        Method::ChannelClose(close) => w.u16(id::CHANNEL).u16(40).close(close),
        Method::ChannelCloseOk => w.u16(id::CHANNEL).u16(41),
        Method::ExchangeDeclare {
            exchange,
            kind,
            flags: f,
            arguments,
        } => w
            .u16(id::EXCHANGE)
            .u16(10)
            .u16(0)
            .short_str(exchange)
            .short_str(kind)
            .bits(&[f.passive, f.durable, f.auto_delete, f.internal, f.no_wait])
            .table(arguments),
        Method::ExchangeDeclareOk => w.u16(id::EXCHANGE).u16(11),
        Method::QueueDeclare {
            queue,
            flags: f,
            arguments,
        } => w
            .u16(id::QUEUE)
            .u16(10)
            .u16(0)
            .short_str(queue)
            .bits(&[f.passive, f.durable, f.exclusive, f.auto_delete, f.no_wait])
            .table(arguments),
        Method::QueueDeclareOk {
            queue,
            message_count,
            consumer_count,
        } => w
            .u16(id::QUEUE)
            .u16(11)
            .short_str(queue)
            .u32(*message_count)
            .u32(*consumer_count),
        Method::QueueBind {
            queue,
            exchange,
            routing_key,
            no_wait,
            arguments,
        } => w
            .u16(id::QUEUE)
            .u16(20)
            .u16(0)
            .short_str(queue)
            .short_str(exchange)
            .short_str(routing_key)
            .bits(&[*no_wait])
            .table(arguments),
        Method::QueueBindOk => w.u16(id::QUEUE).u16(21),
        Method::BasicQos {
            prefetch_size,
            prefetch_count,
            global,
        } => w
            .u16(id::BASIC)
            .u16(10)
            .u32(*prefetch_size)
            .u16(*prefetch_count)
            .bits(&[*global]),
        Method::BasicQosOk => w.u16(id::BASIC).u16(11),
        Method::BasicConsume {
            queue,
            consumer_tag,
            no_local,
            no_ack,
            exclusive,
            no_wait,
            arguments,
        } => w
            .u16(id::BASIC)
            .u16(20)
            .u16(0)
            .short_str(queue)
            .short_str(consumer_tag)
            .bits(&[*no_local, *no_ack, *exclusive, *no_wait])
            .table(arguments),
        Method::BasicConsumeOk { consumer_tag } => w.u16(id::BASIC).u16(21).short_str(consumer_tag),
        Method::BasicCancel {
            consumer_tag,
            no_wait,
        } => w
            .u16(id::BASIC)
            .u16(30)
            .short_str(consumer_tag)
            .bits(&[*no_wait]),
        Method::BasicCancelOk { consumer_tag } => w.u16(id::BASIC).u16(31).short_str(consumer_tag),
        Method::BasicPublish {
            exchange,
            routing_key,
            mandatory,
            immediate,
        } => w
            .u16(id::BASIC)
            .u16(40)
            .u16(0)
            .short_str(exchange)
            .short_str(routing_key)
            .bits(&[*mandatory, *immediate]),
        Method::BasicReturn {
            reply_code,
            reply_text,
            exchange,
            routing_key,
        } => w
            .u16(id::BASIC)
            .u16(50)
            .u16(*reply_code)
            .short_str(reply_text)
            .short_str(exchange)
            .short_str(routing_key),
        Method::BasicDeliver {
            consumer_tag,
            delivery_tag,
            redelivered,
            exchange,
            routing_key,
        } => w
            .u16(id::BASIC)
            .u16(60)
            .short_str(consumer_tag)
            .u64(*delivery_tag)
            .bits(&[*redelivered])
            .short_str(exchange)
            .short_str(routing_key),
        Method::BasicAck {
            delivery_tag,
            multiple,
        } => w
            .u16(id::BASIC)
            .u16(80)
            .u64(*delivery_tag)
            .bits(&[*multiple]),
        Method::BasicReject {
            delivery_tag,
            requeue,
        } => w
            .u16(id::BASIC)
            .u16(90)
            .u64(*delivery_tag)
            .bits(&[*requeue]),
        Method::BasicNack {
            delivery_tag,
            multiple,
            requeue,
        } => w
            .u16(id::BASIC)
            .u16(120)
            .u64(*delivery_tag)
            .bits(&[*multiple, *requeue]),
    };
    w.out
}

/// Decodes a content header frame's payload.
pub fn decode_content_header(payload: &[u8]) -> Result<ContentHeader, CodecError> {
    let mut r = Reader { input: payload };
    let class = r.u16()?;
    r.u16()?; // weight, unused
    let body_size = r.u64()?;
    let flags = r.u16()?;
    if flags & 1 != 0 {
        return Err(CodecError::BadPropertyFlags);
    }
    let has = |bit: u16| flags & (1 << bit) != 0;
    // In flag order, high bit first: each present property follows the one before.
    let p = Properties {
        content_type: has(15).then(|| r.short_str()).transpose()?,
        content_encoding: has(14).then(|| r.short_str()).transpose()?,
        headers: has(13).then(|| r.table(0)).transpose()?,
        delivery_mode: has(12).then(|| r.u8()).transpose()?,
        priority: has(11).then(|| r.u8()).transpose()?,
        correlation_id: has(10).then(|| r.short_str()).transpose()?,
        reply_to: has(9).then(|| r.short_str()).transpose()?,
        expiration: has(8).then(|| r.short_str()).transpose()?,
        message_id: has(7).then(|| r.short_str()).transpose()?,
        timestamp: has(6).then(|| r.u64()).transpose()?,
        kind: has(5).then(|| r.short_str()).transpose()?,
        user_id: has(4).then(|| r.short_str()).transpose()?,
        app_id: has(3).then(|| r.short_str()).transpose()?,
        cluster_id: has(2).then(|| r.short_str()).transpose()?,
    };
    r.end()?;
    Ok(ContentHeader {
        class,
        body_size,
        properties: p,
    })
}

/// A content header frame's payload.
pub fn encode_content_header(header: &ContentHeader) -> Vec<u8> {
    let p = &header.properties;
    let present = [
        p.content_type.is_some(),
        p.content_encoding.is_some(),
        p.headers.is_some(),
        p.delivery_mode.is_some(),
        p.priority.is_some(),
        p.correlation_id.is_some(),
        p.reply_to.is_some(),
        p.expiration.is_some(),
        p.message_id.is_some(),
        p.timestamp.is_some(),
        p.kind.is_some(),
        p.user_id.is_some(),
        p.app_id.is_some(),
        p.cluster_id.is_some(),
    ];
    let flags = present
        .iter()
        .enumerate()
        .fold(0u16, |acc, (i, &b)| acc | (u16::from(b) << (15 - i)));
    let mut w = Writer::default();
    w.u16(header.class).u16(0).u64(header.body_size).u16(flags);
    let strings = |w: &mut Writer, s: &Option<String>| {
        if let Some(s) = s {
            w.short_str(s);
        }
    };
    strings(&mut w, &p.content_type);
    strings(&mut w, &p.content_encoding);
    if let Some(t) = &p.headers {
        w.table(t);
    }
    if let Some(v) = p.delivery_mode {
        w.u8(v);
    }
    if let Some(v) = p.priority {
        w.u8(v);
    }
    strings(&mut w, &p.correlation_id);
    strings(&mut w, &p.reply_to);
    strings(&mut w, &p.expiration);
    strings(&mut w, &p.message_id);
    if let Some(v) = p.timestamp {
        w.u64(v);
    }
    strings(&mut w, &p.kind);
    strings(&mut w, &p.user_id);
    strings(&mut w, &p.app_id);
    strings(&mut w, &p.cluster_id);
    w.out
}

/// Appends a method frame.
pub fn push_method(out: &mut Vec<u8>, channel: u16, method: &Method) {
    encode_frame(out, FrameType::Method, channel, &encode_method(method));
}

/// Appends basic.publish, its content header and its body cut into frames no larger than
/// `frame_max` allows.
pub fn push_publish(
    out: &mut Vec<u8>,
    channel: u16,
    exchange: &str,
    properties: Properties,
    body: &[u8],
    frame_max: u32,
) {
    let publish = Method::BasicPublish {
        exchange: exchange.to_string(),
        routing_key: String::new(),
        mandatory: false,
        immediate: false,
    };
    push_method(out, channel, &publish);
    let header = ContentHeader {
        class: id::BASIC,
        body_size: body.len() as u64,
        properties,
    };
    let header = encode_content_header(&header);
    encode_frame(out, FrameType::Header, channel, &header);
    let room = (frame_max.max(MIN_FRAME_MAX) as usize) - FRAME_HEAD - 1;
    for piece in body.chunks(room) {
        encode_frame(out, FrameType::Body, channel, piece);
    }
}

/// `\0user\0password`, the PLAIN mechanism's response.
pub fn plain_response(user: &str, password: &str) -> Vec<u8> {
    let mut response = vec![0];
    response.extend_from_slice(user.as_bytes());
    response.push(0);
    response.extend_from_slice(password.as_bytes());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(method: Method) {
        let bytes = encode_method(&method);
        assert_eq!(decode_method(&bytes), Ok(method), "{bytes:?}");
    }

    #[test]
    fn methods_round_trip() {
        let close = Close {
            reply_code: 406,
            reply_text: "PRECONDITION_FAILED".into(),
            class_id: 40,
            method_id: 10,
        };
        let table: Table = vec![
            ("product".into(), Field::LongStr(b"msgbus".to_vec())),
            (
                "capabilities".into(),
                Field::Table(vec![("publisher_confirms".into(), Field::Bool(true))]),
            ),
            (
                "n".into(),
                Field::Array(vec![Field::I64(-1), Field::F64(f64::NAN.to_bits())]),
            ),
        ];
        let flags = DeclareFlags {
            durable: true,
            auto_delete: true,
            ..DeclareFlags::default()
        };
        let methods = [
            Method::ConnectionStart {
                version_major: 0,
                version_minor: 9,
                server_properties: table.clone(),
                mechanisms: b"PLAIN AMQPLAIN".to_vec(),
                locales: b"en_US".to_vec(),
            },
            Method::ConnectionStartOk {
                client_properties: table.clone(),
                mechanism: "PLAIN".into(),
                response: plain_response("guest", "guest"),
                locale: "en_US".into(),
            },
            Method::ConnectionTune {
                channel_max: 2047,
                frame_max: 131072,
                heartbeat: 60,
            },
            Method::ConnectionTuneOk {
                channel_max: 1,
                frame_max: 131072,
                heartbeat: 30,
            },
            Method::ConnectionOpen { vhost: "/".into() },
            Method::ConnectionOpenOk,
            Method::ConnectionClose(close.clone()),
            Method::ConnectionCloseOk,
            Method::ConnectionBlocked {
                reason: "low on memory".into(),
            },
            Method::ConnectionUnblocked,
            Method::ChannelOpen,
            Method::ChannelOpenOk,
            Method::ChannelFlow { active: true },
            Method::ChannelFlowOk { active: false },
            Method::ChannelClose(close),
            Method::ChannelCloseOk,
            Method::ExchangeDeclare {
                exchange: "eventsource.fanout".into(),
                kind: "fanout".into(),
                flags: DeclareFlags {
                    internal: true,
                    ..flags
                },
                arguments: Table::new(),
            },
            Method::ExchangeDeclareOk,
            Method::QueueDeclare {
                queue: String::new(),
                flags: DeclareFlags {
                    exclusive: true,
                    ..flags
                },
                arguments: table,
            },
            Method::QueueDeclareOk {
                queue: "amq.gen-x".into(),
                message_count: 3,
                consumer_count: 0,
            },
            Method::QueueBind {
                queue: "q".into(),
                exchange: "e".into(),
                routing_key: String::new(),
                no_wait: false,
                arguments: Table::new(),
            },
            Method::QueueBindOk,
            Method::BasicQos {
                prefetch_size: 0,
                prefetch_count: 256,
                global: false,
            },
            Method::BasicQosOk,
            Method::BasicConsume {
                queue: "q".into(),
                consumer_tag: "msgbus".into(),
                no_local: false,
                no_ack: false,
                exclusive: true,
                no_wait: false,
                arguments: Table::new(),
            },
            Method::BasicConsumeOk {
                consumer_tag: "msgbus".into(),
            },
            Method::BasicCancel {
                consumer_tag: "msgbus".into(),
                no_wait: true,
            },
            Method::BasicCancelOk {
                consumer_tag: "msgbus".into(),
            },
            Method::BasicPublish {
                exchange: "e".into(),
                routing_key: "k".into(),
                mandatory: true,
                immediate: false,
            },
            Method::BasicReturn {
                reply_code: 312,
                reply_text: "NO_ROUTE".into(),
                exchange: "e".into(),
                routing_key: "k".into(),
            },
            Method::BasicDeliver {
                consumer_tag: "msgbus".into(),
                delivery_tag: u64::MAX,
                redelivered: true,
                exchange: "e".into(),
                routing_key: String::new(),
            },
            Method::BasicAck {
                delivery_tag: 7,
                multiple: false,
            },
            Method::BasicReject {
                delivery_tag: 7,
                requeue: true,
            },
            Method::BasicNack {
                delivery_tag: 7,
                multiple: true,
                requeue: false,
            },
        ];
        for method in methods {
            round_trip(method);
        }
    }

    #[test]
    fn frames_as_the_specification_lays_them_out() {
        // basic.ack tag 1 on channel 1, as RabbitMQ's clients send it.
        let mut out = Vec::new();
        let ack = Method::BasicAck {
            delivery_tag: 1,
            multiple: false,
        };
        push_method(&mut out, 1, &ack);
        let want = b"\x01\x00\x01\x00\x00\x00\x0d\x00\x3c\x00\x50\0\0\0\0\0\0\0\x01\x00\xce";
        assert_eq!(out, want);
        let (frame, used) = parse_frame(&out, 4096).unwrap().unwrap();
        assert_eq!(
            (frame.kind, frame.channel, used),
            (FrameType::Method, 1, out.len())
        );
        assert_eq!(decode_method(frame.payload), Ok(ack));
        for end in 0..out.len() {
            assert_eq!(parse_frame(&out[..end], 4096), Ok(None), "{end}");
        }
        assert_eq!(
            parse_frame(HEARTBEAT, 4096).unwrap().unwrap().0.kind,
            FrameType::Heartbeat
        );
    }

    #[test]
    fn bad_frames() {
        let cases: &[(&[u8], CodecError)] = &[
            (b"\x07\0\0\0\0\0\0\xce", CodecError::UnknownFrameType(7)),
            (b"\x01\0\0\0\0\0\0\xcd", CodecError::BadFrameEnd),
            (b"\x03\0\x01\0\0\x10\0", CodecError::FrameTooLarge(4096)),
            (
                b"AMQP\x00\x00\x09\x00",
                CodecError::ProtocolHeader(*b"AMQP\x00\x00\x09\x00"),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse_frame(bytes, 4096), Err(want.clone()), "{bytes:?}");
        }
        assert_eq!(parse_frame(b"AMQP\x00", 4096), Ok(None));
    }

    #[test]
    fn bad_methods() {
        let deep = {
            // A table holding a table holding ... 40 deep.
            let mut t = Table::new();
            for _ in 0..40 {
                t = vec![("t".into(), Field::Table(t))];
            }
            encode_method(&Method::QueueDeclare {
                queue: "q".into(),
                flags: DeclareFlags::default(),
                arguments: t,
            })
        };
        let cases: &[(&[u8], CodecError)] = &[
            (b"\x00\x3c", CodecError::Truncated),
            (
                b"\x00\x3c\x00\x50\0\0\0\0\0\0\0\x01\0\0",
                CodecError::TrailingBytes,
            ),
            (b"\x00\x3c\x00\x51", CodecError::UnknownMethod(60, 81)),
            (b"\x00\x0a\x00\x3c\x01\xff", CodecError::BadString),
            (
                b"\x00\x32\x00\x0a\0\0\x01q\0\0\0\0\x03\x01a?",
                CodecError::BadFieldType(b'?'),
            ),
            (
                b"\x00\x32\x00\x0a\0\0\x01q\0\xff\xff\xff\xff",
                CodecError::Truncated,
            ),
            (&deep, CodecError::TooDeep),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode_method(bytes), Err(want.clone()), "{bytes:?}");
        }
    }

    #[test]
    fn content_headers_round_trip_and_bodies_are_cut_to_the_frame_size() {
        let properties = Properties {
            content_type: Some("application/json".into()),
            headers: Some(vec![("x".into(), Field::Void)]),
            delivery_mode: Some(2),
            message_id: Some("m1".into()),
            timestamp: Some(1_700_000_000),
            app_id: Some("msgbus/0123".into()),
            cluster_id: Some(String::new()),
            ..Properties::default()
        };
        let header = ContentHeader {
            class: 60,
            body_size: 9000,
            properties: properties.clone(),
        };
        assert_eq!(
            decode_content_header(&encode_content_header(&header)),
            Ok(header)
        );
        assert_eq!(
            decode_content_header(b"\0\x3c\0\0\0\0\0\0\0\0\0\0\0\x01"),
            Err(CodecError::BadPropertyFlags)
        );
        let mut out = Vec::new();
        push_publish(&mut out, 1, "e", properties, &[b'x'; 9000], 4096);
        let mut input = &out[..];
        let mut kinds = Vec::new();
        while let Some((frame, used)) = parse_frame(input, 4096).unwrap() {
            kinds.push((frame.kind, frame.payload.len()));
            input = &input[used..];
        }
        assert!(input.is_empty());
        let bodies: Vec<usize> = kinds[2..].iter().map(|k| k.1).collect();
        assert_eq!(bodies, [4088, 4088, 824]);
    }
}
