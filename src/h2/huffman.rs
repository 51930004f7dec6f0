//! The static Huffman code of HPACK (RFC 7541 Appendix B). The code is canonical: codes of one
//! length are consecutive and ordered by symbol, and each length continues from the last code of
//! the shorter one. So the code lengths alone define it, and decoding needs only, per length,
//! the first code and where its symbols start in the symbol list sorted by (length, symbol).

/// Code length in bits of each symbol, 0..=255 and EOS (256), from RFC 7541 Appendix B.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS: u16 = 256;
const MAX_LEN: usize = 30;

/// The decoding tables, built once at compile time from `LENGTHS`.
struct Canonical {
    /// Symbols sorted by (code length, symbol).
    sorted: [u16; 257],
    /// Per length: the first code of that length, where its symbols start in `sorted`, and
    /// how many there are.
    first_code: [u32; MAX_LEN + 1],
    first_index: [u16; MAX_LEN + 1],
    count: [u16; MAX_LEN + 1],
    /// Per symbol: its code (for encoding).
    codes: [u32; 257],
}

const fn build() -> Canonical {
    let mut count = [0u16; MAX_LEN + 1];
    let mut s = 0;
    while s < 257 {
        count[LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut first_index = [0u16; MAX_LEN + 1];
    let mut first_code = [0u32; MAX_LEN + 1];
    let mut code = 0u32;
    let mut index = 0u16;
    let mut len = 1;
    while len <= MAX_LEN {
        first_index[len] = index;
        first_code[len] = code;
        index += count[len];
        code = (code + count[len] as u32) << 1;
        len += 1;
    }
    let mut sorted = [0u16; 257];
    let mut codes = [0u32; 257];
    let mut next = first_index;
    let mut len = 1;
    while len <= MAX_LEN {
        let mut s = 0;
        while s < 257 {
            if LENGTHS[s] as usize == len {
                let at = next[len];
                sorted[at as usize] = s as u16;
                codes[s] = first_code[len] + (at - first_index[len]) as u32;
                next[len] += 1;
            }
            s += 1;
        }
        len += 1;
    }
    Canonical {
        sorted,
        first_code,
        first_index,
        count,
        codes,
    }
}

static TABLE: Canonical = build();

/// Why a Huffman string did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol appeared inside the string (RFC 7541 section 5.2).
    Eos,
    /// More than 7 bits of padding, or padding that is not the most significant bits of EOS.
    Padding,
}

/// Decodes `input` onto `out`. Bit by bit: header strings are short, and a per-bit step with no
/// table larger than the code itself keeps this obviously right.
pub fn decode(input: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let mut code = 0u32;
    let mut len = 0usize;
    for &byte in input {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            let offset = code.wrapping_sub(TABLE.first_code[len]);
            if offset < u32::from(TABLE.count[len]) {
                let symbol = TABLE.sorted[usize::from(TABLE.first_index[len]) + offset as usize];
                if symbol == EOS {
                    return Err(HuffmanError::Eos);
                }
                out.push(symbol as u8);
                code = 0;
                len = 0;
            } else if len == MAX_LEN {
                // Unreachable for a complete code, kept so a table mistake cannot overflow.
                return Err(HuffmanError::Padding);
            }
        }
    }
    // What is left is padding: at most 7 bits, all ones (a prefix of EOS).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HuffmanError::Padding);
    }
    Ok(())
}

/// Encoded length in bytes of `input`.
pub fn encoded_len(input: &[u8]) -> usize {
    let bits: usize = input
        .iter()
        .map(|&b| usize::from(LENGTHS[usize::from(b)]))
        .sum();
    bits.div_ceil(8)
}

/// Encodes `input` onto `out`, padded with ones.
pub fn encode(input: &[u8], out: &mut Vec<u8>) {
    let mut acc = 0u64;
    let mut bits = 0u32;
    for &b in input {
        let len = u32::from(LENGTHS[usize::from(b)]);
        acc = (acc << len) | u64::from(TABLE.codes[usize::from(b)]);
        bits += len;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) | ((1u64 << (8 - bits)) - 1)) as u8);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Bytes from hex digits, whitespace ignored (the RFC's examples are laid out in groups).
    pub(in crate::h2) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn codes_match_rfc_7541_appendix_b() {
        // (symbol, code, length) from the table, across lengths.
        for (symbol, code, len) in [
            (b'0' as usize, 0x0, 5),
            (b'a' as usize, 0x3, 5),
            (b' ' as usize, 0x14, 6),
            (b'A' as usize, 0x21, 6),
            (b'{' as usize, 0x7ffe, 15),
            (0, 0x1ff8, 13),
            (1, 0x7fffd8, 23),
            (10, 0x3ffffffc, 30),
            (255, 0x3ffffee, 26),
            (256, 0x3fffffff, 30),
        ] {
            assert_eq!(
                (TABLE.codes[symbol], LENGTHS[symbol]),
                (code, len),
                "symbol {symbol}"
            );
        }
    }

    #[test]
    fn rfc_7541_appendix_c4_strings() {
        for (encoded, plain) in [
            ("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com"),
            ("a8eb 1064 9cbf", "no-cache"),
            ("25a8 49e9 5ba9 7d7f", "custom-key"),
            ("25a8 49e9 5bb8 e8b4 bf", "custom-value"),
            ("6402", "302"),
            ("aec3 771a 4b", "private"),
            (
                "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
                "Mon, 21 Oct 2013 20:13:21 GMT",
            ),
            (
                "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
                "https://www.example.com",
            ),
        ] {
            let mut out = Vec::new();
            decode(&hex(encoded), &mut out).unwrap();
            assert_eq!(out, plain.as_bytes());
            let mut again = Vec::new();
            encode(plain.as_bytes(), &mut again);
            assert_eq!(again, hex(encoded), "{plain}");
            assert_eq!(encoded_len(plain.as_bytes()), again.len());
        }
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut enc = Vec::new();
        encode(&all, &mut enc);
        let mut dec = Vec::new();
        decode(&enc, &mut dec).unwrap();
        assert_eq!(dec, all);
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        for (input, err) in [
            // '0' (00000) then padding 000: padding must be ones.
            (&[0x00u8][..], HuffmanError::Padding),
            // A whole byte of ones is 8 bits of padding.
            (&[0x07, 0xff][..], HuffmanError::Padding),
            // EOS itself, 30 ones, then two ones of padding.
            (&[0xff, 0xff, 0xff, 0xff][..], HuffmanError::Eos),
        ] {
            assert_eq!(decode(input, &mut Vec::new()), Err(err), "{input:?}");
        }
        // '0' then three bits of ones: fine.
        let mut out = Vec::new();
        decode(&[0x07], &mut out).unwrap();
        assert_eq!(out, b"0");
    }
}
