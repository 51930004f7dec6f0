//! Where a proxied connection or request really comes from: the PROXY protocol header (v1 text,
//! v2 binary; haproxy's "proxy-protocol.txt") that a load balancer sends before the client's
//! first byte, and the `X-Forwarded-For` / `Forwarded` (RFC 7239) request headers an HTTP proxy
//! adds. No sockets here: the caller says which addresses it trusts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The first twelve bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 line is at most this long, CRLF included (the specification's figure).
pub const V1_MAX: usize = 107;
/// The largest v2 header taken, its TLVs included: proxies send a few dozen bytes of them;
/// a peer that announces more is not a proxy we want to buffer for.
pub const V2_MAX: usize = 16 + 4096;

const V1_PREFIX: &[u8] = b"PROXY ";

/// What the header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// Relayed for a client: its address and port, and the address it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The proxy speaking for itself (v2 LOCAL, a health check), or a client the proxy could
    /// not describe (v1 UNKNOWN, a v2 family other than TCP over IPv4 or IPv6): the
    /// connection's own address stands.
    Local,
}

/// The outcome of looking at the first bytes of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// All is well so far; more bytes are needed.
    Partial,
    /// A whole header, and how many bytes it took.
    Complete(ProxyHeader, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// Neither signature: the peer speaks something else (HTTP, most likely).
    NotProxy,
    /// A v1 line without its CRLF within `V1_MAX` bytes.
    V1TooLong,
    /// A v1 line that is not `PROXY TCP4|TCP6|UNKNOWN ...` as specified.
    BadV1(&'static str),
    /// A v2 header longer than `V2_MAX`.
    V2TooLong,
    /// A v2 header with a wrong version, command, or an address block too short.
    BadV2(&'static str),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::NotProxy => f.write_str("no PROXY protocol header"),
            ProxyError::V1TooLong => write!(f, "PROXY v1 line longer than {V1_MAX} bytes"),
            ProxyError::BadV1(why) => write!(f, "bad PROXY v1 line: {why}"),
            ProxyError::V2TooLong => write!(f, "PROXY v2 header longer than {V2_MAX} bytes"),
            ProxyError::BadV2(why) => write!(f, "bad PROXY v2 header: {why}"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Parses the PROXY header at the start of `buf`, v1 or v2. Bytes after it are the client's
/// and are left alone. Resumable as httparse is: call again with more bytes after `Partial`.
pub fn parse_proxy_header(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let starts = |sig: &[u8]| {
        let n = buf.len().min(sig.len());
        buf[..n] == sig[..n]
    };
    if starts(&V2_SIGNATURE) {
        parse_v2(buf)
    } else if starts(V1_PREFIX) {
        parse_v1(buf)
    } else {
        Err(ProxyError::NotProxy)
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::V1TooLong)
        } else {
            Ok(Parsed::Partial)
        };
    };
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..end])
        .map_err(|_| ProxyError::BadV1("not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        // The rest of an UNKNOWN line is to be ignored, whatever it holds.
        ["UNKNOWN", ..] => ProxyHeader::Local,
        [family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v6 = *family == "TCP6";
            ProxyHeader::Proxied {
                source: SocketAddr::new(v1_address(src, v6)?, v1_port(sport)?),
                destination: SocketAddr::new(v1_address(dst, v6)?, v1_port(dport)?),
            }
        }
        ["TCP4" | "TCP6", ..] => return Err(ProxyError::BadV1("expected four fields")),
        _ => return Err(ProxyError::BadV1("unknown protocol")),
    };
    Ok(Parsed::Complete(header, end + 2))
}

fn v1_address(text: &str, v6: bool) -> Result<IpAddr, ProxyError> {
    let addr = if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    addr.map_err(|_| ProxyError::BadV1("bad address"))
}

/// 1 to 5 digits, no sign, no leading zero (the specification's form), at most 65535.
fn v1_port(text: &str) -> Result<u16, ProxyError> {
    let canonical = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical
        .then(|| text.parse().ok())
        .flatten()
        .ok_or(ProxyError::BadV1("bad port"))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.len() < 16 {
        return Ok(Parsed::Partial);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 {
        return Err(ProxyError::BadV2("version is not 2"));
    }
    let (family, transport) = (buf[13] >> 4, buf[13] & 0x0f);
    let total = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if total > V2_MAX {
        return Err(ProxyError::V2TooLong);
    }
    if buf.len() < total {
        return Ok(Parsed::Partial);
    }
    let block = &buf[16..total];
    let header = match (command, family, transport) {
        (0x0, _, _) => ProxyHeader::Local,
        (0x1, 0x1, 0x1) => {
            let a = block
                .get(..12)
                .ok_or(ProxyError::BadV2("IPv4 address block too short"))?;
            let ip = |at: usize| IpAddr::from([a[at], a[at + 1], a[at + 2], a[at + 3]]);
            let port = |at: usize| u16::from_be_bytes([a[at], a[at + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        (0x1, 0x2, 0x1) => {
            let a = block
                .get(..36)
                .ok_or(ProxyError::BadV2("IPv6 address block too short"))?;
            let ip = |at: usize| {
                let octets: [u8; 16] = a[at..at + 16].try_into().expect("16 bytes");
                IpAddr::from(octets)
            };
            let port = |at: usize| u16::from_be_bytes([a[at], a[at + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        // UNSPEC, UNIX addresses, datagrams: nothing we can use, so the connection's own.
        (0x1, _, _) => ProxyHeader::Local,
        _ => return Err(ProxyError::BadV2("unknown command")),
    };
    Ok(Parsed::Complete(header, total))
}

/// The v1 line for `header` (as a proxy would send it).
pub fn encode_v1(header: &ProxyHeader) -> String {
    match header {
        ProxyHeader::Proxied {
            source,
            destination,
        } if source.is_ipv4() == destination.is_ipv4() => {
            let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {family} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
        }
        _ => "PROXY UNKNOWN\r\n".to_string(),
    }
}

/// The v2 header for `header`, with no TLVs.
pub fn encode_v2(header: &ProxyHeader) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    match header {
        ProxyHeader::Proxied {
            source,
            destination,
        } => {
            let mut block = Vec::with_capacity(36);
            let family = match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    block.extend_from_slice(&s.octets());
                    block.extend_from_slice(&d.octets());
                    0x11
                }
                (s, d) => {
                    block.extend_from_slice(&to_v6(s).octets());
                    block.extend_from_slice(&to_v6(d).octets());
                    0x21
                }
            };
            block.extend_from_slice(&source.port().to_be_bytes());
            block.extend_from_slice(&destination.port().to_be_bytes());
            out.extend_from_slice(&[0x21, family]);
            out.extend_from_slice(&(block.len() as u16).to_be_bytes());
            out.extend_from_slice(&block);
        }
        ProxyHeader::Local => out.extend_from_slice(&[0x20, 0x00, 0, 0]),
    }
    out
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The client a request came from, by the forwarding headers of the proxies it passed: the
/// hops are read from the right (the proxy nearest us appends last), and the first one that
/// `trusted` does not vouch for is the client; when every hop is trusted, the leftmost.
/// `X-Forwarded-For` is read when present (every common proxy sets it), `Forwarded`'s `for=`
/// otherwise. A hop that is no address (`unknown`, an obfuscated name, garbage) ends the walk:
/// the address to its right is the last one anyone vouched for. None: no usable header, or the
/// nearest hop is already unusable; the connection's address stands.
///
/// `headers` are the request's (name, value) pairs in order; `trusted` is only asked about
/// hops, the caller having checked the connection's own address.
pub fn forwarded_client<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    trusted: impl Fn(IpAddr) -> bool,
) -> Option<SocketAddr> {
    let named = |name: &'static str| {
        headers
            .clone()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let mut hops: Vec<Option<SocketAddr>> = named("x-forwarded-for")
        .flat_map(|v| v.split(','))
        .map(|hop| parse_hop(hop.trim()))
        .collect();
    if hops.is_empty() {
        hops = named("forwarded")
            .flat_map(|v| v.split(','))
            .filter_map(forwarded_for)
            .map(|node| parse_hop(&node))
            .collect();
    }
    let mut client = None;
    for hop in hops.iter().rev() {
        let Some(addr) = *hop else {
            break;
        };
        client = Some(addr);
        if !trusted(addr.ip()) {
            break;
        }
    }
    client
}

/// The `for=` node of one `Forwarded` element, unquoted; None when the element has none.
fn forwarded_for(element: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some(value.to_string())
    })
}

/// A hop as proxies write it: `192.0.2.7`, `2001:db8::1`, `192.0.2.7:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711`. The port is kept when given, else 0 (which is no TCP port, and is
/// shown as the address alone).
fn parse_hop(text: &str) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let v6 = text.strip_prefix('[')?.strip_suffix(']')?;
    v6.parse::<Ipv6Addr>()
        .ok()
        .map(|ip| SocketAddr::new(IpAddr::V6(ip), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxied(source: &str, destination: &str) -> ProxyHeader {
        ProxyHeader::Proxied {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    #[test]
    fn v1_lines_from_the_specification() {
        let cases: &[(&[u8], Result<Parsed, ProxyError>)] = &[
            (
                b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\nGET",
                Ok(Parsed::Complete(
                    proxied("255.255.255.255:65535", "255.255.255.255:65535"),
                    56,
                )),
            ),
            (
                b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
                Ok(Parsed::Complete(
                    proxied("192.168.0.1:56324", "192.168.0.11:443"),
                    47,
                )),
            ),
            (
                b"PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
                Err(ProxyError::BadV1("bad address")),
            ),
            (
                b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 80\r\n",
                Ok(Parsed::Complete(
                    proxied("[2001:db8::1]:4711", "[2001:db8::2]:80"),
                    44,
                )),
            ),
            (
                b"PROXY UNKNOWN\r\n",
                Ok(Parsed::Complete(ProxyHeader::Local, 15)),
            ),
            (
                b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
                Ok(Parsed::Complete(ProxyHeader::Local, 59)),
            ),
            (b"PROXY TCP4 192.168.0.1", Ok(Parsed::Partial)),
            (b"PRO", Ok(Parsed::Partial)),
            (b"", Ok(Parsed::Partial)),
            (b"GET / HTTP/1.1\r\n\r\n", Err(ProxyError::NotProxy)),
            (b"PROXZ", Err(ProxyError::NotProxy)),
            (
                b"PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",
                Err(ProxyError::BadV1("expected four fields")),
            ),
            (
                b"PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n",
                Err(ProxyError::BadV1("expected four fields")),
            ),
            (
                b"PROXY TCP4 2001:db8::1 192.168.0.11 56324 443\r\n",
                Err(ProxyError::BadV1("bad address")),
            ),
            (
                b"PROXY TCP6 192.168.0.1 2001:db8::1 56324 443\r\n",
                Err(ProxyError::BadV1("bad address")),
            ),
            (
                b"PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",
                Err(ProxyError::BadV1("bad port")),
            ),
            (
                b"PROXY TCP4 192.168.0.1 192.168.0.11 +80 443\r\n",
                Err(ProxyError::BadV1("bad port")),
            ),
            (
                b"PROXY TCP4 192.168.0.1 192.168.0.11 080 443\r\n",
                Err(ProxyError::BadV1("bad port")),
            ),
            (
                b"PROXY UDP4 192.168.0.1 192.168.0.11 56324 443\r\n",
                Err(ProxyError::BadV1("unknown protocol")),
            ),
            (
                &[b'P', b'R', b'O', b'X', b'Y', b' ', b'T', 0xff, b'\r', b'\n'],
                Err(ProxyError::BadV1("not ASCII")),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_proxy_header(input),
                *want,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_v1_line_without_its_end_is_refused_at_the_limit() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX - 1, b'x');
        assert_eq!(parse_proxy_header(&line), Ok(Parsed::Partial));
        line.push(b'x');
        assert_eq!(parse_proxy_header(&line), Err(ProxyError::V1TooLong));
    }

    /// The specification's v2 examples, laid out byte by byte.
    #[test]
    fn v2_headers_from_the_specification() {
        let mut tcp4 = V2_SIGNATURE.to_vec();
        tcp4.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
        tcp4.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 7, 0x12, 0x67, 0x00, 0x50]);
        let mut tcp6 = V2_SIGNATURE.to_vec();
        tcp6.extend_from_slice(&[0x21, 0x21, 0x00, 0x24]);
        tcp6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        tcp6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        tcp6.extend_from_slice(&[0x01, 0xbb, 0x00, 0x50]);
        let mut with_tlv = tcp4.clone();
        with_tlv[15] = 0x0c + 7;
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x04, b'n', b'o', b'o', b'p']);
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        let mut unix = V2_SIGNATURE.to_vec();
        unix.extend_from_slice(&[0x21, 0x31, 0x00, 0xd8]);
        unix.extend_from_slice(&[0u8; 216]);
        let mut udp = tcp4.clone();
        udp[13] = 0x12;
        let mut version1 = tcp4.clone();
        version1[12] = 0x11;
        let mut command = tcp4.clone();
        command[12] = 0x22;
        let mut short = tcp4.clone();
        short[15] = 0x08;
        short.truncate(16 + 8);
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        let four = proxied("192.0.2.1:4711", "198.51.100.7:80");
        let cases: &[(&[u8], Result<Parsed, ProxyError>)] = &[
            (&tcp4, Ok(Parsed::Complete(four, 28))),
            (
                &tcp6,
                Ok(Parsed::Complete(
                    proxied("[2001:db8::1]:443", "[2001:db8::2]:80"),
                    52,
                )),
            ),
            (&with_tlv, Ok(Parsed::Complete(four, 35))),
            (&local, Ok(Parsed::Complete(ProxyHeader::Local, 16))),
            (&unix, Ok(Parsed::Complete(ProxyHeader::Local, 232))),
            (&udp, Ok(Parsed::Complete(ProxyHeader::Local, 28))),
            (&tcp4[..27], Ok(Parsed::Partial)),
            (&tcp4[..15], Ok(Parsed::Partial)),
            (&tcp4[..5], Ok(Parsed::Partial)),
            (&version1, Err(ProxyError::BadV2("version is not 2"))),
            (&command, Err(ProxyError::BadV2("unknown command"))),
            (
                &short,
                Err(ProxyError::BadV2("IPv4 address block too short")),
            ),
            (&huge, Err(ProxyError::V2TooLong)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_proxy_header(input), *want, "{input:02x?}");
        }
    }

    #[test]
    fn encoded_headers_parse_back() {
        for header in [
            proxied("192.0.2.1:4711", "198.51.100.7:80"),
            proxied("[2001:db8::1]:443", "[2001:db8::2]:80"),
            ProxyHeader::Local,
        ] {
            let v1 = encode_v1(&header);
            let v2 = encode_v2(&header);
            assert_eq!(
                parse_proxy_header(v1.as_bytes()),
                Ok(Parsed::Complete(header, v1.len()))
            );
            assert_eq!(
                parse_proxy_header(&v2),
                Ok(Parsed::Complete(header, v2.len()))
            );
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted = |ip: IpAddr| ip.is_loopback() || ip == IpAddr::from([10, 0, 0, 1]);
        let cases: &[(&[(&str, &str)], Option<&str>)] = &[
            (&[], None),
            (&[("X-Forwarded-For", "203.0.113.9")], Some("203.0.113.9:0")),
            (
                &[("x-forwarded-for", "198.51.100.1, 203.0.113.9, 10.0.0.1")],
                Some("203.0.113.9:0"),
            ),
            (
                &[
                    ("X-Forwarded-For", "198.51.100.1"),
                    ("X-Forwarded-For", "203.0.113.9, 127.0.0.1"),
                ],
                Some("203.0.113.9:0"),
            ),
            (
                &[("X-Forwarded-For", "10.0.0.1, 127.0.0.1")],
                Some("10.0.0.1:0"),
            ),
            (
                &[("X-Forwarded-For", "2001:db8::7, [2001:db8::8]:4711")],
                Some("[2001:db8::8]:4711"),
            ),
            (
                &[("X-Forwarded-For", "203.0.113.9, unknown, 127.0.0.1")],
                Some("127.0.0.1:0"),
            ),
            (&[("X-Forwarded-For", "not-an-address")], None),
            (&[("X-Forwarded-For", "")], None),
            (
                &[("Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")],
                Some("192.0.2.60:0"),
            ),
            (
                &[(
                    "Forwarded",
                    "for=192.0.2.43, For=\"[2001:db8:cafe::17]:4711\", for=127.0.0.1",
                )],
                Some("[2001:db8:cafe::17]:4711"),
            ),
            (
                &[("Forwarded", "for=_hidden, for=198.51.100.17")],
                Some("198.51.100.17:0"),
            ),
            (&[("Forwarded", "for=unknown")], None),
            (&[("Forwarded", "proto=https")], None),
            (
                &[
                    ("Forwarded", "for=192.0.2.60"),
                    ("X-Forwarded-For", "203.0.113.9"),
                ],
                Some("203.0.113.9:0"),
            ),
        ];
        for (headers, want) in cases {
            let got = forwarded_client(headers.iter().copied(), trusted);
            let want = want.map(|w| w.parse::<SocketAddr>().unwrap());
            assert_eq!(got, want, "{headers:?}");
        }
    }
}
