//! HPACK (RFC 7541), written here rather than taken from a crate. The kept crates did not fit:
//! `hpack` 0.3 is unmaintained and allocates without bound on hostile input; its fork
//! (`loona-hpack`) is maintained but still sizes nothing against a header-list limit, so the
//! bound would live outside it while the dynamic table lives inside. Here the decoder bounds
//! both itself: the dynamic table by the size we advertised, the decoded list by the limit
//! given per block (past it, decoding goes on only to keep the table in step and the list is
//! dropped). The encoder never indexes: responses carry few headers, and a table the peer
//! must keep for us would be per-connection state for little gain.

use std::collections::VecDeque;
use std::fmt;

use super::huffman;

/// The per-entry overhead of RFC 7541 section 4.1.
const ENTRY_OVERHEAD: usize = 32;

/// The static table (RFC 7541 Appendix A), index 1 first.
pub const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// One decoded header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl Field {
    /// Its size as RFC 7541 section 4.1 and RFC 9113 `SETTINGS_MAX_HEADER_LIST_SIZE` count it.
    pub fn size(&self) -> usize {
        self.name.len() + self.value.len() + ENTRY_OVERHEAD
    }
}

/// Why a header block did not decode: each is a connection error `COMPRESSION_ERROR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer longer than any value we accept.
    IntegerOverflow,
    /// Index 0, or past the static and dynamic tables.
    BadIndex(usize),
    Huffman(huffman::HuffmanError),
    /// A table size update above the size we advertised.
    TableSizeTooBig(usize),
    /// A table size update after a field in the same block.
    LateTableSizeUpdate,
    /// The first block after the peer acknowledged a table size below its table's did not
    /// begin by shrinking the table (RFC 7541 section 4.2).
    MissingTableSizeUpdate,
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HpackError::Truncated => f.write_str("header block ends inside a field"),
            HpackError::IntegerOverflow => f.write_str("HPACK integer too large"),
            HpackError::BadIndex(i) => write!(f, "HPACK index {i} is not in the table"),
            HpackError::Huffman(_) => f.write_str("bad Huffman string"),
            HpackError::TableSizeTooBig(n) => {
                write!(f, "table size update to {n} is over our limit")
            }
            HpackError::LateTableSizeUpdate => f.write_str("table size update after a field"),
            HpackError::MissingTableSizeUpdate => {
                f.write_str("no table size update after our smaller table size was acknowledged")
            }
        }
    }
}

/// How a block decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Every field is in the output list.
    Complete,
    /// The fields added up past the list limit; the output list is empty, the table in step.
    TooLarge,
}

/// Reads an integer with an `prefix`-bit prefix (RFC 7541 section 5.1) from `input[*at..]`.
/// Values up to 2^28 are accepted: more than any size or index we could honour.
pub fn decode_integer(input: &[u8], at: &mut usize, prefix: u8) -> Result<usize, HpackError> {
    let mask = (1usize << prefix) - 1;
    let first = *input.get(*at).ok_or(HpackError::Truncated)?;
    *at += 1;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let byte = *input.get(*at).ok_or(HpackError::Truncated)?;
        *at += 1;
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 21 {
            return Err(HpackError::IntegerOverflow);
        }
    }
}

/// Writes `value` with a `prefix`-bit prefix, the byte's high bits set to `flags`.
pub fn encode_integer(value: usize, prefix: u8, flags: u8, out: &mut Vec<u8>) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

fn decode_string(input: &[u8], at: &mut usize) -> Result<Vec<u8>, HpackError> {
    let huffman = input.get(*at).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = decode_integer(input, at, 7)?;
    if len > input.len() - *at {
        return Err(HpackError::Truncated);
    }
    let raw = &input[*at..*at + len];
    *at += len;
    if huffman {
        // Huffman codes are at least 5 bits: the output is at most 8/5 of the input.
        let mut out = Vec::with_capacity(len * 8 / 5);
        huffman::decode(raw, &mut out).map_err(HpackError::Huffman)?;
        Ok(out)
    } else {
        Ok(raw.to_vec())
    }
}

