//! Message markers: every body starts with `@@m<seq>,<t_ns>;`. Subscribers ignore framing and find
//! markers anywhere in the byte stream; a marker split across reads is completed by keeping the
//! unfinished part as a small tail. No sockets, no clock.

/// `@@m` + 20 digits + `,` + 20 digits + `;`: the longest marker; a tail is always shorter.
pub const MARKER_MAX: usize = 3 + 20 + 1 + 20 + 1;
const PREFIX: &[u8] = b"@@m";

/// The body of message `seq`, published at `t_ns`: the marker padded with 'x' to `size` (never
/// cut: a body shorter than its marker is the marker alone).
pub fn encode_body(seq: u64, t_ns: u64, size: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(format!("@@m{seq},{t_ns};").as_bytes());
    let len = out.len() - start;
    if len < size {
        out.resize(start + size, b'x');
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Parse {
    /// A whole marker of this many bytes.
    Marker { seq: u64, t_ns: u64, len: usize },
    /// The bytes so far could begin a marker; wait for more.
    Partial,
    /// Not a marker.
    Invalid,
}

/// Parses a decimal number of 1..=20 digits starting at `b[i]`, then expects `end`.
fn number(b: &[u8], mut i: usize, end: u8) -> Result<(u64, usize), Parse> {
    let start = i;
    let mut v: u64 = 0;
    loop {
        let Some(&c) = b.get(i) else {
            return Err(Parse::Partial);
        };
        if c == end && i > start {
            return Ok((v, i + 1));
        }
        if !c.is_ascii_digit() || i - start == 20 {
            return Err(Parse::Invalid);
        }
        v = match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
        {
            Some(v) => v,
            None => return Err(Parse::Invalid),
        };
        i += 1;
    }
}

fn parse(b: &[u8]) -> Parse {
    let n = b.len().min(PREFIX.len());
    if b[..n] != PREFIX[..n] {
        return Parse::Invalid;
    }
    if n < PREFIX.len() {
        return Parse::Partial;
    }
    let (seq, i) = match number(b, PREFIX.len(), b',') {
        Ok(x) => x,
        Err(p) => return p,
    };
    match number(b, i, b';') {
        Ok((t_ns, len)) => Parse::Marker { seq, t_ns, len },
        Err(p) => p,
    }
}

/// glibc's memchr: vectorised, and the stream is mostly 'x' padding.
fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    if hay.is_empty() {
        return None;
    }
    // SAFETY: the pointer and length come from one live slice.
    let p = unsafe { libc::memchr(hay.as_ptr().cast(), i32::from(needle), hay.len()) };
    if p.is_null() {
        None
    } else {
        Some(p as usize - hay.as_ptr() as usize)
    }
}

/// Calls `on_marker(seq, t_ns)` for every whole marker in `data` and returns where the tail to
/// keep begins: the start of an unfinished marker at the very end, else `data.len()`.
pub fn scan(data: &[u8], mut on_marker: impl FnMut(u64, u64)) -> usize {
    let mut i = 0;
    while let Some(p) = find_byte(b'@', &data[i..]) {
        let at = i + p;
        match parse(&data[at..]) {
            Parse::Marker { seq, t_ns, len } => {
                on_marker(seq, t_ns);
                i = at + len;
            }
            Parse::Partial => return at,
            Parse::Invalid => i = at + 1,
        }
    }
    data.len()
}

/// The unfinished end of the previous read, to be prepended to the next one.
#[derive(Clone, Copy)]
pub struct Tail {
    buf: [u8; MARKER_MAX],
    len: u8,
}

impl Default for Tail {
    fn default() -> Self {
        Tail {
            buf: [0; MARKER_MAX],
            len: 0,
        }
    }
}

impl Tail {
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Keeps `rest`, which `scan` guarantees is shorter than a marker; anything longer is not a
    /// marker and is dropped.
    pub fn set(&mut self, rest: &[u8]) {
        if rest.len() >= MARKER_MAX {
            self.len = 0;
            return;
        }
        self.buf[..rest.len()].copy_from_slice(rest);
        self.len = rest.len() as u8;
    }
}

/// One subscriber's order check: markers are stamped in publishing order, and with one
/// publisher connection (a pipeline on it included) that is the server's order, so a subscriber
/// must see their seqs increase. A gap (a lost message) is not disorder; a seq below the highest
/// seen so far is.
#[derive(Clone, Copy, Default)]
pub struct Order {
    highest: Option<u64>,
}

impl Order {
    /// Takes the next new (not duplicate) seq; returns whether it came out of order.
    pub fn on_seq(&mut self, seq: u64) -> bool {
        match self.highest {
            Some(h) if seq < h => true,
            _ => {
                self.highest = Some(seq);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(data: &[u8]) -> (Vec<(u64, u64)>, usize) {
        let mut v = Vec::new();
        let keep = scan(data, |s, t| v.push((s, t)));
        (v, keep)
    }

    #[test]
    fn scans() {
        let cases: &[(&[u8], &[(u64, u64)], usize)] = &[
            (b"", &[], 0),
            (b"xx@@m1,2;xx", &[(1, 2)], 11),
            (b"@@m0,5;@@m1,6;", &[(0, 5), (1, 6)], 14),
            (b"ab@", &[], 2),
            (b"ab@@", &[], 2),
            (b"ab@@m12", &[], 2),
            (b"ab@@m12,", &[], 2),
            (b"ab@@m12,3", &[], 2),
            (b"@@m,1;@@mx;@x@@m3,4;", &[(3, 4)], 20),
            (b"@@m1;2;", &[], 7),
            (b"@@m123456789012345678901,1;", &[], 27),
            (b"@@m99999999999999999999,1;", &[], 26),
            (b"@@@m7,8;", &[(7, 8)], 8),
        ];
        for (data, want, keep) in cases {
            let (got, k) = all(data);
            assert_eq!(
                (&got[..], k),
                (*want, *keep),
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
    }

    /// Any split of a stream into reads finds the same markers as one read.
    #[test]
    fn split_reads() {
        let mut stream = Vec::new();
        for seq in 0..20u64 {
            stream.extend_from_slice(b"--b\r\n");
            encode_body(seq, 1_000_000 + seq, 40, &mut stream);
        }
        let (whole, _) = all(&stream);
        assert_eq!(whole.len(), 20);
        for step in 1..50 {
            let mut tail = Tail::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(step) {
                let mut buf = tail.bytes().to_vec();
                buf.extend_from_slice(chunk);
                let keep = scan(&buf, |s, t| got.push((s, t)));
                tail.set(&buf[keep..]);
            }
            assert_eq!(got, whole, "step {step}");
        }
    }

    #[test]
    fn order() {
        // (seqs in arrival order, out-of-order verdicts)
        let cases: &[(&[u64], &[bool])] = &[
            (&[], &[]),
            (&[0, 1, 2], &[false, false, false]),
            (&[0, 2, 5], &[false, false, false]),
            (&[1, 0], &[false, true]),
            (&[3, 1, 2, 4], &[false, true, true, false]),
            (&[5, 9, 6, 10], &[false, false, true, false]),
        ];
        for (seqs, want) in cases {
            let mut order = Order::default();
            let got: Vec<bool> = seqs.iter().map(|&s| order.on_seq(s)).collect();
            assert_eq!(&got[..], *want, "{seqs:?}");
        }
    }

    #[test]
    fn bodies() {
        let mut b = Vec::new();
        encode_body(3, 42, 16, &mut b);
        assert_eq!(b, b"@@m3,42;xxxxxxxx");
        b.clear();
        encode_body(12345, 67890, 4, &mut b);
        assert_eq!(b, b"@@m12345,67890;");
    }
}
