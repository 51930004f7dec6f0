//! Subscriber-side filters: `?type=` and `?sender=` glob lists, as the original msgbus took them.
//!
//! Each is a glob list (`crate::glob`). Where this follows the original's last source
//! (`src/msgbus.c`, `match_pattern_list`) and where it departs on purpose:
//! - A message without a sender passes any sender filter, as the original let it through
//!   (`sub->sender != NULL && sender != NULL && ...`). `!?*` still keeps named senders out.
//! - Senders match case-sensitively, as the original compared them: a name is an identity.
//! - Types match ignoring ASCII case (media types are case-insensitive, RFC 9110 8.3.1; the
//!   original compared bytes), against the whole `Content-Type` as the original did and also
//!   against the media type without its `; parameters`, so `text/plain` takes
//!   `text/plain; charset=utf-8` (the original needed `text/plain*`).
//! - A list of only negations lets everything else through (`!text/html`: all but HTML); on the
//!   original such a list matched nothing, a subscription that could never deliver.

use crate::glob::GlobList;

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
            senders: senders.map(GlobList::parse_exact).unwrap_or_default(),
        }
    }

    /// True when the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty() && self.senders.is_empty()
    }

    pub fn accepts(&self, content_type: &str, sender: Option<&str>) -> bool {
        let whole = content_type.trim();
        let media_type = whole.split(';').next().unwrap_or("").trim();
        self.types.matches_any(&[whole, media_type])
            && sender.is_none_or(|sender| self.senders.matches(sender))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_look_at_media_type_and_sender() {
        let f = Filter::new(Some("text/plain"), Some("alice,b*"));
        assert!(f.accepts("text/plain; charset=utf-8", Some("alice")));
        assert!(f.accepts("Text/Plain", Some("bob")));
        assert!(!f.accepts("text/html", Some("alice")));
        assert!(!f.accepts("text/plain", Some("carol")));
        let anonymous_only = Filter::new(None, Some("!?*"));
        assert!(anonymous_only.accepts("a/b", None));
        assert!(!anonymous_only.accepts("a/b", Some("alice")));
        assert!(Filter::new(None, None).is_empty());
        assert!(Filter::new(Some(""), Some(" , ")).is_empty());
        assert!(!Filter::new(Some("!x"), None).is_empty());
    }

    #[test]
    fn as_the_original_or_on_purpose_not() {
        // (types, senders, content type, sender, accepted)
        let cases = [
            // The original: a message without a sender passes a sender filter.
            (None, Some("dugsong"), "text/plain", None, true),
            (None, Some("dugsong"), "text/plain", Some("alice"), false),
            // The original: sender names are compared with their case.
            (None, Some("dugsong"), "text/plain", Some("DugSong"), false),
            (None, Some("Dug*"), "text/plain", Some("DugSong"), true),
            // The original: the whole Content-Type, parameters included, is matched.
            (
                Some("*charset=utf-8"),
                None,
                "text/plain; charset=utf-8",
                None,
                true,
            ),
            (Some("text/*"), None, "text/plain;charset=x", None, true),
            // On purpose: the media type alone matches too, and without case.
            (Some("text/plain"), None, "text/plain;charset=x", None, true),
            (Some("TEXT/PLAIN"), None, "text/plain", None, true),
            (
                Some("text/*,!text/html"),
                None,
                "text/html; charset=x",
                None,
                false,
            ),
            // On purpose: only negations means everything else (the original: nothing).
            (Some("!text/html"), None, "text/plain", None, true),
            (Some("!text/html"), None, "text/html", None, false),
            (None, Some("!bob"), "a/b", Some("alice"), true),
            (None, Some("!bob"), "a/b", Some("bob"), false),
        ];
        for (types, senders, content_type, sender, want) in cases {
            assert_eq!(
                Filter::new(types, senders).accepts(content_type, sender),
                want,
                "{types:?} {senders:?} ~ {content_type} {sender:?}"
            );
        }
    }
}