/// Writes a string literal, Huffman-coded when that is shorter.
fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    let coded = huffman::encoded_len(s);
    if coded < s.len() {
        encode_integer(coded, 7, 0x80, out);
        huffman::encode(s, out);
    } else {
        encode_integer(s.len(), 7, 0, out);
        out.extend_from_slice(s);
    }
}

/// The dynamic table, newest entry first.
#[derive(Debug)]
struct DynamicTable {
    entries: VecDeque<(Box<[u8]>, Box<[u8]>)>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        self.entries.get(index).map(|(n, v)| (&n[..], &v[..]))
    }

    fn evict_to(&mut self, max: usize) {
        while self.size > max {
            let Some((n, v)) = self.entries.pop_back() else {
                break;
            };
            self.size -= n.len() + v.len() + ENTRY_OVERHEAD;
        }
    }

    /// An entry larger than the table empties it and is not added (section 4.4).
    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.entries.push_front((name.into(), value.into()));
        self.size += size;
    }
}

/// The table size both ends start with (RFC 9113 section 6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// The decoding side of one connection.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// No update may exceed it: the `SETTINGS_HEADER_TABLE_SIZE` we advertised, or while the
    /// peer has not acknowledged it, that or the default, whichever is larger.
    limit: usize,
    /// What we advertised, while the peer has not acknowledged it.
    advertised: Option<usize>,
    /// The peer acknowledged a size below its table's: its next block must shrink the table.
    must_shrink: bool,
}

impl Decoder {
    /// A decoder whose table has `table_size` already agreed: as after SETTINGS acknowledged.
    pub fn new(table_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable {
                entries: VecDeque::new(),
                size: 0,
                max_size: table_size,
            },
            limit: table_size,
            advertised: None,
            must_shrink: false,
        }
    }

    /// A new connection's decoder that advertised `table_size`: until the peer acknowledges
    /// our SETTINGS its encoder may still use the default size (`on_settings_acked`).
    pub fn advertising(table_size: usize) -> Decoder {
        let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
        if table_size != DEFAULT_TABLE_SIZE {
            decoder.limit = table_size.max(DEFAULT_TABLE_SIZE);
            decoder.advertised = Some(table_size);
        }
        decoder
    }

    /// The peer acknowledged our SETTINGS: the size we advertised is the limit from now on, and
    /// a table larger than it must be shrunk at the start of the next block.
    pub fn on_settings_acked(&mut self) {
        if let Some(size) = self.advertised.take() {
            self.limit = size;
            self.must_shrink = self.table.max_size > size;
        }
    }

    /// Bytes the dynamic table holds by RFC 7541's count.
    pub fn table_size(&self) -> usize {
        self.table.size
    }

    fn lookup(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            0 => Err(HpackError::BadIndex(0)),
            1..=61 => {
                let (n, v) = STATIC_TABLE[index - 1];
                Ok((n.as_bytes(), v.as_bytes()))
            }
            _ => self
                .table
                .get(index - 62)
                .ok_or(HpackError::BadIndex(index)),
        }
    }

    /// Decodes one whole header block onto `out` (emptied first). The list is bounded by
    /// `max_list` bytes as RFC 9113 counts them; past it the block is still decoded to keep the
    /// dynamic table in step, but nothing more is kept.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list: usize,
        out: &mut Vec<Field>,
    ) -> Result<Decoded, HpackError> {
        out.clear();
        let mut at = 0;
        let mut list_size = 0usize;
        let mut too_large = false;
        let mut seen_field = false;
        while at < block.len() {
            let first = block[at];
            if self.must_shrink && first & 0xe0 != 0x20 {
                return Err(HpackError::MissingTableSizeUpdate);
            }
            let field = if first & 0x80 != 0 {
                // Indexed field (section 6.1).
                let index = decode_integer(block, &mut at, 7)?;
                let (n, v) = self.lookup(index)?;
                Field {
                    name: n.to_vec(),
                    value: v.to_vec(),
                }
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (section 6.3): only before the first field.
                let size = decode_integer(block, &mut at, 5)?;
                if seen_field {
                    return Err(HpackError::LateTableSizeUpdate);
                }
                if size > self.limit {
                    return Err(HpackError::TableSizeTooBig(size));
                }
                self.must_shrink = false;
                self.table.max_size = size;
                self.table.evict_to(size);
                continue;
            } else {
                // A literal: with incremental indexing (01), without (0000) or never (0001).
                let (prefix, index_it) = if first & 0x40 != 0 {
                    (6, true)
                } else {
                    (4, false)
                };
                let index = decode_integer(block, &mut at, prefix)?;
                let name = if index == 0 {
                    decode_string(block, &mut at)?
                } else {
                    self.lookup(index)?.0.to_vec()
                };
                let value = decode_string(block, &mut at)?;
                if index_it {
                    self.table.insert(&name, &value);
                }
                Field { name, value }
            };
            seen_field = true;
            list_size = list_size.saturating_add(field.size());
            if list_size > max_list {
                too_large = true;
                out.clear();
            }
            if !too_large {
                out.push(field);
            }
        }
        Ok(if too_large {
            Decoded::TooLarge
        } else {
            Decoded::Complete
        })
    }
}

