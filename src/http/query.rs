//! Request targets: splitting path from query, percent-decoding, and the query's `key=value`
//! pairs. No I/O here.

use std::borrow::Cow;
use std::fmt;

/// Splits a request target into its path and its query (without the `?`); a fragment, which a
/// client should not send, is dropped.
pub fn split_target(target: &str) -> (&str, &str) {
    let target = target.split_once('#').map_or(target, |(before, _)| before);
    target.split_once('?').unwrap_or((target, ""))
}

/// Decodes `%XX` escapes (and `+` as a space, in query strings). None for a `%` not followed by
/// two hex digits.
pub fn percent_decode(input: &[u8], plus_as_space: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => {
                let high = hex_value(*input.get(i + 1)?)?;
                let low = hex_value(*input.get(i + 2)?)?;
                out.push(high << 4 | low);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The same, but a `%` not followed by two hex digits is kept as it is (Python's
/// `urllib.parse.unquote_to_bytes`), for a door whose original read queries so.
pub fn percent_decode_lenient(input: &[u8], plus_as_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let escaped = match (input[i], input.get(i + 1), input.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex_value(h).zip(hex_value(l)),
            _ => None,
        };
        match (escaped, input[i]) {
            (Some((high, low)), _) => {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
            (None, b'+') if plus_as_space => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Escapes what may not appear literally in a URL path (RFC 3986 `pchar` and `/` pass through).
pub fn percent_encode_path(input: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len());
    for &b in input.as_bytes() {
        let literal = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
        if literal {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryError;

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed query string")
    }
}

impl std::error::Error for QueryError {}

/// The decoded `key=value` pairs of a query string, in order; a key without `=` has an empty
/// value. A component with nothing to decode is borrowed from the request: a long-poll's
/// `since=123` is read on every message it receives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Query<'a> {
    pub fn parse(raw: &'a str) -> Result<Query<'a>, QueryError> {
        let mut pairs = Vec::new();
        for part in raw.split('&').filter(|part| !part.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode_component(key)?, decode_component(value)?));
        }
        Ok(Query { pairs })
    }

    /// The first value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Every value given for `key`, in order.
    pub fn get_all<'q>(&'q self, key: &'q str) -> impl Iterator<Item = &'q str> + 'q {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    pub fn pairs(&self) -> &[(Cow<'a, str>, Cow<'a, str>)] {
        &self.pairs
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

fn decode_component(raw: &str) -> Result<Cow<'_, str>, QueryError> {
    // Most components have nothing to decode (`since=123`): borrowed as they are, without the
    // byte-by-byte decode and the UTF-8 check a `&str` has passed already.
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = percent_decode(raw.as_bytes(), true).ok_or(QueryError)?;
    String::from_utf8(bytes)
        .map(Cow::Owned)
        .map_err(|_| QueryError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_decoding_keeps_bad_escapes() {
        let cases: &[(&str, bool, &str)] = &[
            ("a%41b", false, "aAb"),
            ("a%4", false, "a%4"),
            ("%zz+%2B", true, "%zz +"),
            ("%", false, "%"),
            ("x+y", false, "x+y"),
        ];
        for (input, plus, want) in cases {
            let got = percent_decode_lenient(input.as_bytes(), *plus);
            assert_eq!(String::from_utf8(got).unwrap(), *want, "{input}");
        }
    }

    #[test]
    fn targets_split_into_path_and_query() {
        let cases = [
            ("/msgbus/a", ("/msgbus/a", "")),
            ("/msgbus/a?type=text/*", ("/msgbus/a", "type=text/*")),
            ("/msgbus/a?x=1?y", ("/msgbus/a", "x=1?y")),
            ("/a#frag?x", ("/a", "")),
            ("/a?x=1#frag", ("/a", "x=1")),
        ];
        for (target, want) in cases {
            assert_eq!(split_target(target), want, "{target}");
        }
    }

    #[test]
    fn percent_decoding() {
        let cases: &[(&[u8], bool, Option<&[u8]>)] = &[
            (b"a%20b", false, Some(b"a b")),
            (b"a+b", false, Some(b"a+b")),
            (b"a+b", true, Some(b"a b")),
            (b"%2e%2E", false, Some(b"..")),
            (b"%00", false, Some(b"\0")),
            (b"%", false, None),
            (b"%4", false, None),
            (b"%zz", false, None),
            (b"", false, Some(b"")),
        ];
        for (input, plus, want) in cases {
            assert_eq!(percent_decode(input, *plus).as_deref(), *want, "{input:?}");
        }
    }

    #[test]
    fn path_encoding_round_trips() {
        assert_eq!(percent_encode_path("chat/room 1"), "chat/room%201");
        assert_eq!(percent_encode_path("a%b?c#d"), "a%25b%3Fc%23d");
        assert_eq!(percent_encode_path("é"), "%C3%A9");
        for s in ["chat/room 1", "a%b?c#d", "é/ü", "plain-name_1.2~"] {
            let encoded = percent_encode_path(s);
            assert_eq!(
                percent_decode(encoded.as_bytes(), false).unwrap(),
                s.as_bytes()
            );
        }
    }

    #[test]
    fn query_pairs() {
        let q = Query::parse("type=text%2F*&sender=al+ice&flag&&type=x").unwrap();
        assert_eq!(q.get("type"), Some("text/*"));
        assert_eq!(q.get("sender"), Some("al ice"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("missing"), None);
        assert_eq!(q.get_all("type").collect::<Vec<_>>(), ["text/*", "x"]);
        assert_eq!(q.pairs().len(), 4);
        assert!(Query::parse("").unwrap().is_empty());
    }

    #[test]
    fn malformed_queries_are_refused() {
        for raw in ["a=%", "a=%g1", "%ff=1"] {
            let err = Query::parse(raw).unwrap_err();
            assert_eq!(err.to_string(), "malformed query string");
        }
    }
}
