//! Subscriber-side filters: `?type=` and `?sender=` glob lists, as the original msgbus took them.
//!
//! A list is comma-separated patterns with `*` and `?`; a pattern starting with `!` denies. A
//! value passes a list when no denying pattern matches it and either some allowing pattern
//! matches it or the list has no allowing patterns at all (`!text/html` alone means "everything
//! but HTML"). Matching ignores ASCII case, as media types and user names are compared loosely.
//! A type's parameters (`; charset=...`) are not part of what is matched.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobList {
    allow: Vec<String>,
    deny: Vec<String>,
}

impl GlobList {
    pub fn parse(list: &str) -> GlobList {
        let mut globs = GlobList::default();
        for pattern in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pattern.strip_prefix('!') {
                Some(denied) => globs.deny.push(denied.trim().to_ascii_lowercase()),
                None => globs.allow.push(pattern.to_ascii_lowercase()),
            }
        }
        globs
    }

    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    pub fn matches(&self, value: &str) -> bool {
        let value = value.to_ascii_lowercase();
        let hit = |pattern: &String| glob_match(pattern.as_bytes(), value.as_bytes());
        !self.deny.iter().any(hit) && (self.allow.is_empty() || self.allow.iter().any(hit))
    }
}

/// What one subscriber wants to receive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    types: GlobList,
    senders: GlobList,
}

impl Filter {
    pub fn new(types: Option<&str>, senders: Option<&str>) -> Filter {
        Filter {
            types: types.map(GlobList::parse).unwrap_or_default(),
            senders: senders.map(GlobList::parse).unwrap_or_default(),
        }
    }

    /// True when the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty() && self.senders.is_empty()
    }

    /// A message without a sender is matched as the empty name.
    pub fn accepts(&self, content_type: &str, sender: Option<&str>) -> bool {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        self.types.matches(media_type) && self.senders.matches(sender.unwrap_or(""))
    }
}

/// Shell-style matching of `*` (any run) and `?` (one byte), without recursion: on a mismatch
/// after a `*`, retry with that star swallowing one more byte.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("text/*", "text/plain", true),
            ("text/*", "text/", true),
            ("text/*", "image/png", false),
            ("?", "a", true),
            ("?", "", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            (
                "*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
            ("**", "x", true),
            ("a?c", "abc", true),
            ("a?c", "abbc", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                want,
                "{pattern} ~ {text}"
            );
        }
    }

    #[test]
    fn lists_allow_and_deny() {
        let cases = [
            ("text/*", "text/plain", true),
            ("text/*,image/*", "image/png", true),
            ("text/*,image/*", "application/json", false),
            ("!text/html", "text/plain", true),
            ("!text/html", "text/html", false),
            ("text/*,!text/html", "text/html", false),
            ("text/*,!text/html", "text/css", true),
            ("TEXT/*", "text/plain", true),
            (" text/plain , image/png ", "image/png", true),
            ("", "x", true),
        ];
        for (list, value, want) in cases {
            assert_eq!(
                GlobList::parse(list).matches(value),
                want,
                "{list} ~ {value}"
            );
        }
    }

    #[test]
    fn filters_look_at_media_type_and_sender() {
        let f = Filter::new(Some("text/plain"), Some("alice,b*"));
        assert!(f.accepts("text/plain; charset=utf-8", Some("alice")));
        assert!(f.accepts("Text/Plain", Some("bob")));
        assert!(!f.accepts("text/html", Some("alice")));
        assert!(!f.accepts("text/plain", Some("carol")));
        assert!(!f.accepts("text/plain", None));
        let anonymous_only = Filter::new(None, Some("!?*"));
        assert!(anonymous_only.accepts("a/b", None));
        assert!(!anonymous_only.accepts("a/b", Some("alice")));
        assert!(Filter::new(None, None).is_empty());
        assert!(Filter::new(Some(""), Some(" , ")).is_empty());
        assert!(!Filter::new(Some("!x"), None).is_empty());
    }
}
