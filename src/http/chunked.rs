//! Decoder for request bodies sent with `Transfer-Encoding: chunked` (RFC 9112 section 7.1).
//!
//! It is fed whatever bytes have arrived, appends the data it finds to the body, and says how much
//! input it used, so the caller keeps the rest (the next pipelined request) in its buffer. Chunk
//! extensions are skipped; trailer fields are read and dropped. No I/O here.
//!
//! Every framing line must end in CRLF. A bare LF (or a stray CR) is refused rather than
//! tolerated: a proxy that reads the framing differently would see another body, or another
//! request, in the same bytes.

use std::fmt;

/// Size lines and trailer lines longer than this are refused: nothing legitimate needs more.
pub const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The body is not complete; feed more input.
    NeedMore,
    /// The last chunk and the trailers have been read.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    BadLineEnd,
    BodyTooLarge,
    LineTooLong,
    /// A line ended by LF alone, or a CR that does not end a line.
    BareLineEnd,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkError::BadSize => "bad chunk size",
            ChunkError::BadLineEnd => "chunk data not followed by CRLF",
            ChunkError::BodyTooLarge => "body too large",
            ChunkError::LineTooLong => "chunk line too long",
            ChunkError::BareLineEnd => "bare LF or CR in chunked framing",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a `SIZE[;ext]CRLF` line.
    Size,
    /// Copying this many more data bytes.
    Data(usize),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// Reading trailer lines until an empty one.
    Trailer,
    Done,
}

#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder { state: State::Size }
    }

    /// Decodes from `input`, appending data to `body`, which may not grow past `max_body`.
    /// Returns how many input bytes were used; unused bytes belong to whatever follows.
    pub fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
        max_body: usize,
    ) -> Result<(usize, Progress), ChunkError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Done => return Ok((used, Progress::Done)),
                State::Size => {
                    let Some(line) = take_line(rest)? else {
                        return Ok((used, Progress::NeedMore));
                    };
                    let size = parse_size(&rest[..line.content])?;
                    if size > max_body.saturating_sub(body.len()) {
                        return Err(ChunkError::BodyTooLarge);
                    }
                    used += line.total;
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if rest.is_empty() {
                        return Ok((used, Progress::NeedMore));
                    }
                    let take = left.min(rest.len());
                    body.extend_from_slice(&rest[..take]);
                    used += take;
                    self.state = if take == left {
                        State::DataEnd
                    } else {
                        State::Data(left - take)
                    };
                }
                State::DataEnd => match rest {
                    [] | [b'\r'] => return Ok((used, Progress::NeedMore)),
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = State::Size;
                    }
                    [b'\n', ..] => return Err(ChunkError::BareLineEnd),
                    _ => return Err(ChunkError::BadLineEnd),
                },
                State::Trailer => {
                    let Some(line) = take_line(rest)? else {
                        return Ok((used, Progress::NeedMore));
                    };
                    used += line.total;
                    if line.content == 0 {
                        self.state = State::Done;
                    }
                }
            }
        }
    }
}

struct Line {
    /// Bytes before the line end.
    content: usize,
    /// Bytes including the line end.
    total: usize,
}

/// Finds one CRLF-terminated line at the start of `input`; a bare LF, or a CR anywhere else
/// in the line, is an error.
fn take_line(input: &[u8]) -> Result<Option<Line>, ChunkError> {
    match memchr::memchr(b'\n', input) {
        Some(lf) if lf > MAX_LINE => Err(ChunkError::LineTooLong),
        Some(0) => Err(ChunkError::BareLineEnd),
        Some(lf) if input[lf - 1] != b'\r' => Err(ChunkError::BareLineEnd),
        Some(lf) if memchr::memchr(b'\r', &input[..lf - 1]).is_some() => {
            Err(ChunkError::BareLineEnd)
        }
        Some(lf) => Ok(Some(Line {
            content: lf - 1,
            total: lf + 1,
        })),
        None if input.len() > MAX_LINE => Err(ChunkError::LineTooLong),
        None => Ok(None),
    }
}

