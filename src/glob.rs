//! Glob lists: comma-separated shell patterns (`*` any run, `?` one byte), a leading `!` to
//! deny. Subscribers' `?type=` / `?sender=` filters and the grants of signed tokens both use them.
//!
//! A value passes a list when no denying pattern matches it and either some allowing pattern
//! matches it or the list has no allowing patterns at all (`!text/html` alone means "everything
//! but HTML"). Matching ignores ASCII case, unless the list was made by `parse_exact`.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobList {
    allow: Vec<String>,
    deny: Vec<String>,
    /// Compare bytes as they are instead of folding ASCII case.
    exact: bool,
}

impl GlobList {
    pub fn parse(list: &str) -> GlobList {
        GlobList::parse_with(list, false)
    }

    /// A list whose patterns match case-sensitively, as names are compared (a sender filter).
    pub fn parse_exact(list: &str) -> GlobList {
        GlobList::parse_with(list, true)
    }

    fn parse_with(list: &str, exact: bool) -> GlobList {
        let fold = |p: &str| {
            if exact {
                p.to_string()
            } else {
                p.to_ascii_lowercase()
            }
        };
        let mut globs = GlobList {
            exact,
            ..GlobList::default()
        };
        for pattern in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pattern.strip_prefix('!') {
                Some(denied) => globs.deny.push(fold(denied.trim())),
                None => globs.allow.push(fold(pattern)),
            }
        }
        globs
    }

    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether the list has at least one allowing pattern. A grant needs one: a list of only
    /// denials (or none at all) grants nothing, where a filter would let everything through.
    pub fn allows_anything(&self) -> bool {
        !self.allow.is_empty()
    }

    /// Whether every value that starts with `prefix` passes: some allowing pattern is a literal
    /// head of `prefix` followed by stars only, and no denying pattern could match any value
    /// under `prefix`. Conservative: a denial whose literal head is compatible with `prefix`
    /// counts as reaching under it.
    pub fn covers_prefix(&self, prefix: &str) -> bool {
        let prefix = prefix.to_ascii_lowercase();
        let allowed = self.allow.iter().any(|pattern| {
            let head = literal_head(pattern);
            let rest = &pattern[head.len()..];
            !rest.is_empty() && rest.bytes().all(|c| c == b'*') && prefix.starts_with(head)
        });
        let denied = self.deny.iter().any(|pattern| {
            let head = literal_head(pattern);
            if head.len() == pattern.len() {
                return pattern.starts_with(&prefix);
            }
            head.starts_with(&prefix) || prefix.starts_with(head)
        });
        allowed && !denied
    }

    pub fn matches(&self, value: &str) -> bool {
        self.matches_any(&[value])
    }

    /// Whether a value known by several spellings passes: no denying pattern matches any of
    /// them, and some allowing pattern matches one of them (or there is none).
    pub fn matches_any(&self, values: &[&str]) -> bool {
        let values: Vec<std::borrow::Cow<str>> = values
            .iter()
            .map(|v| match self.exact {
                true => (*v).into(),
                false => v.to_ascii_lowercase().into(),
            })
            .collect();
        let hit = |pattern: &String| {
            values
                .iter()
                .any(|v| glob_match(pattern.as_bytes(), v.as_bytes()))
        };
        !self.deny.iter().any(hit) && (self.allow.is_empty() || self.allow.iter().any(hit))
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

/// A pattern's bytes before its first wildcard.
fn literal_head(pattern: &str) -> &str {
    let end = pattern.find(['*', '?']).unwrap_or(pattern.len());
    &pattern[..end]
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
    fn exact_lists_keep_case_and_lists_match_any_spelling() {
        let cases = [
            ("Alice", "Alice", true),
            ("Alice", "alice", false),
            ("a*", "A1", false),
            ("!Bob", "bob", true),
            ("!Bob", "Bob", false),
        ];
        for (list, value, want) in cases {
            assert_eq!(
                GlobList::parse_exact(list).matches(value),
                want,
                "{list} ~ {value}"
            );
        }
        let types = GlobList::parse("text/plain,!text/html");
        assert!(types.matches_any(&["text/plain; charset=utf-8", "text/plain"]));
        assert!(!types.matches_any(&["text/html; q=1", "text/html"]));
        assert!(!types.matches_any(&["image/png"]));
    }

    #[test]
    fn prefix_coverage_is_conservative() {
        let cases = [
            ("news/*", "news/", true),
            ("news/*", "", false),
            ("*", "", true),
            ("news/*,!news/secret", "news/", false),
            ("news/*,!news/secret", "news/public/", true),
            ("news/*,!news/s*", "news/", false),
            ("news/*,!sport/*", "news/", true),
            ("news/*,!*", "news/", false),
            ("news/a?", "news/", false),
            ("NEWS/*", "news/x/", true),
            ("!x", "", false),
        ];
        for (list, prefix, want) in cases {
            assert_eq!(
                GlobList::parse(list).covers_prefix(prefix),
                want,
                "{list} ~ {prefix}/*"
            );
        }
    }
}