/// The encoding side of one connection: static-table matches and literals never indexed into a
/// dynamic table, so it holds no table at all.
#[derive(Debug, Default)]
pub struct Encoder {
    /// The peer sent `SETTINGS_HEADER_TABLE_SIZE`: the next block starts by setting our table
    /// to 0, which acknowledges any size it asked for (RFC 7541 section 4.2).
    pending_size_update: bool,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// The peer announced a table size for what we send.
    pub fn on_peer_table_size(&mut self) {
        self.pending_size_update = true;
    }

    /// Encodes a whole block onto `out`. Names must already be lowercase.
    pub fn encode<'a>(
        &mut self,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        out: &mut Vec<u8>,
    ) {
        if std::mem::take(&mut self.pending_size_update) {
            encode_integer(0, 5, 0x20, out);
        }
        for (name, value) in fields {
            encode_field(name, value, out);
        }
    }
}

fn encode_field(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let mut name_index = 0;
    for (i, (n, v)) in STATIC_TABLE.iter().enumerate() {
        if n.as_bytes() == name {
            if v.as_bytes() == value {
                encode_integer(i + 1, 7, 0x80, out);
                return;
            }
            if name_index == 0 {
                name_index = i + 1;
            }
        }
    }
    // Literal without indexing (section 6.2.2).
    encode_integer(name_index, 4, 0x00, out);
    if name_index == 0 {
        encode_string(name, out);
    }
    encode_string(value, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::huffman::tests::hex;

    fn fields(list: &[Field]) -> Vec<(String, String)> {
        list.iter()
            .map(|f| {
                (
                    String::from_utf8(f.name.clone()).unwrap(),
                    String::from_utf8(f.value.clone()).unwrap(),
                )
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// Decodes a sequence of blocks on one decoder, checking each list and the table size after.
    fn run(table_size: usize, steps: &[(&str, &[(&str, &str)], usize)]) {
        let mut dec = Decoder::new(table_size);
        let mut out = Vec::new();
        for (i, (block, want, size)) in steps.iter().enumerate() {
            assert_eq!(
                dec.decode(&hex(block), 1 << 16, &mut out),
                Ok(Decoded::Complete),
                "block {i}"
            );
            assert_eq!(fields(&out), pairs(want), "block {i}");
            assert_eq!(dec.table_size(), *size, "block {i}");
        }
    }

    #[test]
    fn integers_rfc_7541_c1() {
        for (value, prefix, bytes) in [
            (10usize, 5u8, &[0x0au8][..]),
            (1337, 5, &[0x1f, 0x9a, 0x0a][..]),
            (42, 8, &[0x2a][..]),
            (31, 5, &[0x1f, 0x00][..]),
        ] {
            let mut out = Vec::new();
            encode_integer(value, prefix, 0, &mut out);
            assert_eq!(out, bytes);
            let mut at = 0;
            assert_eq!(decode_integer(bytes, &mut at, prefix), Ok(value));
            assert_eq!(at, bytes.len());
        }
    }

    #[test]
    fn integer_limits() {
        for (bytes, want) in [
            (&[0x1fu8, 0xff][..], Err(HpackError::Truncated)),
            (
                &[0x1f, 0xff, 0xff, 0xff, 0xff, 0x01][..],
                Err(HpackError::IntegerOverflow),
            ),
            (&[0x1f, 0xff, 0xff, 0xff, 0x7f][..], Ok(31 + (1 << 28) - 1)),
            (&[][..], Err(HpackError::Truncated)),
        ] {
            assert_eq!(decode_integer(bytes, &mut 0, 5), want, "{bytes:?}");
        }
    }

    #[test]
    fn literal_fields_rfc_7541_c2() {
        // C.2.1 with indexing, C.2.2 without, C.2.3 never indexed, C.2.4 indexed.
        run(
            4096,
            &[(
                "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
                &[("custom-key", "custom-header")],
                55,
            )],
        );
        run(
            4096,
            &[(
                "040c 2f73 616d 706c 652f 7061 7468",
                &[(":path", "/sample/path")],
                0,
            )],
        );
        run(
            4096,
            &[(
                "1008 7061 7373 776f 7264 0673 6563 7265 74",
                &[("password", "secret")],
                0,
            )],
        );
        run(4096, &[("82", &[(":method", "GET")], 0)]);
    }

    const C3_1: &[(&str, &str)] = &[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    const C3_2: &[(&str, &str)] = &[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
        ("cache-control", "no-cache"),
    ];
    const C3_3: &[(&str, &str)] = &[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];

    #[test]
    fn requests_rfc_7541_c3_and_c4() {
        run(
            4096,
            &[
                (
                    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                    C3_1,
                    57,
                ),
                ("8286 84be 5808 6e6f 2d63 6163 6865", C3_2, 110),
                (
                    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                    C3_3,
                    164,
                ),
            ],
        );
        run(
            4096,
            &[
                ("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", C3_1, 57),
                ("8286 84be 5886 a8eb 1064 9cbf", C3_2, 110),
                (
                    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                    C3_3,
                    164,
                ),
            ],
        );
    }

    const C5_1: &[(&str, &str)] = &[
        (":status", "302"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ];
    const C5_2: &[(&str, &str)] = &[
        (":status", "307"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ];
    const C5_3: &[(&str, &str)] = &[
        (":status", "200"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ("location", "https://www.example.com"),
        ("content-encoding", "gzip"),
        (
            "set-cookie",
            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
        ),
    ];

    #[test]
    fn responses_with_eviction_rfc_7541_c5_and_c6() {
        // A 256-byte table, so entries are evicted as the examples show.
        run(
            256,
            &[
                (
                    "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                     2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
                     6c65 2e63 6f6d",
                    C5_1,
                    222,
                ),
                ("4803 3330 37c1 c0bf", C5_2, 222),
                (
                    "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
                     54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
                     5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
                     3d31",
                    C5_3,
                    215,
                ),
            ],
        );
        run(
            256,
            &[
                (
                    "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                     2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                    C5_1,
                    222,
                ),
                ("4883 640e ffc1 c0bf", C5_2, 222),
                (
                    "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                     77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                     9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                    C5_3,
                    215,
                ),
            ],
        );
    }

    /// A size advertised below the default holds only once acknowledged, and the first block
    /// after that must shrink the table; one above it may be taken up at once.
    #[test]
    fn advertised_table_sizes() {
        // An entry of 32 + 4 + 300 bytes: more than 256, within the default 4,096.
        let long = format!("4004 7465 7374 7fad 01 {}", "78".repeat(300));
        let cases: &[(usize, bool, &str, Result<Decoded, HpackError>)] = &[
            (256, false, &long, Ok(Decoded::Complete)),
            (256, false, "3fe1 1f", Ok(Decoded::Complete)),
            (256, true, "82", Err(HpackError::MissingTableSizeUpdate)),
            (256, true, "3fe1 1f", Err(HpackError::TableSizeTooBig(4096))),
            (256, true, "3fe1 01 82", Ok(Decoded::Complete)),
            (256, true, "20 3fe1 01 82", Ok(Decoded::Complete)),
            (8192, false, "3fe1 3f", Ok(Decoded::Complete)),
            (8192, true, "3fe1 3f 82", Ok(Decoded::Complete)),
            (
                8192,
                true,
                "3fe2 3f",
                Err(HpackError::TableSizeTooBig(8193)),
            ),
            (
                4096,
                true,
                "3fe2 1f",
                Err(HpackError::TableSizeTooBig(4097)),
            ),
            (4096, true, "82", Ok(Decoded::Complete)),
        ];
        for (advertised, acked, block, want) in cases {
            let mut dec = Decoder::advertising(*advertised);
            let mut out = Vec::new();
            if *acked {
                dec.on_settings_acked();
            }
            assert_eq!(
                dec.decode(&hex(block), 1 << 16, &mut out),
                *want,
                "{advertised} {acked} {block}"
            );
        }
        // Shrunk as asked, the table holds no more than was advertised.
        let mut dec = Decoder::advertising(256);
        let mut out = Vec::new();
        dec.decode(&hex(&long), 1 << 16, &mut out).unwrap();
        assert_eq!(dec.table_size(), 336);
        dec.on_settings_acked();
        dec.decode(&hex("3fe1 01 82"), 1 << 16, &mut out).unwrap();
        assert_eq!(dec.table_size(), 0);
    }

    #[test]
    fn malformed_blocks_are_compression_errors() {
        let mut dec = Decoder::new(4096);
        let mut out = Vec::new();
        for (block, err) in [
            ("80", HpackError::BadIndex(0)),
            ("be", HpackError::BadIndex(62)),
            ("7f00", HpackError::BadIndex(63)),
            ("4005 6162", HpackError::Truncated),
            ("407f 8080 8080 80", HpackError::IntegerOverflow),
            ("3fe2 1f", HpackError::TableSizeTooBig(4097)),
            ("8220", HpackError::LateTableSizeUpdate),
            (
                "4081 0081 ff",
                HpackError::Huffman(huffman::HuffmanError::Padding),
            ),
            ("407f 80", HpackError::Truncated),
        ] {
            assert_eq!(
                dec.decode(&hex(block), 1 << 16, &mut out),
                Err(err),
                "{block}"
            );
        }
    }

    #[test]
    fn size_update_shrinks_and_evicts() {
        let mut dec = Decoder::new(4096);
        let mut out = Vec::new();
        dec.decode(
            &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
            1 << 16,
            &mut out,
        )
        .unwrap();
        assert_eq!(dec.table_size(), 55);
        // Size 0, then back up to 4096, then the evicted entry is gone.
        dec.decode(&hex("203f e11f"), 1 << 16, &mut out).unwrap();
        assert_eq!(dec.table_size(), 0);
        assert_eq!(
            dec.decode(&hex("be"), 1 << 16, &mut out),
            Err(HpackError::BadIndex(62))
        );
    }

    #[test]
    fn list_over_the_limit_is_dropped_but_table_kept_in_step() {
        let mut dec = Decoder::new(4096);
        let mut out = Vec::new();
        let block = hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d");
        assert_eq!(dec.decode(&block, 100, &mut out), Ok(Decoded::TooLarge));
        assert!(out.is_empty());
        assert_eq!(dec.table_size(), 57);
        // The next block refers to the entry added by the dropped one.
        assert_eq!(dec.decode(&hex("be"), 100, &mut out), Ok(Decoded::Complete));
        assert_eq!(fields(&out), pairs(&[(":authority", "www.example.com")]));
    }

    #[test]
    fn encoder_output_decodes_back() {
        let list: &[(&str, &str)] = &[
            (":status", "200"),
            (":status", "431"),
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            ("x-accel-buffering", "no"),
            ("accept-encoding", "gzip, deflate"),
        ];
        let mut enc = Encoder::new();
        enc.on_peer_table_size();
        let mut block = Vec::new();
        enc.encode(
            list.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &mut block,
        );
        // Starts with a size update to 0, then ":status: 200" fully indexed.
        assert_eq!(&block[..2], &[0x20, 0x88]);
        let mut dec = Decoder::new(4096);
        let mut out = Vec::new();
        dec.decode(&block, 1 << 16, &mut out).unwrap();
        assert_eq!(fields(&out), pairs(list));
        // The size update is sent once.
        let mut second = Vec::new();
        enc.encode([(&b":status"[..], &b"200"[..])], &mut second);
        assert_eq!(second, [0x88]);
    }
}
