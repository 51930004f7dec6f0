//! Subscriber-side filters: `?type=` and `?sender=` glob lists, as the original msgbus took them.
//!
//! Each is a glob list (`crate::glob`); matching ignores ASCII case, as media types and user
//! names are compared loosely.
//! A type's parameters (`; charset=...`) are not part of what is matched.

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
        assert!(!f.accepts("text/plain", None));
        let anonymous_only = Filter::new(None, Some("!?*"));
        assert!(anonymous_only.accepts("a/b", None));
        assert!(!anonymous_only.accepts("a/b", Some("alice")));
        assert!(Filter::new(None, None).is_empty());
        assert!(Filter::new(Some(""), Some(" , ")).is_empty());
        assert!(!Filter::new(Some("!x"), None).is_empty());
    }
}
