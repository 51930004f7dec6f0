//! Standard base64 (RFC 4648 section 4), for HTTP Basic credentials and the WebSocket
//! handshake. Twenty lines do not justify a dependency.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for group in input.chunks(3) {
        let bytes = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let bits = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(bits >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes padded or unpadded base64. None for any other character, a misplaced `=`, or a
/// length no encoder produces.
pub fn decode(input: &[u8]) -> Option<Vec<u8>> {
    let unpadded = match input {
        [rest @ .., b'=', b'='] => rest,
        [rest @ .., b'='] => rest,
        _ => input,
    };
    if input.len() != unpadded.len() && input.len() % 4 != 0 {
        return None;
    }
    if unpadded.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(unpadded.len() / 4 * 3 + 2);
    for group in unpadded.chunks(4) {
        let mut bits = 0u32;
        for (i, &c) in group.iter().enumerate() {
            bits |= u32::from(sextet(c)?) << (18 - 6 * i);
        }
        let produced = group.len() - 1;
        out.extend_from_slice(&bits.to_be_bytes()[1..1 + produced]);
    }
    Some(out)
}

/// The URL-safe alphabet without padding (RFC 4648 section 5), as JSON Web Tokens use it.
pub fn encode_url(input: &[u8]) -> String {
    encode(input)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// Decodes unpadded URL-safe base64; the standard alphabet's `+`, `/` and padding are refused.
pub fn decode_url(input: &[u8]) -> Option<Vec<u8>> {
    if input.iter().any(|b| matches!(b, b'+' | b'/' | b'=')) {
        return None;
    }
    let standard: Vec<u8> = input
        .iter()
        .map(|&b| match b {
            b'-' => b'+',
            b'_' => b'/',
            b => b,
        })
        .collect();
    decode(&standard)
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 4648 section 10.
    const VECTORS: [(&str, &str); 7] = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];

    #[test]
    fn rfc_vectors() {
        for (plain, encoded) in VECTORS {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded.as_bytes()).unwrap(), plain.as_bytes());
            let unpadded = encoded.trim_end_matches('=');
            assert_eq!(decode(unpadded.as_bytes()).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        for len in 0..all.len() {
            assert_eq!(decode(encode(&all[..len]).as_bytes()).unwrap(), &all[..len]);
        }
    }

    #[test]
    fn url_alphabet() {
        assert_eq!(encode_url(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode_url(b"-_8").unwrap(), [0xfb, 0xff]);
        for bad in ["+_8", "-/8", "-_8="] {
            assert_eq!(decode_url(bad.as_bytes()), None, "{bad}");
        }
    }

    /// Found by the fuzzer: stray low bits in the last character are accepted (Basic
    /// credentials from lax encoders still work), so decoding is not the exact inverse of
    /// encoding; what it decodes re-encodes to text that decodes the same.
    #[test]
    fn stray_trailing_bits_are_tolerated() {
        assert_eq!(decode(b"Zh").unwrap(), b"f");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(
            decode(encode(&decode(b"Zh").unwrap()).as_bytes()).unwrap(),
            b"f"
        );
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["Z", "Zm9v=", "Zg=a", "Zm 9v", "Zm9v\n", "=", "Zg==="] {
            assert_eq!(decode(bad.as_bytes()), None, "{bad}");
        }
    }
}