/// Parses `HEX[ws][;extensions]`.
fn parse_size(line: &[u8]) -> Result<usize, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError::BadSize);
    }
    let after = &line[digits..];
    let after = trim_start(after);
    if !(after.is_empty() || after[0] == b';') {
        return Err(ChunkError::BadSize);
    }
    line[..digits].iter().try_fold(0usize, |acc, &b| {
        let digit = (b as char).to_digit(16).expect("checked hex digit") as usize;
        acc.checked_mul(16)
            .and_then(|v| v.checked_add(digit))
            .ok_or(ChunkError::BadSize)
    })
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let spaces = bytes
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    &bytes[spaces..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(usize, Progress, Vec<u8>), ChunkError> {
        let mut body = Vec::new();
        let (used, progress) = ChunkedDecoder::new().decode(input, &mut body, 1 << 20)?;
        Ok((used, progress, body))
    }

    #[test]
    fn whole_bodies() {
        let cases: &[(&[u8], &[u8], usize)] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello", 15),
            (
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET",
                b"hello world",
                26,
            ),
            (
                b"A;name=value\r\n0123456789\r\n0\r\n\r\n",
                b"0123456789",
                31,
            ),
            (
                b"a \r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n",
                b"0123456789",
                31,
            ),
            (b"0\r\n\r\n", b"", 5),
        ];
        for (input, want, used) in cases {
            let (got_used, progress, body) = decode_all(input).unwrap();
            assert_eq!(progress, Progress::Done, "{input:?}");
            assert_eq!(body, *want, "{input:?}");
            assert_eq!(got_used, *used, "{input:?}");
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_body() {
        let input = b"5\r\nhello\r\n6;x\r\n world\r\n0\r\nA: b\r\n\r\n";
        let mut decoder = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut pending = Vec::new();
        let mut done = false;
        for &b in input.iter() {
            pending.push(b);
            let (used, progress) = decoder.decode(&pending, &mut body, 100).unwrap();
            pending.drain(..used);
            done = progress == Progress::Done;
        }
        assert!(done);
        assert!(pending.is_empty());
        assert_eq!(body, b"hello world");
    }

    #[test]
    fn incomplete_input_needs_more() {
        for input in [
            &b"5"[..],
            b"5\r\nhel",
            b"5\r\nhello",
            b"5\r\nhello\r",
            b"0\r\n",
        ] {
            let (_, progress, _) = decode_all(input).unwrap();
            assert_eq!(progress, Progress::NeedMore, "{input:?}");
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let cases: &[(&[u8], ChunkError)] = &[
            (b"x\r\n", ChunkError::BadSize),
            (b"\r\n", ChunkError::BadSize),
            (b"5 5\r\n", ChunkError::BadSize),
            (b"-5\r\n", ChunkError::BadSize),
            (b"fffffffffffffffffffff\r\n", ChunkError::BadSize),
            (b"5\r\nhelloXX", ChunkError::BadLineEnd),
            (b"3\nabc\r\n0\r\n\r\n", ChunkError::BareLineEnd),
            (b"3\r\nabc\n0\r\n\r\n", ChunkError::BareLineEnd),
            (b"3\r\nabc\r\n0\n\r\n", ChunkError::BareLineEnd),
            (b"3\r\nabc\r\n0\r\n\n", ChunkError::BareLineEnd),
            (b"3\r\nabc\r\n0\r\nX: 1\n\r\n", ChunkError::BareLineEnd),
            (b"3;a\rb\r\nabc\r\n0\r\n\r\n", ChunkError::BareLineEnd),
            (b"\n", ChunkError::BareLineEnd),
        ];
        for (input, want) in cases {
            assert_eq!(decode_all(input).unwrap_err(), *want, "{input:?}");
        }
        let long = vec![b'1'; MAX_LINE + 2];
        assert_eq!(decode_all(&long).unwrap_err(), ChunkError::LineTooLong);
    }

    #[test]
    fn body_limit_counts_every_chunk() {
        let mut body = Vec::new();
        let mut decoder = ChunkedDecoder::new();
        let err = decoder
            .decode(b"4\r\nabcd\r\n4\r\nefgh\r\n", &mut body, 6)
            .unwrap_err();
        assert_eq!(err, ChunkError::BodyTooLarge);
        assert_eq!(err.to_string(), "body too large");
    }
}
